//! Floor L6. The end-of-run summary: one struct, written as JSON (`--summary`) and as a
//! human table. Built from the pipeline's [`RunReport`].

use crate::capture::InputReport;
use crate::flow::{EndReason, PolicyStats};
use crate::pipeline::{RunReport, StopCause};
use crate::policy::Severity;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Flow counters.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct FlowSummary {
    pub created: u64,
    /// Finished flows by end reason.
    pub ended: BTreeMap<&'static str, u64>,
    pub evicted: u64,
    pub peak_active: u64,
    pub icmp_errors_matched: u64,
}

/// Fragment counters.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct FragSummary {
    pub first: u64,
    pub non_first: u64,
}

/// Everything a run counted. Keys are stable: scripts and tests read them.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub zonewatch_version: &'static str,
    /// "replay" or "live".
    pub mode: &'static str,
    /// "end_of_input", "signal" or "limit".
    pub stopped_by: &'static str,
    pub packets: u64,
    /// Captured bytes.
    pub bytes: u64,
    /// Bytes on the wire (original lengths).
    pub wire_bytes: u64,
    pub first_packet: Option<String>,
    pub last_packet: Option<String>,
    /// Capture time span, seconds.
    pub duration_secs: f64,
    /// Backward steps of the input's time beyond the reorder slack, which the
    /// sensor clock shifted (`capture::clock`): `count`, and the first ones
    /// listed with the frame index, the sensor time it got and the step size.
    pub clock_steps: ClockStepsSummary,
    /// Wall time the run took, seconds.
    pub elapsed_secs: f64,
    pub sources: Vec<InputReport>,
    pub link: BTreeMap<&'static str, u64>,
    pub network: BTreeMap<&'static str, u64>,
    pub transport: BTreeMap<&'static str, u64>,
    pub fragments: FragSummary,
    pub vlan_tagged: u64,
    pub vlan_stacked: u64,
    pub tunnels: BTreeMap<&'static str, u64>,
    /// Tunnel link ids (`link` in flow lines) and the outer endpoints they stand for.
    pub tunnel_links: BTreeMap<u16, String>,
    pub icmp_errors: u64,
    pub decode_failures: BTreeMap<&'static str, u64>,
    pub flows: FlowSummary,
    /// Packets not analysed, by reason: `queue_full` (worker behind, live only),
    /// `kernel` (libpcap ps_drop), `interface` (libpcap ps_ifdrop).
    pub drops: BTreeMap<&'static str, u64>,
    pub drops_per_worker: Vec<u64>,
    pub workers: usize,
    /// Flows by policy verdict, when `--rules` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicySummary>,
    /// The alert path, when `--alerts` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertSummary>,
}

/// `alerts` section: what the alert thread folded and wrote.
#[derive(Clone, Debug, Serialize)]
pub struct AlertSummary {
    /// Alerts written (first lines; `update` lines are counted in `updates`).
    pub written: u64,
    /// Update lines written (same `id` as an alert, with its final count).
    pub updates: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    /// Per detector: observations looked at, alerts, state evictions.
    pub detectors: BTreeMap<&'static str, crate::detect::DetectorStats>,
    /// Detector observations out of time order by more than the reorder slack.
    pub observations_late: u64,
    /// Observations released before every worker was past them because the
    /// merge was full (a flood): alerts may then depend on the worker count.
    pub observations_forced: u64,
    pub by_severity: SeverityCounts,
    pub violating_flows: u64,
    pub folded_by_flow: u64,
    pub folded_by_source: u64,
    pub closed_early: u64,
    pub late: u64,
    pub fold_window_secs: f64,
    /// `--evidence DIR`: files written and what was cut, by reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<crate::evidence::EvidenceStats>,
}

impl AlertSummary {
    pub fn new(a: &crate::pipeline::analysis::AnalysisStats, window_ns: u64) -> AlertSummary {
        let s = &a.separation;
        let sev = |x: Severity| a.written_by_severity.get(x as usize).copied().unwrap_or(0);
        AlertSummary {
            written: a.written_by_kind.values().sum(),
            updates: s.updates,
            by_kind: a.written_by_kind.clone(),
            detectors: a.detectors.iter().cloned().collect(),
            observations_late: a.late,
            observations_forced: a.forced,
            by_severity: SeverityCounts {
                critical: sev(Severity::Critical),
                high: sev(Severity::High),
                medium: sev(Severity::Medium),
                low: sev(Severity::Low),
                info: sev(Severity::Info),
            },
            violating_flows: s.violating_flows,
            folded_by_flow: s.folded_by_flow,
            folded_by_source: s.folded_by_source,
            closed_early: s.closed_early,
            late: s.late,
            fold_window_secs: window_ns as f64 / 1e9,
            evidence: a.evidence.clone(),
        }
    }

    fn human(&self, s: &mut String) {
        let b = &self.by_severity;
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(
            s,
            "  alerts         {} written (critical {}, high {}, medium {}, low {}, info {}){}",
            self.written,
            b.critical,
            b.high,
            b.medium,
            b.low,
            b.info,
            if kinds.is_empty() {
                String::new()
            } else {
                format!(": {}", kinds.join(", "))
            }
        );
        if self.violating_flows > 0 {
            let _ = writeln!(
                s,
                "  separation     {} violating flows; folded {} by flow, {} by source (window {} s); {} update lines",
                self.violating_flows, self.folded_by_flow, self.folded_by_source, self.fold_window_secs, self.updates
            );
        }
        if self.observations_forced > 0 {
            let _ = writeln!(
                s,
                "                 {} observations released early: the merge was full (flood)",
                self.observations_forced
            );
        }
        if self.closed_early + self.late + self.observations_late > 0 {
            let _ = writeln!(
                s,
                "                 closed early (too many open) {}, late (input out of order) {}",
                self.closed_early,
                self.late + self.observations_late
            );
        }
        if let Some(e) = &self.evidence {
            // The cut counts by their JSON names (alerts.evidence), non-zero only.
            let cut: Vec<String> = e
                .cuts()
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            let _ = writeln!(
                s,
                "  evidence       {} files, {} packets, {} bytes{}",
                e.files,
                e.packets,
                e.bytes,
                if cut.is_empty() {
                    String::new()
                } else {
                    format!("; cut: {}", cut.join(", "))
                }
            );
        }
    }
}

use crate::model::time::rfc3339;

impl Summary {
    pub fn from_report(r: &RunReport) -> Summary {
        let d = r.decode.summary();
        let mut drops = BTreeMap::new();
        let queue: u64 = r.queue_drops.iter().sum();
        if queue > 0 || r.live {
            drops.insert("queue_full", queue);
        }
        for input in &r.source.inputs {
            if let Some(l) = input.live {
                *drops.entry("kernel").or_insert(0) += l.dropped;
                *drops.entry("interface").or_insert(0) += l.if_dropped;
            }
        }
        let span = match (r.first_ts_ns, r.last_ts_ns) {
            (Some(a), Some(b)) if b >= a => (b - a) as f64 / 1e9,
            _ => 0.0,
        };
        let f = &r.flows;
        Summary {
            zonewatch_version: env!("CARGO_PKG_VERSION"),
            mode: if r.live { "live" } else { "replay" },
            stopped_by: match r.stop {
                StopCause::EndOfInput => "end_of_input",
                StopCause::Signal => "signal",
                StopCause::Limit => "limit",
            },
            packets: r.frames,
            bytes: r.bytes,
            wire_bytes: r.wire_bytes,
            first_packet: r.first_ts_ns.map(rfc3339),
            last_packet: r.last_ts_ns.map(rfc3339),
            duration_secs: span,
            clock_steps: ClockStepsSummary {
                count: r.clock_steps.count,
                listed: r
                    .clock_steps
                    .listed
                    .iter()
                    .map(|st| ClockStepSummary {
                        frame: st.frame,
                        at: rfc3339(st.at_ns),
                        back_secs: st.back_ns as f64 / 1e9,
                    })
                    .collect(),
            },
            elapsed_secs: r.elapsed.as_secs_f64(),
            sources: r.source.inputs.clone(),
            link: d.link.iter().map(|(k, c)| (*k, c.frames)).collect(),
            network: d.network,
            transport: d.transport,
            fragments: FragSummary {
                first: d.fragments.first,
                non_first: d.fragments.non_first,
            },
            vlan_tagged: d.vlan_tagged,
            vlan_stacked: d.vlan_stacked,
            tunnels: d.tunnels,
            tunnel_links: r.links.iter().cloned().collect(),
            icmp_errors: d.icmp_errors,
            decode_failures: d.decode_failures,
            flows: FlowSummary {
                created: f.created,
                ended: EndReason::ALL
                    .iter()
                    .map(|e| (e.as_str(), f.ended_by(*e)))
                    .collect(),
                evicted: f.evicted,
                peak_active: f.peak_active,
                icmp_errors_matched: f.icmp_errors_matched,
            },
            drops,
            drops_per_worker: r.queue_drops.clone(),
            workers: r.workers,
            policy: None,
            alerts: None,
        }
    }

    /// The human-readable summary printed at the end of a run.
    pub fn to_human(&self) -> String {
        let mut s = String::new();
        let rate = if self.elapsed_secs > 0.0 {
            self.packets as f64 / self.elapsed_secs
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "zonewatch {}: {} packets, {} bytes captured ({} on the wire) in {:.3} s ({:.0} packets/s, {} workers)",
            self.mode,
            self.packets,
            self.bytes,
            self.wire_bytes,
            self.elapsed_secs,
            rate,
            self.workers
        );
        if let (Some(a), Some(b)) = (&self.first_packet, &self.last_packet) {
            let _ = writeln!(
                s,
                "  capture time   {a} .. {b} ({:.3} s)",
                self.duration_secs
            );
        }
        if self.clock_steps.count > 0 {
            let first: Vec<String> = self
                .clock_steps
                .listed
                .iter()
                .take(3)
                .map(|st| format!("frame {} back {:.3} s at {}", st.frame, st.back_secs, st.at))
                .collect();
            let _ = writeln!(
                s,
                "  clock steps    {} (input time went back; later packets shifted forward by the step): {}",
                self.clock_steps.count,
                first.join(", ")
            );
        }
        if self.stopped_by != "end_of_input" {
            let _ = writeln!(s, "  stopped by     {}", self.stopped_by);
        }
        line(&mut s, "link", &self.link);
        line(&mut s, "network", &self.network);
        line(&mut s, "transport", &self.transport);
        let _ = writeln!(
            s,
            "  fragments      first {}, non-first {}",
            self.fragments.first, self.fragments.non_first
        );
        let _ = writeln!(
            s,
            "  vlan           tagged {}, stacked {}",
            self.vlan_tagged, self.vlan_stacked
        );
        line(&mut s, "tunnels", &self.tunnels);
        if self.icmp_errors > 0 {
            let _ = writeln!(
                s,
                "  icmp errors    {} ({} matched to their flow)",
                self.icmp_errors, self.flows.icmp_errors_matched
            );
        }
        line(&mut s, "decode errors", &self.decode_failures);
        let _ = writeln!(
            s,
            "  flows          created {}, evicted {}, peak active {}",
            self.flows.created, self.flows.evicted, self.flows.peak_active
        );
        line(&mut s, "flows ended", &self.flows.ended);
        line(&mut s, "drops", &self.drops);
        if let Some(p) = &self.policy {
            p.human(&mut s);
        }
        if let Some(a) = &self.alerts {
            a.human(&mut s);
        }
        for src in &self.sources {
            let _ = write!(
                s,
                "  source         {} ({}, {}): {} frames, {} bytes",
                src.name,
                src.format,
                src.link_types.join("/"),
                src.frames,
                src.bytes
            );
            if let Some(l) = &src.live {
                let _ = write!(
                    s,
                    "; libpcap received {}, dropped {}, interface dropped {}",
                    l.received, l.dropped, l.if_dropped
                );
            }
            let _ = writeln!(s);
            if let Some(why) = &src.stopped_early {
                let _ = writeln!(s, "                 STOPPED EARLY: {why}");
            }
            for (why, n) in &src.skipped {
                let _ = writeln!(s, "                 skipped {n}: {why}");
            }
        }
        s
    }
}

/// One "name n, name n" line, leaving out zeros; "none" when all are zero.
fn line<K: std::fmt::Display>(s: &mut String, title: &str, map: &BTreeMap<K, u64>) {
    let parts: Vec<String> = map
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let body = if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    };
    let _ = writeln!(s, "  {title:<14} {body}");
}

/// `policy` section of the summary: flows created, by verdict.
#[derive(Clone, Debug, Serialize)]
pub struct PolicySummary {
    pub flows: VerdictCounts,
    pub violations_by_severity: SeverityCounts,
    /// SIGHUP reloads that took effect / that failed (the running rules stayed).
    pub reloads: u64,
    pub reload_failures: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct VerdictCounts {
    pub allowed: u64,
    pub violation: u64,
    pub unknown: u64,
    /// Segment-local flows (sender's zone → `local`), judged by no rule.
    pub local: u64,
}

/// `Summary::clock_steps`.
#[derive(Clone, Debug, Serialize)]
pub struct ClockStepsSummary {
    pub count: u64,
    pub listed: Vec<ClockStepSummary>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClockStepSummary {
    /// Number of the frame in input order, from 1 (as TShark numbers frames).
    pub frame: u64,
    /// The sensor time it was given (RFC 3339).
    pub at: String,
    /// How far its own timestamp was before that, seconds.
    pub back_secs: f64,
}

/// Most severe first.
#[derive(Clone, Debug, Serialize)]
pub struct SeverityCounts {
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
    pub info: u64,
}

impl PolicySummary {
    pub fn new(p: &PolicyStats) -> PolicySummary {
        let sev = |s: Severity| {
            p.violations_by_severity
                .get(s as usize)
                .copied()
                .unwrap_or(0)
        };
        PolicySummary {
            flows: VerdictCounts {
                allowed: p.allowed,
                violation: p.violation,
                unknown: p.unknown,
                local: p.local,
            },
            violations_by_severity: SeverityCounts {
                critical: sev(Severity::Critical),
                high: sev(Severity::High),
                medium: sev(Severity::Medium),
                low: sev(Severity::Low),
                info: sev(Severity::Info),
            },
            reloads: 0,
            reload_failures: 0,
        }
    }

    /// Two lines for the human summary.
    fn human(&self, s: &mut String) {
        let f = &self.flows;
        let _ = writeln!(
            s,
            "  policy         flows allowed {}, violation {}, unknown {}, segment-local {}",
            f.allowed, f.violation, f.unknown, f.local
        );
        let v = &self.violations_by_severity;
        let parts: Vec<String> = [
            ("critical", v.critical),
            ("high", v.high),
            ("medium", v.medium),
            ("low", v.low),
            ("info", v.info),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
        let _ = writeln!(
            s,
            "  violations     {}",
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(", ")
            }
        );
        if self.reloads + self.reload_failures > 0 {
            let _ = writeln!(
                s,
                "  rule reloads   {} applied, {} failed (previous rules kept)",
                self.reloads, self.reload_failures
            );
        }
    }
}
