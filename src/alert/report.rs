//! Floor L3 (`alert`). `zonewatch check RULES --against FILE.pcap`: what would alert, grouped by
//! zone pair, most severe pair first.

use super::Alert;
use crate::model::time::rfc3339;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Render the dry-run listing. `header` is printed first (rules, inputs, counts).
pub fn render_dry_run(header: &str, alerts: &[Alert]) -> String {
    let mut out = String::new();
    out.push_str(header);
    if !header.ends_with('\n') {
        out.push('\n');
    }
    if alerts.is_empty() {
        out.push_str("\nNothing would alert: every flow is allowed by the rules.\n");
        return out;
    }
    // (src_zone, dst_zone) -> alerts, in output (time) order.
    let mut pairs: BTreeMap<(String, String), Vec<&Alert>> = BTreeMap::new();
    for a in alerts {
        let z = |z: &Option<String>| z.clone().unwrap_or_else(|| "-".to_string());
        pairs
            .entry((z(&a.src_zone), z(&a.dst_zone)))
            .or_default()
            .push(a);
    }
    let mut order: Vec<_> = pairs.into_iter().collect();
    let rank = |v: &[&Alert]| {
        let sev = v.iter().map(|a| a.severity).max();
        let flows: u64 = v.iter().map(|a| a.count).sum();
        (std::cmp::Reverse(sev), std::cmp::Reverse(flows))
    };
    order.sort_by(|a, b| rank(&a.1).cmp(&rank(&b.1)).then_with(|| a.0.cmp(&b.0)));
    for ((s, d), list) in order {
        let flows: u64 = list.iter().map(|a| a.count).sum();
        let first = list[0];
        let _ = writeln!(
            out,
            "\n{s} -> {d}  {}  (rule {})  {} alert{}, {} flow{}",
            first.severity.as_str(),
            first.rule,
            list.len(),
            if list.len() == 1 { "" } else { "s" },
            flows,
            if flows == 1 { "" } else { "s" },
        );
        for a in list {
            let _ = write!(
                out,
                "  {}  {:<9} {} -> {}  x{}",
                rfc3339(a.timestamp),
                a.proto.map_or_else(|| "-".to_string(), |p| p.to_string()),
                endpoint(a.src_ip, a.src_port),
                endpoint(a.dst_ip, a.dst_port),
                a.count
            );
            if let (Some(t), Some(p)) = (a.distinct_dst, a.distinct_dst_port) {
                let _ = write!(out, "  (folded by source: {t} targets, {p} ports)");
            }
            out.push('\n');
        }
    }
    out
}

fn endpoint(ip: Option<std::net::IpAddr>, port: Option<u16>) -> String {
    match (ip, port) {
        (Some(std::net::IpAddr::V4(a)), Some(p)) => format!("{a}:{p}"),
        (Some(std::net::IpAddr::V6(a)), Some(p)) => format!("[{a}]:{p}"),
        (Some(a), None) => a.to_string(),
        (None, _) => "-".to_string(),
    }
}
