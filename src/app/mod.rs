//! Floor L6. Runs a parsed command: opens the source and outputs, installs signal
//! handlers, runs the pipeline, writes the summary. `main.rs` only maps the
//! result to an exit code.
//!
//! Here: the dispatch ([`run`]), [`AppError`], the exit codes and `--fail-on`'s
//! status. One file per job:
//!
//! | file | job |
//! |---|---|
//! | `replay.rs` | `replay FILES`: sources, `--speed`, `--openmetrics`, `--hold` |
//! | `live.rs` | `run --interface`: metrics by default, reload, privileged set-up |
//! | `check.rs` | `check RULES` and `check --against`, printing rule errors |
//! | `config.rs` | `--rules` loaded, the `PipelineConfig` of the common flags |
//! | `execute.rs` | one pipeline run, then summary, report, human table, exit status |
//! | `outputs.rs` | output files opened, stdout rules, documents, SIGHUP reopen |
//! | `control.rs` | the signal thread (interrupts, SIGHUP, the outputs' timer) |
//! | `reload.rs` | SIGHUP's rules reload |
//! | `serve.rs` | the `/metrics` endpoint and `zonewatch_policy_info` |
//! | `privs.rs` | `--user`: dropping root for good |

mod check;
mod config;
mod control;
mod execute;
mod live;
mod outputs;
mod privs;
mod reload;
mod replay;
mod serve;

pub use outputs::open_output;

use crate::capture::CaptureError;
use crate::cli::{Cli, Command};
use crate::pipeline::PipelineError;
use crate::policy::Severity;
use check::{check, check_against};
use control::Control;
use live::run_live;
use replay::replay;
use std::io;
use std::path::PathBuf;

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
    #[error(transparent)]
    Metrics(#[from] crate::metrics::server::ServerError),
    #[error("--metrics-listen {addr}{}: {detail}; port {} is taken or cannot be bound here. Choose a free address with --metrics-listen IP:PORT, or run without metrics with --metrics-listen none", if *.default { " (the default of `run`)" } else { "" }, .addr.port())]
    MetricsListen {
        addr: std::net::SocketAddr,
        /// The address was `run`'s default, not given.
        default: bool,
        detail: String,
    },
    #[error("--evidence {}: cannot create files in it: {source}; give a directory zonewatch can write to", .dir.display())]
    EvidenceDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    MetricsSetup(#[from] crate::metrics::MetricsError),
    #[error(transparent)]
    User(#[from] privs::UserError),
    #[error("{first} - and {second} - would both write to stdout; give one of them a file")]
    StdoutTwice { first: String, second: &'static str },
}

/// Exit status of a successful run.
pub const EXIT_OK: i32 = 0;

/// Exit status of a successful run that raised an alert at or above `--fail-on`.
pub const EXIT_ALERTS: i32 = 1;

/// Exit status after a second interrupt (what was computed is written, and
/// stderr says what was not).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Alerts at or above `min`, from counts indexed by `Severity as usize`.
fn at_or_above(by_severity: &[u64; 5], min: Severity) -> u64 {
    by_severity.iter().skip(min as usize).sum()
}

/// The exit status `--fail-on` asks for, with a note on stderr when it fails.
fn fail_on_status(min: Option<Severity>, by_severity: &[u64; 5], quiet: bool) -> i32 {
    let Some(min) = min else { return EXIT_OK };
    let n = at_or_above(by_severity, min);
    if n == 0 {
        return EXIT_OK;
    }
    if !quiet {
        eprintln!(
            "zonewatch: {n} alert{} at or above {} (--fail-on): exit {EXIT_ALERTS}",
            if n == 1 { "" } else { "s" },
            min.as_str()
        );
    }
    EXIT_ALERTS
}

pub fn run(cli: Cli) -> Result<i32, AppError> {
    let control = Control::start()?;
    let result = run_with(cli, &control);
    control.finish();
    result
}

fn run_with(cli: Cli, control: &Control) -> Result<i32, AppError> {
    let stop = control.stop.clone();
    match cli.command {
        Command::Check(args) if !args.against.is_empty() => check_against(&args, &stop),
        Command::Check(args) => check(&args.rules, args.sources),
        Command::Replay(args) => replay(&args, control),
        Command::Run(args) => run_live(&args, control),
    }
}

/// Exit status of `check` when the rules have errors.
pub const EXIT_RULES_INVALID: i32 = 2;
