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
