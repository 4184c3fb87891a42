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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::packet::{proto, FlowKey};
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
    key.vlan.iter().rev().copied().find(|&v| v != 0)
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

/// Protocol names used in records.
pub fn proto_name(p: u8) -> Option<&'static str> {
    match p {
        proto::TCP => Some("tcp"),
        proto::UDP => Some("udp"),
        proto::ICMP => Some("icmp"),
        proto::ICMPV6 => Some("ipv6-icmp"),
        _ => None,
    }
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

fn write_rfc3339(out: &mut Vec<u8>, ns: u64) {
    let t = UNIX_EPOCH + Duration::from_nanos(ns);
    let _ = write!(out, "{}", humantime::format_rfc3339_micros(t));
}

/// `SystemTime` of a packet timestamp (ns since the Unix epoch).
pub fn ns_to_system_time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// ICMP/ICMPv6 "port equivalents" of a type/code pair, per the Community ID
/// spec (which follows Zeek's `ICMP4_counterpart`/`ICMP6_counterpart`):
/// request/response types map to `(type, counterpart type, false)` so both
/// directions meet; every other type is one-way: `(type, code, true)`.
#[inline]
pub fn icmp_port_equivalents(v6: bool, icmp_type: u16, code: u16) -> (u16, u16, bool) {
    let counterpart = if v6 {
        match icmp_type {
            128 => Some(129), // echo request / reply
            129 => Some(128),
            133 => Some(134), // router solicitation / advertisement
            134 => Some(133),
            135 => Some(136), // neighbor solicitation / advertisement
            136 => Some(135),
            130 => Some(131), // MLD query / report
            131 => Some(130),
            139 => Some(140), // node information query / response ("who are you")
            140 => Some(139),
            144 => Some(145), // home agent address discovery request / reply
            145 => Some(144),
            _ => None,
        }
    } else {
        match icmp_type {
            8 => Some(0), // echo / echo reply
            0 => Some(8),
            13 => Some(14), // timestamp / reply
            14 => Some(13),
            15 => Some(16), // information request / reply
            16 => Some(15),
            10 => Some(9), // router solicitation / advertisement
            9 => Some(10),
            17 => Some(18), // address mask request / reply
            18 => Some(17),
            _ => None,
        }
    };
    match counterpart {
        Some(c) => (icmp_type, c, false),
        None => (icmp_type, code, true),
    }
}

/// Which ICMP table applies to a protocol number, if any: `Some(false)` for
/// ICMP (v4 types), `Some(true)` for ICMPv6.
#[inline]
pub fn icmp_family(p: u8) -> Option<bool> {
    match p {
        proto::ICMP => Some(false),
        proto::ICMPV6 => Some(true),
        _ => None,
    }
}

/// Community ID v1 (<https://github.com/corelight/community-id-spec>) of a key, seed 0.
///
/// The key may be oriented either way. For ICMP/ICMPv6, `sport`/`dport` are
/// the type/code (or already the port equivalents: the mapping is idempotent).
/// Ports are hashed for TCP, UDP, SCTP, ICMP and ICMPv6 only, as in the spec.
///
/// Checked against TShark 4.0.17's `communityid` dissector on every packet of
/// the 50 captures the public set had before the spec's own pcaps were added:
/// 41,101 packets agree. The only differences are
/// IP fragments: TShark without reassembly sees no transport header and
/// hashes them port-less, while our flows of non-first fragments carry ports
/// 0 and hash them (first fragments carry the real ports and join their flow).
/// The flows of the specification's own pcaps (public set, `j_community_id`)
/// have exactly the values of its baseline (`tests/flows.rs`).
pub fn community_id(key: &FlowKey) -> String {
    let b = community_id_bytes(key);
    // The bytes are "1:" + base64 (ASCII).
    String::from_utf8_lossy(&b).into_owned()
}

/// Length of a Community ID v1 string: "1:" + base64 of a 20-byte SHA-1.
pub const COMMUNITY_ID_LEN: usize = 30;

/// [`community_id`] into a stack buffer (no allocation).
pub fn community_id_bytes(key: &FlowKey) -> [u8; COMMUNITY_ID_LEN] {
    let alen = if key.v6 { 16 } else { 4 };
    let (mut sa, mut da) = (&key.src[16 - alen..], &key.dst[16 - alen..]);
    let (mut sp, mut dp, one_way, has_ports) = match key.proto {
        proto::TCP | proto::UDP | proto::SCTP => (key.sport, key.dport, false, true),
        p => match icmp_family(p) {
            Some(v6) => {
                let (a, b, ow) = icmp_port_equivalents(v6, key.sport, key.dport);
                (a, b, ow, true)
            }
            None => (0, 0, false, false),
        },
    };
    let ordered = sa < da || (sa == da && sp < dp);
    if !(one_way || ordered) {
        std::mem::swap(&mut sa, &mut da);
        std::mem::swap(&mut sp, &mut dp);
    }
    let mut h = Sha1::new();
    h.update(0u16.to_be_bytes()); // seed
    h.update(sa);
    h.update(da);
    h.update([key.proto, 0]);
    if has_ports {
        h.update(sp.to_be_bytes());
        h.update(dp.to_be_bytes());
    }
    let digest = h.finalize();
    let mut out = [0u8; COMMUNITY_ID_LEN];
    out[0] = b'1';
    out[1] = b':';
    // 20 bytes encode to exactly 28 base64 characters, so this cannot fail;
    // on the impossible error the id stays "1:" followed by NULs.
    let _ = base64::engine::general_purpose::STANDARD.encode_slice(digest, &mut out[2..]);
    out
}

#[cfg(test)]
mod test {
    use super::*;
    use std::net::IpAddr;

    fn key(p: u8, src: &str, dst: &str, sport: u16, dport: u16) -> FlowKey {
        let ip = |s: &str| s.parse::<IpAddr>().expect("test address");
        FlowKey::new(p, ip(src), sport, ip(dst), dport)
    }

    /// The "Default settings" table of the spec's baseline/README.md (generated
    /// by pycommunityid), and baseline_deflt.json entries (ports there are
    /// already port equivalents for ICMP). Pure-function vectors: the
    /// non-documentation addresses are the spec's own; no traffic is involved.
    #[test]
    fn community_id_spec_baseline() {
        let s6 = "fe80:0001:0203:0405:0607:0809:0A0B:0C0D";
        let d6 = "fe80:1011:1213:1415:1617:1819:1A1B:1C1D";
        let cases = [
            (
                6,
                "1.2.3.4",
                "5.6.7.8",
                1122,
                3344,
                "1:wCb3OG7yAFWelaUydu0D+125CLM=",
            ),
            (
                6,
                "5.6.7.8",
                "1.2.3.4",
                3344,
                1122,
                "1:wCb3OG7yAFWelaUydu0D+125CLM=",
            ),
            (
                17,
                "1.2.3.4",
                "5.6.7.8",
                1122,
                3344,
                "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=",
            ),
            (
                17,
                "5.6.7.8",
                "1.2.3.4",
                3344,
                1122,
                "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=",
            ),
            (
                132,
                "1.2.3.4",
                "5.6.7.8",
                1122,
                3344,
                "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=",
            ),
            (
                132,
                "5.6.7.8",
                "1.2.3.4",
                3344,
                1122,
                "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=",
            ),
            (
                1,
                "1.2.3.4",
                "5.6.7.8",
                8,
                0,
                "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=",
            ),
            (
                1,
                "5.6.7.8",
                "1.2.3.4",
                0,
                0,
                "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=",
            ),
            (
                1,
                "1.2.3.4",
                "5.6.7.8",
                11,
                0,
                "1:f/YiSyWqczrTgfUCZlBUnvHRcPk=",
            ),
            (58, s6, d6, 128, 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo="),
            (58, d6, s6, 129, 0, "1:0bf7hyMJUwt3fMED7z8LIfRpBeo="),
            (58, s6, d6, 146, 0, "1:fYC8+pz24E+EhANP1EZhpX0Dw10="),
            (
                46,
                "1.2.3.4",
                "5.6.7.8",
                0,
                0,
                "1:ikv3kmf89luf73WPz1jOs49S768=",
            ),
            (
                46,
                "5.6.7.8",
                "1.2.3.4",
                0,
                0,
                "1:ikv3kmf89luf73WPz1jOs49S768=",
            ),
            (46, s6, d6, 0, 0, "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0="),
            (46, d6, s6, 0, 0, "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0="),
            // baseline_deflt.json
            (
                6,
                "128.232.110.120",
                "66.35.250.204",
                34855,
                80,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                6,
                "66.35.250.204",
                "128.232.110.120",
                80,
                34855,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                17,
                "192.168.1.52",
                "8.8.8.8",
                54585,
                53,
                "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            ),
            (
                17,
                "8.8.8.8",
                "192.168.1.52",
                53,
                54585,
                "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            ),
            (
                1,
                "192.168.0.89",
                "192.168.0.1",
                8,
                0,
                "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            ),
            (
                1,
                "192.168.0.1",
                "192.168.0.89",
                0,
                8,
                "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            ),
            (
                1,
                "10.0.0.1",
                "10.0.0.2",
                11,
                0,
                "1:YHxtAirCG//0OzkcVAukqKQN9xM=",
            ),
            (
                58,
                "fe80::200:86ff:fe05:80da",
                "fe80::260:97ff:fe07:69ea",
                135,
                136,
                "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            ),
            (
                58,
                "fe80::260:97ff:fe07:69ea",
                "fe80::200:86ff:fe05:80da",
                136,
                135,
                "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            ),
            (
                58,
                "3ffe:501:1800:2345::2",
                "3ffe:507:0:1:200:86ff:fe05:80da",
                3,
                0,
                "1:2ObVBgIn28oZvibYZhZMBgh7WdQ=",
            ),
            (
                58,
                "3ffe:501:410:0:2c0:dfff:fe47:33e",
                "3ffe:507:0:1:200:86ff:fe05:80da",
                1,
                4,
                "1:hLZd0XGWojozrvxqE0dWB1iM6R0=",
            ),
            (
                58,
                "3ffe:507:0:1:200:86ff:fe05:80da",
                "3ffe:501:0:1001::2",
                128,
                129,
                "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=",
            ),
            (
                58,
                "fe80::200:86ff:fe05:80da",
                "ff02::2",
                133,
                134,
                "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=",
            ),
            (
                58,
                "fe80::260:97ff:fe07:69ea",
                "ff02::1",
                134,
                133,
                "1:pkvHqCL88/tg1k4cPigmZXUtL00=",
            ),
            (
                6,
                "2001:470:e5bf:dead:4957:2174:e82c:4887",
                "2607:f8b0:400c:c03::1a",
                63943,
                25,
                "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            ),
            (
                132,
                "192.168.170.8",
                "192.168.170.56",
                7,
                7,
                "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            ),
            (
                132,
                "192.168.170.56",
                "192.168.170.8",
                7,
                7,
                "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            ),
        ];
        for (p, s, d, sp, dp, want) in cases {
            assert_eq!(
                community_id(&key(p, s, d, sp, dp)),
                want,
                "{p} {s} {sp} -> {d} {dp}"
            );
        }
    }

    /// Values computed by TShark 4.0.17 (`--enable-protocol communityid`) on
    /// packets of the public capture set (file named per row); one flow per
    /// protocol family, raw type/code for ICMP as on the wire.
    #[test]
    fn community_id_matches_tshark() {
        let cases = [
            // a_scans/chrissanders_synscan.pcapng
            (
                6,
                "172.16.0.8",
                "64.13.134.52",
                36050,
                443,
                "1:0cte2/7S5KuE0xGGLBnWf+XkZ7M=",
            ),
            // a_scans/pcaphunt_ps-udp.pcap
            (
                17,
                "10.0.0.135",
                "10.0.0.2",
                36541,
                36669,
                "1:oWxD38ulRbE0s+SZtKtgdNglqfI=",
            ),
            // a_scans/pcaphunt_hs-icmpScan.pcapng: echo request, and a reply
            (
                1,
                "10.0.0.128",
                "10.0.0.1",
                8,
                0,
                "1:hutU4HP0hSFu2Elj1LRx64TB0Us=",
            ),
            (
                1,
                "10.0.0.3",
                "10.0.0.128",
                0,
                0,
                "1:yyZBB6TMSwJMyVbxH7UwdY0Dad8=",
            ),
            // d_office/zeek_smtp.pcap: port unreachable (one-way type)
            (
                1,
                "192.168.1.1",
                "10.10.1.4",
                3,
                4,
                "1:7nWGY8J0Xmchmm1ZhRqvVtbbrNk=",
            ),
            // b_dos/stopddos_amp.dns.RRSIG.fragmented.pcap: IPv6 UDP and TCP
            (
                17,
                "2a01:4f8:0:1::add:9898",
                "2a01:4f8:221:17d3::2",
                53,
                22966,
                "1:z2PdAbDn7LabxtCuoAqD9t3j79A=",
            ),
            (
                6,
                "240e:f7:4f01:c::3",
                "2a01:4f8:221:17c1:1000::da5a",
                46306,
                8443,
                "1:xG8gRONQ6NpOpbQ4jWAyfc9mScc=",
            ),
            // d_office/suricata_output-eve-ftp-data.pcap: ICMPv6 RS, NS, NA, MLDv2 report; IGMP
            (
                58,
                "fe80::9154:c66f:8d0e:33cb",
                "ff02::2",
                133,
                0,
                "1:M29E/G6yCyMWUdxjfMifL/PNh70=",
            ),
            (
                58,
                "::",
                "ff02::1:ff0e:33cb",
                135,
                0,
                "1:P3M2kfDvVlgHBGTJcwAgRF2Mork=",
            ),
            (
                58,
                "fe80::9154:c66f:8d0e:33cb",
                "ff02::1",
                136,
                0,
                "1:qz6eqX3t22UqJD79GEN+rIWnKpg=",
            ),
            (
                58,
                "fe80::9154:c66f:8d0e:33cb",
                "ff02::16",
                143,
                0,
                "1:wtci9/bk1aQvLnUiiwR3qdWSarY=",
            ),
            (
                2,
                "192.168.0.13",
                "224.0.0.22",
                0,
                0,
                "1:29DPhdCiR+6ibIipnJ/fxRbvTcg=",
            ),
            // g_formats_linktypes/zeek_linux_dlt_sll2.pcap: ICMPv6 echo to itself
            (
                58,
                "fe80::8c36:6ff:fe44:acaf",
                "fe80::8c36:6ff:fe44:acaf",
                128,
                0,
                "1:2o441oYbBWeMqdxZkThmRXTrrVU=",
            ),
            (
                58,
                "fe80::8c36:6ff:fe44:acaf",
                "fe80::8c36:6ff:fe44:acaf",
                129,
                0,
                "1:2o441oYbBWeMqdxZkThmRXTrrVU=",
            ),
        ];
        for (p, s, d, sp, dp, want) in cases {
            assert_eq!(
                community_id(&key(p, s, d, sp, dp)),
                want,
                "{p} {s} {sp} -> {d} {dp}"
            );
        }
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
    fn icmp_mapping_is_idempotent() {
        for v6 in [false, true] {
            for t in 0..=255u16 {
                for c in [0u16, 1, 3, 8, 129] {
                    let (a, b, ow) = icmp_port_equivalents(v6, t, c);
                    assert_eq!(icmp_port_equivalents(v6, a, b), (a, b, ow));
                }
            }
        }
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
