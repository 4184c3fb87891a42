//! Deterministic merge of the workers' observation streams by packet time.
//!
//! Each worker reports in packet order and says how far its clock has got
//! (its watermark). Observations wait in one queue per worker, kept sorted by
//! [`Obs::sort_key`]; once every worker's watermark is past an observation by
//! the reorder slack, nothing that sorts before it can still arrive (input
//! timestamps are monotonic up to the slack), and a k-way merge of the queue
//! heads releases it. The released sequence is the same for any worker count.

use super::obs::Obs;
use std::collections::VecDeque;

/// Per-worker sorted queues and watermarks.
pub struct Merger {
    queues: Vec<VecDeque<Obs>>,
    watermarks: Vec<u64>,
    slack_ns: u64,
    /// Newest time released.
    released_ns: u64,
    /// Observations older than what was already released (input out of
    /// order by more than the slack): handed out at once, counted.
    pub late: u64,
}

impl Merger {
    pub fn new(workers: usize, slack_ns: u64) -> Merger {
        let n = workers.max(1);
        Merger {
            queues: (0..n).map(|_| VecDeque::new()).collect(),
            watermarks: vec![0; n],
            slack_ns,
            released_ns: 0,
            late: 0,
        }
    }

    /// Queue an observation of worker `w`; returns it back when it is late
    /// (the caller processes it at once).
    pub fn push(&mut self, w: usize, o: Obs) -> Option<Obs> {
        if o.ts_ns() < self.released_ns {
            self.late += 1;
            return Some(o);
        }
        let n = self.queues.len();
        let q = &mut self.queues[w.min(n - 1)];
        let key = o.sort_key();
        if q.back().map_or(true, |b| b.sort_key() <= key) {
            q.push_back(o);
        } else {
            let at = q.partition_point(|x| x.sort_key() <= key);
            q.insert(at, o);
        }
        None
    }

    /// Worker `w` has finished everything up to `now_ns`; returns the time up
    /// to which observations may now be released.
    pub fn watermark(&mut self, w: usize, now_ns: u64) -> u64 {
        if let Some(m) = self.watermarks.get_mut(w) {
            *m = (*m).max(now_ns);
        }
        self.ready_upto()
    }

    /// The time up to which every worker has reported (minus the slack).
    pub fn ready_upto(&self) -> u64 {
        let min = self.watermarks.iter().copied().min().unwrap_or(0);
        if min == u64::MAX {
            u64::MAX
        } else {
            min.saturating_sub(self.slack_ns)
        }
    }

    /// The next observation at or before `upto`, in release order, with the
    /// worker that reported it.
    pub fn pop_tagged(&mut self, upto: u64) -> Option<(usize, Obs)> {
        let mut best: Option<(usize, super::obs::SortKey)> = None;
        for (i, q) in self.queues.iter().enumerate() {
            if let Some(h) = q.front() {
                if h.ts_ns() <= upto {
                    let k = h.sort_key();
                    if best.as_ref().map_or(true, |(_, b)| k < *b) {
                        best = Some((i, k));
                    }
                }
            }
        }
        let (i, _) = best?;
        let o = self.queues[i].pop_front()?;
        self.released_ns = self.released_ns.max(o.ts_ns());
        Some((i, o))
    }
}
