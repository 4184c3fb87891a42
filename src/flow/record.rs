//! A finished flow and its JSON line.
use crate::packet::FlowKey;

/// TCP connection state as last seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    #[default]
    None,
}

/// Why a flow record was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EndReason {
    EndOfCapture,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        "end_of_capture"
    }
}

/// A finished flow, oriented initiator → responder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub key: FlowKey,
    pub end: EndReason,
}

impl FlowRecord {
    /// Append this record as one JSON line (with trailing '\n') to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let _ = out;
        todo!()
    }
}

/// Community ID v1 (https://github.com/corelight/community-id-spec) of a key, seed 0.
pub fn community_id(key: &FlowKey) -> String {
    let _ = key;
    todo!()
}
