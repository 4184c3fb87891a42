//! Floor L2. Per-worker bidirectional flow tracking.
//!
//! - `hash`: the keyed symmetric flow hash the dispatcher computes once per packet
//!   (`meta.hash = hasher.hash_packet(&meta)`); tables never hash keys themselves.
//! - `table`: the flow table (slab of 104-byte entries + open-addressing index),
//!   timeouts on packet time, eviction under a hard cap; `update_batch` prefetches.
//! - `record`: finished-flow records and the policy's facts about them (their
//!   JSON line is `crate::format::flow_line`'s, on the output floor).
//! - `zones`: packets and bytes by (zone, zone, verdict) cell beside a table's
//!   slab, filled by the table, drained by `metrics`.

pub mod hash;
pub mod record;
pub mod table;
pub mod tally;
pub mod zones;

pub use hash::FlowHasher;
pub use record::{
    policy_vlan, EndReason, FlowClose, FlowRecord, FlowStart, PolicyFacts, Refusal, TcpState,
};

use crate::packet::FlowKey;
pub use table::{FlowConfig, FlowStats, FlowTable, PolicyStats};

/// `ts_ns >> SEEN_SHIFT` buckets of packet time (2^30 ns, about 1.07 s) for
/// [`FlowSink::flow_seen`].
pub const SEEN_SHIFT: u32 = 30;

/// Receives every flow the table finishes (ended, timed out, evicted, flushed).
pub trait FlowSink {
    fn flow_ended(&mut self, rec: &FlowRecord);

    /// Every new flow, once, when the packet creating it is accounted (so
    /// detectors and alerts need not wait for the flow to end). The default
    /// hands violations to [`flow_violation`](Self::flow_violation).
    fn flow_started(&mut self, start: &FlowStart) {
        if let Some(crate::policy::Verdict::Violation { .. }) =
            crate::policy::Verdict::unpack(start.tag)
        {
            self.flow_violation(start);
        }
    }

    /// A new flow got a `Violation` verdict: called once per such flow, when
    /// the packet creating it is accounted (never for allowed or unknown
    /// flows, replies, ICMP errors joining a known flow, or without a policy).
    /// Only through the default [`flow_started`](Self::flow_started).
    fn flow_violation(&mut self, start: &FlowStart) {
        let _ = start;
    }

    /// A violating flow (its packed verdict `tag`) carried a packet at `ts_ns`
    /// in a later [`SEEN_SHIFT`] bucket of packet time (about a second) than
    /// its previous packet: alerts learn how long a violation lasted, to
    /// within that bucket, at one call per flow and second.
    /// A packet of flow `s.key` arrived on other VLAN ids (`s.key.vlan`) than
    /// the first packet of its direction, sent by `s.mac` (`s.mac_is_initiator`
    /// tells the direction). Called once per flow, and only while VLAN ids are
    /// not part of the flow key. `s.tag` is the flow's verdict.
    fn flow_vlan_moved(&mut self, s: &FlowStart) {
        let _ = s;
    }

    fn flow_seen(&mut self, key: &FlowKey, tag: u32, ts_ns: u64) {
        let _ = (key, tag, ts_ns);
    }

    /// The responder sent its first packet (for TCP: the SYN-ACK or whatever
    /// came first), at packet time `ts_ns`.
    fn flow_answered(&mut self, key: &FlowKey, ts_ns: u64) {
        let _ = (key, ts_ns);
    }

    /// The attempt was refused: the responder reset a TCP flow before it was
    /// established, or an ICMP error quoting the flow arrived.
    fn flow_refused(&mut self, key: &FlowKey, ts_ns: u64, how: Refusal) {
        let _ = (key, ts_ns, how);
    }

    /// A TCP flow closed (FIN both ways) or was reset, at the packet that did
    /// it: detectors see the outcome without waiting for expiry.
    fn flow_closed(&mut self, close: &FlowClose) {
        let _ = close;
    }

    /// An ARP packet (the table counts it and keeps no flow).
    fn arp(&mut self, meta: &crate::packet::PacketMeta) {
        let _ = meta;
    }
}

/// A sink that keeps records in memory (tests, `check --against` later).
impl FlowSink for Vec<FlowRecord> {
    fn flow_ended(&mut self, rec: &FlowRecord) {
        self.push(*rec);
    }
}
