//! Floor L2. What the report accumulates while the pipeline runs: per worker, finished
//! flows by zone pair with their initiators ([`ZoneAcc`], fed once per finished
//! flow); on the capture thread, time gaps and backward steps of the merged
//! packet stream ([`GapTracker`], one compare per packet).

use super::{policy_vlan, FlowRecord};
use crate::policy::{generation_of, Policy, Verdict, POLICY_GENERATIONS};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// Zone id used for an address in no zone (and for every flow without rules).
pub const NO_ZONE: &str = "-";

/// Initiator addresses one worker tracks per zone pair; further new addresses
/// are counted in [`PairAcc::untracked`] (a spoofed flood cannot grow memory).
pub const MAX_TALKERS_PER_PAIR: usize = 65_536;

/// Initiator addresses one worker tracks over all its zone pairs.
pub const MAX_TALKERS_PER_WORKER: usize = 262_144;

/// Initiators listed per zone pair.
pub const TOP_TALKERS: usize = 5;

/// Flows, packets and bytes (both directions, bytes on the wire).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
}

impl Traffic {
    pub fn add(&mut self, o: &Traffic) {
        self.flows += o.flows;
        self.packets += o.packets;
        self.bytes += o.bytes;
    }
}

/// One zone pair's counts.
#[derive(Clone, Debug, Default)]
pub struct PairAcc {
    pub traffic: Traffic,
    /// Flows by verdict, violations by severity.
    pub verdicts: crate::flow::PolicyStats,
    /// Traffic per initiator address (at most [`MAX_TALKERS_PER_PAIR`]), keyed
    /// by `addr_key` (one integer to hash per flow).
    pub talkers: HashMap<u128, Traffic, foldhash::fast::RandomState>,
    /// Traffic of initiators that found the maps full.
    pub untracked: Traffic,
}

impl PairAcc {
    /// Add `o` into `self` (talker maps are merged without a cap: this runs
    /// once, at the end, on already bounded maps).
    pub fn merge(&mut self, o: PairAcc) {
        self.traffic.add(&o.traffic);
        self.verdicts.merge(&o.verdicts);
        self.untracked.add(&o.untracked);
        if self.talkers.len() < o.talkers.len() {
            let mine = std::mem::replace(&mut self.talkers, o.talkers);
            for (ip, t) in mine {
                self.talkers.entry(ip).or_default().add(&t);
            }
        } else {
            for (ip, t) in o.talkers {
                self.talkers.entry(ip).or_default().add(&t);
            }
        }
    }

    /// Traffic of one initiator, if tracked.
    pub fn talker(&self, ip: IpAddr) -> Option<&Traffic> {
        let k = match ip {
            IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
            IpAddr::V6(a) => u128::from(a),
        };
        self.talkers.get(&k)
    }

    /// The `n` initiators with the most bytes (ties: most flows, then the
    /// lower address). One pass over the map, keeping the best `n`.
    pub fn top(&self, n: usize) -> Vec<(IpAddr, Traffic)> {
        // Sort key: larger is better.
        let rank = |a: u128, t: &Traffic| (t.bytes, t.flows, std::cmp::Reverse(a));
        let mut best: Vec<(u128, Traffic)> = Vec::with_capacity(n + 1);
        for (a, t) in &self.talkers {
            if best.len() == n && best.last().is_some_and(|(b, u)| rank(*a, t) <= rank(*b, u)) {
                continue;
            }
            let pos = best
                .iter()
                .position(|(b, u)| rank(*a, t) > rank(*b, u))
                .unwrap_or(best.len());
            best.insert(pos, (*a, *t));
            best.truncate(n);
        }
        best.into_iter().map(|(a, t)| (key_addr(a), t)).collect()
    }
}

/// The initiator's address as one integer: IPv6 as is, IPv4 as its
/// IPv4-mapped IPv6 address (`::ffff:a.b.c.d`; a real IPv6 packet from such an
/// address would be counted with the IPv4 one).
#[inline]
fn addr_key(k: &crate::packet::FlowKey) -> u128 {
    if k.v6 {
        u128::from_be_bytes(k.src)
    } else {
        0xffff_0000_0000
            | u128::from(u32::from_be_bytes([
                k.src[12], k.src[13], k.src[14], k.src[15],
            ]))
    }
}

/// Inverse of [`addr_key`].
fn key_addr(k: u128) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(k);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// Finished flows by (initiator zone id, responder zone id).
pub type Pairs = BTreeMap<(String, String), PairAcc>;

/// Zone index meaning "in no zone" in a raw key.
pub(crate) const NONE: u16 = u16::MAX;

/// The id of packed zone index `z` in `policy`, or [`NO_ZONE`] (no rules, no
/// zone, or an index the policy does not have).
pub(crate) fn zone_name(policy: Option<&Policy>, z: u16) -> String {
    match policy {
        Some(p) if z != NONE => p
            .zones()
            .get(usize::from(z))
            .map_or_else(|| NO_ZONE.to_string(), |z| z.id.clone()),
        _ => NO_ZONE.to_string(),
    }
}

/// Per-worker accumulator of finished flows by (initiator zone, responder
/// zone). Keys are zone indices of the policy generation that judged the flow
/// (no string work per flow); [`resolve_slot`](Self::resolve_slot) turns them
/// into zone ids before that generation's policy goes away, and at the end.
#[derive(Debug, Default)]
pub struct ZoneAcc {
    raw: HashMap<u64, PairAcc, foldhash::fast::FixedState>,
    /// (initiator zone id, responder zone id) → counts.
    named: BTreeMap<(String, String), PairAcc>,
    /// Addresses tracked over all pairs.
    tracked: usize,
}

impl ZoneAcc {
    pub fn new() -> ZoneAcc {
        ZoneAcc::default()
    }

    /// Count one finished flow. `policy` is the policy of the record's
    /// generation slot (`None` without rules). At most two zone lookups (not
    /// for violations, whose tag holds the zones) and two map probes.
    pub fn flow_ended(&mut self, rec: &FlowRecord, policy: Option<&Policy>) {
        let verdict = if rec.tag == 0 {
            None
        } else {
            Verdict::unpack(rec.tag)
        };
        let (src, dst) = match (verdict, policy) {
            (Some(Verdict::Violation { reason, .. }), _) => (reason.src_zone.0, reason.dst_zone.0),
            (Some(_), Some(p)) => {
                let k = &rec.key;
                let z = |z: Option<crate::policy::ZoneIdx>| z.map_or(NONE, |z| z.0);
                let (s, d) = p.flow_zones(k.src_ip(), k.dst_ip(), k.proto, k.sport, policy_vlan(k));
                (z(s), z(d))
            }
            _ => (NONE, NONE),
        };
        let slot = if verdict.is_some() {
            generation_of(rec.tag)
        } else {
            0
        };
        let key = u64::from(slot) << 32 | u64::from(src) << 16 | u64::from(dst);
        let t = Traffic {
            flows: 1,
            packets: rec.orig_pkts + rec.resp_pkts,
            bytes: rec.orig_bytes + rec.resp_bytes,
        };
        let pair = self.raw.entry(key).or_default();
        pair.traffic.add(&t);
        if let Some(v) = &verdict {
            pair.verdicts.count(v);
        }
        let ip = addr_key(&rec.key);
        if let Some(x) = pair.talkers.get_mut(&ip) {
            x.add(&t);
        } else if pair.talkers.len() < MAX_TALKERS_PER_PAIR && self.tracked < MAX_TALKERS_PER_WORKER
        {
            pair.talkers.insert(ip, t);
            self.tracked += 1;
        } else {
            pair.untracked.add(&t);
        }
    }

    /// Name the pairs of generation `slot` with `policy`'s zone ids (call
    /// before the slot gets another policy; `None` = every slot, each with
    /// `gens[slot]`).
    pub fn resolve_slot(&mut self, slot: u8, policy: Option<&Policy>) {
        let keys: Vec<u64> = self
            .raw
            .keys()
            .copied()
            .filter(|k| (k >> 32) as u8 == slot)
            .collect();
        for k in keys {
            if let Some(pair) = self.raw.remove(&k) {
                let names = (
                    zone_name(policy, (k >> 16) as u16),
                    zone_name(policy, k as u16),
                );
                self.named.entry(names).or_default().merge(pair);
            }
        }
    }

    /// Resolve every slot with its policy (`gens[slot]`) and hand the named pairs out.
    pub fn finish(mut self, gens: &[Option<std::sync::Arc<Policy>>; POLICY_GENERATIONS]) -> Pairs {
        for (slot, p) in gens.iter().enumerate() {
            self.resolve_slot(slot as u8, p.as_deref());
        }
        // Anything left names a slot beyond the array (cannot happen): no zones.
        let rest: Vec<u64> = self.raw.keys().copied().collect();
        for k in rest {
            self.resolve_slot((k >> 32) as u8, None);
        }
        self.named
    }
}

/// Merge the workers' named pairs.
pub fn merge_pairs(parts: Vec<Pairs>) -> Pairs {
    let mut out = Pairs::new();
    for part in parts {
        for (k, v) in part {
            match out.get_mut(&k) {
                Some(acc) => acc.merge(v),
                None => {
                    out.insert(k, v);
                }
            }
        }
    }
    out
}

/// Default gap threshold: 60 s of packet time without a packet.
pub const DEFAULT_GAP_NS: u64 = 60_000_000_000;

/// Gaps listed in full; later ones are only counted.
pub const MAX_GAPS_LISTED: usize = 20;

/// One silence in the merged packet stream: no packet between `from_ns` and `to_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    pub from_ns: u64,
    pub to_ns: u64,
}

/// Capture-thread watch over packet time: gaps longer than the threshold
/// (measured from the newest time seen, so a step back and forward again is
/// not a gap) and packets older than the one before them.
#[derive(Clone, Debug)]
pub struct GapTracker {
    threshold_ns: u64,
    newest: Option<u64>,
    prev: u64,
    /// The first [`MAX_GAPS_LISTED`] gaps.
    pub gaps: Vec<Gap>,
    /// Every gap over the threshold.
    pub count: u64,
    /// Packets whose time is before the previous packet's.
    pub backwards: u64,
}

impl GapTracker {
    pub fn new(threshold_ns: u64) -> GapTracker {
        GapTracker {
            threshold_ns,
            newest: None,
            prev: 0,
            gaps: Vec::with_capacity(MAX_GAPS_LISTED),
            count: 0,
            backwards: 0,
        }
    }

    pub fn threshold_ns(&self) -> u64 {
        self.threshold_ns
    }

    /// One packet at `ts_ns` (no allocation: the gap list is reserved).
    #[inline]
    pub fn see(&mut self, ts_ns: u64) {
        match self.newest {
            None => self.newest = Some(ts_ns),
            Some(n) => {
                if ts_ns < self.prev {
                    self.backwards += 1;
                }
                if ts_ns > n {
                    if ts_ns - n > self.threshold_ns {
                        self.count += 1;
                        if self.gaps.len() < MAX_GAPS_LISTED {
                            self.gaps.push(Gap {
                                from_ns: n,
                                to_ns: ts_ns,
                            });
                        }
                    }
                    self.newest = Some(ts_ns);
                }
            }
        }
        self.prev = ts_ns;
    }
}

/// What the pipeline hands the report besides the summary's counts.
#[derive(Debug, Default)]
pub struct ReportData {
    /// Finished flows by (initiator zone id, responder zone id), all workers merged.
    pub pairs: Pairs,
    /// The capture thread's gap watch.
    pub gaps: Option<GapTracker>,
}
