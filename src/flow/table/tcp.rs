//! Floor L2 (`flow`). The TCP state machine of a flow ([`tcp_next`]), the timeout class of a
//! state ([`class_of`]) and the end reason of a flow that timed out in it
//! ([`timeout_reason`]): "TCP state" and "Timeouts" in the table's module docs.
//!
//! Floor L2 (flow). Pure functions: the table keeps the state in the entry
//! (`entry`) and moves flows between the class lists (`index`).

use super::entry::{ICMP, OTHER, TCP_CLOSED, TCP_EST, TCP_SYN, UDP};
use crate::flow::record::{EndReason, TcpState};
use crate::packet::{proto, tcp_flags};

#[inline]
pub(super) fn class_of(p: u8, t: TcpState) -> u8 {
    match t {
        TcpState::SynSent | TcpState::SynReceived => TCP_SYN,
        TcpState::Established | TcpState::FinWait => TCP_EST,
        TcpState::Closed | TcpState::Reset => TCP_CLOSED,
        TcpState::None => match p {
            proto::UDP => UDP,
            proto::ICMP | proto::ICMPV6 => ICMP,
            _ => OTHER,
        },
    }
}

/// The TCP state after a packet with `flags` from the initiator (`from_orig`)
/// or responder; `fin_orig`/`fin_resp`: each side has sent a FIN (this packet
/// included).
#[inline]
pub(super) fn tcp_next(
    s: TcpState,
    flags: u8,
    from_orig: bool,
    fin_orig: bool,
    fin_resp: bool,
) -> TcpState {
    use TcpState::*;
    let syn = flags & tcp_flags::SYN != 0;
    let ack = flags & tcp_flags::ACK != 0;
    if flags & tcp_flags::RST != 0 {
        return match s {
            None | Closed => s,
            _ => Reset,
        };
    }
    match s {
        None | Closed | Reset => s,
        _ if fin_orig && fin_resp => Closed,
        _ if flags & tcp_flags::FIN != 0 => FinWait,
        FinWait | Established => s,
        SynSent if syn && ack && !from_orig => SynReceived,
        SynSent | SynReceived if !syn && ack && from_orig => Established,
        SynSent | SynReceived => s,
    }
}

/// End reason of a flow that timed out in state `t`.
#[inline]
pub(super) fn timeout_reason(t: TcpState) -> EndReason {
    match t {
        TcpState::Closed => EndReason::Fin,
        TcpState::Reset => EndReason::Rst,
        _ => EndReason::IdleTimeout,
    }
}
