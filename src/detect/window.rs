//! Floor L3 (`detect`). Per-key windows anchored at the key's first event and judged once, at the
//! window's end plus a wait for late answers: the scheduling that `scan`
//! (per initiator) and `brute` (per initiator and service) share.
//!
//! Events arriving after a window's end while it waits go to the key's next
//! window, which becomes current when the first is judged. Keys are judged in
//! (due time, key) order, so output does not depend on hashing.

use std::collections::BTreeSet;
use std::hash::Hash;

use crate::model::maps::FastMap as HashMap;

/// What a detector keeps per window.
pub trait WindowState: Default {
    /// Events recorded in this window (0: empty).
    fn events(&self) -> u64;
    /// Packet time of its first event.
    fn first_ns(&self) -> u64;
}

/// One key's current and next window.
pub struct Slot<W> {
    /// End of the current window; judged at `end + wait`.
    pub end: u64,
    pub cur: W,
    /// Events after `end` while the current window waits to be judged
    /// (boxed, and only when there are any: most keys never have one, and
    /// the slots of a large table then take half the memory and cache).
    pub next: Option<Box<W>>,
    due: u64,
}

/// All keys' windows and when each is due.
pub struct Windows<K, W> {
    slots: HashMap<K, Slot<W>>,
    due: BTreeSet<(u64, K)>,
    window_ns: u64,
    wait_ns: u64,
}

impl<K: Copy + Eq + Hash + Ord, W: WindowState> Windows<K, W> {
    pub fn new(window_ns: u64, wait_ns: u64) -> Self {
        Windows {
            slots: HashMap::default(),
            due: BTreeSet::new(),
            window_ns: window_ns.max(1),
            wait_ns,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn contains(&self, k: &K) -> bool {
        self.slots.contains_key(k)
    }

    pub fn get(&self, k: &K) -> Option<&Slot<W>> {
        self.slots.get(k)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut Slot<W>> {
        self.slots.get_mut(k)
    }

    /// The window an event of `k` at `ts` belongs to (a new key, or a key
    /// whose windows are both empty, starts a window at `ts`).
    pub fn window_for(&mut self, k: K, ts: u64) -> &mut W {
        self.window_and_place(k, ts).0
    }

    /// [`window_for`](Self::window_for), and whether it is the current one.
    pub fn window_and_place(&mut self, k: K, ts: u64) -> (&mut W, bool) {
        let (window, wait) = (self.window_ns, self.wait_ns);
        let s = self.slots.entry(k).or_insert_with(|| Slot {
            end: ts.saturating_add(window),
            cur: W::default(),
            next: None,
            due: 0,
        });
        if s.cur.events() == 0 && s.next.as_ref().is_none_or(|n| n.events() == 0) {
            s.end = ts.saturating_add(window);
            s.due = s.end.saturating_add(wait);
            self.due.insert((s.due, k));
        }
        if ts < s.end {
            (&mut s.cur, true)
        } else {
            (&mut **s.next.get_or_insert_with(Box::default), false)
        }
    }

    /// The key due soonest if it is due at or before `now`, removed from the
    /// schedule: judge its `cur`, then call [`roll`](Self::roll).
    pub fn next_due(&mut self, now: u64) -> Option<(K, u64)> {
        let &(d, k) = self.due.iter().next()?;
        if d > now {
            return None;
        }
        self.due.remove(&(d, k));
        Some((k, d))
    }

    /// The key due soonest and when, left scheduled.
    pub fn peek_due(&self) -> Option<(u64, K)> {
        self.due.iter().next().copied()
    }

    /// The key due soonest, whatever its time (to make room), removed from
    /// the schedule: judge it, then [`remove`](Self::remove) it.
    pub fn soonest(&mut self) -> Option<(K, u64)> {
        let &(d, k) = self.due.iter().next()?;
        self.due.remove(&(d, k));
        Some((k, d))
    }

    /// After `k` was judged at `d`: its next window becomes current (and is
    /// scheduled), or the key is dropped when that is empty.
    pub fn roll(&mut self, k: K, d: u64) {
        let (window, wait) = (self.window_ns, self.wait_ns);
        let Some(s) = self.slots.get_mut(&k) else {
            return;
        };
        s.cur = s.next.take().map(|n| *n).unwrap_or_default();
        if s.cur.events() == 0 {
            self.slots.remove(&k);
        } else {
            s.end = s.cur.first_ns().saturating_add(window);
            s.due = s.end.saturating_add(wait).max(d);
            self.due.insert((s.due, k));
        }
    }

    pub fn remove(&mut self, k: &K) {
        if let Some(s) = self.slots.remove(k) {
            self.due.remove(&(s.due, *k));
        }
    }
}
