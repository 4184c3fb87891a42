//! A finished flow ([`FlowRecord`]), its JSON line, and Community ID v1.
//!
//! Owns the output format of one flow; knows nothing about how flows are tracked.
//!
//! # JSON line
//!
//! [`FlowRecord::write_json`] appends one object and a `'\n'`. Keys, in order:
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
//! | `end_reason` | see [`EndReason::as_str`] |
//! | `community_id` | Community ID v1, seed 0 (see [`community_id`]) |
//!
//! With a zone policy ([`FlowRecord::write_json_with_policy`], `--rules`) five
//! more keys follow, judged initiator → responder once when the flow was created:
//!
//! | key | value |
//! |---|---|
//! | `src_zone`, `dst_zone` | zone id of each end (`"lgwan.term"`), `null` if in no zone |
//! | `verdict` | `"allowed"`, `"violation"` or `"unknown"` (an end in no zone and no default zone) |
//! | `rule` | id of the allow rule, `"intra_zone"` for traffic inside one top-level zone, else `null` |
//! | `severity` | for violations `"info"` .. `"critical"`, else `null` |
use std::io::Write;

use crate::model::community_id::{community_id, community_id_bytes};
use crate::model::proto::proto_name;
use crate::model::time::write_rfc3339;
use crate::packet::FlowKey;
use crate::policy::{Allowance, Policy, Verdict};

/// The VLAN a flow's zones are looked up with: the innermost non-zero id
/// (the customer / segment tag under QinQ), `None` when untagged.
#[inline]
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

pub fn policy_vlan(key: &FlowKey) -> Option<u16> {
    crate::packet::inner_vlan(key.vlan)
}

/// TCP connection state as last seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// Not a TCP flow (or a TCP flow made only of non-first fragments).
    #[default]
    None = 0,
    /// SYN seen, no SYN-ACK yet (half-open).
    SynSent = 1,
    /// SYN-ACK seen, handshake not completed (half-open).
    SynReceived = 2,
    /// Handshake completed, or data seen on a flow picked up mid-stream.
    Established = 3,
    /// One side sent FIN.
    FinWait = 4,
    /// Both sides sent FIN.
    Closed = 5,
    /// RST seen (before the FIN exchange completed).
    Reset = 6,
}

impl TcpState {
    pub const ALL: [TcpState; 7] = [
        TcpState::None,
        TcpState::SynSent,
        TcpState::SynReceived,
        TcpState::Established,
        TcpState::FinWait,
        TcpState::Closed,
        TcpState::Reset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TcpState::None => "none",
            TcpState::SynSent => "syn_sent",
            TcpState::SynReceived => "syn_received",
            TcpState::Established => "established",
            TcpState::FinWait => "fin_wait",
            TcpState::Closed => "closed",
            TcpState::Reset => "reset",
        }
    }

    /// Inverse of `self as u8` (unknown values map to `None`).
    #[inline]
    pub(crate) fn from_u8(v: u8) -> TcpState {
        match v {
            1 => TcpState::SynSent,
            2 => TcpState::SynReceived,
            3 => TcpState::Established,
            4 => TcpState::FinWait,
            5 => TcpState::Closed,
            6 => TcpState::Reset,
            _ => TcpState::None,
        }
    }
}

/// Why a flow record was written. Stable names: summary keys and metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EndReason {
    /// Both sides sent FIN (written after the close linger,
    /// `tcp_closed_timeout_ns`, or at flush).
    Fin = 0,
    /// RST seen (written after the close linger, or at flush).
    Rst = 1,
    /// No packet for the flow's timeout (by packet time).
    IdleTimeout = 2,
    /// Removed to make room under `max_flows`.
    Evicted = 3,
    /// Still open when the input ended.
    EndOfCapture = 4,
    /// Still open when the sensor was stopped.
    Shutdown = 5,
}

impl EndReason {
    /// Number of reasons (length of arrays indexed by `reason as usize`).
    pub const COUNT: usize = 6;
    pub const ALL: [EndReason; EndReason::COUNT] = [
        EndReason::Fin,
        EndReason::Rst,
        EndReason::IdleTimeout,
        EndReason::Evicted,
        EndReason::EndOfCapture,
        EndReason::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Fin => "fin",
            EndReason::Rst => "rst",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::Evicted => "evicted",
            EndReason::EndOfCapture => "end_of_capture",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// A finished flow, oriented initiator → responder (`key.src` is the initiator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// Initiator → responder. ICMP ports are the Community ID port equivalents
    /// (see the module docs).
    pub key: FlowKey,
    /// Packet time of the first and last packet, ns since the Unix epoch.
    pub first_ns: u64,
    pub last_ns: u64,
    pub orig_pkts: u64,
    pub orig_bytes: u64,
    pub resp_pkts: u64,
    pub resp_bytes: u64,
    pub tcp_state: TcpState,
    /// Union of the TCP flags sent by the initiator / responder.
    pub tcp_flags_orig: u8,
    pub tcp_flags_resp: u8,
    /// TCP flow picked up without seeing its SYN or SYN-ACK.
    pub midstream: bool,
    /// ICMP errors quoting this flow (saturates at 255).
    pub icmp_errors: u32,
    /// The policy verdict, [`Verdict::pack_in`] the table's policy generation
    /// slot (`Verdict::unpack(tag)`, `generation_of(tag)`); 0 when the table had
    /// no policy when the flow was created.
    pub tag: u32,
    pub end: EndReason,
    /// VLAN ids of the responder's first packet (`[0, 0]` when untagged or not
    /// answered); `key.vlan` holds those of the flow's first packet.
    pub resp_vlan: [u16; 2],
}

/// A flow just created, handed to
/// [`FlowSink::flow_started`](super::FlowSink::flow_started) once, by the
/// packet that created it (so alerts need not wait for the flow to end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowStart {
    /// Initiator → responder, oriented as stored (and later recorded): for a
    /// flow first seen by its SYN-ACK, `key.src` is that packet's receiver.
    pub key: FlowKey,
    /// Packet time of the creating packet, ns since the Unix epoch.
    pub ts_ns: u64,
    /// The packed verdict including its policy generation slot
    /// ([`Verdict::unpack`], [`crate::policy::generation_of`];
    /// `FlowTable::policy_for` gives the policy).
    pub tag: u32,
    /// The flow was created by an ICMP error whose quoted flow was never
    /// seen (the error is its own flow, see the table's module docs).
    pub quote_keyed: bool,
    /// Source MAC address of the creating packet, and whether its sender is
    /// the initiator (false for a flow first seen by its SYN-ACK).
    pub mac: [u8; 6],
    pub mac_is_initiator: bool,
    /// TCP flags of the creating packet (0 for other protocols).
    pub tcp_flags: u8,
    /// Input the creating packet came from ([`crate::packet::RawFrame::source`]).
    pub source: u16,
}

/// How an attempt was refused ([`FlowSink::flow_refused`](super::FlowSink::flow_refused)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// TCP RST from the responder before the handshake completed.
    Rst,
    /// An ICMP/ICMPv6 error (unreachable, time exceeded, ...) quoting the flow.
    IcmpError,
}

/// A TCP flow that just closed or was reset
/// ([`FlowSink::flow_closed`](super::FlowSink::flow_closed)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowClose {
    /// Initiator → responder.
    pub key: FlowKey,
    pub first_ns: u64,
    /// Packet time of the closing packet.
    pub ts_ns: u64,
    pub orig_pkts: u64,
    pub orig_bytes: u64,
    pub resp_pkts: u64,
    pub resp_bytes: u64,
    /// `Closed` (FIN both ways) or `Reset`.
    pub state: TcpState,
    /// The handshake completed before the end.
    pub established: bool,
    /// Union of the TCP flags each side sent.
    pub flags_orig: u8,
    pub flags_resp: u8,
}

impl FlowRecord {
    /// Append this record as one JSON line (with trailing '\n') to `out`.
    ///
    /// Allocates nothing besides growing `out` (reuse it across calls).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.write_json_fields(out);
        out.extend_from_slice(b"}\n");
    }

    /// [`write_json`](Self::write_json) plus the policy keys (`src_zone`,
    /// `dst_zone`, `verdict`, `rule`, `severity`; see the module docs) when
    /// `policy` is given; without it the line is exactly `write_json`'s.
    /// The verdict comes from `tag`; the zones are looked up again (two
    /// longest-prefix matches per record, none per packet). `policy` must be
    /// the one the tag was made with (its generation slot, see
    /// `FlowTable::policy_for`): after a reload, indices name other rules.
    pub fn write_json_with_policy(&self, out: &mut Vec<u8>, policy: Option<&Policy>) {
        self.write_json_fields(out);
        if let Some(p) = policy {
            self.write_policy_fields(out, p);
        }
        out.extend_from_slice(b"}\n");
    }

    fn write_policy_fields(&self, out: &mut Vec<u8>, p: &Policy) {
        let k = &self.key;
        let vlan = policy_vlan(k);
        let zone = |out: &mut Vec<u8>, z: Option<crate::policy::ZoneIdx>| match z {
            Some(z) => json_str(out, &p.zone(z).id),
            None => out.extend_from_slice(b"null"),
        };
        let (sz, dz) = p.flow_zones(k.src_ip(), k.dst_ip(), k.proto, k.sport, vlan);
        out.extend_from_slice(b",\"src_zone\":");
        zone(out, sz);
        out.extend_from_slice(b",\"dst_zone\":");
        zone(out, dz);
        let v = Verdict::unpack(self.tag).unwrap_or(Verdict::Unknown);
        out.extend_from_slice(b",\"verdict\":\"");
        out.extend_from_slice(v.kind_str().as_bytes());
        out.extend_from_slice(b"\",\"rule\":");
        match v {
            Verdict::Allowed {
                rule: Allowance::Rule(r),
            } => match p.rules().get(usize::from(r.0)) {
                Some(rule) => json_str(out, &rule.id),
                None => out.extend_from_slice(b"null"),
            },
            Verdict::Allowed {
                rule: Allowance::IntraZone(_),
            } => out.extend_from_slice(b"\"intra_zone\""),
            _ => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"severity\":");
        match v {
            Verdict::Violation { severity, .. } => {
                out.push(b'"');
                out.extend_from_slice(severity.as_str().as_bytes());
                out.push(b'"');
            }
            _ => out.extend_from_slice(b"null"),
        }
    }

    /// Every key of the line, without the closing brace.
    fn write_json_fields(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail; `write!` results are ignored for that reason.
        let k = &self.key;
        out.extend_from_slice(b"{\"ts\":\"");
        let ts_start = out.len();
        write_rfc3339(out, self.first_ns);
        let ts_end = out.len();
        out.extend_from_slice(b"\",\"first_seen\":\"");
        // Same text as `ts`: copy it rather than format the time twice.
        out.extend_from_within(ts_start..ts_end);
        out.extend_from_slice(b"\",\"last_seen\":\"");
        write_rfc3339(out, self.last_ns);
        let d = self.last_ns.saturating_sub(self.first_ns);
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
        write_vlans(out, &self.resp_vlan);
        let _ = write!(
            out,
            "],\"link\":{},\"orig_pkts\":{},\"orig_bytes\":{},\"resp_pkts\":{},\"resp_bytes\":{},\"tcp_state\":\"{}\",\"tcp_flags_orig\":\"",
            k.link,
            self.orig_pkts,
            self.orig_bytes,
            self.resp_pkts,
            self.resp_bytes,
            self.tcp_state.as_str()
        );
        write_flags(out, self.tcp_flags_orig);
        out.extend_from_slice(b"\",\"tcp_flags_resp\":\"");
        write_flags(out, self.tcp_flags_resp);
        let _ = write!(
            out,
            "\",\"midstream\":{},\"icmp_errors\":{},\"end_reason\":\"{}\",\"community_id\":\"",
            self.midstream,
            self.icmp_errors,
            self.end.as_str()
        );
        out.extend_from_slice(&community_id_bytes(k));
        out.push(b'"');
    }

    /// The flow's Community ID v1 (seed 0).
    pub fn community_id(&self) -> String {
        community_id(&self.key)
    }
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

#[cfg(test)]
mod test {
    use super::*;
    use crate::packet::proto;
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
        r.write_json(&mut out);
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
        r.write_json(&mut out);
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
        r.write_json(&mut out);
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
        r.write_json(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["proto"], "ipv6-icmp");
        // Zero duration, untagged.
        r.last_ns = r.first_ns;
        r.key.vlan = [0, 0];
        out.clear();
        r.write_json(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["duration"].as_f64().unwrap(), 0.0);
        assert_eq!(v["vlan"], serde_json::json!([]));
    }

    #[test]
    fn policy_vlan_is_the_innermost_tag() {
        let mut k = key(proto::TCP, "192.0.2.1", "198.51.100.1", 1, 2);
        assert_eq!(policy_vlan(&k), None);
        k.vlan = [100, 0];
        assert_eq!(policy_vlan(&k), Some(100));
        k.vlan = [100, 210];
        assert_eq!(policy_vlan(&k), Some(210));
    }
}
