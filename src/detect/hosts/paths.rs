//! Floor L3. Zone bridges by management paths (`zone_bridge`, rule
//! `detect.hosts.zone_bridge.paths`), part of the hosts detector.
//!
//! Owns: which tiers each host of a management zone has had flows with. A host
//! in one of `management_zones` (default `mgmt`) that has flows, in either
//! direction, with hosts of two `tiers` (default `mynumber`, `lgwan`, `inet`:
//! the three zones of 三層の対策, sub-zones included) joins them: one collector
//! that takes syslog from the My Number zone and from the internet zone, one
//! monitoring server that polls LGWAN and internet hosts. Each flow may be
//! allowed by the rules, so no separation alert names it; the host is the
//! bridge. One alert per host, when the second tier appears, **critical** when
//! one tier is `mynumber`, else **high** (as a MAC bridge). Segment-local
//! flows and flows between two management hosts do not count.
//!
//! Leaves alone: verdicts (the flows keep theirs) and MAC sightings
//! (`mod.rs`). State: `max_path_hosts` hosts; beyond it the smallest address
//! is forgotten (counted in `state_evictions`; it may alert again).

use crate::alert::evidence::{Evidence, PathTier, PathsEvidence};
use crate::alert::Alert;
use crate::detect::{Ctx, DetectorStats, Emit};
use crate::flow::FlowStart;
use crate::model::Severity;
use crate::packet::to_ip;
use crate::policy::{Policy, Verdict, ZoneIdx};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One tier a management host had a flow with: the first such flow.
#[derive(Clone, Debug)]
struct TierSeen {
    tier: String,
    first_ns: u64,
    peer: IpAddr,
    peer_zone: String,
    /// The management host opened the flow.
    initiated: bool,
}

#[derive(Clone, Debug, Default)]
struct HostPaths {
    zone: String,
    tiers: Vec<TierSeen>,
    alerted: bool,
}

/// The zone ids of the configuration resolved in one policy.
struct Resolved {
    /// The serial of the policy they were resolved in (a reload gives a new one).
    policy: u64,
    management: Vec<ZoneIdx>,
    tiers: Vec<ZoneIdx>,
    /// Every block of the management zones, when an address outside them can
    /// be in no management zone (none of them lists VLANs or is the default
    /// zone): most flows are then passed over without a zone look-up.
    blocks: Option<Vec<IpNet>>,
}

/// The management-path bridge check.
pub struct PathBridges {
    management_zones: Vec<String>,
    tiers: Vec<String>,
    max_hosts: usize,
    hosts: BTreeMap<IpAddr, HostPaths>,
    resolved: Option<Resolved>,
}

impl PathBridges {
    pub fn new(management_zones: Vec<String>, tiers: Vec<String>, max_hosts: usize) -> Self {
        PathBridges {
            management_zones,
            tiers,
            max_hosts: max_hosts.max(1),
            hosts: BTreeMap::new(),
            resolved: None,
        }
    }

    fn resolve(&mut self, p: &Policy) -> &Resolved {
        let key = p.serial;
        if self.resolved.as_ref().is_none_or(|r| r.policy != key) {
            let ids = |names: &[String]| -> Vec<ZoneIdx> {
                names.iter().filter_map(|n| p.zone_by_id(n)).collect()
            };
            let management = ids(&self.management_zones);
            let in_management = |z: ZoneIdx| management.iter().any(|m| p.is_within(z, *m));
            let zones: Vec<ZoneIdx> = (0..p.zones().len())
                .map(|i| ZoneIdx(i as u16))
                .filter(|z| in_management(*z))
                .collect();
            let by_blocks_only = zones.iter().all(|z| p.zone(*z).vlans.is_empty())
                && !p.default_zone().is_some_and(in_management);
            let blocks = by_blocks_only.then(|| {
                zones
                    .iter()
                    .flat_map(|z| p.zone(*z).cidrs.iter().copied())
                    .collect()
            });
            self.resolved = Some(Resolved {
                policy: key,
                tiers: ids(&self.tiers),
                management,
                blocks,
            });
        }
        self.resolved.as_ref().expect("resolved above")
    }

    /// A new flow: count the tier of each management end's peer.
    pub fn flow(&mut self, f: &FlowStart, cx: &Ctx, out: &mut Emit, stats: &mut DetectorStats) {
        let Some(p) = cx.policy else {
            return;
        };
        if f.quote_keyed || Verdict::unpack(f.tag) == Some(Verdict::Local) {
            return;
        }
        let r = self.resolve(p);
        if r.management.is_empty() || r.tiers.is_empty() {
            return;
        }
        let (a, b) = (to_ip(&f.key.src, f.key.v6), to_ip(&f.key.dst, f.key.v6));
        if let Some(blocks) = &r.blocks {
            if !blocks.iter().any(|n| n.contains(&a) || n.contains(&b)) {
                return;
            }
        }
        let vlan = crate::packet::inner_vlan(f.key.vlan);
        let (Some(za), Some(zb)) = (p.zone_of(a, vlan), p.zone_of(b, vlan)) else {
            return;
        };
        let within = |z: ZoneIdx, list: &[ZoneIdx]| list.iter().any(|l| p.is_within(z, *l));
        let tier_of = |z: ZoneIdx| r.tiers.iter().copied().find(|t| p.is_within(z, *t));
        let (ma, mb) = (within(za, &r.management), within(zb, &r.management));
        // One end at most is the management host (flows between two of them do not count).
        let (host, hz, peer, pz, tier, initiated) = match (ma, mb) {
            (true, false) => match tier_of(zb) {
                Some(t) => (a, za, b, zb, t, true),
                None => return,
            },
            (false, true) => match tier_of(za) {
                Some(t) => (b, zb, a, za, t, false),
                None => return,
            },
            _ => return,
        };
        let tier = p.zone(tier).id.as_str();
        if !self.hosts.contains_key(&host) && self.hosts.len() >= self.max_hosts {
            self.hosts.pop_first();
            stats.state_evictions += 1;
        }
        let st = self.hosts.entry(host).or_insert_with(|| HostPaths {
            zone: p.zone(hz).id.clone(),
            ..HostPaths::default()
        });
        if st.alerted || st.tiers.iter().any(|t| t.tier == tier) {
            return;
        }
        st.tiers.push(TierSeen {
            tier: tier.to_string(),
            first_ns: f.ts_ns,
            peer,
            peer_zone: p.zone(pz).id.clone(),
            initiated,
        });
        if st.tiers.len() >= 2 {
            st.alerted = true;
            stats.alerts += 1;
            out.push(f.ts_ns, alert(host, st, f));
        }
    }
}

fn alert(host: IpAddr, st: &HostPaths, f: &FlowStart) -> Alert {
    let names: Vec<&str> = st.tiers.iter().map(|t| t.tier.as_str()).collect();
    let mynumber = names.contains(&"mynumber");
    let first = &st.tiers[0];
    let second = &st.tiers[st.tiers.len() - 1];
    let tiers: Vec<PathTier> = st
        .tiers
        .iter()
        .map(|t| PathTier {
            direction: if t.initiated {
                "host_initiated"
            } else {
                "peer_initiated"
            },
            first_seen: t.first_ns,
            peer: t.peer,
            peer_zone: t.peer_zone.clone(),
            tier: t.tier.clone(),
        })
        .collect();
    Alert {
        timestamp: first.first_ns,
        kind: "zone_bridge",
        severity: if mynumber {
            Severity::Critical
        } else {
            Severity::High
        },
        src_ip: Some(host),
        dst_ip: Some(second.peer),
        vlan: f.key.vlan.iter().copied().filter(|&v| v != 0).collect(),
        src_zone: Some(st.zone.clone()),
        dst_zone: Some(second.peer_zone.clone()),
        rule: "detect.hosts.zone_bridge.paths".into(),
        reason: format!(
            "{host} ({}) has flows with hosts of {} zones ({}): one management host serving several zones joins them",
            st.zone,
            names.len(),
            names.join(", ")
        ),
        count: st.tiers.len() as u64,
        first_seen: first.first_ns,
        last_seen: second.first_ns,
        evidence: Some(Evidence::Paths(PathsEvidence {
            by: ["paths"],
            host,
            tiers,
            zone: st.zone.clone(),
        })),
        ..Alert::default()
    }
}

#[cfg(test)]
mod tests {
    use crate::detect::hosts::{HostsConfig, HostsDetector};
    use crate::detect::obs::Obs;
    use crate::detect::testkit::{ev, key, run, start, S, T0};
    use crate::packet::proto;
    use crate::policy::{Policy, Verdict};

    fn site() -> Policy {
        let text = include_str!("../../../rules/example-site.toml");
        match Policy::from_source("example-site.toml", text) {
            Ok((p, _)) => p,
            Err(e) => panic!("example site does not load: {e}"),
        }
    }

    fn paths_only(obs: Vec<Obs>, cfg: HostsConfig) -> Vec<(u64, crate::alert::Alert)> {
        let p = site();
        let mut d = HostsDetector::new(cfg);
        run(&mut d, Some(&p), obs)
            .into_iter()
            .filter(|(_, a)| a.rule == "detect.hosts.zone_bridge.paths")
            .collect()
    }

    /// A collector (192.0.2.226, mgmt) taking syslog from My Number and from
    /// the internet zone, and a monitor polling LGWAN and internet hosts.
    #[test]
    fn one_management_host_with_two_tiers_is_a_bridge() {
        let obs = vec![
            start(T0, key(proto::UDP, "192.0.2.5", 514, "192.0.2.226", 514)),
            start(
                T0 + S,
                key(proto::UDP, "192.0.2.6", 514, "192.0.2.226", 514),
            ),
            start(
                T0 + 2 * S,
                key(proto::UDP, "192.0.2.130", 514, "192.0.2.226", 514),
            ),
            start(
                T0 + 3 * S,
                key(proto::UDP, "192.0.2.70", 514, "192.0.2.226", 514),
            ),
            // The monitor opens its flows itself.
            start(
                T0 + 4 * S,
                key(proto::UDP, "192.0.2.228", 40000, "192.0.2.70", 161),
            ),
            start(
                T0 + 5 * S,
                key(proto::UDP, "192.0.2.228", 40001, "192.0.2.131", 161),
            ),
        ];
        let got = paths_only(obs, HostsConfig::default());
        assert_eq!(got.len(), 2, "{got:#?}");
        let (t, a) = &got[0];
        assert_eq!(*t, T0 + 2 * S, "written when the second tier appears");
        assert_eq!(a.kind, "zone_bridge");
        assert_eq!(a.severity.as_str(), "critical", "My Number is one of them");
        assert_eq!(a.src_ip, Some("192.0.2.226".parse().expect("ip")));
        assert_eq!(a.dst_ip, Some("192.0.2.130".parse().expect("ip")));
        assert_eq!(a.src_zone.as_deref(), Some("mgmt"));
        assert_eq!(a.dst_zone.as_deref(), Some("inet.term"));
        let tiers = ev(a, "tiers");
        assert_eq!(tiers[0]["tier"], "mynumber");
        assert_eq!(tiers[0]["direction"], "peer_initiated");
        assert_eq!(tiers[1]["tier"], "inet");
        let (t, b) = &got[1];
        assert_eq!(*t, T0 + 5 * S);
        assert_eq!(
            b.severity.as_str(),
            "high",
            "LGWAN and internet, no My Number"
        );
        assert_eq!(ev(b, "tiers")[0]["direction"], "host_initiated");
    }

    #[test]
    fn one_tier_relays_local_flows_and_other_zones_are_no_bridge() {
        let local = {
            let mut o = start(
                T0 + 3 * S,
                key(proto::UDP, "192.0.2.226", 137, "192.0.2.239", 137),
            );
            if let Obs::Start(f) = &mut o {
                f.tag = Verdict::Local.pack();
            }
            o
        };
        let obs = vec![
            // A per-tier collector: LGWAN only, from many hosts.
            start(T0, key(proto::UDP, "192.0.2.70", 514, "192.0.2.226", 514)),
            start(
                T0 + S,
                key(proto::UDP, "192.0.2.100", 514, "192.0.2.226", 514),
            ),
            // The sanitiser talks to both sides by design: relay is no management zone.
            start(
                T0 + 2 * S,
                key(proto::TCP, "192.0.2.130", 40000, "192.0.2.178", 443),
            ),
            start(
                T0 + 2 * S,
                key(proto::TCP, "192.0.2.178", 40000, "192.0.2.101", 445),
            ),
            // Segment-local, and mgmt to mgmt: not counted.
            local,
            start(
                T0 + 4 * S,
                key(proto::UDP, "192.0.2.227", 40000, "192.0.2.226", 161),
            ),
        ];
        assert!(paths_only(obs, HostsConfig::default()).is_empty());
    }

    #[test]
    fn configurable_zones_and_bounded_state() {
        let obs = vec![
            start(T0, key(proto::UDP, "192.0.2.5", 514, "192.0.2.226", 514)),
            start(
                T0 + S,
                key(proto::UDP, "192.0.2.70", 514, "192.0.2.226", 514),
            ),
        ];
        let off = HostsConfig {
            management_zones: Vec::new(),
            ..HostsConfig::default()
        };
        assert!(paths_only(obs.clone(), off).is_empty());
        // Two hosts but room for one: the first is forgotten, counted.
        let p = site();
        let mut d = HostsDetector::new(HostsConfig {
            max_path_hosts: 1,
            ..HostsConfig::default()
        });
        let more = vec![
            start(T0, key(proto::UDP, "192.0.2.5", 514, "192.0.2.226", 514)),
            start(
                T0 + S,
                key(proto::UDP, "192.0.2.5", 514, "192.0.2.227", 514),
            ),
            start(
                T0 + 2 * S,
                key(proto::UDP, "192.0.2.70", 514, "192.0.2.226", 514),
            ),
        ];
        let got = run(&mut d, Some(&p), more);
        assert!(got
            .iter()
            .all(|(_, a)| a.rule != "detect.hosts.zone_bridge.paths"));
        use crate::detect::Detector;
        assert_eq!(d.stats().state_evictions, 2);
    }
}
