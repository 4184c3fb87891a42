//! Floor L5, the runtime: the capture thread's loop. It reads the source,
//! moves each frame to sensor time ([`crate::capture::clock`]), decodes it,
//! hashes its flow and batches it for its worker ([`Dispatch`]); it sends
//! clock ticks, copies evidence frames, publishes the capture counters and
//! takes the openmetrics snapshots. Set-up and joining the threads are
//! [`super::run`]'s.

use super::analysis::AnalysisMsg;
use super::{worker_of, Batch, Msg, PipelineConfig, PipelineError, Progress, StopCause, WhenFull};
use super::{DRAIN_LIMIT, LIVE_TICK_NS, TICK_NS};
use crate::capture::clock::SensorClock;
use crate::capture::{LiveCounters, Next, PacketSource, SourceReport};
use crate::decode::{self, DecodeStats, LinkIds};
use crate::flow::tally::GapTracker;
use crate::flow::FlowHasher;
use crate::metrics::openmetrics::Recorder;
use crate::metrics::CapturePub;
use crate::packet::{PacketMeta, RawFrame, L3};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The capture thread's state: what it counted and what it holds for the
/// workers.
pub(super) struct Capture<'a> {
    cfg: &'a PipelineConfig,
    n: usize,
    pub(super) live: bool,
    hasher: FlowHasher,
    pub(super) dispatch: Dispatch,
    /// Each worker's batch being filled.
    pub(super) pending: Vec<Vec<PacketMeta>>,
    pub(super) links: LinkIds,
    pub(super) dstats: DecodeStats,
    meta: PacketMeta,
    pub(super) frames: u64,
    pub(super) bytes: u64,
    pub(super) wire_bytes: u64,
    pub(super) first_ts: Option<u64>,
    /// Newest packet time seen (sensor time).
    pub(super) clock: u64,
    tick: u64,
    next_tick: u64,
    batch_size: usize,
    pub(super) publish: Option<CapturePub>,
    /// Openmetrics snapshots (with `publish`), and the next boundary of
    /// packet time (0 = none yet).
    pub(super) snapshots: Option<&'a Recorder>,
    next_snapshot: u64,
    sync: (Sender<()>, Receiver<()>),
    /// libpcap's counters cost a system call: read them at most this often.
    live_stats_at: Instant,
    pub(super) gaps: Option<GapTracker>,
    pub(super) sensor_clock: SensorClock,
}

impl<'a> Capture<'a> {
    pub(super) fn new(
        cfg: &'a PipelineConfig,
        live: bool,
        to_worker: Vec<Sender<Msg>>,
        recycled: Vec<Receiver<Vec<PacketMeta>>>,
        evidence: Option<EvidenceOut>,
    ) -> Capture<'a> {
        let n = to_worker.len();
        let hasher = match cfg.hash_seed {
            Some(s) => FlowHasher::with_seed(s),
            None => FlowHasher::new(),
        }
        .with_vlan_in_key(cfg.flow.vlan_in_key);
        let pending = recycled
            .iter()
            .map(|r| r.try_recv().unwrap_or_default())
            .collect();
        let batch_size = cfg.batch_size.get();
        let publish = cfg.metrics.as_deref().map(CapturePub::new);
        Capture {
            cfg,
            n,
            live,
            hasher,
            dispatch: Dispatch {
                to_worker,
                recycled,
                queue_drops: vec![0; n],
                when_full: if live {
                    WhenFull::DropNewest
                } else {
                    WhenFull::Block
                },
                batch_size,
                stamp: cfg.metrics.is_some(),
                first_at: vec![None; n],
                evidence,
            },
            pending,
            links: LinkIds::default(),
            dstats: DecodeStats::default(),
            meta: PacketMeta::default(),
            frames: 0,
            bytes: 0,
            wire_bytes: 0,
            first_ts: None,
            clock: 0,
            tick: if live { LIVE_TICK_NS } else { TICK_NS },
            next_tick: 0,
            batch_size,
            snapshots: cfg.openmetrics.as_deref().filter(|_| publish.is_some()),
            publish,
            next_snapshot: 0,
            sync: bounded::<()>(n),
            live_stats_at: Instant::now(),
            gaps: cfg.report_gap_ns.map(GapTracker::new),
            sensor_clock: SensorClock::new(cfg.fold.slack_ns),
        }
    }

    fn hurried(&self) -> bool {
        self.cfg
            .hurry
            .as_ref()
            .is_some_and(|h| h.load(Ordering::Relaxed))
    }

    /// Read `source` until it ends, `stop` is set, or a limit is hit.
    ///
    /// Generic over the source so the reader's `next` inlines into the loop
    /// (a `dyn` call per packet was measurable at 64-byte frames).
    pub(super) fn run<S: PacketSource + ?Sized>(
        &mut self,
        source: &mut S,
        stop: &AtomicBool,
        progress: Option<&dyn Progress>,
        started: Instant,
    ) -> Result<StopCause, PipelineError> {
        // Live: after a stop signal, read what the capture buffer already holds
        // (until the source is idle, at most DRAIN_LIMIT), so frames the kernel
        // handed over are analysed rather than silently lost.
        // A second interrupt (`hurry`) ends the drain at once.
        let mut draining: Option<Instant> = None;
        let mut idle_while_draining = 0u32;
        let live = self.live;
        let stop_cause = loop {
            match draining {
                None if stop.load(Ordering::Relaxed) => {
                    if !live || self.hurried() {
                        break StopCause::Signal;
                    }
                    draining = Some(Instant::now());
                }
                Some(t) if t.elapsed() >= DRAIN_LIMIT || self.hurried() => break StopCause::Signal,
                _ => {}
            }
            // Matched in place: binding the result first (`source.next()?`) moved the
            // frame through the stack with overlapping partial copies that stalled
            // store-to-load forwarding once per packet.
            match source.next() {
                Ok(Next::Frame(mut frame)) => {
                    self.frame(&mut frame);
                    if self.frames & 0x3ff == 0 {
                        self.every_1024(source, progress);
                        if limit_reached(self.cfg, self.frames, started) {
                            break StopCause::Limit;
                        }
                    } else if self.cfg.max_frames.is_some_and(|m| self.frames >= m) {
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
                    self.idle(source, now_ns);
                    if limit_reached(self.cfg, self.frames, started) {
                        break StopCause::Limit;
                    }
                }
                Ok(Next::End) => break StopCause::EndOfInput,
                Err(e) => return Err(e.into()),
            }
        };
        Ok(stop_cause)
    }

    /// One frame: sensor time, counts, decode, batch for its worker, clock tick.
    #[inline(always)]
    fn frame(&mut self, frame: &mut RawFrame<'_>) {
        // Sensor time from here on (capture::clock): monotonic over the
        // input up to the reorder slack; the gap watch sees the file's own.
        let own_ts = frame.ts_ns;
        frame.ts_ns = self.sensor_clock.time(own_ts);
        if self.snapshots.is_some() && frame.ts_ns >= self.next_snapshot {
            self.snapshot(frame.ts_ns);
        }
        self.frames += 1;
        if let Some(g) = &mut self.gaps {
            g.see(own_ts);
        }
        self.bytes += frame.data.len() as u64;
        self.wire_bytes += u64::from(frame.orig_len);
        if self.first_ts.is_none() {
            self.first_ts = Some(frame.ts_ns);
        }
        let meta = &mut self.meta;
        // `decode::decode`, with the fast path's outcome known here: an
        // IPv4/IPv6 packet that is counted in few steps and always sent.
        let forward = if decode::decode_fast(frame, meta) {
            self.dstats.record_fast(frame, meta);
            true
        } else {
            let result = decode::decode_slow(frame, &mut self.links, meta);
            self.dstats.record(frame, meta, result);
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
            let dispatch = &mut self.dispatch;
            if let Some(ev) = &mut dispatch.evidence {
                ev.batch.push(frame, &crate::flow::table::flow_key_of(meta));
                if ev.batch.is_full() {
                    ev.flush();
                }
            }
            meta.hash = self.hasher.hash_packet(meta);
            let w = worker_of(meta.hash, self.n);
            let batch = &mut self.pending[w];
            if dispatch.stamp && batch.is_empty() {
                dispatch.first_at[w] = Some(Instant::now());
            }
            batch.push(*meta);
            if batch.len() >= self.batch_size {
                dispatch.send(w, batch, self.clock.max(frame.ts_ns));
            }
        }
        if frame.ts_ns > self.clock {
            self.clock = frame.ts_ns;
            if self.clock >= self.next_tick {
                if self.next_tick != 0 {
                    self.dispatch.send_all(&mut self.pending, self.clock);
                }
                self.next_tick = self.clock.saturating_add(self.tick);
            }
        }
    }

    /// Every 1024 frames: publish the counters, libpcap's at most once a
    /// second, and the progress.
    fn every_1024<S: PacketSource + ?Sized>(
        &mut self,
        source: &mut S,
        progress: Option<&dyn Progress>,
    ) {
        self.publish_counters();
        if self.live {
            self.publish_live(source);
        }
        if let Some(p) = progress {
            let (done, total) = source.progress();
            p.update(done, total, self.frames);
        }
    }

    /// A live source is idle: its wall clock moves packet time on; every
    /// worker gets its partial batch; counters are published.
    fn idle<S: PacketSource + ?Sized>(&mut self, source: &mut S, now_ns: Option<u64>) {
        if let Some(now) = now_ns {
            self.clock = self.clock.max(now);
        }
        self.dispatch.send_all(&mut self.pending, self.clock);
        self.publish_counters();
        self.publish_live(source);
    }

    /// Publish the capture counters (metrics on).
    fn publish_counters(&mut self) {
        if let Some(m) = &mut self.publish {
            let d = &self.dispatch;
            m.publish(
                self.frames,
                self.wire_bytes,
                &self.dstats,
                &d.queue_drops,
                self.clock,
            );
        }
    }

    /// Re-read and publish libpcap's counters, at most once a second (a
    /// system call).
    fn publish_live<S: PacketSource + ?Sized>(&mut self, source: &mut S) {
        if let Some(m) = &mut self.publish {
            if self.live_stats_at.elapsed() >= LIVE_STATS_EVERY {
                self.live_stats_at = Instant::now();
                source.refresh_counters();
                m.live(live_totals(&source.report()));
            }
        }
    }

    /// An openmetrics interval boundary: everything before the frame at
    /// `ts_ns` is accounted (a barrier with the workers), then snapshot.
    #[cold]
    fn snapshot(&mut self, ts_ns: u64) {
        let Some(rec) = self.snapshots.filter(|_| self.publish.is_some()) else {
            return;
        };
        self.dispatch.send_all(&mut self.pending, self.clock);
        for tx in &self.dispatch.to_worker {
            let _ = tx.send(Msg::Sync(self.sync.0.clone()));
        }
        for _ in 0..self.n {
            let _ = self.sync.1.recv();
        }
        self.publish_counters();
        let iv = rec.interval_ns();
        let floor = ts_ns / iv * iv;
        if self.next_snapshot == 0 {
            rec.snapshot(ts_ns, false);
        } else {
            rec.snapshot(self.next_snapshot, false);
            if floor > self.next_snapshot {
                rec.snapshot(floor, false);
            }
        }
        self.next_snapshot = floor.saturating_add(iv);
    }

    /// The capture stopped: the last partial batches always go through
    /// (blocking even when live: nothing more can be lost by waiting), then
    /// the evidence frames not copied, the last counters, and every worker's
    /// `Finish`. Returns the evidence frames not copied.
    pub(super) fn finish(&mut self, end: crate::flow::EndReason) -> u64 {
        self.dispatch.when_full = WhenFull::Block;
        self.dispatch.send_all(&mut self.pending, self.clock);
        // (send_all handed over the last evidence frames first.)
        let not_copied = self.dispatch.evidence.take().map_or(0, |e| e.dropped);
        self.publish_counters();
        for tx in self.dispatch.to_worker.drain(..) {
            let _ = tx.send(Msg::Finish(end));
        }
        not_copied
    }

    /// The source's final report (its counters re-read), published.
    pub(super) fn source_report<S: PacketSource + ?Sized>(
        &mut self,
        source: &mut S,
    ) -> SourceReport {
        source.refresh_counters();
        let report = source.report();
        if let Some(m) = &mut self.publish {
            m.live(live_totals(&report));
        }
        report
    }
}

/// How often a live capture publishes libpcap's counters (a system call).
const LIVE_STATS_EVERY: Duration = Duration::from_secs(1);

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

pub(super) fn limit_reached(cfg: &PipelineConfig, frames: u64, started: Instant) -> bool {
    cfg.max_frames.is_some_and(|m| frames >= m)
        || cfg.max_duration.is_some_and(|d| started.elapsed() >= d)
}

/// The capture thread's side of the worker queues.
pub(super) struct Dispatch {
    pub(super) to_worker: Vec<Sender<Msg>>,
    recycled: Vec<Receiver<Vec<PacketMeta>>>,
    /// Packets dropped because a worker's queue was full, per worker.
    pub(super) queue_drops: Vec<u64>,
    pub(super) when_full: WhenFull,
    batch_size: usize,
    /// Stamp each batch with the wall clock (metrics: latency).
    stamp: bool,
    /// Per worker: when the first packet of its pending batch was read.
    first_at: Vec<Option<Instant>>,
    /// `--evidence`: frames copied for the analysis thread.
    pub(super) evidence: Option<EvidenceOut>,
}

/// The capture thread's evidence copies, sent before any worker batch that
/// holds the same frames: by the time a worker's watermark passes a frame,
/// the analysis thread has it queued.
pub(super) struct EvidenceOut {
    pub(super) tx: Sender<AnalysisMsg>,
    pub(super) batch: crate::evidence::Batch,
    pub(super) live: bool,
    /// Frames dropped because the analysis thread was behind (live only).
    pub(super) dropped: u64,
    /// `zonewatch_evidence_cut_total{reason="frames_not_copied"}`.
    pub(super) metric: Option<prometheus::IntCounter>,
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

impl Dispatch {
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
    pub(super) fn send_all(&mut self, pending: &mut [Vec<PacketMeta>], now_ns: u64) {
        for (w, batch) in pending.iter_mut().enumerate() {
            self.send(w, batch, now_ns);
        }
    }
}
