//! The worker count must not change the result: replaying a capture with `-w 1`
//! and `-w 4` gives the same flow lines (byte-identical once sorted, since the
//! order in which workers finish flows varies) and the same counters.

use crate::util;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Summary parts that do not depend on how packets were spread over workers.
const STABLE: [&str; 9] = [
    "packets",
    "bytes",
    "network",
    "transport",
    "fragments",
    "vlan_tagged",
    "tunnels",
    "decode_failures",
    "icmp_errors",
];

fn check(name: &str, path: &Path) -> Vec<String> {
    let one = util::replay(&[path], &["-w", "1"]);
    let four = util::replay(&[path], &["-w", "4"]);
    let mut problems = Vec::new();
    for (label, o) in [("-w 1", &one), ("-w 4", &four)] {
        if !o.flows_end_with_newline {
            problems.push(format!(
                "{name} {label}: flows file does not end with a newline"
            ));
        }
    }
    let (a, b) = (util::sorted(&one.flows), util::sorted(&four.flows));
    if a != b {
        let only1: Vec<&String> = a.iter().filter(|l| !b.contains(l)).take(3).collect();
        let only4: Vec<&String> = b.iter().filter(|l| !a.contains(l)).take(3).collect();
        problems.push(format!(
            "{name}: flow lines differ ({} with -w 1, {} with -w 4); first only with -w 1: {only1:#?}; first only with -w 4: {only4:#?}",
            a.len(),
            b.len()
        ));
    }
    for key in STABLE {
        if one.summary.get(key) != four.summary.get(key) {
            problems.push(format!(
                "{name}: summary {key} differs: -w 1 {:?}, -w 4 {:?}",
                one.summary.get(key),
                four.summary.get(key)
            ));
        }
    }
    let flows = |s: &Value| (s["flows"]["created"].clone(), s["flows"]["ended"].clone());
    if flows(&one.summary) != flows(&four.summary) {
        problems.push(format!(
            "{name}: flows created/ended differ: -w 1 {:?}, -w 4 {:?}",
            flows(&one.summary),
            flows(&four.summary)
        ));
    }
    problems
}

#[test]
fn one_and_four_workers_agree() {
    let mut jobs: Vec<(String, PathBuf)> = ["sample.pcap", "sample-vlan.pcap"]
        .iter()
        .map(|n| (n.to_string(), util::bundled(n)))
        .collect();
    for p in util::public_index() {
        if p.rel.ends_with("libpcap_pcap-invalid-version-1.pcap") {
            continue; // refused with exit 2 (replay::invalid_pcap_version_is_refused)
        }
        let path = util::public(&p.rel);
        jobs.push((p.rel, path));
    }
    let problems = util::check_all(&jobs, |(name, path)| check(name, path));
    assert!(
        problems.is_empty(),
        "results depend on the worker count:\n{}",
        problems.join("\n")
    );
}

/// Issue #12 point 4: the public hydra capture concatenated with a copy of
/// itself that starts 44.6 s before the first copy ends (`mergecap -a`, as
/// captures merged from two links or a clock step look). Before the sensor
/// clock, 2 and 4 workers wrote alert files that differed from run to run
/// (about 180 observations arrived after later ones were released). Now every
/// worker count and every run writes the same alert and flow lines, nothing
/// is late, and the summary names the step.
#[test]
fn time_stepping_back_gives_the_same_alerts_for_any_worker_count_and_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = util::public("c_bruteforce/traceshare_ssh_hydra-1_tasks.pcap");
    let shifted = dir.path().join("shifted.pcap");
    let joined = dir.path().join("joined.pcap");
    let mut c = std::process::Command::new("editcap");
    c.args(["-t", "1153.5"]).arg(&src).arg(&shifted);
    util::run_cmd(c).assert_ok();
    let mut c = std::process::Command::new("mergecap");
    c.args(["-a", "-F", "pcap", "-w"])
        .arg(&joined)
        .arg(&src)
        .arg(&shifted);
    util::run_cmd(c).assert_ok();
    // TShark sees the step: the first frame of the copy is 44.6 s before the one before it.
    let deltas = util::tshark_fields(&joined, &["frame.time_delta"], &[]);
    let back: Vec<f64> = deltas
        .iter()
        .filter_map(|r| r[0].parse::<f64>().ok())
        .filter(|d| *d < -1.0)
        .collect();
    assert_eq!(back.len(), 1, "{back:?}");

    let mut first: Option<(String, Vec<String>)> = None;
    for w in ["1", "2", "4", "2", "4"] {
        let run = util::replay_alerts(&[&joined], &["-w", w]);
        assert_eq!(
            util::count(&run.summary["alerts"], "", "observations_late"),
            0
        );
        let steps = &run.summary["clock_steps"];
        assert_eq!(steps["count"], 1, "{steps}");
        let b = steps["listed"][0]["back_secs"].as_f64().unwrap_or(0.0);
        assert!((b + back[0]).abs() < 1e-3, "{b} vs TShark's {}", back[0]);
        assert!(run.kinds(|k| k == "brute_force").len() >= 2, "{}", run.raw);
        let flows = util::replay(&[&joined], &["-w", w]);
        let now = (run.raw.clone(), util::sorted(&flows.flows));
        match &first {
            None => first = Some(now),
            Some(f) => {
                assert_eq!(f.0, now.0, "alert lines with -w {w}");
                assert!(f.1 == now.1, "flow lines with -w {w}");
            }
        }
    }
}
