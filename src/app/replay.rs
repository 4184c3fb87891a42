//! Floor L6 (`app`). `replay FILES`: the capture files opened (paced with `--speed`), metrics
//! served only when asked, `--openmetrics` written at the end, outputs
//! truncated.

use super::config::{base_config, load_rules, named_inputs};
use super::control::Control;
use super::execute::execute;
use super::outputs::{open_output, OpenedOutputs};
use super::serve::{set_policy_info, start_metrics};
use super::{AppError, EXIT_RULES_INVALID};
use crate::capture::{FileSource, Paced};
use crate::cli::ReplayArgs;
use crate::metrics::openmetrics::Recorder;
use crate::metrics::Metrics;
use crate::output::OpenMode;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// `zonewatch replay FILES`.
pub(super) fn replay(args: &ReplayArgs, control: &Control) -> Result<i32, AppError> {
    let stop = control.stop.clone();
    let Some(rules) = load_rules(args.common.rules.as_deref())? else {
        return Ok(EXIT_RULES_INVALID);
    };
    let detect = rules.as_ref().map(|r| r.detect.clone());
    let policy = rules.map(|r| r.policy);
    let files = FileSource::open_named(&named_inputs(&args.files))?;
    let om_out = match &args.openmetrics {
        Some(p) => Some((p.clone(), open_output(p)?)),
        None => None,
    };
    // A replay serves metrics only when asked (`--metrics-listen`).
    let serving = start_metrics(&args.common, None, policy.as_deref())?;
    // `--openmetrics` snapshots the registry, served or not.
    let metrics = match (&serving, &om_out) {
        (Some(s), _) => Some(s.metrics.clone()),
        (None, Some(_)) => {
            let m = Arc::new(Metrics::new(args.common.workers.get())?);
            set_policy_info(&m, args.common.rules.as_deref(), policy.as_deref());
            Some(m)
        }
        (None, None) => None,
    };
    let recorder = match (&metrics, &om_out) {
        (Some(m), Some(_)) => Some(Arc::new(Recorder::new(
            m.clone(),
            args.openmetrics_interval_secs,
        ))),
        _ => None,
    };
    let mut cfg = base_config(&args.common, policy, detect);
    cfg.sources = files.labels();
    cfg.metrics = metrics;
    cfg.openmetrics = recorder.clone();
    cfg.hurry = Some(control.hurry.clone());
    // A replay is a reproducible investigation: its files hold this
    // run only (truncated), unlike `run`'s, which append.
    let outputs = OpenedOutputs::open(&args.common, &control.outputs, OpenMode::Truncate)?;
    // Concrete source types: the reader inlines into the capture loop.
    let code = match args.speed {
        Some(speed) => execute(
            Paced::new(files, speed, stop.clone()),
            outputs,
            &args.common,
            cfg,
            &stop,
            None,
        ),
        None => execute(files, outputs, &args.common, cfg, &stop, None),
    }?;
    if let (Some(r), Some((path, mut out))) = (recorder, om_out) {
        let w = r
            .write(&mut out)
            .and_then(|w| out.flush().map(|()| w))
            .map_err(|source| AppError::Output { path, source })?;
        if w.skipped > 0 {
            eprintln!(
                "zonewatch: warning: --openmetrics kept {} snapshots, skipped {} past the cap; use a longer --openmetrics-interval-secs",
                w.snapshots, w.skipped
            );
        }
    }
    if let Some(s) = serving {
        if args.hold {
            eprintln!(
                "zonewatch: replay done; serving http://{}/metrics until SIGINT/SIGTERM (--hold)",
                s.server.addr()
            );
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        s.server.stop();
    }
    Ok(code)
}
