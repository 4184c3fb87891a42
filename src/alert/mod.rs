//! Floor L3. Alerts: what the sensor tells the security team, as JSON lines (`--alerts`).
//!
//! Owns the alert record ([`Alert`], typed: the line is its `Serialize`, made
//! where alerts are written, `crate::sink`, floor L4; per-kind facts in
//! [`evidence`]) and the deterministic folding of repeated violations
//! ([`fold::Folder`]). It leaves alone: where alerts go (`crate::sink`), how
//! flows are tracked and judged, and the analysis thread that feeds the
//! folding in packet-time order
//! (`crate::pipeline::analysis::serve`).
//!
//! # `separation_violation`
//!
//! One alert per group of violating flows with the same (initiator address,
//! responder address, protocol, responder port, rule) whose first flows start
//! within the fold window of the group's first flow (`--alert-window-secs`,
//! packet time). The line is written when the window closes, so its `count`
//! is final. Source = initiator: replies belong to the initiator's flow and an
//! ICMP error about a known flow joins that flow, so neither alerts.
//!
//! A scan across a zone boundary changes address or port on every flow, so
//! per-group folding alone would still write a line per target. Each
//! initiator therefore gets at most `--alert-max-per-source` groups per rule
//! and window; further targets fold into one `folded_by: "source"` alert
//! carrying the number of distinct targets and ports (exact up to
//! [`fold::DISTINCT_CAP`]). Detecting the scan itself is the detectors' job.
//!
//! | key | value |
//! |---|---|
//! | `timestamp` | packet time of the group's first flow, RFC 3339 UTC, µs |
//! | `kind` | `"separation_violation"` |
//! | `severity` | `"info"` .. `"critical"`, from the policy's `[severity]` table |
//! | `src_ip`, `src_port`, `dest_ip`, `dest_port` | the group's first flow, initiator → responder (ICMP: Community ID port equivalents, as in flow lines) |
//! | `proto` | as in flow lines (`"tcp"`, `"udp"`, `"icmp"`, `"ipv6-icmp"`, or the number) |
//! | `vlan` | VLAN ids, outermost first (`[]` untagged) |
//! | `src_zone`, `dest_zone` | zone ids (`"mynumber.term"`) |
//! | `rule` | the `[severity]` entry that decided the severity (`"mynumber->*"`), or `"default"` |
//! | `reason` | one sentence: which zones, that no allow rule matched, and the severity entry |
//! | `community_id` | Community ID v1 of the first flow |
//! | `count` | violating flows folded into this alert (≥ 1) |
//! | `first_seen`, `last_seen` | the group's first packet, and the last packet of its flows seen before the line is written (to within 2^30 ns: [`crate::flow::SEEN_SHIFT`]) |
//! | `folded_by` | `"flow"` (same 5-tuple minus source port) or `"source"` (the per-source cap) |
//! | `distinct_dst`, `distinct_dst_port` | `folded_by: "source"` only: targets and ports folded |

pub mod evidence;
pub mod fold;
mod report;

pub use evidence::Evidence;
pub use report::render_dry_run;

use crate::model::community_id::community_id;
use crate::model::proto::{ser_protocol, Protocol};
use crate::model::severity::ser_severity;
use crate::model::time::ser_rfc3339;
use crate::packet::FlowKey;
use crate::policy::{Policy, Severity, Verdict};
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;

/// One violating flow, as the alert thread receives it from a worker.
#[derive(Clone, Debug)]
pub struct Event {
    /// Packet time of the flow's first packet, ns since the Unix epoch.
    pub ts_ns: u64,
    /// Oriented initiator → responder (ICMP ports: port equivalents).
    pub key: FlowKey,
    /// The flow's verdict (a violation).
    pub verdict: Verdict,
    /// The policy that judged it (zone and rule names come from here).
    pub policy: Arc<Policy>,
    /// Input its first packet came from.
    pub source: u16,
}

/// Alert kinds.
pub const SEPARATION_VIOLATION: &str = "separation_violation";

/// One alert, typed: times are packet time (ns since the Unix epoch), the
/// protocol a number, the evidence a struct per kind ([`Evidence`]). It
/// derives `Serialize` for the writer (`crate::pipeline::analysis`, the
/// sinks), which makes it one alert line; the text forms (RFC 3339 with µs,
/// protocol and severity names) come from `crate::model`'s `serialize_with`
/// helpers. Keys that do not apply to a kind are left out (a host sweep has
/// no single destination, a DoS episode no single source).
#[derive(Clone, Debug, Serialize, PartialEq, Default)]
pub struct Alert {
    /// Packet time the alert starts at, ns (written RFC 3339, µs).
    #[serde(serialize_with = "ser_rfc3339")]
    pub timestamp: u64,
    /// Unique per alert, the same for the same traffic in any run (given by the writer: `crate::pipeline::analysis::stamp_id`).
    pub id: String,
    /// Always `"alert"` once written (Suricata EVE's `event_type`).
    pub event_type: &'static str,
    /// The sensor's name (`--sensor`, default the host name), as EVE's `host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The capture source the alert's (first) evidence came from: the
    /// interface, or the replayed input's name (`NAME=PATH`, else the file name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_iface: Option<String>,
    pub kind: &'static str,
    #[serde(serialize_with = "ser_severity")]
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(rename = "dest_ip", skip_serializing_if = "Option::is_none")]
    pub dst_ip: Option<IpAddr>,
    #[serde(rename = "dest_port", skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    #[serde(
        serialize_with = "ser_protocol",
        skip_serializing_if = "Option::is_none"
    )]
    pub proto: Option<Protocol>,
    pub vlan: Vec<u16>,
    pub src_zone: Option<String>,
    #[serde(rename = "dest_zone")]
    pub dst_zone: Option<String>,
    pub rule: String,
    pub reason: String,
    /// Community ID v1 of the (first) flow, computed when the alert is made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub community_id: Option<String>,
    pub count: u64,
    /// 0 on an alert's first line; 1 on the line that updates it with its
    /// final `count` and `last_seen` (same `id`), written when its fold window
    /// closes and only if more flows folded in or its flows stayed active.
    pub update: u32,
    /// Packet time, ns (written RFC 3339, µs).
    #[serde(serialize_with = "ser_rfc3339")]
    pub first_seen: u64,
    /// Packet time, ns (written RFC 3339, µs).
    #[serde(serialize_with = "ser_rfc3339")]
    pub last_seen: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folded_by: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_dst: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_dst_port: Option<u64>,
    /// Kind-specific facts (targets and ports counted, samples, rates...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// `--evidence DIR`: the pcap file holding this alert's packets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_pcap: Option<String>,
    /// The fold group this alert closes, whose flows the evidence store has
    /// been collecting since the group opened (not written).
    #[serde(skip)]
    pub evidence_slot: Option<u64>,
    /// Input the alert's (first) flow came from, when the producer knows it
    /// (not written: `in_iface` is its name).
    #[serde(skip)]
    pub source: Option<u16>,
    /// An update that changes nothing (`update` > 0): not written; it only
    /// tells the writer and the evidence store that the group closed.
    #[serde(skip)]
    pub silent: bool,
    /// A detector's alert group (unique per detector): a later line of the
    /// same group (`update` > 0) repeats the first line's `id` (not written).
    #[serde(skip)]
    pub group: Option<u64>,
}

/// Counts of the alert path, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AlertStats {
    /// Violating flows the workers reported.
    pub violating_flows: u64,
    /// Alerts written (their first lines; groups opened).
    pub alerts: u64,
    /// Update lines written (a group closed with more flows or later activity
    /// than its first line said).
    pub updates: u64,
    /// Alerts by severity, `Severity as usize` (info .. critical).
    pub by_severity: [u64; 5],
    /// Flows folded into an existing alert (same group).
    pub folded_by_flow: u64,
    /// Flows folded by the per-source cap.
    pub folded_by_source: u64,
    /// Groups written before their window closed because `max_open` groups were open.
    pub closed_early: u64,
    /// Flows that arrived after later flows had already been folded (input
    /// timestamps out of order by more than the reorder slack).
    pub late: u64,
}

/// The `rule` and `reason` of a violation.
fn rule_and_reason(p: &Policy, v: &Verdict) -> (String, String, Option<String>, Option<String>) {
    match v {
        Verdict::Violation { severity, reason } => {
            let (s, d) = (p.zone(reason.src_zone), p.zone(reason.dst_zone));
            let entry = p.severity_entry(reason.src_zone, reason.dst_zone);
            let reason_text = format!(
                "no allow rule permits {} -> {}; [severity] {} = {}",
                s.id,
                d.id,
                match &entry {
                    Some(k) => format!("{k:?}"),
                    None => "default".to_string(),
                },
                severity.as_str()
            );
            (
                entry.unwrap_or_else(|| "default".to_string()),
                reason_text,
                Some(s.id.clone()),
                Some(d.id.clone()),
            )
        }
        other => (other.kind_str().to_string(), p.describe(other), None, None),
    }
}

/// Build the alert line of a group.
pub(crate) fn make_alert(
    first: &Event,
    last_ns: u64,
    count: u64,
    by_source: Option<(u64, u64)>,
) -> Alert {
    let k = &first.key;
    let severity = match first.verdict {
        Verdict::Violation { severity, .. } => severity,
        _ => Severity::Info,
    };
    let (rule, reason, src_zone, dst_zone) = rule_and_reason(&first.policy, &first.verdict);
    Alert {
        timestamp: first.ts_ns,
        first_seen: first.ts_ns,
        kind: SEPARATION_VIOLATION,
        severity,
        src_ip: Some(k.src_ip()),
        src_port: Some(k.sport),
        dst_ip: Some(k.dst_ip()),
        dst_port: Some(k.dport),
        proto: Some(Protocol::Ip(k.proto)),
        vlan: k.vlan.iter().copied().filter(|&v| v != 0).collect(),
        src_zone,
        dst_zone,
        rule,
        reason,
        community_id: Some(community_id(k)),
        count,
        last_seen: last_ns,
        folded_by: Some(if by_source.is_some() {
            "source"
        } else {
            "flow"
        }),
        distinct_dst: by_source.map(|(d, _)| d),
        distinct_dst_port: by_source.map(|(_, p)| p),
        source: Some(first.source),
        ..Alert::default()
    }
}

#[cfg(test)]
mod tests;
