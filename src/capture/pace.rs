//! `--speed X`: replay paced by packet timestamps.
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

    #[test]
    fn releases_frames_at_their_scaled_time() {
        // 0 s, 1 s, 2 s at speed 10 → due at 0, 100 ms, 200 ms.
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
            assert!(
                *when < due + Duration::from_millis(150),
                "late: {when:?} vs {due:?}"
            );
        }
    }

    #[test]
    fn stop_flag_ends_the_wait_at_once() {
        // Second frame is an hour later at speed 1: without the flag we would wait.
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
        let t0 = Instant::now();
        assert!(matches!(p.next(), Ok(Next::Frame(f)) if f.ts_ns == 3600 * S));
        // Noticed within one 100 ms slice of being set.
        assert!(
            t0.elapsed() < Duration::from_millis(400),
            "{:?}",
            t0.elapsed()
        );
        setter.join().expect("setter thread");
        // After stop everything is delivered immediately.
        let t1 = Instant::now();
        assert!(matches!(p.next(), Ok(Next::Frame(_))));
        assert!(matches!(p.next(), Ok(Next::End)));
        assert!(t1.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn older_frames_and_idle_pass_straight_through() {
        let stop = Arc::new(AtomicBool::new(false));
        let mut s = script(&[10 * S, 5 * S]);
        s.idle_first = true;
        let mut p = Paced::new(s, 1.0, stop);
        assert!(matches!(p.next(), Ok(Next::Idle { now_ns: Some(7) })));
        let t0 = Instant::now();
        assert!(matches!(p.next(), Ok(Next::Frame(f)) if f.ts_ns == 10 * S));
        assert!(matches!(p.next(), Ok(Next::Frame(f)) if f.ts_ns == 5 * S));
        assert!(matches!(p.next(), Ok(Next::End)));
        assert!(t0.elapsed() < Duration::from_millis(50));
        assert!(!p.is_live());
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
