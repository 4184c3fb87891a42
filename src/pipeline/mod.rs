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

use crate::alert::fold::FoldConfig;
use crate::alert::AlertSink;
use crate::capture::{CaptureError, LiveCounters, Next, PacketSource, SourceReport};
use crate::decode::{self, DecodeStats, LinkIds};
use crate::detect::dos::DosCounter;
use crate::detect::obs::{ArpObs, Obs};
use crate::detect::DetectConfig;
use crate::flow::{
    EndReason, FlowClose, FlowConfig, FlowHasher, FlowRecord, FlowSink, FlowStart, FlowStats,
    FlowTable, Refusal,
};
use crate::metrics::openmetrics::Recorder;
use crate::metrics::{CapturePub, Metrics, WorkerPub};
use crate::packet::{FlowKey, PacketMeta, L3};
use crate::policy::{generation_of, Policy, POLICY_GENERATIONS};
use analysis::{AnalysisConfig, AnalysisMsg, AnalysisStats};
use arc_swap::ArcSwap;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::io::Write;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

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
    detecting: bool,
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
    for i in 0..n {
        let (tx, rx) = bounded::<Msg>(cfg.queue_depth.get());
        let (ret_tx, ret_rx) = bounded::<Vec<PacketMeta>>(cfg.queue_depth.get() + 2);
        // Pre-allocate every batch this worker will ever need.
        for _ in 0..cfg.queue_depth.get() + 1 {
            let _ = ret_tx.try_send(Vec::with_capacity(cfg.batch_size.get()));
        }
        let flow_cfg = cfg.flow.clone();
        let policy = cfg.policy.clone();
        let sink = ChunkSink {
            gens: std::array::from_fn(|i| if i == 0 { cfg.policy.clone() } else { None }),
            alerts: match alerts {
                Some((tx, spare)) => Some(AlertOut {
                    tx: tx.clone(),
                    spare: spare.clone(),
                    worker: i,
                    events: Vec::new(),
                    sent_ns: 0,
                    all: detecting,
                    closed_ports: closed_ports(cfg.detect.as_ref()),
                    dos: cfg
                        .detect
                        .as_ref()
                        .filter(|d| d.dos.enabled)
                        .map(|d| Box::new(DosCounter::new(&d.dos))),
                }),
                _ => None,
            },
            buf: Vec::new(),
            out: chunk_tx.cloned(),
            spare: spare_rx.clone(),
            shipped_at: Instant::now(),
            hurry: cfg.hurry.clone(),
            lines_skipped: 0,
            report: cfg
                .report_gap_ns
                .map(|_| Box::new(crate::flow::tally::ZoneAcc::new())),
        };
        let updates = cfg.policy_updates.clone();
        let publish = cfg.metrics.clone().map(|m| WorkerPub::new(m, i));
        let hurry = cfg.hurry.clone();
        let h = thread::Builder::new()
            .name(format!("zw-worker-{i}"))
            .spawn(move || worker(rx, ret_tx, flow_cfg, policy, updates, sink, publish, hurry))
            .map_err(PipelineError::Spawn)?;
        to_worker.push(tx);
        recycled.push(ret_rx);
        handles.push(h);
    }
    Ok((to_worker, recycled, handles))
}

/// Runs the pipeline until the source ends, `stop` is set, or a limit is hit.
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
    let when_full = if live {
        WhenFull::DropNewest
    } else {
        WhenFull::Block
    };
    let hasher = match cfg.hash_seed {
        Some(s) => FlowHasher::with_seed(s),
        None => FlowHasher::new(),
    }
    .with_vlan_in_key(cfg.flow.vlan_in_key);

    // Writer thread for flow lines: chunks of whole lines in, buffers back out.
    let (chunk_tx, spare_tx, spare_rx, writer) = spawn_writer(outputs.flows, n)?;
    let flows_wanted = writer.is_some();

    // Analysis thread: folds violations and runs the detectors on the
    // workers' merged observations (pipeline::analysis).
    let (alert_tx, alert_spare, alerter) = spawn_analysis(cfg, outputs.alerts, n)?;
    let detecting = cfg.detect.is_some();

    // Workers.
    let (to_worker, recycled, handles) = spawn_workers(
        cfg,
        n,
        alert_tx.as_ref().zip(alert_spare.as_ref()),
        detecting,
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

    let mut pending: Vec<Vec<PacketMeta>> = recycled
        .iter()
        .map(|r| r.try_recv().unwrap_or_default())
        .collect();
    let mut queue_drops = vec![0u64; n];
    let mut links = LinkIds::default();
    let mut dstats = DecodeStats::default();
    let mut meta = PacketMeta::default();
    let mut frames = 0u64;
    let mut bytes = 0u64;
    let mut wire_bytes = 0u64;
    let mut first_ts: Option<u64> = None;
    let mut clock = 0u64; // newest packet time seen
    let tick = if live { LIVE_TICK_NS } else { TICK_NS };
    let mut next_tick = 0u64;
    let batch_size = cfg.batch_size.get();

    let mut dispatch = Dispatch {
        to_worker: &to_worker,
        recycled: &recycled,
        queue_drops: &mut queue_drops,
        when_full,
        batch_size,
        stamp: cfg.metrics.is_some(),
        first_at: vec![None; n],
        evidence,
    };
    let mut publish = cfg.metrics.as_deref().map(CapturePub::new);
    // Openmetrics snapshots: the next boundary of packet time (0 = none yet).
    let snapshots = cfg.openmetrics.as_deref().filter(|_| publish.is_some());
    let mut next_snapshot = 0u64;
    let (sync_tx, sync_rx) = bounded::<()>(n);
    // libpcap's counters cost a system call: read them at most this often.
    let mut live_stats_at = Instant::now();

    // Live: after a stop signal, read what the capture buffer already holds
    // (until the source is idle, at most DRAIN_LIMIT), so frames the kernel
    // handed over are analysed rather than silently lost.
    // A second interrupt (`hurry`) ends the drain at once.
    let mut draining: Option<Instant> = None;
    let mut idle_while_draining = 0u32;
    let hurried = || {
        cfg.hurry
            .as_ref()
            .is_some_and(|h| h.load(Ordering::Relaxed))
    };
    let mut gaps = cfg.report_gap_ns.map(crate::flow::tally::GapTracker::new);
    let mut sensor_clock = crate::capture::clock::SensorClock::new(cfg.fold.slack_ns);
    let stop_cause = loop {
        match draining {
            None if stop.load(Ordering::Relaxed) => {
                if !live || hurried() {
                    break StopCause::Signal;
                }
                draining = Some(Instant::now());
            }
            Some(t) if t.elapsed() >= DRAIN_LIMIT || hurried() => break StopCause::Signal,
            _ => {}
        }
        // Matched in place: binding the result first (`source.next()?`) moved the
        // frame through the stack with overlapping partial copies that stalled
        // store-to-load forwarding once per packet.
        match source.next() {
            Ok(Next::Frame(mut frame)) => {
                // Sensor time from here on (capture::clock): monotonic over the
                // input up to the reorder slack; the gap watch sees the file's own.
                let own_ts = frame.ts_ns;
                frame.ts_ns = sensor_clock.time(own_ts);
                if let (Some(rec), Some(m)) = (snapshots, &mut publish) {
                    if frame.ts_ns >= next_snapshot {
                        // Everything before this frame is accounted, then snapshot.
                        dispatch.send_all(&mut pending, clock);
                        for tx in dispatch.to_worker {
                            let _ = tx.send(Msg::Sync(sync_tx.clone()));
                        }
                        for _ in 0..n {
                            let _ = sync_rx.recv();
                        }
                        m.publish(frames, wire_bytes, &dstats, dispatch.queue_drops, clock);
                        let iv = rec.interval_ns();
                        let floor = frame.ts_ns / iv * iv;
                        if next_snapshot == 0 {
                            rec.snapshot(frame.ts_ns, false);
                        } else {
                            rec.snapshot(next_snapshot, false);
                            if floor > next_snapshot {
                                rec.snapshot(floor, false);
                            }
                        }
                        next_snapshot = floor.saturating_add(iv);
                    }
                }
                frames += 1;
                if let Some(g) = &mut gaps {
                    g.see(own_ts);
                }
                bytes += frame.data.len() as u64;
                wire_bytes += u64::from(frame.orig_len);
                if first_ts.is_none() {
                    first_ts = Some(frame.ts_ns);
                }
                // `decode::decode`, with the fast path's outcome known here: an
                // IPv4/IPv6 packet that is counted in few steps and always sent.
                let forward = if decode::decode_fast(&frame, &mut meta) {
                    dstats.record_fast(&frame, &meta);
                    true
                } else {
                    let result = decode::decode_slow(&frame, &mut links, &mut meta);
                    dstats.record(&frame, &meta, result);
                    // Workers get every IP/ARP packet whose addresses are sound; a
                    // frame that failed inside its IP or ARP header is only counted.
                    let sound = match result {
                        Ok(()) => true,
                        Err(e) => e.reason.transport_known(),
                    };
                    sound && matches!(meta.l3, L3::Ipv4 | L3::Ipv6 | L3::Arp)
                };
                if forward {
                    meta.source = frame.source;
                    if let Some(ev) = &mut dispatch.evidence {
                        ev.batch
                            .push(&frame, &crate::flow::table::flow_key_of(&meta));
                        if ev.batch.is_full() {
                            ev.flush();
                        }
                    }
                    meta.hash = hasher.hash_packet(&meta);
                    let w = worker_of(meta.hash, n);
                    let batch = &mut pending[w];
                    if dispatch.stamp && batch.is_empty() {
                        dispatch.first_at[w] = Some(Instant::now());
                    }
                    batch.push(meta);
                    if batch.len() >= batch_size {
                        dispatch.send(w, &mut pending[w], clock.max(frame.ts_ns));
                    }
                }
                if frame.ts_ns > clock {
                    clock = frame.ts_ns;
                    if clock >= next_tick {
                        if next_tick != 0 {
                            dispatch.send_all(&mut pending, clock);
                        }
                        next_tick = clock.saturating_add(tick);
                    }
                }
                if frames & 0x3ff == 0 {
                    if let Some(m) = &mut publish {
                        m.publish(frames, wire_bytes, &dstats, dispatch.queue_drops, clock);
                        if live && live_stats_at.elapsed() >= LIVE_STATS_EVERY {
                            live_stats_at = Instant::now();
                            publish_live(source, m);
                        }
                    }
                    if let Some(p) = progress {
                        let (done, total) = source.progress();
                        p.update(done, total, frames);
                    }
                    if limit_reached(cfg, frames, started) {
                        break StopCause::Limit;
                    }
                } else if cfg.max_frames.is_some_and(|m| frames >= m) {
                    break StopCause::Limit;
                }
            }
            Ok(Next::Idle { now_ns }) => {
                if draining.is_some() {
                    // The first Idle may only mean "nothing retired yet" (a
                    // non-blocking read of a ring whose current block the
                    // kernel has not handed over); the second comes after a
                    // full poll timeout, by which the block is retired.
                    idle_while_draining += 1;
                    if idle_while_draining >= 2 {
                        break StopCause::Signal;
                    }
                    continue;
                }
                if let Some(now) = now_ns {
                    clock = clock.max(now);
                }
                dispatch.send_all(&mut pending, clock);
                if let Some(m) = &mut publish {
                    m.publish(frames, wire_bytes, &dstats, dispatch.queue_drops, clock);
                    if live_stats_at.elapsed() >= LIVE_STATS_EVERY {
                        live_stats_at = Instant::now();
                        publish_live(source, m);
                    }
                }
                if limit_reached(cfg, frames, started) {
                    break StopCause::Limit;
                }
            }
            Ok(Next::End) => break StopCause::EndOfInput,
            Err(e) => return Err(e.into()),
        }
    };

    // Drain: the last partial batches always go through (blocking even when live:
    // the capture has stopped, nothing more can be lost by waiting).
    dispatch.when_full = WhenFull::Block;
    dispatch.send_all(&mut pending, clock);
    // (send_all handed over the last evidence frames first.)
    let not_copied = dispatch.evidence.take().map_or(0, |e| e.dropped);
    if let Some(m) = &mut publish {
        m.publish(frames, wire_bytes, &dstats, dispatch.queue_drops, clock);
    }
    let end = match stop_cause {
        StopCause::EndOfInput => EndReason::EndOfCapture,
        StopCause::Signal | StopCause::Limit => EndReason::Shutdown,
    };
    for tx in &to_worker {
        let _ = tx.send(Msg::Finish(end));
    }
    drop(to_worker);
    if let Some(p) = progress {
        let (done, total) = source.progress();
        p.update(done, total, frames);
    }

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
    if let Some(rec) = snapshots.filter(|_| frames > 0) {
        rec.snapshot(clock, true);
    }

    Ok(RunReport {
        live,
        stop: stop_cause,
        frames,
        bytes,
        wire_bytes,
        first_ts_ns: first_ts,
        last_ts_ns: if frames > 0 { Some(clock) } else { None },
        decode: dstats,
        flows,
        source: {
            source.refresh_counters();
            let report = source.report();
            if let Some(m) = &mut publish {
                m.live(live_totals(&report));
            }
            report
        },
        queue_drops,
        links: links.list().collect(),
        workers: n,
        elapsed: started.elapsed(),
        alerts,
        clock_steps: ClockSteps {
            count: sensor_clock.steps,
            listed: sensor_clock.listed,
        },
        report: gaps.map(|g| crate::flow::tally::ReportData {
            pairs: crate::flow::tally::merge_pairs(pair_parts),
            gaps: Some(g),
        }),
        unwritten: hurried().then_some(unwritten),
    })
}

/// How often a live capture publishes libpcap's counters (a system call).
const LIVE_STATS_EVERY: Duration = Duration::from_secs(1);

/// Re-read libpcap's counters and publish them (live only; once a second).
fn publish_live<S: PacketSource + ?Sized>(source: &mut S, m: &mut CapturePub) {
    source.refresh_counters();
    m.live(live_totals(&source.report()));
}

/// libpcap's counters summed over the inputs.
fn live_totals(r: &SourceReport) -> LiveCounters {
    let mut t = LiveCounters::default();
    for c in r.inputs.iter().filter_map(|i| i.live) {
        t.received += c.received;
        t.dropped += c.dropped;
        t.if_dropped += c.if_dropped;
    }
    t
}

fn limit_reached(cfg: &PipelineConfig, frames: u64, started: Instant) -> bool {
    cfg.max_frames.is_some_and(|m| frames >= m)
        || cfg.max_duration.is_some_and(|d| started.elapsed() >= d)
}

/// Worker index from bits 24..56 of the flow hash (Lemire's multiply-shift), so
/// the bits the flow table uses for buckets and tags stay independent of it.
#[inline]
pub fn worker_of(hash: u64, n: usize) -> usize {
    (((hash >> 24) as u32 as u64 * n as u64) >> 32) as usize
}

/// The capture thread's side of the worker queues.
struct Dispatch<'a> {
    to_worker: &'a [Sender<Msg>],
    recycled: &'a [Receiver<Vec<PacketMeta>>],
    queue_drops: &'a mut [u64],
    when_full: WhenFull,
    batch_size: usize,
    /// Stamp each batch with the wall clock (metrics: latency).
    stamp: bool,
    /// Per worker: when the first packet of its pending batch was read.
    first_at: Vec<Option<Instant>>,
    /// `--evidence`: frames copied for the analysis thread.
    evidence: Option<EvidenceOut>,
}

/// The capture thread's evidence copies, sent before any worker batch that
/// holds the same frames: by the time a worker's watermark passes a frame,
/// the analysis thread has it queued.
struct EvidenceOut {
    tx: Sender<AnalysisMsg>,
    batch: crate::evidence::Batch,
    live: bool,
    /// Frames dropped because the analysis thread was behind (live only).
    dropped: u64,
    /// `zonewatch_evidence_cut_total{reason="frames_not_copied"}`.
    metric: Option<prometheus::IntCounter>,
}

impl EvidenceOut {
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let b = Box::new(std::mem::take(&mut self.batch));
        // (`take` put a fresh, fully reserved batch in its place.)
        let n = b.recs.len() as u64;
        let sent = if self.live {
            self.tx.try_send(AnalysisMsg::Frames(b)).is_ok()
        } else {
            self.tx.send(AnalysisMsg::Frames(b)).is_ok()
        };
        if !sent {
            self.dropped += n;
            if let Some(m) = &self.metric {
                m.inc_by(n);
            }
        }
    }
}

impl Dispatch<'_> {
    /// Hand `batch` to worker `w` and put an empty recycled one in its place.
    fn send(&mut self, w: usize, batch: &mut Vec<PacketMeta>, now_ns: u64) {
        if let Some(ev) = &mut self.evidence {
            ev.flush();
        }
        if self.when_full == WhenFull::DropNewest && self.to_worker[w].is_full() {
            // The worker is behind: drop this batch's packets, keep the vector.
            // (This thread is the only sender, so the queue cannot fill between
            // this check and the `try_send` below.)
            self.queue_drops[w] += batch.len() as u64;
            batch.clear();
            self.first_at[w] = None;
            return;
        }
        let fresh = match self.recycled[w].try_recv() {
            Ok(v) => v,
            Err(_) => match self.when_full {
                // Every recycled batch is in flight: wait for one (replay).
                WhenFull::Block => self.recycled[w]
                    .recv()
                    .unwrap_or_else(|_| Vec::with_capacity(self.batch_size)),
                WhenFull::DropNewest => {
                    self.queue_drops[w] += batch.len() as u64;
                    batch.clear();
                    self.first_at[w] = None;
                    return;
                }
            },
        };
        let full = std::mem::replace(batch, fresh);
        let sent = self.first_at.get_mut(w).and_then(Option::take);
        let msg = Msg::Batch(Batch {
            pkts: full,
            now_ns,
            sent,
        });
        let sent = match self.when_full {
            WhenFull::Block => self.to_worker[w].send(msg).map_err(|e| e.into_inner()),
            WhenFull::DropNewest => self.to_worker[w].try_send(msg).map_err(|e| e.into_inner()),
        };
        if let Err(Msg::Batch(b)) = sent {
            // Only when the worker is gone (it panicked): count what it missed.
            self.queue_drops[w] += b.pkts.len() as u64;
        }
    }

    /// Send every worker its partial batch (possibly empty: a clock tick).
    fn send_all(&mut self, pending: &mut [Vec<PacketMeta>], now_ns: u64) {
        for (w, batch) in pending.iter_mut().enumerate() {
            self.send(w, batch, now_ns);
        }
    }
}

/// What a worker hands back when it ends.
struct WorkerEnd {
    stats: FlowStats,
    pairs: Option<crate::flow::tally::Pairs>,
    /// Packets of batches skipped after a second interrupt.
    skipped_packets: u64,
    /// A second interrupt came before the table was flushed: its open flows
    /// (`stats.active`) were not written.
    hurried: bool,
    /// Open flows the flush ended without a line (a second interrupt during it).
    lines_skipped: u64,
}

// One argument per thing a worker owns; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
fn worker(
    rx: Receiver<Msg>,
    ret: Sender<Vec<PacketMeta>>,
    cfg: FlowConfig,
    policy: Option<Arc<Policy>>,
    updates: Option<Arc<ArcSwap<Policy>>>,
    mut sink: ChunkSink,
    mut publish: Option<WorkerPub>,
    hurry: Option<Arc<AtomicBool>>,
) -> WorkerEnd {
    let hurried = || hurry.as_ref().is_some_and(|h| h.load(Ordering::Relaxed));
    let mut table = FlowTable::with_policy(&cfg, policy);
    if publish.is_some() {
        table.count_zone_pairs();
    }
    let mut finished = None;
    let mut skipped_packets = 0u64;
    let mut skipped_flush = false;
    for msg in rx {
        match msg {
            Msg::Batch(mut b) if hurried() => {
                // A second interrupt: what is still queued is not analysed.
                skipped_packets += b.pkts.len() as u64;
                b.pkts.clear();
                let _ = ret.try_send(b.pkts);
            }
            Msg::Batch(mut b) => {
                let started = publish.as_ref().map(|_| Instant::now());
                if let Some(u) = &updates {
                    let current = u.load();
                    if !table.policy().is_some_and(|p| Arc::ptr_eq(p, &current)) {
                        let p = Arc::clone(&current);
                        let slot = table.swap_policy(p.clone());
                        sink.policy_installed(slot, &p);
                        if let Some(g) = sink.gens.get_mut(usize::from(slot)) {
                            *g = Some(p);
                        }
                    }
                }
                table.update_batch(&b.pkts, &mut sink);
                table.expire(b.now_ns, &mut sink);
                sink.dos_count(&b.pkts, b.now_ns);
                sink.maybe_ship();
                sink.alerts_up_to(b.now_ns);
                // Latency of packets: clock ticks (empty batches) carry none.
                let sent = b.sent.filter(|_| !b.pkts.is_empty());
                b.pkts.clear();
                let _ = ret.try_send(b.pkts);
                if let (Some(p), Some(t)) = (&mut publish, started) {
                    p.batch_done(sent, t);
                    p.flows(table.stats());
                    if let Some(c) = table.zone_cells() {
                        p.zone_cells(c);
                    }
                }
            }
            Msg::Finish(reason) => {
                if hurried() {
                    skipped_flush = true;
                } else {
                    table.flush(reason, &mut sink);
                }
                finished = Some(reason);
                break;
            }
            Msg::Sync(ack) => {
                if let Some(p) = &mut publish {
                    p.flush_hists(true);
                }
                let _ = ack.send(());
            }
        }
    }
    if let Some(p) = &mut publish {
        p.flows(table.stats());
        if let Some(c) = table.zone_cells() {
            p.zone_cells(c);
        }
        p.flush_hists(true);
    }
    sink.ship();
    sink.alerts_done(finished == Some(EndReason::Shutdown));
    let pairs = sink.report.take().map(|r| r.finish(&sink.gens));
    WorkerEnd {
        stats: table.stats().clone(),
        pairs,
        skipped_packets,
        hurried: skipped_flush,
        lines_skipped: sink.lines_skipped,
    }
}

/// Formats finished flows into a reused buffer and ships whole-line chunks.
struct ChunkSink {
    /// The policy of each generation slot of the worker's table (slot 0 =
    /// `cfg.policy`; keep in step with `FlowTable::swap_policy`): a line gets
    /// the verdict keys, described with the policy its tag was made with.
    gens: [Option<Arc<Policy>>; POLICY_GENERATIONS],
    alerts: Option<AlertOut>,
    buf: Vec<u8>,
    out: Option<Sender<Vec<u8>>>,
    spare: Receiver<Vec<u8>>,
    /// When the last chunk was handed to the writer (wall time, [`SHIP_EVERY`]).
    shipped_at: Instant,
    /// `PipelineConfig::hurry`: once set, flows ended by the stop get no line.
    hurry: Option<Arc<AtomicBool>>,
    /// Flows ended by the stop whose line was skipped because of `hurry`.
    lines_skipped: u64,
    /// Zone pairs and initiators for the report (`PipelineConfig::report_gap_ns`).
    report: Option<Box<crate::flow::tally::ZoneAcc>>,
}

/// The `brute_force` service ports as a bit set, if that detector runs.
fn closed_ports(d: Option<&DetectConfig>) -> Option<Box<[u64; 1024]>> {
    let b = &d?.brute_force;
    if !b.enabled {
        return None;
    }
    let mut set = Box::new([0u64; 1024]);
    for &p in &b.ports {
        if let Some(w) = set.get_mut(usize::from(p >> 6)) {
            *w |= 1 << (p & 63);
        }
    }
    Some(set)
}

/// A worker's side of the alert thread's queue.
struct AlertOut {
    tx: Sender<AnalysisMsg>,
    /// Emptied observation vectors coming back from the analysis thread.
    spare: Receiver<Vec<Obs>>,
    worker: usize,
    /// Observations since the last message.
    events: Vec<Obs>,
    /// Detectors run: forward every observation, not only violating starts.
    all: bool,
    /// Responder ports whose TCP closes a detector needs (`brute_force`
    /// services), as a 65536-bit set; closes elsewhere are not forwarded.
    closed_ports: Option<Box<[u64; 1024]>>,
    /// Watermark last sent.
    sent_ns: u64,
    /// Per-packet DoS counts by window (detector `dos` enabled).
    dos: Option<Box<DosCounter>>,
}

/// A worker tells the alert thread its clock at least this often (packet
/// time) even without violations, so folded alerts close without delay.
const ALERT_WATERMARK_NS: u64 = 100_000_000;

impl AlertOut {
    /// The pending events, replaced by a recycled vector.
    fn take_events(&mut self) -> Vec<Obs> {
        if self.events.is_empty() {
            return Vec::new(); // a watermark only: no allocation
        }
        let fresh = self.spare.try_recv().unwrap_or_default();
        std::mem::replace(&mut self.events, fresh)
    }

    /// Send the pending events with watermark `now_ns` (blocks when the alert
    /// thread is behind: alerts are never dropped).
    fn send(&mut self, now_ns: u64) {
        let events = self.take_events();
        let _ = self.tx.send(AnalysisMsg::Obs {
            worker: self.worker,
            watermark_ns: now_ns,
            obs: events,
        });
    }
}

impl ChunkSink {
    /// The table put `p` in generation `slot`: the alert thread must know it
    /// before the first event tagged with that slot.
    fn policy_installed(&mut self, slot: u8, p: &Arc<Policy>) {
        // Name the report's pairs of this slot while its old policy is known.
        if let Some(r) = &mut self.report {
            let old = self.gens.get(usize::from(slot)).and_then(Option::as_deref);
            r.resolve_slot(slot, old);
        }
        if let Some(a) = &mut self.alerts {
            let _ = a.tx.send(AnalysisMsg::Policy {
                worker: a.worker,
                slot,
                policy: p.clone(),
            });
        }
    }

    /// After a batch: hand violating flows and the worker's clock to the alert
    /// thread (blocking when it is behind: alerts are never dropped).
    fn alerts_up_to(&mut self, now_ns: u64) {
        if let Some(a) = &mut self.alerts {
            if !a.events.is_empty() || now_ns >= a.sent_ns.saturating_add(ALERT_WATERMARK_NS) {
                a.send(now_ns);
                a.sent_ns = now_ns;
            }
        }
    }

    /// Count a batch for the DoS detector and ship every window the clock
    /// (`now_ns`) has left, before the watermark that says so.
    fn dos_count(&mut self, pkts: &[PacketMeta], now_ns: u64) {
        let Some(a) = &mut self.alerts else { return };
        let Some(d) = &mut a.dos else { return };
        for m in pkts {
            if let Some(p) = d.count(m) {
                let _ = a.tx.send(AnalysisMsg::Dos {
                    worker: a.worker,
                    part: Box::new(p),
                });
            }
        }
        if let Some(p) = d.flush_before(now_ns) {
            let _ = a.tx.send(AnalysisMsg::Dos {
                worker: a.worker,
                part: Box::new(p),
            });
        }
    }

    /// The worker has flushed its table.
    fn alerts_done(&mut self, shutdown: bool) {
        if let Some(p) = self
            .alerts
            .as_mut()
            .and_then(|a| a.dos.as_mut())
            .and_then(|d| d.finish())
        {
            if let Some(a) = &self.alerts {
                let _ = a.tx.send(AnalysisMsg::Dos {
                    worker: a.worker,
                    part: Box::new(p),
                });
            }
        }
        if let Some(a) = &mut self.alerts {
            if !a.events.is_empty() {
                a.send(a.sent_ns);
            }
            let _ = a.tx.send(AnalysisMsg::Done {
                worker: a.worker,
                shutdown,
            });
        }
    }

    /// Ship a full chunk, or any lines older than [`SHIP_EVERY`] (one clock
    /// read per batch, and only while lines wait).
    fn maybe_ship(&mut self) {
        if self.buf.len() >= CHUNK_BYTES
            || (!self.buf.is_empty() && self.shipped_at.elapsed() >= SHIP_EVERY)
        {
            self.ship();
        }
    }
    fn ship(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        self.shipped_at = Instant::now();
        if let Some(out) = &self.out {
            let fresh = self
                .spare
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(CHUNK_BYTES * 2));
            let chunk = std::mem::replace(&mut self.buf, fresh);
            // The writer only goes away after every worker has finished.
            let _ = out.send(chunk);
        } else {
            self.buf.clear();
        }
    }
}

impl FlowSink for ChunkSink {
    fn flow_ended(&mut self, rec: &FlowRecord) {
        if self.out.is_none() && self.report.is_none() {
            return;
        }
        // Tag 0: created without a policy, so no verdict keys.
        let policy = match rec.tag {
            0 => None,
            t => self
                .gens
                .get(usize::from(generation_of(t)))
                .and_then(Option::as_deref),
        };
        if self.out.is_some() {
            // A second interrupt during the final flush: the open flows left
            // get no line (counted), the rest of the stop goes on.
            let hurried = rec.end == EndReason::Shutdown
                && self
                    .hurry
                    .as_ref()
                    .is_some_and(|h| h.load(Ordering::Relaxed));
            if hurried {
                self.lines_skipped += 1;
            } else {
                crate::format::flow_line::write_with_policy(rec, &mut self.buf, policy);
            }
        }
        if let Some(r) = &mut self.report {
            r.flow_ended(rec, policy);
        }
    }

    fn flow_started(&mut self, start: &FlowStart) {
        if let Some(a) = &mut self.alerts {
            let violation = matches!(
                crate::policy::Verdict::unpack(start.tag),
                Some(crate::policy::Verdict::Violation { .. })
            );
            if a.all || violation {
                a.events.push(Obs::Start(*start));
            }
        }
    }

    fn flow_vlan_moved(&mut self, s: &FlowStart) {
        if let Some(a) = &mut self.alerts {
            if a.all {
                a.events.push(Obs::Moved(*s));
            }
        }
    }

    fn flow_seen(&mut self, key: &FlowKey, tag: u32, ts_ns: u64) {
        // Separation alerts only (their `last_seen`): needs the rules, not the detectors.
        if let Some(a) = &mut self.alerts {
            a.events.push(Obs::Seen {
                ts_ns,
                key: *key,
                tag,
            });
        }
    }

    fn flow_answered(&mut self, key: &FlowKey, ts_ns: u64) {
        if let Some(a) = self.alerts.as_mut().filter(|a| a.all) {
            a.events.push(Obs::Answered { ts_ns, key: *key });
        }
    }

    fn flow_refused(&mut self, key: &FlowKey, ts_ns: u64, how: Refusal) {
        if let Some(a) = self.alerts.as_mut().filter(|a| a.all) {
            a.events.push(Obs::Refused {
                ts_ns,
                key: *key,
                how,
            });
        }
    }

    fn flow_closed(&mut self, close: &FlowClose) {
        if let Some(a) = self.alerts.as_mut().filter(|a| a.all) {
            let p = close.key.dport;
            let wanted = a.closed_ports.as_ref().is_some_and(|set| {
                set.get(usize::from(p >> 6))
                    .is_some_and(|w| w & (1 << (p & 63)) != 0)
            });
            if wanted {
                a.events.push(Obs::Closed(*close));
            }
        }
    }

    fn arp(&mut self, meta: &PacketMeta) {
        if let Some(a) = self.alerts.as_mut().filter(|a| a.all) {
            a.events.push(Obs::Arp(ArpObs::from_meta(meta)));
        }
    }
}
