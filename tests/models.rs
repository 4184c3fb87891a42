//! Issue #19: one capture per MIC model (captures/record-models.sh, real clients in
//! namespaces at the example site's addresses), replayed with the example site on
//! that model. Every planted compliant flow gets its rule and raises nothing; every
//! planted too-broad flow is a violation of the right severity; and nothing else
//! alerts. Ground truth: captures/README.md ("model-*.pcap").

use crate::util;
use serde_json::{Map, Value};
use std::path::PathBuf;

const SITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/example-site.toml");

/// A planted flow the rules allow: (initiator, responder, proto, responder port, rule).
type Allowed = (&'static str, &'static str, &'static str, u64, &'static str);
/// A planted violation: (initiator, responder, responder port, severity).
type Violation = (&'static str, &'static str, u64, &'static str);

/// Planted in every model's capture and allowed by every model.
const COMMON_ALLOWED: &[Allowed] = &[
    ("192.0.2.20", "198.51.100.20", "tcp", 443, "A3t"),
    ("192.0.2.50", "198.51.100.10", "tcp", 443, "A4"),
    ("192.0.2.5", "198.51.100.100", "tcp", 443, "A5"),
    ("192.0.2.49", "198.51.100.70", "tcp", 443, "A1"),
    ("198.51.100.70", "192.0.2.49", "tcp", 443, "A1r"),
    ("192.0.2.40", "198.51.100.30", "tcp", 80, "A6"),
    ("192.0.2.103", "198.51.100.30", "tcp", 80, "L1"),
    ("192.0.2.70", "198.51.100.50", "tcp", 80, "L1"),
    ("192.0.2.100", "198.51.100.41", "tcp", 25, "L1m"),
    ("192.0.2.130", "192.0.2.178", "tcp", 443, "I6"),
    ("192.0.2.178", "192.0.2.101", "tcp", 445, "L5"),
    ("192.0.2.5", "192.0.2.45", "udp", 123, "intra:mynumber"),
    ("192.0.2.45", "198.51.100.42", "udp", 123, "N1"),
    ("192.0.2.70", "198.51.100.42", "udp", 123, "L1u"),
    ("192.0.2.130", "198.51.100.134", "udp", 123, "N3"),
    ("192.0.2.130", "198.51.100.130", "tcp", 8080, "I1"),
];

/// Planted in every model's capture: allowed before issue #19, violations now.
const COMMON_VIOLATIONS: &[Violation] = &[
    ("192.0.2.49", "198.51.100.70", 4444, "critical"), // A1: a port the site did not give
    ("192.0.2.50", "198.51.100.50", 443, "critical"),  // A4: a telework ASP is no 特定通信
    ("192.0.2.5", "198.51.100.100", 3389, "critical"), // A5: RDP to the government cloud
    ("192.0.2.5", "198.51.100.100", 445, "critical"),  // A5: SMB to it
    ("192.0.2.178", "192.0.2.102", 445, "critical"),   // L5: the sanitiser to the AD server
    ("192.0.2.5", "192.0.2.226", 514, "critical"),     // S1: My Number syslog, shared collector
    ("192.0.2.130", "192.0.2.226", 514, "critical"),   // ... and the internet zone's
    ("198.51.100.10", "192.0.2.70", 445, "high"),      // lgwan_wan -> lgwan.term
    ("192.0.2.178", "192.0.2.70", 445, "critical"),    // L5: the sanitiser to a terminal
    ("192.0.2.227", "192.0.2.70", 161, "high"),        // a monitor polling LGWAN ...
    ("192.0.2.227", "192.0.2.130", 161, "high"),       // ... and the internet zone
];

struct Model {
    preset: &'static str,
    capture: &'static str,
    options: &'static [&'static str],
    allowed: &'static [Allowed],
    violations: &'static [Violation],
}

const MODELS: &[Model] = &[
    Model {
        preset: "alpha",
        capture: "model-alpha.pcap",
        options: &[],
        allowed: &[("192.0.2.70", "192.0.2.161", "tcp", 3389, "L3")],
        violations: &[],
    },
    Model {
        preset: "alpha_prime",
        capture: "model-alpha-prime.pcap",
        options: &["lbo_transparent"],
        allowed: &[
            ("192.0.2.70", "192.0.2.161", "tcp", 3389, "L3"),
            ("192.0.2.114", "203.0.113.10", "tcp", 443, "A'1"),
            ("192.0.2.114", "203.0.113.11", "udp", 3478, "A'1u"),
            ("192.0.2.114", "203.0.113.153", "udp", 53, "A'3"),
            ("192.0.2.114", "203.0.113.180", "tcp", 80, "A'4"),
            ("192.0.2.70", "203.0.113.10", "tcp", 443, "A'2t"),
        ],
        violations: &[("192.0.2.114", "203.0.113.180", 443, "critical")],
    },
    Model {
        preset: "beta",
        capture: "model-beta.pcap",
        options: &[],
        allowed: &[
            ("192.0.2.130", "192.0.2.104", "tcp", 3389, "B1"),
            ("192.0.2.104", "192.0.2.178", "tcp", 445, "L5p"),
            ("192.0.2.104", "192.0.2.179", "tcp", 443, "L6"),
        ],
        violations: &[("192.0.2.70", "192.0.2.161", 3389, "high")],
    },
    Model {
        preset: "beta_prime",
        capture: "model-beta-prime.pcap",
        options: &["saas"],
        allowed: &[
            ("192.0.2.130", "192.0.2.104", "tcp", 3389, "B1"),
            ("192.0.2.104", "192.0.2.178", "tcp", 445, "L5p"),
            ("192.0.2.104", "192.0.2.179", "tcp", 443, "L6"),
            ("192.0.2.130", "203.0.113.10", "tcp", 443, "B'2"),
            ("192.0.2.167", "203.0.113.10", "tcp", 443, "B'2s"),
        ],
        violations: &[
            ("192.0.2.70", "192.0.2.161", 3389, "high"),
            ("192.0.2.167", "203.0.113.10", 22, "high"),
        ],
    },
];

/// The example site on `preset`, with `options` on, written into `dir`.
fn site(dir: &std::path::Path, preset: &str, options: &[&str]) -> PathBuf {
    let text = std::fs::read_to_string(SITE).expect("example site");
    let opts: Vec<String> = options.iter().map(|o| format!("{o:?}")).collect();
    let text = text.replacen(
        "preset = \"alpha\"",
        &format!("preset = \"{preset}\"\noptions = [{}]", opts.join(", ")),
        1,
    );
    let p = dir.join(format!("{preset}.toml"));
    std::fs::write(&p, text).expect("write site");
    p
}

fn s<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The rule of an allowed flow line (`intra:TOP` for intra-zone), else its verdict.
fn verdict_of(f: &Map<String, Value>) -> String {
    match (s(f, "verdict"), s(f, "rule")) {
        ("allowed", "intra_zone") => {
            format!("intra:{}", s(f, "src_zone").split('.').next().unwrap_or(""))
        }
        ("allowed", rule) => rule.to_string(),
        (other, _) => other.to_string(),
    }
}

#[test]
fn each_models_capture_gets_exactly_the_guidelines_verdicts() {
    let dir = tempfile::tempdir().expect("tempdir");
    for m in MODELS {
        let rules = site(dir.path(), m.preset, m.options);
        let run = util::replay_alerts(
            &[&util::bundled(m.capture)],
            &["-w", "2", "--rules", rules.to_str().expect("utf-8")],
        );
        let flows = util::replay(
            &[&util::bundled(m.capture)],
            &["-w", "2", "--rules", rules.to_str().expect("utf-8")],
        );
        let flows: Vec<Map<String, Value>> = flows
            .flows
            .iter()
            .map(|l| match serde_json::from_str(l) {
                Ok(Value::Object(o)) => o,
                other => panic!("flow line {l}: {other:?}"),
            })
            .collect();
        // Every compliant flow was recorded and gets its rule.
        for &(src, dst, proto, port, rule) in COMMON_ALLOWED.iter().chain(m.allowed) {
            let f = flows
                .iter()
                .find(|f| {
                    s(f, "src_ip") == src
                        && s(f, "dst_ip") == dst
                        && s(f, "proto") == proto
                        && f.get("dst_port").and_then(Value::as_u64) == Some(port)
                })
                .unwrap_or_else(|| panic!("{}: no flow {src} -> {dst} {proto}/{port}", m.preset));
            assert_eq!(
                verdict_of(f),
                rule,
                "{}: {src} -> {dst} {proto}/{port}: {f:?}",
                m.preset
            );
        }
        // The alerts are exactly the planted violations and two management-path
        // bridges: the shared collector (My Number and internet: critical) and
        // the monitor (LGWAN and internet: high).
        let mut want: Vec<String> = COMMON_VIOLATIONS
            .iter()
            .chain(m.violations)
            .map(|(src, dst, port, sev)| {
                format!("separation_violation {sev} {src} -> {dst}:{port}")
            })
            .collect();
        want.push("zone_bridge critical 192.0.2.226 -> 192.0.2.130:0".into());
        want.push("zone_bridge high 192.0.2.227 -> 192.0.2.130:0".into());
        want.sort();
        let mut got: Vec<String> = run
            .alerts
            .iter()
            .map(|a| {
                format!(
                    "{} {} {} -> {}:{}",
                    s(a, "kind"),
                    s(a, "severity"),
                    s(a, "src_ip"),
                    s(a, "dest_ip"),
                    a.get("dest_port").and_then(Value::as_u64).unwrap_or(0)
                )
            })
            .collect();
        got.sort();
        assert_eq!(got, want, "{}: alerts:\n{}", m.preset, run.raw);
        for bridge in run.alerts.iter().filter(|a| s(a, "kind") == "zone_bridge") {
            assert_eq!(s(bridge, "rule"), "detect.hosts.zone_bridge.paths");
        }
    }
}

/// The opt-in rules are off by default: the same captures with no options raise
/// the transparent breakout (critical) and the β' SaaS flows (high).
#[test]
fn without_their_options_the_opt_in_flows_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (preset, capture, flows) in [
        (
            "alpha_prime",
            "model-alpha-prime.pcap",
            &[("192.0.2.70", "203.0.113.10", 443, "critical")][..],
        ),
        (
            "beta_prime",
            "model-beta-prime.pcap",
            &[
                ("192.0.2.130", "203.0.113.10", 443, "high"),
                ("192.0.2.167", "203.0.113.10", 443, "high"),
            ][..],
        ),
    ] {
        let rules = site(dir.path(), preset, &[]);
        let run = util::replay_alerts(
            &[&util::bundled(capture)],
            &["--rules", rules.to_str().expect("utf-8")],
        );
        for &(src, dst, port, sev) in flows {
            assert!(
                run.alerts.iter().any(|a| s(a, "src_ip") == src
                    && s(a, "dest_ip") == dst
                    && a.get("dest_port").and_then(Value::as_u64) == Some(port)
                    && s(a, "severity") == sev),
                "{preset}: {src} -> {dst}:{port} {sev}:\n{}",
                run.raw
            );
        }
    }
}
