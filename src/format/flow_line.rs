//! Floor L4. The flow line (`--flows`): one [`FlowRecord`] as one JSON
//! object and a `'\n'`, written by hand into a reused buffer (no allocation
//! per flow besides growing it: the workers call it once per finished flow).
//! The record and the policy's facts about it are the flow floor's
//! (`crate::flow::record`); the text is made here.
//!
//! # JSON line
//!
//! [`write()`] appends one object and a `'\n'`. Keys, in order:
//!
//! | key | value |
//! |---|---|
//! | `ts` | first seen, RFC 3339 UTC with microseconds (`"2024-01-02T03:04:05.123456Z"`) |
//! | `first_seen`, `last_seen` | same format; `last_seen` is the flow's last packet, never an expiry time |
//! | `duration` | `last_seen - first_seen` in seconds, 6 decimals (exact integer arithmetic) |
//! | `proto` | `"tcp"`, `"udp"`, `"icmp"`, `"ipv6-icmp"`, else the protocol number as a decimal string (`"47"`) so the field is always a string |
//! | `src_ip`, `src_port`, `dst_ip`, `dst_port` | initiator → responder. Ports of TCP, UDP and SCTP; 0 for protocols without ports (or whose ports are not read: anything else, non-first fragments). For ICMP/ICMPv6 the ports are the Community ID "port equivalents": `src_port` = ICMP type of the initiator's packets, `dst_port` = the counterpart type for request/response types (echo 8 ↔ 0, ICMPv6 128 ↔ 129, ...) else the code (as Zeek's conn.log does) |
//! | `vlan` | array of the non-zero VLAN ids of the flow's first packet, outermost first (`[]` when untagged or priority-tagged only) |
//! | `resp_vlan` | the same for the responder's first packet (`[]` when untagged or never answered); differs from `vlan` on a router trunk, where each direction carries the VLAN of the segment it entered from |
//! | `link` | link id (0 = the capture link itself, else a tunnel's id) |
//! | `orig_pkts`, `orig_bytes`, `resp_pkts`, `resp_bytes` | per direction; bytes are frame lengths on the wire |
//! | `tcp_state` | `"none"` (not TCP), `"syn_sent"`, `"syn_received"`, `"established"`, `"fin_wait"`, `"closed"`, `"reset"` |
//! | `tcp_flags_orig`, `tcp_flags_resp` | union of the TCP flags each side sent, one letter per flag in bit order: `F`IN `S`YN `R`ST `P`SH `A`CK `U`RG `E`CE `C`WR (e.g. `"FSPA"`); `""` for none / non-TCP |
//! | `midstream` | TCP flow picked up without its handshake |
//! | `icmp_errors` | ICMP errors that quoted this flow |
//! | `end_reason` | see [`EndReason::as_str`](crate::flow::EndReason::as_str) |
//! | `community_id` | Community ID v1, seed 0 (`crate::model::community_id`) |
//!
//! With a zone policy ([`write_with_policy`], `--rules`) five
//! more keys follow, judged initiator → responder once when the flow was created:
//!
//! | key | value |
//! |---|---|
//! | `src_zone`, `dst_zone` | zone id of each end (`"lgwan.term"`), `null` if in no zone |
//! | `verdict` | `"allowed"`, `"violation"` or `"unknown"` (an end in no zone and no default zone) |
//! | `rule` | id of the allow rule, `"intra_zone"` for traffic inside one top-level zone, else `null` |
//! | `severity` | for violations `"info"` .. `"critical"`, else `null` |

use std::io::Write;

use crate::flow::FlowRecord;
use crate::model::community_id::community_id_bytes;
use crate::model::proto::proto_name;
use crate::model::time::write_rfc3339;
use crate::policy::{Policy, Verdict};

/// Append `rec` as one JSON line (with trailing '\n') to `out`.
///
/// Allocates nothing besides growing `out` (reuse it across calls).
pub fn write(rec: &FlowRecord, out: &mut Vec<u8>) {
    write_fields(rec, out);
    out.extend_from_slice(b"}\n");
}

/// [`write()`] plus the policy keys (`src_zone`, `dst_zone`, `verdict`,
/// `rule`, `severity`; see the module docs) when `policy` is given; without
/// it the line is exactly `write`'s. `policy` must be the one the record's
/// tag was made with ([`FlowRecord::policy_facts`]).
pub fn write_with_policy(rec: &FlowRecord, out: &mut Vec<u8>, policy: Option<&Policy>) {
    write_fields(rec, out);
    if let Some(p) = policy {
        write_policy_fields(rec, out, p);
    }
    out.extend_from_slice(b"}\n");
}

fn write_policy_fields(rec: &FlowRecord, out: &mut Vec<u8>, p: &Policy) {
    let f = rec.policy_facts(p);
    let opt = |out: &mut Vec<u8>, s: Option<&str>| match s {
        Some(s) => json_str(out, s),
        None => out.extend_from_slice(b"null"),
    };
    out.extend_from_slice(b",\"src_zone\":");
    opt(out, f.src_zone);
    out.extend_from_slice(b",\"dst_zone\":");
    opt(out, f.dst_zone);
    out.extend_from_slice(b",\"verdict\":\"");
    out.extend_from_slice(f.verdict.kind_str().as_bytes());
    out.extend_from_slice(b"\",\"rule\":");
    opt(out, f.rule);
    out.extend_from_slice(b",\"severity\":");
    match f.verdict {
        Verdict::Violation { severity, .. } => {
            out.push(b'"');
            out.extend_from_slice(severity.as_str().as_bytes());
            out.push(b'"');
        }
        _ => out.extend_from_slice(b"null"),
    }
}

/// Every key of the line, without the closing brace.
fn write_fields(rec: &FlowRecord, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail; `write!` results are ignored for that reason.
    let k = &rec.key;
    out.extend_from_slice(b"{\"ts\":\"");
    let ts_start = out.len();
    write_rfc3339(out, rec.first_ns);
    let ts_end = out.len();
    out.extend_from_slice(b"\",\"first_seen\":\"");
    // Same text as `ts`: copy it rather than format the time twice.
    out.extend_from_within(ts_start..ts_end);
    out.extend_from_slice(b"\",\"last_seen\":\"");
    write_rfc3339(out, rec.last_ns);
    let d = rec.last_ns.saturating_sub(rec.first_ns);
    let _ = write!(
        out,
        "\",\"duration\":{}.{:06},\"proto\":\"",
        d / 1_000_000_000,
        (d % 1_000_000_000) / 1_000
    );
    match proto_name(k.proto) {
        Some(n) => out.extend_from_slice(n.as_bytes()),
        None => {
            let _ = write!(out, "{}", k.proto);
        }
    }
    let _ = write!(
        out,
        "\",\"src_ip\":\"{}\",\"src_port\":{},\"dst_ip\":\"{}\",\"dst_port\":{},\"vlan\":[",
        k.src_ip(),
        k.sport,
        k.dst_ip(),
        k.dport
    );
    write_vlans(out, &k.vlan);
    out.extend_from_slice(b"],\"resp_vlan\":[");
    write_vlans(out, &rec.resp_vlan);
    let _ = write!(
        out,
        "],\"link\":{},\"orig_pkts\":{},\"orig_bytes\":{},\"resp_pkts\":{},\"resp_bytes\":{},\"tcp_state\":\"{}\",\"tcp_flags_orig\":\"",
        k.link,
        rec.orig_pkts,
        rec.orig_bytes,
        rec.resp_pkts,
        rec.resp_bytes,
        rec.tcp_state.as_str()
    );
    write_flags(out, rec.tcp_flags_orig);
    out.extend_from_slice(b"\",\"tcp_flags_resp\":\"");
    write_flags(out, rec.tcp_flags_resp);
    let _ = write!(
        out,
        "\",\"midstream\":{},\"icmp_errors\":{},\"end_reason\":\"{}\",\"community_id\":\"",
        rec.midstream,
        rec.icmp_errors,
        rec.end.as_str()
    );
    out.extend_from_slice(&community_id_bytes(k));
    out.push(b'"');
}

/// A JSON string (quoted, escaped) appended to `out`; allocates nothing.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Letters of the TCP flag bits, bit 0 (FIN) first.
const FLAG_LETTERS: [u8; 8] = *b"FSRPAUEC";

fn write_flags(out: &mut Vec<u8>, flags: u8) {
    for (bit, &letter) in FLAG_LETTERS.iter().enumerate() {
        if flags & (1 << bit) != 0 {
            out.push(letter);
        }
    }
}

/// The non-zero VLAN ids of `v`, comma-separated.
fn write_vlans(out: &mut Vec<u8>, v: &[u16; 2]) {
    let mut first = true;
    for v in v.iter().filter(|&&v| v != 0) {
        if !first {
            out.push(b',');
        }
        first = false;
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{EndReason, TcpState};
    use crate::model::community_id::community_id;
    use crate::packet::{proto, FlowKey};
    use std::net::IpAddr;

    fn key(p: u8, src: &str, dst: &str, sport: u16, dport: u16) -> FlowKey {
        let ip = |s: &str| s.parse::<IpAddr>().expect("test address");
        FlowKey::new(p, ip(src), sport, ip(dst), dport)
    }

    fn sample() -> FlowRecord {
        let mut k = key(6, "192.0.2.10", "198.51.100.20", 49152, 443);
        k.vlan = [100, 0];
        FlowRecord {
            key: k,
            // 2024-01-02T03:04:05.123456789Z
            first_ns: 1_704_164_645_123_456_789,
            last_ns: 1_704_164_647_623_457_000,
            orig_pkts: 5,
            orig_bytes: 400,
            resp_pkts: 4,
            resp_bytes: 3000,
            tcp_state: TcpState::Closed,
            tcp_flags_orig: 0x1b, // FIN SYN PSH ACK
            tcp_flags_resp: 0x12, // SYN ACK
            midstream: false,
            icmp_errors: 0,
            tag: 0,
            end: EndReason::Fin,
            resp_vlan: [200, 0],
        }
    }

    #[test]
    fn json_line_fields() {
        let r = sample();
        let mut out = Vec::new();
        write(&r, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["ts"], "2024-01-02T03:04:05.123456Z");
        assert_eq!(v["first_seen"], "2024-01-02T03:04:05.123456Z");
        assert_eq!(v["last_seen"], "2024-01-02T03:04:07.623457Z");
        assert_eq!(v["duration"].as_f64().unwrap(), 2.500000);
        assert_eq!(v["proto"], "tcp");
        assert_eq!(v["src_ip"], "192.0.2.10");
        assert_eq!(v["src_port"], 49152);
        assert_eq!(v["dst_ip"], "198.51.100.20");
        assert_eq!(v["dst_port"], 443);
        assert_eq!(v["vlan"], serde_json::json!([100]));
        assert_eq!(v["resp_vlan"], serde_json::json!([200]));
        assert_eq!(v["link"], 0);
        assert_eq!(v["orig_pkts"], 5);
        assert_eq!(v["orig_bytes"], 400);
        assert_eq!(v["resp_pkts"], 4);
        assert_eq!(v["resp_bytes"], 3000);
        assert_eq!(v["tcp_state"], "closed");
        assert_eq!(v["tcp_flags_orig"], "FSPA");
        assert_eq!(v["tcp_flags_resp"], "SA");
        assert_eq!(v["midstream"], false);
        assert_eq!(v["icmp_errors"], 0);
        assert_eq!(v["end_reason"], "fin");
        assert_eq!(v["community_id"], community_id(&r.key).as_str());
        assert_eq!(v.as_object().unwrap().len(), 23);
        // Appends: a second record is a second line.
        write(&r, &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 2);
    }

    #[test]
    fn json_other_protocols_and_v6() {
        let mut r = sample();
        r.key = key(47, "2001:db8::1", "2001:db8::2", 0, 0);
        r.key.vlan = [10, 20];
        r.key.link = 3;
        r.tcp_state = TcpState::None;
        r.tcp_flags_orig = 0;
        r.tcp_flags_resp = 0xff;
        r.end = EndReason::IdleTimeout;
        let mut out = Vec::new();
        write(&r, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["proto"], "47");
        assert_eq!(v["src_ip"], "2001:db8::1");
        assert_eq!(v["vlan"], serde_json::json!([10, 20]));
        assert_eq!(v["link"], 3);
        assert_eq!(v["tcp_state"], "none");
        assert_eq!(v["tcp_flags_orig"], "");
        assert_eq!(v["tcp_flags_resp"], "FSRPAUEC");
        assert_eq!(v["end_reason"], "idle_timeout");
        r.key.proto = proto::ICMPV6;
        out.clear();
        write(&r, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["proto"], "ipv6-icmp");
        // Zero duration, untagged.
        r.last_ns = r.first_ns;
        r.key.vlan = [0, 0];
        out.clear();
        write(&r, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["duration"].as_f64().unwrap(), 0.0);
        assert_eq!(v["vlan"], serde_json::json!([]));
    }
}
