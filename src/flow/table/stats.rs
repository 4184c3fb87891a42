//! Floor L2 (`flow`). The table's counters: [`FlowStats`], with the verdict counts of new flows
//! in it ([`PolicyStats`]). Plain integers owned by one worker's table,
//! merged at the end of a run for the summary; metrics copy their deltas.
//!
//! Floor L2 (flow). Re-exported as `flow::table::{FlowStats, PolicyStats}`
//! and `flow::{FlowStats, PolicyStats}`.

use crate::flow::record::EndReason;
use crate::policy::{Severity, Verdict};

/// Counters of one table (plain integers; merged into the summary).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// IPv4/IPv6 packets given to `update` (including ICMP errors).
    pub packets: u64,
    /// ARP packets (no flow; left to detectors).
    pub arp: u64,
    /// Packets that are neither IP nor ARP (ignored).
    pub non_ip: u64,
    /// Flows created.
    pub created: u64,
    /// Flows ended, by reason (`EndReason as usize`).
    pub ended: [u64; EndReason::COUNT],
    /// Flows evicted under `max_flows` (also in `ended[Evicted]`).
    pub evicted: u64,
    /// Flows currently tracked.
    pub active: u64,
    /// Highest `active` seen. After `merge`, the sum of the tables' peaks (an
    /// upper bound of the combined peak).
    pub peak_active: u64,
    /// ICMP errors counted on the flow they quote.
    pub icmp_errors_matched: u64,
    /// Flows created, by policy verdict (all zero without a policy).
    pub policy: PolicyStats,
    /// Live flows judged again under a new policy by
    /// [`FlowTable::swap_policy`](super::FlowTable::swap_policy) because every
    /// other generation slot still had live flows (not counted again in
    /// `policy`).
    pub policy_rejudged: u64,
}

/// Flows created by a table with a policy, by verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyStats {
    pub allowed: u64,
    pub violation: u64,
    pub unknown: u64,
    /// Segment-local flows ([`Verdict::Local`]): judged by no rule.
    pub local: u64,
    /// Violations by severity (`Severity as usize`, info first).
    pub violations_by_severity: [u64; Severity::ALL.len()],
}

impl PolicyStats {
    /// Count one flow's verdict.
    #[inline]
    pub fn count(&mut self, v: &Verdict) {
        match v {
            Verdict::Allowed { .. } => self.allowed += 1,
            Verdict::Violation { severity, .. } => {
                self.violation += 1;
                if let Some(n) = self.violations_by_severity.get_mut(*severity as usize) {
                    *n += 1;
                }
            }
            Verdict::Unknown => self.unknown += 1,
            Verdict::Local => self.local += 1,
        }
    }

    pub fn merge(&mut self, o: &PolicyStats) {
        self.allowed += o.allowed;
        self.violation += o.violation;
        self.unknown += o.unknown;
        self.local += o.local;
        for (a, b) in self
            .violations_by_severity
            .iter_mut()
            .zip(o.violations_by_severity.iter())
        {
            *a += b;
        }
    }
}

impl FlowStats {
    pub fn ended_by(&self, reason: EndReason) -> u64 {
        self.ended[reason as usize]
    }

    /// Add another table's counters to these.
    pub fn merge(&mut self, o: &FlowStats) {
        self.packets += o.packets;
        self.arp += o.arp;
        self.non_ip += o.non_ip;
        self.created += o.created;
        for (a, b) in self.ended.iter_mut().zip(o.ended.iter()) {
            *a += b;
        }
        self.evicted += o.evicted;
        self.active += o.active;
        self.peak_active += o.peak_active;
        self.icmp_errors_matched += o.icmp_errors_matched;
        self.policy.merge(&o.policy);
        self.policy_rejudged += o.policy_rejudged;
    }
}
