//! Floor L3 (`detect`). What workers observe for the detectors, at packet time.

use crate::flow::{FlowClose, FlowStart, Refusal};
use crate::packet::{Addr, FlowKey, PacketMeta};

/// One observation from a worker. Each carries the packet time of the packet
/// that caused it; a worker reports in packet order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Obs {
    /// A new flow (initiator → responder), with its packed verdict.
    Start(FlowStart),
    /// The responder's first packet.
    Answered { ts_ns: u64, key: FlowKey },
    /// A refused attempt (RST before the handshake, or an ICMP error).
    Refused {
        ts_ns: u64,
        key: FlowKey,
        how: Refusal,
    },
    /// A TCP flow closed or reset.
    Closed(FlowClose),
    /// An ARP packet.
    Arp(ArpObs),
    /// A violating flow (packed verdict `tag`) was active again in a later
    /// second ([`crate::flow::FlowSink::flow_seen`]); for alerts' `last_seen`.
    Seen { ts_ns: u64, key: FlowKey, tag: u32 },
    /// A packet of a known flow on other VLANs than its direction's first
    /// packet ([`crate::flow::FlowSink::flow_vlan_moved`]; once per flow): the
    /// key holds the packet's VLANs, `mac` its sender. With VLANs out of the
    /// flow key this is how the same traffic seen on two segments shows.
    Moved(FlowStart),
}

/// The parts of an ARP packet detectors use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpObs {
    pub ts_ns: u64,
    /// Sender and target protocol addresses (IPv4, as stored in flow keys).
    pub sender: Addr,
    pub target: Addr,
    pub mac: [u8; 6],
    /// 1 request, 2 reply.
    pub op: u16,
    pub vlan: [u16; 2],
}

impl ArpObs {
    pub fn from_meta(m: &PacketMeta) -> ArpObs {
        ArpObs {
            ts_ns: m.ts_ns,
            sender: m.key.src,
            target: m.key.dst,
            mac: m.src_mac,
            op: m.key.sport,
            vlan: m.key.vlan,
        }
    }
}

/// Release order of observations: (time, kind, key); total, so the merge of
/// per-worker streams gives one order whatever the worker count.
pub type SortKey = (u64, u8, Addr, Addr, u16, u16, u8, [u16; 2], u16);

impl Obs {
    pub fn ts_ns(&self) -> u64 {
        match self {
            Obs::Start(s) | Obs::Moved(s) => s.ts_ns,
            Obs::Answered { ts_ns, .. } | Obs::Refused { ts_ns, .. } | Obs::Seen { ts_ns, .. } => {
                *ts_ns
            }
            Obs::Closed(c) => c.ts_ns,
            Obs::Arp(a) => a.ts_ns,
        }
    }

    pub fn sort_key(&self) -> SortKey {
        let (rank, k) = match self {
            Obs::Start(s) => (0, &s.key),
            Obs::Answered { key, .. } => (1, key),
            Obs::Refused { key, .. } => (2, key),
            Obs::Closed(c) => (3, &c.key),
            Obs::Arp(a) => return (a.ts_ns, 4, a.sender, a.target, a.op, 0, 0, a.vlan, 0),
            Obs::Seen { key, .. } => (5, key),
            Obs::Moved(s) => (6, &s.key),
        };
        (
            self.ts_ns(),
            rank,
            k.src,
            k.dst,
            k.sport,
            k.dport,
            k.proto,
            k.vlan,
            k.link,
        )
    }
}
