//! SIGTERM in the middle of a paced replay: zonewatch stops, drains, flushes the
//! open flows (end_reason "shutdown"), writes the summary and exits 0.

use crate::util::{self, ChildGuard, OutPaths};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn sigterm_during_paced_replay_flushes_and_exits_zero() {
    let sample = util::bundled("sample.pcap");
    // The premise: at --speed 1 this capture takes longer than the signal delay.
    let full = util::replay(&[&sample], &[]).summary;
    let total = util::count(&full, "", "packets");
    let span = full["duration_secs"].as_f64().unwrap_or(0.0);
    assert!(
        span >= 5.0,
        "sample.pcap spans only {span} s; the shutdown test needs a longer capture"
    );

    let out = OutPaths::new();
    let mut cmd = Command::new(util::BIN);
    cmd.args(["replay", "-q", "--speed", "1", "--summary"])
        .arg(&out.summary)
        .arg("--flows")
        .arg(&out.flows)
        .arg(&sample);
    let child = ChildGuard::spawn(cmd);
    std::thread::sleep(Duration::from_millis(2000));
    let signalled = Instant::now();
    util::send_signal(child.id(), "TERM");
    let run = child.wait(Duration::from_secs(30));
    let took = signalled.elapsed();
    run.assert_ok();
    assert!(
        took < Duration::from_secs(3),
        "zonewatch took {took:?} to stop after SIGTERM"
    );

    let o = out.collect(run);
    let s = &o.summary;
    let packets = util::count(s, "", "packets");
    assert!(
        packets > 0 && packets < total,
        "stopped after 2 s of an {span:.1} s capture, yet analysed {packets} of {total} packets"
    );
    assert_eq!(
        s["stopped_by"], "signal",
        "{s:#}\nstderr:\n{}",
        o.run.stderr
    );
    assert!(
        o.flows_end_with_newline,
        "flows file does not end with '\\n'"
    );
    let flows = util::parse_flows(&o.flows);
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
}
