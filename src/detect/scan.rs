//! Floor L3 (`detect`). Port scans and host sweeps (`port_scan`, `host_sweep`).
//!
//! Counts each initiator's *attempts* in a window of packet time anchored at
//! its first attempt: a TCP SYN or bare ACK, a UDP datagram, an ICMP/ICMPv6
//! echo request, an ARP request, each opening a new (target, protocol, port).
//! An attempt *fails* when it is refused (RST before the handshake, ICMP
//! unreachable) or gets no answer within `answer_wait_secs`. When the window
//! is over (plus the wait) the initiator is judged once:
//!
//! - **vertical** port scan: ≥ `min_ports_per_host` failed ports on one host;
//! - **horizontal** port scan: ≥ `min_hosts_per_port` failed hosts on one port;
//! - **sweep**: ≥ `min_sweep_hosts` hosts probed by ICMP echo, ARP or bare TCP
//!   ACK, of which ≥ `min_sweep_failed` never answered (a monitoring server
//!   pinging live hosts does not alert).
//!
//! Severity: `severity` (default medium), one level higher when targets are in
//! another top-level zone than the scanner, critical when any target is in
//! the My Number zone (`mynumber`) and the scanner is not.
//!
//! One alert per initiator and window: `port_scan` if a port-scan rule holds,
//! else `host_sweep`, with the counts, the zones involved and samples (the
//! smallest addresses and ports, so they do not depend on arrival order).
//! Counting failures rather than connections is what keeps a busy client (a
//! proxy, a backup job) quiet: it connects to many places, but they answer.
//!
//! State is bounded: at most `max_sources` initiators (beyond it the one due
//! soonest is judged early, counted in `state_evictions`) and
//! `max_targets_per_source` targets each (beyond it attempts are only counted).

use super::obs::{ArpObs, Obs};
use super::window::{WindowState, Windows};
use super::{Ctx, Detector, DetectorStats, Emit};
use crate::alert::evidence::{Evidence, ScanEvidence};
use crate::alert::Alert;
use crate::flow::Refusal;
use crate::model::proto::Protocol;
use crate::packet::{proto, tcp_flags, to_ip, Addr, FlowKey};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::model::maps::FastMap as HashMap;

/// `[detect.port_scan]` in a rules file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    pub enabled: bool,
    /// Window per initiator, from its first attempt.
    pub window_secs: u64,
    /// An attempt without any answer after this long has failed.
    pub answer_wait_secs: u64,
    pub min_ports_per_host: u32,
    pub min_hosts_per_port: u32,
    pub min_sweep_hosts: u32,
    pub min_sweep_failed: u32,
    /// `"info"` .. `"critical"`; raised one level (to at most critical) when
    /// targets are in another top-level zone than the scanner.
    pub severity: String,
    /// Initiators never judged (monitoring and vulnerability scanners): CIDRs.
    pub ignore_sources: Vec<String>,
    pub max_sources: usize,
    pub max_targets_per_source: usize,
    /// Addresses and ports listed in an alert's samples.
    pub sample_size: usize,
}

impl crate::detect::Spec for ScanConfig {
    /// Flow starts (targets), their answers and refusals, and ARP (sweeps).
    fn needs(&self) -> crate::detect::Needs {
        crate::detect::Needs {
            starts: true,
            answered: true,
            refused: true,
            arp: true,
            ..crate::detect::Needs::default()
        }
    }
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            enabled: true,
            window_secs: 60,
            answer_wait_secs: 3,
            min_ports_per_host: 20,
            min_hosts_per_port: 20,
            min_sweep_hosts: 20,
            min_sweep_failed: 10,
            severity: "medium".into(),
            ignore_sources: Vec::new(),
            max_sources: 65_536,
            max_targets_per_source: 16_384,
            sample_size: 10,
        }
    }
}

/// How a target was probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Probe {
    Tcp,
    Udp,
    /// ICMP echo, ARP request or bare TCP ACK: "is the host there?"
    Ping,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Target {
    dst: Addr,
    proto: u8,
    port: u16,
}

/// Two words per key instead of a length-prefixed byte slice and two small
/// writes (the derived `Hash`): these keys are hashed for every attempt and
/// every answer.
impl std::hash::Hash for Target {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(u128::from_ne_bytes(self.dst));
        h.write_u32(u32::from(self.proto) << 16 | u32::from(self.port));
    }
}

/// One attempt as observed.
struct Attempted {
    ts: u64,
    src: SrcKey,
    target: Target,
    probe: Probe,
    vlan: Option<u16>,
}

#[derive(Clone, Copy, Debug)]
struct Attempt {
    probe: Probe,
    answered: bool,
    refused: bool,
    /// Counted as failed for the early check (refused, or unanswered when
    /// its answer wait ran out).
    counted: bool,
    /// Sequence number of its answer deadline in the window's `deadlines`
    /// ([`NO_DEADLINE`]: none): an answer retires the deadline there, so the
    /// deadline's expiry needs no look-up of the attempt.
    deadline: u32,
}

/// [`Attempt::deadline`] when the attempt has none.
const NO_DEADLINE: u32 = u32::MAX;

/// An attempt's answer deadline.
#[derive(Clone, Copy, Debug)]
struct Deadline {
    due: u64,
    target: Target,
    /// False once the attempt was answered: its expiry changes nothing
    /// (see [`retire`]).
    live: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SrcKey {
    src: Addr,
    v6: bool,
}

impl std::hash::Hash for SrcKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(u128::from_ne_bytes(self.src));
        h.write_u8(u8::from(self.v6));
    }
}

#[derive(Default)]
struct Window {
    first_ns: u64,
    last_ns: u64,
    /// Hashed for the per-observation lookups; sorted only when judged.
    attempts: HashMap<Target, Attempt>,
    /// Attempts beyond `max_targets_per_source` (counted only).
    overflow: u64,
    total: u64,
    vlan: Option<u16>,
    /// Failure counts, once the window has a failure or a ping probe:
    /// most windows (every source that is only answered, each source of a
    /// spoofed flood) never need them, and without them a source's slot is
    /// a third of the size (the table of sources then fits in cache).
    fails: Option<Box<Failures>>,
    /// Answer deadlines of this window's attempts, in time order.
    deadlines: std::collections::VecDeque<Deadline>,
    /// Sequence number of `deadlines`' front (deadlines popped so far).
    deadlines_head: u32,
    /// The group of the alert written when a threshold was crossed; the
    /// window's judgement then writes its update line.
    early: Option<u64>,
}

/// Failed (refused, or unanswered past the answer wait) TCP/UDP ports per
/// host and hosts per (protocol, port), and ping-probed / failed hosts, so
/// far: a threshold crossed alerts at once.
#[derive(Default)]
struct Failures {
    failed_ports: HashMap<Addr, u32>,
    failed_hosts: HashMap<(u8, u16), u32>,
    sweep_probed: std::collections::HashSet<Addr, foldhash::fast::RandomState>,
    sweep_failed: std::collections::HashSet<Addr, foldhash::fast::RandomState>,
}

/// A source's slot (its current window inline, the next one boxed) stays
/// small: a full table of `max_sources` sources (65,536 by default, filled
/// by a spoofed flood in its first 65,536 packets) is then about 10 MB,
/// not 44 MB, and every packet of such a flood touches two random slots.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<super::window::Slot<Window>>() <= 160);

impl Window {
    fn fails(&mut self) -> &mut Failures {
        self.fails.get_or_insert_with(Box::default)
    }
}

impl WindowState for Window {
    fn events(&self) -> u64 {
        self.total
    }
    fn first_ns(&self) -> u64 {
        self.first_ns
    }
}

/// The scan / sweep detector.
pub struct ScanDetector {
    cfg: ScanConfig,
    ignore: Vec<ipnet::IpNet>,
    /// Per initiator: its window, judged at its end + `answer_wait_secs`.
    win: Windows<SrcKey, Window>,
    /// IPv4 destinations of recent attempts and when: an ARP request for one
    /// of them right after is a router resolving a forwarded packet, not a
    /// sweep of its own.
    recent_dst: HashMap<Addr, u64>,
    stats: DetectorStats,
    /// Alert groups given out (early alerts).
    groups: u64,
    /// (earliest answer deadline of its current window, source).
    answer_due: BTreeSet<(u64, SrcKey)>,
    /// The first deadline of `answer_due` (`u64::MAX` when empty), so the
    /// per-observation check needs no tree walk.
    answer_min: u64,
}

/// How long a forwarded packet explains an ARP request for its destination.
const FORWARD_ARP_NS: u64 = 5_000_000_000;
/// Destinations remembered for that at most (older ones are pruned first).
const MAX_RECENT_DST: usize = 65_536;

const NS: u64 = 1_000_000_000;

/// Top-level zone id of the My Number zone in the presets (rules/presets/).
const MY_NUMBER: &str = "mynumber";

impl ScanDetector {
    pub fn new(cfg: ScanConfig) -> ScanDetector {
        let ignore = cfg
            .ignore_sources
            .iter()
            .filter_map(|c| {
                c.parse::<ipnet::IpNet>()
                    .ok()
                    .or_else(|| c.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
            })
            .collect();
        let win = Windows::new(
            cfg.window_secs.saturating_mul(NS),
            cfg.answer_wait_secs.saturating_mul(NS),
        );
        ScanDetector {
            cfg,
            ignore,
            win,
            recent_dst: HashMap::default(),
            stats: DetectorStats::default(),
            groups: 0,
            answer_due: BTreeSet::new(),
            answer_min: u64::MAX,
        }
    }

    fn attempt(&mut self, a: Attempted, cx: &Ctx, out: &mut Emit) {
        let Attempted {
            ts,
            src,
            target: t,
            probe,
            vlan,
        } = a;
        if !self.ignore.is_empty()
            && self
                .ignore
                .iter()
                .any(|n| n.contains(&to_ip(&src.src, src.v6)))
        {
            return;
        }
        // (The cheap test first: the look-up only when the table is full.)
        if self.win.len() >= self.cfg.max_sources && !self.win.contains(&src) {
            // Judge the source due soonest now to make room (nothing is lost).
            if let Some((k, d)) = self.win.soonest() {
                self.stats.state_evictions += 1;
                self.judge(k, d.min(ts), cx, out);
                self.win.remove(&k);
            }
        }
        let max_targets = self.cfg.max_targets_per_source;
        let wait = self.cfg.answer_wait_secs.saturating_mul(NS);
        let (w, in_cur) = self.win.window_and_place(src, ts);
        if w.total == 0 {
            w.first_ns = ts;
            w.vlan = vlan;
        }
        w.total += 1;
        w.last_ns = w.last_ns.max(ts);
        if w.attempts.len() >= max_targets && !w.attempts.contains_key(&t) {
            w.overflow += 1;
            return;
        }
        // A window with fewer targets than any threshold cannot cross one:
        // answer deadlines are kept only from the `track`-th target on (then
        // for the earlier ones too, due `wait` from now: at most `wait` late).
        let c = &self.cfg;
        let track = c
            .min_ports_per_host
            .min(c.min_hosts_per_port)
            .min(c.min_sweep_hosts)
            .max(1) as usize;
        let was_empty = w.deadlines.is_empty();
        let tracked = w.attempts.len() + 1;
        match w.attempts.entry(t) {
            Entry::Vacant(e) => {
                let a = e.insert(Attempt {
                    probe,
                    answered: false,
                    refused: false,
                    counted: false,
                    deadline: NO_DEADLINE,
                });
                let due = ts.saturating_add(wait);
                match tracked.cmp(&track) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        let mut pending: Vec<Target> = w
                            .attempts
                            .iter()
                            .filter(|(_, a)| !a.answered && !a.refused)
                            .map(|(k, _)| *k)
                            .collect();
                        pending.sort_unstable();
                        for p in pending {
                            let seq = push_deadline(&mut w.deadlines, w.deadlines_head, due, p);
                            if let Some(a) = w.attempts.get_mut(&p) {
                                a.deadline = seq;
                            }
                        }
                    }
                    std::cmp::Ordering::Greater => {
                        a.deadline = push_deadline(&mut w.deadlines, w.deadlines_head, due, t);
                    }
                }
            }
            Entry::Occupied(mut e) => {
                // A port probed after a ping to it (nmap's ACK ping to 80, then
                // the SYN scan of 80) counts as a probed port.
                let a = e.get_mut();
                if a.probe == Probe::Ping {
                    a.probe = probe;
                }
            }
        }
        // The source waits for answers from now on: schedule its first deadline.
        let head = w.deadlines.front().map(|d| d.due);
        let first_deadline = in_cur && was_empty;
        let mut sweep = false;
        if probe == Probe::Ping && in_cur {
            w.fails().sweep_probed.insert(t.dst);
            sweep = sweep_crossed(w, &self.cfg);
        }
        if let (true, Some(d)) = (first_deadline, head) {
            self.due_answer(d, src);
        }
        if sweep {
            self.early(src, ts, cx, out);
        }
    }

    /// Write `src`'s alert now, at `at`: its window crossed a threshold.
    fn early(&mut self, src: SrcKey, at: u64, cx: &Ctx, out: &mut Emit) {
        self.groups += 1;
        let g = self.groups;
        if let Some(s) = self.win.get_mut(&src) {
            s.cur.early = Some(g);
        }
        if let Some(mut a) = self.alert_of(src, cx) {
            a.group = Some(g);
            self.stats.alerts += 1;
            out.push(at, a);
        }
    }

    /// Schedule `src`'s answer deadline `d`.
    fn due_answer(&mut self, d: u64, src: SrcKey) {
        self.answer_due.insert((d, src));
        self.answer_min = self.answer_min.min(d);
    }

    /// The answer wait of `src`'s oldest pending attempt ran out at `at`:
    /// every attempt of its current window due by then and still unanswered
    /// has failed.
    fn answers_due(&mut self, src: SrcKey, at: u64, cx: &Ctx, out: &mut Emit) {
        let mut crossed = false;
        let mut next = None;
        if let Some(s) = self.win.get_mut(&src) {
            let w = &mut s.cur;
            while let Some(&d) = w.deadlines.front() {
                if !d.live {
                    // Answered: its expiry changes nothing (no look-up).
                    w.deadlines.pop_front();
                    w.deadlines_head = w.deadlines_head.wrapping_add(1);
                    continue;
                }
                if d.due > at {
                    next = Some(d.due);
                    break;
                }
                w.deadlines.pop_front();
                w.deadlines_head = w.deadlines_head.wrapping_add(1);
                crossed |= failed_in(w, d.target, &self.cfg, false).unwrap_or(false);
            }
        }
        if let Some(d) = next {
            self.due_answer(d, src);
        }
        if crossed && self.win.get(&src).is_some_and(|s| s.cur.early.is_none()) {
            self.early(src, at, cx, out);
        }
    }

    /// Mark the attempt of `src` to `t` answered or refused (at `at`). A
    /// refusal that makes the current window cross a threshold writes the
    /// alert now; the window's judgement updates it.
    fn outcome(
        &mut self,
        src: SrcKey,
        t: Target,
        refused: bool,
        at: u64,
        cx: &Ctx,
        out: &mut Emit,
    ) {
        // One look-up of the source and one of the target (the current
        // window's, else the next one's).
        let Some(s) = self.win.get_mut(&src) else {
            return;
        };
        let crossed = if refused {
            match failed_in(&mut s.cur, t, &self.cfg, true) {
                Some(crossed) => crossed,
                None => {
                    if let Some(w) = s.next.as_deref_mut() {
                        if let Some(a) = w.attempts.get_mut(&t) {
                            a.refused = true;
                            // Counted when its deadline expires, answered or not.
                            revive(&mut w.deadlines, w.deadlines_head, a.deadline);
                        }
                    }
                    false
                }
            }
        } else {
            let w = &mut s.cur;
            match w.attempts.get_mut(&t) {
                Some(a) => answered(a, &mut w.deadlines, w.deadlines_head),
                None => {
                    if let Some(w) = s.next.as_deref_mut() {
                        if let Some(a) = w.attempts.get_mut(&t) {
                            answered(a, &mut w.deadlines, w.deadlines_head);
                        }
                    }
                }
            }
            false
        };
        if crossed {
            self.early(src, at, cx, out);
        }
    }

    /// Judge every source due at or before `now`; the attempts made while a
    /// window waited start the source's next one.
    fn close_due(&mut self, now: u64, cx: &Ctx, out: &mut Emit) {
        loop {
            // Answer deadlines and judgements in time order (deadlines first
            // at equal times), so the output does not depend on how far each
            // call reaches.
            let answer = self.answer_due.first().copied().filter(|(d, _)| *d <= now);
            let judge = self.win.peek_due().filter(|(d, _)| *d <= now);
            match (answer, judge) {
                (Some((da, src)), j) if j.is_none_or(|(dj, _)| da <= dj) => {
                    self.answer_due.remove(&(da, src));
                    self.answer_min = self.answer_due.first().map_or(u64::MAX, |x| x.0);
                    self.answers_due(src, da, cx, out);
                }
                (_, Some(_)) => {
                    let Some((k, d)) = self.win.next_due(now) else {
                        break;
                    };
                    self.judge(k, d, cx, out);
                    self.win.roll(k, d);
                    // The next window's attempts (if any) now wait here.
                    let head = self
                        .win
                        .get(&k)
                        .and_then(|s| s.cur.deadlines.front().map(|d| d.due));
                    if let Some(dl) = head {
                        self.due_answer(dl, k);
                    }
                }
                _ => break,
            }
        }
    }

    /// Judge the current window of `k` at time `at`: its alert, or the
    /// update of the alert written when it crossed a threshold.
    fn judge(&mut self, k: SrcKey, at: u64, cx: &Ctx, out: &mut Emit) {
        let early = self.win.get(&k).and_then(|s| s.cur.early);
        let judged = self.alert_of(k, cx);
        out.judged(at, judged, early, &mut self.stats.alerts);
    }

    /// The alert the current window of `k` makes as it stands, if any.
    fn alert_of(&self, k: SrcKey, cx: &Ctx) -> Option<Alert> {
        let s = self.win.get(&k)?;
        let w = &s.cur;
        if w.total == 0 || !may_alert(w, &self.cfg) {
            return None;
        }
        let failed = |a: &Attempt| a.refused || !a.answered;
        // Failed ports per host and failed hosts per (proto, port).
        let mut per_host: BTreeMap<Addr, BTreeSet<(u8, u16)>> = BTreeMap::new();
        let mut per_port: BTreeMap<(u8, u16), BTreeSet<Addr>> = BTreeMap::new();
        let mut sweep_hosts: BTreeSet<Addr> = BTreeSet::new();
        let mut sweep_failed: BTreeSet<Addr> = BTreeSet::new();
        let (mut answered, mut refused, mut unanswered) = (0u64, 0u64, 0u64);
        let mut hosts: BTreeSet<Addr> = BTreeSet::new();
        let mut ports: BTreeSet<u16> = BTreeSet::new();
        let mut protos: BTreeSet<u8> = BTreeSet::new();
        for (t, a) in w.attempts.iter() {
            hosts.insert(t.dst);
            protos.insert(t.proto);
            if a.refused {
                refused += 1;
            } else if a.answered {
                answered += 1;
            } else {
                unanswered += 1;
            }
            match a.probe {
                Probe::Ping => {
                    sweep_hosts.insert(t.dst);
                    // A host is there if it answered (a RST to an ACK ping is
                    // an answer); an ICMP unreachable says it is not.
                    if !a.answered {
                        sweep_failed.insert(t.dst);
                    }
                }
                Probe::Tcp | Probe::Udp => {
                    ports.insert(t.port);
                    if failed(a) {
                        per_host.entry(t.dst).or_default().insert((t.proto, t.port));
                        per_port.entry((t.proto, t.port)).or_default().insert(t.dst);
                    }
                }
            }
        }
        let vertical = per_host
            .iter()
            .map(|(h, p)| (p.len(), *h))
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let horizontal = per_port
            .iter()
            .map(|(p, h)| (h.len(), *p))
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let c = &self.cfg;
        let is_vertical =
            vertical.is_some_and(|(n, _)| n as u64 >= u64::from(c.min_ports_per_host));
        let is_horizontal =
            horizontal.is_some_and(|(n, _)| n as u64 >= u64::from(c.min_hosts_per_port));
        let is_sweep = sweep_hosts.len() as u64 >= u64::from(c.min_sweep_hosts)
            && sweep_failed.len() as u64 >= u64::from(c.min_sweep_failed);
        if !(is_vertical || is_horizontal || is_sweep) {
            return None;
        }
        let src_ip = to_ip(&k.src, k.v6);
        let src_zone = cx.zone(src_ip, w.vlan);
        // Attempts per destination zone (one look-up per host).
        let mut zone_of_host: BTreeMap<Addr, Option<String>> = BTreeMap::new();
        let mut dst_zones: BTreeMap<String, u64> = BTreeMap::new();
        for t in w.attempts.keys() {
            let z = zone_of_host
                .entry(t.dst)
                .or_insert_with(|| cx.zone(to_ip(&t.dst, k.v6), w.vlan));
            if let Some(z) = z {
                *dst_zones.entry(z.clone()).or_default() += 1;
            }
        }
        let top = |z: &str| z.split('.').next().unwrap_or(z).to_string();
        let crosses = src_zone
            .as_deref()
            .is_some_and(|sz| dst_zones.keys().any(|d| top(d) != top(sz)));
        let mut severity =
            crate::policy::Severity::parse(&c.severity).unwrap_or(crate::policy::Severity::Medium);
        if crosses {
            severity = crate::policy::Severity::ALL
                .get(severity as usize + 1)
                .copied()
                .unwrap_or(crate::policy::Severity::Critical);
        }
        // Probing the My Number zone from outside it is always critical.
        let into_mynumber = dst_zones.keys().any(|d| top(d) == MY_NUMBER)
            && src_zone.as_deref().is_none_or(|sz| top(sz) != MY_NUMBER);
        if into_mynumber {
            severity = crate::policy::Severity::Critical;
        }
        let mut types = Vec::new();
        if is_vertical {
            types.push("vertical");
        }
        if is_horizontal {
            types.push("horizontal");
        }
        if is_sweep {
            types.push("sweep");
        }
        // One port on many hosts and nothing else is a TCP/UDP ping sweep
        // (nmap -PS/-PU) as much as a horizontal scan: call it a sweep.
        let tcp_sweep = is_horizontal && !is_vertical && ports.len() == 1;
        if tcp_sweep {
            types.push("tcp_sweep");
        }
        let kind = if (is_vertical || is_horizontal) && !tcp_sweep {
            "port_scan"
        } else {
            "host_sweep"
        };
        let n = c.sample_size;
        let sample_hosts: Vec<IpAddr> = hosts.iter().take(n).map(|h| to_ip(h, k.v6)).collect();
        let sample_ports: Vec<u16> = ports.iter().take(n).copied().collect();
        // A single destination (or port) only when exactly one host (port)
        // crossed the threshold; several are in the samples.
        let scanned_hosts = per_host
            .values()
            .filter(|p| p.len() as u64 >= u64::from(c.min_ports_per_host))
            .count();
        let scanned_ports = per_port
            .values()
            .filter(|h| h.len() as u64 >= u64::from(c.min_hosts_per_port))
            .count();
        let (dst_ip, dst_port, proto) = if is_vertical {
            let h = vertical.map(|(_, h)| h).unwrap_or_default();
            let p = per_host.get(&h).and_then(|p| p.iter().next()).map(|p| p.0);
            ((scanned_hosts == 1).then(|| to_ip(&h, k.v6)), None, p)
        } else if is_horizontal {
            let (p, port) = horizontal.map(|(_, p)| p).unwrap_or_default();
            (None, (scanned_ports == 1).then_some(port), Some(p))
        } else {
            (None, None, protos.iter().next().copied())
        };
        let dst_zone = dst_zones
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(z, _)| z.clone());
        let reason = match kind {
            "port_scan" if is_vertical => format!(
                "{src_ip} probed {} ports on {} ({} failed) in {:.1} s",
                per_host
                    .get(&vertical.map(|(_, h)| h).unwrap_or_default())
                    .map_or(0, |p| p.len()),
                dst_ip.map(|i| i.to_string()).unwrap_or_default(),
                vertical.map_or(0, |(n, _)| n),
                (w.last_ns - w.first_ns) as f64 / 1e9
            ),
            "port_scan" => format!(
                "{src_ip} probed port {} on {} hosts that refused or did not answer, in {:.1} s",
                dst_port.unwrap_or(0),
                horizontal.map_or(0, |(n, _)| n),
                (w.last_ns - w.first_ns) as f64 / 1e9
            ),
            _ => format!(
                "{src_ip} swept {} hosts ({} never answered) in {:.1} s",
                sweep_hosts.len(),
                sweep_failed.len(),
                (w.last_ns - w.first_ns) as f64 / 1e9
            ),
        };
        let rule = format!("detect.port_scan.{}", types.join("+"));
        let evidence = ScanEvidence {
            answered,
            attempts: w.total,
            dst_zones,
            not_tracked: w.overflow,
            ports: ports.len() as u64,
            refused,
            sample_ports,
            sample_targets: sample_hosts,
            scan_types: types,
            sweep_hosts: sweep_hosts.len() as u64,
            sweep_unanswered: sweep_failed.len() as u64,
            targets: hosts.len() as u64,
            unanswered,
            window_secs: c.window_secs,
        };
        Some(Alert {
            timestamp: w.first_ns,
            kind,
            severity,
            src_ip: Some(src_ip),
            dst_ip,
            dst_port,
            proto: proto.map(|p| {
                if p == 0 {
                    Protocol::Arp
                } else {
                    Protocol::Ip(p)
                }
            }),
            vlan: w.vlan.into_iter().collect(),
            src_zone,
            dst_zone,
            rule,
            reason,
            count: w.total,
            first_seen: w.first_ns,
            last_seen: w.last_ns,
            evidence: Some(Evidence::Scan(evidence)),
            ..Alert::default()
        })
    }
}

/// Count attempt `t` of window `w` as failed (once; `refused`: it was
/// refused, marked here so the attempt is looked up once); whether that makes
/// the window, with no alert yet, cross a threshold. `None`: `t` is not in `w`.
fn failed_in(w: &mut Window, t: Target, c: &ScanConfig, refused: bool) -> Option<bool> {
    let a = w.attempts.get_mut(&t)?;
    if refused {
        a.refused = true;
    }
    if a.counted || (a.answered && !a.refused) {
        return Some(false);
    }
    a.counted = true;
    Some(match a.probe {
        Probe::Tcp | Probe::Udp => {
            let f = w.fails.get_or_insert_with(Box::default);
            let p = f.failed_ports.entry(t.dst).or_default();
            *p += 1;
            let p = *p;
            let h = f.failed_hosts.entry((t.proto, t.port)).or_default();
            *h += 1;
            w.early.is_none() && (p >= c.min_ports_per_host || *h >= c.min_hosts_per_port)
        }
        Probe::Ping => {
            w.fails().sweep_failed.insert(t.dst);
            sweep_crossed(w, c)
        }
    })
}

/// Append an answer deadline; its sequence number (`head`: that of the front).
fn push_deadline(
    q: &mut std::collections::VecDeque<Deadline>,
    head: u32,
    due: u64,
    target: Target,
) -> u32 {
    let seq = head.wrapping_add(q.len() as u32);
    q.push_back(Deadline {
        due,
        target,
        live: true,
    });
    seq
}

/// The deadline with sequence number `seq`, if still queued.
fn deadline_at(
    q: &mut std::collections::VecDeque<Deadline>,
    head: u32,
    seq: u32,
) -> Option<&mut Deadline> {
    if seq == NO_DEADLINE {
        return None;
    }
    q.get_mut(seq.wrapping_sub(head) as usize)
}

/// An answered attempt's deadline changes nothing when it expires:
/// [`failed_in`] counts an answered attempt only when it is also refused,
/// and a refusal in the current window counts it at once. Mark it so the
/// expiry skips the look-up.
fn retire(q: &mut std::collections::VecDeque<Deadline>, head: u32, seq: u32) {
    if let Some(d) = deadline_at(q, head, seq) {
        d.live = false;
    }
}

/// Mark `a` answered and retire its deadline (in `q`, front `head`).
fn answered(a: &mut Attempt, q: &mut std::collections::VecDeque<Deadline>, head: u32) {
    a.answered = true;
    if !a.refused {
        retire(q, head, a.deadline);
    }
}

/// A refusal in the next window is counted at its deadline: undo [`retire`].
fn revive(q: &mut std::collections::VecDeque<Deadline>, head: u32, seq: u32) {
    if let Some(d) = deadline_at(q, head, seq) {
        d.live = true;
    }
}

/// Whether window `w` may make an alert when judged: a bound from counts
/// alone, so the detailed pass of `alert_of` (sorted maps of every attempt)
/// runs only for windows that can cross a threshold. Attempts are distinct
/// targets, so a host's failed ports and a port's failed hosts are counts of
/// failed attempts; a sweep needs at least `min_sweep_hosts` ping attempts of
/// which `min_sweep_failed` unanswered.
fn may_alert(w: &Window, c: &ScanConfig) -> bool {
    let (mut failed_tu, mut pings, mut pings_unanswered) = (0u64, 0u64, 0u64);
    for a in w.attempts.values() {
        match a.probe {
            Probe::Tcp | Probe::Udp => failed_tu += u64::from(a.refused || !a.answered),
            Probe::Ping => {
                pings += 1;
                pings_unanswered += u64::from(!a.answered);
            }
        }
    }
    let sweep = pings >= u64::from(c.min_sweep_hosts) && pings_unanswered >= u64::from(c.min_sweep_failed);
    let ports_or_hosts = u64::from(c.min_ports_per_host.min(c.min_hosts_per_port));
    if sweep {
        return true;
    }
    if failed_tu < ports_or_hosts {
        return false;
    }
    // Enough failures in all: does one host or one port hold enough of them?
    let mut per_host: HashMap<Addr, u32> = HashMap::default();
    let mut per_port: HashMap<(u8, u16), u32> = HashMap::default();
    for (t, a) in &w.attempts {
        if matches!(a.probe, Probe::Tcp | Probe::Udp) && (a.refused || !a.answered) {
            let h = per_host.entry(t.dst).or_default();
            *h += 1;
            let p = per_port.entry((t.proto, t.port)).or_default();
            *p += 1;
            if *h >= c.min_ports_per_host || *p >= c.min_hosts_per_port {
                return true;
            }
        }
    }
    false
}

/// Whether window `w`, with no alert yet, is a sweep now.
fn sweep_crossed(w: &Window, c: &ScanConfig) -> bool {
    w.early.is_none()
        && {
            let (probed, failed) = w.fails.as_ref().map_or((0, 0), |f| {
                (f.sweep_probed.len() as u64, f.sweep_failed.len() as u64)
            });
            probed >= u64::from(c.min_sweep_hosts) && failed >= u64::from(c.min_sweep_failed)
        }
}

/// What a new flow's first packet probes, if it is an attempt.
fn probe_of(key: &FlowKey, tcp: u8, from_initiator: bool) -> Option<Probe> {
    if !from_initiator {
        return None;
    }
    match key.proto {
        // Both ports 0: a non-first fragment's flow (no transport header).
        proto::UDP if key.sport == 0 && key.dport == 0 => None,
        proto::TCP if tcp & tcp_flags::SYN != 0 && tcp & tcp_flags::ACK == 0 => Some(Probe::Tcp),
        proto::TCP
            if tcp & tcp_flags::ACK != 0
                && tcp & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) == 0 =>
        {
            Some(Probe::Ping)
        }
        // From a service port to a high port: a reply or a reflection (DNS,
        // NTP amplification), not a probe.
        proto::UDP if key.sport < 1024 && key.dport >= 1024 => None,
        proto::UDP => Some(Probe::Udp),
        // Echo request, as port equivalents: ICMP type 8, ICMPv6 128.
        proto::ICMP if key.sport == 8 => Some(Probe::Ping),
        proto::ICMPV6 if key.sport == 128 => Some(Probe::Ping),
        _ => None,
    }
}

fn target(key: &FlowKey) -> Target {
    Target {
        dst: key.dst,
        proto: key.proto,
        port: if matches!(key.proto, proto::ICMP | proto::ICMPV6) {
            0
        } else {
            key.dport
        },
    }
}

use crate::packet::inner_vlan as vlan_of;

impl Detector for ScanDetector {
    fn name(&self) -> &'static str {
        "port_scan"
    }

    fn observe(&mut self, o: &Obs, cx: &Ctx, out: &mut Emit) {
        self.close_due(o.ts_ns(), cx, out);
        match o {
            Obs::Start(s) if !s.quote_keyed => {
                let Some(p) = probe_of(&s.key, s.tcp_flags, s.mac_is_initiator) else {
                    return;
                };
                self.stats.observed += 1;
                let src = SrcKey {
                    src: s.key.src,
                    v6: s.key.v6,
                };
                if !s.key.v6 {
                    self.remember_dst(s.key.dst, s.ts_ns);
                }
                let a = Attempted {
                    ts: s.ts_ns,
                    src,
                    target: target(&s.key),
                    probe: p,
                    vlan: vlan_of(s.key.vlan),
                };
                self.attempt(a, cx, out);
            }
            Obs::Answered { key, ts_ns } => {
                self.outcome(
                    SrcKey {
                        src: key.src,
                        v6: key.v6,
                    },
                    target(key),
                    false,
                    *ts_ns,
                    cx,
                    out,
                );
            }
            Obs::Refused { key, how, ts_ns } => {
                let refused = match how {
                    Refusal::Rst | Refusal::IcmpError => true,
                };
                self.outcome(
                    SrcKey {
                        src: key.src,
                        v6: key.v6,
                    },
                    target(key),
                    refused,
                    *ts_ns,
                    cx,
                    out,
                );
            }
            Obs::Arp(a) => self.arp(a, cx, out),
            _ => {}
        }
    }

    fn advance(&mut self, now_ns: u64, cx: &Ctx, out: &mut Emit) {
        self.close_due(now_ns, cx, out);
    }

    fn stats(&self) -> DetectorStats {
        self.stats.clone()
    }
}

impl ScanDetector {
    fn remember_dst(&mut self, dst: Addr, ts: u64) {
        if self.recent_dst.len() >= MAX_RECENT_DST {
            self.recent_dst
                .retain(|_, t| ts.saturating_sub(*t) < FORWARD_ARP_NS);
            if self.recent_dst.len() >= MAX_RECENT_DST {
                self.stats.state_evictions += self.recent_dst.len() as u64;
                self.recent_dst.clear();
            }
        }
        self.recent_dst.insert(dst, ts);
    }

    fn arp(&mut self, a: &ArpObs, cx: &Ctx, out: &mut Emit) {
        let t = |dst: Addr| Target {
            dst,
            proto: 0,
            port: 0,
        };
        let forwarding = self
            .recent_dst
            .get(&a.target)
            .is_some_and(|&t| a.ts_ns.saturating_sub(t) < FORWARD_ARP_NS);
        match a.op {
            1 if a.sender != a.target && !forwarding => {
                self.stats.observed += 1;
                let src = SrcKey {
                    src: a.sender,
                    v6: false,
                };
                let at = Attempted {
                    ts: a.ts_ns,
                    src,
                    target: t(a.target),
                    probe: Probe::Ping,
                    vlan: vlan_of(a.vlan),
                };
                self.attempt(at, cx, out);
            }
            // A reply answers the request of its target.
            2 => self.outcome(
                SrcKey {
                    src: a.target,
                    v6: false,
                },
                t(a.sender),
                false,
                a.ts_ns,
                cx,
                out,
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;
    use proptest::prelude::*;

    /// The rules `alert_of` applies, written plainly: what `may_alert` bounds.
    fn rules_hold(w: &Window, c: &ScanConfig) -> bool {
        let mut per_host: BTreeMap<Addr, BTreeSet<(u8, u16)>> = BTreeMap::new();
        let mut per_port: BTreeMap<(u8, u16), BTreeSet<Addr>> = BTreeMap::new();
        let (mut sweep_hosts, mut sweep_failed) = (BTreeSet::new(), BTreeSet::new());
        for (t, a) in &w.attempts {
            match a.probe {
                Probe::Ping => {
                    sweep_hosts.insert(t.dst);
                    if !a.answered {
                        sweep_failed.insert(t.dst);
                    }
                }
                Probe::Tcp | Probe::Udp if a.refused || !a.answered => {
                    per_host.entry(t.dst).or_default().insert((t.proto, t.port));
                    per_port.entry((t.proto, t.port)).or_default().insert(t.dst);
                }
                _ => {}
            }
        }
        per_host.values().any(|p| p.len() as u64 >= u64::from(c.min_ports_per_host))
            || per_port.values().any(|h| h.len() as u64 >= u64::from(c.min_hosts_per_port))
            || (sweep_hosts.len() as u64 >= u64::from(c.min_sweep_hosts)
                && sweep_failed.len() as u64 >= u64::from(c.min_sweep_failed))
    }

    proptest! {
        /// `may_alert` is false only when no rule can hold: judging skips
        /// the detailed pass only for windows that make no alert.
        #[test]
        fn may_alert_bounds_the_rules(
            attempts in proptest::collection::vec(
                (0u8..6, 0u8..3, 0u16..6, 0u8..3, any::<bool>(), any::<bool>()),
                0..80,
            ),
            thresholds in (1u32..8, 1u32..8, 1u32..8, 1u32..8),
        ) {
            let c = ScanConfig {
                min_ports_per_host: thresholds.0,
                min_hosts_per_port: thresholds.1,
                min_sweep_hosts: thresholds.2,
                min_sweep_failed: thresholds.3,
                ..ScanConfig::default()
            };
            let mut w = Window::default();
            for (host, proto, port, probe, answered, refused) in attempts {
                let mut dst = [0u8; 16];
                dst[15] = host;
                let probe = match probe {
                    0 => Probe::Tcp,
                    1 => Probe::Udp,
                    _ => Probe::Ping,
                };
                w.attempts.insert(
                    Target { dst, proto, port },
                    Attempt { probe, answered, refused, counted: false, deadline: NO_DEADLINE },
                );
            }
            prop_assert!(may_alert(&w, &c) || !rules_hold(&w, &c));
        }
    }
}
