//! Floor L0 (`model`). IP protocol names as every output writes them, and the ICMP/ICMPv6 "port
//! equivalents" that key an ICMP exchange as one flow (Community ID spec).

use super::packet::proto;
use serde::Serializer;
use std::fmt;

/// The protocol an alert is about: an IP protocol number, or ARP (a sweep
/// by ARP requests, which has no IP protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Ip(u8),
    Arp,
}

/// As every output writes it: [`proto_name`], else the number; `arp`.
impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Protocol::Ip(p) => match proto_name(p) {
                Some(n) => f.write_str(n),
                None => write!(f, "{p}"),
            },
            Protocol::Arp => f.write_str("arp"),
        }
    }
}

/// `serialize_with` helper: an optional [`Protocol`] written as its label
/// (`"tcp"`, `"ipv6-icmp"`, `"arp"`, or the number as text).
pub fn ser_protocol<S: Serializer>(p: &Option<Protocol>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.collect_str(p),
        None => s.serialize_none(),
    }
}

/// Protocol names used in records.
pub fn proto_name(p: u8) -> Option<&'static str> {
    match p {
        proto::TCP => Some("tcp"),
        proto::UDP => Some("udp"),
        proto::ICMP => Some("icmp"),
        proto::ICMPV6 => Some("ipv6-icmp"),
        _ => None,
    }
}

/// ICMP/ICMPv6 "port equivalents" of a type/code pair, per the Community ID
/// spec (which follows Zeek's `ICMP4_counterpart`/`ICMP6_counterpart`):
/// request/response types map to `(type, counterpart type, false)` so both
/// directions meet; every other type is one-way: `(type, code, true)`.
#[inline]
pub fn icmp_port_equivalents(v6: bool, icmp_type: u16, code: u16) -> (u16, u16, bool) {
    let counterpart = if v6 {
        match icmp_type {
            128 => Some(129), // echo request / reply
            129 => Some(128),
            133 => Some(134), // router solicitation / advertisement
            134 => Some(133),
            135 => Some(136), // neighbor solicitation / advertisement
            136 => Some(135),
            130 => Some(131), // MLD query / report
            131 => Some(130),
            139 => Some(140), // node information query / response ("who are you")
            140 => Some(139),
            144 => Some(145), // home agent address discovery request / reply
            145 => Some(144),
            _ => None,
        }
    } else {
        match icmp_type {
            8 => Some(0), // echo / echo reply
            0 => Some(8),
            13 => Some(14), // timestamp / reply
            14 => Some(13),
            15 => Some(16), // information request / reply
            16 => Some(15),
            10 => Some(9), // router solicitation / advertisement
            9 => Some(10),
            17 => Some(18), // address mask request / reply
            18 => Some(17),
            _ => None,
        }
    };
    match counterpart {
        Some(c) => (icmp_type, c, false),
        None => (icmp_type, code, true),
    }
}

/// Which ICMP table applies to a protocol number, if any: `Some(false)` for
/// ICMP (v4 types), `Some(true)` for ICMPv6.
#[inline]
pub fn icmp_family(p: u8) -> Option<bool> {
    match p {
        proto::ICMP => Some(false),
        proto::ICMPV6 => Some(true),
        _ => None,
    }
}
