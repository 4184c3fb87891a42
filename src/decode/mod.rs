//! Frame → [`PacketMeta`]. The only module that imports etherparse.
//!
//! A hand-written fast path handles the common stacks (Ethernet, up to two VLAN
//! tags, IPv4 without options / IPv6 without extension headers, TCP/UDP/ICMP);
//! everything else falls back to etherparse's lax slicing, which keeps partial
//! results. Tunnels (GRE, ERSPAN I–III, VXLAN, Geneve, IP-in-IP) are peeled and
//! the inner packet analysed; the outer endpoints become a link id.

use crate::packet::{PacketMeta, RawFrame};

/// Why a frame could not be decoded to the network layer (or past it).
/// Stable names: they are summary keys and metric label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DecodeFail {
    TruncatedLink,
}

impl DecodeFail {
    pub const ALL: &'static [DecodeFail] = &[DecodeFail::TruncatedLink];
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeFail::TruncatedLink => "truncated_link",
        }
    }
}

/// A decode failure: the reason and the byte offset in the frame where it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub reason: DecodeFail,
    pub offset: usize,
}

/// Interns tunnel outer endpoints into small link ids (`FlowKey::link`).
/// Lives on the capture thread; ids are assigned in order of first appearance,
/// so they do not depend on the worker count.
#[derive(Default)]
pub struct LinkIds {}

/// Decode one frame into `out` (fully overwritten). On error, `out` keeps what
/// was decoded before the failure and the caller counts the reason.
pub fn decode(
    frame: &RawFrame<'_>,
    links: &mut LinkIds,
    out: &mut PacketMeta,
) -> Result<(), DecodeError> {
    let _ = (frame, links, out);
    todo!()
}

/// Per-protocol and per-reason counters kept by the capture thread
/// (plain integers, merged into the summary at the end).
#[derive(Clone, Debug, Default)]
pub struct DecodeStats {}

impl DecodeStats {
    /// Count one frame after `decode` returned.
    pub fn record(
        &mut self,
        frame: &RawFrame<'_>,
        meta: &PacketMeta,
        result: Result<(), DecodeError>,
    ) {
        let _ = (frame, meta, result);
        todo!()
    }
}
