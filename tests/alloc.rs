//! Steady state makes no heap allocation per packet.
//!
//! A separate test binary because it installs a counting global allocator.
//! The same capture is replayed from memory N and 2N times (a small gap between
//! passes keeps flows alive); the extra N passes — tens of thousands of packets
//! through decode, dispatch, workers and flow tables — may add only a handful of
//! allocations, not one per packet.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use zonewatch::capture::{MemFrame, MemSource};
use zonewatch::pipeline::{self, Outputs, PipelineConfig};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to the system allocator with the caller's
// arguments unchanged, so it keeps System's contract; it only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn public(rel: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/captures/public/"
    ))
    .join(rel)
}

/// Allocations and packets of one in-process run over `repeat` passes.
fn run(frames: &std::sync::Arc<Vec<MemFrame>>, repeat: u64, with_flows_output: bool) -> (u64, u64) {
    let mut src = MemSource::new(std::sync::Arc::clone(frames), repeat, 1_000_000);
    let cfg = PipelineConfig {
        hash_seed: Some(7),
        flow: zonewatch::flow::FlowConfig {
            max_flows: std::num::NonZeroUsize::new(1 << 14).unwrap(),
            ..Default::default()
        },
        ..PipelineConfig::default()
    };
    let flows: Option<Box<dyn std::io::Write + Send>> = if with_flows_output {
        Some(Box::new(std::io::sink()))
    } else {
        None
    };
    let stop = AtomicBool::new(false);
    let before = ALLOCS.load(Ordering::Relaxed);
    let report = pipeline::run(
        &mut src,
        &cfg,
        Outputs {
            flows,
            alerts: None,
        },
        &stop,
        None,
    )
    .expect("pipeline runs");
    let after = ALLOCS.load(Ordering::Relaxed);
    (after - before, report.frames)
}

#[test]
fn steady_state_allocates_nothing_per_packet() {
    // Office traffic: TLS, SMB, SMTP, with IPv4/TCP/UDP; plus a tunnel and a VLAN file.
    let paths = [
        public("d_office/suricata_tls-subjectaltname.pcap"),
        public("d_office/suricata_smb2-ntlmssp-negotiateflags.pcap"),
        public("i_tunnels/zeek_gre-sample.pcap"),
        public("e_vlan/zeek_icmp_dot1q.pcap"),
    ];
    for p in &paths {
        assert!(
            p.exists(),
            "missing shared capture {} (CI must provide ../shared)",
            p.display()
        );
    }
    let frames = std::sync::Arc::new(MemSource::load(&paths).expect("load captures"));
    assert!(
        frames.len() > 4000,
        "expected a few thousand frames, got {}",
        frames.len()
    );
    for with_output in [false, true] {
        let (a1, p1) = run(&frames, 10, with_output);
        let (a2, p2) = run(&frames, 20, with_output);
        let extra_packets = p2 - p1;
        let extra_allocs = a2.saturating_sub(a1);
        eprintln!(
            "flows output {with_output}: {a1} allocs for {p1} packets, {a2} for {p2}: {extra_allocs} extra for {extra_packets} extra packets"
        );
        assert!(extra_packets >= 40_000, "{extra_packets}");
        // Per-flow work (a record's timestamps) may allocate; per-packet work must not.
        // Flows stay alive across passes here, so the extra passes create none.
        assert!(
            extra_allocs < 200,
            "{extra_allocs} extra allocations for {extra_packets} extra packets (output {with_output})"
        );
    }
}
