//! Floor L3, analysis side of the DoS detector: [`DosDetector`] merges the
//! workers' [`DosPartial`] windows, judges complete windows in order (hot
//! destinations, flood signatures) and runs episodes (`dos_start`,
//! `dos_update`, `dos_end`); see the parent module's docs. Leaves alone:
//! per-packet counting ([`super::counter`]).

use super::{
    addr_hash, hll_estimate, DosConfig, DosPartial, DstAgg, DstKey, SrcSample, CMS_COLS, CMS_N,
    CMS_ROWS, ECHO_OUT, NS, QUERY_OUT, SAMPLE, SYNACK_OUT, SYN_OUT, UDP_OUT,
};
use crate::alert::evidence::{DosEvidence, Evidence, ProtocolMix, TopSource};
use crate::alert::Alert;
use crate::detect::obs::Obs;
use crate::detect::{Ctx, Detector, DetectorStats, Emit};
use crate::model::proto::Protocol;
use crate::packet::{proto, to_ip};
use std::collections::BTreeMap;

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
        ended_by: Option<&'static str>,
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
        let top: Vec<TopSource> = sample
            .iter()
            .map(|s| TopSource {
                bytes: s.bytes,
                ip: to_ip(&s.addr, k.v6),
                packets: s.pkts,
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
            .then(|| protos.first().map(|p| Protocol::Ip(*p)))
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
        let rule = format!("detect.dos.{}", types.join("+"));
        let ev = DosEvidence {
            amp_bytes: a.amp_bytes,
            amp_ports,
            attack_types: types,
            bps: t.last_bps,
            bytes: a.bytes,
            dst_zone: dst_zone.clone(),
            duration_secs: (duration * 1000.0).round() / 1000.0,
            ended_by,
            flows_estimate: hll_estimate(&a.flow_hll),
            hot_windows: t.hot_windows,
            packets: a.pkts,
            peak_bps: t.peak_bps,
            peak_pps: t.peak_pps,
            pps: t.last_pps,
            protocol_mix: ProtocolMix {
                amplification: a.amp,
                icmp: a.icmp,
                other,
                tcp_other,
                tcp_syn: a.syn,
                tcp_synack: a.synack,
                udp: a.udp,
                udp_fragments: a.frag,
            },
            sources_estimate: sources,
            src_zones,
            start_window: start_w,
            syn_sent: t.sent[SYN_OUT],
            synack_sent: t.sent[SYNACK_OUT],
            top_sources: top,
            // All sources, ranked, when there are at most SAMPLE of them; else
            // a uniform sample (smallest address hash) with exact counts.
            top_sources_complete: sources <= SAMPLE as u64,
            udp_sent: t.sent[UDP_OUT],
        };
        let severity = crate::policy::Severity::parse(&self.cfg.severity)
            .unwrap_or(crate::policy::Severity::High);
        out.push(
            at,
            Alert {
                timestamp: t.first_ns,
                kind,
                severity,
                src_ip: single,
                dst_ip: Some(dst),
                proto,
                vlan: vlan.into_iter().collect(),
                src_zone: single.and_then(|s| cx.zone(s, vlan)),
                dst_zone,
                rule,
                reason,
                count: a.pkts,
                first_seen: t.first_ns,
                last_seen: t.last_ns,
                evidence: Some(Evidence::Dos(ev)),
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
    /// through [`super::DosCounter`] windows.
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

    fn tapped(&mut self, part: crate::detect::TapPart) {
        if let Ok(p) = part.downcast::<DosPartial>() {
            self.partial(&p);
        }
    }

    fn stats(&self) -> DetectorStats {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{pkt, T0, VICTIM};
    use super::super::{addr_hash, mix, DosCounter};
    use super::*;
    use crate::packet::{tcp_flags, PacketMeta};

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

    /// A numeric evidence value of an alert (`u64::MAX` when missing).
    fn ev(a: &Alert, k: &str) -> u64 {
        crate::detect::testkit::ev(a, k).as_u64().unwrap_or(u64::MAX)
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
        assert_eq!(end.proto.map(|p| p.to_string()).as_deref(), Some("tcp"));
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
            .map(crate::alert::Evidence::json)
            .map(|e| e["top_sources"].as_array().map_or(0, Vec::len));
        assert_eq!(top, Some(SAMPLE));
        // Start after min_duration (2 windows), end 15 s after the last hot one.
        assert_eq!(a[0].first_seen, T0);
        assert_eq!(
            end.evidence
                .as_ref()
                .map(crate::alert::Evidence::json)
                .map(|e| e["ended_by"].clone()),
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
        let ports = a[1]
            .evidence
            .as_ref()
            .map(crate::alert::Evidence::json)
            .map(|e| e["amp_ports"].clone());
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
}
