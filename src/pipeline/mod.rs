//! Floor L5. The sensor pipeline: one capture thread, N worker threads, one writer thread
//! per output file.
//!
//! ```text
//!  source ──► capture thread: decode → hash → per-worker batch ──(bounded queue)──► worker i: FlowTable
//!              ▲                                                   ◄──(recycle)───   │ finished flows as
//!              └ empty batches come back on a return queue                            ▼ JSON line chunks
//!                                                                               writer thread → --flows
//! ```
//!
//! - Batches (`Vec<PacketMeta>` of `batch_size`) are allocated once at start-up and
//!   recycled: the steady state allocates nothing per packet.
//! - Replay applies back-pressure (`send` blocks when a worker's queue is full) and
//!   loses nothing. Live capture never blocks: a full queue drops the batch and
//!   counts it per worker with reason `queue_full` ([`WhenFull::DropNewest`]).
//! - Packet time, not wall time, drives flow expiry. Every batch carries the
//!   capture clock; when packet time advances by [`TICK_NS`] all workers get their
//!   partial batch (or an empty one) so idle workers expire flows too.

pub mod analysis;
mod capture;
mod worker;

use crate::alert::fold::FoldConfig;
use crate::capture::{CaptureError, PacketSource, SourceReport};
use crate::decode::DecodeStats;
use crate::detect::obs::Obs;
use crate::detect::DetectConfig;
use crate::flow::{EndReason, FlowConfig, FlowStats};
use crate::metrics::openmetrics::Recorder;
use crate::metrics::{Metrics, WorkerPub};
use crate::packet::PacketMeta;
use crate::policy::Policy;
use crate::sink::AlertSink;
use analysis::{AnalysisConfig, AnalysisMsg, AnalysisStats};
use arc_swap::ArcSwap;
use capture::{Capture, EvidenceOut};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::io::Write;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use worker::{FlowLines, ObsOut, WorkerEnd, WorkerSink};

/// Packet-time interval after which every worker hears the clock.
pub const TICK_NS: u64 = 1_000_000_000;
/// Same for live capture, where latency matters more than batching.
pub const LIVE_TICK_NS: u64 = 100_000_000;
/// Longest a live capture keeps reading its buffer after a stop signal.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);
/// Flow-line bytes a worker collects before handing a chunk to the writer.
const CHUNK_BYTES: usize = 64 * 1024;
/// Longest a finished flow's line waits in a worker's chunk (wall time): a
/// quiet sensor still writes its flow lines within about a second.
const SHIP_EVERY: Duration = Duration::from_secs(1);

/// What the capture thread does when a worker's queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait for the worker (replay: lossless).
    Block,
    /// Drop the batch and count it (live: never stall the capture).
    DropNewest,
}

/// Pipeline shape and flow-table limits.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub workers: NonZeroUsize,
    pub batch_size: NonZeroUsize,
    /// Batches in flight per worker queue.
    pub queue_depth: NonZeroUsize,
    pub flow: FlowConfig,
    /// Stop after this many frames (live `--count`), if set.
    pub max_frames: Option<u64>,
    /// Stop after this much wall time (live `--duration-secs`), if set.
    pub max_duration: Option<Duration>,
    /// Secret for the flow hash; `None` = random per process.
    pub hash_seed: Option<u64>,
    /// Zone policy: each worker's table judges every new flow once, and flow
    /// lines carry the verdict (`--rules`). `None` = no verdicts.
    pub policy: Option<Arc<Policy>>,
    /// Live rules reload: workers check it once per batch and, when it holds a
    /// different policy, judge new flows with it (existing flows keep theirs).
    pub policy_updates: Option<Arc<ArcSwap<Policy>>>,
    /// How `separation_violation` alerts fold (with `Outputs::alerts`).
    pub fold: FoldConfig,
    /// Detectors and their thresholds (with `Outputs::alerts`); `None` = only
    /// separation violations.
    pub detect: Option<DetectConfig>,
    /// Prometheus metrics (`--metrics-listen`): every thread publishes its
    /// plain counters into it once per batch (workers) or every 1024 frames
    /// (capture). `None` = no metrics work at all.
    pub metrics: Option<Arc<Metrics>>,
    /// `replay --openmetrics`: the capture thread snapshots `metrics` (which
    /// must be set) at every interval boundary of packet time, after a barrier
    /// with the workers (see `metrics::openmetrics`). `None` = no snapshots.
    pub openmetrics: Option<Arc<Recorder>>,
    /// Alerts' `host` (`--sensor`).
    pub sensor: Option<String>,
    /// Names of the capture sources by input index (alerts' `in_iface`):
    /// the interface, or each replayed input's name.
    pub sources: Vec<String>,
    /// `--evidence DIR` (with `Outputs::alerts`): the capture thread copies
    /// every analysed frame for the analysis thread's evidence store.
    pub evidence: Option<crate::evidence::EvidenceConfig>,
    /// `--report` and the human summary: with `Some(gap_ns)` workers count
    /// finished flows by zone pair and initiator (`report::ZoneAcc`, once per
    /// flow) and the capture thread lists packet-time gaps longer than
    /// `gap_ns` (`report::GapTracker`). `None` = neither.
    pub report_gap_ns: Option<u64>,
    /// Set by a second interrupt: stop at once, keeping what is computed.
    /// The live capture stops reading its buffer, workers skip the batches
    /// still queued and do not flush their open flows, the analysis thread
    /// adds no queued frame to evidence files; everything already formatted
    /// (flow lines, alerts, evidence buffers) is still written, and
    /// [`RunReport::unwritten`] says what was not. `None` = never.
    pub hurry: Option<Arc<AtomicBool>>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            workers: NonZeroUsize::new(2).unwrap(),
            batch_size: NonZeroUsize::new(256).unwrap(),
            queue_depth: NonZeroUsize::new(64).unwrap(),
            flow: FlowConfig::default(),
            max_frames: None,
            max_duration: None,
            hash_seed: None,
            policy: None,
            policy_updates: None,
            fold: FoldConfig::default(),
            detect: None,
            metrics: None,
            openmetrics: None,
            sensor: None,
            sources: Vec::new(),
            evidence: None,
            report_gap_ns: None,
            hurry: None,
        }
    }
}

/// Where finished flows go: any writer, fed by a dedicated thread.
pub struct Outputs {
    pub flows: Option<Box<dyn Write + Send>>,
    /// Alerts: separation violations (with `PipelineConfig::policy`) and the
    /// detectors' (with `PipelineConfig::detect`), written by the analysis thread.
    pub alerts: Option<Box<dyn AlertSink>>,
}

/// Something that watches progress (a progress bar in the binary).
pub trait Progress {
    fn update(&self, done_bytes: u64, total_bytes: u64, frames: u64);
}

/// Why the capture loop stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// Every input ended.
    EndOfInput,
    /// Ctrl-C / SIGTERM.
    Signal,
    /// `--count` or `--duration-secs` reached.
    Limit,
}

/// Everything the run counted, for the summary.
#[derive(Debug)]
pub struct RunReport {
    pub live: bool,
    pub stop: StopCause,
    pub frames: u64,
    pub bytes: u64,
    pub wire_bytes: u64,
    pub first_ts_ns: Option<u64>,
    pub last_ts_ns: Option<u64>,
    pub decode: DecodeStats,
    pub flows: FlowStats,
    pub source: SourceReport,
    /// Packets dropped because a worker's queue was full, per worker.
    pub queue_drops: Vec<u64>,
    /// Tunnel link ids and what they stand for.
    pub links: Vec<(u16, String)>,
    pub workers: usize,
    pub elapsed: Duration,
    /// The analysis thread's counts, when alerts were written.
    pub alerts: Option<AnalysisStats>,
    /// Time steps the sensor clock shifted.
    pub clock_steps: ClockSteps,
    /// Zone pairs, talkers and gaps (`PipelineConfig::report_gap_ns`).
    pub report: Option<crate::flow::tally::ReportData>,
    /// What a second interrupt left unwritten (`PipelineConfig::hurry`);
    /// `None` when the run finished normally.
    pub unwritten: Option<Unwritten>,
}

/// What the run did not write because a second interrupt hurried it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unwritten {
    /// Flows still open in the tables: no flow line was written for them.
    pub open_flows: u64,
    /// Packets read from the source but not analysed (queued for a worker).
    pub packets: u64,
    /// Frames queued for evidence files but not added to them.
    pub evidence_frames: u64,
}

/// Backward steps of the input's time that the sensor clock shifted
/// ([`crate::capture::clock`]).
#[derive(Clone, Debug, Default)]
pub struct ClockSteps {
    pub count: u64,
    pub listed: Vec<crate::capture::clock::Step>,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("writing flows: {0}")]
    Output(std::io::Error),
    #[error("writing alerts: {0}")]
    AlertOutput(std::io::Error),
    #[error("a worker thread panicked")]
    WorkerPanic,
    #[error("cannot start thread: {0}")]
    Spawn(std::io::Error),
}

/// A batch of packets for one worker plus the capture clock when it was sent.
struct Batch {
    pkts: Vec<PacketMeta>,
    now_ns: u64,
    /// When the capture thread read the batch's first packet (metrics on only:
    /// one clock read per batch), so latency covers the oldest packet's wait.
    sent: Option<Instant>,
}

enum Msg {
    Batch(Batch),
    Finish(EndReason),
    /// Barrier (openmetrics snapshot): answer once every earlier batch is
    /// accounted and published.
    Sync(Sender<()>),
}

/// The flow-line writer thread, if flow lines are wanted: chunks of whole
/// lines come in on the first sender, emptied buffers go back on the spare
/// queue (its sender and receiver are returned for the workers).
#[allow(clippy::type_complexity)]
fn spawn_writer(
    flows: Option<Box<dyn Write + Send>>,
    n: usize,
) -> Result<
    (
        Sender<Vec<u8>>,
        Sender<Vec<u8>>,
        Receiver<Vec<u8>>,
        Option<thread::JoinHandle<std::io::Result<()>>>,
    ),
    PipelineError,
> {
    let (chunk_tx, chunk_rx) = bounded::<Vec<u8>>(4 * n);
    let (spare_tx, spare_rx) = bounded::<Vec<u8>>(8 * n);
    let writer = match flows {
        Some(mut out) => {
            let spare_tx = spare_tx.clone();
            Some(
                thread::Builder::new()
                    .name("zw-writer".into())
                    .spawn(move || -> std::io::Result<()> {
                        let mut result = Ok(());
                        for mut chunk in chunk_rx.iter() {
                            if result.is_ok() {
                                result = out.write_all(&chunk);
                                // Nothing else waiting: put the lines on disk now
                                // (a busy replay writes full chunks anyway).
                                if result.is_ok() && chunk_rx.is_empty() {
                                    result = out.flush();
                                }
                            }
                            chunk.clear();
                            let _ = spare_tx.try_send(chunk);
                        }
                        result.and_then(|_| out.flush())
                    })
                    .map_err(PipelineError::Spawn)?,
            )
        }
        None => {
            drop(chunk_rx);
            None
        }
    };
    Ok((chunk_tx, spare_tx, spare_rx, writer))
}

/// The analysis thread, if alerts are wanted (a sink, and rules or detectors):
/// its message sender, the spare queue its observation vectors come back on,
/// and its handle.
#[allow(clippy::type_complexity)]
fn spawn_analysis(
    cfg: &PipelineConfig,
    alerts: Option<Box<dyn AlertSink>>,
    n: usize,
) -> Result<
    (
        Option<Sender<AnalysisMsg>>,
        Option<Receiver<Vec<Obs>>>,
        Option<thread::JoinHandle<(AnalysisStats, std::io::Result<()>)>>,
    ),
    PipelineError,
> {
    let wanted = cfg.policy.is_some() || cfg.detect.is_some();
    let spawned = match alerts {
        Some(sink) if wanted => {
            let (tx, rx) = bounded::<AnalysisMsg>(16 * n);
            // Observation vectors come back emptied: no allocation per message.
            let (spare_tx, spare_rx) = bounded::<Vec<Obs>>(32 * n);
            let acfg = AnalysisConfig {
                workers: n,
                fold: cfg.fold,
                policy: cfg.policy.clone(),
                detect: cfg.detect.clone().unwrap_or_else(DetectConfig::none),
                metrics: cfg.metrics.clone(),
                sensor: cfg.sensor.clone(),
                sources: cfg.sources.clone(),
                evidence: cfg.evidence.clone(),
                hurry: cfg.hurry.clone(),
            };
            let h = thread::Builder::new()
                .name("zw-analysis".into())
                .spawn(move || analysis::serve(rx, spare_tx, acfg, sink))
                .map_err(PipelineError::Spawn)?;
            (Some(tx), Some(spare_rx), Some(h))
        }
        _ => (None, None, None),
    };
    Ok(spawned)
}

/// The worker threads: a batch queue to each (and the queue its emptied
/// batches come back on, pre-filled with every batch it will ever use), with
/// its share of the alert feed and of the flow-line writer.
#[allow(clippy::type_complexity)]
fn spawn_workers(
    cfg: &PipelineConfig,
    n: usize,
    alerts: Option<(&Sender<AnalysisMsg>, &Receiver<Vec<Obs>>)>,
    chunk_tx: Option<&Sender<Vec<u8>>>,
    spare_rx: &Receiver<Vec<u8>>,
) -> Result<
    (
        Vec<Sender<Msg>>,
        Vec<Receiver<Vec<PacketMeta>>>,
        Vec<thread::JoinHandle<WorkerEnd>>,
    ),
    PipelineError,
> {
    let mut to_worker = Vec::with_capacity(n);
    let mut recycled = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    let needs = worker_needs(cfg);
    for i in 0..n {
        let (tx, rx) = bounded::<Msg>(cfg.queue_depth.get());
        let (ret_tx, ret_rx) = bounded::<Vec<PacketMeta>>(cfg.queue_depth.get() + 2);
        // Pre-allocate every batch this worker will ever need.
        for _ in 0..cfg.queue_depth.get() + 1 {
            let _ = ret_tx.try_send(Vec::with_capacity(cfg.batch_size.get()));
        }
        let flow_cfg = cfg.flow.clone();
        let policy = cfg.policy.clone();
        let sink = WorkerSink {
            gens: std::array::from_fn(|i| if i == 0 { cfg.policy.clone() } else { None }),
            lines: chunk_tx.map(|out| FlowLines {
                buf: Vec::new(),
                out: out.clone(),
                spare: spare_rx.clone(),
                shipped_at: Instant::now(),
                hurry: cfg.hurry.clone(),
                skipped: 0,
            }),
            obs: alerts.map(|(tx, spare)| ObsOut {
                tx: tx.clone(),
                spare: spare.clone(),
                worker: i,
                events: Vec::new(),
                needs: needs.clone(),
                taps: cfg
                    .detect
                    .as_ref()
                    .map(crate::detect::taps)
                    .unwrap_or_default(),
                parts: Vec::new(),
                sent_ns: 0,
            }),
            report: cfg
                .report_gap_ns
                .map(|_| Box::new(crate::flow::tally::ZoneAcc::new())),
        };
        let updates = cfg.policy_updates.clone();
        let publish = cfg.metrics.clone().map(|m| WorkerPub::new(m, i));
        let hurry = cfg.hurry.clone();
        let h = thread::Builder::new()
            .name(format!("zw-worker-{i}"))
            .spawn(move || {
                worker::worker(rx, ret_tx, flow_cfg, policy, updates, sink, publish, hurry)
            })
            .map_err(PipelineError::Spawn)?;
        to_worker.push(tx);
        recycled.push(ret_rx);
        handles.push(h);
    }
    Ok((to_worker, recycled, handles))
}

/// What the workers send the analysis thread besides violations: what the
/// enabled detectors need, and every flow start when a detector runs on two
/// or more inputs (the analysis thread names an alert's input from where its
/// addresses were first seen: `analysis::SEEN_ON_CAP`).
fn worker_needs(cfg: &PipelineConfig) -> crate::detect::Needs {
    let Some(d) = &cfg.detect else {
        return crate::detect::Needs::default();
    };
    let mut needs = crate::detect::needs(d);
    if cfg.sources.len() > 1 && d.any_enabled() {
        needs.starts = true;
    }
    needs
}

/// Runs the pipeline until the source ends, `stop` is set, or a limit is hit:
/// starts the writer, analysis and worker threads, runs the capture loop
/// (`capture::Capture`) on this thread, then ends and joins the others.
///
/// Generic over the source so the reader's `next` inlines into the capture loop
/// (a `dyn` call per packet was measurable at 64-byte frames).
pub fn run<S: PacketSource + ?Sized>(
    source: &mut S,
    cfg: &PipelineConfig,
    outputs: Outputs,
    stop: &AtomicBool,
    progress: Option<&dyn Progress>,
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let n = cfg.workers.get();
    let live = source.is_live();

    // Writer thread for flow lines: chunks of whole lines in, buffers back out.
    let (chunk_tx, spare_tx, spare_rx, writer) = spawn_writer(outputs.flows, n)?;
    let flows_wanted = writer.is_some();

    // Analysis thread: folds violations and runs the detectors on the
    // workers' merged observations (pipeline::analysis).
    let (alert_tx, alert_spare, alerter) = spawn_analysis(cfg, outputs.alerts, n)?;

    // Workers.
    let (to_worker, recycled, handles) = spawn_workers(
        cfg,
        n,
        alert_tx.as_ref().zip(alert_spare.as_ref()),
        flows_wanted.then_some(&chunk_tx),
        &spare_rx,
    )?;
    drop(chunk_tx);
    // The capture thread keeps a sender only for evidence frames.
    let evidence = match (&cfg.evidence, alert_tx) {
        (Some(_), Some(tx)) => Some(EvidenceOut {
            tx,
            batch: crate::evidence::Batch::default(),
            live,
            dropped: 0,
            metric: cfg
                .metrics
                .as_ref()
                .map(|m| m.counter(crate::metrics::M::EvidenceCut, &["frames_not_copied"])),
        }),
        _ => None,
    };

    let mut cap = Capture::new(cfg, live, to_worker, recycled, evidence);
    let stop_cause = cap.run(source, stop, progress, started)?;
    let end = match stop_cause {
        StopCause::EndOfInput => EndReason::EndOfCapture,
        StopCause::Signal | StopCause::Limit => EndReason::Shutdown,
    };
    let not_copied = cap.finish(end);
    if let Some(p) = progress {
        let (done, total) = source.progress();
        p.update(done, total, cap.frames);
    }

    let joined = join(handles, alerter, writer, spare_tx, not_copied)?;
    let frames = cap.frames;
    if let Some(rec) = cap.snapshots.filter(|_| frames > 0) {
        rec.snapshot(cap.clock, true);
    }
    let hurried = cfg
        .hurry
        .as_ref()
        .is_some_and(|h| h.load(Ordering::Relaxed));
    Ok(RunReport {
        live,
        stop: stop_cause,
        frames,
        bytes: cap.bytes,
        wire_bytes: cap.wire_bytes,
        first_ts_ns: cap.first_ts,
        last_ts_ns: if frames > 0 { Some(cap.clock) } else { None },
        source: cap.source_report(source),
        decode: cap.dstats,
        flows: joined.flows,
        queue_drops: cap.dispatch.queue_drops,
        links: cap.links.list().collect(),
        workers: n,
        elapsed: started.elapsed(),
        alerts: joined.alerts,
        clock_steps: ClockSteps {
            count: cap.sensor_clock.steps,
            listed: cap.sensor_clock.listed,
        },
        report: cap.gaps.map(|g| crate::flow::tally::ReportData {
            pairs: crate::flow::tally::merge_pairs(joined.pair_parts),
            gaps: Some(g),
        }),
        unwritten: hurried.then_some(joined.unwritten),
    })
}

/// What the other threads handed back.
struct Joined {
    flows: FlowStats,
    pair_parts: Vec<crate::flow::tally::Pairs>,
    alerts: Option<AnalysisStats>,
    unwritten: Unwritten,
}

/// Wait for the workers, then the analysis thread, then the writer (each
/// ends when the ones feeding it have); their errors in that order of
/// precedence: the analysis thread's, a panic, the writer's.
fn join(
    handles: Vec<thread::JoinHandle<WorkerEnd>>,
    alerter: Option<thread::JoinHandle<(AnalysisStats, std::io::Result<()>)>>,
    writer: Option<thread::JoinHandle<std::io::Result<()>>>,
    spare_tx: Sender<Vec<u8>>,
    not_copied: u64,
) -> Result<Joined, PipelineError> {
    let mut flows = FlowStats::default();
    let mut panicked = false;
    let mut pair_parts = Vec::new();
    let mut unwritten = Unwritten::default();
    for h in handles {
        match h.join() {
            Ok(end) => {
                flows.merge(&end.stats);
                pair_parts.extend(end.pairs);
                unwritten.packets += end.skipped_packets;
                unwritten.open_flows += end.lines_skipped;
                if end.hurried {
                    unwritten.open_flows += end.stats.active;
                }
            }
            Err(_) => panicked = true,
        }
    }
    drop(spare_tx);
    let alerts = match alerter {
        Some(h) => {
            let (mut stats, result) = h.join().map_err(|_| PipelineError::WorkerPanic)?;
            result.map_err(PipelineError::AlertOutput)?;
            if let Some(e) = &mut stats.evidence {
                e.frames_not_copied = not_copied;
            }
            unwritten.evidence_frames += stats.evidence_frames_unwritten;
            Some(stats)
        }
        None => None,
    };
    let write_result = match writer {
        Some(w) => w.join().map_err(|_| PipelineError::WorkerPanic)?,
        None => Ok(()),
    };
    if panicked {
        return Err(PipelineError::WorkerPanic);
    }
    write_result.map_err(PipelineError::Output)?;
    Ok(Joined {
        flows,
        pair_parts,
        alerts,
        unwritten,
    })
}

/// Worker index from bits 24..56 of the flow hash (Lemire's multiply-shift), so
/// the bits the flow table uses for buckets and tags stay independent of it.
#[inline]
pub fn worker_of(hash: u64, n: usize) -> usize {
    (((hash >> 24) as u32 as u64 * n as u64) >> 32) as usize
}
