//! Floor L6 (`app`). SIGHUP, live with `--rules`: reload the rules file and hand it to the
//! workers, or keep the running rules and say why.

use super::check::print_invalid;
use crate::detect::DetectConfig;
use crate::metrics::Metrics;
use crate::policy::{LoadError, Policy};
use arc_swap::ArcSwap;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Reloads the rules file (on SIGHUP, live) and publishes it to the workers
/// (they pick it up at their next batch). A file that does not load leaves
/// the running rules in place; every error is printed as `check` prints it.
/// A file that did not change is not swapped in: logrotate's nightly SIGHUP
/// must not restart the open alert groups (they are keyed by the policy
/// that judged them) nor count as a reload.
pub(super) struct Reload {
    path: PathBuf,
    pub(super) cell: Arc<ArcSwap<Policy>>,
    /// The `[detect]` thresholds of the rules in force, as loaded (with the
    /// host inventory they name).
    detect: DetectConfig,
    /// The text the rules in force were loaded from.
    text: String,
    metrics: Option<Arc<Metrics>>,
    pub(super) ok: Arc<AtomicU64>,
    pub(super) failed: Arc<AtomicU64>,
}

/// The workers' view of the reloaded rules, and the reload counts.
pub(super) struct ReloadCounts {
    pub(super) cell: Arc<ArcSwap<Policy>>,
    pub(super) ok: Arc<AtomicU64>,
    pub(super) failed: Arc<AtomicU64>,
}

impl ReloadCounts {
    /// (reloads applied, reloads failed).
    pub(super) fn get(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

impl Reload {
    pub(super) fn new(
        path: PathBuf,
        initial: Arc<Policy>,
        detect: DetectConfig,
        text: String,
        metrics: Option<Arc<Metrics>>,
    ) -> Reload {
        Reload {
            path,
            cell: Arc::new(ArcSwap::new(initial)),
            detect,
            text,
            metrics,
            ok: Arc::new(AtomicU64::new(0)),
            failed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// `reopened`: the same SIGHUP reopened the outputs (said with "rules
    /// unchanged").
    pub(super) fn apply(&mut self, reopened: bool) {
        let path = &self.path;
        let loaded = crate::detect::load_rules(path);
        // Unchanged: the same text gives the same rules (a preset is compiled
        // into the binary), except for what the rules name outside the file,
        // the host inventory of [detect.hosts], which is compared as loaded.
        if let Ok(r) = &loaded {
            if r.text == self.text && r.detect == self.detect {
                eprintln!(
                    "zonewatch: SIGHUP: rules unchanged ({}); {}",
                    path.display(),
                    if reopened {
                        "outputs reopened, the running rules stay in force"
                    } else {
                        "the running rules stay in force"
                    }
                );
                return;
            }
        }
        if let Some(m) = &self.metrics {
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            m.reload(loaded.is_ok(), unix);
            // policy_info's hash names the text that loaded.
            if let Ok(r) = &loaded {
                m.set_policy(
                    r.policy.site_name.as_deref().unwrap_or("-"),
                    r.policy.preset.as_deref().unwrap_or("-"),
                    &crate::metrics::sha256_12(r.text.as_bytes()),
                );
            }
        }
        match loaded {
            Ok(r) => {
                let mut err = io::stderr().lock();
                for d in &r.warnings {
                    let _ = writeln!(err, "{d}");
                }
                self.cell.store(Arc::new(r.policy));
                self.detect = r.detect;
                self.text = r.text;
                let n = self.ok.fetch_add(1, Ordering::Relaxed) + 1;
                let _ = writeln!(
                    err,
                    "zonewatch: SIGHUP: rules reloaded from {} (reload {n}); new flows get the new verdicts",
                    path.display()
                );
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                match &e {
                    LoadError::Invalid { errors, warnings } => print_invalid(errors, warnings),
                    other => eprintln!("{other}"),
                }
                eprintln!(
                    "zonewatch: SIGHUP: {} does not load; keeping the running rules",
                    path.display()
                );
            }
        }
    }
}
