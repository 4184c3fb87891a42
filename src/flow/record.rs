//! Floor L2 (`flow`). A finished flow ([`FlowRecord`]) and what the flow hooks hand out
//! ([`FlowStart`], [`FlowClose`], [`Refusal`]), as typed values.
//!
//! Owns the record of one flow and the policy's facts about it
//! ([`FlowRecord::policy_facts`]); knows nothing about how flows are tracked,
//! nor about text: the JSON line is written on the output floor
//! (`crate::format::flow_line`, whose docs give its keys).
use crate::model::community_id::community_id;
use crate::packet::FlowKey;
use crate::policy::{Allowance, Policy, Verdict};

/// The VLAN a flow's zones are looked up with: the innermost non-zero id
/// (the customer / segment tag under QinQ), `None` when untagged.
#[inline]
pub fn policy_vlan(key: &FlowKey) -> Option<u16> {
    crate::packet::inner_vlan(key.vlan)
}

/// TCP connection state as last seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// Not a TCP flow (or a TCP flow made only of non-first fragments).
    #[default]
    None = 0,
    /// SYN seen, no SYN-ACK yet (half-open).
    SynSent = 1,
    /// SYN-ACK seen, handshake not completed (half-open).
    SynReceived = 2,
    /// Handshake completed, or data seen on a flow picked up mid-stream.
    Established = 3,
    /// One side sent FIN.
    FinWait = 4,
    /// Both sides sent FIN.
    Closed = 5,
    /// RST seen (before the FIN exchange completed).
    Reset = 6,
}

impl TcpState {
    pub const ALL: [TcpState; 7] = [
        TcpState::None,
        TcpState::SynSent,
        TcpState::SynReceived,
        TcpState::Established,
        TcpState::FinWait,
        TcpState::Closed,
        TcpState::Reset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TcpState::None => "none",
            TcpState::SynSent => "syn_sent",
            TcpState::SynReceived => "syn_received",
            TcpState::Established => "established",
            TcpState::FinWait => "fin_wait",
            TcpState::Closed => "closed",
            TcpState::Reset => "reset",
        }
    }

    /// Inverse of `self as u8` (unknown values map to `None`).
    #[inline]
    pub(crate) fn from_u8(v: u8) -> TcpState {
        match v {
            1 => TcpState::SynSent,
            2 => TcpState::SynReceived,
            3 => TcpState::Established,
            4 => TcpState::FinWait,
            5 => TcpState::Closed,
            6 => TcpState::Reset,
            _ => TcpState::None,
        }
    }
}

/// Why a flow record was written. Stable names: summary keys and metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EndReason {
    /// Both sides sent FIN (written after the close linger,
    /// `tcp_closed_timeout_ns`, or at flush).
    Fin = 0,
    /// RST seen (written after the close linger, or at flush).
    Rst = 1,
    /// No packet for the flow's timeout (by packet time).
    IdleTimeout = 2,
    /// Removed to make room under `max_flows`.
    Evicted = 3,
    /// Still open when the input ended.
    EndOfCapture = 4,
    /// Still open when the sensor was stopped.
    Shutdown = 5,
}

impl EndReason {
    /// Number of reasons (length of arrays indexed by `reason as usize`).
    pub const COUNT: usize = 6;
    pub const ALL: [EndReason; EndReason::COUNT] = [
        EndReason::Fin,
        EndReason::Rst,
        EndReason::IdleTimeout,
        EndReason::Evicted,
        EndReason::EndOfCapture,
        EndReason::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Fin => "fin",
            EndReason::Rst => "rst",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::Evicted => "evicted",
            EndReason::EndOfCapture => "end_of_capture",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// A finished flow, oriented initiator → responder (`key.src` is the initiator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// Initiator → responder. ICMP ports are the Community ID port equivalents
    /// (see the module docs).
    pub key: FlowKey,
    /// Packet time of the first and last packet, ns since the Unix epoch.
    pub first_ns: u64,
    pub last_ns: u64,
    pub orig_pkts: u64,
    pub orig_bytes: u64,
    pub resp_pkts: u64,
    pub resp_bytes: u64,
    pub tcp_state: TcpState,
    /// Union of the TCP flags sent by the initiator / responder.
    pub tcp_flags_orig: u8,
    pub tcp_flags_resp: u8,
    /// TCP flow picked up without seeing its SYN or SYN-ACK.
    pub midstream: bool,
    /// ICMP errors quoting this flow (saturates at 255).
    pub icmp_errors: u32,
    /// The policy verdict, [`Verdict::pack_in`] the table's policy generation
    /// slot (`Verdict::unpack(tag)`, `generation_of(tag)`); 0 when the table had
    /// no policy when the flow was created.
    pub tag: u32,
    pub end: EndReason,
    /// VLAN ids of the responder's first packet (`[0, 0]` when untagged or not
    /// answered); `key.vlan` holds those of the flow's first packet.
    pub resp_vlan: [u16; 2],
}

/// A flow just created, handed to
/// [`FlowSink::flow_started`](super::FlowSink::flow_started) once, by the
/// packet that created it (so alerts need not wait for the flow to end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowStart {
    /// Initiator → responder, oriented as stored (and later recorded): for a
    /// flow first seen by its SYN-ACK, `key.src` is that packet's receiver.
    pub key: FlowKey,
    /// Packet time of the creating packet, ns since the Unix epoch.
    pub ts_ns: u64,
    /// The packed verdict including its policy generation slot
    /// ([`Verdict::unpack`], [`crate::policy::generation_of`];
    /// `FlowTable::policy_for` gives the policy).
    pub tag: u32,
    /// The flow was created by an ICMP error whose quoted flow was never
    /// seen (the error is its own flow, see the table's module docs).
    pub quote_keyed: bool,
    /// Source MAC address of the creating packet, and whether its sender is
    /// the initiator (false for a flow first seen by its SYN-ACK).
    pub mac: [u8; 6],
    pub mac_is_initiator: bool,
    /// TCP flags of the creating packet (0 for other protocols).
    pub tcp_flags: u8,
    /// Input the creating packet came from ([`crate::packet::RawFrame::source`]).
    pub source: u16,
}

/// How an attempt was refused ([`FlowSink::flow_refused`](super::FlowSink::flow_refused)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// TCP RST from the responder before the handshake completed.
    Rst,
    /// An ICMP/ICMPv6 error (unreachable, time exceeded, ...) quoting the flow.
    IcmpError,
}

/// A TCP flow that just closed or was reset
/// ([`FlowSink::flow_closed`](super::FlowSink::flow_closed)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowClose {
    /// Initiator → responder.
    pub key: FlowKey,
    pub first_ns: u64,
    /// Packet time of the closing packet.
    pub ts_ns: u64,
    pub orig_pkts: u64,
    pub orig_bytes: u64,
    pub resp_pkts: u64,
    pub resp_bytes: u64,
    /// `Closed` (FIN both ways) or `Reset`.
    pub state: TcpState,
    /// The handshake completed before the end.
    pub established: bool,
    /// Union of the TCP flags each side sent.
    pub flags_orig: u8,
    pub flags_resp: u8,
}

/// What the policy says of a record: the policy keys of its line, typed
/// (borrowed from the policy; nothing is allocated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyFacts<'p> {
    /// Zone ids of each end (`"lgwan.term"`), `None` if in no zone.
    pub src_zone: Option<&'p str>,
    pub dst_zone: Option<&'p str>,
    /// The verdict the flow got when it was created (`Unknown` if the tag holds none).
    pub verdict: Verdict,
    /// The allow rule's id, `"intra_zone"` for traffic inside one top-level
    /// zone, else `None`.
    pub rule: Option<&'p str>,
}

impl FlowRecord {
    /// The policy's facts about this flow, judged initiator → responder when
    /// it was created: the verdict comes from `tag`; the zones are looked up
    /// again (two longest-prefix matches per record, none per packet).
    /// `p` must be the policy the tag was made with (its generation slot, see
    /// `FlowTable::policy_for`): after a reload, indices name other rules.
    pub fn policy_facts<'p>(&self, p: &'p Policy) -> PolicyFacts<'p> {
        let k = &self.key;
        let (sz, dz) = p.flow_zones(k.src_ip(), k.dst_ip(), k.proto, k.sport, policy_vlan(k));
        let verdict = Verdict::unpack(self.tag).unwrap_or(Verdict::Unknown);
        let rule = match verdict {
            Verdict::Allowed {
                rule: Allowance::Rule(r),
            } => p.rules().get(usize::from(r.0)).map(|rule| rule.id.as_str()),
            Verdict::Allowed {
                rule: Allowance::IntraZone(_),
            } => Some("intra_zone"),
            _ => None,
        };
        PolicyFacts {
            src_zone: sz.map(|z| p.zone(z).id.as_str()),
            dst_zone: dz.map(|z| p.zone(z).id.as_str()),
            verdict,
            rule,
        }
    }

    /// The flow's Community ID v1 (seed 0).
    pub fn community_id(&self) -> String {
        community_id(&self.key)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::packet::proto;
    use std::net::IpAddr;

    fn key(p: u8, src: &str, dst: &str, sport: u16, dport: u16) -> FlowKey {
        let ip = |s: &str| s.parse::<IpAddr>().expect("test address");
        FlowKey::new(p, ip(src), sport, ip(dst), dport)
    }

    #[test]
    fn policy_vlan_is_the_innermost_tag() {
        let mut k = key(proto::TCP, "192.0.2.1", "198.51.100.1", 1, 2);
        assert_eq!(policy_vlan(&k), None);
        k.vlan = [100, 0];
        assert_eq!(policy_vlan(&k), Some(100));
        k.vlan = [100, 210];
        assert_eq!(policy_vlan(&k), Some(210));
    }
}
