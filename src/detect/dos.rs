//! Denial of service (`dos_start`, `dos_update`, `dos_end`): SYN floods, SYN-ACK
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
//! the end of `w`, `w` is complete; [`DosDetector::advance`] then judges
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

use super::obs::Obs;
use super::{Ctx, Detector, DetectorStats, Emit};
use crate::alert::{proto_label, rfc3339, Alert};
use crate::packet::{proto, tcp_flags, to_ip, Addr, Frag, PacketMeta, L3};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
const SETS: usize = 1024;
const WAYS: usize = 4;
const SLOTS: usize = SETS * WAYS;
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
    fn sample_add(&mut self, s: SrcSample) {
        let n = usize::from(self.n);
        if let Some(x) = self.sample.iter_mut().take(n).find(|x| x.addr == s.addr) {
            x.pkts += s.pkts;
            x.bytes += s.bytes;
            return;
        }
        if n < SAMPLE {
            if let Some(x) = self.sample.get_mut(n) {
                *x = s;
                self.n += 1;
            }
            return;
        }
        // Full: replace the largest hash if the new one is smaller.
        let mut worst = 0;
        for i in 1..SAMPLE {
            if self.sample[i].hash > self.sample[worst].hash {
                worst = i;
            }
        }
        if (s.hash, s.addr) < (self.sample[worst].hash, self.sample[worst].addr) {
            self.sample[worst] = s;
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

/// A worker's per-packet counter (see the module docs).
pub struct DosCounter {
    window: u64,
    keys: Vec<(Addr, u8)>,
    aggs: Vec<DstAgg>,
    used: Vec<u32>,
    cms: Vec<[u32; CMS_N]>,
    cms_used: bool,
    extra: Vec<DstAgg>,
    dropped: u64,
    amp_bits: Vec<u64>,
    amp_ports: Vec<u16>,
}

impl DosCounter {
    pub fn new(cfg: &DosConfig) -> DosCounter {
        let mut amp_bits = vec![0u64; 1024];
        for &p in &cfg.amp_ports {
            if let Some(w) = amp_bits.get_mut(usize::from(p >> 6)) {
                *w |= 1 << (p & 63);
            }
        }
        DosCounter {
            window: 0,
            keys: vec![([0; 16], 0); SLOTS],
            aggs: vec![DstAgg::default(); SLOTS],
            used: Vec::with_capacity(SLOTS),
            cms: vec![[0; CMS_N]; CMS_ROWS * CMS_COLS],
            cms_used: false,
            extra: Vec::with_capacity(SLOTS),
            dropped: 0,
            amp_bits,
            amp_ports: cfg.amp_ports.iter().copied().take(32).collect(),
        }
    }

    #[inline]
    fn is_amp(&self, port: u16) -> bool {
        self.amp_bits
            .get(usize::from(port >> 6))
            .is_some_and(|w| w & (1 << (port & 63)) != 0)
    }

    /// Count one packet; returns the previous window when this packet's
    /// window is later (ship it before anything else).
    #[inline]
    pub fn count(&mut self, m: &PacketMeta) -> Option<DosPartial> {
        if !matches!(m.l3, L3::Ipv4 | L3::Ipv6) {
            return None;
        }
        let w = m.ts_ns / NS;
        let shipped = if w > self.window {
            let p = self.take();
            self.window = w;
            p
        } else {
            None
        };
        self.add(m);
        shipped
    }

    /// The current window if packet time `now_ns` is past its end.
    pub fn flush_before(&mut self, now_ns: u64) -> Option<DosPartial> {
        if now_ns / NS > self.window {
            let p = self.take();
            self.window = now_ns / NS;
            p
        } else {
            None
        }
    }

    /// The current window, whatever the time (end of input).
    pub fn finish(&mut self) -> Option<DosPartial> {
        self.take()
    }

    fn cms_add(&mut self, a: &Addr, v6: bool, what: usize) {
        let h = addr_hash(a, v6);
        self.cms_used = true;
        for r in 0..CMS_ROWS {
            let col = ((h >> (r * 16)) as usize) & (CMS_COLS - 1);
            if let Some(c) = self
                .cms
                .get_mut(r * CMS_COLS + col)
                .and_then(|c| c.get_mut(what))
            {
                *c = c.saturating_add(1);
            }
        }
    }

    #[inline]
    fn add(&mut self, m: &PacketMeta) {
        let k = &m.key;
        let tag = 1 + u8::from(k.v6);
        let dh = addr_hash(&k.dst, k.v6);
        let set = (dh as usize) & (SETS - 1);
        let base = set * WAYS;
        let mut slot = None;
        let mut free = None;
        for i in base..base + WAYS {
            match self.keys.get(i) {
                Some((a, t)) if *t == tag && *a == k.dst => {
                    slot = Some(i);
                    break;
                }
                Some((_, 0)) if free.is_none() => free = Some(i),
                _ => {}
            }
        }
        let i = match (slot, free) {
            (Some(i), _) => i,
            (None, Some(i)) => {
                self.claim(i, k.dst, tag, k.v6);
                i
            }
            (None, None) => {
                // Evict the way with the fewest packets; ship it later.
                let mut v = base;
                for i in base + 1..base + WAYS {
                    if self.aggs.get(i).map_or(0, |a| a.pkts)
                        < self.aggs.get(v).map_or(0, |a| a.pkts)
                    {
                        v = i;
                    }
                }
                if let Some(old) = self.aggs.get(v) {
                    if self.extra.len() < SLOTS * 2 {
                        self.extra.push(*old);
                    } else {
                        self.dropped += 1;
                    }
                }
                self.claim(v, k.dst, tag, k.v6);
                v
            }
        };
        let bytes = u64::from(m.wire_len);
        let (sport, dport) = (k.sport, k.dport);
        let amp_idx = if k.proto == proto::UDP && m.frag != Frag::NonFirst && self.is_amp(sport) {
            self.amp_ports.iter().position(|&p| p == sport)
        } else {
            None
        };
        let dport_amp = self.is_amp(dport);
        let Some(a) = self.aggs.get_mut(i) else {
            return;
        };
        a.pkts += 1;
        a.bytes += bytes;
        a.first_ns = a.first_ns.min(m.ts_ns);
        a.last_ns = a.last_ns.max(m.ts_ns);
        // The smallest innermost VLAN seen: the same whichever worker saw which
        // packet (merge takes the minimum too).
        let v = crate::packet::inner_vlan(k.vlan).unwrap_or(0);
        if v != 0 && (a.vlan == 0 || v < a.vlan) {
            a.vlan = v;
        }
        let sh = addr_hash(&k.src, k.v6);
        hll_add(&mut a.src_hll, sh);
        let fh = mix(sh ^ (u64::from(sport) << 32 | u64::from(dport) << 8 | u64::from(k.proto)));
        hll_add(&mut a.flow_hll, fh);
        a.sample_add(SrcSample {
            hash: sh,
            addr: k.src,
            pkts: 1,
            bytes,
        });
        let mut out = None;
        match k.proto {
            proto::TCP => {
                a.tcp += 1;
                let f = m.tcp_flags;
                if f & tcp_flags::SYN != 0 {
                    if f & tcp_flags::ACK == 0 {
                        a.syn += 1;
                        out = Some(SYN_OUT);
                    } else {
                        a.synack += 1;
                        out = Some(SYNACK_OUT);
                    }
                }
            }
            proto::UDP if m.frag == Frag::NonFirst => {
                a.frag += 1;
                a.frag_bytes += bytes;
            }
            proto::UDP => {
                a.udp += 1;
                if let Some(ix) = amp_idx {
                    if !dport_amp {
                        a.amp += 1;
                        a.amp_bytes += bytes;
                        a.amp_mask |= 1 << ix;
                    }
                }
                out = Some(UDP_OUT);
            }
            proto::ICMP | proto::ICMPV6 => {
                a.icmp += 1;
                match (k.proto, sport) {
                    (proto::ICMP, 0) | (proto::ICMPV6, 129) => a.echo_reply += 1,
                    (proto::ICMP, 8) | (proto::ICMPV6, 128) => out = Some(ECHO_OUT),
                    _ => {}
                }
            }
            _ => {}
        }
        if let Some(what) = out {
            self.cms_add(&k.src, k.v6, what);
            if what == UDP_OUT && dport_amp {
                self.cms_add(&k.src, k.v6, QUERY_OUT);
            }
        }
    }

    fn claim(&mut self, i: usize, addr: Addr, tag: u8, v6: bool) {
        if let Some(k) = self.keys.get_mut(i) {
            *k = (addr, tag);
        }
        if let Some(a) = self.aggs.get_mut(i) {
            *a = DstAgg {
                key: DstKey { addr, v6 },
                ..DstAgg::default()
            };
        }
        if self.keys.get(i).is_some() && self.used.len() < SLOTS {
            self.used.push(i as u32);
        }
    }

    /// Ship and reset the current window (None when it is empty).
    fn take(&mut self) -> Option<DosPartial> {
        if self.used.is_empty() && self.extra.is_empty() && !self.cms_used {
            return None;
        }
        let mut dsts = std::mem::take(&mut self.extra);
        self.extra = Vec::with_capacity(SLOTS);
        dsts.reserve(self.used.len());
        for &i in &self.used {
            let i = i as usize;
            if let (Some(k), Some(a)) = (self.keys.get_mut(i), self.aggs.get(i)) {
                if k.1 != 0 {
                    dsts.push(*a);
                }
                k.1 = 0;
            }
        }
        self.used.clear();
        let src_cms = if self.cms_used {
            self.cms_used = false;
            std::mem::replace(&mut self.cms, vec![[0; CMS_N]; CMS_ROWS * CMS_COLS])
        } else {
            Vec::new()
        };
        let dropped = std::mem::take(&mut self.dropped);
        Some(DosPartial {
            window: self.window,
            dsts,
            src_cms,
            dropped,
        })
    }
}

/// One window merged over workers.
#[derive(Default)]
struct Window {
    dsts: BTreeMap<DstKey, DstAgg>,
    cms: Vec<[u64; CMS_N]>,
    dropped: u64,
}

impl Window {
    /// What host `k` sent (count-min estimate: never below the truth).
    fn sent(&self, k: &DstKey) -> [u64; CMS_N] {
        if self.cms.is_empty() {
            return [0; CMS_N];
        }
        let h = addr_hash(&k.addr, k.v6);
        let mut best = [u64::MAX; CMS_N];
        for r in 0..CMS_ROWS {
            let col = ((h >> (r * 16)) as usize) & (CMS_COLS - 1);
            if let Some(c) = self.cms.get(r * CMS_COLS + col) {
                for (b, v) in best.iter_mut().zip(c) {
                    *b = (*b).min(*v);
                }
            }
        }
        best.map(|x| if x == u64::MAX { 0 } else { x })
    }
}

/// Flood signatures, as bits.
const SIG_SYN: u8 = 1;
const SIG_SYNACK: u8 = 2;
const SIG_UDP: u8 = 4;
const SIG_ICMP: u8 = 8;
const SIG_AMP: u8 = 16;
const SIG_NAMES: [(u8, &str); 5] = [
    (SIG_SYN, "syn_flood"),
    (SIG_SYNACK, "synack_reflection"),
    (SIG_UDP, "udp_flood"),
    (SIG_ICMP, "icmp_flood"),
    (SIG_AMP, "amplification"),
];

fn sig_names(s: u8) -> Vec<&'static str> {
    SIG_NAMES
        .iter()
        .filter(|(b, _)| s & b != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// A followed destination: a hot streak, then an episode.
struct Track {
    streak_start: u64,
    last_hot: u64,
    first_ns: u64,
    last_ns: u64,
    /// Episode started (window it started in).
    started: Option<u64>,
    last_update: u64,
    sigs: u8,
    peak_pps: u64,
    peak_bps: u64,
    hot_windows: u64,
    agg: DstAgg,
    sent: [u64; CMS_N],
    last_pps: u64,
    last_bps: u64,
}

/// The DoS detector (analysis side).
pub struct DosDetector {
    cfg: DosConfig,
    pending: BTreeMap<u64, Window>,
    tracks: BTreeMap<DstKey, Track>,
    /// Last window judged.
    judged: Option<u64>,
    stats: DetectorStats,
}

impl DosDetector {
    pub fn new(cfg: DosConfig) -> DosDetector {
        DosDetector {
            cfg,
            pending: BTreeMap::new(),
            tracks: BTreeMap::new(),
            judged: None,
            stats: DetectorStats::default(),
        }
    }

    /// A worker's window (any order; merged by sums, maxima, unions).
    pub fn partial(&mut self, p: &DosPartial) {
        if self.judged.is_some_and(|j| p.window <= j) {
            // Too late to count (input out of order beyond the slack).
            self.stats.state_evictions += p.dsts.len() as u64;
            return;
        }
        let w = self.pending.entry(p.window).or_default();
        for d in &p.dsts {
            w.dsts.entry(d.key).and_modify(|x| x.merge(d)).or_insert(*d);
        }
        if !p.src_cms.is_empty() {
            if w.cms.is_empty() {
                w.cms = vec![[0; CMS_N]; CMS_ROWS * CMS_COLS];
            }
            for (a, b) in w.cms.iter_mut().zip(&p.src_cms) {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += u64::from(*y);
                }
            }
        }
        w.dropped += p.dropped;
        self.stats.state_evictions += p.dropped;
    }

    fn signatures(&self, d: &DstAgg, sent: &[u64; CMS_N]) -> u8 {
        let c = &self.cfg;
        let mut s = 0;
        let rate = d.pkts >= c.min_pps || d.bytes.saturating_mul(8) >= c.min_bps;
        if rate {
            if d.syn >= c.min_syn_pps
                && (d.syn * 100 >= c.min_syn_share_pct * d.tcp
                    || sent[SYNACK_OUT] * 100 < c.max_synack_pct * d.syn)
            {
                s |= SIG_SYN;
            }
            if d.synack >= c.min_syn_pps && sent[SYN_OUT] * 100 < c.max_synack_pct * d.synack {
                s |= SIG_SYNACK;
            }
            if d.udp >= c.min_udp_pps
                && (hll_estimate(&d.flow_hll) >= c.min_flows
                    || hll_estimate(&d.src_hll) >= c.min_sources)
                && sent[UDP_OUT] * 100 < c.max_udp_answer_pct * d.udp
            {
                s |= SIG_UDP;
            }
            // Echo replies to a host's own pings are answers, not a flood.
            let unsolicited = d.echo_reply.saturating_sub(sent[ECHO_OUT]);
            if d.icmp - d.echo_reply + unsolicited >= c.min_icmp_pps {
                s |= SIG_ICMP;
            }
        }
        let amp_bytes = d.amp_bytes + if d.amp > 0 { d.frag_bytes } else { 0 };
        if d.amp >= c.min_amp_pps
            && amp_bytes >= c.min_amp_avg_bytes * d.amp
            && sent[QUERY_OUT] * 2 < d.amp
        {
            s |= SIG_AMP;
        }
        s
    }

    /// End episodes whose quiet period is over by window `upto` (start).
    fn end_quiet(&mut self, upto: u64, end_of_input: bool, cx: &Ctx, out: &mut Emit) {
        let quiet = self.cfg.end_quiet_secs.max(1);
        let due: Vec<DstKey> = self
            .tracks
            .iter()
            .filter(|(_, t)| end_of_input || t.last_hot + 1 + quiet <= upto)
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            if let Some(t) = self.tracks.remove(&k) {
                if t.started.is_some() {
                    let at = (t.last_hot + 1 + quiet).saturating_mul(NS);
                    let by = if end_of_input && t.last_hot + 1 + quiet > upto {
                        cx.end
                    } else {
                        "quiet"
                    };
                    self.emit("dos_end", &k, &t, at, Some(by), cx, out);
                    self.stats.alerts += 1;
                }
            }
        }
    }

    fn judge(&mut self, wi: u64, w: Window, cx: &Ctx, out: &mut Emit) {
        self.end_quiet(wi, false, cx, out);
        let c = self.cfg.clone();
        let min_dur = c.min_duration_secs.max(1);
        let at = (wi + 1).saturating_mul(NS);
        for (k, d) in &w.dsts {
            let sent = w.sent(k);
            let sigs = self.signatures(d, &sent);
            let hot = sigs != 0;
            if !hot && !self.tracks.contains_key(k) {
                continue;
            }
            if hot && !self.tracks.contains_key(k) {
                if self.tracks.len() >= c.max_tracked {
                    self.stats.state_evictions += 1;
                    continue;
                }
                self.tracks.insert(
                    *k,
                    Track {
                        streak_start: wi,
                        last_hot: wi,
                        first_ns: d.first_ns,
                        last_ns: d.last_ns,
                        started: None,
                        last_update: wi,
                        sigs: 0,
                        peak_pps: 0,
                        peak_bps: 0,
                        hot_windows: 0,
                        agg: DstAgg {
                            key: *k,
                            ..DstAgg::default()
                        },
                        sent: [0; CMS_N],
                        last_pps: 0,
                        last_bps: 0,
                    },
                );
            }
            let Some(t) = self.tracks.get_mut(k) else {
                continue;
            };
            self.stats.observed += 1;
            if hot {
                if t.started.is_none() && t.last_hot + 1 < wi {
                    // The streak broke: start over.
                    *t = Track {
                        streak_start: wi,
                        first_ns: d.first_ns,
                        agg: DstAgg {
                            key: *k,
                            ..DstAgg::default()
                        },
                        sent: [0; CMS_N],
                        sigs: 0,
                        peak_pps: 0,
                        peak_bps: 0,
                        hot_windows: 0,
                        ..*t
                    };
                }
                t.last_hot = wi;
                t.hot_windows += 1;
                t.sigs |= sigs;
            }
            t.agg.merge(d);
            for (x, y) in t.sent.iter_mut().zip(sent) {
                *x += y;
            }
            t.last_ns = t.last_ns.max(d.last_ns);
            t.first_ns = t.first_ns.min(d.first_ns);
            t.last_pps = d.pkts;
            t.last_bps = d.bytes * 8;
            if hot {
                t.peak_pps = t.peak_pps.max(d.pkts);
                t.peak_bps = t.peak_bps.max(d.bytes * 8);
            }
            let kind = match t.started {
                None if hot && (wi + 1 - t.streak_start >= min_dur || d.pkts >= c.burst_pps) => {
                    t.started = Some(wi);
                    t.last_update = wi;
                    Some("dos_start")
                }
                Some(_) if hot && wi >= t.last_update + c.update_interval_secs.max(1) => {
                    t.last_update = wi;
                    Some("dos_update")
                }
                _ => None,
            };
            if let Some(kind) = kind {
                if let Some(t) = self.tracks.get(k) {
                    self.emit(kind, k, t, at, None, cx, out);
                }
                self.stats.alerts += 1;
            }
        }
        // Streaks that never started and went cold: forget them.
        self.tracks
            .retain(|_, t| t.started.is_some() || t.last_hot + 1 >= wi);
    }

    #[allow(clippy::too_many_arguments)] // one alert's parts
    fn emit(
        &self,
        kind: &'static str,
        k: &DstKey,
        t: &Track,
        at: u64,
        ended_by: Option<&str>,
        cx: &Ctx,
        out: &mut Emit,
    ) {
        let a = &t.agg;
        let vlan = (a.vlan != 0).then_some(a.vlan);
        let dst = to_ip(&k.addr, k.v6);
        let mut sample: Vec<SrcSample> = a.sample.iter().take(usize::from(a.n)).copied().collect();
        sample.sort_by(|x, y| y.pkts.cmp(&x.pkts).then(x.addr.cmp(&y.addr)));
        let sources = hll_estimate(&a.src_hll).max(u64::from(a.n));
        let single = (sources == 1 && a.n == 1)
            .then(|| sample.first().map(|s| to_ip(&s.addr, k.v6)))
            .flatten();
        let mut src_zones: BTreeMap<String, u64> = BTreeMap::new();
        for s in &sample {
            if let Some(z) = cx.zone(to_ip(&s.addr, k.v6), vlan) {
                *src_zones.entry(z).or_default() += s.pkts;
            }
        }
        let top: Vec<serde_json::Value> = sample
            .iter()
            .map(|s| {
                serde_json::json!({
                    "ip": to_ip(&s.addr, k.v6).to_string(),
                    "packets": s.pkts,
                    "bytes": s.bytes,
                })
            })
            .collect();
        let amp_ports: Vec<u16> = self
            .cfg
            .amp_ports
            .iter()
            .take(32)
            .enumerate()
            .filter(|(i, _)| a.amp_mask & (1 << i) != 0)
            .map(|(_, p)| *p)
            .collect();
        let tcp_other = a.tcp - a.syn.min(a.tcp) - a.synack.min(a.tcp - a.syn.min(a.tcp));
        let other = a.pkts.saturating_sub(a.tcp + a.udp + a.icmp + a.frag);
        // The attack's protocol, when its signatures agree on one.
        let icmp = if k.v6 { proto::ICMPV6 } else { proto::ICMP };
        let protos: std::collections::BTreeSet<u8> = [
            (SIG_SYN | SIG_SYNACK, proto::TCP),
            (SIG_UDP | SIG_AMP, proto::UDP),
            (SIG_ICMP, icmp),
        ]
        .iter()
        .filter(|(b, _)| t.sigs & b != 0)
        .map(|(_, p)| *p)
        .collect();
        let proto = (protos.len() == 1)
            .then(|| protos.first().map(|p| proto_label(*p)))
            .flatten();
        let types = sig_names(t.sigs);
        let start_w = t.started.unwrap_or(t.streak_start);
        let duration = (t.last_ns.saturating_sub(t.first_ns)) as f64 / 1e9;
        let dst_zone = cx.zone(dst, vlan);
        let reason = match kind {
            "dos_start" => format!(
                "{dst} is under {}: {} pkt/s, {:.1} Mbit/s from about {sources} sources",
                types.join(" + "),
                t.last_pps,
                t.last_bps as f64 / 1e6
            ),
            "dos_update" => format!(
                "{dst} still under {}: {} pkt/s now, peak {} pkt/s, {:.1} Mbit/s, {:.0} s so far",
                types.join(" + "),
                t.last_pps,
                t.peak_pps,
                t.peak_bps as f64 / 1e6,
                duration
            ),
            _ => format!(
                "{dst} no longer under {} after {:.1} s: peak {} pkt/s, {:.1} Mbit/s, {} packets from about {sources} sources",
                types.join(" + "),
                duration,
                t.peak_pps,
                t.peak_bps as f64 / 1e6,
                a.pkts
            ),
        };
        let mut ev = serde_json::json!({
            "attack_types": types,
            "peak_pps": t.peak_pps,
            "peak_bps": t.peak_bps,
            "pps": t.last_pps,
            "bps": t.last_bps,
            "packets": a.pkts,
            "bytes": a.bytes,
            "duration_secs": (duration * 1000.0).round() / 1000.0,
            "hot_windows": t.hot_windows,
            "start_window": start_w,
            "protocol_mix": {
                "tcp_syn": a.syn,
                "tcp_synack": a.synack,
                "tcp_other": tcp_other,
                "udp": a.udp,
                "udp_fragments": a.frag,
                "icmp": a.icmp,
                "amplification": a.amp,
                "other": other,
            },
            "synack_sent": t.sent[SYNACK_OUT],
            "syn_sent": t.sent[SYN_OUT],
            "udp_sent": t.sent[UDP_OUT],
            "sources_estimate": sources,
            "flows_estimate": hll_estimate(&a.flow_hll),
            "top_sources": top,
            // All sources, ranked, when there are at most SAMPLE of them; else
            // a uniform sample (smallest address hash) with exact counts.
            "top_sources_complete": sources <= SAMPLE as u64,
            "amp_ports": amp_ports,
            "amp_bytes": a.amp_bytes,
            "dst_zone": dst_zone,
            "src_zones": src_zones,
        });
        if let (Some(by), Some(m)) = (ended_by, ev.as_object_mut()) {
            m.insert("ended_by".into(), by.into());
        }
        let severity = crate::policy::Severity::parse(&self.cfg.severity)
            .unwrap_or(crate::policy::Severity::High);
        out.push(
            at,
            Alert {
                timestamp: rfc3339(t.first_ns),
                kind,
                severity: severity.as_str(),
                src_ip: single,
                dst_ip: Some(dst),
                proto,
                vlan: vlan.into_iter().collect(),
                src_zone: single.and_then(|s| cx.zone(s, vlan)),
                dst_zone,
                rule: format!("detect.dos.{}", types.join("+")),
                reason,
                count: a.pkts,
                first_seen: rfc3339(t.first_ns),
                last_seen: rfc3339(t.last_ns),
                evidence: Some(ev),
                ..Alert::default()
            },
        );
    }
}

impl Detector for DosDetector {
    fn name(&self) -> &'static str {
        "dos"
    }

    /// Flow observations carry nothing the detector needs: it counts packets
    /// through [`DosCounter`] windows.
    fn observe(&mut self, _o: &Obs, _cx: &Ctx, _out: &mut Emit) {}

    fn advance(&mut self, now_ns: u64, cx: &Ctx, out: &mut Emit) {
        // Windows that ended at or before `now` are complete.
        while let Some((&wi, _)) = self.pending.iter().next() {
            if now_ns != u64::MAX && (wi + 1).saturating_mul(NS) > now_ns {
                break;
            }
            let Some(w) = self.pending.remove(&wi) else {
                break;
            };
            self.judged = Some(wi);
            self.judge(wi, w, cx, out);
        }
        if now_ns == u64::MAX {
            let last = self.judged.map_or(0, |j| j + 1);
            self.end_quiet(last, true, cx, out);
        } else {
            self.end_quiet(now_ns / NS, false, cx, out);
        }
    }

    fn dos_partial(&mut self, p: &DosPartial) {
        self.partial(p);
    }

    fn stats(&self) -> DetectorStats {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::FlowKey;
    use std::net::IpAddr;

    const T0: u64 = 1_700_000_000 * NS;
    const VICTIM: &str = "192.0.2.34";

    #[allow(clippy::too_many_arguments)] // a packet's parts
    fn pkt(
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

    /// Count `pkts` on `workers` counters (split by flow), hand the partials
    /// to a detector in the given order (reversed when `rev`), return alerts.
    fn run(cfg: DosConfig, pkts: &[PacketMeta], workers: usize, rev: bool) -> Vec<Alert> {
        let mut counters: Vec<DosCounter> = (0..workers).map(|_| DosCounter::new(&cfg)).collect();
        let mut parts = Vec::new();
        for m in pkts {
            let k = &m.key;
            let w = (mix(addr_hash(&k.src, false) ^ u64::from(k.sport)) as usize) % workers;
            parts.extend(counters[w].count(m));
        }
        for c in &mut counters {
            parts.extend(c.finish());
        }
        if rev {
            parts.reverse();
        }
        let mut d = DosDetector::new(cfg);
        let cx = Ctx {
            policy: None,
            end: crate::detect::END_OF_INPUT,
        };
        let mut out = Emit::default();
        for p in &parts {
            d.partial(p);
        }
        d.advance(u64::MAX, &cx, &mut out);
        out.items.into_iter().map(|(_, _, a)| a).collect()
    }

    fn kinds(a: &[Alert]) -> Vec<&'static str> {
        a.iter().map(|a| a.kind).collect()
    }

    fn ev(a: &Alert, k: &str) -> u64 {
        a.evidence
            .as_ref()
            .and_then(|e| e[k].as_u64())
            .unwrap_or(u64::MAX)
    }

    /// `pps` spoofed SYNs per second to the victim for `secs` seconds, from
    /// 203.0.113.0/24 and 198.51.100.0/24, never completed.
    fn syn_flood(secs: u64, pps: u64, t0: u64) -> Vec<PacketMeta> {
        let mut v = Vec::new();
        for i in 0..secs * pps {
            let src = format!(
                "{}.{}",
                if i % 2 == 0 {
                    "203.0.113"
                } else {
                    "198.51.100"
                },
                i % 250 + 1
            );
            v.push(pkt(
                t0 + i * NS / pps,
                proto::TCP,
                &src,
                1024 + (i % 60000) as u16,
                VICTIM,
                80,
                tcp_flags::SYN,
                60,
            ));
        }
        v
    }

    #[test]
    fn syn_flood_starts_updates_and_ends() {
        let cfg = DosConfig {
            update_interval_secs: 5,
            ..DosConfig::default()
        };
        let a = run(cfg, &syn_flood(12, 1000, T0), 1, false);
        assert_eq!(
            kinds(&a),
            ["dos_start", "dos_update", "dos_update", "dos_end"],
            "{a:#?}"
        );
        let end = &a[3];
        assert_eq!(end.dst_ip.map(|i| i.to_string()).as_deref(), Some(VICTIM));
        assert_eq!(end.rule, "detect.dos.syn_flood");
        assert_eq!(end.proto.as_deref(), Some("tcp"));
        assert_eq!(end.count, 12_000);
        assert_eq!(ev(end, "peak_pps"), 1000);
        assert_eq!(ev(end, "peak_bps"), 1000 * 60 * 8);
        assert_eq!(ev(end, "hot_windows"), 12);
        let srcs = ev(end, "sources_estimate");
        // 250 distinct sources; a 64-register HyperLogLog is within ~15 %.
        assert!((200..=300).contains(&srcs), "{srcs}");
        let top = end
            .evidence
            .as_ref()
            .map(|e| e["top_sources"].as_array().map_or(0, Vec::len));
        assert_eq!(top, Some(SAMPLE));
        // Start after min_duration (2 windows), end 15 s after the last hot one.
        assert_eq!(a[0].first_seen, rfc3339(T0));
        assert_eq!(
            end.evidence.as_ref().map(|e| e["ended_by"].clone()),
            Some("end_of_input".into())
        );
    }

    #[test]
    fn one_hot_window_is_not_an_episode_but_a_burst_is() {
        assert!(run(DosConfig::default(), &syn_flood(1, 1000, T0), 1, false).is_empty());
        let a = run(DosConfig::default(), &syn_flood(1, 6000, T0), 1, false);
        assert_eq!(kinds(&a), ["dos_start", "dos_end"]);
    }

    #[test]
    fn below_the_rate_threshold_is_quiet() {
        let cfg = DosConfig::default();
        assert!(run(cfg.clone(), &syn_flood(5, 250, T0), 1, false).is_empty());
        let cfg = DosConfig {
            min_pps: 200,
            min_syn_pps: 200,
            ..cfg
        };
        assert_eq!(
            kinds(&run(cfg, &syn_flood(5, 250, T0), 1, false)),
            ["dos_start", "dos_end"]
        );
    }

    #[test]
    fn answered_syns_of_a_busy_server_are_not_a_flood() {
        // 1000 connections/s, each SYN, ACK, 3 data packets: SYNs are 20 %.
        let mut v = Vec::new();
        for i in 0..5000u64 {
            let ts = T0 + i * NS / 1000;
            let src = format!("198.51.100.{}", i % 200 + 1);
            let sp = 1024 + (i % 60000) as u16;
            v.push(pkt(
                ts,
                proto::TCP,
                &src,
                sp,
                VICTIM,
                443,
                tcp_flags::SYN,
                60,
            ));
            v.push(pkt(
                ts + 1,
                proto::TCP,
                VICTIM,
                443,
                &src,
                sp,
                tcp_flags::SYN | tcp_flags::ACK,
                60,
            ));
            for j in 0..4 {
                v.push(pkt(
                    ts + 2 + j,
                    proto::TCP,
                    &src,
                    sp,
                    VICTIM,
                    443,
                    tcp_flags::ACK,
                    600,
                ));
            }
        }
        assert!(run(DosConfig::default(), &v, 2, false).is_empty());
    }

    #[test]
    fn a_big_download_is_not_a_flood() {
        // One established flow, 20 000 pkt/s and 240 Mbit/s to the client for
        // 5 s, ACKs back: over every rate threshold, no flood signature.
        let mut v = Vec::new();
        let (srv, cli) = ("198.51.100.130", "192.0.2.130");
        for i in 0..100_000u64 {
            let ts = T0 + i * NS / 20_000;
            v.push(pkt(
                ts,
                proto::TCP,
                srv,
                8080,
                cli,
                40000,
                tcp_flags::ACK,
                1514,
            ));
            if i % 2 == 0 {
                v.push(pkt(
                    ts + 1,
                    proto::TCP,
                    cli,
                    40000,
                    srv,
                    8080,
                    tcp_flags::ACK,
                    66,
                ));
            }
        }
        assert!(run(DosConfig::default(), &v, 4, false).is_empty());
        // A single UDP stream (QUIC download): one flow, one source.
        let v: Vec<_> = (0..50_000u64)
            .map(|i| {
                pkt(
                    T0 + i * NS / 10_000,
                    proto::UDP,
                    srv,
                    443,
                    cli,
                    50000,
                    0,
                    1300,
                )
            })
            .collect();
        assert!(run(DosConfig::default(), &v, 4, false).is_empty());
    }

    #[test]
    fn udp_and_icmp_floods_but_not_echo_replies() {
        let mut v = Vec::new();
        for i in 0..3000u64 {
            let ts = T0 + i * NS / 1000;
            v.push(pkt(
                ts,
                proto::UDP,
                "203.0.113.66",
                2000 + i as u16,
                VICTIM,
                53,
                0,
                70,
            ));
        }
        let a = run(DosConfig::default(), &v, 2, false);
        assert_eq!(kinds(&a), ["dos_start", "dos_end"]);
        assert_eq!(a[0].rule, "detect.dos.udp_flood");
        assert_eq!(
            a[0].src_ip.map(|i| i.to_string()).as_deref(),
            Some("203.0.113.66")
        );
        let mut v = Vec::new();
        for i in 0..3000u64 {
            let ts = T0 + i * NS / 1000;
            // ICMP key: sport = type.
            v.push(pkt(ts, proto::ICMP, "203.0.113.66", 8, VICTIM, 0, 0, 42));
            v.push(pkt(
                ts + 1,
                proto::ICMP,
                VICTIM,
                0,
                "203.0.113.66",
                0,
                0,
                42,
            ));
        }
        let a = run(DosConfig::default(), &v, 1, false);
        assert_eq!(kinds(&a), ["dos_start", "dos_end"], "{a:#?}");
        assert_eq!(a[1].dst_ip.map(|i| i.to_string()).as_deref(), Some(VICTIM));
        assert_eq!(a[1].rule, "detect.dos.icmp_flood");
    }

    #[test]
    fn amplification_needs_unsolicited_large_responses() {
        let mut attack = Vec::new();
        for i in 0..300u64 {
            let ts = T0 + i * NS / 100;
            let r = format!("198.51.100.{}", i % 40 + 1);
            attack.push(pkt(ts, proto::UDP, &r, 53, VICTIM, 22, 0, 1400));
        }
        let a = run(DosConfig::default(), &attack, 2, false);
        assert_eq!(kinds(&a), ["dos_start", "dos_end"]);
        assert_eq!(a[1].rule, "detect.dos.amplification");
        let ports = a[1].evidence.as_ref().map(|e| e["amp_ports"].clone());
        assert_eq!(ports, Some(serde_json::json!([53])));
        // A resolver getting answers to its own queries: not an attack.
        let mut resolver = Vec::new();
        for (i, m) in attack.iter().enumerate() {
            let mut q = *m;
            q.key = m.key.reversed();
            q.ts_ns = m.ts_ns - 1;
            q.wire_len = 80;
            resolver.push(q);
            let _ = i;
            resolver.push(*m);
        }
        assert!(run(DosConfig::default(), &resolver, 2, false).is_empty());
        // Small responses: not amplification.
        let small: Vec<_> = attack
            .iter()
            .map(|m| PacketMeta {
                wire_len: 120,
                ..*m
            })
            .collect();
        assert!(run(DosConfig::default(), &small, 2, false).is_empty());
    }

    #[test]
    fn merged_windows_are_the_same_for_any_worker_split_and_order() {
        let mut v = syn_flood(4, 2000, T0);
        for i in 0..3000u64 {
            v.push(pkt(
                T0 + i * NS / 1000,
                proto::UDP,
                "203.0.113.9",
                3000 + i as u16,
                "192.0.2.35",
                123,
                0,
                90,
            ));
        }
        v.sort_by_key(|m| m.ts_ns);
        let one = run(DosConfig::default(), &v, 1, false);
        assert_eq!(one.len(), 4, "{one:#?}");
        for (w, rev) in [(2, false), (3, true), (4, false), (4, true)] {
            assert_eq!(
                run(DosConfig::default(), &v, w, rev),
                one,
                "{w} workers, reversed {rev}"
            );
        }
    }

    #[test]
    fn memory_stays_bounded_under_spoofed_destinations() {
        // 200 000 distinct destinations in one window: the table keeps its
        // size, extra records are capped, the victim is still counted.
        let cfg = DosConfig::default();
        let mut c = DosCounter::new(&cfg);
        for i in 0..200_000u64 {
            let dst = std::net::Ipv6Addr::from(
                0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
            );
            let mut m = pkt(T0 + i, proto::UDP, "192.0.2.1", 1, VICTIM, 2, 0, 60);
            m.key = FlowKey::new(
                proto::UDP,
                "2001:db8::1".parse().expect("addr"),
                1,
                dst.into(),
                2,
            );
            c.count(&m);
            let mut to_victim = m;
            to_victim.key.dst = FlowKey::new(
                proto::UDP,
                "2001:db8::1".parse().expect("addr"),
                1,
                "2001:db8:ffff::34".parse().expect("addr"),
                2,
            )
            .dst;
            c.count(&to_victim);
        }
        let p = c.finish().expect("a window");
        assert!(p.dsts.len() <= 3 * SLOTS, "{}", p.dsts.len());
        assert!(p.dropped > 0);
        let victim: u64 = p
            .dsts
            .iter()
            .filter(|d| to_ip(&d.key.addr, d.key.v6).to_string() == "2001:db8:ffff::34")
            .map(|d| d.pkts)
            .sum();
        assert_eq!(victim, 200_000);
    }
}
