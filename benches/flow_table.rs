//! Flow table: ns per `update` with 1k, 100k and 1M concurrent flows hit in
//! random order (the table is pre-filled; every measured packet finds its
//! flow), packet by packet and through `update_batch` (prefetching), in
//! 64-packet batches. `input/N` times the batch building alone (subtract it).
//! `flow_record/write_json` formats one record as a JSON line.
//! Before the timed runs it prints resident memory per flow at 1M flows
//! (VmRSS from /proc/self/status before/after filling a table).
//!
//! Run: `cargo bench --bench flow_table`.
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use zonewatch::flow::table::ENTRY_BYTES;
use zonewatch::flow::{EndReason, FlowConfig, FlowHasher, FlowRecord, FlowSink, FlowTable};
use zonewatch::packet::{addr_v4, proto, tcp_flags, FlowKey, PacketMeta, L3};

/// Packet-time spacing of measured packets: 1 µs (1 Mpps per worker). With
/// 1M flows each flow is seen about once per second, so most updates also
/// move their flow to the LRU tail (the worst case for list upkeep).
const SPACING_NS: u64 = 1_000;
const START_NS: u64 = 1_700_000_000 * 1_000_000_000;

struct CountSink(u64);

impl FlowSink for CountSink {
    fn flow_ended(&mut self, rec: &FlowRecord) {
        self.0 += rec.orig_pkts;
    }
}

/// One packet per flow: half TCP (mid-stream ACKs), half UDP, between
/// documentation addresses (192.0.2.0/24 clients, 198.51.100.0/24 servers).
fn flows(n: usize, hasher: &FlowHasher) -> Vec<PacketMeta> {
    (0..n)
        .map(|i| {
            let c = (i % 256) as u8;
            let s = ((i / 256) % 256) as u8;
            let sport = 1024 + (i / 65536) as u16;
            let tcp = i % 2 == 0;
            let mut m = PacketMeta {
                ts_ns: START_NS,
                key: FlowKey {
                    src: addr_v4([192, 0, 2, c]),
                    dst: addr_v4([198, 51, 100, s]),
                    sport,
                    dport: if tcp { 443 } else { 53 },
                    proto: if tcp { proto::TCP } else { proto::UDP },
                    ..Default::default()
                },
                wire_len: 600,
                l3: L3::Ipv4,
                tcp_flags: if tcp { tcp_flags::ACK } else { 0 },
                ..Default::default()
            };
            m.hash = hasher.hash_packet(&m);
            m
        })
        .collect()
}

/// A random visiting order (xorshift; fixed seed).
fn random_order(len: usize, n: usize) -> Vec<u32> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as u32
        })
        .collect()
}

fn cfg() -> FlowConfig {
    FlowConfig::default() // max_flows 2^20, as a worker runs by default
}

fn filled_table(pkts: &[PacketMeta]) -> FlowTable {
    let mut t = FlowTable::new(&cfg());
    let mut sink = CountSink(0);
    for p in pkts {
        t.update(p, &mut sink);
    }
    assert_eq!(t.len(), pkts.len());
    t
}

fn vm_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn report_memory() {
    let n = 1_000_000;
    let hasher = FlowHasher::with_seed(7);
    let pkts = flows(n, &hasher);
    let before = vm_rss_kib();
    let t = filled_table(&pkts);
    let after = vm_rss_kib();
    match (before, after) {
        (Some(b), Some(a)) => {
            let bytes = a.saturating_sub(b) * 1024;
            eprintln!(
                "flow_table memory: {n} flows (max_flows {}): resident +{:.1} MiB = {:.1} B/flow \
                 (entry {ENTRY_BYTES} B + index; {:.1} B/flow reserved)",
                cfg().max_flows,
                bytes as f64 / (1024.0 * 1024.0),
                bytes as f64 / n as f64,
                t.reserved_bytes() as f64 / n as f64,
            );
        }
        _ => eprintln!("flow_table memory: /proc/self/status unavailable"),
    }
    black_box(&t);
}

fn bench_update(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow_table");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    g.warm_up_time(Duration::from_secs(2));
    for n in [1_000usize, 100_000, 1_000_000] {
        let hasher = FlowHasher::with_seed(7);
        let pkts = flows(n, &hasher);
        // The packets in random flow order, laid out in sequence as a worker
        // receives them (2 per flow on average, at least 64k).
        let len = (2 * n).next_power_of_two().max(1 << 12);
        let seq: Vec<PacketMeta> = random_order(len, n)
            .into_iter()
            .map(|i| pkts[i as usize])
            .collect();
        // "input": only copies the 64-packet batches and stamps their times,
        // so its time can be subtracted from the others.
        for mode in ["input", "update", "update_batch"] {
            let mut table = filled_table(&pkts);
            let mut sink = CountSink(0);
            let mut clock = START_NS;
            let mut pos = 0usize;
            let mut batch: Vec<PacketMeta> = Vec::with_capacity(64);
            g.bench_function(BenchmarkId::new(mode, n), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    let mut left = iters;
                    while left > 0 {
                        let k = left.min(64);
                        batch.clear();
                        for _ in 0..k {
                            let mut m = seq[pos];
                            pos = (pos + 1) & (len - 1);
                            clock += SPACING_NS;
                            m.ts_ns = clock;
                            batch.push(m);
                        }
                        match mode {
                            "update" => {
                                for m in &batch {
                                    table.update(m, &mut sink);
                                }
                            }
                            "update_batch" => table.update_batch(&batch, &mut sink),
                            _ => {
                                black_box(&batch);
                            }
                        }
                        left -= k;
                    }
                    start.elapsed()
                })
            });
            assert_eq!(table.len(), n, "no flow may end during the bench");
            black_box(sink.0);
        }
    }
    g.finish();
}

/// One finished flow formatted as a JSON line (runs once per flow).
fn bench_write_json(c: &mut Criterion) {
    let hasher = FlowHasher::with_seed(7);
    let mut table = FlowTable::new(&cfg());
    let mut recs: Vec<FlowRecord> = Vec::new();
    for p in flows(2, &hasher) {
        table.update(&p, &mut recs);
    }
    table.flush(EndReason::EndOfCapture, &mut recs);
    let mut out = Vec::with_capacity(4096);
    let mut g = c.benchmark_group("flow_record");
    g.throughput(Throughput::Elements(1));
    for (name, rec) in [("tcp", recs[0]), ("udp", recs[1])] {
        g.bench_function(BenchmarkId::new("write_json", name), |b| {
            b.iter(|| {
                out.clear();
                zonewatch::format::flow_line::write(black_box(&rec), &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_update, bench_write_json);

fn main() {
    report_memory();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
