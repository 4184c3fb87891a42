//! `--evidence DIR`: per alert, a pcap that tshark reads back holding exactly
//! the packets the alert is about (checked against tshark's own filter of the
//! original capture, frame time and MD5 of the bytes), the same for any worker
//! count, within the byte caps, with every cut counted.
//!
//! zonewatch's own files are read strictly ([`util::tshark_fields_strict`]):
//! whole records to the last byte, at least one frame, TShark exits 0. Every
//! file of every run here also has mode 0640, and an alert names only a file
//! that exists.

use crate::util::{self, bundled};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/example-site.toml");

/// One replay with evidence: the alert lines and the summary.
struct EvRun {
    _dir: tempfile::TempDir,
    ev: PathBuf,
    alerts: Vec<Map<String, Value>>,
    summary: Value,
}

fn replay_evidence(file: &str, extra: &[&str]) -> EvRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let ev = dir.path().join("ev");
    let ev_s = ev.to_str().expect("utf-8").to_string();
    let mut args = vec!["--rules", RULES, "--evidence", ev_s.as_str()];
    args.extend(extra);
    let r = util::replay_alerts(&[&bundled(file)], &args);
    EvRun {
        _dir: dir,
        ev,
        alerts: r.alerts,
        summary: r.summary,
    }
}

/// (frame time, MD5 of the frame bytes) of every frame tshark reads from
/// the bundled capture `file` that passes `filter` (all when empty).
fn frames(file: &Path, filter: &str) -> Vec<(String, String)> {
    let mut extra = vec!["-o", "frame.generate_md5_hash:TRUE"];
    if !filter.is_empty() {
        extra.extend(["-Y", filter]);
    }
    util::tshark_fields(file, &["frame.time_epoch", "frame.md5_hash"], &extra)
        .into_iter()
        .map(|v| (v[0].clone(), v[1].clone()))
        .collect()
}

/// The same for an evidence file, read strictly: whole frames, at least one,
/// tshark exits 0.
fn evidence_frames(file: &Path) -> Vec<(String, String)> {
    util::tshark_fields_strict(
        file,
        &["frame.time_epoch", "frame.md5_hash"],
        &["-o", "frame.generate_md5_hash:TRUE"],
    )
    .into_iter()
    .map(|v| (v[0].clone(), v[1].clone()))
    .collect()
}

/// Every file of an evidence directory: mode 0640 (as the other outputs;
/// the test process's umask is 022) and whole (strict read). Returns how
/// many there are.
fn check_dir(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("evidence dir") {
        let p = e.expect("entry").path();
        let mode = std::fs::metadata(&p)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o640, "{}: mode {mode:o}", p.display());
        let frames = util::pcap_frames(&p).unwrap_or_else(|e| panic!("{e}"));
        assert!(frames > 0, "{}: no frame", p.display());
        n += 1;
    }
    n
}

fn s<'a>(a: &'a Map<String, Value>, k: &str) -> &'a str {
    a.get(k)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {k} in {a:?}"))
}

fn evidence_of(a: &Map<String, Value>) -> PathBuf {
    let p = PathBuf::from(s(a, "evidence_pcap"));
    assert!(p.is_file(), "{} does not exist ({a:?})", p.display());
    assert_eq!(
        p.file_name().and_then(|n| n.to_str()),
        Some(format!("{}.pcap", s(a, "id")).as_str()),
        "the file is named by the alert id"
    );
    p
}

/// tshark's display filter for one flow of an alert line.
fn flow_filter(a: &Map<String, Value>) -> String {
    let (src, dst) = (s(a, "src_ip"), s(a, "dest_ip"));
    let addr = if src.contains(':') {
        "ipv6.addr"
    } else {
        "ip.addr"
    };
    let base = format!("{addr}=={src} && {addr}=={dst}");
    let port = |k: &str| a.get(k).and_then(Value::as_u64).expect("port");
    match s(a, "proto") {
        p @ ("tcp" | "udp") => format!(
            "{base} && {p}.port=={} && {p}.port=={}",
            port("src_port"),
            port("dest_port")
        ),
        "icmp" => format!("{base} && icmp"),
        "ipv6-icmp" => format!("{base} && icmpv6"),
        other => panic!("unexpected proto {other}"),
    }
}

#[test]
fn every_separation_alert_of_the_zone_captures_holds_exactly_its_flows_packets() {
    for file in ["zones.pcap", "zones-v6.pcap", "zones-vlan.pcap"] {
        let r = replay_evidence(file, &[]);
        assert!(!r.alerts.is_empty(), "{file}: no alerts");
        for a in &r.alerts {
            assert_eq!(s(a, "kind"), "separation_violation", "{file}: {a:?}");
            assert_eq!(a["count"], 1, "{file}: every planted violation is one flow");
            let got = evidence_frames(&evidence_of(a));
            let want = frames(&bundled(file), &flow_filter(a));
            assert!(
                !want.is_empty(),
                "{file}: the filter {} finds nothing",
                flow_filter(a)
            );
            assert_eq!(got, want, "{file}: evidence of {a:?}");
        }
        let files = check_dir(&r.ev);
        assert_eq!(
            files,
            r.alerts.len(),
            "{file}: one file per alert, no stray file"
        );
        assert_eq!(
            util::count(&r.summary, "alerts", "written"),
            r.alerts.len() as u64
        );
        let ev = &r.summary["alerts"]["evidence"];
        assert_eq!(ev["files"], r.alerts.len(), "{file}: {ev}");
        let cut: u64 = ev
            .as_object()
            .expect("evidence summary")
            .iter()
            .filter(|(k, _)| !["files", "packets", "bytes"].contains(&k.as_str()))
            .filter_map(|(_, v)| v.as_u64())
            .sum();
        assert_eq!(cut, 0, "{file}: nothing cut: {ev}");
    }
}

const SCANNER: &str = "203.0.113.66";
const TARGET: &str = "192.0.2.34";

#[test]
fn a_port_scan_alert_holds_every_frame_of_the_scanner_and_a_folded_group_its_flows() {
    let file = "scan-nmap-syn.pcap";
    let r = replay_evidence(file, &[]);
    let scan = r
        .alerts
        .iter()
        .find(|a| s(a, "kind") == "port_scan")
        .expect("a port_scan alert");
    // The scanner's frames of any protocol, its ARP included.
    let any = format!(
        "ip.addr=={SCANNER} || arp.src.proto_ipv4=={SCANNER} || arp.dst.proto_ipv4=={SCANNER}"
    );
    let mut got = evidence_frames(&evidence_of(scan));
    let mut want = frames(&bundled(file), &any);
    // Several flows interleave: a file lists them by time (ties by flow).
    got.sort();
    want.sort();
    assert!(want.len() > 2000, "{}", want.len());
    assert_eq!(got, want, "port_scan evidence");

    // The per-source group: exactly the scanner's TCP flows to the target
    // whose port has no group of its own.
    let groups: BTreeSet<u64> = r
        .alerts
        .iter()
        .filter(|a| a.get("folded_by").and_then(Value::as_str) == Some("flow"))
        .filter(|a| a["proto"] == "tcp")
        .map(|a| a["dest_port"].as_u64().expect("port"))
        .collect();
    let by_source = r
        .alerts
        .iter()
        .find(|a| a.get("folded_by").and_then(Value::as_str) == Some("source"))
        .expect("a folded_by source alert");
    let ports: Vec<String> = groups.iter().map(u64::to_string).collect();
    let set = ports.join(", ");
    let flows = format!(
        "ip.addr=={SCANNER} && ip.addr=={TARGET} && tcp && \
         !((ip.src=={SCANNER} && tcp.dstport in {{{set}}}) || (ip.dst=={SCANNER} && tcp.srcport in {{{set}}}))"
    );
    let mut got = evidence_frames(&evidence_of(by_source));
    let mut want = frames(&bundled(file), &flows);
    check_dir(&r.ev);
    got.sort();
    want.sort();
    let count = by_source["count"].as_u64().expect("count");
    assert!(
        want.len() as u64 >= count,
        "{} frames for {count} flows",
        want.len()
    );
    assert_eq!(got, want, "folded_by source evidence");
}

/// Every file of a run, by name, with its bytes.
fn dir_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| {
            let p = e.expect("entry").path();
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn evidence_files_are_the_same_for_one_and_three_workers() {
    for file in [
        "scan-nmap-syn.pcap",
        "dos-syn-flood.pcap",
        "bruteforce-ssh.pcap",
    ] {
        let one = replay_evidence(file, &["-w", "1"]);
        let three = replay_evidence(file, &["-w", "3"]);
        let (a, b) = (dir_bytes(&one.ev), dir_bytes(&three.ev));
        assert_eq!(a.len(), one.alerts.len(), "{file}");
        assert_eq!(check_dir(&one.ev), a.len(), "{file}");
        for x in &one.alerts {
            evidence_frames(&evidence_of(x));
        }
        assert!(a == b, "{file}: evidence differs between 1 and 3 workers");
    }
}

#[test]
fn byte_caps_cut_files_at_their_tail_and_the_total_leaves_later_alerts_without_a_file() {
    let file = "dos-syn-flood.pcap";
    let full = replay_evidence(file, &[]);
    let capped = replay_evidence(file, &["--evidence-max-bytes", "3000"]);
    assert_eq!(full.alerts.len(), capped.alerts.len());
    let mut cut = 0;
    for (f, c) in full.alerts.iter().zip(&capped.alerts) {
        let (pf, pc) = (evidence_of(f), evidence_of(c));
        let size = std::fs::metadata(&pc).expect("size").len();
        assert!(size <= 3000, "{}: {size} bytes", pc.display());
        // Strict: a capped file holds whole frames, at least one.
        let (ff, fc) = (evidence_frames(&pf), evidence_frames(&pc));
        assert!(
            ff.starts_with(&fc),
            "a capped file is a prefix of the full one"
        );
        if fc.len() < ff.len() {
            cut += 1;
        }
    }
    assert!(cut > 0, "the 3000-byte cap cut nothing");
    assert!(
        util::count(
            &capped.summary["alerts"],
            "evidence",
            "frames_over_alert_cap"
        ) > 0
    );

    let total = 20_000u64;
    let t = replay_evidence(file, &["--evidence-total-bytes", &total.to_string()]);
    let without: Vec<_> = t
        .alerts
        .iter()
        .filter(|a| !a.contains_key("evidence_pcap"))
        .collect();
    assert!(
        !without.is_empty(),
        "a 20 kB total should leave alerts without a file"
    );
    assert_eq!(
        util::count(&t.summary["alerts"], "evidence", "alerts_without_file"),
        without.len() as u64
    );
    let sum: u64 = dir_bytes(&t.ev).iter().map(|(_, b)| b.len() as u64).sum();
    assert!(sum <= total, "{sum} bytes over the {total} total");
    check_dir(&capped.ev);
    check_dir(&t.ev);
}

#[test]
fn evidence_needs_alerts_and_an_unwritable_directory_is_an_error() {
    let run = util::zonewatch([
        "replay",
        "--evidence",
        "/nonexistent-zw-evidence",
        bundled("zones.pcap").to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code(), 2, "{}", run.stderr);
    assert!(run.stderr.contains("--alerts"), "{}", run.stderr);

    let dir = tempfile::tempdir().expect("tempdir");
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a directory").expect("write");
    let alerts = dir.path().join("a.jsonl");
    let run = util::zonewatch([
        "replay".as_ref(),
        "--alerts".as_ref(),
        alerts.as_os_str(),
        "--evidence".as_ref(),
        blocker.join("ev").as_os_str(),
        bundled("zones.pcap").as_os_str(),
    ]);
    run.assert_no_panic();
    assert_eq!(run.code(), 2, "{}", run.stderr);
    assert!(run.stderr.contains("ev"), "{}", run.stderr);
}

/// The metrics (`--openmetrics`, whose last snapshot is taken after every
/// file is written) count the same files, bytes and cuts as the summary.
#[test]
fn evidence_metrics_equal_the_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let om = dir.path().join("om.txt");
    let om_s = om.to_str().expect("utf-8").to_string();
    let r = replay_evidence(
        "scan-nmap-syn.pcap",
        &["--evidence-max-bytes", "3000", "--openmetrics", &om_s],
    );
    assert_eq!(check_dir(&r.ev), r.alerts.len());
    let text = std::fs::read_to_string(&om).expect("openmetrics written");
    // The last sample of a series (snapshots are in time order).
    let last = |series: &str| -> u64 {
        text.lines()
            .rev()
            .filter_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .find_map(|rest| rest.split(' ').next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {series} in the openmetrics file")) as u64
    };
    let ev = &r.summary["alerts"]["evidence"];
    assert_eq!(
        last("zonewatch_evidence_files_total"),
        ev["files"].as_u64().expect("files")
    );
    assert_eq!(
        last("zonewatch_evidence_bytes_total"),
        ev["bytes"].as_u64().expect("bytes")
    );
    let cut = ev["frames_over_alert_cap"].as_u64().expect("cut");
    assert!(cut > 0, "{ev}");
    assert_eq!(
        last(r#"zonewatch_evidence_cuts_total{reason="frames_over_alert_cap"}"#),
        cut
    );
    assert_eq!(
        last(r#"zonewatch_evidence_cuts_total{reason="write_errors"}"#),
        0
    );
}

/// The strict reader is what makes the tests above worth their green: a file
/// cut in the middle of a record (as a crash or a full disk leaves it) fails
/// it, where the lenient reader for public captures still returns frames.
#[test]
fn a_torn_evidence_file_fails_the_strict_reader() {
    let r = replay_evidence("zones.pcap", &[]);
    let a = r.alerts.first().expect("an alert");
    let whole = evidence_of(a);
    let bytes = std::fs::read(&whole).expect("read");
    let n = evidence_frames(&whole).len();
    assert!(n >= 2, "{}: {n} frames", whole.display());
    let dir = tempfile::tempdir().expect("tempdir");
    let torn = dir.path().join("torn.pcap");
    std::fs::write(&torn, &bytes[..bytes.len() - 5]).expect("write");
    let fields = ["frame.time_epoch"];
    let lenient = util::tshark_fields(&torn, &fields, &[]);
    assert_eq!(lenient.len(), n - 1, "the lenient reader takes what it can");
    let e = util::try_tshark_fields_strict(&torn, &fields, &[]).expect_err("torn accepted");
    assert!(e.contains("torn record"), "{e}");
    // A header alone is whole but holds no frame.
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, &bytes[..24]).expect("write");
    let e = util::try_tshark_fields_strict(&empty, &fields, &[]).expect_err("empty accepted");
    assert!(e.contains("no frame"), "{e}");
}

/// A file that cannot be created when its line is written (here: a directory
/// already has its name) leaves the alert without `evidence_pcap`, is counted
/// with its reason in the summary and the metrics, and is said on stderr;
/// the other alerts keep their files.
#[test]
fn an_alert_names_its_evidence_file_only_when_the_file_was_created() {
    let first = replay_evidence("zones.pcap", &[]);
    let blocked = s(first.alerts.first().expect("an alert"), "id").to_string();

    let dir = tempfile::tempdir().expect("tempdir");
    let ev = dir.path().join("ev");
    std::fs::create_dir_all(ev.join(format!("{blocked}.pcap"))).expect("mkdir");
    let (alerts, om, summary) = (
        dir.path().join("a.jsonl"),
        dir.path().join("om.txt"),
        dir.path().join("s.json"),
    );
    let run = util::zonewatch([
        "replay".as_ref(),
        "-q".as_ref(),
        "--rules".as_ref(),
        RULES.as_ref(),
        "--alerts".as_ref(),
        alerts.as_os_str(),
        "--summary".as_ref(),
        summary.as_os_str(),
        "--openmetrics".as_ref(),
        om.as_os_str(),
        "--evidence".as_ref(),
        ev.as_os_str(),
        bundled("zones.pcap").as_os_str(),
    ]);
    run.assert_ok();
    assert!(
        run.stderr.contains("cannot create") && run.stderr.contains(&blocked),
        "{}",
        run.stderr
    );
    let raw: Vec<Map<String, Value>> = std::fs::read_to_string(&alerts)
        .expect("alerts")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    // Each alert as it finally stands (an update line repeats its file name).
    let lines = util::finals(&raw);
    assert_eq!(lines.len(), first.alerts.len());
    for a in &lines {
        if s(a, "id") == blocked {
            assert!(
                !a.contains_key("evidence_pcap"),
                "names a file it has not: {a:?}"
            );
        } else {
            evidence_frames(&evidence_of(a));
        }
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    let e = &summary["alerts"]["evidence"];
    assert_eq!(e["alerts_file_failed"], 1, "{e}");
    assert_eq!(e["files"], lines.len() - 1, "{e}");
    let om = std::fs::read_to_string(&om).expect("openmetrics");
    let last = om
        .lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix(r#"zonewatch_evidence_cuts_total{reason="alerts_file_failed"} "#)
        })
        .and_then(|rest| rest.split(' ').next()?.parse::<f64>().ok());
    assert_eq!(
        last,
        Some(1.0),
        "metrics count the alert left without its file"
    );
}

/// An evidence directory the sensor cannot create files in is refused at
/// start (exit 2, naming the directory and the flag), not discovered alert
/// by alert. Run as `nobody` (root may write anywhere) on a root-owned 0755
/// directory.
#[test]
fn an_evidence_directory_that_takes_no_files_is_refused_at_start() {
    crate::live::require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let pcap = dir.path().join("zones.pcap");
    std::fs::copy(bundled("zones.pcap"), &pcap).expect("copy");
    std::fs::set_permissions(&pcap, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let ev = dir.path().join("ev");
    std::fs::create_dir(&ev).expect("mkdir");
    std::fs::set_permissions(&ev, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut c = std::process::Command::new("setpriv");
    c.args([
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        util::BIN,
    ])
    .args([
        "replay",
        "-q",
        "--rules",
        RULES,
        "--alerts",
        "-",
        "--evidence",
    ])
    .arg(&ev)
    .arg(&pcap);
    let run = util::run_cmd(c);
    run.assert_no_panic();
    assert_eq!(run.code(), 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--evidence") && run.stderr.contains("cannot create files"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "nothing analysed: {}", run.stdout);
}
