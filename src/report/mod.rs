//! Floor L6. The end-of-run report (`--report FILE.json`) and the richer human summary
//! (`--lang en|ja`): packets, flows and bytes; the zone × zone matrix with
//! verdicts; alerts by kind and severity; top talkers per zone pair; capture
//! anomalies (early stops, decode failures, drops, skipped records, time gaps,
//! time going backwards). Keys are stable English snake_case (docs/report.md);
//! only the human text is translated.
//!
//! Owns the accumulators the pipeline feeds (`acc`: per worker one map
//! update per finished flow, on the capture thread one compare per packet) and
//! the rendering. Leaves alone: the summary's own JSON (`summary`), which this
//! report repeats in part so that the two always agree.

pub mod human;
#[cfg(test)]
mod tests;

pub use crate::flow::tally::{
    GapTracker, PairAcc, ReportData, Traffic, ZoneAcc, DEFAULT_GAP_NS, MAX_GAPS_LISTED,
    MAX_TALKERS_PER_PAIR, MAX_TALKERS_PER_WORKER, NO_ZONE, TOP_TALKERS,
};
pub use human::{render, Lang};

use crate::capture::InputReport;
use crate::model::time::rfc3339;
use crate::policy::{Policy, Severity};
use crate::summary::{SeverityCounts, Summary};
use serde::Serialize;
use std::collections::BTreeMap;

/// Everything `--report` writes. Keys are stable (docs/report.md).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub zonewatch_version: &'static str,
    /// "replay" or "live".
    pub mode: &'static str,
    /// "end_of_input", "signal" or "limit".
    pub stopped_by: &'static str,
    pub inputs: Vec<InputReport>,
    pub time: TimeSpan,
    pub totals: Totals,
    pub zone_matrix: ZoneMatrix,
    /// Names of the zones in `zone_matrix` / `top_talkers`, as the rules give them.
    pub zone_names: BTreeMap<String, ZoneName>,
    pub top_talkers: Vec<PairTalkers>,
    /// With `--alerts` only (as the summary's `alerts`); `null` otherwise.
    pub alerts: Option<AlertCounts>,
    pub anomalies: Anomalies,
}

#[derive(Clone, Debug, Serialize)]
pub struct TimeSpan {
    pub first_packet: Option<String>,
    pub last_packet: Option<String>,
    pub duration_secs: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Totals {
    pub packets: u64,
    /// Captured bytes.
    pub bytes: u64,
    /// Bytes on the wire (original lengths).
    pub wire_bytes: u64,
    /// Flows created (= finished: every flow ends, at the latest at the end of the run).
    pub flows: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ZoneMatrix {
    /// Whether `--rules` was given; without rules `pairs` is empty.
    pub rules: bool,
    /// The zone id standing for "in no zone".
    pub no_zone: &'static str,
    pub pairs: Vec<MatrixEntry>,
}

/// A zone's names from the rules (`name_ja`, `name_en`), when given.
#[derive(Clone, Debug, Serialize)]
pub struct ZoneName {
    pub ja: Option<String>,
    pub en: Option<String>,
}

/// One (initiator zone, responder zone) pair.
#[derive(Clone, Debug, Serialize)]
pub struct MatrixEntry {
    pub src_zone: String,
    pub dst_zone: String,
    pub flows: u64,
    /// Both directions.
    pub packets: u64,
    /// Both directions, bytes on the wire.
    pub bytes: u64,
    pub allowed: u64,
    pub violation: u64,
    pub unknown: u64,
    /// Segment-local flows: the pair is (sender's zone, `local`).
    pub local: u64,
    pub violations_by_severity: SeverityCounts,
    /// "allowed", "violation", "local", "mixed" or "unknown".
    pub verdict: &'static str,
    /// Highest violation severity, `null` without violations.
    pub max_severity: Option<&'static str>,
}

/// The top initiators of one zone pair.
#[derive(Clone, Debug, Serialize)]
pub struct PairTalkers {
    pub src_zone: String,
    pub dst_zone: String,
    /// False when some initiators were not tracked (the per-pair or per-worker
    /// cap was reached): their traffic is in `untracked`, and a listed
    /// address's numbers may be low.
    pub complete: bool,
    /// Distinct initiators tracked.
    pub initiators: u64,
    pub untracked: Traffic,
    pub top: Vec<Talker>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Talker {
    pub address: String,
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
}

/// Alert lines written (same numbers as the summary's `alerts`).
#[derive(Clone, Debug, Serialize)]
pub struct AlertCounts {
    pub written: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    pub by_severity: SeverityCounts,
    /// `--evidence DIR`: files written and what was cut (as the summary's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<crate::evidence::EvidenceStats>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Anomalies {
    /// Inputs that ended before their end (truncated or damaged files).
    pub stopped_early: Vec<StoppedEarly>,
    pub decode_failures: BTreeMap<&'static str, u64>,
    pub drops: BTreeMap<&'static str, u64>,
    /// Records skipped, per input and reason.
    pub skipped: Vec<Skipped>,
    pub gaps: Gaps,
    /// Packets whose time is before the previous packet's (merged stream).
    pub time_backwards: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct StoppedEarly {
    pub input: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub input: String,
    pub reason: String,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Gaps {
    pub threshold_secs: f64,
    /// Every gap longer than the threshold.
    pub count: u64,
    /// The first [`MAX_GAPS_LISTED`].
    pub listed: Vec<GapEntry>,
}

#[derive(Clone, Debug, Serialize)]
pub struct GapEntry {
    pub from: String,
    pub to: String,
    pub secs: f64,
}

fn severity_counts(a: &[u64; 5]) -> SeverityCounts {
    let s = |x: Severity| a.get(x as usize).copied().unwrap_or(0);
    SeverityCounts {
        critical: s(Severity::Critical),
        high: s(Severity::High),
        medium: s(Severity::Medium),
        low: s(Severity::Low),
        info: s(Severity::Info),
    }
}

impl MatrixEntry {
    fn new(src: &str, dst: &str, p: &PairAcc) -> MatrixEntry {
        let v = &p.verdicts;
        let verdict = match (v.allowed > 0, v.violation > 0, v.unknown > 0, v.local > 0) {
            (true, false, false, false) => "allowed",
            (false, true, false, false) => "violation",
            (false, false, false, true) => "local",
            (false, false, _, false) => "unknown",
            _ => "mixed",
        };
        let max_severity = Severity::ALL
            .iter()
            .rev()
            .find(|s| {
                v.violations_by_severity
                    .get(**s as usize)
                    .is_some_and(|n| *n > 0)
            })
            .map(|s| s.as_str());
        MatrixEntry {
            src_zone: src.to_string(),
            dst_zone: dst.to_string(),
            flows: p.traffic.flows,
            packets: p.traffic.packets,
            bytes: p.traffic.bytes,
            allowed: v.allowed,
            violation: v.violation,
            unknown: v.unknown,
            local: v.local,
            violations_by_severity: severity_counts(&v.violations_by_severity),
            verdict,
            max_severity,
        }
    }
}

impl Report {
    /// Build from the run's summary (its counts are repeated, not recounted)
    /// and the report's own accumulators.
    /// `policy` (the rules at start, if any) only names the zones.
    pub fn new(s: &Summary, data: &ReportData, policy: Option<&Policy>) -> Report {
        let rules = s.policy.is_some();
        let pairs = if rules {
            data.pairs
                .iter()
                .map(|((a, b), p)| MatrixEntry::new(a, b, p))
                .collect()
        } else {
            Vec::new()
        };
        let mut zone_names = BTreeMap::new();
        if let Some(p) = policy {
            for (a, b) in data.pairs.keys() {
                for id in [a, b] {
                    if let Some(z) = p.zone_by_id(id).map(|z| p.zone(z)) {
                        if z.name_ja.is_some() || z.name_en.is_some() {
                            zone_names.insert(
                                id.clone(),
                                ZoneName {
                                    ja: z.name_ja.clone(),
                                    en: z.name_en.clone(),
                                },
                            );
                        }
                    }
                }
            }
        }
        let top_talkers = data
            .pairs
            .iter()
            .filter(|(_, p)| p.traffic.flows > 0)
            .map(|((a, b), p)| PairTalkers {
                src_zone: a.clone(),
                dst_zone: b.clone(),
                complete: p.untracked.flows == 0,
                initiators: p.talkers.len() as u64,
                untracked: p.untracked,
                top: p
                    .top(TOP_TALKERS)
                    .into_iter()
                    .map(|(ip, t)| Talker {
                        address: ip.to_string(),
                        flows: t.flows,
                        packets: t.packets,
                        bytes: t.bytes,
                    })
                    .collect(),
            })
            .collect();
        let gaps = match &data.gaps {
            Some(g) => Gaps {
                threshold_secs: g.threshold_ns() as f64 / 1e9,
                count: g.count,
                listed: g
                    .gaps
                    .iter()
                    .map(|x| GapEntry {
                        from: rfc3339(x.from_ns),
                        to: rfc3339(x.to_ns),
                        secs: x.to_ns.saturating_sub(x.from_ns) as f64 / 1e9,
                    })
                    .collect(),
            },
            None => Gaps {
                threshold_secs: DEFAULT_GAP_NS as f64 / 1e9,
                count: 0,
                listed: Vec::new(),
            },
        };
        Report {
            zonewatch_version: s.zonewatch_version,
            mode: s.mode,
            stopped_by: s.stopped_by,
            inputs: s.sources.clone(),
            time: TimeSpan {
                first_packet: s.first_packet.clone(),
                last_packet: s.last_packet.clone(),
                duration_secs: s.duration_secs,
            },
            totals: Totals {
                packets: s.packets,
                bytes: s.bytes,
                wire_bytes: s.wire_bytes,
                flows: s.flows.created,
            },
            zone_matrix: ZoneMatrix {
                rules,
                no_zone: NO_ZONE,
                pairs,
            },
            zone_names,
            top_talkers,
            alerts: s.alerts.as_ref().map(|a| AlertCounts {
                written: a.written,
                by_kind: a.by_kind.clone(),
                by_severity: a.by_severity.clone(),
                evidence: a.evidence.clone(),
            }),
            anomalies: Anomalies {
                stopped_early: s
                    .sources
                    .iter()
                    .filter_map(|i| {
                        i.stopped_early.as_ref().map(|r| StoppedEarly {
                            input: i.name.clone(),
                            reason: r.clone(),
                        })
                    })
                    .collect(),
                decode_failures: s
                    .decode_failures
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(k, n)| (*k, *n))
                    .collect(),
                drops: s
                    .drops
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(k, n)| (*k, *n))
                    .collect(),
                skipped: s
                    .sources
                    .iter()
                    .flat_map(|i| {
                        i.skipped.iter().map(|(r, n)| Skipped {
                            input: i.name.clone(),
                            reason: r.clone(),
                            count: *n,
                        })
                    })
                    .collect(),
                gaps,
                time_backwards: data.gaps.as_ref().map_or(0, |g| g.backwards),
            },
        }
    }

    /// Whether any anomaly was seen.
    pub fn has_anomalies(&self) -> bool {
        let a = &self.anomalies;
        !a.stopped_early.is_empty()
            || !a.decode_failures.is_empty()
            || !a.drops.is_empty()
            || !a.skipped.is_empty()
            || a.gaps.count > 0
            || a.time_backwards > 0
    }
}
