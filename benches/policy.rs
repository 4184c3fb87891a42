//! Zone policy: ns per `Policy::verdict` (two longest-prefix lookups plus the
//! allow-rule scan) and per `Policy::zone_of` (one lookup), on the example site
//! (α preset, 21 rules), for IPv4 and IPv6 flow mixes: allowed relay flows,
//! intra-zone flows, violations (every rule scanned) and default-zone addresses.
//! The policy and the flows are built before timing.
//!
//! Run: `cargo bench --bench policy`.
use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use zonewatch::policy::{Policy, IPPROTO_TCP, IPPROTO_UDP};

const SITE: &str = include_str!("../rules/example-site.toml");

fn ip(s: &str) -> IpAddr {
    s.parse().expect("bench address")
}

/// (src, dst, proto, dst port) between documentation addresses.
fn flows(v6: bool) -> Vec<(IpAddr, IpAddr, u8, u16)> {
    let v4 = [
        ("192.0.2.70", "192.0.2.161", IPPROTO_TCP, 3389), // L3 allowed
        ("192.0.2.49", "198.51.100.70", IPPROTO_TCP, 700), // A1 allowed
        ("192.0.2.33", "192.0.2.40", IPPROTO_TCP, 445),   // intra-zone
        ("192.0.2.70", "203.0.113.66", IPPROTO_TCP, 443), // violation, all rules scanned
        ("192.0.2.130", "198.51.100.130", IPPROTO_TCP, 8080), // I1
        ("203.0.113.200", "192.0.2.5", IPPROTO_UDP, 53),  // violation
        ("192.0.2.250", "203.0.113.1", IPPROTO_TCP, 80),  // default zone both ends
        ("192.0.2.165", "198.51.100.131", IPPROTO_TCP, 25), // I2
    ];
    let v6s = [
        (
            "2001:db8:0:210::70",
            "2001:db8:0:320::161",
            IPPROTO_TCP,
            3389,
        ),
        (
            "2001:db8:0:121::49",
            "2001:db8:ffff:2::70",
            IPPROTO_TCP,
            700,
        ),
        ("2001:db8:0:110::5", "2001:db8:0:120::9", IPPROTO_TCP, 445),
        (
            "2001:db8:0:210::70",
            "2001:db8:ffff:20::66",
            IPPROTO_TCP,
            443,
        ),
        (
            "2001:db8:0:310::5",
            "2001:db8:ffff:4::130",
            IPPROTO_TCP,
            8080,
        ),
        (
            "2001:db8:ffff:20::200",
            "2001:db8:0:110::5",
            IPPROTO_UDP,
            53,
        ),
        ("2001:db8:1234::1", "2001:db8:ffff:20::1", IPPROTO_TCP, 80),
        (
            "2001:db8:0:330::177",
            "2001:db8:0:220::100",
            IPPROTO_TCP,
            25,
        ),
    ];
    let src = if v6 { &v6s } else { &v4 };
    src.iter()
        .map(|&(s, d, p, port)| (ip(s), ip(d), p, port))
        .collect()
}

fn bench_policy(c: &mut Criterion) {
    let (policy, _) = Policy::from_source("example-site.toml", SITE).expect("example site loads");
    let mut g = c.benchmark_group("policy");
    for (slug, v6) in [("ipv4", false), ("ipv6", true)] {
        let fl = flows(v6);
        g.throughput(Throughput::Elements(fl.len() as u64));
        g.bench_with_input(BenchmarkId::new("verdict", slug), &fl, |b, fl| {
            b.iter(|| {
                for &(s, d, p, port) in fl {
                    black_box(policy.verdict(black_box(s), black_box(d), p, port, None));
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("zone_of", slug), &fl, |b, fl| {
            b.iter(|| {
                for &(s, _, _, _) in fl {
                    black_box(policy.zone_of(black_box(s), Some(210)));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_policy);
criterion_main!(benches);
