//! Folding: repeats fold within the window, the per-source cap stops a scan's
//! alert storm, bounded open groups, and the same alerts in the same order
//! whatever the worker count and arrival order.

use super::fold::{FoldConfig, Folder};
use super::*;
use crate::packet::{proto, FlowKey};
use crate::policy::Policy;

const EXAMPLE: &str = include_str!("../../rules/example-site.toml");
const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;

fn policy() -> Arc<Policy> {
    Arc::new(
        Policy::from_source("site.toml", EXAMPLE)
            .expect("example site")
            .0,
    )
}

fn key(src: &str, dst: &str, sport: u16, dport: u16) -> FlowKey {
    let ip = |s: &str| s.parse::<IpAddr>().expect("test address");
    FlowKey::new(proto::TCP, ip(src), sport, ip(dst), dport)
}

fn event(p: &Arc<Policy>, ts_ns: u64, k: FlowKey) -> Event {
    let verdict = p.verdict(k.src_ip(), k.dst_ip(), k.proto, k.dport, None);
    Event {
        source: 0,
        ts_ns,
        key: k,
        verdict,
        policy: p.clone(),
    }
}

fn cfg(window_s: u64, per_source: u32) -> FoldConfig {
    FoldConfig {
        window_ns: window_s * S,
        max_per_source: per_source,
        ..FoldConfig::default()
    }
}

/// Feed `events` (worker index, event) in the given order, each followed by
/// its worker's watermark at the event time, then finish: every line the
/// folder writes (first lines, updates, silent close markers), with its time.
fn run_lines(
    c: FoldConfig,
    workers: usize,
    events: &[(usize, Event)],
) -> (Vec<(u64, Alert)>, AlertStats) {
    let mut f = Folder::new(c, workers);
    let mut out = Vec::new();
    for (w, e) in events {
        let ts = e.ts_ns;
        f.push(*w, e.clone());
        f.watermark(*w, ts);
        out.extend(f.drain_timed());
    }
    f.finish();
    out.extend(f.drain_timed());
    (out, f.stats().clone())
}

/// Each alert as it finally stands: its first line, replaced by its update
/// line when one was written (silent markers dropped), in first-line order.
fn finals(lines: Vec<(u64, Alert)>) -> Vec<Alert> {
    let mut out: Vec<Alert> = Vec::new();
    let mut at = std::collections::HashMap::new();
    for (_, a) in lines {
        let slot = a.evidence_slot.expect("fold lines name their group");
        if a.update == 0 {
            assert!(
                at.insert(slot, out.len()).is_none(),
                "one first line per group"
            );
            out.push(a);
        } else {
            let i = at.remove(&slot).expect("an update follows its first line");
            if !a.silent {
                out[i] = a;
            }
        }
    }
    assert!(at.is_empty(), "every group closed: {at:?}");
    out
}

fn run(c: FoldConfig, workers: usize, events: &[(usize, Event)]) -> (Vec<Alert>, AlertStats) {
    let (lines, stats) = run_lines(c, workers, events);
    (finals(lines), stats)
}

/// Issue #12 point 3: a group's first line is written at its first flow's
/// release (count 1), not when its window closes; the window's end writes an
/// update line with the final count and last_seen, and a group nothing was
/// added to closes with a silent marker only.
#[test]
fn first_line_at_the_first_flow_update_at_the_windows_end() {
    let p = policy();
    let evs: Vec<_> = (0..3u64)
        .map(|i| {
            let k = key("192.0.2.10", "203.0.113.200", 40000 + i as u16, 443);
            (0, event(&p, T0 + i * 10 * S, k))
        })
        .chain([(
            0,
            event(
                &p,
                T0 + 15 * S,
                key("192.0.2.10", "203.0.113.201", 40100, 22),
            ),
        )])
        .collect();
    let (lines, stats) = run_lines(cfg(60, 20), 1, &evs);
    let seen: Vec<(u64, u32, u64, bool, Option<u16>)> = lines
        .iter()
        .map(|(at, a)| (*at, a.update, a.count, a.silent, a.dst_port))
        .collect();
    assert_eq!(
        seen,
        [
            (T0, 0, 1, false, Some(443)),
            (T0 + 15 * S, 0, 1, false, Some(22)),
            (T0 + 60 * S, 1, 3, false, Some(443)),
            (T0 + 75 * S, 1, 1, true, Some(22)),
        ]
    );
    assert_eq!(lines[2].1.last_seen, T0 + 20 * S);
    assert_eq!(lines[0].1.evidence_slot, lines[2].1.evidence_slot);
    assert_eq!((stats.alerts, stats.updates), (2, 1));
}

#[test]
fn repeats_fold_within_the_window_and_reopen_after_it() {
    let p = policy();
    // mynumber.term -> internet, tcp/443: critical ("mynumber->*").
    let evs: Vec<_> = (0..5u64)
        .map(|i| {
            (
                0,
                event(
                    &p,
                    T0 + i * 10 * S,
                    key("192.0.2.10", "203.0.113.200", 40000 + i as u16, 443),
                ),
            )
        })
        .chain([(
            0,
            event(
                &p,
                T0 + 70 * S,
                key("192.0.2.10", "203.0.113.200", 41000, 443),
            ),
        )])
        .collect();
    let (alerts, stats) = run(cfg(60, 20), 1, &evs);
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(
        (a.kind, a.severity.as_str(), a.count),
        (SEPARATION_VIOLATION, "critical", 5)
    );
    assert_eq!(
        a.src_ip.map(|i| i.to_string()).as_deref(),
        Some("192.0.2.10")
    );
    assert_eq!(
        (
            a.src_port,
            a.dst_port,
            a.proto.map(|p| p.to_string()).as_deref()
        ),
        (Some(40000), Some(443), Some("tcp"))
    );
    assert_eq!(a.src_zone.as_deref(), Some("mynumber.term"));
    assert_eq!(a.dst_zone.as_deref(), Some("internet"));
    assert_eq!(a.rule, "mynumber->*");
    assert!(
        a.reason.contains("mynumber.term -> internet"),
        "{}",
        a.reason
    );
    assert_eq!(a.timestamp, T0);
    assert_eq!((a.first_seen, a.last_seen), (T0, T0 + 40 * S));
    assert_eq!(a.community_id, Some(community_id(&evs[0].1.key)));
    assert_eq!(a.folded_by, Some("flow"));
    assert_eq!((alerts[1].count, alerts[1].src_port), (1, Some(41000)));
    assert_eq!(stats.violating_flows, 6);
    assert_eq!(stats.folded_by_flow, 4);
    assert_eq!(stats.alerts, 2);
    assert_eq!(stats.by_severity[Severity::Critical as usize], 2);
}

#[test]
fn allowed_flows_never_alert_and_window_zero_alerts_every_flow() {
    let p = policy();
    // I1: inet.term -> security cloud proxy is allowed; pushing it is ignored.
    let allowed = event(&p, T0, key("192.0.2.130", "198.51.100.130", 40000, 8080));
    assert!(
        matches!(allowed.verdict, Verdict::Allowed { .. }),
        "{:?}",
        allowed.verdict
    );
    let v = |i: u64| {
        (
            0,
            event(
                &p,
                T0 + i * S,
                key("192.0.2.10", "203.0.113.200", 40000 + i as u16, 443),
            ),
        )
    };
    let (alerts, stats) = run(cfg(0, 20), 1, &[(0, allowed), v(0), v(1), v(2)]);
    assert_eq!(
        alerts.iter().map(|a| a.count).collect::<Vec<_>>(),
        [1, 1, 1]
    );
    assert_eq!(stats.violating_flows, 3);
}

#[test]
fn a_scan_across_the_boundary_folds_by_source() {
    let p = policy();
    // One lgwan terminal tries 300 internet hosts on 2 ports within 30 s.
    let mut evs = Vec::new();
    for i in 0..300u64 {
        let dst = format!("203.0.113.{}", 64 + (i % 150));
        let port = if i < 150 { 80 } else { 443 };
        evs.push((
            0,
            event(
                &p,
                T0 + i * 100_000_000,
                key("192.0.2.70", &dst, 50000 + i as u16, port),
            ),
        ));
    }
    let (alerts, stats) = run(cfg(60, 20), 1, &evs);
    assert_eq!(alerts.len(), 21, "20 groups, then one per-source alert");
    let by_source: Vec<_> = alerts
        .iter()
        .filter(|a| a.folded_by == Some("source"))
        .collect();
    assert_eq!(by_source.len(), 1);
    let s = by_source[0];
    assert_eq!(s.count, 280);
    assert_eq!((s.distinct_dst, s.distinct_dst_port), (Some(150), Some(2)));
    assert_eq!(s.src_zone.as_deref(), Some("lgwan.term"));
    assert_eq!(stats.folded_by_source, 280);
    assert!(alerts
        .iter()
        .filter(|a| a.folded_by == Some("flow"))
        .all(|a| a.count == 1 && a.distinct_dst.is_none()));
}

#[test]
fn open_groups_are_bounded() {
    let p = policy();
    let evs: Vec<_> = (0..50u64)
        .map(|i| {
            (
                0,
                event(
                    &p,
                    T0 + i,
                    key(
                        &format!("192.0.2.{}", i % 30),
                        "203.0.113.200",
                        1000,
                        1 + i as u16,
                    ),
                ),
            )
        })
        .collect();
    let c = FoldConfig {
        max_open: 10,
        max_per_source: 0,
        ..cfg(60, 0)
    };
    let (alerts, stats) = run(c, 1, &evs);
    assert_eq!(alerts.len(), 50, "nothing lost");
    assert_eq!(stats.closed_early, 40);
}

#[test]
fn same_alerts_in_the_same_order_whatever_the_workers_and_arrival() {
    let p = policy();
    // A mix: repeats (different source ports: different workers), scans, two sources.
    let mut all = Vec::new();
    for i in 0..400u64 {
        let src = if i % 3 == 0 {
            "192.0.2.10"
        } else {
            "192.0.2.70"
        };
        let dst = format!("203.0.113.{}", 64 + (i * 7 % 40));
        let ts = T0 + i * 250_000_000 + (i % 5);
        all.push(event(
            &p,
            ts,
            key(src, &dst, 30000 + i as u16, 443 + (i % 3) as u16),
        ));
    }
    let one: Vec<_> = all.iter().map(|e| (0, e.clone())).collect();
    let (expect, _) = run(cfg(30, 8), 1, &one);
    assert!(expect.len() > 10);
    for workers in [2usize, 4] {
        // Each flow goes to a worker by its source port; each worker's stream is
        // in order, the streams interleave: worker w lags behind by w batches.
        let mut streams: Vec<Vec<Event>> = vec![Vec::new(); workers];
        for e in &all {
            streams[usize::from(e.key.sport) % workers].push(e.clone());
        }
        let mut f = Folder::new(cfg(30, 8), workers);
        let mut got = Vec::new();
        let mut pos = vec![0usize; workers];
        let mut round = 0;
        while pos.iter().zip(&streams).any(|(p, s)| *p < s.len()) {
            for w in 0..workers {
                let take = 1 + (round + w * 3) % 7;
                for _ in 0..take {
                    if let Some(e) = streams[w].get(pos[w]) {
                        f.push(w, e.clone());
                        f.watermark(w, e.ts_ns);
                        pos[w] += 1;
                    }
                }
                got.extend(f.drain_timed());
            }
            round += 1;
        }
        for w in 0..workers {
            f.watermark(w, u64::MAX);
        }
        f.finish();
        got.extend(f.drain_timed());
        assert!(finals(got) == expect, "{workers} workers");
        assert_eq!(f.stats().late, 0);
    }
}

#[test]
fn json_line_has_the_documented_keys() {
    let p = policy();
    let (alerts, _) = run(
        cfg(60, 20),
        1,
        &[(
            0,
            event(
                &p,
                T0,
                key("2001:db8:0:110::5", "2001:db8:ffff:20::9", 1234, 22),
            ),
        )],
    );
    // The line as the `--alerts` sink writes it (`crate::sink::JsonLines`,
    // tested there).
    let line = format!("{}\n", serde_json::to_string(&alerts[0]).expect("json"));
    assert!(line.ends_with("}\n"));
    let v: serde_json::Value = serde_json::from_str(&line).expect("json");
    for k in [
        "timestamp",
        "kind",
        "severity",
        "src_ip",
        "src_port",
        "dest_ip",
        "dest_port",
        "proto",
        "vlan",
        "src_zone",
        "dest_zone",
        "rule",
        "reason",
        "community_id",
        "count",
        "first_seen",
        "last_seen",
        "folded_by",
    ] {
        assert!(v.get(k).is_some(), "{k} missing in {line}");
    }
    assert_eq!(v["src_ip"], "2001:db8:0:110::5");
    assert_eq!(v["vlan"], serde_json::json!([]));
    assert!(v.get("distinct_dst").is_none());
}

#[test]
fn out_of_order_within_the_slack_is_put_back_in_order_and_later_counts_late() {
    let p = policy();
    let evs: Vec<Event> = (0..40u64)
        .map(|i| {
            event(
                &p,
                T0 + i * 10_000_000,
                key(
                    "192.0.2.10",
                    "203.0.113.200",
                    40000 + i as u16,
                    443 + (i % 4) as u16,
                ),
            )
        })
        .collect();
    let (expect, _) = run(
        cfg(60, 3),
        1,
        &evs.iter().map(|e| (0, e.clone())).collect::<Vec<_>>(),
    );
    // Same events, each adjacent pair swapped (20 ms out of order, well inside 1 s).
    let mut f = Folder::new(cfg(60, 3), 1);
    for pair in evs.chunks(2) {
        for e in pair.iter().rev() {
            f.push(0, e.clone());
        }
        f.watermark(0, pair[1].ts_ns);
    }
    f.finish();
    let got = finals(f.drain_timed().collect());
    assert!(got == expect, "swapped pairs");
    assert_eq!(f.stats().late, 0);
    // An event older than what was already released is folded anyway, counted late.
    let mut f = Folder::new(cfg(60, 3), 1);
    f.push(0, evs[30].clone());
    f.watermark(0, evs[30].ts_ns + 2 * S);
    f.push(0, evs[0].clone());
    f.finish();
    assert_eq!(f.stats().late, 1);
    let total: u64 = finals(f.drain_timed().collect())
        .iter()
        .map(|a| a.count)
        .sum();
    assert_eq!(total, 2, "nothing lost");
}
