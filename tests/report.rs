//! `--report FILE.json` and the human summary's report sections: the report's
//! numbers equal the summary's, the alert file's and the flow lines'; the
//! Japanese summary (`--lang ja`) of a fixed replay equals its golden file;
//! truncated inputs, gaps in packet time and time going backwards show up as
//! anomalies.
//!
//! Regenerate the golden file after an intended change with
//! `ZONEWATCH_BLESS=1 cargo test --test integration report::`.

use crate::util::{bundled, parse_flows, run_cmd, zonewatch, BIN};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const GOLDEN_JA: &str = "tests/golden/report/zones-ja.txt";

/// What one `replay --summary --alerts --flows --report` wrote.
struct Outs {
    summary: Value,
    report: Value,
    alerts: Vec<Map<String, Value>>,
    flows: Vec<Map<String, Value>>,
    stdout: String,
}

fn replay_report(files: &[&Path], extra: &[&str]) -> Outs {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| dir.path().join(n);
    let mut cmd = Command::new(BIN);
    cmd.arg("replay")
        .arg("--summary")
        .arg(p("s.json"))
        .arg("--alerts")
        .arg(p("a.jsonl"))
        .arg("--flows")
        .arg(p("f.jsonl"))
        .arg("--report")
        .arg(p("r.json"))
        .args(extra)
        .args(files);
    let run = run_cmd(cmd);
    run.assert_ok();
    let json = |n: &str| -> Value {
        let text = std::fs::read_to_string(p(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{n} is not JSON ({e}): {text}"))
    };
    let lines = |n: &str| -> Vec<String> {
        std::fs::read_to_string(p(n))
            .unwrap_or_else(|e| panic!("{n}: {e}"))
            .lines()
            .map(str::to_string)
            .collect()
    };
    Outs {
        summary: json("s.json"),
        report: json("r.json"),
        // Each alert as it finally stands (an update line replaces its first).
        alerts: crate::util::finals(&parse_flows(&lines("a.jsonl"))),
        flows: parse_flows(&lines("f.jsonl")),
        stdout: run.stdout,
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn example_rules() -> String {
    format!("{ROOT}/rules/example-site.toml")
}

/// Every number of the report that the summary, the alert file or the flow
/// lines also give must be the same.
fn check_agreement(name: &str, o: &Outs) {
    let (sum, rep) = (&o.summary, &o.report);
    for k in ["packets", "bytes", "wire_bytes"] {
        assert_eq!(rep["totals"][k], sum[k], "{name}: totals.{k}");
    }
    assert_eq!(
        rep["totals"]["flows"], sum["flows"]["created"],
        "{name}: flows"
    );
    assert_eq!(rep["time"]["first_packet"], sum["first_packet"], "{name}");
    assert_eq!(rep["inputs"], sum["sources"], "{name}: inputs");
    assert_eq!(u(&rep["totals"]["flows"]) as usize, o.flows.len(), "{name}");

    // Alerts: as the summary says, and as the alert file holds.
    let ra = &rep["alerts"];
    assert_eq!(ra["written"], sum["alerts"]["written"], "{name}");
    assert_eq!(ra["by_kind"], sum["alerts"]["by_kind"], "{name}");
    assert_eq!(ra["by_severity"], sum["alerts"]["by_severity"], "{name}");
    assert_eq!(u(&ra["written"]) as usize, o.alerts.len(), "{name}");
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut sevs: BTreeMap<String, u64> = BTreeMap::new();
    for a in &o.alerts {
        *kinds.entry(s(&a["kind"]).to_string()).or_default() += 1;
        *sevs.entry(s(&a["severity"]).to_string()).or_default() += 1;
    }
    let by_kind: BTreeMap<String, u64> = ra["by_kind"]
        .as_object()
        .expect("by_kind")
        .iter()
        .map(|(k, v)| (k.clone(), u(v)))
        .collect();
    assert_eq!(by_kind, kinds, "{name}: alerts by kind vs the alert file");
    for (sev, n) in ra["by_severity"].as_object().expect("by_severity") {
        assert_eq!(
            u(n),
            sevs.get(sev).copied().unwrap_or(0),
            "{name}: {sev} alerts vs the alert file"
        );
    }

    // The matrix: sums equal the policy section; each pair equals the flow lines.
    let pairs = rep["zone_matrix"]["pairs"].as_array().expect("pairs");
    assert!(!pairs.is_empty(), "{name}: empty matrix with rules");
    let total = |k: &str| pairs.iter().map(|p| u(&p[k])).sum::<u64>();
    assert_eq!(total("flows"), u(&sum["flows"]["created"]), "{name}");
    let pol = &sum["policy"]["flows"];
    for k in ["allowed", "violation", "unknown"] {
        assert_eq!(total(k), u(&pol[k]), "{name}: matrix {k} vs summary policy");
    }
    for (sev, n) in sum["policy"]["violations_by_severity"]
        .as_object()
        .expect("violations_by_severity")
    {
        let m: u64 = pairs
            .iter()
            .map(|p| u(&p["violations_by_severity"][sev]))
            .sum();
        assert_eq!(m, u(n), "{name}: {sev} violations");
    }
    let zone = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let mut from_lines: BTreeMap<(String, String), [u64; 3]> = BTreeMap::new();
    let mut talkers: BTreeMap<(String, String), BTreeMap<String, u64>> = BTreeMap::new();
    for f in &o.flows {
        let key = (zone(&f["src_zone"]), zone(&f["dst_zone"]));
        let bytes = u(&f["orig_bytes"]) + u(&f["resp_bytes"]);
        let e = from_lines.entry(key.clone()).or_default();
        e[0] += 1;
        e[1] += u(&f["orig_pkts"]) + u(&f["resp_pkts"]);
        e[2] += bytes;
        *talkers
            .entry(key)
            .or_default()
            .entry(s(&f["src_ip"]).to_string())
            .or_default() += bytes;
    }
    let from_report: BTreeMap<(String, String), [u64; 3]> = pairs
        .iter()
        .map(|p| {
            (
                (zone(&p["src_zone"]), zone(&p["dst_zone"])),
                [u(&p["flows"]), u(&p["packets"]), u(&p["bytes"])],
            )
        })
        .collect();
    assert_eq!(from_report, from_lines, "{name}: matrix vs flow lines");

    // Top talkers: the largest initiator of each pair, as the flow lines say.
    let tt = rep["top_talkers"].as_array().expect("top_talkers");
    assert_eq!(tt.len(), from_lines.len(), "{name}: one entry per pair");
    for t in tt {
        let key = (zone(&t["src_zone"]), zone(&t["dst_zone"]));
        assert_eq!(t["complete"], true, "{name}: {key:?}");
        let want = &talkers[&key];
        let top = t["top"].as_array().expect("top");
        assert_eq!(top.len(), want.len().min(5), "{name}: {key:?}");
        let max = want.values().max().copied().unwrap_or(0);
        assert_eq!(u(&top[0]["bytes"]), max, "{name}: {key:?} top talker");
        assert_eq!(want[s(&top[0]["address"])], max, "{name}: {key:?}");
    }
}

#[test]
fn report_numbers_equal_the_summary_alert_file_and_flow_lines() {
    let rules = example_rules();
    for cap in ["zones.pcap", "scan-nmap-syn.pcap"] {
        let o = replay_report(&[&bundled(cap)], &["-q", "--rules", &rules]);
        assert!(o.stdout.is_empty(), "-q prints nothing: {}", o.stdout);
        check_agreement(cap, &o);
        assert_eq!(o.report["zone_matrix"]["rules"], true);
        assert_eq!(o.report["anomalies"]["gaps"]["count"], 0, "{cap}");
        assert_eq!(o.report["anomalies"]["time_backwards"], 0, "{cap}");
    }
    // The scan raises detector alerts beside separation violations.
    let o = replay_report(
        &[&bundled("scan-nmap-syn.pcap")],
        &["-q", "--rules", &rules],
    );
    assert!(
        o.alerts.iter().any(|a| a["kind"] == "port_scan"),
        "{:?}",
        o.report["alerts"]
    );
}

#[test]
fn four_workers_report_the_same_matrix_and_talkers_as_one() {
    let rules = example_rules();
    let files = [bundled("zones.pcap"), bundled("zones-v6.pcap")];
    let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let one = replay_report(&files, &["-q", "-w", "1", "--rules", &rules]);
    let four = replay_report(&files, &["-q", "-w", "4", "--rules", &rules]);
    check_agreement("zones+v6 -w 4", &four);
    assert_eq!(one.report["zone_matrix"], four.report["zone_matrix"]);
    assert_eq!(one.report["top_talkers"], four.report["top_talkers"]);
}

#[test]
fn without_rules_the_matrix_is_empty_and_says_so() {
    let o = replay_report(&[&bundled("sample.pcap")], &["-q"]);
    let m = &o.report["zone_matrix"];
    assert_eq!(m["rules"], false);
    assert_eq!(m["pairs"].as_array().map(Vec::len), Some(0));
    // Top talkers still cover every flow, under the no-zone pair.
    let tt = o.report["top_talkers"].as_array().expect("top_talkers");
    assert_eq!(tt.len(), 1);
    assert_eq!((s(&tt[0]["src_zone"]), s(&tt[0]["dst_zone"])), ("-", "-"));
    assert_eq!(
        o.report["alerts"]["written"],
        o.summary["alerts"]["written"]
    );
    let human = zonewatch(["replay".as_ref(), bundled("sample.pcap").as_os_str()]);
    human.assert_ok();
    assert!(
        human.stdout.contains("zone matrix    none (no --rules)"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("top talkers    - -> -: "),
        "{}",
        human.stdout
    );
}

/// The first line's wall-clock figures (elapsed time, rate) vary per run.
fn neutralise(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        match (i, line.find("処理時間 "), line.find("、ワーカー")) {
            (0, Some(a), Some(b)) if a < b => {
                out.push_str(&line[..a]);
                out.push_str("処理時間 N 秒（毎秒 N パケット");
                out.push_str(&line[b..]);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[test]
fn japanese_summary_matches_its_golden_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alerts = dir.path().join("a.jsonl");
    // From the crate root, so the input's name in the text is stable.
    let mut cmd = Command::new(BIN);
    cmd.current_dir(ROOT)
        .args(["replay", "-w", "1", "--lang", "ja", "--rules"])
        .arg("rules/example-site.toml")
        .arg("--alerts")
        .arg(&alerts)
        .arg("captures/zones.pcap");
    let run = run_cmd(cmd);
    run.assert_ok();
    let got = neutralise(&run.stdout);
    assert!(got.starts_with("zonewatch リプレイ：136 パケット"), "{got}");
    let path = Path::new(ROOT).join(GOLDEN_JA);
    if std::env::var_os("ZONEWATCH_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("golden dir");
        std::fs::write(&path, &got).expect("bless");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with ZONEWATCH_BLESS=1)", path.display()));
    assert_eq!(got, want, "--lang ja differs from {GOLDEN_JA}");
    // English stays the default and keeps its own lines.
    let mut cmd = Command::new(BIN);
    cmd.current_dir(ROOT)
        .args(["replay", "-w", "1", "--rules", "rules/example-site.toml"])
        .arg("captures/zones.pcap");
    let en = run_cmd(cmd);
    en.assert_ok();
    assert!(en
        .stdout
        .contains("  policy         flows allowed 5, violation 7, unknown 0"));
    assert!(en
        .stdout
        .contains("  zone matrix    initiator zone -> responder zone"));
    assert!(!en.stdout.contains("ゾーン"), "{}", en.stdout);
}

/// Offsets of each record of a little-endian microsecond pcap: (start, caplen).
fn pcap_records(bytes: &[u8]) -> Vec<(usize, usize)> {
    assert_eq!(
        bytes.get(..4),
        Some(&[0xd4, 0xc3, 0xb2, 0xa1][..]),
        "expected a little-endian pcap"
    );
    let mut out = Vec::new();
    let mut pos = 24;
    while let Some(h) = bytes.get(pos..pos + 16) {
        let caplen = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
        out.push((pos, caplen));
        pos += 16 + caplen;
    }
    out
}

#[test]
fn a_truncated_capture_is_an_anomaly_with_its_reason() {
    let src = std::fs::read(bundled("zones.pcap")).expect("read zones.pcap");
    let recs = pcap_records(&src);
    // Cut in the middle of the 50th record's data.
    let (start, caplen) = recs[49];
    let cut = start + 16 + caplen / 2;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("zones-cut.pcap");
    std::fs::write(&path, &src[..cut]).expect("write cut copy");
    let o = replay_report(&[&path], &["-q", "--rules", &example_rules()]);
    let stopped = o.report["anomalies"]["stopped_early"]
        .as_array()
        .expect("stopped_early");
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert_eq!(s(&stopped[0]["input"]), path.display().to_string());
    let want = format!(
        "file cut short: record at offset {start} claims {caplen} captured bytes, only {} remain",
        caplen / 2
    );
    assert_eq!(s(&stopped[0]["reason"]), want);
    assert_eq!(u(&o.report["totals"]["packets"]), 49);
    // Human summary (English and Japanese) names it too.
    for (lang, needle) in [
        ("en", "stopped early: file cut short"),
        ("ja", "途中で終わっています：file cut short"),
    ] {
        let r = zonewatch([
            "replay".as_ref(),
            "--lang".as_ref(),
            lang.as_ref(),
            path.as_os_str(),
        ]);
        r.assert_ok();
        assert!(r.stdout.contains(needle), "{lang}: {}", r.stdout);
    }
}

/// The summary's first and last packet times of one capture.
fn span(file: &Path) -> (String, String) {
    let o = replay_report(&[file], &["-q"]);
    (
        s(&o.summary["first_packet"]).to_string(),
        s(&o.summary["last_packet"]).to_string(),
    )
}

#[test]
fn a_gap_between_two_merged_captures_is_listed() {
    let (a, b) = (bundled("zones.pcap"), bundled("zones-v6.pcap"));
    let ((a0, a1), (b0, _)) = (span(&a), span(&b));
    assert!(
        a1 < b0,
        "zones.pcap ({a0}..{a1}) must end before zones-v6.pcap starts ({b0})"
    );
    let o = replay_report(&[&a, &b], &["-q"]);
    let g = &o.report["anomalies"]["gaps"];
    assert_eq!(g["threshold_secs"], 60.0);
    assert_eq!(g["count"], 1, "{g}");
    let listed = &g["listed"][0];
    assert_eq!(
        (s(&listed["from"]), s(&listed["to"])),
        (a1.as_str(), b0.as_str())
    );
    let t = |x: &str| humantime_secs(x);
    let secs = listed["secs"].as_f64().expect("secs");
    assert!((secs - (t(&b0) - t(&a1))).abs() < 1e-6, "{secs}");
    assert!(secs > 60.0, "{secs}");
    // A threshold above the gap lists nothing.
    let o = replay_report(&[&a, &b], &["-q", "--report-gap-secs", "86400"]);
    assert_eq!(o.report["anomalies"]["gaps"]["count"], 0);
}

/// Seconds of an RFC 3339 UTC time with microseconds ("2026-11-26T02:22:30.737088Z")
/// since midnight of its day, enough to subtract two times of one day.
fn humantime_secs(t: &str) -> f64 {
    let clock = t
        .split('T')
        .nth(1)
        .and_then(|c| c.strip_suffix('Z'))
        .unwrap_or_else(|| panic!("not RFC 3339 UTC: {t}"));
    let parts: Vec<f64> = clock
        .split(':')
        .map(|p| p.parse().unwrap_or_else(|_| panic!("{t}")))
        .collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// A pcap of UDP packets 192.0.2.1 → 198.51.100.1 at these times (seconds).
fn udp_pcap(times: &[u32]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, t) in times.iter().enumerate() {
        let mut f = Vec::new();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let total: u16 = 20 + 8 + 4;
        let mut ip = vec![0x45, 0, 0, 0, 0, i as u8, 0, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[192, 0, 2, 1, 198, 51, 100, 1]);
        let sum = ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum::<u32>();
        let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x9c, 0x40, 0x00, 0x35, 0, 12, 0, 0, b't', b'e', b's', b't']);
        out.extend_from_slice(&(1_700_000_000 + t).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&f);
    }
    out
}

#[test]
fn gaps_and_time_going_backwards_in_one_file_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gappy.pcap");
    // 0 → 100: a gap; 150 → 120: backwards; 150 → 300: a gap (from the newest, 150).
    std::fs::write(&path, udp_pcap(&[0, 10, 100, 150, 120, 300])).expect("write");
    let o = replay_report(&[&path], &["-q"]);
    let a = &o.report["anomalies"];
    assert_eq!(a["time_backwards"], 1, "{a}");
    assert_eq!(a["gaps"]["count"], 2, "{a}");
    let secs: Vec<f64> = a["gaps"]["listed"]
        .as_array()
        .expect("listed")
        .iter()
        .map(|g| g["secs"].as_f64().expect("secs"))
        .collect();
    assert_eq!(secs, vec![90.0, 150.0]);
    assert_eq!(u(&o.report["totals"]["packets"]), 6);
    let ja = zonewatch([
        "replay".as_ref(),
        "--lang".as_ref(),
        "ja".as_ref(),
        path.as_os_str(),
    ]);
    ja.assert_ok();
    assert!(
        ja.stdout
            .contains("60 秒を超えてパケットのない時間帯：2 か所")
            && ja
                .stdout
                .contains("直前のパケットより時刻が前のパケット：1 個"),
        "{}",
        ja.stdout
    );
}

#[test]
fn report_on_stdout_refuses_a_second_stdout_output() {
    let r = zonewatch([
        "replay".as_ref(),
        "--report".as_ref(),
        "-".as_ref(),
        "--summary".as_ref(),
        "-".as_ref(),
        bundled("sample.pcap").as_os_str(),
    ]);
    r.assert_no_panic();
    assert_eq!(r.code(), 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("--summary - and --report - would both write to stdout"),
        "{}",
        r.stderr
    );
    // Alone on stdout: JSON there, the human summary on stderr.
    let r = zonewatch([
        "replay".as_ref(),
        "--report".as_ref(),
        "-".as_ref(),
        bundled("sample.pcap").as_os_str(),
    ]);
    r.assert_ok();
    let v: Value = serde_json::from_str(&r.stdout).expect("report JSON on stdout");
    assert!(v["totals"]["packets"].as_u64().is_some_and(|n| n > 0));
    assert!(r.stderr.contains("zone matrix    none"), "{}", r.stderr);
}
