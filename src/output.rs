//! Floor L4. Output files: the line outputs (`--flows`, `--alerts`) and the documents
//! written at the end (`--summary`, `--report`).
//!
//! Owns how an output is opened (0640; `run` appends, `replay` truncates),
//! its buffer, the once-a-second flush, and reopening every output at its
//! path (SIGHUP, for logrotate). It leaves alone what goes into the files
//! (flow lines, alert lines, the summary) and who writes them.
//!
//! # Whole lines
//!
//! Every `write` call hands over whole lines (a flow chunk, one alert line):
//! the buffer is only ever written out between two calls, so the file on disk
//! ends in a complete line after every write system call. That is what makes
//! a reopen, a background flush or logrotate's `copytruncate` safe: a file
//! never starts or ends with half a line. Files are opened `O_APPEND`, so
//! after `copytruncate` empties a file the next write lands at its new end
//! (offset 0), not at the old offset behind a run of NUL bytes.
//!
//! # Flush and reopen
//!
//! [`OutputSet::flush_all`] writes every buffer out; the signal thread calls it
//! at least once a second, so a quiet live sensor still puts its lines on disk
//! within a second of handing them over. [`OutputSet::reopen_all`] writes each
//! buffer to the file it has open, then opens the path again (create, append,
//! never truncate): after logrotate renamed `alerts.jsonl` away, the next line
//! goes to a new `alerts.jsonl`. A path that cannot be opened keeps the old
//! file (nothing is lost) and the error is returned for stderr.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Mode of every output file zonewatch creates (before the umask).
pub const FILE_MODE: u32 = 0o640;

/// Bytes an output collects before it writes them out.
const BUF_BYTES: usize = 64 * 1024;

/// What opening does to an existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Empty it first (`replay`: one investigation, one set of files).
    Truncate,
    /// Keep what is there and write after it (`run`: a restart under systemd
    /// must not wipe the day's alerts).
    Append,
}

/// Open `path` for appending (`O_APPEND`, created 0640), emptied first when
/// `mode` says so.
pub fn open_file(path: &Path, mode: OpenMode) -> io::Result<File> {
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)?;
    if mode == OpenMode::Truncate {
        // (`truncate(true)` cannot be combined with `append(true)`.)
        empty(&f)?;
    }
    Ok(f)
}

/// Empty `f` if it is a regular file; a device, FIFO or socket (`/dev/null`,
/// a named pipe to a log shipper) has nothing to empty and refuses `set_len`.
fn empty(f: &File) -> io::Result<()> {
    if f.metadata()?.file_type().is_file() {
        f.set_len(0)?;
    }
    Ok(())
}

enum Target {
    Stdout,
    File { path: PathBuf, file: File },
}

struct State {
    target: Target,
    buf: Vec<u8>,
    /// The first error a flush from another thread met, for the owner's next
    /// write or flush (kind and message: `io::Error` is not `Clone`).
    failed: Option<(io::ErrorKind, String)>,
}

impl State {
    fn write_out(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = match &mut self.target {
            Target::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&self.buf).and_then(|()| out.flush())
            }
            Target::File { file, .. } => file.write_all(&self.buf),
        };
        // Written or not, the bytes leave the buffer: a failing disk must not
        // grow memory (the error is reported, and the run fails at its end).
        self.buf.clear();
        r
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
            None => Ok(()),
        }
    }

    fn note(&mut self, r: io::Result<()>) -> io::Result<()> {
        if let Err(e) = &r {
            if self.failed.is_none() {
                self.failed = Some((e.kind(), e.to_string()));
            }
        }
        r
    }
}

/// One output: a file (or stdout), shared by its writer and the [`OutputSet`]
/// that flushes and reopens it. `Write` takes whole lines per call (module docs).
#[derive(Clone)]
pub struct Output {
    state: Arc<Mutex<State>>,
}

impl Output {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The path, or `None` for stdout.
    pub fn path(&self) -> Option<PathBuf> {
        match &self.lock().target {
            Target::Stdout => None,
            Target::File { path, .. } => Some(path.clone()),
        }
    }

    /// Replace the whole content with `doc` (the summary and the report,
    /// written once at the end; stdout just gets `doc`).
    pub fn replace(&self, doc: &[u8]) -> io::Result<()> {
        let mut s = self.lock();
        s.check()?;
        s.buf.clear();
        let r = match &mut s.target {
            Target::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(doc).and_then(|()| out.flush())
            }
            Target::File { file, .. } => empty(file).and_then(|()| file.write_all(doc)),
        };
        s.note(r)
    }
}

impl Write for Output {
    /// Buffers all of `buf` (whole lines, see the module docs).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self.lock();
        s.check()?;
        if s.buf.len() + buf.len() > BUF_BYTES {
            let r = s.write_out();
            s.note(r)?;
        }
        if buf.len() >= BUF_BYTES {
            // A chunk as large as the buffer goes straight out.
            let r = match &mut s.target {
                Target::Stdout => io::stdout().lock().write_all(buf),
                Target::File { file, .. } => file.write_all(buf),
            };
            s.note(r)?;
        } else {
            s.buf.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut s = self.lock();
        s.check()?;
        let r = s.write_out();
        s.note(r)
    }
}

/// Every output of a run, for the once-a-second flush and the reopen signal.
#[derive(Clone, Default)]
pub struct OutputSet {
    outputs: Arc<Mutex<Vec<Output>>>,
}

impl OutputSet {
    fn list(&self) -> Vec<Output> {
        self.outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Open `path` ("-" = stdout) with `mode` and add it to the set.
    pub fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Output> {
        let target = if path == Path::new("-") {
            Target::Stdout
        } else {
            Target::File {
                path: path.to_path_buf(),
                file: open_file(path, mode)?,
            }
        };
        let out = Output {
            state: Arc::new(Mutex::new(State {
                target,
                buf: Vec::with_capacity(BUF_BYTES),
                failed: None,
            })),
        };
        self.outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(out.clone());
        Ok(out)
    }

    /// Write every buffer out (errors are kept for each output's owner).
    pub fn flush_all(&self) {
        for o in self.list() {
            let mut s = o.lock();
            let r = s.write_out();
            let _ = s.note(r);
        }
    }

    /// Like [`flush_all`](Self::flush_all), but skips an output whose writer
    /// holds it (the process is about to exit and must not wait).
    pub fn flush_now(&self) {
        let list = match self.outputs.try_lock() {
            Ok(l) => l.clone(),
            Err(_) => return,
        };
        for o in list {
            if let Ok(mut s) = o.state.try_lock() {
                let r = s.write_out();
                let _ = s.note(r);
            }
        }
    }

    /// Write each buffer to the file it has open, then open its path again
    /// (create, append). Returns the files reopened and the paths that could
    /// not be (those keep writing to the file they had).
    pub fn reopen_all(&self) -> (Vec<PathBuf>, Vec<(PathBuf, io::Error)>) {
        let (mut done, mut failed) = (Vec::new(), Vec::new());
        for o in self.list() {
            let mut s = o.lock();
            let r = s.write_out();
            let _ = s.note(r);
            let Target::File { path, file } = &mut s.target else {
                continue;
            };
            match open_file(path, OpenMode::Append) {
                Ok(f) => {
                    *file = f;
                    done.push(path.clone());
                }
                Err(e) => failed.push((path.clone(), e)),
            }
        }
        (done, failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn append_keeps_and_truncate_empties_and_files_are_0640() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.jsonl");
        std::fs::write(&p, "old\n").expect("write");
        let set = OutputSet::default();
        let mut o = set.open(&p, OpenMode::Append).expect("open");
        o.write_all(b"new\n").expect("write");
        o.flush().expect("flush");
        assert_eq!(read(&p), "old\nnew\n");
        let mut t = set.open(&p, OpenMode::Truncate).expect("open");
        t.write_all(b"only\n").expect("write");
        t.flush().expect("flush");
        assert_eq!(read(&p), "only\n");
        let q = dir.path().join("fresh.jsonl");
        set.open(&q, OpenMode::Append).expect("open");
        let mode = std::fs::metadata(&q).expect("meta").permissions().mode() & 0o777;
        // The umask can only take bits away.
        assert_eq!(mode & !0o640, 0, "{mode:o}");
    }

    #[test]
    fn lines_wait_for_a_flush_and_a_flush_from_the_set_writes_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f.jsonl");
        let set = OutputSet::default();
        let mut o = set.open(&p, OpenMode::Truncate).expect("open");
        o.write_all(b"{\"a\":1}\n").expect("write");
        assert_eq!(read(&p), "", "buffered");
        set.flush_all();
        assert_eq!(read(&p), "{\"a\":1}\n");
    }

    #[test]
    fn dev_null_and_fifos_are_outputs_too() {
        // `--alerts /dev/null` (benchmarks, dry runs) must open for either mode.
        for mode in [OpenMode::Truncate, OpenMode::Append] {
            let mut f = open_file(Path::new("/dev/null"), mode).expect("/dev/null opens");
            f.write_all(b"{}\n").expect("write");
        }
    }

    #[test]
    fn reopen_follows_a_rename_and_copytruncate_leaves_no_nul() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("alerts.jsonl");
        let set = OutputSet::default();
        let mut o = set.open(&p, OpenMode::Append).expect("open");
        o.write_all(b"one\n").expect("write");
        // logrotate `create`: rename, then the signal.
        let rotated = dir.path().join("alerts.jsonl.1");
        std::fs::rename(&p, &rotated).expect("rename");
        o.write_all(b"two\n").expect("write");
        let (done, failed) = set.reopen_all();
        assert_eq!((done.len(), failed.len()), (1, 0));
        o.write_all(b"three\n").expect("write");
        o.flush().expect("flush");
        assert_eq!(read(&rotated), "one\ntwo\n");
        assert_eq!(read(&p), "three\n");
        // `copytruncate`: copy, truncate in place; the next line starts at 0.
        std::fs::write(dir.path().join("copy"), read(&p)).expect("copy");
        File::options()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_len(0))
            .expect("truncate");
        o.write_all(b"four\n").expect("write");
        o.flush().expect("flush");
        assert_eq!(std::fs::read(&p).expect("read"), b"four\n");
    }

    #[test]
    fn a_reopen_that_fails_keeps_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("d");
        std::fs::create_dir(&sub).expect("mkdir");
        let p = sub.join("x.jsonl");
        let set = OutputSet::default();
        let mut o = set.open(&p, OpenMode::Append).expect("open");
        let moved = dir.path().join("moved");
        std::fs::rename(&sub, &moved).expect("rename dir");
        let (done, failed) = set.reopen_all();
        assert!(done.is_empty());
        assert_eq!(failed.len(), 1);
        o.write_all(b"kept\n").expect("write");
        o.flush().expect("flush");
        assert_eq!(read(&moved.join("x.jsonl")), "kept\n");
    }

    #[test]
    fn replace_writes_a_document_over_the_old_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("summary.json");
        let old = "{\"previous\": \"run, much longer than the new one\"}\n";
        std::fs::write(&p, old).expect("write");
        let set = OutputSet::default();
        let o = set.open(&p, OpenMode::Append).expect("open");
        assert_eq!(read(&p), old, "the old summary stays until the new one");
        o.replace(b"{}\n").expect("replace");
        assert_eq!(read(&p), "{}\n");
    }
}
