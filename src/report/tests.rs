//! Unit tests: zone-pair accounting from flow records and their tags, the
//! talker caps, merging workers, gap and backward-time detection, verdict
//! names of matrix entries, and both human renderings.

use super::*;
use crate::flow::tally::{merge_pairs, Gap};
use crate::flow::{EndReason, FlowRecord, TcpState};
use crate::packet::FlowKey;
use crate::policy::{Policy, POLICY_GENERATIONS};
use std::net::IpAddr;
use std::sync::Arc;

const EXAMPLE: &str = include_str!("../../rules/example-site.toml");

fn policy() -> Arc<Policy> {
    match Policy::from_source("site.toml", EXAMPLE) {
        Ok((p, _)) => Arc::new(p),
        Err(e) => panic!("example rules: {e}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// A finished TCP flow src → dst:port judged by `p` (tag 0 without it).
fn rec(p: Option<&Policy>, src: &str, dst: &str, port: u16, bytes: u64) -> FlowRecord {
    let key = FlowKey::new(6, ip(src), 40000, ip(dst), port);
    let tag = p.map_or(0, |p| {
        p.verdict(key.src_ip(), key.dst_ip(), 6, port, None).pack()
    });
    FlowRecord {
        key,
        first_ns: 1_000_000_000,
        last_ns: 2_000_000_000,
        orig_pkts: 3,
        orig_bytes: bytes,
        resp_pkts: 2,
        resp_bytes: 100,
        tcp_state: TcpState::Closed,
        tcp_flags_orig: 0,
        tcp_flags_resp: 0,
        midstream: false,
        icmp_errors: 0,
        tag,
        end: EndReason::Fin,
        resp_vlan: [0; 2],
    }
}

fn gens(p: &Arc<Policy>) -> [Option<Arc<Policy>>; POLICY_GENERATIONS] {
    std::array::from_fn(|i| if i == 0 { Some(p.clone()) } else { None })
}

#[test]
fn flows_land_in_their_zone_pair_with_verdict_counts_and_talkers() {
    let p = policy();
    let mut acc = ZoneAcc::new();
    // mynumber.term → internet: a critical violation (twice, two initiators).
    acc.flow_ended(
        &rec(Some(&p), "192.0.2.10", "203.0.113.80", 443, 1000),
        Some(&p),
    );
    acc.flow_ended(
        &rec(Some(&p), "192.0.2.11", "203.0.113.80", 443, 5000),
        Some(&p),
    );
    acc.flow_ended(
        &rec(Some(&p), "192.0.2.11", "203.0.113.81", 443, 5000),
        Some(&p),
    );
    let pairs = acc.finish(&gens(&p));
    let pair = pairs
        .get(&("mynumber.term".to_string(), "internet".to_string()))
        .unwrap_or_else(|| panic!("no mynumber.term -> internet pair: {:?}", pairs.keys()));
    assert_eq!(
        pair.traffic,
        Traffic {
            flows: 3,
            packets: 15,
            bytes: 11000 + 300
        }
    );
    assert_eq!(
        (
            pair.verdicts.allowed,
            pair.verdicts.violation,
            pair.verdicts.unknown
        ),
        (0, 3, 0)
    );
    assert_eq!(
        pair.verdicts.violations_by_severity[crate::policy::Severity::Critical as usize],
        3
    );
    let top = pair.top(5);
    assert_eq!(top.len(), 2);
    assert_eq!(top[0].0, ip("192.0.2.11"));
    assert_eq!((top[0].1.flows, top[0].1.bytes), (2, 10200));
    let e = MatrixEntry::new("mynumber.term", "internet", pair);
    assert_eq!((e.verdict, e.max_severity), ("violation", Some("critical")));
}

#[test]
fn without_rules_every_flow_is_in_the_no_zone_pair() {
    let mut acc = ZoneAcc::new();
    acc.flow_ended(&rec(None, "192.0.2.10", "203.0.113.80", 443, 1000), None);
    let pairs = acc.finish(&std::array::from_fn(|_| None));
    let key = (NO_ZONE.to_string(), NO_ZONE.to_string());
    assert_eq!(pairs.len(), 1);
    let pair = &pairs[&key];
    assert_eq!(pair.traffic.flows, 1);
    assert_eq!(
        (
            pair.verdicts.allowed,
            pair.verdicts.violation,
            pair.verdicts.unknown
        ),
        (0, 0, 0)
    );
}

#[test]
fn talkers_are_capped_per_pair_and_the_rest_counted_as_untracked() {
    let mut acc = ZoneAcc::new();
    let n = MAX_TALKERS_PER_PAIR as u32 + 10;
    for i in 0..n {
        // Spoofed sources from 198.51.100.0/24 upward (distinct addresses).
        let a = std::net::Ipv4Addr::from(0xc633_6400u32.wrapping_add(i));
        let mut r = rec(None, "192.0.2.1", "203.0.113.1", 80, 60);
        r.key = FlowKey::new(6, IpAddr::V4(a), 1, ip("203.0.113.1"), 80);
        acc.flow_ended(&r, None);
    }
    let pairs = acc.finish(&std::array::from_fn(|_| None));
    let pair = &pairs[&(NO_ZONE.to_string(), NO_ZONE.to_string())];
    assert_eq!(pair.talkers.len(), MAX_TALKERS_PER_PAIR);
    assert_eq!(pair.untracked.flows, 10);
    assert_eq!(pair.traffic.flows, u64::from(n));
    let data = ReportData { pairs, gaps: None };
    let s = summary_for_tests();
    let r = Report::new(&s, &data, None);
    assert!(!r.top_talkers[0].complete);
    assert_eq!(r.top_talkers[0].untracked.flows, 10);
    assert_eq!(r.top_talkers[0].top.len(), TOP_TALKERS);
}

#[test]
fn workers_merge_by_zone_ids_and_sum_the_same_initiator() {
    let p = policy();
    let mut a = ZoneAcc::new();
    let mut b = ZoneAcc::new();
    a.flow_ended(
        &rec(Some(&p), "192.0.2.10", "203.0.113.80", 443, 1000),
        Some(&p),
    );
    b.flow_ended(
        &rec(Some(&p), "192.0.2.10", "203.0.113.90", 443, 2000),
        Some(&p),
    );
    let merged = merge_pairs(vec![a.finish(&gens(&p)), b.finish(&gens(&p))]);
    let pair = &merged[&("mynumber.term".to_string(), "internet".to_string())];
    assert_eq!(pair.traffic.flows, 2);
    assert_eq!(pair.talkers.len(), 1);
    assert_eq!(pair.talker(ip("192.0.2.10")).map(|t| t.bytes), Some(3200));
}

#[test]
fn a_reused_policy_slot_keeps_the_names_of_the_policy_that_judged() {
    let p = policy();
    let mut acc = ZoneAcc::new();
    acc.flow_ended(
        &rec(Some(&p), "192.0.2.10", "203.0.113.80", 443, 1000),
        Some(&p),
    );
    // The slot is about to get another policy: resolve with the old one.
    acc.resolve_slot(0, Some(&p));
    let pairs = acc.finish(&std::array::from_fn(|_| None));
    assert!(pairs.contains_key(&("mynumber.term".to_string(), "internet".to_string())));
}

#[test]
fn gaps_over_the_threshold_are_listed_and_backward_steps_counted() {
    let s = 1_000_000_000u64;
    let mut g = GapTracker::new(60 * s);
    for t in [100, 110, 105, 200, 200, 260, 400] {
        g.see(t * s);
    }
    // 110 → 200 (90 s) and 260 → 400 (140 s); 200 → 260 is exactly 60 s: not a gap.
    assert_eq!(g.count, 2);
    assert_eq!(
        g.gaps,
        vec![
            Gap {
                from_ns: 110 * s,
                to_ns: 200 * s
            },
            Gap {
                from_ns: 260 * s,
                to_ns: 400 * s
            }
        ]
    );
    assert_eq!(g.backwards, 1, "105 after 110");
}

#[test]
fn only_the_first_gaps_are_listed_but_all_are_counted() {
    let s = 1_000_000_000u64;
    let mut g = GapTracker::new(s);
    for t in 0..100u64 {
        g.see(t * 10 * s);
    }
    assert_eq!(g.count, 99);
    assert_eq!(g.gaps.len(), MAX_GAPS_LISTED);
    assert_eq!(
        g.gaps.capacity(),
        MAX_GAPS_LISTED,
        "no growth past the list"
    );
}

#[test]
fn matrix_verdicts_name_mixed_and_unknown_pairs() {
    let mut p = PairAcc::default();
    p.verdicts.allowed = 2;
    assert_eq!(MatrixEntry::new("a", "b", &p).verdict, "allowed");
    p.verdicts.violation = 1;
    p.verdicts.violations_by_severity[crate::policy::Severity::Low as usize] = 1;
    let e = MatrixEntry::new("a", "b", &p);
    assert_eq!((e.verdict, e.max_severity), ("mixed", Some("low")));
    let mut u = PairAcc::default();
    u.verdicts.unknown = 3;
    assert_eq!(MatrixEntry::new("a", "-", &u).verdict, "unknown");
}

/// A summary with fixed numbers (as `Summary::from_report` would make).
fn summary_for_tests() -> crate::summary::Summary {
    crate::summary::Summary {
        zonewatch_version: "0",
        mode: "replay",
        stopped_by: "end_of_input",
        packets: 10,
        bytes: 1000,
        wire_bytes: 1000,
        first_packet: Some("2024-01-01T00:00:00.000000Z".into()),
        last_packet: Some("2024-01-01T00:02:00.000000Z".into()),
        duration_secs: 120.0,
        clock_steps: crate::summary::ClockStepsSummary {
            count: 1,
            listed: vec![crate::summary::ClockStepSummary {
                frame: 7,
                at: "2024-01-01T00:01:00.000000Z".into(),
                back_secs: 45.0,
            }],
        },
        elapsed_secs: 0.5,
        sources: vec![crate::capture::InputReport {
            name: "cut.pcap".into(),
            format: "pcap".into(),
            link_types: vec!["ethernet".into()],
            frames: 10,
            bytes: 1000,
            stopped_early: Some("file cut short: 7 bytes of a record at offset 99".into()),
            ..Default::default()
        }],
        link: Default::default(),
        network: Default::default(),
        transport: Default::default(),
        fragments: Default::default(),
        vlan_tagged: 0,
        vlan_stacked: 0,
        tunnels: Default::default(),
        tunnel_links: Default::default(),
        icmp_errors: 0,
        decode_failures: [("ipv4_truncated", 2)].into_iter().collect(),
        flows: Default::default(),
        drops: Default::default(),
        drops_per_worker: vec![0],
        workers: 1,
        policy: None,
        alerts: None,
    }
}

#[test]
fn anomalies_are_reported_and_rendered_in_both_languages() {
    let s = 1_000_000_000u64;
    let mut g = GapTracker::new(60 * s);
    g.see(1_704_067_200 * s);
    g.see(1_704_067_320 * s);
    let data = ReportData {
        pairs: Default::default(),
        gaps: Some(g),
    };
    let sum = summary_for_tests();
    let r = Report::new(&sum, &data, None);
    assert!(r.has_anomalies());
    assert_eq!(r.anomalies.stopped_early.len(), 1);
    assert_eq!(r.anomalies.gaps.count, 1);
    assert_eq!(r.anomalies.gaps.listed[0].secs, 120.0);
    assert_eq!(
        r.anomalies.gaps.listed[0].from,
        "2024-01-01T00:00:00.000000Z"
    );
    assert_eq!(r.anomalies.decode_failures["ipv4_truncated"], 2);
    assert!(!r.zone_matrix.rules && r.zone_matrix.pairs.is_empty());

    let en = render(&sum, &r, Lang::En);
    assert!(
        en.starts_with(&sum.to_human()),
        "English keeps the summary lines"
    );
    assert!(en.contains("zone matrix    none (no --rules)"), "{en}");
    assert!(
        en.contains("cut.pcap stopped early: file cut short"),
        "{en}"
    );
    assert!(en.contains("1 gap over 60 s without packets"), "{en}");
    assert!(
        en.contains("clock steps    1 (input time went back; later packets shifted forward by the step): frame 7 back 45.000 s at 2024-01-01T00:01:00.000000Z"),
        "{en}"
    );

    let ja = render(&sum, &r, Lang::Ja);
    assert!(ja.starts_with("zonewatch リプレイ：10 パケット"), "{ja}");
    assert!(
        ja.contains("ゾーン間の通信：なし（--rules の指定なし）"),
        "{ja}"
    );
    assert!(
        ja.contains("cut.pcap は途中で終わっています：file cut short"),
        "{ja}"
    );
    assert!(
        ja.contains("60 秒を超えてパケットのない時間帯：1 か所"),
        "{ja}"
    );
    assert!(ja.contains("（120.000 秒）"), "{ja}");
    assert!(
        ja.contains("時刻の巻き戻り：1 回。以降のパケットは巻き戻った分だけ後ろの時刻として処理しました：7 番目のパケットで 45.000 秒"),
        "{ja}"
    );
    assert!(!ja.contains("packets"), "no English words left: {ja}");
}

#[test]
fn report_json_has_the_documented_top_level_keys() {
    let sum = summary_for_tests();
    let r = Report::new(&sum, &ReportData::default(), None);
    let v = serde_json::to_value(&r).expect("serialise");
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "zonewatch_version",
        "mode",
        "stopped_by",
        "inputs",
        "time",
        "totals",
        "zone_matrix",
        "zone_names",
        "top_talkers",
        "alerts",
        "anomalies",
    ] {
        assert!(keys.contains(&k), "{k} missing: {keys:?}");
    }
    assert_eq!(v["totals"]["packets"], 10);
    assert_eq!(v["zone_matrix"]["no_zone"], "-");
}

#[test]
fn top_talkers_are_ordered_by_bytes_then_flows_then_address_in_both_families() {
    let mut acc = ZoneAcc::new();
    let flows = [
        ("2001:db8::9", 500u64),
        ("192.0.2.7", 900),
        ("192.0.2.3", 100),
        ("192.0.2.2", 100),
        ("2001:db8::1", 2000),
        ("198.51.100.1", 50),
        ("203.0.113.9", 10),
    ];
    for (src, bytes) in flows {
        let dst = if src.contains(':') {
            "2001:db8::ff"
        } else {
            "203.0.113.1"
        };
        acc.flow_ended(&rec(None, src, dst, 80, bytes), None);
    }
    let pairs = acc.finish(&std::array::from_fn(|_| None));
    let pair = &pairs[&(NO_ZONE.to_string(), NO_ZONE.to_string())];
    let top: Vec<String> = pair.top(5).iter().map(|(a, _)| a.to_string()).collect();
    assert_eq!(
        top,
        [
            "2001:db8::1",
            "192.0.2.7",
            "2001:db8::9",
            "192.0.2.2",
            "192.0.2.3"
        ]
    );
    assert_eq!(pair.top(2).len(), 2);
    assert_eq!(pair.top(50).len(), flows.len());
}
