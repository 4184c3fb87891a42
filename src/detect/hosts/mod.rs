//! Floor L3 (`detect`). Rogue hosts and zone bridges (`rogue_host`, `zone_bridge`).
//!
//! Owns: which MAC address was seen with which addresses and VLANs, and which
//! hosts of the protected zones are missing from the site's inventory. Leaves
//! alone: flows and verdicts (separation violations are folded elsewhere).
//!
//! **Sightings.** Only observations where the MAC belongs to the address:
//! a flow start's creating packet (its source MAC with the initiator's
//! address, or with the responder's when the flow was first seen by its
//! reply), and an ARP packet's sender MAC with its sender address. A first
//! answer proves the responder exists but carries no MAC: it counts for the
//! rogue check only. Unspecified, loopback, multicast, broadcast and
//! link-local addresses, and zero or group MACs, are skipped, with one
//! exception: a link-local or unspecified *sender* address (fe80::/10,
//! 169.254.0.0/16, `::`, `0.0.0.0`: DHCP, Neighbor Discovery, mDNS, LLMNR)
//! counts for the bridge check by its VLAN alone. Such traffic cannot leave
//! its segment, so a MAC whose segment-local traffic shows on two VLANs is
//! attached to both segments. Flows seen
//! inside a tunnel (`key.link != 0`) are not used for bridges: an IP-in-GRE
//! packet keeps the outer Ethernet's MAC, which is not its addresses' MAC.
//! An IPv6 address counts by its /64 (privacy addresses rotate inside it).
//!
//! **zone_bridge.** A MAC seen with addresses of two top-level zones (by the
//! rules; sub-zones of one top-level zone are one zone), or on two innermost
//! VLAN ids, is a dual-homed host bridging them. But every host behind a
//! router is seen with the router's MAC: a MAC seen with more than
//! `max_addresses_per_mac` addresses, or listed in `routers`, is a router and
//! is ignored. The verdict waits `confirm_secs` after the second zone or VLAN
//! appeared so a router can show its many addresses first. False negative
//! this implies: a dual-homed host that also routes (or NATs) for more than
//! `max_addresses_per_mac` addresses is taken for a router. One alert per
//! MAC; critical when a zone involved (an address's zone, or the zone that
//! lists a VLAN it was seen on) has the top-level id `mynumber`.
//!
//! **zone_bridge by management paths** (`paths.rs`): a host of a
//! management zone with flows to or from two tiers.
//!
//! **rogue_host.** With an `inventory` (CSV `ip,mac,name`), a host seen in a
//! `protected_zones` zone that the inventory lacks (its address; or, when the
//! inventory gives MACs for the address, the address with another MAC) is
//! one alert at its first sighting; high, critical in the `mynumber` zone.
//! The inventory is read and checked when the rules file is loaded, so a bad
//! line is a rules error (`FILE:LINE:COL` of the `inventory` key, then
//! `INVENTORY:LINE` of every bad line).
//!
//! State is bounded: `max_macs` MACs (the oldest first-seen one is dropped,
//! judged first if a bridge is pending) and `max_rogue_hosts` remembered rogue
//! hosts (the smallest is forgotten); both count in `state_evictions`.
//!
//! Floor L3. This file owns the detector and its config ([`HostsConfig`]);
//! the inventory file format and the MAC type are `inventory.rs`'s.

mod inventory;
mod paths;

pub use inventory::{Inventory, InventoryError, Mac};

use super::obs::Obs;
use super::{Ctx, Detector, DetectorStats, Emit};
use crate::alert::evidence::{
    BridgeAddress, BridgeEvidence, BridgeVlan, BridgeZone, Evidence, RogueEvidence,
};
use crate::alert::Alert;
use crate::model::Severity;
use crate::packet::to_ip;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

/// `[detect.hosts]` in a rules file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HostsConfig {
    pub enabled: bool,
    /// Host inventory (path relative to the working directory); without it
    /// the rogue-host check is off.
    pub inventory: Option<Inventory>,
    /// Zones (and their sub-zones) where every host must be in the inventory.
    pub protected_zones: Vec<String>,
    /// MACs of routers (and layer-3 switches): never bridges.
    pub routers: Vec<Mac>,
    /// A MAC seen with more addresses than this is a router.
    pub max_addresses_per_mac: usize,
    /// A bridge is judged this long after its second zone or VLAN appeared.
    pub confirm_secs: u64,
    pub max_macs: usize,
    pub max_rogue_hosts: usize,
    /// Zones whose hosts must serve one tier only (management paths, `paths.rs`).
    pub management_zones: Vec<String>,
    /// The tiers a management host must not join: the zones of 三層の対策.
    pub tiers: Vec<String>,
    /// Management hosts tracked by the path check.
    pub max_path_hosts: usize,
}

impl crate::detect::Spec for HostsConfig {
    /// Sightings of hosts: flow starts, ARP, flows seen on a second VLAN, and
    /// answers when there is an inventory (an answer names no MAC, so only
    /// the rogue-host check reads it).
    fn needs(&self) -> crate::detect::Needs {
        crate::detect::Needs {
            starts: true,
            answered: self.inventory.is_some(),
            arp: true,
            moved: true,
            ..crate::detect::Needs::default()
        }
    }
}

impl Default for HostsConfig {
    fn default() -> Self {
        HostsConfig {
            enabled: true,
            inventory: None,
            protected_zones: vec!["mynumber".into(), "lgwan".into()],
            routers: Vec::new(),
            max_addresses_per_mac: 4,
            confirm_secs: 30,
            max_macs: 65_536,
            max_rogue_hosts: 65_536,
            management_zones: vec!["mgmt".into()],
            tiers: vec!["mynumber".into(), "lgwan".into(), "inet".into()],
            max_path_hosts: 65_536,
        }
    }
}

const NS: u64 = 1_000_000_000;

/// An address as the bridge check counts it: IPv4 as is, IPv6 by its /64.
fn net_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(a) => {
            let s = a.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// An address a host owns (not a group, a placeholder or link-local).
fn usable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_link_local())
        }
        IpAddr::V6(a) => {
            let s0 = a.segments()[0];
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || (s0 & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped().is_some())
        }
    }
}

/// A sender address of segment-local traffic that names no host by itself:
/// link-local unicast or unspecified.
fn link_sender(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_unspecified() || a.is_link_local(),
        IpAddr::V6(a) => a.is_unspecified() || (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// A unicast MAC of a real interface.
fn usable_mac(m: [u8; 6]) -> bool {
    m != [0; 6] && m[0] & 1 == 0
}

use crate::packet::inner_vlan as vlan_of;

fn top(z: &str) -> &str {
    z.split('.').next().unwrap_or(z)
}

/// One address (IPv6: /64) seen with a MAC.
#[derive(Clone, Debug)]
struct NetSeen {
    /// The first address seen in it.
    ip: IpAddr,
    first_ns: u64,
    vlan: Option<u16>,
    zone: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// Nothing (yet).
    None,
    /// Seen in two zones or VLANs; judged at this time.
    Pending(u64),
    /// Alerted, or found to be a router: nothing more to do.
    Done,
}

#[derive(Clone, Debug)]
struct MacState {
    first_ns: u64,
    last_ns: u64,
    sightings: u64,
    nets: BTreeMap<IpAddr, NetSeen>,
    /// Innermost VLAN id → (first seen, address first seen on it).
    /// VLAN → (first seen, address seen with it, zone listing the VLAN).
    vlans: BTreeMap<u16, (u64, IpAddr, Option<String>)>,
    router: bool,
    verdict: Verdict,
    /// When the second zone / VLAN appeared.
    bridged_ns: u64,
}

/// One MAC-to-address sighting.
#[derive(Clone, Copy, Debug)]
struct Sighting {
    ts: u64,
    ip: IpAddr,
    mac: Option<[u8; 6]>,
    vlan: Option<u16>,
    /// Usable for the bridge check (a MAC of the capture link).
    bridge: bool,
    how: &'static str,
}

/// The rogue-host / zone-bridge detector.
pub struct HostsDetector {
    cfg: HostsConfig,
    routers: BTreeSet<[u8; 6]>,
    /// Hashed: looked up once per flow start; never iterated (`by_age` and
    /// `pending` give the deterministic orders).
    macs: std::collections::HashMap<[u8; 6], MacState, foldhash::fast::RandomState>,
    /// (first seen, MAC): eviction order.
    by_age: BTreeSet<(u64, [u8; 6])>,
    /// (judgement time, MAC).
    pending: BTreeSet<(u64, [u8; 6])>,
    /// Rogue hosts alerted: (address, MAC for a MAC mismatch).
    rogues: BTreeSet<(IpAddr, Option<[u8; 6]>)>,
    stats: DetectorStats,
    /// Management hosts and the tiers they had flows with.
    paths: paths::PathBridges,
}

impl HostsDetector {
    pub fn new(cfg: HostsConfig) -> HostsDetector {
        let paths = paths::PathBridges::new(
            cfg.management_zones.clone(),
            cfg.tiers.clone(),
            cfg.max_path_hosts,
        );
        HostsDetector {
            routers: cfg.routers.iter().map(|m| m.0).collect(),
            cfg,
            macs: std::collections::HashMap::default(),
            by_age: BTreeSet::new(),
            pending: BTreeSet::new(),
            rogues: BTreeSet::new(),
            stats: DetectorStats::default(),
            paths,
        }
    }

    fn sighting(&mut self, s: Sighting, cx: &Ctx, out: &mut Emit) {
        let owned = usable(s.ip);
        if !owned && !link_sender(s.ip) {
            return;
        }
        self.stats.observed += 1;
        if owned && self.cfg.inventory.is_some() {
            self.rogue(&s, cx, out);
        }
        if let (Some(mac), true) = (s.mac, s.bridge) {
            if usable_mac(mac) && !self.routers.contains(&mac) {
                self.bridge(mac, &s, cx, out);
            }
        }
    }

    /// The rogue-host check of one sighting.
    fn rogue(&mut self, s: &Sighting, cx: &Ctx, out: &mut Emit) {
        let (Some(inv), Some(p)) = (&self.cfg.inventory, cx.policy) else {
            return;
        };
        let Some(zi) = p.zone_of(s.ip, s.vlan) else {
            return;
        };
        let zone = p.zone(zi).id.as_str();
        let protected = self.cfg.protected_zones.iter().any(|pz| {
            zone == pz
                || zone
                    .strip_prefix(pz.as_str())
                    .is_some_and(|r| r.starts_with('.'))
        });
        if !protected {
            return;
        }
        // A router's MAC carries other hosts' addresses: only the address counts.
        let mac = s
            .mac
            .filter(|m| usable_mac(*m) && !self.routers.contains(m))
            .filter(|m| !self.macs.get(m).is_some_and(|st| st.router));
        let (key, expected) = match inv.hosts.get(&s.ip) {
            Some(k) => match mac {
                Some(m) if !k.any_mac && !k.macs.contains(&Mac(m)) => {
                    ((s.ip, Some(m)), Some(&k.macs))
                }
                _ => return,
            },
            None => {
                if s.ip.is_ipv6() && mac.is_some_and(|m| inv.macs.contains(&Mac(m))) {
                    return;
                }
                ((s.ip, None), None)
            }
        };
        if self.rogues.contains(&key) {
            return;
        }
        if self.rogues.len() >= self.cfg.max_rogue_hosts.max(1) {
            self.rogues.pop_first();
            self.stats.state_evictions += 1;
        }
        self.rogues.insert(key);
        let mynumber = top(zone) == "mynumber";
        let mac_s = mac.or(s.mac).map(|m| Mac(m).to_string());
        let reason = match expected {
            Some(exp) => format!(
                "{} in protected zone {zone} was seen with MAC {} but inventory {} lists it with {}",
                s.ip,
                mac_s.clone().unwrap_or_default(),
                inv.path,
                exp.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(", ")
            ),
            None => format!(
                "{}{} in protected zone {zone} is not in inventory {}",
                s.ip,
                mac_s
                    .as_ref()
                    .map(|m| format!(" (MAC {m})"))
                    .unwrap_or_default(),
                inv.path
            ),
        };
        let evidence = RogueEvidence {
            check: if expected.is_some() {
                "mac_mismatch"
            } else {
                "unknown_address"
            },
            inventory: inv.path.clone(),
            inventory_macs: expected.map(|e| e.iter().map(|m| m.to_string()).collect()),
            mac: mac_s,
            seen_as: s.how,
            zone: zone.to_string(),
        };
        self.stats.alerts += 1;
        out.push(
            s.ts,
            Alert {
                timestamp: s.ts,
                kind: "rogue_host",
                severity: if mynumber {
                    Severity::Critical
                } else {
                    Severity::High
                },
                src_ip: Some(s.ip),
                vlan: s.vlan.into_iter().collect(),
                src_zone: Some(zone.to_string()),
                rule: "detect.hosts.rogue_host".into(),
                reason,
                count: 1,
                first_seen: s.ts,
                last_seen: s.ts,
                evidence: Some(Evidence::Rogue(evidence)),
                ..Alert::default()
            },
        );
    }

    /// Record a MAC sighting for the bridge check.
    fn bridge(&mut self, mac: [u8; 6], s: &Sighting, cx: &Ctx, out: &mut Emit) {
        if !self.macs.contains_key(&mac) {
            if self.macs.len() >= self.cfg.max_macs.max(1) {
                self.evict(s.ts, out);
            }
            self.macs.insert(
                mac,
                MacState {
                    first_ns: s.ts,
                    last_ns: s.ts,
                    sightings: 0,
                    nets: BTreeMap::new(),
                    vlans: BTreeMap::new(),
                    router: false,
                    verdict: Verdict::None,
                    bridged_ns: 0,
                },
            );
            self.by_age.insert((s.ts, mac));
        }
        let max_addrs = self.cfg.max_addresses_per_mac;
        let confirm = self.cfg.confirm_secs.saturating_mul(NS);
        let Some(st) = self.macs.get_mut(&mac) else {
            return;
        };
        st.sightings += 1;
        st.last_ns = st.last_ns.max(s.ts);
        if st.router {
            return;
        }
        let net = net_of(s.ip);
        let mut changed = false;
        // A link-local sender tells the segment (its VLAN), not an address.
        if usable(s.ip) && !st.nets.contains_key(&net) {
            if st.nets.len() >= max_addrs {
                // More addresses than a host has: a router. Forget them.
                st.router = true;
                st.nets.clear();
                st.vlans.clear();
                if let Verdict::Pending(due) = st.verdict {
                    self.pending.remove(&(due, mac));
                    st.verdict = Verdict::Done;
                }
                return;
            }
            let zone = cx
                .policy
                .and_then(|p| p.zone_of(s.ip, s.vlan).map(|z| p.zone(z).id.clone()));
            st.nets.insert(
                net,
                NetSeen {
                    ip: s.ip,
                    first_ns: s.ts,
                    vlan: s.vlan,
                    zone,
                },
            );
            changed = true;
        }
        if let Some(v) = s.vlan {
            if let std::collections::btree_map::Entry::Vacant(e) = st.vlans.entry(v) {
                let zone = cx
                    .policy
                    .and_then(|p| p.vlan_zone(v).map(|z| p.zone(z).id.clone()));
                e.insert((s.ts, s.ip, zone));
                changed = true;
            }
        }
        if changed && st.verdict == Verdict::None && bridges(st) {
            let due = s.ts.saturating_add(confirm);
            st.verdict = Verdict::Pending(due);
            st.bridged_ns = s.ts;
            self.pending.insert((due, mac));
        }
    }

    /// Drop the MAC seen first (judging it now if a bridge is pending).
    fn evict(&mut self, now: u64, out: &mut Emit) {
        let Some((_, mac)) = self.by_age.pop_first() else {
            return;
        };
        self.stats.state_evictions += 1;
        if let Some(st) = self.macs.get(&mac) {
            if let Verdict::Pending(due) = st.verdict {
                self.pending.remove(&(due, mac));
                self.judge(mac, now.min(due), out);
            }
        }
        self.macs.remove(&mac);
    }

    fn close_due(&mut self, now: u64, out: &mut Emit) {
        while let Some(&(due, mac)) = self.pending.first() {
            if due > now {
                break;
            }
            self.pending.remove(&(due, mac));
            self.judge(mac, due, out);
        }
    }

    /// Write the bridge alert of `mac` (pending, not a router) at `at`.
    fn judge(&mut self, mac: [u8; 6], at: u64, out: &mut Emit) {
        let Some(st) = self.macs.get_mut(&mac) else {
            return;
        };
        st.verdict = Verdict::Done;
        if st.router {
            return;
        }
        let mut zones: BTreeMap<&str, (u64, IpAddr)> = BTreeMap::new();
        for n in st.nets.values() {
            if let Some(z) = &n.zone {
                let e = zones.entry(top(z)).or_insert((n.first_ns, n.ip));
                if (n.first_ns, n.ip) < *e {
                    *e = (n.first_ns, n.ip);
                }
            }
        }
        let by_zones = zones.len() >= 2;
        let by_vlans = st.vlans.len() >= 2;
        let mut by = Vec::new();
        if by_zones {
            by.push("zones");
        }
        if by_vlans {
            by.push("vlans");
        }
        // The two addresses named: the first seen, and the first one seen in
        // another top-level zone (or on another VLAN).
        let mut nets: Vec<&NetSeen> = st.nets.values().collect();
        nets.sort_by_key(|n| (n.first_ns, n.ip));
        let first = nets.first().copied();
        let other = first.and_then(|f| {
            nets.iter().copied().find(|n| {
                if by_zones {
                    n.zone.as_deref().map(top) != f.zone.as_deref().map(top) && n.zone.is_some()
                } else {
                    n.vlan != f.vlan
                }
            })
        });
        let other_vlan = st
            .vlans
            .iter()
            .filter(|(v, _)| !matches!(first, Some(f) if f.vlan == Some(**v)))
            .map(|(_, e)| e)
            .min_by_key(|(t, ip, _)| (*t, *ip));
        let mynumber = st
            .nets
            .values()
            .map(|n| &n.zone)
            .chain(st.vlans.values().map(|(_, _, z)| z))
            .any(|z| z.as_deref().map(top) == Some("mynumber"));
        let mac_s = Mac(mac).to_string();
        let addresses: Vec<BridgeAddress> = nets
            .iter()
            .map(|n| BridgeAddress {
                first_seen: n.first_ns,
                ip: n.ip,
                vlan: n.vlan,
                zone: n.zone.clone(),
            })
            .collect();
        let zone_list: Vec<BridgeZone> = zones
            .iter()
            .map(|(z, (t, ip))| BridgeZone {
                first_seen: *t,
                ip: *ip,
                zone: (*z).to_string(),
            })
            .collect();
        let vlan_list: Vec<BridgeVlan> = st
            .vlans
            .iter()
            .map(|(v, (t, ip, z))| BridgeVlan {
                first_seen: *t,
                ip: *ip,
                vlan: *v,
                zone: z.clone(),
            })
            .collect();
        let what = if by_zones {
            format!(
                "addresses of {} zones ({})",
                zones.len(),
                zones.keys().copied().collect::<Vec<_>>().join(", ")
            )
        } else {
            format!(
                "{} VLANs ({})",
                st.vlans.len(),
                st.vlans
                    .keys()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let reason = format!(
            "MAC {mac_s} was seen with {what} on {} address(es) within {:.1} s: a dual-homed host bridging them",
            st.nets.len(),
            st.bridged_ns.saturating_sub(st.first_ns) as f64 / 1e9
        );
        let rule = format!("detect.hosts.zone_bridge.{}", by.join("+"));
        let evidence = BridgeEvidence {
            addresses,
            by,
            mac: mac_s,
            sightings: st.sightings,
            vlans: vlan_list,
            zones: zone_list,
        };
        let alert = Alert {
            timestamp: st.first_ns,
            kind: "zone_bridge",
            severity: if mynumber {
                Severity::Critical
            } else {
                Severity::High
            },
            src_ip: first.map(|n| n.ip),
            // A VLAN seen only with link-local traffic names no address of
            // its own: then the other side is that VLAN's first sighting.
            dst_ip: other.map(|n| n.ip).or(other_vlan.map(|(_, ip, _)| *ip)),
            vlan: st.vlans.keys().copied().collect(),
            src_zone: first.and_then(|n| n.zone.clone()),
            dst_zone: match other {
                Some(n) => n.zone.clone(),
                None => other_vlan.and_then(|(_, _, z)| z.clone()),
            },
            rule,
            reason,
            count: st.sightings,
            first_seen: st.first_ns,
            last_seen: st.last_ns,
            evidence: Some(Evidence::Bridge(evidence)),
            ..Alert::default()
        };
        self.stats.alerts += 1;
        out.push(at, alert);
    }
}

/// Two top-level zones, or two VLANs.
fn bridges(st: &MacState) -> bool {
    if st.vlans.len() >= 2 {
        return true;
    }
    let mut first: Option<&str> = None;
    for z in st.nets.values().filter_map(|n| n.zone.as_deref()).map(top) {
        match first {
            None => first = Some(z),
            Some(f) if f != z => return true,
            Some(_) => {}
        }
    }
    false
}

impl Detector for HostsDetector {
    fn name(&self) -> &'static str {
        "hosts"
    }

    fn observe(&mut self, o: &Obs, cx: &Ctx, out: &mut Emit) {
        self.close_due(o.ts_ns(), out);
        if let Obs::Start(f) = o {
            self.paths.flow(f, cx, out, &mut self.stats);
        }
        let s = match o {
            // A flow's packet on another VLAN is a sighting of its sender there.
            Obs::Start(f) | Obs::Moved(f) if !f.quote_keyed => {
                let (addr, how) = if f.mac_is_initiator {
                    (&f.key.src, "flow_initiator")
                } else {
                    (&f.key.dst, "flow_responder")
                };
                Sighting {
                    ts: f.ts_ns,
                    ip: to_ip(addr, f.key.v6),
                    mac: Some(f.mac),
                    vlan: vlan_of(f.key.vlan),
                    bridge: f.key.link == 0,
                    how,
                }
            }
            Obs::Answered { ts_ns, key } => Sighting {
                ts: *ts_ns,
                ip: key.dst_ip(),
                mac: None,
                vlan: vlan_of(key.vlan),
                bridge: false,
                how: "answer",
            },
            Obs::Arp(a) if matches!(a.op, 1 | 2) => Sighting {
                ts: a.ts_ns,
                ip: to_ip(&a.sender, false),
                mac: Some(a.mac),
                vlan: vlan_of(a.vlan),
                bridge: true,
                how: "arp",
            },
            _ => return,
        };
        self.sighting(s, cx, out);
    }

    fn advance(&mut self, now_ns: u64, cx: &Ctx, out: &mut Emit) {
        let _ = cx;
        self.close_due(now_ns, out);
    }

    fn stats(&self) -> DetectorStats {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::obs::ArpObs;
    use crate::flow::FlowStart;
    use crate::model::time::rfc3339;
    use crate::packet::{addr_v4, proto, FlowKey};
    use crate::policy::Policy;

    const S: u64 = 1_000_000_000;
    const T0: u64 = 1_700_000_000 * S;
    pub(super) const M1: [u8; 6] = [2, 0, 0, 0, 0x0b, 1];
    const M2: [u8; 6] = [2, 0, 0, 0, 0x0b, 2];
    pub(super) const MR: [u8; 6] = [2, 0, 0, 0, 0x0b, 0xfe];

    fn site() -> Policy {
        let text = include_str!("../../../rules/example-site.toml");
        match Policy::from_source("example-site.toml", text) {
            Ok((p, _)) => p,
            Err(e) => panic!("example site does not load: {e}"),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    /// A TCP flow start from `src` (whose MAC is `mac`) on `vlan` (0: none).
    fn start(ts: u64, mac: [u8; 6], src: &str, dst: &str, vlan: u16) -> Obs {
        let mut key = FlowKey::new(proto::TCP, ip(src), 40000, ip(dst), 445);
        key.vlan = [0, vlan];
        Obs::Start(FlowStart {
            key,
            ts_ns: ts,
            tag: 0,
            quote_keyed: false,
            mac,
            mac_is_initiator: true,
            tcp_flags: 0x02,
            source: 0,
        })
    }

    fn arp(ts: u64, mac: [u8; 6], sender: [u8; 4], vlan: u16) -> Obs {
        Obs::Arp(ArpObs {
            ts_ns: ts,
            sender: addr_v4(sender),
            target: addr_v4([192, 0, 2, 1]),
            mac,
            op: 1,
            vlan: [0, vlan],
        })
    }

    /// Run the detector; alerts with their due times. `step` calls `advance`
    /// after every observation (as a busy analysis thread would).
    fn run_with(
        d: &mut HostsDetector,
        p: Option<&Policy>,
        obs: &[Obs],
        step: bool,
    ) -> Vec<(u64, Alert)> {
        let cx = Ctx {
            policy: p,
            end: crate::detect::END_OF_INPUT,
        };
        let mut out = Emit::default();
        // What this config declares (answers only with an inventory).
        let needs = crate::detect::Spec::needs(&d.cfg);
        for o in obs
            .iter()
            .filter(|o| crate::detect::testkit::fed(&needs, o))
        {
            d.observe(o, &cx, &mut out);
            if step {
                d.advance(o.ts_ns(), &cx, &mut out);
            }
        }
        d.advance(u64::MAX, &cx, &mut out);
        out.items.into_iter().map(|(t, _, a)| (t, a)).collect()
    }

    fn run(cfg: HostsConfig, p: Option<&Policy>, obs: &[Obs]) -> Vec<Alert> {
        let mut d = HostsDetector::new(cfg);
        run_with(&mut d, p, obs, false)
            .into_iter()
            .map(|(_, a)| a)
            .collect()
    }

    fn inventory(text: &str) -> HostsConfig {
        HostsConfig {
            inventory: Some(Inventory::parse("inv.csv", text).expect("test inventory")),
            ..HostsConfig::default()
        }
    }

    #[test]
    fn mac_with_mynumber_and_lgwan_addresses_is_a_critical_bridge() {
        let p = site();
        let obs = [
            start(T0, M1, "192.0.2.10", "192.0.2.34", 0),
            start(T0 + S, M2, "192.0.2.11", "192.0.2.34", 0),
            start(T0 + 2 * S, M1, "192.0.2.10", "192.0.2.35", 0),
            start(T0 + 3 * S, M1, "192.0.2.70", "192.0.2.100", 0),
            start(T0 + 4 * S, M1, "192.0.2.70", "192.0.2.101", 0),
        ];
        let mut d = HostsDetector::new(HostsConfig::default());
        let a = run_with(&mut d, Some(&p), &obs, false);
        assert_eq!(a.len(), 1, "{a:#?}");
        let (due, a) = &a[0];
        assert_eq!(
            *due,
            T0 + 3 * S + 30 * S,
            "judged confirm_secs after the 2nd zone"
        );
        assert_eq!((a.kind, a.severity.as_str()), ("zone_bridge", "critical"));
        assert_eq!(a.rule, "detect.hosts.zone_bridge.zones");
        assert_eq!(a.src_ip, Some(ip("192.0.2.10")));
        assert_eq!(a.dst_ip, Some(ip("192.0.2.70")));
        assert_eq!(a.src_zone.as_deref(), Some("mynumber.term"));
        assert_eq!(a.dst_zone.as_deref(), Some("lgwan.term"));
        assert_eq!(a.timestamp, T0);
        assert_eq!(a.count, 4);
        let e = a
            .evidence
            .as_ref()
            .map(crate::alert::Evidence::json)
            .expect("evidence");
        assert_eq!(e["mac"], "02:00:00:00:0b:01");
        assert_eq!(e["by"], serde_json::json!(["zones"]));
        assert_eq!(e["addresses"].as_array().map(Vec::len), Some(2));
        assert_eq!(e["zones"][0]["zone"], "lgwan");
        assert_eq!(e["zones"][1]["zone"], "mynumber");
        assert_eq!(e["zones"][1]["first_seen"], rfc3339(T0).as_str());
        assert_eq!(d.stats().alerts, 1);
    }

    #[test]
    fn bridge_without_mynumber_is_high_and_sub_zones_are_no_bridge() {
        let p = site();
        // lgwan.term + inet.term: high.
        let obs = [
            start(T0, M1, "192.0.2.70", "192.0.2.100", 0),
            start(T0 + S, M1, "192.0.2.130", "192.0.2.161", 0),
        ];
        let a = run(HostsConfig::default(), Some(&p), &obs);
        assert_eq!(a.len(), 1, "{a:#?}");
        assert_eq!((a[0].kind, a[0].severity.as_str()), ("zone_bridge", "high"));
        // mynumber.term + mynumber.srv: one top-level zone, no bridge.
        let obs = [
            start(T0, M1, "192.0.2.10", "192.0.2.70", 0),
            start(T0 + S, M1, "192.0.2.33", "192.0.2.70", 0),
        ];
        assert!(run(HostsConfig::default(), Some(&p), &obs).is_empty());
    }

    #[test]
    fn one_mac_on_two_vlans_is_a_bridge_even_without_rules() {
        let obs = [
            arp(T0, M1, [192, 0, 2, 10], 110),
            arp(T0 + S, M1, [192, 0, 2, 10], 110),
            arp(T0 + 2 * S, M1, [192, 0, 2, 71], 210),
            arp(T0 + 3 * S, M2, [192, 0, 2, 12], 110),
        ];
        let a = run(HostsConfig::default(), None, &obs);
        assert_eq!(a.len(), 1, "{a:#?}");
        let a = &a[0];
        assert_eq!((a.kind, a.severity.as_str()), ("zone_bridge", "high"));
        assert_eq!(a.rule, "detect.hosts.zone_bridge.vlans");
        assert_eq!(a.vlan, vec![110, 210]);
        assert_eq!((a.src_zone.as_ref(), a.dst_zone.as_ref()), (None, None));
        let e = a
            .evidence
            .as_ref()
            .map(crate::alert::Evidence::json)
            .expect("evidence");
        assert_eq!(e["vlans"][1]["vlan"], 210);
        assert_eq!(e["vlans"][1]["first_seen"], rfc3339(T0 + 2 * S).as_str());
        // With the site's rules the two VLANs are also two zones, one of them My Number.
        let a = run(HostsConfig::default(), Some(&site()), &obs);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].severity.as_str(), "critical");
        assert_eq!(a[0].rule, "detect.hosts.zone_bridge.zones+vlans");
    }

    /// Issue #12: link-local senders count by their VLAN. A My Number terminal
    /// (VLAN 110) whose fe80:: traffic also shows on the LGWAN terminals' VLAN
    /// 210 is on both segments: a critical bridge. Its `::` and fe80:: sightings
    /// add no address (no router heuristic, no rogue check).
    #[test]
    fn link_local_traffic_on_another_zones_vlan_is_a_critical_bridge() {
        let p = site();
        let obs = [
            start(T0, M1, "::", "ff02::1:ffc4:d1e6", 110),
            start(T0 + S, M1, "192.0.2.23", "224.0.0.251", 110),
            start(T0 + 2 * S, M1, "fe80::c04c:8ff:fec4:d1e6", "ff02::fb", 110),
            start(T0 + 3 * S, M1, "fe80::c04c:8ff:fec4:d1e6", "ff02::fb", 210),
        ];
        let a = run(HostsConfig::default(), Some(&p), &obs);
        assert_eq!(a.len(), 1, "{a:#?}");
        assert_eq!(
            (a[0].kind, a[0].severity.as_str()),
            ("zone_bridge", "critical")
        );
        assert_eq!(a[0].rule, "detect.hosts.zone_bridge.vlans");
        let e = a[0]
            .evidence
            .as_ref()
            .map(crate::alert::Evidence::json)
            .expect("evidence");
        assert_eq!(e["vlans"][0]["zone"], "mynumber.term");
        assert_eq!(e["vlans"][1]["zone"], "lgwan.term");
        assert_eq!(e["addresses"].as_array().map(Vec::len), Some(1), "{e}");
        assert_eq!(a[0].dst_ip, Some(ip("fe80::c04c:8ff:fec4:d1e6")));
        assert_eq!(a[0].dst_zone.as_deref(), Some("lgwan.term"));
        // Only on its own VLAN: nothing.
        let a = run(HostsConfig::default(), Some(&p), &obs[..3]);
        assert!(a.is_empty(), "{a:#?}");
    }

    #[test]
    fn a_router_mac_with_many_addresses_is_no_bridge() {
        let p = site();
        // The router forwards for five hosts of two zones within the confirm time.
        let srcs = [
            "192.0.2.10",
            "192.0.2.70",
            "192.0.2.11",
            "192.0.2.71",
            "192.0.2.12",
        ];
        let obs: Vec<Obs> = srcs
            .iter()
            .enumerate()
            .map(|(i, s)| start(T0 + i as u64 * S, MR, s, "198.51.100.41", 0))
            .collect();
        assert!(run(HostsConfig::default(), Some(&p), &obs).is_empty());
        // With a higher limit the same MAC would be a bridge ...
        let loose = HostsConfig {
            max_addresses_per_mac: 8,
            ..HostsConfig::default()
        };
        assert_eq!(run(loose.clone(), Some(&p), &obs).len(), 1);
        // ... unless it is listed as a router.
        let listed = HostsConfig {
            routers: vec!["02:00:00:00:0B:FE".parse().expect("mac")],
            ..loose
        };
        assert!(run(listed, Some(&p), &obs[..2]).is_empty());
        // The false negative: a dual-homed host that shows more than
        // max_addresses_per_mac addresses before the verdict is taken for a router.
        let obs: Vec<Obs> = srcs
            .iter()
            .enumerate()
            .map(|(i, s)| start(T0 + i as u64 * S, M1, s, "198.51.100.41", 0))
            .collect();
        assert!(run(HostsConfig::default(), Some(&p), &obs).is_empty());
    }

    #[test]
    fn only_the_mac_owner_address_counts() {
        let p = site();
        // The flow was first seen by the responder's packet: M1 is 192.0.2.34's.
        let mut k = FlowKey::new(proto::TCP, ip("192.0.2.70"), 40000, ip("192.0.2.34"), 445);
        k.vlan = [0, 0];
        let resp = Obs::Start(FlowStart {
            key: k,
            ts_ns: T0,
            tag: 0,
            quote_keyed: false,
            mac: M1,
            mac_is_initiator: false,
            tcp_flags: 0x12,
            source: 0,
        });
        let obs = [resp, start(T0 + S, M1, "192.0.2.34", "192.0.2.226", 0)];
        assert!(run(HostsConfig::default(), Some(&p), &obs).is_empty());
        // Link-local, IPv6 in one /64, and tunnelled flows are not used.
        let mut tun = start(T0 + 2 * S, M1, "192.0.2.70", "192.0.2.100", 0);
        if let Obs::Start(s) = &mut tun {
            s.key.link = 1;
        }
        let obs = [
            start(T0, M1, "192.0.2.34", "192.0.2.226", 0),
            start(T0 + S, M1, "169.254.1.1", "192.0.2.226", 0),
            Obs::Start(FlowStart {
                key: FlowKey::new(proto::UDP, ip("fe80::1"), 546, ip("ff02::1:2"), 547),
                ts_ns: T0 + S,
                tag: 0,
                quote_keyed: false,
                mac: M1,
                mac_is_initiator: true,
                tcp_flags: 0,
                source: 0,
            }),
            tun,
        ];
        assert!(run(HostsConfig::default(), Some(&p), &obs).is_empty());
        let obs: Vec<Obs> = (1..=6u64)
            .map(|i| {
                let a = format!("2001:db8:0:110::{i:x}");
                start(T0 + i * S, M1, &a, "2001:db8:0:120::1", 0)
            })
            .chain([start(T0 + 7 * S, M1, "192.0.2.10", "192.0.2.34", 0)])
            .collect();
        let mut d = HostsDetector::new(HostsConfig::default());
        assert!(run_with(&mut d, Some(&p), &obs, false).is_empty());
        assert_eq!(d.macs.get(&M1).map(|m| m.nets.len()), Some(2));
    }

    /// Answers name no MAC: only the rogue-host check reads them, so the
    /// workers send them to this detector only with an inventory.
    #[test]
    fn answers_are_needed_only_with_an_inventory() {
        use crate::detect::Spec;
        assert!(!HostsConfig::default().needs().answered);
        assert!(inventory("ip,mac,name\n192.0.2.10,,t\n").needs().answered);
    }

    #[test]
    fn rogue_hosts_against_the_inventory() {
        let p = site();
        let cfg = inventory(
            "ip,mac,name\n\
             # terminals\n\
             192.0.2.10,,term-10\n\
             192.0.2.34,02:00:00:00:0b:02,mn-server\n\
             192.0.2.70,02:00:00:00:0b:03,lg-term\n",
        );
        let obs = [
            // Known, any MAC.
            start(T0, M1, "192.0.2.10", "192.0.2.34", 0),
            // 192.0.2.34 answers (no MAC): known.
            Obs::Answered {
                ts_ns: T0 + 1,
                key: FlowKey::new(proto::TCP, ip("192.0.2.10"), 40000, ip("192.0.2.34"), 445),
            },
            // Unknown in mynumber.term: critical; then again (no second alert).
            start(T0 + S, M1, "192.0.2.20", "192.0.2.34", 0),
            arp(T0 + 2 * S, M1, [192, 0, 2, 20], 0),
            // Unknown in lgwan.term: high.
            start(T0 + 3 * S, M2, "192.0.2.80", "192.0.2.100", 0),
            // Known address with another MAC than the inventory's.
            start(T0 + 4 * S, M1, "192.0.2.70", "192.0.2.100", 0),
            // Unknown in inet.term (not protected): nothing.
            start(T0 + 5 * S, M2, "192.0.2.130", "192.0.2.161", 0),
            // An unknown server that answers.
            Obs::Answered {
                ts_ns: T0 + 6 * S,
                key: FlowKey::new(proto::TCP, ip("192.0.2.10"), 40001, ip("192.0.2.40"), 443),
            },
        ];
        let mut cfg = cfg;
        cfg.enabled = true;
        let a: Vec<Alert> = run(cfg.clone(), Some(&p), &obs)
            .into_iter()
            .filter(|a| a.kind == "rogue_host")
            .collect();
        let got: Vec<(String, &str, &str)> = a
            .iter()
            .map(|a| {
                (
                    a.src_ip.map(|i| i.to_string()).unwrap_or_default(),
                    a.severity.as_str(),
                    match &a.evidence {
                        Some(crate::alert::Evidence::Rogue(r)) => r.check,
                        _ => "",
                    },
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("192.0.2.20".into(), "critical", "unknown_address"),
                ("192.0.2.80".into(), "high", "unknown_address"),
                ("192.0.2.70".into(), "high", "mac_mismatch"),
                ("192.0.2.40".into(), "critical", "unknown_address"),
            ]
        );
        assert_eq!(a[0].src_zone.as_deref(), Some("mynumber.term"));
        assert_eq!(a[0].timestamp, T0 + S);
        assert!(a[2].reason.contains("02:00:00:00:0b:03"), "{}", a[2].reason);
        // Only lgwan protected: the My Number hosts pass.
        cfg.protected_zones = vec!["lgwan".into()];
        let n = run(cfg, Some(&p), &obs)
            .iter()
            .filter(|a| a.kind == "rogue_host")
            .count();
        assert_eq!(n, 2);
        // Without an inventory the check is off.
        assert!(run(HostsConfig::default(), Some(&p), &obs)
            .iter()
            .all(|a| a.kind != "rogue_host"));
    }

    #[test]
    fn verdicts_do_not_depend_on_when_time_advances() {
        let p = site();
        let mut obs = Vec::new();
        for m in [M2, M1] {
            let t = T0;
            obs.push(start(t, m, "192.0.2.10", "192.0.2.34", 0));
            obs.push(start(t + S, m, "192.0.2.70", "192.0.2.100", 0));
        }
        obs.push(start(T0 + 100 * S, MR, "192.0.2.130", "192.0.2.161", 0));
        obs.sort_by_key(|o| o.sort_key());
        let mut d1 = HostsDetector::new(HostsConfig::default());
        let mut d2 = HostsDetector::new(HostsConfig::default());
        let a = run_with(&mut d1, Some(&p), &obs, true);
        let b = run_with(&mut d2, Some(&p), &obs, false);
        assert_eq!(a.len(), 2);
        let lines = |v: &[(u64, Alert)]| -> Vec<(u64, String)> {
            v.iter()
                .map(|(t, a)| (*t, serde_json::to_string(a).expect("json")))
                .collect()
        };
        assert_eq!(lines(&a), lines(&b));
        // Same due time: MAC order.
        assert_eq!(a[0].0, a[1].0);
        assert!(lines(&a)[0].1.contains("02:00:00:00:0b:01"));
    }

    #[test]
    fn mac_state_is_bounded_and_evictions_counted() {
        let p = site();
        let cfg = HostsConfig {
            max_macs: 2,
            ..HostsConfig::default()
        };
        let mut obs = Vec::new();
        for i in 0..5u8 {
            obs.push(start(
                T0 + u64::from(i) * S,
                [2, 0, 0, 0, 1, i],
                "192.0.2.10",
                "192.0.2.34",
                0,
            ));
        }
        // M1 bridges, then is pushed out before its verdict: judged early.
        obs.push(start(T0 + 10 * S, M1, "192.0.2.10", "192.0.2.34", 0));
        obs.push(start(T0 + 11 * S, M1, "192.0.2.70", "192.0.2.100", 0));
        obs.push(start(T0 + 12 * S, M2, "192.0.2.12", "192.0.2.34", 0));
        obs.push(start(T0 + 13 * S, MR, "192.0.2.13", "192.0.2.34", 0));
        let mut d = HostsDetector::new(cfg);
        let a = run_with(&mut d, Some(&p), &obs, false);
        assert_eq!(d.macs.len(), 2);
        assert_eq!(d.stats().state_evictions, 6);
        assert_eq!(a.len(), 1, "{a:#?}");
        assert_eq!(a[0].0, T0 + 13 * S, "judged when evicted");
    }
}
