//! Floor L6 (`app`). From flags to the pipeline's configuration: `--rules` loaded, the
//! `PipelineConfig` the common flags ask for, replay inputs named, the
//! sensor's default name.

use super::check::print_invalid;
use super::AppError;
use crate::cli::CommonArgs;
use crate::detect::DetectConfig;
use crate::pipeline::PipelineConfig;
use crate::policy::{LoadError, Policy};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Loaded rules: the policy, the `[detect]` thresholds and the text of the
/// file they were loaded from.
pub(super) struct LoadedRules {
    pub(super) policy: Arc<Policy>,
    pub(super) detect: DetectConfig,
    pub(super) text: String,
}

/// `--rules FILE` of `replay` / `run`: `Some(None)` without the flag,
/// `Some(Some(rules))` when it loads (its warnings go to stderr), `None` when
/// the rules are invalid (errors printed as `check` prints them; exit 2).
pub(super) fn load_rules(path: Option<&Path>) -> Result<Option<Option<LoadedRules>>, AppError> {
    let Some(path) = path else {
        return Ok(Some(None));
    };
    match crate::detect::load_rules(path) {
        Ok(r) => {
            let mut err = io::stderr().lock();
            for d in &r.warnings {
                let _ = writeln!(err, "{d}");
            }
            Ok(Some(Some(LoadedRules {
                policy: Arc::new(r.policy),
                detect: r.detect,
                text: r.text,
            })))
        }
        Err(LoadError::Invalid { errors, warnings }) => {
            print_invalid(&errors, &warnings);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) fn base_config(
    c: &CommonArgs,
    policy: Option<Arc<Policy>>,
    rules_detect: Option<DetectConfig>,
) -> PipelineConfig {
    // With an alert sink (--alerts) or --fail-on, which counts the alerts,
    // the detectors run, with the rules' [detect] thresholds.
    let detect = (c.sinks.any() || c.fail_on.is_some()).then(|| rules_detect.unwrap_or_default());
    let mut cfg = PipelineConfig {
        detect,
        workers: c.workers,
        batch_size: c.batch_size,
        queue_depth: c.queue_depth,
        policy,
        fold: c.alert.fold_config(),
        ..PipelineConfig::default()
    };
    cfg.flow.max_flows = c.max_flows;
    cfg.flow.vlan_in_key = c.vlan_in_flow_key;
    cfg.sensor = Some(c.sensor.clone().unwrap_or_else(host_name));
    cfg.evidence = c.evidence.evidence.as_ref().map(|dir| {
        let e = &c.evidence;
        crate::evidence::EvidenceConfig {
            dir: dir.clone(),
            ring_packets: usize::try_from(e.evidence_packets).unwrap_or(usize::MAX),
            alert_bytes: e.evidence_max_bytes,
            total_bytes: e.evidence_total_bytes,
            buffer_bytes: e.evidence_buffer_bytes,
            follow_ns: e.evidence_follow_secs.saturating_mul(1_000_000_000),
            // The slowest alert is written a fold window (or a detector's
            // window, at most a few minutes) after its flows were active.
            keep_ns: cfg.fold.window_ns.saturating_add(300_000_000_000),
            ..crate::evidence::EvidenceConfig::default()
        }
    });
    // The report's accumulators run for --report and for the human summary.
    cfg.report_gap_ns =
        (c.report.is_some() || !c.quiet).then(|| c.report_gap_secs.saturating_mul(1_000_000_000));
    cfg
}

/// Replay arguments as (source name, path): `NAME=PATH` names a link (when
/// no file is literally called that), else the file's or directory's name.
pub(super) fn named_inputs(files: &[PathBuf]) -> Vec<(String, PathBuf)> {
    files
        .iter()
        .map(|p| {
            let split = p
                .to_str()
                .filter(|_| !p.exists())
                .and_then(|s| s.split_once('='))
                .filter(|(name, path)| !name.is_empty() && !name.contains('/') && !path.is_empty());
            match split {
                Some((name, path)) => (name.to_string(), PathBuf::from(path)),
                None => (crate::capture::file::default_label(p), p.clone()),
            }
        })
        .collect()
}

/// The machine's host name (`--sensor` default), or "zonewatch".
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "zonewatch".to_string())
}
