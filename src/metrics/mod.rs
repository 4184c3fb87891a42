//! Floor L4. Prometheus metrics: the one table of metric names ([`M`]), the registry
//! ([`Metrics`]), the per-thread publishers that move plain counters into it
//! once per batch, and the `/metrics` HTTP endpoint ([`server`]).
//!
//! Owns: names, label sets, the text exposition and the HTTP thread. It leaves
//! alone: what is counted (decode, flow table, analysis thread keep their own
//! plain integers) — publishers only copy deltas of those counters into
//! pre-resolved atomic handles, never per packet.
//!
//! - Names read `zonewatch_<what>_<unit>[_total]` and come only from [`M`]
//!   (`tests::names_follow_the_convention` checks every one).
//! - Labels are bounded: worker index, reason, verdict, alert kind and
//!   severity, and zone ids of the rules (≤ [`crate::policy::MAX_ZONES`]);
//!   `"-"` when there are no rules or the address is in no zone. Never addresses.
//! - Workers count packets and bytes by (source zone, destination zone,
//!   verdict) in a per-table side array ([`crate::flow::zones::ZoneCells`],
//!   on the flow floor) and publish the dirty cells after each batch
//!   ([`WorkerPub`]). The capture thread publishes every 1024 frames
//!   ([`CapturePub`]).
//! - Latency and batch work time are recorded per batch into per-worker
//!   hdrhistograms and exported as summaries (quantiles 0.5/0.9/0.99/0.999).

pub mod openmetrics;
pub mod server;

use crate::capture::LiveCounters;
use crate::decode::{DecodeFail, DecodeStats};
use crate::flow::{EndReason, FlowStats};
use hdrhistogram::Histogram;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Encoder, GaugeVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Content type of the text exposition format served on `/metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Default `--metrics-listen` of `zonewatch run` (the Prometheus port
/// registry's "exporter default" range; 9464 is the OpenTelemetry exporter's).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

// Zone label when there are no rules or the address is in no zone: one
// definition on the flow floor, used by the zone cells and the report's tallies.
pub use crate::flow::tally::NO_ZONE;

/// Quantiles exported by the summaries.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.99, 0.999];

/// Metric type of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// Quantiles from an hdrhistogram, `_sum` and `_count`.
    Summary,
}

/// One metric family: name, type, labels, help.
#[derive(Clone, Copy, Debug)]
pub struct Def {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

/// Every metric zonewatch exports (the one table: nothing else names a metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum M {
    BuildInfo,
    PolicyInfo,
    PolicyReloads,
    PolicyLastReload,
    Packets,
    Bytes,
    CapturePackets,
    CaptureBytes,
    CaptureReceived,
    Dropped,
    QueueDropped,
    DecodeFailures,
    FlowsActive,
    FlowsCreated,
    FlowsEnded,
    FlowsEvicted,
    Alerts,
    DosEpisodesActive,
    VerdictLatency,
    BatchWork,
    CaptureTime,
    EvidenceFiles,
    EvidenceBytes,
    EvidenceCut,
}

const ZONE_VERDICT: &[&str] = &["src_zone", "dst_zone", "verdict"];

impl M {
    pub const ALL: [M; 24] = [
        M::BuildInfo,
        M::PolicyInfo,
        M::PolicyReloads,
        M::PolicyLastReload,
        M::Packets,
        M::Bytes,
        M::CapturePackets,
        M::CaptureBytes,
        M::CaptureReceived,
        M::Dropped,
        M::QueueDropped,
        M::DecodeFailures,
        M::FlowsActive,
        M::FlowsCreated,
        M::FlowsEnded,
        M::FlowsEvicted,
        M::Alerts,
        M::DosEpisodesActive,
        M::VerdictLatency,
        M::BatchWork,
        M::CaptureTime,
        M::EvidenceFiles,
        M::EvidenceBytes,
        M::EvidenceCut,
    ];

    pub const fn def(self) -> Def {
        use Kind::*;
        let (name, kind, labels, help): (_, _, &'static [&'static str], _) = match self {
            M::BuildInfo => ("zonewatch_build_info", Gauge, &["version"], "zonewatch build (always 1)"),
            M::PolicyInfo => ("zonewatch_policy_info", Gauge, &["site", "preset", "sha256"], "Rules in force (always 1): site name, preset, first 12 hex digits of the rules file's SHA-256"),
            M::PolicyReloads => ("zonewatch_policy_reloads_total", Counter, &["result"], "SIGHUP rules reloads by result (ok, error)"),
            M::PolicyLastReload => ("zonewatch_policy_last_reload_timestamp_seconds", Gauge, &[], "Wall time of the last reload attempt (Unix seconds; 0 = none yet)"),
            M::Packets => ("zonewatch_packets_total", Counter, ZONE_VERDICT, "IP packets by their flow's zones (initiator -> responder) and verdict (allowed, violation, unknown; none without rules)"),
            M::Bytes => ("zonewatch_bytes_total", Counter, ZONE_VERDICT, "Wire bytes of IP packets by their flow's zones and verdict"),
            M::CapturePackets => ("zonewatch_capture_packets_total", Counter, &[], "Frames read from the capture"),
            M::CaptureBytes => ("zonewatch_capture_bytes_total", Counter, &[], "Wire bytes of the frames read"),
            M::CaptureReceived => ("zonewatch_capture_received_packets_total", Counter, &[], "Packets libpcap received (ps_recv; live capture only)"),
            M::Dropped => ("zonewatch_dropped_packets_total", Counter, &["reason"], "Packets dropped, by where: kernel (ps_drop), interface (ps_ifdrop), queue_full (a worker's queue was full)"),
            M::QueueDropped => ("zonewatch_queue_dropped_packets_total", Counter, &["worker"], "Packets dropped because this worker's queue was full (live capture)"),
            M::DecodeFailures => ("zonewatch_decode_failures_total", Counter, &["reason"], "Frames whose decoding failed, by reason"),
            M::FlowsActive => ("zonewatch_flows_active", Gauge, &["worker"], "Flows open in this worker's table"),
            M::FlowsCreated => ("zonewatch_flows_created_total", Counter, &[], "Flows created"),
            M::FlowsEnded => ("zonewatch_flows_ended_total", Counter, &["reason"], "Flows ended, by reason"),
            M::FlowsEvicted => ("zonewatch_flows_evicted_total", Counter, &[], "Flows evicted because a table was full (also in flows_ended{reason=\"evicted\"})"),
            M::Alerts => ("zonewatch_alerts_total", Counter, &["kind", "severity", "src_zone", "dst_zone"], "Alert lines written"),
            M::DosEpisodesActive => ("zonewatch_dos_episodes_active", Gauge, &[], "Open DoS episodes (dos_start written, dos_end not yet)"),
            M::VerdictLatency => ("zonewatch_packet_verdict_latency_seconds", Summary, &[], "Wall time from reading the first (oldest) packet of a batch to its worker having accounted it (batch fill, queueing, work), per batch"),
            M::BatchWork => ("zonewatch_batch_work_seconds", Summary, &["worker"], "Worker time spent on one batch"),
            M::CaptureTime => ("zonewatch_capture_time_seconds", Gauge, &[], "Packet time of the newest packet read (Unix seconds)"),
            M::EvidenceFiles => ("zonewatch_evidence_files_total", Counter, &[], "Evidence pcaps written (--evidence)"),
            M::EvidenceBytes => ("zonewatch_evidence_bytes_total", Counter, &[], "Bytes put into evidence pcaps, headers included (--evidence)"),
            M::EvidenceCut => ("zonewatch_evidence_cuts_total", Counter, &["reason"], "Evidence not written, by reason (the summary's alerts.evidence names: alerts_without_file, alerts_file_failed, frames_over_alert_cap, frames_over_total_cap, frames_other_link, flows_over_cap, frames_evicted, write_errors, frames_not_copied)"),
        };
        Def {
            name,
            kind,
            labels,
            help,
        }
    }
}

/// A histogram of nanoseconds with its exact sum (hdrhistogram keeps none).
struct Hist {
    h: Histogram<u64>,
    sum_ns: u128,
}

impl Hist {
    fn new() -> Hist {
        Hist {
            // 1 µs .. 1 h at 2 significant digits (quantiles within 1%; 3
            // digits would make each histogram ~10x larger to merge and reset);
            // values outside are clamped.
            h: Histogram::new_with_bounds(1_000, 3_600_000_000_000, 2)
                .unwrap_or_else(|_| Histogram::new(2).unwrap_or_else(|_| unreachable_hist())),
            sum_ns: 0,
        }
    }
    fn record(&mut self, ns: u64) {
        self.h.saturating_record(ns.clamp(1_000, 3_600_000_000_000));
        self.sum_ns += u128::from(ns);
    }
    fn add(&mut self, o: &Hist) {
        // Same bounds on both sides: `add` cannot fail.
        let _ = self.h.add(&o.h);
        self.sum_ns += o.sum_ns;
    }
    fn reset(&mut self) {
        self.h.reset();
        self.sum_ns = 0;
    }
}

#[cold]
fn unreachable_hist() -> Histogram<u64> {
    // `Histogram::new(2)` only fails for > 5 significant digits.
    panic!("hdrhistogram refused 2 significant digits")
}

/// The two summaries: the shared side of the per-worker histograms.
struct Summaries {
    latency_desc: Desc,
    work_desc: Desc,
    latency: Mutex<Hist>,
    work: Vec<Mutex<Hist>>,
}

fn summary_metric(h: &Hist, labels: Vec<proto::LabelPair>) -> proto::Metric {
    let mut s = proto::Summary::default();
    s.set_sample_count(h.h.len());
    s.set_sample_sum(h.sum_ns as f64 / 1e9);
    let qs = QUANTILES
        .iter()
        .map(|&q| {
            let mut x = proto::Quantile::default();
            x.set_quantile(q);
            x.set_value(if h.h.is_empty() {
                0.0
            } else {
                h.h.value_at_quantile(q) as f64 / 1e9
            });
            x
        })
        .collect();
    s.set_quantile(qs);
    let mut m = proto::Metric::default();
    m.set_label(labels);
    m.set_summary(s);
    m
}

fn family(d: &Desc, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(d.fq_name.clone());
    f.set_help(d.help.clone());
    f.set_field_type(MetricType::SUMMARY);
    f.set_metric(metrics);
    f
}

impl Collector for Summaries {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.latency_desc, &self.work_desc]
    }
    fn collect(&self) -> Vec<MetricFamily> {
        let lat = match self.latency.lock() {
            Ok(h) => summary_metric(&h, Vec::new()),
            Err(_) => return Vec::new(),
        };
        let work = self
            .work
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let h = h.lock().ok()?;
                let mut l = proto::LabelPair::default();
                l.set_name("worker".into());
                l.set_value(i.to_string());
                Some(summary_metric(&h, vec![l]))
            })
            .collect();
        vec![
            family(&self.latency_desc, vec![lat]),
            family(&self.work_desc, work),
        ]
    }
}

/// Error building the registry (a definition the prometheus crate rejects:
/// a bug in [`M::def`], caught by the unit tests).
#[derive(Debug, thiserror::Error)]
#[error("metric {name}: {source}")]
pub struct MetricsError {
    name: &'static str,
    #[source]
    source: prometheus::Error,
}

/// The registry and every family, built once at start-up.
pub struct Metrics {
    registry: Registry,
    counters: Vec<Option<IntCounterVec>>,
    gauges: Vec<Option<GaugeVec>>,
    summaries: Arc<Summaries>,
    workers: usize,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("workers", &self.workers)
            .finish()
    }
}

impl Metrics {
    /// Every family of [`M`], for `workers` worker threads.
    pub fn new(workers: usize) -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let mut counters = Vec::with_capacity(M::ALL.len());
        let mut gauges = Vec::with_capacity(M::ALL.len());
        let mut latency_desc = None;
        let mut work_desc = None;
        for m in M::ALL {
            let d = m.def();
            let err = |source| MetricsError {
                name: d.name,
                source,
            };
            let (mut c, mut g) = (None, None);
            match d.kind {
                Kind::Counter => {
                    let v = IntCounterVec::new(Opts::new(d.name, d.help), d.labels).map_err(err)?;
                    registry.register(Box::new(v.clone())).map_err(err)?;
                    c = Some(v);
                }
                Kind::Gauge => {
                    let v = GaugeVec::new(Opts::new(d.name, d.help), d.labels).map_err(err)?;
                    registry.register(Box::new(v.clone())).map_err(err)?;
                    g = Some(v);
                }
                Kind::Summary => {
                    let desc = Desc::new(
                        d.name.into(),
                        d.help.into(),
                        d.labels.iter().map(|s| s.to_string()).collect(),
                        Default::default(),
                    )
                    .map_err(err)?;
                    match m {
                        M::VerdictLatency => latency_desc = Some(desc),
                        _ => work_desc = Some(desc),
                    }
                }
            }
            counters.push(c);
            gauges.push(g);
        }
        let summaries = Arc::new(Summaries {
            latency_desc: latency_desc.ok_or(MetricsError {
                name: M::VerdictLatency.def().name,
                source: prometheus::Error::Msg("no descriptor".into()),
            })?,
            work_desc: work_desc.ok_or(MetricsError {
                name: M::BatchWork.def().name,
                source: prometheus::Error::Msg("no descriptor".into()),
            })?,
            latency: Mutex::new(Hist::new()),
            work: (0..workers).map(|_| Mutex::new(Hist::new())).collect(),
        });
        registry
            .register(Box::new(SummariesRef(summaries.clone())))
            .map_err(|source| MetricsError {
                name: M::VerdictLatency.def().name,
                source,
            })?;
        let me = Metrics {
            registry,
            counters,
            gauges,
            summaries,
            workers,
        };
        me.gauge(M::BuildInfo, &[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        me.gauge(M::PolicyLastReload, &[]).set(0.0);
        // Families without labels, and the fixed label sets, exist from the
        // start (a scrape shows zeros rather than missing series).
        for m in [
            M::CapturePackets,
            M::CaptureBytes,
            M::CaptureReceived,
            M::FlowsCreated,
            M::FlowsEvicted,
        ] {
            me.counter(m, &[]);
        }
        for r in ["kernel", "interface", "queue_full"] {
            me.counter(M::Dropped, &[r]);
        }
        for r in ["ok", "error"] {
            me.counter(M::PolicyReloads, &[r]);
        }
        for r in EndReason::ALL {
            me.counter(M::FlowsEnded, &[r.as_str()]);
        }
        for w in 0..workers {
            let w = w.to_string();
            me.counter(M::QueueDropped, &[&w]);
            me.gauge(M::FlowsActive, &[&w]);
        }
        me.gauge(M::DosEpisodesActive, &[]);
        me.gauge(M::CaptureTime, &[]);
        me.counter(M::EvidenceFiles, &[]);
        me.counter(M::EvidenceBytes, &[]);
        for r in crate::evidence::CUT_REASONS {
            me.counter(M::EvidenceCut, &[r]);
        }
        Ok(me)
    }

    /// The counter of `m` with these label values (resolve once, keep the handle).
    ///
    /// # Panics
    /// If `m` is not a counter or the label count is wrong (a bug: the unit
    /// tests resolve every family).
    pub fn counter(&self, m: M, labels: &[&str]) -> IntCounter {
        match self.counters.get(m as usize).and_then(Option::as_ref) {
            Some(v) => v.with_label_values(labels),
            None => panic!("{} is not a counter", m.def().name),
        }
    }

    /// The gauge of `m` with these label values (see [`counter`](Self::counter)).
    ///
    /// # Panics
    /// As [`counter`](Self::counter).
    pub fn gauge(&self, m: M, labels: &[&str]) -> prometheus::Gauge {
        match self.gauges.get(m as usize).and_then(Option::as_ref) {
            Some(v) => v.with_label_values(labels),
            None => panic!("{} is not a gauge", m.def().name),
        }
    }

    /// Remove every series of gauge `m` (the policy_info of replaced rules).
    pub fn reset_gauge(&self, m: M) {
        if let Some(v) = self.gauges.get(m as usize).and_then(Option::as_ref) {
            v.reset();
        }
    }

    /// The rules in force: `policy_info` shows only these.
    pub fn set_policy(&self, site: &str, preset: &str, sha256_12: &str) {
        self.reset_gauge(M::PolicyInfo);
        self.gauge(M::PolicyInfo, &[site, preset, sha256_12])
            .set(1.0);
    }

    /// A reload attempt at wall time `unix_secs`.
    pub fn reload(&self, ok: bool, unix_secs: f64) {
        self.counter(M::PolicyReloads, &[if ok { "ok" } else { "error" }])
            .inc();
        self.gauge(M::PolicyLastReload, &[]).set(unix_secs);
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The text exposition of every family.
    pub fn render(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec fails only on a metric family the crate
        // considers invalid; the families come from `M`, checked by tests.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        buf
    }
}

/// The summaries registered by reference (the registry owns a `Box`).
struct SummariesRef(Arc<Summaries>);

impl Collector for SummariesRef {
    fn desc(&self) -> Vec<&Desc> {
        self.0.desc()
    }
    fn collect(&self) -> Vec<MetricFamily> {
        self.0.collect()
    }
}

/// First 12 hex digits of the SHA-256 of `bytes` (`policy_info{sha256}`).
pub fn sha256_12(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Publish histograms to the shared side at most this often (wall time).
const HIST_EVERY: Duration = Duration::from_millis(200);

/// A worker's publisher: flow counters, zone-pair cells and histograms, moved
/// into the registry once per batch.
pub struct WorkerPub {
    m: Arc<Metrics>,
    worker: usize,
    active: prometheus::Gauge,
    created: IntCounter,
    evicted: IntCounter,
    ended: Vec<IntCounter>,
    last: FlowStats,
    /// Packets and bytes handles of each zone cell, resolved on first use.
    cells: Vec<Option<(IntCounter, IntCounter)>>,
    lat: Hist,
    work: Hist,
    hist_at: Instant,
}

impl WorkerPub {
    pub fn new(m: Arc<Metrics>, worker: usize) -> WorkerPub {
        let w = worker.to_string();
        WorkerPub {
            active: m.gauge(M::FlowsActive, &[&w]),
            created: m.counter(M::FlowsCreated, &[]),
            evicted: m.counter(M::FlowsEvicted, &[]),
            ended: EndReason::ALL
                .iter()
                .map(|r| m.counter(M::FlowsEnded, &[r.as_str()]))
                .collect(),
            last: FlowStats::default(),
            cells: Vec::new(),
            lat: Hist::new(),
            work: Hist::new(),
            hist_at: Instant::now(),
            worker,
            m,
        }
    }

    /// After a batch: `sent` = when the capture thread dispatched it,
    /// `started` = when this worker began it. Then call [`flows`](Self::flows)
    /// and [`zone_cells`](Self::zone_cells).
    pub fn batch_done(&mut self, sent: Option<Instant>, started: Instant) {
        let now = Instant::now();
        self.work
            .record(now.duration_since(started).as_nanos() as u64);
        if let Some(s) = sent {
            self.lat.record(now.duration_since(s).as_nanos() as u64);
        }
        if now.duration_since(self.hist_at) >= HIST_EVERY {
            self.flush_hists(false);
            self.hist_at = now;
        }
    }

    /// Flow counters: deltas since the last call.
    pub fn flows(&mut self, s: &FlowStats) {
        self.active.set(s.active as f64);
        self.created
            .inc_by(s.created.saturating_sub(self.last.created));
        self.evicted
            .inc_by(s.evicted.saturating_sub(self.last.evicted));
        for ((h, now), was) in self.ended.iter().zip(&s.ended).zip(&self.last.ended) {
            let d = now.saturating_sub(*was);
            if d > 0 {
                h.inc_by(d);
            }
        }
        self.last.clone_from(s);
    }

    /// Publish the dirty zone-pair cells and zero them.
    pub fn zone_cells(&mut self, c: &mut crate::flow::zones::ZoneCells) {
        let (cells, m) = (&mut self.cells, &self.m);
        c.drain(|cell, labels, pkts, bytes| {
            let i = usize::from(cell);
            if cells.len() <= i {
                cells.resize(i + 1, None);
            }
            if let Some(slot) = cells.get_mut(i) {
                let (p, b) = slot.get_or_insert_with(|| {
                    let l = [labels.src.as_str(), labels.dst.as_str(), labels.verdict];
                    (m.counter(M::Packets, &l), m.counter(M::Bytes, &l))
                });
                p.inc_by(pkts);
                b.inc_by(bytes);
            }
        });
    }

    /// Merge the local histograms into the shared ones; `wait` = block on the
    /// lock (end of run), else skip when a scrape holds it.
    pub fn flush_hists(&mut self, wait: bool) {
        fn lock(m: &Mutex<Hist>, wait: bool) -> Option<std::sync::MutexGuard<'_, Hist>> {
            if wait {
                m.lock().ok()
            } else {
                m.try_lock().ok()
            }
        }
        let s = &self.m.summaries;
        if let Some(mut h) = lock(&s.latency, wait) {
            h.add(&self.lat);
            self.lat.reset();
        }
        if let Some(mut h) = s.work.get(self.worker).and_then(|m| lock(m, wait)) {
            h.add(&self.work);
            self.work.reset();
        }
    }
}

/// The capture thread's publisher (every 1024 frames, on idle and at the end).
pub struct CapturePub {
    frames: IntCounter,
    bytes: IntCounter,
    received: IntCounter,
    kernel: IntCounter,
    interface: IntCounter,
    queue_full: IntCounter,
    queue: Vec<IntCounter>,
    failures: Vec<(DecodeFail, IntCounter)>,
    time: prometheus::Gauge,
    last_frames: u64,
    last_bytes: u64,
    last_queue: Vec<u64>,
    last_failures: Vec<u64>,
    last_live: LiveCounters,
}

impl CapturePub {
    pub fn new(m: &Metrics) -> CapturePub {
        let n = m.workers();
        CapturePub {
            frames: m.counter(M::CapturePackets, &[]),
            bytes: m.counter(M::CaptureBytes, &[]),
            received: m.counter(M::CaptureReceived, &[]),
            kernel: m.counter(M::Dropped, &["kernel"]),
            interface: m.counter(M::Dropped, &["interface"]),
            queue_full: m.counter(M::Dropped, &["queue_full"]),
            queue: (0..n)
                .map(|w| m.counter(M::QueueDropped, &[&w.to_string()]))
                .collect(),
            failures: DecodeFail::ALL
                .iter()
                .map(|&r| (r, m.counter(M::DecodeFailures, &[r.as_str()])))
                .collect(),
            time: m.gauge(M::CaptureTime, &[]),
            last_frames: 0,
            last_bytes: 0,
            last_queue: vec![0; n],
            last_failures: vec![0; DecodeFail::COUNT],
            last_live: LiveCounters::default(),
        }
    }

    /// Publish the capture thread's counters (deltas since the last call).
    pub fn publish(
        &mut self,
        frames: u64,
        wire_bytes: u64,
        decode: &DecodeStats,
        queue_drops: &[u64],
        clock_ns: u64,
    ) {
        self.frames.inc_by(frames.saturating_sub(self.last_frames));
        self.last_frames = frames;
        self.bytes
            .inc_by(wire_bytes.saturating_sub(self.last_bytes));
        self.last_bytes = wire_bytes;
        for ((h, now), was) in self
            .queue
            .iter()
            .zip(queue_drops)
            .zip(self.last_queue.iter_mut())
        {
            let d = now.saturating_sub(*was);
            if d > 0 {
                h.inc_by(d);
                self.queue_full.inc_by(d);
                *was = *now;
            }
        }
        for ((r, h), was) in self.failures.iter().zip(self.last_failures.iter_mut()) {
            let now = decode.failure(*r);
            if now > *was {
                h.inc_by(now - *was);
                *was = now;
            }
        }
        if clock_ns > 0 {
            self.time.set(clock_ns as f64 / 1e9);
        }
    }

    /// libpcap's counters (cumulative since the capture opened).
    pub fn live(&mut self, c: LiveCounters) {
        let l = &mut self.last_live;
        self.received.inc_by(c.received.saturating_sub(l.received));
        self.kernel.inc_by(c.dropped.saturating_sub(l.dropped));
        self.interface
            .inc_by(c.if_dropped.saturating_sub(l.if_dropped));
        l.received = l.received.max(c.received);
        l.dropped = l.dropped.max(c.dropped);
        l.if_dropped = l.if_dropped.max(c.if_dropped);
    }
}

/// The analysis thread's publisher: alert lines and open DoS episodes.
pub struct AlertPub {
    m: Arc<Metrics>,
    dos: prometheus::Gauge,
    open_episodes: i64,
    /// Evidence counts already published.
    evidence: crate::evidence::EvidenceStats,
}

impl AlertPub {
    pub fn new(m: Arc<Metrics>) -> AlertPub {
        AlertPub {
            dos: m.gauge(M::DosEpisodesActive, &[]),
            open_episodes: 0,
            evidence: crate::evidence::EvidenceStats::default(),
            m,
        }
    }

    /// The evidence store's counts after a round (deltas go to the counters).
    pub fn evidence(&mut self, now: &crate::evidence::EvidenceStats) {
        let inc = |c: IntCounter, new: u64, old: u64| c.inc_by(new.saturating_sub(old));
        let old = &self.evidence;
        inc(self.m.counter(M::EvidenceFiles, &[]), now.files, old.files);
        inc(self.m.counter(M::EvidenceBytes, &[]), now.bytes, old.bytes);
        for ((r, new), (_, was)) in now.cuts().into_iter().zip(old.cuts()) {
            inc(self.m.counter(M::EvidenceCut, &[r]), new, was);
        }
        self.evidence = now.clone();
    }

    /// One alert line written (not per packet: label lookup per alert).
    pub fn alert(&mut self, a: &crate::alert::Alert) {
        let l = [
            a.kind,
            a.severity.as_str(),
            a.src_zone.as_deref().unwrap_or(NO_ZONE),
            a.dst_zone.as_deref().unwrap_or(NO_ZONE),
        ];
        self.m.counter(M::Alerts, &l).inc();
        match a.kind {
            "dos_start" => self.open_episodes += 1,
            "dos_end" => self.open_episodes -= 1,
            _ => return,
        }
        self.dos.set(self.open_episodes.max(0) as f64);
    }
}

#[cfg(test)]
mod tests;
