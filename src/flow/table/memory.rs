//! Floor L2 (`flow`). Memory tricks of the hot path: transparent huge pages for the slab and the
//! index ([`huge_pages`]), pre-faulting the index page by page
//! ([`touch_pages`]), and the software prefetches issued ahead of cache misses
//! (index slot, entry, zone cell and LRU neighbours for `update_batch`; the
//! next list head for `end`). Hints only: none changes what the table computes.
//!
//! Floor L2 (flow). Every `unsafe` block of the flow table is here, each with
//! its `SAFETY:` reason.

use super::entry::{Entry, ENTRY_BYTES, NIL};
use super::FlowTable;
use crate::packet::PacketMeta;

#[inline(always)]
pub(super) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // `_mm_prefetch` is an unsafe fn on older compilers and safe on newer ones.
    #[allow(unused_unsafe)]
    // SAFETY: a prefetch is only a hint to the cache; it never faults or reads
    // into the program, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Ask for transparent huge pages over a big table (a hint; refusals are fine).
pub(super) fn huge_pages(ptr: *const u8, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = (ptr as usize + HUGE - 1) & !(HUGE - 1);
    let end = (ptr as usize + len) & !(HUGE - 1);
    if end > start {
        // SAFETY: the range lies inside an allocation we own; MADV_HUGEPAGE
        // changes only how the kernel backs it.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
    }
}

/// Write one element per 4 KiB page so every page is backed by its own
/// zeroed page before the workers start reading it.
pub(super) fn touch_pages<T: Copy + Default>(v: &mut [T]) {
    let step = (4096 / std::mem::size_of::<T>()).max(1);
    for i in (0..v.len()).step_by(step) {
        // SAFETY: `i < v.len()`; a volatile write of the value already there
        // (zero) is not optimised away, which is the point.
        unsafe { std::ptr::write_volatile(v.as_mut_ptr().add(i), T::default()) };
    }
}

impl FlowTable {
    #[inline(always)]
    pub(super) fn prefetch_slot(&self, hash: u64) {
        if let Some(s) = self.slots.get(hash as u32 as usize & self.mask) {
            prefetch(s);
        }
    }

    /// The entry the home slot of `hash` points to, if its tag matches.
    #[inline(always)]
    fn home_entry(&self, hash: u64) -> Option<&Entry> {
        let &s = self.slots.get(hash as u32 as usize & self.mask)?;
        if s != 0 && (s >> 32) as u32 == hash as u32 {
            self.slab.get((s as u32).wrapping_sub(1) as usize)
        } else {
            None
        }
    }

    #[inline(always)]
    pub(super) fn prefetch_entry(&self, hash: u64) {
        if let Some(e) = self.home_entry(hash) {
            let p = e as *const Entry as *const u8;
            prefetch(p);
            prefetch(p.wrapping_add(ENTRY_BYTES - 1));
            if let Some(c) = &self.cells {
                // The zone cell index beside the slab (a u16 per entry).
                let idx = (e as *const Entry as usize - self.slab.as_ptr() as usize) / ENTRY_BYTES;
                if let Some(x) = c.cell_ptr(idx as u32) {
                    prefetch(x);
                }
            }
        }
    }

    #[inline(always)]
    pub(super) fn prefetch_links(&self, m: &PacketMeta) {
        let Some(e) = self.home_entry(m.hash) else {
            return;
        };
        let shift = self.shifts.get(e.class() as usize).copied().unwrap_or(30);
        if e.next != NIL && (m.ts_ns >> shift) != (e.last_ns >> shift) {
            // unlink writes prev.next and next.prev.
            if let Some(p) = self.slab.get(e.prev as usize) {
                prefetch(&p.next);
            }
            if let Some(n) = self.slab.get(e.next as usize) {
                prefetch(&n.prev);
            }
        }
    }

    /// Prefetch the index bookkeeping of list head `idx` and its successor entry.
    #[inline(always)]
    pub(super) fn prefetch_head(&self, idx: u32) {
        if let Some(p) = self.slot_of.get(idx as usize) {
            prefetch(p);
        }
        if let Some(h) = self.slab.get(idx as usize) {
            if let Some(n) = self.slab.get(h.next as usize) {
                let p = n as *const Entry as *const u8;
                prefetch(p);
                prefetch(p.wrapping_add(ENTRY_BYTES - 1));
            }
        }
    }
}
