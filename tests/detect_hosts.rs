//! The `hosts` detector on captures: the crafted dual-homed PC and VLAN
//! bridge (captures/make-bridge.py, facts in captures/README.md) raise one
//! `zone_bridge` each and their routers none (plus the dual-homed capture's
//! shared syslog collector, a bridge by management paths); the inventory fixture finds the
//! one rogue host; the public VLAN and office captures raise no bridge; a bad
//! inventory is a rules error naming its line; 1 and 4 workers write the same
//! bytes.

use crate::util;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

const SITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/example-site.toml");
const INVENTORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/inventory.csv");

/// `replay --alerts --rules RULES -w WORKERS FILE`: the alerts of `kind`, and
/// the whole alert file.
fn alerts(
    file: &Path,
    rules: &Path,
    workers: &str,
    kind: &str,
) -> (Vec<Map<String, Value>>, String) {
    let r = rules.to_str().expect("utf-8 rules path");
    let run = util::replay_alerts(&[file], &["-w", workers, "--rules", r]);
    (run.kinds(|k| k == kind), run.raw)
}

fn s<'a>(a: &'a Map<String, Value>, k: &str) -> &'a str {
    a.get(k)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("alert has no string {k}: {a:?}"))
}

/// The example site plus `[detect.hosts]` lines, in `dir`.
fn site_with(dir: &Path, hosts: &str) -> PathBuf {
    let text = std::fs::read_to_string(SITE).expect("example site");
    let p = dir.join("site.toml");
    std::fs::write(&p, format!("{text}\n[detect.hosts]\n{hosts}\n")).expect("write rules");
    p
}

#[test]
fn dual_homed_pc_is_one_critical_zone_bridge_and_the_router_none() {
    let (all, raw) = alerts(
        &util::bundled("bridge-dual-homed.pcap"),
        Path::new(SITE),
        "2",
        "zone_bridge",
    );
    // The syslog collector 192.0.2.226 (mgmt) takes logs from My Number and from
    // LGWAN (frames 12-16): a bridge by management paths, beside the MAC bridge.
    let (by_mac, by_paths): (Vec<_>, Vec<_>) = all
        .iter()
        .partition(|a| s(a, "rule") != "detect.hosts.zone_bridge.paths");
    assert_eq!(
        by_mac.len(),
        1,
        "one MAC bridge (not the router 02:00:00:00:0b:fe):\n{raw}"
    );
    assert_eq!(by_paths.len(), 1, "{raw}");
    let p = by_paths[0];
    assert_eq!(s(p, "severity"), "critical");
    assert_eq!(s(p, "src_ip"), "192.0.2.226");
    assert_eq!(s(p, "src_zone"), "mgmt");
    assert_eq!(s(p, "dest_ip"), "192.0.2.72");
    assert_eq!(s(p, "dest_zone"), "lgwan.term");
    assert_eq!(p["evidence"]["tiers"][0]["peer"], "192.0.2.12");
    assert_eq!(p["evidence"]["tiers"][0]["tier"], "mynumber");
    let a = by_mac[0];
    assert_eq!(s(a, "severity"), "critical");
    assert_eq!(s(a, "rule"), "detect.hosts.zone_bridge.zones");
    assert_eq!(s(a, "src_ip"), "192.0.2.10");
    assert_eq!(s(a, "dest_ip"), "192.0.2.70");
    assert_eq!(s(a, "src_zone"), "mynumber.term");
    assert_eq!(s(a, "dest_zone"), "lgwan.term");
    // Frame 1 (the PC's ARP request) is the first evidence.
    assert_eq!(s(a, "timestamp"), "2026-01-01T00:00:00.000000Z");
    let e = &a["evidence"];
    assert_eq!(e["mac"], "02:00:00:00:0b:01");
    let ips: Vec<&str> = e["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .filter_map(|x| x["ip"].as_str())
        .collect();
    assert_eq!(ips, ["192.0.2.10", "192.0.2.70"]);
    assert_eq!(e["zones"][0]["zone"], "lgwan");
    assert_eq!(e["zones"][0]["first_seen"], "2026-01-01T00:00:05.000000Z");
    assert_eq!(e["zones"][1]["zone"], "mynumber");
    // No inventory: no rogue check.
    assert!(!raw.contains("rogue_host"), "{raw}");
}

#[test]
fn pc_on_two_vlans_is_a_bridge_and_the_router_on_a_stick_is_not() {
    let (a, raw) = alerts(
        &util::bundled("bridge-vlan.pcap"),
        Path::new(SITE),
        "2",
        "zone_bridge",
    );
    assert_eq!(a.len(), 1, "{raw}");
    let a = &a[0];
    // VLAN 220 (lgwan.srv) and 230 (lgwan.edge): one top-level zone, high.
    assert_eq!(s(a, "severity"), "high");
    assert_eq!(s(a, "rule"), "detect.hosts.zone_bridge.vlans");
    assert_eq!(a["vlan"], serde_json::json!([220, 230]));
    assert_eq!(a["evidence"]["mac"], "02:00:00:00:0b:02");
}

#[test]
fn inventory_finds_the_one_rogue_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = site_with(dir.path(), &format!("inventory = {INVENTORY:?}"));
    let (a, raw) = alerts(
        &util::bundled("bridge-dual-homed.pcap"),
        &rules,
        "2",
        "rogue_host",
    );
    assert_eq!(a.len(), 1, "{raw}");
    let a = &a[0];
    assert_eq!(s(a, "src_ip"), "192.0.2.20");
    assert_eq!(s(a, "severity"), "critical");
    assert_eq!(s(a, "src_zone"), "mynumber.term");
    assert_eq!(s(a, "timestamp"), "2026-01-01T00:00:06.000000Z");
    assert_eq!(a["evidence"]["check"], "unknown_address");
    assert_eq!(a["evidence"]["mac"], "02:00:00:00:0b:0c");
    // The two bridges (the PC's MAC, the shared collector) are still reported beside it.
    assert_eq!(raw.matches("\"zone_bridge\"").count(), 2, "{raw}");
}

#[test]
fn a_bad_inventory_line_is_a_rules_error_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = dir.path().join("inv.csv");
    std::fs::write(
        &inv,
        "ip,mac,name\n192.0.2.10,02:00:00:00:0b:01,a\n192.0.2.300,,b\n192.0.2.11,0b:0a,c\n",
    )
    .expect("write inventory");
    let rules = site_with(
        dir.path(),
        &format!("inventory = {:?}", inv.display().to_string()),
    );
    let r = rules.to_str().expect("utf-8 path");
    let run = util::zonewatch(["check", r]);
    run.assert_no_panic();
    assert_eq!(run.code(), 2, "{run:#?}");
    let out = format!("{}{}", run.stdout, run.stderr);
    assert!(
        out.contains("inv.csv:3: bad IP address \"192.0.2.300\""),
        "{out}"
    );
    assert!(
        out.contains("inv.csv:4: bad MAC address \"0b:0a\""),
        "{out}"
    );
    assert!(out.contains("site.toml:"), "{out}");
}

#[test]
fn public_vlan_and_office_captures_raise_no_bridge() {
    let files: Vec<String> = util::public_index()
        .into_iter()
        .map(|p| p.rel)
        .filter(|r| r.starts_with("e_vlan/") || r.starts_with("d_office/"))
        .collect();
    assert!(files.len() >= 11, "{files:?}");
    for f in &files {
        let (a, raw) = alerts(&util::public(f), Path::new(SITE), "2", "zone_bridge");
        assert!(a.is_empty(), "{f}: no dual-homed host there:\n{raw}");
    }
}

#[test]
fn host_alerts_are_byte_identical_for_one_and_four_workers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = site_with(dir.path(), &format!("inventory = {INVENTORY:?}"));
    for f in ["bridge-dual-homed.pcap", "bridge-vlan.pcap"] {
        let (_, one) = alerts(&util::bundled(f), &rules, "1", "zone_bridge");
        let (_, four) = alerts(&util::bundled(f), &rules, "4", "zone_bridge");
        assert!(one.contains("zone_bridge"), "{f}: {one}");
        assert_eq!(one, four, "{f}: 1 and 4 workers differ");
    }
}
