//! Floor L3 (`detect`). Deterministic merge of the workers' observation streams by packet time.
//!
//! Each worker reports in packet order and says how far its clock has got
//! (its watermark). Observations wait in one queue per worker, kept in time
//! order (an append, but for input out of order); once every worker's
//! watermark is past a time by the reorder slack, nothing earlier can still
//! arrive (input timestamps are monotonic up to the slack). Release takes the
//! earliest time among the queue heads, gathers every observation of exactly
//! that time from all queues, and hands them out sorted by [`Obs::sort_key`]:
//! the released sequence is the same for any worker count.

use super::obs::Obs;
use std::collections::VecDeque;

/// Observations of one instant, sorted, being handed out (reversed: pop from the end).
type Run = Vec<(usize, Obs)>;

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
    /// Observations released before every worker was past them because
    /// more than `max_queued` were waiting (a flood): memory stays bounded,
    /// and only then can the order depend on the worker count.
    pub forced: u64,
    queued: usize,
    max_queued: usize,
    run: Run,
}

/// Observations the merge holds at most (about 100 bytes each, so ~100 MB;
/// about 1M observations within the 0.5 s reorder slack at 2 Mpps): beyond it the
/// oldest are released without waiting for the slowest worker.
pub const MAX_QUEUED: usize = 1 << 20;

impl Merger {
    /// Hold at most `max` observations (tests; default [`MAX_QUEUED`]).
    pub fn with_max_queued(mut self, max: usize) -> Merger {
        self.max_queued = max.max(1);
        self
    }

    pub fn new(workers: usize, slack_ns: u64) -> Merger {
        let n = workers.max(1);
        Merger {
            queues: (0..n).map(|_| VecDeque::new()).collect(),
            watermarks: vec![0; n],
            slack_ns,
            released_ns: 0,
            late: 0,
            forced: 0,
            queued: 0,
            max_queued: MAX_QUEUED,
            run: Vec::new(),
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
        self.queued += 1;
        let ts = o.ts_ns();
        if q.back().is_none_or(|b| b.ts_ns() <= ts) {
            q.push_back(o);
        } else {
            // Input time went back within the slack: keep the queue in time order.
            let at = q.partition_point(|x| x.ts_ns() <= ts);
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
        if let Some(x) = self.run.pop() {
            return Some(x);
        }
        // Over the bound: release the oldest now, whatever the watermarks.
        let forcing = self.queued > self.max_queued;
        let upto = if forcing { u64::MAX } else { upto };
        let t = self
            .queues
            .iter()
            .filter_map(|q| q.front().map(Obs::ts_ns))
            .min()
            .filter(|&t| t <= upto)?;
        for (i, q) in self.queues.iter_mut().enumerate() {
            while q.front().is_some_and(|o| o.ts_ns() == t) {
                if let Some(o) = q.pop_front() {
                    self.queued -= 1;
                    self.run.push((i, o));
                }
            }
        }
        // Reverse order, so `pop` hands out the smallest key first.
        if forcing {
            self.forced += self.run.len() as u64;
        }
        // Stable: equal keys (one flow, one worker) keep their queue order.
        self.run
            .sort_by_key(|(_, o)| std::cmp::Reverse(o.sort_key()));
        self.released_ns = self.released_ns.max(t);
        self.run.pop()
    }
}
