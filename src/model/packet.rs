//! Floor L0 (`model`). Types shared by every stage: the raw frame a source yields and the small
//! `Copy` summary ([`PacketMeta`]) that the capture thread decodes it into.
//!
//! Nothing after `decode` sees frame bytes: workers, the flow table and (later)
//! detectors work only on `PacketMeta`, as smoltcp's upper layers never call down.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Link-layer framing of a capture, by LINKTYPE_* number
/// (<https://www.tcpdump.org/linktypes.html>).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_NULL (0): BSD loopback, 4-byte address family in host byte order.
    Null,
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_RAW (101) and DLT_RAW 12/14 on some systems: a bare IPv4 or IPv6 packet.
    Raw,
    /// LINKTYPE_LOOP (108): OpenBSD loopback, address family in network byte order.
    Loop,
    /// LINKTYPE_LINUX_SLL (113): Linux cooked capture v1.
    LinuxSll,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// LINKTYPE_LINUX_SLL2 (276): Linux cooked capture v2.
    LinuxSll2,
}

impl LinkType {
    /// Map a LINKTYPE_*/DLT_* number to a supported link type.
    pub fn from_number(n: u32) -> Option<LinkType> {
        Some(match n {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            // 12 is DLT_RAW on most BSDs, 14 on OpenBSD; 101 is LINKTYPE_RAW.
            12 | 14 | 101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// The LINKTYPE_* number to write in a pcap header for this framing.
    pub fn number(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll2 => 276,
        }
    }

    /// Stable lower-case name used in summaries and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkType::Null => "null",
            LinkType::Ethernet => "ethernet",
            LinkType::Raw => "raw",
            LinkType::Loop => "loop",
            LinkType::LinuxSll => "linux_sll",
            LinkType::Ipv4 => "ipv4",
            LinkType::Ipv6 => "ipv6",
            LinkType::LinuxSll2 => "linux_sll2",
        }
    }

    /// Every supported link type, for counters indexed by `self as usize`.
    pub const ALL: [LinkType; 8] = [
        LinkType::Null,
        LinkType::Ethernet,
        LinkType::Raw,
        LinkType::Loop,
        LinkType::LinuxSll,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::LinuxSll2,
    ];
}

/// Human name of a LINKTYPE number, for error messages about unsupported ones.
pub fn linktype_name(n: u32) -> String {
    let known = match n {
        0 => "NULL",
        1 => "ETHERNET",
        6 => "IEEE802_5",
        9 => "PPP",
        10 => "FDDI",
        12 | 14 | 101 => "RAW",
        50 => "PPP_HDLC",
        104 => "C_HDLC",
        105 => "IEEE802_11",
        108 => "LOOP",
        113 => "LINUX_SLL",
        119 => "IEEE802_11_PRISM",
        127 => "IEEE802_11_RADIOTAP",
        147..=162 => "USER",
        187 => "BLUETOOTH_HCI_H4",
        189 => "USB_LINUX",
        195 => "IEEE802_15_4",
        220 => "USB_LINUX_MMAPPED",
        228 => "IPV4",
        229 => "IPV6",
        249 => "NETLINK",
        252 => "WIRESHARK_UPPER_PDU",
        276 => "LINUX_SLL2",
        _ => "unknown",
    };
    format!("LINKTYPE_{known} ({n})")
}

/// One captured frame as a source yields it. Borrowed from the source's
/// buffer (mmap'd file or libpcap ring) until the next call.
#[derive(Clone, Copy, Debug)]
pub struct RawFrame<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Length of the frame on the wire (may exceed `data.len()` when cut by snaplen).
    pub orig_len: u32,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Framing of `data`.
    pub link: LinkType,
    /// Index of the input (file or interface) this frame came from.
    pub source: u16,
}

/// Network layer of the analysed (innermost) packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum L3 {
    /// Not decoded (decode failed before the network layer).
    #[default]
    None = 0,
    Ipv4 = 1,
    Ipv6 = 2,
    Arp = 3,
    /// A link-layer frame carrying something else (LLDP, STP, IPX...).
    Other = 4,
}

/// Fragment position of an IP packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Frag {
    /// Not a fragment.
    #[default]
    None = 0,
    /// First fragment (offset 0, more-fragments set): the L4 header is present.
    First = 1,
    /// Any later fragment: no L4 header, ports are zero and must not be read.
    NonFirst = 2,
}

/// Encapsulation the analysed packet was found in (the outermost one when nested).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tunnel {
    #[default]
    None = 0,
    Gre = 1,
    ErspanI = 2,
    ErspanII = 3,
    ErspanIII = 4,
    Vxlan = 5,
    Geneve = 6,
    /// IPv4-in-IPv4, IPv6-in-IPv4, ... (protocol numbers 4 and 41)
    IpInIp = 7,
}

impl Tunnel {
    pub fn as_str(self) -> &'static str {
        match self {
            Tunnel::None => "none",
            Tunnel::Gre => "gre",
            Tunnel::ErspanI => "erspan_i",
            Tunnel::ErspanII => "erspan_ii",
            Tunnel::ErspanIII => "erspan_iii",
            Tunnel::Vxlan => "vxlan",
            Tunnel::Geneve => "geneve",
            Tunnel::IpInIp => "ip_in_ip",
        }
    }
    pub const ALL: [Tunnel; 8] = [
        Tunnel::None,
        Tunnel::Gre,
        Tunnel::ErspanI,
        Tunnel::ErspanII,
        Tunnel::ErspanIII,
        Tunnel::Vxlan,
        Tunnel::Geneve,
        Tunnel::IpInIp,
    ];
}

/// IP protocol numbers used across the crate.
/// The innermost VLAN id of a key's `[outer, inner]` tag pair (0 = none).
#[inline]
pub fn inner_vlan(v: [u16; 2]) -> Option<u16> {
    v.iter().rev().copied().find(|&x| x != 0)
}

pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const GRE: u8 = 47;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
}

/// TCP flag bits as in the TCP header's flags byte.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// An address stored in 16 bytes: IPv6 as is, IPv4 in the low 4 bytes
/// (bytes 0..12 zero). `v6` on the owning key says which.
pub type Addr = [u8; 16];

/// Store an IPv4 address in an [`Addr`].
#[inline]
pub fn addr_v4(a: [u8; 4]) -> Addr {
    let mut out = [0u8; 16];
    out[12..].copy_from_slice(&a);
    out
}

/// A unidirectional 5-tuple plus the link identity, oriented as the packet
/// travelled (`src` = sender of this packet). 44 bytes.
///
/// Ports are those of TCP, UDP and SCTP (the protocols whose ports the
/// Community ID spec hashes); 0 for every other protocol and for non-first
/// fragments. For ICMP/ICMPv6, `sport` is the ICMP type and `dport` the code
/// (as in the Community ID spec). For ARP, `src`/`dst` are the sender/target
/// protocol addresses and `sport` is the ARP opcode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C)]
pub struct FlowKey {
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
    /// 802.1Q/802.1ad VLAN ids, outermost first; unused slots are 0 (see `nvlan`).
    pub vlan: [u16; 2],
    /// Identity of the link the packet arrived on: 0 for the capture link itself,
    /// otherwise an id the capture thread assigned to a tunnel's outer endpoints
    /// (see `decode::LinkIds`).
    pub link: u16,
    /// IP protocol number (0 for ARP / non-IP).
    pub proto: u8,
    /// `src`/`dst` are IPv6 addresses.
    pub v6: bool,
}

impl FlowKey {
    pub fn src_ip(&self) -> IpAddr {
        to_ip(&self.src, self.v6)
    }
    pub fn dst_ip(&self) -> IpAddr {
        to_ip(&self.dst, self.v6)
    }
    /// A key from std addresses (both of one family; an IPv4 address beside
    /// an IPv6 one is stored IPv4-mapped), on the capture link, untagged.
    pub fn new(proto: u8, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> FlowKey {
        let v6 = src.is_ipv6() || dst.is_ipv6();
        let conv = |a: IpAddr| match a {
            IpAddr::V4(a) if !v6 => addr_v4(a.octets()),
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            IpAddr::V6(a) => a.octets(),
        };
        FlowKey {
            src: conv(src),
            dst: conv(dst),
            sport,
            dport,
            proto,
            v6,
            ..FlowKey::default()
        }
    }

    /// The same key seen from the other direction.
    #[inline]
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ..*self
        }
    }
}

/// Turn a stored address into a std address.
pub fn to_ip(a: &Addr, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(*a))
    } else {
        IpAddr::V4(Ipv4Addr::new(a[12], a[13], a[14], a[15]))
    }
}

/// The transport header quoted inside an ICMP/ICMPv6 error, oriented as the
/// original packet travelled (so it names the flow the error reports on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Quote {
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub v6: bool,
}

/// The small `Copy` summary of one decoded frame: everything later stages may
/// know about a packet. Built by `decode`, hashed by the dispatcher, consumed by
/// workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Keyed symmetric hash of `key` (set by the dispatcher; both directions equal).
    pub hash: u64,
    /// Oriented flow key of the analysed (innermost) packet.
    pub key: FlowKey,
    /// Quoted header of an ICMP error, when `has_quote`.
    pub quote: Quote,
    /// Length of the frame on the wire.
    pub wire_len: u32,
    /// Length of the analysed IP packet according to its header (0 if none).
    pub ip_len: u32,
    /// L4 payload bytes (TCP/UDP payload, per header lengths, clamped to what was captured... see decode docs).
    pub payload_len: u32,
    /// Source MAC of the innermost Ethernet header (zero when the link has none).
    pub src_mac: [u8; 6],
    pub l3: L3,
    pub frag: Frag,
    pub tunnel: Tunnel,
    /// Number of VLAN tags (0..=2 kept in `key.vlan`; more are counted but not kept).
    pub nvlan: u8,
    /// TCP flags byte (0 for non-TCP).
    pub tcp_flags: u8,
    /// The packet is an ICMP/ICMPv6 error and `quote` holds its embedded header.
    pub has_quote: bool,
    /// IP TTL / hop limit.
    pub ttl: u8,
    /// Index of the input the frame came from ([`RawFrame::source`]).
    pub source: u16,
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}:{} -> {}:{}",
            self.proto,
            self.src_ip(),
            self.sport,
            self.dst_ip(),
            self.dport
        )
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn meta_stays_small() {
        // The batch copies this per packet; keep an eye on it.
        assert!(
            std::mem::size_of::<PacketMeta>() <= 136,
            "{}",
            std::mem::size_of::<PacketMeta>()
        );
        assert_eq!(std::mem::size_of::<FlowKey>(), 44);
    }

    #[test]
    fn v4_roundtrip() {
        let k = FlowKey {
            src: addr_v4([192, 0, 2, 1]),
            v6: false,
            ..Default::default()
        };
        assert_eq!(k.src_ip().to_string(), "192.0.2.1");
    }
}
