//! DoS detector on real captures: the recorded hping3 floods and the public
//! b_dos captures raise one episode (`dos_start` … `dos_end`) on the victim with
//! the peak rates of their ground truth (captures/README.md, PROVENANCE.md);
//! the benign and office captures raise none; 1 and 4 workers write
//! byte-identical alert files.

use crate::util;
use serde_json::{Map, Value};
use std::path::Path;

/// `replay -w N --alerts` (detectors only): the dos_* alerts and the raw file.
fn dos(file: &Path, workers: &str) -> (Vec<Map<String, Value>>, String) {
    let r = util::replay_alerts(&[file], &["-w", workers]);
    (r.kinds(|k| k.starts_with("dos_")), r.raw)
}

fn s<'a>(a: &'a Map<String, Value>, k: &str) -> &'a str {
    a.get(k).and_then(Value::as_str).unwrap_or("")
}

fn ev(a: &Map<String, Value>, k: &str) -> u64 {
    a.get("evidence")
        .and_then(|e| e.get(k))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("alert evidence has no integer {k}: {a:?}"))
}

struct Expect {
    file: std::path::PathBuf,
    victim: &'static str,
    rule: &'static str,
    proto: &'static str,
    /// Peak packets/s to the victim in one second of packet time (tshark).
    peak_pps: u64,
    /// Packets to the victim in the episode's hot windows.
    packets: u64,
}

fn expectations() -> Vec<Expect> {
    vec![
        // 20 spoofed hping3 sources × 150 SYNs: 871, 983, 1000, 146 SYN/s.
        Expect {
            file: util::bundled("dos-syn-flood.pcap"),
            victim: "192.0.2.34",
            rule: "detect.dos.syn_flood",
            proto: "tcp",
            peak_pps: 1000,
            packets: 3000,
        },
        // hping3 --udp -p 53 -c 3000: 36, 1717, 1254 pkt/s (the first 30
        // packets fall in a cold second before the episode).
        Expect {
            file: util::bundled("dos-udp-flood.pcap"),
            victim: "192.0.2.34",
            rule: "detect.dos.udp_flood",
            proto: "udp",
            peak_pps: 1716,
            packets: 2970,
        },
        // hping3 --icmp -c 3000: 893, 1678, 429 echo requests/s, all answered.
        Expect {
            file: util::bundled("dos-icmp-flood.pcap"),
            victim: "192.0.2.34",
            rule: "detect.dos.icmp_flood",
            proto: "icmp",
            peak_pps: 1678,
            packets: 3000,
        },
        // Spoofed SYN flood: 7305 pkt/s, then 2516 (after a 34 s trickle).
        Expect {
            file: util::public("b_dos/stopddos_pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng"),
            victim: "10.10.10.10",
            rule: "detect.dos.syn_flood",
            proto: "tcp",
            peak_pps: 7305,
            packets: 9821,
        },
        // SYN-ACK reflection: 7996 frames to the victim in 0.147 s.
        Expect {
            file: util::public("b_dos/stopddos_amp.TCP.reflection.SYNACK.pcap"),
            victim: "10.10.10.10",
            rule: "detect.dos.synack_reflection",
            proto: "tcp",
            peak_pps: 7996,
            packets: 7996,
        },
        // DNS RRSIG amplification over 30 s (4397 frames to the victim,
        // including its background TCP); peak 295 frames/s.
        Expect {
            file: util::public("b_dos/stopddos_amp.dns.RRSIG.fragmented.pcap"),
            victim: "10.10.10.10",
            rule: "detect.dos.amplification",
            proto: "udp",
            peak_pps: 295,
            packets: 4396,
        },
    ]
}

#[test]
fn floods_raise_one_episode_with_the_ground_truth() {
    for e in expectations() {
        let name = e.file.display().to_string();
        let (a, raw1) = dos(&e.file, "1");
        let kinds: Vec<&str> = a.iter().map(|x| s(x, "kind")).collect();
        assert_eq!(kinds.first(), Some(&"dos_start"), "{name}: {kinds:?}");
        assert_eq!(kinds.last(), Some(&"dos_end"), "{name}: {kinds:?}");
        assert!(
            kinds[1..kinds.len() - 1].iter().all(|k| *k == "dos_update"),
            "{name}: one episode: {kinds:?}"
        );
        for x in &a {
            assert_eq!(s(x, "dest_ip"), e.victim, "{name}");
            assert_eq!(s(x, "rule"), e.rule, "{name}");
            assert_eq!(s(x, "proto"), e.proto, "{name}");
        }
        let end = a.last().expect("an end");
        assert_eq!(ev(end, "peak_pps"), e.peak_pps, "{name}");
        assert_eq!(ev(end, "packets"), e.packets, "{name}");
        assert!(ev(end, "peak_bps") > 0, "{name}");
        // 1 and 4 workers: the same bytes.
        let (_, raw4) = dos(&e.file, "4");
        assert_eq!(raw1, raw4, "{name}: 1 vs 4 workers");
    }
}

#[test]
fn lab_floods_name_their_sources() {
    // UDP and ICMP floods come from one attacker; the SYN flood from 20
    // spoofed addresses in 203.0.113.128/25.
    for f in ["dos-udp-flood.pcap", "dos-icmp-flood.pcap"] {
        let (a, _) = dos(&util::bundled(f), "2");
        assert!(!a.is_empty(), "{f}");
        for x in &a {
            assert_eq!(s(x, "src_ip"), "203.0.113.66", "{f}");
            assert_eq!(ev(x, "sources_estimate"), 1, "{f}");
        }
    }
    let (a, _) = dos(&util::bundled("dos-syn-flood.pcap"), "2");
    let end = a.last().expect("alerts");
    let n = ev(end, "sources_estimate");
    assert!((17..=23).contains(&n), "about 20 sources: {n}");
    let top = end["evidence"]["top_sources"]
        .as_array()
        .expect("top_sources");
    assert!(!top.is_empty());
    for t in top {
        let ip: std::net::Ipv4Addr = t["ip"].as_str().expect("ip").parse().expect("ipv4");
        assert_eq!(ip.octets()[..3], [203, 0, 113], "{ip}");
        assert!(ip.octets()[3] >= 128, "{ip}");
    }
}

#[test]
fn benign_and_office_captures_raise_no_dos() {
    let mut files = vec![
        util::bundled("benign-download.pcap"),
        util::bundled("benign-web.pcap"),
        util::bundled("sample.pcap"),
        util::bundled("scan-nmap-syn.pcap"),
        util::public("b_dos/zeek_dhcp_flood.pcap"),
    ];
    for f in [
        "suricata_output-eve-ftp-data.pcap",
        "suricata_smb2-ntlmssp-negotiateflags.pcap",
        "suricata_tls-subjectaltname.pcap",
        "zeek_rdp-proprietary-encryption.pcap",
        "zeek_smtp.pcap",
        "zeek_tls-conn-with-extensions.pcap",
        "zeek_workshop_2011_browse.pcap",
    ] {
        files.push(util::public(&format!("d_office/{f}")));
    }
    for f in files {
        let (a, _) = dos(&f, "2");
        assert!(a.is_empty(), "{}: {a:#?}", f.display());
    }
}
