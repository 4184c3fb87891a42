//! Detector framework and scan detector: crafted observations.

use super::merge::Merger;
use super::obs::Obs;
use super::scan::{ScanConfig, ScanDetector};
use super::*;
use crate::flow::Refusal;
use crate::packet::{proto, tcp_flags};

use super::testkit::{key, run, start_flags as start, S, T0};

/// Run the scan detector over `obs` and return its alerts as they finally
/// stand (an early alert's update line replaces it).
fn scan(cfg: ScanConfig, obs: &[Obs]) -> Vec<Alert> {
    super::testkit::finals(run(&mut ScanDetector::new(cfg), None, obs.to_vec()))
        .into_iter()
        .map(|(_, a)| a)
        .collect()
}

/// A numeric evidence value of an alert (`u64::MAX` when missing).
fn ev(a: &Alert, k: &str) -> u64 {
    crate::detect::testkit::ev(a, k)
        .as_u64()
        .unwrap_or(u64::MAX)
}

#[test]
fn vertical_scan_counts_refused_and_unanswered_not_answered() {
    let mut obs = Vec::new();
    for p in 1..=30u16 {
        let k = key(proto::TCP, "192.0.2.70", 40000 + p, "192.0.2.34", p);
        let ts = T0 + u64::from(p) * 10_000_000;
        obs.push(start(ts, k, tcp_flags::SYN));
        match p {
            // 22 and 25 open: SYN-ACK.
            22 | 25 => obs.push(Obs::Answered {
                ts_ns: ts + 1000,
                key: k,
            }),
            // 1..=10 closed: RST.
            1..=10 => obs.push(Obs::Refused {
                ts_ns: ts + 1000,
                key: k,
                how: Refusal::Rst,
            }),
            _ => {}
        }
    }
    let a = scan(ScanConfig::default(), &obs);
    assert_eq!(a.len(), 1, "{a:#?}");
    let a = &a[0];
    assert_eq!((a.kind, a.severity.as_str()), ("port_scan", "medium"));
    assert_eq!(
        a.dst_ip.map(|i| i.to_string()).as_deref(),
        Some("192.0.2.34")
    );
    assert_eq!(
        (
            ev(a, "attempts"),
            ev(a, "answered"),
            ev(a, "refused"),
            ev(a, "unanswered")
        ),
        (30, 2, 10, 18)
    );
    assert_eq!(a.timestamp, T0 + 10_000_000);
    // Below the threshold (19 failed ports): nothing.
    let fewer: Vec<_> = obs
        .iter()
        .filter(|o| !matches!(o, Obs::Start(s) if s.key.dport > 19))
        .copied()
        .collect();
    assert!(scan(ScanConfig::default(), &fewer).is_empty());
}

#[test]
fn a_monitoring_server_pinging_live_hosts_is_no_sweep_but_a_dead_range_is() {
    let mut live = Vec::new();
    let mut dead = Vec::new();
    for h in 1..=40u8 {
        let k = key(proto::ICMP, "192.0.2.230", 8, &format!("192.0.2.{h}"), 0);
        let ts = T0 + u64::from(h) * S / 10;
        live.push(start(ts, k, 0));
        live.push(Obs::Answered {
            ts_ns: ts + 500_000,
            key: k,
        });
        dead.push(start(ts, k, 0));
        if h <= 5 {
            dead.push(Obs::Answered {
                ts_ns: ts + 500_000,
                key: k,
            });
        }
    }
    assert!(scan(ScanConfig::default(), &live).is_empty());
    let a = scan(ScanConfig::default(), &dead);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].kind, "host_sweep");
    assert_eq!(
        (ev(&a[0], "sweep_hosts"), ev(&a[0], "sweep_unanswered")),
        (40, 35)
    );
    // An ignored source never alerts.
    let cfg = ScanConfig {
        ignore_sources: vec!["192.0.2.224/28".into()],
        ..ScanConfig::default()
    };
    assert!(scan(cfg, &dead).is_empty());
}

#[test]
fn one_alert_per_window_and_the_next_window_starts_at_the_next_attempt() {
    let mut obs = Vec::new();
    for round in 0..2u64 {
        for p in 1..=25u16 {
            let k = key(proto::TCP, "192.0.2.70", 1000 + p, "192.0.2.34", p);
            obs.push(start(
                T0 + round * 100 * S + u64::from(p) * S,
                k,
                tcp_flags::SYN,
            ));
        }
    }
    let a = scan(ScanConfig::default(), &obs);
    assert_eq!(a.len(), 2, "{a:#?}");
    assert!(a.iter().all(|a| ev(a, "attempts") == 25));
    // Bounded targets: beyond the cap attempts are counted, not stored.
    let cfg = ScanConfig {
        max_targets_per_source: 10,
        min_ports_per_host: 5,
        ..ScanConfig::default()
    };
    let a = scan(cfg, &obs[..25]);
    assert_eq!((ev(&a[0], "attempts"), ev(&a[0], "not_tracked")), (25, 15));
}

#[test]
fn merger_releases_the_same_order_for_any_split_across_workers() {
    let mut all = Vec::new();
    for i in 0..200u64 {
        let k = key(
            proto::TCP,
            "192.0.2.70",
            1000 + (i % 97) as u16,
            "192.0.2.34",
            (i % 50) as u16,
        );
        // Equal timestamps in pairs, to exercise the key tie-break.
        all.push(start(T0 + (i / 2) * 1_000_000, k, tcp_flags::SYN));
    }
    let run = |workers: usize| {
        let mut m = Merger::new(workers, S);
        let mut got = Vec::new();
        for (i, o) in all.iter().enumerate() {
            let w = (o.sort_key().4 as usize) % workers;
            assert!(m.push(w, *o).is_none());
            if i % 7 == 6 {
                let upto = m.watermark(w, o.ts_ns());
                while let Some((_, o)) = m.pop_tagged(upto) {
                    got.push(o);
                }
            }
        }
        for w in 0..workers {
            m.watermark(w, u64::MAX);
        }
        while let Some((_, o)) = m.pop_tagged(u64::MAX) {
            got.push(o);
        }
        got
    };
    let one = run(1);
    assert_eq!(one.len(), 200);
    assert!(one.windows(2).all(|w| w[0].sort_key() <= w[1].sort_key()));
    assert_eq!(run(3), one);
    assert_eq!(run(4), one);
}

#[test]
fn detect_table_in_a_rules_file_rejects_unknown_keys_with_location() {
    let text = "[detect.port_scan]\nwindow_secs = 30\nmin_ports = 5\n";
    // The policy's floor accepts the table; the detectors' floor reads it.
    assert!(Policy::from_source("site.toml", text).is_ok());
    match config_of("site.toml", text) {
        Err(d) => {
            let e = d.to_string();
            assert!(e.starts_with("site.toml:3:1"), "{e}");
            assert!(e.contains("min_ports"), "{e}");
        }
        Ok(_) => panic!("unknown key accepted"),
    }
    let c = config_of("site.toml", "[detect.port_scan]\nwindow_secs = 30\n").expect("loads");
    assert_eq!(c.port_scan.window_secs, 30);
    assert_eq!(
        c.port_scan.min_ports_per_host,
        ScanConfig::default().min_ports_per_host
    );
}

#[test]
fn merger_holds_at_most_max_queued_and_counts_what_it_released_early() {
    // Worker 1 never reports: without the bound everything would wait.
    let mut m = Merger::new(2, S).with_max_queued(10);
    for i in 0..30u64 {
        let k = key(proto::TCP, "192.0.2.70", 1000 + i as u16, "192.0.2.34", 80);
        assert!(m.push(0, start(T0 + i * S, k, tcp_flags::SYN)).is_none());
    }
    let upto = m.watermark(0, T0 + 40 * S);
    assert_eq!(upto, 0, "worker 1 has not reported");
    let mut got = Vec::new();
    while let Some((_, o)) = m.pop_tagged(upto) {
        got.push(o.ts_ns());
    }
    assert_eq!(got.len(), 20, "released down to the bound, oldest first");
    assert!(got.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(got[0], T0);
    assert_eq!(m.forced, 20);
    // Once worker 1 is past them, the rest go in order, not forced.
    let upto = m.watermark(1, T0 + 40 * S);
    let rest: Vec<u64> =
        std::iter::from_fn(|| m.pop_tagged(upto).map(|(_, o)| o.ts_ns())).collect();
    assert_eq!(rest.len(), 10);
    assert_eq!(m.forced, 20);
}

/// Issue #12 point 3: a port scan whose refusals cross `min_ports_per_host`
/// is written at the refusal that crossed it (update 0), not when its window
/// is judged; the judgement writes the update line of the same group with the
/// final counts.
#[test]
fn a_port_scan_alerts_when_refusals_cross_the_threshold_and_updates_at_judgement() {
    let cfg = ScanConfig::default();
    let min = u64::from(cfg.min_ports_per_host);
    let mut obs = Vec::new();
    for p in 1..=(2 * min) {
        let port = p as u16;
        let k = key(proto::TCP, "203.0.113.66", 40000, "192.0.2.34", port);
        let ts = T0 + p * 10_000_000;
        obs.push(start(ts, k, tcp_flags::SYN));
        obs.push(Obs::Refused {
            ts_ns: ts + 1000,
            key: k,
            how: Refusal::Rst,
        });
    }
    let lines = run(&mut ScanDetector::new(cfg.clone()), None, obs);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let ((t0, first), (t1, last)) = (&lines[0], &lines[1]);
    assert_eq!(
        *t0,
        T0 + min * 10_000_000 + 1000,
        "written at the crossing refusal"
    );
    assert_eq!(
        (first.update, first.kind, ev(first, "refused")),
        (0, "port_scan", min)
    );
    assert!(
        *t1 >= T0 + cfg.window_secs * S,
        "the update waits for the judgement"
    );
    assert_eq!((last.update, ev(last, "refused")), (1, 2 * min));
    assert!(first.group.is_some() && first.group == last.group);
    assert_eq!(first.timestamp, last.timestamp);
}

/// Issue #12 point 3 for sweeps: failures of unanswered probes are known when
/// their answer wait (3 s) runs out, so a ping sweep of a dead range alerts at
/// the deadline that brings it to `min_sweep_hosts` probed and
/// `min_sweep_failed` failed, not when the 60 s window is judged.
#[test]
fn a_ping_sweep_alerts_when_unanswered_probes_time_out() {
    let cfg = ScanConfig::default();
    let mut obs = Vec::new();
    // 40 hosts 100 ms apart, none answers.
    for h in 1..=40u8 {
        let k = key(proto::ICMP, "192.0.2.230", 8, &format!("192.0.2.{h}"), 0);
        obs.push(start(T0 + u64::from(h) * S / 10, k, 0));
    }
    let lines = run(&mut ScanDetector::new(cfg.clone()), None, obs);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let ((t0, first), (t1, last)) = (&lines[0], &lines[1]);
    assert_eq!((first.kind, first.update), ("host_sweep", 0));
    // Deadlines are kept from the 20th target on (fewer cannot cross any
    // threshold): host 20 at 2.0 s, and hosts 1..19 then, all due 3 s later.
    // At 5.0 s they fail together: 20 probed, 10 failed, a sweep.
    assert_eq!(*t0, T0 + 5 * S);
    assert_eq!((last.update, ev(last, "sweep_hosts")), (1, 40));
    assert!(*t1 >= T0 + cfg.window_secs * S);
    assert_eq!(first.group, last.group);
}

#[test]
fn every_detector_declares_its_needs_and_taps_point_at_it() {
    let all = DetectConfig::default();
    let dets = crate::detect::detectors(&all);
    assert!(!dets.is_empty());
    for d in &dets {
        assert!(
            crate::detect::default_needs(d.name()).is_some(),
            "{} is named as in the registry",
            d.name()
        );
    }
    // The union of every detector's needs is every kind of observation.
    let n = crate::detect::needs(&all);
    assert!(n.starts && n.answered && n.refused && n.arp && n.moved);
    assert!(n.close_on(22) && !n.close_on(80));
    // A tap ships to its own detector, whichever detectors are off.
    let taps = crate::detect::taps(&all);
    let names: Vec<&str> = taps.iter().map(|(i, _)| dets[*i].name()).collect();
    assert_eq!(names, ["dos"]);
    let mut some = DetectConfig::default();
    some.port_scan.enabled = false;
    some.hosts.enabled = false;
    let dets = crate::detect::detectors(&some);
    let names: Vec<&str> = crate::detect::taps(&some)
        .iter()
        .map(|(i, _)| dets[*i].name())
        .collect();
    assert_eq!(names, ["dos"]);
    // Detectors off need nothing.
    assert_eq!(
        crate::detect::needs(&DetectConfig::none()),
        crate::detect::Needs::default()
    );
    assert!(crate::detect::taps(&DetectConfig::none()).is_empty());
    assert!(!DetectConfig::none().any_enabled() && all.any_enabled());
}

/// An answer retires its attempt's deadline (the expiry then needs no
/// look-up); a refusal of the same target in the *next* window, which is
/// only counted when its deadline expires, must revive it: the early line
/// then comes at that deadline, not at the window's judgement 10 s later.
#[test]
fn a_refusal_after_an_answer_in_the_next_window_counts_at_its_deadline() {
    let cfg = ScanConfig {
        window_secs: 10,
        answer_wait_secs: 3,
        min_ports_per_host: 3,
        min_hosts_per_port: 100,
        min_sweep_hosts: 100,
        min_sweep_failed: 100,
        ..ScanConfig::default()
    };
    let ms = S / 1000;
    let k = |sport, port| key(proto::TCP, "192.0.2.70", sport, "192.0.2.34", port);
    let obs = vec![
        // The first window: one attempt, answered.
        start(T0, k(40000, 1), tcp_flags::SYN),
        Obs::Answered {
            ts_ns: T0 + ms,
            key: k(40000, 1),
        },
        // While it waits to be judged (10..13 s), three more targets: the next
        // window; the third gives all three answer deadlines (at 13.3 s).
        start(T0 + 10_100 * ms, k(40002, 2), tcp_flags::SYN),
        start(T0 + 10_200 * ms, k(40003, 3), tcp_flags::SYN),
        start(T0 + 10_300 * ms, k(40004, 4), tcp_flags::SYN),
        // Port 4 answers (its deadline retired), then a second connection to
        // it is refused (so it has failed after all).
        Obs::Answered {
            ts_ns: T0 + 10_400 * ms,
            key: k(40004, 4),
        },
        start(T0 + 10_450 * ms, k(40005, 4), tcp_flags::SYN),
        Obs::Refused {
            ts_ns: T0 + 10_500 * ms,
            key: k(40005, 4),
            how: Refusal::Rst,
        },
    ];
    let out = run(&mut ScanDetector::new(cfg), None, obs);
    let first = out.first().expect("a port scan line");
    assert_eq!(first.1.kind, "port_scan", "{out:#?}");
    // Ports 2 and 3 unanswered, 4 refused: three failed ports on one host
    // when the deadlines expire.
    assert_eq!(first.0, T0 + 13_300 * ms, "{out:#?}");
    let last = &out.last().expect("its update").1;
    assert_eq!(
        (
            ev(last, "attempts"),
            ev(last, "refused"),
            ev(last, "unanswered")
        ),
        (4, 1, 2)
    );
}
