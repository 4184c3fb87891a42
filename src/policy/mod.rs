//! Floor L1. Zone policy: the three-tier model (三層の対策) as data.
//!
//! Owns the rules format (`raw`, documented in `rules/README.md`), the loader that
//! merges an embedded preset with a site file and validates everything at once
//! (`load`), address → zone lookup by longest-prefix match, the per-flow
//! [`Policy::verdict`], and the `zonewatch check` report (`check`).
//! It leaves alone: flows, alerts and the pipeline (they call `verdict` once per
//! flow and cache the small `Copy` [`Verdict`]).

mod check;
mod entry;
mod load;
mod raw;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_guideline;

pub use check::{render_check, render_sources};
pub use load::{toml_error, Diagnostic, Level, LoadError, BASE_PRESETS, MODELS, PRESETS};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;
use std::collections::BTreeMap;
use std::net::IpAddr;

pub use crate::model::Severity;

/// Transport selector of an allow rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP and ICMPv6.
    Icmp,
    /// Any protocol; with ports, TCP or UDP on those ports.
    Any,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::Any => "any",
        }
    }
}

/// IP protocol numbers used by `verdict`.
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;

/// Index of a zone in the policy (`Policy::zone`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneIdx(pub u16);

/// Index of an allow rule in the policy (`Policy::rule`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleIdx(pub u16);

/// A validated zone. Sub-zone `a.b` has `parent` = `a`.
#[derive(Clone, Debug)]
pub struct Zone {
    pub id: String,
    pub name_ja: Option<String>,
    pub name_en: Option<String>,
    pub parent: Option<ZoneIdx>,
    /// The top-level ancestor (itself for a top-level zone).
    pub top: ZoneIdx,
    pub cidrs: Vec<IpNet>,
    pub vlans: Vec<u16>,
    pub external: bool,
    /// Top-level zones only: traffic between two addresses of this zone needs no rule.
    pub intra_zone_allowed: bool,
}

/// A validated host group (relays etc.).
#[derive(Clone, Debug)]
pub struct HostGroup {
    pub id: String,
    pub description: Option<String>,
    pub zone: Option<ZoneIdx>,
    pub cidrs: Vec<IpNet>,
}

/// One side of an allow rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The zone and all its sub-zones.
    Zone(ZoneIdx),
    HostGroup(u16),
    Cidr(IpNet),
}

/// Where a rule came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Preset,
    Site,
}

/// A validated allow rule.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: String,
    pub from: Vec<Endpoint>,
    pub to: Vec<Endpoint>,
    pub proto: Proto,
    /// Inclusive destination port ranges; empty = every port.
    pub ports: Vec<(u16, u16)>,
    pub description: Option<String>,
    /// What the rule rests on (`guideline` in the file).
    pub source: Option<RuleSource>,
    /// The `[[option]]` the rule belongs to (an opt-in rule set).
    pub option: Option<String>,
    pub origin: Origin,
}

/// What kind of source an allow rule rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    /// Primary text was read: `document` and `quote` say which and what.
    Text,
    /// Common practice, not guideline text: `by` says who does it.
    Practice,
    /// Believed to follow the guideline, but no primary text was found: `note` says why.
    Unverified,
    /// A free-text `guideline = "..."` string (site rules, older files): not classified.
    Note,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Text => "text",
            Basis::Practice => "practice",
            Basis::Unverified => "unverified",
            Basis::Note => "note",
        }
    }
}

/// An allow rule's source (`guideline = { basis = ..., ... }` or a string).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSource {
    pub basis: Option<Basis>,
    /// The document (title, edition, issuer), for `text`.
    pub document: Option<String>,
    /// The verbatim passage, for `text`.
    pub quote: Option<String>,
    pub url: Option<String>,
    /// Who does it, for `practice`.
    pub by: Option<String>,
    /// Free text: the whole string of a `note`, or a remark.
    pub note: Option<String>,
}

/// An opt-in rule set declared by a preset (`[[option]]`), and whether the site turned it on.
#[derive(Clone, Debug)]
pub struct RuleOption {
    pub id: String,
    pub description: Option<String>,
    pub enabled: bool,
}

/// Why a declared rule takes no part in verdicts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inactive {
    /// Its `[[option]]` is not in the site's `options`.
    OptionOff(String),
    /// The preset leaves its ports to the site (`ports = ["site"]`) and the site gave none.
    SitePorts,
}

/// Which allowance a flow got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowance {
    Rule(RuleIdx),
    /// Both ends in one top-level zone that allows intra-zone traffic.
    IntraZone(ZoneIdx),
}

/// Why a flow is a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason {
    pub src_zone: ZoneIdx,
    pub dst_zone: ZoneIdx,
}

/// The policy's verdict for one flow (initiator → responder). Small and `Copy`,
/// so a flow can cache it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed {
        rule: Allowance,
    },
    Violation {
        severity: Severity,
        reason: Reason,
    },
    /// An endpoint is in no zone and there is no default zone.
    Unknown,
    /// Segment-local traffic ([`Policy::segment_local`]): it cannot leave the
    /// link it was sent on, so it crosses no zone and no rule judges it. Its
    /// responder zone is the built-in [`LOCAL_ZONE`].
    Local,
}

/// The built-in responder zone of segment-local flows (rules cannot name it).
pub const LOCAL_ZONE: &str = "local";
/// The built-in zone of multicast groups routers can forward (224.0.0.0/4 and
/// ff00::/8 outside the link scope) that no site zone claims; rules may name it
/// or its group addresses.
pub const MULTICAST_ZONE: &str = "multicast";
/// IGMP, always sent with TTL 1 to the link (RFC 3376).
pub const IPPROTO_IGMP: u8 = 2;

/// An address whose packets no router forwards (RFC 3927, RFC 4291, RFC 1112,
/// RFC 919): unspecified (0.0.0.0, ::), limited broadcast, IPv4 link-local
/// 169.254.0.0/16, the IPv4 local network control block 224.0.0.0/24, IPv6
/// link-local fe80::/10, IPv6 multicast of interface- or link-local scope
/// (ffx1::, ffx2::, and the reserved scope 0), loopback.
#[inline]
pub fn link_scoped(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_unspecified()
                || a.is_broadcast()
                || a.is_loopback()
                || (o[0] == 169 && o[1] == 254)
                || (o[0] == 224 && o[1] == 0 && o[2] == 0)
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            if let Some(v4) = a.to_ipv4_mapped() {
                return link_scoped(IpAddr::V4(v4));
            }
            a.is_unspecified()
                || a.is_loopback()
                || (o[0] == 0xfe && o[1] & 0xc0 == 0x80)
                || (o[0] == 0xff && o[1] & 0x0f <= 2)
        }
    }
}

/// Most zones a policy may declare: [`Verdict::pack`] stores a violation's two
/// zone indices in 10 bits each.
pub const MAX_ZONES: usize = 1023;

/// Policy generations a packed verdict can name (its 4-bit slot): a flow
/// table keeps up to this many policies alive at once, so that flows judged
/// before a reload are still described with the policy that judged them.
pub const POLICY_GENERATIONS: usize = 16;

const PACK_KIND_SHIFT: u32 = 30;
const PACK_ALLOWED: u32 = 1;
const PACK_VIOLATION: u32 = 2;
const PACK_UNKNOWN: u32 = 3;
const PACK_GEN_SHIFT: u32 = 26;
const PACK_GEN_MASK: u32 = (POLICY_GENERATIONS as u32 - 1) << PACK_GEN_SHIFT;
const PACK_INTRA: u32 = 1 << 25;
/// With kind 3: segment-local rather than unknown.
const PACK_LOCAL: u32 = 1 << 25;
const PACK_SEV_SHIFT: u32 = 20;
const PACK_ZONE_BITS: u32 = 10;
const PACK_ZONE_MASK: u32 = (1 << PACK_ZONE_BITS) - 1;

const _: () = assert!(MAX_ZONES as u32 <= PACK_ZONE_MASK);

/// The policy generation slot (0..[`POLICY_GENERATIONS`]) of a packed verdict
/// (bits 29..26; 0 for `tag` 0).
#[inline]
pub fn generation_of(tag: u32) -> u8 {
    ((tag & PACK_GEN_MASK) >> PACK_GEN_SHIFT) as u8
}

/// Whether a packed verdict is a violation (cheap: the flow table asks per
/// packet that starts a new second of a flow).
#[inline]
pub fn is_violation_tag(tag: u32) -> bool {
    tag >> PACK_KIND_SHIFT == PACK_VIOLATION
}

impl Verdict {
    /// The verdict as a non-zero `u32`, so a flow can cache it in its 4-byte tag
    /// (0 stays free for "no verdict": the table ran without a policy), in
    /// generation slot 0: `pack_in(0)`.
    ///
    /// | bits | meaning |
    /// |---|---|
    /// | 31..30 | kind: 1 allowed, 2 violation, 3 unknown (0 = no verdict) |
    /// | 29..26 | policy generation slot, 0..15 ([`generation_of`]) |
    /// | allowed: 25 | 0 = by rule, 1 = intra-zone |
    /// | allowed: 24..16 | 0 |
    /// | allowed: 15..0 | rule index, or the top-level zone index (intra-zone) |
    /// | violation: 25..23 | 0 |
    /// | violation: 22..20 | severity (`Severity as u8`, info = 0 .. critical = 4) |
    /// | violation: 19..10, 9..0 | responder zone index, initiator zone index |
    /// | unknown: 25 | 0 = unknown, 1 = local ([`Verdict::Local`]) |
    /// | unknown: 24..0 | 0 |
    ///
    /// Lossless for every loaded policy (the loader caps zones at [`MAX_ZONES`],
    /// rules at 65535).
    #[inline]
    pub fn pack(&self) -> u32 {
        self.pack_in(0)
    }

    /// [`pack`](Self::pack) with policy generation `slot` (taken modulo
    /// [`POLICY_GENERATIONS`]) in bits 29..26: the slot of the flow table's
    /// policy that made this verdict ([`generation_of`] reads it back).
    #[inline]
    pub fn pack_in(&self, slot: u8) -> u32 {
        let gen = (u32::from(slot) << PACK_GEN_SHIFT) & PACK_GEN_MASK;
        let body = match *self {
            Verdict::Allowed {
                rule: Allowance::Rule(r),
            } => PACK_ALLOWED << PACK_KIND_SHIFT | u32::from(r.0),
            Verdict::Allowed {
                rule: Allowance::IntraZone(z),
            } => PACK_ALLOWED << PACK_KIND_SHIFT | PACK_INTRA | u32::from(z.0),
            Verdict::Violation { severity, reason } => {
                PACK_VIOLATION << PACK_KIND_SHIFT
                    | (severity as u32) << PACK_SEV_SHIFT
                    | (u32::from(reason.dst_zone.0) & PACK_ZONE_MASK) << PACK_ZONE_BITS
                    | (u32::from(reason.src_zone.0) & PACK_ZONE_MASK)
            }
            Verdict::Unknown => PACK_UNKNOWN << PACK_KIND_SHIFT,
            Verdict::Local => PACK_UNKNOWN << PACK_KIND_SHIFT | PACK_LOCAL,
        };
        body | gen
    }

    /// Inverse of [`pack_in`](Self::pack_in) whatever the slot (it is ignored);
    /// `None` for a tag without a kind (0: no verdict) or with a severity `pack`
    /// never writes.
    pub fn unpack(tag: u32) -> Option<Verdict> {
        match tag >> PACK_KIND_SHIFT {
            PACK_ALLOWED => {
                let idx = (tag & 0xffff) as u16;
                let rule = if tag & PACK_INTRA != 0 {
                    Allowance::IntraZone(ZoneIdx(idx))
                } else {
                    Allowance::Rule(RuleIdx(idx))
                };
                Some(Verdict::Allowed { rule })
            }
            PACK_VIOLATION => {
                let sev = (tag >> PACK_SEV_SHIFT) & 0x7;
                let severity = *Severity::ALL.get(sev as usize)?;
                Some(Verdict::Violation {
                    severity,
                    reason: Reason {
                        src_zone: ZoneIdx((tag & PACK_ZONE_MASK) as u16),
                        dst_zone: ZoneIdx(((tag >> PACK_ZONE_BITS) & PACK_ZONE_MASK) as u16),
                    },
                })
            }
            PACK_UNKNOWN if tag & PACK_LOCAL != 0 => Some(Verdict::Local),
            PACK_UNKNOWN => Some(Verdict::Unknown),
            _ => None,
        }
    }

    /// `"allowed"`, `"violation"` or `"unknown"`.
    pub fn kind_str(&self) -> &'static str {
        match self {
            Verdict::Allowed { .. } => "allowed",
            Verdict::Violation { .. } => "violation",
            Verdict::Unknown => "unknown",
            Verdict::Local => "local",
        }
    }
}

/// Severity selector side: a zone (and its sub-zones) or `*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sel {
    Any,
    Zone(ZoneIdx),
}

/// Above this many zones the per-pair index (zones² lists) is not built and
/// `verdict` scans every rule.
const MAX_INDEXED_ZONES: usize = 256;

/// A loaded, validated policy.
#[derive(Debug)]
pub struct Policy {
    pub site_name: Option<String>,
    pub guideline: Option<String>,
    pub preset: Option<String>,
    /// Unique in the process: tells a policy from one loaded later (a cache
    /// keyed by it cannot mistake a reloaded policy for the one it replaced).
    pub serial: u64,
    /// Opt-in rule sets, in declaration order.
    pub options: Vec<RuleOption>,
    /// Rules that take no part in verdicts, with why (shown by `check --sources`).
    pub inactive: Vec<(Rule, Inactive)>,
    zones: Vec<Zone>,
    hostgroups: Vec<HostGroup>,
    rules: Vec<Rule>,
    default_zone: Option<ZoneIdx>,
    /// (initiator, responder) → severity, most specific first after sorting.
    severity: Vec<(Sel, Sel, Severity)>,
    default_severity: Severity,
    v4: PrefixMap<Ipv4Net, Vec<ZoneIdx>>,
    v6: PrefixMap<Ipv6Net, Vec<ZoneIdx>>,
    /// Zones that list VLANs but no CIDRs: matched by VLAN alone.
    vlan_only: BTreeMap<u16, ZoneIdx>,
    /// Every VLAN any zone lists → the first zone (in declaration order) that
    /// lists it: the zone of a link-scoped address seen on that VLAN.
    vlan_zone: BTreeMap<u16, ZoneIdx>,
    /// The built-in zones [`LOCAL_ZONE`] and [`MULTICAST_ZONE`].
    local_zone: ZoneIdx,
    multicast_zone: ZoneIdx,
    /// (last address, block) of every IPv4 zone block of /30 or wider, sorted:
    /// a sender's directed broadcast into its own block stays on its link
    /// (routers do not forward directed broadcasts, RFC 2644); one aimed at
    /// another block is judged like any flow.
    directed_broadcast: Vec<(u32, Ipv4Net)>,
    /// Per (initiator zone, responder zone), `src * zones + dst`: the rules that
    /// can match that pair, in file order (so first match still wins), built
    /// once at load by [`Policy::index_pairs`].
    pair_rules: Vec<Vec<u16>>,
    /// Per zone pair: the severity of unallowed traffic (`severity_for`, precomputed).
    pair_severity: Vec<Severity>,
}

impl Policy {
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }
    pub fn zone(&self, z: ZoneIdx) -> &Zone {
        &self.zones[usize::from(z.0)]
    }
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
    pub fn rule(&self, r: RuleIdx) -> &Rule {
        &self.rules[usize::from(r.0)]
    }
    pub fn hostgroups(&self) -> &[HostGroup] {
        &self.hostgroups
    }
    pub fn default_zone(&self) -> Option<ZoneIdx> {
        self.default_zone
    }
    pub fn zone_by_id(&self, id: &str) -> Option<ZoneIdx> {
        self.zones
            .iter()
            .position(|z| z.id == id)
            .map(|i| ZoneIdx(i as u16))
    }

    /// True if `z` is `anc` or one of its sub-zones.
    pub fn is_within(&self, mut z: ZoneIdx, anc: ZoneIdx) -> bool {
        loop {
            if z == anc {
                return true;
            }
            match self.zones.get(usize::from(z.0)).and_then(|x| x.parent) {
                Some(p) => z = p,
                None => return false,
            }
        }
    }

    /// Zone of an address by longest-prefix match over the zones' CIDRs; among zones
    /// claiming the same prefix the VLAN picks (a zone listing `vlan`, else one
    /// listing no VLANs, else the first). Then VLAN-only zones, then the default zone.
    /// No allocation.
    ///
    /// A [`link_scoped`] address (fe80::/10, 169.254.0.0/16, 0.0.0.0, ::,
    /// link-scope multicast, broadcast) belongs to no zone by prefix and never to
    /// the default zone: it takes the zone that lists its VLAN, else none.
    pub fn zone_of(&self, ip: IpAddr, vlan: Option<u16>) -> Option<ZoneIdx> {
        if link_scoped(ip) {
            return vlan.and_then(|v| self.vlan_zone.get(&v).copied());
        }
        let hit = match ip {
            IpAddr::V4(a) => self
                .v4
                .get_lpm(&Ipv4Net::from(a))
                .map(|(_, zs)| zs.as_slice()),
            IpAddr::V6(a) => self
                .v6
                .get_lpm(&Ipv6Net::from(a))
                .map(|(_, zs)| zs.as_slice()),
        };
        if let Some(zs) = hit {
            if let Some(v) = vlan {
                if let Some(z) = zs.iter().find(|z| self.zone(**z).vlans.contains(&v)) {
                    return Some(*z);
                }
            }
            return zs
                .iter()
                .find(|z| self.zone(**z).vlans.is_empty())
                .or_else(|| zs.first())
                .copied();
        }
        if let Some(z) = vlan.and_then(|v| self.vlan_only.get(&v)) {
            return Some(*z);
        }
        self.default_zone
    }

    fn endpoint_matches(&self, e: &Endpoint, ip: IpAddr, zone: ZoneIdx) -> bool {
        match e {
            Endpoint::Zone(z) => self.is_within(zone, *z),
            Endpoint::HostGroup(h) => self
                .hostgroups
                .get(usize::from(*h))
                .is_some_and(|g| g.cidrs.iter().any(|c| c.contains(&ip))),
            Endpoint::Cidr(c) => c.contains(&ip),
        }
    }

    fn rule_matches(&self, r: &Rule, proto: u8, dst_port: u16) -> bool {
        let l4 = matches!(proto, IPPROTO_TCP | IPPROTO_UDP);
        let proto_ok = match r.proto {
            Proto::Tcp => proto == IPPROTO_TCP,
            Proto::Udp => proto == IPPROTO_UDP,
            Proto::Icmp => matches!(proto, IPPROTO_ICMP | IPPROTO_ICMPV6),
            Proto::Any => r.ports.is_empty() || l4,
        };
        proto_ok
            && (r.ports.is_empty()
                || r.ports
                    .iter()
                    .any(|&(lo, hi)| lo <= dst_port && dst_port <= hi))
    }

    /// The zone that lists VLAN `v` (the first one declared, if several do).
    pub fn vlan_zone(&self, v: u16) -> Option<ZoneIdx> {
        self.vlan_zone.get(&v).copied()
    }

    /// The built-in responder zone of segment-local flows.
    pub fn local_zone(&self) -> ZoneIdx {
        self.local_zone
    }

    /// The built-in zone of routable multicast groups no site zone claims.
    pub fn multicast_zone(&self) -> ZoneIdx {
        self.multicast_zone
    }

    /// Whether a flow from `src` to `dst` cannot leave the link it was sent on:
    /// either address is [`link_scoped`] (link-local unicast or multicast,
    /// limited broadcast, unspecified: DHCP and DHCPv6 included), the
    /// responder is the directed broadcast of a zone block that holds the
    /// initiator, the protocol is IGMP
    /// or ARP (protocol 0), or `icmp6_type` is Neighbor Discovery (133–137) or
    /// MLD (130–132, 143), which hosts send with hop limit 1 or 255 to the
    /// link only (RFC 4861, RFC 3810). `icmp6_type` is the flow key's `sport`
    /// for ICMPv6 and ignored otherwise.
    pub fn segment_local(&self, src: IpAddr, dst: IpAddr, proto: u8, icmp6_type: u16) -> bool {
        if proto == IPPROTO_IGMP || proto == 0 || link_scoped(src) || link_scoped(dst) {
            return true;
        }
        if proto == IPPROTO_ICMPV6 && matches!(icmp6_type, 130..=137 | 143) {
            return true;
        }
        let (IpAddr::V4(d), IpAddr::V4(s)) = (dst, src) else {
            return false;
        };
        let d = u32::from(d);
        let from = self.directed_broadcast.partition_point(|(b, _)| *b < d);
        self.directed_broadcast[from..]
            .iter()
            .take_while(|(b, _)| *b == d)
            .any(|(_, net)| net.contains(&s))
    }

    /// The (initiator, responder) zones of a flow as every output shows them:
    /// a segment-local flow ([`segment_local`](Self::segment_local)) goes from
    /// its sender's zone to [`LOCAL_ZONE`]; any other from [`zone_of`](Self::zone_of)
    /// its initiator to that of its responder.
    pub fn flow_zones(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        sport: u16,
        vlan: Option<u16>,
    ) -> (Option<ZoneIdx>, Option<ZoneIdx>) {
        let sz = self.zone_of(src, vlan);
        if self.segment_local(src, dst, proto, sport) {
            (sz, Some(self.local_zone))
        } else {
            (sz, self.zone_of(dst, vlan))
        }
    }

    /// The verdict of a flow given as a key's fields: [`Verdict::Local`] for
    /// segment-local traffic, else [`verdict`](Self::verdict). `sport` is the
    /// initiator's port (the ICMP type for ICMP).
    pub fn judge(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        sport: u16,
        dport: u16,
        vlan: Option<u16>,
    ) -> Verdict {
        if self.segment_local(src, dst, proto, sport) {
            return Verdict::Local;
        }
        self.routed_verdict(src, dst, proto, dport, vlan)
    }

    /// The verdict for a flow from `src` (initiator) to `dst` (responder).
    /// `proto` is the IP protocol number, `dst_port` is ignored for protocols
    /// without ports. The first matching allow rule wins; otherwise traffic inside
    /// one top-level zone is allowed (unless that zone sets
    /// `intra_zone_allowed = false`); otherwise it is a violation with the severity
    /// of the most specific `[severity]` entry. Segment-local traffic by its
    /// addresses or protocol is [`Verdict::Local`] first ([`judge`](Self::judge)
    /// also knows the ICMPv6 type). No allocation.
    pub fn verdict(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        dst_port: u16,
        vlan: Option<u16>,
    ) -> Verdict {
        if self.segment_local(src, dst, proto, u16::MAX) {
            return Verdict::Local;
        }
        self.routed_verdict(src, dst, proto, dst_port, vlan)
    }

    /// [`verdict`](Self::verdict) of a flow already known not to be
    /// segment-local: the rules, the zones, the severity table.
    fn routed_verdict(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        dst_port: u16,
        vlan: Option<u16>,
    ) -> Verdict {
        let (Some(sz), Some(dz)) = (self.zone_of(src, vlan), self.zone_of(dst, vlan)) else {
            return Verdict::Unknown;
        };
        let pair = usize::from(sz.0) * self.zones.len() + usize::from(dz.0);
        let matches = |i: u16| {
            let r = &self.rules[usize::from(i)];
            self.rule_matches(r, proto, dst_port)
                && r.from.iter().any(|e| self.endpoint_matches(e, src, sz))
                && r.to.iter().any(|e| self.endpoint_matches(e, dst, dz))
        };
        let first = match self.pair_rules.get(pair) {
            Some(candidates) => candidates.iter().copied().find(|&i| matches(i)),
            // Too many zones to index every pair: scan all rules.
            None => (0..self.rules.len() as u16).find(|&i| matches(i)),
        };
        if let Some(i) = first {
            return Verdict::Allowed {
                rule: Allowance::Rule(RuleIdx(i)),
            };
        }
        let top = self.zone(sz).top;
        if top == self.zone(dz).top && self.zone(top).intra_zone_allowed {
            return Verdict::Allowed {
                rule: Allowance::IntraZone(top),
            };
        }
        Verdict::Violation {
            severity: self
                .pair_severity
                .get(pair)
                .copied()
                .unwrap_or_else(|| self.severity_for(sz, dz)),
            reason: Reason {
                src_zone: sz,
                dst_zone: dz,
            },
        }
    }

    /// Build the per-zone-pair rule lists and severities `verdict` uses, so a
    /// verdict scans only the rules that can apply to its pair (a zone endpoint
    /// must contain the flow's zone; host-group and CIDR endpoints may match any
    /// zone and stay candidates everywhere).
    pub(crate) fn index_pairs(&mut self) {
        let n = self.zones.len();
        if n > MAX_INDEXED_ZONES {
            return;
        }
        let could = |e: &Endpoint, z: ZoneIdx| match e {
            Endpoint::Zone(a) => self.is_within(z, *a),
            Endpoint::HostGroup(_) | Endpoint::Cidr(_) => true,
        };
        let mut pair_rules = Vec::with_capacity(n * n);
        let mut pair_severity = Vec::with_capacity(n * n);
        for s in 0..n {
            for d in 0..n {
                let (sz, dz) = (ZoneIdx(s as u16), ZoneIdx(d as u16));
                let rules = self
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| {
                        r.from.iter().any(|e| could(e, sz)) && r.to.iter().any(|e| could(e, dz))
                    })
                    .map(|(i, _)| i as u16)
                    .collect();
                pair_rules.push(rules);
                pair_severity.push(self.severity_for(sz, dz));
            }
        }
        self.pair_rules = pair_rules;
        self.pair_severity = pair_severity;
    }

    fn sel_depth(&self, s: Sel, z: ZoneIdx) -> Option<usize> {
        match s {
            Sel::Any => Some(usize::MAX),
            Sel::Zone(a) => {
                let mut d = 0;
                let mut cur = z;
                loop {
                    if cur == a {
                        return Some(d);
                    }
                    cur = self.zone(cur).parent?;
                    d += 1;
                }
            }
        }
    }

    /// Severity of unallowed traffic from zone `s` to zone `d`: the `[severity]`
    /// entry whose initiator side is closest to `s` (exact zone, then its parents,
    /// then `*`), ties broken by the responder side the same way; else the default.
    pub fn severity_for(&self, s: ZoneIdx, d: ZoneIdx) -> Severity {
        let mut best: Option<((usize, usize), Severity)> = None;
        for &(a, b, sev) in &self.severity {
            if let (Some(da), Some(db)) = (self.sel_depth(a, s), self.sel_depth(b, d)) {
                let better = match best {
                    None => true,
                    Some((k, _)) => (da, db) < k,
                };
                if better {
                    best = Some(((da, db), sev));
                }
            }
        }
        best.map_or(self.default_severity, |(_, s)| s)
    }

    pub fn default_severity(&self) -> Severity {
        self.default_severity
    }

    /// Human-readable description of a verdict (`rule L3`, `critical: lgwan.term -> internet ...`).
    pub fn describe(&self, v: &Verdict) -> String {
        match v {
            Verdict::Allowed {
                rule: Allowance::Rule(r),
            } => format!("allowed by rule {}", self.rule(*r).id),
            Verdict::Allowed {
                rule: Allowance::IntraZone(z),
            } => format!("allowed inside zone {}", self.zone(*z).id),
            Verdict::Violation { severity, reason } => format!(
                "{}: no rule allows {} -> {}",
                severity.as_str(),
                self.zone(reason.src_zone).id,
                self.zone(reason.dst_zone).id
            ),
            Verdict::Unknown => "unknown: address in no zone".to_string(),
            Verdict::Local => "segment-local: cannot leave its link".to_string(),
        }
    }
}
