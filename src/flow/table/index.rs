//! Floor L2 (`flow`). Where the table finds and orders its flows: the index (open addressing
//! with linear probing over `u64` slots: `slab index + 1` in the low half, the
//! low 32 bits of `meta.hash` in the high half; backward-shift deletion; the
//! slot position of each entry, so ending a flow needs no hash) and one
//! intrusive LRU list per timeout class, a flow moving to its tail at most
//! once per epoch ([`epoch_shift`]). "Memory layout" in the table's module
//! docs gives the sizes and the reasons.
//!
//! Floor L2 (flow). Owns probe, insert and remove, and list link, unlink and
//! relink; leaves when a flow ends (expiry, eviction) to the table (`mod.rs`).

use super::entry::NIL;
use super::tcp::class_of;
use super::FlowTable;
use crate::packet::FlowKey;

/// LRU epochs: a flow moves to its list tail at most once per epoch of its
/// class, `2^shift` ns with the largest shift such that the epoch is at most
/// 1/8 of the class timeout, clamped to [2^20 ns, 2^40 ns].
pub(super) fn epoch_shift(timeout_ns: u64) -> u32 {
    let eighth = (timeout_ns / 8).max(1);
    (63 - eighth.leading_zeros()).clamp(20, 40)
}

impl FlowTable {
    /// Whether stored key `stored` and packet key `k` (same orientation) name
    /// one flow: equal, VLAN ids aside unless they are part of the key.
    #[inline]
    fn same_flow(&self, stored: &FlowKey, k: &FlowKey) -> bool {
        if self.vlan_in_key {
            stored == k
        } else {
            let mut k = *k;
            k.vlan = stored.vlan;
            *stored == k
        }
    }

    /// Find the flow of canonical `key` (either direction unless `one_way`).
    /// `quote`: look for the own flow of an ICMP error with this quote hash
    /// instead of a regular flow. Returns (index, packet is from the initiator).
    #[inline]
    pub(super) fn find(
        &self,
        hash: u64,
        key: &FlowKey,
        one_way: bool,
        quote: Option<u64>,
    ) -> Option<(u32, bool)> {
        let h32 = hash as u32;
        let mut pos = h32 as usize & self.mask;
        let mut rev: Option<FlowKey> = None;
        loop {
            // The index always has empty slots (load ≤ 0.5), so this ends.
            let s = *self.slots.get(pos)?;
            if s == 0 {
                return None;
            }
            if (s >> 32) as u32 == h32 {
                let idx = (s as u32).wrapping_sub(1);
                if let Some(e) = self.slab.get(idx as usize) {
                    match quote {
                        None if !e.quote_keyed() => {
                            if self.same_flow(&e.key, key) {
                                return Some((idx, true));
                            }
                            if !one_way
                                && self.same_flow(&e.key, rev.get_or_insert_with(|| key.reversed()))
                            {
                                return Some((idx, false));
                            }
                        }
                        Some(qh)
                            if e.quote_keyed()
                                && e.quote_hash() == qh
                                && self.same_flow(&e.key, key) =>
                        {
                            return Some((idx, true));
                        }
                        _ => {}
                    }
                }
            }
            pos = (pos + 1) & self.mask;
        }
    }

    pub(super) fn index_insert(&mut self, hash: u64, idx: u32) {
        let h32 = hash as u32;
        let mut pos = h32 as usize & self.mask;
        while let Some(s) = self.slots.get_mut(pos) {
            if *s == 0 {
                *s = (idx as u64 + 1) | (h32 as u64) << 32;
                if let Some(p) = self.slot_of.get_mut(idx as usize) {
                    *p = pos as u32;
                }
                return;
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Remove `idx` from the index, shifting later entries of its probe run
    /// back so no tombstone is left.
    pub(super) fn index_remove(&mut self, idx: u32) {
        let mask = self.mask;
        let Some(&p) = self.slot_of.get(idx as usize) else {
            return;
        };
        let pos = p as usize;
        match self.slots.get(pos) {
            Some(&s) if s & 0xffff_ffff == idx as u64 + 1 => {}
            _ => return, // not indexed (cannot happen)
        }
        let mut hole = pos;
        let mut j = (pos + 1) & mask;
        loop {
            let s = match self.slots.get(j) {
                Some(&s) if s != 0 => s,
                _ => break,
            };
            let home = (s >> 32) as usize & mask;
            // Move s into the hole if the hole lies on its probe path home..j.
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                if let Some(h) = self.slots.get_mut(hole) {
                    *h = s;
                }
                if let Some(p) = self.slot_of.get_mut((s as u32).wrapping_sub(1) as usize) {
                    *p = hole as u32;
                }
                hole = j;
            }
            j = (j + 1) & mask;
        }
        if let Some(h) = self.slots.get_mut(hole) {
            *h = 0;
        }
    }

    /// Move flow `idx` to its list's tail after a packet if its class or
    /// epoch changed.
    #[inline]
    pub(super) fn relink(&mut self, idx: u32, old_class: u8, old_epoch: u64, shift: u32) {
        let Some(e) = self.slab.get(idx as usize) else {
            return;
        };
        let new_class = class_of(e.key.proto, e.tcp());
        let moved = new_class != old_class || (e.last_ns >> shift) != old_epoch;
        let at_tail = e.next == NIL;
        if moved && !(at_tail && new_class == old_class) {
            self.unlink(idx, old_class);
            if let Some(e) = self.slab.get_mut(idx as usize) {
                e.set_class(new_class);
            }
            self.link_tail(idx, new_class);
        }
    }

    pub(super) fn unlink(&mut self, idx: u32, class: u8) {
        let Some(e) = self.slab.get(idx as usize) else {
            return;
        };
        let (prev, next) = (e.prev, e.next);
        let c = class as usize;
        if prev == NIL {
            if let Some(h) = self.heads.get_mut(c) {
                if *h == idx {
                    *h = next;
                }
            }
        } else if let Some(p) = self.slab.get_mut(prev as usize) {
            p.next = next;
        }
        if next == NIL {
            if let Some(t) = self.tails.get_mut(c) {
                if *t == idx {
                    *t = prev;
                }
            }
        } else if let Some(n) = self.slab.get_mut(next as usize) {
            n.prev = prev;
        }
        if let Some(e) = self.slab.get_mut(idx as usize) {
            e.prev = NIL;
            e.next = NIL;
        }
    }

    pub(super) fn link_tail(&mut self, idx: u32, class: u8) {
        let c = class as usize;
        let Some(&tail) = self.tails.get(c) else {
            return;
        };
        if let Some(e) = self.slab.get_mut(idx as usize) {
            e.prev = tail;
            e.next = NIL;
        }
        if tail == NIL {
            if let Some(h) = self.heads.get_mut(c) {
                *h = idx;
            }
        } else if let Some(t) = self.slab.get_mut(tail as usize) {
            t.next = idx;
        }
        if let Some(t) = self.tails.get_mut(c) {
            *t = idx;
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::flow::table::{FlowConfig, SEC};

    #[test]
    fn epoch_is_at_most_an_eighth_of_the_timeout() {
        let d = FlowConfig::default();
        assert_eq!(epoch_shift(d.udp_timeout_ns), 32); // 4.29 s for 60 s
        assert_eq!(epoch_shift(d.tcp_established_timeout_ns), 36); // 68.7 s for 600 s
        assert_eq!(epoch_shift(d.tcp_closed_timeout_ns), 29); // 0.54 s for 5 s
        assert_eq!(epoch_shift(0), 20);
        assert_eq!(epoch_shift(u64::MAX), 40);
        for t in [SEC, 5 * SEC, 30 * SEC, 60 * SEC, 600 * SEC, 3600 * SEC] {
            let e = 1u64 << epoch_shift(t);
            assert!(e <= t / 8 && e * 2 > t / 8, "{t} {e}");
        }
    }
}
