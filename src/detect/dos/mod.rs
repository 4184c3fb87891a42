//! Floor L3 (`detect`). Denial of service (`dos_start`, `dos_update`, `dos_end`): SYN floods,
//! SYN-ACK
//! reflection, UDP and ICMP floods, and UDP amplification, per destination.
//!
//! Counting is per packet, so it happens in the workers ([`DosCounter`]): for
//! each 1 s window of packet time (`ts / 1e9`) a worker keeps a fixed-size
//! set-associative table of destinations (1024 sets × 4 ways) with packet and
//! byte counts by class (TCP SYN, SYN-ACK, UDP, ICMP, UDP from amplification
//! ports, UDP non-first fragments), two 64-register HyperLogLogs (distinct
//! sources, distinct flows) and a bottom-k sample of sources (the `SAMPLE`
//! sources with the smallest address hash, with exact counts: every source,
//! so the exact top sources, when a flood has at most `SAMPLE` of them; a
//! uniform sample when sources are spoofed, where "top" means nothing, and
//! the only summary that stays the same whatever the worker count), plus a
//! count-min sketch keyed by *source* for what a host sends (SYNs, SYN-ACKs,
//! UDP, queries to amplification ports). Nothing grows with spoofed sources.
//! When the worker's clock leaves a window it ships the window as a
//! [`DosPartial`] (a destination evicted from a full set is shipped too, up to
//! `2 × table` records; beyond that it is dropped and counted).
//!
//! Every part merges by sums, maxima and unions, and every hash is fixed (not
//! seeded per process), so the merged window is the same whatever the worker
//! count and arrival order. A worker ships window `w` before it reports a
//! watermark past `w`'s end, so when the analysis thread's release time passes
//! the end of `w`, `w` is complete; `DosDetector::advance` then judges
//! complete windows in order.
//!
//! A destination's window is *hot* when its rate is high (`min_pps` or
//! `min_bps`) **and** it has a flood signature — a large download is one
//! answered flow and has none:
//! - `syn_flood`: ≥ `min_syn_pps` SYNs, and SYNs are ≥ `min_syn_share_pct` of
//!   its inbound TCP (half-open: no handshake completion follows) or it
//!   answered < `max_synack_pct` of them with a SYN-ACK;
//! - `synack_reflection`: ≥ `min_syn_pps` SYN-ACKs in, < `max_synack_pct` as
//!   many SYNs sent by the host;
//! - `udp_flood`: ≥ `min_udp_pps` UDP packets from ≥ `min_flows` flows or
//!   ≥ `min_sources` sources, answered by < `max_udp_answer_pct` UDP packets;
//! - `icmp_flood`: ≥ `min_icmp_pps` ICMP/ICMPv6 packets;
//! - `amplification` (its own rate gate): ≥ `min_amp_pps` UDP packets from
//!   `amp_ports` (with UDP non-first fragments counted in the bytes), average
//!   ≥ `min_amp_avg_bytes`, unsolicited (the host sent < half as many queries).
//!
//! An episode starts after `min_duration_secs` consecutive hot windows (or one
//! window ≥ `burst_pps`), sends `dos_update` every `update_interval_secs` and
//! ends after `end_quiet_secs` without a hot window (or at the end of input).
//!
//! Floor L3. This file owns the `[detect.dos]` config ([`DosConfig`]) and
//! what the two sides share: the fixed hashes, the per-destination window
//! ([`DstAgg`], with its HyperLogLogs and source sample) and the message a
//! worker ships ([`DosPartial`]). The worker side is `counter.rs`, the analysis
//! side (windows judged, episodes) is `detector.rs`.

mod counter;
mod detector;

pub use counter::DosCounter;
pub use detector::DosDetector;

use crate::packet::Addr;
use serde::{Deserialize, Serialize};

/// `[detect.dos]` in a rules file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DosConfig {
    pub enabled: bool,
    /// Packets per second to one destination (rate gate of the floods).
    pub min_pps: u64,
    /// Bits per second to one destination (alternative rate gate).
    pub min_bps: u64,
    pub min_syn_pps: u64,
    pub min_syn_share_pct: u64,
    pub max_synack_pct: u64,
    pub min_udp_pps: u64,
    pub max_udp_answer_pct: u64,
    pub min_icmp_pps: u64,
    /// Distinct flows (estimate) that make UDP traffic a flood.
    pub min_flows: u64,
    /// Distinct sources (estimate) that make UDP traffic a flood.
    pub min_sources: u64,
    pub min_amp_pps: u64,
    pub min_amp_avg_bytes: u64,
    /// UDP source ports of amplification services (at most 32 are told apart).
    pub amp_ports: Vec<u16>,
    /// One window at this rate (with a signature) starts an episode at once.
    pub burst_pps: u64,
    pub min_duration_secs: u64,
    pub update_interval_secs: u64,
    pub end_quiet_secs: u64,
    pub severity: String,
    /// Destinations followed at once (hot streaks and episodes).
    pub max_tracked: usize,
}

impl crate::detect::Spec for DosConfig {
    /// No observations: every packet, counted in the workers ([`DosCounter`]).
    fn needs(&self) -> crate::detect::Needs {
        crate::detect::Needs::default()
    }
    fn tap(&self) -> Option<Box<dyn crate::detect::PacketTap>> {
        Some(Box::new(DosCounter::new(self)))
    }
}

impl Default for DosConfig {
    fn default() -> Self {
        DosConfig {
            enabled: true,
            min_pps: 500,
            min_bps: 100_000_000,
            min_syn_pps: 300,
            min_syn_share_pct: 50,
            max_synack_pct: 20,
            min_udp_pps: 300,
            max_udp_answer_pct: 50,
            min_icmp_pps: 300,
            min_flows: 50,
            min_sources: 20,
            min_amp_pps: 20,
            min_amp_avg_bytes: 400,
            amp_ports: vec![
                17, 19, 53, 111, 123, 137, 161, 389, 520, 1434, 1900, 3283, 3702, 5353, 11211,
                27015,
            ],
            burst_pps: 5000,
            min_duration_secs: 2,
            update_interval_secs: 10,
            end_quiet_secs: 15,
            severity: "high".into(),
            max_tracked: 4096,
        }
    }
}

const NS: u64 = 1_000_000_000;
/// Sources sampled per destination (bottom-k by address hash).
pub const SAMPLE: usize = 8;
const HLL: usize = 64;
const CMS_ROWS: usize = 2;
const CMS_COLS: usize = 4096;
/// What a host sent, in the source sketch.
const SYN_OUT: usize = 0;
const SYNACK_OUT: usize = 1;
const UDP_OUT: usize = 2;
const QUERY_OUT: usize = 3;
const ECHO_OUT: usize = 4;
const CMS_N: usize = 5;

/// splitmix64 finaliser: fixed, so sketches agree across runs and workers.
#[inline]
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[inline]
fn addr_hash(a: &Addr, v6: bool) -> u64 {
    let x = u128::from_le_bytes(*a);
    mix((x as u64) ^ mix(((x >> 64) as u64) ^ u64::from(v6)))
}

/// Destination key (address and family).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DstKey {
    pub addr: Addr,
    pub v6: bool,
}

/// One sampled source of a destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SrcSample {
    pub hash: u64,
    pub addr: Addr,
    pub pkts: u64,
    pub bytes: u64,
}

/// One destination in one window (a worker's part, or the merge).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DstAgg {
    pub key: DstKey,
    pub vlan: u16,
    pub first_ns: u64,
    pub last_ns: u64,
    pub pkts: u64,
    pub bytes: u64,
    pub syn: u64,
    pub synack: u64,
    pub tcp: u64,
    pub udp: u64,
    pub icmp: u64,
    /// ICMP echo replies (type 0, ICMPv6 129) among `icmp`.
    pub echo_reply: u64,
    pub amp: u64,
    pub amp_bytes: u64,
    pub frag: u64,
    pub frag_bytes: u64,
    /// Bit i: `amp_ports[i]` seen as a source port.
    pub amp_mask: u32,
    pub src_hll: [u8; HLL],
    pub flow_hll: [u8; HLL],
    /// Bottom-k sample, `n` used.
    pub sample: [SrcSample; SAMPLE],
    pub n: u8,
    /// The largest hash in `sample` when it is full, else `u64::MAX`: a
    /// source with a larger hash is neither in the sample nor enters it.
    pub sample_max: u64,
}

impl Default for DstAgg {
    fn default() -> Self {
        DstAgg {
            key: DstKey::default(),
            vlan: 0,
            first_ns: u64::MAX,
            last_ns: 0,
            pkts: 0,
            bytes: 0,
            syn: 0,
            synack: 0,
            tcp: 0,
            udp: 0,
            icmp: 0,
            echo_reply: 0,
            amp: 0,
            amp_bytes: 0,
            frag: 0,
            frag_bytes: 0,
            amp_mask: 0,
            src_hll: [0; HLL],
            flow_hll: [0; HLL],
            sample: [SrcSample::default(); SAMPLE],
            n: 0,
            sample_max: u64::MAX,
        }
    }
}

#[inline]
fn hll_add(r: &mut [u8; HLL], h: u64) {
    let i = (h & (HLL as u64 - 1)) as usize;
    let rank = ((h >> 6).trailing_zeros() + 1).min(58) as u8;
    if let Some(x) = r.get_mut(i) {
        if rank > *x {
            *x = rank;
        }
    }
}

fn hll_merge(a: &mut [u8; HLL], b: &[u8; HLL]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = (*x).max(*y);
    }
}

/// HyperLogLog estimate (with linear counting for small sets).
pub fn hll_estimate(r: &[u8; HLL]) -> u64 {
    let m = HLL as f64;
    let zeros = r.iter().filter(|&&x| x == 0).count();
    let sum: f64 = r.iter().map(|&x| 2f64.powi(-i32::from(x))).sum();
    let e = 0.709 * m * m / sum;
    let e = if e <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        e
    };
    e.round() as u64
}

impl DstAgg {
    #[inline]
    fn sample_add(&mut self, s: SrcSample) {
        // Full, and the hash larger than any sampled: not in the sample, and
        // not small enough to enter it (no sample entry read).
        if s.hash > self.sample_max {
            return;
        }
        self.sample_add_slow(s);
    }

    fn sample_add_slow(&mut self, s: SrcSample) {
        // One pass: the source if it is sampled (its hash compared first, a
        // word, before its address), and the sample with the largest hash.
        let n = usize::from(self.n).min(SAMPLE);
        let mut worst = 0;
        for i in 0..n {
            let x = &mut self.sample[i];
            if x.hash == s.hash && x.addr == s.addr {
                x.pkts += s.pkts;
                x.bytes += s.bytes;
                return;
            }
            if x.hash > self.sample[worst].hash {
                worst = i;
            }
        }
        if n < SAMPLE {
            self.sample[n] = s;
            self.n += 1;
        } else if (s.hash, s.addr) < (self.sample[worst].hash, self.sample[worst].addr) {
            // Full: replace the largest hash if the new one is smaller.
            self.sample[worst] = s;
        } else {
            return;
        }
        if usize::from(self.n) == SAMPLE {
            self.sample_max = self.sample.iter().map(|x| x.hash).max().unwrap_or(u64::MAX);
        }
    }

    /// Add another part of the same destination (order-independent).
    pub fn merge(&mut self, o: &DstAgg) {
        self.vlan = match (self.vlan, o.vlan) {
            (0, v) | (v, 0) => v,
            (a, b) => a.min(b),
        };
        self.first_ns = self.first_ns.min(o.first_ns);
        self.last_ns = self.last_ns.max(o.last_ns);
        self.pkts += o.pkts;
        self.bytes += o.bytes;
        self.syn += o.syn;
        self.synack += o.synack;
        self.tcp += o.tcp;
        self.udp += o.udp;
        self.icmp += o.icmp;
        self.echo_reply += o.echo_reply;
        self.amp += o.amp;
        self.amp_bytes += o.amp_bytes;
        self.frag += o.frag;
        self.frag_bytes += o.frag_bytes;
        self.amp_mask |= o.amp_mask;
        hll_merge(&mut self.src_hll, &o.src_hll);
        hll_merge(&mut self.flow_hll, &o.flow_hll);
        for s in o.sample.iter().take(usize::from(o.n)) {
            self.sample_add(*s);
        }
    }
}

/// A worker's window, shipped to the analysis thread.
#[derive(Clone, Debug)]
pub struct DosPartial {
    pub window: u64,
    pub dsts: Vec<DstAgg>,
    /// Count-min sketch by source: `CMS_ROWS × CMS_COLS` cells of
    /// [syn, synack, udp, amp-port queries, echo requests] sent.
    pub src_cms: Vec<[u32; CMS_N]>,
    /// Destination records dropped (beyond `2 × table` per window).
    pub dropped: u64,
}
#[cfg(test)]
mod testkit {
    //! Packets for the counter and detector tests.
    use crate::packet::{FlowKey, PacketMeta, L3};
    use std::net::IpAddr;

    use super::NS;

    pub(super) const T0: u64 = 1_700_000_000 * NS;
    pub(super) const VICTIM: &str = "192.0.2.34";

    #[allow(clippy::too_many_arguments)] // a packet's parts
    pub(super) fn pkt(
        ts: u64,
        p: u8,
        src: &str,
        sport: u16,
        dst: &str,
        dport: u16,
        flags: u8,
        len: u32,
    ) -> PacketMeta {
        let ip = |s: &str| s.parse::<IpAddr>().expect("test address");
        PacketMeta {
            ts_ns: ts,
            key: FlowKey::new(p, ip(src), sport, ip(dst), dport),
            wire_len: len,
            l3: L3::Ipv4,
            tcp_flags: flags,
            ..PacketMeta::default()
        }
    }
}
