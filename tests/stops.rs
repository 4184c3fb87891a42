//! Clean stops: SIGTERM in the middle of a replay, and in the middle of a live
//! capture with traffic flowing, must leave the alert and flow files ending in
//! complete lines, every one of them JSON, and exit 0 with a summary saying
//! `stopped_by: "signal"`. The signal lands at several moments of each run
//! (bounded: a few seconds each), so a race between the stop and a half-written
//! line has several chances to show.
//!
//! No wall-clock bound on the stop itself: the replayed capture has an hour of
//! packet time between two copies of the flood ([`util::twice_with_gap`]), so
//! every signal lands before its end however slow the machine, and the live
//! sender loops for minutes (killed when the test ends).

use crate::live::{require_root, Netns};
use crate::util::{self, ChildGuard, Watched};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Longest wait for a line on stderr, or for the exit after SIGTERM.
const WAIT: Duration = util::WATCH_WAIT;

/// The three outputs of one run, in their own directory.
struct Files {
    _dir: tempfile::TempDir,
    alerts: PathBuf,
    flows: PathBuf,
    summary: PathBuf,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        Files {
            alerts: dir.path().join("alerts.jsonl"),
            flows: dir.path().join("flows.jsonl"),
            summary: dir.path().join("summary.json"),
            _dir: dir,
        }
    }

    fn args(&self) -> Vec<&std::ffi::OsStr> {
        vec![
            "--alerts".as_ref(),
            self.alerts.as_os_str(),
            "--flows".as_ref(),
            self.flows.as_os_str(),
            "--summary".as_ref(),
            self.summary.as_os_str(),
        ]
    }
}

/// Every line of a JSON-lines file: the file is empty or ends with '\n', and
/// each line is a JSON object. Returns the number of lines.
fn complete_json_lines(path: &Path, what: &str) -> usize {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{what}: {}: {e}", path.display()));
    assert!(
        raw.is_empty() || raw.ends_with(b"\n"),
        "{what}: {} does not end with a complete line; last bytes: {:?}",
        path.display(),
        String::from_utf8_lossy(raw.get(raw.len().saturating_sub(120)..).unwrap_or_default())
    );
    let text = String::from_utf8(raw).unwrap_or_else(|e| panic!("{what}: not UTF-8: {e}"));
    for (i, line) in text.lines().enumerate() {
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(_)) => {}
            other => panic!(
                "{what}: line {} is not a JSON object ({other:?}): {line}",
                i + 1
            ),
        }
    }
    text.lines().count()
}

/// SIGTERM `w` after `delay`; it must exit 0 with its files complete.
/// Returns (alert lines, flow lines, summary).
fn stop_and_check(w: Watched, delay: Duration, files: &Files, what: &str) -> (usize, usize, Value) {
    std::thread::sleep(delay);
    util::send_signal(w.pid(), "TERM");
    let (status, stderr) = w.finish(WAIT);
    assert_eq!(
        status.code(),
        Some(0),
        "{what}: exit {status} after SIGTERM; stderr:\n{stderr}"
    );
    let text = std::fs::read_to_string(&files.summary)
        .unwrap_or_else(|e| panic!("{what}: no summary ({e}); stderr:\n{stderr}"));
    let summary: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{what}: summary is not JSON ({e}):\n{text}"));
    assert_eq!(
        summary["stopped_by"], "signal",
        "{what}: the run ended before the signal, so it proves nothing: {summary:#}"
    );
    let alerts = complete_json_lines(&files.alerts, &format!("{what}: alerts"));
    let flows = complete_json_lines(&files.flows, &format!("{what}: flows"));
    (alerts, flows, summary)
}

/// SIGTERM at 0.3, 1.2, 2.5 and 3.8 s into a real-time replay of the 5.1 s
/// SYN flood (its DoS and flood alerts come mid-capture), followed an hour of
/// packet time later by a second copy (never reached).
#[test]
fn sigterm_during_a_paced_replay_leaves_complete_alert_and_flow_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("flood-twice.pcap");
    util::twice_with_gap(&util::bundled("dos-syn-flood.pcap"), 3600, &capture);
    let (mut alerts_seen, mut flows_seen) = (0, 0);
    for ms in [300u64, 1200, 2500, 3800] {
        let files = Files::new();
        let mut cmd = Command::new(util::BIN);
        cmd.args(["replay", "-q", "--speed", "1"])
            .args(files.args())
            .arg(&capture);
        let w = Watched::spawn(cmd);
        let what = format!("replay, SIGTERM at {ms} ms");
        let (alerts, flows, s) = stop_and_check(w, Duration::from_millis(ms), &files, &what);
        // (A loaded machine may not have read a packet 300 ms after the start.)
        if util::count(&s, "", "packets") > 0 {
            assert!(flows > 0, "{what}: no flow line written: {s:#}");
            assert_eq!(
                s["flows"]["ended"]["shutdown"].as_u64().map(|n| n > 0),
                Some(true),
                "{what}: open flows were not flushed at the stop: {s:#}"
            );
        }
        alerts_seen += alerts;
        flows_seen += flows;
    }
    assert!(
        alerts_seen > 0 && flows_seen > 0,
        "no run wrote an alert line ({alerts_seen}) or a flow line ({flows_seen}), so \
         the files' endings were never tested"
    );
}

/// Live: tcpreplay loops the SYN flood into a veth (bounded to 30 s) while
/// zonewatch runs three times on the other end, stopped 0.2, 1 and 2.5 s
/// after it starts listening.
#[test]
fn sigterm_during_a_live_capture_leaves_complete_alert_and_flow_lines() {
    require_root();
    let cap = Netns::new();
    let snd = Netns::new();
    let mut link = Command::new("ip");
    link.args([
        "link",
        "add",
        "name",
        "zwstop",
        "netns",
        &cap.name,
        "type",
        "veth",
        "peer",
        "name",
        "zwstopsnd",
        "netns",
        &snd.name,
    ]);
    let r = util::run_cmd(link);
    assert_eq!(r.code(), 0, "{}: {}", r.cmdline, r.stderr);
    cap.run(&["ip", "link", "set", "zwstop", "up"]);
    snd.run(&["ip", "link", "set", "zwstopsnd", "up"]);

    let capture = util::bundled("dos-syn-flood.pcap");
    let mut sender = snd.cmd("tcpreplay");
    sender
        .args([
            "-q",
            "-i",
            "zwstopsnd",
            "--pps=3000",
            "--loop=0",
            // Bounded; far longer than three runs take even on a loaded
            // machine (the sender is killed when the test ends).
            "--duration=600",
        ])
        .arg(&capture);
    let sender = ChildGuard::spawn(sender);

    let mut alerts_seen = 0;
    for ms in [200u64, 1000, 2500] {
        let files = Files::new();
        let mut zw = cap.cmd(util::BIN);
        zw.args(["run", "-i", "zwstop", "-q", "--metrics-listen", "none"])
            .args(files.args());
        let mut w = Watched::spawn(zw);
        w.wait_stderr("listening on zwstop");
        let what = format!("live, SIGTERM {ms} ms after listening");
        let (alerts, flows, s) = stop_and_check(w, Duration::from_millis(ms), &files, &what);
        assert!(
            util::count(&s, "", "packets") > 0 && flows > 0,
            "{what}: the flood was not captured: {s:#}"
        );
        alerts_seen += alerts;
    }
    drop(sender);
    assert!(
        alerts_seen > 0,
        "no live run wrote an alert line, so the alert file's ending was never tested"
    );
}
