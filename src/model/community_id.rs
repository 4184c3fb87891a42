//! Floor L0 (`model`). Community ID v1 of a flow key
//! (<https://github.com/corelight/community-id-spec>).

use super::packet::{proto, FlowKey};
use super::proto::{icmp_family, icmp_port_equivalents};
use base64::Engine;
use sha1::{Digest, Sha1};

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
mod tests {
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
}
