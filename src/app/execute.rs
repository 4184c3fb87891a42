//! Floor L6 (`app`). One run of the pipeline over an opened source: the alert sink, the
//! progress bar, then the summary, the report, the human table and the exit
//! status.

use super::outputs::{is_stdout, write_doc, OpenedOutputs};
use super::reload::ReloadCounts;
use super::{fail_on_status, AppError, EXIT_INTERRUPTED};
use crate::capture::PacketSource;
use crate::cli::CommonArgs;
use crate::metrics::openmetrics::Tee;
use crate::pipeline::{self, Outputs, PipelineConfig, Progress};
use crate::sink::{AlertSink, Discard};
use crate::summary::{AlertSummary, PolicySummary, Summary};
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

pub(super) fn execute<S: PacketSource>(
    mut source: S,
    outputs: OpenedOutputs,
    common: &CommonArgs,
    cfg: PipelineConfig,
    stop: &AtomicBool,
    reloads: Option<ReloadCounts>,
) -> Result<i32, AppError> {
    let OpenedOutputs {
        flows,
        alerts,
        summary: summary_out,
        report: report_out,
    } = outputs;
    let flows = flows.map(|o| Box::new(o) as Box<dyn Write + Send>);
    // Several sinks given: each gets every alert.
    let alerts = crate::sink::combine(alerts);
    // `--openmetrics` counts alert lines by their own time (openmetrics docs).
    let alerts = match (alerts, &cfg.openmetrics) {
        (Some(inner), Some(r)) => Some(Box::new(Tee {
            inner,
            recorder: r.clone(),
        }) as Box<dyn AlertSink>),
        (a, _) => a,
    };
    // `--fail-on` without an alert sink: the alerts are computed and counted, not written.
    let alerts = match (alerts, common.fail_on) {
        (None, Some(_)) => Some(Box::new(Discard) as Box<dyn AlertSink>),
        (a, _) => a,
    };
    let stdout_is_data = is_stdout(&common.flows)
        || is_stdout(&common.summary)
        || common.sinks.stdout_flag().is_some()
        || is_stdout(&common.report);
    let bar = if !common.quiet && !source.is_live() && io::stderr().is_terminal() {
        let (_, total) = source.progress();
        Some(Bar::new(total))
    } else {
        None
    };
    let report = pipeline::run(
        &mut source,
        &cfg,
        Outputs { flows, alerts },
        stop,
        bar.as_ref().map(|b| b as &dyn Progress),
    );
    let reloads = reloads.map(|r| r.get());
    let report = report?;
    if let Some(b) = &bar {
        b.0.finish_and_clear();
    }
    let mut summary = Summary::from_report(&report);
    if cfg.policy.is_some() {
        let mut p = PolicySummary::new(&report.flows.policy);
        if let Some((ok, failed)) = reloads {
            (p.reloads, p.reload_failures) = (ok, failed);
        }
        summary.policy = Some(p);
    }
    // The summary's alert section counts lines written: only with an alert
    // sink (--alerts).
    if let (Some(a), true) = (&report.alerts, common.sinks.any()) {
        summary.alerts = Some(AlertSummary::new(a, cfg.fold.window_ns));
    }
    if let Some(out) = &summary_out {
        write_doc(out, &summary)?;
    }
    let full = report
        .report
        .as_ref()
        .map(|d| crate::report::Report::new(&summary, d, cfg.policy.as_deref()));
    if let (Some(out), Some(r)) = (&report_out, &full) {
        write_doc(out, r)?;
    }
    if !common.quiet {
        let text = match &full {
            Some(r) => crate::report::render(&summary, r, common.lang),
            None => summary.to_human(),
        };
        // Machine output owns stdout when asked for; the human table then goes to stderr.
        let _ = if stdout_is_data {
            io::stderr().write_all(text.as_bytes())
        } else {
            io::stdout().write_all(text.as_bytes())
        };
    }
    let hurried = cfg
        .hurry
        .as_ref()
        .is_some_and(|h| h.load(Ordering::Relaxed));
    if hurried {
        // Said even with -q: the operator asked twice, and some of the run
        // is missing from the files.
        let u = report.unwritten.clone().unwrap_or_default();
        eprintln!(
            "zonewatch: stopped by a second signal; not written: {} open flows (no flow line), {} captured packets not analysed, {} frames not added to evidence files; the flow lines, alerts, evidence files and summary computed before it are complete (exit {EXIT_INTERRUPTED})",
            u.open_flows, u.packets, u.evidence_frames
        );
        return Ok(EXIT_INTERRUPTED);
    }
    let by_severity = report
        .alerts
        .as_ref()
        .map_or([0; 5], |a| a.written_by_severity);
    Ok(fail_on_status(common.fail_on, &by_severity, common.quiet))
}

/// Progress bar on stderr for long replays.
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new(total: u64) -> Bar {
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Bar(pb)
    }
}

impl Progress for Bar {
    fn update(&self, done: u64, _total: u64, frames: u64) {
        self.0.set_position(done);
        self.0.set_message(format!("{frames} packets"));
    }
}
