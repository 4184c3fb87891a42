//! `replay --openmetrics`: promtool backfills the file, and a real Prometheus
//! serving the created blocks answers the expected values at the capture's
//! own times (issue 5, points 4 and 5). Needs `promtool` and `prometheus`
//! (Debian package `prometheus`) on PATH: missing tools fail the test.

use crate::util::{bundled, zonewatch, ChildGuard};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn tool(name: &str) {
    let v = Command::new(name).arg("--version").output();
    assert!(
        v.as_ref().is_ok_and(|o| o.status.success()),
        "{name} is needed on PATH (Debian package `prometheus`): {v:?}"
    );
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// GET `path` from Prometheus on `port`: the JSON body, or None when not up.
fn get(port: u16, path: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut r = Vec::new();
    s.read_to_end(&mut r).ok()?;
    let r = String::from_utf8_lossy(&r).into_owned();
    r.split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_string(), b.to_string()))
}

/// The value of `expr` at Unix time `t` (seconds), None when no series.
fn value_at(port: u16, expr: &str, t: f64) -> Option<f64> {
    let path = format!("/api/v1/query?query={}&time={t:.3}", encode(expr));
    let (head, body) = get(port, &path).unwrap_or_else(|| panic!("GET {path}: no answer"));
    let v: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {head}\n{body}"));
    assert_eq!(v["status"], "success", "{expr} at {t}: {v}");
    let r = v["data"]["result"].as_array().expect("vector result");
    assert!(r.len() <= 1, "{expr} at {t}: more than one series: {v}");
    r.first().map(|s| {
        s["value"][1]
            .as_str()
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("{expr} at {t}: bad value {s}"))
    })
}

fn unix(rfc3339: &str) -> f64 {
    let t = humantime::parse_rfc3339(rfc3339).unwrap_or_else(|e| panic!("{rfc3339}: {e}"));
    t.duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

fn summary_of(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("summary written")).expect("JSON")
}

#[test]
fn openmetrics_backfill_shows_the_incident_at_capture_time() {
    tool("promtool");
    tool("prometheus");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let zones = bundled("zones.pcap");
    let flood = bundled("dos-icmp-flood.pcap");
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/example-site.toml");
    let om = d.join("metrics.om");
    let (alerts, summary, zsummary) = (d.join("a.jsonl"), d.join("s.json"), d.join("z.json"));
    let r = zonewatch([
        "replay".as_ref(),
        zones.as_os_str(),
        flood.as_os_str(),
        "-q".as_ref(),
        "--rules".as_ref(),
        rules.as_ref(),
        "--alerts".as_ref(),
        alerts.as_os_str(),
        "--alert-window-secs".as_ref(),
        "0".as_ref(),
        "--summary".as_ref(),
        summary.as_os_str(),
        "--openmetrics".as_ref(),
        om.as_os_str(),
        "--openmetrics-interval-secs".as_ref(),
        "1".as_ref(),
    ] as [&std::ffi::OsStr; 16]);
    assert!(r.status.success(), "{}: {}", r.cmdline, r.stderr);
    // Zones alone: its flows, for the value at the end of its part.
    let z = zonewatch([
        "replay".as_ref(),
        zones.as_os_str(),
        "-q".as_ref(),
        "--rules".as_ref(),
        rules.as_ref(),
        "--summary".as_ref(),
        zsummary.as_os_str(),
    ] as [&std::ffi::OsStr; 7]);
    assert!(z.status.success(), "{}: {}", z.cmdline, z.stderr);
    let (all, zs) = (summary_of(&summary), summary_of(&zsummary));
    let text = std::fs::read_to_string(&om).expect("openmetrics written");
    assert!(text.ends_with("# EOF\n"), "no # EOF");

    let db = d.join("db");
    let mut c = Command::new("promtool");
    c.args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&db);
    let p = crate::util::run_cmd(c);
    assert!(
        p.status.success(),
        "{}: {}\n{}",
        p.cmdline,
        p.stdout,
        p.stderr
    );

    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let cfg = d.join("prometheus.yml");
    std::fs::write(&cfg, "global: {}\n").expect("config");
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", db.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let server = ChildGuard::spawn(cmd);
    let t0 = Instant::now();
    while !get(port, "/-/ready").is_some_and(|(h, _)| h.contains(" 200 ")) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "prometheus (pid {}) not ready on port {port} in 60 s",
            server.id()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let (first, last) = (
        unix(all["first_packet"].as_str().expect("first_packet")),
        unix(all["last_packet"].as_str().expect("last_packet")),
    );
    let zones_last = unix(zs["last_packet"].as_str().expect("last_packet"));
    let created = "zonewatch_flows_created_total";
    let packets = "zonewatch_capture_packets_total";
    // Nothing before the capture; zeros at its first packet.
    assert_eq!(value_at(port, created, first - 1.0), None);
    assert_eq!(value_at(port, packets, first), Some(0.0));
    // After zones.pcap, in the 43-minute gap before the flood: zones' totals.
    let zf = zs["flows"]["created"].as_f64().expect("flows.created");
    assert_eq!(value_at(port, created, zones_last.ceil() + 0.5), Some(zf));
    assert_eq!(
        value_at(port, packets, zones_last.ceil() + 0.5),
        zs["packets"].as_f64()
    );
    // At the last packet: the whole run's summary.
    assert_eq!(
        value_at(port, created, last),
        all["flows"]["created"].as_f64()
    );
    assert_eq!(value_at(port, packets, last), all["packets"].as_f64());

    // Separation violations step at the first violation's own time.
    let lines: Vec<Value> = std::fs::read_to_string(&alerts)
        .expect("alerts")
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert JSON"))
        .collect();
    let sv: Vec<f64> = lines
        .iter()
        .filter(|a| a["kind"] == "separation_violation")
        .map(|a| unix(a["timestamp"].as_str().expect("timestamp")))
        .collect();
    let first_v = sv.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(first_v.is_finite(), "no separation_violation alert");
    let expr = r#"sum(zonewatch_alerts_total{kind="separation_violation"})"#;
    // The snapshot before the violation (second boundary) shows none...
    assert_eq!(value_at(port, expr, first_v.floor() + 0.5), Some(0.0));
    // ...the next one every violation of that second and before.
    let upto = (first_v.floor() + 1.0).max(first);
    let n = sv.iter().filter(|&&t| t <= upto).count() as f64;
    assert!(n >= 1.0);
    assert_eq!(value_at(port, expr, first_v.floor() + 1.5), Some(n));
    // At the end: every alert line written.
    assert_eq!(value_at(port, expr, last), Some(sv.len() as f64));
    assert_eq!(
        value_at(port, "sum(zonewatch_alerts_total)", last),
        Some(lines.len() as f64)
    );
    drop(server);
}
