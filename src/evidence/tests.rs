use super::*;
use crate::capture::{FileSource, Next, PacketSource};
use std::net::IpAddr;

const A: &str = "192.0.2.10";
const B: &str = "203.0.113.200";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn key(sport: u16) -> FlowKey {
    FlowKey::new(6, ip(A), sport, ip(B), 80)
}

/// A batch of frames `(ts, key, payload byte)`, each frame one byte long.
fn batch(frames: &[(u64, FlowKey, u8)]) -> Batch {
    let mut b = Batch::default();
    for (ts, k, byte) in frames {
        let data = [*byte];
        let f = RawFrame {
            ts_ns: *ts,
            orig_len: 1,
            data: &data,
            link: LinkType::Raw,
            source: 0,
        };
        b.push(&f, k);
    }
    b
}

fn store(dir: &Path, ring: usize) -> Store {
    Store::new(EvidenceConfig {
        dir: dir.to_path_buf(),
        ring_packets: ring,
        follow_ns: 10,
        ..EvidenceConfig::default()
    })
}

/// (time, first byte) of every frame of a written evidence file.
fn frames_of(path: &Path) -> Vec<(u64, u8)> {
    let mut src = FileSource::open(&[path.to_path_buf()]).expect("open evidence");
    let mut out = Vec::new();
    while let Next::Frame(f) = src.next().expect("read") {
        out.push((f.ts_ns, f.data.first().copied().unwrap_or(0)));
    }
    out
}

fn alert(kind: &'static str, id: &str, src: &str, dst: Option<&str>, dport: Option<u16>) -> Alert {
    Alert {
        id: id.to_string(),
        kind,
        src_ip: Some(ip(src)),
        dst_ip: dst.map(ip),
        dst_port: dport,
        proto: Some(crate::model::proto::Protocol::Ip(crate::packet::proto::TCP)),
        ..Alert::default()
    }
}

#[test]
fn a_detector_alert_gets_the_ring_before_it_and_what_follows_within_the_follow_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut st = store(dir.path(), 3);
    // Five frames of one flow before the alert at t=50: the ring keeps the last 3.
    let k = key(40000);
    st.queue(batch(&[
        (10, k, 1),
        (20, k.reversed(), 2),
        (30, k, 3),
        (40, k, 4),
        (50, k.reversed(), 5),
        (55, k, 6),
        (60, k, 7),
        (61, k, 8),
    ]));
    let mut a = alert("brute_force", "b1", A, Some(B), Some(80));
    st.alert(&mut a, 50);
    assert_eq!(
        a.evidence_pcap.as_deref(),
        Some(dir.path().join("b1.pcap").to_str().expect("utf-8"))
    );
    st.finish();
    // Before: 30, 40, 50 (ring of 3 up to the alert time); after: up to 50 + 10.
    assert_eq!(
        frames_of(&dir.path().join("b1.pcap")),
        vec![(30, 3), (40, 4), (50, 5), (55, 6), (60, 7)]
    );
    assert_eq!(st.stats().files, 1);
    assert_eq!(st.stats().packets, 5);
}

#[test]
fn a_fold_group_collects_exactly_its_flows_from_their_first_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut st = store(dir.path(), 2);
    let (k1, k2, other) = (key(40001), key(40002), key(40003));
    st.queue(batch(&[
        (10, k1, 1),
        (11, other, 9),
        (12, k1.reversed(), 2),
        (20, k2, 3),
        (21, k1, 4),
        (22, k2.reversed(), 5),
        (23, k1, 6),
        (24, k1, 7),
        (25, k1, 8),
    ]));
    // The group opens with k1 at its first frame; k2 folds in at its start.
    st.fold(7, &k1, 10);
    st.fold(7, &k2, 20);
    let mut a = alert("separation_violation", "s1", A, Some(B), Some(80));
    a.evidence_slot = Some(7);
    st.alert(&mut a, 24);
    st.finish();
    let got = frames_of(&dir.path().join("s1.pcap"));
    // Everything of k1 and k2 (the ring of 2 does not cut a group that was
    // open from the start), never the other flow; up to 24 + follow 10.
    assert_eq!(
        got,
        vec![
            (10, 1),
            (12, 2),
            (20, 3),
            (21, 4),
            (22, 5),
            (23, 6),
            (24, 7),
            (25, 8)
        ]
    );
}

#[test]
fn caps_cut_the_tail_of_a_file_and_alerts_past_the_total_get_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let per_frame = pcap::RECORD_HEADER + 1;
    let mut st = Store::new(EvidenceConfig {
        dir: dir.path().to_path_buf(),
        alert_bytes: pcap::FILE_HEADER + 2 * per_frame,
        total_bytes: pcap::FILE_HEADER + 2 * per_frame,
        follow_ns: 100,
        ..EvidenceConfig::default()
    });
    let k = key(40000);
    st.queue(batch(&[(1, k, 1), (2, k, 2), (3, k, 3), (4, k, 4)]));
    let mut a = alert("brute_force", "c1", A, Some(B), Some(80));
    st.alert(&mut a, 4);
    let mut b = alert("brute_force", "c2", A, Some(B), Some(80));
    st.alert(&mut b, 4);
    st.finish();
    assert_eq!(frames_of(&dir.path().join("c1.pcap")), vec![(1, 1), (2, 2)]);
    assert!(b.evidence_pcap.is_none(), "{b:?}");
    let s = st.stats();
    assert_eq!((s.files, s.alerts_without_file), (1, 1), "{s:?}");
    assert!(s.frames_over_alert_cap >= 1, "{s:?}");
}

#[test]
fn selectors_match_both_directions_and_scans_take_every_protocol() {
    let scan = Selector::for_alert(&alert("port_scan", "x", A, Some(B), None)).expect("sel");
    let arp = FlowKey::new(0, ip(B), 1, ip(A), 0);
    assert!(scan.matches(&arp) && scan.matches(&key(1)) && scan.matches(&key(1).reversed()));
    assert!(!scan.matches(&FlowKey::new(6, ip(B), 1, ip("198.51.100.1"), 80)));
    let brute = Selector::for_alert(&alert("brute_force", "x", A, Some(B), Some(22))).expect("sel");
    assert!(brute.matches(&FlowKey::new(6, ip(B), 22, ip(A), 5555)));
    assert!(!brute.matches(&FlowKey::new(17, ip(A), 5555, ip(B), 22)));
    assert!(!brute.matches(&key(5555)));
    let mut dos = alert("dos_start", "x", A, Some(B), None);
    dos.src_ip = None;
    let dos = Selector::for_alert(&dos).expect("sel");
    assert!(dos.matches(&FlowKey::new(17, ip("198.51.100.7"), 53, ip(B), 9)));
}

#[test]
fn rings_of_flows_idle_longer_than_keep_are_not_evidence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut st = Store::new(EvidenceConfig {
        dir: dir.path().to_path_buf(),
        keep_ns: 100,
        follow_ns: 0,
        ..EvidenceConfig::default()
    });
    let (old, new) = (key(40000), key(40001));
    st.queue(batch(&[(10, old, 1), (150, new, 2)]));
    let mut a = alert("port_scan", "k1", A, None, None);
    st.alert(&mut a, 150);
    st.finish();
    assert_eq!(frames_of(&dir.path().join("k1.pcap")), vec![(150, 2)]);
}

#[test]
fn a_named_file_exists_with_whole_frames_before_its_line_and_grows_once_flushed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut st = store(dir.path(), 3);
    let k = key(40010);
    st.queue(batch(&[(10, k, 1), (20, k, 2), (55, k, 3)]));
    let mut a = alert("brute_force", "n1", A, Some(B), Some(80));
    st.alert(&mut a, 50);
    let path = dir.path().join("n1.pcap");
    // Named, and on disk already: the ring's frames, readable.
    assert_eq!(a.evidence_pcap.as_deref(), path.to_str());
    assert_eq!(frames_of(&path), vec![(10, 1), (20, 2)]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode & !0o640, 0, "{mode:o}");
    // What follows is appended by the once-a-second flush, before the close.
    st.commit(56);
    st.flush_named();
    assert_eq!(frames_of(&path), vec![(10, 1), (20, 2), (55, 3)]);
    st.finish();
    assert_eq!(frames_of(&path), vec![(10, 1), (20, 2), (55, 3)]);
    assert_eq!(st.stats().files, 1);
}

#[test]
fn a_file_that_cannot_be_created_is_not_named_and_is_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut st = store(dir.path(), 3);
    let k = key(40011);
    st.queue(batch(&[(10, k, 1), (20, k, 2)]));
    // A directory holds the file's name.
    std::fs::create_dir(dir.path().join("x1.pcap")).expect("mkdir");
    let mut a = alert("brute_force", "x1", A, Some(B), Some(80));
    st.alert(&mut a, 30);
    assert_eq!(a.evidence_pcap, None);
    // A fold group's file fails the same way.
    st.fold(7, &key(40012), 31);
    std::fs::create_dir(dir.path().join("x2.pcap")).expect("mkdir");
    let mut g = alert("separation_violation", "x2", A, Some(B), Some(80));
    g.evidence_slot = Some(7);
    st.alert(&mut g, 32);
    assert_eq!(g.evidence_pcap, None);
    st.finish();
    let s = st.stats();
    assert_eq!(
        (s.alerts_file_failed, s.files, s.bytes, s.packets),
        (2, 0, 0, 0)
    );
    // Nothing but the two directories is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 2);
}

#[test]
fn an_alert_with_no_frame_yet_gets_a_valid_empty_pcap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut st = store(dir.path(), 3);
    let mut a = alert("brute_force", "e1", A, Some(B), Some(80));
    st.alert(&mut a, 30);
    let path = dir.path().join("e1.pcap");
    assert_eq!(a.evidence_pcap.as_deref(), path.to_str());
    assert_eq!(frames_of(&path), vec![]);
    st.finish();
}
