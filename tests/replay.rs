//! `zonewatch replay` against TShark: the bundled captures and every file of the
//! public capture set must give the same packet, network, transport, VLAN,
//! fragment and tunnel counts as TShark run at test time (see `util::classify`
//! for how a TShark protocol chain maps to zonewatch's summary keys). Malformed
//! and refused inputs have their own tests below.

use crate::util::{self, Exception};
use std::path::Path;

/// Files zonewatch must refuse (exit 2); they have no counts to compare.
const REFUSED: [&str; 1] = ["h_malformed/libpcap_pcap-invalid-version-1.pcap"];

/// Differences from TShark that are correct behaviour, per file and key, with
/// the reason (`delta` = zonewatch minus TShark). `util::compare` also fails when
/// a listed difference no longer occurs, so this list cannot go stale.
const EXCEPTIONS: &[Exception] = &[
    // 6 frames are IPv6/ICMPv6 inside Teredo (UDP port 3544, RFC 4380). TShark
    // decapsulates Teredo; zonewatch does not (its tunnel list is GRE, ERSPAN,
    // VXLAN, Geneve and IP-in-IP), so it analyses the outer IPv4/UDP packet.
    Exception {
        file: TEREDO,
        key: "network.ipv4",
        delta: 6,
        reason: TEREDO_WHY,
    },
    Exception {
        file: TEREDO,
        key: "network.ipv6",
        delta: -6,
        reason: TEREDO_WHY,
    },
    Exception {
        file: TEREDO,
        key: "transport.udp",
        delta: 6,
        reason: TEREDO_WHY,
    },
    Exception {
        file: TEREDO,
        key: "transport.icmpv6",
        delta: -6,
        reason: TEREDO_WHY,
    },
];
const TEREDO: &str = "d_office/suricata_output-eve-ftp-data.pcap";
const TEREDO_WHY: &str = "6 Teredo frames: zonewatch does not decapsulate Teredo (UDP 3544)";

/// Check one capture: zonewatch's summary equals TShark's view (after the file's
/// exceptions). Returns the differences.
fn parity(name: &str, path: &Path, provenance_packets: Option<u64>) -> Vec<String> {
    let out = util::replay(&[path], &[]);
    let zw = util::summary_counts(&out.summary);
    let ts = util::tshark_counts(path);
    let mut problems = util::compare(name, &ts, &zw, EXCEPTIONS);
    if let Some(n) = provenance_packets {
        if zw.get("packets") != n as i64 {
            problems.push(format!(
                "{name}: packets: zonewatch {}, PROVENANCE.md {n}",
                zw.get("packets")
            ));
        }
    }
    problems
}

#[test]
fn tshark_parity_bundled() {
    let mut problems = Vec::new();
    for name in ["sample.pcap", "sample-vlan.pcap"] {
        problems.extend(parity(name, &util::bundled(name), None));
    }
    assert!(
        problems.is_empty(),
        "zonewatch and tshark differ:\n{}",
        problems.join("\n")
    );
}

#[test]
fn sample_vlan_every_frame_tagged() {
    // The derived capture exists to test VLAN handling: every frame carries tag 100,
    // and otherwise it counts exactly like the untagged original.
    let plain = util::replay(&[&util::bundled("sample.pcap")], &[]).summary;
    let tagged = util::replay(&[&util::bundled("sample-vlan.pcap")], &[]).summary;
    let packets = util::count(&plain, "", "packets");
    assert!(packets > 100, "sample.pcap has only {packets} packets");
    assert_eq!(util::count(&tagged, "", "vlan_tagged"), packets);
    assert_eq!(util::count(&plain, "", "vlan_tagged"), 0);
    for (section, key) in [
        ("network", "ipv4"),
        ("network", "ipv6"),
        ("transport", "tcp"),
        ("transport", "icmpv6"),
    ] {
        assert_eq!(
            util::count(&plain, section, key),
            util::count(&tagged, section, key),
            "{section}.{key} differs between sample.pcap and sample-vlan.pcap"
        );
    }
}

#[test]
fn tshark_parity_public() {
    let index = util::public_index();
    let jobs: Vec<&util::Provenance> = index
        .iter()
        .filter(|p| !REFUSED.contains(&p.rel.as_str()))
        .collect();
    let problems = util::check_all(&jobs, |p| {
        parity(&p.rel, &util::public(&p.rel), Some(p.packets))
    });
    assert!(
        problems.is_empty(),
        "zonewatch and tshark differ on {} count(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Files with damaged packets (but a sound container): exit 0, no panic, the
/// frames are delivered and the damage is counted under the reason the decode
/// contract (src/decode/mod.rs) gives it.
#[test]
fn malformed_packets_are_counted_not_fatal() {
    for (rel, reason) in [
        // cut inside the Ethernet header (caplen 8 of 78)
        ("h_malformed/zeek_trunc-hdr.pcap", "truncated_link"),
        // IPv6 Hop-by-Hop header cut by the end of the packet
        ("h_malformed/zeek_ip6-ext-trunc.pcap", "truncated_ip_ext"),
        // IPv4 total length 65028 > the 1530 bytes on the wire
        (
            "h_malformed/suricata_ipv4-truncated.pcap",
            "bad_ipv4_total_len",
        ),
        // UDP length field inconsistent with the IP payload
        ("h_malformed/suricata_udp-len-invalid.pcap", "bad_udp_len"),
    ] {
        let out = util::replay(&[&util::public(rel)], &[]);
        assert_eq!(util::count(&out.summary, "", "packets"), 1, "{rel}");
        assert_eq!(
            out.summary["decode_failures"],
            serde_json::json!({ reason: 1 }),
            "{rel}: expected exactly one {reason} decode failure"
        );
    }
    // Snaplen 68: every frame is cut, but only inside TCP options, which are not
    // read: no failure, all 24 frames count as TCP, captured < wire bytes.
    let rel = "h_malformed/zeek_tcp_truncated-header_snaplen68.pcap";
    let out = util::replay(&[&util::public(rel)], &[]);
    assert_eq!(
        util::sum_of(&out.summary, "decode_failures"),
        0,
        "{rel}: {:#}",
        out.summary
    );
    assert_eq!(util::count(&out.summary, "transport", "tcp"), 24, "{rel}");
    assert!(
        util::count(&out.summary, "", "bytes") < util::count(&out.summary, "", "wire_bytes"),
        "{rel}: captured bytes should be fewer than wire bytes"
    );
}

/// The two corrupt containers: zonewatch delivers exactly the frames before the
/// damage, says where it stopped, and still exits 0.
#[test]
fn damaged_files_stop_early_with_the_good_frames() {
    for (rel, frames, offset) in [
        // record 7 at offset 5035 claims a 4,325,376-byte caplen (PROVENANCE.md: 6 frames)
        (
            "h_malformed/suricata_bug-1450-04_bad-record-length.pcap",
            6u64,
            "5035",
        ),
        // 25 complete records, then 2 bytes of a record header at offset 8877
        ("h_malformed/ppa_http-fault-post_cut-short.pcap", 25, "8877"),
    ] {
        let index = util::public_index();
        let listed = index.iter().find(|p| p.rel == rel).map(|p| p.packets);
        assert_eq!(listed, Some(frames), "PROVENANCE.md disagrees about {rel}");

        let out = util::replay(&[&util::public(rel)], &[]);
        assert_eq!(util::count(&out.summary, "", "packets"), frames, "{rel}");
        let src = &out.summary["sources"][0];
        assert_eq!(
            src["frames"].as_u64(),
            Some(frames),
            "{rel}: sources[0] = {src:#}"
        );
        let why = src["stopped_early"]
            .as_str()
            .unwrap_or_else(|| panic!("{rel}: sources[0] has no stopped_early: {src:#}"));
        assert!(
            why.contains(offset),
            "{rel}: stopped_early {why:?} does not give offset {offset}"
        );
    }
}

#[test]
fn empty_pcapng_is_a_clean_empty_run() {
    let out = util::replay(&[&util::public("h_malformed/tcpdump_empty.pcapng")], &[]);
    assert_eq!(util::count(&out.summary, "", "packets"), 0);
    assert!(out.summary["first_packet"].is_null(), "{:#}", out.summary);
    assert!(out.flows.is_empty());
    assert!(
        out.summary["sources"][0].get("stopped_early").is_none(),
        "{:#}",
        out.summary
    );
}

/// `zonewatch replay -q FILE` must refuse FILE: exit 2 with an error, no panic.
fn refused(path: &std::path::Path) -> util::Run {
    let run = util::zonewatch([
        std::ffi::OsStr::new("replay"),
        std::ffi::OsStr::new("-q"),
        path.as_os_str(),
    ]);
    run.assert_no_panic();
    assert_eq!(run.code(), 2, "stderr:\n{}", run.stderr);
    run
}

#[test]
fn invalid_pcap_version_is_refused() {
    let path = util::public(REFUSED[0]);
    let run = refused(&path);
    let err = run.stderr.to_lowercase();
    assert!(
        err.contains("libpcap_pcap-invalid-version-1.pcap") && err.contains("version"),
        "error should name the file and the version problem:\n{}",
        run.stderr
    );
}

#[test]
fn text_file_is_refused_as_not_a_capture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "this is not a capture file\nbut some notes\n").expect("write");
    let run = refused(&path);
    assert!(
        run.stderr.contains("notes.txt") && run.stderr.to_lowercase().contains("not a pcap"),
        "error should name the file and say it is not a capture:\n{}",
        run.stderr
    );
}

#[test]
fn unsupported_link_type_is_refused_by_name() {
    // A copy of a one-packet pcap whose header link-type field (bytes 20..24,
    // little-endian here) is rewritten to 105 = LINKTYPE_IEEE802_11.
    let src = util::public("g_formats_linktypes/tcpdump_LINKTYPE_IPV4.pcap");
    let mut bytes = std::fs::read(&src).expect("read");
    assert_eq!(
        &bytes[0..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "expected a little-endian microsecond pcap"
    );
    bytes[20..24].copy_from_slice(&105u32.to_le_bytes());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wifi.pcap");
    std::fs::write(&path, &bytes).expect("write");

    let run = refused(&path);
    let err = run.stderr.to_lowercase();
    assert!(
        err.contains("wifi.pcap") && err.contains("link type") && err.contains("105"),
        "error should name the file and the link type:\n{}",
        run.stderr
    );
}

/// A directory of rotated captures replays as the merge of its files (hidden
/// files skipped), exactly as listing them; a non-capture file in it is refused.
#[test]
fn a_directory_replays_as_its_files_merged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let names = ["zones.pcap", "zones-v6.pcap", "scan-nmap-syn.pcap"];
    for n in names {
        std::fs::copy(util::bundled(n), dir.path().join(n)).expect("copy capture");
    }
    std::fs::write(dir.path().join(".partial"), b"not a capture").expect("hidden file");
    let from_dir = util::replay(&[dir.path()], &[]);
    let listed: Vec<std::path::PathBuf> = names.iter().map(|n| util::bundled(n)).collect();
    let listed: Vec<&std::path::Path> = listed.iter().map(|p| p.as_path()).collect();
    let from_files = util::replay(&listed, &[]);
    assert_eq!(
        util::count(&from_dir.summary, "", "packets"),
        util::count(&from_files.summary, "", "packets")
    );
    assert_eq!(
        from_dir.summary["sources"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(
        util::sorted(&from_dir.flows),
        util::sorted(&from_files.flows)
    );
    std::fs::write(dir.path().join("notes.txt"), b"rotation log").expect("stray file");
    let r = refused(dir.path());
    assert!(r.stderr.contains("notes.txt"), "{}", r.stderr);
}

/// Several links, merged by time: each alert names the input it came from
/// (`NAME=PATH`, else the file's name), and the summary lists each input's label.
#[test]
fn inputs_from_several_links_are_merged_and_each_alert_is_tagged_with_its_source() {
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/example-site.toml");
    let zones = util::bundled("zones.pcap");
    let scan = util::bundled("scan-nmap-syn.pcap");
    let core = format!("core-sw={}", zones.display());
    // The scan is given by its plain path: its label is its file name.
    let r = util::replay_alerts(&[Path::new(&core), &scan], &["--rules", rules]);
    let mut by_iface = std::collections::BTreeMap::<String, Vec<String>>::new();
    for a in &r.alerts {
        let iface = a["in_iface"]
            .as_str()
            .unwrap_or_else(|| panic!("no in_iface: {a:?}"));
        by_iface
            .entry(iface.to_string())
            .or_default()
            .push(a["src_ip"].as_str().unwrap_or("").to_string());
    }
    let names: Vec<&String> = by_iface.keys().collect();
    assert_eq!(names, ["core-sw", "scan-nmap-syn.pcap"], "{by_iface:?}");
    // The scanner is only on the scan link; the zone capture's initiators only on core-sw.
    assert!(by_iface["scan-nmap-syn.pcap"]
        .iter()
        .all(|s| s == "203.0.113.66"));
    assert!(by_iface["core-sw"].iter().all(|s| s != "203.0.113.66"));
    assert_eq!(by_iface["core-sw"].len(), 7, "the seven planted violations");
    let labels: Vec<&str> = r.summary["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|s| s["label"].as_str().expect("label"))
        .collect();
    assert_eq!(labels, ["core-sw", "scan-nmap-syn.pcap"]);

    // A file literally named NAME=PATH is that file, not a label.
    let dir = tempfile::tempdir().expect("tempdir");
    let odd = dir.path().join("a=b.pcap");
    std::fs::copy(&zones, &odd).expect("copy");
    let r = util::replay_alerts(&[&odd], &["--rules", rules]);
    assert!(
        r.alerts.iter().all(|a| a["in_iface"] == "a=b.pcap"),
        "{:?}",
        r.alerts
    );
}
