//! Floor L6 (`app`). `zonewatch check RULES` and its dry run `--against FILE...`, and how rule
//! errors are printed (also by `--rules` and the SIGHUP reload).

use super::config::{load_rules, LoadedRules};
use super::{fail_on_status, AppError, EXIT_OK, EXIT_RULES_INVALID};
use crate::capture::FileSource;
use crate::cli::CheckArgs;
use crate::pipeline::{self, Outputs, PipelineConfig};
use crate::policy::{Diagnostic, LoadError};
use crate::sink::Collect;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// `zonewatch check RULES`: errors to stderr (exit 2), or the report to stdout (exit 0).
pub(super) fn check(path: &Path, sources: bool) -> Result<i32, AppError> {
    match crate::detect::load_rules(path) {
        Ok(crate::detect::Rules {
            policy, warnings, ..
        }) => {
            let name = path.display().to_string();
            let report = if sources {
                crate::policy::render_sources(&name, &policy, &warnings)
            } else {
                crate::policy::render_check(&name, &policy, &warnings)
            };
            write_stdout(&report)?;
            Ok(EXIT_OK)
        }
        Err(LoadError::Invalid { errors, warnings }) => {
            print_invalid(&errors, &warnings);
            Ok(EXIT_RULES_INVALID)
        }
        Err(e) => Err(e.into()),
    }
}

/// Every error, then every warning, then the counts, on stderr (as `check`).
pub(super) fn print_invalid(errors: &[Diagnostic], warnings: &[Diagnostic]) {
    let mut err = io::stderr().lock();
    for d in errors.iter().chain(warnings) {
        let _ = writeln!(err, "{d}");
    }
    let _ = writeln!(
        err,
        "{} error(s), {} warning(s)",
        errors.len(),
        warnings.len()
    );
}

/// `zonewatch check RULES --against FILE...`: replay the files with the rules,
/// fold alerts as `--alerts` would, and print them grouped by zone pair.
pub(super) fn check_against(args: &CheckArgs, stop: &AtomicBool) -> Result<i32, AppError> {
    let Some(Some(LoadedRules { policy, .. })) = load_rules(Some(&args.rules))? else {
        return Ok(EXIT_RULES_INVALID);
    };
    let mut files = FileSource::open(&args.against)?;
    let mut cfg = PipelineConfig {
        policy: Some(policy),
        fold: args.alerts.fold_config(),
        ..PipelineConfig::default()
    };
    cfg.flow.vlan_in_key = args.vlan_in_flow_key;
    let collected = Collect::default();
    let report = pipeline::run(
        &mut files,
        &cfg,
        Outputs {
            flows: None,
            alerts: Some(Box::new(collected.clone())),
        },
        stop,
        None,
    )?;
    let lines = collected.0.lock().map(|v| v.clone()).unwrap_or_default();
    // Each alert as it finally stands: an update line replaces its first line.
    let mut alerts: Vec<crate::alert::Alert> = Vec::with_capacity(lines.len());
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for a in lines {
        match at.get(&a.id) {
            Some(&i) if a.update > 0 => alerts[i] = a,
            _ => {
                at.insert(a.id.clone(), alerts.len());
                alerts.push(a);
            }
        }
    }
    let p = &report.flows.policy;
    let inputs: Vec<String> = args
        .against
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let mut header = format!(
        "Dry run of {} against {}\n{} packets, {} flows: {} allowed, {} violating, {} unknown, {} segment-local -> {} alert{} (fold window {} s, {} per source)\n",
        args.rules.display(),
        inputs.join(", "),
        report.frames,
        report.flows.created,
        p.allowed,
        p.violation,
        p.unknown,
        p.local,
        alerts.len(),
        if alerts.len() == 1 { "" } else { "s" },
        args.alerts.alert_window_secs,
        args.alerts.alert_max_per_source,
    );
    for src in &report.source.inputs {
        if let Some(why) = &src.stopped_early {
            header.push_str(&format!("warning: {} stopped early: {why}\n", src.name));
        }
    }
    write_stdout(&crate::alert::render_dry_run(&header, &alerts))?;
    let mut by_severity = [0u64; 5];
    for a in &alerts {
        if let Some(n) = by_severity.get_mut(a.severity as usize) {
            *n += 1;
        }
    }
    Ok(fail_on_status(args.fail_on, &by_severity, false))
}

/// A report on stdout, flushed; a closed pipe or full disk is an error.
fn write_stdout(text: &str) -> Result<(), AppError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| AppError::Output {
            path: PathBuf::from("-"),
            source,
        })
}
