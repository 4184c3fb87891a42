//! Least privilege (root only; fails, never skips, without it).
//!
//! - `run --user nobody`: every thread of the running sensor has nobody's uid
//!   and gid as real, effective, saved and filesystem ids, only nobody's group,
//!   and no capability; packets sent after the drop are still captured; the
//!   output files are 0640.
//! - `--user` with an unknown user, or without root: exit 2, a clear message.
//! - What `dist/zonewatch.service` relies on: an unprivileged user holding only
//!   the ambient CAP_NET_RAW and CAP_NET_ADMIN (no_new_privs set) captures.
//! - `systemd-analyze verify` accepts `dist/zonewatch.service`.

use crate::live::{require_root, Netns, Veth};
use crate::util::Watched;
use crate::util::{self, ChildGuard};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

/// `id -u NAME` / `id -g NAME`.
fn id_of(flag: &str, user: &str) -> u32 {
    let mut c = Command::new("id");
    c.args([flag, user]);
    let r = util::run_cmd(c);
    assert_eq!(r.code(), 0, "{}: {}", r.cmdline, r.stderr);
    r.stdout
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}: {}", r.cmdline, r.stdout))
}

/// A veth pair between two fresh namespaces: capture side 192.0.2.1, sender
/// 192.0.2.2.
fn veth() -> Veth {
    let v = Veth::new("zwp");
    v.cap
        .run(&["ip", "addr", "add", "192.0.2.1/24", "dev", &v.cap_if]);
    v.snd
        .run(&["ip", "addr", "add", "192.0.2.2/24", "dev", &v.snd_if]);
    v
}

/// 5 echo requests from the sender: 10 packets on the capture side.
fn ping(snd: &Netns) {
    snd.run(&[
        "ping",
        "-n",
        "-q",
        "-c",
        "5",
        "-i",
        "0.2",
        "-W",
        "1",
        "192.0.2.1",
    ]);
}

/// `Key:\tv1\tv2...` of a /proc status file, as numbers (hex for Cap*).
fn status_field(status: &str, key: &str) -> Vec<u64> {
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in:\n{status}"));
    let radix = if key.starts_with("Cap") { 16 } else { 10 };
    line.split_whitespace()
        .skip(1)
        .map(|v| u64::from_str_radix(v, radix).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

#[test]
fn run_user_nobody_drops_root_in_every_thread_and_still_captures() {
    require_root();
    let (uid, gid) = (
        u64::from(id_of("-u", "nobody")),
        u64::from(id_of("-g", "nobody")),
    );
    assert_ne!(uid, 0, "nobody is root on this machine?");
    let Veth {
        cap, snd, cap_if, ..
    } = veth();
    let dir = tempfile::tempdir().expect("tempdir");
    let (alerts, flows, summary) = (
        dir.path().join("alerts.jsonl"),
        dir.path().join("flows.jsonl"),
        dir.path().join("summary.json"),
    );
    // Evidence files are created after the drop: the account owns their directory.
    let evidence = dir.path().join("ev");
    // umask 022 so the mode seen is the one zonewatch asks for (0640).
    let mut zw = cap.cmd("sh");
    zw.args(["-c", "umask 022; exec \"$@\"", "sh", util::BIN])
        .args(["run", "-i", &cap_if, "-q", "-w", "2", "--user", "nobody"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .arg("--alerts")
        .arg(&alerts)
        .arg("--flows")
        .arg(&flows)
        .arg("--summary")
        .arg(&summary)
        .arg("--evidence")
        .arg(&evidence);
    let mut w = Watched::spawn(zw);
    w.wait_stderr("dropped root: now user nobody");

    // Every thread (capture, workers, writer, metrics server, ...) as nobody.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", w.pid())).expect("/proc/PID/task");
    let mut threads = 0;
    for t in tasks {
        let path = t.expect("task entry").path().join("status");
        let Ok(status) = std::fs::read_to_string(&path) else {
            continue; // a thread that just ended
        };
        let name = status.lines().next().unwrap_or_default().to_string();
        threads += 1;
        assert_eq!(
            status_field(&status, "Uid"),
            [uid; 4],
            "{name}: Uid real/effective/saved/fs"
        );
        assert_eq!(
            status_field(&status, "Gid"),
            [gid; 4],
            "{name}: Gid real/effective/saved/fs"
        );
        assert_eq!(
            status_field(&status, "Groups"),
            [gid],
            "{name}: supplementary groups"
        );
        for cap in ["CapPrm", "CapEff", "CapAmb"] {
            assert_eq!(status_field(&status, cap), [0], "{name}: {cap}");
        }
    }
    assert!(
        threads >= 4,
        "only {threads} threads seen: the workers had not started?"
    );

    // Traffic only after the drop: captured through libpcap's open socket.
    // Then stop (on that event, not after a fixed time a slow machine overruns).
    ping(&snd);
    util::send_signal(w.pid(), "TERM");
    let (status, stderr) = w.finish(util::WATCH_WAIT);
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    let text = std::fs::read_to_string(&summary).expect("summary written");
    let s: serde_json::Value = serde_json::from_str(&text).expect("summary is JSON");
    assert!(
        util::count(&s, "transport", "icmp") >= 10,
        "5 echo requests and replies sent after the drop were not all captured: {s:#}"
    );
    for p in [&alerts, &flows, &summary] {
        let mode = std::fs::metadata(p)
            .expect("output exists")
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(mode, 0o640, "{}: mode {mode:o}", p.display());
    }
    let ev = std::fs::metadata(&evidence).expect("evidence directory created");
    assert!(ev.is_dir());
    assert_eq!(
        (u64::from(ev.uid()), u64::from(ev.gid())),
        (uid, gid),
        "the evidence directory belongs to the account that writes into it"
    );
}

#[test]
fn run_user_errors_are_clear_and_exit_2() {
    require_root();
    // Unknown user: refused before the capture opens (no such interface
    // either: the user is checked first).
    let r = util::zonewatch(["run", "-i", "zw-no-such-if0", "--user", "doesnotexist"]);
    r.assert_no_panic();
    assert_eq!(r.code(), 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("zonewatch: error: --user doesnotexist: no such user"),
        "{}",
        r.stderr
    );
    // Root as the target is no drop at all.
    let r = util::zonewatch(["run", "-i", "zw-no-such-if0", "--user", "root"]);
    assert_eq!(r.code(), 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("name an unprivileged user"),
        "{}",
        r.stderr
    );
    // Not root: says so, and points at setcap.
    let mut c = Command::new("setpriv");
    c.arg("--reuid=nobody")
        .arg(format!("--regid={}", id_of("-g", "nobody")))
        .args([
            "--clear-groups",
            util::BIN,
            "run",
            "-i",
            "zw-no-such-if0",
            "--user",
            "nobody",
        ]);
    let r = util::run_cmd(c);
    r.assert_no_panic();
    assert_eq!(r.code(), 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("dropping privileges needs root")
            && r.stderr.contains("setcap cap_net_raw,cap_net_admin=eip"),
        "{}",
        r.stderr
    );
}

/// The premise of dist/zonewatch.service: no root at all, only the two
/// ambient capabilities (bounding set reduced to them, no_new_privs set).
#[test]
fn unprivileged_user_with_ambient_capture_capabilities_captures() {
    require_root();
    let Veth {
        cap, snd, cap_if, ..
    } = veth();
    let dir = tempfile::tempdir().expect("tempdir");
    // nobody must be able to create its files there.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod tempdir");
    let (flows, summary) = (
        dir.path().join("flows.jsonl"),
        dir.path().join("summary.json"),
    );
    let mut zw = cap.cmd("setpriv");
    zw.arg("--reuid=nobody")
        .arg(format!("--regid={}", id_of("-g", "nobody")))
        .args([
            "--clear-groups",
            "--inh-caps=-all,+net_raw,+net_admin",
            "--ambient-caps=-all,+net_raw,+net_admin",
            "--bounding-set=-all,+net_raw,+net_admin",
            "--no-new-privs",
            util::BIN,
            "run",
            "-i",
            &cap_if,
            "-q",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .arg("--flows")
        .arg(&flows)
        .arg("--summary")
        .arg(&summary);
    let mut w = Watched::spawn(zw);
    w.wait_stderr(&format!("listening on {cap_if}"));
    let status = std::fs::read_to_string(format!("/proc/{}/status", w.pid())).expect("status");
    let uid = u64::from(id_of("-u", "nobody"));
    assert_eq!(status_field(&status, "Uid"), [uid; 4]);
    // CAP_NET_ADMIN = bit 12, CAP_NET_RAW = bit 13: those and nothing else.
    assert_eq!(status_field(&status, "CapEff"), [(1 << 12) | (1 << 13)]);
    ping(&snd);
    util::send_signal(w.pid(), "TERM");
    let (st, stderr) = w.finish(util::WATCH_WAIT);
    assert_eq!(st.code(), Some(0), "stderr:\n{stderr}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("JSON");
    assert!(util::count(&s, "transport", "icmp") >= 10, "{s:#}");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&flows).expect("flows"));
    assert_eq!(u64::from(owner), uid, "flows file owned by nobody");
}

/// `systemd-analyze verify` on the shipped unit (ExecStart pointed at the
/// built binary: verify checks that the command exists).
#[test]
fn systemd_unit_verifies() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/zonewatch.service");
    let text = std::fs::read_to_string(&unit).expect("dist/zonewatch.service");
    assert!(text.contains("ExecStart=/usr/local/bin/zonewatch run "));
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("zonewatch.service");
    std::fs::write(&copy, text.replace("/usr/local/bin/zonewatch", util::BIN)).expect("write");
    let mut c = Command::new("systemd-analyze");
    c.arg("verify").arg(&copy);
    let r = ChildGuard::spawn(c).wait(util::CHILD_TIMEOUT);
    assert_eq!(
        r.code(),
        0,
        "systemd-analyze verify (package systemd, `make deps`):\n{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stderr.trim().is_empty(),
        "systemd-analyze verify warned:\n{}",
        r.stderr
    );
}
