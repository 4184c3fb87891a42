//! Floor L1 (`policy`). The `zonewatch check` report: warnings, then the effective zone × zone
//! matrix
//! over top-level zones, then which allow rules open each zone pair.

use super::{Basis, Diagnostic, Endpoint, Inactive, Policy, Proto, Rule, Severity, ZoneIdx};
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
    pub(super) fn endpoint_tops(&self, e: &Endpoint) -> Vec<ZoneIdx> {
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

/// The first line of both reports: the file, site, preset and edition.
fn header(o: &mut String, file: &str, p: &Policy) {
    let _ = writeln!(
        o,
        "rules: {file} (site {:?}, preset {}, guideline {})",
        p.site_name.as_deref().unwrap_or("-"),
        p.preset.as_deref().unwrap_or("none"),
        p.guideline.as_deref().unwrap_or("-")
    );
}

/// Render the `check` report for a loaded policy and its warnings.
pub fn render_check(file: &str, p: &Policy, warnings: &[Diagnostic]) -> String {
    let mut o = String::new();
    header(&mut o, file, p);
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

impl Policy {
    fn endpoint_name(&self, e: &Endpoint) -> String {
        match e {
            Endpoint::Zone(z) => self.zone(*z).id.clone(),
            Endpoint::HostGroup(g) => self
                .hostgroups()
                .get(usize::from(*g))
                .map_or_else(|| "?".into(), |g| g.id.clone()),
            Endpoint::Cidr(c) => c.to_string(),
        }
    }
}

/// `tcp 443, 8000-8001`, `udp any port`, `icmp`.
fn ports_text(r: &Rule, site_ports: bool) -> String {
    if r.proto == Proto::Icmp {
        return "icmp".into();
    }
    let proto = match r.proto {
        Proto::Any => "tcp/udp",
        p => p.as_str(),
    };
    if site_ports {
        return format!("{proto} ports from the site");
    }
    if r.ports.is_empty() {
        let what = if r.proto == Proto::Any {
            "any protocol, any port"
        } else {
            "any port"
        };
        return if r.proto == Proto::Any {
            what.into()
        } else {
            format!("{proto} {what}")
        };
    }
    let list: Vec<String> = r
        .ports
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    format!("{proto} {}", list.join(", "))
}

/// The `check --sources` report: every allow rule, on or off, with the source
/// it rests on, so that a reader can see what a preset claims and on what basis.
pub fn render_sources(file: &str, p: &Policy, warnings: &[Diagnostic]) -> String {
    let mut o = String::new();
    header(&mut o, file, p);
    let _ = writeln!(
        o,
        "{} warning(s) (`zonewatch check {file}` lists them)",
        warnings.len()
    );
    let _ = writeln!(
        o,
        "\nbasis: text = primary text was read (document and quote given); practice = what\n  \
         municipalities or vendors do, not guideline text (who does it given); unverified = no\n  \
         primary text was found (why given); note = free text, not classified"
    );
    if !p.options.is_empty() {
        let _ = writeln!(
            o,
            "\noptions (opt-in rule sets; a site turns one on with `options = [\"ID\"]`)"
        );
        for opt in &p.options {
            let _ = writeln!(
                o,
                "  {:<3} {}: {}",
                if opt.enabled { "on" } else { "off" },
                opt.id,
                opt.description.as_deref().unwrap_or("-")
            );
        }
    }
    let mut counts: Vec<(&str, usize)> = Vec::new();
    let mut count = |k: &'static str| match counts.iter_mut().find(|(n, _)| *n == k) {
        Some(c) => c.1 += 1,
        None => counts.push((k, 1)),
    };
    let _ = writeln!(
        o,
        "\nallow rules (in judging order; rules that are off last)"
    );
    let all = p
        .rules()
        .iter()
        .map(|r| (r, None))
        .chain(p.inactive.iter().map(|(r, w)| (r, Some(w))));
    for (r, why) in all {
        let froms: Vec<String> = r.from.iter().map(|e| p.endpoint_name(e)).collect();
        let tos: Vec<String> = r.to.iter().map(|e| p.endpoint_name(e)).collect();
        let state = match why {
            None => "on".to_string(),
            Some(Inactive::OptionOff(opt)) => format!("off (option {opt} not turned on)"),
            Some(Inactive::SitePorts) => "off (the site gives no ports)".to_string(),
        };
        let origin = match r.origin {
            super::Origin::Preset => "preset",
            super::Origin::Site => "site",
        };
        let _ = writeln!(
            o,
            "\n{} [{origin}, {state}]: {} -> {}: {}",
            r.id,
            froms.join(", "),
            tos.join(", "),
            ports_text(r, matches!(why, Some(Inactive::SitePorts)))
        );
        if let Some(desc) = &r.description {
            let _ = writeln!(o, "  what: {desc}");
        }
        match &r.source {
            None => {
                count("none");
                let _ = writeln!(o, "  basis: NONE (the rule names no source)");
            }
            Some(s) => {
                let basis = s.basis.unwrap_or(Basis::Note);
                count(basis.as_str());
                let _ = writeln!(o, "  basis: {}", basis.as_str());
                for (k, v) in [
                    ("document", &s.document),
                    ("quote", &s.quote),
                    ("url", &s.url),
                    ("by", &s.by),
                    ("note", &s.note),
                ] {
                    if let Some(v) = v {
                        let _ = writeln!(o, "  {k}: {v}");
                    }
                }
            }
        }
    }
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let list: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let _ = writeln!(o, "\n{total} rule(s): {}", list.join(", "));
    o
}
