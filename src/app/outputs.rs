//! Floor L6 (`app`). The output files: opened before the pipeline starts (and before `--user`
//! drops root), the stdout rules, the end-of-run documents, `--openmetrics`'
//! file, the SIGHUP reopen.

use super::AppError;
use crate::cli::CommonArgs;
use crate::output::{OpenMode, Output, OutputSet};
use crate::sink::{AlertSink, OpenCx};
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The `--flows`, `--summary` and `--report` outputs and the alert sinks
/// (`--alerts`, `crate::sink::SINKS`), opened (created 0640) before the
/// pipeline starts, and before `run --user` drops root. `run` opens them for
/// appending (the summary and the report are replaced when the run ends),
/// `replay` empties them first.
pub(super) struct OpenedOutputs {
    pub(super) flows: Option<Output>,
    /// The alert sinks given, in the registry's order.
    pub(super) alerts: Vec<Box<dyn AlertSink>>,
    pub(super) summary: Option<Output>,
    pub(super) report: Option<Output>,
}

impl OpenedOutputs {
    pub(super) fn open(
        common: &CommonArgs,
        set: &OutputSet,
        mode: OpenMode,
    ) -> Result<OpenedOutputs, AppError> {
        // `--report -` shares stdout with no other machine output.
        if is_stdout(&common.report) {
            let others = [("--flows", &common.flows), ("--summary", &common.summary)];
            let first = others
                .iter()
                .find(|(_, p)| is_stdout(p))
                .map(|(name, _)| name.to_string())
                .or_else(|| common.sinks.stdout_flag());
            if let Some(first) = first {
                return Err(AppError::StdoutTwice {
                    first,
                    second: "--report",
                });
            }
        }
        let open = |p: &Option<PathBuf>| -> Result<Option<Output>, AppError> {
            p.as_deref()
                .map(|p| {
                    set.open(p, mode).map_err(|source| AppError::Output {
                        path: p.to_path_buf(),
                        source,
                    })
                })
                .transpose()
        };
        let flows = open(&common.flows)?;
        let alerts = common
            .sinks
            .open(&OpenCx { set, mode })
            .map_err(|e| AppError::Output {
                path: PathBuf::from(e.target),
                source: e.source,
            })?;
        let summary = open(&common.summary)?;
        if let Some(dir) = &common.evidence.evidence {
            std::fs::create_dir_all(dir).map_err(|source| AppError::Output {
                path: dir.clone(),
                source,
            })?;
            check_writable(dir)?;
        }
        let report = open(&common.report)?;
        Ok(OpenedOutputs {
            flows,
            alerts,
            summary,
            report,
        })
    }
}

/// `--evidence DIR` must take new files: an alert never names a file that
/// could not be created, so a directory that refuses them is an error at
/// start (exit 2) rather than a run of alerts without evidence.
pub(super) fn check_writable(dir: &Path) -> Result<(), AppError> {
    let probe = dir.join(format!(".zonewatch-probe-{}", std::process::id()));
    let made = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(crate::output::FILE_MODE)
        .open(&probe);
    match made {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(source) => Err(AppError::EvidenceDir {
            dir: dir.to_path_buf(),
            source,
        }),
    }
}

/// Write `doc` (the summary or the report) over `out`'s content.
pub(super) fn write_doc(out: &Output, doc: &impl serde::Serialize) -> Result<(), AppError> {
    let path = out.path().unwrap_or_else(|| PathBuf::from("-"));
    let mut bytes = serde_json::to_vec_pretty(doc).map_err(|e| AppError::Output {
        path: path.clone(),
        source: io::Error::from(e),
    })?;
    bytes.push(b'\n');
    out.replace(&bytes)
        .map_err(|source| AppError::Output { path, source })
}

pub(super) fn is_stdout(p: &Option<PathBuf>) -> bool {
    p.as_deref() == Some(Path::new("-"))
}

/// Open a file written once at the end (`--openmetrics`: 0640, truncated),
/// or stdout for "-".
pub fn open_output(path: &Path) -> Result<Box<dyn Write + Send>, AppError> {
    if path == Path::new("-") {
        return Ok(Box::new(io::BufWriter::with_capacity(
            1 << 16,
            io::stdout(),
        )));
    }
    let f =
        crate::output::open_file(path, OpenMode::Truncate).map_err(|source| AppError::Output {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Box::new(io::BufWriter::with_capacity(1 << 16, f)))
}

/// SIGHUP: every output reopened at its path, said on stderr. True when
/// at least one was.
pub(super) fn reopen(outputs: &OutputSet) -> bool {
    let (done, failed) = outputs.reopen_all();
    let reopened = !done.is_empty();
    if reopened {
        let names: Vec<String> = done.iter().map(|p| p.display().to_string()).collect();
        eprintln!("zonewatch: SIGHUP: reopened {}", names.join(", "));
    }
    for (path, e) in failed {
        eprintln!(
            "zonewatch: SIGHUP: cannot reopen {}: {e}; still writing to the file it had open",
            path.display()
        );
    }
    reopened
}
