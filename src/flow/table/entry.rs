//! Floor L2 (`flow`). The slab entry of one flow, [`Entry`] (104 bytes, const-asserted), and its
//! bit-packing: two words holding each side's 48-bit byte count and TCP flags,
//! plus the state byte (TCP state, mid-stream, timeout class, quote-keyed) and
//! a saturating ICMP error count; the timeout class values that byte holds
//! (`TCP_SYN` .. `OTHER`, `FREE` for a free entry) and `NIL`, the end of a link.
//!
//! Floor L2 (flow). Owns the layout and its accessors; leaves what TCP states
//! and classes mean to `tcp`, and the `prev`/`next` links to `index`.

use crate::flow::record::TcpState;
use crate::packet::FlowKey;

/// Timeout classes; each has its own LRU list.
pub(super) const TCP_SYN: u8 = 0;
pub(super) const TCP_EST: u8 = 1;
pub(super) const TCP_CLOSED: u8 = 2;
pub(super) const UDP: u8 = 3;
pub(super) const ICMP: u8 = 4;
pub(super) const OTHER: u8 = 5;
pub(super) const NCLASS: usize = 6;
/// Class value of a free slab entry.
pub(super) const FREE: u8 = 7;

pub(super) const NIL: u32 = u32::MAX;

/// Bits of the state byte (top byte of `Entry::orig`).
pub(super) const ST_TCP: u8 = 0x07;
pub(super) const ST_MIDSTREAM: u8 = 0x08;
pub(super) const ST_CLASS_SHIFT: u32 = 4;
pub(super) const ST_CLASS: u8 = 0x70;
/// The flow is an ICMP error's own flow, identified by key + quote hash (kept
/// in the unused responder counters).
pub(super) const ST_QUOTE_KEYED: u8 = 0x80;

pub(super) const BYTES: u64 = (1 << 48) - 1;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    /// Initiator → responder; ICMP ports are port equivalents.
    pub(super) key: FlowKey,
    /// Policy verdict, [`Verdict::pack_in`](crate::policy::Verdict::pack_in)
    /// its generation slot; 0 without a policy.
    pub(super) tag: u32,
    pub(super) prev: u32,
    /// LRU successor, or next free entry when free.
    pub(super) next: u32,
    pub(super) orig_pkts: u32,
    pub(super) resp_pkts: u32,
    pub(super) first_ns: u64,
    pub(super) last_ns: u64,
    /// bytes (48) | initiator's TCP flags << 48 | state byte << 56
    pub(super) orig: u64,
    /// bytes (48) | responder's TCP flags << 48 | ICMP errors << 56
    pub(super) resp: u64,
    /// VLAN ids of the responder's first packet (`key.vlan` holds those of the
    /// creating packet): on a router trunk the two directions differ.
    pub(super) resp_vlan: [u16; 2],
    /// A packet already came on other VLANs than its direction's first
    /// (reported once,
    /// [`FlowSink::flow_vlan_moved`](crate::flow::FlowSink::flow_vlan_moved)).
    pub(super) vlan_moved: bool,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 104);

/// Bytes of one slab entry.
pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

impl Entry {
    #[inline]
    pub(super) fn state(&self) -> u8 {
        (self.orig >> 56) as u8
    }
    #[inline]
    pub(super) fn set_state(&mut self, s: u8) {
        self.orig = (self.orig & !(0xff << 56)) | (s as u64) << 56;
    }
    #[inline]
    pub(super) fn class(&self) -> u8 {
        (self.state() & ST_CLASS) >> ST_CLASS_SHIFT
    }
    #[inline]
    pub(super) fn set_class(&mut self, c: u8) {
        self.set_state((self.state() & !ST_CLASS) | (c << ST_CLASS_SHIFT));
    }
    #[inline]
    pub(super) fn tcp(&self) -> TcpState {
        TcpState::from_u8(self.state() & ST_TCP)
    }
    #[inline]
    pub(super) fn set_tcp(&mut self, t: TcpState) {
        self.set_state((self.state() & !ST_TCP) | t as u8);
    }
    #[inline]
    pub(super) fn quote_keyed(&self) -> bool {
        self.state() & ST_QUOTE_KEYED != 0
    }
    #[inline]
    pub(super) fn quote_hash(&self) -> u64 {
        self.resp_pkts as u64 | (self.resp & 0xffff_ffff) << 32
    }
    #[inline]
    pub(super) fn flags_orig(&self) -> u8 {
        (self.orig >> 48) as u8
    }
    #[inline]
    pub(super) fn flags_resp(&self) -> u8 {
        (self.resp >> 48) as u8
    }
    #[inline]
    pub(super) fn icmp_errors(&self) -> u8 {
        (self.resp >> 56) as u8
    }
    #[inline]
    pub(super) fn add_icmp_error(&mut self) {
        if self.icmp_errors() < u8::MAX {
            self.resp += 1 << 56;
        }
    }
    /// Count one packet of `len` bytes with `flags` in a direction.
    #[inline]
    pub(super) fn count(&mut self, is_orig: bool, len: u32, flags: u8) {
        let (pkts, word) = if is_orig {
            (&mut self.orig_pkts, &mut self.orig)
        } else {
            (&mut self.resp_pkts, &mut self.resp)
        };
        *pkts = pkts.saturating_add(1);
        let b = (*word & BYTES).saturating_add(len as u64).min(BYTES);
        *word = (*word & !BYTES) | b | (flags as u64) << 48;
    }
}
