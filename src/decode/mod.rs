//! Floor L1. Frame → [`PacketMeta`]. The only module that imports etherparse.
//!
//! Owns: link-layer framing (Ethernet II / 802.3, 802.1Q/802.1ad/0x9100 tag
//! stacks, Linux SLL and SLL2, raw IP, BSD NULL/LOOP), IPv4/IPv6 (options,
//! extension headers, fragments), TCP/UDP/ICMP/ICMPv6/ARP summaries, ICMP
//! error quotes, tunnel decapsulation (GRE, ERSPAN I–III, VXLAN, Geneve,
//! IP-in-IP), the link ids of tunnel endpoints ([`LinkIds`]) and the
//! per-protocol counters of the capture thread ([`DecodeStats`]).
//! Leaves alone: hashing (the dispatcher sets `PacketMeta::hash`), reassembly
//! (there is none: every frame is summarised on its own), flow state.
//!
//! # Two paths
//!
//! A hand-written fast path ([`decode_fast`], `fast.rs`) handles the common
//! stacks — any supported link, IPv4 without options or fragmentation / IPv6
//! without extension headers, and TCP, UDP (not to a tunnel port) or
//! non-error ICMP/ICMPv6 with consistent lengths — and returns early. Anything
//! else (IPv4 options, IPv6 extension headers, fragments, ARP, non-IP,
//! truncations, lying length fields, ICMP errors, tunnels, SCTP and every
//! other protocol) goes to the slow path ([`decode_slow`], `slow.rs`), which
//! slices IP (options, AH, extension header chains, fragments), TCP, UDP and
//! ARP with etherparse, reads ICMP's type and code and SCTP's ports itself, and peels tunnels with the small hand-written
//! parsers of `tunnel.rs`. Both produce
//! identical metas wherever the fast path applies (tested over every frame of
//! the public captures). Link-layer framing (`link.rs`) is shared: it is a few
//! fixed offsets and both paths need exactly the same answer.
//!
//! # What the meta holds (decided here, relied on by the counters)
//!
//! * `l3` is set as soon as the link layer names the network protocol
//!   (ethertype, SLL protocol, NULL family, raw version nibble), even when the
//!   network header itself then turns out to be truncated or bogus — as
//!   Wireshark counts `ip` for a malformed IPv4 header. A failure *before* that
//!   (truncated Ethernet/SLL/VLAN header, unknown raw IP version) leaves
//!   `l3 = None`. So on an error whose reason is not
//!   [`DecodeFail::transport_known`], the key may be incomplete (a cut IPv4
//!   header leaves zero addresses): callers that build flows should skip it.
//! * The analysed packet is the innermost one: a tunnel's inner packet replaces
//!   the outer one in `key`, `ip_len`, `payload_len`, `ttl`, ... `src_mac`,
//!   `key.vlan` and `nvlan` describe the innermost Ethernet header (an IP-in-GRE
//!   inner packet keeps the outer Ethernet's). `tunnel` is the outermost kind;
//!   `key.link` is the [`LinkIds`] id of the whole chain of tunnel endpoints.
//!   When a tunnel's inner packet cannot be decoded up to its network layer,
//!   the outer packet stays the analysed one (tunnel `None`, link 0) and the
//!   reason is `truncated_tunnel` or `bad_tunnel`.
//! * Fragments (IPv4 MF or offset ≠ 0; an IPv6 Fragment header with MF or
//!   offset ≠ 0 — atomic fragments are not fragments) set `frag`. A non-first
//!   fragment never reads its payload: ports are 0, `key.proto` is the
//!   protocol field (IPv4) or the Fragment header's next header (IPv6).
//!   Fragments are never decapsulated.
//! * `ip_len` is the header's own length field (IPv4 total length, IPv6 40 +
//!   payload length). Lengths may exceed the *captured* bytes (snaplen:
//!   normal, no error) but not the frame's *original* length (for an inner
//!   packet: the end of the enclosing packet): that is `bad_ipv4_total_len` /
//!   `bad_ipv6_payload_len`, decoding continues with the bytes the wire had.
//!   An IPv6 payload length of 0 (jumbogram) means "the rest of the frame".
//! * `payload_len` counts L4 payload bytes by the headers, clamped to what the
//!   wire carried: with `P` = IP payload (after options and extension headers)
//!   = min(`ip_len`, bytes on the wire) − headers, TCP: `P` − data offset;
//!   UDP: min(UDP length, `P`) − 8 (a fragment: `P` − 8); ICMP/ICMPv6: `P` − 8;
//!   a non-first fragment or another protocol: `P`; ARP/non-IP: 0. All
//!   saturating.
//! * TCP: ports and flags need the 20-byte fixed header; options cut by the
//!   snaplen are not an error (nothing in them is read). UDP needs 8 bytes,
//!   ICMP/ICMPv6 8 bytes. Fewer captured bytes is `truncated_tcp` etc.: the
//!   network layer and the transport protocol still count, ports are filled
//!   when at least 4 bytes (ICMP type/code: 2) were captured.
//! * SCTP: only the ports of the common header are read (at least 4 bytes
//!   captured, else they stay 0; no failure reason), so SCTP flows have
//!   their ports as TCP's and UDP's do; `payload_len` is `P` as for any other
//!   protocol. Other protocols (DCCP, UDP-Lite, RSVP, ...) keep ports 0.
//! * ICMP errors (v4 types 3, 4, 5, 11, 12; v6 types 1–4): the embedded IP
//!   header and first transport bytes go to `quote` as the original packet
//!   travelled; `has_quote` is set when the quoted IP header is complete. A
//!   missing/garbled quoted header is `bad_icmp_quote`.
//! * ARP and RARP: `l3 = Arp`, `key.src`/`key.dst` = sender/target protocol
//!   addresses when they are IPv4, `key.sport` = opcode.
//! * Only one reason is reported per frame: the first problem met, except that
//!   a broken IPv6 extension header (or IPv4 AH) wins over a length error of
//!   its IP header, since it decides that the transport is unknown.
//! * VXLAN is recognised by UDP destination port 4789 with the I flag set,
//!   VXLAN-GPE by port 4790 (counted as vxlan), Geneve by destination port 6081
//!   with version 0; otherwise it is plain UDP (the source port is ignored).
//!   GRE is decapsulated for version 0 with protocol IPv4, IPv6, 0x6558
//!   (Ethernet), 0x88be (ERSPAN I without the S bit, II with it) or 0x22eb
//!   (ERSPAN III); other GRE versions/protocols stay plain GRE (proto 47).

mod fast;
mod link;
mod links;
mod slow;
mod stats;
mod tunnel;

#[cfg(test)]
mod tests;

use crate::packet::{LinkType, PacketMeta, RawFrame};

pub use links::{LinkIds, LINK_OVERFLOW};
pub use stats::{DecodeStats, DecodeSummary, Fragments, LinkCount};

/// Tunnels nested deeper than this are not peeled (`tunnel_too_deep`).
pub const MAX_TUNNEL_DEPTH: usize = 4;

/// Why a frame could not be decoded (fully). Stable names: they are summary
/// keys and metric label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DecodeFail {
    /// Captured bytes end inside the link header (Ethernet, SLL, SLL2, NULL).
    TruncatedLink,
    /// Captured bytes end inside an 802.1Q/802.1ad tag.
    TruncatedVlan,
    /// The IP version nibble does not match what the link layer announced
    /// (or is neither 4 nor 6 on a raw link).
    BadIpVersion,
    /// Captured bytes end inside the IPv4 header (including options).
    TruncatedIpv4,
    /// IPv4 IHL below 5.
    BadIpv4HeaderLen,
    /// IPv4 total length smaller than the header: nothing after it is decoded.
    Ipv4TotalLenBelowHeader,
    /// IPv4 total length beyond the frame's original length (or the enclosing
    /// packet): decoding goes on with the bytes the wire had.
    BadIpv4TotalLen,
    /// Captured bytes end inside the 40-byte IPv6 header.
    TruncatedIpv6,
    /// IPv6 payload length beyond the frame's original length.
    BadIpv6PayloadLen,
    /// An IPv6 extension header (or IPv4 AH) is cut off.
    TruncatedIpExt,
    /// An IPv6 extension header (or IPv4 AH) is invalid (e.g. hop-by-hop not first).
    BadIpExt,
    /// Captured bytes end inside the ARP packet.
    TruncatedArp,
    /// Fewer than 20 TCP header bytes captured.
    TruncatedTcp,
    /// TCP data offset below 5 or beyond the IP payload.
    BadTcpDataOffset,
    /// Fewer than 8 UDP header bytes captured.
    TruncatedUdp,
    /// UDP length below 8 or beyond the IP payload.
    BadUdpLen,
    /// Fewer than 8 ICMP header bytes captured.
    TruncatedIcmp,
    /// Fewer than 8 ICMPv6 header bytes captured.
    TruncatedIcmpv6,
    /// An ICMP/ICMPv6 error whose quoted IP header is missing or invalid.
    BadIcmpQuote,
    /// A tunnel header or the inner packet's headers before its network
    /// layer are cut off.
    TruncatedTunnel,
    /// A tunnel header, or the inner packet's link/network header, is invalid.
    BadTunnel,
    /// More than [`MAX_TUNNEL_DEPTH`] nested tunnels.
    TunnelTooDeep,
}

impl DecodeFail {
    /// Every reason, in `repr` order (index with `reason as usize`).
    pub const ALL: &'static [DecodeFail] = &[
        DecodeFail::TruncatedLink,
        DecodeFail::TruncatedVlan,
        DecodeFail::BadIpVersion,
        DecodeFail::TruncatedIpv4,
        DecodeFail::BadIpv4HeaderLen,
        DecodeFail::Ipv4TotalLenBelowHeader,
        DecodeFail::BadIpv4TotalLen,
        DecodeFail::TruncatedIpv6,
        DecodeFail::BadIpv6PayloadLen,
        DecodeFail::TruncatedIpExt,
        DecodeFail::BadIpExt,
        DecodeFail::TruncatedArp,
        DecodeFail::TruncatedTcp,
        DecodeFail::BadTcpDataOffset,
        DecodeFail::TruncatedUdp,
        DecodeFail::BadUdpLen,
        DecodeFail::TruncatedIcmp,
        DecodeFail::TruncatedIcmpv6,
        DecodeFail::BadIcmpQuote,
        DecodeFail::TruncatedTunnel,
        DecodeFail::BadTunnel,
        DecodeFail::TunnelTooDeep,
    ];

    /// Number of reasons (size of per-reason counter arrays).
    pub const COUNT: usize = Self::ALL.len();

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            DecodeFail::TruncatedLink => "truncated_link",
            DecodeFail::TruncatedVlan => "truncated_vlan",
            DecodeFail::BadIpVersion => "bad_ip_version",
            DecodeFail::TruncatedIpv4 => "truncated_ipv4",
            DecodeFail::BadIpv4HeaderLen => "bad_ipv4_header_len",
            DecodeFail::Ipv4TotalLenBelowHeader => "ipv4_total_len_below_header",
            DecodeFail::BadIpv4TotalLen => "bad_ipv4_total_len",
            DecodeFail::TruncatedIpv6 => "truncated_ipv6",
            DecodeFail::BadIpv6PayloadLen => "bad_ipv6_payload_len",
            DecodeFail::TruncatedIpExt => "truncated_ip_ext",
            DecodeFail::BadIpExt => "bad_ip_ext",
            DecodeFail::TruncatedArp => "truncated_arp",
            DecodeFail::TruncatedTcp => "truncated_tcp",
            DecodeFail::BadTcpDataOffset => "bad_tcp_data_offset",
            DecodeFail::TruncatedUdp => "truncated_udp",
            DecodeFail::BadUdpLen => "bad_udp_len",
            DecodeFail::TruncatedIcmp => "truncated_icmp",
            DecodeFail::TruncatedIcmpv6 => "truncated_icmpv6",
            DecodeFail::BadIcmpQuote => "bad_icmp_quote",
            DecodeFail::TruncatedTunnel => "truncated_tunnel",
            DecodeFail::BadTunnel => "bad_tunnel",
            DecodeFail::TunnelTooDeep => "tunnel_too_deep",
        }
    }

    /// Whether the upper-layer protocol (`key.proto`) of a frame that failed
    /// with this reason is known, i.e. whether its transport is counted.
    /// False for failures inside the IP header or its extension headers,
    /// where Wireshark stops dissecting too.
    pub fn transport_known(self) -> bool {
        !matches!(
            self,
            DecodeFail::TruncatedLink
                | DecodeFail::TruncatedVlan
                | DecodeFail::BadIpVersion
                | DecodeFail::TruncatedIpv4
                | DecodeFail::BadIpv4HeaderLen
                | DecodeFail::Ipv4TotalLenBelowHeader
                | DecodeFail::TruncatedIpv6
                | DecodeFail::TruncatedIpExt
                | DecodeFail::BadIpExt
                | DecodeFail::TruncatedArp
        )
    }
}

impl std::fmt::Display for DecodeFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decode failure: the reason and the byte offset in the frame where the
/// failing header starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at frame offset {offset}")]
pub struct DecodeError {
    pub reason: DecodeFail,
    pub offset: usize,
}

impl DecodeError {
    #[inline]
    pub(crate) fn new(reason: DecodeFail, offset: usize) -> DecodeError {
        DecodeError { reason, offset }
    }
}

/// Overwrite `out` with an empty meta for `frame`.
#[inline]
fn reset(frame: &RawFrame<'_>, out: &mut PacketMeta) {
    // Zero first, then the two fields: built as one struct literal, the
    // compiler copied it through the stack in wide overlapping moves that
    // stalled store-to-load forwarding.
    *out = PacketMeta::default();
    out.ts_ns = frame.ts_ns;
    out.wire_len = frame.orig_len;
}

/// Bytes the frame had on the wire (never less than what was captured, in
/// case a source reports an original length below the capture length).
#[inline]
fn wire_len(frame: &RawFrame<'_>) -> usize {
    (frame.orig_len as usize).max(frame.data.len())
}

/// Decode one frame into `out` (fully overwritten; `hash` is left 0 for the
/// dispatcher). On error, `out` keeps what was decoded before the failure and
/// the caller counts the reason ([`DecodeStats::record`]).
#[inline]
pub fn decode(
    frame: &RawFrame<'_>,
    links: &mut LinkIds,
    out: &mut PacketMeta,
) -> Result<(), DecodeError> {
    if decode_fast(frame, out) {
        return Ok(());
    }
    decode_slow(frame, links, out)
}

/// The fast path alone: returns true and fills `out` when the frame is one of
/// the common stacks it handles (the result is then `Ok`), false otherwise
/// (`out` is then unspecified). Public for tests and benches.
#[inline(always)]
pub fn decode_fast(frame: &RawFrame<'_>, out: &mut PacketMeta) -> bool {
    reset(frame, out);
    // Ethernet (by far the most common link) inlined; `parse` does the same.
    let net = if frame.link == LinkType::Ethernet {
        link::ethernet(frame.data, 0, out)
    } else {
        link::parse(frame.link, frame.data, 0, frame.data.len(), out)
    };
    let Ok(net) = net else {
        return false;
    };
    fast::ip(frame.data, net, wire_len(frame), out)
}

/// The slow path alone (etherparse slicing plus tunnels): decodes every frame
/// [`decode`] can. Public for tests and benches.
pub fn decode_slow(
    frame: &RawFrame<'_>,
    links: &mut LinkIds,
    out: &mut PacketMeta,
) -> Result<(), DecodeError> {
    reset(frame, out);
    slow::frame(frame, wire_len(frame), links, out)
}
