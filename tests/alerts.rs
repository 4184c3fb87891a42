//! Folding of `separation_violation` alerts on real scans across a zone
//! boundary (public captures, zones from tests/golden/scan-site.toml: each
//! scanner is a My Number terminal, its target on the internet).
//!
//! Facts from ../shared/captures/public/PROVENANCE.md:
//! - chrissanders_synscan: 172.16.0.8 -> 64.13.134.52, 1994 SYNs to 1000 distinct
//!   TCP ports in 23 s (most ports probed twice, from a new source port).
//! - esnet_masscan_tcp_0_1000: 172.31.15.102 -> 198.124.152.15, 1001 SYNs to ports
//!   0..1000, every frame 802.1Q-tagged, no replies.

use crate::util;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/scan-site.toml");
const SYNSCAN: &str = "a_scans/chrissanders_synscan.pcapng";
const MASSCAN: &str = "a_scans/esnet_masscan_tcp_0_1000.pcap";

struct Run {
    summary: Value,
    alerts: Vec<Map<String, Value>>,
    raw: String,
}

fn replay(capture: &str, workers: &str, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    let p = path.to_str().expect("utf-8 temp path");
    let mut args = vec!["--rules", RULES, "-w", workers, "--alerts", p];
    args.extend_from_slice(extra);
    let out = util::replay(&[&util::public(capture)], &args);
    let raw = std::fs::read_to_string(&path).expect("alerts written");
    // The scan itself is also reported (port_scan, tests/detect.rs); these
    // tests are about the separation alerts.
    let lines: Vec<Map<String, Value>> = raw
        .lines()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => m,
            other => panic!("alert line is not an object ({other:?}): {l}"),
        })
        .collect();
    // Each alert as it finally stands (an update line replaces its first line).
    let alerts = util::finals(&lines)
        .into_iter()
        .filter(|m| m.get("kind").and_then(Value::as_str) == Some("separation_violation"))
        .collect();
    Run {
        summary: out.summary,
        alerts,
        raw,
    }
}

fn n(a: &Map<String, Value>, k: &str) -> u64 {
    a.get(k)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("alert has no integer {k}: {a:?}"))
}

fn s<'a>(a: &'a Map<String, Value>, k: &str) -> &'a str {
    a.get(k)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("alert has no string {k}: {a:?}"))
}

fn total_count(r: &Run) -> u64 {
    r.alerts.iter().map(|a| n(a, "count")).sum()
}

#[test]
fn a_scan_across_the_boundary_folds_into_max_per_source_plus_one_alerts() {
    let r = replay(SYNSCAN, "2", &[]);
    let violating = util::count(&r.summary["policy"], "flows", "violation");
    assert_eq!(
        violating, 1994,
        "one flow per SYN (new source port each time)"
    );
    // Default cap 20 per source and window; the 23 s scan fits one 60 s window.
    assert_eq!(r.alerts.len(), 21, "{}", r.raw);
    assert_eq!(total_count(&r), violating, "no flow is lost by folding");
    let (by_flow, by_source): (Vec<_>, Vec<_>) =
        r.alerts.iter().partition(|a| s(a, "folded_by") == "flow");
    assert_eq!(by_source.len(), 1);
    let src = by_source[0];
    assert_eq!(n(src, "distinct_dst"), 1);
    // The 20 per-flow groups hold 20 ports (their repeats fold into them), the
    // per-source alert the other 980 of the 1000 ports.
    let ports: BTreeSet<u64> = by_flow.iter().map(|a| n(a, "dest_port")).collect();
    assert_eq!(ports.len(), 20);
    assert_eq!(n(src, "distinct_dst_port"), 1000 - 20);
    for a in &r.alerts {
        assert_eq!(
            (s(a, "src_ip"), s(a, "dest_ip"), s(a, "severity")),
            ("172.16.0.8", "64.13.134.52", "critical")
        );
        assert_eq!(
            (s(a, "src_zone"), s(a, "dest_zone"), s(a, "rule")),
            ("mynumber", "internet", "mynumber->*")
        );
    }
    assert_eq!(
        util::count(&r.summary, "alerts", "folded_by_source"),
        n(src, "count")
    );
    assert_eq!(
        util::count(&r.summary, "alerts", "folded_by_flow"),
        by_flow.iter().map(|a| n(a, "count") - 1).sum::<u64>()
    );
}

#[test]
fn without_the_source_cap_one_alert_per_port_and_repeats_fold() {
    let r = replay(SYNSCAN, "2", &["--alert-max-per-source", "0"]);
    assert_eq!(r.alerts.len(), 1000, "one per (src, dst, proto, port)");
    let ports: BTreeSet<u64> = r.alerts.iter().map(|a| n(a, "dest_port")).collect();
    assert_eq!(ports.len(), 1000);
    assert_eq!(total_count(&r), 1994);
    assert!(r.alerts.iter().all(|a| (1..=2).contains(&n(a, "count"))));
    // Window 0: no folding at all, one alert per violating flow.
    let r0 = replay(SYNSCAN, "2", &["--alert-window-secs", "0"]);
    assert_eq!(r0.alerts.len(), 1994);
    assert!(r0.alerts.iter().all(|a| n(a, "count") == 1));
}

#[test]
fn scan_alerts_are_byte_identical_for_one_and_four_workers() {
    for (capture, extra) in [
        (SYNSCAN, &[][..]),
        (SYNSCAN, &["--alert-max-per-source", "0"][..]),
        (MASSCAN, &["--alert-window-secs", "5"][..]),
    ] {
        let one = replay(capture, "1", extra);
        let four = replay(capture, "4", extra);
        assert!(!one.alerts.is_empty(), "{capture} {extra:?}");
        assert_eq!(
            one.raw, four.raw,
            "{capture} {extra:?}: 1 and 4 workers differ"
        );
    }
}

#[test]
fn masscan_alerts_carry_the_vlan_and_fold_per_window() {
    // 1001 probes over 10.05 s with a 5 s window: the scanner's window restarts
    // at most three times, each with at most 20 per-flow alerts and one
    // per-source alert; every port is probed once, so no flow group repeats.
    let r = replay(MASSCAN, "2", &["--alert-window-secs", "5"]);
    let violating = util::count(&r.summary["policy"], "flows", "violation");
    assert!(violating >= 1001, "{violating}");
    assert_eq!(total_count(&r), violating);
    let (by_flow, by_source): (Vec<_>, Vec<_>) =
        r.alerts.iter().partition(|a| s(a, "folded_by") == "flow");
    assert!((2..=3).contains(&by_source.len()), "{}", r.raw);
    assert!(by_flow.len() <= 20 * 3, "{}", r.raw);
    assert!(by_flow.iter().all(|a| n(a, "count") == 1), "{}", r.raw);
    for a in &r.alerts {
        let vlan = a["vlan"].as_array().expect("vlan array");
        assert_eq!(vlan.len(), 1, "every frame is tagged: {a:?}");
        assert_eq!(s(a, "dest_ip"), "198.124.152.15");
    }
}

/// A UDP flow from a My Number terminal to the internet, one packet every
/// 0.4 s for 10 s (Ethernet, IPv4, written with zonewatch's pcap writer).
fn long_violation(path: &std::path::Path, t0_ns: u64, packets: u64) {
    let mut f = Vec::new();
    zonewatch::evidence::pcap::write_header(&mut f, zonewatch::packet::LinkType::Ethernet)
        .expect("header");
    for k in 0..packets {
        let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        let ip_len: u16 = 20 + 8 + 8;
        frame.extend([
            0x45,
            0,
            (ip_len >> 8) as u8,
            ip_len as u8,
            0,
            1,
            0,
            0,
            64,
            17,
            0,
            0,
        ]);
        frame.extend([192, 0, 2, 10, 203, 0, 113, 200]);
        frame.extend([0x13, 0x88, 0x27, 0x0f, 0, 16, 0, 0]); // 5000 -> 9999, len 16
        frame.extend([0u8; 8]);
        let ts = t0_ns + k * 400_000_000;
        zonewatch::evidence::pcap::write_record(&mut f, ts, frame.len() as u32, &frame)
            .expect("record");
    }
    std::fs::write(path, f).expect("write pcap");
}

/// `first_seen` is the flow's first packet and `last_seen` its last one seen
/// before the line was written, to within the 2^30 ns bucket the flow table
/// reports activity in.
#[test]
fn a_long_violating_flow_alerts_with_its_first_and_last_seen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("long.pcap");
    let t0 = 1_795_660_000_000_000_000u64;
    long_violation(&pcap, t0, 26);
    let last = t0 + 25 * 400_000_000;
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/example-site.toml");
    for workers in ["1", "3"] {
        let r = util::replay_alerts(&[&pcap], &["--rules", rules, "-w", workers]);
        assert_eq!(r.alerts.len(), 1, "{:?}", r.alerts);
        let a = &r.alerts[0];
        assert_eq!(
            (s(a, "src_ip"), s(a, "dest_ip")),
            ("192.0.2.10", "203.0.113.200")
        );
        let t = |k: &str| -> u64 {
            let st = humantime::parse_rfc3339(s(a, k)).expect("rfc3339");
            st.duration_since(std::time::UNIX_EPOCH)
                .expect("epoch")
                .as_nanos() as u64
        };
        assert_eq!(t("first_seen"), t0);
        let seen = t("last_seen");
        assert!(
            seen <= last && last - seen < 1 << 30,
            "last_seen {} should be within 2^30 ns before the last packet {last}",
            seen
        );
        assert!(seen > t0 + 8_000_000_000, "{a:?}");
    }
}
