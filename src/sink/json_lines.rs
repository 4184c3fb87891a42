//! Floor L4 (`sink`). `--alerts FILE`: each alert as one JSON line (docs/alerts.md).

use super::{AlertSink, OpenCx, OpenError, SinkSpec};
use crate::alert::Alert;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::Path;

pub(super) const SPEC: SinkSpec = SinkSpec {
    flag: "alerts",
    value_name: "FILE",
    help: "Write alerts as JSON lines to FILE ('-' = stdout): port scans, host sweeps and the other detectors (thresholds from the rules' [detect] table, or defaults), and with --rules `separation_violation`. `run` appends to an existing FILE, `replay` replaces it. SIGHUP reopens every output file at its path (logrotate) and, in live mode, reloads --rules (a broken file keeps the running rules and says why on stderr)",
    dash_is_stdout: true,
    open,
};

/// A line output at `target` (stdout for `-`), reopened on SIGHUP.
fn open(target: &OsStr, cx: &OpenCx) -> Result<Box<dyn AlertSink>, OpenError> {
    let out = cx
        .set
        .open(Path::new(target), cx.mode)
        .map_err(|source| OpenError {
            target: target.to_os_string(),
            source,
        })?;
    Ok(Box::new(JsonLines(out)))
}

/// Writes each alert as one JSON line, handed to the writer whole in one
/// `write_all` (an output may be flushed or reopened between two calls, never
/// inside a line: `crate::output`).
pub struct JsonLines<W: Write + Send>(pub W);

impl<W: Write + Send> AlertSink for JsonLines<W> {
    fn alert(&mut self, a: &Alert) -> io::Result<()> {
        // One allocation per alert line (alerts are rare next to packets).
        let mut line = serde_json::to_vec(a)?;
        line.push(b'\n');
        self.0.write_all(&line)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
