//! Floor L3 (`alert`). The `evidence` object of an alert line: one struct per detector's facts,
//! with named, typed fields (docs/alerts.md lists them per kind).
//!
//! The detectors fill these; nothing here is JSON yet. They derive
//! `Serialize` for the writer (`crate::pipeline::analysis`), with the time
//! and label forms of `crate::model` (`serialize_with`). **Fields are in
//! byte order of their keys**: the lines written before these types existed
//! came from JSON maps, which sort their keys, and the alert files
//! stay byte-identical (a test below checks every struct's order).

use crate::model::time::ser_rfc3339;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Kind-specific facts of one alert; written as the inner struct's object.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Evidence {
    /// `port_scan`, `host_sweep`.
    Scan(ScanEvidence),
    /// `brute_force`.
    Brute(BruteEvidence),
    /// `admin_access`.
    Admin(AdminEvidence),
    /// `dos_start`, `dos_update`, `dos_end`.
    Dos(DosEvidence),
    /// `rogue_host`.
    Rogue(RogueEvidence),
    /// `zone_bridge` by MAC (zones or VLANs).
    Bridge(BridgeEvidence),
    /// `zone_bridge` by management paths.
    Paths(PathsEvidence),
}

/// `port_scan` / `host_sweep` (`crate::detect::scan`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ScanEvidence {
    pub answered: u64,
    pub attempts: u64,
    /// Attempts per destination zone.
    pub dst_zones: BTreeMap<String, u64>,
    pub not_tracked: u64,
    pub ports: u64,
    pub refused: u64,
    pub sample_ports: Vec<u16>,
    pub sample_targets: Vec<IpAddr>,
    pub scan_types: Vec<&'static str>,
    pub sweep_hosts: u64,
    pub sweep_unanswered: u64,
    pub targets: u64,
    pub unanswered: u64,
    pub window_secs: u64,
}

/// `brute_force` (`crate::detect::brute`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BruteEvidence {
    pub attempts: u64,
    pub connections: u64,
    pub connections_to_silent_targets: u64,
    /// Targets per destination zone.
    pub dst_zones: BTreeMap<String, u64>,
    pub failed: u64,
    pub long: u64,
    pub max_per_target: u64,
    pub not_established: u64,
    pub not_tracked: u64,
    pub open: u64,
    pub port: u16,
    pub refused: u64,
    pub sample_targets: Vec<IpAddr>,
    pub service: String,
    pub short: u64,
    pub spraying: bool,
    pub src_zone: Option<String>,
    pub talked: u64,
    pub targets: u64,
    pub unanswered: u64,
    pub window_secs: u64,
}

/// `admin_access` (`crate::detect::admin`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AdminEvidence {
    /// The rule's admin networks, as written (`192.0.2.224/28`).
    pub admin_sources: Vec<String>,
    pub answered: bool,
    pub answered_attempts: u64,
    pub attempts: u64,
    pub refused: u64,
    pub rule_scope: String,
    pub service: String,
    pub unanswered: u64,
    pub window_secs: u64,
}

/// `dos_start` / `dos_update` / `dos_end` (`crate::detect::dos`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DosEvidence {
    pub amp_bytes: u64,
    pub amp_ports: Vec<u16>,
    pub attack_types: Vec<&'static str>,
    pub bps: u64,
    pub bytes: u64,
    pub dst_zone: Option<String>,
    /// Seconds, rounded to ms.
    pub duration_secs: f64,
    /// `dos_end` only: what ended the episode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<&'static str>,
    pub flows_estimate: u64,
    pub hot_windows: u64,
    pub packets: u64,
    pub peak_bps: u64,
    pub peak_pps: u64,
    pub pps: u64,
    pub protocol_mix: ProtocolMix,
    pub sources_estimate: u64,
    /// Sampled packets per source zone.
    pub src_zones: BTreeMap<String, u64>,
    pub start_window: u64,
    pub syn_sent: u64,
    pub synack_sent: u64,
    pub top_sources: Vec<TopSource>,
    /// All sources, ranked, when there are at most `dos::SAMPLE` of them;
    /// else a uniform sample (smallest address hash) with exact counts.
    pub top_sources_complete: bool,
    pub udp_sent: u64,
}

/// Packets of a DoS episode by protocol signature.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProtocolMix {
    pub amplification: u64,
    pub icmp: u64,
    pub other: u64,
    pub tcp_other: u64,
    pub tcp_syn: u64,
    pub tcp_synack: u64,
    pub udp: u64,
    pub udp_fragments: u64,
}

/// One sampled source of a DoS episode.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TopSource {
    pub bytes: u64,
    pub ip: IpAddr,
    pub packets: u64,
}

/// `rogue_host` (`crate::detect::hosts`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RogueEvidence {
    /// `"mac_mismatch"` or `"unknown_address"`.
    pub check: &'static str,
    /// The inventory file, as the rules name it.
    pub inventory: String,
    /// `mac_mismatch`: the MACs the inventory lists for the address.
    pub inventory_macs: Option<Vec<String>>,
    pub mac: Option<String>,
    pub seen_as: &'static str,
    pub zone: String,
}

/// `zone_bridge` by MAC (`crate::detect::hosts`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BridgeEvidence {
    pub addresses: Vec<BridgeAddress>,
    /// `"zones"`, `"vlans"`.
    pub by: Vec<&'static str>,
    pub mac: String,
    pub sightings: u64,
    pub vlans: Vec<BridgeVlan>,
    pub zones: Vec<BridgeZone>,
}

/// An address the bridging MAC was seen with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BridgeAddress {
    #[serde(serialize_with = "ser_rfc3339")]
    pub first_seen: u64,
    pub ip: IpAddr,
    pub vlan: Option<u16>,
    pub zone: Option<String>,
}

/// A VLAN the bridging MAC was seen on: its first sighting.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BridgeVlan {
    #[serde(serialize_with = "ser_rfc3339")]
    pub first_seen: u64,
    pub ip: IpAddr,
    pub vlan: u16,
    pub zone: Option<String>,
}

/// A top-level zone the bridging MAC had an address in: its first sighting.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BridgeZone {
    #[serde(serialize_with = "ser_rfc3339")]
    pub first_seen: u64,
    pub ip: IpAddr,
    pub zone: String,
}

/// `zone_bridge` by management paths (`crate::detect::hosts::paths`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathsEvidence {
    /// Always `["paths"]`.
    pub by: [&'static str; 1],
    pub host: IpAddr,
    pub tiers: Vec<PathTier>,
    pub zone: String,
}

/// One tier a management host has flows with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathTier {
    /// `"host_initiated"` or `"peer_initiated"`.
    pub direction: &'static str,
    #[serde(serialize_with = "ser_rfc3339")]
    pub first_seen: u64,
    pub peer: IpAddr,
    pub peer_zone: String,
    pub tier: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Evidence {
        /// The evidence as its JSON object (tests look keys up by name).
        pub(crate) fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).expect("evidence is JSON")
        }
    }

    /// Every object's keys, nested ones too, in byte order (as the maps of
    /// the earlier lines had them).
    fn sorted(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(m) => {
                let keys: Vec<&String> = m.keys().collect();
                keys.windows(2).all(|w| w[0] < w[1]) && m.values().all(sorted)
            }
            serde_json::Value::Array(a) => a.iter().all(sorted),
            _ => true,
        }
    }

    /// Key order of the serialized text (serde_json's `Value` would sort it).
    fn keys_in_order(e: &Evidence) -> bool {
        let text = serde_json::to_string(e).expect("json");
        let v: serde_json::Value = serde_json::from_str(&text).expect("parse");
        // Re-serialising the parsed (sorted) value gives the same text only
        // if the struct wrote its keys in order.
        sorted(&v) && serde_json::to_string(&v).expect("json") == text
    }

    #[test]
    fn every_kind_writes_its_keys_in_byte_order() {
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let all = [
            Evidence::Scan(ScanEvidence {
                sample_targets: vec![ip],
                ..ScanEvidence::default()
            }),
            Evidence::Brute(BruteEvidence::default()),
            Evidence::Admin(AdminEvidence::default()),
            Evidence::Dos(DosEvidence {
                ended_by: Some("quiet"),
                top_sources: vec![TopSource {
                    bytes: 1,
                    ip,
                    packets: 1,
                }],
                ..DosEvidence::default()
            }),
            Evidence::Rogue(RogueEvidence::default()),
            Evidence::Bridge(BridgeEvidence {
                addresses: vec![BridgeAddress {
                    first_seen: 0,
                    ip,
                    vlan: Some(1),
                    zone: None,
                }],
                vlans: vec![BridgeVlan {
                    first_seen: 0,
                    ip,
                    vlan: 1,
                    zone: None,
                }],
                zones: vec![BridgeZone {
                    first_seen: 0,
                    ip,
                    zone: "a".into(),
                }],
                ..BridgeEvidence::default()
            }),
            Evidence::Paths(PathsEvidence {
                by: ["paths"],
                host: ip,
                tiers: vec![PathTier {
                    direction: "host_initiated",
                    first_seen: 0,
                    peer: ip,
                    peer_zone: "a".into(),
                    tier: "b".into(),
                }],
                zone: "z".into(),
            }),
        ];
        for e in &all {
            assert!(
                keys_in_order(e),
                "{}",
                serde_json::to_string(e).expect("json")
            );
        }
    }
}
