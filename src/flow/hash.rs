//! Floor L2 (`flow`). Keyed symmetric flow hash: both directions of a flow hash alike, and the key
//! is a per-process secret so crafted tuples cannot pile into one bucket or worker.
//!
//! The hash covers the *canonical* form of a [`FlowKey`]: ICMP/ICMPv6 type/code
//! are first replaced by their Community ID port equivalents (echo request 8 ↔
//! reply 0, ICMPv6 128 ↔ 129, router/neighbour solicitation ↔ advertisement, ...;
//! see [`crate::model::proto::icmp_port_equivalents`]) so a request and its reply
//! meet, then the two `(address, port)` endpoints are ordered (larger first, as
//! Retina's `ConnId(max, min)`; addresses compared as native-endian integers),
//! and `proto`, `v6`, both VLAN ids and `link` are mixed in. Hashing is foldhash (fast, keyed by the secret).
//!
//! Non-first IP fragments carry no L4 header: decode sets their ports to 0, so
//! they hash (and are tracked) as their own `(address pair, proto, 0, 0)` flow.
//! We do not reassemble; the first fragment, which has the ports, joins the
//! regular flow.
use std::hash::Hasher;
use std::sync::OnceLock;

use foldhash::fast::FoldHasher;
use foldhash::SharedSeed;

use crate::model::proto::{icmp_family, icmp_port_equivalents};
use crate::packet::{FlowKey, PacketMeta};

/// Keyed, direction-free hash of flow keys. Cheap to clone (56 bytes).
#[derive(Clone)]
pub struct FlowHasher {
    per_hasher: u64,
    shared: SharedSeed,
    /// Hash VLAN ids as part of the key (`with_vlan_in_key`).
    vlan_in_key: bool,
}

impl std::fmt::Debug for FlowHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.write_str("FlowHasher { .. }")
    }
}

/// The per-process secret: every `FlowHasher::new()` in a process uses it, so
/// the dispatcher's hash and each worker table's hash agree.
fn process_secret() -> u64 {
    static SECRET: OnceLock<u64> = OnceLock::new();
    *SECRET.get_or_init(|| {
        getrandom::u64().unwrap_or_else(|_| {
            // No OS randomness (should not happen on supported systems): fall
            // back to weak but varying inputs rather than failing to start.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let local = 0u8;
            t ^ (std::process::id() as u64).rotate_left(32) ^ (&local as *const u8 as u64)
        })
    })
}

impl FlowHasher {
    /// A hasher keyed with the per-process random secret (from `getrandom`).
    /// All hashers made by `new` in one process are identical.
    pub fn new() -> FlowHasher {
        Self::with_seed(process_secret())
    }

    /// A hasher with a fixed secret (tests, benches).
    pub fn with_seed(seed: u64) -> FlowHasher {
        FlowHasher {
            per_hasher: seed.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15,
            shared: SharedSeed::from_u64(seed),
            vlan_in_key: false,
        }
    }

    /// The same hasher with VLAN ids in (`true`) or out of (`false`, the
    /// default) the hashed key; it must match the tables'
    /// [`FlowConfig::vlan_in_key`](super::FlowConfig::vlan_in_key).
    pub fn with_vlan_in_key(mut self, on: bool) -> FlowHasher {
        self.vlan_in_key = on;
        self
    }

    /// Hash of the canonical (direction-free) form of `key`.
    #[inline]
    pub fn hash_key(&self, key: &FlowKey) -> u64 {
        let (sp, dp) = match icmp_family(key.proto) {
            Some(v6) => {
                let (a, b, _) = icmp_port_equivalents(v6, key.sport, key.dport);
                (a, b)
            }
            None => (key.sport, key.dport),
        };
        // Any total order of the endpoints makes the hash direction-free; native
        // byte order spares the byte swaps of a numeric (network-order) one.
        let a = u128::from_ne_bytes(key.src);
        let b = u128::from_ne_bytes(key.dst);
        let a_first = if a != b { a > b } else { sp >= dp };
        let (hi, lo, ports) = if a_first {
            (a, b, sp as u64 | (dp as u64) << 16)
        } else {
            (b, a, dp as u64 | (sp as u64) << 16)
        };
        let vlan = if self.vlan_in_key { key.vlan } else { [0; 2] };
        let rest = ports | (vlan[0] as u64) << 32 | (vlan[1] as u64) << 48;
        let ids = key.link as u64 | (key.proto as u64) << 16 | (key.v6 as u64) << 24;
        let mut h = FoldHasher::with_seed(self.per_hasher, &self.shared);
        h.write_u128(hi);
        h.write_u128(lo);
        h.write_u128(rest as u128 | (ids as u128) << 64);
        h.finish()
    }

    /// The dispatch hash of a packet: of its quoted flow for ICMP errors (so the
    /// error reaches the worker that owns the flow it reports on), else of its key.
    #[inline]
    pub fn hash_packet(&self, meta: &PacketMeta) -> u64 {
        if meta.has_quote {
            self.hash_key(&quoted_key(meta))
        } else {
            self.hash_key(&meta.key)
        }
    }
}

impl Default for FlowHasher {
    fn default() -> Self {
        Self::new()
    }
}

/// The key of the flow an ICMP error reports on: its quoted header, on the
/// error's own VLANs and link.
#[inline]
pub fn quoted_key(meta: &PacketMeta) -> FlowKey {
    let q = &meta.quote;
    FlowKey {
        src: q.src,
        dst: q.dst,
        sport: q.sport,
        dport: q.dport,
        vlan: meta.key.vlan,
        link: meta.key.link,
        proto: q.proto,
        v6: q.v6,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::packet::{addr_v4, proto, Quote};

    fn k(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, p: u8) -> FlowKey {
        FlowKey {
            src: addr_v4(src),
            dst: addr_v4(dst),
            sport,
            dport,
            proto: p,
            ..Default::default()
        }
    }

    #[test]
    fn symmetric_and_keyed() {
        let h = FlowHasher::with_seed(1);
        let a = k([192, 0, 2, 1], 40000, [198, 51, 100, 2], 443, proto::TCP);
        assert_eq!(h.hash_key(&a), h.hash_key(&a.reversed()));
        // Every field matters.
        let mut b = a;
        b.sport += 1;
        assert_ne!(h.hash_key(&a), h.hash_key(&b));
        let mut b = a;
        b.proto = proto::UDP;
        assert_ne!(h.hash_key(&a), h.hash_key(&b));
        // VLAN ids only when they are part of the key: by default both
        // directions of a routed connection meet whatever their tags.
        let mut b = a;
        b.vlan = [0, 7];
        assert_eq!(h.hash_key(&a), h.hash_key(&b));
        assert_eq!(h.hash_key(&a), h.hash_key(&b.reversed()));
        let hv = FlowHasher::with_seed(1).with_vlan_in_key(true);
        assert_ne!(hv.hash_key(&a), hv.hash_key(&b));
        let mut b = a;
        b.link = 1;
        assert_ne!(h.hash_key(&a), h.hash_key(&b));
        let mut b = a;
        b.v6 = true;
        assert_ne!(h.hash_key(&a), h.hash_key(&b));
        // Swapping ports alone (not a reversal) is a different flow.
        let mut b = a;
        std::mem::swap(&mut b.sport, &mut b.dport);
        assert_ne!(h.hash_key(&a), h.hash_key(&b));
        // Keyed: another secret gives another hash.
        assert_ne!(h.hash_key(&a), FlowHasher::with_seed(2).hash_key(&a));
        // `new` uses one process-wide secret.
        assert_eq!(
            FlowHasher::new().hash_key(&a),
            FlowHasher::new().hash_key(&a)
        );
    }

    #[test]
    fn icmp_echo_request_and_reply_meet() {
        let h = FlowHasher::with_seed(3);
        let req = k([192, 0, 2, 1], 8, [192, 0, 2, 2], 0, proto::ICMP);
        let rep = k([192, 0, 2, 2], 0, [192, 0, 2, 1], 0, proto::ICMP);
        assert_eq!(h.hash_key(&req), h.hash_key(&rep));
        let mut req6 = req;
        req6.proto = proto::ICMPV6;
        req6.v6 = true;
        req6.sport = 128;
        let mut rep6 = rep;
        rep6.proto = proto::ICMPV6;
        rep6.v6 = true;
        rep6.sport = 129;
        assert_eq!(h.hash_key(&req6), h.hash_key(&rep6));
        // A one-way type is not merged with an unrelated type.
        let unreach = k([192, 0, 2, 2], 3, [192, 0, 2, 1], 1, proto::ICMP);
        assert_ne!(h.hash_key(&unreach), h.hash_key(&req));
    }

    #[test]
    fn icmp_error_hashes_as_quoted_flow() {
        let h = FlowHasher::with_seed(4);
        let flow = k([192, 0, 2, 1], 5353, [203, 0, 113, 9], 53, proto::UDP);
        let mut meta = PacketMeta {
            key: k([203, 0, 113, 1], 3, [192, 0, 2, 1], 3, proto::ICMP),
            has_quote: true,
            quote: Quote {
                src: flow.src,
                dst: flow.dst,
                sport: flow.sport,
                dport: flow.dport,
                proto: flow.proto,
                v6: false,
            },
            ..Default::default()
        };
        meta.key.vlan = [5, 0];
        let mut on_vlan = flow;
        on_vlan.vlan = [5, 0];
        assert_eq!(h.hash_packet(&meta), h.hash_key(&on_vlan));
        meta.has_quote = false;
        assert_eq!(h.hash_packet(&meta), h.hash_key(&meta.key));
    }
}
