//! `/metrics`: replay the zones capture with `--metrics-listen 127.0.0.1:0
//! --hold`, scrape the endpoint while zonewatch holds, compare the values with
//! the summary, the flow lines and the alert file, and run `promtool check
//! metrics` on the scrape (promtool comes with Debian's `prometheus` package:
//! `make deps`). Then SIGTERM must end the process with status 0.

use crate::util::{bundled, send_signal, tap_stderr, ChildGuard, BIN, CHILD_TIMEOUT};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type Labels = BTreeMap<String, String>;

/// One sample line: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), Labels::new()),
            Some((n, rest)) => {
                let body = rest.strip_suffix('}').expect("labels end with }");
                let mut labels = Labels::new();
                // Our label values never contain `",`: split on it.
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("k=\"v\"");
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (n.to_string(), labels)
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// GET `path` over HTTP/1.0; (status line, headers + body).
fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("HTTP response");
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, format!("{head}\n\n{body}"))
}

fn body(resp: &str) -> &str {
    resp.split_once("\n\n").map(|(_, b)| b).unwrap_or_default()
}

fn sum(samples: &[Sample], name: &str, filter: impl Fn(&Labels) -> bool) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && filter(&s.labels))
        .map(|s| s.value)
        .sum()
}

fn zone(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_string()
}

#[test]
fn replay_hold_serves_metrics_that_match_the_summary_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let (summary, flows, alerts) = (
        dir.path().join("summary.json"),
        dir.path().join("flows.jsonl"),
        dir.path().join("alerts.jsonl"),
    );
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/example-site.toml");
    let mut cmd = Command::new(BIN);
    cmd.args(["replay", "-q", "--workers", "2", "--rules", rules])
        .arg("--summary")
        .arg(&summary)
        .arg("--flows")
        .arg(&flows)
        .arg("--alerts")
        .arg(&alerts)
        .args(["--metrics-listen", "127.0.0.1:0", "--hold"])
        .arg(bundled("zones.pcap"))
        // Office noise: segment-local traffic has its own series (issue #12).
        .arg(bundled("office-noise.pcap"));
    let mut guard = ChildGuard::spawn(cmd);
    let (stderr, reader) = tap_stderr(&mut guard);
    // The endpoint's address, then the line saying the replay is done.
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let addr = loop {
        let text = stderr.lock().unwrap().clone();
        if text.contains("replay done") {
            let a = text
                .split("metrics on http://")
                .nth(1)
                .and_then(|r| r.split("/metrics").next())
                .unwrap_or_else(|| panic!("no metrics address on stderr:\n{text}"));
            break a.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "zonewatch did not finish the replay: {text}"
        );
        if let Some(Ok(Some(st))) = guard.child.as_mut().map(|c| c.try_wait()) {
            panic!("zonewatch exited early ({st}): {text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    let (status, resp) = get(&addr, "/metrics");
    assert!(status.contains(" 200"), "{status}");
    assert!(
        resp.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{resp}"
    );
    let (status404, _) = get(&addr, "/other");
    assert!(status404.contains(" 404"), "{status404}");
    let text = body(&resp).to_string();
    let m = parse(&text);

    // promtool lints the exposition (names, units, types, HELP).
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool is needed (Debian package `prometheus`, `make deps`): {e}")
        });
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    send_signal(guard.id(), "TERM");
    let mut child = guard.child.take().unwrap();
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "zonewatch ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    reader.join().unwrap();
    assert!(st.success(), "exit after SIGTERM: {st}");

    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v}")) as f64;
    let all = |_: &Labels| true;
    assert_eq!(
        sum(&m, "zonewatch_capture_packets_total", all),
        n(&s["packets"])
    );
    assert_eq!(
        sum(&m, "zonewatch_capture_bytes_total", all),
        n(&s["wire_bytes"])
    );
    assert_eq!(
        sum(&m, "zonewatch_flows_created_total", all),
        n(&s["flows"]["created"])
    );
    for (reason, count) in s["flows"]["ended"].as_object().unwrap() {
        assert_eq!(
            sum(&m, "zonewatch_flows_ended_total", |l| l["reason"]
                == *reason),
            n(count),
            "flows ended by {reason}"
        );
    }
    assert_eq!(sum(&m, "zonewatch_flows_active", all), 0.0);
    let ip = n(&s["network"]["ipv4"]) + n(&s["network"]["ipv6"]);
    assert!(ip > 0.0);
    assert_eq!(sum(&m, "zonewatch_packets_total", all), ip);

    // Packets and bytes per (zones, verdict) = the flow lines' sums.
    let mut want: BTreeMap<(String, String, String), (f64, f64)> = BTreeMap::new();
    for line in std::fs::read_to_string(&flows).unwrap().lines() {
        let f: Value = serde_json::from_str(line).unwrap();
        let key = (
            zone(&f["src_zone"]),
            zone(&f["dst_zone"]),
            f["verdict"].as_str().unwrap().to_string(),
        );
        let e = want.entry(key).or_default();
        e.0 += n(&f["orig_pkts"]) + n(&f["resp_pkts"]);
        e.1 += n(&f["orig_bytes"]) + n(&f["resp_bytes"]);
    }
    let mut got: BTreeMap<(String, String, String), (f64, f64)> = BTreeMap::new();
    for x in m
        .iter()
        .filter(|x| x.name == "zonewatch_packets_total" || x.name == "zonewatch_bytes_total")
    {
        let key = (
            x.labels["src_zone"].clone(),
            x.labels["dst_zone"].clone(),
            x.labels["verdict"].clone(),
        );
        let e = got.entry(key).or_default();
        if x.name == "zonewatch_packets_total" {
            e.0 += x.value;
        } else {
            e.1 += x.value;
        }
    }
    assert!(want.keys().any(|k| k.2 == "violation") && want.keys().any(|k| k.2 == "allowed"));
    assert!(
        want.keys()
            .any(|k| (k.0.as_str(), k.1.as_str(), k.2.as_str())
                == ("mynumber.term", "local", "local")),
        "{want:?}"
    );
    assert_eq!(got, want, "packets/bytes by zone pair vs flow lines");

    // Alerts by kind, severity and zone pair = the alert file.
    let mut alerts_want: BTreeMap<Vec<String>, f64> = BTreeMap::new();
    for line in std::fs::read_to_string(&alerts).unwrap().lines() {
        let a: Value = serde_json::from_str(line).unwrap();
        if a["update"] != 0 {
            continue; // an update line repeats an alert: not counted again
        }
        let k = vec![
            a["kind"].as_str().unwrap().to_string(),
            a["severity"].as_str().unwrap().to_string(),
            zone(&a["src_zone"]),
            zone(&a["dest_zone"]),
        ];
        *alerts_want.entry(k).or_default() += 1.0;
    }
    let alerts_got: BTreeMap<Vec<String>, f64> = m
        .iter()
        .filter(|x| x.name == "zonewatch_alerts_total")
        .map(|x| {
            let l = &x.labels;
            (
                vec![
                    l["kind"].clone(),
                    l["severity"].clone(),
                    l["src_zone"].clone(),
                    l["dst_zone"].clone(),
                ],
                x.value,
            )
        })
        .collect();
    assert!(!alerts_want.is_empty());
    assert_eq!(alerts_got, alerts_want);
    assert_eq!(sum(&m, "zonewatch_dos_episodes_active", all), 0.0);

    // Policy and build info; the summaries saw every worker's batches.
    let info: Vec<&Sample> = m
        .iter()
        .filter(|x| x.name == "zonewatch_policy_info")
        .collect();
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].labels["sha256"].len(), 12);
    assert_eq!(info[0].labels["preset"], "alpha");
    assert_eq!(info[0].labels["site"], "Example City (例示市)");
    assert_eq!(
        sum(&m, "zonewatch_build_info", |l| l["version"]
            == env!("CARGO_PKG_VERSION")),
        1.0
    );
    for w in ["0", "1"] {
        assert!(
            sum(&m, "zonewatch_batch_work_seconds_count", |l| l["worker"]
                == w)
                > 0.0,
            "worker {w} published no batch"
        );
    }
    assert!(sum(&m, "zonewatch_packet_verdict_latency_seconds_count", all) > 0.0);
    let clock = sum(&m, "zonewatch_capture_time_seconds", all);
    assert!(clock > 1.6e9, "capture time {clock}");
}
