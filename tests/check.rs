//! Golden outputs of `zonewatch check`: every `tests/golden/check/NAME.toml` (and
//! `rules/example-site.toml`) is checked and its exit code, stdout and stderr are
//! compared with `NAME.code`, `NAME.stdout`, `NAME.stderr` beside it.
//! Regenerate after an intended change with `ZONEWATCH_BLESS=1 cargo test check::`.

use crate::util::BIN;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const GOLDEN: &str = "tests/golden/check";

/// Run `zonewatch check REL` from the crate root (so paths in messages are stable).
fn run_check(rel: &str) -> (i32, String, String) {
    run_check_args(&[rel])
}

/// `zonewatch check ARGS..` from the crate root.
fn run_check_args(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .current_dir(ROOT)
        .arg("check")
        .args(args)
        .output()
        .expect("run zonewatch check");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

fn compare(rel: &str, expected_base: &Path) {
    compare_args(&[rel], expected_base)
}

fn compare_args(args: &[&str], expected_base: &Path) {
    let rel = args.join(" ");
    let (code, stdout, stderr) = run_check_args(args);
    let parts = [
        ("code", format!("{code}\n")),
        ("stdout", stdout),
        ("stderr", stderr),
    ];
    for (ext, got) in parts {
        let path = expected_base.with_extension(ext);
        if std::env::var_os("ZONEWATCH_BLESS").is_some() {
            std::fs::write(&path, &got).expect("bless");
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (bless with ZONEWATCH_BLESS=1)", path.display()));
        assert_eq!(got, want, "{rel}: {ext} differs from {}", path.display());
    }
}

fn golden(name: &str) -> PathBuf {
    Path::new(ROOT).join(GOLDEN).join(name)
}

#[test]
fn check_golden_broken_and_warning_files() {
    let mut names: Vec<String> = std::fs::read_dir(Path::new(ROOT).join(GOLDEN))
        .expect("golden dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "golden rule files: {names:?}");
    for n in &names {
        compare(&format!("{GOLDEN}/{n}"), &golden(n));
    }
}

#[test]
fn check_example_site_matrix() {
    compare("rules/example-site.toml", &golden("example-site.toml"));
    let (code, stdout, _) = run_check("rules/example-site.toml");
    assert_eq!(code, 0);
    assert!(
        stdout.contains("lgwan -> inet: L3, L3u (otherwise high)"),
        "{stdout}"
    );
}

/// `check --sources`: what each rule of the example site rests on, as a CISO
/// reads it (golden file), and no rule without a classified basis.
#[test]
fn check_sources_of_the_example_site() {
    compare_args(
        &["rules/example-site.toml", "--sources"],
        &golden("example-site-sources"),
    );
    let (code, stdout, _) = run_check_args(&["rules/example-site.toml", "--sources"]);
    assert_eq!(code, 0);
    assert!(!stdout.contains("basis: NONE"), "{stdout}");
    assert!(!stdout.contains("basis: note"), "{stdout}");
    assert!(
        stdout.contains("26 rule(s): 13 practice, 6 unverified, 7 text"),
        "{stdout}"
    );
    // --sources is not a dry run.
    let (code, _, stderr) = run_check_args(&[
        "rules/example-site.toml",
        "--sources",
        "--against",
        "captures/zones.pcap",
    ]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn check_broken_files_exit_2_and_missing_file_fails() {
    for n in ["syntax_error.toml", "unknown_key.toml", "many_errors.toml"] {
        let (code, stdout, stderr) = run_check(&format!("{GOLDEN}/{n}"));
        assert_eq!(code, 2, "{n}: {stderr}");
        assert!(stdout.is_empty(), "{n}: {stdout}");
        assert!(stderr.contains(&format!("{GOLDEN}/{n}:")), "{n}: {stderr}");
    }
    let (code, _, stderr) = run_check("tests/golden/check/does-not-exist.toml");
    assert_eq!(code, 2);
    assert!(stderr.contains("does-not-exist.toml"), "{stderr}");
}

/// `check RULES --against FILES`: the dry run lists every planted violation of
/// the IPv4 and IPv6 zone captures, grouped by zone pair, most severe first,
/// and nothing that the rules allow.
#[test]
fn check_against_lists_what_would_alert_by_zone_pair() {
    let args = [
        "rules/example-site.toml",
        "--against",
        "captures/zones.pcap",
        "captures/zones-v6.pcap",
    ];
    compare_args(&args, &golden("against-zones"));
    let (code, stdout, _) = run_check_args(&args);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("10 allowed, 14 violating, 0 unknown, 0 segment-local -> 14 alerts"),
        "{stdout}"
    );
    // Seven zone pairs (captures/README.md ground truth), each one IPv4 and one IPv6 flow.
    let pairs: Vec<&str> = stdout.lines().filter(|l| l.contains(" alerts, ")).collect();
    assert_eq!(pairs.len(), 7, "{stdout}");
    assert!(
        pairs.iter().all(|l| l.ends_with("2 alerts, 2 flows")),
        "{pairs:#?}"
    );
    let sev: Vec<&str> = pairs
        .iter()
        .map(|l| l.split_whitespace().nth(3).unwrap_or(""))
        .collect();
    assert_eq!(
        sev,
        ["critical", "critical", "critical", "critical", "high", "high", "medium"],
        "most severe first: {pairs:#?}"
    );
    // Allowed relay/proxy paths never appear.
    for allowed in [
        "-> relay ",
        "-> sec_cloud  critical",
        "lgwan_wan",
        "192.0.2.177",
    ] {
        assert!(!stdout.contains(allowed), "{allowed}: {stdout}");
    }
}

#[test]
fn check_against_with_broken_rules_or_missing_capture_fails() {
    let (code, stdout, stderr) = run_check_args(&[
        "tests/golden/check/unknown_key.toml",
        "--against",
        "captures/zones.pcap",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("tests/golden/check/unknown_key.toml:"),
        "{stderr}"
    );
    let (code, _, stderr) = run_check_args(&[
        "rules/example-site.toml",
        "--against",
        "captures/does-not-exist.pcap",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("does-not-exist.pcap"), "{stderr}");
}
