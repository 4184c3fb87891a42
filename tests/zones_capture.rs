//! The zone captures (captures/README.md, recorded by captures/record-zones.sh)
//! replayed with the example site's rules: every planted flow gets the verdict the
//! site's rules give it, judged once from its initiator, whatever the worker count.
//! One table of planted flows per address family; the checks are shared by the
//! three files (zones.pcap, zones-v6.pcap, zones-vlan.pcap).

use crate::util;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/example-site.toml");

/// One flow planted by record-zones.sh and what rules/example-site.toml says of it.
struct Planted {
    src: &'static str,
    dst: &'static str,
    proto: &'static str,
    /// Responder port; for ICMP zonewatch puts the code here (echo request: 0).
    dport: u64,
    src_zone: &'static str,
    dst_zone: &'static str,
    verdict: &'static str,
    rule: Option<&'static str>,
    severity: Option<&'static str>,
}

const fn allowed(
    src: &'static str,
    dst: &'static str,
    proto: &'static str,
    dport: u64,
    zones: (&'static str, &'static str),
    rule: &'static str,
) -> Planted {
    Planted {
        src,
        dst,
        proto,
        dport,
        src_zone: zones.0,
        dst_zone: zones.1,
        verdict: "allowed",
        rule: Some(rule),
        severity: None,
    }
}

const fn violation(
    src: &'static str,
    dst: &'static str,
    proto: &'static str,
    dport: u64,
    zones: (&'static str, &'static str),
    severity: &'static str,
) -> Planted {
    Planted {
        src,
        dst,
        proto,
        dport,
        src_zone: zones.0,
        dst_zone: zones.1,
        verdict: "violation",
        rule: None,
        severity: Some(severity),
    }
}

/// Ground truth: the traffic table of captures/README.md (zones.pcap, and
/// zones-vlan.pcap, which holds the same frames tagged).
const PLANTED_V4: [Planted; 12] = [
    // I1 (site override): internet-zone terminal -> security-cloud proxy.
    allowed(
        "192.0.2.130",
        "198.51.100.130",
        "tcp",
        8080,
        ("inet.term", "sec_cloud"),
        "I1",
    ),
    // L3 / L3u: LGWAN terminal -> screen-transfer server.
    allowed(
        "192.0.2.70",
        "192.0.2.161",
        "tcp",
        3389,
        ("lgwan.term", "inet.srv"),
        "L3",
    ),
    allowed(
        "192.0.2.70",
        "192.0.2.161",
        "udp",
        3389,
        ("lgwan.term", "inet.srv"),
        "L3u",
    ),
    // The file sanitiser -> the LGWAN mail server: L5 opens only the drop locations
    // (host group `file_drop`, 192.0.2.101), so "relay->*" = critical (issue #19).
    violation(
        "192.0.2.178",
        "192.0.2.100",
        "tcp",
        443,
        ("relay", "lgwan.srv"),
        "critical",
    ),
    // L4: mail text-ification gateway -> LGWAN mail.
    allowed(
        "192.0.2.177",
        "192.0.2.100",
        "tcp",
        25,
        ("relay", "lgwan.srv"),
        "L4",
    ),
    // I5: internet-zone mail server -> mail text-ification gateway.
    allowed(
        "192.0.2.165",
        "192.0.2.177",
        "tcp",
        25,
        ("inet.srv", "relay"),
        "I5",
    ),
    // "mynumber->*" = critical.
    violation(
        "192.0.2.10",
        "203.0.113.200",
        "tcp",
        80,
        ("mynumber.term", "internet"),
        "critical",
    ),
    // "lgwan->*" = critical (no "lgwan->internet" entry).
    violation(
        "192.0.2.70",
        "203.0.113.200",
        "tcp",
        80,
        ("lgwan.term", "internet"),
        "critical",
    ),
    // "inet->*" = critical: ICMP echo into the My Number zone.
    violation(
        "192.0.2.130",
        "192.0.2.34",
        "icmp",
        0,
        ("inet.term", "mynumber.srv"),
        "critical",
    ),
    // "lgwan->inet" = high: the screen-transfer pair on a port L3 does not open.
    violation(
        "192.0.2.70",
        "192.0.2.161",
        "tcp",
        80,
        ("lgwan.term", "inet.srv"),
        "high",
    ),
    // "inet->internet" = high: egress bypassing the proxy.
    violation(
        "192.0.2.130",
        "203.0.113.200",
        "tcp",
        80,
        ("inet.term", "internet"),
        "high",
    ),
    // "inet->sec_cloud" = medium: the proxy on a port I1 does not open.
    violation(
        "192.0.2.130",
        "198.51.100.130",
        "tcp",
        8081,
        ("inet.term", "sec_cloud"),
        "medium",
    ),
];

/// Ground truth: the traffic table of captures/README.md (zones-v6.pcap). The same
/// flows as PLANTED_V4 at the example site's IPv6 addresses, except A6: inet_mail
/// has no IPv6 address, so rule I5 is replaced by L5p (lgwan.term -> relay_file).
const PLANTED_V6: [Planted; 12] = [
    allowed(
        "2001:db8:0:310::130",
        "2001:db8:ffff:4::130",
        "tcp",
        8080,
        ("inet.term", "sec_cloud"),
        "I1",
    ),
    allowed(
        "2001:db8:0:210::70",
        "2001:db8:0:320::161",
        "tcp",
        3389,
        ("lgwan.term", "inet.srv"),
        "L3",
    ),
    allowed(
        "2001:db8:0:210::70",
        "2001:db8:0:320::161",
        "udp",
        3389,
        ("lgwan.term", "inet.srv"),
        "L3u",
    ),
    violation(
        "2001:db8:0:330::178",
        "2001:db8:0:220::100",
        "tcp",
        443,
        ("relay", "lgwan.srv"),
        "critical",
    ),
    allowed(
        "2001:db8:0:330::177",
        "2001:db8:0:220::100",
        "tcp",
        25,
        ("relay", "lgwan.srv"),
        "L4",
    ),
    // L5p: the LGWAN terminal pulls from the file sanitiser (stands in for I5).
    allowed(
        "2001:db8:0:210::70",
        "2001:db8:0:330::178",
        "tcp",
        443,
        ("lgwan.term", "relay"),
        "L5p",
    ),
    violation(
        "2001:db8:0:110::10",
        "2001:db8:ffff:20::200",
        "tcp",
        80,
        ("mynumber.term", "internet"),
        "critical",
    ),
    violation(
        "2001:db8:0:210::70",
        "2001:db8:ffff:20::200",
        "tcp",
        80,
        ("lgwan.term", "internet"),
        "critical",
    ),
    // ICMPv6 echo: zonewatch writes the protocol as "ipv6-icmp" and, as Community
    // ID does, the counterpart type (echo reply, 129) as the responder's port.
    violation(
        "2001:db8:0:310::130",
        "2001:db8:0:120::34",
        "ipv6-icmp",
        129,
        ("inet.term", "mynumber.srv"),
        "critical",
    ),
    violation(
        "2001:db8:0:210::70",
        "2001:db8:0:320::161",
        "tcp",
        80,
        ("lgwan.term", "inet.srv"),
        "high",
    ),
    violation(
        "2001:db8:0:310::130",
        "2001:db8:ffff:20::200",
        "tcp",
        80,
        ("inet.term", "internet"),
        "high",
    ),
    violation(
        "2001:db8:0:310::130",
        "2001:db8:ffff:4::130",
        "tcp",
        8081,
        ("inet.term", "sec_cloud"),
        "medium",
    ),
];

/// A bundled zone capture and what it must give.
struct Capture {
    file: &'static str,
    planted: &'static [Planted],
    /// The VLAN ids every flow line must carry (`"vlan"`; empty when untagged).
    vlan: &'static [u64],
}

const ZONES: Capture = Capture {
    file: "zones.pcap",
    planted: &PLANTED_V4,
    vlan: &[],
};

const ZONES_V6: Capture = Capture {
    file: "zones-v6.pcap",
    planted: &PLANTED_V6,
    vlan: &[],
};

/// zones.pcap with every frame tagged 802.1Q VLAN 900 (the example site's mgmt
/// VLAN). Every address is claimed by one zone's CIDR, so the tag decides no zone.
const ZONES_VLAN: Capture = Capture {
    file: "zones-vlan.pcap",
    planted: &PLANTED_V4,
    vlan: &[900],
};

fn s<'a>(f: &'a Map<String, Value>, k: &str) -> &'a str {
    f.get(k)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("flow has no string {k}: {f:?}"))
}

fn opt<'a>(f: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    match f.get(k) {
        Some(Value::Null) => None,
        Some(Value::String(v)) => Some(v),
        other => panic!("flow key {k} is {other:?}, want a string or null: {f:?}"),
    }
}

fn num(f: &Map<String, Value>, k: &str) -> u64 {
    f.get(k)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("flow has no integer {k}: {f:?}"))
}

type Key = (String, String, String, u64);

/// The key of a flow line (`dst_*`) or an alert line (EVE's `dest_*`).
fn key(f: &Map<String, Value>) -> Key {
    let (dst, dport) = if f.contains_key("dest_ip") {
        ("dest_ip", "dest_port")
    } else {
        ("dst_ip", "dst_port")
    };
    (
        s(f, "src_ip").to_string(),
        s(f, dst).to_string(),
        s(f, "proto").to_string(),
        num(f, dport),
    )
}

fn planted_key(p: &Planted) -> Key {
    (
        p.src.to_string(),
        p.dst.to_string(),
        p.proto.to_string(),
        p.dport,
    )
}

fn replay_with_rules(c: &Capture, workers: &str) -> util::Outputs {
    util::replay(
        &[&util::bundled(c.file)],
        &["--rules", RULES, "-w", workers],
    )
}

/// Every planted flow exactly once with its verdict, nothing else, the policy
/// summary agrees, every flow line carries the file's VLAN tags, and packet /
/// network / transport / VLAN counts agree with TShark.
fn check_planted_verdicts(c: &Capture) {
    let out = replay_with_rules(c, "4");
    let flows = util::parse_flows(&out.flows);
    let file = c.file;
    for p in c.planted {
        let want = planted_key(p);
        let hits: Vec<_> = flows.iter().filter(|f| key(f) == want).collect();
        assert_eq!(hits.len(), 1, "{file}: planted flow {want:?}: {hits:?}");
        let f = hits[0];
        assert_eq!(
            (
                opt(f, "src_zone"),
                opt(f, "dst_zone"),
                s(f, "verdict"),
                opt(f, "rule"),
                opt(f, "severity"),
            ),
            (
                Some(p.src_zone),
                Some(p.dst_zone),
                p.verdict,
                p.rule,
                p.severity
            ),
            "{file}: verdict of planted flow {want:?}"
        );
    }
    // The recording holds nothing else that makes a flow (ARP makes none; the
    // IPv6 recording has no NDP).
    let planted: BTreeSet<Key> = c.planted.iter().map(planted_key).collect();
    assert_eq!(planted.len(), c.planted.len(), "{file}: duplicate rows");
    let extra: Vec<_> = flows
        .iter()
        .filter(|f| !planted.contains(&key(f)))
        .collect();
    assert!(extra.is_empty(), "{file}: flows nobody planted: {extra:?}");
    assert_eq!(flows.len(), c.planted.len(), "{file}");

    for f in &flows {
        let vlan: Vec<u64> = match f.get("vlan") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_u64()
                        .unwrap_or_else(|| panic!("{file}: vlan id {v} is not an integer"))
                })
                .collect(),
            other => panic!("{file}: flow vlan is {other:?}, want an array: {f:?}"),
        };
        assert_eq!(vlan, c.vlan, "{file}: vlan of {f:?}");
    }

    let p = out
        .summary
        .get("policy")
        .unwrap_or_else(|| panic!("{file}: no policy section: {}", out.summary));
    let want = |v: &str| c.planted.iter().filter(|x| x.verdict == v).count() as u64;
    assert_eq!(p["flows"]["allowed"].as_u64(), Some(want("allowed")), "{p}");
    assert_eq!(
        p["flows"]["violation"].as_u64(),
        Some(want("violation")),
        "{file}: {p}"
    );
    assert_eq!(p["flows"]["unknown"].as_u64(), Some(0), "{file}: {p}");
    for sev in ["critical", "high", "medium", "low", "info"] {
        let n = c.planted.iter().filter(|x| x.severity == Some(sev)).count() as u64;
        assert_eq!(
            p["violations_by_severity"][sev].as_u64(),
            Some(n),
            "{file}: policy.violations_by_severity.{sev}: {p}"
        );
    }

    // Packet, network, transport and VLAN counts agree with TShark.
    let tshark = util::tshark_counts(&util::bundled(file));
    let problems = util::compare(file, &tshark, &util::summary_counts(&out.summary), &[]);
    assert!(problems.is_empty(), "{problems:#?}");
    let tagged = if c.vlan.is_empty() {
        0
    } else {
        tshark.get("packets")
    };
    assert_eq!(tshark.get("vlan_tagged"), tagged, "{file}: TShark's tags");
}

/// No reply forms a flow of its own, no pure responder is ever a flow's source,
/// and every planted connection (all but the one-datagram UDP flow) was answered.
fn check_responders(c: &Capture) {
    let out = replay_with_rules(c, "4");
    let flows = util::parse_flows(&out.flows);
    let file = c.file;
    assert!(!flows.is_empty(), "{file}: no flows");
    let initiators: BTreeSet<&str> = c.planted.iter().map(|p| p.src).collect();
    for f in &flows {
        let (src, dst) = (s(f, "src_ip"), s(f, "dst_ip"));
        for p in c.planted {
            // A reply judged on its own would run responder -> initiator.
            assert!(
                !(src == p.dst && dst == p.src),
                "{file}: a reply of {} -> {} formed its own flow: {f:?}",
                p.src,
                p.dst
            );
            // A host that only ever answers must never be a flow's source.
            if !initiators.contains(p.dst) {
                assert_ne!(
                    src, p.dst,
                    "{file}: responder {} is a flow's source: {f:?}",
                    p.dst
                );
            }
        }
        // Each planted connection was answered (the responder's packets are in the flow).
        if s(f, "proto") != "udp" {
            assert!(num(f, "resp_pkts") > 0, "{file}: unanswered flow: {f:?}");
        }
    }
}

/// 1 and 4 workers write the same flow lines.
fn check_workers_agree(c: &Capture) {
    let one = replay_with_rules(c, "1");
    let four = replay_with_rules(c, "4");
    assert_eq!(one.flows.len(), c.planted.len(), "{}", c.file);
    assert_eq!(
        util::sorted(&one.flows),
        util::sorted(&four.flows),
        "{}: 1 and 4 workers differ",
        c.file
    );
}

#[test]
fn planted_flows_get_the_example_sites_verdicts() {
    check_planted_verdicts(&ZONES);
}

#[test]
fn responders_never_start_a_flow_of_their_own() {
    check_responders(&ZONES);
}

#[test]
fn one_and_four_workers_write_the_same_lines() {
    check_workers_agree(&ZONES);
}

#[test]
fn v6_planted_flows_get_the_example_sites_verdicts() {
    check_planted_verdicts(&ZONES_V6);
}

#[test]
fn v6_responders_never_start_a_flow_of_their_own() {
    check_responders(&ZONES_V6);
}

#[test]
fn v6_one_and_four_workers_write_the_same_lines() {
    check_workers_agree(&ZONES_V6);
}

#[test]
fn vlan_planted_flows_get_the_example_sites_verdicts() {
    check_planted_verdicts(&ZONES_VLAN);
}

#[test]
fn vlan_responders_never_start_a_flow_of_their_own() {
    check_responders(&ZONES_VLAN);
}

#[test]
fn vlan_one_and_four_workers_write_the_same_lines() {
    check_workers_agree(&ZONES_VLAN);
}

/// The tag is the only difference: zones-vlan.pcap's flow lines are zones.pcap's
/// with `"vlan":[]` replaced by the tag and 4 more bytes per packet (byte counts
/// are frame lengths, and the tag is 4 bytes); zones, verdicts, packet counts,
/// ports, timestamps and Community IDs are the same.
#[test]
fn vlan_lines_are_the_untagged_lines_plus_the_tag() {
    let plain = replay_with_rules(&ZONES, "4");
    let tagged = replay_with_rules(&ZONES_VLAN, "4");
    let tag = Value::Array(ZONES_VLAN.vlan.iter().map(|&v| Value::from(v)).collect());
    let mut want: Vec<String> = util::parse_flows(&plain.flows)
        .into_iter()
        .map(|mut f| {
            assert_eq!(f.get("vlan"), Some(&Value::Array(Vec::new())), "{f:?}");
            f.insert("vlan".to_string(), tag.clone());
            // Answered flows carry the responder's tag too.
            let answered = num(&f, "resp_pkts") > 0;
            f.insert(
                "resp_vlan".to_string(),
                if answered {
                    tag.clone()
                } else {
                    Value::Array(vec![])
                },
            );
            for dir in ["orig", "resp"] {
                let grown = num(&f, &format!("{dir}_bytes")) + 4 * num(&f, &format!("{dir}_pkts"));
                f.insert(format!("{dir}_bytes"), Value::from(grown));
            }
            Value::Object(f).to_string()
        })
        .collect();
    want.sort();
    // Re-serialised the same way as `want`, so only the values matter.
    let mut got: Vec<String> = util::parse_flows(&tagged.flows)
        .into_iter()
        .map(|f| Value::Object(f).to_string())
        .collect();
    got.sort();
    assert_eq!(want.len(), PLANTED_V4.len());
    assert_eq!(got, want, "zones-vlan.pcap flows differ beyond the tag");
}

/// `replay --rules --alerts`: the parsed alert lines and the raw file.
fn replay_with_alerts(
    c: &Capture,
    workers: &str,
) -> (util::Outputs, Vec<Map<String, Value>>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    let p = path.to_str().expect("utf-8 temp path");
    let out = util::replay(
        &[&util::bundled(c.file)],
        &["--rules", RULES, "-w", workers, "--alerts", p],
    );
    let raw = std::fs::read_to_string(&path).expect("alerts file written");
    assert!(
        raw.is_empty() || raw.ends_with('\n'),
        "{}: last alert line unterminated",
        c.file
    );
    let lines: Vec<Map<String, Value>> = raw
        .lines()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => m,
            other => panic!(
                "{}: alert line is not a JSON object ({other:?}): {l}",
                c.file
            ),
        })
        .collect();
    // Each alert as it finally stands (an update line replaces its first).
    (out, util::finals(&lines), raw)
}

/// Ground truth of the alerts: every planted violation alerts exactly once
/// (count 1, its zones and severity, the flow's Community ID and start time,
/// the file's VLAN tags); allowed relay/proxy flows and every reply raise
/// nothing; the summary counts the same.
fn check_planted_alerts(c: &Capture) {
    let (out, alerts, _) = replay_with_alerts(c, "4");
    let flows: Vec<Map<String, Value>> = out
        .flows
        .iter()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => m,
            other => panic!("flow line is not an object ({other:?}): {l}"),
        })
        .collect();
    let violations: Vec<&Planted> = c
        .planted
        .iter()
        .filter(|p| p.verdict == "violation")
        .collect();
    assert!(
        !violations.is_empty(),
        "{}: ground truth has violations",
        c.file
    );
    let mut seen = BTreeSet::new();
    for a in &alerts {
        assert_eq!(s(a, "kind"), "separation_violation", "{a:?}");
        let k = key(a);
        let p = violations
            .iter()
            .find(|p| planted_key(p) == k)
            .unwrap_or_else(|| {
                panic!(
                    "{}: alert for a flow that is not a planted violation: {a:?}",
                    c.file
                )
            });
        assert!(seen.insert(k.clone()), "{}: second alert for {k:?}", c.file);
        assert_eq!(num(a, "count"), 1, "{a:?}");
        assert_eq!(s(a, "folded_by"), "flow", "{a:?}");
        assert_eq!(
            (s(a, "src_zone"), s(a, "dest_zone")),
            (p.src_zone, p.dst_zone),
            "{a:?}"
        );
        assert_eq!(Some(s(a, "severity")), p.severity, "{a:?}");
        assert!(
            s(a, "reason").contains(&format!("{} -> {}", p.src_zone, p.dst_zone)),
            "{a:?}"
        );
        assert!(!s(a, "rule").is_empty(), "{a:?}");
        let vlan: Vec<u64> = a["vlan"]
            .as_array()
            .expect("vlan array")
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert_eq!(vlan, c.vlan, "{a:?}");
        let flow = flows
            .iter()
            .find(|f| key(f) == k)
            .unwrap_or_else(|| panic!("{}: no flow line for alert {k:?}", c.file));
        assert_eq!(s(a, "community_id"), s(flow, "community_id"), "{a:?}");
        assert_eq!(s(a, "timestamp"), s(flow, "ts"), "{a:?}");
        assert_eq!(
            num(a, "src_port"),
            num(flow, "src_port"),
            "source = initiator: {a:?}"
        );
    }
    assert_eq!(
        seen.len(),
        violations.len(),
        "{}: every planted violation alerts once",
        c.file
    );
    assert_eq!(
        util::count(&out.summary, "alerts", "written"),
        violations.len() as u64
    );
    assert_eq!(
        util::count(&out.summary, "alerts", "violating_flows"),
        violations.len() as u64
    );
}

/// The alert file is byte-identical for 1 and 4 workers (order included).
fn check_alerts_workers_agree(c: &Capture) {
    let (_, _, one) = replay_with_alerts(c, "1");
    let (_, _, four) = replay_with_alerts(c, "4");
    assert!(!one.is_empty(), "{}: alerts expected", c.file);
    assert_eq!(
        one, four,
        "{}: 1 and 4 workers write different alerts",
        c.file
    );
}

#[test]
fn every_planted_violation_alerts_once() {
    check_planted_alerts(&ZONES);
}

#[test]
fn v6_every_planted_violation_alerts_once() {
    check_planted_alerts(&ZONES_V6);
}

#[test]
fn vlan_every_planted_violation_alerts_once() {
    check_planted_alerts(&ZONES_VLAN);
}

#[test]
fn alerts_are_identical_for_one_and_four_workers() {
    for c in [&ZONES, &ZONES_V6, &ZONES_VLAN] {
        check_alerts_workers_agree(c);
    }
}
