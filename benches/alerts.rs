//! Alert folding: ns per violating flow through `alert::fold::Folder` (push,
//! watermark, release, fold, close, alert lines built), with the example site,
//! for three shapes of violating traffic, each 100,000 flows over 10 s of
//! packet time from 2 workers:
//! - `repeats`: 50 initiators each reconnecting to the same few services
//!   (folds by flow: few alerts, big counts);
//! - `scan`: 20 initiators each sweeping 5,000 (host, port) targets (folds by
//!   source after the per-source cap);
//! - `distinct`: every flow its own (src, dst, port) group with the cap off
//!   (one alert each: the worst case).
//!
//! Events are built before timing. Run: `cargo bench --bench alerts`.
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use zonewatch::alert::fold::{FoldConfig, Folder};
use zonewatch::alert::Event;
use zonewatch::packet::{addr_v4, proto, FlowKey};
use zonewatch::policy::Policy;

const SITE: &str = include_str!("../rules/example-site.toml");
const FLOWS: u64 = 100_000;
const T0: u64 = 1_700_000_000_000_000_000;

fn v4(a: [u8; 4]) -> [u8; 16] {
    addr_v4(a)
}

fn events(p: &Arc<Policy>, shape: &str) -> Vec<(usize, Event)> {
    (0..FLOWS)
        .map(|i| {
            // 10 s of packet time, flows evenly spaced.
            let ts = T0 + i * 100_000;
            let (src, dst, dport) = match shape {
                // mynumber.term 192.0.2.0/27 -> internet, 4 services each.
                "repeats" => (
                    [192, 0, 2, (i % 30) as u8],
                    [203, 0, 113, 200 + (i % 4) as u8],
                    443,
                ),
                // lgwan.term 192.0.2.64/27 -> internet hosts and ports.
                "scan" => (
                    [192, 0, 2, 64 + (i % 20) as u8],
                    [203, 0, 113, 64 + ((i / 20) % 100) as u8],
                    1 + ((i / 2000) % 50) as u16,
                ),
                _ => (
                    [192, 0, 2, 64 + (i % 30) as u8],
                    [203, 0, 113, 64 + ((i / 30) % 150) as u8],
                    1 + (i / 4500) as u16,
                ),
            };
            let key = FlowKey {
                src: v4(src),
                dst: v4(dst),
                sport: 1024 + (i % 60_000) as u16,
                dport,
                proto: proto::TCP,
                ..FlowKey::default()
            };
            let verdict = p.verdict(
                IpAddr::from(src),
                IpAddr::from(dst),
                proto::TCP,
                dport,
                None,
            );
            let w = (key.sport % 2) as usize;
            (
                w,
                Event {
                    source: 0,
                    ts_ns: ts,
                    key,
                    verdict,
                    policy: p.clone(),
                },
            )
        })
        .collect()
}

fn bench_fold(c: &mut Criterion) {
    let (policy, _) = Policy::from_source("example-site.toml", SITE).expect("example site loads");
    let p = Arc::new(policy);
    let mut g = c.benchmark_group("alert_fold");
    g.throughput(Throughput::Elements(FLOWS));
    g.sample_size(20);
    for shape in ["repeats", "scan", "distinct"] {
        let evs = events(&p, shape);
        let cfg = FoldConfig {
            max_per_source: if shape == "distinct" { 0 } else { 20 },
            ..FoldConfig::default()
        };
        g.bench_with_input(BenchmarkId::from_parameter(shape), &evs, |b, evs| {
            b.iter_batched(
                || evs.clone(),
                |evs| {
                    let mut f = Folder::new(cfg, 2);
                    let mut alerts = 0usize;
                    for (i, (w, e)) in evs.into_iter().enumerate() {
                        let ts = e.ts_ns;
                        f.push(w, e);
                        if i % 256 == 255 {
                            f.watermark(0, ts);
                            f.watermark(1, ts);
                            alerts += f.drain().count();
                        }
                    }
                    f.finish();
                    alerts += f.drain().count();
                    black_box(alerts)
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_fold);
criterion_main!(benches);
