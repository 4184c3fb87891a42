//! Issue #12 point 1: office noise recorded from real clients and daemons
//! (captures/office-noise.pcap: dhclient, dnsmasq, avahi-daemon, nmblookup, the
//! kernel's ND/MLD, LLMNR/SSDP/WS-Discovery senders; captures/README.md) is
//! segment-local: never a separation violation, counted on its own as
//! `SENDER -> local`. Routable multicast is judged by the rules.
//!
//! Ground truth comes from TShark's dissectors with a display filter written
//! here from the RFCs, not from zonewatch.

use crate::util;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/example-site.toml");

/// IP frames that cannot leave their link, by TShark's fields (ARP makes no
/// flow: it is counted by the hosts detector, not the flow table).
const LOCAL_FILTER: &str = "igmp or ip.src == 0.0.0.0 or ip.dst == 255.255.255.255 \
     or ip.dst == 224.0.0.0/24 or ip.src == 169.254.0.0/16 or ip.dst == 169.254.0.0/16 \
     or ip.dst == 192.0.2.31 or ipv6.src == fe80::/10 or ipv6.dst == fe80::/10 \
     or ipv6.src == :: or ipv6.dst == ff02::/16 \
     or icmpv6.type in {130..137, 143}";

fn office() -> PathBuf {
    util::bundled("office-noise.pcap")
}

fn tshark_count(file: &Path, filter: &str) -> u64 {
    util::tshark_fields(file, &["frame.number"], &["-Y", filter]).len() as u64
}

fn flows_by_verdict(flows: &[String]) -> BTreeMap<String, (u64, u64)> {
    let mut m: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for l in flows {
        let f: Value = serde_json::from_str(l).expect("flow line is JSON");
        let pk = f["orig_pkts"].as_u64().expect("orig_pkts")
            + f["resp_pkts"].as_u64().expect("resp_pkts");
        let e = m
            .entry(f["verdict"].as_str().expect("verdict").to_string())
            .or_default();
        e.0 += 1;
        e.1 += pk;
    }
    m
}

/// Tag every frame of `src` with 802.1Q `vlan` ([`util::tag_vlan`]).
fn tagged(src: &Path, vlan: u16, dir: &Path) -> PathBuf {
    let out = dir.join(format!(
        "{}-vlan{vlan}.pcap",
        src.file_stem().and_then(|s| s.to_str()).unwrap_or("in")
    ));
    util::tag_vlan(src, vlan, &out);
    out
}

/// Without the fix, this capture gave a critical `mynumber.term -> internet`
/// alert for each of mDNS, LLMNR, IGMP, the broadcasts and SSDP.
#[test]
fn office_noise_is_segment_local_and_raises_no_false_violation() {
    let file = office();
    let run = util::replay_alerts(&[&file], &["--rules", RULES, "-w", "2"]);
    // The one planted violation: a datagram to the routable group 239.1.2.3.
    let sep = run.kinds(|k| k == "separation_violation");
    assert_eq!(sep.len(), 1, "{}", run.raw);
    let a = &sep[0];
    assert_eq!(a["dest_ip"], "239.1.2.3");
    assert_eq!(a["dest_zone"], "multicast");
    assert_eq!(a["src_zone"], "mynumber.term");
    assert_eq!(a["severity"], "critical");
    assert!(
        !run.raw.contains("\"dest_zone\":\"internet\""),
        "office noise judged as internet: {}",
        run.raw
    );
    // Nothing else: no detector mistakes discovery for a scan or a bridge.
    assert_eq!(run.alerts.len(), 1, "{}", run.raw);

    // Every segment-local frame TShark finds is in a flow with verdict local, and
    // no other frame is.
    let out = util::replay(&[&file], &["--rules", RULES]);
    let by = flows_by_verdict(&out.flows);
    let local = by.get("local").copied().unwrap_or_default();
    assert_eq!(local.1, tshark_count(&file, LOCAL_FILTER), "{by:?}");
    assert_eq!(
        util::count(&out.summary["policy"], "flows", "local"),
        local.0
    );
    assert!(local.0 >= 15, "{by:?}");
    // SSDP and WS-Discovery to 239.255.255.250 are allowed by the presets' M1.
    let ssdp = tshark_count(
        &file,
        "ip.dst == 239.255.255.250 and udp.dstport in {1900, 3702}",
    );
    assert_eq!(ssdp, 4);
    let m1: u64 = out
        .flows
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .filter(|f| f["rule"] == "M1")
        .map(|f| f["orig_pkts"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(m1, ssdp);
    // Flow lines of local traffic name the sender's zone (or null) and `local`.
    for l in &out.flows {
        let f: Value = serde_json::from_str(l).expect("JSON");
        if f["verdict"] == "local" {
            assert_eq!(f["dst_zone"], "local", "{l}");
            assert!(
                f["src_zone"] == "mynumber.term" || f["src_zone"].is_null(),
                "{l}"
            );
            assert!(f["rule"].is_null() && f["severity"].is_null(), "{l}");
        }
    }
}

/// fe80::, :: and 0.0.0.0 senders take the zone of their VLAN: tagged with the
/// My Number terminals' VLAN 110, every local flow is `mynumber.term -> local`.
#[test]
fn link_local_senders_take_their_vlans_zone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = tagged(&office(), 110, dir.path());
    let out = util::replay(&[&file], &["--rules", RULES]);
    let mut n = 0;
    for l in &out.flows {
        let f: Value = serde_json::from_str(l).expect("JSON");
        if f["verdict"] == "local" {
            n += 1;
            assert_eq!(f["src_zone"], "mynumber.term", "{l}");
        }
    }
    assert!(n >= 15, "{n}");
    // The same in the report's zone matrix.
    let text = util::zonewatch([
        OsStr::new("replay"),
        OsStr::new("--rules"),
        OsStr::new(RULES),
        file.as_os_str(),
    ]);
    text.assert_ok();
    assert!(
        text.stdout.contains("mynumber.term -> local:")
            || text.stderr.contains("mynumber.term -> local:"),
        "{}",
        text.stderr
    );
    assert!(!text.stderr.contains("- -> local"), "{}", text.stderr);
}

/// The same terminal's link-local traffic also seen on the LGWAN terminals'
/// VLAN 210: its MAC is on two segments, a bridge, critical because one of them
/// is the My Number zone. (Before the fix link-local senders were skipped and
/// this raised nothing: every routable frame is on VLAN 110 only.)
#[test]
fn link_local_traffic_in_another_zones_vlan_is_a_bridge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let on110 = tagged(&office(), 110, dir.path());
    // Only the terminal's IPv6 link-local frames, onto VLAN 210.
    let ll = dir.path().join("ll.pcap");
    let office = office();
    let run = util::tshark(&[
        OsStr::new("-r"),
        office.as_os_str(),
        OsStr::new("-Y"),
        OsStr::new("ipv6.src == fe80::/10 and eth.src == c2:4c:08:c4:d1:e6"),
        OsStr::new("-F"),
        OsStr::new("pcap"),
        OsStr::new("-w"),
        ll.as_os_str(),
    ]);
    run.assert_ok();
    let on210 = tagged(&ll, 210, dir.path());
    let run = util::replay_alerts(&[&on110, &on210], &["--rules", RULES]);
    let b = run.kinds(|k| k == "zone_bridge");
    assert_eq!(b.len(), 1, "{}", run.raw);
    assert_eq!(b[0]["severity"], "critical", "{:?}", b[0]);
    assert_eq!(b[0]["rule"], "detect.hosts.zone_bridge.vlans");
    let zones: Vec<&str> = b[0]["evidence"]["vlans"]
        .as_array()
        .expect("vlans")
        .iter()
        .filter_map(|v| v["zone"].as_str())
        .collect();
    assert_eq!(zones, ["mynumber.term", "lgwan.term"], "{:?}", b[0]);
}
