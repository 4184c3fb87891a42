//! Helpers shared by the integration tests: run the `zonewatch` binary and read
//! its JSON outputs, run TShark and turn its protocol chains into counts that
//! can be compared with zonewatch's summary, list the public capture set.
//!
//! Everything here fails loudly: a missing tool, a missing file or a process that
//! hangs is a test failure with the reason, never a skip.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_zonewatch");

/// The public capture set (outside this repository, next to it).
pub const PUBLIC_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/captures/public");

/// Captures recorded for this repository (captures/README.md).
pub const BUNDLED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/captures");

/// How long any single child process may run before the test fails.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// Path of a bundled capture, which must exist.
pub fn bundled(name: &str) -> PathBuf {
    let p = Path::new(BUNDLED_DIR).join(name);
    assert!(
        p.is_file(),
        "bundled capture {} is missing (run `make captures`)",
        p.display()
    );
    p
}

/// Path of a public capture, relative to PUBLIC_DIR, which must exist.
pub fn public(rel: &str) -> PathBuf {
    let p = Path::new(PUBLIC_DIR).join(rel);
    assert!(p.is_file(), "public capture {} is missing", p.display());
    p
}

/// The PROVENANCE.md tables' reader, shared with the file reader's unit tests.
mod provenance;
pub use provenance::{Provenance, CIDSPEC_DIR};

/// The one file of the public set that is not a capture: the Community ID
/// specification's baseline of expected values (PROVENANCE.md, `j_community_id`).
pub const CIDSPEC_BASELINE: &str = "j_community_id/cidspec_baseline_deflt.json";

/// Every capture listed in PROVENANCE.md: the index table (paths relative to
/// PUBLIC_DIR) and the table of the `j_community_id` section (bare names in
/// CIDSPEC_DIR). Also checks that the list matches the files on disk, apart from
/// the one non-capture CIDSPEC_BASELINE (so a capture added without provenance,
/// or a listed one that disappeared, fails here).
pub fn public_index() -> Vec<Provenance> {
    let prov = Path::new(PUBLIC_DIR).join("PROVENANCE.md");
    let text = std::fs::read_to_string(&prov)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", prov.display()));
    let index = provenance::index(&text);
    let cidspec = provenance::cidspec(&text);
    assert!(
        index.len() >= 40,
        "PROVENANCE.md index lists only {} files",
        index.len()
    );
    assert_eq!(
        cidspec.len(),
        8,
        "PROVENANCE.md j_community_id table: {cidspec:?}"
    );
    let rows: Vec<Provenance> = index.into_iter().chain(cidspec).collect();

    let mut listed: BTreeSet<String> = rows.iter().map(|r| r.rel.clone()).collect();
    assert_eq!(listed.len(), rows.len(), "PROVENANCE.md lists a file twice");
    listed.insert(CIDSPEC_BASELINE.to_string());
    let mut on_disk = BTreeSet::new();
    let dirs =
        std::fs::read_dir(PUBLIC_DIR).unwrap_or_else(|e| panic!("cannot list {PUBLIC_DIR}: {e}"));
    for dir in dirs.flatten() {
        if !dir.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let rel = format!(
                "{}/{}",
                dir.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            );
            on_disk.insert(rel);
        }
    }
    assert_eq!(
        listed, on_disk,
        "PROVENANCE.md tables (+ {CIDSPEC_BASELINE}) and the files under {PUBLIC_DIR} differ"
    );
    rows
}

/// Output of a finished child process.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for messages.
    pub cmdline: String,
}

impl Run {
    /// Exit code; panics if the process died from a signal.
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("{} was killed by a signal: {self:#?}", self.cmdline))
    }

    /// The process must not have panicked (whatever its exit code).
    pub fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked"),
            "{} panicked:\n{}",
            self.cmdline,
            self.stderr
        );
    }

    /// Exit code 0 and no panic.
    pub fn assert_ok(&self) {
        self.assert_no_panic();
        assert_eq!(
            self.code(),
            0,
            "{} failed:\nstderr:\n{}",
            self.cmdline,
            self.stderr
        );
    }
}

fn cmdline(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// A spawned child that is killed (and reaped) if dropped while still running, so
/// a failing test never leaves a capture process behind.
pub struct ChildGuard {
    pub child: Option<Child>,
    pub cmdline: String,
}

impl ChildGuard {
    pub fn spawn(mut cmd: Command) -> ChildGuard {
        let line = cmdline(&cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {line}: {e}"));
        ChildGuard {
            child: Some(child),
            cmdline: line,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Wait for exit (at most `timeout`, then kill and panic) and collect output.
    pub fn wait(mut self, timeout: Duration) -> Run {
        let mut child = self.child.take().expect("child already waited for");
        // Drain both pipes on threads so a chatty child can never block on a full pipe.
        let mut out = child.stdout.take().expect("stdout piped");
        let mut err = child.stderr.take().expect("stderr piped");
        let t_out = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = out.read_to_end(&mut b);
            b
        });
        let t_err = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err.read_to_end(&mut b);
            b
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let e = t_err.join().unwrap_or_default();
                    panic!(
                        "{} did not finish within {timeout:?}; killed. stderr:\n{}",
                        self.cmdline,
                        String::from_utf8_lossy(&e)
                    );
                }
                Err(e) => panic!("waiting for {}: {e}", self.cmdline),
            }
        };
        let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
        let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
        Run {
            status,
            stdout,
            stderr,
            cmdline: self.cmdline.clone(),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run a command to completion (bounded by CHILD_TIMEOUT).
pub fn run_cmd(cmd: Command) -> Run {
    ChildGuard::spawn(cmd).wait(CHILD_TIMEOUT)
}

/// How long building the generator may take (a cold build on a loaded machine).
const GEN_BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// The capture generator `zonewatch-gen` (tools/zonewatch-gen, benches/README.md):
/// a member of the workspace but its own package, so cargo sets no
/// `CARGO_BIN_EXE_zonewatch-gen` for these tests. The first call in the test
/// process builds it with the cargo running the tests (`$CARGO build -p
/// zonewatch-gen`, the profile of [`BIN`]) and takes the executable's path from
/// cargo's build messages; every call returns that path, or fails with the
/// reason the build failed (never a skip).
pub fn generator() -> &'static Path {
    static GEN: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    match GEN.get_or_init(build_generator) {
        Ok(p) => p,
        Err(e) => panic!("zonewatch-gen is needed and could not be built: {e}"),
    }
}

fn build_generator() -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    // target/<profile dir>/zonewatch: "debug" is the dev profile's directory.
    let profile = Path::new(BIN)
        .parent()
        .and_then(Path::file_name)
        .and_then(OsStr::to_str)
        .map(|d| if d == "debug" { "dev" } else { d })
        .ok_or_else(|| format!("no profile directory in {BIN}"))?;
    let mut cmd = Command::new(cargo);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "-p", "zonewatch-gen", "--bin", "zonewatch-gen"])
        .args([
            "--profile",
            profile,
            "--message-format=json-render-diagnostics",
        ]);
    let run = ChildGuard::spawn(cmd).wait(GEN_BUILD_TIMEOUT);
    if run.code() != 0 {
        return Err(format!(
            "{} exited with {:?}:\n{}",
            run.cmdline, run.status, run.stderr
        ));
    }
    // The executable of the compiler-artifact message of the bin target.
    let exe = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "zonewatch-gen")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| format!("{}: no executable in cargo's messages", run.cmdline))?;
    if exe.is_file() {
        Ok(exe)
    } else {
        Err(format!("{}: {} is not a file", run.cmdline, exe.display()))
    }
}

/// Run zonewatch with these arguments.
pub fn zonewatch<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    run_cmd(cmd)
}

/// Send a signal with kill(1) (the tests need no libc binding for it).
pub fn send_signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
    assert!(st.success(), "kill -{sig} {pid} failed: {st}");
}

/// What a run wrote: the process result, the parsed summary, the flow lines.
pub struct Outputs {
    pub run: Run,
    pub summary: Value,
    /// Raw flow lines (without '\n'), in file order.
    pub flows: Vec<String>,
    /// The flows file ended with '\n' (or was empty).
    pub flows_end_with_newline: bool,
}

/// Files a run writes its outputs to.
pub struct OutPaths {
    /// Holds the directory (deleted on drop).
    pub _dir: tempfile::TempDir,
    pub summary: PathBuf,
    pub flows: PathBuf,
}

impl OutPaths {
    pub fn new() -> OutPaths {
        let dir = tempfile::tempdir().expect("tempdir");
        let summary = dir.path().join("summary.json");
        let flows = dir.path().join("flows.jsonl");
        OutPaths {
            _dir: dir,
            summary,
            flows,
        }
    }

    /// Read back what the finished run wrote.
    pub fn collect(&self, run: Run) -> Outputs {
        let text = std::fs::read_to_string(&self.summary).unwrap_or_else(|e| {
            panic!(
                "{}: no summary at {} ({e}); exit {:?}, stderr:\n{}",
                run.cmdline,
                self.summary.display(),
                run.status.code(),
                run.stderr
            )
        });
        let summary: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: summary is not JSON ({e}):\n{text}", run.cmdline));
        let raw = std::fs::read_to_string(&self.flows).unwrap_or_default();
        let flows_end_with_newline = raw.is_empty() || raw.ends_with('\n');
        let flows = raw.lines().map(str::to_string).collect();
        Outputs {
            run,
            summary,
            flows,
            flows_end_with_newline,
        }
    }
}

/// `zonewatch replay -q --summary S --flows F [extra..] FILES..`; must exit 0
/// without panicking.
pub fn replay(files: &[&Path], extra: &[&str]) -> Outputs {
    let out = OutPaths::new();
    let mut cmd = Command::new(BIN);
    cmd.arg("replay")
        .arg("-q")
        .arg("--summary")
        .arg(&out.summary)
        .arg("--flows")
        .arg(&out.flows);
    cmd.args(extra).args(files);
    let run = run_cmd(cmd);
    run.assert_ok();
    out.collect(run)
}

/// Collect a piped child's stderr into a shared string as it arrives (a
/// thread per child), so a test can wait for a line while the child runs.
pub fn tap_stderr(
    guard: &mut ChildGuard,
) -> (
    std::sync::Arc<std::sync::Mutex<String>>,
    std::thread::JoinHandle<()>,
) {
    use std::io::Read;
    let mut err = guard
        .child
        .as_mut()
        .and_then(|c| c.stderr.take())
        .expect("stderr piped");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let buf = stderr.clone();
    let reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = err.read(&mut chunk) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(chunk.get(..n).unwrap_or_default());
            buf.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&text);
        }
    });
    (stderr, reader)
}

/// Longest [`Watched::wait_stderr`] / [`Watched::wait_for`] wait for an
/// event: a ceiling for a loaded 2-core machine, not an expected time (the
/// events come in well under a second on an idle one).
pub const WATCH_WAIT: Duration = Duration::from_secs(90);

/// A child whose stderr is collected while it runs.
pub struct Watched {
    guard: ChildGuard,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Watched {
    pub fn spawn(cmd: Command) -> Watched {
        let mut guard = ChildGuard::spawn(cmd);
        let (stderr, reader) = tap_stderr(&mut guard);
        Watched {
            guard,
            stderr,
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> u32 {
        self.guard.id()
    }

    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        let child = self.guard.child.as_mut().expect("child running");
        child
            .try_wait()
            .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.guard.cmdline))
    }

    /// Poll `f` every 20 ms until it returns `Some` (at most WATCH_WAIT); the
    /// child must still be running meanwhile. `what` names the event.
    pub fn wait_for<T>(&mut self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WATCH_WAIT;
        loop {
            if let Some(v) = f() {
                return v;
            }
            let gone = self.exited();
            assert!(
                gone.is_none() && Instant::now() < deadline,
                "waited for {what} while {} ran{}; stderr:\n{}",
                self.guard.cmdline,
                gone.map(|s| format!(" (it exited: {s})"))
                    .unwrap_or_default(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (a crash: nothing is flushed) and reap.
    pub fn kill_hard(mut self) {
        if let Some(mut c) = self.guard.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }

    /// Wait (at most WATCH_WAIT) until stderr contains `needle`; the child must
    /// still be running.
    pub fn wait_stderr(&mut self, needle: &str) {
        let deadline = Instant::now() + WATCH_WAIT;
        while !self.stderr().contains(needle) {
            let gone = self.exited();
            assert!(
                gone.is_none() && Instant::now() < deadline,
                "waited for {needle:?} on the stderr of {}{}; stderr:\n{}",
                self.guard.cmdline,
                gone.map(|s| format!(" (it exited: {s})"))
                    .unwrap_or_default(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait (at most `timeout`) for the exit; (status, stderr). No panic allowed.
    pub fn finish(mut self, timeout: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = self.exited() {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}; stderr:\n{}",
                self.guard.cmdline,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        self.guard.child = None;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let stderr = self.stderr();
        assert!(
            !stderr.contains("panicked"),
            "{} panicked:\n{stderr}",
            self.guard.cmdline
        );
        (status, stderr)
    }
}

/// The complete lines of a JSON-lines file being written, parsed (a last
/// line without its '\n' is left for the next look). Every complete line
/// must be a JSON object.
pub fn json_lines_so_far(path: &Path) -> Vec<Map<String, Value>> {
    let raw = std::fs::read(path).unwrap_or_default();
    let complete = match raw.iter().rposition(|&b| b == b'\n') {
        Some(i) => raw.get(..=i).unwrap_or_default(),
        None => &[],
    };
    parse_json_lines(complete, path)
}

/// Every line of a finished JSON-lines file: the file is empty or ends with
/// '\n', holds no NUL byte, and each line is a JSON object.
pub fn complete_json_lines(path: &Path) -> Vec<Map<String, Value>> {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        raw.is_empty() || raw.ends_with(b"\n"),
        "{} does not end with a complete line; last bytes: {:?}",
        path.display(),
        String::from_utf8_lossy(raw.get(raw.len().saturating_sub(120)..).unwrap_or_default())
    );
    parse_json_lines(&raw, path)
}

fn parse_json_lines(raw: &[u8], path: &Path) -> Vec<Map<String, Value>> {
    if let Some(at) = raw.iter().position(|&b| b == 0) {
        panic!("{}: a NUL byte at offset {at}", path.display());
    }
    let text =
        std::str::from_utf8(raw).unwrap_or_else(|e| panic!("{}: not UTF-8: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, l)| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => m,
            other => panic!(
                "{}: line {} is not a JSON object ({other:?}): {l}",
                path.display(),
                i + 1
            ),
        })
        .collect()
}

/// What `replay --alerts` wrote.
pub struct AlertRun {
    /// Every alert as it finally stands, in the order of its first line: an
    /// `update` line (same `id`) replaces its first line.
    pub alerts: Vec<Map<String, Value>>,
    /// Every line, parsed, in file order (first lines and updates).
    pub lines: Vec<Map<String, Value>>,
    /// The alert file as written.
    pub raw: String,
    pub summary: Value,
}

impl AlertRun {
    /// The alerts whose `kind` satisfies `keep`.
    pub fn kinds(&self, keep: impl Fn(&str) -> bool) -> Vec<Map<String, Value>> {
        self.alerts
            .iter()
            .filter(|a| a.get("kind").and_then(Value::as_str).is_some_and(&keep))
            .cloned()
            .collect()
    }
}

/// `zonewatch replay -q --summary --flows --alerts A [extra..] FILES..`; must
/// exit 0. Every alert line must be a JSON object.
pub fn replay_alerts(files: &[&Path], extra: &[&str]) -> AlertRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["--alerts", path.to_str().expect("utf-8 temp path")]);
    let out = replay(files, &args);
    let raw = std::fs::read_to_string(&path).expect("alerts written");
    let lines: Vec<Map<String, Value>> = raw
        .lines()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => m,
            other => panic!("{files:?}: alert line is not an object ({other:?}): {l}"),
        })
        .collect();
    let alerts = finals(&lines);
    AlertRun {
        alerts,
        lines,
        raw,
        summary: out.summary,
    }
}

/// Alerts as they finally stand: each `update` line replaces the line of its
/// `id` (which must come first); order of first lines.
pub fn finals(lines: &[Map<String, Value>]) -> Vec<Map<String, Value>> {
    let mut out: Vec<Map<String, Value>> = Vec::with_capacity(lines.len());
    let mut at: BTreeMap<String, usize> = BTreeMap::new();
    for l in lines {
        let id = l["id"].as_str().unwrap_or_default().to_string();
        let update = l.get("update").and_then(Value::as_u64).unwrap_or(0);
        if update > 0 {
            let i = *at
                .get(&id)
                .unwrap_or_else(|| panic!("update line before its alert: {l:?}"));
            out[i] = l.clone();
        } else {
            assert!(!at.contains_key(&id), "two alerts with id {id}");
            at.insert(id, out.len());
            out.push(l.clone());
        }
    }
    out
}

/// A counter from the summary: `summary[section][key]`, or `summary[key]` when
/// `section` is empty. A missing or non-integer field fails the test.
pub fn count(summary: &Value, section: &str, key: &str) -> u64 {
    let v = if section.is_empty() {
        summary.get(key)
    } else {
        summary.get(section).and_then(|s| s.get(key))
    };
    match v {
        Some(v) => v
            .as_u64()
            .unwrap_or_else(|| panic!("summary {section}.{key} is not a count: {v}")),
        None => panic!("summary lacks {section}.{key}: {summary:#}"),
    }
}

/// Sum of every value of an object in the summary (e.g. decode_failures).
pub fn sum_of(summary: &Value, section: &str) -> u64 {
    match summary.get(section) {
        Some(Value::Object(m)) => m.values().filter_map(Value::as_u64).sum(),
        other => panic!("summary {section} is not an object: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// TShark
// ---------------------------------------------------------------------------

/// Run TShark. A missing TShark is a failure, not a skip: the parity tests are
/// the point of this binary. Returns the output even when TShark exits non-zero
/// (it does after reading the good part of a damaged file).
pub fn tshark(args: &[&OsStr]) -> Run {
    static CHECKED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let ok = CHECKED.get_or_init(|| {
        match Command::new("tshark").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
            Ok(st) if st.success() => Ok(()),
            Ok(st) => Err(format!("`tshark --version` failed ({st}); the integration tests need a working tshark")),
            Err(e) => Err(format!(
                "tshark is required by the integration tests and could not be run ({e}); install the tshark package"
            )),
        }
    });
    if let Err(why) = ok {
        panic!("{why}");
    }
    let mut cmd = Command::new("tshark");
    cmd.args(args);
    run_cmd(cmd)
}

/// The options every comparison uses: no IP reassembly and no TCP desegmentation,
/// so every frame is dissected on its own, as zonewatch decodes it.
const NO_REASSEMBLY: [&str; 6] = [
    "-o",
    "ip.defragment:FALSE",
    "-o",
    "ipv6.defragment:FALSE",
    "-o",
    "tcp.desegment_tcp_streams:FALSE",
];

/// `tshark -n -r FILE <no reassembly> -T fields -e F1 -e F2 ..`: one Vec of
/// field values per frame.
///
/// Lenient, for captures zonewatch did not write: a non-zero exit is accepted
/// when TShark printed frames (it reads the good part of a damaged public
/// capture, then fails). Files zonewatch writes itself go through
/// [`tshark_fields_strict`].
pub fn tshark_fields(file: &Path, fields: &[&str], extra: &[&str]) -> Vec<Vec<String>> {
    let run = tshark_fields_run(file, fields, extra);
    if run.stdout.is_empty() && !run.status.success() {
        // Nothing read at all (e.g. a file TShark refuses): let the caller see zero frames,
        // but say why in case that was not expected.
        eprintln!(
            "note: {} exited {} with no output: {}",
            run.cmdline,
            run.status,
            run.stderr.trim()
        );
    }
    split_fields(&run.stdout, fields.len())
}

/// [`tshark_fields`] for a pcap zonewatch wrote (an evidence file): the file
/// must be whole (see [`pcap_frames`]: a header, then complete records to the
/// last byte, at least one of them) and TShark must read it and exit 0; any
/// of that failing is an `Err` naming why.
pub fn try_tshark_fields_strict(
    file: &Path,
    fields: &[&str],
    extra: &[&str],
) -> Result<Vec<Vec<String>>, String> {
    let frames = pcap_frames(file)?;
    if frames == 0 {
        return Err(format!("{}: holds no frame", file.display()));
    }
    let run = tshark_fields_run(file, fields, extra);
    if !run.status.success() {
        return Err(format!(
            "{} exited {}: {}",
            run.cmdline,
            run.status,
            run.stderr.trim()
        ));
    }
    Ok(split_fields(&run.stdout, fields.len()))
}

/// [`try_tshark_fields_strict`], failing the test on `Err`.
pub fn tshark_fields_strict(file: &Path, fields: &[&str], extra: &[&str]) -> Vec<Vec<String>> {
    try_tshark_fields_strict(file, fields, extra).unwrap_or_else(|e| panic!("{e}"))
}

/// `src` (a classic pcap) followed by its own records again, `gap_secs`
/// later, written to `out`. A paced replay of it has a long quiet gap in the
/// middle, so a test that interrupts it "during the capture" cannot be
/// outrun by the end of the file on a slow machine.
pub fn twice_with_gap(src: &Path, gap_secs: u32, out: &Path) {
    let b = std::fs::read(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let frames = pcap_frames(src).unwrap_or_else(|e| panic!("{e}"));
    assert!(frames > 0, "{}: empty", src.display());
    let le = matches!(
        b.get(..4),
        Some([0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1])
    );
    let get = |x: &[u8]| -> u32 {
        let a = [x[0], x[1], x[2], x[3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let put = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    let mut shifted = b.get(24..).unwrap_or_default().to_vec();
    let mut at = 0;
    while at + 16 <= shifted.len() {
        let secs = get(&shifted[at..at + 4]) + gap_secs;
        shifted[at..at + 4].copy_from_slice(&put(secs));
        at += 16 + get(&shifted[at + 8..at + 12]) as usize;
    }
    let mut all = b.clone();
    all.extend_from_slice(&shifted);
    std::fs::write(out, all).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}

/// Frames of a classic pcap (either byte order, micro or nano), checked to be
/// whole: a 24-byte header, then records whose 16-byte header and captured
/// bytes all fit, ending exactly at the end of the file. A file cut in the
/// middle of a record (torn) is an `Err` saying where.
pub fn pcap_frames(file: &Path) -> Result<u64, String> {
    let b = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let name = file.display();
    let magic = b
        .get(..4)
        .map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]))
        .ok_or_else(|| format!("{name}: {} bytes, shorter than a pcap header", b.len()))?;
    let le = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        m => return Err(format!("{name}: not a classic pcap (magic {m:#010x})")),
    };
    if b.len() < 24 {
        return Err(format!("{name}: torn file header ({} bytes)", b.len()));
    }
    let u32_at = |at: usize| -> u32 {
        let x = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if le {
            u32::from_le_bytes(x)
        } else {
            u32::from_be_bytes(x)
        }
    };
    let (mut at, mut frames) = (24usize, 0u64);
    while at < b.len() {
        if b.len() - at < 16 {
            return Err(format!(
                "{name}: torn record header at offset {at} ({} of 16 bytes)",
                b.len() - at
            ));
        }
        let caplen = u32_at(at + 8) as usize;
        let end = at + 16 + caplen;
        if end > b.len() {
            return Err(format!(
                "{name}: torn record at offset {at}: {caplen} bytes captured, {} in the file",
                b.len() - at - 16
            ));
        }
        at = end;
        frames += 1;
    }
    Ok(frames)
}

fn tshark_fields_run(file: &Path, fields: &[&str], extra: &[&str]) -> Run {
    let mut args: Vec<&OsStr> = vec![OsStr::new("-n"), OsStr::new("-r"), file.as_os_str()];
    args.extend(NO_REASSEMBLY.iter().map(OsStr::new));
    args.extend(extra.iter().map(OsStr::new));
    args.extend(
        [
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
        ]
        .map(OsStr::new),
    );
    for f in fields {
        args.push(OsStr::new("-e"));
        args.push(OsStr::new(f));
    }
    tshark(&args)
}

fn split_fields(stdout: &str, n: usize) -> Vec<Vec<String>> {
    stdout
        .lines()
        .map(|l| {
            let mut v: Vec<String> = l.split('\t').map(str::to_string).collect();
            v.resize(n, String::new());
            v
        })
        .collect()
}

/// Network layer of the analysed packet, as derived from a TShark chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    Ipv4,
    Ipv6,
    Arp,
}

/// Transport of the analysed packet, as derived from a TShark chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
}

/// What one frame's `frame.protocols` chain says about the analysed packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    pub net: Option<Net>,
    pub transport: Option<Transport>,
    /// At least one 802.1Q / 802.1ad tag anywhere in the frame.
    pub vlan: bool,
    /// Found inside a tunnel (GRE, ERSPAN, VXLAN, Geneve, IP-in-IP).
    pub tunneled: bool,
    /// 1-based position of the analysed IPv4 header among all `ip` layers of the
    /// frame (to pick its value out of multi-valued `ip.*` fields).
    pub ipv4_index: usize,
    /// 1-based position of the analysed IPv6 header's fragment header among all
    /// `ipv6.fraghdr` layers, 0 if it has none.
    pub fraghdr_index: usize,
}

/// Tunnel layers in TShark's naming. Everything after the last of them belongs
/// to the inner packet, which is the one zonewatch analyses.
pub const TUNNEL_TOKENS: [&str; 4] = ["gre", "erspan", "vxlan", "geneve"];

/// Derive the analysed (innermost) packet's layers from a `frame.protocols`
/// chain such as `eth:ethertype:vlan:ethertype:ip:gre:ip:icmp:ip:udp:data`.
///
/// Mapping rules (TShark protocol name -> zonewatch summary key):
/// - `ip` -> network `ipv4`; `ipv6` -> `ipv6`; `arp` -> `arp`. Each new IP layer
///   replaces the previous one and forgets any transport seen before it: a
///   second IP layer right after an IP layer is IP-in-IP (a tunnel), one after
///   `gre`/`erspan`/`vxlan`/`geneve` (+ `eth`) is the tunnelled packet.
/// - `ipv6.hopopts`, `ipv6.routing`, `ipv6.dstopts`, `ipv6.fraghdr`... are IPv6
///   extension headers of the current IPv6 layer, not new layers.
/// - `tcp` -> `tcp`, `udp` -> `udp`; a later tunnel token clears them again
///   (the UDP of VXLAN/Geneve is the outer packet's, not the analysed one's).
/// - `icmp` -> `icmp`, `icmpv6` -> `icmpv6`, and the chain stops there: the
///   `ip`/`ipv6`/`tcp`/`udp` that follow are the packet *quoted* inside an ICMP
///   error, which zonewatch reads as a quote, not as the analysed packet.
/// - Non-first fragments: with reassembly off TShark shows them as `ip:data`
///   (`ipv6:ipv6.fraghdr:data`), with no transport, so they drop out of the
///   transport counts exactly as zonewatch's contract says.
/// - `vlan` (802.1Q) and `ieee8021ad` (802.1ad S-tag) anywhere -> vlan-tagged frame.
/// - Anything else (`eth`, `ethertype`, `sll`, `raw`, application protocols,
///   `igmp`, `llc`, `stp`...) changes nothing.
pub fn classify(chain: &str) -> Chain {
    let mut c = Chain::default();
    let mut ip_count = 0usize;
    let mut frag_count = 0usize;
    // Previous significant token was an IP layer (for IP-in-IP detection).
    let mut after_ip = false;
    for tok in chain.split(':') {
        match tok {
            "ip" | "ipv6" => {
                if after_ip {
                    c.tunneled = true;
                }
                if tok == "ip" {
                    ip_count += 1;
                    c.net = Some(Net::Ipv4);
                    c.ipv4_index = ip_count;
                } else {
                    c.net = Some(Net::Ipv6);
                }
                c.fraghdr_index = 0;
                c.transport = None;
                after_ip = true;
                continue;
            }
            "ipv6.fraghdr" => {
                frag_count += 1;
                c.fraghdr_index = frag_count;
                continue; // still "after an IP layer": an extension header
            }
            t if t.starts_with("ipv6.") => continue,
            "arp" => {
                c.net = Some(Net::Arp);
                c.transport = None;
            }
            "tcp" => c.transport = Some(Transport::Tcp),
            "udp" => c.transport = Some(Transport::Udp),
            "icmp" | "icmpv6" => {
                c.transport = Some(if tok == "icmp" {
                    Transport::Icmp
                } else {
                    Transport::Icmpv6
                });
                break;
            }
            "vlan" | "ieee8021ad" => c.vlan = true,
            t if TUNNEL_TOKENS.contains(&t) => {
                c.tunneled = true;
                c.net = None;
                c.transport = None;
            }
            _ => {}
        }
        after_ip = false;
    }
    c
}

/// TShark's view of a capture, in zonewatch's summary terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts(pub BTreeMap<&'static str, i64>);

impl Counts {
    pub fn get(&self, k: &str) -> i64 {
        self.0.get(k).copied().unwrap_or(0)
    }
    fn add(&mut self, k: &'static str) {
        *self.0.entry(k).or_insert(0) += 1;
    }
}

/// Keys compared between TShark and zonewatch, as "section.key" of the summary
/// ("packets" and "vlan_tagged" are top-level).
pub const COMPARED: [&str; 12] = [
    "packets",
    "network.ipv4",
    "network.ipv6",
    "network.arp",
    "transport.tcp",
    "transport.udp",
    "transport.icmp",
    "transport.icmpv6",
    "vlan_tagged",
    "fragments.first",
    "fragments.non_first",
    "tunneled",
];

/// The same keys read from a zonewatch summary. `tunneled` is the sum of the
/// `tunnels` object (every kind except "none").
pub fn summary_counts(summary: &Value) -> Counts {
    let mut c = Counts::default();
    for key in COMPARED {
        let v = match key.split_once('.') {
            Some((section, k)) => count(summary, section, k),
            None if key == "tunneled" => match summary.get("tunnels") {
                Some(Value::Object(m)) => m
                    .iter()
                    .filter(|(k, _)| k.as_str() != "none")
                    .filter_map(|(_, v)| v.as_u64())
                    .sum(),
                other => panic!("summary tunnels is not an object: {other:?}"),
            },
            None => count(summary, "", key),
        };
        c.0.insert(key, v as i64);
    }
    c
}

/// Run TShark on a capture and count, per frame, the analysed packet's network
/// and transport layer (see [`classify`]), VLAN-tagged frames, tunnelled frames
/// and fragments of the analysed IP header (first = offset 0 with more-fragments
/// set, non-first = offset > 0; from `ip.frag_offset`/`ip.flags.mf` or
/// `ipv6.fraghdr.offset`/`ipv6.fraghdr.more` of the analysed header).
pub fn tshark_counts(file: &Path) -> Counts {
    let rows = tshark_fields(
        file,
        &[
            "frame.protocols",
            "ip.frag_offset",
            "ip.flags.mf",
            "ipv6.fraghdr.offset",
            "ipv6.fraghdr.more",
        ],
        &[],
    );
    let mut c = Counts::default();
    for key in COMPARED {
        c.0.insert(key, 0);
    }
    for row in &rows {
        let ch = classify(&row[0]);
        c.add("packets");
        match ch.net {
            Some(Net::Ipv4) => c.add("network.ipv4"),
            Some(Net::Ipv6) => c.add("network.ipv6"),
            Some(Net::Arp) => c.add("network.arp"),
            None => {}
        }
        match ch.transport {
            Some(Transport::Tcp) => c.add("transport.tcp"),
            Some(Transport::Udp) => c.add("transport.udp"),
            Some(Transport::Icmp) => c.add("transport.icmp"),
            Some(Transport::Icmpv6) => c.add("transport.icmpv6"),
            None => {}
        }
        if ch.vlan {
            c.add("vlan_tagged");
        }
        if ch.tunneled {
            c.add("tunneled");
        }
        let nth = |s: &str, i: usize| -> u64 {
            s.split(',')
                .nth(i.wrapping_sub(1))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let (offset, more) = match ch.net {
            Some(Net::Ipv4) => (nth(&row[1], ch.ipv4_index), nth(&row[2], ch.ipv4_index)),
            Some(Net::Ipv6) if ch.fraghdr_index > 0 => (
                nth(&row[3], ch.fraghdr_index),
                nth(&row[4], ch.fraghdr_index),
            ),
            _ => (0, 0),
        };
        if offset > 0 {
            c.add("fragments.non_first");
        } else if more == 1 {
            c.add("fragments.first");
        }
    }
    c
}

/// A per-file difference between zonewatch and TShark that is correct behaviour,
/// with the reason. `delta` = zonewatch's count minus TShark's.
#[derive(Clone, Copy, Debug)]
pub struct Exception {
    pub file: &'static str,
    pub key: &'static str,
    pub delta: i64,
    pub reason: &'static str,
}

/// Compare zonewatch's summary with TShark's counts for one file, applying the
/// file's exceptions. Returns one message per difference (empty = parity).
/// An exception that no longer applies is itself reported, so the list stays true.
pub fn compare(file: &str, tshark: &Counts, zw: &Counts, exceptions: &[Exception]) -> Vec<String> {
    let mut problems = Vec::new();
    for key in COMPARED {
        let excs: Vec<&Exception> = exceptions
            .iter()
            .filter(|e| e.file == file && e.key == key)
            .collect();
        let delta: i64 = excs.iter().map(|e| e.delta).sum();
        let want = tshark.get(key) + delta;
        let got = zw.get(key);
        if got != want {
            let why: Vec<&str> = excs.iter().map(|e| e.reason).collect();
            problems.push(format!(
                "{file}: {key}: zonewatch {got}, tshark {}{}",
                tshark.get(key),
                if excs.is_empty() {
                    String::new()
                } else {
                    format!(" (expected {want} after exception(s): {})", why.join("; "))
                }
            ));
        }
    }
    problems
}

/// Parse every flow line as a JSON object, failing with the offending line.
pub fn parse_flows(lines: &[String]) -> Vec<serde_json::Map<String, Value>> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => m,
            Ok(other) => panic!("flow line {} is not a JSON object: {other}", i + 1),
            Err(e) => panic!("flow line {} is not JSON ({e}): {l}", i + 1),
        })
        .collect()
}

/// Flow lines sorted, for comparisons across worker counts (worker order varies).
pub fn sorted(lines: &[String]) -> Vec<String> {
    let mut v = lines.to_vec();
    v.sort();
    v
}

/// Run `check` over `jobs` on a few threads (each check starts processes, so
/// files are checked in parallel) and return every problem found, sorted.
pub fn check_all<T: Sync>(jobs: &[T], check: impl Fn(&T) -> Vec<String> + Sync) -> Vec<String> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(4)
        .clamp(2, 6);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let problems = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let found = check(job);
                problems
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(found);
            });
        }
    });
    let mut problems = problems.into_inner().unwrap_or_else(|e| e.into_inner());
    problems.sort();
    problems
}

/// Copy the classic pcap `src` (Ethernet) to `out` with an 802.1Q tag `vlan`
/// inserted after each frame's MAC addresses, checking that TShark then reads
/// the tag and the original MACs. tcprewrite 4.4.3 `--enet-vlan=add` rewrites
/// the source MAC of IPv6 multicast frames (to 33:33:..), which would fake a
/// sensor's MAC tracking; this keeps every other byte as it was.
pub fn tag_vlan(src: &Path, vlan: u16, out: &Path) {
    let data = std::fs::read(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    assert!(data.len() >= 24, "{}: not a pcap file", src.display());
    let magic = [data[0], data[1], data[2], data[3]];
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!(
            "{}: not a classic pcap file (magic {magic:02x?})",
            src.display()
        ),
    };
    let rd = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let wr = |v: u32| if le { v.to_le_bytes() } else { v.to_be_bytes() };
    assert_eq!(
        rd(&data[20..24]),
        1,
        "{}: link type is not Ethernet",
        src.display()
    );
    let mut o = data[..24].to_vec();
    let mut at = 24;
    let mut frames = 0;
    while at + 16 <= data.len() {
        let incl = rd(&data[at + 8..at + 12]) as usize;
        let orig = rd(&data[at + 12..at + 16]);
        let body = &data[at + 16..at + 16 + incl];
        assert!(
            incl >= 14,
            "{}: frame {frames} shorter than Ethernet",
            src.display()
        );
        o.extend_from_slice(&data[at..at + 8]);
        o.extend_from_slice(&wr(incl as u32 + 4));
        o.extend_from_slice(&wr(orig + 4));
        o.extend_from_slice(&body[..12]);
        o.extend_from_slice(&[0x81, 0x00]);
        o.extend_from_slice(&(vlan & 0x0fff).to_be_bytes());
        o.extend_from_slice(&body[12..]);
        at += 16 + incl;
        frames += 1;
    }
    assert_eq!(at, data.len(), "{}: trailing bytes", src.display());
    std::fs::write(out, &o).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    let before = tshark_fields(src, &["eth.src", "eth.dst"], &[]);
    let after = tshark_fields(out, &["eth.src", "eth.dst", "vlan.id"], &[]);
    assert_eq!(after.len(), frames, "{}", out.display());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((&b[0], &b[1]), (&a[0], &a[1]), "MACs kept");
        assert_eq!(a[2], vlan.to_string());
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn classify_plain_and_quoted() {
        let c = classify("eth:ethertype:ip:icmp:ip:udp:data");
        assert_eq!(
            (c.net, c.transport, c.tunneled),
            (Some(Net::Ipv4), Some(Transport::Icmp), false)
        );
        assert_eq!(c.ipv4_index, 1);
        let c = classify("eth:ethertype:ipv6:ipv6.hopopts:icmpv6");
        assert_eq!(
            (c.net, c.transport),
            (Some(Net::Ipv6), Some(Transport::Icmpv6))
        );
        let c = classify("eth:ethertype:ip:data");
        assert_eq!((c.net, c.transport), (Some(Net::Ipv4), None));
        let c = classify("eth:ethertype:ipv6:ipv6.fraghdr:udp:dns");
        assert_eq!((c.transport, c.fraghdr_index), (Some(Transport::Udp), 1));
        let c = classify("eth:llc:stp");
        assert_eq!((c.net, c.transport), (None, None));
    }

    #[test]
    fn classify_tunnels_and_vlans() {
        let c = classify("eth:ethertype:ip:udp:vxlan:eth:ethertype:arp");
        assert_eq!(
            (c.net, c.transport, c.tunneled),
            (Some(Net::Arp), None, true)
        );
        let c = classify(
            "eth:ethertype:ip:gre:erspan:eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:tcp:http",
        );
        assert_eq!(
            (c.net, c.transport, c.ipv4_index),
            (Some(Net::Ipv4), Some(Transport::Tcp), 3)
        );
        let c = classify("eth:ethertype:ip:ipv6:tcp");
        assert_eq!(
            (c.net, c.transport, c.tunneled),
            (Some(Net::Ipv6), Some(Transport::Tcp), true)
        );
        let c = classify("eth:ethertype:ieee8021ad:ethertype:vlan:ethertype:arp");
        assert!(c.vlan);
        assert!(!classify("eth:ethertype:ip:tcp").vlan);
    }
}
