//! Floor L5, the runtime: a worker thread. It owns one flow table (its share
//! of the flows, by hash), feeds it its batches in packet order, and hands
//! what the table reports ([`FlowSink`]) to the parts that asked for it:
//!
//! - [`FlowLines`]: flow lines, formatted into reused chunks for the writer;
//! - [`ObsOut`]: observations the enabled detectors need ([`Needs`]) and the
//!   detectors' per-packet taps ([`PacketTap`]), for the analysis thread;
//! - the report's zone pairs and initiators ([`ZoneAcc`]).
//!
//! None of them names a detector: what goes to the analysis thread is what
//! the registry's [`crate::detect::needs`] and [`crate::detect::taps`] say.

use super::analysis::AnalysisMsg;
use super::{Msg, CHUNK_BYTES, SHIP_EVERY};
use crate::detect::obs::{ArpObs, Obs};
use crate::detect::{Needs, PacketTap, TapPart};
use crate::flow::tally::ZoneAcc;
use crate::flow::{
    EndReason, FlowClose, FlowConfig, FlowRecord, FlowSink, FlowStart, FlowStats, FlowTable,
    Refusal,
};
use crate::metrics::WorkerPub;
use crate::packet::{FlowKey, PacketMeta};
use crate::policy::{generation_of, Policy, Verdict, POLICY_GENERATIONS};
use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What a worker hands back when it ends.
pub(super) struct WorkerEnd {
    pub(super) stats: FlowStats,
    pub(super) pairs: Option<crate::flow::tally::Pairs>,
    /// Packets of batches skipped after a second interrupt.
    pub(super) skipped_packets: u64,
    /// A second interrupt came before the table was flushed: its open flows
    /// (`stats.active`) were not written.
    pub(super) hurried: bool,
    /// Open flows the flush ended without a line (a second interrupt during it).
    pub(super) lines_skipped: u64,
}

// One argument per thing a worker owns; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub(super) fn worker(
    rx: Receiver<Msg>,
    ret: Sender<Vec<PacketMeta>>,
    cfg: FlowConfig,
    policy: Option<Arc<Policy>>,
    updates: Option<Arc<ArcSwap<Policy>>>,
    mut sink: WorkerSink,
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
                        sink.policy_installed(slot, p);
                    }
                }
                table.update_batch(&b.pkts, &mut sink);
                table.expire(b.now_ns, &mut sink);
                sink.batch_done(&b.pkts, b.now_ns);
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
    let (pairs, lines_skipped) = sink.done(finished == Some(EndReason::Shutdown));
    WorkerEnd {
        stats: table.stats().clone(),
        pairs,
        skipped_packets,
        hurried: skipped_flush,
        lines_skipped,
    }
}

/// Everything a worker's table reports goes through here, to the parts that
/// want it (see the module docs).
pub(super) struct WorkerSink {
    /// The policy of each generation slot of the worker's table (slot 0 =
    /// the policy at start; keep in step with `FlowTable::swap_policy`): a
    /// line and the report describe a flow with the policy its tag was made with.
    pub(super) gens: [Option<Arc<Policy>>; POLICY_GENERATIONS],
    pub(super) lines: Option<FlowLines>,
    pub(super) obs: Option<ObsOut>,
    /// Zone pairs and initiators for the report (`PipelineConfig::report_gap_ns`).
    pub(super) report: Option<Box<ZoneAcc>>,
}

impl WorkerSink {
    /// The table put `p` in generation `slot`: the analysis thread must know
    /// it before the first observation tagged with that slot.
    fn policy_installed(&mut self, slot: u8, p: Arc<Policy>) {
        // Name the report's pairs of this slot while its old policy is known.
        if let Some(r) = &mut self.report {
            let old = self.gens.get(usize::from(slot)).and_then(Option::as_deref);
            r.resolve_slot(slot, old);
        }
        if let Some(o) = &mut self.obs {
            let _ = o.tx.send(AnalysisMsg::Policy {
                worker: o.worker,
                slot,
                policy: p.clone(),
            });
        }
        if let Some(g) = self.gens.get_mut(usize::from(slot)) {
            *g = Some(p);
        }
    }

    /// After a batch whose clock is `now_ns`: the taps count it, lines that
    /// waited long enough go to the writer, observations and the clock to the
    /// analysis thread.
    fn batch_done(&mut self, pkts: &[PacketMeta], now_ns: u64) {
        if let Some(o) = &mut self.obs {
            o.tap(pkts, now_ns);
        }
        if let Some(l) = &mut self.lines {
            l.maybe_ship();
        }
        if let Some(o) = &mut self.obs {
            o.up_to(now_ns);
        }
    }

    /// The worker has flushed its table (`shutdown`: a signal or limit
    /// stopped the capture): ship everything; the report's pairs and the
    /// count of flow lines a second interrupt skipped.
    fn done(&mut self, shutdown: bool) -> (Option<crate::flow::tally::Pairs>, u64) {
        let skipped = self.lines.as_mut().map_or(0, |l| {
            l.ship();
            l.skipped
        });
        if let Some(o) = &mut self.obs {
            o.done(shutdown);
        }
        let pairs = self.report.take().map(|r| r.finish(&self.gens));
        (pairs, skipped)
    }
}

/// Formats finished flows into a reused buffer and ships whole-line chunks
/// to the writer thread.
pub(super) struct FlowLines {
    pub(super) buf: Vec<u8>,
    pub(super) out: Sender<Vec<u8>>,
    /// Emptied chunks coming back from the writer.
    pub(super) spare: Receiver<Vec<u8>>,
    /// When the last chunk was handed to the writer (wall time, [`SHIP_EVERY`]).
    pub(super) shipped_at: Instant,
    /// `PipelineConfig::hurry`: once set, flows ended by the stop get no line.
    pub(super) hurry: Option<Arc<AtomicBool>>,
    /// Flows ended by the stop whose line was skipped because of `hurry`.
    pub(super) skipped: u64,
}

impl FlowLines {
    fn line(&mut self, rec: &FlowRecord, policy: Option<&Policy>) {
        // A second interrupt during the final flush: the open flows left
        // get no line (counted), the rest of the stop goes on.
        let hurried = rec.end == EndReason::Shutdown
            && self
                .hurry
                .as_ref()
                .is_some_and(|h| h.load(Ordering::Relaxed));
        if hurried {
            self.skipped += 1;
        } else {
            crate::format::flow_line::write_with_policy(rec, &mut self.buf, policy);
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
        let fresh = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK_BYTES * 2));
        let chunk = std::mem::replace(&mut self.buf, fresh);
        // The writer only goes away after every worker has finished.
        let _ = self.out.send(chunk);
    }
}

/// A worker's side of the analysis thread's queue: the observations the
/// enabled detectors need (violating starts and their activity always, for
/// the separation folding), the taps' parts, and the worker's clock.
pub(super) struct ObsOut {
    pub(super) tx: Sender<AnalysisMsg>,
    /// Emptied observation vectors coming back from the analysis thread.
    pub(super) spare: Receiver<Vec<Obs>>,
    pub(super) worker: usize,
    /// Observations since the last message.
    pub(super) events: Vec<Obs>,
    /// What the enabled detectors read ([`crate::detect::needs`]).
    pub(super) needs: Needs,
    /// Per-packet work of the enabled detectors: (detector index, tap).
    pub(super) taps: Vec<(usize, Box<dyn PacketTap>)>,
    /// Parts the taps pushed, sent at once (reused).
    pub(super) parts: Vec<TapPart>,
    /// Watermark last sent.
    pub(super) sent_ns: u64,
}

/// A worker tells the analysis thread its clock at least this often (packet
/// time) even without observations, so folded alerts close without delay.
const ALERT_WATERMARK_NS: u64 = 100_000_000;

impl ObsOut {
    /// The pending events, replaced by a recycled vector.
    fn take_events(&mut self) -> Vec<Obs> {
        if self.events.is_empty() {
            return Vec::new(); // a watermark only: no allocation
        }
        let fresh = self.spare.try_recv().unwrap_or_default();
        std::mem::replace(&mut self.events, fresh)
    }

    /// Send the pending events with watermark `now_ns` (blocks when the
    /// analysis thread is behind: alerts are never dropped).
    fn send(&mut self, now_ns: u64) {
        let events = self.take_events();
        let _ = self.tx.send(AnalysisMsg::Obs {
            worker: self.worker,
            watermark_ns: now_ns,
            obs: events,
        });
    }

    /// Every tap counts the batch; their parts go before the watermark that
    /// passes them.
    fn tap(&mut self, pkts: &[PacketMeta], now_ns: u64) {
        for (i, t) in &mut self.taps {
            t.batch(pkts, now_ns, &mut self.parts);
            for part in self.parts.drain(..) {
                let _ = self.tx.send(AnalysisMsg::Tap {
                    worker: self.worker,
                    detector: *i,
                    part,
                });
            }
        }
    }

    /// After a batch: hand observations and the worker's clock to the
    /// analysis thread (blocking when it is behind: alerts are never dropped).
    fn up_to(&mut self, now_ns: u64) {
        if !self.events.is_empty() || now_ns >= self.sent_ns.saturating_add(ALERT_WATERMARK_NS) {
            self.send(now_ns);
            self.sent_ns = now_ns;
        }
    }

    /// The worker has flushed its table: the taps' last parts, the pending
    /// observations, then `Done`.
    fn done(&mut self, shutdown: bool) {
        for (i, t) in &mut self.taps {
            t.finish(&mut self.parts);
            for part in self.parts.drain(..) {
                let _ = self.tx.send(AnalysisMsg::Tap {
                    worker: self.worker,
                    detector: *i,
                    part,
                });
            }
        }
        if !self.events.is_empty() {
            self.send(self.sent_ns);
        }
        let _ = self.tx.send(AnalysisMsg::Done {
            worker: self.worker,
            shutdown,
        });
    }
}

impl FlowSink for WorkerSink {
    fn flow_ended(&mut self, rec: &FlowRecord) {
        if self.lines.is_none() && self.report.is_none() {
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
        if let Some(l) = &mut self.lines {
            l.line(rec, policy);
        }
        if let Some(r) = &mut self.report {
            r.flow_ended(rec, policy);
        }
    }

    fn flow_started(&mut self, start: &FlowStart) {
        if let Some(o) = &mut self.obs {
            // The verdict is unpacked only when the detectors do not take
            // every start anyway.
            if o.needs.starts
                || matches!(Verdict::unpack(start.tag), Some(Verdict::Violation { .. }))
            {
                o.events.push(Obs::Start(*start));
            }
        }
    }

    fn flow_vlan_moved(&mut self, s: &FlowStart) {
        if let Some(o) = self.obs.as_mut().filter(|o| o.needs.moved) {
            o.events.push(Obs::Moved(*s));
        }
    }

    fn flow_seen(&mut self, key: &FlowKey, tag: u32, ts_ns: u64) {
        // Separation alerts' `last_seen`: needs the rules, not the detectors.
        if let Some(o) = &mut self.obs {
            o.events.push(Obs::Seen {
                ts_ns,
                key: *key,
                tag,
            });
        }
    }

    fn flow_answered(&mut self, key: &FlowKey, ts_ns: u64) {
        if let Some(o) = self.obs.as_mut().filter(|o| o.needs.answered) {
            o.events.push(Obs::Answered { ts_ns, key: *key });
        }
    }

    fn flow_refused(&mut self, key: &FlowKey, ts_ns: u64, how: Refusal) {
        if let Some(o) = self.obs.as_mut().filter(|o| o.needs.refused) {
            o.events.push(Obs::Refused {
                ts_ns,
                key: *key,
                how,
            });
        }
    }

    fn flow_closed(&mut self, close: &FlowClose) {
        if let Some(o) = self
            .obs
            .as_mut()
            .filter(|o| o.needs.close_on(close.key.dport))
        {
            o.events.push(Obs::Closed(*close));
        }
    }

    fn arp(&mut self, meta: &PacketMeta) {
        if let Some(o) = self.obs.as_mut().filter(|o| o.needs.arp) {
            o.events.push(Obs::Arp(ArpObs::from_meta(meta)));
        }
    }
}
