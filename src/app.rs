//! Runs a parsed command: opens the source and outputs, installs signal
//! handlers, runs the pipeline, writes the summary. `main.rs` only maps the
//! result to an exit code.

use crate::capture::{CaptureError, FileSource, LiveConfig, LiveSource, Paced, PacketSource};
use crate::cli::{Cli, Command, CommonArgs};
use crate::pipeline::{self, Outputs, PipelineConfig, PipelineError, Progress};
use crate::policy::{Diagnostic, LoadError, Policy};
use crate::summary::{PolicySummary, Summary};
use std::fs::OpenOptions;
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("{path}: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("installing signal handlers: {0}")]
    Signal(io::Error),
    #[error(transparent)]
    Policy(#[from] crate::policy::LoadError),
}

/// Exit status of a successful run.
pub const EXIT_OK: i32 = 0;

pub fn run(cli: Cli) -> Result<i32, AppError> {
    let stop = Arc::new(AtomicBool::new(false));
    install_signals(&stop)?;
    match cli.command {
        Command::Check(args) => check(&args.rules),
        Command::Replay(args) => {
            let Some(policy) = load_rules(args.common.rules.as_deref())? else {
                return Ok(EXIT_RULES_INVALID);
            };
            let files = FileSource::open(&args.files)?;
            let cfg = base_config(&args.common, policy);
            // Concrete source types: the reader inlines into the capture loop.
            match args.speed {
                Some(speed) => execute(
                    Paced::new(files, speed, stop.clone()),
                    &args.common,
                    cfg,
                    &stop,
                ),
                None => execute(files, &args.common, cfg, &stop),
            }
        }
        Command::Run(args) => {
            let Some(policy) = load_rules(args.common.rules.as_deref())? else {
                return Ok(EXIT_RULES_INVALID);
            };
            let live = LiveSource::open(&LiveConfig {
                iface: args.iface.clone(),
                promisc: !args.no_promisc,
                snaplen: args.snaplen,
                buffer_bytes: args.buffer_bytes,
                filter: args.filter.clone(),
                timeout_ms: 100,
            })?;
            let cfg = PipelineConfig {
                max_frames: args.count,
                max_duration: args.duration_secs.map(Duration::from_secs),
                ..base_config(&args.common, policy)
            };
            execute(live, &args.common, cfg, &stop)
        }
    }
}

/// Exit status of `check` when the rules have errors.
pub const EXIT_RULES_INVALID: i32 = 2;

/// `zonewatch check RULES`: errors to stderr (exit 2), or the report to stdout (exit 0).
fn check(path: &Path) -> Result<i32, AppError> {
    match crate::policy::Policy::load(path) {
        Ok((policy, warnings)) => {
            let report =
                crate::policy::render_check(&path.display().to_string(), &policy, &warnings);
            let mut out = io::stdout().lock();
            out.write_all(report.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|source| AppError::Output {
                    path: PathBuf::from("-"),
                    source,
                })?;
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
fn print_invalid(errors: &[Diagnostic], warnings: &[Diagnostic]) {
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

/// `--rules FILE` of `replay` / `run`: `Some(None)` without the flag,
/// `Some(Some(policy))` when it loads (its warnings go to stderr), `None` when
/// the rules are invalid (errors printed as `check` prints them; exit 2).
fn load_rules(path: Option<&Path>) -> Result<Option<Option<Arc<Policy>>>, AppError> {
    let Some(path) = path else {
        return Ok(Some(None));
    };
    match Policy::load(path) {
        Ok((policy, warnings)) => {
            let mut err = io::stderr().lock();
            for d in &warnings {
                let _ = writeln!(err, "{d}");
            }
            Ok(Some(Some(Arc::new(policy))))
        }
        Err(LoadError::Invalid { errors, warnings }) => {
            print_invalid(&errors, &warnings);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn base_config(c: &CommonArgs, policy: Option<Arc<Policy>>) -> PipelineConfig {
    let mut cfg = PipelineConfig {
        workers: c.workers,
        batch_size: c.batch_size,
        queue_depth: c.queue_depth,
        policy,
        ..PipelineConfig::default()
    };
    cfg.flow.max_flows = c.max_flows;
    cfg
}

fn execute<S: PacketSource>(
    mut source: S,
    common: &CommonArgs,
    cfg: PipelineConfig,
    stop: &AtomicBool,
) -> Result<i32, AppError> {
    let flows = match &common.flows {
        Some(p) => Some(open_output(p)?),
        None => None,
    };
    let summary_out = match &common.summary {
        Some(p) => Some((p.clone(), open_output(p)?)),
        None => None,
    };
    let stdout_is_data = is_stdout(&common.flows) || is_stdout(&common.summary);
    let bar = if !common.quiet && !source.is_live() && io::stderr().is_terminal() {
        let (_, total) = source.progress();
        Some(Bar::new(total))
    } else {
        None
    };
    let report = pipeline::run(
        &mut source,
        &cfg,
        Outputs { flows },
        stop,
        bar.as_ref().map(|b| b as &dyn Progress),
    )?;
    if let Some(b) = &bar {
        b.0.finish_and_clear();
    }
    let mut summary = Summary::from_report(&report);
    if cfg.policy.is_some() {
        summary.policy = Some(PolicySummary::new(&report.flows.policy));
    }
    if let Some((path, mut out)) = summary_out {
        let write = serde_json::to_writer_pretty(&mut out, &summary)
            .map_err(io::Error::from)
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush());
        write.map_err(|source| AppError::Output { path, source })?;
    }
    if !common.quiet {
        let text = summary.to_human();
        // Machine output owns stdout when asked for; the human table then goes to stderr.
        let _ = if stdout_is_data {
            io::stderr().write_all(text.as_bytes())
        } else {
            io::stdout().write_all(text.as_bytes())
        };
    }
    Ok(EXIT_OK)
}

fn is_stdout(p: &Option<PathBuf>) -> bool {
    p.as_deref() == Some(Path::new("-"))
}

/// Open an output file (0640, truncated) or stdout for "-".
pub fn open_output(path: &Path) -> Result<Box<dyn Write + Send>, AppError> {
    if path == Path::new("-") {
        return Ok(Box::new(io::BufWriter::with_capacity(
            1 << 16,
            io::stdout(),
        )));
    }
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(path)
        .map_err(|source| AppError::Output {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Box::new(io::BufWriter::with_capacity(1 << 16, f)))
}

/// Ctrl-C / SIGTERM set `stop`; a second one exits at once (status 130).
fn install_signals(stop: &Arc<AtomicBool>) -> Result<(), AppError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    for sig in [SIGINT, SIGTERM] {
        flag::register_conditional_shutdown(sig, 130, stop.clone()).map_err(AppError::Signal)?;
        flag::register(sig, stop.clone()).map_err(AppError::Signal)?;
    }
    Ok(())
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
