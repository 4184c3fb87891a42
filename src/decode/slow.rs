//! Floor L1 (`decode`). The slow path: etherparse slices the network and transport layers (IPv4
//! options and AH, IPv6 extension header chains, fragments, ARP, truncations),
//! the rules of `mod.rs` turn them into a meta, and tunnels are peeled with
//! `tunnel.rs` and decoded recursively.

use etherparse::err::ip::{HeaderError as IpHeaderError, LaxHeaderSliceError};
use etherparse::err::ipv6_exts::HeaderSliceError as ExtSliceError;
use etherparse::err::tcp::HeaderSliceError as TcpSliceError;
use etherparse::{
    ArpPacketSlice, EtherType, Ipv6ExtensionSlice, LaxIpSlice, LaxIpv4Slice, LaxIpv6Slice,
    TcpHeaderSlice, UdpHeaderSlice,
};

use super::fast::{icmp4_is_error, icmp6_is_error, GENEVE_PORT, VXLAN_GPE_PORT, VXLAN_PORT};
use super::link::{self, arr, be16, Net, NetKind};
use super::links::{Chain, Hop, LinkIds};
use super::tunnel::{self, Decap, Inner};
use super::{DecodeError, DecodeFail, MAX_TUNNEL_DEPTH};
use crate::packet::{addr_v4, proto, FlowKey, Frag, PacketMeta, Quote, RawFrame, Tunnel, L3};

/// IP-in-IP protocol numbers.
const IPIP4: u8 = 4;
const IPIP6: u8 = 41;
const DCCP: u8 = 33;
const UDPLITE: u8 = 136;

type R = Result<(), DecodeError>;

#[inline]
fn fail(reason: DecodeFail, offset: usize) -> R {
    Err(DecodeError::new(reason, offset))
}

/// The earlier of two outcomes: a pending error found first wins over what
/// the layers after it reported.
#[inline]
fn first(pending: Option<DecodeError>, later: R) -> R {
    match pending {
        Some(e) => Err(e),
        None => later,
    }
}

struct Ctx<'a> {
    data: &'a [u8],
}

impl<'a> Ctx<'a> {
    /// Captured bytes of `[off, end)` (empty when nothing was captured).
    #[inline]
    fn cap(&self, off: usize, end: usize) -> &'a [u8] {
        let end = end.min(self.data.len());
        self.data.get(off..end).unwrap_or(&[])
    }
    /// Captured bytes of the frame up to the wire offset `end`.
    #[inline]
    fn upto(&self, end: usize) -> &'a [u8] {
        self.data.get(..end.min(self.data.len())).unwrap_or(&[])
    }
}

/// Decode a whole frame (`out` already reset); `wire_len` = original length.
pub(super) fn frame(
    frame: &RawFrame<'_>,
    wire_len: usize,
    links: &mut LinkIds,
    out: &mut PacketMeta,
) -> R {
    let ctx = Ctx { data: frame.data };
    let mut chain = Chain::default();
    let r = link::parse(frame.link, frame.data, 0, frame.data.len(), out)
        .and_then(|net| network(&ctx, net, wire_len, 0, &mut chain, out));
    if chain.len() > 0 {
        out.key.link = links.intern(&chain);
    }
    r
}

/// The network layer `net` of a packet whose bytes end at wire offset `end`;
/// `depth` tunnels were peeled to get here.
fn network(
    ctx: &Ctx<'_>,
    net: Net,
    end: usize,
    depth: usize,
    chain: &mut Chain,
    out: &mut PacketMeta,
) -> R {
    match net.kind {
        NetKind::Other => {
            out.l3 = L3::Other;
            Ok(())
        }
        NetKind::Arp => arp(ctx.cap(net.off, end), net.off, out),
        NetKind::Ipv4 => ip(ctx, net.off, end, Some(4), depth, chain, out),
        NetKind::Ipv6 => ip(ctx, net.off, end, Some(6), depth, chain, out),
        NetKind::Ip => ip(ctx, net.off, end, None, depth, chain, out),
    }
}

fn arp(cap: &[u8], off: usize, out: &mut PacketMeta) -> R {
    out.l3 = L3::Arp;
    let Ok(a) = ArpPacketSlice::from_slice(cap) else {
        return fail(DecodeFail::TruncatedArp, off);
    };
    out.key.sport = a.operation().0;
    if a.proto_addr_type() == EtherType::IPV4 && a.proto_addr_size() == 4 {
        if let (Ok(s), Ok(t)) = (
            <[u8; 4]>::try_from(a.sender_protocol_addr()),
            <[u8; 4]>::try_from(a.target_protocol_addr()),
        ) {
            out.key.src = addr_v4(s);
            out.key.dst = addr_v4(t);
        }
    }
    Ok(())
}

/// An IP header at `off`; `expect` = the version the link layer announced.
fn ip(
    ctx: &Ctx<'_>,
    off: usize,
    end: usize,
    expect: Option<u8>,
    depth: usize,
    chain: &mut Chain,
    out: &mut PacketMeta,
) -> R {
    let cap = ctx.cap(off, end);
    let nibble = cap.first().map(|b| b >> 4);
    if expect.is_none() && nibble.is_none() {
        // Raw IP with nothing captured: nothing says which network layer.
        return fail(DecodeFail::TruncatedLink, off);
    }
    let version = expect.or(nibble).unwrap_or(0);
    out.l3 = match version {
        4 => L3::Ipv4,
        6 => L3::Ipv6,
        _ => return fail(DecodeFail::BadIpVersion, off),
    };
    let truncated = if version == 4 {
        DecodeFail::TruncatedIpv4
    } else {
        DecodeFail::TruncatedIpv6
    };
    match nibble {
        None => return fail(truncated, off),
        Some(n) if n != version => return fail(DecodeFail::BadIpVersion, off),
        Some(_) => {}
    }
    match LaxIpSlice::from_slice(cap) {
        Err(LaxHeaderSliceError::Len(_)) => fail(truncated, off),
        Err(LaxHeaderSliceError::Content(IpHeaderError::Ipv4HeaderLengthSmallerThanHeader {
            ..
        })) => fail(DecodeFail::BadIpv4HeaderLen, off),
        Err(LaxHeaderSliceError::Content(IpHeaderError::UnsupportedIpVersion { .. })) => {
            fail(DecodeFail::BadIpVersion, off)
        }
        Ok((LaxIpSlice::Ipv4(s), ext_err)) => v4(ctx, &s, ext_err, off, end, depth, chain, out),
        Ok((LaxIpSlice::Ipv6(s), ext_err)) => v6(ctx, &s, ext_err, off, end, depth, chain, out),
    }
}

type ExtErr = Option<(ExtSliceError, etherparse::err::Layer)>;

fn ext_fail(e: &ExtSliceError) -> DecodeFail {
    match e {
        ExtSliceError::Len(_) => DecodeFail::TruncatedIpExt,
        ExtSliceError::Content(_) => DecodeFail::BadIpExt,
    }
}

#[allow(clippy::too_many_arguments)] // the decode context of one layer; a struct would only rename it
fn v4(
    ctx: &Ctx<'_>,
    s: &LaxIpv4Slice<'_>,
    ext_err: ExtErr,
    off: usize,
    end: usize,
    depth: usize,
    chain: &mut Chain,
    out: &mut PacketMeta,
) -> R {
    let h = s.header();
    let hlen = usize::from(h.ihl()) * 4;
    let total = usize::from(h.total_len());
    out.key.src = addr_v4(h.source());
    out.key.dst = addr_v4(h.destination());
    out.key.proto = h.protocol().0;
    out.ttl = h.ttl();
    out.ip_len = total as u32;
    if total < hlen {
        return fail(DecodeFail::Ipv4TotalLenBelowHeader, off);
    }
    let avail = end.saturating_sub(off);
    let pending = (total > avail).then(|| DecodeError::new(DecodeFail::BadIpv4TotalLen, off));
    let eff = total.min(avail);
    let frag_off = h.fragments_offset().value();
    out.frag = match (h.more_fragments(), frag_off) {
        (false, 0) => Frag::None,
        (true, 0) => Frag::First,
        _ => Frag::NonFirst,
    };
    // A non-first fragment's payload is continuation data: no AH to skip.
    let mut ext_len = 0;
    if out.frag != Frag::NonFirst {
        if let Some((e, _)) = ext_err {
            // Wins over a pending length error: the upper layer is unknown.
            return fail(ext_fail(&e), off + hlen);
        }
        out.key.proto = s.payload().ip_number.0;
        ext_len = s.extensions().auth.map_or(0, |a| a.slice().len());
    }
    let hdrs = hlen + ext_len;
    let r = upper(ctx, off + hdrs, eff.saturating_sub(hdrs), depth, chain, out);
    first(pending, r)
}

#[allow(clippy::too_many_arguments)] // see v4
fn v6(
    ctx: &Ctx<'_>,
    s: &LaxIpv6Slice<'_>,
    ext_err: ExtErr,
    off: usize,
    end: usize,
    depth: usize,
    chain: &mut Chain,
    out: &mut PacketMeta,
) -> R {
    let h = s.header();
    out.key.src = h.source();
    out.key.dst = h.destination();
    out.key.v6 = true;
    out.key.proto = h.next_header().0;
    out.ttl = h.hop_limit();
    let plen = usize::from(h.payload_length());
    out.ip_len = (40 + plen) as u32;
    let avail = end.saturating_sub(off);
    let mut pending = None;
    let eff = if plen == 0 {
        // Jumbogram (or a zero the sender never filled in): the rest of the frame.
        avail
    } else {
        if 40 + plen > avail {
            pending = Some(DecodeError::new(DecodeFail::BadIpv6PayloadLen, off));
        }
        (40 + plen).min(avail)
    };
    let (ext_len, frag, upper_proto) = v6_exts(s);
    out.frag = frag;
    out.key.proto = upper_proto;
    if frag != Frag::NonFirst {
        if let Some((e, _)) = ext_err {
            // Wins over a pending length error: the upper layer is unknown.
            return fail(ext_fail(&e), off + 40 + ext_len);
        }
    }
    let hdrs = 40 + ext_len;
    let r = upper(ctx, off + hdrs, eff.saturating_sub(hdrs), depth, chain, out);
    first(pending, r)
}

/// Walk the extension headers etherparse found: (their length, fragment
/// position, upper-layer protocol). A non-first fragment ends the chain (what
/// follows its Fragment header is continuation data, even where etherparse
/// went on parsing it as headers).
fn v6_exts(s: &LaxIpv6Slice<'_>) -> (usize, Frag, u8) {
    let exts = s.extensions();
    let total = exts.slice().len();
    let mut ext_len = 0;
    let mut frag = Frag::None;
    let mut upper_proto = s.payload().ip_number.0;
    let mut it = exts.clone().into_iter();
    // etherparse 0.21's iterator does not know where a lax parse stopped: after
    // the last header it found it would go on reading the header that failed
    // from past the end of the slice (a debug assertion, out-of-bounds in
    // release). Never ask it for more than the slice holds.
    while ext_len < total {
        let Some(ext) = it.next() else { break };
        match ext {
            Ipv6ExtensionSlice::Fragment(f) => {
                ext_len += f.slice().len();
                if f.is_fragmenting_payload() {
                    if f.fragment_offset().value() != 0 {
                        frag = Frag::NonFirst;
                        upper_proto = f.next_header().0;
                        break;
                    }
                    frag = Frag::First;
                }
            }
            Ipv6ExtensionSlice::HopByHop(x)
            | Ipv6ExtensionSlice::Routing(x)
            | Ipv6ExtensionSlice::DestinationOptions(x) => ext_len += x.slice().len(),
            Ipv6ExtensionSlice::Authentication(a) => ext_len += a.slice().len(),
        }
    }
    (ext_len, frag, upper_proto)
}

/// The upper layer of an IP packet (`out` holds its IP fields): it starts at
/// `off` and has `p` bytes on the wire.
fn upper(
    ctx: &Ctx<'_>,
    off: usize,
    p: usize,
    depth: usize,
    chain: &mut Chain,
    out: &mut PacketMeta,
) -> R {
    out.payload_len = p as u32;
    if out.frag == Frag::NonFirst {
        return Ok(());
    }
    let end = off + p;
    let cap = ctx.cap(off, end);
    let whole = out.frag == Frag::None;
    match out.key.proto {
        proto::TCP => tcp(cap, off, p, out),
        proto::UDP => {
            udp(cap, off, p, out)?;
            if !whole {
                return Ok(());
            }
            // payload_len + 8 = bytes of this datagram on the wire.
            let udp_end = off + out.payload_len as usize + 8;
            let d = ctx.upto(udp_end);
            let t = match out.key.dport {
                VXLAN_PORT => tunnel::vxlan(d, off + 8),
                VXLAN_GPE_PORT => tunnel::vxlan_gpe(d, off + 8),
                GENEVE_PORT => tunnel::geneve(d, off + 8),
                _ => Ok(None),
            };
            peel(ctx, t, udp_end, depth, chain, out)
        }
        proto::ICMP => icmp(cap, off, p, false, out),
        proto::ICMPV6 => icmp(cap, off, p, true, out),
        proto::SCTP => {
            sctp(cap, out);
            Ok(())
        }
        proto::GRE if whole => {
            let t = tunnel::gre(ctx.upto(end), off);
            peel(ctx, t, end, depth, chain, out)
        }
        IPIP4 | IPIP6 if whole => {
            let inner = if out.key.proto == IPIP4 {
                Inner::Ipv4
            } else {
                Inner::Ipv6
            };
            let d = Decap {
                kind: Tunnel::IpInIp,
                id: 0,
                inner,
                off,
            };
            peel(ctx, Ok(Some(d)), end, depth, chain, out)
        }
        _ => Ok(()),
    }
}

fn tcp(cap: &[u8], off: usize, p: usize, out: &mut PacketMeta) -> R {
    if let Some(t) = arr::<4>(cap, 0) {
        out.key.sport = be16([t[0], t[1]]);
        out.key.dport = be16([t[2], t[3]]);
    }
    let Some(fixed) = arr::<20>(cap, 0) else {
        if let Some(f) = cap.get(13) {
            out.tcp_flags = *f;
        }
        out.payload_len = p.saturating_sub(20) as u32;
        return fail(DecodeFail::TruncatedTcp, off);
    };
    let doff = match TcpHeaderSlice::from_slice(cap) {
        Ok(t) => {
            out.key.sport = t.source_port();
            out.key.dport = t.destination_port();
            out.tcp_flags = u8::from(t.fin())
                | u8::from(t.syn()) << 1
                | u8::from(t.rst()) << 2
                | u8::from(t.psh()) << 3
                | u8::from(t.ack()) << 4
                | u8::from(t.urg()) << 5
                | u8::from(t.ece()) << 6
                | u8::from(t.cwr()) << 7;
            usize::from(t.data_offset()) * 4
        }
        // Data offset below 5, or options cut by the snaplen: the fixed
        // header is all we read, take it as it is.
        Err(TcpSliceError::Content(_)) | Err(TcpSliceError::Len(_)) => {
            out.tcp_flags = fixed[13];
            usize::from(fixed[12] >> 4) * 4
        }
    };
    if doff < 20 || doff > p {
        out.payload_len = 0;
        return fail(DecodeFail::BadTcpDataOffset, off);
    }
    out.payload_len = (p - doff) as u32;
    Ok(())
}

fn udp(cap: &[u8], off: usize, p: usize, out: &mut PacketMeta) -> R {
    out.payload_len = p.saturating_sub(8) as u32;
    if let Some(u) = arr::<4>(cap, 0) {
        out.key.sport = be16([u[0], u[1]]);
        out.key.dport = be16([u[2], u[3]]);
    }
    let Ok(u) = UdpHeaderSlice::from_slice(cap) else {
        return fail(DecodeFail::TruncatedUdp, off);
    };
    out.key.sport = u.source_port();
    out.key.dport = u.destination_port();
    if out.frag == Frag::First {
        // The length covers the whole datagram; this fragment carries p - 8.
        return Ok(());
    }
    let ulen = usize::from(u.length());
    if ulen < 8 || ulen > p {
        return fail(DecodeFail::BadUdpLen, off);
    }
    out.payload_len = (ulen - 8) as u32;
    Ok(())
}

/// SCTP: the two ports of the common header, when at least 4 bytes were
/// captured (as a quoted header is read). Nothing else is read, so there is no
/// SCTP failure reason and `payload_len` stays the IP payload, as for any
/// other protocol; the ports are what the flow key and the Community ID need.
fn sctp(cap: &[u8], out: &mut PacketMeta) {
    if let Some(h) = arr::<4>(cap, 0) {
        out.key.sport = be16([h[0], h[1]]);
        out.key.dport = be16([h[2], h[3]]);
    }
}

fn icmp(cap: &[u8], off: usize, p: usize, v6: bool, out: &mut PacketMeta) -> R {
    out.payload_len = p.saturating_sub(8) as u32;
    if let Some(t) = arr::<2>(cap, 0) {
        out.key.sport = u16::from(t[0]);
        out.key.dport = u16::from(t[1]);
    }
    // Type and code are all we read; the 8-byte minimum is the common header
    // (etherparse's Icmpv4Slice also wants each type's full fixed part, e.g.
    // 20 bytes for a timestamp, which is more than this layer needs).
    let Some(h) = arr::<8>(cap, 0) else {
        let reason = if v6 {
            DecodeFail::TruncatedIcmpv6
        } else {
            DecodeFail::TruncatedIcmp
        };
        return fail(reason, off);
    };
    let (ty, code) = (h[0], h[1]);
    let quoted = if v6 {
        icmp6_is_error(ty)
    } else {
        icmp4_is_error(ty)
    };
    out.key.sport = u16::from(ty);
    out.key.dport = u16::from(code);
    if !quoted {
        return Ok(());
    }
    match quote(cap.get(8..).unwrap_or(&[]), v6) {
        Some(q) => {
            out.quote = q;
            out.has_quote = true;
            Ok(())
        }
        None => fail(DecodeFail::BadIcmpQuote, off + 8),
    }
}

/// The packet quoted by an ICMP error: IP header (any options/extension
/// headers) and as much of its transport header as was included.
fn quote(b: &[u8], v6: bool) -> Option<Quote> {
    let (ip, _) = LaxIpSlice::from_slice(b).ok()?;
    let mut q = Quote::default();
    let (non_first, payload) = match &ip {
        LaxIpSlice::Ipv4(s) if !v6 => {
            let h = s.header();
            q.src = addr_v4(h.source());
            q.dst = addr_v4(h.destination());
            q.proto = h.protocol().0;
            if h.fragments_offset().value() != 0 {
                (true, &[][..])
            } else {
                q.proto = s.payload().ip_number.0;
                (false, s.payload().payload)
            }
        }
        LaxIpSlice::Ipv6(s) if v6 => {
            let h = s.header();
            q.src = h.source();
            q.dst = h.destination();
            q.v6 = true;
            let (_, frag, upper_proto) = v6_exts(s);
            q.proto = upper_proto;
            let non_first = frag == Frag::NonFirst;
            (non_first, s.payload().payload)
        }
        _ => return None,
    };
    if !non_first {
        match q.proto {
            proto::TCP | proto::UDP | proto::SCTP | DCCP | UDPLITE => {
                if let Some(t) = arr::<4>(payload, 0) {
                    q.sport = be16([t[0], t[1]]);
                    q.dport = be16([t[2], t[3]]);
                }
            }
            proto::ICMP | proto::ICMPV6 => {
                if let Some(t) = arr::<2>(payload, 0) {
                    q.sport = u16::from(t[0]);
                    q.dport = u16::from(t[1]);
                }
            }
            _ => {}
        }
    }
    Some(q)
}

/// Decode the inner packet of a tunnel header that `t` reports (if any); the
/// inner packet ends at wire offset `end`. `out` holds the outer packet and
/// keeps it if the inner one cannot be decoded to its network layer.
fn peel(
    ctx: &Ctx<'_>,
    t: Result<Option<Decap>, (DecodeFail, usize)>,
    end: usize,
    depth: usize,
    chain: &mut Chain,
    out: &mut PacketMeta,
) -> R {
    let d = match t {
        Ok(Some(d)) => d,
        Ok(None) => return Ok(()),
        Err((reason, at)) => return fail(reason, at),
    };
    if depth >= MAX_TUNNEL_DEPTH {
        return fail(DecodeFail::TunnelTooDeep, d.off);
    }
    let outer = *out;
    chain.push(Hop {
        src: out.key.src,
        dst: out.key.dst,
        id: d.id,
        kind: d.kind,
        v6: out.key.v6,
    });
    if out.tunnel == Tunnel::None {
        out.tunnel = d.kind;
    }
    out.key = FlowKey {
        vlan: out.key.vlan,
        ..FlowKey::default()
    };
    out.quote = Quote::default();
    out.has_quote = false;
    out.ip_len = 0;
    out.payload_len = 0;
    out.l3 = L3::None;
    out.frag = Frag::None;
    out.ttl = 0;
    out.tcp_flags = 0;
    let net = match d.inner {
        Inner::Ethernet => link::ethernet(ctx.upto(end), d.off, out),
        Inner::Ipv4 => Ok(Net {
            kind: NetKind::Ipv4,
            off: d.off,
        }),
        Inner::Ipv6 => Ok(Net {
            kind: NetKind::Ipv6,
            off: d.off,
        }),
        Inner::Ip => Ok(Net {
            kind: NetKind::Ip,
            off: d.off,
        }),
    };
    let r = net.and_then(|net| network(ctx, net, end, depth + 1, chain, out));
    match r {
        Err(e) if out.l3 == L3::None => {
            *out = outer;
            chain.pop();
            let reason = match e.reason {
                DecodeFail::TruncatedLink | DecodeFail::TruncatedVlan => {
                    DecodeFail::TruncatedTunnel
                }
                _ => DecodeFail::BadTunnel,
            };
            fail(reason, e.offset)
        }
        r => r,
    }
}
