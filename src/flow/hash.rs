//! Keyed symmetric flow hash: both directions of a flow hash alike, and the key
//! is a per-process secret so crafted tuples cannot pile into one bucket or worker.
use crate::packet::{FlowKey, PacketMeta};

#[derive(Clone)]
pub struct FlowHasher {}

impl FlowHasher {
    /// A hasher with a fresh random secret.
    pub fn new() -> FlowHasher {
        todo!()
    }
    /// A hasher with a fixed secret (tests, benches).
    pub fn with_seed(seed: u64) -> FlowHasher {
        let _ = seed;
        todo!()
    }
    /// Hash of the canonical (direction-free) form of `key`.
    pub fn hash_key(&self, key: &FlowKey) -> u64 {
        let _ = key;
        todo!()
    }
    /// The dispatch hash of a packet: of its quoted flow for ICMP errors (so the
    /// error reaches the worker that owns the flow it reports on), else of its key.
    pub fn hash_packet(&self, meta: &PacketMeta) -> u64 {
        let _ = meta;
        todo!()
    }
}

impl Default for FlowHasher {
    fn default() -> Self {
        Self::new()
    }
}
