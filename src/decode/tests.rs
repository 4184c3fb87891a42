//! Tests of the decode module: static byte-array packets per protocol, every
//! frame of the public captures (no panic, fast == slow, tshark's counts and
//! facts), and property tests.

use super::*;
use crate::packet::{addr_v4, Addr, Frag, LinkType, Tunnel, L3};

/// Frames of one capture file: (link type, bytes, original length). Reads
/// until the first error, as the file readers do.
pub(super) fn read_frames(path: &str) -> Vec<(LinkType, Vec<u8>, u32)> {
    use pcap_parser::pcapng::Block;
    use pcap_parser::traits::PcapNGPacketBlock;
    use pcap_parser::{create_reader, PcapBlockOwned, PcapError};

    let mut out = Vec::new();
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let Ok(mut reader) = create_reader(1 << 16, file) else {
        return out;
    };
    let mut legacy = None;
    let mut ifaces: Vec<Option<LinkType>> = Vec::new();
    let mut stalled = false;
    loop {
        match reader.next() {
            Ok((used, block)) => {
                stalled = false;
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy = LinkType::from_number(h.network.0 as u32)
                    }
                    PcapBlockOwned::Legacy(b) => {
                        if let Some(l) = legacy {
                            out.push((l, b.data.to_vec(), b.origlen));
                        }
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => ifaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(i)) => {
                        ifaces.push(LinkType::from_number(i.linktype.0 as u32))
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(p)) => {
                        if let Some(Some(l)) = ifaces.get(p.if_id as usize) {
                            out.push((*l, p.packet_data().to_vec(), p.origlen));
                        }
                    }
                    _ => {}
                }
                reader.consume(used);
            }
            Err(PcapError::Incomplete(_)) if !stalled => {
                stalled = true;
                if reader.refill().is_err() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    out
}

pub(super) fn public_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/captures/public").to_string()
}

/// Every public capture file (relative name, absolute path), sorted.
/// Directory of the Community ID specification's test set in the public captures.
const SPEC_SET_DIR: &str = "j_community_id";

pub(super) fn public_files() -> Vec<(String, String)> {
    let dir = public_dir();
    let mut files = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(&dir)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                // The Community ID specification's own pcaps and baseline
                // (PROVENANCE.md, section j, with its own table): a
                // conformance set for the Community ID, not part of the
                // capture index these decode tests cover.
                if p.file_name().is_some_and(|n| n == SPEC_SET_DIR) {
                    continue;
                }
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                let rel = p.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
                files.push((rel, p.to_string_lossy().into_owned()));
            }
        }
    }
    files.sort();
    files
}

pub(super) fn raw(link: LinkType, data: &[u8]) -> RawFrame<'_> {
    RawFrame {
        ts_ns: 7,
        orig_len: data.len() as u32,
        data,
        link,
        source: 0,
    }
}
// ---------------------------------------------------------------------------
// Packet builders (documentation addresses only).

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const H1: [u8; 4] = [192, 0, 2, 1];
const H2: [u8; 4] = [198, 51, 100, 2];
const H3: [u8; 4] = [203, 0, 113, 3];
const T1: [u8; 4] = [198, 51, 100, 101];
const T2: [u8; 4] = [198, 51, 100, 102];

fn v6(last: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[15] = last;
    a
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn eth(et: u16) -> Vec<u8> {
    cat(&[&MAC_B, &MAC_A, &et.to_be_bytes()])
}

fn tag(vid: u16, next: u16) -> Vec<u8> {
    cat(&[&(0x2000 | vid).to_be_bytes(), &next.to_be_bytes()])
}

/// IPv4 header + payload; `frag` = flags and fragment offset field.
fn ipv4_full(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    frag: u16,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let hlen = 20 + opts.len();
    let total = (hlen + payload.len()) as u16;
    let mut v = vec![0x40 | (hlen / 4) as u8, 0];
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&[0x12, 0x34]);
    v.extend_from_slice(&frag.to_be_bytes());
    v.extend_from_slice(&[64, proto, 0, 0]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(opts);
    v.extend_from_slice(payload);
    v
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_full(src, dst, proto, 0, &[], payload)
}

fn ipv6(src: [u8; 16], dst: [u8; 16], nh: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(&[nh, 64]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(payload);
    v
}

fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = cat(&[&sport.to_be_bytes(), &dport.to_be_bytes()]);
    v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    v.extend_from_slice(payload);
    v
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = (8 + payload.len()) as u16;
    cat(&[
        &sport.to_be_bytes(),
        &dport.to_be_bytes(),
        &len.to_be_bytes(),
        &[0, 0],
        payload,
    ])
}

fn icmp(ty: u8, code: u8, payload: &[u8]) -> Vec<u8> {
    cat(&[&[ty, code, 0, 0, 0, 1, 0, 1], payload])
}

/// Run `decode` on `frame`, checking on the way that the fast path, where it
/// applies, agrees with the slow path.
fn run_frame(frame: &RawFrame<'_>, links: &mut LinkIds) -> (PacketMeta, Result<(), DecodeError>) {
    let mut meta = PacketMeta::default();
    let r = decode(frame, links, &mut meta);
    let mut fast = PacketMeta::default();
    if decode_fast(frame, &mut fast) {
        let mut slow = PacketMeta::default();
        let rs = decode_slow(frame, &mut LinkIds::new(), &mut slow);
        assert_eq!(rs, Ok(()), "slow path failed where fast succeeded");
        assert_eq!(fast, slow, "fast and slow paths disagree");
        assert_eq!(r, Ok(()));
        assert_eq!(meta, fast);
    }
    (meta, r)
}

fn run(link: LinkType, data: &[u8]) -> (PacketMeta, Result<(), DecodeError>) {
    run_frame(&raw(link, data), &mut LinkIds::new())
}

fn is_fast(link: LinkType, data: &[u8]) -> bool {
    decode_fast(&raw(link, data), &mut PacketMeta::default())
}

/// Decode the first `n` bytes of `data` as a snaplen cut (original length kept).
fn run_cut(link: LinkType, data: &[u8], n: usize) -> (PacketMeta, Result<(), DecodeError>) {
    let f = RawFrame {
        ts_ns: 7,
        orig_len: data.len() as u32,
        data: &data[..n],
        link,
        source: 0,
    };
    run_frame(&f, &mut LinkIds::new())
}

fn reason(r: Result<(), DecodeError>) -> Option<DecodeFail> {
    r.err().map(|e| e.reason)
}

fn a4(a: [u8; 4]) -> Addr {
    addr_v4(a)
}

// ---------------------------------------------------------------------------
// Static byte-array tests per protocol.

/// Ethernet II + IPv4 + TCP SYN with an MSS option, written out byte by byte.
static ETH_IPV4_TCP_SYN: [u8; 58] = [
    // Ethernet: dst 02:00:00:00:00:0b, src 02:00:00:00:00:0a, IPv4
    0x02, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x08, 0x00,
    // IPv4: IHL 5, total length 44, id, DF, TTL 64, TCP, 192.0.2.10 -> 198.51.100.20
    0x45, 0x00, 0x00, 0x2c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 192, 0, 2, 10, 198, 51,
    100, 20, // TCP: 49152 -> 443, seq 1, data offset 6, SYN, window, MSS 1460
    0xc0, 0x00, 0x01, 0xbb, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xff, 0xff,
    0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
];

#[test]
fn ethernet_ipv4_tcp_syn() {
    assert!(is_fast(LinkType::Ethernet, &ETH_IPV4_TCP_SYN));
    let (m, r) = run(LinkType::Ethernet, &ETH_IPV4_TCP_SYN);
    assert_eq!(r, Ok(()));
    let want = PacketMeta {
        ts_ns: 7,
        hash: 0,
        key: crate::packet::FlowKey {
            src: a4([192, 0, 2, 10]),
            dst: a4([198, 51, 100, 20]),
            sport: 49152,
            dport: 443,
            proto: 6,
            ..Default::default()
        },
        wire_len: 58,
        ip_len: 44,
        payload_len: 0,
        src_mac: MAC_A,
        l3: L3::Ipv4,
        tcp_flags: crate::packet::tcp_flags::SYN,
        ttl: 64,
        ..Default::default()
    };
    assert_eq!(m, want);
}

#[test]
fn decode_overwrites_previous_meta() {
    let mut m = PacketMeta {
        hash: 99,
        has_quote: true,
        nvlan: 2,
        ..Default::default()
    };
    m.key.link = 5;
    let mut links = LinkIds::new();
    decode(
        &raw(LinkType::Ethernet, &ETH_IPV4_TCP_SYN),
        &mut links,
        &mut m,
    )
    .unwrap();
    assert_eq!((m.hash, m.has_quote, m.nvlan, m.key.link), (0, false, 0, 0));
    // and the slow path (ARP) too
    let arp = arp_request();
    decode(&raw(LinkType::Ethernet, &arp), &mut links, &mut m).unwrap();
    assert_eq!((m.tcp_flags, m.ttl, m.ip_len), (0, 0, 0));
}

#[test]
fn tcp_payload_and_udp_length() {
    let f = cat(&[&eth(0x0800), &ipv4(H1, H2, 6, &tcp(1, 2, 0x18, b"hello"))]);
    let (m, r) = run(LinkType::Ethernet, &f);
    assert_eq!((r, m.payload_len, m.tcp_flags), (Ok(()), 5, 0x18));
    // Ethernet padding after the IP packet is not payload.
    let mut padded = cat(&[&eth(0x0800), &ipv4(H1, H2, 17, &udp(5353, 53, b"abc"))]);
    padded.resize(60, 0);
    assert!(is_fast(LinkType::Ethernet, &padded));
    let (m, r) = run(LinkType::Ethernet, &padded);
    assert_eq!(
        (r, m.payload_len, m.ip_len, m.key.dport),
        (Ok(()), 3, 31, 53)
    );
}

#[test]
fn qinq_keeps_both_ids() {
    let ip = ipv4(H1, H2, 17, &udp(1000, 2000, b"x"));
    let f = cat(&[&eth(0x88a8), &tag(100, 0x8100), &tag(200, 0x0800), &ip]);
    assert!(is_fast(LinkType::Ethernet, &f));
    let (m, r) = run(LinkType::Ethernet, &f);
    assert_eq!(r, Ok(()));
    assert_eq!((m.key.vlan, m.nvlan), ([100, 200], 2));
    assert_eq!((m.key.sport, m.key.dport, m.l3), (1000, 2000, L3::Ipv4));
    // A third (0x9100) tag is counted, not kept.
    let f = cat(&[
        &eth(0x9100),
        &tag(7, 0x88a8),
        &tag(8, 0x8100),
        &tag(9, 0x0800),
        &ip,
    ]);
    let (m, r) = run(LinkType::Ethernet, &f);
    assert_eq!(r, Ok(()));
    assert_eq!((m.key.vlan, m.nvlan), ([7, 8], 3));
}

#[test]
fn ipv4_first_and_non_first_fragment() {
    // First fragment: MF, offset 0; the UDP header is there but its length
    // covers the whole datagram.
    let mut u = udp(5353, 53, &[0u8; 100]);
    u.truncate(48);
    let first = cat(&[&eth(0x0800), &ipv4_full(H1, H2, 17, 0x2000, &[], &u)]);
    assert!(!is_fast(LinkType::Ethernet, &first));
    let (m, r) = run(LinkType::Ethernet, &first);
    assert_eq!(r, Ok(()));
    assert_eq!(m.frag, Frag::First);
    assert_eq!((m.key.sport, m.key.dport, m.key.proto), (5353, 53, 17));
    assert_eq!(m.payload_len, 40);
    // Non-first: offset 6 (48 bytes); its first bytes look like a UDP header
    // but must not be read as one.
    let later = cat(&[&eth(0x0800), &ipv4_full(H1, H2, 17, 6, &[], &[0xaa; 60])]);
    let (m, r) = run(LinkType::Ethernet, &later);
    assert_eq!(r, Ok(()));
    assert_eq!(m.frag, Frag::NonFirst);
    assert_eq!((m.key.sport, m.key.dport, m.key.proto), (0, 0, 17));
    assert_eq!((m.payload_len, m.ip_len), (60, 80));
}

#[test]
fn ipv4_options_take_the_slow_path() {
    // Router alert option (4 bytes).
    let f = cat(&[
        &eth(0x0800),
        &ipv4_full(
            H1,
            H2,
            6,
            0,
            &[0x94, 0x04, 0, 0],
            &tcp(80, 8080, 0x10, b"ab"),
        ),
    ]);
    assert!(!is_fast(LinkType::Ethernet, &f));
    let (m, r) = run(LinkType::Ethernet, &f);
    assert_eq!(r, Ok(()));
    assert_eq!(
        (m.key.sport, m.key.dport, m.payload_len, m.ip_len),
        (80, 8080, 2, 46)
    );
}

#[test]
fn ipv4_authentication_header_is_skipped() {
    // AH: next header TCP, length 4 (= 24 bytes), reserved, SPI, sequence, 12-byte ICV
    let ah = cat(&[&[6, 4, 0, 0], &[0, 0, 1, 0], &[0, 0, 0, 1], &[0xab; 12]]);
    let f = cat(&[
        &eth(0x0800),
        &ipv4(H1, H2, 51, &cat(&[&ah, &tcp(1234, 80, 0x02, b"")])),
    ]);
    assert!(!is_fast(LinkType::Ethernet, &f));
    let (m, r) = run(LinkType::Ethernet, &f);
    assert_eq!(r, Ok(()));
    assert_eq!(
        (m.key.proto, m.key.sport, m.key.dport, m.payload_len),
        (6, 1234, 80, 0)
    );
}

/// IPv6 + hop-by-hop (8 bytes) + fragment header + `inner`.
fn ipv6_hbh_frag(offset8: u16, more: bool, inner_nh: u8, inner: &[u8]) -> Vec<u8> {
    let hbh = [44u8, 0, 1, 4, 0, 0, 0, 0]; // next: fragment; PadN
    let fo = (offset8 << 3) | u16::from(more);
    let frag = cat(&[&[inner_nh, 0], &fo.to_be_bytes(), &[0, 0, 0, 42]]);
    cat(&[
        &eth(0x86dd),
        &ipv6(v6(1), v6(2), 0, &cat(&[&hbh, &frag, inner])),
    ])
}

#[test]
fn ipv6_hop_by_hop_and_fragment_headers() {
    let first = ipv6_hbh_frag(0, true, 17, &udp(4000, 53, &[1; 32]));
    let (m, r) = run(LinkType::Ethernet, &first);
    assert_eq!(r, Ok(()));
    assert_eq!((m.l3, m.frag, m.key.proto), (L3::Ipv6, Frag::First, 17));
    assert_eq!((m.key.sport, m.key.dport, m.ttl), (4000, 53, 64));
    assert_eq!(m.key.src_ip().to_string(), "2001:db8::1");
    assert_eq!(m.payload_len, 32);
    assert_eq!(m.ip_len, 40 + 16 + 40);
    let later = ipv6_hbh_frag(100, false, 17, &[0xbb; 24]);
    let (m, r) = run(LinkType::Ethernet, &later);
    assert_eq!(r, Ok(()));
    assert_eq!(
        (m.frag, m.key.proto, m.key.sport, m.key.dport),
        (Frag::NonFirst, 17, 0, 0)
    );
    assert_eq!(m.payload_len, 24);
    // An atomic fragment (offset 0, no MF) is not a fragment.
    let atomic = ipv6_hbh_frag(0, false, 6, &tcp(1, 2, 0x02, b""));
    let (m, r) = run(LinkType::Ethernet, &atomic);
    assert_eq!(r, Ok(()));
    assert_eq!((m.frag, m.key.proto, m.key.dport), (Frag::None, 6, 2));
}

#[test]
fn icmp_port_unreachable_quotes_the_udp_packet_as_sent() {
    // 192.0.2.1:5353 -> 198.51.100.2:53 UDP; 198.51.100.2 answers port unreachable.
    let orig = ipv4(H1, H2, 17, &udp(5353, 53, b"query"));
    let f = cat(&[&eth(0x0800), &ipv4(H2, H1, 1, &icmp(3, 3, &orig))]);
    assert!(!is_fast(LinkType::Ethernet, &f));
    let (m, r) = run(LinkType::Ethernet, &f);
    assert_eq!(r, Ok(()));
    assert_eq!((m.key.src, m.key.dst), (a4(H2), a4(H1)));
    assert_eq!((m.key.sport, m.key.dport, m.key.proto), (3, 3, 1));
    assert!(m.has_quote);
    let q = m.quote;
    assert_eq!(
        (q.src, q.dst, q.sport, q.dport, q.proto, q.v6),
        (a4(H1), a4(H2), 5353, 53, 17, false)
    );
    // Echo is not an error: no quote, fast path.
    let echo = cat(&[&eth(0x0800), &ipv4(H1, H2, 1, &icmp(8, 0, b"ping"))]);
    assert!(is_fast(LinkType::Ethernet, &echo));
    let (m, _) = run(LinkType::Ethernet, &echo);
    assert_eq!((m.has_quote, m.key.sport, m.payload_len), (false, 8, 4));
}

#[test]
fn icmpv6_time_exceeded_quotes_tcp() {
    let orig = ipv6(v6(1), v6(2), 6, &tcp(40000, 443, 0x02, b""));
    let f = cat(&[
        &eth(0x86dd),
        &ipv6(v6(9), v6(1), 58, &icmp(3, 0, &orig[..48])),
    ]);
    let (m, r) = run(LinkType::Ethernet, &f);
    assert_eq!(r, Ok(()));
    assert_eq!((m.key.sport, m.key.dport, m.key.proto), (3, 0, 58));
    assert!(m.has_quote);
    let q = m.quote;
    assert_eq!(
        (q.src, q.dst, q.sport, q.dport, q.proto, q.v6),
        (v6(1), v6(2), 40000, 443, 6, true)
    );
}

fn arp_request() -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&MAC_A);
    a.extend_from_slice(&H1);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&H3);
    cat(&[&eth(0x0806), &a])
}

#[test]
fn arp_request_gives_addresses_and_opcode() {
    let f = arp_request();
    let (m, r) = run(LinkType::Ethernet, &f);
    assert_eq!(r, Ok(()));
    assert_eq!(m.l3, L3::Arp);
    assert_eq!(
        (m.key.src, m.key.dst, m.key.sport, m.key.proto),
        (a4(H1), a4(H3), 1, 0)
    );
    assert_eq!(m.src_mac, MAC_A);
    let (m, r) = run(LinkType::Ethernet, &f[..30]);
    assert_eq!((m.l3, reason(r)), (L3::Arp, Some(DecodeFail::TruncatedArp)));
}

#[test]
fn non_ip_ethertypes_and_llc_are_other() {
    for et in [
        0x88cc_u16, 0x0026, /* 802.3 length */
        0x8137, /* IPX */
    ] {
        let f = cat(&[&eth(et), &[0x42; 40]]);
        let (m, r) = run(LinkType::Ethernet, &f);
        assert_eq!((m.l3, r), (L3::Other, Ok(())), "ethertype {et:#x}");
    }
}

#[test]
fn linux_sll_v1() {
    // packet type 0 (to us), ARPHRD_ETHER, address length 6, MAC, padding, IPv4
    let hdr = cat(&[&[0, 0, 0, 1, 0, 6], &MAC_A, &[0, 0], &[0x08, 0x00]]);
    let f = cat(&[&hdr, &ipv4(H1, H2, 6, &tcp(5000, 22, 0x10, b""))]);
    assert!(is_fast(LinkType::LinuxSll, &f));
    let (m, r) = run(LinkType::LinuxSll, &f);
    assert_eq!(r, Ok(()));
    assert_eq!((m.l3, m.key.dport, m.src_mac), (L3::Ipv4, 22, MAC_A));
    // ARPHRD_NETLINK: the protocol field is a netlink family, not an ethertype.
    let nl = cat(&[
        &[0, 4, 0x03, 0x38, 0, 0],
        &[0; 8],
        &[0x08, 0x00],
        &[0x45; 20],
    ]);
    let (m, r) = run(LinkType::LinuxSll, &nl);
    assert_eq!((m.l3, r), (L3::Other, Ok(())));
    assert_eq!(
        reason(run(LinkType::LinuxSll, &f[..15]).1),
        Some(DecodeFail::TruncatedLink)
    );
}

#[test]
fn linux_sll_v2() {
    // protocol IPv6, reserved, ifindex 2, ARPHRD_ETHER, outgoing, addr len 6, MAC
    let hdr = cat(&[&[0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6], &MAC_B, &[0, 0]]);
    let f = cat(&[&hdr, &ipv6(v6(1), v6(2), 58, &icmp(128, 0, b"echo"))]);
    assert!(is_fast(LinkType::LinuxSll2, &f));
    let (m, r) = run(LinkType::LinuxSll2, &f);
    assert_eq!(r, Ok(()));
    assert_eq!(
        (m.l3, m.key.sport, m.key.proto, m.src_mac),
        (L3::Ipv6, 128, 58, MAC_B)
    );
    assert_eq!(
        reason(run(LinkType::LinuxSll2, &f[..19]).1),
        Some(DecodeFail::TruncatedLink)
    );
}

#[test]
fn raw_and_ip_linktypes() {
    let p4 = ipv4(H1, H2, 17, &udp(1, 53, b""));
    let p6 = ipv6(v6(1), v6(2), 17, &udp(1, 53, b""));
    for (link, p, l3) in [
        (LinkType::Raw, &p4, L3::Ipv4),
        (LinkType::Raw, &p6, L3::Ipv6),
        (LinkType::Ipv4, &p4, L3::Ipv4),
        (LinkType::Ipv6, &p6, L3::Ipv6),
    ] {
        assert!(is_fast(link, p));
        let (m, r) = run(link, p);
        assert_eq!(
            (r, m.l3, m.key.dport, m.src_mac),
            (Ok(()), l3, 53, [0; 6]),
            "{link:?}"
        );
    }
    // The link type announces IPv4 but the packet is IPv6.
    let (m, r) = run(LinkType::Ipv4, &p6);
    assert_eq!(
        (m.l3, reason(r)),
        (L3::Ipv4, Some(DecodeFail::BadIpVersion))
    );
    // Raw with an unknown version: nothing is known.
    let (m, r) = run(LinkType::Raw, &[0x50; 30]);
    assert_eq!(
        (m.l3, reason(r)),
        (L3::None, Some(DecodeFail::BadIpVersion))
    );
    assert_eq!(
        reason(run(LinkType::Raw, &[]).1),
        Some(DecodeFail::TruncatedLink)
    );
}

#[test]
fn null_loopback_both_byte_orders() {
    let p4 = ipv4(H1, H2, 6, &tcp(1, 80, 0x02, b""));
    let p6 = ipv6(v6(1), v6(2), 6, &tcp(1, 80, 0x02, b""));
    for fam in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
        let (m, r) = run(LinkType::Null, &cat(&[&fam, &p4]));
        assert_eq!((r, m.l3, m.key.dport), (Ok(()), L3::Ipv4, 80));
    }
    for af in [24u32, 28, 30] {
        for fam in [af.to_le_bytes(), af.to_be_bytes()] {
            let (m, r) = run(LinkType::Null, &cat(&[&fam, &p6]));
            assert_eq!((r, m.l3), (Ok(()), L3::Ipv6), "AF {af}");
        }
    }
    let (m, r) = run(LinkType::Loop, &cat(&[&2u32.to_be_bytes(), &p4]));
    assert_eq!((r, m.l3), (Ok(()), L3::Ipv4));
    let (m, r) = run(LinkType::Null, &cat(&[&7u32.to_le_bytes(), &p4]));
    assert_eq!((r, m.l3), (Ok(()), L3::Other));
    assert_eq!(
        reason(run(LinkType::Null, &[2, 0, 0]).1),
        Some(DecodeFail::TruncatedLink)
    );
}

// --- tunnels -----------------------------------------------------------------

fn inner_tcp() -> Vec<u8> {
    ipv4(H1, H3, 6, &tcp(33000, 80, 0x18, b"GET /"))
}

/// Outer Ethernet + IPv4 T1 -> T2 GRE with key 7 around IPv4/TCP.
fn gre_frame() -> Vec<u8> {
    let gre = cat(&[&[0x20, 0x00, 0x08, 0x00], &7u32.to_be_bytes(), &inner_tcp()]);
    cat(&[&eth(0x0800), &ipv4(T1, T2, 47, &gre)])
}

fn erspan2_frame() -> Vec<u8> {
    let inner = cat(&[&eth(0x0800), &ipv4(H1, H3, 1, &icmp(8, 0, b"ping"))]);
    // GRE with S bit, sequence; ERSPAN II: version 1, session 100
    let gre = cat(&[
        &[0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 5],
        &[0x10, 0x00, 0x00, 0x64, 0, 0, 0, 0],
        &inner,
    ]);
    cat(&[&eth(0x0800), &ipv4(T1, T2, 47, &gre)])
}

fn erspan3_frame() -> Vec<u8> {
    let inner = cat(&[&eth(0x0800), &ipv4(H1, H3, 17, &udp(123, 123, b"ntp"))]);
    let gre = cat(&[
        &[0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 5],
        // version 2, session 42, timestamp, SGT, O flag set
        &[0x20, 0x00, 0x00, 0x2a, 0, 0, 0, 1, 0, 0, 0x00, 0x01],
        &[0xee; 8],
        &inner,
    ]);
    cat(&[&eth(0x0800), &ipv4(T1, T2, 47, &gre)])
}

fn vxlan_frame(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let inner = cat(&[&eth(0x0800), &ipv4(H1, H3, 1, &icmp(0, 0, b"pong"))]);
    let vx = cat(&[&[0x08, 0, 0, 0, 0, 0, 123, 0], &inner]);
    cat(&[&eth(0x0800), &ipv4(src, dst, 17, &udp(50000, 4789, &vx))])
}

fn geneve_frame() -> Vec<u8> {
    let inner = cat(&[
        &eth(0x86dd),
        &ipv6(v6(1), v6(2), 17, &udp(546, 547, b"dhcp")),
    ]);
    let gen = cat(&[&[0x02, 0x00, 0x65, 0x58, 0, 0, 5, 0], &[0xcc; 8], &inner]);
    cat(&[&eth(0x0800), &ipv4(T1, T2, 17, &udp(50000, 6081, &gen))])
}

fn ipip_frame() -> Vec<u8> {
    cat(&[&eth(0x0800), &ipv4(T1, T2, 4, &inner_tcp())])
}

#[test]
fn gre_inner_ipv4_is_analysed() {
    let f = gre_frame();
    assert!(!is_fast(LinkType::Ethernet, &f));
    let mut links = LinkIds::new();
    let (m, r) = run_frame(&raw(LinkType::Ethernet, &f), &mut links);
    assert_eq!(r, Ok(()));
    assert_eq!(m.tunnel, Tunnel::Gre);
    assert_eq!(
        (m.key.src, m.key.dst, m.key.sport, m.key.dport),
        (a4(H1), a4(H3), 33000, 80)
    );
    assert_eq!(
        (m.key.proto, m.payload_len, m.ip_len, m.tcp_flags),
        (6, 5, 45, 0x18)
    );
    assert_eq!((m.key.link, m.src_mac), (1, MAC_A));
    assert_eq!(
        links.describe(1).unwrap(),
        "gre key 7 198.51.100.101<->198.51.100.102"
    );
    // The reverse direction of the tunnel is the same link.
    let back = cat(&[
        &eth(0x0800),
        &ipv4(
            T2,
            T1,
            47,
            &cat(&[
                &[0x20, 0, 8, 0],
                &7u32.to_be_bytes(),
                &ipv4(H3, H1, 6, &tcp(80, 33000, 0x10, b"")),
            ]),
        ),
    ]);
    let (m, _) = run_frame(&raw(LinkType::Ethernet, &back), &mut links);
    assert_eq!(m.key.link, 1);
}

#[test]
fn erspan_ii_and_iii() {
    let mut links = LinkIds::new();
    let (m, r) = run_frame(&raw(LinkType::Ethernet, &erspan2_frame()), &mut links);
    assert_eq!(r, Ok(()));
    assert_eq!(
        (m.tunnel, m.key.proto, m.key.sport, m.key.src),
        (Tunnel::ErspanII, 1, 8, a4(H1))
    );
    assert_eq!(
        links.describe(m.key.link).unwrap(),
        "erspan_ii session 100 198.51.100.101<->198.51.100.102"
    );
    let (m, r) = run_frame(&raw(LinkType::Ethernet, &erspan3_frame()), &mut links);
    assert_eq!(r, Ok(()));
    assert_eq!(
        (m.tunnel, m.key.proto, m.key.dport, m.key.link),
        (Tunnel::ErspanIII, 17, 123, 2)
    );
    assert_eq!(
        links.describe(2).unwrap(),
        "erspan_iii session 42 198.51.100.101<->198.51.100.102"
    );
    // ERSPAN I: no ERSPAN header, no sequence bit.
    let inner = cat(&[&eth(0x0800), &inner_tcp()]);
    let f = cat(&[
        &eth(0x0800),
        &ipv4(T1, T2, 47, &cat(&[&[0, 0, 0x88, 0xbe], &inner])),
    ]);
    let (m, r) = run(LinkType::Ethernet, &f);
    assert_eq!((r, m.tunnel, m.key.dport), (Ok(()), Tunnel::ErspanI, 80));
}

#[test]
fn vxlan_and_geneve() {
    let mut links = LinkIds::new();
    let (m, r) = run_frame(&raw(LinkType::Ethernet, &vxlan_frame(T1, T2)), &mut links);
    assert_eq!(r, Ok(()));
    assert_eq!(
        (m.tunnel, m.key.proto, m.key.src, m.key.dst),
        (Tunnel::Vxlan, 1, a4(H1), a4(H3))
    );
    assert_eq!(
        links.describe(m.key.link).unwrap(),
        "vxlan vni 123 198.51.100.101<->198.51.100.102"
    );
    let (m, r) = run_frame(&raw(LinkType::Ethernet, &geneve_frame()), &mut links);
    assert_eq!(r, Ok(()));
    assert_eq!(
        (m.tunnel, m.l3, m.key.dport, m.payload_len),
        (Tunnel::Geneve, L3::Ipv6, 547, 4)
    );
    assert_eq!(
        links.describe(m.key.link).unwrap(),
        "geneve vni 5 198.51.100.101<->198.51.100.102"
    );
    // Without the I flag it is plain UDP.
    let mut f = vxlan_frame(T1, T2);
    f[14 + 20 + 8] = 0;
    let (m, r) = run(LinkType::Ethernet, &f);
    assert_eq!(
        (r, m.tunnel, m.key.dport, m.key.link),
        (Ok(()), Tunnel::None, 4789, 0)
    );
}

#[test]
fn ip_in_ip_and_nesting() {
    let (m, r) = run(LinkType::Ethernet, &ipip_frame());
    assert_eq!(
        (r, m.tunnel, m.key.dport, m.ttl),
        (Ok(()), Tunnel::IpInIp, 80, 64)
    );
    // VXLAN inside GRE: the outermost kind is reported, the link is the chain.
    let vx = vxlan_frame(H2, H3);
    let f = cat(&[
        &eth(0x0800),
        &ipv4(T1, T2, 47, &cat(&[&[0, 0, 0x65, 0x58], &vx])),
    ]);
    let mut links = LinkIds::new();
    let (m, r) = run_frame(&raw(LinkType::Ethernet, &f), &mut links);
    assert_eq!((r, m.tunnel, m.key.proto), (Ok(()), Tunnel::Gre, 1));
    assert_eq!(
        links.describe(m.key.link).unwrap(),
        "gre 198.51.100.101<->198.51.100.102 / vxlan vni 123 198.51.100.2<->203.0.113.3"
    );
    // MAX_TUNNEL_DEPTH IP-in-IP layers decode, one more does not.
    let mut p = inner_tcp();
    for _ in 0..MAX_TUNNEL_DEPTH {
        p = ipv4(T1, T2, 4, &p);
    }
    let (m, r) = run(LinkType::Raw, &p);
    assert_eq!((r, m.key.dport), (Ok(()), 80));
    let p = ipv4(T1, T2, 4, &p);
    let (m, r) = run(LinkType::Raw, &p);
    assert_eq!(reason(r), Some(DecodeFail::TunnelTooDeep));
    assert_eq!((m.tunnel, m.key.proto), (Tunnel::IpInIp, 4));
}

// --- truncations and lies -------------------------------------------------------

#[test]
fn truncated_link_vlan_ip() {
    let f = ETH_IPV4_TCP_SYN;
    let (m, r) = run_cut(LinkType::Ethernet, &f, 10);
    assert_eq!(
        (m.l3, reason(r)),
        (L3::None, Some(DecodeFail::TruncatedLink))
    );
    let q = cat(&[
        &eth(0x8100),
        &tag(5, 0x0800),
        &ipv4(H1, H2, 6, &tcp(1, 2, 2, b"")),
    ]);
    let (m, r) = run_cut(LinkType::Ethernet, &q, 16);
    assert_eq!(
        (m.l3, reason(r)),
        (L3::None, Some(DecodeFail::TruncatedVlan))
    );
    let (m, r) = run_cut(LinkType::Ethernet, &f, 30);
    assert_eq!(
        (m.l3, reason(r)),
        (L3::Ipv4, Some(DecodeFail::TruncatedIpv4))
    );
    let six = cat(&[&eth(0x86dd), &ipv6(v6(1), v6(2), 17, &udp(1, 2, b""))]);
    let (m, r) = run_cut(LinkType::Ethernet, &six, 50);
    assert_eq!(
        (m.l3, reason(r)),
        (L3::Ipv6, Some(DecodeFail::TruncatedIpv6))
    );
    // IPv4 options cut
    let o = cat(&[
        &eth(0x0800),
        &ipv4_full(H1, H2, 6, 0, &[1, 1, 1, 0], &tcp(1, 2, 2, b"")),
    ]);
    assert_eq!(
        reason(run_cut(LinkType::Ethernet, &o, 36).1),
        Some(DecodeFail::TruncatedIpv4)
    );
    // IHL 4
    let mut bad = f;
    bad[14] = 0x44;
    assert_eq!(
        reason(run(LinkType::Ethernet, &bad).1),
        Some(DecodeFail::BadIpv4HeaderLen)
    );
}

#[test]
fn truncated_transport_keeps_what_was_there() {
    let f = ETH_IPV4_TCP_SYN;
    // 10 TCP bytes: ports known, header not.
    let (m, r) = run_cut(LinkType::Ethernet, &f, 44);
    assert_eq!(reason(r), Some(DecodeFail::TruncatedTcp));
    assert_eq!(
        (m.l3, m.key.proto, m.key.sport, m.key.dport),
        (L3::Ipv4, 6, 49152, 443)
    );
    // Options cut by the snaplen are fine.
    assert!(decode_fast(
        &RawFrame {
            orig_len: 58,
            ..raw(LinkType::Ethernet, &f[..54])
        },
        &mut PacketMeta::default()
    ));
    let (m, r) = run_cut(LinkType::Ethernet, &f, 54);
    assert_eq!((r, m.tcp_flags, m.ip_len), (Ok(()), 2, 44));
    // Payload cut by the snaplen is fine too.
    let big = cat(&[&eth(0x0800), &ipv4(H1, H2, 6, &tcp(1, 2, 0x10, &[0; 1000]))]);
    let (m, r) = run_cut(LinkType::Ethernet, &big, 96);
    assert_eq!((r, m.payload_len), (Ok(()), 1000));
    let u = cat(&[&eth(0x0800), &ipv4(H1, H2, 17, &udp(7, 9, b"abcd"))]);
    assert_eq!(
        reason(run_cut(LinkType::Ethernet, &u, 38).1),
        Some(DecodeFail::TruncatedUdp)
    );
    let i = cat(&[&eth(0x0800), &ipv4(H1, H2, 1, &icmp(8, 0, b""))]);
    let (m, r) = run_cut(LinkType::Ethernet, &i, 37);
    assert_eq!(
        (reason(r), m.key.sport),
        (Some(DecodeFail::TruncatedIcmp), 8)
    );
    let i6 = cat(&[&eth(0x86dd), &ipv6(v6(1), v6(2), 58, &icmp(135, 0, b""))]);
    assert_eq!(
        reason(run_cut(LinkType::Ethernet, &i6, 58).1),
        Some(DecodeFail::TruncatedIcmpv6)
    );
    let ext = ipv6_hbh_frag(0, true, 17, &udp(1, 2, b""));
    let (m, r) = run_cut(LinkType::Ethernet, &ext, 14 + 40 + 4);
    assert_eq!(
        (m.l3, reason(r)),
        (L3::Ipv6, Some(DecodeFail::TruncatedIpExt))
    );
}

#[test]
fn lying_lengths() {
    // Total length beyond the original frame: an error, but the transport is decoded.
    let mut f = ETH_IPV4_TCP_SYN;
    f[16..18].copy_from_slice(&200u16.to_be_bytes());
    let (m, r) = run(LinkType::Ethernet, &f);
    assert_eq!(reason(r), Some(DecodeFail::BadIpv4TotalLen));
    assert_eq!((m.ip_len, m.key.dport, m.tcp_flags), (200, 443, 2));
    let mut s = DecodeStats::new();
    s.record(&raw(LinkType::Ethernet, &f), &m, r);
    assert_eq!(s.transport().find(|(k, _)| *k == "tcp"), Some(("tcp", 1)));
    // Below the header: nothing after it.
    f[16..18].copy_from_slice(&12u16.to_be_bytes());
    assert_eq!(
        reason(run(LinkType::Ethernet, &f).1),
        Some(DecodeFail::Ipv4TotalLenBelowHeader)
    );
    // TCP data offset 4 / beyond the payload.
    let mut t = ETH_IPV4_TCP_SYN;
    t[46] = 0x40;
    assert_eq!(
        reason(run(LinkType::Ethernet, &t).1),
        Some(DecodeFail::BadTcpDataOffset)
    );
    t[46] = 0xf0;
    assert_eq!(
        reason(run(LinkType::Ethernet, &t).1),
        Some(DecodeFail::BadTcpDataOffset)
    );
    // UDP length beyond the IP payload, and below 8.
    let mut u = cat(&[&eth(0x0800), &ipv4(H1, H2, 17, &udp(7, 9, b"abcd"))]);
    u[38..40].copy_from_slice(&100u16.to_be_bytes());
    let (m, r) = run(LinkType::Ethernet, &u);
    assert_eq!(
        (reason(r), m.key.dport, m.payload_len),
        (Some(DecodeFail::BadUdpLen), 9, 4)
    );
    u[38..40].copy_from_slice(&3u16.to_be_bytes());
    assert_eq!(
        reason(run(LinkType::Ethernet, &u).1),
        Some(DecodeFail::BadUdpLen)
    );
    // IPv6 payload length beyond the frame.
    let mut six = cat(&[&eth(0x86dd), &ipv6(v6(1), v6(2), 17, &udp(1, 2, b""))]);
    six[18..20].copy_from_slice(&500u16.to_be_bytes());
    let (m, r) = run(LinkType::Ethernet, &six);
    assert_eq!(
        (reason(r), m.key.dport),
        (Some(DecodeFail::BadIpv6PayloadLen), 2)
    );
    // ICMP error without a quoted header.
    let e = cat(&[&eth(0x0800), &ipv4(H2, H1, 1, &icmp(11, 0, &[0x45, 0]))]);
    let (m, r) = run(LinkType::Ethernet, &e);
    assert_eq!(
        (reason(r), m.has_quote, m.key.sport),
        (Some(DecodeFail::BadIcmpQuote), false, 11)
    );
}

#[test]
fn truncated_tunnels_keep_the_outer_packet() {
    let cases: [(&str, Vec<u8>, usize); 6] = [
        ("gre header", gre_frame(), 14 + 20 + 6),
        ("erspan ii header", erspan2_frame(), 14 + 20 + 8 + 4),
        (
            "erspan iii subheader",
            erspan3_frame(),
            14 + 20 + 8 + 12 + 4,
        ),
        ("vxlan header", vxlan_frame(T1, T2), 14 + 20 + 8 + 5),
        (
            "vxlan inner ethernet",
            vxlan_frame(T1, T2),
            14 + 20 + 8 + 8 + 10,
        ),
        ("geneve options", geneve_frame(), 14 + 20 + 8 + 12),
    ];
    for (what, f, n) in cases {
        let (m, r) = run_cut(LinkType::Ethernet, &f, n);
        assert_eq!(reason(r), Some(DecodeFail::TruncatedTunnel), "{what}");
        assert_eq!(
            (m.l3, m.tunnel, m.key.link),
            (L3::Ipv4, Tunnel::None, 0),
            "{what}"
        );
        assert_eq!((m.key.src, m.key.dst), (a4(T1), a4(T2)), "{what}");
    }
    // Cut inside the inner IP header: the inner packet is analysed (its l3 is known).
    let f = gre_frame();
    let (m, r) = run_cut(LinkType::Ethernet, &f, 14 + 20 + 8 + 10);
    assert_eq!(
        (reason(r), m.l3, m.tunnel),
        (Some(DecodeFail::TruncatedIpv4), L3::Ipv4, Tunnel::Gre)
    );
    // Unknown ERSPAN III frame type.
    let mut e3 = erspan3_frame();
    e3[14 + 20 + 8 + 10] = 0x7c;
    assert_eq!(
        reason(run(LinkType::Ethernet, &e3).1),
        Some(DecodeFail::BadTunnel)
    );
}

// --- regressions --------------------------------------------------------------

/// Found by fuzzing: etherparse's Icmpv4Slice wants 20 bytes for a timestamp
/// reply, the fast path 8; both now read type and code from 8 bytes.
#[test]
fn regression_icmp_timestamp_with_short_body() {
    let p = ipv4(H1, H2, 1, &icmp(14, 0, &[1, 2]));
    assert!(is_fast(LinkType::Raw, &p));
    let (m, r) = run(LinkType::Raw, &p);
    assert_eq!((r, m.key.sport, m.payload_len), (Ok(()), 14, 2));
}

/// Found by proptest: iterating the extension headers of a lax IPv6 slice
/// whose Fragment header was cut read past the slice (etherparse 0.21).
#[test]
fn regression_ipv6_fragment_header_cut_after_hop_by_hop() {
    let f = ipv6_hbh_frag(0, true, 17, &udp(1, 2, b""));
    for n in 14 + 40 + 8..14 + 40 + 16 {
        let (m, r) = run_cut(LinkType::Ethernet, &f, n);
        assert_eq!(
            (m.l3, reason(r)),
            (L3::Ipv6, Some(DecodeFail::TruncatedIpExt)),
            "cut at {n}"
        );
    }
}

// ---------------------------------------------------------------------------
// Counters.

#[test]
fn stats_count_by_the_rules() {
    let mut s = DecodeStats::new();
    let mut links = LinkIds::new();
    let mut add = |s: &mut DecodeStats, link: LinkType, data: &[u8], orig: usize| {
        let f = RawFrame {
            orig_len: orig as u32,
            ..raw(link, data)
        };
        let mut m = PacketMeta::default();
        let r = decode(&f, &mut links, &mut m);
        s.record(&f, &m, r);
    };
    let syn = ETH_IPV4_TCP_SYN;
    add(&mut s, LinkType::Ethernet, &syn, 58);
    add(&mut s, LinkType::Ethernet, &syn[..10], 58); // before the network layer
    add(&mut s, LinkType::Ethernet, &syn[..44], 58); // truncated TCP: still tcp
    add(&mut s, LinkType::Ethernet, &syn[..30], 58); // truncated IPv4: no transport
    let later = cat(&[&eth(0x0800), &ipv4_full(H1, H2, 17, 6, &[], &[0; 16])]);
    add(&mut s, LinkType::Ethernet, &later, later.len());
    let q = cat(&[
        &eth(0x88a8),
        &tag(1, 0x8100),
        &tag(2, 0x0806),
        &arp_request()[14..],
    ]);
    add(&mut s, LinkType::Ethernet, &q, q.len());
    add(&mut s, LinkType::Ethernet, &vxlan_frame(T1, T2), 0);
    let orig = ipv4(H1, H2, 17, &udp(5353, 53, b""));
    let unreach = cat(&[&ipv4(H2, H1, 1, &icmp(3, 3, &orig))]);
    add(&mut s, LinkType::Raw, &unreach, unreach.len());
    add(
        &mut s,
        LinkType::Ethernet,
        &cat(&[&eth(0x88cc), &[0; 30]]),
        44,
    );

    let map = |it: &mut dyn Iterator<Item = (&'static str, u64)>| -> Vec<(&'static str, u64)> {
        it.collect()
    };
    assert_eq!(s.frames(), 9);
    assert_eq!(
        s.link().collect::<Vec<_>>(),
        vec![
            (
                "ethernet",
                8,
                58 + 10
                    + 44
                    + 30
                    + later.len() as u64
                    + q.len() as u64
                    + vxlan_frame(T1, T2).len() as u64
                    + 44
            ),
            ("raw", 1, unreach.len() as u64)
        ]
    );
    assert_eq!(
        map(&mut s.network()),
        vec![("ipv4", 6), ("ipv6", 0), ("arp", 1), ("other", 1)]
    );
    assert_eq!(
        map(&mut s.transport()),
        vec![
            ("tcp", 2),
            ("udp", 0),
            ("icmp", 2),
            ("icmpv6", 0),
            ("other", 0)
        ]
    );
    assert_eq!(map(&mut s.tunnels()), vec![("vxlan", 1)]);
    assert_eq!(
        map(&mut s.failures()),
        vec![
            ("truncated_link", 1),
            ("truncated_ipv4", 1),
            ("truncated_tcp", 1)
        ]
    );
    assert_eq!((s.frag_first, s.frag_non_first), (0, 1));
    assert_eq!((s.vlan_tagged, s.vlan_stacked, s.icmp_errors), (1, 1, 1));

    let mut twice = s.clone();
    twice.merge(&s);
    assert_eq!(twice.frames(), 18);
    assert_eq!(twice.failure(DecodeFail::TruncatedTcp), 2);
    assert_eq!(twice.icmp_errors, 2);
    let json = serde_json::to_value(twice.summary()).unwrap();
    assert_eq!(json["network"]["ipv4"], 12);
    assert_eq!(json["transport"]["udp"], 0);
    assert_eq!(json["fragments"]["non_first"], 2);
    assert_eq!(json["decode_failures"]["truncated_link"], 2);
    assert_eq!(json["link"]["raw"]["frames"], 2);
    assert_eq!(json["tunnels"]["vxlan"], 2);
    assert_eq!(
        (json["vlan_tagged"].as_u64(), json["vlan_stacked"].as_u64()),
        (Some(2), Some(2))
    );
}

#[test]
fn reason_names_are_stable_and_unique() {
    let names: Vec<&str> = DecodeFail::ALL.iter().map(|r| r.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len());
    for (i, r) in DecodeFail::ALL.iter().enumerate() {
        assert_eq!(*r as usize, i);
        assert!(r
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()));
    }
    assert_eq!(DecodeFail::TruncatedTcp.as_str(), "truncated_tcp");
    assert_eq!(
        DecodeError {
            reason: DecodeFail::BadUdpLen,
            offset: 34
        }
        .to_string(),
        "bad_udp_len at frame offset 34"
    );
}

// ---------------------------------------------------------------------------
// The public captures.

/// Decode every frame of a public file: (meta, result) per frame, and the
/// LinkIds used. Checks on the way that the slow path alone gives the same
/// result for every frame, and that the fast path agrees where it applies.
/// One decoded frame.
type Decoded = (PacketMeta, Result<(), DecodeError>);

fn decode_file(rel: &str) -> (Vec<Decoded>, LinkIds, usize) {
    let path = format!("{}/{rel}", public_dir());
    let mut links = LinkIds::new();
    let mut slow_links = LinkIds::new();
    let mut out = Vec::new();
    let mut fast_count = 0;
    for (n, (link, data, orig)) in read_frames(&path).iter().enumerate() {
        let f = RawFrame {
            ts_ns: n as u64,
            orig_len: *orig,
            data,
            link: *link,
            source: 0,
        };
        let mut m = PacketMeta::default();
        let r = decode(&f, &mut links, &mut m);
        let mut s = PacketMeta::default();
        let rs = decode_slow(&f, &mut slow_links, &mut s);
        assert_eq!(
            (m, r),
            (s, rs),
            "{rel} frame {}: decode != slow path",
            n + 1
        );
        let mut fm = PacketMeta::default();
        if decode_fast(&f, &mut fm) {
            fast_count += 1;
            assert_eq!((fm, Ok(())), (s, rs), "{rel} frame {}: fast != slow", n + 1);
        }
        out.push((m, r));
    }
    (out, links, fast_count)
}

/// Per file, as counted from `tshark -n -T fields -e frame.protocols` (with
/// IPv4/IPv6 reassembly and TCP desegmentation off) for the innermost packet:
/// frames, network [ipv4, ipv6, arp, other], transport [tcp, udp, icmp,
/// icmpv6, other], fragments [first, non_first], VLAN [tagged, stacked],
/// frames inside a tunnel.
#[rustfmt::skip]
#[allow(clippy::type_complexity)]
const TSHARK_COUNTS: &[(&str, u64, [u64; 4], [u64; 5], [u64; 2], [u64; 2], u64)] = &[
    ("a_scans/chrissanders_synscan.pcapng", 2011, [2011, 0, 0, 0], [2011, 0, 0, 0, 0], [0, 0], [0, 0], 0),
    ("a_scans/esnet_masscan_tcp_0_1000.pcap", 1005, [1005, 0, 0, 0], [1005, 0, 0, 0, 0], [0, 0], [1005, 0], 0),
    ("a_scans/esnet_nmap_80_w_service_detection.pcap", 154, [154, 0, 0, 0], [148, 0, 6, 0, 0], [0, 0], [0, 0], 0),
    ("a_scans/pcaphunt_hs-icmpScan.pcapng", 769, [769, 0, 0, 0], [0, 0, 769, 0, 0], [0, 0], [0, 0], 0),
    ("a_scans/pcaphunt_hs-tcp_synPingSweepRand.pcapng", 513, [513, 0, 0, 0], [513, 0, 0, 0, 0], [0, 0], [0, 0], 0),
    ("a_scans/pcaphunt_ps-udp.pcap", 5862, [5862, 0, 0, 0], [0, 5862, 0, 0, 0], [0, 0], [0, 0], 0),
    ("b_dos/stopddos_amp.TCP.reflection.SYNACK.pcap", 8000, [7996, 0, 4, 0], [7679, 163, 153, 0, 0], [1, 1], [0, 0], 0),
    ("b_dos/stopddos_amp.dns.RRSIG.fragmented.pcap", 4412, [4397, 15, 0, 0], [3104, 575, 7, 0, 0], [483, 726], [0, 0], 1),
    ("b_dos/stopddos_pkt.TCP.DOMINATE.syn.ecn.cwr.pcapng", 9878, [9878, 0, 0, 0], [9878, 0, 0, 0, 0], [0, 0], [0, 0], 0),
    ("b_dos/zeek_dhcp_flood.pcap", 500, [500, 0, 0, 0], [0, 500, 0, 0, 0], [0, 0], [0, 0], 0),
    ("c_bruteforce/traceshare_ssh_hydra-1_tasks.pcap", 2486, [2486, 0, 0, 0], [2486, 0, 0, 0, 0], [0, 0], [0, 0], 0),
    ("c_bruteforce/zeek_ftp_bruteforce.pcap", 606, [606, 0, 0, 0], [606, 0, 0, 0, 0], [0, 0], [0, 0], 0),
    ("d_office/suricata_output-eve-ftp-data.pcap", 1350, [1063, 161, 126, 0], [755, 301, 0, 108, 60], [0, 0], [0, 0], 0),
    ("d_office/suricata_smb2-ntlmssp-negotiateflags.pcap", 1000, [714, 196, 90, 0], [125, 682, 5, 67, 31], [0, 0], [0, 0], 0),
    ("d_office/suricata_tls-subjectaltname.pcap", 3138, [3084, 6, 0, 48], [2982, 104, 0, 4, 0], [0, 0], [0, 0], 0),
    ("d_office/zeek_rdp-proprietary-encryption.pcap", 542, [542, 0, 0, 0], [542, 0, 0, 0, 0], [0, 0], [0, 0], 0),
    ("d_office/zeek_smtp.pcap", 125, [125, 0, 0, 0], [118, 3, 4, 0, 0], [0, 0], [0, 0], 0),
    ("d_office/zeek_tls-conn-with-extensions.pcap", 58, [58, 0, 0, 0], [58, 0, 0, 0, 0], [0, 0], [0, 0], 0),
    ("d_office/zeek_workshop_2011_browse.pcap", 121, [121, 0, 0, 0], [121, 0, 0, 0, 0], [0, 0], [0, 0], 0),
    ("e_vlan/arkime_twovlan.pcap", 6, [6, 0, 0, 0], [6, 0, 0, 0, 0], [0, 0], [6, 6], 0),
    ("e_vlan/tcpdump_802.1ad_QinQ.pcap", 2, [0, 0, 2, 0], [0, 0, 0, 0, 0], [0, 0], [2, 2], 0),
    ("e_vlan/zeek_icmp_dot1q.pcap", 15, [9, 0, 6, 0], [0, 0, 9, 0, 0], [0, 0], [15, 0], 0),
    ("e_vlan/zeek_q-in-q.pcap", 5, [4, 0, 1, 0], [0, 4, 0, 0, 0], [0, 0], [5, 5], 0),
    ("f_ipv6_frag/chrissanders_ip_frag_source.pcapng", 6, [6, 0, 0, 0], [0, 0, 2, 0, 0], [2, 4], [0, 0], 0),
    ("f_ipv6_frag/chrissanders_ipv6_fragments.pcapng", 22, [0, 22, 0, 0], [0, 0, 0, 12, 0], [10, 10], [0, 0], 0),
    ("f_ipv6_frag/libpcap_ipv6_ext_headers.pcap", 1, [0, 1, 0, 0], [0, 1, 0, 0, 0], [0, 0], [0, 0], 0),
    ("f_ipv6_frag/zeek_ipv4_fragmented-1.pcap", 3, [3, 0, 0, 0], [0, 2, 0, 0, 0], [2, 1], [0, 0], 0),
    ("f_ipv6_frag/zeek_ipv6-fragmented-dns.pcap", 8, [0, 8, 0, 0], [0, 5, 0, 0, 0], [1, 3], [0, 0], 0),
    ("f_ipv6_frag/zeek_ipv6-hbh-routing0.pcap", 1, [0, 1, 0, 0], [0, 1, 0, 0, 0], [0, 0], [0, 0], 0),
    ("g_formats_linktypes/arkime_bigendian.pcap", 2, [2, 0, 0, 0], [0, 0, 2, 0, 0], [0, 0], [0, 0], 0),
    ("g_formats_linktypes/tcpdump_LINKTYPE_IPV4.pcap", 1, [1, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0], [0, 0], 0),
    ("g_formats_linktypes/tcpdump_LINKTYPE_RAW_ipv4.pcap", 1, [1, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0], [0, 0], 0),
    ("g_formats_linktypes/tcpdump_tcp-handshake-nano_sll.pcap", 3, [3, 0, 0, 0], [3, 0, 0, 0, 0], [0, 0], [0, 0], 0),
    ("g_formats_linktypes/zeek_ldap_gap-data-missing_126-idbs.pcapng", 18, [0, 18, 0, 0], [18, 0, 0, 0, 0], [0, 0], [18, 0], 0),
    ("g_formats_linktypes/zeek_linux_dlt_sll2.pcap", 6, [2, 2, 2, 0], [0, 0, 2, 2, 0], [0, 0], [0, 0], 0),
    ("g_formats_linktypes/zeek_pcapng-multi-interface.pcapng", 6, [6, 0, 0, 0], [0, 6, 0, 0, 0], [0, 0], [0, 0], 0),
    ("h_malformed/libpcap_pcap-invalid-version-1.pcap", 1, [0, 1, 0, 0], [0, 1, 0, 0, 0], [0, 0], [0, 0], 0), // tshark refuses v1.4; the record is IPv6/UDP
    ("h_malformed/ppa_http-fault-post_cut-short.pcap", 25, [25, 0, 0, 0], [23, 2, 0, 0, 0], [0, 0], [0, 0], 0),
    ("h_malformed/suricata_bug-1450-04_bad-record-length.pcap", 6, [6, 0, 0, 0], [6, 0, 0, 0, 0], [0, 0], [0, 0], 0),
    ("h_malformed/suricata_ipv4-truncated.pcap", 1, [1, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0], [0, 0], 0),
    ("h_malformed/suricata_udp-len-invalid.pcap", 1, [1, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0], [0, 0], 0),
    ("h_malformed/tcpdump_empty.pcapng", 0, [0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0], [0, 0], 0),
    ("h_malformed/zeek_ip6-ext-trunc.pcap", 1, [0, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0], [0, 0], 0),
    ("h_malformed/zeek_tcp_truncated-header_snaplen68.pcap", 24, [24, 0, 0, 0], [24, 0, 0, 0, 0], [0, 0], [0, 0], 0),
    ("h_malformed/zeek_trunc-hdr.pcap", 1, [0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0], [0, 0], 0), // 8 bytes: tshark shows `eth` only
    ("i_tunnels/arkime_gre-erspan-vxlan.pcap", 7, [7, 0, 0, 0], [7, 0, 0, 0, 0], [0, 0], [0, 0], 7),
    ("i_tunnels/zeek_erspanII.pcap", 4, [4, 0, 0, 0], [0, 0, 4, 0, 0], [0, 0], [0, 0], 4),
    ("i_tunnels/zeek_geneve.pcap", 6, [6, 0, 0, 0], [0, 0, 6, 0, 0], [0, 0], [0, 0], 6),
    ("i_tunnels/zeek_gre-sample.pcap", 40, [40, 0, 0, 0], [22, 8, 10, 0, 0], [0, 0], [0, 0], 40),
    ("i_tunnels/zeek_vxlan.pcap", 10, [8, 0, 2, 0], [0, 0, 8, 0, 0], [0, 0], [0, 0], 10),
];

#[test]
fn public_captures_decode_like_tshark_counts() {
    let files = public_files();
    assert_eq!(
        files.len(),
        TSHARK_COUNTS.len(),
        "public capture set changed"
    );
    let mut total_frames = 0;
    let mut total_fast = 0;
    let mut failures = DecodeStats::new();
    for (rel, want_frames, net, tr, frag, vlan, tunnelled) in TSHARK_COUNTS {
        let (metas, _, fast) = decode_file(rel);
        let path = format!("{}/{rel}", public_dir());
        let frames = read_frames(&path);
        let mut s = DecodeStats::new();
        for ((m, r), (link, data, orig)) in metas.iter().zip(&frames) {
            let f = RawFrame {
                ts_ns: 0,
                orig_len: *orig,
                data,
                link: *link,
                source: 0,
            };
            s.record(&f, m, *r);
        }
        failures.merge(&s);
        total_frames += metas.len();
        total_fast += fast;
        assert_eq!(s.frames(), *want_frames, "{rel}: frames");
        let got_net: Vec<u64> = s.network().map(|(_, n)| n).collect();
        assert_eq!(got_net, net.to_vec(), "{rel}: network");
        let got_tr: Vec<u64> = s.transport().map(|(_, n)| n).collect();
        assert_eq!(got_tr, tr.to_vec(), "{rel}: transport");
        assert_eq!([s.frag_first, s.frag_non_first], *frag, "{rel}: fragments");
        assert_eq!([s.vlan_tagged, s.vlan_stacked], *vlan, "{rel}: vlan");
        assert_eq!(
            s.tunnels().map(|(_, n)| n).sum::<u64>(),
            *tunnelled,
            "{rel}: tunnels"
        );
    }
    // The only failures in the public set are the four deliberately broken frames.
    assert_eq!(
        failures.failures().collect::<Vec<_>>(),
        vec![
            ("truncated_link", 1),
            ("bad_ipv4_total_len", 1),
            ("truncated_ip_ext", 1),
            ("bad_udp_len", 1)
        ]
    );
    // The fast path takes the bulk of ordinary traffic.
    assert_eq!(total_frames, 42763);
    assert!(
        total_fast * 100 >= total_frames * 90,
        "fast path took only {total_fast} of {total_frames}"
    );
}

fn frames_of(rel: &str) -> Vec<PacketMeta> {
    decode_file(rel)
        .0
        .into_iter()
        .map(|(m, r)| {
            assert_eq!(r, Ok(()), "{rel}");
            m
        })
        .collect()
}

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

#[test]
fn public_vxlan_facts() {
    let (metas, links, _) = decode_file("i_tunnels/zeek_vxlan.pcap");
    assert_eq!(metas.len(), 10);
    assert!(metas
        .iter()
        .all(|(m, r)| r.is_ok() && m.tunnel == Tunnel::Vxlan && m.key.link == 1));
    let icmp = metas
        .iter()
        .filter(|(m, _)| m.l3 == L3::Ipv4 && m.key.proto == 1)
        .count();
    let arp = metas.iter().filter(|(m, _)| m.l3 == L3::Arp).count();
    assert_eq!((icmp, arp), (8, 2));
    assert!(
        links.describe(1).unwrap().starts_with("vxlan vni 123 "),
        "{:?}",
        links.describe(1)
    );
    assert_eq!(links.len(), 1);
}

#[test]
fn public_gre_erspan_vxlan_innermost() {
    let (metas, links, _) = decode_file("i_tunnels/arkime_gre-erspan-vxlan.pcap");
    assert_eq!(metas.len(), 7);
    for (m, r) in &metas {
        assert_eq!(*r, Ok(()));
        assert_eq!(
            (m.tunnel, m.l3, m.key.proto, m.key.link),
            (Tunnel::ErspanII, L3::Ipv4, 6, 1)
        );
        let (a, b) = (m.key.src_ip(), m.key.dst_ip());
        assert!(
            (a, m.key.dport) == (ip("10.16.27.12"), 80) && b == ip("10.16.27.131")
                || (a, m.key.sport) == (ip("10.16.27.131"), 80) && b == ip("10.16.27.12"),
            "{}",
            m.key
        );
    }
    let first = &metas[0].0;
    assert_eq!(
        (first.key.src_ip(), first.key.dport, first.tcp_flags),
        (ip("10.16.27.12"), 80, 0x02)
    );
    assert_eq!(
        links.describe(1).unwrap(),
        "erspan_ii session 20 100.20.9.2<->100.20.9.1 / vxlan vni 0 172.16.27.131<->172.16.27.121"
    );
}

#[test]
fn public_erspan_geneve_gre_facts() {
    let (metas, links, _) = decode_file("i_tunnels/zeek_erspanII.pcap");
    assert_eq!(metas.len(), 4);
    assert!(metas
        .iter()
        .all(|(m, r)| r.is_ok() && m.tunnel == Tunnel::ErspanII && m.key.proto == 1));
    assert_eq!(
        links.describe(1).unwrap(),
        "erspan_ii session 100 2.2.2.2<->1.1.1.1"
    );
    let g = frames_of("i_tunnels/zeek_geneve.pcap");
    assert_eq!(g.len(), 6);
    assert!(g
        .iter()
        .all(|m| m.tunnel == Tunnel::Geneve && m.key.proto == 1 && m.key.link == 1));
    let (metas, links, _) = decode_file("i_tunnels/zeek_gre-sample.pcap");
    assert_eq!(metas.len(), 40);
    assert!(metas
        .iter()
        .all(|(m, _)| m.tunnel == Tunnel::Gre && m.key.link == 1));
    assert_eq!(links.len(), 1);
    let d = links.describe(1).unwrap();
    assert!(
        d.contains("172.27.1.66") && d.contains("66.59.109.137") && d.starts_with("gre "),
        "{d}"
    );
}

#[test]
fn public_vlan_ids() {
    let check = |rel: &str, vlan: [u16; 2], nvlan: u8| {
        let metas = frames_of(rel);
        assert!(!metas.is_empty());
        for m in metas {
            assert_eq!((m.key.vlan, m.nvlan), (vlan, nvlan), "{rel}");
        }
    };
    check("e_vlan/tcpdump_802.1ad_QinQ.pcap", [200, 2001], 2);
    check("e_vlan/zeek_q-in-q.pcap", [13, 10], 2);
    check("e_vlan/zeek_icmp_dot1q.pcap", [123, 0], 1);
    check("e_vlan/arkime_twovlan.pcap", [201, 200], 2);
    check("a_scans/esnet_masscan_tcp_0_1000.pcap", [943, 0], 1);
}

#[test]
fn public_fragment_facts() {
    // chrissanders_ip_frag_source: two ICMP echoes in three fragments each;
    // the first fragment has the ICMP header, the others no ports.
    let m = frames_of("f_ipv6_frag/chrissanders_ip_frag_source.pcapng");
    let firsts: Vec<_> = m.iter().filter(|m| m.frag == Frag::First).collect();
    assert_eq!(firsts.len(), 2);
    assert!(firsts
        .iter()
        .all(|m| m.key.proto == 1 && (m.key.sport == 8 || m.key.sport == 0)));
    assert!(m
        .iter()
        .filter(|m| m.frag == Frag::NonFirst)
        .all(|m| m.key.sport == 0 && m.key.dport == 0 && m.key.proto == 1));
    // zeek_ipv6-fragmented-dns: one first fragment with UDP/53, three continuations.
    let m = frames_of("f_ipv6_frag/zeek_ipv6-fragmented-dns.pcap");
    let first: Vec<_> = m.iter().filter(|m| m.frag == Frag::First).collect();
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].key.proto, first[0].key.sport), (17, 53));
    assert_eq!(
        m.iter()
            .filter(|m| m.frag == Frag::NonFirst && m.key.proto == 17 && m.key.sport == 0)
            .count(),
        3
    );
    // libpcap_ipv6_ext_headers: 100 extension headers, then UDP.
    let m = frames_of("f_ipv6_frag/libpcap_ipv6_ext_headers.pcap");
    assert_eq!(
        (m[0].l3, m[0].key.proto, m[0].frag),
        (L3::Ipv6, 17, Frag::None)
    );
    // The DNS amplification: 1209 IPv4 fragments (MF or offset), 726 of them later ones.
    let m = frames_of("b_dos/stopddos_amp.dns.RRSIG.fragmented.pcap");
    assert_eq!(m.iter().filter(|m| m.frag != Frag::None).count(), 1209);
    assert_eq!(
        m.iter()
            .filter(|m| m.frag == Frag::NonFirst && m.key.sport != 0)
            .count(),
        0
    );
}

#[test]
fn public_link_types() {
    let m = frames_of("g_formats_linktypes/tcpdump_LINKTYPE_RAW_ipv4.pcap");
    assert_eq!(
        (m[0].key.src_ip(), m[0].key.dst_ip(), m[0].key.dport),
        (ip("192.168.1.100"), ip("9.9.9.9"), 53)
    );
    assert_eq!(
        frames_of("g_formats_linktypes/tcpdump_LINKTYPE_IPV4.pcap")[0].key,
        m[0].key
    );
    let m = frames_of("g_formats_linktypes/tcpdump_tcp-handshake-nano_sll.pcap");
    let flags: Vec<u8> = m.iter().map(|m| m.tcp_flags).collect();
    assert_eq!(flags, vec![0x02, 0x12, 0x10]);
    let m = frames_of("g_formats_linktypes/zeek_linux_dlt_sll2.pcap");
    let l3: Vec<L3> = m.iter().map(|m| m.l3).collect();
    assert_eq!(l3.iter().filter(|l| **l == L3::Ipv4).count(), 2);
    assert_eq!(l3.iter().filter(|l| **l == L3::Ipv6).count(), 2);
    assert_eq!(l3.iter().filter(|l| **l == L3::Arp).count(), 2);
    // ARP frames carry the sender MAC in the SLL2 header; the ICMP ones are
    // on loopback (ARPHRD 772) with an all-zero address.
    for m in &m {
        let mac = if m.l3 == L3::Arp {
            [0x8e, 0x36, 0x06, 0x44, 0xac, 0xaf]
        } else {
            [0; 6]
        };
        assert_eq!(m.src_mac, mac);
    }
    // The snaplen-68 capture: every TCP header's fixed part is there.
    let m = frames_of("h_malformed/zeek_tcp_truncated-header_snaplen68.pcap");
    assert_eq!(m.len(), 24);
    assert!(m.iter().all(|m| m.key.proto == 6 && m.key.sport != 0));
    assert_eq!(m[0].tcp_flags & 0x02, 0x02);
}

#[test]
fn public_malformed_reasons() {
    let one = |rel: &str| decode_file(rel).0.remove(0);
    let (m, r) = one("h_malformed/suricata_ipv4-truncated.pcap");
    assert_eq!(
        (reason(r), m.key.proto, m.ip_len),
        (Some(DecodeFail::BadIpv4TotalLen), 17, 65028)
    );
    let (_, r) = one("h_malformed/suricata_udp-len-invalid.pcap");
    assert_eq!(reason(r), Some(DecodeFail::BadUdpLen));
    let (m, r) = one("h_malformed/zeek_ip6-ext-trunc.pcap");
    assert_eq!(
        (reason(r), m.l3),
        (Some(DecodeFail::TruncatedIpExt), L3::Ipv6)
    );
    let (m, r) = one("h_malformed/zeek_trunc-hdr.pcap");
    assert_eq!(
        (reason(r), m.l3),
        (Some(DecodeFail::TruncatedLink), L3::None)
    );
}

// ---------------------------------------------------------------------------

mod proptests {
    //! Decode never panics, and the paths agree, on arbitrary bytes for every
    //! link type and on valid packets with random truncation and bit flips.

    use super::*;
    use proptest::prelude::*;

    /// One valid frame of every shape the static tests build.
    fn templates() -> Vec<(LinkType, Vec<u8>)> {
        let sll = cat(&[
            &[0, 0, 0, 1, 0, 6],
            &MAC_A,
            &[0, 0, 0x08, 0x00],
            &ipv4(H1, H2, 6, &tcp(5000, 22, 0x10, b"x")),
        ]);
        let sll2 = cat(&[
            &[0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6],
            &MAC_B,
            &[0, 0],
            &ipv6(v6(1), v6(2), 58, &icmp(128, 0, b"echo")),
        ]);
        let orig = ipv4(H1, H2, 17, &udp(5353, 53, b"query"));
        let orig6 = ipv6(v6(1), v6(2), 6, &tcp(40000, 443, 0x02, b""));
        let nested = cat(&[
            &eth(0x0800),
            &ipv4(
                T1,
                T2,
                47,
                &cat(&[&[0, 0, 0x65, 0x58], &vxlan_frame(H2, H3)]),
            ),
        ]);
        vec![
            (LinkType::Ethernet, ETH_IPV4_TCP_SYN.to_vec()),
            (
                LinkType::Ethernet,
                cat(&[
                    &eth(0x88a8),
                    &tag(100, 0x8100),
                    &tag(200, 0x0800),
                    &ipv4(H1, H2, 17, &udp(1000, 2000, b"x")),
                ]),
            ),
            (
                LinkType::Ethernet,
                cat(&[
                    &eth(0x0800),
                    &ipv4_full(H1, H2, 17, 0x2000, &[], &udp(5353, 53, &[0; 40])),
                ]),
            ),
            (
                LinkType::Ethernet,
                cat(&[
                    &eth(0x0800),
                    &ipv4_full(H1, H2, 6, 0, &[0x94, 4, 0, 0], &tcp(1, 2, 0x12, b"ab")),
                ]),
            ),
            (
                LinkType::Ethernet,
                ipv6_hbh_frag(0, true, 17, &udp(4000, 53, &[1; 32])),
            ),
            (LinkType::Ethernet, ipv6_hbh_frag(3, false, 17, &[1; 32])),
            (
                LinkType::Ethernet,
                cat(&[&eth(0x0800), &ipv4(H2, H1, 1, &icmp(3, 3, &orig))]),
            ),
            (
                LinkType::Ethernet,
                cat(&[&eth(0x86dd), &ipv6(v6(9), v6(1), 58, &icmp(3, 0, &orig6))]),
            ),
            (LinkType::Ethernet, arp_request()),
            (LinkType::LinuxSll, sll),
            (LinkType::LinuxSll2, sll2),
            (LinkType::Raw, ipv4(H1, H2, 17, &udp(1, 53, b"q"))),
            (LinkType::Ipv6, ipv6(v6(1), v6(2), 17, &udp(1, 53, b"q"))),
            (
                LinkType::Null,
                cat(&[&2u32.to_le_bytes(), &ipv4(H1, H2, 6, &tcp(1, 80, 2, b""))]),
            ),
            (
                LinkType::Loop,
                cat(&[
                    &24u32.to_be_bytes(),
                    &ipv6(v6(1), v6(2), 6, &tcp(1, 80, 2, b"")),
                ]),
            ),
            (LinkType::Ethernet, gre_frame()),
            (LinkType::Ethernet, erspan2_frame()),
            (LinkType::Ethernet, erspan3_frame()),
            (LinkType::Ethernet, vxlan_frame(T1, T2)),
            (LinkType::Ethernet, geneve_frame()),
            (LinkType::Ethernet, ipip_frame()),
            (LinkType::Ethernet, nested),
        ]
    }

    /// Decode `data` both ways and count it; panics (fails) on disagreement.
    fn check(link: LinkType, data: &[u8], orig_len: u32) {
        let f = RawFrame {
            ts_ns: 1,
            orig_len,
            data,
            link,
            source: 0,
        };
        let mut links = LinkIds::new();
        let mut m = PacketMeta::default();
        let r = decode(&f, &mut links, &mut m);
        let mut s = PacketMeta::default();
        let rs = decode_slow(&f, &mut LinkIds::new(), &mut s);
        assert_eq!((m, r), (s, rs));
        let mut fm = PacketMeta::default();
        if decode_fast(&f, &mut fm) {
            assert_eq!((fm, Ok(())), (s, rs));
        }
        assert_eq!((m.ts_ns, m.wire_len, m.hash), (1, orig_len, 0));
        if r.is_ok() {
            assert_ne!(m.l3, L3::None);
        }
        let mut st = DecodeStats::new();
        st.record(&f, &m, r);
        assert_eq!(st.frames(), 1);
    }

    /// 2000 cases, or `PROPTEST_CASES` for a longer run.
    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn arbitrary_bytes_never_panic(
            link in 0..LinkType::ALL.len(),
            data in proptest::collection::vec(any::<u8>(), 0..256),
            extra in prop_oneof![Just(0u32), 0u32..2000],
        ) {
            let link = LinkType::ALL[link];
            check(link, &data, data.len() as u32 + extra);
            // and with a bogus original length below the captured one
            check(link, &data, extra.min(data.len() as u32));
        }

        #[test]
        fn mutated_valid_packets_never_panic(
            which in any::<prop::sample::Index>(),
            cut in any::<prop::sample::Index>(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
            keep_orig in any::<bool>(),
        ) {
            let t = templates();
            let (link, full) = &t[which.index(t.len())];
            let mut data = full.clone();
            for (at, x) in flips {
                let i = at.index(data.len());
                data[i] ^= x;
            }
            let n = cut.index(data.len() + 1);
            let orig = if keep_orig { full.len() } else { n };
            check(*link, &data[..n], orig as u32);
        }
    }

    #[test]
    fn every_truncation_of_every_template() {
        for (link, full) in templates() {
            for n in 0..=full.len() {
                check(link, &full[..n], full.len() as u32);
                check(link, &full[..n], n as u32);
            }
            // The intact template decodes without error.
            let (_, r) = run(link, &full);
            assert_eq!(r, Ok(()), "{link:?} {full:02x?}");
        }
    }
}
