//! Floor L1 (`policy`). Which `[severity]` entry decided a violation's severity (the `rule` of a
//! `separation_violation` alert).

use super::{Policy, Sel, ZoneIdx};

impl Policy {
    /// The `[severity]` entry that gives unallowed traffic from `s` to `d` its
    /// severity, as `"INITIATOR->RESPONDER"` (zone ids or `*`), or `None` when
    /// the default applies. Same choice as [`Policy::severity_for`].
    pub fn severity_entry(&self, s: ZoneIdx, d: ZoneIdx) -> Option<String> {
        let mut best: Option<((usize, usize), (Sel, Sel))> = None;
        for &(a, b, _) in &self.severity {
            if let (Some(da), Some(db)) = (self.sel_depth(a, s), self.sel_depth(b, d)) {
                if best.is_none_or(|(k, _)| (da, db) < k) {
                    best = Some(((da, db), (a, b)));
                }
            }
        }
        let name = |x: Sel| match x {
            Sel::Any => "*".to_string(),
            Sel::Zone(z) => self.zone(z).id.clone(),
        };
        best.map(|(_, (a, b))| format!("{}->{}", name(a), name(b)))
    }
}
