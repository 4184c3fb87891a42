//! Floor L3 (`detect`). Password guessing against authentication services (`brute_force`).
//!
//! Counts, per (initiator, service port), the TCP *connections* it opens to
//! an authentication service (SSH 22, RDP 3389, SMB 445, ...: `ports`) in a
//! window of packet time anchored at its first connection, as the scan
//! detector does. Connections, not passwords: a guessing tool such as hydra
//! opens several connections in parallel and sshd lets each carry a few
//! password attempts, none of which is visible in encrypted traffic; the
//! connection pattern is.
//!
//! Each connection ends up as one of:
//!
//! - **failed**: refused (RST before the handshake, ICMP error), reset or
//!   closed before the handshake completed, or never answered;
//! - **short**: established, then closed or reset within
//!   `max_connection_secs` of its first packet, or with at most
//!   `short_max_bytes` (frame bytes, both directions) whenever it closed;
//! - **long**: established and neither short nor closed when the window is
//!   judged: a session that worked. Long connections never count.
//!
//! Only targets whose service *talked* in the window count: at least one
//! established connection on which both sides sent data (PSH). A brute force
//! needs a conversation with the service; a SYN or connect scan of port 22
//! across a subnet (port_scan's job) or a client retrying a dead server has
//! none. Once a target has talked, its later refusals and silences (a
//! fail2ban block, MaxStartups) count as failed attempts.
//!
//! The window is judged once, `max(answer_wait_secs, max_connection_secs)`
//! after it ends (so every connection started in it is either closed or
//! known to be long): one alert when the counted (failed + short) connections
//! reach `min_attempts`. Spread over ≥ `min_spray_targets` hosts with at most
//! `spray_max_attempts_per_target` each on average, it is password spraying:
//! `evidence.spraying = true`, rule `detect.brute_force.spray`.
//!
//! **UDP** (Kerberos 88: `udp_ports`). Password sprayers such as kerbrute
//! send one AS-REQ per guess, each from a new source port: a new UDP flow.
//! Every UDP flow an initiator starts to a watched UDP port is an attempt,
//! counted per (initiator, port, UDP) apart from TCP: **failed** when refused
//! by an ICMP error or unanswered after `answer_wait_secs`, otherwise
//! **short** (the KDC answered: one request/response exchange, which is what
//! a wrong password gets, `KRB-ERROR`). A target has *talked* once it
//! answered one. A normal Windows logon makes several Kerberos requests
//! itself, so UDP has its own, higher threshold `min_udp_attempts`.
//!
//! State is bounded: `max_keys` (initiator, port, protocol) keys (beyond it the one due
//! soonest is judged early, counted in `state_evictions`),
//! `max_targets_per_key` targets and `max_pending_per_key` open connections
//! per window (beyond them connections are only counted, `not_tracked`).

use super::obs::Obs;
use super::window::{WindowState, Windows};
use super::{Ctx, Detector, DetectorStats, Emit};
use crate::alert::evidence::{BruteEvidence, Evidence};
use crate::alert::Alert;
use crate::flow::FlowClose;
use crate::model::proto::Protocol;
use crate::model::severity::de_severity;
use crate::model::Cidr;
use crate::packet::{proto, tcp_flags, to_ip, Addr, FlowKey};
use crate::policy::Severity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// `[detect.brute_force]` in a rules file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BruteConfig {
    pub enabled: bool,
    /// TCP ports of the authentication services watched.
    pub ports: Vec<u16>,
    /// UDP ports of the authentication services watched (Kerberos 88).
    pub udp_ports: Vec<u16>,
    /// Window per (initiator, port), from its first connection.
    pub window_secs: u64,
    /// Counted (failed + short) connections that make an alert.
    pub min_attempts: u32,
    /// Counted (failed + answered) UDP requests that make an alert.
    pub min_udp_attempts: u32,
    /// An established connection closed within this long is short.
    pub max_connection_secs: u64,
    /// An established connection with at most this many frame bytes (both
    /// directions) is short whatever its duration.
    pub short_max_bytes: u64,
    /// A connection without any answer after this long has failed.
    pub answer_wait_secs: u64,
    /// Distinct targets that make a brute force password spraying...
    pub min_spray_targets: u32,
    /// ...when the counted connections per target are at most this on average.
    pub spray_max_attempts_per_target: u32,
    /// `"info"` .. `"critical"`; raised one level (to at most critical) when
    /// the targets are in another top-level zone than the initiator.
    #[serde(deserialize_with = "de_severity")]
    pub severity: String,
    /// Initiators never judged (jump hosts, monitoring): CIDRs or addresses.
    pub ignore_sources: Vec<Cidr>,
    pub max_keys: usize,
    pub max_targets_per_key: usize,
    pub max_pending_per_key: usize,
    /// Addresses listed in an alert's samples.
    pub sample_size: usize,
}

impl crate::detect::Spec for BruteConfig {
    /// Flow starts and their outcomes: answered, refused, and TCP closes on
    /// the service ports (how a login attempt ended).
    fn needs(&self) -> crate::detect::Needs {
        crate::detect::Needs {
            starts: true,
            answered: true,
            refused: true,
            closes: Some(crate::detect::PortSet::of(&self.ports)),
            ..crate::detect::Needs::default()
        }
    }
}

/// The authentication services watched by default.
pub const DEFAULT_PORTS: [u16; 12] = [21, 22, 23, 88, 389, 445, 636, 3389, 5900, 5985, 5986, 139];

/// The UDP authentication services watched by default: Kerberos.
pub const DEFAULT_UDP_PORTS: [u16; 1] = [88];

impl Default for BruteConfig {
    fn default() -> Self {
        BruteConfig {
            enabled: true,
            ports: DEFAULT_PORTS.to_vec(),
            udp_ports: DEFAULT_UDP_PORTS.to_vec(),
            window_secs: 300,
            min_attempts: 8,
            min_udp_attempts: 40,
            max_connection_secs: 30,
            short_max_bytes: 4096,
            answer_wait_secs: 3,
            min_spray_targets: 5,
            spray_max_attempts_per_target: 3,
            severity: "high".into(),
            ignore_sources: Vec::new(),
            max_keys: 65_536,
            max_targets_per_key: 4096,
            max_pending_per_key: 4096,
            sample_size: 10,
        }
    }
}

use crate::model::services::service_name;

/// (initiator, service port, IP protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    src: Addr,
    v6: bool,
    port: u16,
    proto: u8,
}

/// Outcomes on one target.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    connections: u64,
    refused: u64,
    unanswered: u64,
    /// Closed or reset before the handshake completed (not refused).
    not_established: u64,
    short: u64,
    long: u64,
    /// Established connections on which both sides sent data.
    talked: u64,
}

impl Tally {
    fn failed(&self) -> u64 {
        self.refused + self.unanswered + self.not_established
    }
    fn counted(&self) -> u64 {
        self.failed() + self.short
    }
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    answered: bool,
}

#[derive(Default)]
struct Window {
    first_ns: u64,
    last_ns: u64,
    vlan: Option<u16>,
    connections: u64,
    not_tracked: u64,
    /// Open connections by (target, initiator port).
    pending: BTreeMap<(Addr, u16), Pending>,
    targets: BTreeMap<Addr, Tally>,
    /// The group of the alert written when the counted connections reached
    /// the threshold; the window's judgement then writes its update line.
    early: Option<u64>,
}

impl WindowState for Window {
    fn events(&self) -> u64 {
        self.connections
    }
    fn first_ns(&self) -> u64 {
        self.first_ns
    }
}

/// The brute-force / password-spraying detector.
pub struct BruteDetector {
    cfg: BruteConfig,
    /// Bit per watched TCP port.
    ports: Vec<u64>,
    /// Bit per watched UDP port.
    udp_ports: Vec<u64>,
    /// Per (initiator, service): its window, judged at its end + the wait.
    keys: Windows<Key, Window>,
    stats: DetectorStats,
    /// Alert groups given out (early alerts).
    groups: u64,
}

const NS: u64 = 1_000_000_000;

use crate::packet::inner_vlan as vlan_of;

fn top(z: &str) -> &str {
    z.split('.').next().unwrap_or(z)
}

impl BruteDetector {
    pub fn new(cfg: BruteConfig) -> BruteDetector {
        let bits = |list: &[u16]| {
            let mut set = vec![0u64; 1024];
            for &p in list {
                if let Some(w) = set.get_mut(usize::from(p) / 64) {
                    *w |= 1 << (p % 64);
                }
            }
            set
        };
        let keys = Windows::new(
            cfg.window_secs.saturating_mul(NS),
            cfg.answer_wait_secs
                .max(cfg.max_connection_secs)
                .saturating_mul(NS),
        );
        BruteDetector {
            ports: bits(&cfg.ports),
            udp_ports: bits(&cfg.udp_ports),
            cfg,
            keys,
            stats: DetectorStats::default(),
            groups: 0,
        }
    }

    /// Whether `port` of IP protocol `p` (TCP or UDP) is watched.
    fn watched(&self, p: u8, port: u16) -> bool {
        let set = match p {
            proto::TCP => &self.ports,
            proto::UDP => &self.udp_ports,
            _ => return false,
        };
        set.get(usize::from(port) / 64)
            .is_some_and(|w| w & (1 << (port % 64)) != 0)
    }

    fn start(&mut self, key: &FlowKey, ts: u64, cx: &Ctx, out: &mut Emit) {
        let k = Key {
            src: key.src,
            v6: key.v6,
            port: key.dport,
            proto: key.proto,
        };
        let ip = to_ip(&k.src, k.v6);
        if self.cfg.ignore_sources.iter().any(|c| c.0.contains(&ip)) {
            return;
        }
        self.stats.observed += 1;
        if !self.keys.contains(&k) && self.keys.len() >= self.cfg.max_keys.max(1) {
            // Judge the key due soonest now to make room.
            if let Some((old, d)) = self.keys.soonest() {
                self.stats.state_evictions += 1;
                self.judge(old, d.min(ts), cx, out);
                self.keys.remove(&old);
            }
        }
        let (max_t, max_p) = (self.cfg.max_targets_per_key, self.cfg.max_pending_per_key);
        let w = self.keys.window_for(k, ts);
        if w.connections == 0 {
            w.first_ns = ts;
            w.vlan = vlan_of(key.vlan);
        }
        w.connections += 1;
        w.last_ns = w.last_ns.max(ts);
        let new_target = !w.targets.contains_key(&key.dst);
        if (new_target && w.targets.len() >= max_t) || w.pending.len() >= max_p {
            w.not_tracked += 1;
            return;
        }
        w.targets.entry(key.dst).or_default().connections += 1;
        w.pending
            .insert((key.dst, key.sport), Pending { answered: false });
    }

    /// The pending connection `key` of the key's windows, removed if `take`.
    fn find(&mut self, key: &FlowKey) -> Option<(&mut Window, (Addr, u16))> {
        if !self.watched(key.proto, key.dport) {
            return None;
        }
        let s = self.keys.get_mut(&Key {
            src: key.src,
            v6: key.v6,
            port: key.dport,
            proto: key.proto,
        })?;
        let c = (key.dst, key.sport);
        // The newer window first: a reused source port belongs to it.
        if let Some(next) = s.next.as_deref_mut().filter(|n| n.pending.contains_key(&c)) {
            Some((next, c))
        } else if s.cur.pending.contains_key(&c) {
            Some((&mut s.cur, c))
        } else {
            None
        }
    }

    fn answered(&mut self, key: &FlowKey) {
        let udp = key.proto == proto::UDP;
        if let Some((w, c)) = self.find(key) {
            if udp {
                // One request, one answer: done, and the service talked.
                w.pending.remove(&c);
                let t = w.targets.entry(c.0).or_default();
                t.short += 1;
                t.talked += 1;
            } else if let Some(p) = w.pending.get_mut(&c) {
                p.answered = true;
            }
        }
    }

    fn refused(&mut self, key: &FlowKey) {
        if let Some((w, c)) = self.find(key) {
            w.pending.remove(&c);
            w.targets.entry(c.0).or_default().refused += 1;
        }
    }

    fn closed(&mut self, cl: &FlowClose) {
        let max_ns = self.cfg.max_connection_secs.saturating_mul(NS);
        let few = self.cfg.short_max_bytes;
        if cl.key.proto != proto::TCP {
            return;
        }
        if let Some((w, c)) = self.find(&cl.key) {
            w.pending.remove(&c);
            let t = w.targets.entry(c.0).or_default();
            if !cl.established {
                t.not_established += 1;
                return;
            }
            let both = tcp_flags::PSH;
            if cl.flags_orig & both != 0 && cl.flags_resp & both != 0 {
                t.talked += 1;
            }
            let secs_ok = cl.ts_ns.saturating_sub(cl.first_ns) <= max_ns;
            let bytes_ok = cl.orig_bytes.saturating_add(cl.resp_bytes) <= few;
            if secs_ok || bytes_ok {
                t.short += 1;
            } else {
                t.long += 1;
            }
        }
    }

    /// Judge every key due at or before `now`; connections made while a
    /// window waited start the key's next one.
    fn close_due(&mut self, now: u64, cx: &Ctx, out: &mut Emit) {
        while let Some((k, d)) = self.keys.next_due(now) {
            self.judge(k, d, cx, out);
            self.keys.roll(k, d);
        }
    }

    /// After an outcome of `key` at `at`: if the current window's counted
    /// connections (to targets that talked) reached the threshold, write the
    /// alert now; the window's judgement updates it.
    fn check_early(&mut self, key: &FlowKey, at: u64, cx: &Ctx, out: &mut Emit) {
        if !self.watched(key.proto, key.dport) {
            return;
        }
        let k = Key {
            src: key.src,
            v6: key.v6,
            port: key.dport,
            proto: key.proto,
        };
        let Some(s) = self.keys.get(&k) else {
            return;
        };
        let w = &s.cur;
        if w.early.is_some() || w.connections == 0 {
            return;
        }
        let attempts: u64 = w
            .targets
            .values()
            .filter(|t| t.talked > 0)
            .map(Tally::counted)
            .sum();
        let min = if k.proto == proto::UDP {
            self.cfg.min_udp_attempts
        } else {
            self.cfg.min_attempts
        };
        if attempts < u64::from(min.max(1)) {
            return;
        }
        let open = w.pending.values().filter(|p| p.answered).count() as u64;
        self.groups += 1;
        let g = self.groups;
        if let Some(s) = self.keys.get_mut(&k) {
            s.cur.early = Some(g);
        }
        if let Some(mut a) = self.alert_of(k, open, cx) {
            a.group = Some(g);
            self.stats.alerts += 1;
            out.push(at, a);
        }
    }

    /// Judge the current window of `k` at time `at`: its alert, or the
    /// update of the alert written when it reached the threshold.
    fn judge(&mut self, k: Key, at: u64, cx: &Ctx, out: &mut Emit) {
        let Some(s) = self.keys.get_mut(&k) else {
            return;
        };
        let w = &mut s.cur;
        if w.connections == 0 {
            return;
        }
        // What is still open: unanswered has failed, answered is a session
        // that has lasted (the judgement is at least max_connection_secs
        // after the window's end).
        let mut open = 0u64;
        for ((dst, _), p) in std::mem::take(&mut w.pending) {
            let t = w.targets.entry(dst).or_default();
            if p.answered {
                t.long += 1;
                open += 1;
            } else {
                t.unanswered += 1;
            }
        }
        let early = s.cur.early;
        let judged = self.alert_of(k, open, cx);
        out.judged(at, judged, early, &mut self.stats.alerts);
    }

    /// The alert the current window of `k` makes as it stands (`open`
    /// sessions still running), if its counted connections reach the threshold.
    fn alert_of(&self, k: Key, open: u64, cx: &Ctx) -> Option<Alert> {
        let s = self.keys.get(&k)?;
        let w = &s.cur;
        let mut sum = Tally::default();
        let mut silent = 0u64; // connections to targets that never talked
        let mut counted: BTreeMap<Addr, u64> = BTreeMap::new();
        for (dst, t) in &w.targets {
            if t.talked == 0 {
                silent += t.connections;
                continue;
            }
            sum.connections += t.connections;
            sum.refused += t.refused;
            sum.unanswered += t.unanswered;
            sum.not_established += t.not_established;
            sum.short += t.short;
            sum.long += t.long;
            sum.talked += t.talked;
            if t.counted() > 0 {
                counted.insert(*dst, t.counted());
            }
        }
        let c = &self.cfg;
        let udp = k.proto == proto::UDP;
        let attempts = sum.counted();
        let min = if udp {
            c.min_udp_attempts
        } else {
            c.min_attempts
        };
        if attempts < u64::from(min.max(1)) {
            return None;
        }
        let targets = counted.len() as u64;
        let max_per_target = counted.values().copied().max().unwrap_or(0);
        let spraying = targets >= u64::from(c.min_spray_targets.max(1))
            && attempts <= u64::from(c.spray_max_attempts_per_target).saturating_mul(targets);
        let src_ip = to_ip(&k.src, k.v6);
        let src_zone = cx.zone(src_ip, w.vlan);
        let mut dst_zones: BTreeMap<String, u64> = BTreeMap::new();
        for h in counted.keys() {
            if let Some(z) = cx.zone(to_ip(h, k.v6), w.vlan) {
                *dst_zones.entry(z).or_default() += 1;
            }
        }
        let crosses = src_zone
            .as_deref()
            .is_some_and(|sz| dst_zones.keys().any(|d| top(d) != top(sz)));
        let mut severity = Severity::parse(&c.severity).unwrap_or(Severity::High);
        if crosses {
            severity = Severity::ALL
                .get(severity as usize + 1)
                .copied()
                .unwrap_or(Severity::Critical);
        }
        let dst_zone = dst_zones
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(z, _)| z.clone());
        let dst_ip = if targets == 1 {
            counted.keys().next().map(|h| to_ip(h, k.v6))
        } else {
            None
        };
        let label = if udp { "udp" } else { "tcp" };
        let service = service_name(k.port)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{label}/{}", k.port));
        let secs = w.last_ns.saturating_sub(w.first_ns) as f64 / 1e9;
        let failed = sum.failed();
        let on = match dst_ip {
            Some(d) => d.to_string(),
            None => format!("{targets} hosts (at most {max_per_target} each)"),
        };
        let spray = if spraying { "; password spraying" } else { "" };
        let reason = if udp {
            format!(
                "{src_ip} sent {attempts} {service} requests (udp port {}) to {on} in {secs:.1} s: \
                 {failed} failed (refused or unanswered), {} answered{spray}",
                k.port, sum.short
            )
        } else {
            format!(
                "{src_ip} opened {attempts} short or failed {service} connections (port {}) to {on} \
                 in {secs:.1} s: {failed} failed, {} short{spray}",
                k.port, sum.short
            )
        };
        let sample: Vec<IpAddr> = counted
            .keys()
            .take(c.sample_size)
            .map(|h| to_ip(h, k.v6))
            .collect();
        let evidence = BruteEvidence {
            attempts,
            connections: sum.connections,
            connections_to_silent_targets: silent,
            dst_zones,
            failed,
            long: sum.long,
            max_per_target,
            not_established: sum.not_established,
            not_tracked: w.not_tracked,
            open,
            port: k.port,
            refused: sum.refused,
            sample_targets: sample,
            service,
            short: sum.short,
            spraying,
            src_zone: src_zone.clone(),
            talked: sum.talked,
            targets,
            unanswered: sum.unanswered,
            window_secs: c.window_secs,
        };
        Some(Alert {
            timestamp: w.first_ns,
            kind: "brute_force",
            severity,
            src_ip: Some(src_ip),
            dst_ip,
            dst_port: Some(k.port),
            proto: Some(Protocol::Ip(if udp { proto::UDP } else { proto::TCP })),
            vlan: w.vlan.into_iter().collect(),
            src_zone,
            dst_zone,
            rule: if spraying {
                "detect.brute_force.spray".into()
            } else {
                "detect.brute_force".into()
            },
            reason,
            count: attempts,
            first_seen: w.first_ns,
            last_seen: w.last_ns,
            evidence: Some(Evidence::Brute(evidence)),
            ..Alert::default()
        })
    }
}

impl Detector for BruteDetector {
    fn name(&self) -> &'static str {
        "brute_force"
    }

    fn observe(&mut self, o: &Obs, cx: &Ctx, out: &mut Emit) {
        self.close_due(o.ts_ns(), cx, out);
        match o {
            Obs::Start(s)
                if !s.quote_keyed
                    && s.mac_is_initiator
                    && (s.key.proto == proto::UDP
                        || s.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN)
                    && self.watched(s.key.proto, s.key.dport) =>
            {
                self.start(&s.key, s.ts_ns, cx, out);
            }
            Obs::Answered { key, ts_ns } => {
                self.answered(key);
                self.check_early(key, *ts_ns, cx, out);
            }
            Obs::Refused { key, ts_ns, .. } => {
                self.refused(key);
                self.check_early(key, *ts_ns, cx, out);
            }
            Obs::Closed(c) => {
                self.closed(c);
                self.check_early(&c.key, c.ts_ns, cx, out);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::testkit::{self, ev, S, T0};
    use crate::flow::{Refusal, TcpState};
    use crate::policy::Policy;
    const ATT: &str = "192.0.2.130";
    const VIC: &str = "192.0.2.34";

    fn key(src: &str, sport: u16, dst: &str, dport: u16) -> FlowKey {
        testkit::key(proto::TCP, src, sport, dst, dport)
    }

    fn start(ts: u64, k: FlowKey) -> Obs {
        testkit::start(ts, k)
    }

    /// A connection as the flow table reports it: start, answer, close after
    /// `secs` with `bytes` in all; `talk` = both sides sent data.
    fn conn(obs: &mut Vec<Obs>, ts: u64, k: FlowKey, secs: f64, bytes: u64, talk: bool) {
        obs.push(start(ts, k));
        obs.push(Obs::Answered {
            ts_ns: ts + 1000,
            key: k,
        });
        let psh = if talk { tcp_flags::PSH } else { 0 };
        obs.push(Obs::Closed(FlowClose {
            key: k,
            first_ns: ts,
            ts_ns: ts + (secs * 1e9) as u64,
            orig_pkts: 10,
            orig_bytes: bytes / 2,
            resp_pkts: 10,
            resp_bytes: bytes / 2,
            state: TcpState::Closed,
            established: true,
            flags_orig: tcp_flags::SYN | tcp_flags::ACK | tcp_flags::FIN | psh,
            flags_resp: tcp_flags::SYN | tcp_flags::ACK | tcp_flags::FIN | psh,
        }));
    }

    /// Each alert as it finally stands (an early alert's update replaces it).
    fn run_with(cfg: BruteConfig, policy: Option<&Policy>, obs: Vec<Obs>) -> Vec<(u64, Alert)> {
        testkit::finals(testkit::run(&mut BruteDetector::new(cfg), policy, obs))
    }

    fn run(obs: Vec<Obs>) -> Vec<Alert> {
        run_with(BruteConfig::default(), None, obs)
            .into_iter()
            .map(|(_, a)| a)
            .collect()
    }

    /// hydra -t 4: a few parallel connections, each carrying several
    /// passwords and closed by sshd within a second.
    fn hydra(n: u16, src: &str, dst: &str, t0: u64) -> Vec<Obs> {
        let mut obs = Vec::new();
        for i in 0..n {
            let ts = t0 + u64::from(i / 4) * 30 * S + u64::from(i) * 1_000_000;
            conn(&mut obs, ts, key(src, 40000 + i, dst, 22), 0.2, 5000, true);
        }
        obs
    }

    #[test]
    fn hydra_connections_alert_once_at_the_threshold() {
        let a = run(hydra(9, ATT, VIC, T0));
        assert_eq!(a.len(), 1, "{a:#?}");
        let a = &a[0];
        assert_eq!((a.kind, a.severity.as_str()), ("brute_force", "high"));
        assert_eq!(a.rule, "detect.brute_force");
        assert_eq!(a.src_ip.map(|i| i.to_string()).as_deref(), Some(ATT));
        assert_eq!(a.dst_ip.map(|i| i.to_string()).as_deref(), Some(VIC));
        assert_eq!((a.dst_port, a.count), (Some(22), 9));
        assert_eq!(ev(a, "short"), 9);
        assert_eq!(ev(a, "failed"), 0);
        assert_eq!(ev(a, "targets"), 1);
        assert_eq!(ev(a, "service"), "ssh");
        assert_eq!(ev(a, "spraying"), false);
        assert_eq!(a.first_seen, T0);
        // One below the threshold: nothing.
        assert!(run(hydra(7, ATT, VIC, T0)).is_empty());
    }

    /// Issue #12 point 3: the alert is written at the connection that makes
    /// the counted connections reach `min_attempts` (8 by default: the 8th
    /// hydra connection closes 60.2 s after the first), not when the window
    /// is judged (5.5 min later); the judgement updates it.
    #[test]
    fn hydra_is_written_at_the_threshold_and_updated_at_the_judgement() {
        let min = u64::from(BruteConfig::default().min_attempts);
        let lines = testkit::run(
            &mut BruteDetector::new(BruteConfig::default()),
            None,
            hydra(12, ATT, VIC, T0),
        );
        assert_eq!(lines.len(), 2, "{lines:#?}");
        let ((t0, first), (t1, last)) = (&lines[0], &lines[1]);
        assert_eq!((first.update, first.count), (0, min));
        assert!(*t0 < T0 + 61 * S, "at the threshold: {t0}");
        assert_eq!((last.update, last.count), (1, 12));
        assert!(*t1 >= T0 + 300 * S, "the update waits for the judgement");
        assert!(first.group.is_some() && first.group == last.group);
    }

    #[test]
    fn long_sessions_do_not_count() {
        let mut obs = Vec::new();
        // 12 working sessions: an hour each with 1 MB, or 40 s with 20 kB.
        for i in 0..12u16 {
            let (secs, bytes) = if i % 2 == 0 {
                (3600.0, 1 << 20)
            } else {
                (40.0, 20_000)
            };
            conn(
                &mut obs,
                T0 + u64::from(i) * S,
                key(ATT, 30000 + i, VIC, 22),
                secs,
                bytes,
                true,
            );
        }
        assert!(run(obs.clone()).is_empty());
        // Sessions still open when judged are long too.
        let mut open = Vec::new();
        for i in 0..12u16 {
            let k = key(ATT, 41000 + i, VIC, 3389);
            open.push(start(T0 + u64::from(i) * S, k));
            open.push(Obs::Answered {
                ts_ns: T0 + u64::from(i) * S + 1000,
                key: k,
            });
        }
        assert!(run(open).is_empty());
        // 7 short guesses + the 12 sessions: 7 < 8, nothing; an 8th alerts
        // with the long ones reported but not counted.
        let mut more = obs.clone();
        more.extend(hydra(7, ATT, VIC, T0 + 100 * S));
        assert!(run(more).is_empty());
        let mut more = obs;
        more.extend(hydra(8, ATT, VIC, T0 + 100 * S));
        let a = run(more);
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].count, ev(&a[0], "long")),
            (8, serde_json::json!(12)),
            "{:?}",
            a[0].evidence
        );
    }

    #[test]
    fn a_long_connection_with_few_bytes_is_short() {
        let mut obs = Vec::new();
        for i in 0..8u16 {
            // Held open at the password prompt until the login grace time.
            conn(
                &mut obs,
                T0 + u64::from(i) * S,
                key(ATT, 40000 + i, VIC, 22),
                120.0,
                3000,
                true,
            );
        }
        let a = run(obs);
        assert_eq!(a.len(), 1);
        assert_eq!(ev(&a[0], "short"), 8);
    }

    #[test]
    fn windows_are_anchored_at_the_first_connection() {
        // 5 + 5 connections 6 minutes apart: two windows of 5, nothing.
        let mut obs = hydra(5, ATT, VIC, T0);
        obs.extend(hydra(5, ATT, VIC, T0 + 360 * S));
        assert!(run(obs).is_empty());
        // 9 within 290 s of the first: one alert; 9 more later: a second one.
        let mut obs = Vec::new();
        for i in 0..18u16 {
            let ts = T0 + u64::from(i % 9) * 36 * S + u64::from(i / 9) * 400 * S;
            conn(&mut obs, ts, key(ATT, 40000 + i, VIC, 22), 0.1, 4000, true);
        }
        let a = run(obs);
        assert_eq!(a.len(), 2, "{a:#?}");
        assert_eq!((a[0].count, a[1].count), (9, 9));
        assert_eq!(a[1].first_seen, T0 + 400 * S);
    }

    #[test]
    fn refusals_after_the_service_talked_count_as_failed() {
        // 3 guesses, then fail2ban: 4 refused and 2 unanswered SYNs.
        let mut obs = hydra(3, ATT, VIC, T0);
        for i in 0..6u16 {
            let k = key(ATT, 50000 + i, VIC, 22);
            let ts = T0 + 60 * S + u64::from(i) * S;
            obs.push(start(ts, k));
            if i < 4 {
                obs.push(Obs::Refused {
                    ts_ns: ts + 1000,
                    key: k,
                    how: Refusal::Rst,
                });
            }
        }
        let a = run(obs);
        assert_eq!(a.len(), 1, "{a:#?}");
        let a = &a[0];
        assert_eq!(a.count, 9);
        assert_eq!(
            (
                ev(a, "failed"),
                ev(a, "refused"),
                ev(a, "unanswered"),
                ev(a, "short")
            ),
            (6.into(), 4.into(), 2.into(), 3.into())
        );
    }

    #[test]
    fn a_scan_of_the_port_is_no_brute_force() {
        // SYN scan of port 22 on 60 hosts: refused, unanswered, or answered
        // and reset by the scanner; connect scan: established, no data.
        let mut obs = Vec::new();
        for i in 0..60u16 {
            let dst = format!("198.51.100.{}", i + 1);
            let k = key(ATT, 40000 + i, &dst, 22);
            let ts = T0 + u64::from(i) * 10_000_000;
            match i % 3 {
                0 => obs.push(start(ts, k)),
                1 => {
                    obs.push(start(ts, k));
                    obs.push(Obs::Refused {
                        ts_ns: ts + 1000,
                        key: k,
                        how: Refusal::Rst,
                    });
                }
                _ => conn(&mut obs, ts, k, 0.001, 200, false),
            }
        }
        assert!(run(obs).is_empty());
    }

    #[test]
    fn spraying_over_many_hosts_is_flagged() {
        let mut obs = Vec::new();
        for i in 0..12u16 {
            let dst = format!("198.51.100.{}", i + 1);
            for j in 0..2u16 {
                let ts = T0 + u64::from(i) * S + u64::from(j) * 100_000_000;
                conn(
                    &mut obs,
                    ts,
                    key(ATT, 40000 + i * 2 + j, &dst, 445),
                    0.3,
                    6000,
                    true,
                );
            }
        }
        let a = run(obs);
        assert_eq!(a.len(), 1, "{a:#?}");
        let a = &a[0];
        assert_eq!(a.rule, "detect.brute_force.spray");
        assert_eq!(ev(a, "spraying"), true);
        assert_eq!((a.count, ev(a, "targets")), (24, 12.into()));
        assert_eq!(ev(a, "max_per_target"), 2);
        assert_eq!(ev(a, "service"), "smb");
        assert_eq!(a.dst_ip, None);
        // Samples: the smallest addresses, whatever the order of arrival.
        assert_eq!(ev(a, "sample_targets")[0], "198.51.100.1");
        assert_eq!(ev(a, "sample_targets").as_array().map(Vec::len), Some(10));
    }

    #[test]
    fn output_is_ordered_by_due_time_then_key() {
        // Two attackers starting at the same instant, on two services; a third
        // later. Due times tie for the first three: key order decides.
        let mut obs = hydra(9, "192.0.2.140", VIC, T0);
        obs.extend(hydra(9, ATT, VIC, T0));
        let mut rdp = Vec::new();
        for i in 0..9u16 {
            conn(
                &mut rdp,
                T0 + u64::from(i) * S / 10,
                key(ATT, 45000 + i, VIC, 3389),
                0.5,
                5000,
                true,
            );
        }
        obs.extend(rdp);
        obs.extend(hydra(9, "192.0.2.131", VIC, T0 + 10 * S));
        // Every line: each alert at the connection that reached the threshold
        // (update 0), its judgement's update line at the window's due time.
        let lines = testkit::run(
            &mut BruteDetector::new(BruteConfig::default()),
            None,
            obs.clone(),
        );
        let row = |(t, a): &(u64, Alert)| {
            (
                *t,
                a.src_ip.map(|i| i.to_string()).unwrap_or_default(),
                a.dst_port,
            )
        };
        let got: Vec<(u64, String, Option<u16>)> = lines
            .iter()
            .filter(|(_, a)| a.update == 1)
            .map(row)
            .collect();
        let firsts: Vec<(u64, String, Option<u16>)> = lines
            .iter()
            .filter(|(_, a)| a.update == 0)
            .map(row)
            .collect();
        assert!(firsts.windows(2).all(|w| w[0] <= w[1]), "{firsts:?}");
        assert!(
            firsts.iter().all(|f| f.0 < T0 + 60 * S),
            "early: {firsts:?}"
        );
        let due = T0 + 330 * S;
        assert_eq!(
            got,
            vec![
                (due, ATT.to_string(), Some(22)),
                (due, ATT.to_string(), Some(3389)),
                (due, "192.0.2.140".to_string(), Some(22)),
                (due + 10 * S, "192.0.2.131".to_string(), Some(22)),
            ]
        );
        let a = run_with(BruteConfig::default(), None, obs.clone());
        // The same observations again: the same alerts.
        assert_eq!(run_with(BruteConfig::default(), None, obs), a);
    }

    #[test]
    fn config_ignores_sources_and_rejects_bad_values() {
        let cfg = BruteConfig {
            ignore_sources: vec![Cidr::try_from("192.0.2.128/27".to_string()).expect("cidr")],
            ..BruteConfig::default()
        };
        assert!(run_with(cfg, None, hydra(20, ATT, VIC, T0)).is_empty());
        // Ports not watched: nothing.
        let cfg = BruteConfig {
            ports: vec![3389],
            ..BruteConfig::default()
        };
        assert!(run_with(cfg, None, hydra(20, ATT, VIC, T0)).is_empty());
        let c = crate::detect::config_of(
            "site.toml",
            "[detect.brute_force]\nmin_attempts = 3\nports = [2222]\nignore_sources = [\"192.0.2.1\"]\n",
        )
        .expect("loads");
        assert_eq!(c.brute_force.min_attempts, 3);
        assert_eq!(c.brute_force.ports, vec![2222]);
        for bad in [
            "[detect.brute_force]\nseverity = \"urgent\"\n",
            "[detect.brute_force]\nignore_sources = [\"192.0.2.300\"]\n",
            "[detect.brute_force]\nmin_tries = 3\n",
        ] {
            assert!(crate::detect::config_of("site.toml", bad).is_err(), "{bad}");
        }
    }

    fn ukey(src: &str, sport: u16, dst: &str, dport: u16) -> FlowKey {
        testkit::key(proto::UDP, src, sport, dst, dport)
    }

    fn udp_start(ts: u64, k: FlowKey) -> Obs {
        testkit::start(ts, k)
    }

    #[derive(Clone, Copy)]
    enum Udp {
        Answered,
        Refused,
        Silent,
    }

    /// `n` Kerberos AS-REQs from `src` to `kdc`:88, one every `gap_ms`, each
    /// from a new source port, with the outcome `how(i)`.
    fn asreqs(
        n: u16,
        src: &str,
        kdc: &str,
        t0: u64,
        gap_ms: u64,
        how: impl Fn(u16) -> Udp,
    ) -> Vec<Obs> {
        let mut obs = Vec::new();
        for i in 0..n {
            let k = ukey(src, 50000 + i, kdc, 88);
            let ts = t0 + u64::from(i) * gap_ms * 1_000_000;
            obs.push(udp_start(ts, k));
            match how(i) {
                Udp::Answered => obs.push(Obs::Answered {
                    ts_ns: ts + 2_000_000,
                    key: k,
                }),
                Udp::Refused => obs.push(Obs::Refused {
                    ts_ns: ts + 1_000_000,
                    key: k,
                    how: Refusal::IcmpError,
                }),
                Udp::Silent => {}
            }
        }
        obs
    }

    #[test]
    fn forty_kerberos_as_reqs_over_udp_alert() {
        // kerbrute: every guess gets a KRB-ERROR (preauth failed) back.
        let a = run(asreqs(40, ATT, VIC, T0, 250, |_| Udp::Answered));
        assert_eq!(a.len(), 1, "{a:#?}");
        let a = &a[0];
        assert_eq!((a.kind, a.severity.as_str()), ("brute_force", "high"));
        assert_eq!(a.rule, "detect.brute_force");
        assert_eq!(a.proto.map(|p| p.to_string()).as_deref(), Some("udp"));
        assert_eq!(a.src_ip.map(|i| i.to_string()).as_deref(), Some(ATT));
        assert_eq!(a.dst_ip.map(|i| i.to_string()).as_deref(), Some(VIC));
        assert_eq!((a.dst_port, a.count), (Some(88), 40));
        assert_eq!(ev(a, "service"), "kerberos");
        assert_eq!(ev(a, "short"), 40);
        assert_eq!((ev(a, "failed"), ev(a, "talked")), (0.into(), 40.into()));
        assert_eq!((ev(a, "connections"), ev(a, "long")), (40.into(), 0.into()));
        assert_eq!(a.first_seen, T0);
        assert_eq!(a.last_seen, T0 + 39 * 250_000_000);
        assert!(
            a.reason.contains("40 kerberos requests (udp port 88)"),
            "{}",
            a.reason
        );
        // One below min_udp_attempts: nothing.
        assert!(run(asreqs(39, ATT, VIC, T0, 250, |_| Udp::Answered)).is_empty());
    }

    #[test]
    fn a_logon_sized_kerberos_burst_is_no_brute_force() {
        // A Windows logon: AS-REQ, AS-REQ with preauth, TGS-REQs (host, cifs,
        // ldap ...): 8 requests, all answered. 8 is min_attempts for TCP, and
        // the same 8 over TCP 88 would alert: UDP has its own threshold.
        assert!(run(asreqs(8, ATT, VIC, T0, 100, |_| Udp::Answered)).is_empty());
        // Four such logons within the window (a shared PC): 32, still none.
        let mut obs = Vec::new();
        for l in 0..4u64 {
            let mut one = asreqs(8, ATT, VIC, T0 + l * 60 * S, 100, |_| Udp::Answered);
            for o in &mut one {
                if let Obs::Start(s) = o {
                    s.key.sport = s.key.sport.wrapping_add(l as u16 * 100);
                } else if let Obs::Answered { key, .. } = o {
                    key.sport = key.sport.wrapping_add(l as u16 * 100);
                }
            }
            obs.extend(one);
        }
        assert!(run(obs).is_empty());
        // UDP and TCP 88 are counted apart: 8 UDP + 8 TCP 88 connections
        // alert only for TCP.
        let mut obs = asreqs(8, ATT, VIC, T0, 100, |_| Udp::Answered);
        for i in 0..8u16 {
            conn(
                &mut obs,
                T0 + u64::from(i) * S,
                key(ATT, 40000 + i, VIC, 88),
                0.1,
                3000,
                true,
            );
        }
        let a = run(obs);
        assert_eq!(a.len(), 1, "{a:#?}");
        assert_eq!(
            (a[0].proto.map(|p| p.to_string()).as_deref(), a[0].count),
            (Some("tcp"), 8)
        );
    }

    #[test]
    fn icmp_refused_and_unanswered_kerberos_requests_are_failed() {
        // The KDC answers 10, then its port is closed (ICMP port unreachable)
        // for 30: 40 attempts, 30 failed.
        let a = run(asreqs(40, ATT, VIC, T0, 500, |i| {
            if i < 10 {
                Udp::Answered
            } else {
                Udp::Refused
            }
        }));
        assert_eq!(a.len(), 1, "{a:#?}");
        let a = &a[0];
        assert_eq!(a.count, 40);
        assert_eq!(
            (
                ev(a, "failed"),
                ev(a, "refused"),
                ev(a, "unanswered"),
                ev(a, "short")
            ),
            (30.into(), 30.into(), 0.into(), 10.into())
        );
        // 20 answered, 40 unanswered (the capture's shape).
        let a = run(asreqs(60, ATT, VIC, T0, 500, |i| {
            if i % 3 == 0 {
                Udp::Answered
            } else {
                Udp::Silent
            }
        }));
        assert_eq!(a.len(), 1, "{a:#?}");
        assert_eq!(
            (a[0].count, ev(&a[0], "unanswered"), ev(&a[0], "short")),
            (60, 40.into(), 20.into())
        );
        // A host that never answers is no KDC under attack (a UDP scan or a
        // dead server: port_scan's business): nothing.
        assert!(run(asreqs(60, ATT, VIC, T0, 500, |_| Udp::Refused)).is_empty());
        assert!(run(asreqs(60, ATT, VIC, T0, 500, |_| Udp::Silent)).is_empty());
    }

    #[test]
    fn kerberos_spraying_over_several_kdcs_is_one_alert() {
        // 12 AS-REQs to each of 4 KDCs: below min_udp_attempts on each, 48
        // for the source.
        let mut obs = Vec::new();
        for (n, kdc) in [
            "198.51.100.14",
            "198.51.100.11",
            "198.51.100.13",
            "198.51.100.12",
        ]
        .iter()
        .enumerate()
        {
            let mut one = asreqs(12, ATT, kdc, T0 + n as u64 * 7 * S, 300, |_| Udp::Answered);
            for o in &mut one {
                match o {
                    Obs::Start(s) => s.key.sport += n as u16 * 20,
                    Obs::Answered { key, .. } => key.sport += n as u16 * 20,
                    _ => {}
                }
            }
            obs.extend(one);
        }
        let a = run(obs);
        assert_eq!(a.len(), 1, "{a:#?}");
        let a = &a[0];
        assert_eq!((a.count, ev(a, "targets")), (48, 4.into()));
        assert_eq!(ev(a, "max_per_target"), 12);
        assert_eq!(a.dst_ip, None);
        assert_eq!(a.rule, "detect.brute_force");
        assert_eq!(ev(a, "sample_targets")[0], "198.51.100.11");
        // 3 each on 15 hosts: few per target, the spray variant.
        let mut obs = Vec::new();
        for h in 0..15u16 {
            let dst = format!("198.51.100.{}", h + 20);
            let mut one = asreqs(3, ATT, &dst, T0 + u64::from(h) * S, 100, |_| Udp::Answered);
            for o in &mut one {
                match o {
                    Obs::Start(s) => s.key.sport += h * 3,
                    Obs::Answered { key, .. } => key.sport += h * 3,
                    _ => {}
                }
            }
            obs.extend(one);
        }
        let a = run(obs);
        assert_eq!(a.len(), 1, "{a:#?}");
        assert_eq!(a[0].rule, "detect.brute_force.spray");
        assert_eq!((a[0].count, ev(&a[0], "targets")), (45, 15.into()));
        assert_eq!(ev(&a[0], "spraying"), true);
    }

    #[test]
    fn udp_ports_and_min_udp_attempts_are_configurable() {
        let obs = asreqs(40, ATT, VIC, T0, 250, |_| Udp::Answered);
        let off = BruteConfig {
            udp_ports: Vec::new(),
            ..BruteConfig::default()
        };
        assert!(run_with(off, None, obs.clone()).is_empty());
        // Watching TCP 88 does not watch UDP 88.
        let tcp_only = BruteConfig {
            udp_ports: vec![464],
            ..BruteConfig::default()
        };
        assert!(run_with(tcp_only, None, obs.clone()).is_empty());
        let c = crate::detect::config_of(
            "site.toml",
            "[detect.brute_force]
udp_ports = [88, 464]
min_udp_attempts = 10
",
        )
        .expect("loads");
        let b = &c.brute_force;
        assert_eq!(
            (b.udp_ports.clone(), b.min_udp_attempts),
            (vec![88, 464], 10)
        );
        let a = run_with(
            b.clone(),
            None,
            asreqs(10, ATT, VIC, T0, 250, |_| Udp::Answered),
        );
        assert_eq!(a.len(), 1);
        assert_eq!(BruteConfig::default().udp_ports, vec![88]);
        assert_eq!(BruteConfig::default().min_udp_attempts, 40);
        assert!(crate::detect::config_of(
            "site.toml",
            "[detect.brute_force]
udp_ports = [70000]
"
        )
        .is_err());
    }

    #[test]
    fn zones_raise_the_severity_across_top_level_zones() {
        let text = "[[zone]]\nid = \"inet.term\"\ncidrs = [\"192.0.2.128/27\"]\n\
                    [[zone]]\nid = \"mynumber.srv\"\ncidrs = [\"192.0.2.32/28\"]\n";
        let (p, _) = Policy::from_source("site.toml", text).expect("loads");
        let a = run_with(BruteConfig::default(), Some(&p), hydra(9, ATT, VIC, T0));
        assert_eq!(a.len(), 1);
        let a = &a[0].1;
        assert_eq!(a.severity.as_str(), "critical");
        assert_eq!(a.src_zone.as_deref(), Some("inet.term"));
        assert_eq!(a.dst_zone.as_deref(), Some("mynumber.srv"));
    }
}
