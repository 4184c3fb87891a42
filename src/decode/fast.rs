//! Floor L1 (`decode`). The fast path: IPv4 without options or fragmentation / IPv6 without
//! extension headers, carrying TCP, UDP (not to a tunnel port) or non-error
//! ICMP/ICMPv6, with length fields that agree with each other and with the
//! frame. Anything else returns false and the caller takes the slow path; so
//! every check here is "is this the plain case", never error handling.

use super::link::{arr, be16, Net, NetKind};
use crate::packet::{addr_v4, proto, PacketMeta, L3};

/// UDP destination ports the slow path decapsulates.
pub(super) const VXLAN_PORT: u16 = 4789;
pub(super) const VXLAN_GPE_PORT: u16 = 4790;
pub(super) const GENEVE_PORT: u16 = 6081;

/// ICMP types that carry a quoted packet.
#[inline]
pub(super) fn icmp4_is_error(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}
#[inline]
pub(super) fn icmp6_is_error(t: u8) -> bool {
    matches!(t, 1..=4)
}

/// Decode the network and transport layers at `net` when they are a plain
/// stack; `wire_len` is the frame's original length.
#[inline(always)]
pub(super) fn ip(data: &[u8], net: Net, wire_len: usize, out: &mut PacketMeta) -> bool {
    let version = match net.kind {
        NetKind::Ipv4 => 4,
        NetKind::Ipv6 => 6,
        NetKind::Ip => match data.get(net.off) {
            Some(b) => b >> 4,
            None => return false,
        },
        NetKind::Arp | NetKind::Other => return false,
    };
    let avail = wire_len.saturating_sub(net.off);
    if version == 4 {
        v4(data, net.off, avail, out)
    } else if version == 6 {
        v6(data, net.off, avail, out)
    } else {
        false
    }
}

#[inline(always)]
fn v4(data: &[u8], off: usize, avail: usize, out: &mut PacketMeta) -> bool {
    let Some(h) = arr::<20>(data, off) else {
        return false;
    };
    let total = usize::from(be16([h[2], h[3]]));
    // version 4, IHL 5; not a fragment (MF clear, offset 0); length sane.
    if h[0] != 0x45 || be16([h[6], h[7]]) & 0x3fff != 0 || total < 20 || total > avail {
        return false;
    }
    let cap_end = data.len().min(off + total);
    let Some(t) = l4(data, cap_end, off + 20, total - 20, h[9], proto::ICMP) else {
        return false;
    };
    out.l3 = L3::Ipv4;
    out.key.src = addr_v4([h[12], h[13], h[14], h[15]]);
    out.key.dst = addr_v4([h[16], h[17], h[18], h[19]]);
    out.key.proto = h[9];
    out.ttl = h[8];
    out.ip_len = total as u32;
    t.write(out);
    true
}

#[inline(always)]
fn v6(data: &[u8], off: usize, avail: usize, out: &mut PacketMeta) -> bool {
    let Some(h) = arr::<40>(data, off) else {
        return false;
    };
    let plen = usize::from(be16([h[4], h[5]]));
    // version 6; no jumbogram; length within the frame.
    if h[0] >> 4 != 6 || plen == 0 || 40 + plen > avail {
        return false;
    }
    let cap_end = data.len().min(off + 40 + plen);
    let Some(t) = l4(data, cap_end, off + 40, plen, h[6], proto::ICMPV6) else {
        return false;
    };
    out.l3 = L3::Ipv6;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    dst.copy_from_slice(&h[24..40]);
    out.key.src = src;
    out.key.dst = dst;
    out.key.v6 = true;
    out.key.proto = h[6];
    out.ttl = h[7];
    out.ip_len = (40 + plen) as u32;
    t.write(out);
    true
}

/// Transport summary of the fast path.
struct L4 {
    sport: u16,
    dport: u16,
    flags: u8,
    payload: usize,
}

impl L4 {
    #[inline(always)]
    fn write(&self, out: &mut PacketMeta) {
        out.key.sport = self.sport;
        out.key.dport = self.dport;
        out.tcp_flags = self.flags;
        out.payload_len = self.payload as u32;
    }
}

/// Transport header at `off` (captured bytes of this IP packet end at
/// `cap_end`); `p` = IP payload length per the header; `icmp` = the ICMP
/// protocol number this IP version uses.
#[inline(always)]
fn l4(data: &[u8], cap_end: usize, off: usize, p: usize, pr: u8, icmp: u8) -> Option<L4> {
    let d = data.get(..cap_end)?;
    if pr == proto::TCP {
        let t = arr::<20>(d, off)?;
        let doff = usize::from(t[12] >> 4) * 4;
        if doff < 20 || doff > p {
            return None;
        }
        Some(L4 {
            sport: be16([t[0], t[1]]),
            dport: be16([t[2], t[3]]),
            flags: t[13],
            payload: p - doff,
        })
    } else if pr == proto::UDP {
        let u = arr::<8>(d, off)?;
        let dport = be16([u[2], u[3]]);
        let ulen = usize::from(be16([u[4], u[5]]));
        if ulen < 8 || ulen > p || matches!(dport, VXLAN_PORT | VXLAN_GPE_PORT | GENEVE_PORT) {
            return None;
        }
        Some(L4 {
            sport: be16([u[0], u[1]]),
            dport,
            flags: 0,
            payload: ulen - 8,
        })
    } else if pr == icmp {
        let i = arr::<8>(d, off)?;
        let is_error = if icmp == proto::ICMP {
            icmp4_is_error(i[0])
        } else {
            icmp6_is_error(i[0])
        };
        if is_error {
            return None;
        }
        Some(L4 {
            sport: u16::from(i[0]),
            dport: u16::from(i[1]),
            flags: 0,
            // 8 bytes were captured inside the packet, so p >= 8.
            payload: p - 8,
        })
    } else {
        None
    }
}
