//! captures/zones.pcap (captures/README.md, recorded by captures/record-zones.sh)
//! replayed with the example site's rules: every planted flow gets the verdict the
//! site's rules give it, judged once from its initiator, whatever the worker count.

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

/// Ground truth: the traffic table of captures/README.md (zones.pcap).
const PLANTED: [Planted; 12] = [
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
    // L5: file sanitiser -> LGWAN server.
    allowed(
        "192.0.2.178",
        "192.0.2.100",
        "tcp",
        443,
        ("relay", "lgwan.srv"),
        "L5",
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

fn key(f: &Map<String, Value>) -> (String, String, String, u64) {
    (
        s(f, "src_ip").to_string(),
        s(f, "dst_ip").to_string(),
        s(f, "proto").to_string(),
        num(f, "dst_port"),
    )
}

fn zones_with_rules(workers: &str) -> util::Outputs {
    util::replay(
        &[&util::bundled("zones.pcap")],
        &["--rules", RULES, "-w", workers],
    )
}

#[test]
fn planted_flows_get_the_example_sites_verdicts() {
    let out = zones_with_rules("4");
    let flows = util::parse_flows(&out.flows);
    for p in &PLANTED {
        let want = (
            p.src.to_string(),
            p.dst.to_string(),
            p.proto.to_string(),
            p.dport,
        );
        let hits: Vec<_> = flows.iter().filter(|f| key(f) == want).collect();
        assert_eq!(hits.len(), 1, "planted flow {want:?}: {hits:?}");
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
            "verdict of planted flow {want:?}"
        );
    }
    // The recording holds nothing else that makes a flow (ARP makes none).
    let planted: BTreeSet<_> = PLANTED
        .iter()
        .map(|p| {
            (
                p.src.to_string(),
                p.dst.to_string(),
                p.proto.to_string(),
                p.dport,
            )
        })
        .collect();
    let extra: Vec<_> = flows
        .iter()
        .filter(|f| !planted.contains(&key(f)))
        .collect();
    assert!(extra.is_empty(), "flows nobody planted: {extra:?}");
    assert_eq!(flows.len(), PLANTED.len());

    let p = out
        .summary
        .get("policy")
        .unwrap_or_else(|| panic!("no policy section: {}", out.summary));
    let want = |v: &str| PLANTED.iter().filter(|x| x.verdict == v).count() as u64;
    assert_eq!(p["flows"]["allowed"].as_u64(), Some(want("allowed")), "{p}");
    assert_eq!(
        p["flows"]["violation"].as_u64(),
        Some(want("violation")),
        "{p}"
    );
    assert_eq!(p["flows"]["unknown"].as_u64(), Some(0), "{p}");
    for sev in ["critical", "high", "medium", "low", "info"] {
        let n = PLANTED.iter().filter(|x| x.severity == Some(sev)).count() as u64;
        assert_eq!(
            p["violations_by_severity"][sev].as_u64(),
            Some(n),
            "policy.violations_by_severity.{sev}: {p}"
        );
    }

    // Packet, network and transport counts agree with TShark.
    let problems = util::compare(
        "zones.pcap",
        &util::tshark_counts(&util::bundled("zones.pcap")),
        &util::summary_counts(&out.summary),
        &[],
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn responders_never_start_a_flow_of_their_own() {
    let out = zones_with_rules("4");
    let flows = util::parse_flows(&out.flows);
    let initiators: BTreeSet<&str> = PLANTED.iter().map(|p| p.src).collect();
    for f in &flows {
        let (src, dst) = (s(f, "src_ip"), s(f, "dst_ip"));
        for p in &PLANTED {
            // A reply judged on its own would run responder -> initiator.
            assert!(
                !(src == p.dst && dst == p.src),
                "a reply of {} -> {} formed its own flow: {f:?}",
                p.src,
                p.dst
            );
            // A host that only ever answers must never be a flow's source.
            if !initiators.contains(p.dst) {
                assert_ne!(src, p.dst, "responder {} is a flow's source: {f:?}", p.dst);
            }
        }
    }
    // Each planted connection was answered (the responder's packets are in the flow).
    for f in &flows {
        if s(f, "proto") != "udp" {
            assert!(num(f, "resp_pkts") > 0, "unanswered flow: {f:?}");
        }
    }
}

#[test]
fn one_and_four_workers_write_the_same_lines() {
    let one = zones_with_rules("1");
    let four = zones_with_rules("4");
    assert_eq!(one.flows.len(), PLANTED.len());
    assert_eq!(util::sorted(&one.flows), util::sorted(&four.flows));
}
