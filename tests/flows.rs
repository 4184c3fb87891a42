//! `--flows` output on captures/sample.pcap: every line is a JSON object with the
//! contract's keys, the Community ID of every flow equals TShark's, and the flows
//! the recording script made on purpose end the way they really ended. On the
//! Community ID specification's own pcaps, every flow has the value of the
//! specification's baseline.

use crate::util;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Keys every flow line carries (cli.md contract).
const REQUIRED: [&str; 20] = [
    "ts",
    "first_seen",
    "last_seen",
    "duration",
    "proto",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "vlan",
    "link",
    "orig_pkts",
    "orig_bytes",
    "resp_pkts",
    "resp_bytes",
    "tcp_state",
    "midstream",
    "icmp_errors",
    "end_reason",
    "community_id",
];

const END_REASONS: [&str; 6] = [
    "fin",
    "rst",
    "idle_timeout",
    "evicted",
    "end_of_capture",
    "shutdown",
];

/// ICMP / ICMPv6 error types (they quote another packet): TShark gives such a
/// packet a Community ID of its own, zonewatch counts it on the flow it quotes
/// (`icmp_errors`) instead of making a flow of it.
fn is_icmp_error(icmp_type: &str, icmpv6_type: &str) -> bool {
    let first = |s: &str| s.split(',').next().and_then(|v| v.parse::<u8>().ok());
    matches!(first(icmp_type), Some(3 | 4 | 5 | 11 | 12))
        || matches!(first(icmpv6_type), Some(1..=4))
}

fn u(flow: &Map<String, Value>, key: &str) -> u64 {
    flow.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("flow {key} is not a count: {flow:?}"))
}

fn port(flow: &Map<String, Value>, key: &str) -> u64 {
    flow.get(key).and_then(Value::as_u64).unwrap_or(u64::MAX)
}

#[test]
fn sample_flows_match_tshark_community_ids() {
    let sample = util::bundled("sample.pcap");
    let out = util::replay(&[&sample], &[]);
    assert!(
        out.flows_end_with_newline,
        "flows file does not end with a newline"
    );
    let flows = util::parse_flows(&out.flows);
    assert!(
        flows.len() >= 20,
        "only {} flows from sample.pcap",
        flows.len()
    );

    for (i, f) in flows.iter().enumerate() {
        let missing: Vec<&str> = REQUIRED
            .iter()
            .copied()
            .filter(|k| !f.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty(),
            "flow line {} lacks {missing:?}: {f:?}",
            i + 1
        );
        let why = f["end_reason"].as_str().unwrap_or("");
        assert!(
            END_REASONS.contains(&why),
            "flow line {}: end_reason {why:?}",
            i + 1
        );
        assert!(
            u(f, "orig_pkts") >= 1,
            "flow line {}: no initiator packet: {f:?}",
            i + 1
        );
    }

    // TShark: Community ID of every frame (seed 0, base64, as the spec's default).
    let rows = util::tshark_fields(
        &sample,
        &["communityid", "icmp.type", "icmpv6.type"],
        &["--enable-protocol", "communityid"],
    );
    assert!(
        !rows.is_empty(),
        "tshark read nothing from {}",
        sample.display()
    );
    let mut tshark_frames: BTreeMap<String, u64> = BTreeMap::new();
    for r in &rows {
        if r[0].is_empty() || is_icmp_error(&r[1], &r[2]) {
            continue; // ARP (no Community ID) or an ICMP error (see is_icmp_error)
        }
        *tshark_frames.entry(r[0].clone()).or_insert(0) += 1;
    }

    // zonewatch: frames per Community ID, summed over flows (one ID may in principle
    // span several flows, e.g. a reused port; it does not in this capture).
    let mut zw_frames: BTreeMap<String, u64> = BTreeMap::new();
    for f in &flows {
        match f.get("community_id") {
            Some(Value::String(id)) => {
                *zw_frames.entry(id.clone()).or_insert(0) += u(f, "orig_pkts") + u(f, "resp_pkts");
            }
            // ARP flows have no Community ID (the spec covers IP only).
            Some(Value::Null) | None => {
                assert!(
                    f["src_ip"].is_string() && u(f, "orig_pkts") >= 1,
                    "flow without community_id: {f:?}"
                );
            }
            Some(other) => panic!("community_id is not a string: {other}"),
        }
    }
    let only_zw: BTreeSet<&String> = zw_frames
        .keys()
        .filter(|k| !tshark_frames.contains_key(*k))
        .collect();
    let only_ts: BTreeSet<&String> = tshark_frames
        .keys()
        .filter(|k| !zw_frames.contains_key(*k))
        .collect();
    assert!(
        only_zw.is_empty() && only_ts.is_empty(),
        "Community IDs differ.\nonly in zonewatch flows: {only_zw:?}\nonly in tshark: {only_ts:?}"
    );
    let differing: Vec<String> = tshark_frames
        .iter()
        .filter(|(id, n)| zw_frames.get(*id) != Some(n))
        .map(|(id, n)| format!("{id}: tshark {n} frames, zonewatch {:?}", zw_frames.get(id)))
        .collect();
    assert!(
        differing.is_empty(),
        "frames per flow differ:\n{}",
        differing.join("\n")
    );
}

#[test]
fn sample_flows_end_as_recorded() {
    // What record-sample.sh did (captures/README.md): 9 HTTP connections to 8080
    // closed with FIN, 2 SYNs to closed port 9 answered by RST, UDP to closed port
    // 9999 (port unreachable) and TTL-1 UDP probes to 33434/33435 (time exceeded).
    // A connection closed by FIN (RST) ends with "fin" ("rst") whether the table
    // dropped it after its linger or still held it when the capture ended: the
    // reason describes the connection, not where the recording happened to stop.
    let out = util::replay(&[&util::bundled("sample.pcap")], &[]);
    let flows = util::parse_flows(&out.flows);
    let by_dport = |p: u64| -> Vec<&Map<String, Value>> {
        flows.iter().filter(|f| port(f, "dst_port") == p).collect()
    };
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };

    let http = by_dport(8080);
    expect(
        http.len() == 9,
        format!("{} HTTP flows, want 9", http.len()),
    );
    for f in &http {
        expect(
            f["tcp_state"] == "closed",
            format!("HTTP flow not closed: {f:?}"),
        );
        expect(
            f["end_reason"] == "fin",
            format!(
                "HTTP flow closed by FIN ends with {}: {f:?}",
                f["end_reason"]
            ),
        );
        expect(
            u(f, "resp_bytes") > 0 && u(f, "orig_pkts") >= 5 && u(f, "resp_pkts") >= 4,
            format!("HTTP flow too small: {f:?}"),
        );
        expect(
            f["midstream"] == false,
            format!("HTTP flow marked midstream: {f:?}"),
        );
    }
    let refused = by_dport(9);
    expect(
        refused.len() == 2,
        format!("{} flows to closed TCP port 9, want 2", refused.len()),
    );
    for f in &refused {
        expect(
            f["end_reason"] == "rst",
            format!("refused connection ends with {}: {f:?}", f["end_reason"]),
        );
        expect(
            (u(f, "orig_pkts"), u(f, "resp_pkts")) == (1, 1),
            format!("refused connection: {f:?}"),
        );
    }
    for p in [9999, 33434, 33435] {
        let fs = by_dport(p);
        let want = if p == 9999 { 2 } else { 1 };
        expect(
            fs.len() == want,
            format!("{} UDP flows to port {p}, want {want}", fs.len()),
        );
        for f in fs {
            expect(
                u(f, "icmp_errors") == 1,
                format!("ICMP error for port {p} not matched to its flow: {f:?}"),
            );
            expect(
                (u(f, "orig_pkts"), u(f, "resp_pkts")) == (1, 0),
                format!("UDP probe to {p}: {f:?}"),
            );
        }
    }
    // 3 ICMP + 2 ICMPv6 errors, each quoting a flow of the capture.
    expect(
        util::count(&out.summary, "flows", "icmp_errors_matched") == 5,
        format!(
            "icmp_errors_matched: {:?}",
            out.summary["flows"]["icmp_errors_matched"]
        ),
    );
    assert!(
        problems.is_empty(),
        "sample.pcap flows:\n{}",
        problems.join("\n")
    );
}

/// A flow tuple as the Community ID baseline writes it: (IP protocol number,
/// source, destination, source port, destination port). ICMP/ICMPv6 "ports"
/// are the spec's port equivalents (type, counterpart type or code).
type Tuple = (u8, IpAddr, IpAddr, u16, u16);

/// The entries of the spec's baseline_deflt.json (PROVENANCE.md, j_community_id):
/// tuple and Community ID. `sport`/`dport` are null for protocols without
/// ports (RSVP); zonewatch's flow lines give 0 for those, so null reads as 0.
fn cidspec_baseline() -> Vec<(Tuple, String)> {
    let path = util::public(util::CIDSPEC_BASELINE);
    let text = std::fs::read_to_string(&path).expect("baseline readable");
    let entries: Vec<Value> = serde_json::from_str(&text).expect("baseline is a JSON array");
    entries
        .iter()
        .map(|e| {
            let ip = |k: &str| -> IpAddr {
                e[k].as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("baseline {k}: {e}"))
            };
            let port = |k: &str| -> u16 {
                match &e[k] {
                    Value::Null => 0,
                    v => v
                        .as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .unwrap_or_else(|| panic!("baseline {k}: {e}")),
                }
            };
            let proto = e["proto"]
                .as_u64()
                .and_then(|p| u8::try_from(p).ok())
                .unwrap_or_else(|| panic!("baseline proto: {e}"));
            let id = e["communityid"]
                .as_str()
                .unwrap_or_else(|| panic!("baseline communityid: {e}"))
                .to_string();
            (
                (
                    proto,
                    ip("saddr"),
                    ip("daddr"),
                    port("sport"),
                    port("dport"),
                ),
                id,
            )
        })
        .collect()
}

/// A flow line's tuple (initiator -> responder) and Community ID.
fn flow_tuple(f: &Map<String, Value>) -> (Tuple, String) {
    let proto = match f["proto"].as_str() {
        Some("tcp") => 6,
        Some("udp") => 17,
        Some("icmp") => 1,
        Some("ipv6-icmp") => 58,
        Some(n) => n
            .parse()
            .unwrap_or_else(|_| panic!("flow proto {n:?}: {f:?}")),
        None => panic!("flow proto is not a string: {f:?}"),
    };
    let ip = |k: &str| -> IpAddr {
        f[k].as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("flow {k}: {f:?}"))
    };
    let port =
        |k: &str| -> u16 { u16::try_from(u(f, k)).unwrap_or_else(|_| panic!("flow {k}: {f:?}")) };
    let id = f["community_id"]
        .as_str()
        .unwrap_or_else(|| panic!("flow without community_id: {f:?}"))
        .to_string();
    (
        (
            proto,
            ip("src_ip"),
            ip("dst_ip"),
            port("src_port"),
            port("dst_port"),
        ),
        id,
    )
}

/// Replay each pcap of the spec's test set on its own: (file, flow lines).
fn cidspec_flows() -> Vec<(String, Vec<Map<String, Value>>)> {
    let files: Vec<String> = util::public_index()
        .into_iter()
        .map(|p| p.rel)
        .filter(|r| r.starts_with(&format!("{}/", util::CIDSPEC_DIR)))
        .collect();
    assert_eq!(files.len(), 8, "{files:?}");
    files
        .into_iter()
        .map(|rel| {
            let out = util::replay(&[&util::public(&rel)], &[]);
            (rel, util::parse_flows(&out.flows))
        })
        .collect()
}

/// Conformance with the Community ID specification's baseline, which lists the
/// tuple of each direction a packet travelled (the ICMP "ports" as the spec's
/// port equivalents). Every flow zonewatch writes for the spec's pcaps has its
/// initiator's tuple (src -> dst) in the baseline and, if the responder sent
/// packets, the responder's (dst -> src, ports swapped) too, each with exactly
/// the flow's Community ID; and every baseline entry is one of those. ARP has
/// no entry and makes no flow.
#[test]
fn cidspec_flows_match_the_spec_baseline() {
    let baseline = cidspec_baseline();
    assert_eq!(baseline.len(), 23, "baseline entries");
    let mut covered = vec![false; baseline.len()];
    let mut problems = Vec::new();
    let mut nflows = 0;
    for (rel, flows) in cidspec_flows() {
        if rel.ends_with("cidspec_arp.pcap") {
            assert!(flows.is_empty(), "{rel}: ARP makes no flow: {flows:?}");
        }
        for f in &flows {
            nflows += 1;
            let ((p, s, d, sp, dp), id) = flow_tuple(f);
            let mut directions = vec![("initiator", (p, s, d, sp, dp))];
            if u(f, "resp_pkts") > 0 {
                directions.push(("responder", (p, d, s, dp, sp)));
            }
            for (who, tuple) in directions {
                let mut listed = false;
                for (i, (t, want)) in baseline.iter().enumerate() {
                    if *t != tuple {
                        continue;
                    }
                    listed = true;
                    covered[i] = true;
                    if *want != id {
                        problems.push(format!(
                            "{rel}: flow {p} {s}:{sp} -> {d}:{dp} has {id}, its {who} entry {t:?} {want}"
                        ));
                    }
                }
                if !listed {
                    problems.push(format!(
                        "{rel}: flow {p} {s}:{sp} -> {d}:{dp} ({id}): its {who}'s tuple {tuple:?} is no baseline entry"
                    ));
                }
            }
        }
    }
    for (i, (t, want)) in baseline.iter().enumerate() {
        if !covered[i] {
            problems.push(format!("baseline entry {t:?} {want}: no flow"));
        }
    }
    assert!(nflows >= 12, "only {nflows} flows");
    assert!(
        problems.is_empty(),
        "Community ID baseline not met:\n{}",
        problems.join("\n")
    );
}

/// The same pcaps, packet by packet: TShark's Community ID of every frame and
/// zonewatch's flows agree on the frames per ID. None of the ICMP errors here
/// quotes a flow of its file, so each is a flow of its own, as in TShark.
#[test]
fn cidspec_frames_per_community_id_match_tshark() {
    for (rel, flows) in cidspec_flows() {
        let rows = util::tshark_fields(
            &util::public(&rel),
            &["communityid"],
            &["--enable-protocol", "communityid"],
        );
        let mut tshark: BTreeMap<String, u64> = BTreeMap::new();
        for r in rows.iter().filter(|r| !r[0].is_empty()) {
            *tshark.entry(r[0].clone()).or_insert(0) += 1;
        }
        let mut zw: BTreeMap<String, u64> = BTreeMap::new();
        for f in &flows {
            let (_, id) = flow_tuple(f);
            *zw.entry(id).or_insert(0) += u(f, "orig_pkts") + u(f, "resp_pkts");
        }
        assert_eq!(zw, tshark, "{rel}: frames per Community ID");
    }
}

/// Regression: SCTP was hashed without its ports (the flow key had 0 ↔ 0), so
/// the spec's SCTP association 192.168.170.8:7 ↔ 192.168.170.56:7 got
/// `1:U5cVwrVgLshgANPmc8hKzEcqp1M=` instead of the baseline's value.
#[test]
fn sctp_flows_were_hashed_without_their_ports() {
    let rel = format!("{}/cidspec_sctp.pcap", util::CIDSPEC_DIR);
    let out = util::replay(&[&util::public(&rel)], &[]);
    let flows = util::parse_flows(&out.flows);
    assert_eq!(flows.len(), 1, "{flows:?}");
    let f = &flows[0];
    assert_eq!(
        flow_tuple(f),
        (
            (
                132,
                "192.168.170.8".parse().unwrap(),
                "192.168.170.56".parse().unwrap(),
                7,
                7
            ),
            "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=".to_string()
        ),
        "{f:?}"
    );
    assert_eq!((u(f, "orig_pkts"), u(f, "resp_pkts")), (3, 2), "{f:?}");
}
