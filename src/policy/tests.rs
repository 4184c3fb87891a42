//! Unit tests: parsing, every error kind with its exact location, longest-prefix
//! zone lookup, and verdicts per preset in both directions over IPv4 and IPv6.

use super::*;
use std::net::IpAddr;

const EXAMPLE: &str = include_str!("../../rules/example-site.toml");

/// The example site under another model: every model's host groups are in it.
fn example_as(preset: &str) -> String {
    EXAMPLE.replace("preset = \"alpha\"", &format!("preset = \"{preset}\""))
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

pub(super) fn load(text: &str) -> (Policy, Vec<Diagnostic>) {
    match Policy::from_source("site.toml", text) {
        Ok(x) => x,
        Err(LoadError::Invalid { errors, .. }) => {
            panic!("unexpected errors: {errors:#?}")
        }
        Err(e) => panic!("{e}"),
    }
}

pub(super) fn errors(text: &str) -> Vec<String> {
    match Policy::from_source("site.toml", text) {
        Ok(_) => panic!("expected errors"),
        Err(LoadError::Invalid { errors, .. }) => errors.iter().map(|d| d.to_string()).collect(),
        Err(e) => panic!("{e}"),
    }
}

fn site(preset: &str) -> Policy {
    load(&example_as(preset)).0
}

/// The rule id (or "intra:ZONE", or "SEVERITY") a flow gets.
pub(super) fn v(p: &Policy, src: &str, dst: &str, proto: u8, port: u16) -> String {
    match p.verdict(ip(src), ip(dst), proto, port, None) {
        Verdict::Allowed {
            rule: Allowance::Rule(r),
        } => p.rule(r).id.clone(),
        Verdict::Allowed {
            rule: Allowance::IntraZone(z),
        } => format!("intra:{}", p.zone(z).id),
        Verdict::Violation { severity, .. } => severity.as_str().to_string(),
        Verdict::Unknown => "unknown".to_string(),
        Verdict::Local => "local".to_string(),
    }
}

#[test]
fn every_preset_loads_without_errors() {
    for &name in MODELS {
        let (p, _warnings) = Policy::preset(name).expect("preset loads");
        assert_eq!(p.preset.as_deref(), Some(name));
        assert!(p.rules().len() >= 18, "{name}: {} rules", p.rules().len());
        assert!(p.zone_by_id("mynumber.term").is_some());
    }
}

#[test]
fn example_site_loads_with_only_the_override_warning() {
    let (p, w) = load(EXAMPLE);
    // The site gives the ports the preset leaves to it (A1, A1r, A5) and its own proxy ports.
    let ids: Vec<&str> = w.iter().filter_map(|d| d.rule.as_deref()).collect();
    assert_eq!(ids, ["A1", "A1r", "A5", "I1"], "{w:#?}");
    assert!(
        w.iter()
            .all(|d| d.message.starts_with("site rule replaces preset rule")),
        "{w:#?}"
    );
    assert_eq!(p.site_name.as_deref(), Some("Example City (例示市)"));
    assert_eq!(p.guideline.as_deref(), Some("R7.3"));
    // The site's I1 replaced the preset's in place and kept its ports.
    let i1 = p.rules().iter().find(|r| r.id == "I1").expect("I1");
    assert_eq!(i1.origin, Origin::Site);
    assert!(i1.ports.contains(&(8000, 8001)));
}

#[test]
fn every_preset_with_the_example_addresses_has_no_dead_or_shadowed_rule() {
    for &name in MODELS {
        let text = example_as(name);
        let (_, w) = load(&text);
        assert!(
            w.iter()
                .all(|d| d.message.starts_with("site rule replaces preset rule")),
            "{name}: {w:#?}"
        );
    }
}

#[test]
fn longest_prefix_match_v4_v6_subzones_default() {
    let p = site("alpha");
    let z = |a: &str| p.zone(p.zone_of(ip(a), None).expect("zone")).id.clone();
    assert_eq!(z("192.0.2.5"), "mynumber.term");
    assert_eq!(z("192.0.2.49"), "mynumber.edge");
    assert_eq!(z("2001:db8:0:210::7"), "lgwan.term");
    assert_eq!(z("2001:db8:0:121::50"), "mynumber.edge");
    // 203.0.113.0/26 inside 203.0.113.0/24: the longer prefix wins.
    assert_eq!(z("203.0.113.10"), "cloud_allow");
    assert_eq!(z("203.0.113.66"), "internet");
    // Unlisted: the default zone.
    assert_eq!(z("192.0.2.250"), "internet");
    assert_eq!(z("2001:db8:1234::1"), "internet");
    let term = p.zone_by_id("lgwan.term").expect("zone");
    let lgwan = p.zone_by_id("lgwan").expect("zone");
    assert!(p.is_within(term, lgwan));
    assert!(!p.is_within(lgwan, term));
}

#[test]
fn no_default_zone_gives_unknown() {
    let (p, _) = load(
        r#"
[[zone]]
id = "a"
cidrs = ["192.0.2.0/25"]
"#,
    );
    assert_eq!(p.zone_of(ip("192.0.2.200"), None), None);
    assert_eq!(
        p.verdict(ip("192.0.2.1"), ip("192.0.2.200"), IPPROTO_TCP, 80, None),
        Verdict::Unknown
    );
    assert_eq!(v(&p, "192.0.2.1", "192.0.2.2", IPPROTO_TCP, 80), "intra:a");
}

#[test]
fn vlan_refines_a_shared_prefix_and_vlan_only_zones() {
    let (p, w) = load(
        r#"
[[zone]]
id = "a"
cidrs = ["192.0.2.0/24"]
vlans = [10]

[[zone]]
id = "b"
cidrs = ["192.0.2.0/24"]
vlans = [20]

[[zone]]
id = "c"
vlans = [30]

[[zone]]
id = "d"
cidrs = ["2001:db8::/32"]
"#,
    );
    assert_eq!(w.len(), 1, "shared CIDR warns: {w:?}");
    assert!(w[0].message.contains("claimed by zones \"a\" and \"b\""));
    let z = |a: &str, vl| p.zone_of(ip(a), vl).map(|z| p.zone(z).id.clone());
    assert_eq!(z("192.0.2.1", Some(20)).as_deref(), Some("b"));
    assert_eq!(z("192.0.2.1", Some(10)).as_deref(), Some("a"));
    assert_eq!(z("192.0.2.1", None).as_deref(), Some("a"));
    assert_eq!(z("198.51.100.1", Some(30)).as_deref(), Some("c"));
    assert_eq!(z("198.51.100.1", None), None);
    assert_eq!(z("2001:db8::1", Some(30)).as_deref(), Some("d"));
}

#[test]
fn alpha_verdicts_both_directions_v4_v6() {
    let p = site("alpha");
    // My Number: only the CS reaches 住基ネット, and 住基ネット reaches only the CS.
    // The CS's ports are the site's (443 at the example site): others are critical.
    assert_eq!(v(&p, "192.0.2.49", "198.51.100.70", IPPROTO_TCP, 443), "A1");
    assert_eq!(
        v(&p, "198.51.100.70", "192.0.2.49", IPPROTO_TCP, 443),
        "A1r"
    );
    assert_eq!(
        v(&p, "192.0.2.49", "198.51.100.70", IPPROTO_TCP, 4444),
        "critical"
    );
    assert_eq!(
        v(&p, "192.0.2.5", "198.51.100.70", IPPROTO_TCP, 700),
        "critical"
    );
    assert_eq!(
        v(
            &p,
            "2001:db8:0:121::49",
            "2001:db8:ffff:2::70",
            IPPROTO_TCP,
            443
        ),
        "A1"
    );
    assert_eq!(
        v(
            &p,
            "2001:db8:0:110::5",
            "2001:db8:ffff:2::70",
            IPPROTO_TCP,
            700
        ),
        "critical"
    );
    // My Number to the internet, either way: critical.
    assert_eq!(
        v(&p, "192.0.2.5", "203.0.113.66", IPPROTO_TCP, 443),
        "critical"
    );
    assert_eq!(
        v(&p, "203.0.113.200", "192.0.2.5", IPPROTO_TCP, 22),
        "critical"
    );
    assert_eq!(
        v(
            &p,
            "2001:db8:0:110::5",
            "2001:db8:ffff:20::66",
            IPPROTO_UDP,
            53
        ),
        "critical"
    );
    // Linkage to 中間サーバー on 443 only.
    assert_eq!(v(&p, "192.0.2.50", "198.51.100.20", IPPROTO_TCP, 443), "A3");
    assert_eq!(
        v(&p, "192.0.2.50", "198.51.100.20", IPPROTO_TCP, 445),
        "critical"
    );
    // Intra-zone.
    assert_eq!(
        v(&p, "192.0.2.33", "192.0.2.49", IPPROTO_TCP, 700),
        "intra:mynumber"
    );
    // Screen transfer lgwan.term -> VDI: allowed one way, critical the other way.
    assert_eq!(v(&p, "192.0.2.70", "192.0.2.161", IPPROTO_TCP, 3389), "L3");
    assert_eq!(v(&p, "192.0.2.70", "192.0.2.161", IPPROTO_UDP, 3389), "L3u");
    assert_eq!(
        v(
            &p,
            "2001:db8:0:210::70",
            "2001:db8:0:320::161",
            IPPROTO_TCP,
            1494
        ),
        "L3"
    );
    assert_eq!(
        v(&p, "192.0.2.161", "192.0.2.70", IPPROTO_TCP, 3389),
        "critical"
    );
    assert_eq!(
        v(
            &p,
            "2001:db8:0:320::161",
            "2001:db8:0:210::70",
            IPPROTO_TCP,
            3389
        ),
        "critical"
    );
    // SMB to the VDI host: high (lgwan -> inet on a non-screen-transfer port).
    assert_eq!(v(&p, "192.0.2.70", "192.0.2.161", IPPROTO_TCP, 445), "high");
    // Sanitised mail into LGWAN via the gateway only.
    assert_eq!(v(&p, "192.0.2.177", "192.0.2.100", IPPROTO_TCP, 25), "L4");
    assert_eq!(
        v(&p, "192.0.2.165", "192.0.2.100", IPPROTO_TCP, 25),
        "critical"
    );
    // LGWAN to the internet: critical; to LGWAN services: allowed, other ports medium.
    assert_eq!(
        v(&p, "192.0.2.70", "203.0.113.66", IPPROTO_TCP, 443),
        "critical"
    );
    assert_eq!(
        v(
            &p,
            "2001:db8:0:210::70",
            "2001:db8:ffff:1::40",
            IPPROTO_UDP,
            53
        ),
        "L1u"
    );
    assert_eq!(
        v(&p, "192.0.2.70", "198.51.100.40", IPPROTO_TCP, 8080),
        "medium"
    );
    // Web egress via the proxy (site override adds 8000-8001); direct egress: high.
    assert_eq!(
        v(&p, "192.0.2.130", "198.51.100.130", IPPROTO_TCP, 8001),
        "I1"
    );
    assert_eq!(
        v(
            &p,
            "2001:db8:0:310::5",
            "2001:db8:ffff:4::130",
            IPPROTO_TCP,
            8080
        ),
        "I1"
    );
    assert_eq!(
        v(&p, "192.0.2.130", "203.0.113.66", IPPROTO_TCP, 443),
        "high"
    );
    // Inbound from the internet to the internet zone: critical.
    assert_eq!(
        v(&p, "203.0.113.200", "192.0.2.130", IPPROTO_TCP, 443),
        "critical"
    );
    // ICMP from a terminal to the internet is not covered by a port rule.
    assert_eq!(
        v(&p, "192.0.2.130", "198.51.100.130", IPPROTO_ICMP, 0),
        "medium"
    );
}

#[test]
fn alpha_prime_adds_lbo_from_the_gateway_only() {
    let a = site("alpha");
    let p = site("alpha_prime");
    assert_eq!(
        v(&p, "192.0.2.114", "203.0.113.10", IPPROTO_TCP, 443),
        "A'1"
    );
    assert_eq!(
        v(&p, "192.0.2.114", "203.0.113.10", IPPROTO_UDP, 3479),
        "A'1u"
    );
    assert_eq!(
        v(
            &p,
            "2001:db8:0:230::114",
            "2001:db8:ffff:10::10",
            IPPROTO_UDP,
            19305
        ),
        "A'1u"
    );
    assert_eq!(
        v(&a, "192.0.2.114", "203.0.113.10", IPPROTO_TCP, 443),
        "critical"
    );
    // Other LGWAN hosts, or other destinations, stay critical; reverse too.
    assert_eq!(
        v(&p, "192.0.2.70", "203.0.113.10", IPPROTO_TCP, 443),
        "critical"
    );
    assert_eq!(
        v(&p, "192.0.2.114", "203.0.113.66", IPPROTO_TCP, 443),
        "critical"
    );
    assert_eq!(
        v(&p, "203.0.113.10", "192.0.2.114", IPPROTO_TCP, 443),
        "critical"
    );
    assert_eq!(
        v(
            &p,
            "2001:db8:ffff:10::10",
            "2001:db8:0:230::114",
            IPPROTO_UDP,
            3479
        ),
        "critical"
    );
}

#[test]
fn beta_reverses_screen_transfer() {
    let p = site("beta");
    assert_eq!(v(&p, "192.0.2.130", "192.0.2.104", IPPROTO_TCP, 3389), "B1");
    assert_eq!(
        v(
            &p,
            "2001:db8:0:310::5",
            "2001:db8:0:220::104",
            IPPROTO_UDP,
            4172
        ),
        "B1u"
    );
    // The α direction is gone (B5 off) and the reverse of B1 is not allowed.
    assert_eq!(
        v(&p, "192.0.2.70", "192.0.2.161", IPPROTO_TCP, 3389),
        "high"
    );
    assert_eq!(
        v(&p, "192.0.2.104", "192.0.2.130", IPPROTO_TCP, 3389),
        "high"
    );
    // Internet-zone servers into LGWAN other than the VDI: critical.
    assert_eq!(
        v(&p, "192.0.2.166", "192.0.2.100", IPPROTO_TCP, 25),
        "critical"
    );
    assert_eq!(
        v(
            &p,
            "2001:db8:0:320::166",
            "2001:db8:0:220::100",
            IPPROTO_TCP,
            445
        ),
        "critical"
    );
    // No LBO in β: internet terminal to allow-listed cloud directly is high.
    assert_eq!(
        v(&p, "192.0.2.130", "203.0.113.10", IPPROTO_TCP, 443),
        "high"
    );
    // Sanitiser still the only file path into LGWAN.
    assert_eq!(v(&p, "192.0.2.178", "192.0.2.101", IPPROTO_TCP, 445), "L5");
}

#[test]
fn beta_prime_adds_saas_from_internet_terminals() {
    // The β' cloud rules are practice, opt-in: off, the SaaS flow is `inet -> cloud_allow`, high.
    let off = site("beta_prime");
    assert_eq!(
        v(&off, "192.0.2.130", "203.0.113.10", IPPROTO_TCP, 443),
        "high"
    );
    let p = load(&example_as("beta_prime").replace(
        "default_zone = \"internet\"",
        "default_zone = \"internet\"\noptions = [\"saas\"]",
    ))
    .0;
    assert_eq!(
        v(&p, "192.0.2.130", "203.0.113.10", IPPROTO_TCP, 443),
        "B'2"
    );
    assert_eq!(
        v(
            &p,
            "2001:db8:0:310::5",
            "2001:db8:ffff:10::10",
            IPPROTO_UDP,
            3478
        ),
        "B'2u"
    );
    assert_eq!(
        v(&p, "203.0.113.10", "192.0.2.130", IPPROTO_TCP, 443),
        "critical"
    );
    // β' business systems in inet.srv reach the allow-listed SaaS on https only.
    assert_eq!(
        v(&p, "192.0.2.167", "203.0.113.10", IPPROTO_TCP, 443),
        "B'2s"
    );
    assert_eq!(
        v(&p, "192.0.2.167", "203.0.113.10", IPPROTO_TCP, 22),
        "high"
    );
    // β' business systems on the internet side: intra-zone.
    assert_eq!(
        v(&p, "192.0.2.130", "192.0.2.167", IPPROTO_TCP, 443),
        "intra:inet"
    );
    assert_eq!(v(&p, "192.0.2.130", "192.0.2.104", IPPROTO_TCP, 3389), "B1");
    // The My Number zone is unchanged.
    assert_eq!(
        v(&p, "192.0.2.5", "203.0.113.10", IPPROTO_TCP, 443),
        "critical"
    );
}

#[test]
fn intra_zone_can_be_closed_and_severity_specificity() {
    let (p, _) = load(
        r#"
[[zone]]
id = "a"
cidrs = ["192.0.2.0/25"]
intra_zone_allowed = false

[[zone]]
id = "a.x"
cidrs = ["192.0.2.0/26"]

[[zone]]
id = "b"
cidrs = ["198.51.100.0/24"]

[[allow]]
id = "R1"
from = ["a.x"]
to = ["192.0.2.100/32"]
proto = "tcp"
ports = ["8000-8080"]

[severity]
default = "low"
"a->*" = "high"
"a.x->b" = "critical"
"*->b" = "medium"
"a->a" = "medium"
"#,
    );
    assert_eq!(v(&p, "192.0.2.1", "192.0.2.100", IPPROTO_TCP, 8000), "R1");
    assert_eq!(
        v(&p, "192.0.2.1", "192.0.2.100", IPPROTO_TCP, 8081),
        "medium"
    );
    assert_eq!(
        v(&p, "192.0.2.1", "198.51.100.1", IPPROTO_TCP, 1),
        "critical"
    );
    assert_eq!(v(&p, "192.0.2.100", "198.51.100.1", IPPROTO_TCP, 1), "high");
    assert_eq!(v(&p, "198.51.100.1", "192.0.2.1", IPPROTO_TCP, 1), "low");
    assert_eq!(
        v(&p, "198.51.100.1", "198.51.100.2", IPPROTO_TCP, 1),
        "intra:b"
    );
}

#[test]
fn syntax_error_keeps_toml_message_and_location() {
    let e = errors("[[zone]]\nid = \"a\"\ncidrs = [\"192.0.2.0/24\"\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("site.toml:3:"), "{}", e[0]);
    assert!(e[0].contains(": error: "), "{}", e[0]);
}

#[test]
fn unknown_key_is_rejected_with_location() {
    let e = errors("[[zone]]\nid = \"a\"\ncidr = [\"192.0.2.0/24\"]\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("site.toml:3:1: error: unknown field `cidr`"),
        "{}",
        e[0]
    );
}

#[test]
fn every_semantic_error_at_once_with_exact_locations() {
    let text = r#"preset = "gamma"
default_zone = "nowhere"

[[zone]]
id = "Bad Zone"

[[zone]]
id = "a"
cidrs = ["192.0.2.1/24", "300.1.1.0/24"]
vlans = [0, 4095]

[[zone]]
id = "a"

[[hostgroup]]
id = "a"

[[hostgroup]]
id = "g"
zone = "nope"
cidrs = ["2001:db8::/129"]

[[allow]]
id = "R1"
from = []
to = ["nothing", "198.51.100.0/33"]
proto = "sctp"
ports = [0, "9-1", "x", 70000]

[[allow]]
id = "R1"
from = ["a"]
to = ["a"]
override = true

[[allow]]
id = "R2"
from = ["a"]
to = ["a"]
proto = "icmp"
ports = [1]

[severity]
default = "severe"
"a-b" = "high"
"a->zz" = "high"
"#;
    let e = errors(text);
    let want = [
        "site.toml:1:10: error: unknown preset \"gamma\" (known: alpha, alpha_prime, beta, beta_prime)",
        "site.toml:2:16: error: default_zone: unknown zone \"nowhere\"",
        "site.toml:5:6: error: invalid zone id \"Bad Zone\" (lower-case letters, digits, '_' and '-', sub-zones joined by '.')",
        "site.toml:9:10: error: zone \"a\": CIDR \"192.0.2.1/24\" has host bits set (did you mean 192.0.2.0/24?)",
        "site.toml:9:26: error: zone \"a\": invalid CIDR or address \"300.1.1.0/24\"",
        "site.toml:10:10: error: zone \"a\": VLAN id 0 is outside 1-4094",
        "site.toml:10:13: error: zone \"a\": VLAN id 4095 is outside 1-4094",
        "site.toml:13:6: error: zone \"a\" is defined twice",
        "site.toml:16:6: error: host group \"a\" has the same id as a zone",
        "site.toml:20:8: error: host group \"g\": unknown zone \"nope\"",
        "site.toml:21:10: error: host group \"g\": invalid CIDR or address \"2001:db8::/129\"",
        "site.toml:25:8: error: `from` is empty (rule R1)",
        "site.toml:26:7: error: `to`: \"nothing\" is not a zone, host group, CIDR or address (rule R1)",
        "site.toml:26:18: error: `to`: invalid CIDR or address \"198.51.100.0/33\" (rule R1)",
        "site.toml:27:9: error: unknown proto \"sctp\" (tcp, udp, icmp, any) (rule R1)",
        "site.toml:28:10: error: port 0 is outside 1-65535 (rule R1)",
        "site.toml:28:13: error: port range \"9-1\" is reversed (rule R1)",
        "site.toml:28:20: error: invalid port range \"x\" (ports are 1-65535, e.g. \"8000-8080\") (rule R1)",
        "site.toml:28:25: error: port 70000 is outside 1-65535 (rule R1)",
        "site.toml:31:6: error: rule id \"R1\" is used twice (rule R1)",
        "site.toml:41:10: error: `ports` given with proto \"icmp\", which has no ports (rule R2)",
        "site.toml:44:11: error: severity \"default\": unknown level \"severe\" (info, low, medium, high, critical)",
        "site.toml:45:9: error: severity key \"a-b\" is not \"INITIATOR->RESPONDER\" or \"default\"",
        "site.toml:46:11: error: severity key \"a->zz\": unknown zone \"zz\"",
    ];
    assert_eq!(e, want);
}

#[test]
fn preset_rule_clash_and_bad_override() {
    let e = errors(
        r#"preset = "alpha"

[[allow]]
id = "L3"
from = ["lgwan"]
to = ["inet"]

[[allow]]
id = "Z9"
override = true
from = ["lgwan"]
to = ["inet"]
"#,
    );
    assert_eq!(
        e,
        [
            "site.toml:4:6: error: rule id \"L3\" is already a preset rule; set `override = true` to replace it (rule L3)",
            "site.toml:9:6: error: `override = true` but the preset has no rule \"Z9\" (rule Z9)",
        ]
    );
}

#[test]
fn warnings_shadowed_dead_relay_outside_duplicate_cidr() {
    let (_, w) = load(
        r#"
[[zone]]
id = "a"
cidrs = ["192.0.2.0/25"]

[[zone]]
id = "b"
cidrs = ["192.0.2.128/25", "192.0.2.0/25"]

[[zone]]
id = "empty"

[[hostgroup]]
id = "relay"
zone = "a"
cidrs = ["198.51.100.7"]

[[hostgroup]]
id = "loose"
cidrs = ["203.0.113.9"]

[[allow]]
id = "R1"
from = ["a"]
to = ["b"]
proto = "tcp"

[[allow]]
id = "R2"
from = ["192.0.2.0/26"]
to = ["b"]
proto = "tcp"
ports = [443, "8000-8080"]

[[allow]]
id = "R3"
from = ["empty"]
to = ["b"]
"#,
    );
    let w: Vec<String> = w.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        w,
        [
            "site.toml:8:28: warning: 192.0.2.0/25 is claimed by zones \"a\" and \"b\"",
            "site.toml:16:10: warning: host group \"relay\": 198.51.100.7/32 is outside its zone \"a\"",
            "site.toml:20:10: warning: host group \"loose\": 203.0.113.9/32 is outside every zone",
            "site.toml:29:6: warning: shadowed rule: fully covered by earlier rule \"R1\", never decides a verdict (rule R2)",
            "site.toml:36:6: warning: dead rule: `from` resolves to no address (zone or host group without CIDRs?) (rule R3)",
        ]
    );
}

#[test]
fn columns_count_characters_not_bytes() {
    // A Japanese name before the bad value on the same line.
    let e = errors("[[zone]]\nid = \"a\"\nname_ja = \"番号\"; cidrs = [\"x\"]\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("site.toml:3:"), "{}", e[0]);
}

#[test]
fn verdict_pack_round_trips() {
    let max = ZoneIdx(MAX_ZONES as u16);
    let vs = [
        Verdict::Allowed {
            rule: Allowance::Rule(RuleIdx(0)),
        },
        Verdict::Allowed {
            rule: Allowance::Rule(RuleIdx(u16::MAX)),
        },
        Verdict::Allowed {
            rule: Allowance::IntraZone(ZoneIdx(0)),
        },
        Verdict::Allowed {
            rule: Allowance::IntraZone(max),
        },
        Verdict::Unknown,
    ]
    .into_iter()
    .chain(Severity::ALL.into_iter().flat_map(|severity| {
        [(0, 0), (1, 2), (MAX_ZONES as u16, 7), (3, MAX_ZONES as u16)].map(|(s, d)| {
            Verdict::Violation {
                severity,
                reason: Reason {
                    src_zone: ZoneIdx(s),
                    dst_zone: ZoneIdx(d),
                },
            }
        })
    }));
    let vs: Vec<Verdict> = vs.collect();
    let mut seen = std::collections::HashSet::new();
    for v in &vs {
        assert_eq!(v.pack(), v.pack_in(0), "{v:?}");
        for slot in 0..POLICY_GENERATIONS as u8 {
            let t = v.pack_in(slot);
            assert_ne!(t, 0, "{v:?}");
            assert!(
                seen.insert(t),
                "{v:?} in slot {slot} packs like another verdict"
            );
            assert_eq!(Verdict::unpack(t), Some(*v), "slot {slot}");
            assert_eq!(generation_of(t), slot, "{v:?}");
        }
        // The slot is taken modulo 16.
        assert_eq!(v.pack_in(16 + 3), v.pack_in(3));
    }
    assert_eq!(seen.len(), vs.len() * POLICY_GENERATIONS);
    assert_eq!(Verdict::unpack(0), None);
    assert_eq!(generation_of(0), 0);
    // Severity 5..7 is never written, in any slot.
    assert_eq!(Verdict::unpack(2 << 30 | 7 << 20), None);
    assert_eq!(Verdict::unpack(2 << 30 | 15 << 26 | 5 << 20), None);
    // The documented layout.
    let v = Verdict::Violation {
        severity: Severity::High,
        reason: Reason {
            src_zone: ZoneIdx(5),
            dst_zone: ZoneIdx(9),
        },
    };
    assert_eq!(v.pack_in(7), 2 << 30 | 7 << 26 | 3 << 20 | 9 << 10 | 5);
    let v = Verdict::Allowed {
        rule: Allowance::IntraZone(ZoneIdx(4)),
    };
    assert_eq!(v.pack_in(15), 1 << 30 | 15 << 26 | 1 << 25 | 4);
    for (i, s) in Severity::ALL.iter().enumerate() {
        assert_eq!(*s as usize, i);
    }
}

/// The per-zone-pair index gives exactly the verdicts of a scan of every rule.
#[test]
fn pair_index_agrees_with_scanning_every_rule() {
    for preset in ["alpha", "alpha_prime", "beta", "beta_prime"] {
        let indexed = site(preset);
        let mut scan = site(preset);
        scan.pair_rules.clear();
        scan.pair_severity.clear();
        assert!(!indexed.pair_rules.is_empty(), "{preset}: index built");
        let mut hosts: Vec<IpAddr> = Vec::new();
        for last in (0u8..=255).step_by(3) {
            hosts.push(IpAddr::from([192, 0, 2, last]));
            hosts.push(IpAddr::from([198, 51, 100, last]));
            hosts.push(IpAddr::from([203, 0, 113, last]));
        }
        let mut allowed = 0;
        for (i, &src) in hosts.iter().enumerate() {
            for &dst in hosts.iter().skip(i % 7).step_by(5) {
                for (proto, port) in [
                    (6u8, 443u16),
                    (6, 25),
                    (6, 3389),
                    (17, 53),
                    (1, 8),
                    (6, 8080),
                ] {
                    let a = indexed.verdict(src, dst, proto, port, None);
                    let b = scan.verdict(src, dst, proto, port, None);
                    assert_eq!(a, b, "{preset}: {src} -> {dst} proto {proto} port {port}");
                    allowed += usize::from(matches!(a, Verdict::Allowed { .. }));
                }
            }
        }
        assert!(
            allowed > 0,
            "{preset}: the sample exercises allowed verdicts too"
        );
    }
}

/// [`Verdict::pack`] keeps zone indices in 10 bits: the loader refuses more
/// than [`MAX_ZONES`] zones, with the count, and accepts exactly that many.
#[test]
fn zone_count_is_capped_for_packed_verdicts() {
    let zones = |n: usize| -> String {
        (0..n)
            .map(|i| format!("[[zone]]\nid = \"z{i}\"\ncidrs = [\"2001:db8:{i:x}::/48\"]\n"))
            .collect()
    };
    // Two of the MAX_ZONES are built in: `local` and `multicast`, last.
    let (p, _) = load(&zones(MAX_ZONES - 2));
    assert_eq!(p.zones().len(), MAX_ZONES);
    assert_eq!(p.multicast_zone(), ZoneIdx((MAX_ZONES - 1) as u16));
    // The last zone's index still round-trips through a packed violation:
    // a routable group address no site zone claims is in `multicast`.
    let last = ZoneIdx((MAX_ZONES - 1) as u16);
    let v = p.verdict(
        ip(&format!("2001:db8:{:x}::1", MAX_ZONES - 3)),
        ip("ff05::1:3"),
        IPPROTO_UDP,
        547,
        None,
    );
    assert_eq!(v.kind_str(), "violation");
    assert_eq!(Verdict::unpack(v.pack_in(9)), Some(v));
    assert!(
        matches!(v, Verdict::Violation { reason, .. } if reason.dst_zone == last
            && reason.src_zone == ZoneIdx((MAX_ZONES - 3) as u16)),
        "{v:?}"
    );
    let e = errors(&zones(MAX_ZONES - 1));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("too many zones: 1024 declared") && e[0].contains("the limit is 1023"),
        "{}",
        e[0]
    );
}

/// Every preset with VLAN-tagged flows: where each address is claimed by one
/// zone's CIDR the tag changes nothing; where a site reuses a prefix in two
/// zones (the My Number and LGWAN terminal VLANs share 192.0.2.0/27 and
/// 2001:db8:0:110::/64) the tag picks the zone, in both directions.
#[test]
fn every_preset_with_vlan_tags() {
    for preset in ["alpha", "alpha_prime", "beta", "beta_prime"] {
        let plain = site(preset);
        for (src, dst, proto, port) in [
            ("192.0.2.70", "192.0.2.161", IPPROTO_TCP, 3389),
            ("192.0.2.10", "203.0.113.200", IPPROTO_TCP, 443),
            ("203.0.113.200", "192.0.2.10", IPPROTO_TCP, 22),
            (
                "2001:db8:0:210::70",
                "2001:db8:0:320::161",
                IPPROTO_TCP,
                3389,
            ),
            (
                "2001:db8:0:110::10",
                "2001:db8:ffff:20::200",
                IPPROTO_UDP,
                53,
            ),
        ] {
            let untagged = plain.verdict(ip(src), ip(dst), proto, port, None);
            for vlan in [110, 210, 310, 900, 4094] {
                assert_eq!(
                    plain.verdict(ip(src), ip(dst), proto, port, Some(vlan)),
                    untagged,
                    "{preset}: {src} -> {dst} tagged {vlan}"
                );
            }
        }

        let shared = example_as(preset)
            .replace(
                "cidrs = [\"192.0.2.64/27\", \"2001:db8:0:210::/64\"]",
                "cidrs = [\"192.0.2.64/27\", \"2001:db8:0:210::/64\", \"192.0.2.0/27\", \"2001:db8:0:110::/64\"]",
            );
        let (p, warnings) = load(&shared);
        assert!(
            warnings
                .iter()
                .any(|w| w.message.contains("claimed by zones")),
            "{preset}: shared prefix warns: {warnings:?}"
        );
        let zone_id = |z: ZoneIdx| p.zone(z).id.clone();
        for (term, other, proto, port) in [
            ("192.0.2.10", "203.0.113.200", IPPROTO_TCP, 443),
            (
                "2001:db8:0:110::10",
                "2001:db8:ffff:20::200",
                IPPROTO_TCP,
                443,
            ),
        ] {
            for (vlan, zone) in [
                (110, "mynumber.term"),
                (210, "lgwan.term"),
                (0, "mynumber.term"),
            ] {
                let tag = (vlan != 0).then_some(vlan);
                assert_eq!(
                    p.zone_of(ip(term), tag).map(zone_id).as_deref(),
                    Some(zone),
                    "{preset}: {term} tagged {vlan}"
                );
                // Outbound: the terminal initiates; the tag decides its zone.
                match p.verdict(ip(term), ip(other), proto, port, tag) {
                    Verdict::Violation { severity, reason } => {
                        assert_eq!(zone_id(reason.src_zone), zone, "{preset} {term} {vlan}");
                        assert_eq!(zone_id(reason.dst_zone), "internet");
                        assert_eq!(severity, Severity::Critical, "{preset}: {zone} -> internet");
                    }
                    v => panic!("{preset}: {zone} -> internet must be a violation, got {v:?}"),
                }
                // Inbound: the same pair initiated from the internet.
                match p.verdict(ip(other), ip(term), proto, port, tag) {
                    Verdict::Violation { severity, reason } => {
                        assert_eq!(zone_id(reason.dst_zone), zone, "{preset} {term} {vlan}");
                        assert_eq!(severity, Severity::Critical, "{preset}: internet -> {zone}");
                    }
                    v => panic!("{preset}: internet -> {zone} must be a violation, got {v:?}"),
                }
            }
            // Within one terminal VLAN: allowed intra-zone only if the tag puts
            // both ends in the same zone.
            let peer = if term.contains(':') {
                "2001:db8:0:110::20"
            } else {
                "192.0.2.20"
            };
            for vlan in [110, 210] {
                assert!(
                    matches!(
                        p.verdict(ip(term), ip(peer), IPPROTO_TCP, 445, Some(vlan)),
                        Verdict::Allowed {
                            rule: Allowance::IntraZone(_)
                        }
                    ),
                    "{preset}: same VLAN {vlan} is one zone"
                );
            }
        }
    }
}

/// Issue #12 point 1: office noise a My Number terminal sends many times a
/// minute is segment-local, never `mynumber.term -> internet` (the example site
/// has `default_zone = "internet"`), in every preset.
#[test]
fn segment_local_office_noise_is_never_judged_as_crossing() {
    const IGMP: u8 = IPPROTO_IGMP;
    for &name in MODELS {
        let p = site(name);
        let term = p.zone_by_id("mynumber.term");
        let local = Some(p.local_zone());
        // (src, dst, proto, sport = ICMPv6 type, dport)
        let noise: &[(&str, &str, u8, u16, u16)] = &[
            ("192.0.2.5", "224.0.0.251", IPPROTO_UDP, 5353, 5353), // mDNS
            ("192.0.2.5", "224.0.0.252", IPPROTO_UDP, 50000, 5355), // LLMNR
            ("192.0.2.5", "224.0.0.22", IGMP, 0, 0),               // IGMPv3 report
            ("192.0.2.5", "239.255.255.250", IGMP, 0, 0),          // IGMPv2 report to its group
            ("192.0.2.5", "255.255.255.255", IPPROTO_UDP, 68, 67), // limited broadcast
            ("192.0.2.5", "192.0.2.31", IPPROTO_UDP, 137, 137),    // NetBIOS, own /27 broadcast
            ("2001:db8:0:110::5", "ff02::fb", IPPROTO_UDP, 5353, 5353),
            ("2001:db8:0:110::5", "ff02::1:3", IPPROTO_UDP, 50000, 5355),
            // Neighbor Advertisement to a global address of another zone: link only.
            (
                "2001:db8:0:110::5",
                "2001:db8:0:210::9",
                IPPROTO_ICMPV6,
                136,
                0,
            ),
        ];
        for &(s, d, proto, sport, dport) in noise {
            let why = format!("{name}: {s} -> {d} proto {proto}");
            assert!(p.segment_local(ip(s), ip(d), proto, sport), "{why}");
            assert_eq!(
                p.judge(ip(s), ip(d), proto, sport, dport, None),
                Verdict::Local,
                "{why}"
            );
            assert_eq!(
                p.flow_zones(ip(s), ip(d), proto, sport, None),
                (term, local),
                "{why}"
            );
            // Packs and unpacks in every generation slot.
            let v = Verdict::Local;
            assert_eq!(Verdict::unpack(v.pack_in(7)), Some(v));
            assert!(!is_violation_tag(v.pack_in(7)));
        }
    }
}

/// Addresses that belong to no zone by prefix take their VLAN's zone, never the
/// default zone; DHCP from 0.0.0.0 and link-local traffic are segment-local.
#[test]
fn unzoned_addresses_take_their_vlans_zone_never_the_default() {
    let p = site("alpha");
    let term = p.zone_by_id("mynumber.term");
    let lgwan_term = p.zone_by_id("lgwan.term");
    let local = Some(p.local_zone());
    for a in [
        "fe80::1",
        "::",
        "0.0.0.0",
        "169.254.7.7",
        "255.255.255.255",
        "ff02::1",
    ] {
        assert_eq!(p.zone_of(ip(a), None), None, "{a}");
        assert_eq!(p.zone_of(ip(a), Some(110)), term, "{a}");
        assert_eq!(p.zone_of(ip(a), Some(210)), lgwan_term, "{a}");
        assert_eq!(
            p.zone_of(ip(a), Some(4000)),
            None,
            "{a}: a VLAN no zone lists"
        );
    }
    let flows: &[(&str, &str, u8, u16)] = &[
        ("0.0.0.0", "255.255.255.255", IPPROTO_UDP, 68), // DHCPDISCOVER
        ("fe80::1", "ff02::1:2", IPPROTO_UDP, 546),      // DHCPv6 Solicit
        ("::", "ff02::1:ff00:1", IPPROTO_ICMPV6, 135),   // DAD
        ("fe80::1", "fe80::2", IPPROTO_TCP, 445),        // link-local unicast
        ("169.254.1.1", "169.254.1.2", IPPROTO_TCP, 80),
        ("169.254.1.1", "203.0.113.9", IPPROTO_TCP, 80), // link-local source: not routed
    ];
    for &(s, d, proto, sport) in flows {
        assert_eq!(
            p.judge(ip(s), ip(d), proto, sport, 0, Some(110)),
            Verdict::Local
        );
        assert_eq!(
            p.flow_zones(ip(s), ip(d), proto, sport, Some(110)),
            (term, local)
        );
        assert_eq!(
            p.flow_zones(ip(s), ip(d), proto, sport, None),
            (None, local)
        );
    }
}

/// A directed broadcast is segment-local only into the sender's own block;
/// aimed at another zone's block it is judged like any flow (a smurf probe
/// from LGWAN into My Number stays critical).
#[test]
fn directed_broadcast_is_local_only_in_the_senders_block() {
    let p = site("alpha");
    assert_eq!(v(&p, "192.0.2.5", "192.0.2.31", IPPROTO_UDP, 137), "local");
    assert_eq!(
        v(&p, "192.0.2.70", "192.0.2.31", IPPROTO_UDP, 137),
        "critical"
    );
    assert_eq!(v(&p, "192.0.2.70", "192.0.2.95", IPPROTO_UDP, 138), "local");
}

/// Routable multicast (239/8, IPv6 scopes wider than the link) is judged by the
/// rules: the built-in `multicast` zone is its responder, the presets' M1 allows
/// SSDP and WS-Discovery, any other group follows the severity table, and a site
/// zone that lists a group block owns it.
#[test]
fn routable_multicast_is_judged_by_the_rules() {
    for &name in MODELS {
        let p = site(name);
        let mc = Some(p.multicast_zone());
        let term = p.zone_by_id("mynumber.term");
        assert_eq!(p.zone(p.multicast_zone()).id, MULTICAST_ZONE);
        for (s, d, port) in [
            ("192.0.2.5", "239.255.255.250", 1900),
            ("192.0.2.5", "239.255.255.250", 3702),
            ("2001:db8:0:110::5", "ff05::c", 1900),
            ("192.0.2.70", "239.255.255.250", 1900),
        ] {
            assert_eq!(
                v(&p, s, d, IPPROTO_UDP, port),
                "M1",
                "{name}: {s} -> {d}:{port}"
            );
        }
        assert_eq!(
            p.flow_zones(
                ip("192.0.2.5"),
                ip("239.255.255.250"),
                IPPROTO_UDP,
                1900,
                None
            ),
            (term, mc)
        );
        // Another group, or another port: the severity table (mynumber->* is critical).
        assert_eq!(
            v(&p, "192.0.2.5", "239.1.2.3", IPPROTO_UDP, 5000),
            "critical"
        );
        assert_eq!(
            v(&p, "192.0.2.5", "239.255.255.250", IPPROTO_UDP, 80),
            "critical"
        );
        assert_eq!(
            v(&p, "2001:db8:0:110::5", "ff0e::1:3", IPPROTO_UDP, 5000),
            "critical"
        );
    }
    let text =
        EXAMPLE.to_string() + "\n[[zone]]\nid = \"lgwan.video\"\ncidrs = [\"239.192.0.0/16\"]\n";
    let (p, _) = load(&text);
    assert_eq!(
        p.zone_of(ip("239.192.0.9"), None),
        p.zone_by_id("lgwan.video")
    );
    assert_eq!(
        v(&p, "192.0.2.70", "239.192.0.9", IPPROTO_UDP, 5004),
        "intra:lgwan"
    );
}

#[test]
fn built_in_zone_ids_are_reserved_and_local_is_no_rule_endpoint() {
    let e = errors("[[zone]]\nid = \"local\"\ncidrs = [\"192.0.2.0/24\"]\n");
    assert!(
        e[0].contains("site.toml:2:6") && e[0].contains("reserved"),
        "{e:?}"
    );
    let e = errors("[[zone]]\nid = \"multicast.video\"\n");
    assert!(e[0].contains("reserved"), "{e:?}");
    let e = errors(
        "[[zone]]\nid = \"a\"\ncidrs = [\"192.0.2.0/24\"]\n\
         [[allow]]\nid = \"r\"\nfrom = [\"a\"]\nto = [\"local\"]\n",
    );
    assert!(
        e[0].contains("site.toml:7:7") && e[0].contains("segment-local"),
        "{e:?}"
    );
    // `multicast` can be named.
    let (p, _) = load(
        "[[zone]]\nid = \"a\"\ncidrs = [\"192.0.2.0/24\"]\n\
         [[allow]]\nid = \"r\"\nfrom = [\"a\"]\nto = [\"multicast\"]\nproto = \"udp\"\nports = [5004]\n",
    );
    assert_eq!(v(&p, "192.0.2.1", "239.1.1.1", IPPROTO_UDP, 5004), "r");
}
