//! Issue #19: the presets allow what the guideline allows, no more and no less.
//! Each flow of the "too broad" and "too narrow" tables is judged here
//! in every model at the example site's addresses, then the loader features the
//! presets rest on (sources, site-defined ports, options, inheriting overrides)
//! are checked with their errors.

use super::tests::{errors, load, v};
use super::*;

const EXAMPLE: &str = include_str!("../../rules/example-site.toml");

fn with(preset: &str, options: &[&str]) -> String {
    let opts: Vec<String> = options.iter().map(|o| format!("{o:?}")).collect();
    EXAMPLE.replace(
        "preset = \"alpha\"",
        &format!("preset = \"{preset}\"\noptions = [{}]", opts.join(", ")),
    )
}

const TCP: u8 = IPPROTO_TCP;
const UDP: u8 = IPPROTO_UDP;

/// The "too broad" flows: each is now a violation of the right severity.
#[test]
fn too_broad_flows_are_violations_in_every_model() {
    for &m in MODELS {
        let p = load(&with(m, &[])).0;
        let cases: &[(&str, &str, u8, u16, &str, &str)] = &[
            // A1/A1r: the CS on a port the site did not give.
            (
                "192.0.2.49",
                "198.51.100.70",
                TCP,
                4444,
                "critical",
                "CS to 住基ネット:4444",
            ),
            (
                "198.51.100.70",
                "192.0.2.49",
                TCP,
                4444,
                "critical",
                "住基ネット to CS:4444",
            ),
            // A4: a telework LGWAN-ASP is no 特定通信.
            (
                "192.0.2.50",
                "198.51.100.50",
                TCP,
                443,
                "critical",
                "linkage to telework ASP",
            ),
            // A5: RDP and SMB from a My Number terminal to the government cloud.
            (
                "192.0.2.5",
                "198.51.100.100",
                TCP,
                3389,
                "critical",
                "RDP to gov cloud",
            ),
            (
                "192.0.2.5",
                "198.51.100.100",
                TCP,
                445,
                "critical",
                "SMB to gov cloud",
            ),
            // L5: the sanitiser opening SMB to the AD server or to a terminal.
            (
                "192.0.2.178",
                "192.0.2.102",
                TCP,
                445,
                "critical",
                "sanitiser to AD",
            ),
            (
                "192.0.2.178",
                "192.0.2.70",
                TCP,
                445,
                "critical",
                "sanitiser to terminal",
            ),
            // example-site S1 is gone: My Number syslog to a shared collector.
            (
                "192.0.2.5",
                "192.0.2.226",
                UDP,
                514,
                "critical",
                "syslog to shared mgmt",
            ),
            // LGWAN mail leaves from the mail server only.
            (
                "192.0.2.70",
                "198.51.100.41",
                TCP,
                25,
                "medium",
                "terminal SMTP to LGWAN",
            ),
            // Nothing on LGWAN opens connections to a terminal.
            (
                "198.51.100.41",
                "192.0.2.70",
                TCP,
                445,
                "high",
                "LGWAN to a terminal",
            ),
            (
                "198.51.100.41",
                "192.0.2.97",
                TCP,
                445,
                "medium",
                "LGWAN to a server",
            ),
            // A terminal reaching the LGWAN time service past its zone's time server.
            (
                "192.0.2.5",
                "198.51.100.42",
                UDP,
                123,
                "critical",
                "My Number terminal NTP out",
            ),
        ];
        for &(s, d, proto, port, want, what) in cases {
            assert_eq!(v(&p, s, d, proto, port), want, "{m}: {what}");
        }
    }
}

/// The "too narrow" flows: guideline-compliant operation raises nothing.
#[test]
fn compliant_flows_are_allowed_in_every_model() {
    for &m in MODELS {
        let p = load(&with(m, &[])).0;
        let cases: &[(&str, &str, u8, u16, &str, &str)] = &[
            (
                "192.0.2.20",
                "198.51.100.20",
                TCP,
                443,
                "A3t",
                "中間サーバー端末",
            ),
            ("192.0.2.50", "198.51.100.10", TCP, 443, "A4", "特定通信"),
            (
                "192.0.2.5",
                "198.51.100.100",
                TCP,
                443,
                "A5",
                "標準準拠システム",
            ),
            (
                "192.0.2.49",
                "198.51.100.70",
                TCP,
                443,
                "A1",
                "CS on the site's port",
            ),
            (
                "192.0.2.40",
                "198.51.100.30",
                TCP,
                80,
                "A6",
                "My Number WSUS on 80",
            ),
            (
                "192.0.2.103",
                "198.51.100.30",
                TCP,
                80,
                "L1",
                "LGWAN WSUS on 80",
            ),
            (
                "192.0.2.70",
                "198.51.100.50",
                TCP,
                80,
                "L1",
                "LGWAN-ASP on http",
            ),
            (
                "192.0.2.100",
                "198.51.100.41",
                TCP,
                25,
                "L1m",
                "LGWAN mail out",
            ),
            (
                "192.0.2.130",
                "192.0.2.178",
                TCP,
                443,
                "I6",
                "upload to the sanitiser",
            ),
            (
                "192.0.2.165",
                "192.0.2.178",
                TCP,
                445,
                "I6",
                "mail server to sanitiser",
            ),
            (
                "192.0.2.178",
                "192.0.2.101",
                TCP,
                445,
                "L5",
                "sanitiser to the drop",
            ),
            (
                "192.0.2.5",
                "192.0.2.45",
                UDP,
                123,
                "intra:mynumber",
                "zone time server",
            ),
            (
                "192.0.2.45",
                "198.51.100.42",
                UDP,
                123,
                "N1",
                "My Number time from LGWAN",
            ),
            ("192.0.2.70", "198.51.100.42", UDP, 123, "L1u", "LGWAN time"),
            (
                "192.0.2.130",
                "198.51.100.134",
                UDP,
                123,
                "N3",
                "internet-side time",
            ),
        ];
        for &(s, d, proto, port, want, what) in cases {
            assert_eq!(v(&p, s, d, proto, port), want, "{m}: {what}");
        }
    }
}

#[test]
fn model_specific_flows() {
    // β / β': the LGWAN desktops use the sanitiser and the hand-over server.
    for m in ["beta", "beta_prime"] {
        let p = load(&with(m, &[])).0;
        assert_eq!(v(&p, "192.0.2.104", "192.0.2.178", TCP, 445), "L5p", "{m}");
        assert_eq!(v(&p, "192.0.2.104", "192.0.2.179", TCP, 443), "L6", "{m}");
        assert_eq!(v(&p, "192.0.2.130", "192.0.2.104", TCP, 3389), "B1", "{m}");
    }
    // α: the same desktop flows are no rule's (the host is just an LGWAN server).
    let a = load(&with("alpha", &[])).0;
    assert_eq!(v(&a, "192.0.2.104", "192.0.2.178", TCP, 445), "high");

    // α': the breakout gateway, its DNS and certificate checks.
    let p = load(&with("alpha_prime", &[])).0;
    assert_eq!(v(&p, "192.0.2.114", "203.0.113.10", TCP, 443), "A'1");
    assert_eq!(v(&p, "192.0.2.114", "203.0.113.11", UDP, 3478), "A'1u");
    assert_eq!(v(&p, "192.0.2.114", "203.0.113.153", UDP, 53), "A'3");
    assert_eq!(v(&p, "192.0.2.114", "203.0.113.180", TCP, 80), "A'4");
    assert_eq!(v(&p, "192.0.2.114", "203.0.113.66", TCP, 80), "critical");
    // A terminal's own address towards the cloud: critical unless the site says
    // its proxy is transparent (option lbo_transparent).
    assert_eq!(v(&p, "192.0.2.70", "203.0.113.10", TCP, 443), "critical");
    let t = load(&with("alpha_prime", &["lbo_transparent"])).0;
    assert_eq!(v(&t, "192.0.2.70", "203.0.113.10", TCP, 443), "A'2t");
    assert_eq!(v(&t, "192.0.2.70", "203.0.113.10", UDP, 3479), "A'2tu");
    assert_eq!(v(&t, "192.0.2.70", "203.0.113.66", TCP, 443), "critical");
    assert_eq!(v(&t, "192.0.2.5", "203.0.113.10", TCP, 443), "critical");
}

/// Every preset rule says what it rests on: text (document and quote, the
/// loader enforces), practice (who) or unverified (why); none is a bare note,
/// and no preset rule crossing the My Number boundary goes without ports.
#[test]
fn every_preset_rule_has_a_classified_source_and_my_number_rules_name_ports() {
    for &m in MODELS {
        let (p, warnings) = load(&with(m, &[]));
        let all = p.rules().iter().chain(p.inactive.iter().map(|(r, _)| r));
        for r in all.filter(|r| r.origin == Origin::Preset) {
            let basis = r.source.as_ref().and_then(|s| s.basis);
            assert!(
                matches!(
                    basis,
                    Some(Basis::Text | Basis::Practice | Basis::Unverified)
                ),
                "{m}: rule {} has basis {basis:?}",
                r.id
            );
        }
        assert!(
            !warnings
                .iter()
                .any(|w| w.message.contains("My Number boundary")),
            "{m}: {warnings:#?}"
        );
    }
}

#[test]
fn site_defined_ports_are_off_until_the_site_gives_them() {
    // Without the example's overrides A1, A1r and A5 are off and say so.
    let text = with("alpha", &[]);
    let cut = text.find("[[allow]]\nid = \"A1\"").expect("A1 override");
    let end = text.find("# I1 replaced").expect("I1");
    let bare = format!("{}{}", &text[..cut], &text[end..]);
    let (p, w) = load(&bare);
    let off: Vec<&str> = w
        .iter()
        .filter(|d| d.message.contains("leaves its ports to the site"))
        .filter_map(|d| d.rule.as_deref())
        .collect();
    assert_eq!(off, ["A1", "A1r", "A5"], "{w:#?}");
    assert!(p
        .inactive
        .iter()
        .any(|(r, why)| r.id == "A5" && *why == Inactive::SitePorts));
    assert_eq!(v(&p, "192.0.2.49", "198.51.100.70", TCP, 443), "critical");

    // The override gives only ports: from, to, proto and the source stay the preset's.
    let (p, _) = load(&text);
    let a1 = p.rules().iter().find(|r| r.id == "A1").expect("A1");
    assert_eq!(a1.proto, Proto::Tcp);
    assert_eq!(a1.ports, [(443, 443)]);
    assert_eq!(a1.origin, Origin::Site);
    assert_eq!(
        a1.source.as_ref().and_then(|s| s.basis),
        Some(Basis::Practice)
    );
    let a5 = p.rules().iter().find(|r| r.id == "A5").expect("A5");
    assert_eq!(a5.proto, Proto::Tcp, "A5 keeps the preset's proto");
}

#[test]
fn loader_errors_for_sources_options_and_site_ports() {
    let base = "preset = \"alpha\"\n";
    let e = errors("preset = \"common\"\n");
    assert!(e[0].contains("base of the model presets"), "{e:?}");
    let e = errors(&format!("{base}options = [\"nope\"]\n"));
    assert!(
        e[0].contains("site.toml:2:12: error: unknown option \"nope\" (the preset declares: none)"),
        "{e:?}"
    );
    let e = errors(&format!(
        "{base}[[allow]]\nid = \"X\"\nfrom = [\"lgwan\"]\nto = [\"inet\"]\nports = [\"site\"]\n"
    ));
    assert!(e[0].contains("only a preset can say it"), "{e:?}");
    let e = errors(&format!(
        "{base}[[allow]]\nid = \"A1\"\noverride = true\nports = [\"site\", 443]\n"
    ));
    assert!(e[0].contains("must be the only entry"), "{e:?}");
    let e = errors(&format!("{base}[[allow]]\nid = \"X\"\nto = [\"inet\"]\n"));
    assert!(e[0].contains("`from` is missing"), "{e:?}");
    let e = errors(&format!(
        "{base}[[allow]]\nid = \"X\"\nfrom = [\"lgwan\"]\nto = [\"inet\"]\nproto = \"tcp\"\nports = [1]\noption = \"zz\"\n"
    ));
    assert!(e[0].contains("\"zz\" is not declared"), "{e:?}");
    for (table, want) in [
        ("basis = \"text\"\ndocument = \"d\"", "needs `quote`"),
        ("basis = \"practice\"", "needs `by`"),
        ("basis = \"unverified\"", "needs `note`"),
        ("basis = \"rumour\"\nnote = \"n\"", "expected \"text\""),
        (
            "basis = \"practice\"\nby = \"x\"\npage = 3",
            "unknown key `guideline.page`",
        ),
        ("by = \"x\"", "without `basis`"),
    ] {
        let text = format!(
            "{base}[[allow]]\nid = \"X\"\nfrom = [\"lgwan\"]\nto = [\"inet\"]\nproto = \"tcp\"\nports = [1]\n[allow.guideline]\n{table}\n"
        );
        let e = errors(&text);
        assert!(
            e[0].contains("site.toml:8:1: error:") && e[0].contains(want),
            "{table}: {e:?}"
        );
    }
}

#[test]
fn a_site_rule_crossing_the_my_number_boundary_without_ports_warns() {
    let text = with("alpha", &[])
        + "\n[[allow]]\nid = \"S9\"\nfrom = [\"mynumber.srv\"]\nto = [\"198.51.100.60\"]\n";
    let (_, w) = load(&text);
    let hit: Vec<&Diagnostic> = w
        .iter()
        .filter(|d| d.rule.as_deref() == Some("S9"))
        .collect();
    assert_eq!(hit.len(), 1, "{w:#?}");
    assert!(hit[0]
        .message
        .contains("crosses the My Number boundary (mynumber -> lgwan_wan) without naming ports"));
}

#[test]
fn check_sources_lists_every_rule_with_its_basis_and_the_options() {
    let (p, w) = load(&with("alpha_prime", &[]));
    let out = render_sources("site.toml", &p, &w);
    for r in p.rules().iter().chain(p.inactive.iter().map(|(r, _)| r)) {
        assert!(
            out.contains(&format!("\n{} [", r.id)),
            "{} missing:\n{out}",
            r.id
        );
    }
    assert!(
        out.contains("off lbo_transparent: the mirror port sees"),
        "{out}"
    );
    assert!(
        out.contains("A'2t [preset, off (option lbo_transparent not turned on)]"),
        "{out}"
    );
    assert!(
        out.contains("A4 [preset, on]: linkage -> tokutei: tcp 443\n"),
        "{out}"
    );
    assert!(
        out.contains("quote: 他の領域との分離は維持しつつ、国が認めた特定通信"),
        "{out}"
    );
    assert!(
        out.contains("A1 [site, on]: juki_cs -> juki_net: tcp 443"),
        "{out}"
    );
}
