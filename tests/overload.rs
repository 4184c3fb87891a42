//! Overload (issue 7, point 4; root only): `zonewatch run` on a veth fed by
//! `tcpreplay --topspeed` with a small kernel buffer, so it must drop. While the
//! flood runs, /metrics must keep answering (scrapes answered while the sender
//! still sends: an endpoint blocked by the capture would answer only after
//! it) and show the drop counters rising; a SIGTERM then stops zonewatch with exit 0, the summary
//! counts the drops at their source (kernel ring or worker queue), and the
//! `dos_start` already written during the run is still in the alert file, whole.

use crate::live::{require_root, Netns, Veth};
use crate::util::{self, ChildGuard};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Kernel capture buffer: small, so a top-speed sender overruns it.
const BUFFER_BYTES: &str = "65536";
/// The flood is sent for this long at most (`tcpreplay --duration`), and looped
/// often enough to last that long on a fast machine (6,020 frames per loop).
const SEND_SECS: u64 = 6;
const LOOPS: &str = "5000";
/// Ceiling of a scrape and of every wait for an event (a loaded machine).
const WAIT: Duration = util::WATCH_WAIT;
/// Scrapes that must be answered while the flood is still being sent.
const SCRAPES_DURING_FLOOD: usize = 3;
/// The bundled flood's victim (captures/README.md).
const VICTIM: &str = "192.0.2.34";

fn ns_run(ns: &Netns, argv: &[&str]) {
    let (program, args) = argv.split_first().expect("empty argv");
    let mut c = ns.cmd(program);
    c.args(args);
    let r = util::run_cmd(c);
    assert_eq!(r.code(), 0, "{} failed: {}", r.cmdline, r.stderr);
}

/// A metric's samples summed over the lines whose labels contain `label`.
fn metric(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// One scrape from inside the capture namespace (where zonewatch's loopback is).
fn scrape(cap: &Netns, addr: &str) -> (Duration, String) {
    let t = Instant::now();
    let mut c = cap.cmd("curl");
    let max = WAIT.as_secs().to_string();
    c.args(["-sS", "--max-time", &max, &format!("http://{addr}/metrics")]);
    let r = util::run_cmd(c);
    let took = t.elapsed();
    assert_eq!(
        r.code(),
        0,
        "scrape of {addr} failed or took over {WAIT:?} under load: {}",
        r.stderr
    );
    (took, r.stdout)
}

#[test]
fn overloaded_live_capture_stays_responsive_and_counts_its_drops() {
    require_root();
    let Veth {
        cap,
        snd,
        cap_if,
        snd_if,
    } = Veth::new("zwo");
    for ns in [&cap, &snd] {
        for key in ["all", "default"] {
            let k = format!("net.ipv6.conf.{key}.disable_ipv6=1");
            ns_run(ns, &["sysctl", "-qw", &k]);
        }
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let alerts = dir.path().join("alerts.jsonl");
    let summary = dir.path().join("summary.json");
    let mut zw = cap.cmd(util::BIN);
    zw.args(["run", "-q", "-i", &cap_if, "-w", "2"])
        .args(["--buffer-bytes", BUFFER_BYTES])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .arg("--alerts")
        .arg(&alerts)
        .arg("--summary")
        .arg(&summary);
    let mut guard = ChildGuard::spawn(zw);
    let (stderr, reader) = util::tap_stderr(&mut guard);
    let err = || stderr.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let deadline = Instant::now() + WAIT;
    let addr = loop {
        let text = err();
        if text.contains("zonewatch: listening on ") {
            let a = text
                .split("metrics on http://")
                .nth(1)
                .and_then(|r| r.split("/metrics").next())
                .unwrap_or_else(|| panic!("no metrics address on stderr:\n{text}"));
            break a.to_string();
        }
        if let Some(Ok(Some(st))) = guard.child.as_mut().map(|c| c.try_wait()) {
            panic!("zonewatch exited early ({st}): {text}");
        }
        assert!(
            Instant::now() < deadline,
            "zonewatch never listened: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (_, before) = scrape(&cap, &addr);
    let dropped = |t: &str| {
        metric(t, "zonewatch_dropped_packets_total", "reason=\"kernel\"")
            + metric(
                t,
                "zonewatch_dropped_packets_total",
                "reason=\"queue_full\"",
            )
    };
    assert_eq!(dropped(&before), 0, "drops before any traffic:\n{before}");

    let flood = util::bundled("dos-syn-flood.pcap");
    let mut tr = snd.cmd("tcpreplay");
    tr.args(["-i", &snd_if, "--topspeed", "--loop", LOOPS])
        .args(["--duration", &SEND_SECS.to_string()])
        .arg(&flood);
    let mut sender = ChildGuard::spawn(tr);

    // Scrape while the flood runs.
    let mut series = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut during_flood = 0;
    let mut dos_line_mid_run: Option<String> = None;
    let send_deadline = Instant::now() + Duration::from_secs(SEND_SECS) + WAIT;
    loop {
        let (took, text) = scrape(&cap, &addr);
        slowest = slowest.max(took);
        series.push(dropped(&text));
        if dos_line_mid_run.is_none() {
            dos_line_mid_run = std::fs::read_to_string(&alerts)
                .unwrap_or_default()
                .lines()
                .find(|l| l.contains("\"kind\":\"dos_start\""))
                .map(str::to_string);
        }
        let done = sender
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok())
            .flatten()
            .is_some();
        if done {
            break;
        }
        // Answered, and the sender still running after it: during the flood.
        during_flood += 1;
        assert!(
            Instant::now() < send_deadline,
            "tcpreplay did not stop after --duration {SEND_SECS}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let sent = sender.wait(WAIT);
    assert_eq!(sent.code(), 0, "tcpreplay failed: {}", sent.stderr);
    assert!(
        during_flood >= SCRAPES_DURING_FLOOD,
        "only {during_flood} scrapes were answered while the flood was sent (slowest \
         {slowest:?}): the endpoint does not answer under load"
    );
    // The DoS episode is judged once its windows close: wait for its line
    // (zonewatch still runs), then one more scrape.
    let deadline = Instant::now() + WAIT;
    let dos_line = loop {
        if let Some(l) = dos_line_mid_run.take().or_else(|| {
            let text = std::fs::read_to_string(&alerts).unwrap_or_default();
            // Complete lines only.
            let whole = text.rfind('\n').map_or("", |i| &text[..i]);
            whole
                .lines()
                .find(|l| l.contains("\"kind\":\"dos_start\""))
                .map(str::to_string)
        }) {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "no dos_start written while zonewatch ran; stderr:\n{}",
            err()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (_, last) = scrape(&cap, &addr);
    series.push(dropped(&last));

    util::send_signal(guard.id(), "TERM");
    // stderr is tapped, so wait here rather than with ChildGuard::wait.
    let deadline = Instant::now() + WAIT;
    let status = loop {
        let child = guard.child.as_mut().expect("zonewatch running");
        if let Some(st) = child.try_wait().expect("wait for zonewatch") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "zonewatch did not exit within {WAIT:?} of SIGTERM:\n{}",
            err()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    guard.child = None;
    let _ = reader.join();
    let run_err = err();
    assert!(
        !run_err.contains("panicked"),
        "zonewatch panicked:\n{run_err}"
    );
    assert_eq!(
        status.code(),
        Some(0),
        "zonewatch exited with {status} after SIGTERM:\n{run_err}"
    );

    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary"))
        .expect("summary is JSON");
    assert_eq!(s["stopped_by"], "signal", "{s:#}");
    let kernel = util::count(&s, "drops", "kernel");
    let queue = util::count(&s, "drops", "queue_full");
    let live = &s["sources"][0]["live"];
    eprintln!(
        "overload: sent {}; zonewatch read {} packets, libpcap received {}, dropped: kernel \
         {kernel}, queue_full {queue}; drops seen by scrapes {series:?}; slowest scrape {slowest:?}",
        sent.stdout
            .lines()
            .find(|l| l.contains("Successful packets"))
            .unwrap_or("?")
            .trim(),
        util::count(&s, "", "packets"),
        live["received"]
    );
    assert!(
        kernel + queue > 0,
        "tcpreplay --topspeed into a {BUFFER_BYTES}-byte buffer did not overload zonewatch \
         (no kernel or queue drops): this machine is too fast for the test; raise LOOPS or \
         SEND_SECS, or lower BUFFER_BYTES. Summary: {s:#}"
    );
    assert_eq!(
        live["dropped"].as_u64(),
        Some(kernel),
        "kernel drops are libpcap's ps_drop: {s:#}"
    );
    // The metrics showed the same counters, rising while the flood ran.
    assert!(
        series.windows(2).all(|w| w[0] <= w[1]),
        "drop counters went back: {series:?}"
    );
    let seen = series.last().copied().unwrap_or(0);
    assert!(
        seen > 0 && seen <= kernel + queue,
        "metrics showed {seen} drops, the summary {} (kernel {kernel}, queue {queue}): {series:?}",
        kernel + queue
    );

    // The alert raised during the run is still there, whole, and the file ends cleanly.
    let text = std::fs::read_to_string(&alerts).expect("alert file");
    assert!(text.ends_with('\n'), "alert file ends mid-line:\n{text}");
    assert!(
        text.lines().any(|l| l == dos_line),
        "the dos_start written during the run is gone after SIGTERM:\n{dos_line}\n---\n{text}"
    );
    let a: Value = serde_json::from_str(&dos_line).expect("dos_start is JSON");
    assert_eq!(a["dest_ip"], VICTIM, "{a:#}");
    assert_eq!(a["rule"], "detect.dos.syn_flood", "{a:#}");
    for l in text.lines() {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("alert line ({e}): {l}"));
    }
}
