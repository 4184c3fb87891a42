//! Per-worker bidirectional flow tracking.
//!
//! - `hash`: the keyed symmetric flow hash the dispatcher computes once per packet
//!   (`meta.hash = hasher.hash_packet(&meta)`); tables never hash keys themselves.
//! - `table`: the flow table (slab of 96-byte entries + open-addressing index),
//!   timeouts on packet time, eviction under a hard cap; `update_batch` prefetches.
//! - `record`: finished-flow records, JSON lines, Community ID v1.

pub mod hash;
pub mod record;
pub mod table;

pub use hash::FlowHasher;
pub use record::{community_id, policy_vlan, EndReason, FlowRecord, FlowStart, TcpState};
pub use table::{FlowConfig, FlowStats, FlowTable, PolicyStats};

/// Receives every flow the table finishes (ended, timed out, evicted, flushed).
pub trait FlowSink {
    fn flow_ended(&mut self, rec: &FlowRecord);

    /// A new flow got a `Violation` verdict: called once per such flow, when
    /// the packet creating it is accounted (never for allowed or unknown
    /// flows, replies, ICMP errors joining a known flow, or without a policy).
    fn flow_violation(&mut self, start: &FlowStart) {
        let _ = start;
    }
}

/// A sink that keeps records in memory (tests, `check --against` later).
impl FlowSink for Vec<FlowRecord> {
    fn flow_ended(&mut self, rec: &FlowRecord) {
        self.push(*rec);
    }
}
