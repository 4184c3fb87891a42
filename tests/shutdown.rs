//! SIGTERM in the middle of a paced replay: zonewatch stops, drains, flushes the
//! open flows (end_reason "shutdown"), writes the summary and exits 0.
//!
//! No wall-clock bound: the capture is the 5 s SYN flood twice, an hour of
//! packet time apart ([`util::twice_with_gap`]), and the signal goes out once
//! its `dos_start` line shows the replay under way. However loaded the machine, the signal lands
//! before the second copy, and a replay that ignored it would run into the
//! ceiling instead of passing.

use crate::util::{self, Watched, WATCH_WAIT};
use std::process::Command;

#[test]
fn sigterm_during_paced_replay_flushes_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("flood-twice.pcap");
    util::twice_with_gap(&util::bundled("dos-syn-flood.pcap"), 3600, &capture);
    let total = util::count(&util::replay(&[&capture], &[]).summary, "", "packets");

    let (alerts, flows, summary) = (
        dir.path().join("alerts.jsonl"),
        dir.path().join("flows.jsonl"),
        dir.path().join("summary.json"),
    );
    let mut cmd = Command::new(util::BIN);
    cmd.args(["replay", "-q", "--speed", "1", "--alerts"])
        .arg(&alerts)
        .arg("--summary")
        .arg(&summary)
        .arg("--flows")
        .arg(&flows)
        .arg(&capture);
    let mut w = Watched::spawn(cmd);
    w.wait_for("an alert line (the replay under way)", || {
        (!util::json_lines_so_far(&alerts).is_empty()).then_some(())
    });
    util::send_signal(w.pid(), "TERM");
    let (status, stderr) = w.finish(WATCH_WAIT);
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");

    let text = std::fs::read_to_string(&summary).expect("summary");
    let s: serde_json::Value = serde_json::from_str(&text).expect("summary is JSON");
    let packets = util::count(&s, "", "packets");
    assert!(
        packets > 0 && packets < total,
        "stopped during the first copy, yet analysed {packets} of {total} packets"
    );
    assert_eq!(s["stopped_by"], "signal", "{s:#}\nstderr:\n{stderr}");
    let flows = util::complete_json_lines(&flows);
    let shutdown = flows
        .iter()
        .filter(|f| f["end_reason"] == "shutdown")
        .count();
    assert!(
        shutdown > 0,
        "no flow flushed with end_reason \"shutdown\": {flows:?}"
    );
    assert_eq!(
        s["flows"]["ended"]["shutdown"].as_u64(),
        Some(shutdown as u64),
        "summary flows.ended.shutdown disagrees with the flow lines: {s:#}"
    );
    util::complete_json_lines(&alerts);
}
