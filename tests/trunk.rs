//! Issue #12 point 2: a router-on-a-stick trunk mirror. Each direction of a
//! routed connection carries the VLAN of the segment it entered from
//! (captures/trunk-vlan.pcap, recorded by captures/record-trunk.sh from curl,
//! hydra against a real sshd, nmap and ping through a router namespace; the
//! same frames untagged are captures/trunk-untagged.pcap). One connection must
//! be one flow, and flows, verdicts and detections must equal the untagged
//! capture's.

use crate::util;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/example-site.toml");

type Flow = Map<String, Value>;

fn parse(lines: &[String]) -> Vec<Flow> {
    lines
        .iter()
        .map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(m)) => m,
            other => panic!("flow line is not an object ({other:?}): {l}"),
        })
        .collect()
}

/// Flow identity without VLANs, and what must not depend on the tags.
fn by_tuple(flows: &[Flow]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for f in flows {
        let id = format!(
            "{} {}:{} -> {}:{}",
            f["proto"], f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"]
        );
        let what = format!(
            "{} {} {} {} {} pk {}/{} {} {}",
            f["verdict"],
            f["rule"],
            f["severity"],
            f["src_zone"],
            f["dst_zone"],
            f["orig_pkts"],
            f["resp_pkts"],
            f["tcp_state"],
            f["community_id"]
        );
        assert!(m.insert(id.clone(), what).is_none(), "two flows for {id}");
    }
    m
}

/// Alert lines without the keys that name the input or its tags (`id` hashes
/// the line, `vlan` included).
fn alerts_without_tags(run: &util::AlertRun) -> Vec<String> {
    let mut v: Vec<String> = run
        .alerts
        .iter()
        .map(|a| {
            let mut a = a.clone();
            for k in ["id", "vlan", "in_iface"] {
                a.remove(k);
            }
            Value::Object(a).to_string()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn router_trunk_gives_the_untagged_captures_flows_verdicts_and_detections() {
    let tagged = util::bundled("trunk-vlan.pcap");
    let plain = util::bundled("trunk-untagged.pcap");
    // The two files hold the same frames: the tagged one has a tag in each.
    let tags = util::tshark_fields(&tagged, &["vlan.id"], &[]);
    let frames = util::tshark_fields(&plain, &["frame.number"], &[]).len();
    assert_eq!(tags.len(), frames);
    assert!(tags
        .iter()
        .all(|t| ["110", "220", "340"].contains(&t[0].as_str())));

    let args = ["--rules", RULES, "-w", "2"];
    let t = util::replay(&[&tagged], &args);
    let p = util::replay(&[&plain], &args);
    let (tf, pf) = (parse(&t.flows), parse(&p.flows));
    assert_eq!(tf.len(), pf.len(), "one connection, one flow");
    assert_eq!(by_tuple(&tf), by_tuple(&pf));
    // Every TCP connection TShark sees is one flow.
    let streams: std::collections::BTreeSet<String> =
        util::tshark_fields(&plain, &["tcp.stream"], &["-Y", "tcp"])
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
    let tcp_flows = tf.iter().filter(|f| f["proto"] == "tcp").count();
    assert_eq!(tcp_flows, streams.len());

    // Flow lines show both directions' VLANs: the initiator's segment, then the
    // responder's.
    let curl: Vec<&Flow> = tf
        .iter()
        .filter(|f| f["src_ip"] == "192.0.2.10" && f["dst_port"] == 8080)
        .collect();
    assert_eq!(curl.len(), 3);
    for f in curl {
        assert_eq!(
            (&f["vlan"], &f["resp_vlan"]),
            (&Value::from(vec![110]), &Value::from(vec![220]))
        );
        assert_eq!(f["verdict"], "violation");
    }
    let ssh = tf
        .iter()
        .filter(|f| {
            f["src_ip"] == "203.0.113.200" && f["dst_port"] == 22 && f["dst_ip"] == "192.0.2.100"
        })
        .count();
    assert!(ssh >= 10, "{ssh} hydra connections");

    // The same alerts, and the hydra run is found on the trunk too.
    let ta = util::replay_alerts(&[&tagged], &args);
    let pa = util::replay_alerts(&[&plain], &args);
    assert_eq!(alerts_without_tags(&ta), alerts_without_tags(&pa));
    // The curl group: its first line at the first flow (count 1), then one
    // update line with the same id and the final count (issue #12 point 3).
    let curl: Vec<&Map<String, Value>> = ta
        .lines
        .iter()
        .filter(|a| a.get("dest_port") == Some(&Value::from(8080)))
        .collect();
    assert_eq!(curl.len(), 2, "{curl:?}");
    assert_eq!(
        (&curl[0]["update"], &curl[0]["count"]),
        (&Value::from(0), &Value::from(1))
    );
    assert_eq!(
        (&curl[1]["update"], &curl[1]["count"]),
        (&Value::from(1), &Value::from(3))
    );
    assert_eq!(curl[0]["id"], curl[1]["id"]);
    assert_eq!(curl[0]["first_seen"], curl[1]["first_seen"]);
    let brute = ta.kinds(|k| k == "brute_force");
    assert_eq!(brute.len(), 1, "{}", ta.raw);
    assert_eq!(
        (&brute[0]["src_ip"], &brute[0]["dest_ip"]),
        (&Value::from("203.0.113.200"), &Value::from("192.0.2.100"))
    );
    assert_eq!(ta.kinds(|k| k == "port_scan").len(), 1, "{}", ta.raw);
    // Replies never alert: no separation line names a responder as initiator.
    for a in ta.kinds(|k| k == "separation_violation") {
        let src = a["src_ip"].as_str().unwrap_or_default();
        assert!(src == "192.0.2.10" || src == "203.0.113.200", "{a:?}");
        if src == "192.0.2.10" {
            assert!(a["dest_port"] == 8080 || a["proto"] == "icmp", "{a:?}");
        }
    }
}

/// `--vlan-in-flow-key` keeps the tag in the key, for sites that reuse
/// addresses across VLANs: then each answered connection of the trunk capture
/// is two flows, one per direction's VLAN.
#[test]
fn vlan_in_flow_key_splits_the_trunks_directions() {
    let tagged = util::bundled("trunk-vlan.pcap");
    let one = util::replay(&[&tagged], &["-w", "2"]);
    let split = util::replay(&[&tagged], &["-w", "2", "--vlan-in-flow-key"]);
    let flows = parse(&one.flows);
    let answered = flows
        .iter()
        .filter(|f| f["resp_pkts"].as_u64().unwrap_or(0) > 0)
        .count();
    assert!(answered > 200, "{answered}");
    assert_eq!(split.flows.len(), flows.len() + answered);
    for f in parse(&split.flows) {
        assert!(
            f["resp_vlan"] == Value::Array(vec![]) || f["resp_vlan"] == f["vlan"],
            "{f:?}"
        );
    }
}
