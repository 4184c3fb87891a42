//! The analysis stage per flow (#18): `pipeline::analysis::serve`, the one
//! thread that merges the workers' observations in packet-time order, folds
//! separation violations and runs every detector, fed what two workers send
//! for 50,000 flows.
//!
//! Input, built once before timing: packets in the generator's mix
//! (`zonewatch-gen --profile imix`, benches/README.md "The captures": by
//! flows 50% TCP with 8% refused by RST and 7% reset after the data, 25% DNS,
//! 10% bulk UDP to 514 with 30% answered, 15% ICMP echo; 15% IPv6, 10%
//! VLAN-tagged; its client, server and gateway addresses and MACs; flows
//! interleaved at random over 20,000 open slots, 1 µs apart on average), plus
//! one ARP request and reply per 50 flows. They go through two real flow tables
//! (`FlowTable::with_policy`, split by `pipeline::worker_of`) in 256-packet
//! batches with each detector's packet tap, and a sink that keeps what a
//! worker keeps (`detect::needs`, as `pipeline::worker` does): the
//! observations, tap parts, watermarks and `Done` of both workers, in the
//! order they would reach the analysis thread.
//!
//! Timed: `serve` over those messages, already queued, to an alert sink that
//! discards (building the alerts is timed, writing them is not). Throughput
//! is in flows (ARP not counted), so criterion prints time per flow; the #18
//! target is ≤ 300 ns. Two rules files, every detector on (neither has a
//! `[detect]` table): `generated_rules` (benches/rules-generated.toml,
//! violations rare) and `example_site` (rules/example-site.toml: most flows
//! violate, the worst case).
//!
//! A second group, `taps`, times the workers' per-packet detector work (the
//! taps of `detect::taps`: the DoS counter) over the same packets, per packet.
//!
//! Run: `cargo bench --bench analysis`.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use zonewatch::alert::fold::FoldConfig;
use zonewatch::detect::obs::{ArpObs, Obs};
use zonewatch::detect::{self, DetectConfig, Needs, PacketTap, TapPart};
use zonewatch::flow::{
    EndReason, FlowClose, FlowConfig, FlowHasher, FlowRecord, FlowSink, FlowStart, FlowTable,
    Refusal,
};
use zonewatch::packet::{addr_v4, proto, tcp_flags, Addr, FlowKey, PacketMeta, L3};
use zonewatch::pipeline::analysis::{serve, AnalysisConfig, AnalysisMsg};
use zonewatch::pipeline::worker_of;
use zonewatch::policy::{Policy, Verdict};

const FLOWS: usize = 50_000;
const CONCURRENT: usize = 20_000;
const WORKERS: usize = 2;
const BATCH: usize = 256;
const START_NS: u64 = 1_711_929_600 * 1_000_000_000; // 2024-04-01T00:00:00Z, as the generator
const ARP_EVERY: usize = 50;

/// xorshift64*, fixed seed: the same input every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

// The generator's addresses: the bench's flows look like its captures.
#[allow(dead_code)]
#[path = "../tools/zonewatch-gen/src/addrs.rs"]
mod addrs;
use addrs::{client_mac, client_v4, client_v6, gateway_mac, server_v6, TCP_PORTS};

/// One flow's remaining packets, client's view: (from the server, protocol
/// ports or ICMP type, TCP flags, payload bytes), in order.
struct Flow {
    client: Addr,
    server: Addr,
    v6: bool,
    cport: u16,
    sport: u16,
    proto: u8,
    vlan: [u16; 2],
    nvlan: u8,
    cmac: [u8; 6],
    gmac: [u8; 6],
    steps: Vec<(bool, u8, u32)>,
    next: usize,
}

const A: u8 = tcp_flags::ACK;
const S: u8 = tcp_flags::SYN;
const F: u8 = tcp_flags::FIN;
const R: u8 = tcp_flags::RST;
const P: u8 = tcp_flags::PSH;

fn new_flow(rng: &mut Rng, n: u64) -> Flow {
    // client_pair: a distinct (client host, port) for every flow.
    const PAIRS: u64 = 508 * 28_232;
    let pair = (n % PAIRS) * 9_576_881 % PAIRS;
    let (host, cport) = ((pair % 508) as u16, 32_768 + (pair / 508) as u16);
    let server = rng.below(254) as u16;
    let v6 = rng.chance(150);
    let nvlan = if rng.chance(100) {
        if rng.chance(200) {
            2
        } else {
            1
        }
    } else {
        0
    };
    let outer = 100 + rng.below(8) as u16 * 100;
    let inner = 10 + rng.below(40) as u16;
    let vlan = match nvlan {
        2 => [outer, inner],
        1 => [inner, 0],
        _ => [0, 0],
    };
    let roll = rng.below(1000);
    let mut steps = Vec::new();
    let (proto, sport) = if roll < 500 {
        let mut p = rng.below(1000);
        let mut port = 443;
        for (sp, weight) in TCP_PORTS {
            if p < weight {
                port = sp;
                break;
            }
            p -= weight;
        }
        steps.push((false, S, 0));
        if rng.chance(80) {
            steps.push((true, R | A, 0));
        } else {
            steps.push((true, S | A, 0));
            steps.push((false, A, 0));
            steps.push((false, P | A, 300));
            let segments = 1 + rng.below(6);
            for i in 1..=segments {
                steps.push((true, A, 1448));
                if i % 2 == 0 || i == segments {
                    steps.push((false, A, 0));
                }
            }
            if rng.chance(70) {
                steps.push((false, R | A, 0));
            } else if rng.chance(700) {
                steps.push((false, F | A, 0));
                steps.push((true, F | A, 0));
                steps.push((false, A, 0));
            } else {
                steps.push((true, F | A, 0));
                steps.push((false, F | A, 0));
                steps.push((true, A, 0));
            }
        }
        (proto::TCP, port)
    } else if roll < 750 {
        steps.push((false, 0, 40));
        steps.push((true, 0, 120));
        (proto::UDP, 53)
    } else if roll < 850 {
        let n = 4 + rng.below(13);
        for _ in 0..n {
            steps.push((false, 0, 800));
        }
        if rng.chance(300) {
            steps.push((true, 0, 100));
        }
        (proto::UDP, 514)
    } else {
        for _ in 0..1 + rng.below(4) {
            steps.push((false, 0, 56));
            steps.push((true, 0, 56));
        }
        (if v6 { proto::ICMPV6 } else { proto::ICMP }, 0)
    };
    Flow {
        client: if v6 {
            client_v6(host, cport)
        } else {
            addr_v4(client_v4(host))
        },
        server: if v6 {
            server_v6(server)
        } else {
            addr_v4([203, 0, 113, server as u8 + 1])
        },
        v6,
        cport,
        sport,
        proto,
        vlan,
        nvlan,
        cmac: client_mac(host),
        gmac: gateway_mac(server),
        steps,
        next: 0,
    }
}

impl Flow {
    fn packet(&mut self, ts_ns: u64) -> PacketMeta {
        let (back, flags, len) = self.steps[self.next];
        self.next += 1;
        let icmp = self.proto == proto::ICMP || self.proto == proto::ICMPV6;
        let (src, dst, sp, dp) = if icmp {
            // ICMP keys carry type and code: echo request / reply.
            let t = match (self.v6, back) {
                (false, false) => 8,
                (false, true) => 0,
                (true, false) => 128,
                (true, true) => 129,
            };
            if back {
                (self.server, self.client, t, 0)
            } else {
                (self.client, self.server, t, 0)
            }
        } else if back {
            (self.server, self.client, self.sport, self.cport)
        } else {
            (self.client, self.server, self.cport, self.sport)
        };
        let hdr = if self.v6 { 40 } else { 20 } + 4 * u32::from(self.nvlan);
        PacketMeta {
            ts_ns,
            key: FlowKey {
                src,
                dst,
                sport: sp,
                dport: dp,
                vlan: self.vlan,
                proto: self.proto,
                v6: self.v6,
                ..Default::default()
            },
            wire_len: 14 + hdr + 20 + len,
            ip_len: hdr + 20 + len,
            payload_len: len,
            src_mac: if back { self.gmac } else { self.cmac },
            l3: if self.v6 { L3::Ipv6 } else { L3::Ipv4 },
            nvlan: self.nvlan,
            tcp_flags: flags,
            ttl: 64,
            ..Default::default()
        }
    }

    fn done(&self) -> bool {
        self.next >= self.steps.len()
    }
}

fn arp(ts_ns: u64, sender: [u8; 4], target: [u8; 4], mac: [u8; 6], op: u16) -> PacketMeta {
    PacketMeta {
        ts_ns,
        key: FlowKey {
            src: addr_v4(sender),
            dst: addr_v4(target),
            sport: op,
            ..Default::default()
        },
        wire_len: 60,
        src_mac: mac,
        l3: L3::Arp,
        ..Default::default()
    }
}

/// Every packet of `FLOWS` flows in packet-time order (hash set), plus ARP.
fn packets() -> Vec<PacketMeta> {
    let hasher = FlowHasher::with_seed(1);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut started = 0u64;
    let mut slots: Vec<Flow> = (0..CONCURRENT.min(FLOWS))
        .map(|_| {
            started += 1;
            new_flow(&mut rng, started - 1)
        })
        .collect();
    let mut ts = START_NS;
    let mut out = Vec::new();
    let mut arps = 0;
    while !slots.is_empty() {
        ts += rng.below(2_000);
        let i = rng.below(slots.len() as u64) as usize;
        let mut m = slots[i].packet(ts);
        m.hash = hasher.hash_packet(&m);
        out.push(m);
        if slots[i].done() {
            if (started as usize) < FLOWS {
                started += 1;
                slots[i] = new_flow(&mut rng, started - 1);
            } else {
                slots.swap_remove(i);
            }
            // A gateway asks for a client's address now and then.
            if started as usize / ARP_EVERY > arps {
                arps += 1;
                let host = rng.below(508) as u16;
                let gw = [192, 0, 2, 254];
                let q = arp(ts, gw, client_v4(host), gateway_mac(host), 1);
                let r = arp(ts + 100, client_v4(host), gw, client_mac(host), 2);
                out.extend([q, r].map(|mut a| {
                    a.hash = hasher.hash_packet(&a);
                    a
                }));
            }
        }
    }
    out
}

/// Keeps what a worker sends the analysis thread (`pipeline::worker`'s sink).
struct Keep {
    needs: Needs,
    events: Vec<Obs>,
}

impl FlowSink for Keep {
    fn flow_ended(&mut self, _: &FlowRecord) {}

    fn flow_started(&mut self, start: &FlowStart) {
        let violation = matches!(Verdict::unpack(start.tag), Some(Verdict::Violation { .. }));
        if self.needs.starts || violation {
            self.events.push(Obs::Start(*start));
        }
    }

    fn flow_vlan_moved(&mut self, s: &FlowStart) {
        if self.needs.moved {
            self.events.push(Obs::Moved(*s));
        }
    }

    fn flow_seen(&mut self, key: &FlowKey, tag: u32, ts_ns: u64) {
        self.events.push(Obs::Seen {
            ts_ns,
            key: *key,
            tag,
        });
    }

    fn flow_answered(&mut self, key: &FlowKey, ts_ns: u64) {
        if self.needs.answered {
            self.events.push(Obs::Answered { ts_ns, key: *key });
        }
    }

    fn flow_refused(&mut self, key: &FlowKey, ts_ns: u64, how: Refusal) {
        if self.needs.refused {
            self.events.push(Obs::Refused {
                ts_ns,
                key: *key,
                how,
            });
        }
    }

    fn flow_closed(&mut self, close: &FlowClose) {
        if self.needs.close_on(close.key.dport) {
            self.events.push(Obs::Closed(*close));
        }
    }

    fn arp(&mut self, meta: &PacketMeta) {
        if self.needs.arp {
            self.events.push(Obs::Arp(ArpObs::from_meta(meta)));
        }
    }
}

/// One worker's batch as the analysis thread gets it: the packets (for the
/// taps, which ship parts that cannot be cloned, so they run again in each
/// iteration's untimed set-up), the observations and the watermark.
struct Step {
    worker: usize,
    pkts: Vec<PacketMeta>,
    obs: Vec<Obs>,
    now_ns: u64,
    last: bool,
}

/// The workers' side, run once: batches through two flow tables.
fn record(pkts: &[PacketMeta], policy: &Arc<Policy>, detect: &DetectConfig) -> Vec<Step> {
    let cfg = FlowConfig {
        max_flows: NonZeroUsize::new(1 << 17).unwrap(),
        ..FlowConfig::default()
    };
    let mut tables: Vec<FlowTable> = (0..WORKERS)
        .map(|_| FlowTable::with_policy(&cfg, Some(Arc::clone(policy))))
        .collect();
    let mut sinks: Vec<Keep> = (0..WORKERS)
        .map(|_| Keep {
            needs: detect::needs(detect),
            events: Vec::new(),
        })
        .collect();
    let mut batches: Vec<Vec<PacketMeta>> = vec![Vec::new(); WORKERS];
    let mut steps = Vec::new();
    let mut run = |w: usize, b: Vec<PacketMeta>, tables: &mut [FlowTable], sinks: &mut [Keep]| {
        let now = b.last().map_or(START_NS, |m| m.ts_ns);
        tables[w].update_batch(&b, &mut sinks[w]);
        tables[w].expire(now, &mut sinks[w]);
        steps.push(Step {
            worker: w,
            pkts: b,
            obs: std::mem::take(&mut sinks[w].events),
            now_ns: now,
            last: false,
        });
    };
    for m in pkts {
        let w = worker_of(m.hash, WORKERS);
        batches[w].push(*m);
        if batches[w].len() == BATCH {
            run(w, std::mem::take(&mut batches[w]), &mut tables, &mut sinks);
        }
    }
    for (w, b) in batches.into_iter().enumerate() {
        if !b.is_empty() {
            run(w, b, &mut tables, &mut sinks);
        }
    }
    let end = pkts.last().map_or(START_NS, |m| m.ts_ns);
    for w in 0..WORKERS {
        tables[w].flush(EndReason::EndOfCapture, &mut sinks[w]);
        steps.push(Step {
            worker: w,
            pkts: Vec::new(),
            obs: std::mem::take(&mut sinks[w].events),
            now_ns: end,
            last: true,
        });
    }
    steps
}

/// The messages of one iteration, queued on a channel whose senders are gone.
fn queue(steps: &[Step], detect: &DetectConfig) -> crossbeam_channel::Receiver<AnalysisMsg> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut taps: Vec<Vec<(usize, Box<dyn PacketTap>)>> =
        (0..WORKERS).map(|_| detect::taps(detect)).collect();
    let mut parts: Vec<TapPart> = Vec::new();
    for s in steps {
        for (d, t) in &mut taps[s.worker] {
            if s.last {
                t.finish(&mut parts);
            } else {
                t.batch(&s.pkts, s.now_ns, &mut parts);
            }
            for part in parts.drain(..) {
                tx.send(AnalysisMsg::Tap {
                    worker: s.worker,
                    detector: *d,
                    part,
                })
                .unwrap();
            }
        }
        tx.send(AnalysisMsg::Obs {
            worker: s.worker,
            watermark_ns: s.now_ns,
            obs: s.obs.clone(),
        })
        .unwrap();
        if s.last {
            tx.send(AnalysisMsg::Done {
                worker: s.worker,
                shutdown: false,
            })
            .unwrap();
        }
    }
    rx
}

fn bench_analysis(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let pkts = packets();
    let mut g = c.benchmark_group("analysis");
    g.throughput(Throughput::Elements(FLOWS as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    for (name, file) in [
        ("generated_rules", "benches/rules-generated.toml"),
        ("example_site", "rules/example-site.toml"),
    ] {
        let rules = detect::load_rules(&root.join(file)).expect("bench rules load");
        assert!(
            rules.detect == DetectConfig::default(),
            "{file}: every detector on (no [detect] table)"
        );
        let policy = Arc::new(rules.policy);
        let steps = record(&pkts, &policy, &rules.detect);
        let obs: usize = steps.iter().map(|s| s.obs.len()).sum();
        let (spare, _returned) = crossbeam_channel::unbounded();
        let (stats, r) = run_once(queue(&steps, &rules.detect), spare, &policy, &rules.detect);
        r.expect("analysis runs");
        let observed: Vec<String> = stats
            .detectors
            .iter()
            .map(|(d, s)| format!("{d} {}", s.observed))
            .collect();
        eprintln!(
            "analysis/{name}: {FLOWS} flows, {} packets, {obs} observations from {WORKERS} workers \
             (observed by detector: {}), {} violating flows, {} alert lines",
            pkts.len(),
            observed.join(", "),
            stats.separation.violating_flows,
            stats.written_by_kind.values().sum::<u64>(),
        );
        g.bench_function(BenchmarkId::new("every_detector", name), |b| {
            b.iter_batched(
                || queue(&steps, &rules.detect),
                |rx| {
                    // The emptied vectors wait here (a worker would reuse them)
                    // and are dropped after the timing.
                    let (spare, returned) = crossbeam_channel::unbounded();
                    (run_once(rx, spare, &policy, &rules.detect), returned)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn run_once(
    rx: crossbeam_channel::Receiver<AnalysisMsg>,
    spare: crossbeam_channel::Sender<Vec<Obs>>,
    policy: &Arc<Policy>,
    detect: &DetectConfig,
) -> (
    zonewatch::pipeline::analysis::AnalysisStats,
    std::io::Result<()>,
) {
    let cfg = AnalysisConfig {
        workers: WORKERS,
        fold: FoldConfig::default(),
        policy: Some(Arc::clone(policy)),
        detect: detect.clone(),
        metrics: None,
        sensor: Some("bench".into()),
        sources: vec!["bench".into()],
        evidence: None,
        hurry: None,
    };
    serve(rx, spare, cfg, Box::new(zonewatch::sink::Discard))
}

/// The workers' per-packet detector work (`detect::taps`: the DoS counter),
/// per packet, one tap over every packet of the mix in 256-packet batches.
fn bench_taps(c: &mut Criterion) {
    let pkts = packets();
    let cfg = DetectConfig::default();
    let mut g = c.benchmark_group("taps");
    g.throughput(Throughput::Elements(pkts.len() as u64));
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("every_detector", |b| {
        b.iter_batched(
            || (detect::taps(&cfg), Vec::<TapPart>::new()),
            |(mut taps, mut parts)| {
                for chunk in pkts.chunks(BATCH) {
                    let now = chunk.last().map_or(0, |m| m.ts_ns);
                    for (_, t) in &mut taps {
                        t.batch(chunk, now, &mut parts);
                    }
                }
                for (_, t) in &mut taps {
                    t.finish(&mut parts);
                }
                parts.len()
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_analysis, bench_taps);
criterion_main!(benches);
