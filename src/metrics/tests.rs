use super::*;
use crate::flow::{FlowConfig, FlowHasher, FlowRecord, FlowTable};
use crate::packet::{proto, FlowKey, PacketMeta, L3};
use crate::policy::Policy;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;

/// Base units a name must contain (before `_total`), as Prometheus' naming
/// guide lists them, plus `info` (an info metric) and `active` (a gauge of
/// things currently open).
const UNITS: &[&str] = &[
    "packets", "bytes", "seconds", "failures", "reloads", "flows", "alerts", "info", "active",
    "files", "cuts",
];

#[test]
fn names_follow_the_convention() {
    let mut seen = std::collections::BTreeSet::new();
    for m in M::ALL {
        let d = m.def();
        assert!(seen.insert(d.name), "{} defined twice", d.name);
        let rest = d
            .name
            .strip_prefix("zonewatch_")
            .unwrap_or_else(|| panic!("{} lacks the zonewatch_ prefix", d.name));
        assert!(
            rest.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{}",
            d.name
        );
        let base = match d.kind {
            Kind::Counter => rest
                .strip_suffix("_total")
                .unwrap_or_else(|| panic!("counter {} must end in _total", d.name)),
            _ => {
                assert!(
                    !rest.ends_with("_total"),
                    "non-counter {} ends in _total",
                    d.name
                );
                rest
            }
        };
        // The unit (or the counted thing) is one of the name's words:
        // `flows_created_total` counts flows, `capture_bytes_total` bytes.
        assert!(
            base.split('_').any(|w| UNITS.contains(&w)),
            "{} names no unit",
            d.name
        );
        for l in d.labels {
            assert!(
                !["ip", "addr", "address", "src_ip", "dst_ip", "mac", "port"].contains(l),
                "{}: label {l} is unbounded",
                d.name
            );
        }
        assert!(!d.help.is_empty());
    }
    assert_eq!(seen.len(), M::ALL.len());
}

/// The exact names of the metrics spec the dashboard is built on.
#[test]
fn names_are_the_specs() {
    let names: Vec<&str> = M::ALL.iter().map(|m| m.def().name).collect();
    assert_eq!(
        names,
        [
            "zonewatch_build_info",
            "zonewatch_policy_info",
            "zonewatch_policy_reloads_total",
            "zonewatch_policy_last_reload_timestamp_seconds",
            "zonewatch_packets_total",
            "zonewatch_bytes_total",
            "zonewatch_capture_packets_total",
            "zonewatch_capture_bytes_total",
            "zonewatch_capture_received_packets_total",
            "zonewatch_dropped_packets_total",
            "zonewatch_queue_dropped_packets_total",
            "zonewatch_decode_failures_total",
            "zonewatch_flows_active",
            "zonewatch_flows_created_total",
            "zonewatch_flows_ended_total",
            "zonewatch_flows_evicted_total",
            "zonewatch_alerts_total",
            "zonewatch_dos_episodes_active",
            "zonewatch_packet_verdict_latency_seconds",
            "zonewatch_batch_work_seconds",
            "zonewatch_capture_time_seconds",
            "zonewatch_evidence_files_total",
            "zonewatch_evidence_bytes_total",
            "zonewatch_evidence_cuts_total",
        ]
    );
}

/// `# TYPE name type` of every family in a render.
fn types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

#[test]
fn a_fresh_registry_renders_every_family_with_its_type() {
    let m = Metrics::new(3).unwrap();
    // Families with free labels appear once a series exists.
    m.counter(M::Packets, &["a", "b", "allowed"]).inc();
    m.counter(M::Bytes, &["a", "b", "allowed"]).inc_by(60);
    m.counter(M::DecodeFailures, &["truncated_tcp"]);
    m.counter(M::Alerts, &["port_scan", "high", "-", "-"]).inc();
    m.set_policy("site", "alpha", "0123456789ab");
    let text = String::from_utf8(m.render()).unwrap();
    let t = types(&text);
    for d in M::ALL.map(M::def) {
        let want = match d.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        };
        assert_eq!(
            t.get(d.name).map(String::as_str),
            Some(want),
            "{}\n{text}",
            d.name
        );
    }
    assert_eq!(t.len(), M::ALL.len());
    assert!(
        text.contains("zonewatch_flows_active{worker=\"2\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("zonewatch_batch_work_seconds_count{worker=\"2\"} 0"),
        "{text}"
    );
    assert!(text.contains("zonewatch_packet_verdict_latency_seconds{quantile=\"0.999\"} 0"));
    assert!(text.contains(&format!(
        "zonewatch_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    // Replacing the rules replaces the info series.
    m.set_policy("site", "beta", "ba9876543210");
    let text = String::from_utf8(m.render()).unwrap();
    assert_eq!(text.matches("zonewatch_policy_info{").count(), 1, "{text}");
    assert!(text.contains("preset=\"beta\""));
    m.reload(true, 10.0);
    m.reload(false, 12.5);
    assert_eq!(m.counter(M::PolicyReloads, &["ok"]).get(), 1);
    assert_eq!(m.counter(M::PolicyReloads, &["error"]).get(), 1);
    assert_eq!(m.gauge(M::PolicyLastReload, &[]).get(), 12.5);
}

#[test]
fn sha256_prefix() {
    // sha256("abc") = ba7816bf8f01cfea...
    assert_eq!(sha256_12(b"abc"), "ba7816bf8f01");
}

#[test]
fn summaries_export_quantiles_in_seconds() {
    let m = Arc::new(Metrics::new(1).unwrap());
    let mut p = WorkerPub::new(m.clone(), 0);
    for ms in 1..=100u64 {
        p.lat.record(ms * 1_000_000);
        p.work.record(ms * 1_000);
    }
    p.flush_hists(true);
    let text = String::from_utf8(m.render()).unwrap();
    let value = |series: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let p50 = value("zonewatch_packet_verdict_latency_seconds{quantile=\"0.5\"}");
    assert!((p50 - 0.050).abs() < 0.001, "{p50}");
    let p99 = value("zonewatch_packet_verdict_latency_seconds{quantile=\"0.99\"}");
    assert!((p99 - 0.099).abs() < 0.001, "{p99}");
    assert_eq!(
        value("zonewatch_packet_verdict_latency_seconds_count"),
        100.0
    );
    let sum = value("zonewatch_packet_verdict_latency_seconds_sum");
    assert!((sum - 5.050).abs() < 1e-9, "{sum}");
    assert_eq!(
        value("zonewatch_batch_work_seconds_count{worker=\"0\"}"),
        100.0
    );
}

const RULES: &str = r#"
[[zone]]
id = "a"
cidrs = ["192.0.2.0/24"]

[[zone]]
id = "b"
cidrs = ["198.51.100.0/24"]

[[allow]]
id = "web"
from = ["a"]
to = ["b"]
proto = "tcp"
ports = [80]

[severity]
default = "critical"
"#;

fn meta(src: &str, sp: u16, dst: &str, dp: u16, len: u32) -> PacketMeta {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let mut m = PacketMeta {
        ts_ns: 1_700_000_000_000_000_000,
        key: FlowKey::new(proto::UDP, ip(src), sp, ip(dst), dp),
        wire_len: len,
        l3: L3::Ipv4,
        ..Default::default()
    };
    m.key.proto = if dp == 80 || sp == 80 {
        proto::TCP
    } else {
        proto::UDP
    };
    m.hash = FlowHasher::with_seed(7).hash_packet(&m);
    m
}

/// Packets and bytes land in the (zones, verdict) cell of their flow, in
/// both directions, and the publisher moves them into the registry.
#[test]
fn zone_cells_count_by_flow_zones_and_verdict() {
    let policy = Arc::new(Policy::from_source("t.toml", RULES).unwrap().0);
    let cfg = FlowConfig {
        max_flows: NonZeroUsize::new(64).unwrap(),
        ..FlowConfig::default()
    };
    let mut t = FlowTable::with_policy(&cfg, Some(policy));
    t.count_zone_pairs();
    let pkts = [
        meta("192.0.2.1", 40000, "198.51.100.2", 80, 100), // a->b web: allowed
        meta("198.51.100.2", 80, "192.0.2.1", 40000, 1500), // its reply
        meta("198.51.100.2", 5000, "192.0.2.1", 53, 70),   // b->a: violation
        meta("192.0.2.1", 5353, "203.0.113.9", 53, 80),    // a->nowhere: unknown
        meta("192.0.2.3", 5353, "203.0.113.9", 53, 80),    // same cell
    ];
    let mut recs: Vec<FlowRecord> = Vec::new();
    t.update_batch(&pkts, &mut recs);
    let m = Arc::new(Metrics::new(1).unwrap());
    let mut p = WorkerPub::new(m.clone(), 0);
    p.flows(t.stats());
    p.zone_cells(t.zone_cells().unwrap());
    // Published once: a second drain adds nothing.
    p.zone_cells(t.zone_cells().unwrap());
    let get = |name: M, l: [&str; 3]| m.counter(name, &l).get();
    assert_eq!(get(M::Packets, ["a", "b", "allowed"]), 2);
    assert_eq!(get(M::Bytes, ["a", "b", "allowed"]), 1600);
    assert_eq!(get(M::Packets, ["b", "a", "violation"]), 1);
    assert_eq!(get(M::Bytes, ["b", "a", "violation"]), 70);
    assert_eq!(get(M::Packets, ["a", "-", "unknown"]), 2);
    assert_eq!(get(M::Bytes, ["a", "-", "unknown"]), 160);
    assert_eq!(m.counter(M::FlowsCreated, &[]).get(), 4);
    assert_eq!(m.gauge(M::FlowsActive, &["0"]).get(), 4.0);
    // A reload to a policy that names the zones differently: old flows keep
    // their cell, new flows get the new names.
    let renamed = RULES.replace("\"b\"", "\"bee\"");
    let p2 = Arc::new(Policy::from_source("t2.toml", &renamed).unwrap().0);
    t.swap_policy(p2);
    let more = [
        meta("192.0.2.1", 40000, "198.51.100.2", 80, 10), // old flow
        meta("192.0.2.1", 40001, "198.51.100.2", 80, 20), // new flow
    ];
    t.update_batch(&more, &mut recs);
    p.zone_cells(t.zone_cells().unwrap());
    assert_eq!(get(M::Packets, ["a", "b", "allowed"]), 3);
    assert_eq!(get(M::Packets, ["a", "bee", "allowed"]), 1);
}

#[test]
fn without_rules_every_packet_is_verdict_none() {
    let mut t = FlowTable::new(&FlowConfig {
        max_flows: NonZeroUsize::new(16).unwrap(),
        ..FlowConfig::default()
    });
    t.count_zone_pairs();
    let mut recs: Vec<FlowRecord> = Vec::new();
    t.update_batch(
        &[
            meta("192.0.2.1", 1, "198.51.100.2", 2, 60),
            meta("192.0.2.5", 1, "203.0.113.2", 2, 40),
        ],
        &mut recs,
    );
    let mut cells = Vec::new();
    t.zone_cells()
        .unwrap()
        .drain(|_, l, p, b| cells.push((l.clone(), p, b)));
    assert_eq!(cells.len(), 1, "{cells:?}");
    assert_eq!(
        (cells[0].0.verdict, cells[0].1, cells[0].2),
        ("none", 2, 100)
    );
    assert_eq!(
        (cells[0].0.src.as_str(), cells[0].0.dst.as_str()),
        ("-", "-")
    );
}

#[test]
fn capture_publisher_adds_deltas() {
    let m = Metrics::new(2).unwrap();
    let mut c = CapturePub::new(&m);
    let d = DecodeStats::default();
    c.publish(1024, 64_000, &d, &[0, 5], 1_700_000_000_500_000_000);
    c.publish(2048, 128_000, &d, &[3, 5], 1_700_000_001_000_000_000);
    c.live(LiveCounters {
        received: 100,
        dropped: 4,
        if_dropped: 1,
    });
    c.live(LiveCounters {
        received: 150,
        dropped: 4,
        if_dropped: 1,
    });
    assert_eq!(m.counter(M::CapturePackets, &[]).get(), 2048);
    assert_eq!(m.counter(M::CaptureBytes, &[]).get(), 128_000);
    assert_eq!(m.counter(M::QueueDropped, &["0"]).get(), 3);
    assert_eq!(m.counter(M::QueueDropped, &["1"]).get(), 5);
    assert_eq!(m.counter(M::Dropped, &["queue_full"]).get(), 8);
    assert_eq!(m.counter(M::Dropped, &["kernel"]).get(), 4);
    assert_eq!(m.counter(M::Dropped, &["interface"]).get(), 1);
    assert_eq!(m.counter(M::CaptureReceived, &[]).get(), 150);
    assert_eq!(m.gauge(M::CaptureTime, &[]).get(), 1_700_000_001.0);
}

#[test]
fn alert_publisher_counts_lines_and_open_dos_episodes() {
    let m = Arc::new(Metrics::new(1).unwrap());
    let mut a = AlertPub::new(m.clone());
    let alert = |kind: &'static str| crate::alert::Alert {
        kind,
        severity: crate::model::Severity::High,
        dst_zone: Some("b".into()),
        ..Default::default()
    };
    for k in [
        "dos_start",
        "dos_start",
        "dos_update",
        "dos_end",
        "port_scan",
    ] {
        a.alert(&alert(k));
    }
    assert_eq!(m.gauge(M::DosEpisodesActive, &[]).get(), 1.0);
    assert_eq!(
        m.counter(M::Alerts, &["dos_start", "high", "-", "b"]).get(),
        2
    );
    assert_eq!(
        m.counter(M::Alerts, &["port_scan", "high", "-", "b"]).get(),
        1
    );
}

#[test]
fn server_answers_metrics_and_404() {
    use std::io::{Read, Write};
    let m = Arc::new(Metrics::new(1).unwrap());
    let s = server::MetricsServer::start("127.0.0.1:0", m).unwrap();
    let get = |path: &str| {
        let mut c = std::net::TcpStream::connect(s.addr()).unwrap();
        write!(c, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
        let mut r = String::new();
        c.read_to_string(&mut r).unwrap();
        r
    };
    let ok = get("/metrics");
    assert!(ok.starts_with("HTTP/1.0 200"), "{ok}");
    assert!(ok.contains(CONTENT_TYPE), "{ok}");
    assert!(ok.contains("zonewatch_capture_packets_total 0"));
    assert!(get("/").starts_with("HTTP/1.0 404"));
    s.stop();
}
