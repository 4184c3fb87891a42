//! Floor L6 (`app`). The signal thread (`zw-signals`): interrupts, SIGHUP, the outputs' timer.

use super::outputs::reopen;
use super::reload::{Reload, ReloadCounts};
use super::{AppError, EXIT_INTERRUPTED};
use crate::output::OutputSet;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Signals, and the outputs' timer, on one thread (`zw-signals`), started
/// before anything else so no signal ever takes its default action:
///
/// - SIGINT/SIGTERM: the first sets `stop` (in the handler: the capture loop
///   sees it at its next frame); the second sets `hurry` (stop at once, but
///   write what is computed; `PipelineConfig::hurry`); the third flushes the
///   line outputs' buffers and exits 130.
/// - SIGHUP: reopen every output at its path (logrotate), then, live with
///   `--rules`, reload the rules.
/// - Every second: write the line outputs' buffers out.
pub(super) struct Control {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) hurry: Arc<AtomicBool>,
    pub(super) outputs: OutputSet,
    reload: Arc<Mutex<Option<Reload>>>,
    quit: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often the signal thread looks at its flags.
const CONTROL_TICK: Duration = Duration::from_millis(50);
/// How often every line output is flushed.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Count `sig` in `n` from inside the signal handler, and set `hurry` at the
/// second one. A counter, because signal-hook's safe iterator folds two quick
/// signals into one; `hurry` is set here, not by a thread, so the pipeline sees
/// it at once.
// Unsafe: the one low-level handler of the crate (reason above).
#[allow(unsafe_code)]
fn count_interrupts(
    sig: std::ffi::c_int,
    n: Arc<AtomicUsize>,
    hurry: Arc<AtomicBool>,
) -> io::Result<signal_hook::SigId> {
    // SAFETY: the action only touches atomics, which is async-signal-safe
    // (no allocation, no lock).
    unsafe {
        signal_hook::low_level::register(sig, move || {
            if n.fetch_add(1, Ordering::SeqCst) >= 1 {
                hurry.store(true, Ordering::SeqCst);
            }
        })
    }
}

impl Control {
    pub(super) fn start() -> Result<Control, AppError> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        use signal_hook::flag;
        let stop = Arc::new(AtomicBool::new(false));
        let hurry = Arc::new(AtomicBool::new(false));
        let interrupts = Arc::new(AtomicUsize::new(0));
        for sig in [SIGINT, SIGTERM] {
            flag::register(sig, stop.clone()).map_err(AppError::Signal)?;
            count_interrupts(sig, interrupts.clone(), hurry.clone()).map_err(AppError::Signal)?;
        }
        let hup = Arc::new(AtomicBool::new(false));
        flag::register(SIGHUP, hup.clone()).map_err(AppError::Signal)?;
        let c = Control {
            stop,
            hurry,
            outputs: OutputSet::default(),
            reload: Arc::new(Mutex::new(None)),
            quit: Arc::new(AtomicBool::new(false)),
            thread: None,
        };
        let (outputs, reload, quit) = (c.outputs.clone(), c.reload.clone(), c.quit.clone());
        let thread = std::thread::Builder::new()
            .name("zw-signals".into())
            .spawn(move || {
                let mut flushed = Instant::now();
                let mut told = 0;
                while !quit.load(Ordering::Relaxed) {
                    // (`finish` unparks it: no tick's wait at the end of a run.)
                    std::thread::park_timeout(CONTROL_TICK);
                    let n = interrupts.load(Ordering::SeqCst);
                    if n >= 2 && told < 2 {
                        told = 2;
                        eprintln!(
                            "zonewatch: second signal: stopping now, without draining the capture or writing open flows; what is already computed is still written (a third signal exits at once)"
                        );
                    }
                    if n >= 3 {
                        outputs.flush_now();
                        eprintln!(
                            "zonewatch: third signal: exiting at once ({EXIT_INTERRUPTED}); the summary and anything not yet computed are not written"
                        );
                        std::process::exit(EXIT_INTERRUPTED);
                    }
                    if hup.swap(false, Ordering::SeqCst) {
                        let reopened = reopen(&outputs);
                        if let Some(r) = reload.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                            r.apply(reopened);
                        }
                    }
                    if flushed.elapsed() >= FLUSH_EVERY {
                        flushed = Instant::now();
                        // Skips an output its writer holds right now: it is
                        // being written anyway, and this thread must stay free
                        // for the next signal.
                        outputs.flush_now();
                    }
                }
            })
            .map_err(AppError::Signal)?;
        Ok(Control {
            thread: Some(thread),
            ..c
        })
    }

    /// Reload the rules on SIGHUP from now on; the cell the workers read.
    pub(super) fn set_reload(&self, r: Reload) -> ReloadCounts {
        let counts = ReloadCounts {
            cell: r.cell.clone(),
            ok: r.ok.clone(),
            failed: r.failed.clone(),
        };
        *self.reload.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        counts
    }

    /// Stop the thread (the handlers stay installed: a late signal is
    /// counted, never fatal) and write every buffer out.
    pub(super) fn finish(mut self) {
        self.quit.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        self.outputs.flush_all();
    }
}
