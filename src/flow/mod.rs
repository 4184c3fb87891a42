//! Per-worker bidirectional flow tracking.
//!
//! - `hash`: the keyed symmetric flow hash the dispatcher computes once per packet.
//! - `table`: the flow table (slab of compact entries + hashbrown index), timeouts
//!   on packet time, eviction under a hard cap.
//! - `record`: finished-flow records, JSON lines, Community ID.

pub mod hash;
pub mod record;
pub mod table;

pub use hash::FlowHasher;
pub use record::{EndReason, FlowRecord, TcpState};
pub use table::{FlowConfig, FlowStats, FlowTable};

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
