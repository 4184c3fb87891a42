//! Capture files of any bytes, in pcap or pcapng, replayed as `zonewatch replay`
//! replays them: opened by the real reader (`capture::FileSource`: mmap, format by
//! magic, two files merged by time) and sent through the whole pipeline with the
//! example site's rules and every detector on, with flow lines, alerts, the
//! report accumulators and (when the input says so) evidence files. Opening may
//! fail (bad magic, wrong link type, unsupported version) and an input may stop
//! at damage; nothing may panic, on any thread.
//!
//! Checked besides "no panic": every flow line and alert line is one JSON object;
//! the run counts as many frames as the inputs' reports; every evidence file the
//! run wrote reads back as a capture without damage; the summary and the report
//! render (JSON and human, English and Japanese).
//!
//! Input: byte 0 selects (bit 0) two files instead of one, (bit 1) evidence on,
//! (bit 2) a flow table capped at 8 flows instead of 256, (bit 3) two workers
//! instead of one, (bit 4) the rules with tight detector thresholds and small
//! state caps (the example site plus a `[detect]` table), so short inputs reach
//! alerts and evictions. With two files, bytes 1..3 (little-endian u16, modulo
//! the remaining length + 1) split the rest into the first and second file.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use zonewatch::alert::fold::FoldConfig;
use zonewatch::sink::JsonLines;
use zonewatch::capture::{FileSource, PacketSource};
use zonewatch::detect::DetectConfig;
use zonewatch::evidence::EvidenceConfig;
use zonewatch::pipeline::{self, Outputs, PipelineConfig, PipelineError};
use zonewatch::policy::Policy;
use zonewatch::report::Lang;
use zonewatch::summary::{AlertSummary, PolicySummary, Summary};

const SITE: &str = include_str!("../../rules/example-site.toml");

/// Thresholds a short input can reach and caps it can overflow (valid `[detect]` keys).
const TIGHT: &str = r#"
[detect.port_scan]
window_secs = 5
answer_wait_secs = 1
min_ports_per_host = 3
min_hosts_per_port = 3
min_sweep_hosts = 3
min_sweep_failed = 2
max_sources = 4
max_targets_per_source = 8
sample_size = 2

[detect.brute_force]
window_secs = 5
min_attempts = 2
min_udp_attempts = 3
answer_wait_secs = 1
min_spray_targets = 2
max_keys = 4
max_targets_per_key = 4
max_pending_per_key = 4
sample_size = 2

[detect.admin_access]
window_secs = 5
answer_wait_secs = 1
max_keys = 4

[detect.hosts]
max_addresses_per_mac = 2
confirm_secs = 1
max_macs = 4
max_rogue_hosts = 4

[detect.dos]
min_pps = 5
min_bps = 1000
min_syn_pps = 3
min_udp_pps = 3
min_icmp_pps = 3
min_flows = 2
min_sources = 2
min_amp_pps = 2
min_amp_avg_bytes = 40
burst_pps = 10
min_duration_secs = 1
update_interval_secs = 1
end_quiet_secs = 1
max_tracked = 4
"#;

struct Fixture {
    /// The example site as is, and with [`TIGHT`] appended.
    policies: [(Arc<Policy>, DetectConfig); 2],
    dir: PathBuf,
}

fn load(name: &str, text: &str) -> (Arc<Policy>, DetectConfig) {
    let detect = match zonewatch::detect::config_of(name, text) {
        Ok(d) => d,
        Err(e) => panic!("{name}'s [detect] must load: {e}"),
    };
    match Policy::from_source(name, text) {
        Ok((p, _warnings)) => (Arc::new(p), detect),
        Err(e) => panic!("{name} must load: {e:?}"),
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // run.sh points TMPDIR at a directory it removes when the run ends.
        let dir = std::env::temp_dir().join(format!("zw-fuzz-capture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Fixture {
            policies: [
                load("example-site.toml", SITE),
                load("example-site+tight.toml", &format!("{SITE}\n{TIGHT}")),
            ],
            dir,
        }
    })
}

/// Every line of `out` is one JSON object.
fn check_lines(what: &str, out: &[u8]) {
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(v) if v.is_object() => {}
            other => panic!(
                "{what} line is not a JSON object ({other:?}): {}",
                String::from_utf8_lossy(line)
            ),
        }
    }
}

/// A writer into a buffer the target reads after the run.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("buffer lock"))
    }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write scratch capture");
}

fuzz_target!(|input: &[u8]| {
    let Some((&sel, rest)) = input.split_first() else {
        return;
    };
    let fx = fixture();
    let two = sel & 1 != 0;
    let evidence = sel & 2 != 0;
    let max_flows = if sel & 4 != 0 { 8 } else { 256 };
    let workers = if sel & 8 != 0 { 2 } else { 1 };
    let (policy, rules_detect) = fx.policies[usize::from(sel >> 4 & 1)].clone();

    let a = fx.dir.join("a.cap");
    let b = fx.dir.join("b.cap");
    let paths = if two {
        let (split, files) = match rest {
            [lo, hi, files @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), files),
            _ => return,
        };
        let (first, second) = files.split_at(split % (files.len() + 1));
        write(&a, first);
        write(&b, second);
        vec![a, b]
    } else {
        write(&a, rest);
        vec![a]
    };

    let Ok(mut files) = FileSource::open(&paths) else {
        return; // not a capture, unsupported version or link type: an error, fine
    };
    let ev_dir = fx.dir.join("evidence");
    if evidence {
        std::fs::create_dir_all(&ev_dir).expect("evidence directory");
    }

    // Every detector on, with the rules' thresholds.
    let mut detect: DetectConfig = rules_detect;
    detect.port_scan.enabled = true;
    detect.brute_force.enabled = true;
    detect.admin_access.enabled = true;
    detect.hosts.enabled = true;
    detect.dos.enabled = true;
    let fold = FoldConfig::default();
    let mut cfg = PipelineConfig {
        workers: workers.try_into().expect("non-zero"),
        detect: Some(detect),
        policy: Some(policy.clone()),
        fold,
        hash_seed: Some(0x5eed),
        sensor: Some("fuzz".into()),
        sources: files.labels(),
        report_gap_ns: Some(60_000_000_000),
        evidence: evidence.then(|| EvidenceConfig {
            dir: ev_dir.clone(),
            ring_packets: 4,
            alert_bytes: 4096,
            total_bytes: 64 << 10,
            buffer_bytes: 64 << 10,
            follow_ns: 2_000_000_000,
            keep_ns: fold.window_ns.saturating_add(300_000_000_000),
            max_flows: 4,
        }),
        ..PipelineConfig::default()
    };
    cfg.flow.max_flows = max_flows.try_into().expect("non-zero");

    let flows = Shared::default();
    let alerts = Shared::default();
    let stop = AtomicBool::new(false);
    let run = pipeline::run(
        &mut files,
        &cfg,
        Outputs {
            flows: Some(Box::new(flows.clone())),
            alerts: Some(Box::new(JsonLines(alerts.clone()))),
        },
        &stop,
        None,
    );
    let report = match run {
        Ok(r) => r,
        Err(PipelineError::WorkerPanic) => panic!("a pipeline thread panicked"),
        Err(e) => panic!("replay of opened files failed: {e}"),
    };
    check_lines("flow", &flows.take());
    check_lines("alert", &alerts.take());
    let delivered: u64 = files.report().inputs.iter().map(|i| i.frames).sum();
    assert_eq!(report.frames, delivered);

    // The end of a replay: summary, report, human tables.
    let mut summary = Summary::from_report(&report);
    summary.policy = Some(PolicySummary::new(&report.flows.policy));
    if let Some(a) = &report.alerts {
        summary.alerts = Some(AlertSummary::new(a, fold.window_ns));
    }
    serde_json::to_string(&summary).expect("summary serialises");
    if let Some(d) = &report.report {
        let r = zonewatch::report::Report::new(&summary, d, Some(&policy));
        serde_json::to_string(&r).expect("report serialises");
        let _ = zonewatch::report::render(&summary, &r, Lang::En);
        let _ = zonewatch::report::render(&summary, &r, Lang::Ja);
    }
    let _ = summary.to_human();

    if evidence {
        let mut written: Vec<PathBuf> = std::fs::read_dir(&ev_dir)
            .expect("evidence directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        written.sort();
        for p in &written {
            let mut src = FileSource::open(std::slice::from_ref(p))
                .unwrap_or_else(|e| panic!("evidence file does not open: {e}"));
            while let Ok(zonewatch::capture::Next::Frame(_)) = src.next() {}
            let rep = src.report();
            assert_eq!(rep.inputs[0].stopped_early, None, "evidence file damaged");
        }
        let _ = std::fs::remove_dir_all(&ev_dir);
    }
});
