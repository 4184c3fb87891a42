//! `zonewatch-gen`: a fast, deterministic generator of large classic pcap files
//! for `make bench`, `make bench-flood` and the integration tests (see
//! `benches/README.md`). Its own package in the workspace (`tools/zonewatch-gen`), not
//! part of the product.
//!
//! It owns nothing of the library: it only writes Ethernet frames that the
//! decoder (and tshark/tcpdump) must accept. Same `--seed` and options give the
//! same bytes.
//!
//! Traffic model: `--concurrent-flows` slots each hold one open flow; every
//! packet comes from a slot picked uniformly at random, and a slot whose flow has
//! finished starts a new one. So about N flows are open at any time, their
//! packets are interleaved in random order (the flow table sees little cache
//! locality), and a flow of k packets stays open for about k·N packets.
//!
//! Flow mix (by flows started): 50 % TCP (full handshake, request, 1–6 response
//! segments with ACKs, FIN/ACK close from either side; 8 % refused with RST,
//! 7 % of the rest aborted with RST), 25 % DNS query/response (UDP 53), 10 % bulk
//! UDP (port 514, 4–16 datagrams, 30 % of them answered back), 15 % ICMP/ICMPv6
//! echo (1–4 request/reply pairs).
//! Independently per flow: 15 % IPv6, 10 % 802.1Q-tagged of which a fifth QinQ
//! (802.1ad S-tag + 802.1Q C-tag).
//!
//! Addresses: clients in 192.0.2.0/24 and 198.51.100.0/24, servers in
//! 203.0.113.0/24; IPv6 clients in 2001:db8:100::/40, servers in 2001:db8:ff::/48.
//! Every flow gets a distinct (client host, client port) pair from a bijection of
//! the flow counter, so distinct 5-tuples = flows started (for up to
//! 508 × 28 232 ≈ 14.3 M flows).
//!
//! Sizes (captured bytes; the 4-byte FCS is neither captured nor counted in the
//! record's wire length, as libpcap reports Ethernet):
//! - `small`: every frame is 60 bytes (64 on the wire) with Ethernet padding, except
//!   where the headers alone are longer (IPv6 TCP 74, SYN options, tags; at most 94
//!   bytes), where data segments carry one payload byte. Mean ≈ 63 bytes.
//! - `imix`: control packets (SYN, ACK, FIN, RST) are minimum frames; TCP response
//!   and bulk UDP segments are 1500-byte IP packets (68 %), 576-byte IP packets
//!   (16 %) or uniform; requests, DNS and echo are realistic small sizes. The
//!   mean is ≈ 458 bytes (printed at the end).
//!
//! Checksums (IPv4 header, TCP, UDP, ICMP, ICMPv6) are all correct: payloads are
//! zero bytes except DNS, so they cost only the header words.
//!
//! Timestamps: microsecond pcap, non-decreasing, gaps uniform in [0, 2/rate) so the
//! mean rate is `--rate-pps` (default 1 Mpps), starting 2024-04-01T00:00:00Z.
//!
//! `--profile synflood` writes something else: a spoofed-source TCP SYN flood on one
//! victim, [`FLOOD_VICTIM`] port 80, for the memory-bound benchmark (`make bench-flood`).
//! Every packet is an IPv6 SYN (86-byte frame, with options) from its own source in
//! 2001:db8::/32: bits 32–63 of the address are random and bits 64–127 are a bijection
//! of the packet number, so every source is distinct (10 M packets = 10 M sources = 10 M
//! half-open flows). `--concurrent-flows` does not apply.

mod addrs;
use addrs::{client_mac, client_v4, client_v6, gateway_mac, server_v4, server_v6, TCP_PORTS};
use clap::{Parser, ValueEnum};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Instant;
use zonewatch::model::pcap::{file_header, record_header, TsUnit};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Profile {
    /// Realistic size mix, mean ≈ 450 bytes per frame.
    Imix,
    /// Minimum-size frames: 60 captured bytes (64 on the wire).
    Small,
    /// A spoofed SYN flood on one victim: every packet a new source and a new flow.
    Synflood,
}

/// Generate a large, deterministic benchmark pcap (classic, microsecond, Ethernet).
#[derive(Parser, Debug)]
#[command(name = "zonewatch-gen", version, about)]
struct Args {
    /// Output pcap file (overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Number of packets to write.
    #[arg(long, default_value_t = 10_000_000)]
    packets: u64,
    /// Frame size profile.
    #[arg(long, value_enum, default_value_t = Profile::Imix)]
    profile: Profile,
    /// Flows open at any time; packets of open flows are interleaved at random.
    #[arg(long, default_value_t = NonZeroU32::new(500_000).unwrap_or(NonZeroU32::MIN))]
    concurrent_flows: NonZeroU32,
    /// PRNG seed: same seed and options, same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mean packet rate used for timestamps.
    #[arg(long, default_value_t = 1_000_000)]
    rate_pps: u64,
}

// ---------------------------------------------------------------- randomness

/// xoshiro256** seeded through SplitMix64: fast, good enough, reproducible.
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

// ---------------------------------------------------------------- flows

/// Script operations; `FROM_SERVER` is or-ed in for the server → client direction.
mod op {
    pub const SYN: u8 = 1;
    pub const SYN_ACK: u8 = 2;
    pub const ACK: u8 = 3;
    pub const REQUEST: u8 = 4;
    pub const RESPONSE: u8 = 5;
    pub const FIN: u8 = 6;
    pub const RST: u8 = 7;
    pub const DNS_QUERY: u8 = 8;
    pub const DNS_RESPONSE: u8 = 9;
    pub const UDP_DATA: u8 = 10;
    pub const ECHO_REQUEST: u8 = 11;
    pub const ECHO_REPLY: u8 = 12;
    pub const FROM_SERVER: u8 = 0x80;
    pub const KIND: u8 = 0x7f;
}

const SCRIPT_MAX: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Dns,
    UdpBulk,
    Echo,
}

const KINDS: [Kind; 4] = [Kind::Tcp, Kind::Dns, Kind::UdpBulk, Kind::Echo];

#[derive(Clone, Copy)]
struct Flow {
    script: [u8; SCRIPT_MAX],
    len: u8,
    step: u8,
    kind: Kind,
    v6: bool,
    /// 0 untagged, 1 802.1Q, 2 QinQ.
    tags: u8,
    vlan_outer: u16,
    vlan_inner: u16,
    client_host: u16,
    client_port: u16,
    server_host: u16,
    server_port: u16,
    client_seq: u32,
    server_seq: u32,
    ip_id: u16,
    /// DNS transaction id + question template index, or ICMP echo sequence.
    aux: u16,
    dns_template: u8,
}

impl Flow {
    const EMPTY: Flow = Flow {
        script: [0; SCRIPT_MAX],
        len: 0,
        step: 0,
        kind: Kind::Tcp,
        v6: false,
        tags: 0,
        vlan_outer: 0,
        vlan_inner: 0,
        client_host: 0,
        client_port: 0,
        server_host: 0,
        server_port: 0,
        client_seq: 0,
        server_seq: 0,
        ip_id: 0,
        aux: 0,
        dns_template: 0,
    };

    fn push(&mut self, o: u8) {
        if let Some(slot) = self.script.get_mut(usize::from(self.len)) {
            *slot = o;
            self.len += 1;
        }
    }
}

/// IPv4 client hosts: 192.0.2.1–254 and 198.51.100.1–254.
const CLIENT_HOSTS: u64 = 508;
/// Linux's default ephemeral port range 32768–60999.
const CLIENT_PORT_BASE: u64 = 32_768;
const CLIENT_PORTS: u64 = 28_232;
const CLIENT_PAIRS: u64 = CLIENT_HOSTS * CLIENT_PORTS;
/// Coprime with `CLIENT_PAIRS` (= 2^5·127·3529), so `k ↦ k·STRIDE + offset (mod
/// CLIENT_PAIRS)` is a bijection: flows get distinct (host, port) pairs in a scattered order.
const PAIR_STRIDE: u64 = 9_576_881;

/// Syslog to a collector (mostly one way): its dissectors (tshark's included) accept any
/// payload, while a port without one lets tshark try the ephemeral port's protocol
/// (TZSP, HCrt, …) on the zero payload and report it malformed.
const UDP_BULK_PORT: u16 = 514;

/// The (client host index, client port) of the `k`-th flow: distinct for every `k` below
/// `CLIENT_PAIRS`.
fn client_pair(k: u64, offset: u64) -> (u16, u16) {
    // Both factors are below 2^24, so the product cannot overflow.
    let pair = ((k % CLIENT_PAIRS) * PAIR_STRIDE + offset) % CLIENT_PAIRS;
    (
        (pair % CLIENT_HOSTS) as u16,
        (CLIENT_PORT_BASE + pair / CLIENT_HOSTS) as u16,
    )
}

struct FlowFactory {
    started: u64,
    pair_offset: u64,
    by_kind: [u64; 4],
}

impl FlowFactory {
    fn new(rng: &mut Rng) -> FlowFactory {
        FlowFactory {
            started: 0,
            pair_offset: rng.below(CLIENT_PAIRS),
            by_kind: [0; 4],
        }
    }

    fn start(&mut self, rng: &mut Rng, f: &mut Flow) {
        *f = Flow::EMPTY;
        (f.client_host, f.client_port) = client_pair(self.started, self.pair_offset);
        self.started += 1;
        f.server_host = rng.below(254) as u16;
        f.v6 = rng.chance(150);
        f.tags = if rng.chance(100) {
            if rng.chance(200) {
                2
            } else {
                1
            }
        } else {
            0
        };
        // A handful of VLANs, like the zones of a segmented network.
        f.vlan_outer = 100 + rng.below(8) as u16 * 100;
        f.vlan_inner = 10 + rng.below(40) as u16;
        f.client_seq = rng.next_u64() as u32;
        f.server_seq = rng.next_u64() as u32;
        f.ip_id = rng.next_u64() as u16;
        f.aux = rng.next_u64() as u16;
        let roll = rng.below(1000);
        f.kind = if roll < 500 {
            Kind::Tcp
        } else if roll < 750 {
            Kind::Dns
        } else if roll < 850 {
            Kind::UdpBulk
        } else {
            Kind::Echo
        };
        let s = op::FROM_SERVER;
        match f.kind {
            Kind::Tcp => {
                let mut p = rng.below(1000);
                f.server_port = 443;
                for (port, weight) in TCP_PORTS {
                    if p < weight {
                        f.server_port = port;
                        break;
                    }
                    p -= weight;
                }
                f.push(op::SYN);
                if rng.chance(80) {
                    f.push(op::RST | s); // refused
                } else {
                    f.push(op::SYN_ACK | s);
                    f.push(op::ACK);
                    f.push(op::REQUEST);
                    let segments = rng.range(1, 6);
                    for i in 1..=segments {
                        f.push(op::RESPONSE | s);
                        if i % 2 == 0 || i == segments {
                            f.push(op::ACK);
                        }
                    }
                    if rng.chance(70) {
                        f.push(op::RST | if rng.chance(500) { s } else { 0 });
                    } else if rng.chance(300) {
                        f.push(op::FIN | s);
                        f.push(op::FIN);
                        f.push(op::ACK | s);
                    } else {
                        f.push(op::FIN);
                        f.push(op::FIN | s);
                        f.push(op::ACK);
                    }
                }
            }
            Kind::Dns => {
                f.server_port = 53;
                f.dns_template = rng.below(DNS_NAMES.len() as u64 * 2) as u8;
                f.push(op::DNS_QUERY);
                f.push(op::DNS_RESPONSE | s);
            }
            Kind::UdpBulk => {
                f.server_port = UDP_BULK_PORT;
                for _ in 0..rng.range(4, 16) {
                    f.push(op::UDP_DATA | if rng.chance(300) { s } else { 0 });
                }
            }
            Kind::Echo => {
                f.server_port = 0;
                for _ in 0..rng.range(1, 4) {
                    f.push(op::ECHO_REQUEST);
                    f.push(op::ECHO_REPLY | s);
                }
            }
        }
        if let Some(i) = KINDS.iter().position(|k| *k == f.kind) {
            if let Some(c) = self.by_kind.get_mut(i) {
                *c += 1;
            }
        }
    }
}

// ---------------------------------------------------------------- DNS payloads

/// Documentation domains only (RFC 2606).
const DNS_NAMES: [&str; 6] = [
    "www.example.com",
    "mail.example.net",
    "ns1.example.org",
    "cdn.example.com",
    "update.example.net",
    "login.example.org",
];

/// Pre-built DNS messages; the transaction id (bytes 0–1) is patched per flow.
struct DnsTemplates {
    queries: Vec<Vec<u8>>,
    responses: Vec<Vec<u8>>,
    small_query: Vec<u8>,
    small_response: Vec<u8>,
}

impl DnsTemplates {
    fn new() -> DnsTemplates {
        let mut queries = Vec::new();
        let mut responses = Vec::new();
        for (i, name) in DNS_NAMES.iter().enumerate() {
            for aaaa in [false, true] {
                let qtype: u16 = if aaaa { 28 } else { 1 };
                let mut q = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
                for label in name.split('.') {
                    q.push(label.len() as u8);
                    q.extend_from_slice(label.as_bytes());
                }
                q.push(0);
                q.extend_from_slice(&qtype.to_be_bytes());
                q.extend_from_slice(&[0, 1]);
                let mut r = q.clone();
                r[2] = 0x81;
                r[3] = 0x80;
                r[7] = 1; // ANCOUNT
                r.extend_from_slice(&[0xc0, 0x0c]);
                r.extend_from_slice(&qtype.to_be_bytes());
                r.extend_from_slice(&[0, 1, 0, 0, 0x01, 0x2c]); // IN, TTL 300
                if aaaa {
                    r.extend_from_slice(&[0, 16, 0x20, 0x01, 0x0d, 0xb8, 0, 0xff]);
                    r.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0]);
                    r.push(i as u8 + 1);
                } else {
                    r.extend_from_slice(&[0, 4, 203, 0, 113, i as u8 + 1]);
                }
                queries.push(q);
                responses.push(r);
            }
        }
        // Root NS priming query and an answerless NOERROR reply: 17 bytes each, so
        // the frame stays at 60 bytes over IPv4.
        let small_query = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1];
        let mut small_response = small_query.clone();
        small_response[2] = 0x81;
        small_response[3] = 0x80;
        DnsTemplates {
            queries,
            responses,
            small_query,
            small_response,
        }
    }
}

// ---------------------------------------------------------------- frames

const MIN_FRAME: usize = 60;
const FRAME_MAX: usize = 2048;

/// One's-complement sum of `data` (odd tail padded with zero), not yet folded.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

struct Writer {
    buf: [u8; FRAME_MAX],
    dirty: usize,
}

/// Sizes of the parts of one frame.
struct Layout {
    l2: usize,
    l3: usize,
    l4: usize,
}

impl Writer {
    fn put(&mut self, at: usize, bytes: &[u8]) {
        if let Some(dst) = self.buf.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
            self.dirty = self.dirty.max(at + bytes.len());
        }
    }

    fn put16(&mut self, at: usize, v: u16) {
        self.put(at, &v.to_be_bytes());
    }

    fn put32(&mut self, at: usize, v: u32) {
        self.put(at, &v.to_be_bytes());
    }

    /// Zero what the previous frame wrote, so payloads are zero bytes.
    fn clear(&mut self) {
        if let Some(d) = self.buf.get_mut(..self.dirty) {
            d.fill(0);
        }
        self.dirty = 0;
    }
}

struct Stats {
    packets: u64,
    frame_bytes: u64,
    tagged: u64,
    qinq: u64,
    v6: u64,
    tcp: u64,
    udp: u64,
    icmp: u64,
    min_frame: usize,
    max_frame: usize,
}

struct Generator {
    profile: Profile,
    w: Writer,
    dns: DnsTemplates,
    stats: Stats,
}

impl Generator {
    /// Payload length of a data packet whose frame has `hdr` bytes of headers.
    fn data_len(&self, rng: &mut Rng, kind: u8, ip_hdrs: usize, hdr: usize) -> usize {
        match self.profile {
            Profile::Small | Profile::Synflood => MIN_FRAME.saturating_sub(hdr).max(1),
            Profile::Imix => match kind {
                op::REQUEST => rng.range(40, 520) as usize,
                _ => {
                    let r = rng.below(1000);
                    let ip_len = if r < 680 {
                        1500
                    } else if r < 840 {
                        576
                    } else {
                        rng.range(ip_hdrs as u64 + 1, 1500) as usize
                    };
                    ip_len.saturating_sub(ip_hdrs).max(1)
                }
            },
        }
    }

    /// Build the frame for the flow's next step into `self.w.buf`; returns its length.
    fn frame(&mut self, rng: &mut Rng, f: &mut Flow, o: u8) -> usize {
        self.w.clear();
        let from_server = o & op::FROM_SERVER != 0;
        let kind = o & op::KIND;
        let w = &mut self.w;

        // ---- L2
        let (cmac, gmac) = (client_mac(f.client_host), gateway_mac(f.server_host));
        let (dst_mac, src_mac) = if from_server {
            (cmac, gmac)
        } else {
            (gmac, cmac)
        };
        w.put(0, &dst_mac);
        w.put(6, &src_mac);
        let mut at = 12;
        if f.tags == 2 {
            w.put16(at, 0x88a8);
            w.put16(at + 2, f.vlan_outer);
            at += 4;
        }
        if f.tags >= 1 {
            w.put16(at, 0x8100);
            w.put16(at + 2, f.vlan_inner);
            at += 4;
        }
        w.put16(at, if f.v6 { 0x86dd } else { 0x0800 });
        let l2 = at + 2;

        // ---- L4 header length and payload length
        let (proto, l4_hdr) = match kind {
            op::SYN | op::SYN_ACK => (6u8, 32usize),
            op::ACK | op::REQUEST | op::RESPONSE | op::FIN | op::RST => (6, 20),
            op::DNS_QUERY | op::DNS_RESPONSE | op::UDP_DATA => (17, 8),
            _ => (if f.v6 { 58 } else { 1 }, 8),
        };
        let l3 = if f.v6 { 40 } else { 20 };
        let hdr = l2 + l3 + l4_hdr;
        let mut dns: &[u8] = &[];
        let payload = match kind {
            op::REQUEST | op::RESPONSE | op::UDP_DATA => self.data_len(rng, kind, l3 + l4_hdr, hdr),
            op::DNS_QUERY | op::DNS_RESPONSE => {
                let t = usize::from(f.dns_template);
                let set = if kind == op::DNS_QUERY {
                    (&self.dns.queries, &self.dns.small_query)
                } else {
                    (&self.dns.responses, &self.dns.small_response)
                };
                dns = match self.profile {
                    Profile::Small | Profile::Synflood => set.1,
                    Profile::Imix => set.0.get(t).map_or(set.1.as_slice(), |v| v.as_slice()),
                };
                dns.len()
            }
            op::ECHO_REQUEST | op::ECHO_REPLY => match self.profile {
                Profile::Small | Profile::Synflood => MIN_FRAME.saturating_sub(hdr),
                Profile::Imix => 56, // ping's default
            },
            _ => 0,
        };
        let l4_len = l4_hdr + payload;
        let lay = Layout { l2, l3, l4: l4_len };
        let w = &mut self.w;

        // ---- L3
        let (csum_seed, l4_at) = if f.v6 {
            let (src, dst) = if from_server {
                (
                    server_v6(f.server_host),
                    client_v6(f.client_host, f.client_port),
                )
            } else {
                (
                    client_v6(f.client_host, f.client_port),
                    server_v6(f.server_host),
                )
            };
            w.put32(l2, 0x6000_0000 | (u32::from(f.client_port) << 4 & 0xf_ffff));
            w.put16(l2 + 4, lay.l4 as u16);
            w.put(l2 + 6, &[proto, if from_server { 56 } else { 64 }]);
            w.put(l2 + 8, &src);
            w.put(l2 + 24, &dst);
            let mut acc = sum16(&src, 0);
            acc = sum16(&dst, acc);
            acc += lay.l4 as u32 + u32::from(proto);
            (acc, l2 + 40)
        } else {
            let (src, dst) = if from_server {
                (server_v4(f.server_host), client_v4(f.client_host))
            } else {
                (client_v4(f.client_host), server_v4(f.server_host))
            };
            f.ip_id = f.ip_id.wrapping_add(1);
            w.put(l2, &[0x45, 0]);
            w.put16(l2 + 2, (lay.l3 + lay.l4) as u16);
            w.put16(l2 + 4, f.ip_id);
            w.put16(l2 + 6, if proto == 6 { 0x4000 } else { 0 });
            w.put(l2 + 8, &[if from_server { 56 } else { 64 }, proto]);
            w.put(l2 + 12, &src);
            w.put(l2 + 16, &dst);
            let c = fold(sum16(w.buf.get(l2..l2 + 20).unwrap_or(&[]), 0));
            w.put16(l2 + 10, c);
            let mut acc = sum16(&src, 0);
            acc = sum16(&dst, acc);
            acc += lay.l4 as u32 + u32::from(proto);
            (acc, l2 + 20)
        };

        // ---- L4
        let (sport, dport) = if from_server {
            (f.server_port, f.client_port)
        } else {
            (f.client_port, f.server_port)
        };
        let csum_at;
        match proto {
            6 => {
                let (seq, ack) = if from_server {
                    (&mut f.server_seq, f.client_seq)
                } else {
                    (&mut f.client_seq, f.server_seq)
                };
                let this_seq = *seq;
                let (flags, advance) = match kind {
                    op::SYN => (0x02u8, 1u32),
                    op::SYN_ACK => (0x12, 1),
                    op::FIN => (0x11, 1),
                    op::RST => (0x14, 0),
                    op::REQUEST | op::RESPONSE => (0x18, payload as u32),
                    _ => (0x10, 0),
                };
                *seq = seq.wrapping_add(advance);
                w.put16(l4_at, sport);
                w.put16(l4_at + 2, dport);
                w.put32(l4_at + 4, this_seq);
                w.put32(l4_at + 8, if kind == op::SYN { 0 } else { ack });
                w.put(l4_at + 12, &[((l4_hdr / 4) as u8) << 4, flags]);
                w.put16(l4_at + 14, if kind == op::RST { 0 } else { 64_240 });
                if l4_hdr == 32 {
                    let mss = if f.v6 { 1440u16 } else { 1460 }.to_be_bytes();
                    // MSS, NOP NOP SACK-permitted, NOP window-scale 7.
                    w.put(l4_at + 20, &[2, 4, mss[0], mss[1], 1, 1, 4, 2, 1, 3, 3, 7]);
                }
                csum_at = l4_at + 16;
            }
            17 => {
                w.put16(l4_at, sport);
                w.put16(l4_at + 2, dport);
                w.put16(l4_at + 4, lay.l4 as u16);
                if !dns.is_empty() {
                    w.put(l4_at + 8, dns);
                    w.put16(l4_at + 8, f.aux);
                }
                csum_at = l4_at + 6;
            }
            _ => {
                let request = kind == op::ECHO_REQUEST;
                let t = match (f.v6, request) {
                    (false, true) => 8,
                    (false, false) => 0,
                    (true, true) => 128,
                    (true, false) => 129,
                };
                w.put(l4_at, &[t, 0]);
                w.put16(l4_at + 4, f.client_port); // identifier: unique per flow
                w.put16(l4_at + 6, f.aux);
                if !request {
                    f.aux = f.aux.wrapping_add(1);
                }
                csum_at = l4_at + 2;
            }
        }
        // Payload bytes past what was written are zero and add nothing to the sum.
        let seed = if proto == 1 { 0 } else { csum_seed };
        let written = l4_hdr + if dns.is_empty() { 0 } else { dns.len() };
        let mut c = fold(sum16(
            w.buf.get(l4_at..l4_at + written).unwrap_or(&[]),
            seed,
        ));
        if proto == 17 && c == 0 {
            c = 0xffff;
        }
        w.put16(csum_at, c);

        let len = (lay.l2 + lay.l3 + lay.l4).clamp(MIN_FRAME, FRAME_MAX);
        let s = &mut self.stats;
        s.packets += 1;
        s.frame_bytes += len as u64;
        s.tagged += u64::from(f.tags > 0);
        s.qinq += u64::from(f.tags == 2);
        s.v6 += u64::from(f.v6);
        match proto {
            6 => s.tcp += 1,
            17 => s.udp += 1,
            _ => s.icmp += 1,
        }
        s.min_frame = s.min_frame.min(len);
        s.max_frame = s.max_frame.max(len);
        len
    }
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("zonewatch-gen: {e}");
        std::process::exit(1);
    }
}

/// What one generation wrote.
struct Report {
    stats: Stats,
    /// Flows started = distinct 5-tuples in the file.
    flows: u64,
    by_kind: [u64; 4],
    /// Flows whose whole script was written.
    completed: u64,
}

/// Write the whole capture to `out` (not flushed).
fn generate<W: Write>(args: &Args, out: &mut W) -> std::io::Result<Report> {
    // Classic pcap, microsecond timestamps, little-endian, snaplen 262144, Ethernet.
    out.write_all(&file_header(1, TsUnit::Micro))?;

    if args.profile == Profile::Synflood {
        return generate_flood(args, out);
    }
    let mut rng = Rng::new(args.seed);
    let mut factory = FlowFactory::new(&mut rng);
    let n_slots = args.concurrent_flows.get() as usize;
    let mut slots = vec![Flow::EMPTY; n_slots];
    let mut gen = Generator {
        profile: args.profile,
        w: Writer {
            buf: [0; FRAME_MAX],
            dirty: 0,
        },
        dns: DnsTemplates::new(),
        stats: Stats {
            packets: 0,
            frame_bytes: 0,
            tagged: 0,
            qinq: 0,
            v6: 0,
            tcp: 0,
            udp: 0,
            icmp: 0,
            min_frame: usize::MAX,
            max_frame: 0,
        },
    };
    let mean_gap_ns = 1_000_000_000 / args.rate_pps.max(1);
    let mut ts_ns: u64 = 1_711_929_600 * 1_000_000_000;

    for _ in 0..args.packets {
        let i = rng.below(n_slots as u64) as usize;
        let Some(f) = slots.get_mut(i) else { continue };
        if f.step >= f.len {
            factory.start(&mut rng, f);
        }
        let o = f
            .script
            .get(usize::from(f.step))
            .copied()
            .unwrap_or(op::ACK);
        f.step += 1;
        let len = gen.frame(&mut rng, f, o);

        ts_ns += rng.below(2 * mean_gap_ns + 1);
        out.write_all(&record_header(ts_ns, len as u32, len as u32, TsUnit::Micro))?;
        out.write_all(gen.w.buf.get(..len).unwrap_or(&[]))?;
    }
    let open = slots.iter().filter(|f| f.step < f.len).count() as u64;
    Ok(Report {
        stats: gen.stats,
        flows: factory.started,
        by_kind: factory.by_kind,
        completed: factory.started - open,
    })
}

// ---------------------------------------------------------------- SYN flood

/// The flood's victim: 2001:db8:ff::50, port 80.
const FLOOD_VICTIM: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x50,
];
const FLOOD_PORT: u16 = 80;
/// Ethernet + IPv6 + TCP with SYN options.
const FLOOD_FRAME: usize = 14 + 40 + 32;

/// SplitMix64's finaliser: a bijection of `u64` (each step is invertible).
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The spoofed source of the `k`-th SYN: 2001:db8:, 32 random bits, then a bijection of
/// `k + key` in the low 64 bits, so sources never repeat.
fn flood_source(rng: &mut Rng, k: u64, key: u64) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[4..8].copy_from_slice(&(rng.next_u64() as u32).to_be_bytes());
    a[8..].copy_from_slice(&mix64(k.wrapping_add(key)).to_be_bytes());
    a
}

/// `--profile synflood`: one IPv6 SYN per packet from a distinct spoofed source to
/// [`FLOOD_VICTIM`]; random source port, sequence number, flow label and hop limit.
fn generate_flood<W: Write>(args: &Args, out: &mut W) -> std::io::Result<Report> {
    let mut rng = Rng::new(args.seed);
    let key = rng.next_u64();
    let mut frame = [0u8; FLOOD_FRAME];
    frame[0..6].copy_from_slice(&[0x02, 0x00, 0x0c, 0x00, 0xff, 0x50]);
    frame[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    frame[18..20].copy_from_slice(&32u16.to_be_bytes()); // payload length
    frame[20] = 6; // next header: TCP
    frame[38..54].copy_from_slice(&FLOOD_VICTIM);
    let tcp = 54;
    frame[tcp + 2..tcp + 4].copy_from_slice(&FLOOD_PORT.to_be_bytes());
    frame[tcp + 12] = 8 << 4; // 32-byte header
    frame[tcp + 13] = 0x02; // SYN
    frame[tcp + 14..tcp + 16].copy_from_slice(&64_240u16.to_be_bytes());
    frame[tcp + 20..tcp + 32].copy_from_slice(&[2, 4, 0x05, 0xa0, 1, 1, 4, 2, 1, 3, 3, 7]);

    let mean_gap_ns = 1_000_000_000 / args.rate_pps.max(1);
    let mut ts_ns: u64 = 1_711_929_600 * 1_000_000_000;
    for k in 0..args.packets {
        // Traffic reaches the victim through one of the four gateways.
        frame[6..12].copy_from_slice(&gateway_mac(rng.below(4) as u16));
        let label = rng.next_u64() as u32 & 0xf_ffff;
        frame[14..18].copy_from_slice(&(0x6000_0000 | label).to_be_bytes());
        frame[21] = rng.range(40, 250) as u8; // hop limit: spoofers vary it
        frame[22..38].copy_from_slice(&flood_source(&mut rng, k, key));
        let sport = rng.range(1024, 65_535) as u16;
        frame[tcp..tcp + 2].copy_from_slice(&sport.to_be_bytes());
        frame[tcp + 4..tcp + 8].copy_from_slice(&(rng.next_u64() as u32).to_be_bytes());
        frame[tcp + 16..tcp + 18].fill(0);
        let pseudo = sum16(&frame[22..54], 0) + 32 + 6;
        let c = fold(sum16(&frame[tcp..], pseudo));
        frame[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());

        ts_ns += rng.below(2 * mean_gap_ns + 1);
        let len = FLOOD_FRAME as u32;
        out.write_all(&record_header(ts_ns, len, len, TsUnit::Micro))?;
        out.write_all(&frame)?;
    }
    let n = args.packets;
    Ok(Report {
        stats: Stats {
            packets: n,
            frame_bytes: n * FLOOD_FRAME as u64,
            tagged: 0,
            qinq: 0,
            v6: n,
            tcp: n,
            udp: 0,
            icmp: 0,
            min_frame: FLOOD_FRAME,
            max_frame: FLOOD_FRAME,
        },
        flows: n,
        by_kind: [n, 0, 0, 0],
        completed: 0,
    })
}

fn run(args: &Args) -> std::io::Result<()> {
    let started = Instant::now();
    let file = File::create(&args.out)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", args.out.display())))?;
    let mut out = BufWriter::with_capacity(8 << 20, file);
    let report = generate(args, &mut out)?;
    out.flush()?;
    drop(out);

    let s = &report.stats;
    let pct = |n: u64| 100.0 * n as f64 / s.packets.max(1) as f64;
    let secs = started.elapsed().as_secs_f64();
    println!("wrote {}", args.out.display());
    println!(
        "  profile {:?}, seed {}, concurrent flows {}",
        args.profile, args.seed, args.concurrent_flows
    );
    println!(
        "  packets {}  frame bytes {}  file bytes {}",
        s.packets,
        s.frame_bytes,
        24 + 16 * s.packets + s.frame_bytes
    );
    println!(
        "  mean frame {:.1} B (captured; +4 FCS on the wire), min {}, max {}",
        s.frame_bytes as f64 / s.packets.max(1) as f64,
        if s.packets == 0 { 0 } else { s.min_frame },
        s.max_frame
    );
    if args.profile == Profile::Synflood {
        println!(
            "  syn flood on [{}]:{FLOOD_PORT}: {} distinct spoofed sources in 2001:db8::/32, \
             one SYN (one half-open flow) each",
            std::net::Ipv6Addr::from(FLOOD_VICTIM),
            report.flows
        );
    }
    let [tcp, dns, bulk, echo] = report.by_kind;
    println!(
        "  distinct flows {} (tcp {tcp}, dns {dns}, udp bulk {bulk}, icmp echo {echo}); \
         completed {}, open at end {}",
        report.flows,
        report.completed,
        report.flows - report.completed
    );
    println!(
        "  frames: tcp {:.1}%  udp {:.1}%  icmp {:.1}%  ipv6 {:.1}%  vlan-tagged {:.1}% (qinq {:.1}%)",
        pct(s.tcp),
        pct(s.udp),
        pct(s.icmp),
        pct(s.v6),
        pct(s.tagged),
        pct(s.qinq)
    );
    println!(
        "  {:.2} s, {:.1} Mpps generated",
        secs,
        s.packets as f64 / secs / 1e6
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn args(packets: u64, profile: Profile, flows: u32, seed: u64) -> Args {
        Args {
            out: PathBuf::new(),
            packets,
            profile,
            concurrent_flows: NonZeroU32::new(flows).unwrap(),
            seed,
            rate_pps: 1_000_000,
        }
    }

    fn generated(a: &Args) -> (Vec<u8>, Report) {
        let mut buf = Vec::new();
        let report = generate(a, &mut buf).unwrap();
        (buf, report)
    }

    /// (timestamp in µs, frame) of every record; checks the file and record headers.
    fn records(file: &[u8]) -> Vec<(u64, &[u8])> {
        assert_eq!(&file[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u32::from_le_bytes(file[20..24].try_into().unwrap()), 1);
        let mut out = Vec::new();
        let mut at = 24;
        while at < file.len() {
            let h = |i: usize| u32::from_le_bytes(file[at + i..at + i + 4].try_into().unwrap());
            let (sec, usec, caplen, wirelen) = (h(0), h(4), h(8), h(12));
            assert_eq!(caplen, wirelen, "record at {at} is truncated");
            assert!(usec < 1_000_000);
            let frame = &file[at + 16..at + 16 + caplen as usize];
            out.push((u64::from(sec) * 1_000_000 + u64::from(usec), frame));
            at += 16 + caplen as usize;
        }
        assert_eq!(at, file.len());
        out
    }

    fn be16(b: &[u8], at: usize) -> usize {
        usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
    }

    fn doc_v4(a: &[u8]) -> bool {
        matches!(a, [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _])
    }

    #[derive(Default)]
    struct Seen {
        flows: HashSet<(u8, Vec<u8>, Vec<u8>)>,
        v6: u64,
        tagged: u64,
        qinq: u64,
        max_len: usize,
    }

    /// Decode one frame the way a strict decoder would and record its flow.
    fn check_frame(frame: &[u8], seen: &mut Seen) {
        assert!(frame.len() >= MIN_FRAME);
        seen.max_len = seen.max_len.max(frame.len());
        let mut at = 12;
        let mut tags = 0;
        let mut ethertype = be16(frame, at);
        while ethertype == 0x88a8 || ethertype == 0x8100 {
            assert!(tags < 2 && (tags == 0 || ethertype == 0x8100));
            tags += 1;
            at += 4;
            ethertype = be16(frame, at);
        }
        seen.tagged += u64::from(tags > 0);
        seen.qinq += u64::from(tags == 2);
        let l3 = at + 2;
        let (proto, l4, l4_len, mut acc, src, dst) = match ethertype {
            0x0800 => {
                assert_eq!(frame[l3], 0x45);
                let total = be16(frame, l3 + 2);
                let end = l3 + total;
                assert!(end == frame.len() || (end < frame.len() && frame.len() == MIN_FRAME));
                assert!(frame[end..].iter().all(|b| *b == 0), "padding is zeros");
                assert_eq!(
                    fold(sum16(&frame[l3..l3 + 20], 0)),
                    0,
                    "IPv4 header checksum"
                );
                let (src, dst) = (&frame[l3 + 12..l3 + 16], &frame[l3 + 16..l3 + 20]);
                assert!(doc_v4(src) && doc_v4(dst), "{src:?} -> {dst:?}");
                let proto = frame[l3 + 9];
                let pseudo = sum16(src, sum16(dst, 0)) + (total - 20) as u32 + u32::from(proto);
                let acc = if proto == 1 { 0 } else { pseudo };
                (proto, l3 + 20, total - 20, acc, src, dst)
            }
            0x86dd => {
                seen.v6 += 1;
                assert_eq!(frame[l3] >> 4, 6);
                let len = be16(frame, l3 + 4);
                assert!(l3 + 40 + len == frame.len() || frame.len() == MIN_FRAME);
                let (src, dst) = (&frame[l3 + 8..l3 + 24], &frame[l3 + 24..l3 + 40]);
                assert_eq!(&src[..4], &[0x20, 0x01, 0x0d, 0xb8]);
                assert_eq!(&dst[..4], &[0x20, 0x01, 0x0d, 0xb8]);
                let proto = frame[l3 + 6];
                let acc = sum16(src, sum16(dst, 0)) + len as u32 + u32::from(proto);
                (proto, l3 + 40, len, acc, src, dst)
            }
            other => panic!("unexpected ethertype {other:#06x}"),
        };
        let seg = &frame[l4..l4 + l4_len];
        acc = sum16(seg, acc);
        assert_eq!(fold(acc), 0, "L4 checksum, proto {proto}");
        let (sport, dport) = match proto {
            6 => {
                let off = usize::from(seg[12] >> 4) * 4;
                assert!(off == 20 || off == 32);
                assert!(seg.len() >= off);
                (be16(seg, 0), be16(seg, 2))
            }
            17 => {
                assert_eq!(be16(seg, 4), seg.len(), "UDP length");
                (be16(seg, 0), be16(seg, 2))
            }
            1 | 58 => {
                assert!(matches!(seg[0], 0 | 8 | 128 | 129));
                (be16(seg, 4), be16(seg, 4)) // the echo identifier tells flows apart
            }
            other => panic!("unexpected protocol {other}"),
        };
        let a = [src, &sport.to_be_bytes()].concat();
        let b = [dst, &dport.to_be_bytes()].concat();
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        seen.flows.insert((proto, lo, hi));
    }

    fn check_file(profile: Profile) -> (Seen, Report, usize) {
        let a = args(40_000, profile, 2_000, 5);
        let (file, report) = generated(&a);
        let recs = records(&file);
        assert_eq!(recs.len(), 40_000);
        assert_eq!(report.stats.packets, 40_000);
        assert!(
            recs.windows(2).all(|w| w[0].0 <= w[1].0),
            "timestamps never go back"
        );
        let mut seen = Seen::default();
        for (_, frame) in &recs {
            check_frame(frame, &mut seen);
        }
        assert_eq!(
            seen.flows.len() as u64,
            report.flows,
            "one 5-tuple per flow"
        );
        assert_eq!(report.by_kind.iter().sum::<u64>(), report.flows);
        let pct = |n: u64| n * 100 / 40_000;
        assert!((12..=18).contains(&pct(seen.v6)), "IPv6 {}", seen.v6);
        assert!(
            (8..=12).contains(&pct(seen.tagged)),
            "tagged {}",
            seen.tagged
        );
        assert!(seen.qinq > 0 && seen.qinq < seen.tagged / 2);
        let bytes: usize = recs.iter().map(|(_, f)| f.len()).sum();
        (seen, report, bytes / recs.len())
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum16(&data, 0)), !0xddf2);
        // An odd tail counts as the high byte of a word.
        assert_eq!(fold(sum16(&[0x12], 0)), !0x1200);
    }

    #[test]
    fn client_pairs_are_distinct_for_every_flow_number() {
        let mut hit = vec![false; CLIENT_PAIRS as usize];
        for k in 0..CLIENT_PAIRS {
            let (host, port) = client_pair(k, 12_345);
            assert!(u64::from(host) < CLIENT_HOSTS);
            assert!((32_768..=60_999).contains(&port));
            let i = usize::from(port - 32_768) * CLIENT_HOSTS as usize + usize::from(host);
            assert!(!hit[i], "flow {k} repeats a (host, port) pair");
            hit[i] = true;
        }
    }

    #[test]
    fn same_seed_gives_same_bytes_and_another_seed_does_not() {
        let (a, _) = generated(&args(5_000, Profile::Imix, 300, 9));
        let (b, _) = generated(&args(5_000, Profile::Imix, 300, 9));
        let (c, _) = generated(&args(5_000, Profile::Imix, 300, 10));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn imix_frames_decode_cleanly_with_imix_sizes() {
        let (seen, report, mean) = check_file(Profile::Imix);
        assert!((400..=500).contains(&mean), "mean frame {mean}");
        assert_eq!(
            seen.max_len, 1522,
            "1500-byte IP packet behind a QinQ header"
        );
        // 2 000 slots over 40 000 packets: the slots turn over several times.
        assert!(report.flows > 6_000, "{} flows", report.flows);
    }

    #[test]
    fn synflood_is_one_syn_per_distinct_spoofed_source_to_one_victim() {
        let a = args(30_000, Profile::Synflood, 1, 3);
        let (file, report) = generated(&a);
        let recs = records(&file);
        assert_eq!(recs.len(), 30_000);
        assert!(recs.windows(2).all(|w| w[0].0 <= w[1].0));
        let mut seen = Seen::default();
        let mut sources = HashSet::new();
        for (_, frame) in &recs {
            // Checksums, lengths, documentation addresses, SYN options.
            check_frame(frame, &mut seen);
            assert_eq!(frame.len(), FLOOD_FRAME);
            assert_eq!(&frame[38..54], &FLOOD_VICTIM, "one victim");
            assert_eq!(be16(frame, 56), usize::from(FLOOD_PORT));
            assert_eq!(frame[54 + 13], 0x02, "a bare SYN");
            sources.insert(frame[22..38].to_vec());
        }
        assert_eq!(sources.len(), 30_000, "every source is distinct");
        assert_eq!(seen.flows.len(), 30_000, "every SYN is a new flow");
        assert_eq!(seen.v6, 30_000);
        assert_eq!(report.flows, 30_000);
        assert_eq!(report.completed, 0);
        // Deterministic, and the seed matters.
        assert_eq!(generated(&a).0, file);
        assert_ne!(generated(&args(30_000, Profile::Synflood, 1, 4)).0, file);
    }

    #[test]
    fn small_frames_are_minimum_size_unless_headers_are_longer() {
        let (seen, _, mean) = check_file(Profile::Small);
        assert!((60..=64).contains(&mean), "mean frame {mean}");
        // IPv6 + QinQ + SYN with options: 22 + 40 + 32.
        assert_eq!(seen.max_len, 94);
    }
}
