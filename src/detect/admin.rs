//! Floor L3 (`detect`). Management ports that only admin hosts may reach (`admin_access`).
//!
//! A rule is a set of management ports (SSH, RDP, WinRM, Telnet, SNMP, IPMI,
//! ...) and the admin hosts (CIDRs) allowed to reach them. The global rule
//! (`ports`, `admin_sources`) is in force once `admin_sources` is given (an
//! empty list: nobody may); `[[detect.admin_access.zone]]` entries set a rule
//! for a zone and its sub-zones (`"mynumber"` covers `"mynumber.srv"`; the
//! most specific entry wins, and an entry's missing keys come from the global
//! ones). A destination outside every zone entry, or any destination when
//! there are no rules (no zones), gets the global rule.
//!
//! Every flow start from a non-admin initiator to a management port under a
//! rule is an attempt (TCP SYN or a UDP datagram), answered or not: an
//! unanswered SSH SYN from a terminal to a My Number server is already a
//! finding; the evidence says whether the service answered. The alert is
//! written at the group's first attempt; attempts with the same (source,
//! destination, protocol, port) whose start lies within `window_secs` of it
//! fold into the group, and when the window closes (plus `answer_wait_secs`
//! for the last answers) an `update` line with the same `id` gives the final
//! counts and whether the service answered (unless nothing changed).
//! Severity `severity` (high), `critical` when the destination's top-level
//! zone is in `critical_zones`.
//!
//! State is bounded by `max_keys` groups (beyond it the group due soonest is
//! written early, counted in `state_evictions`).

use super::obs::Obs;
use super::{Ctx, Detector, DetectorStats, Emit};
use crate::alert::evidence::{AdminEvidence, Evidence};
use crate::alert::Alert;
use crate::model::proto::Protocol;
use crate::packet::{proto, tcp_flags, to_ip, Addr, FlowKey};
use crate::policy::Severity;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::model::maps::FastMap as HashMap;

use crate::model::severity::de_severity;
use crate::model::Cidr;

/// `[detect.admin_access]` in a rules file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub enabled: bool,
    /// Management ports (TCP and UDP) of the global rule, and of zone entries
    /// that do not list their own.
    pub ports: Vec<u16>,
    /// Admin hosts of the global rule; the global rule is in force only when
    /// this is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_sources: Option<Vec<Cidr>>,
    /// Per-zone rules (`[[detect.admin_access.zone]]`).
    pub zone: Vec<AdminZone>,
    /// Fold window per (source, destination, protocol, port), from its first attempt.
    pub window_secs: u64,
    /// The alert waits this long after the window for the last answers.
    pub answer_wait_secs: u64,
    #[serde(deserialize_with = "de_severity")]
    pub severity: String,
    /// Top-level zone ids whose hosts make an alert critical.
    pub critical_zones: Vec<String>,
    pub max_keys: usize,
}

impl crate::detect::Spec for AdminConfig {
    /// Flow starts to the admin ports and whether the service answered.
    fn needs(&self) -> crate::detect::Needs {
        crate::detect::Needs {
            starts: true,
            answered: true,
            refused: true,
            ..crate::detect::Needs::default()
        }
    }
}

/// One `[[detect.admin_access.zone]]` entry.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminZone {
    /// Zone id; covers its sub-zones.
    pub zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_sources: Option<Vec<Cidr>>,
}

/// Management ports watched by default.
pub const DEFAULT_PORTS: [u16; 8] = [22, 23, 161, 623, 3389, 5985, 5986, 8443];

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            ports: DEFAULT_PORTS.to_vec(),
            admin_sources: None,
            zone: Vec::new(),
            window_secs: 60,
            answer_wait_secs: 3,
            severity: "high".into(),
            critical_zones: vec!["mynumber".into()],
            max_keys: 65_536,
        }
    }
}

/// A rule in force: ports and admin hosts.
struct Rule {
    /// `"global"` or `"zone:ID"`.
    scope: String,
    ports: BTreeSet<u16>,
    admins: Vec<IpNet>,
}

impl Rule {
    fn admits(&self, ip: IpAddr) -> bool {
        self.admins.iter().any(|n| n.contains(&ip))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    src: Addr,
    dst: Addr,
    v6: bool,
    proto: u8,
    port: u16,
}

struct Fold {
    first_ns: u64,
    last_ns: u64,
    attempts: u64,
    /// Flows the responder answered (a refusal by RST is an answer too).
    answered: u64,
    refused: u64,
    vlan: Option<u16>,
    /// Index of the rule that matched (0 = global, i = zone entry i - 1).
    rule: usize,
    dst_zone: Option<String>,
    /// Its alert group (first line written at its first attempt).
    group: u64,
}

struct Slot {
    cur: Fold,
    /// Attempts after the current window's end while it waits.
    next: Option<Fold>,
    due: u64,
}

/// The admin-access detector.
pub struct AdminDetector {
    cfg: AdminConfig,
    /// Index 0: the global rule (if in force); then one per zone entry.
    rules: Vec<Option<Rule>>,
    /// Union of every rule's ports (a quick first test).
    any_port: Vec<u64>,
    slots: HashMap<Key, Slot>,
    due: BTreeSet<(u64, Key)>,
    stats: DetectorStats,
    /// Alert groups given out.
    groups: u64,
}

const NS: u64 = 1_000_000_000;

use crate::packet::inner_vlan as vlan_of;

/// `zone` is `id` or one of its sub-zones.
fn within(zone: &str, id: &str) -> bool {
    zone == id
        || (zone.len() > id.len()
            && zone.starts_with(id)
            && zone.as_bytes().get(id.len()) == Some(&b'.'))
}

fn nets(v: &[Cidr]) -> Vec<IpNet> {
    v.iter().map(|c| c.0).collect()
}

impl AdminDetector {
    pub fn new(cfg: AdminConfig) -> AdminDetector {
        let global = cfg.admin_sources.as_ref().map(|a| Rule {
            scope: "global".into(),
            ports: cfg.ports.iter().copied().collect(),
            admins: nets(a),
        });
        let mut rules = vec![global];
        for z in &cfg.zone {
            rules.push(Some(Rule {
                scope: format!("zone:{}", z.zone),
                ports: z
                    .ports
                    .as_ref()
                    .unwrap_or(&cfg.ports)
                    .iter()
                    .copied()
                    .collect(),
                admins: z
                    .admin_sources
                    .as_deref()
                    .or(cfg.admin_sources.as_deref())
                    .map(nets)
                    .unwrap_or_default(),
            }));
        }
        let mut any_port = vec![0u64; 1024];
        for r in rules.iter().flatten() {
            for &p in &r.ports {
                if let Some(w) = any_port.get_mut(usize::from(p) / 64) {
                    *w |= 1 << (p % 64);
                }
            }
        }
        AdminDetector {
            cfg,
            rules,
            any_port,
            slots: HashMap::default(),
            due: BTreeSet::new(),
            stats: DetectorStats::default(),
            groups: 0,
        }
    }

    fn maybe(&self, port: u16) -> bool {
        self.any_port
            .get(usize::from(port) / 64)
            .is_some_and(|w| w & (1 << (port % 64)) != 0)
    }

    /// The rule for a destination in `zone`: the most specific zone entry,
    /// else the global rule. Returns its index.
    fn rule_for(&self, zone: Option<&str>) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None; // (id length, index)
        if let Some(z) = zone {
            for (i, e) in self.cfg.zone.iter().enumerate() {
                if within(z, &e.zone) && best.is_none_or(|(l, _)| e.zone.len() > l) {
                    best = Some((e.zone.len(), i + 1));
                }
            }
        }
        match best {
            Some((_, i)) => Some(i),
            None => self.rules.first().and_then(Option::as_ref).map(|_| 0),
        }
    }

    fn window_ns(&self) -> u64 {
        self.cfg.window_secs.saturating_mul(NS).max(1)
    }

    fn attempt(&mut self, key: &FlowKey, ts: u64, cx: &Ctx, out: &mut Emit) {
        if !self.maybe(key.dport) {
            return;
        }
        let vlan = vlan_of(key.vlan);
        let dst_ip = to_ip(&key.dst, key.v6);
        let dst_zone = cx.zone(dst_ip, vlan);
        let Some(ri) = self.rule_for(dst_zone.as_deref()) else {
            return;
        };
        let Some(Some(rule)) = self.rules.get(ri) else {
            return;
        };
        if !rule.ports.contains(&key.dport) || rule.admits(to_ip(&key.src, key.v6)) {
            return;
        }
        self.stats.observed += 1;
        let k = Key {
            src: key.src,
            dst: key.dst,
            v6: key.v6,
            proto: key.proto,
            port: key.dport,
        };
        let window = self.window_ns();
        let wait = self.cfg.answer_wait_secs.saturating_mul(NS);
        let group = self.groups + 1;
        let fresh = || Fold {
            first_ns: ts,
            last_ns: ts,
            attempts: 1,
            answered: 0,
            refused: 0,
            vlan,
            rule: ri,
            dst_zone: dst_zone.clone(),
            group,
        };
        if let Some(s) = self.slots.get_mut(&k) {
            if ts < s.cur.first_ns.saturating_add(window) {
                s.cur.attempts += 1;
                s.cur.last_ns = s.cur.last_ns.max(ts);
            } else if let Some(n) = &mut s.next {
                n.attempts += 1;
                n.last_ns = n.last_ns.max(ts);
            } else {
                let f = fresh();
                self.first_line(&k, &f, ts, cx, out);
                if let Some(s) = self.slots.get_mut(&k) {
                    s.next = Some(f);
                }
            }
            return;
        }
        if self.slots.len() >= self.cfg.max_keys.max(1) {
            if let Some(&(d, old)) = self.due.iter().next() {
                self.due.remove(&(d, old));
                self.stats.state_evictions += 1;
                self.write(old, d.min(ts), cx, out);
            }
        }
        let due = ts.saturating_add(window).saturating_add(wait);
        let f = fresh();
        self.first_line(&k, &f, ts, cx, out);
        self.slots.insert(
            k,
            Slot {
                cur: f,
                next: None,
                due,
            },
        );
        self.due.insert((due, k));
    }

    /// The first line of a new group `f`, at its first attempt `at`.
    fn first_line(&mut self, k: &Key, f: &Fold, at: u64, cx: &Ctx, out: &mut Emit) {
        self.groups = self.groups.max(f.group);
        if let Some(mut a) = self.build(k, f, cx) {
            a.group = Some(f.group);
            self.stats.alerts += 1;
            out.push(at, a);
        }
    }

    fn outcome(&mut self, key: &FlowKey, ts: u64, refused: bool) {
        let k = Key {
            src: key.src,
            dst: key.dst,
            v6: key.v6,
            proto: key.proto,
            port: key.dport,
        };
        if let Some(s) = self.slots.get_mut(&k) {
            let f = match &mut s.next {
                Some(n) if ts >= n.first_ns => n,
                _ => &mut s.cur,
            };
            if refused {
                f.refused += 1;
            } else {
                f.answered += 1;
            }
        }
    }

    fn close_due(&mut self, now: u64, cx: &Ctx, out: &mut Emit) {
        while let Some(&(d, k)) = self.due.iter().next() {
            if d > now {
                break;
            }
            self.due.remove(&(d, k));
            self.write(k, d, cx, out);
        }
    }

    /// Write the current fold of `k` at `at`; its next fold, if any, takes over.
    fn write(&mut self, k: Key, at: u64, cx: &Ctx, out: &mut Emit) {
        let Some(mut s) = self.slots.remove(&k) else {
            return;
        };
        // The group's update line: final counts and the service's answer
        // (a silent marker when nothing changed since its first line).
        if let Some(mut a) = self.build(&k, &s.cur, cx) {
            a.group = Some(s.cur.group);
            a.update = 1;
            a.silent = s.cur.attempts == 1 && s.cur.answered == 0 && s.cur.refused == 0;
            out.push(at, a);
        }
        if let Some(n) = s.next.take() {
            let wait = self.cfg.answer_wait_secs.saturating_mul(NS);
            let due = n
                .first_ns
                .saturating_add(self.window_ns())
                .saturating_add(wait)
                .max(at);
            s.cur = n;
            s.due = due;
            self.due.insert((due, k));
            self.slots.insert(k, s);
        }
    }

    /// The alert of group `f` as it stands.
    fn build(&self, k: &Key, f: &Fold, cx: &Ctx) -> Option<Alert> {
        let Some(Some(rule)) = self.rules.get(f.rule) else {
            return None;
        };
        let src_ip = to_ip(&k.src, k.v6);
        let dst_ip = to_ip(&k.dst, k.v6);
        let src_zone = cx.zone(src_ip, f.vlan);
        let top = f
            .dst_zone
            .as_deref()
            .map(|z| z.split('.').next().unwrap_or(z));
        let critical = top.is_some_and(|t| self.cfg.critical_zones.iter().any(|c| c == t));
        let severity = if critical {
            Severity::Critical
        } else {
            Severity::parse(&self.cfg.severity).unwrap_or(Severity::High)
        };
        let answered = f.answered.saturating_sub(f.refused);
        let unanswered = f.attempts.saturating_sub(f.answered);
        let service = crate::model::services::service_name(k.port)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}/{}", Protocol::Ip(k.proto), k.port));
        let state = if answered > 0 {
            "the service answered"
        } else if f.refused > 0 {
            "refused"
        } else {
            "no answer"
        };
        let reason = format!(
            "{src_ip}, not an admin host, reached {service} (port {}) on {dst_ip} {} time{} in {:.1} s ({state}; rule {})",
            k.port,
            f.attempts,
            if f.attempts == 1 { "" } else { "s" },
            f.last_ns.saturating_sub(f.first_ns) as f64 / 1e9,
            rule.scope
        );
        let admins: Vec<String> = rule.admins.iter().map(ToString::to_string).collect();
        let evidence = AdminEvidence {
            admin_sources: admins,
            answered: answered > 0,
            answered_attempts: answered,
            attempts: f.attempts,
            refused: f.refused,
            rule_scope: rule.scope.clone(),
            service,
            unanswered,
            window_secs: self.cfg.window_secs,
        };
        Some(Alert {
            timestamp: f.first_ns,
            kind: "admin_access",
            severity,
            src_ip: Some(src_ip),
            dst_ip: Some(dst_ip),
            dst_port: Some(k.port),
            proto: Some(Protocol::Ip(k.proto)),
            vlan: f.vlan.into_iter().collect(),
            src_zone,
            dst_zone: f.dst_zone.clone(),
            rule: "detect.admin_access".into(),
            reason,
            count: f.attempts,
            first_seen: f.first_ns,
            last_seen: f.last_ns,
            evidence: Some(Evidence::Admin(evidence)),
            ..Alert::default()
        })
    }
}

impl Detector for AdminDetector {
    fn name(&self) -> &'static str {
        "admin_access"
    }

    fn observe(&mut self, o: &Obs, cx: &Ctx, out: &mut Emit) {
        self.close_due(o.ts_ns(), cx, out);
        match o {
            Obs::Start(s) if !s.quote_keyed && s.mac_is_initiator => {
                let attempt = match s.key.proto {
                    proto::TCP => s.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN,
                    proto::UDP => true,
                    _ => false,
                };
                if attempt {
                    self.attempt(&s.key, s.ts_ns, cx, out);
                }
            }
            Obs::Answered { key, ts_ns } => self.outcome(key, *ts_ns, false),
            Obs::Refused { key, ts_ns, .. } => self.outcome(key, *ts_ns, true),
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
    use crate::detect::testkit::{ev, key, start, S, T0};
    use crate::policy::Policy;
    const TERM: &str = "192.0.2.130";
    const SRV: &str = "192.0.2.34";
    const ADMIN: &str = "192.0.2.230";

    fn syn(ts: u64, k: FlowKey) -> Obs {
        start(ts, k)
    }

    fn cidrs(v: &[&str]) -> Vec<Cidr> {
        v.iter()
            .map(|s| Cidr::try_from(s.to_string()).expect("cidr"))
            .collect()
    }

    fn global(admins: &[&str]) -> AdminConfig {
        AdminConfig {
            admin_sources: Some(cidrs(admins)),
            ..AdminConfig::default()
        }
    }

    /// Each alert as it finally stands (its update line replaces its first).
    fn run(cfg: AdminConfig, policy: Option<&Policy>, obs: Vec<Obs>) -> Vec<(u64, Alert)> {
        crate::detect::testkit::finals(crate::detect::testkit::run(
            &mut AdminDetector::new(cfg),
            policy,
            obs,
        ))
    }

    /// `n` SSH connections from `src` to `dst`, a second apart, answered.
    fn ssh(src: &str, dst: &str, n: u16, t0: u64) -> Vec<Obs> {
        let mut obs = Vec::new();
        for i in 0..n {
            let k = key(proto::TCP, src, 40000 + i, dst, 22);
            let ts = t0 + u64::from(i) * S;
            obs.push(syn(ts, k));
            obs.push(Obs::Answered {
                ts_ns: ts + 1000,
                key: k,
            });
        }
        obs
    }

    #[test]
    fn global_rule_folds_repeats_and_admits_admin_hosts() {
        let mut obs = ssh(TERM, SRV, 3, T0);
        obs.extend(ssh(ADMIN, SRV, 3, T0));
        let a = run(global(&["192.0.2.224/28"]), None, obs);
        assert_eq!(a.len(), 1, "{a:#?}");
        let (at, a) = &a[0];
        // Written at its first attempt (issue #12: not when the window and the
        // answer wait are over); its update line carries the final counts.
        assert_eq!(*at, T0);
        assert_eq!(
            (a.kind, a.severity.as_str(), a.rule.as_str()),
            ("admin_access", "high", "detect.admin_access")
        );
        assert_eq!(a.src_ip.map(|i| i.to_string()).as_deref(), Some(TERM));
        assert_eq!(a.dst_ip.map(|i| i.to_string()).as_deref(), Some(SRV));
        assert_eq!(
            (
                a.dst_port,
                a.count,
                a.proto.map(|p| p.to_string()).as_deref()
            ),
            (Some(22), 3, Some("tcp"))
        );
        assert_eq!((a.first_seen, a.last_seen), (T0, T0 + 2 * S));
        assert_eq!(ev(a, "answered"), true);
        assert_eq!(ev(a, "rule_scope"), "global");
        assert_eq!(ev(a, "service"), "ssh");
        // Other ports are not management ports.
        let web = vec![syn(T0, key(proto::TCP, TERM, 40000, SRV, 80))];
        assert!(run(global(&[]), None, web).is_empty());
    }

    /// Issue #12 point 3: the first line at the first attempt (count 1, not
    /// yet answered), the update line when the window and the answer wait are
    /// over (final count, answered), with the same group.
    #[test]
    fn first_line_at_the_first_attempt_update_at_the_window_end() {
        let lines = crate::detect::testkit::run(
            &mut AdminDetector::new(global(&["192.0.2.224/28"])),
            None,
            ssh(TERM, SRV, 3, T0),
        );
        let seen: Vec<(u64, u32, u64)> =
            lines.iter().map(|(t, a)| (*t, a.update, a.count)).collect();
        assert_eq!(seen, [(T0, 0, 1), (T0 + 63 * S, 1, 3)]);
        assert_eq!(ev(&lines[0].1, "answered"), false);
        assert_eq!(ev(&lines[1].1, "answered"), true);
        assert_eq!(lines[0].1.group, lines[1].1.group);
    }

    #[test]
    fn no_rule_in_force_by_default() {
        assert!(run(AdminConfig::default(), None, ssh(TERM, SRV, 3, T0)).is_empty());
    }

    #[test]
    fn unanswered_and_refused_attempts_alert_and_say_so() {
        let k = key(proto::TCP, TERM, 40000, SRV, 3389);
        let r = key(proto::TCP, TERM, 40001, SRV, 5985);
        let obs = vec![
            syn(T0, k),
            syn(T0 + S, r),
            Obs::Answered {
                ts_ns: T0 + S + 10,
                key: r,
            },
            Obs::Refused {
                ts_ns: T0 + S + 10,
                key: r,
                how: crate::flow::Refusal::Rst,
            },
            // SNMP over UDP, no answer.
            syn(T0 + 2 * S, key(proto::UDP, TERM, 40002, SRV, 161)),
        ];
        let a = run(global(&[]), None, obs);
        assert_eq!(a.len(), 3, "{a:#?}");
        let by_port = |p: u16| {
            &a.iter()
                .find(|(_, a)| a.dst_port == Some(p))
                .expect("alert")
                .1
        };
        let rdp = by_port(3389);
        assert_eq!(
            (ev(rdp, "answered"), ev(rdp, "unanswered")),
            (false.into(), 1.into())
        );
        let winrm = by_port(5985);
        assert_eq!(
            (ev(winrm, "answered"), ev(winrm, "refused")),
            (false.into(), 1.into())
        );
        let snmp = by_port(161);
        assert_eq!(
            (
                snmp.proto.map(|p| p.to_string()).as_deref(),
                ev(snmp, "service")
            ),
            (Some("udp"), "snmp".into())
        );
        // Written in due order: the order of the first attempts.
        let ports: Vec<Option<u16>> = a.iter().map(|(_, a)| a.dst_port).collect();
        assert_eq!(ports, vec![Some(3389), Some(5985), Some(161)]);
    }

    #[test]
    fn windows_split_repeats_and_order_is_deterministic() {
        // 0 s, 30 s, 70 s, 100 s: two windows of two.
        let mut obs = Vec::new();
        for (i, t) in [0u64, 30, 70, 100].iter().enumerate() {
            let k = key(proto::TCP, TERM, 40000 + i as u16, SRV, 22);
            obs.push(syn(T0 + t * S, k));
        }
        // A second source at the same instants: ties broken by key.
        for (i, t) in [0u64, 30].iter().enumerate() {
            let k = key(proto::TCP, "192.0.2.131", 40000 + i as u16, SRV, 22);
            obs.push(syn(T0 + t * S, k));
        }
        let a = run(global(&[]), None, obs.clone());
        let got: Vec<(u64, String, u64)> = a
            .iter()
            .map(|(t, a)| {
                (
                    *t,
                    a.src_ip.map(|i| i.to_string()).unwrap_or_default(),
                    a.count,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (T0, TERM.to_string(), 2),
                (T0, "192.0.2.131".to_string(), 2),
                (T0 + 70 * S, TERM.to_string(), 2),
            ]
        );
        let mut rev = obs;
        rev.reverse();
        assert_eq!(run(global(&[]), None, rev), a);
    }

    const ZONES: &str = "[[zone]]\nid = \"mynumber.term\"\ncidrs = [\"192.0.2.0/27\"]\n\
        [[zone]]\nid = \"mynumber.srv\"\ncidrs = [\"192.0.2.32/28\"]\n\
        [[zone]]\nid = \"lgwan.term\"\ncidrs = [\"192.0.2.64/27\"]\n\
        [[zone]]\nid = \"inet.term\"\ncidrs = [\"192.0.2.128/27\"]\n\
        [[zone]]\nid = \"mgmt\"\ncidrs = [\"192.0.2.224/28\"]\n";

    #[test]
    fn zone_rules_cover_sub_zones_and_the_most_specific_wins() {
        let text = format!(
            "{ZONES}[[detect.admin_access.zone]]\nzone = \"mynumber\"\nadmin_sources = [\"192.0.2.224/28\"]\n\
             [[detect.admin_access.zone]]\nzone = \"mynumber.srv\"\nports = [22]\nadmin_sources = [\"192.0.2.5\"]\n"
        );
        let (p, _) = Policy::from_source("site.toml", &text).expect("loads");
        let cfg = crate::detect::config_of("site.toml", &text)
            .expect("loads")
            .admin_access;
        assert_eq!(cfg.zone.len(), 2);
        let mut obs = ssh(TERM, SRV, 1, T0);
        // The mgmt host is no admin for mynumber.srv (its own list wins)...
        obs.extend(ssh(ADMIN, SRV, 1, T0 + S));
        // ...and 192.0.2.5 is.
        obs.extend(ssh("192.0.2.5", SRV, 1, T0 + 2 * S));
        // mynumber.term: the "mynumber" entry; the mgmt host is admitted.
        obs.extend(ssh(TERM, "192.0.2.10", 1, T0 + 3 * S));
        obs.extend(ssh(ADMIN, "192.0.2.10", 1, T0 + 4 * S));
        // lgwan: no entry and no global rule.
        obs.extend(ssh(TERM, "192.0.2.70", 1, T0 + 5 * S));
        // mynumber.srv watches 22 only.
        obs.push(syn(T0 + 6 * S, key(proto::TCP, TERM, 1234, SRV, 3389)));
        let a = run(cfg, Some(&p), obs);
        let got: Vec<(String, String, String, &str)> = a
            .iter()
            .map(|(_, a)| {
                (
                    a.src_ip.map(|i| i.to_string()).unwrap_or_default(),
                    a.dst_ip.map(|i| i.to_string()).unwrap_or_default(),
                    ev(a, "rule_scope").as_str().unwrap_or("").to_string(),
                    a.severity.as_str(),
                )
            })
            .collect();
        let row =
            |s: &str, d: &str, r: &str| (s.to_string(), d.to_string(), r.to_string(), "critical");
        assert_eq!(
            got,
            vec![
                row(TERM, SRV, "zone:mynumber.srv"),
                row(ADMIN, SRV, "zone:mynumber.srv"),
                row(TERM, "192.0.2.10", "zone:mynumber"),
            ]
        );
        assert_eq!(a[0].1.dst_zone.as_deref(), Some("mynumber.srv"));
        assert_eq!(a[0].1.src_zone.as_deref(), Some("inet.term"));
    }

    #[test]
    fn the_global_rule_applies_outside_zone_entries_with_high_severity() {
        let text = format!(
            "{ZONES}[detect.admin_access]\nadmin_sources = [\"192.0.2.224/28\"]\n\
             [[detect.admin_access.zone]]\nzone = \"mynumber\"\nports = []\n"
        );
        let (p, _) = Policy::from_source("site.toml", &text).expect("loads");
        let mut obs = ssh(TERM, "192.0.2.70", 1, T0);
        // An entry with no ports exempts its zone.
        obs.extend(ssh(TERM, SRV, 1, T0));
        let cfg = crate::detect::config_of("site.toml", &text).expect("loads");
        let a = run(cfg.admin_access, Some(&p), obs);
        assert_eq!(a.len(), 1, "{a:#?}");
        assert_eq!(
            (a[0].1.severity.as_str(), a[0].1.dst_zone.as_deref()),
            ("high", Some("lgwan.term"))
        );
        assert!(within("mynumber.srv", "mynumber"));
        assert!(!within("mynumberx", "mynumber"));
        assert!(!within("mynumber", "mynumber.srv"));
    }

    #[test]
    fn bad_config_is_an_error() {
        for bad in [
            "[detect.admin_access]\nadmin_sources = [\"mgmt\"]\n",
            "[detect.admin_access]\nseverity = \"severe\"\n",
            "[[detect.admin_access.zone]]\nzone = \"a\"\nadmins = []\n",
        ] {
            assert!(crate::detect::config_of("site.toml", bad).is_err(), "{bad}");
        }
        // Host bits are refused, as in [[zone]] (they used to be dropped silently).
        let e = crate::detect::config_of(
            "site.toml",
            "[detect.admin_access]\nadmin_sources = [\"192.0.2.230/28\"]\n",
        )
        .expect_err("host bits");
        assert!(e.to_string().contains("did you mean 192.0.2.224/28"), "{e}");
    }
}
