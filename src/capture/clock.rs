//! Floor L1 (`capture`). The sensor's clock: packet time made monotonic over the input.
//!
//! Every time-driven part of the pipeline (flow expiry, the workers'
//! watermarks, the analysis thread's deterministic merge, fold windows,
//! detector windows) needs packet time that does not go backwards by more
//! than the merge's reorder slack: otherwise an observation can arrive after
//! later ones were released, and where it lands would depend on thread timing
//! (issue #12: 1 vs 4 workers gave different `brute_force` counts on a capture
//! whose time steps back 45 s). A capture's time can step back: captures
//! concatenated (`mergecap -a`), a sensor clock stepped by NTP, a bad record.
//!
//! **The rule.** The capture thread reads frames in input order and gives each
//! one its *sensor time*: its own timestamp plus an offset. While the input is
//! in time order (up to the slack, which the merge reorders), the offset is 0.
//! When a frame's time is more than the slack before the newest sensor time,
//! the offset grows by the difference: the frame counts at the newest time and
//! what follows keeps its spacing, shifted by the step (so rates stay true, and
//! a flood is not squeezed into one instant). When the input's own time
//! catches up with the sensor time again (a single stray record, or the
//! original timeline resuming), the offset returns to 0. The sensor time is a
//! function of the input order alone, so every worker count, every run, and a
//! live capture and the replay of its recording see the same times.
//!
//! Flow lines, alert lines and evidence files carry sensor time. Each step is
//! counted and the first [`MAX_STEPS_LISTED`] are listed (when, and by how
//! much) in the summary and the report, so a shifted time can be traced back.

use serde::Serialize;

/// Steps listed in the summary; the rest are only counted.
pub const MAX_STEPS_LISTED: usize = 16;

/// One backward step of the input's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Number of the frame that stepped back, in input order from 1 (as TShark
    /// numbers frames).
    pub frame: u64,
    /// The sensor time it was given (the newest time before it), ns.
    pub at_ns: u64,
    /// How far its own timestamp was before that, ns.
    pub back_ns: u64,
}

/// The input-order clock (see the module docs).
#[derive(Clone, Debug)]
pub struct SensorClock {
    slack_ns: u64,
    offset_ns: u64,
    newest_ns: u64,
    frames: u64,
    /// Backward steps beyond the slack.
    pub steps: u64,
    /// The first [`MAX_STEPS_LISTED`] steps.
    pub listed: Vec<Step>,
}

impl SensorClock {
    /// A clock that lets time go back by up to `slack_ns` (the analysis
    /// merge's reorder slack) before it shifts.
    pub fn new(slack_ns: u64) -> SensorClock {
        SensorClock {
            slack_ns,
            offset_ns: 0,
            newest_ns: 0,
            frames: 0,
            steps: 0,
            listed: Vec::with_capacity(MAX_STEPS_LISTED),
        }
    }

    /// The sensor time of the next frame in input order, stamped `ts_ns`.
    #[inline]
    pub fn time(&mut self, ts_ns: u64) -> u64 {
        self.frames += 1;
        if self.offset_ns != 0 && ts_ns.saturating_add(self.slack_ns) >= self.newest_ns {
            // The input's own time caught up: no shift needed any more.
            self.offset_ns = 0;
        }
        let mut t = ts_ns.saturating_add(self.offset_ns);
        if t.saturating_add(self.slack_ns) < self.newest_ns {
            self.step(t);
            t = self.newest_ns;
        }
        if t > self.newest_ns {
            self.newest_ns = t;
        }
        t
    }

    #[cold]
    fn step(&mut self, t: u64) {
        let back = self.newest_ns - t;
        self.offset_ns = self.offset_ns.saturating_add(back);
        self.steps += 1;
        if self.listed.len() < MAX_STEPS_LISTED {
            self.listed.push(Step {
                frame: self.frames,
                at_ns: self.newest_ns,
                back_ns: back,
            });
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn times(ts: &[u64]) -> (Vec<u64>, SensorClock) {
        let mut c = SensorClock::new(S);
        (ts.iter().map(|&t| c.time(t)).collect(), c)
    }

    #[test]
    fn in_order_and_within_the_slack_is_untouched() {
        let ts = [10 * S, 11 * S, 11 * S - S / 2, 12 * S, 12 * S];
        let (out, c) = times(&ts);
        assert_eq!(out, ts);
        assert_eq!(c.steps, 0);
    }

    #[test]
    fn a_step_back_shifts_what_follows_by_the_step_keeping_its_spacing() {
        // Two captures concatenated: the second starts 45 s before the first ended.
        let ts = [100 * S, 150 * S, 105 * S, 106 * S, 107 * S];
        let (out, c) = times(&ts);
        assert_eq!(out, [100 * S, 150 * S, 150 * S, 151 * S, 152 * S]);
        assert_eq!(c.steps, 1);
        assert_eq!(
            c.listed,
            [Step {
                frame: 3,
                at_ns: 150 * S,
                back_ns: 45 * S
            }]
        );
    }

    #[test]
    fn a_stray_old_record_costs_one_shifted_frame() {
        let ts = [100 * S, 101 * S, 5 * S, 102 * S, 103 * S];
        let (out, c) = times(&ts);
        assert_eq!(out, [100 * S, 101 * S, 101 * S, 102 * S, 103 * S]);
        assert_eq!(c.steps, 1);
    }

    #[test]
    fn the_original_timeline_resuming_drops_the_offset_without_going_back() {
        // A block stamped 10 s early, then the original time resumes: it stays
        // shifted until its own time passes the sensor time, then runs unshifted.
        let ts = [100 * S, 110 * S, 100 * S, 105 * S, 111 * S, 130 * S];
        let (out, _) = times(&ts);
        assert_eq!(out, [100 * S, 110 * S, 110 * S, 115 * S, 121 * S, 130 * S]);
        assert!(out.windows(2).all(|w| w[1] + S >= w[0]), "{out:?}");
    }
}
