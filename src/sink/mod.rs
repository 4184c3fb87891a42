//! Floor L4. Alert sinks: where the analysis thread's alerts go, and the one
//! table of the sinks a user can ask for on the command line.
//!
//! Owns the [`AlertSink`] trait, the sinks ([`JsonLines`] for `--alerts`;
//! [`Collect`] and [`Discard`], which no flag names), [`Fanout`] (several
//! sinks at once) and the registry [`SINKS`]: per entry its flag, value name,
//! help text, whether `-` means stdout, and how to open it ([`OpenCx`]). The
//! CLI builds the flags from the table (`crate::cli::SinkArgs`) and the app
//! opens what was given, so neither names a sink. It leaves alone the alert
//! record and its folding (`crate::alert`), the analysis thread that calls the
//! sink (`crate::pipeline::analysis`), and `--openmetrics`' counting sink
//! (`crate::metrics::openmetrics::Tee`).
//!
//! # Adding a sink: 1 new file and 1 line, no edit in `cli`, `app` or `summary`
//!
//! 1. Write `src/sink/NAME.rs`: a type implementing [`AlertSink`] (one call
//!    per alert, in the order written; hand a writer whole lines, see
//!    `crate::output`), and a `pub(super) const SPEC: SinkSpec` naming its flag,
//!    value name, help text, whether `-` is stdout, and an `open` function
//!    (open files through `cx.set.open(path, cx.mode)` so SIGHUP reopens them
//!    and `run` appends while `replay` truncates).
//! 2. Add `NAME,` to the `sinks!` list below, where its flag should appear in
//!    `--help` (the line declares the module and puts its `SPEC` in [`SINKS`]).
//!
//! Everything else follows from the table: the flag on `replay` and `run`,
//! detectors on when any sink is given, `--evidence` accepted with it, the
//! summary's alert section, the `--report -` stdout check, and the fan-out
//! when several sinks are given. Docs: a line in ARCHITECTURE.md's module
//! table and in docs/alerts.md if its format is new.

mod memory;

pub use json_lines::JsonLines;
pub use memory::{Collect, Discard};

use crate::alert::Alert;
use crate::output::{OpenMode, OutputSet};
use std::ffi::{OsStr, OsString};
use std::io;

/// Where alerts go: a JSON-lines writer, or a collector (`check --against`, tests).
pub trait AlertSink: Send {
    fn alert(&mut self, a: &Alert) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The command-line sinks, one line each, in `--help` order: the line
/// declares the module (`src/sink/NAME.rs`, which defines `SPEC`) and puts
/// its `SPEC` in [`SINKS`].
macro_rules! sinks {
    ($($m:ident,)*) => {
        $(mod $m;)*

        /// Every sink the command line offers, in `--help` order.
        pub static SINKS: &[SinkSpec] = &[$($m::SPEC,)*];
    };
}

sinks! {
    json_lines,
}

/// One command-line sink: its flag and how to open it.
#[derive(Debug)]
pub struct SinkSpec {
    /// Long flag without the dashes (`"alerts"` for `--alerts`); also the
    /// clap argument id.
    pub flag: &'static str,
    /// Placeholder of the flag's value in `--help` (`"FILE"`).
    pub value_name: &'static str,
    /// `--help` text of the flag.
    pub help: &'static str,
    /// The target `-` writes to stdout (then no other machine output may).
    pub dash_is_stdout: bool,
    /// Open the sink at `target` (the flag's value). Runs before `run --user`
    /// drops root.
    pub open: OpenFn,
}

impl SinkSpec {
    /// `target` writes to stdout.
    pub fn writes_stdout(&self, target: &OsStr) -> bool {
        self.dash_is_stdout && target == "-"
    }
}

/// How a [`SinkSpec`] opens its sink at a target.
pub type OpenFn = fn(&OsStr, &OpenCx) -> Result<Box<dyn AlertSink>, OpenError>;

/// What opening a sink may need.
pub struct OpenCx<'a> {
    /// The line outputs the signal thread flushes each second and reopens on
    /// SIGHUP: file sinks open through it.
    pub set: &'a OutputSet,
    /// `run` appends to existing files, `replay` truncates them.
    pub mode: OpenMode,
}

/// A sink that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", .target.to_string_lossy())]
pub struct OpenError {
    /// The flag's value, as given.
    pub target: OsString,
    #[source]
    pub source: io::Error,
}

/// Gives every alert to each sink in turn (several sink flags at once). Each
/// sink gets every alert even when another fails; the first error is returned.
pub struct Fanout(pub Vec<Box<dyn AlertSink>>);

impl AlertSink for Fanout {
    fn alert(&mut self, a: &Alert) -> io::Result<()> {
        let mut first = Ok(());
        for s in &mut self.0 {
            let r = s.alert(a);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
    fn flush(&mut self) -> io::Result<()> {
        let mut first = Ok(());
        for s in &mut self.0 {
            let r = s.flush();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

/// One sink for the analysis thread: `None` for none, the sink itself for
/// one, a [`Fanout`] for several.
pub fn combine(mut sinks: Vec<Box<dyn AlertSink>>) -> Option<Box<dyn AlertSink>> {
    match sinks.len() {
        0 => None,
        1 => sinks.pop(),
        _ => Some(Box::new(Fanout(sinks))),
    }
}

#[cfg(test)]
mod tests;
