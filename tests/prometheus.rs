//! A real Prometheus (Debian's `prometheus` package, `make deps`) scrapes
//! zonewatch during a paced replay, and every PromQL expression of the Grafana
//! dashboard and of the alerting rules (grafana/queries.txt) is run on what it
//! scraped: each must return data, except the few listed in [`EMPTY`] with the
//! reason (and those must really be empty, with a probe showing the metric is
//! there). The alerting rules are loaded by that Prometheus and must evaluate
//! without error; the critical separation-violation and the DoS rules must fire.
//!
//! Live (root): a Prometheus with the shipped intervals and rules scrapes a
//! `zonewatch run` on a veth, and the time from one violating packet to the
//! critical separation alert firing on `/api/v1/alerts` is measured and bounded.

use crate::util::{bundled, send_signal, tap_stderr, ChildGuard, BIN};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `sensor` target label of the scrape (as in grafana/prometheus/prometheus.yml).
const SENSOR: &str = "test1";

/// queries.txt stands `$sensor` for this regex (grafana/queries.py SENSORS).
const SENSOR_REGEX_IN_QUERIES: &str = "(example-city-core1|example-city-lgwan1)";

/// Replay pace: the four captures span 2568 s of packet time (zones.pcap, then
/// 42 min later the scan, brute force and flood), so the replay lasts ~10 s and
/// the attacks arrive after Prometheus has scraped the zones traffic.
const SPEED: &str = "250";

/// Captures merged in one replay: zone traffic with violations of every
/// severity, a SYN scan, an SSH brute force and an ICMP flood (DoS episode).
const CAPTURES: [&str; 4] = [
    "zones.pcap",
    "scan-nmap-syn.pcap",
    "dos-icmp-flood.pcap",
    "bruteforce-ssh.pcap",
];

/// Expressions of queries.txt (by name) that are rightly empty for this
/// traffic: (name, why, probe). The probe must return data, showing that the
/// metric and its labels are there and only the value filters the result out.
const EMPTY: [(&str, &str, &str); 5] = [
    (
        "ポリシー再読込 / Policy reload",
        "no reload in a replay (changes() > 0 of the reload timestamp)",
        "zonewatch_policy_last_reload_timestamp_seconds{sensor=\"test1\"} == 0",
    ),
    (
        "ポリシー / Policy in force [C]",
        "seconds since the last reload: blank until the first reload (timestamp 0 = none yet)",
        "zonewatch_policy_last_reload_timestamp_seconds{sensor=\"test1\"} == 0",
    ),
    (
        "ZonewatchCaptureDrops",
        "nothing dropped: the drop ratio is 0, not > 0.001",
        "sum by (sensor) (rate(zonewatch_dropped_packets_total{sensor=\"test1\"}[5m])) == 0",
    ),
    (
        "ZonewatchSensorDown",
        "the sensor is up",
        "up{job=\"zonewatch\", sensor=\"test1\"} == 1",
    ),
    (
        "ZonewatchSensorAbsent",
        "the sensor is scraped",
        "up{job=\"zonewatch\", sensor=\"test1\"}",
    ),
];

/// Ceiling of each wait for an event (a start, a scrape, an evaluation, an
/// exit): generous for a loaded machine; the whole test takes ~15 s idle.
const WAIT: Duration = crate::util::WATCH_WAIT;
/// Scrapes of the final counters before the queries run (1 s apart).
const SETTLE_SCRAPES: u64 = 3;

/// One sample of `name` (no labels) from zonewatch's /metrics.
fn scrape_value(addr: &str, name: &str) -> u64 {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("scrape");
    resp.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {name} in the scrape:\n{resp}")) as u64
}

/// Seconds since the Unix epoch, now.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `2026-01-02T03:04:05.123456789Z` or `...+09:00` (Prometheus writes its
/// local time) as Unix seconds.
fn parse_rfc3339(s: &str) -> Option<f64> {
    let (base, offset_secs) = match s.strip_suffix('Z') {
        Some(b) => (b, 0i64),
        None => {
            let (b, off) = s.split_at(s.len().checked_sub(6)?);
            let sign = match off.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = off.get(1..)?.split_once(':')?;
            (
                b,
                sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60),
            )
        }
    };
    let t = humantime::parse_rfc3339(&format!("{base}Z")).ok()?;
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs_f64();
    Some(secs - offset_secs as f64)
}

/// Percent-encode a query-string value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// GET `path` from Prometheus over HTTP/1.0 and parse the JSON body.
fn api(port: u16, path: &str) -> Value {
    let addr = format!("127.0.0.1:{port}");
    let mut s = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let resp = String::from_utf8_lossy(&resp);
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: not an HTTP response: {resp}"));
    serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("GET {path}: body is not JSON ({e}): {head}\n{body}"))
}

/// Run an instant query at the current time; Err(message) when Prometheus
/// refuses it.
fn query(port: u16, expr: &str) -> Result<Value, String> {
    let r = api(port, &format!("/api/v1/query?query={}", encode(expr)));
    if r["status"] != "success" {
        return Err(format!("{}: {}", r["errorType"], r["error"]));
    }
    Ok(r["data"].clone())
}

/// Number of series (vector, matrix) or 1 (scalar, string) in a query result.
fn result_len(data: &Value) -> usize {
    match data["resultType"].as_str() {
        Some("vector") | Some("matrix") => data["result"].as_array().map_or(0, Vec::len),
        _ => 1,
    }
}

/// A free loopback port (bound, then released for Prometheus).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// Start `prometheus` (the command, maybe inside a namespace) with `config`
/// written into `dir`, its data in `dir`, listening on 127.0.0.1:`port`;
/// returns once it is ready, with its stderr being collected.
fn start_prometheus(
    mut cmd: Command,
    dir: &Path,
    config: &str,
    port: u16,
) -> (ChildGuard, Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write prometheus.yml");
    cmd.arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let mut prom = ChildGuard::spawn(cmd);
    let (err, reader) = tap_stderr(&mut prom);
    wait_stderr(&mut prom, &err, WAIT, "prometheus ready", |t| {
        t.contains("Server is ready to receive web requests")
    });
    (prom, err, reader)
}

/// Wait until `done(stderr so far)` holds; panic with the stderr at `timeout`
/// or if the child exits first.
fn wait_stderr(
    guard: &mut ChildGuard,
    stderr: &Arc<Mutex<String>>,
    timeout: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if done(&text) {
            return text;
        }
        if let Some(Ok(Some(st))) = guard.child.as_mut().map(|c| c.try_wait()) {
            panic!("{} exited ({st}) before {what}:\n{text}", guard.cmdline);
        }
        assert!(
            Instant::now() < deadline,
            "{}: no {what} within {timeout:?}:\n{text}",
            guard.cmdline
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The alerting rule files (not the promtool unit tests `*.test.yml`).
fn rule_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/prometheus/rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.ends_with(".yml") && !n.ends_with(".test.yml")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no rule files in {}", dir.display());
    files
}

/// grafana/queries.txt as (kind, name, expr) with `$sensor` = SENSOR.
fn queries() -> Vec<(String, String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/grafana/queries.txt");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let out: Vec<(String, String, String)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.splitn(3, '\t');
            let (Some(k), Some(n), Some(e)) = (f.next(), f.next(), f.next()) else {
                panic!("queries.txt: not KIND\\tNAME\\tEXPR: {l}");
            };
            let e = e.replace(SENSOR_REGEX_IN_QUERIES, SENSOR);
            assert!(
                !e.contains("example-city"),
                "queries.txt names sensors other than {SENSOR_REGEX_IN_QUERIES} (grafana/queries.py SENSORS changed?): {e}"
            );
            (k.to_string(), n.to_string(), e)
        })
        .collect();
    assert!(out.len() >= 30, "queries.txt has only {} lines", out.len());
    out
}

#[test]
fn prometheus_scrapes_a_replay_and_every_dashboard_and_rule_query_returns_data() {
    let t0 = Instant::now();
    let version = Command::new("prometheus").arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "`prometheus` is not runnable from PATH ({version:?}): it comes with Debian's \
         `prometheus` package, which `make deps` installs"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_path = dir.path().to_path_buf();

    // 1. Prometheus on loopback first, ready before zonewatch starts (so the
    //    replay cannot outrun a slow start): temporary config and data dir,
    //    1 s scrapes and rule evaluations, the shipped rule files, zonewatch's
    //    address chosen here.
    let port = free_port();
    let target = format!("127.0.0.1:{}", free_port());
    let rule_list: String = rule_files()
        .iter()
        .map(|p| format!("  - \"{}\"\n", p.display()))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n{rule_list}\
         scrape_configs:\n  - job_name: zonewatch\n    metrics_path: /metrics\n    \
         scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      \
         - targets: [\"{target}\"]\n        labels:\n          sensor: {SENSOR}\n"
    );
    let (mut prom, prom_err, prom_reader) =
        start_prometheus(Command::new("prometheus"), dir.path(), &config, port);
    let prom_log = || prom_err.lock().unwrap_or_else(|e| e.into_inner()).clone();

    // 2. zonewatch: paced replay, metrics on its address, held afterwards.
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/example-site.toml");
    let mut cmd = Command::new(BIN);
    cmd.args(["replay", "-q", "--speed", SPEED, "--rules", rules])
        .arg("--alerts")
        .arg(dir.path().join("alerts.jsonl"))
        .args(["--metrics-listen", &target, "--hold"]);
    for c in CAPTURES {
        cmd.arg(bundled(c));
    }
    let mut zw = ChildGuard::spawn(cmd);
    let (zw_err, zw_reader) = tap_stderr(&mut zw);
    wait_stderr(&mut zw, &zw_err, WAIT, "metrics address", |t| {
        t.contains("metrics on http://") && t.contains("/metrics\n")
    });

    // The target must be up while the replay still runs (the attacks come at
    // ~10 s), so rates are measured over a changing counter.
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(Ok(Some(st))) = prom.child.as_mut().map(|c| c.try_wait()) {
            panic!("prometheus exited ({st}):\n{}", prom_log());
        }
        let t = api(port, "/api/v1/targets");
        let up = t["data"]["activeTargets"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["health"] == "up"));
        if up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "target {target} not up in prometheus within {WAIT:?}:\n{}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let up_at = t0.elapsed();
    assert!(
        !zw_err.lock().unwrap().contains("replay done"),
        "the replay ended before Prometheus scraped it (target up after {up_at:?}); \
         lower --speed"
    );
    wait_stderr(&mut zw, &zw_err, WAIT, "end of replay", |t| {
        t.contains("replay done")
    });

    // Settled: Prometheus has scraped the final counters (zonewatch serves
    // them unchanged from here on, --hold) SETTLE_SCRAPES more times, so a
    // series born late in the replay (the DoS alerts) has the two samples
    // increase() needs, and has evaluated the rules after that. Counted
    // scrapes, not a fixed sleep.
    let last = scrape_value(&target, "zonewatch_capture_packets_total");
    let samples = || -> Option<u64> {
        let q = query(
            port,
            &format!("count_over_time(zonewatch_capture_packets_total{{sensor=\"{SENSOR}\"}}[1h])"),
        )
        .expect("query");
        q["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let deadline = Instant::now() + WAIT;
    let first_final = loop {
        let q = query(
            port,
            &format!("zonewatch_capture_packets_total{{sensor=\"{SENSOR}\"}} == {last}"),
        )
        .expect("query");
        if result_len(&q) > 0 {
            break samples().unwrap_or(0);
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never scraped the final {last} packets:\n{}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let scraped_at = loop {
        if samples().is_some_and(|n| n >= first_final + SETTLE_SCRAPES) {
            break unix_now();
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not scrape {SETTLE_SCRAPES} more times after the replay:\n{}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    loop {
        let r = api(port, "/api/v1/rules");
        let groups = r["data"]["groups"].as_array().cloned().unwrap_or_default();
        let evaluated = !groups.is_empty()
            && groups.iter().all(|g| {
                g["lastEvaluation"]
                    .as_str()
                    .and_then(parse_rfc3339)
                    .is_some_and(|t| t > scraped_at)
            });
        if evaluated {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not evaluate the rules after the last scrape: {r}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // 3. Every expression of the dashboard and the rules.
    let qs = queries();
    let names: BTreeSet<&str> = qs.iter().map(|(_, n, _)| n.as_str()).collect();
    let mut problems = Vec::new();
    for (name, why, _) in EMPTY {
        if !names.contains(name) {
            problems.push(format!("EMPTY lists {name:?} ({why}), not in queries.txt"));
        }
    }
    for (kind, name, expr) in &qs {
        let data = match query(port, expr) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{kind} {name}: refused: {e}\n    {expr}"));
                continue;
            }
        };
        let n = result_len(&data);
        match EMPTY.iter().find(|(e, _, _)| e == name) {
            None if n == 0 => problems.push(format!("{kind} {name}: no data\n    {expr}")),
            None => {}
            Some((_, why, _)) if n > 0 => problems.push(format!(
                "{kind} {name}: listed as empty ({why}) but returns {}\n    {expr}",
                data["result"]
            )),
            Some((_, why, probe)) => match query(port, probe) {
                Ok(p) if result_len(&p) > 0 => {}
                other => problems.push(format!(
                    "{kind} {name}: empty ({why}) but its probe {probe} returns {other:?}"
                )),
            },
        }
    }
    // Scraped during the replay: rates are not all zero.
    let rate = query(
        port,
        "sum(rate(zonewatch_capture_packets_total{sensor=\"test1\"}[1m])) > 0",
    )
    .expect("rate query");
    if result_len(&rate) == 0 {
        problems.push(
            "rate(zonewatch_capture_packets_total[1m]) is 0: no scrape during the replay".into(),
        );
    }

    // The rules: all loaded and evaluated without error; the critical
    // separation violation and the DoS start fire for this traffic.
    let r = api(port, "/api/v1/rules");
    let rules: Vec<&Value> = r["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    let rule_names: BTreeSet<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
    for (kind, name, _) in qs.iter().filter(|(k, _, _)| k == "rule") {
        if !rule_names.contains(name.as_str()) {
            problems.push(format!("{kind} {name}: not loaded by prometheus: {r}"));
        }
    }
    for rule in &rules {
        if rule["health"] != "ok" {
            problems.push(format!(
                "rule {}: health {} ({})",
                rule["name"], rule["health"], rule["lastError"]
            ));
        }
    }
    for (name, src, dst) in [
        (
            "ZonewatchCriticalSeparationViolation",
            Some("internet"),
            "mynumber.srv",
        ),
        ("ZonewatchDosStarted", None, "mynumber.srv"),
    ] {
        let rule = rules.iter().find(|r| r["name"] == name);
        let active: Vec<&Value> = rule
            .and_then(|r| r["alerts"].as_array())
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == "firing" || a["state"] == "pending")
            .collect();
        let hit = active.iter().any(|a| {
            a["labels"]["sensor"] == SENSOR
                && a["labels"]["dst_zone"] == dst
                && src.is_none_or(|s| a["labels"]["src_zone"] == s)
        });
        if !hit {
            problems.push(format!(
                "rule {name}: no firing/pending alert for {src:?} -> {dst} on {SENSOR}: {rule:?}"
            ));
        }
    }

    // 4. Clean up: SIGTERM ends zonewatch with 0; Prometheus stops; the
    //    temporary directory goes.
    send_signal(zw.id(), "TERM");
    let mut child = zw.child.take().expect("zonewatch running");
    let deadline = Instant::now() + WAIT;
    let st = loop {
        if let Some(st) = child.try_wait().expect("wait zonewatch") {
            break st;
        }
        assert!(Instant::now() < deadline, "zonewatch ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    zw_reader.join().expect("zonewatch stderr reader");
    let zw_text = zw_err.lock().unwrap().clone();
    assert!(
        st.success(),
        "zonewatch exit after SIGTERM: {st}\n{zw_text}"
    );
    assert!(!zw_text.contains("panicked"), "{zw_text}");

    send_signal(prom.id(), "TERM");
    let mut child = prom.child.take().expect("prometheus running");
    let deadline = Instant::now() + WAIT;
    loop {
        if child.try_wait().expect("wait prometheus").is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    prom_reader.join().expect("prometheus stderr reader");
    drop(dir);
    assert!(!dir_path.exists(), "{} not deleted", dir_path.display());

    assert!(
        problems.is_empty(),
        "{} problem(s) with {} queries against a real Prometheus:\n{}\n\nprometheus log tail:\n{}",
        problems.len(),
        qs.len(),
        problems.join("\n"),
        prom_log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A Prometheus duration as the shipped config writes it (`15s`, `1m`,
/// `500ms`, `1m30s`).
fn prom_duration(text: &str) -> Duration {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits]
            .parse()
            .unwrap_or_else(|_| panic!("not a Prometheus duration: {text:?}"));
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        total += match &rest[..unit] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(60 * n),
            "h" => Duration::from_secs(3600 * n),
            u => panic!("unit {u:?} of {text:?} not handled here"),
        };
        rest = &rest[unit..];
    }
    total
}

/// The intervals of grafana/prometheus/prometheus.yml, as written there:
/// (global scrape_interval, global evaluation_interval, the zonewatch job's
/// scrape_interval, its scrape_timeout).
struct ShippedIntervals {
    global_scrape: String,
    evaluation: String,
    job_scrape: String,
    job_timeout: String,
}

fn shipped_intervals() -> ShippedIntervals {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/grafana/prometheus/prometheus.yml"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // (top-level section, key) → value, for the keys read here; the job's
    // keys are those after `job_name: zonewatch`.
    let (mut section, mut in_job) = (String::new(), false);
    let mut found = std::collections::BTreeMap::new();
    for line in text.lines() {
        let code = line.split('#').next().unwrap_or("").trim_end();
        if code.trim().is_empty() {
            continue;
        }
        if !code.starts_with(' ') {
            section = code.trim_end_matches(':').to_string();
            continue;
        }
        let t = code.trim().trim_start_matches("- ");
        if let Some(name) = t.strip_prefix("job_name:") {
            in_job = name.trim() == "zonewatch";
            continue;
        }
        if let Some((k, v)) = t.split_once(':') {
            let owner = match section.as_str() {
                "scrape_configs" if in_job => "job",
                s => s,
            };
            found
                .entry((owner.to_string(), k.trim().to_string()))
                .or_insert_with(|| v.trim().to_string());
        }
    }
    let get = |owner: &str, key: &str| -> Option<String> {
        found.get(&(owner.to_string(), key.to_string())).cloned()
    };
    let global_scrape = get("global", "scrape_interval").unwrap_or_else(|| "1m".to_string());
    let evaluation = get("global", "evaluation_interval").unwrap_or_else(|| "1m".to_string());
    let job_scrape = get("job", "scrape_interval").unwrap_or_else(|| global_scrape.clone());
    let job_timeout = get("job", "scrape_timeout")
        .or_else(|| get("global", "scrape_timeout"))
        .unwrap_or_else(|| "10s".to_string());
    ShippedIntervals {
        global_scrape,
        evaluation,
        job_scrape,
        job_timeout,
    }
}

#[test]
fn the_shipped_prometheus_intervals_are_read() {
    let s = shipped_intervals();
    for d in [
        &s.global_scrape,
        &s.evaluation,
        &s.job_scrape,
        &s.job_timeout,
    ] {
        assert!(prom_duration(d) > Duration::ZERO, "{d}");
    }
    assert!(prom_duration(&s.job_timeout) <= prom_duration(&s.job_scrape));
    assert_eq!(prom_duration("1m30s"), Duration::from_secs(90));
    assert_eq!(prom_duration("500ms"), Duration::from_millis(500));
}

/// GET `path` from the Prometheus listening on 127.0.0.1:`port` inside `ns`
/// (curl in the namespace) and parse the JSON body.
fn ns_api(ns: &crate::live::Netns, port: u16, path: &str) -> Value {
    let mut c = ns.cmd("curl");
    c.args([
        "-sS",
        "--max-time",
        "5",
        &format!("http://127.0.0.1:{port}{path}"),
    ]);
    let r = crate::util::run_cmd(c);
    assert_eq!(r.code(), 0, "{} failed: {}", r.cmdline, r.stderr);
    serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("GET {path}: body is not JSON ({e}): {}", r.stdout))
}

/// Sources of the measured flows, one zone each, so each flow is a new
/// alert series (a new `src_zone`) and fires the rule anew.
const FIRING_SOURCES: [(&str, &str); 3] = [
    ("192.0.2.10", "term1"),
    ("192.0.2.11", "term2"),
    ("192.0.2.12", "term3"),
];

/// Issue #12: from one violating packet on the wire to the critical
/// separation alert firing in a real Prometheus that scrapes the live
/// sensor and evaluates the shipped rules at the shipped intervals
/// (grafana/prometheus/prometheus.yml). The issue measured 87 s before the
/// early alert lines (a 60 s fold window, then a scrape and an evaluation).
///
/// Now: the line ~1 s after the packet, then up to one scrape interval until
/// Prometheus has the new series, then up to one evaluation interval until
/// the rule (no `for:`) fires. Each of [`FIRING_SOURCES`] sends one UDP
/// datagram (a flow of its own zone) at a random phase of the scrape cycle;
/// the bound is 1 s + scrape + evaluation interval + 10 s for a loaded
/// machine. Root only: zonewatch and Prometheus run in the capture
/// namespace of a veth.
#[test]
fn a_violation_fires_the_prometheus_alert_within_a_scrape_and_an_evaluation_live() {
    crate::live::require_root();
    let version = Command::new("prometheus").arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "`prometheus` is not runnable from PATH ({version:?}): Debian's `prometheus` \
         package (`make deps`)"
    );
    let shipped = shipped_intervals();
    let (scrape, evaluation) = (
        prom_duration(&shipped.job_scrape),
        prom_duration(&shipped.evaluation),
    );
    let bound = Duration::from_secs(11) + scrape + evaluation;

    let v = crate::live::Veth::between_blocks("zwq", crate::live::AB_DST, FIRING_SOURCES[0].0);
    for (addr, _) in &FIRING_SOURCES[1..] {
        v.snd
            .run(&["ip", "addr", "add", &format!("{addr}/24"), "dev", &v.snd_if]);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rules = String::new();
    for (addr, zone) in FIRING_SOURCES {
        rules.push_str(&format!(
            "[[zone]]\nid = \"{zone}\"\ncidrs = [\"{addr}/32\"]\n\n"
        ));
    }
    rules.push_str(
        "[[zone]]\nid = \"srv\"\ncidrs = [\"198.51.100.0/24\"]\n\n[severity]\ndefault = \"critical\"\n",
    );
    let rules_path = dir.path().join("rules.toml");
    std::fs::write(&rules_path, rules).expect("write rules");
    let alerts = dir.path().join("alerts.jsonl");

    // zonewatch: a live sensor, metrics on its default address (the
    // namespace's 127.0.0.1:9464, the port the shipped config scrapes).
    let mut cmd = v.cap.cmd(BIN);
    cmd.args(["run", "-q", "-i", &v.cap_if, "-w", "2", "--rules"])
        .arg(&rules_path)
        .arg("--alerts")
        .arg(&alerts);
    let mut zw = ChildGuard::spawn(cmd);
    let (zw_err, zw_reader) = tap_stderr(&mut zw);
    wait_stderr(&mut zw, &zw_err, WAIT, "listening", |t| {
        t.contains("zonewatch: listening on ")
    });

    // Prometheus in the same namespace, with the shipped intervals and rules.
    let port = 9090;
    let rule_list: String = rule_files()
        .iter()
        .map(|p| format!("  - \"{}\"\n", p.display()))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: {}\n  evaluation_interval: {}\n\
         rule_files:\n{rule_list}\
         scrape_configs:\n  - job_name: zonewatch\n    metrics_path: /metrics\n    \
         scrape_interval: {}\n    scrape_timeout: {}\n    static_configs:\n      \
         - targets: [\"127.0.0.1:9464\"]\n        labels:\n          sensor: {SENSOR}\n",
        shipped.global_scrape, shipped.evaluation, shipped.job_scrape, shipped.job_timeout
    );
    let (prom, prom_err, prom_reader) =
        start_prometheus(v.cap.cmd("prometheus"), dir.path(), &config, port);
    let prom_log = || prom_err.lock().unwrap_or_else(|e| e.into_inner()).clone();

    // Steady state before the first packet: the target scraped (up) and the
    // rules evaluated since.
    let deadline = Instant::now() + WAIT + scrape + evaluation;
    let up_at = loop {
        let t = ns_api(&v.cap, port, "/api/v1/targets");
        let up = t["data"]["activeTargets"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["health"] == "up"));
        if up {
            break unix_now();
        }
        assert!(
            Instant::now() < deadline,
            "zonewatch not up in prometheus: {t}\n{}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    loop {
        let r = ns_api(&v.cap, port, "/api/v1/rules");
        let evaluated = r["data"]["groups"].as_array().is_some_and(|g| {
            !g.is_empty()
                && g.iter().all(|g| {
                    g["lastEvaluation"]
                        .as_str()
                        .and_then(parse_rfc3339)
                        .is_some_and(|t| t > up_at)
                })
        });
        if evaluated {
            break;
        }
        assert!(Instant::now() < deadline, "rules not evaluated: {r}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut measured = Vec::new();
    for (i, (src, zone)) in FIRING_SOURCES.iter().enumerate() {
        // A random phase of the scrape cycle (std's randomly keyed hasher:
        // the clock would not do, polls end in step with the evaluations).
        let random = {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(i)
        };
        std::thread::sleep(scrape.mul_f64((random % 1000) as f64 / 1000.0));

        // One violating flow: one datagram (the kernel's port unreachable
        // answers it).
        let script = format!(
            "import socket\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('{src}', 0))\n\
             s.sendto(b'zonewatch-prometheus-{i}', ('{}', 9999))\n",
            crate::live::AB_DST
        );
        v.snd.run(&["python3", "-c", &script]);
        let (sent_at, sent_unix) = (Instant::now(), unix_now());

        let mut line_after = None;
        let firing = loop {
            if line_after.is_none() {
                let text = std::fs::read_to_string(&alerts).unwrap_or_default();
                if text
                    .lines()
                    .any(|l| l.contains(&format!("\"src_ip\":\"{src}\"")))
                {
                    line_after = Some(sent_at.elapsed());
                }
            }
            let a = ns_api(&v.cap, port, "/api/v1/alerts");
            let hit = a["data"]["alerts"].as_array().and_then(|list| {
                list.iter()
                    .find(|x| {
                        x["labels"]["alertname"] == "ZonewatchCriticalSeparationViolation"
                            && x["labels"]["src_zone"] == *zone
                            && x["labels"]["dst_zone"] == "srv"
                            && x["labels"]["sensor"] == SENSOR
                            && x["state"] == "firing"
                    })
                    .cloned()
            });
            if let Some(x) = hit {
                break x;
            }
            assert!(
                sent_at.elapsed() < bound,
                "no firing ZonewatchCriticalSeparationViolation for {zone} -> srv {bound:?} \
                 after the packet (line after {line_after:?}; shipped scrape {}, evaluation \
                 {}): {a}\nalerts:\n{}\nprometheus:\n{}",
                shipped.job_scrape,
                shipped.evaluation,
                std::fs::read_to_string(&alerts).unwrap_or_default(),
                prom_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let api_after = sent_at.elapsed();
        let line_after = line_after.unwrap_or_else(|| panic!("firing, but no line from {src}?"));
        // When Prometheus first had the series (its first sample) and when
        // the rule found it (activeAt), from Prometheus's own clock.
        let q = query_ns(
            &v.cap,
            port,
            &format!("zonewatch_alerts_total{{src_zone=\"{zone}\"}}[10m]"),
        );
        let first_sample = q["result"][0]["values"][0][0]
            .as_f64()
            .unwrap_or_else(|| panic!("no sample of {zone}: {q}"));
        let active_at = firing["activeAt"]
            .as_str()
            .and_then(parse_rfc3339)
            .unwrap_or_else(|| panic!("no activeAt: {firing}"));
        eprintln!(
            "prometheus (scrape {}, evaluation {}): {zone}: line {:.2} s, scraped {:.2} s, \
             rule active {:.2} s, firing on /api/v1/alerts {:.2} s after the packet",
            shipped.job_scrape,
            shipped.evaluation,
            line_after.as_secs_f64(),
            first_sample - sent_unix,
            active_at - sent_unix,
            api_after.as_secs_f64()
        );
        measured.push(api_after);
    }
    eprintln!(
        "prometheus firing latencies: {:?} (bound {bound:?})",
        measured
            .iter()
            .map(|d| format!("{:.2} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );

    // Clean stops.
    for (guard, reader, what) in [
        (zw, zw_reader, "zonewatch"),
        (prom, prom_reader, "prometheus"),
    ] {
        let mut guard = guard;
        send_signal(guard.id(), "TERM");
        let mut child = guard.child.take().expect("running");
        let deadline = Instant::now() + WAIT;
        let st = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break Some(st);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        reader.join().expect("stderr reader");
        if what == "zonewatch" {
            let text = zw_err.lock().unwrap().clone();
            assert!(
                st.is_some_and(|s| s.success()),
                "zonewatch exit after SIGTERM: {st:?}\n{text}"
            );
        }
    }
}

/// An instant query through curl in `ns`.
fn query_ns(ns: &crate::live::Netns, port: u16, expr: &str) -> Value {
    let r = ns_api(ns, port, &format!("/api/v1/query?query={}", encode(expr)));
    assert_eq!(r["status"], "success", "{expr}: {r}");
    r["data"].clone()
}
