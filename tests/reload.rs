//! SIGHUP reloads `--rules` in `zonewatch run` (live capture on a veth between two
//! network namespaces, root only): new flows get the new verdicts, flows that
//! already exist keep theirs, a file that does not load keeps the running
//! rules, and a file that did not change (nor the inventory it names) is not
//! swapped in, so open alerts go on folding (logrotate's nightly SIGHUP). Traffic is real UDP from the sender namespace (192.0.2.10, zone "a") to
//! the capture namespace (198.51.100.10, zone "b").
//!
//! Alerts are checked without sleeping on guesses: at `--alert-window-secs 0` an
//! alert is written once every worker's packet clock has passed the flow's start,
//! in flow-start order, so once the alert of a later "sentinel" flow is in the
//! file, any alert of an earlier flow would be too.

use crate::live::{require_root, Netns, Veth};
use crate::util::{self, ChildGuard};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::live::{AB_DST as DST, AB_RULES as VIOLATING, AB_SRC as SRC};

/// Appended to [`VIOLATING`]: a→b UDP/9999 allowed by rule "reload-ok".
const ALLOW_9999: &str = r#"
[[allow]]
id = "reload-ok"
from = ["a"]
to = ["b"]
proto = "udp"
ports = [9999]
"#;

/// The same zones with a→b UDP/9999 allowed.
fn allowing() -> String {
    format!("{VIOLATING}{ALLOW_9999}")
}

/// The same zones with a→b violations critical instead of high: a changed
/// file that judges the same flows.
fn critical() -> String {
    let s = VIOLATING.replace(r#"default = "high""#, r#"default = "critical""#);
    assert_ne!(s, VIOLATING);
    s
}

/// Would allow a→b UDP/9999 but does not load: the CIDR of zone b is invalid
/// (line 7, column 10).
fn broken() -> String {
    allowing().replace("198.51.100.0/24", "198.51.100.0/33")
}
const BROKEN_AT: &str = "7:10";

/// Longest wait for any one expected event (alert, stderr line, exit): a
/// ceiling for a loaded machine, not an expected time.
const WAIT: Duration = util::WATCH_WAIT;

/// Two namespaces joined by a veth with unique interface names; zonewatch
/// captures on `cap_if` in `cap`, traffic comes from `snd`.
struct Link {
    cap: Netns,
    snd: Netns,
    cap_if: String,
}

impl Link {
    fn new() -> Link {
        let Veth {
            cap, snd, cap_if, ..
        } = Veth::between_blocks("zwr", DST, SRC);
        Link { cap, snd, cap_if }
    }

    /// One UDP flow: three datagrams from SRC:`sport` to DST:`dport` (a closed
    /// port; the kernel's ICMP port-unreachable replies join the flow).
    fn udp_flow(&self, sport: u16, dport: u16) {
        let script = format!(
            "import socket\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('{SRC}', {sport}))\n\
             for i in range(3):\n    s.sendto(b'zonewatch-reload-%d' % i, ('{DST}', {dport}))\n"
        );
        self.snd.run(&["python3", "-c", &script]);
    }
}

/// `zonewatch run` on the link's capture end with `--rules`, `--alerts`,
/// `--flows`, `--summary` in a temp dir; stderr is collected by a thread while
/// it runs. The child is killed if the test fails (ChildGuard's Drop).
struct Zw {
    guard: ChildGuard,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    dir: tempfile::TempDir,
    rules: PathBuf,
}

impl Zw {
    /// `--alert-window-secs 0`: every violating flow is its own alert.
    fn start(link: &Link, rules_text: &str) -> Zw {
        Zw::start_with_window(link, rules_text, "0")
    }

    fn start_with_window(link: &Link, rules_text: &str, window_secs: &str) -> Zw {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = dir.path().join("rules.toml");
        write(&rules, rules_text);
        let mut cmd = link.cap.cmd(util::BIN);
        cmd.args(["run", "-q", "-i", &link.cap_if])
            .args(["--alert-window-secs", window_secs])
            .args(["--metrics-listen", "none", "--rules"])
            .arg(&rules)
            .arg("--alerts")
            .arg(dir.path().join("alerts.jsonl"))
            .arg("--flows")
            .arg(dir.path().join("flows.jsonl"))
            .arg("--summary")
            .arg(dir.path().join("summary.json"));
        let mut guard = ChildGuard::spawn(cmd);
        let (stderr, reader) = util::tap_stderr(&mut guard);
        let zw = Zw {
            guard,
            stderr,
            reader: Some(reader),
            dir,
            rules,
        };
        zw.wait_ready();
        zw
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn alerts_path(&self) -> PathBuf {
        self.dir.path().join("alerts.jsonl")
    }

    /// Ready once the capture is open: zonewatch says "listening on" (as
    /// tcpdump does) after libpcap activated the interface, and the SIGHUP
    /// handler is installed before that.
    fn wait_ready(&self) {
        self.wait_stderr("zonewatch: listening on ");
        let status = format!("/proc/{}/status", self.guard.id());
        let text = std::fs::read_to_string(&status).expect("zonewatch status");
        let cgt = text
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .expect("SigCgt line");
        let mask = u64::from_str_radix(cgt.trim(), 16).expect("SigCgt mask");
        assert!(
            mask & 1 != 0,
            "SIGHUP handler installed before the capture opened"
        );
    }

    /// Poll `f` every 50 ms until it returns Some, for at most WAIT; fails with
    /// the alerts and stderr so far (also if zonewatch exited meanwhile).
    fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = f() {
                return v;
            }
            let exited = std::fs::metadata(format!("/proc/{}", self.guard.id())).is_err();
            assert!(
                Instant::now() < deadline && !exited,
                "waited {WAIT:?} for {what}{}; alerts:\n{}\nstderr:\n{}",
                if exited { " (zonewatch is gone)" } else { "" },
                std::fs::read_to_string(self.alerts_path()).unwrap_or_default(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until stderr contains `needle`; returns the whole stderr.
    fn wait_stderr(&self, needle: &str) -> String {
        self.wait_for(&format!("{needle:?} on stderr"), || {
            let s = self.stderr();
            s.contains(needle).then_some(s)
        })
    }

    /// Wait for the UDP alert of the flow from source port `sport`; returns
    /// every complete alert line written so far.
    fn wait_alert(&self, sport: u16) -> Vec<Value> {
        self.wait_for(&format!("the alert of the flow from port {sport}"), || {
            let alerts = read_alerts(&self.alerts_path());
            alerts
                .iter()
                .any(|a| is_udp_from(a, sport))
                .then_some(alerts)
        })
    }

    fn signal(&self, sig: &str) {
        util::send_signal(self.guard.id(), sig);
    }

    /// SIGTERM, wait for a clean exit, and read back the summary, the flow
    /// lines, stderr and the alert lines.
    fn finish(
        mut self,
    ) -> (
        Value,
        Vec<serde_json::Map<String, Value>>,
        String,
        Vec<Value>,
    ) {
        self.signal("TERM");
        let deadline = Instant::now() + WAIT;
        let status: ExitStatus = loop {
            let child = self.guard.child.as_mut().expect("child running");
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => panic!(
                    "zonewatch did not exit within {WAIT:?} of SIGTERM; stderr:\n{}",
                    self.stderr()
                ),
                Err(e) => panic!("waiting for zonewatch: {e}"),
            }
        };
        self.guard.child = None;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let stderr = self.stderr();
        assert!(
            !stderr.contains("panicked"),
            "zonewatch panicked:\n{stderr}"
        );
        assert_eq!(
            status.code(),
            Some(0),
            "zonewatch exited with {status}; stderr:\n{stderr}"
        );
        let path = self.dir.path().join("summary.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("no summary at {} ({e}); stderr:\n{stderr}", path.display())
        });
        let summary: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("summary is not JSON ({e}):\n{text}"));
        let raw = std::fs::read_to_string(self.dir.path().join("flows.jsonl")).unwrap_or_default();
        let lines: Vec<String> = raw.lines().map(str::to_string).collect();
        let alerts = read_alerts(&self.alerts_path());
        (summary, util::parse_flows(&lines), stderr, alerts)
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Complete alert lines (a line still being written is left for the next poll).
fn read_alerts(path: &Path) -> Vec<Value> {
    let raw = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match raw.rfind('\n') {
        Some(i) => raw.get(..i).unwrap_or_default(),
        None => "",
    };
    complete
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("alert line is not JSON ({e}): {l}"))
        })
        .collect()
}

fn is_udp_from(v: &Value, sport: u16) -> bool {
    v["proto"] == "udp" && v["src_ip"] == SRC && v["src_port"] == sport
}

/// The one flow line of the UDP flow from source port `sport`.
fn flow_from(
    flows: &[serde_json::Map<String, Value>],
    sport: u16,
) -> &serde_json::Map<String, Value> {
    let mine: Vec<_> = flows
        .iter()
        .filter(|f| f["proto"] == "udp" && f["src_ip"] == SRC && f["src_port"] == sport)
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "expected one flow line from {SRC}:{sport}, got {mine:?}"
    );
    mine[0]
}

fn assert_violation(alert: &Value, dport: u16) {
    assert_eq!(alert["kind"], "separation_violation", "{alert}");
    assert_eq!(alert["dest_ip"], DST, "{alert}");
    assert_eq!(alert["dest_port"], dport, "{alert}");
    assert_eq!(alert["src_zone"], "a", "{alert}");
    assert_eq!(alert["dest_zone"], "b", "{alert}");
    assert_eq!(alert["severity"], "high", "{alert}");
}

#[test]
fn reload_swaps_rules_for_new_flows() {
    require_root();
    let link = Link::new();
    let zw = Zw::start(&link, VIOLATING);

    // Flow 1 under the first rules: a violation, alerted.
    link.udp_flow(40001, 9999);
    let alerts = zw.wait_alert(40001);
    let first = alerts
        .iter()
        .find(|a| is_udp_from(a, 40001))
        .expect("found");
    assert_violation(first, 9999);

    // Allow a→b udp/9999 and reload.
    write(&zw.rules, &allowing());
    zw.signal("HUP");
    let stderr = zw.wait_stderr(&format!(
        "zonewatch: SIGHUP: rules reloaded from {}",
        zw.rules.display()
    ));
    assert!(
        !stderr.contains("error"),
        "reload printed errors:\n{stderr}"
    );

    // Flow 2 is now allowed; flow 3 (udp/9998, no rule) still violates and is
    // the sentinel: once its alert is out, flow 2's would be too.
    link.udp_flow(40002, 9999);
    link.udp_flow(40003, 9998);
    let alerts = zw.wait_alert(40003);
    let sentinel = alerts
        .iter()
        .find(|a| is_udp_from(a, 40003))
        .expect("found");
    assert_violation(sentinel, 9998);
    assert!(
        !alerts.iter().any(|a| is_udp_from(a, 40002)),
        "the flow allowed by the reloaded rules was alerted: {alerts:#?}"
    );
    let to_9999: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["proto"] == "udp" && a["dest_port"] == 9999)
        .collect();
    assert_eq!(
        to_9999.len(),
        1,
        "only flow 1 alerts on udp/9999: {to_9999:#?}"
    );

    let (summary, flows, stderr, _) = zw.finish();
    let policy = &summary["policy"];
    assert_eq!(policy["reloads"], 1, "{summary:#}\nstderr:\n{stderr}");
    assert_eq!(policy["reload_failures"], 0, "{summary:#}");

    // Flow 1 keeps the verdict it was created with; flow 2 has the new rule's.
    let f1 = flow_from(&flows, 40001);
    assert_eq!(f1["verdict"], "violation", "{f1:?}");
    assert_eq!(f1["rule"], Value::Null, "{f1:?}");
    assert_eq!(f1["severity"], "high", "{f1:?}");
    let f2 = flow_from(&flows, 40002);
    assert_eq!(f2["verdict"], "allowed", "{f2:?}");
    assert_eq!(f2["rule"], "reload-ok", "{f2:?}");
    assert_eq!(f2["severity"], Value::Null, "{f2:?}");
    assert_eq!(f2["orig_pkts"], 3, "{f2:?}");
    let f3 = flow_from(&flows, 40003);
    assert_eq!(f3["verdict"], "violation", "{f3:?}");
}

#[test]
fn broken_reload_keeps_the_running_rules() {
    require_root();
    let link = Link::new();
    let zw = Zw::start(&link, VIOLATING);

    // The broken file would allow udp/9999 if it loaded.
    write(&zw.rules, &broken());
    zw.signal("HUP");
    let stderr = zw.wait_stderr("keeping the running rules");
    let at = format!("{}:{BROKEN_AT}: error:", zw.rules.display());
    assert!(
        stderr.contains(&at),
        "no {at:?} diagnostic on stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "zonewatch: SIGHUP: {} does not load; keeping the running rules",
            zw.rules.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("rules reloaded"), "{stderr}");

    // The running rules (no allow rule) still judge new flows.
    link.udp_flow(40011, 9999);
    let alerts = zw.wait_alert(40011);
    let a = alerts
        .iter()
        .find(|a| is_udp_from(a, 40011))
        .expect("found");
    assert_violation(a, 9999);

    // The file put back as it was: the rules in force come from these bytes,
    // so nothing is reloaded.
    write(&zw.rules, VIOLATING);
    zw.signal("HUP");
    zw.wait_stderr(&format!(
        "zonewatch: SIGHUP: rules unchanged ({}); outputs reopened, the running rules stay in force\n",
        zw.rules.display()
    ));

    let (summary, flows, stderr, _) = zw.finish();
    let policy = &summary["policy"];
    assert_eq!(
        policy["reload_failures"], 1,
        "{summary:#}\nstderr:\n{stderr}"
    );
    assert_eq!(policy["reloads"], 0, "{summary:#}");
    let f = flow_from(&flows, 40011);
    assert_eq!(f["verdict"], "violation", "{f:?}");
    assert_eq!(f["rule"], Value::Null, "{f:?}");
}

/// logrotate sends SIGHUP every night. With the rules file unchanged (the
/// same bytes, even rewritten) the running rules stay in force: no policy
/// swap, so a violation repeated after the signal folds into the alert that is
/// already open, whose `update` line carries the same `id` and both flows,
/// instead of a second alert. A changed file still reloads (and its
/// violations start new alerts).
#[test]
fn sighup_with_unchanged_rules_keeps_open_alerts_and_a_changed_file_still_reloads() {
    require_root();
    let link = Link::new();
    // A fold window far longer than the test: every repeat below starts in
    // the first flow's window.
    let zw = Zw::start_with_window(&link, VIOLATING, "600");

    link.udp_flow(40021, 9999);
    let alerts = zw.wait_alert(40021);
    let first = alerts
        .iter()
        .find(|a| is_udp_from(a, 40021))
        .expect("found")
        .clone();
    assert_violation(&first, 9999);
    assert_eq!(
        (&first["update"], &first["count"]),
        (&Value::from(0), &Value::from(1)),
        "{first}"
    );

    // logrotate's postrotate: the file is untouched (here even rewritten with
    // the same bytes, so its mtime changed), then SIGHUP.
    write(&zw.rules, VIOLATING);
    zw.signal("HUP");
    zw.wait_stderr("zonewatch: SIGHUP: rules ");

    // The repeat: same initiator, responder, protocol, port and rule. Then a
    // sentinel to another port, a new alert: once its line is out, the
    // repeat (which started before it) has been folded or alerted.
    link.udp_flow(40022, 9999);
    link.udp_flow(40023, 9998);
    let alerts = zw.wait_alert(40023);
    assert!(
        !alerts.iter().any(|a| is_udp_from(a, 40022)),
        "the repeat after a SIGHUP with unchanged rules started a new alert instead of \
         folding into {}: {alerts:#?}\nstderr:\n{}",
        first["id"],
        zw.stderr()
    );
    let stderr = zw.stderr();
    assert!(
        stderr.contains(&format!(
            "zonewatch: SIGHUP: rules unchanged ({})",
            zw.rules.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("rules reloaded"), "{stderr}");

    // A changed file reloads: the same flow is now critical, a new alert.
    write(&zw.rules, &critical());
    zw.signal("HUP");
    let stderr = zw.wait_stderr(&format!(
        "zonewatch: SIGHUP: rules reloaded from {} (reload 1)",
        zw.rules.display()
    ));
    assert!(
        !stderr.contains("error"),
        "reload printed errors:\n{stderr}"
    );
    link.udp_flow(40024, 9999);
    let alerts = zw.wait_alert(40024);
    let changed = alerts
        .iter()
        .find(|a| is_udp_from(a, 40024))
        .expect("found");
    assert_eq!(changed["severity"], "critical", "{changed}");
    assert_eq!(changed["update"], 0, "{changed}");
    assert_ne!(changed["id"], first["id"], "{changed}");

    let (summary, _, stderr, alerts) = zw.finish();
    let policy = &summary["policy"];
    assert_eq!(policy["reloads"], 1, "{summary:#}\nstderr:\n{stderr}");
    assert_eq!(policy["reload_failures"], 0, "{summary:#}");
    // The first alert's lines: its first (count 1) and, at the stop, its
    // update with the same id and both flows.
    let same: Vec<&Value> = alerts.iter().filter(|a| a["id"] == first["id"]).collect();
    assert_eq!(same.len(), 2, "{alerts:#?}");
    assert_eq!(*same[0], first);
    assert_eq!(
        (&same[1]["update"], &same[1]["count"], &same[1]["src_port"]),
        (&Value::from(1), &Value::from(2), &Value::from(40021)),
        "{alerts:#?}"
    );
    let to_9999: Vec<&Value> = alerts
        .iter()
        .filter(|a| a["proto"] == "udp" && a["dest_port"] == 9999 && a["update"] == 0)
        .collect();
    assert_eq!(
        to_9999.len(),
        2,
        "udp/9999: the first alert and the one after the changed rules: {alerts:#?}"
    );
}

/// The rules also depend on a file they name: the host inventory of
/// `[detect.hosts]`. The rules file unchanged but the inventory changed is a
/// change (reloaded); both unchanged is not.
#[test]
fn sighup_reloads_when_only_the_inventory_changed() {
    require_root();
    let link = Link::new();
    let inv_dir = tempfile::tempdir().expect("tempdir");
    let inventory = inv_dir.path().join("inventory.csv");
    write(&inventory, "ip,mac,name\n198.51.100.10,,capture end\n");
    let rules = format!(
        "{VIOLATING}\n[detect.hosts]\ninventory = {:?}\nprotected_zones = [\"b\"]\n",
        inventory.to_str().expect("utf-8 path")
    );
    let zw = Zw::start(&link, &rules);

    zw.signal("HUP");
    zw.wait_stderr(&format!(
        "zonewatch: SIGHUP: rules unchanged ({}); outputs reopened, the running rules stay in force\n",
        zw.rules.display()
    ));
    // Same bytes in the rules file, another host in the inventory.
    write(
        &inventory,
        "ip,mac,name\n198.51.100.10,,capture end\n198.51.100.11,,printer\n",
    );
    zw.signal("HUP");
    zw.wait_stderr(&format!(
        "zonewatch: SIGHUP: rules reloaded from {} (reload 1)",
        zw.rules.display()
    ));
    zw.signal("HUP");
    zw.wait_for("a second \"rules unchanged\"", || {
        (zw.stderr().matches("rules unchanged").count() == 2).then_some(())
    });

    let (summary, _, stderr, _) = zw.finish();
    assert_eq!(
        summary["policy"]["reloads"], 1,
        "{summary:#}\nstderr:\n{stderr}"
    );
    assert_eq!(summary["policy"]["reload_failures"], 0, "{summary:#}");
}
