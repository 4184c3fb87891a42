//! The `zonewatch check` report: warnings, then the effective zone × zone matrix
//! over top-level zones, then which allow rules open each zone pair.

use super::{Diagnostic, Endpoint, Policy, Severity, ZoneIdx};
use std::fmt::Write;

fn sev_letter(s: Severity) -> &'static str {
    match s {
        Severity::Info => "I",
        Severity::Low => "L",
        Severity::Medium => "M",
        Severity::High => "H",
        Severity::Critical => "C",
    }
}

impl Policy {
    fn top_zones(&self) -> Vec<ZoneIdx> {
        (0..self.zones().len())
            .map(|i| ZoneIdx(i as u16))
            .filter(|z| self.zone(*z).parent.is_none() && *z != self.local_zone())
            .collect()
    }

    /// Top-level zones an endpoint can put an address in.
    fn endpoint_tops(&self, e: &Endpoint) -> Vec<ZoneIdx> {
        let mut out: Vec<ZoneIdx> = match e {
            Endpoint::Zone(z) => vec![self.zone(*z).top],
            _ => {
                let nets = match e {
                    Endpoint::Cidr(c) => vec![*c],
                    Endpoint::HostGroup(g) => self
                        .hostgroups()
                        .get(usize::from(*g))
                        .map(|g| g.cidrs.clone())
                        .unwrap_or_default(),
                    Endpoint::Zone(_) => Vec::new(),
                };
                nets.iter()
                    .filter_map(|n| self.explicit_zone_of(n.network()).or(self.default_zone()))
                    .map(|z| self.zone(z).top)
                    .collect()
            }
        };
        out.sort();
        out.dedup();
        out
    }
}

/// Render the `check` report for a loaded policy and its warnings.
pub fn render_check(file: &str, p: &Policy, warnings: &[Diagnostic]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "rules: {file} (site {:?}, preset {}, guideline {})",
        p.site_name.as_deref().unwrap_or("-"),
        p.preset.as_deref().unwrap_or("none"),
        p.guideline.as_deref().unwrap_or("-")
    );
    let tops = p.top_zones();
    let external = tops.iter().filter(|z| p.zone(**z).external).count();
    let _ = writeln!(
        o,
        "zones: {} ({} top-level, {} external), host groups: {}, allow rules: {}, default zone: {}, default severity: {}",
        p.zones().len(),
        tops.len(),
        external,
        p.hostgroups().len(),
        p.rules().len(),
        p.default_zone().map_or("none", |z| p.zone(z).id.as_str()),
        p.default_severity().as_str()
    );
    let _ = writeln!(o, "\n{} warning(s)", warnings.len());
    for w in warnings {
        let _ = writeln!(o, "  {w}");
    }

    // Pair → rule ids (in rule order).
    let n = tops.len();
    let pos = |z: ZoneIdx| tops.iter().position(|t| *t == z);
    let mut via: Vec<Vec<&str>> = vec![Vec::new(); n * n];
    for r in p.rules() {
        let froms: Vec<ZoneIdx> = r.from.iter().flat_map(|e| p.endpoint_tops(e)).collect();
        let tos: Vec<ZoneIdx> = r.to.iter().flat_map(|e| p.endpoint_tops(e)).collect();
        for f in &froms {
            for t in &tos {
                if let (Some(a), Some(b)) = (pos(*f), pos(*t)) {
                    let cell = &mut via[a * n + b];
                    if !cell.contains(&r.id.as_str()) {
                        cell.push(&r.id);
                    }
                }
            }
        }
    }

    let _ = writeln!(
        o,
        "\nzone matrix (row = initiator, column = responder; top-level zones)\n  \
         ok = allowed inside the zone; C/H/M/L/I = severity of unallowed traffic \
         (critical/high/medium/low/info); +N = N allow rules open part of the pair\n  \
         segment-local traffic (link-local addresses, link-scope multicast, broadcast, IGMP, \
         ND/MLD, DHCP) is judged by no rule: it is counted as SENDER -> local"
    );
    let w0 = tops
        .iter()
        .map(|z| p.zone(*z).id.chars().count())
        .max()
        .unwrap_or(0)
        .max("initiator".len());
    let cell = |a: usize, b: usize| -> String {
        let (s, d) = (tops[a], tops[b]);
        let base = if s == d && p.zone(s).intra_zone_allowed {
            "ok".to_string()
        } else {
            sev_letter(p.severity_for(s, d)).to_string()
        };
        match via[a * n + b].len() {
            0 => base,
            k => format!("{base}+{k}"),
        }
    };
    let widths: Vec<usize> = (0..n)
        .map(|b| {
            let head = p.zone(tops[b]).id.chars().count();
            (0..n)
                .map(|a| cell(a, b).len())
                .max()
                .unwrap_or(0)
                .max(head)
        })
        .collect();
    let _ = write!(o, "{:<w0$}", "initiator");
    for (b, w) in widths.iter().enumerate() {
        let _ = write!(o, " | {:<w$}", p.zone(tops[b]).id);
    }
    o.truncate(o.trim_end_matches(' ').len());
    o.push('\n');
    let _ = write!(o, "{}", "-".repeat(w0));
    for w in &widths {
        let _ = write!(o, "-+-{}", "-".repeat(*w));
    }
    o.push('\n');
    for (a, top) in tops.iter().enumerate() {
        if *top == p.multicast_zone() {
            continue; // a group address is never an initiator
        }
        let _ = write!(o, "{:<w0$}", p.zone(*top).id);
        for (b, w) in widths.iter().enumerate() {
            let _ = write!(o, " | {:<w$}", cell(a, b));
        }
        o.truncate(o.trim_end_matches(' ').len());
        o.push('\n');
    }

    let _ = writeln!(
        o,
        "\nallowed paths (initiator -> responder: rule ids; anything else on the pair)"
    );
    let mut any = false;
    for a in 0..n {
        for b in 0..n {
            let ids = &via[a * n + b];
            if ids.is_empty() {
                continue;
            }
            any = true;
            let (s, d) = (tops[a], tops[b]);
            let otherwise = if s == d && p.zone(s).intra_zone_allowed {
                "ok".to_string()
            } else {
                p.severity_for(s, d).as_str().to_string()
            };
            let _ = writeln!(
                o,
                "  {} -> {}: {} (otherwise {otherwise})",
                p.zone(s).id,
                p.zone(d).id,
                ids.join(", ")
            );
        }
    }
    if !any {
        let _ = writeln!(o, "  (none)");
    }
    o
}
