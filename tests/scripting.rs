//! Scripting: exit codes (0 clean, 1 alerts at or above `--fail-on`, 2 error)
//! and stdout carrying only the machine output that was asked for.

use crate::util::{self, Run};
use std::path::Path;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/example-site.toml");

fn replay(capture: &str, extra: &[&str]) -> Run {
    let file = util::bundled(capture);
    let mut args = vec!["replay", file.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    let r = util::zonewatch(&args);
    r.assert_no_panic();
    r
}

fn assert_code(r: &Run, code: i32) {
    assert_eq!(
        r.code(),
        code,
        "{}\nstdout:\n{}\nstderr:\n{}",
        r.cmdline,
        r.stdout,
        r.stderr
    );
}

/// Every stdout line is one JSON object (an alert line); returns the
/// severities of the alerts (first lines; `update` lines repeat an alert).
fn json_severities(r: &Run) -> Vec<String> {
    r.stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("{}: stdout line is not JSON ({e}): {l:?}", r.cmdline))
        })
        .filter(|v| v["update"] == 0)
        .map(|v| {
            v.get("severity")
                .and_then(|s| s.as_str())
                .unwrap_or_else(|| panic!("alert line without severity: {v}"))
                .to_string()
        })
        .collect()
}

#[test]
fn zones_capture_fails_on_critical_and_high() {
    // zones.pcap with the example rules: 4 critical, 2 high, 1 medium violations.
    for sev in ["critical", "high", "medium", "low", "info"] {
        let r = replay("zones.pcap", &["--rules", RULES, "--fail-on", sev, "-q"]);
        assert_code(&r, 1);
        assert_eq!(r.stdout, "", "-q and no data asked: stdout stays empty");
    }
    // Without -q the reason is on stderr.
    let r = replay("zones.pcap", &["--rules", RULES, "--fail-on", "critical"]);
    assert_code(&r, 1);
    assert!(
        r.stderr
            .contains("4 alerts at or above critical (--fail-on): exit 1"),
        "{}",
        r.stderr
    );
    // The same run without --fail-on is clean.
    assert_code(&replay("zones.pcap", &["--rules", RULES, "-q"]), 0);
}

#[test]
fn benign_capture_is_clean_at_any_threshold() {
    let r = replay(
        "benign-web.pcap",
        &["--rules", RULES, "--alerts", "-", "-q"],
    );
    assert_code(&r, 0);
    assert_eq!(
        json_severities(&r),
        Vec::<String>::new(),
        "no alerts at all"
    );
    for sev in ["medium", "info"] {
        let r = replay(
            "benign-web.pcap",
            &["--rules", RULES, "--fail-on", sev, "-q"],
        );
        assert_code(&r, 0);
    }
}

#[test]
fn threshold_compares_severities_and_detectors_run_without_alerts_flag() {
    // One port_scan alert, severity medium (no --alerts: counted, not written).
    let with_lines = replay("scan-nmap-syn.pcap", &["--alerts", "-", "-q"]);
    assert_code(&with_lines, 0);
    assert_eq!(json_severities(&with_lines), ["medium"]);
    assert_code(
        &replay("scan-nmap-syn.pcap", &["--fail-on", "high", "-q"]),
        0,
    );
    assert_code(
        &replay("scan-nmap-syn.pcap", &["--fail-on", "critical", "-q"]),
        0,
    );
    assert_code(
        &replay("scan-nmap-syn.pcap", &["--fail-on", "medium", "-q"]),
        1,
    );
    assert_code(
        &replay("scan-nmap-syn.pcap", &["--fail-on", "low", "-q"]),
        1,
    );
    // With --alerts too: the line is written and the exit code follows it.
    let r = replay(
        "scan-nmap-syn.pcap",
        &["--alerts", "-", "--fail-on", "medium", "-q"],
    );
    assert_code(&r, 1);
    assert_eq!(json_severities(&r), ["medium"]);
    // Alerts only counted: the summary does not claim lines were written.
    let r = replay(
        "scan-nmap-syn.pcap",
        &["--summary", "-", "--fail-on", "medium", "-q"],
    );
    assert_code(&r, 1);
    let summary: serde_json::Value = serde_json::from_str(&r.stdout).expect("summary JSON");
    assert!(summary.get("alerts").is_none(), "{summary}");
}

#[test]
fn errors_exit_2_with_a_clear_message() {
    let r = replay("zones.pcap", &["--rules", RULES, "--fail-on", "bogus"]);
    assert_code(&r, 2);
    assert!(
        r.stderr.contains("'bogus' is not a severity")
            && r.stderr
                .contains("expected one of info, low, medium, high, critical"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
    // Unreadable input: exit 2 whatever --fail-on says.
    let missing = Path::new(util::BUNDLED_DIR).join("no-such-capture.pcap");
    let r = util::zonewatch([
        "replay".as_ref(),
        missing.as_os_str(),
        "--fail-on".as_ref(),
        "info".as_ref(),
    ]);
    r.assert_no_panic();
    assert_code(&r, 2);
    assert!(r.stderr.contains("zonewatch: error:"), "{}", r.stderr);
    // `check --fail-on` means nothing without a dry run.
    let r = util::zonewatch(["check", RULES, "--fail-on", "high"]);
    assert_code(&r, 2);
    assert!(r.stderr.contains("--against"), "{}", r.stderr);
}

#[test]
fn quiet_stdout_is_only_alert_json() {
    let r = replay(
        "zones.pcap",
        &[
            "--rules",
            RULES,
            "--alerts",
            "-",
            "-q",
            "--fail-on",
            "critical",
        ],
    );
    assert_code(&r, 1);
    let mut sev = json_severities(&r);
    sev.sort();
    assert_eq!(
        sev,
        ["critical", "critical", "critical", "critical", "high", "high", "medium"]
    );
    assert!(
        !r.stderr.contains("zonewatch replay:"),
        "-q: no summary: {}",
        r.stderr
    );
    assert!(!r.stderr.contains("--fail-on"), "-q: no note: {}", r.stderr);
}

#[test]
fn human_summary_moves_to_stderr_when_stdout_carries_data() {
    let r = replay("zones.pcap", &["--rules", RULES, "--alerts", "-"]);
    assert_code(&r, 0);
    assert_eq!(json_severities(&r).len(), 7);
    assert!(
        r.stderr.contains("zonewatch replay: 136 packets"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("alerts         7 written"),
        "{}",
        r.stderr
    );
    // Nothing asked on stdout: the summary is printed there.
    let r = replay("zones.pcap", &["--rules", RULES]);
    assert_code(&r, 0);
    assert!(
        r.stdout.starts_with("zonewatch replay: 136 packets"),
        "{}",
        r.stdout
    );
    assert!(!r.stderr.contains("zonewatch replay:"), "{}", r.stderr);
}

#[test]
fn check_against_fails_on_the_dry_run_alerts() {
    let zones = util::bundled("zones.pcap");
    let web = util::bundled("benign-web.pcap");
    let check = |file: &Path, sev: &str| {
        let r = util::zonewatch([
            "check".as_ref(),
            RULES.as_ref(),
            "--against".as_ref(),
            file.as_os_str(),
            "--fail-on".as_ref(),
            sev.as_ref(),
        ]);
        r.assert_no_panic();
        r
    };
    let r = check(&zones, "critical");
    assert_code(&r, 1);
    assert!(
        r.stdout.contains("Dry run of"),
        "report still printed: {}",
        r.stdout
    );
    assert!(
        r.stderr.contains("4 alerts at or above critical"),
        "{}",
        r.stderr
    );
    assert_code(&check(&web, "info"), 0);
}

/// Outputs to `/dev/null` (benchmarks, "detectors only" runs) are accepted:
/// a device has nothing to empty. (Regression: the append-only output module
/// refused `--alerts /dev/null` with "Invalid argument".)
#[test]
fn dev_null_outputs_are_accepted() {
    let r = replay(
        "zones.pcap",
        &[
            "-q",
            "--rules",
            RULES,
            "--alerts",
            "/dev/null",
            "--flows",
            "/dev/null",
            "--summary",
            "/dev/null",
        ],
    );
    assert_code(&r, 0);
}
