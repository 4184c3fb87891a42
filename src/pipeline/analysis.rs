//! Floor L5, the runtime: the analysis thread. It merges the workers'
//! observations in packet-time order ([`crate::detect::merge`]), folds
//! separation violations ([`crate::alert::fold`]), runs the detectors
//! ([`crate::detect::detectors`]), and writes every alert to the alert sink in
//! the order of the packet time it is due at, with its evidence file
//! ([`crate::evidence`]) and its metrics ([`crate::metrics`]) in step.

use crate::alert::fold::{FoldConfig, Folder};
use crate::alert::{Alert, AlertStats, Event};
use crate::detect::obs::Obs;
use crate::detect::{
    detectors, merge, Ctx, DetectConfig, Detector, DetectorStats, Emit, END_OF_INPUT, SHUTDOWN,
};
use crate::flow::FlowStart;
use crate::model::maps::FastMap as HashMap;
use crate::policy::{generation_of, Policy, Verdict, POLICY_GENERATIONS};
use crate::sink::AlertSink;
use std::io;
use std::sync::Arc;

/// What workers send the analysis thread.
pub enum AnalysisMsg {
    /// Observations, and the capture clock of the last batch the worker
    /// finished (its watermark: it will report nothing that happened earlier).
    /// The vector comes back emptied on the spare queue given to [`serve`].
    Obs {
        worker: usize,
        watermark_ns: u64,
        obs: Vec<Obs>,
    },
    /// The worker's table now judges new flows with `policy`, in generation
    /// `slot` (sent before any flow tagged with that slot).
    Policy {
        worker: usize,
        slot: u8,
        policy: Arc<Policy>,
    },
    /// A part a worker's [`crate::detect::PacketTap`] shipped for detector
    /// `detector` (its index in [`detectors`]), sent before any watermark
    /// past the time it covers.
    Tap {
        worker: usize,
        detector: usize,
        part: crate::detect::TapPart,
    },
    /// The worker has finished (flushed its table); `shutdown`: a signal or a
    /// limit stopped the capture (else every input ended).
    Done { worker: usize, shutdown: bool },
    /// `--evidence`: frames the capture thread copied, in capture order.
    Frames(Box<crate::evidence::Batch>),
}

/// What the analysis thread counted.
#[derive(Clone, Debug, Default)]
pub struct AnalysisStats {
    /// Alert lines written, by kind and by severity (`Severity as usize`).
    pub written_by_kind: std::collections::BTreeMap<&'static str, u64>,
    pub written_by_severity: [u64; 5],
    pub separation: AlertStats,
    pub detectors: Vec<(&'static str, DetectorStats)>,
    /// Observations out of time order by more than the reorder slack.
    pub late: u64,
    /// Observations released early because the merge held [`merge::MAX_QUEUED`].
    pub forced: u64,
    /// `--evidence`: files written and what was cut.
    pub evidence: Option<crate::evidence::EvidenceStats>,
    /// Frames queued for evidence files but not added to them because a
    /// second interrupt hurried the end (`AnalysisConfig::hurry`).
    pub evidence_frames_unwritten: u64,
}

/// The analysis thread's setup.
pub struct AnalysisConfig {
    pub workers: usize,
    pub fold: FoldConfig,
    /// The rules at start (slot 0 of every worker), if any.
    pub policy: Option<Arc<Policy>>,
    pub detect: DetectConfig,
    /// Metrics: `zonewatch_alerts_total` per line written and the open DoS
    /// episodes (`dos_start` minus `dos_end` written).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// `host` of every alert (`--sensor`).
    pub sensor: Option<String>,
    /// Names of the capture sources by input index (`in_iface`): the
    /// interface, or each replayed input's name.
    pub sources: Vec<String>,
    /// `--evidence DIR`: a pcap per alert.
    pub evidence: Option<crate::evidence::EvidenceConfig>,
    /// Set by a second interrupt: at the end, close the evidence files with
    /// what they hold instead of adding the frames still queued.
    pub hurry: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// The analysis thread: merges the workers' observations in packet-time order,
/// folds separation violations and runs the detectors, and writes every alert
/// to `sink` in the order of the packet time it is due at. Returns when every
/// worker said `Done` (or every sender is gone).
pub fn serve(
    rx: crossbeam_channel::Receiver<AnalysisMsg>,
    spare: crossbeam_channel::Sender<Vec<Obs>>,
    cfg: AnalysisConfig,
    mut sink: Box<dyn AlertSink>,
) -> (AnalysisStats, io::Result<()>) {
    let workers = cfg.workers.max(1);
    let mut gens: Vec<[Option<Arc<Policy>>; POLICY_GENERATIONS]> = (0..workers)
        .map(|_| std::array::from_fn(|i| if i == 0 { cfg.policy.clone() } else { None }))
        .collect();
    let mut current = cfg.policy.clone();
    let mut merger = merge::Merger::new(workers, cfg.fold.slack_ns);
    let mut folder = Folder::new(cfg.fold, workers);
    let mut evidence = cfg.evidence.clone().map(crate::evidence::Store::new);
    if evidence.is_some() {
        folder.track_folds();
    }
    let mut dets = detectors(&cfg.detect);
    let mut emit = Emit::default();
    let mut result = Ok(());
    let mut done = 0;
    let mut written = Written {
        metrics: cfg.metrics.clone().map(crate::metrics::AlertPub::new),
        sensor: cfg.sensor.clone(),
        sources: cfg.sources.clone(),
        ..Written::default()
    };
    // Evidence files named by an alert get their collected frames on disk at
    // least this often (wall time), like the line outputs.
    let mut evidence_flushed = std::time::Instant::now();
    let mut run = Run {
        gens: &mut gens,
        folder: &mut folder,
        dets: &mut dets,
        fed: crate::detect::needs_each(&cfg.detect),
        round: Vec::new(),
        emit: &mut emit,
        end: END_OF_INPUT,
    };
    for msg in rx {
        let upto = match msg {
            AnalysisMsg::Obs {
                worker,
                watermark_ns,
                mut obs,
            } => {
                for o in obs.drain(..) {
                    if let Some(late) = merger.push(worker, o) {
                        if let Obs::Start(s) = &late {
                            written.seen(s);
                        }
                        run.process(worker, &late);
                    }
                }
                let _ = spare.try_send(obs);
                merger.watermark(worker, watermark_ns)
            }
            AnalysisMsg::Policy {
                worker,
                slot,
                policy,
            } => {
                if let Some(g) = run
                    .gens
                    .get_mut(worker)
                    .and_then(|g| g.get_mut(usize::from(slot)))
                {
                    *g = Some(policy.clone());
                }
                current = Some(policy);
                continue;
            }
            AnalysisMsg::Tap {
                worker: _,
                detector,
                part,
            } => {
                if let Some(d) = run.dets.get_mut(detector) {
                    d.tapped(part);
                }
                continue;
            }
            AnalysisMsg::Frames(b) => {
                if let Some(e) = &mut evidence {
                    e.queue(*b);
                }
                continue;
            }
            AnalysisMsg::Done { worker, shutdown } => {
                done += 1;
                if shutdown {
                    run.end = SHUTDOWN;
                }
                merger.watermark(worker, u64::MAX)
            }
        };
        // Released in (time, key) order; the worker is kept for tag lookup.
        while let Some((w, o)) = merger.pop_tagged(upto) {
            if let Obs::Start(s) = &o {
                written.seen(s);
            }
            run.process(w, &o);
        }
        run.detect(current.as_deref());
        run.advance(upto, current.as_deref());
        run.write(
            upto,
            evidence.as_mut(),
            &mut *sink,
            &mut result,
            &mut written,
        );
        if let Some(e) = &mut evidence {
            if evidence_flushed.elapsed() >= EVIDENCE_FLUSH_EVERY {
                evidence_flushed = std::time::Instant::now();
                e.flush_named();
                if let Some(m) = &mut written.metrics {
                    m.evidence(e.stats());
                }
            }
        }
        if done == workers {
            break;
        }
    }
    run.advance(u64::MAX, current.as_deref());
    run.folder.close_all();
    run.collect_folder();
    run.write(
        u64::MAX,
        evidence.as_mut(),
        &mut *sink,
        &mut result,
        &mut written,
    );
    let hurried = cfg
        .hurry
        .as_ref()
        .is_some_and(|h| h.load(std::sync::atomic::Ordering::Relaxed));
    let mut evidence_frames_unwritten = 0;
    if let Some(e) = &mut evidence {
        if hurried {
            evidence_frames_unwritten = e.finish_now();
        } else {
            e.finish();
        }
        if let Some(m) = &mut written.metrics {
            m.evidence(e.stats());
        }
    }
    let stats = AnalysisStats {
        written_by_kind: written.by_kind,
        written_by_severity: written.by_severity,
        separation: run.folder.stats().clone(),
        detectors: run.dets.iter().map(|d| (d.name(), d.stats())).collect(),
        late: merger.late,
        forced: merger.forced,
        evidence: evidence.map(|e| e.stats().clone()),
        evidence_frames_unwritten,
    };
    (stats, result)
}

/// How often (wall time) evidence files already named by an alert line get
/// the frames collected for them appended.
const EVIDENCE_FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The analysis thread's working parts.
struct Run<'a> {
    gens: &'a mut Vec<[Option<Arc<Policy>>; POLICY_GENERATIONS]>,
    folder: &'a mut Folder,
    dets: &'a mut Vec<Box<dyn Detector>>,
    /// What each detector reads ([`crate::detect::needs_each`]).
    fed: Vec<crate::detect::Needs>,
    /// This round's released observations, in release order: each detector
    /// then takes all of them in turn ([`Run::detect`]).
    round: Vec<Obs>,
    emit: &'a mut Emit,
    end: &'static str,
}

impl Run<'_> {
    fn process(&mut self, worker: usize, o: &Obs) {
        match o {
            Obs::Start(s) => self.violation(worker, s),
            Obs::Seen { ts_ns, key, tag } => {
                // Only the folding wants it (a group's last_seen).
                if let Some(verdict @ Verdict::Violation { .. }) = Verdict::unpack(*tag) {
                    let policy = self
                        .gens
                        .get(worker)
                        .and_then(|g| g.get(usize::from(generation_of(*tag))))
                        .and_then(Option::as_ref);
                    if let Some(p) = policy {
                        self.folder.seen(key, p, &verdict, *ts_ns);
                    }
                }
                return;
            }
            _ => {}
        }
        if !self.dets.is_empty() {
            self.round.push(*o);
        }
    }

    /// Every detector takes the round's observations in release order, one
    /// detector after the other: each sees exactly the sequence it would see
    /// interleaved with the others (detectors share no state, and the writer
    /// orders alerts by due time and rank), with its state hot and one call
    /// per observation it reads ([`crate::detect::Needs::feeds`]).
    fn detect(&mut self, current: Option<&Policy>) {
        if self.round.is_empty() {
            return;
        }
        let cx = Ctx {
            policy: current,
            end: self.end,
        };
        for (i, (d, needs)) in self.dets.iter_mut().zip(&self.fed).enumerate() {
            self.emit.rank = i + 1;
            for o in self.round.iter().filter(|o| needs.feeds(o)) {
                d.observe(o, &cx, self.emit);
            }
        }
        self.round.clear();
    }

    fn violation(&mut self, worker: usize, s: &FlowStart) {
        let Some(verdict @ Verdict::Violation { .. }) = Verdict::unpack(s.tag) else {
            return;
        };
        let policy = self
            .gens
            .get(worker)
            .and_then(|g| g.get(usize::from(generation_of(s.tag))))
            .and_then(Option::as_ref);
        if let Some(policy) = policy {
            self.folder.fold_released(Event {
                source: s.source,
                ts_ns: s.ts_ns,
                key: s.key,
                verdict,
                policy: policy.clone(),
            });
        }
    }

    fn advance(&mut self, upto: u64, current: Option<&Policy>) {
        self.folder.close_until(upto);
        self.collect_folder();
        let cx = Ctx {
            policy: current,
            end: self.end,
        };
        for (i, d) in self.dets.iter_mut().enumerate() {
            self.emit.rank = i + 1;
            d.advance(upto, &cx, self.emit);
        }
    }

    /// Write this round's alerts (released up to `upto`), evidence in step.
    fn write(
        &mut self,
        upto: u64,
        store: Option<&mut crate::evidence::Store>,
        sink: &mut dyn AlertSink,
        result: &mut io::Result<()>,
        written: &mut Written,
    ) {
        let ev = Evidence {
            store,
            folds: self.folder.folded.as_mut(),
            upto,
        };
        write(&mut self.emit.items, ev, sink, result, written);
    }

    fn collect_folder(&mut self) {
        for (at, a) in self.folder.drain_timed() {
            self.emit.items.push((at, 0, a));
        }
    }
}

/// Write this round's alerts ordered by due time (stable: producers in a fixed
/// order, each in its own order), stopping at the first write error.
#[derive(Default)]
struct Written {
    by_kind: std::collections::BTreeMap<&'static str, u64>,
    by_severity: [u64; 5],
    metrics: Option<crate::metrics::AlertPub>,
    sensor: Option<String>,
    sources: Vec<String>,
    /// The input each address was first seen on as an initiator or responder
    /// (for alerts no single flow decides; bounded, see [`SEEN_ON_CAP`]).
    seen_on: HashMap<crate::packet::Addr, u16>,
    /// Due time of the last alert written and how many were written at it.
    last_due: u64,
    nth: u64,
    /// Open alert groups (producer rank, fold group's evidence slot or a
    /// detector's group) → the id and evidence file of their first line,
    /// which their update line repeats.
    groups: HashMap<(usize, u64), (String, Option<String>)>,
    /// Update lines written.
    updates: u64,
}

/// The evidence store's share of a round: the flows the folder took in (start
/// time, group, key, in release order) and how far the round released.
struct Evidence<'a> {
    store: Option<&'a mut crate::evidence::Store>,
    folds: Option<&'a mut Vec<(u64, u64, crate::packet::FlowKey)>>,
    upto: u64,
}

/// Addresses `Written::seen_on` remembers; past it the map starts over (a
/// spoofed flood must not grow it), so a detector's alert may then name no input.
pub const SEEN_ON_CAP: usize = 1 << 16;

impl Written {
    /// Note the input a new flow came from, for both its addresses.
    fn seen(&mut self, s: &FlowStart) {
        if self.sources.len() < 2 {
            return;
        }
        if self.seen_on.len() >= SEEN_ON_CAP {
            self.seen_on.clear();
        }
        // First sighting wins: later flows cannot change what an alert
        // already due would have said, whatever the release rounds.
        self.seen_on.entry(s.key.src).or_insert(s.source);
        self.seen_on.entry(s.key.dst).or_insert(s.source);
    }

    /// `in_iface` of `a`: the input of its flow, else the only input, else
    /// where its source (or destination) address was last seen.
    fn iface_of(&self, a: &Alert) -> Option<String> {
        if self.sources.len() == 1 {
            return self.sources.first().cloned();
        }
        let idx = a.source.or_else(|| {
            [a.src_ip, a.dst_ip].iter().flatten().find_map(|ip| {
                let k = crate::packet::FlowKey::new(0, *ip, 0, *ip, 0);
                self.seen_on.get(&k.src).copied()
            })
        })?;
        self.sources.get(usize::from(idx)).cloned()
    }
}

/// Give `a` its `id`: the first 16 hex digits of SHA-1 over the line as
/// written so far (no `id`, `host`, `in_iface` or evidence file) and the packet
/// time and rank it was written at. The same traffic gives the same ids in any
/// run, live or replay, whatever the sensor or worker count; two alerts of one
/// run differ in content or in `(due_ns, nth)`. The line is the alert's JSON
/// (its `Serialize`), so the id lives here, where alerts are written, not
/// with the detectors that make them.
pub(crate) fn stamp_id(a: &mut Alert, due_ns: u64, nth: u64) {
    use sha1::{Digest, Sha1};
    a.id.clear();
    a.event_type = "alert";
    let (host, iface, pcap) = (a.host.take(), a.in_iface.take(), a.evidence_pcap.take());
    let mut h = Sha1::new();
    // Straight into the hash (the hasher is an `io::Write`): no line buffer.
    let _ = serde_json::to_writer(&mut h, &*a);
    h.update(due_ns.to_be_bytes());
    h.update(nth.to_be_bytes());
    let d = h.finalize();
    a.id = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
    (a.host, a.in_iface, a.evidence_pcap) = (host, iface, pcap);
}

fn write(
    items: &mut Vec<(u64, usize, Alert)>,
    ev: Evidence<'_>,
    sink: &mut dyn AlertSink,
    result: &mut io::Result<()>,
    written: &mut Written,
) {
    // Evidence sees folds and alerts in packet-time order (folds first at
    // equal times), whatever the round boundaries: a round holds every event
    // up to `upto` and none later, so commits never run ahead of an event.
    let mut store = ev.store;
    // Drained in place: the folder's vector keeps its capacity across rounds.
    let mut none = Vec::new();
    let mut folds_iter = ev.folds.unwrap_or(&mut none).drain(..).peekable();
    let wrote = !items.is_empty();
    items.sort_by_key(|(at, rank, _)| (*at, *rank));
    for (at, rank, mut a) in items.drain(..) {
        if let Some(st) = store.as_deref_mut() {
            while let Some((t, slot, key)) = folds_iter.next_if(|f| f.0 <= at) {
                st.fold(slot, &key, t);
            }
        }
        let group = a.evidence_slot.or(a.group).map(|g| (rank, g));
        if let (true, Some(gk)) = (a.update > 0, group) {
            // A group closed: its update line repeats the first line's id.
            if let Some((id, pcap)) = written.groups.remove(&gk) {
                a.id = id;
                a.evidence_pcap = pcap;
            }
            if let (Some(st), Some(slot)) = (store.as_deref_mut(), a.evidence_slot) {
                st.close_slot(slot, at);
            }
            if a.silent {
                continue;
            }
            if a.host.is_none() {
                a.host.clone_from(&written.sensor);
            }
            if a.in_iface.is_none() {
                a.in_iface = written.iface_of(&a);
            }
            written.updates += 1;
            if result.is_ok() {
                *result = sink.alert(&a);
            }
            continue;
        }
        if at == written.last_due {
            written.nth += 1;
        } else {
            (written.last_due, written.nth) = (at, 0);
        }
        stamp_id(&mut a, at, written.nth);
        if a.host.is_none() {
            a.host.clone_from(&written.sensor);
        }
        if a.in_iface.is_none() {
            a.in_iface = written.iface_of(&a);
        }
        if let Some(st) = store.as_deref_mut() {
            if a.evidence_slot.is_some() {
                st.alert_open(&mut a, at);
            } else {
                st.alert(&mut a, at);
            }
        }
        if let Some(gk) = group {
            written
                .groups
                .insert(gk, (a.id.clone(), a.evidence_pcap.clone()));
        }
        *written.by_kind.entry(a.kind).or_default() += 1;
        if let Some(m) = &mut written.metrics {
            m.alert(&a);
        }
        if let Some(n) = written.by_severity.get_mut(a.severity as usize) {
            *n += 1;
        }
        if result.is_ok() {
            *result = sink.alert(&a);
        }
    }
    if let Some(st) = store {
        for (t, slot, key) in folds_iter {
            st.fold(slot, &key, t);
        }
        if ev.upto != u64::MAX {
            st.commit(ev.upto);
        }
        if let Some(m) = &mut written.metrics {
            m.evidence(st.stats());
        }
    }
    if result.is_ok() && wrote {
        *result = sink.flush();
    }
}
