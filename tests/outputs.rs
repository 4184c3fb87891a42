//! Outputs a security team can trust (issue 12, points 5 and 6), on a live
//! veth between two network namespaces (root only; fails, never skips,
//! without it), with real TCP and UDP from the kernel:
//!
//! - `run` appends: a crash (SIGKILL, as `Restart=on-failure` sees it) and a
//!   restart keep the first run's lines; `replay` replaces its files.
//! - Flow lines reach the disk while the sensor runs (flushed at least once a
//!   second; before, they waited in a 64 KiB buffer until the end).
//! - SIGHUP reopens every output at its path (logrotate `create`), and after
//!   logrotate `copytruncate` the file starts with a line, not NUL bytes.
//! - A second SIGTERM a few ms after the first still writes what is computed
//!   (lines, alerts, summary), says on stderr what is not, and exits 130.
//! - A metrics port that is taken stops `run` with exit 2 naming the port and
//!   the flag, unless metrics are turned off (`--metrics-listen none`).
//!
//! Every wait is for an event (a line in a file, a line on stderr, an exit)
//! with a generous ceiling ([`util::WATCH_WAIT`]).

use crate::live::{require_root, Netns, Veth};
use crate::util::{self, Watched, WATCH_WAIT};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::live::{AB_DST as DST, AB_RULES as RULES, AB_SRC as SRC};

/// A veth between two fresh namespaces: zonewatch captures on `cap_if` in
/// `cap` (which holds DST), traffic comes from `snd` (SRC).
struct Link {
    cap: Netns,
    snd: Netns,
    cap_if: String,
}

impl Link {
    fn new() -> Link {
        let Veth {
            cap, snd, cap_if, ..
        } = Veth::between_blocks("zwo", DST, SRC);
        Link { cap, snd, cap_if }
    }

    /// A refused TCP connection from SRC:`sport` to DST:9 (SYN, then the
    /// kernel's RST): an a→b violation (alerted at once with
    /// `--alert-window-secs 0`) whose flow ends on its own, 5 s of linger
    /// after the RST.
    fn refused(&self, sport: u16) {
        let script = format!(
            "import socket\n\
             s = socket.socket()\n\
             s.bind(('{SRC}', {sport}))\n\
             s.settimeout(5)\n\
             r = s.connect_ex(('{DST}', 9))\n\
             assert r != 0, r\n"
        );
        self.snd.run(&["python3", "-c", &script]);
    }
}

/// The outputs of one sensor, in their own directory.
struct Files {
    dir: tempfile::TempDir,
    alerts: PathBuf,
    flows: PathBuf,
    summary: PathBuf,
    rules: PathBuf,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = dir.path().join("rules.toml");
        std::fs::write(&rules, RULES).expect("write rules");
        Files {
            alerts: dir.path().join("alerts.jsonl"),
            flows: dir.path().join("flows.jsonl"),
            summary: dir.path().join("summary.json"),
            rules,
            dir,
        }
    }

    fn rotated(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// `zonewatch run` on the link with the rules and the three outputs, alerts
/// written as each violating flow starts; returns once it is listening.
fn start(link: &Link, f: &Files) -> Watched {
    let mut cmd = link.cap.cmd(util::BIN);
    cmd.args(["run", "-q", "-i", &link.cap_if, "--alert-window-secs", "0"])
        .args(["--metrics-listen", "none", "--rules"])
        .arg(&f.rules)
        .arg("--alerts")
        .arg(&f.alerts)
        .arg("--flows")
        .arg(&f.flows)
        .arg("--summary")
        .arg(&f.summary);
    let mut w = Watched::spawn(cmd);
    w.wait_stderr(&format!("listening on {}", link.cap_if));
    w
}

fn tcp_from(v: &Map<String, Value>, sport: u16) -> bool {
    v.get("proto").and_then(Value::as_str) == Some("tcp")
        && v.get("src_ip").and_then(Value::as_str) == Some(SRC)
        && v.get("src_port").and_then(Value::as_u64) == Some(u64::from(sport))
}

fn holds(path: &Path, sport: u16) -> bool {
    util::json_lines_so_far(path)
        .iter()
        .any(|v| tcp_from(v, sport))
}

/// Wait until both the alert line and the flow line of the refused
/// connection from `sport` are on disk in `alerts` and `flows`.
fn wait_both(w: &mut Watched, alerts: &Path, flows: &Path, sport: u16) {
    w.wait_for(
        &format!(
            "the alert and the flow line of port {sport} in {} and {}",
            alerts.display(),
            flows.display()
        ),
        || (holds(alerts, sport) && holds(flows, sport)).then_some(()),
    );
}

/// Source ports of the test connections in a finished file, in file order.
fn ports(path: &Path) -> Vec<u64> {
    util::complete_json_lines(path)
        .iter()
        .filter(|v| v.get("src_ip").and_then(Value::as_str) == Some(SRC))
        .filter(|v| v.get("proto").and_then(Value::as_str) == Some("tcp"))
        .filter_map(|v| v.get("src_port").and_then(Value::as_u64))
        .collect()
}

/// SIGTERM and a clean exit (0).
fn stop(w: Watched) -> String {
    util::send_signal(w.pid(), "TERM");
    let (status, stderr) = w.finish(WATCH_WAIT);
    assert_eq!(status.code(), Some(0), "exit {status}; stderr:\n{stderr}");
    stderr
}

/// `run` appends: a crash (SIGKILL) and a restart on the same files keep the
/// first run's alert before the second's.
#[test]
fn run_appends_after_a_crash_and_a_restart() {
    require_root();
    let link = Link::new();
    let f = Files::new();
    let mut w = start(&link, &f);
    link.refused(44001);
    w.wait_for("the alert of port 44001", || {
        holds(&f.alerts, 44001).then_some(())
    });
    w.kill_hard();

    // Run 2, as systemd's Restart=on-failure starts it: same files.
    let mut w = start(&link, &f);
    link.refused(44002);
    w.wait_for("the alert of port 44002", || {
        holds(&f.alerts, 44002).then_some(())
    });
    stop(w);

    assert_eq!(ports(&f.alerts), [44001, 44002], "alerts of both runs");
    assert_eq!(ports(&f.flows).last(), Some(&44002), "flow lines appended");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&f.summary).expect("summary"))
            .expect("the summary is one JSON document (replaced, not appended)");
    assert_eq!(summary["stopped_by"], "signal", "{summary:#}");
}

/// A flow line reaches the disk while the sensor runs: the refused
/// connection's flow ends 5 s after its RST, and its line is flushed within
/// about a second (before, it waited in a 64 KiB buffer until the end).
/// Then a crash loses nothing that was on disk.
#[test]
fn flow_lines_reach_the_disk_while_the_sensor_runs() {
    require_root();
    let link = Link::new();
    let f = Files::new();
    let mut w = start(&link, &f);
    link.refused(44101);
    wait_both(&mut w, &f.alerts, &f.flows, 44101);
    w.kill_hard();
    assert_eq!(ports(&f.flows), [44101]);
    assert_eq!(ports(&f.alerts), [44101]);
}

/// A replay is a reproducible investigation: the same replay twice leaves
/// the same files, not two copies of the lines.
#[test]
fn replay_replaces_its_outputs() {
    let f = Files::new();
    let capture = util::bundled("zones.pcap");
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/example-site.toml");
    let once = || {
        let mut c = Command::new(util::BIN);
        c.args(["replay", "-q", "--rules", rules, "--alerts"])
            .arg(&f.alerts)
            .arg("--flows")
            .arg(&f.flows)
            .arg(&capture);
        util::run_cmd(c).assert_ok();
        // (Flow lines of two workers interleave differently per run.)
        let lines = |p: &Path| {
            let text = std::fs::read_to_string(p).expect("read");
            util::sorted(&text.lines().map(str::to_string).collect::<Vec<_>>())
        };
        (lines(&f.alerts), lines(&f.flows))
    };
    let first = once();
    assert!(!first.0.is_empty() && !first.1.is_empty());
    assert!(once() == first, "a second replay changed the files");
}

#[test]
fn sighup_reopens_every_output_for_logrotate_and_copytruncate_leaves_no_nul() {
    require_root();
    let link = Link::new();
    let f = Files::new();
    let mut w = start(&link, &f);
    link.refused(45001);
    wait_both(&mut w, &f.alerts, &f.flows, 45001);

    // logrotate `create`: rename, then the signal (postrotate).
    let (alerts1, flows1) = (f.rotated("alerts.jsonl.1"), f.rotated("flows.jsonl.1"));
    std::fs::rename(&f.alerts, &alerts1).expect("rename alerts");
    std::fs::rename(&f.flows, &flows1).expect("rename flows");
    util::send_signal(w.pid(), "HUP");
    w.wait_stderr("zonewatch: SIGHUP: reopened ");
    // The same signal rereads the rules (documented: SIGHUP does both); the
    // file did not change, so the running rules stay (open alerts continue).
    w.wait_stderr("; outputs reopened, the running rules stay in force\n");
    let stderr = w.stderr();
    assert!(
        stderr.contains("zonewatch: SIGHUP: rules unchanged ("),
        "{stderr}"
    );
    assert!(!stderr.contains("rules reloaded"), "{stderr}");
    link.refused(45002);
    // New files at the original paths get the new lines.
    wait_both(&mut w, &f.alerts, &f.flows, 45002);

    // logrotate `copytruncate`: copy, then empty the file in place while
    // zonewatch keeps it open.
    for p in [&f.alerts, &f.flows] {
        std::fs::copy(p, p.with_extension("jsonl.2")).expect("copy");
        std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .and_then(|h| h.set_len(0))
            .expect("truncate");
    }
    link.refused(45003);
    wait_both(&mut w, &f.alerts, &f.flows, 45003);
    stop(w);

    assert_eq!(ports(&alerts1), [45001], "the renamed alert file");
    assert_eq!(ports(&flows1), [45001], "the renamed flow file");
    assert_eq!(ports(&f.alerts.with_extension("jsonl.2")), [45002]);
    assert_eq!(ports(&f.flows.with_extension("jsonl.2")), [45002]);
    for p in [&f.alerts, &f.flows] {
        // complete_json_lines fails on any NUL byte; the first byte is a line's.
        let raw = std::fs::read(p).expect("read");
        assert_eq!(raw.first(), Some(&b'{'), "{}: {raw:?}", p.display());
        assert_eq!(ports(p), [45003], "{}", p.display());
    }
}

#[test]
fn a_second_signal_writes_what_is_computed_and_says_what_was_not() {
    require_root();
    let link = Link::new();
    let f = Files::new();
    let mut w = start(&link, &f);
    link.refused(46001);
    // Computed before the signals: this alert (the flow itself may still be
    // open, in its linger after the RST).
    w.wait_for("the alert of port 46001", || {
        holds(&f.alerts, 46001).then_some(())
    });
    // Thirty thousand open UDP flows (one datagram to each of as many ports):
    // a stop has a table to flush, so the second signal finds zonewatch
    // still stopping.
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('{SRC}', 46002))\n\
         for p in range(20000, 50000):\n    s.sendto(b'x', ('{DST}', p))\n"
    );
    link.snd.run(&["python3", "-c", &script]);

    let pid = w.pid();
    util::send_signal(pid, "TERM");
    std::thread::sleep(std::time::Duration::from_millis(5));
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.split(") ").nth(1).is_some_and(|s| !s.starts_with('Z')),
        "zonewatch had already exited 5 ms after the first SIGTERM ({state}): the test needs it still stopping"
    );
    util::send_signal(pid, "TERM");
    let (status, stderr) = w.finish(WATCH_WAIT);
    assert_eq!(status.code(), Some(130), "stderr:\n{stderr}");
    assert!(
        stderr.contains("second signal") && stderr.contains("not written: "),
        "stderr does not say what was not written:\n{stderr}"
    );
    // What was computed before the second signal is there, in whole lines.
    assert_eq!(ports(&f.alerts).first(), Some(&46001), "{stderr}");
    util::complete_json_lines(&f.flows);
    let text = std::fs::read_to_string(&f.summary).expect("summary");
    let summary: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("summary not written whole ({e}):\n{text}\n{stderr}"));
    assert_eq!(summary["stopped_by"], "signal", "{summary:#}");
    eprintln!(
        "{}",
        stderr
            .lines()
            .find(|l| l.contains("not written"))
            .unwrap_or_default()
    );
}

#[test]
fn run_refuses_a_taken_metrics_port_unless_metrics_are_off() {
    require_root();
    let v = Veth::new("zwm");
    let run = |extra: &[&str]| {
        let mut c = v.cap.cmd(util::BIN);
        c.args(["run", "-q", "-i", &v.cap_if]).args(extra);
        c
    };
    // The first sensor holds the default port (in this namespace).
    let mut first = Watched::spawn(run(&[]));
    first.wait_stderr("zonewatch: metrics on http://127.0.0.1:9464/metrics");

    for extra in [&[][..], &["--metrics-listen", "127.0.0.1:9464"][..]] {
        // (Bounded: the old behaviour ran on without metrics until this.)
        let mut args = vec!["--duration-secs", "20"];
        args.extend(extra);
        let r = util::run_cmd(run(&args));
        r.assert_no_panic();
        assert_eq!(r.code(), 2, "{extra:?}: {}", r.stderr);
        for needle in ["127.0.0.1:9464", "port 9464", "--metrics-listen", "none"] {
            assert!(
                r.stderr.contains(needle),
                "{extra:?}: no {needle:?} in {}",
                r.stderr
            );
        }
        assert!(!r.stderr.contains("listening on"), "{}", r.stderr);
    }

    // Metrics turned off explicitly: runs.
    for off in ["none", "off"] {
        let mut second = Watched::spawn(run(&["--metrics-listen", off]));
        second.wait_stderr(&format!("listening on {}", v.cap_if));
        let stderr = stop(second);
        assert!(!stderr.contains("metrics on"), "{stderr}");
    }
    stop(first);
}

/// `dist/logrotate.d/zonewatch`, run by the real logrotate (`-f`: rotate
/// now) against a running sensor, changed only where a test must: its paths
/// point at the test's files, the new files' owner is root, and postrotate
/// signals this sensor rather than the systemd unit. The rotated files keep
/// the lines before, the new ones (created 0640) get the lines after.
#[test]
fn the_shipped_logrotate_config_rotates_a_running_sensor() {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    let link = Link::new();
    let f = Files::new();
    let mut w = start(&link, &f);
    link.refused(47001);
    wait_both(&mut w, &f.alerts, &f.flows, 47001);

    let shipped_path = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/logrotate.d/zonewatch");
    let shipped = std::fs::read_to_string(shipped_path).expect("dist/logrotate.d/zonewatch");
    let dir = f.dir.path().to_str().expect("utf-8 temp dir");
    let mut conf = shipped.clone();
    for (from, to) in [
        ("/var/log/zonewatch", dir.to_string()),
        (
            "create 0640 zonewatch zonewatch",
            "create 0640 root root".into(),
        ),
        (
            "systemctl reload zonewatch.service",
            format!("kill -HUP {}", w.pid()),
        ),
    ] {
        assert!(
            shipped.contains(from),
            "{shipped_path} no longer has {from:?}"
        );
        conf = conf.replace(from, &to);
    }
    let conf_path = f.rotated("logrotate.conf");
    std::fs::write(&conf_path, conf).expect("write config");
    let mut c = Command::new("logrotate");
    c.arg("-f")
        .arg("-s")
        .arg(f.rotated("logrotate.state"))
        .arg(&conf_path);
    let r = util::run_cmd(c);
    assert_eq!(r.code(), 0, "{}: {}{}", r.cmdline, r.stdout, r.stderr);
    w.wait_stderr("zonewatch: SIGHUP: reopened ");
    link.refused(47002);
    wait_both(&mut w, &f.alerts, &f.flows, 47002);
    stop(w);

    for (live, name) in [(&f.alerts, "alerts.jsonl-"), (&f.flows, "flows.jsonl-")] {
        let rotated: Vec<PathBuf> = std::fs::read_dir(f.dir.path())
            .expect("list")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(name))
            })
            .collect();
        assert_eq!(rotated.len(), 1, "{name}*: {rotated:?}");
        assert_eq!(ports(&rotated[0]), [47001], "{}", rotated[0].display());
        assert_eq!(ports(live), [47002], "{}", live.display());
        let mode = std::fs::metadata(live).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{}", live.display());
    }
}
