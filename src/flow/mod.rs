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
pub use record::{community_id, policy_vlan, EndReason, FlowRecord, TcpState};
pub use table::{FlowConfig, FlowStats, FlowTable, PolicyStats};

/// Receives every flow the table finishes (ended, timed out, evicted, flushed).
pub trait FlowSink {
    fn flow_ended(&mut self, rec: &FlowRecord);
}

/// A sink that keeps records in memory (tests, `check --against` later).
impl FlowSink for Vec<FlowRecord> {
    fn flow_ended(&mut self, rec: &FlowRecord) {
        self.push(*rec);
    }
}
