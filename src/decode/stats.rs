//! Floor L1 (`decode`). [`DecodeStats`]: per-protocol and per-reason counters of the capture
//! thread.
//!
//! Counting rules (mirroring what `tshark -T fields -e frame.protocols` shows
//! with reassembly off, for the analysed — innermost — packet):
//! * every frame counts in `link` (frames and captured bytes by link type);
//! * a failed frame counts its reason in `decode_failures`;
//! * a frame whose `l3` is `None` (failed before the network layer) counts
//!   nowhere else;
//! * otherwise its `network` (ipv4/ipv6/arp/other), VLAN tags, tunnel kind,
//!   fragment position and ICMP quote are counted;
//! * its `transport` (by IP protocol number: tcp, udp, icmp, icmpv6, other) is
//!   counted for IPv4/IPv6 packets that are not non-first fragments, unless
//!   the failure happened before the upper-layer protocol was known
//!   ([`DecodeFail::transport_known`]). A TCP header cut short still counts
//!   as tcp (and as `truncated_tcp`), as tshark shows `tcp` for it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{DecodeError, DecodeFail};
use crate::packet::{proto, Frag, LinkType, PacketMeta, RawFrame, Tunnel, L3};

const NLINK: usize = LinkType::ALL.len();
const NTUNNEL: usize = Tunnel::ALL.len();

/// Transport counter slots.
const TRANSPORT: [&str; 5] = ["tcp", "udp", "icmp", "icmpv6", "other"];
/// Network counter slots, indexed by `L3 as usize - 1`.
const NETWORK: [&str; 4] = ["ipv4", "ipv6", "arp", "other"];

/// Plain integer counters; [`record`](DecodeStats::record) is a handful of
/// array increments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeStats {
    link_frames: [u64; NLINK],
    link_bytes: [u64; NLINK],
    network: [u64; 4],
    transport: [u64; 5],
    tunnels: [u64; NTUNNEL],
    failures: [u64; DecodeFail::COUNT],
    /// Frames with at least one VLAN tag (innermost Ethernet header).
    pub vlan_tagged: u64,
    /// Frames with two or more VLAN tags.
    pub vlan_stacked: u64,
    /// First fragments (offset 0, more fragments).
    pub frag_first: u64,
    /// Later fragments (no transport header).
    pub frag_non_first: u64,
    /// ICMP/ICMPv6 errors whose quoted header was decoded.
    pub icmp_errors: u64,
}

impl Default for DecodeStats {
    fn default() -> Self {
        DecodeStats {
            link_frames: [0; NLINK],
            link_bytes: [0; NLINK],
            network: [0; 4],
            transport: [0; 5],
            tunnels: [0; NTUNNEL],
            failures: [0; DecodeFail::COUNT],
            vlan_tagged: 0,
            vlan_stacked: 0,
            frag_first: 0,
            frag_non_first: 0,
            icmp_errors: 0,
        }
    }
}

#[inline]
fn bump(slot: Option<&mut u64>, by: u64) {
    if let Some(s) = slot {
        *s += by;
    }
}

impl DecodeStats {
    pub fn new() -> DecodeStats {
        DecodeStats::default()
    }

    /// Count one frame after `decode` returned `result` for it.
    #[inline]
    pub fn record(
        &mut self,
        frame: &RawFrame<'_>,
        meta: &PacketMeta,
        result: Result<(), DecodeError>,
    ) {
        let li = frame.link as usize;
        bump(self.link_frames.get_mut(li), 1);
        bump(self.link_bytes.get_mut(li), frame.data.len() as u64);
        let transport_known = match result {
            Ok(()) => true,
            Err(e) => {
                bump(self.failures.get_mut(e.reason as usize), 1);
                e.reason.transport_known()
            }
        };
        if meta.l3 == L3::None {
            return;
        }
        bump(self.network.get_mut(meta.l3 as usize - 1), 1);
        if meta.nvlan > 0 {
            self.vlan_tagged += 1;
            if meta.nvlan > 1 {
                self.vlan_stacked += 1;
            }
        }
        if meta.tunnel != Tunnel::None {
            bump(self.tunnels.get_mut(meta.tunnel as usize), 1);
        }
        match meta.frag {
            Frag::None => {}
            Frag::First => self.frag_first += 1,
            Frag::NonFirst => self.frag_non_first += 1,
        }
        if meta.has_quote {
            self.icmp_errors += 1;
        }
        if matches!(meta.l3, L3::Ipv4 | L3::Ipv6) && meta.frag != Frag::NonFirst && transport_known
        {
            let t = match meta.key.proto {
                proto::TCP => 0,
                proto::UDP => 1,
                proto::ICMP => 2,
                proto::ICMPV6 => 3,
                _ => 4,
            };
            bump(self.transport.get_mut(t), 1);
        }
    }

    /// [`record`](Self::record) for a frame [`decode_fast`](super::decode_fast)
    /// accepted: `Ok`, IPv4/IPv6, no fragment, tunnel or ICMP quote (so those
    /// counters stay as they are). Same counts, fewer branches.
    #[inline]
    pub fn record_fast(&mut self, frame: &RawFrame<'_>, meta: &PacketMeta) {
        debug_assert!(matches!(meta.l3, L3::Ipv4 | L3::Ipv6));
        debug_assert!(meta.frag == Frag::None && meta.tunnel == Tunnel::None && !meta.has_quote);
        let li = frame.link as usize;
        bump(self.link_frames.get_mut(li), 1);
        bump(self.link_bytes.get_mut(li), frame.data.len() as u64);
        bump(self.network.get_mut((meta.l3 as usize).wrapping_sub(1)), 1);
        if meta.nvlan > 0 {
            self.vlan_tagged += 1;
            if meta.nvlan > 1 {
                self.vlan_stacked += 1;
            }
        }
        let t = match meta.key.proto {
            proto::TCP => 0,
            proto::UDP => 1,
            proto::ICMP => 2,
            proto::ICMPV6 => 3,
            _ => 4,
        };
        bump(self.transport.get_mut(t), 1);
    }

    /// Add `other`'s counts to these.
    pub fn merge(&mut self, other: &DecodeStats) {
        fn add<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        add(&mut self.link_frames, &other.link_frames);
        add(&mut self.link_bytes, &other.link_bytes);
        add(&mut self.network, &other.network);
        add(&mut self.transport, &other.transport);
        add(&mut self.tunnels, &other.tunnels);
        add(&mut self.failures, &other.failures);
        self.vlan_tagged += other.vlan_tagged;
        self.vlan_stacked += other.vlan_stacked;
        self.frag_first += other.frag_first;
        self.frag_non_first += other.frag_non_first;
        self.icmp_errors += other.icmp_errors;
    }

    /// Frames recorded.
    pub fn frames(&self) -> u64 {
        self.link_frames.iter().sum()
    }

    /// (link type name, frames, captured bytes) for link types seen.
    pub fn link(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        LinkType::ALL
            .iter()
            .zip(self.link_frames.iter().zip(&self.link_bytes))
            .filter(|(_, (f, _))| **f > 0)
            .map(|(l, (f, b))| (l.as_str(), *f, *b))
    }

    /// Frames by network layer: every key (ipv4, ipv6, arp, other), zeros included.
    pub fn network(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        NETWORK.iter().copied().zip(self.network.iter().copied())
    }

    /// Frames by transport: every key (tcp, udp, icmp, icmpv6, other), zeros included.
    pub fn transport(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        TRANSPORT
            .iter()
            .copied()
            .zip(self.transport.iter().copied())
    }

    /// Frames by (outermost) tunnel kind, kinds seen only.
    pub fn tunnels(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Tunnel::ALL
            .iter()
            .zip(self.tunnels.iter())
            .filter(|(t, n)| **t != Tunnel::None && **n > 0)
            .map(|(t, n)| (t.as_str(), *n))
    }

    /// Failures by reason, reasons seen only.
    pub fn failures(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DecodeFail::ALL
            .iter()
            .zip(self.failures.iter())
            .filter(|(_, n)| **n > 0)
            .map(|(r, n)| (r.as_str(), *n))
    }

    /// Count of one failure reason.
    pub fn failure(&self, reason: DecodeFail) -> u64 {
        self.failures.get(reason as usize).copied().unwrap_or(0)
    }

    /// Everything as the summary's `decode` object.
    pub fn summary(&self) -> DecodeSummary {
        DecodeSummary {
            link: self
                .link()
                .map(|(l, frames, bytes)| (l, LinkCount { frames, bytes }))
                .collect(),
            network: self.network().collect(),
            transport: self.transport().collect(),
            tunnels: self.tunnels().collect(),
            fragments: Fragments {
                first: self.frag_first,
                non_first: self.frag_non_first,
            },
            vlan_tagged: self.vlan_tagged,
            vlan_stacked: self.vlan_stacked,
            icmp_errors: self.icmp_errors,
            decode_failures: self.failures().collect(),
        }
    }
}

/// Frames and captured bytes of one link type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinkCount {
    pub frames: u64,
    pub bytes: u64,
}

/// Fragment counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Fragments {
    pub first: u64,
    pub non_first: u64,
}

/// [`DecodeStats`] in the shape of the summary JSON (keys sorted; `link`,
/// `tunnels` and `decode_failures` list only what was seen).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DecodeSummary {
    pub link: BTreeMap<&'static str, LinkCount>,
    pub network: BTreeMap<&'static str, u64>,
    pub transport: BTreeMap<&'static str, u64>,
    pub tunnels: BTreeMap<&'static str, u64>,
    pub fragments: Fragments,
    pub vlan_tagged: u64,
    pub vlan_stacked: u64,
    pub icmp_errors: u64,
    pub decode_failures: BTreeMap<&'static str, u64>,
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::decode::tests::{public_files, read_frames};
    use crate::decode::{decode_fast, decode_slow, LinkIds};

    /// `record_fast` counts exactly what `record` counts, for every frame of the
    /// public captures the fast path accepts (the only frames it is used for).
    #[test]
    fn record_fast_counts_like_record() {
        let mut fast = DecodeStats::new();
        let mut full = DecodeStats::new();
        let mut links = LinkIds::new();
        let mut accepted = 0u64;
        for (rel, path) in public_files() {
            for (n, (link, data, orig)) in read_frames(&path).iter().enumerate() {
                let f = RawFrame {
                    ts_ns: n as u64,
                    orig_len: *orig,
                    data,
                    link: *link,
                    source: 0,
                };
                let mut m = PacketMeta::default();
                if decode_fast(&f, &mut m) {
                    accepted += 1;
                    fast.record_fast(&f, &m);
                    full.record(&f, &m, Ok(()));
                    assert_eq!(fast, full, "{rel} frame {}", n + 1);
                } else {
                    let r = decode_slow(&f, &mut links, &mut m);
                    fast.record(&f, &m, r);
                    full.record(&f, &m, r);
                }
            }
        }
        assert!(accepted > 1000, "{accepted}");
        assert_eq!(fast, full);
        // Both kinds of network layer and several transports were seen.
        assert!(fast.network().filter(|(_, n)| *n > 0).count() >= 2);
        assert!(fast.transport().filter(|(_, n)| *n > 0).count() >= 3);
        assert!(fast.vlan_tagged > 0);
    }
}
