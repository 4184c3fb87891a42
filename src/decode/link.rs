//! Floor L1 (`decode`). Link-layer framing shared by the fast and slow paths: a few fixed offsets
//! that both must read identically (Ethernet II / 802.3 with VLAN tag stacks,
//! Linux SLL v1/v2, raw IP, BSD NULL/LOOP), plus bounds-checked byte readers.

use super::{DecodeError, DecodeFail};
use crate::packet::{LinkType, PacketMeta};

/// What the link layer says comes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NetKind {
    Ipv4,
    Ipv6,
    /// Raw IP: the version nibble decides.
    Ip,
    Arp,
    /// Anything else (LLC, LLDP, STP, IPX, ...): `L3::Other`.
    Other,
}

/// The network layer found by the link layer, at byte `off` of the frame.
#[derive(Clone, Copy, Debug)]
pub(super) struct Net {
    pub kind: NetKind,
    pub off: usize,
}

pub(super) const ETH_IPV4: u16 = 0x0800;
pub(super) const ETH_ARP: u16 = 0x0806;
pub(super) const ETH_RARP: u16 = 0x8035;
pub(super) const ETH_IPV6: u16 = 0x86dd;
pub(super) const ETH_VLAN: u16 = 0x8100;
pub(super) const ETH_QINQ: u16 = 0x88a8;
pub(super) const ETH_QINQ_OLD: u16 = 0x9100;
/// Transparent Ethernet Bridging (GRE, Geneve).
pub(super) const ETH_TEB: u16 = 0x6558;

/// Linux ARPHRD_NETLINK: the SLL protocol field is a netlink family.
const ARPHRD_NETLINK: u16 = 824;

/// `N` bytes of `d` at `off`, or None when they were not captured.
#[inline(always)]
pub(super) fn arr<const N: usize>(d: &[u8], off: usize) -> Option<&[u8; N]> {
    d.get(off..off.checked_add(N)?)?.try_into().ok()
}

#[inline(always)]
pub(super) fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// Parse the link header of a `link` frame starting at `off` (captured bytes
/// end at `cap_end`). Sets `src_mac`, `key.vlan` and `nvlan` of `out`.
#[inline]
pub(super) fn parse(
    link: LinkType,
    data: &[u8],
    off: usize,
    cap_end: usize,
    out: &mut PacketMeta,
) -> Result<Net, DecodeError> {
    let d = data.get(..cap_end).unwrap_or(data);
    match link {
        LinkType::Ethernet => ethernet(d, off, out),
        LinkType::LinuxSll => {
            // packet type(2) ARPHRD(2) addr len(2) addr(8) protocol(2)
            let h: &[u8; 16] = arr(d, off).ok_or(trunc_link(off))?;
            if be16([h[4], h[5]]) == 6 {
                out.src_mac = [h[6], h[7], h[8], h[9], h[10], h[11]];
            }
            let hatype = be16([h[2], h[3]]);
            sll_protocol(d, off + 16, hatype, be16([h[14], h[15]]), out)
        }
        LinkType::LinuxSll2 => {
            // protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) addr len(1) addr(8)
            let h: &[u8; 20] = arr(d, off).ok_or(trunc_link(off))?;
            if h[11] == 6 {
                out.src_mac = [h[12], h[13], h[14], h[15], h[16], h[17]];
            }
            let hatype = be16([h[8], h[9]]);
            sll_protocol(d, off + 20, hatype, be16([h[0], h[1]]), out)
        }
        LinkType::Null | LinkType::Loop => {
            // Address family, host byte order for NULL (the capturing host's,
            // which may not be ours) and network byte order for LOOP: accept both.
            let h: &[u8; 4] = arr(d, off).ok_or(trunc_link(off))?;
            let kind = match (u32::from_le_bytes(*h), u32::from_be_bytes(*h)) {
                (2, _) | (_, 2) => NetKind::Ipv4,
                (24 | 28 | 30, _) | (_, 24 | 28 | 30) => NetKind::Ipv6,
                _ => NetKind::Other,
            };
            Ok(Net { kind, off: off + 4 })
        }
        LinkType::Raw => match d.get(off).map(|b| b >> 4) {
            Some(4) => Ok(Net {
                kind: NetKind::Ipv4,
                off,
            }),
            Some(6) => Ok(Net {
                kind: NetKind::Ipv6,
                off,
            }),
            Some(_) => Err(DecodeError::new(DecodeFail::BadIpVersion, off)),
            None => Err(trunc_link(off)),
        },
        LinkType::Ipv4 => Ok(Net {
            kind: NetKind::Ipv4,
            off,
        }),
        LinkType::Ipv6 => Ok(Net {
            kind: NetKind::Ipv6,
            off,
        }),
    }
}

#[inline]
fn trunc_link(off: usize) -> DecodeError {
    DecodeError::new(DecodeFail::TruncatedLink, off)
}

/// An Ethernet II / 802.3 header at `off` (and its VLAN tags). Resets the
/// VLAN fields first: they describe the innermost Ethernet header.
#[inline(always)]
pub(super) fn ethernet(d: &[u8], off: usize, out: &mut PacketMeta) -> Result<Net, DecodeError> {
    let h: &[u8; 14] = arr(d, off).ok_or(trunc_link(off))?;
    out.src_mac = [h[6], h[7], h[8], h[9], h[10], h[11]];
    out.key.vlan = [0, 0];
    out.nvlan = 0;
    ethertype(d, off + 14, be16([h[12], h[13]]), out)
}

/// SLL protocol field: an ethertype unless the hardware type says otherwise
/// (netlink) or it is one of the small Linux pseudo-types (802.3, LLC, CAN...).
#[inline]
fn sll_protocol(
    d: &[u8],
    off: usize,
    hatype: u16,
    proto: u16,
    out: &mut PacketMeta,
) -> Result<Net, DecodeError> {
    if hatype == ARPHRD_NETLINK || proto < 0x0600 {
        return Ok(Net {
            kind: NetKind::Other,
            off,
        });
    }
    ethertype(d, off, proto, out)
}

/// Walk 802.1Q / 802.1ad / 0x9100 tags, then map the ethertype.
#[inline(always)]
fn ethertype(
    d: &[u8],
    mut off: usize,
    mut et: u16,
    out: &mut PacketMeta,
) -> Result<Net, DecodeError> {
    while matches!(et, ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD) {
        let t: &[u8; 4] = arr(d, off).ok_or(DecodeError::new(DecodeFail::TruncatedVlan, off))?;
        if let Some(slot) = out.key.vlan.get_mut(usize::from(out.nvlan)) {
            *slot = be16([t[0], t[1]]) & 0x0fff;
        }
        out.nvlan = out.nvlan.saturating_add(1);
        et = be16([t[2], t[3]]);
        off += 4;
    }
    Ok(Net {
        kind: ether_kind(et),
        off,
    })
}

#[inline]
pub(super) fn ether_kind(et: u16) -> NetKind {
    match et {
        ETH_IPV4 => NetKind::Ipv4,
        ETH_IPV6 => NetKind::Ipv6,
        // RARP has ARP's layout; Wireshark counts both as arp.
        ETH_ARP | ETH_RARP => NetKind::Arp,
        _ => NetKind::Other,
    }
}
