//! Floor L1 (`decode`). Tunnel headers etherparse does not know: GRE (RFC 2784/2890), ERSPAN
//! types I–III (draft-foschiano-erspan), VXLAN (RFC 7348), Geneve (RFC 8926).
//! Each parser is handed the captured bytes of the enclosing packet and says
//! where the inner packet starts and what it is, or `None` when this is not a
//! tunnel we peel (the packet is then analysed as plain GRE/UDP).

use super::link::{arr, be16, ETH_IPV4, ETH_IPV6, ETH_TEB};
use super::DecodeFail;
use crate::packet::Tunnel;

/// GRE protocol type of ERSPAN types I and II.
const GRE_ERSPAN: u16 = 0x88be;
/// GRE protocol type of ERSPAN type III.
const GRE_ERSPAN3: u16 = 0x22eb;

const GRE_C: u16 = 0x8000;
const GRE_R: u16 = 0x4000;
const GRE_K: u16 = 0x2000;
const GRE_S: u16 = 0x1000;

/// What follows a tunnel header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Inner {
    Ethernet,
    Ipv4,
    Ipv6,
    /// IP of either version (version nibble decides).
    Ip,
}

/// A peeled tunnel header: kind, session/VNI/key id, and the inner packet at
/// byte `off` of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Decap {
    pub kind: Tunnel,
    pub id: u32,
    pub inner: Inner,
    pub off: usize,
}

type TunnelResult = Result<Option<Decap>, (DecodeFail, usize)>;

#[inline]
fn cut(off: usize) -> (DecodeFail, usize) {
    (DecodeFail::TruncatedTunnel, off)
}

/// GRE header at `off` of `d` (captured bytes of the enclosing IP packet).
pub(super) fn gre(d: &[u8], off: usize) -> TunnelResult {
    let h: &[u8; 4] = arr(d, off).ok_or(cut(off))?;
    let flags = be16([h[0], h[1]]);
    let proto = be16([h[2], h[3]]);
    // Version 1 is PPTP's enhanced GRE (PPP inside); the routing bit means an
    // RFC 1701 source route list. Neither is peeled.
    if flags & 0x0007 != 0 || flags & GRE_R != 0 {
        return Ok(None);
    }
    let mut at = off + 4;
    if flags & GRE_C != 0 {
        at += 4;
    }
    let mut key = 0;
    if flags & GRE_K != 0 {
        let k: &[u8; 4] = arr(d, at).ok_or(cut(off))?;
        key = u32::from_be_bytes(*k);
        at += 4;
    }
    if flags & GRE_S != 0 {
        at += 4;
    }
    if d.len() < at {
        return Err(cut(off));
    }
    let simple = |inner| {
        Ok(Some(Decap {
            kind: Tunnel::Gre,
            id: key,
            inner,
            off: at,
        }))
    };
    match proto {
        ETH_IPV4 => simple(Inner::Ipv4),
        ETH_IPV6 => simple(Inner::Ipv6),
        ETH_TEB => simple(Inner::Ethernet),
        GRE_ERSPAN if flags & GRE_S == 0 => Ok(Some(Decap {
            // Type I: no ERSPAN header, the mirrored frame follows.
            kind: Tunnel::ErspanI,
            id: 0,
            inner: Inner::Ethernet,
            off: at,
        })),
        GRE_ERSPAN => {
            // Type II: ver(4) vlan(12) cos(3) en(2) t(1) session(10) reserved(12) index(20)
            let e: &[u8; 8] = arr(d, at).ok_or(cut(at))?;
            Ok(Some(Decap {
                kind: Tunnel::ErspanII,
                id: u32::from(be16([e[2], e[3]]) & 0x03ff),
                inner: Inner::Ethernet,
                off: at + 8,
            }))
        }
        GRE_ERSPAN3 => {
            // Type III: ver(4) vlan(12) cos(3) bso(2) t(1) session(10)
            // timestamp(32) sgt(16) p(1) ft(5) hw id(6) d(1) gra(2) o(1)
            // [+ 8-byte platform specific subheader when o is set]
            let e: &[u8; 12] = arr(d, at).ok_or(cut(at))?;
            let w = be16([e[10], e[11]]);
            let inner = match (w >> 10) & 0x1f {
                0 => Inner::Ethernet,
                2 => Inner::Ip,
                _ => return Err((DecodeFail::BadTunnel, at)),
            };
            let len = if w & 1 != 0 { 20 } else { 12 };
            if d.len() < at + len {
                return Err(cut(at));
            }
            Ok(Some(Decap {
                kind: Tunnel::ErspanIII,
                id: u32::from(be16([e[2], e[3]]) & 0x03ff),
                inner,
                off: at + len,
            }))
        }
        _ => Ok(None),
    }
}

/// VXLAN header at `off`: flags(8, I = 0x08) reserved(24) VNI(24) reserved(8).
pub(super) fn vxlan(d: &[u8], off: usize) -> TunnelResult {
    let h: &[u8; 8] = arr(d, off).ok_or(cut(off))?;
    if h[0] & 0x08 == 0 {
        return Ok(None);
    }
    Ok(Some(Decap {
        kind: Tunnel::Vxlan,
        id: u32::from_be_bytes([0, h[4], h[5], h[6]]),
        inner: Inner::Ethernet,
        off: off + 8,
    }))
}

/// VXLAN-GPE header at `off` (UDP port 4790): flags(8: I = 0x08, P = 0x04)
/// reserved(16) next protocol(8) VNI(24) reserved(8). Next protocol 1 IPv4,
/// 2 IPv6, 3 Ethernet (also assumed without the P flag); others (NSH, ...)
/// are not peeled. Counted as [`Tunnel::Vxlan`].
pub(super) fn vxlan_gpe(d: &[u8], off: usize) -> TunnelResult {
    let h: &[u8; 8] = arr(d, off).ok_or(cut(off))?;
    if h[0] & 0x08 == 0 {
        return Ok(None);
    }
    let inner = match (h[0] & 0x04 != 0, h[3]) {
        (false, _) | (true, 3) => Inner::Ethernet,
        (true, 1) => Inner::Ipv4,
        (true, 2) => Inner::Ipv6,
        _ => return Ok(None),
    };
    Ok(Some(Decap {
        kind: Tunnel::Vxlan,
        id: u32::from_be_bytes([0, h[4], h[5], h[6]]),
        inner,
        off: off + 8,
    }))
}

/// Geneve header at `off`: ver(2) opt len(6, 4-byte units) o(1) c(1)
/// reserved(6) protocol(16) VNI(24) reserved(8), then the options.
pub(super) fn geneve(d: &[u8], off: usize) -> TunnelResult {
    let h: &[u8; 8] = arr(d, off).ok_or(cut(off))?;
    if h[0] >> 6 != 0 {
        return Ok(None);
    }
    let inner = match be16([h[2], h[3]]) {
        ETH_TEB => Inner::Ethernet,
        ETH_IPV4 => Inner::Ipv4,
        ETH_IPV6 => Inner::Ipv6,
        _ => return Ok(None),
    };
    let len = 8 + usize::from(h[0] & 0x3f) * 4;
    if d.len() < off + len {
        return Err(cut(off));
    }
    Ok(Some(Decap {
        kind: Tunnel::Geneve,
        id: u32::from_be_bytes([0, h[4], h[5], h[6]]),
        inner,
        off: off + len,
    }))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn gre_optional_fields_move_the_payload() {
        // C, K and S set: 4 + 4 + 4 + 4 bytes; key 0x0000_0102.
        let h = [
            0xb0, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 9, 0x45,
        ];
        let d = gre(&h, 0).unwrap().unwrap();
        assert_eq!(d.kind, Tunnel::Gre);
        assert_eq!(d.id, 0x0102);
        assert_eq!(d.inner, Inner::Ipv4);
        assert_eq!(d.off, 16);
        assert_eq!(gre(&h[..10], 0), Err((DecodeFail::TruncatedTunnel, 0)));
    }

    #[test]
    fn gre_version1_and_unknown_protocols_are_not_peeled() {
        assert_eq!(gre(&[0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 0], 0), Ok(None));
        assert_eq!(gre(&[0, 0, 0x88, 0x47, 0, 0, 0, 0], 0), Ok(None));
    }

    #[test]
    fn erspan3_platform_subheader() {
        let mut h = vec![0x00, 0x00, 0x22, 0xeb];
        h.extend_from_slice(&[0x20, 0x00, 0x00, 0x07, 0, 0, 0, 0, 0, 0, 0x00, 0x01]);
        h.extend_from_slice(&[0; 8]);
        let d = gre(&h, 0).unwrap().unwrap();
        assert_eq!((d.kind, d.id, d.off), (Tunnel::ErspanIII, 7, 24));
        assert_eq!(gre(&h[..20], 0), Err((DecodeFail::TruncatedTunnel, 4)));
    }

    #[test]
    fn vxlan_needs_i_flag_and_geneve_version0() {
        assert_eq!(vxlan(&[0, 0, 0, 0, 0, 0, 1, 0], 0), Ok(None));
        let d = vxlan(&[8, 0, 0, 0, 0, 0, 123, 0], 0).unwrap().unwrap();
        assert_eq!((d.id, d.off), (123, 8));
        let d = vxlan_gpe(&[0x0c, 0, 0, 1, 0, 0, 5, 0], 0).unwrap().unwrap();
        assert_eq!((d.id, d.inner, d.kind), (5, Inner::Ipv4, Tunnel::Vxlan));
        assert_eq!(vxlan_gpe(&[0x0c, 0, 0, 4, 0, 0, 5, 0], 0), Ok(None));
        assert_eq!(geneve(&[0x40, 0, 0x65, 0x58, 0, 0, 1, 0], 0), Ok(None));
        let d = geneve(&[0x01, 0, 0x65, 0x58, 0, 0, 1, 0, 1, 2, 3, 4], 0)
            .unwrap()
            .unwrap();
        assert_eq!((d.id, d.off, d.inner), (1, 12, Inner::Ethernet));
        assert_eq!(
            geneve(&[0x02, 0, 0x65, 0x58, 0, 0, 1, 0, 1, 2, 3, 4], 0),
            Err((DecodeFail::TruncatedTunnel, 0))
        );
    }
}
