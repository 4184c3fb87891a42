//! Whole pipeline in process: frames from memory (no file I/O) through decode,
//! dispatch, workers and flow tables, for 1 and 2 workers.
//!
//! Input: every frame of the project's sample capture and a few public office
//! captures, replayed several times (flows stay alive between passes).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use zonewatch::capture::{MemFrame, MemSource};
use zonewatch::pipeline::{self, Outputs, PipelineConfig};

fn inputs() -> Vec<MemFrame> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let paths = [
        root.join("captures/sample.pcap"),
        root.join("../shared/captures/public/d_office/suricata_tls-subjectaltname.pcap"),
        root.join("../shared/captures/public/d_office/suricata_smb2-ntlmssp-negotiateflags.pcap"),
        root.join("../shared/captures/public/d_office/zeek_rdp-proprietary-encryption.pcap"),
    ];
    MemSource::load(&paths).expect("bench inputs load")
}

fn bench_pipeline(c: &mut Criterion) {
    let frames = std::sync::Arc::new(inputs());
    const PASSES: u64 = 20;
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(frames.len() as u64 * PASSES));
    g.sample_size(10);
    for workers in [1usize, 2] {
        g.bench_with_input(
            BenchmarkId::new("office_mix", format!("w{workers}")),
            &workers,
            |b, &w| {
                let cfg = PipelineConfig {
                    workers: NonZeroUsize::new(w).unwrap(),
                    hash_seed: Some(1),
                    ..PipelineConfig::default()
                };
                b.iter(|| {
                    let mut src = MemSource::new(std::sync::Arc::clone(&frames), PASSES, 1_000_000);
                    let stop = AtomicBool::new(false);
                    let flows: Option<Box<dyn std::io::Write + Send>> =
                        Some(Box::new(std::io::sink()));
                    let r = pipeline::run(
                        &mut src,
                        &cfg,
                        Outputs {
                            flows,
                            alerts: None,
                        },
                        &stop,
                        None,
                    )
                    .expect("runs");
                    assert_eq!(r.frames, frames.len() as u64 * PASSES);
                    r.frames
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
