//! Floor L1 (`capture`). `--speed X`: replay paced by packet timestamps.
//!
//! Owns only the waiting; frames, counters and progress are the inner source's.
use super::{CaptureError, Next, PacketSource, SourceReport};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest single sleep, so a set stop flag is noticed within this time.
const SLICE: Duration = Duration::from_millis(100);

/// A `--speed` value that is not a finite number greater than 0.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("speed must be a finite number greater than 0, got {0}")]
pub struct InvalidSpeed(pub f64);

/// Wraps a source and releases each frame no earlier than
/// `first_wall + (ts - first_ts) / speed`.
///
/// `next` fetches the frame from the inner source, then sleeps in slices of at
/// most 100 ms until it is due, checking `stop` between slices; once `stop` is
/// set every frame is delivered at once (the pipeline sees the flag and ends).
/// Frames older than the first one (out-of-order files) are due immediately.
pub struct Paced<S> {
    pub inner: S,
    /// Replay speed factor: 1.0 = original pace, 10.0 = ten times faster.
    pub speed: f64,
    /// Ctrl-C flag shared with the pipeline.
    pub stop: Arc<AtomicBool>,
    /// (first packet time, wall clock when it was released).
    start: Option<(u64, Instant)>,
}

impl<S: PacketSource> Paced<S> {
    /// Pace `inner` at `speed`. `speed` must be finite and > 0: the CLI validates it
    /// (use [`Paced::try_new`] to validate here). An invalid value does not panic; it
    /// disables pacing.
    pub fn new(inner: S, speed: f64, stop: Arc<AtomicBool>) -> Paced<S> {
        Paced {
            inner,
            speed,
            stop,
            start: None,
        }
    }

    /// Like [`Paced::new`] but rejects a speed that is not finite and > 0.
    pub fn try_new(inner: S, speed: f64, stop: Arc<AtomicBool>) -> Result<Paced<S>, InvalidSpeed> {
        if speed.is_finite() && speed > 0.0 {
            Ok(Paced::new(inner, speed, stop))
        } else {
            Err(InvalidSpeed(speed))
        }
    }
}

/// Wall-clock instant at which a frame stamped `ts_ns` is due; None = not
/// representable (wait until stopped). Free function over the fields so the
/// inner source's frame can stay borrowed meanwhile.
fn due(start: &mut Option<(u64, Instant)>, speed: f64, ts_ns: u64) -> Option<Instant> {
    let (first_ts, first_wall) = *start.get_or_insert((ts_ns, Instant::now()));
    if !(speed.is_finite() && speed > 0.0) {
        return Some(first_wall);
    }
    let delta = ts_ns.saturating_sub(first_ts) as f64 / speed;
    // `as` saturates: a huge gap becomes u64::MAX ns (584 years).
    first_wall.checked_add(Duration::from_nanos(delta as u64))
}

/// Sleep until `due` or until `stop` is set, in slices of at most [`SLICE`].
fn wait(stop: &AtomicBool, due: Option<Instant>) {
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let left = match due {
            Some(d) if d <= now => return,
            Some(d) => d - now,
            None => SLICE,
        };
        std::thread::sleep(left.min(SLICE));
    }
}

impl<S: PacketSource> PacketSource for Paced<S> {
    fn next(&mut self) -> Result<Next<'_>, CaptureError> {
        // Fetch first, then wait, then return: the frame's borrow never crosses calls.
        match self.inner.next()? {
            Next::Frame(f) => {
                if !self.stop.load(Ordering::Relaxed) {
                    let at = due(&mut self.start, self.speed, f.ts_ns);
                    wait(&self.stop, at);
                }
                Ok(Next::Frame(f))
            }
            other => Ok(other),
        }
    }
    fn report(&self) -> SourceReport {
        self.inner.report()
    }
    fn progress(&self) -> (u64, u64) {
        self.inner.progress()
    }
    fn refresh_counters(&mut self) {
        self.inner.refresh_counters()
    }
    fn is_live(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::packet::{LinkType, RawFrame};
    use std::time::Duration;

    /// In-memory source: optionally one Idle, then frames with the given timestamps, then End.
    struct Script {
        ts: Vec<u64>,
        i: usize,
        data: [u8; 4],
        idle_first: bool,
    }

    impl PacketSource for Script {
        fn next(&mut self) -> Result<Next<'_>, CaptureError> {
            if self.idle_first {
                self.idle_first = false;
                return Ok(Next::Idle { now_ns: Some(7) });
            }
            let Some(&ts) = self.ts.get(self.i) else {
                return Ok(Next::End);
            };
            self.i += 1;
            Ok(Next::Frame(RawFrame {
                ts_ns: ts,
                orig_len: 4,
                data: &self.data,
                link: LinkType::Raw,
                source: 0,
            }))
        }
        fn report(&self) -> SourceReport {
            SourceReport::default()
        }
        fn is_live(&self) -> bool {
            false
        }
    }

    fn script(ts: &[u64]) -> Script {
        Script {
            ts: ts.to_vec(),
            i: 0,
            data: [192, 0, 2, 1],
            idle_first: false,
        }
    }

    const S: u64 = 1_000_000_000;

    /// Run `f` on its own thread; it must finish within a ceiling that is
    /// generous for a loaded machine yet far below the hour-long waits a
    /// broken pacer would make (so a bug fails here instead of hanging, and
    /// no test depends on how fast an idle machine is).
    fn within_ceiling<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(120))
            .expect("the pacer waited for a frame it should have released")
    }

    #[test]
    fn due_times_are_packet_time_divided_by_speed() {
        let base = 1_600_000_000 * S;
        let mut start = None;
        let t0 = due(&mut start, 10.0, base).expect("first frame");
        // 1 s and 2 s of packet time at speed 10: exactly 100 ms and 200 ms later.
        let t1 = due(&mut start, 10.0, base + S).expect("due");
        let t2 = due(&mut start, 10.0, base + 2 * S).expect("due");
        assert_eq!(t1 - t0, Duration::from_millis(100));
        assert_eq!(t2 - t0, Duration::from_millis(200));
        // Older than the first frame: due at once.
        assert_eq!(due(&mut start, 10.0, base - S), Some(t0));
        // Speed 0.5: twice as long.
        let mut start = None;
        let t0 = due(&mut start, 0.5, base).expect("first");
        assert_eq!(
            due(&mut start, 0.5, base + S).expect("due") - t0,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn releases_frames_in_order_never_before_their_scaled_time() {
        // 0 s, 1 s, 2 s at speed 10 → due at 0, 100 ms, 200 ms. Only the lower
        // bound is a property of the pacer; how late a loaded machine wakes a
        // sleeping thread is not.
        let base = 1_600_000_000 * S;
        let stop = Arc::new(AtomicBool::new(false));
        let mut p = Paced::try_new(script(&[base, base + S, base + 2 * S]), 10.0, stop)
            .expect("valid speed");
        let t0 = Instant::now();
        let mut at = Vec::new();
        while let Next::Frame(f) = p.next().expect("no error") {
            assert_eq!(f.data, [192, 0, 2, 1]);
            at.push((f.ts_ns - base, t0.elapsed()));
        }
        assert_eq!(at.len(), 3);
        for (rel_ns, when) in &at {
            let due = Duration::from_nanos(rel_ns / 10);
            assert!(*when >= due, "released at {when:?}, due {due:?}");
        }
    }

    #[test]
    fn stop_flag_ends_the_wait_and_releases_the_rest_at_once() {
        // Frames an hour apart at speed 1: without the flag the pacer would
        // wait hours; with it, the whole script comes out.
        let stop = Arc::new(AtomicBool::new(false));
        let mut p = Paced::new(script(&[0, 3600 * S, 7200 * S]), 1.0, stop.clone());
        assert!(matches!(p.next(), Ok(Next::Frame(_))));
        let setter = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                stop.store(true, Ordering::Relaxed);
            })
        };
        let rest = within_ceiling(move || {
            let mut ts = Vec::new();
            while let Ok(Next::Frame(f)) = p.next() {
                ts.push(f.ts_ns);
            }
            ts
        });
        setter.join().expect("setter thread");
        assert_eq!(rest, [3600 * S, 7200 * S]);
    }

    #[test]
    fn older_frames_and_idle_pass_straight_through() {
        // The second frame is an hour *older* than the first: due at once (a
        // pacer that waited for the distance would wait an hour).
        let stop = Arc::new(AtomicBool::new(false));
        let mut s = script(&[3600 * S, 5 * S]);
        s.idle_first = true;
        let mut p = Paced::new(s, 1.0, stop);
        assert!(matches!(p.next(), Ok(Next::Idle { now_ns: Some(7) })));
        assert!(!p.is_live());
        let got = within_ceiling(move || {
            let mut ts = Vec::new();
            while let Ok(Next::Frame(f)) = p.next() {
                ts.push(f.ts_ns);
            }
            ts
        });
        assert_eq!(got, [3600 * S, 5 * S]);
    }

    #[test]
    fn speed_must_be_finite_and_positive() {
        let stop = Arc::new(AtomicBool::new(false));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let e = Paced::try_new(script(&[]), bad, stop.clone()).err();
            assert!(e.is_some(), "{bad} accepted");
        }
        let e = Paced::try_new(script(&[]), 0.0, stop.clone()).err();
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some("speed must be a finite number greater than 0, got 0")
        );
        assert!(Paced::try_new(script(&[]), 0.5, stop).is_ok());
    }
}
