//! Floor L1 (`capture`). The mmap windows of one input, and prefetch. Floor L1 (capture).
//!
//! Owns: prefaulting the map a window ahead of the reader in one
//! `MADV_POPULATE_READ` call, handing pages a window behind it back to the
//! kernel (`MADV_DONTNEED`), and prefetching the cache lines just ahead of it.
//! All are hints: they change speed, never what is read. Leaves alone: when
//! the reader asks (`Input::advance`, in `mod.rs`) and what is parsed.

use super::Input;

/// Bytes of the map prefaulted ahead of the reader, and kept behind it.
pub(super) const WINDOW: usize = 8 << 20;
/// How far ahead of the reader cache lines are prefetched.
const PREFETCH_BYTES: usize = 4096;

impl Input {
    /// Ask the CPU to load the cache lines [`PREFETCH_BYTES`] ahead of the reader.
    /// The decoder touches only the first line or two of each record, so the
    /// hardware prefetchers miss most record headers; without this, the load of
    /// each record's length was ~90% of the reader's time (a DRAM miss per packet).
    #[inline]
    pub(super) fn prefetch_ahead(&mut self) {
        let target = (self.pos + PREFETCH_BYTES).min(self.map.len());
        let base = self.map.as_ptr();
        while self.prefetched_to < target {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `prefetched_to < map.len()`, so the address is inside the map;
            // a prefetch is only a hint and never faults.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch(base.add(self.prefetched_to) as *const i8, _MM_HINT_T0);
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = base;
            self.prefetched_to += 64;
        }
    }

    /// Prefault the next window of the map in one `MADV_POPULATE_READ` call
    /// instead of one page fault per 4 KiB (measured: page faults were ~15% of
    /// replay time), and hand pages far behind the reader back with
    /// `MADV_DONTNEED`, so resident memory stays at a few windows however big
    /// the file is (the page cache keeps the data). Both are hints: a refusal
    /// (older kernel) changes nothing but speed.
    #[cold]
    pub(super) fn window(&mut self) {
        let len = self.map.len();
        let start = self.ready_to.min(len);
        let n = WINDOW.min(len - start);
        if n > 0 {
            let _ = self
                .map
                .advise_range(memmap2::Advice::PopulateRead, start, n);
        }
        self.ready_to = start + WINDOW;
        let keep_from = self.pos.saturating_sub(WINDOW) & !0xfff;
        if keep_from > self.released_to {
            // SAFETY: DONTNEED on a private read-only file mapping only drops the
            // page-table entries; a later access refaults the same file bytes. No
            // slice into the released range is alive: frames borrowed from this map
            // end before the next `advance` call, and these pages lie a whole window
            // behind the current record.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    self.released_to,
                    keep_from - self.released_to,
                )
            };
            self.released_to = keep_from;
        }
    }
}
