//! brute_force and admin_access on real captures: hydra against a real sshd
//! (captures/bruteforce-ssh.pcap, ground truth in captures/README.md) and the
//! public brute-force captures raise what their facts say; office and benign
//! traffic raises no brute force; Kerberos guessing over UDP
//! (captures/bruteforce-kerberos.pcap) raises one UDP alert and no public
//! capture a UDP one; a management-port rule flags the non-admin
//! SSH client and admits it once listed; 1 and 4 workers write the same bytes.

use crate::util;
use serde_json::{Map, Value};
use std::path::Path;

type Obj = Map<String, Value>;

/// `replay --alerts [--rules R]` with `workers`: (alert objects, raw file).
fn alerts(file: &Path, rules: Option<&Path>, workers: &str) -> (Vec<Obj>, String) {
    let mut extra = vec!["-w", workers];
    if let Some(r) = rules {
        extra.extend(["--rules", r.to_str().expect("utf-8 rules path")]);
    }
    let r = util::replay_alerts(&[file], &extra);
    (r.alerts, r.raw)
}

fn of_kind<'a>(a: &'a [Obj], kind: &str) -> Vec<&'a Obj> {
    a.iter().filter(|a| a["kind"] == kind).collect()
}

fn ev(a: &Obj, k: &str) -> u64 {
    a.get("evidence")
        .and_then(|e| e.get(k))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("alert evidence has no integer {k}: {a:?}"))
}

fn golden(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// captures/README.md: hydra -t 4 from 192.0.2.130 against sshd on
/// 192.0.2.34: 9 TCP connections, all completing the key exchange and closed
/// with FIN (34 password tries inside them, invisible on the wire).
#[test]
fn hydra_against_sshd_is_one_brute_force_alert() {
    let (a, raw) = alerts(&util::bundled("bruteforce-ssh.pcap"), None, "2");
    let bf = of_kind(&a, "brute_force");
    assert_eq!(bf.len(), 1, "{raw}");
    let b = bf[0];
    assert_eq!(b["src_ip"], "192.0.2.130");
    assert_eq!(b["dest_ip"], "192.0.2.34");
    assert_eq!(
        (b["dest_port"].as_u64(), b["count"].as_u64()),
        (Some(22), Some(9))
    );
    assert_eq!(b["rule"], "detect.brute_force");
    for (k, v) in [
        ("attempts", 9),
        ("connections", 9),
        ("short", 9),
        ("failed", 0),
        ("targets", 1),
    ] {
        assert_eq!(ev(b, k), v, "evidence {k}: {b:?}");
    }
    assert_eq!(b["evidence"]["service"], "ssh");
    assert_eq!(b["evidence"]["spraying"], false);
}

/// PROVENANCE.md (c): zeek FTP brute force, 30 connections 192.168.56.1 ->
/// 192.168.56.101:21 in 59 s; Trace-Share hydra 1 task, 61 SSH connections
/// 240.0.1.2 -> 240.125.0.2:22 over 1198.5 s (one every ~20 s: one alert per
/// 300 s window, every connection in one of them).
#[test]
fn public_brute_force_captures_raise_their_facts() {
    let (a, raw) = alerts(
        &util::public("c_bruteforce/zeek_ftp_bruteforce.pcap"),
        None,
        "2",
    );
    let bf = of_kind(&a, "brute_force");
    assert_eq!(bf.len(), 1, "{raw}");
    assert_eq!(bf[0]["src_ip"], "192.168.56.1");
    assert_eq!(bf[0]["dest_ip"], "192.168.56.101");
    assert_eq!(bf[0]["dest_port"], 21);
    assert_eq!((ev(bf[0], "attempts"), ev(bf[0], "targets")), (30, 1));
    assert_eq!(bf[0]["evidence"]["service"], "ftp");

    let (a, raw) = alerts(
        &util::public("c_bruteforce/traceshare_ssh_hydra-1_tasks.pcap"),
        None,
        "2",
    );
    let bf = of_kind(&a, "brute_force");
    assert_eq!(bf.len(), 4, "{raw}");
    for b in &bf {
        assert_eq!(
            (b["src_ip"].as_str(), b["dest_ip"].as_str()),
            (Some("240.0.1.2"), Some("240.125.0.2"))
        );
        assert_eq!(b["dest_port"], 22);
    }
    let total: u64 = bf.iter().map(|b| ev(b, "attempts")).sum();
    assert_eq!(total, 61, "{raw}");
}

/// Office traffic (SMB logons, RDP, FTP, web) and the benign look-alikes
/// (10 web clients, one download) raise no brute force.
#[test]
fn office_and_benign_traffic_is_no_brute_force() {
    let mut files = Vec::new();
    let office = Path::new(util::PUBLIC_DIR).join("d_office");
    for e in std::fs::read_dir(&office)
        .expect("d_office listed")
        .flatten()
    {
        files.push(e.path());
    }
    assert!(files.len() >= 5, "{files:?}");
    files.push(util::bundled("benign-web.pcap"));
    files.push(util::bundled("benign-download.pcap"));
    files.sort();
    for f in files {
        let (a, raw) = alerts(&f, None, "2");
        assert!(
            of_kind(&a, "brute_force").is_empty(),
            "{}: {raw}",
            f.display()
        );
    }
}

/// tests/golden/admin-site.toml: only 192.0.2.224/28 may reach management
/// ports in the My Number zone; hydra's host (inet.term) reached sshd on a
/// My Number server 9 times in 32.5 s (one 60 s window): one critical alert.
/// Listed as an admin host, it raises none (the brute force stays).
#[test]
fn non_admin_ssh_to_a_my_number_server_is_admin_access() {
    let rules = golden("admin-site.toml");
    let cap = util::bundled("bruteforce-ssh.pcap");
    let (a, raw) = alerts(&cap, Some(&rules), "2");
    let adm = of_kind(&a, "admin_access");
    assert_eq!(adm.len(), 1, "{raw}");
    let x = adm[0];
    assert_eq!(
        (x["src_ip"].as_str(), x["dest_ip"].as_str()),
        (Some("192.0.2.130"), Some("192.0.2.34"))
    );
    assert_eq!(
        (x["dest_port"].as_u64(), x["count"].as_u64()),
        (Some(22), Some(9))
    );
    assert_eq!(
        (x["severity"].as_str(), x["rule"].as_str()),
        (Some("critical"), Some("detect.admin_access"))
    );
    assert_eq!(
        (x["src_zone"].as_str(), x["dest_zone"].as_str()),
        (Some("inet.term"), Some("mynumber.srv"))
    );
    assert_eq!(x["evidence"]["answered"], true);
    assert_eq!(x["evidence"]["rule_scope"], "zone:mynumber");
    assert_eq!(of_kind(&a, "brute_force").len(), 1, "{raw}");

    let text = std::fs::read_to_string(&rules).expect("rules");
    let listed = text.replace(
        "admin_sources = [\"192.0.2.224/28\"]",
        "admin_sources = [\"192.0.2.224/28\", \"192.0.2.130\"]",
    );
    assert_ne!(listed, text);
    let dir = tempfile::tempdir().expect("tempdir");
    let r2 = dir.path().join("admin-listed.toml");
    std::fs::write(&r2, listed).expect("write rules");
    let (a, raw) = alerts(&cap, Some(&r2), "2");
    assert!(of_kind(&a, "admin_access").is_empty(), "{raw}");
    assert_eq!(of_kind(&a, "brute_force").len(), 1, "{raw}");
}

/// captures/README.md (make-kerberos.py): 192.0.2.70 sends 60 UDP
/// datagrams to the KDC 192.0.2.100:88 in 29.5 s, each from a new source
/// port; 20 are answered, 40 not. One UDP brute_force alert with those
/// numbers. The benign logon (6 requests from 192.0.2.71, all answered)
/// raises none.
#[test]
fn kerberos_guessing_over_udp_is_one_brute_force_alert() {
    let (a, raw) = alerts(&util::bundled("bruteforce-kerberos.pcap"), None, "2");
    let bf = of_kind(&a, "brute_force");
    assert_eq!(bf.len(), 1, "{raw}");
    let b = bf[0];
    assert_eq!(
        (b["src_ip"].as_str(), b["dest_ip"].as_str()),
        (Some("192.0.2.70"), Some("192.0.2.100"))
    );
    assert_eq!(
        (
            b["dest_port"].as_u64(),
            b["proto"].as_str(),
            b["count"].as_u64()
        ),
        (Some(88), Some("udp"), Some(60))
    );
    assert_eq!(b["rule"], "detect.brute_force");
    assert_eq!(b["first_seen"], "2025-11-24T16:00:00.000000Z");
    assert_eq!(b["last_seen"], "2025-11-24T16:00:29.500000Z");
    for (k, v) in [
        ("attempts", 60),
        ("connections", 60),
        ("failed", 40),
        ("unanswered", 40),
        ("refused", 0),
        ("short", 20),
        ("talked", 20),
        ("targets", 1),
    ] {
        assert_eq!(ev(b, k), v, "evidence {k}: {b:?}");
    }
    assert_eq!(b["evidence"]["service"], "kerberos");
    assert_eq!(b["evidence"]["spraying"], false);

    let (a, raw) = alerts(&util::bundled("benign-kerberos.pcap"), None, "2");
    assert!(of_kind(&a, "brute_force").is_empty(), "{raw}");
}

/// No public capture (office Windows/SMB traffic, scans that touch UDP 88,
/// DNS amplification) raises a UDP brute_force alert. The unreadable
/// libpcap_pcap-invalid-version-1.pcap is left out: replay rejects it.
#[test]
fn no_public_capture_raises_a_udp_brute_force() {
    let mut n = 0;
    for p in util::public_index() {
        if p.rel.ends_with("pcap-invalid-version-1.pcap") {
            continue;
        }
        let (a, raw) = alerts(&util::public(&p.rel), None, "2");
        let udp: Vec<_> = of_kind(&a, "brute_force")
            .into_iter()
            .filter(|b| b["proto"] != "tcp")
            .collect();
        assert!(udp.is_empty(), "{}: {raw}", p.rel);
        n += 1;
    }
    assert!(n >= 40, "only {n} public captures replayed");
}

#[test]
fn access_alerts_are_byte_identical_for_one_and_four_workers() {
    let rules = golden("admin-site.toml");
    let cases = [
        (util::bundled("bruteforce-ssh.pcap"), Some(rules.as_path())),
        (
            util::public("c_bruteforce/traceshare_ssh_hydra-1_tasks.pcap"),
            None,
        ),
        (util::public("c_bruteforce/zeek_ftp_bruteforce.pcap"), None),
        (util::bundled("bruteforce-kerberos.pcap"), None),
    ];
    for (f, r) in cases {
        let (a, one) = alerts(&f, r, "1");
        let (_, four) = alerts(&f, r, "4");
        assert!(!of_kind(&a, "brute_force").is_empty(), "{}", f.display());
        assert_eq!(one, four, "{}: 1 and 4 workers differ", f.display());
    }
}
