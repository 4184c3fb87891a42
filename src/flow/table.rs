//! The per-worker flow table.
use super::FlowSink;
use crate::packet::PacketMeta;
use std::num::NonZeroUsize;

/// Flow table limits and timeouts (packet time).
#[derive(Clone, Debug)]
pub struct FlowConfig {
    pub max_flows: NonZeroUsize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            max_flows: NonZeroUsize::new(1 << 20).unwrap(),
        }
    }
}

/// Counters of one table (plain integers; merged into the summary).
#[derive(Clone, Debug, Default)]
pub struct FlowStats {
    pub created: u64,
}

pub struct FlowTable {}

impl FlowTable {
    pub fn new(cfg: &FlowConfig) -> FlowTable {
        let _ = cfg;
        todo!()
    }
    /// Account one packet (meta.hash already set by the dispatcher).
    pub fn update(&mut self, meta: &PacketMeta, sink: &mut impl FlowSink) {
        let _ = (meta, sink);
        todo!()
    }
    /// Packet time moved to `now_ns`: finish flows whose timeout has passed.
    pub fn expire(&mut self, now_ns: u64, sink: &mut impl FlowSink) {
        let _ = (now_ns, sink);
        todo!()
    }
    /// Finish every flow (end of capture or shutdown).
    pub fn flush(&mut self, reason: super::EndReason, sink: &mut impl FlowSink) {
        let _ = (reason, sink);
        todo!()
    }
    pub fn stats(&self) -> &FlowStats {
        todo!()
    }
}
