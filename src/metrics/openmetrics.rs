//! Floor L4 (`metrics`). `replay --openmetrics FILE`: the whole registry, snapshotted every
//! `--openmetrics-interval-secs` of *packet time* and written in the
//! OpenMetrics text format with each sample stamped with that packet time, so
//! that `promtool tsdb create-blocks-from openmetrics FILE DIR` backfills an
//! investigated capture and the dashboard shows it when it happened.
//!
//! - When: the capture thread calls [`Recorder::snapshot`] before the first
//!   frame at or past each interval boundary (boundaries are multiples of the
//!   interval in Unix time), after handing every worker its partial batch and
//!   waiting until each has accounted it (a barrier, so worker counters are
//!   exact: a snapshot stamped `B` counts exactly the packets before `B`). One
//!   snapshot stamped at the first packet (all zeros) and one at the last
//!   packet, after every thread finished (equal to the summary), frame the
//!   run. A gap in the capture longer than the interval gets two snapshots: at
//!   the boundary after its start and at the boundary before its end (the
//!   same values; Prometheus shows no data in between when the gap is longer
//!   than its 5-minute lookback, which is what happened on the wire).
//! - Alerts: the analysis thread releases alerts only once every worker is a
//!   reorder slack past them, so its registry counters lag packet time.
//!   Instead, `zonewatch_alerts_total` and `zonewatch_dos_episodes_active` are
//!   rebuilt from the alert lines themselves ([`Recorder::alert`], fed by a
//!   tee of the alert sink), by each line's `timestamp`: a snapshot at `T`
//!   counts the lines stamped at or before `T`. The last snapshot counts every
//!   line, as the registry does. Without `--alerts` nothing is analysed and
//!   these families have no series (as on `/metrics`).
//! - Memory: snapshots are kept until the end (OpenMetrics wants each family
//!   once, so all timestamps of a family are written together). At most
//!   [`MAX_SNAPSHOTS`] interval snapshots are kept (≈ 2.3 days of packet time
//!   at the default 10 s); later ones are counted and skipped, the last one is
//!   always kept.
//! - Summaries (latency, batch work) are wall-time measurements merged every
//!   200 ms: their values at a packet time are only indicative.

use super::{Metrics, M};
use prometheus::proto::{MetricFamily, MetricType};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// Default `--openmetrics-interval-secs`.
pub const DEFAULT_INTERVAL_SECS: u64 = 10;

/// Interval snapshots kept (see the module docs).
pub const MAX_SNAPSHOTS: usize = 20_000;

/// One sample point of a series.
#[derive(Clone, Debug, PartialEq)]
enum Point {
    Value(f64),
    Summary {
        quantiles: Box<[(f64, f64)]>,
        sum: f64,
        count: u64,
    },
}

/// One family: metadata and every series' points, by rendered label set.
#[derive(Debug)]
struct Family {
    help: String,
    kind: MetricType,
    series: BTreeMap<String, Vec<(u64, Point)>>,
}

/// Alert lines seen, by (kind, severity, src_zone, dst_zone), with their time.
#[derive(Debug, Default)]
struct AlertLog {
    lines: Vec<(u64, [String; 4])>,
}

#[derive(Debug, Default)]
struct Store {
    families: BTreeMap<String, Family>,
    /// Timestamps (ms) of the snapshots taken, in order.
    stamps: Vec<u64>,
    skipped: u64,
    alerts: AlertLog,
}

/// Collects the snapshots of one replay and writes them (module docs).
pub struct Recorder {
    metrics: Arc<Metrics>,
    interval_ns: u64,
    store: Mutex<Store>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("interval_ns", &self.interval_ns)
            .finish()
    }
}

/// What [`Recorder::write`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub snapshots: usize,
    /// Interval snapshots skipped past [`MAX_SNAPSHOTS`].
    pub skipped: u64,
    pub samples: u64,
}

/// Families rebuilt from the alert lines rather than snapshotted.
fn from_alerts(name: &str) -> bool {
    name == M::Alerts.def().name || name == M::DosEpisodesActive.def().name
}

impl Recorder {
    /// Snapshots of `metrics` every `interval_secs` (at least 1) of packet time.
    pub fn new(metrics: Arc<Metrics>, interval_secs: u64) -> Recorder {
        Recorder {
            metrics,
            interval_ns: interval_secs.max(1).saturating_mul(1_000_000_000),
            store: Mutex::new(Store::default()),
        }
    }

    /// The snapshot interval in nanoseconds of packet time.
    pub fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// Snapshot the registry, stamped `at_ns` (packet time). A stamp not
    /// after the previous one (same millisecond) replaces its values.
    /// `last` = the final snapshot (never skipped).
    pub fn snapshot(&self, at_ns: u64, last: bool) {
        let families = self.metrics.registry.gather();
        let Ok(mut s) = self.store.lock() else { return };
        let ms = at_ns / 1_000_000;
        let prev = s.stamps.last().copied();
        let replaces = prev.is_some_and(|p| ms <= p);
        if !replaces {
            if !last && s.stamps.len() >= MAX_SNAPSHOTS {
                s.skipped += 1;
                return;
            }
            s.stamps.push(ms);
        }
        let ms = if replaces { prev.unwrap_or(ms) } else { ms };
        for f in &families {
            if from_alerts(f.name()) {
                continue;
            }
            record(&mut s.families, f, ms, if replaces { None } else { prev });
        }
    }

    /// An alert line was written (the tee in front of `--alerts`).
    pub fn alert(&self, a: &crate::alert::Alert) {
        let ns = a.timestamp;
        let labels = [
            a.kind.to_string(),
            a.severity.as_str().to_string(),
            a.src_zone.clone().unwrap_or_else(|| super::NO_ZONE.into()),
            a.dst_zone.clone().unwrap_or_else(|| super::NO_ZONE.into()),
        ];
        if let Ok(mut s) = self.store.lock() {
            s.alerts.lines.push((ns / 1_000_000, labels));
        }
    }

    /// Write every family, grouped, then `# EOF`.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<Written> {
        let mut s = self
            .store
            .lock()
            .map_err(|_| io::Error::other("openmetrics store poisoned"))?;
        let alert_families = alert_families(&s.alerts, &s.stamps);
        s.families.extend(alert_families);
        let mut samples = 0u64;
        let mut buf = String::with_capacity(64 * 1024);
        for (name, f) in &s.families {
            samples += write_family(&mut buf, name, f);
            out.write_all(buf.as_bytes())?;
            buf.clear();
        }
        out.write_all(b"# EOF\n")?;
        Ok(Written {
            snapshots: s.stamps.len(),
            skipped: s.skipped,
            samples,
        })
    }
}

/// Append family `f` of one snapshot at `ms`; a counter series first seen
/// after the first snapshot gets a 0 at the previous one (`prev`), so its
/// first increase shows where it happened.
fn record(families: &mut BTreeMap<String, Family>, f: &MetricFamily, ms: u64, prev: Option<u64>) {
    let fam = families
        .entry(f.name().to_string())
        .or_insert_with(|| Family {
            help: f.help().to_string(),
            kind: f.get_field_type(),
            series: BTreeMap::new(),
        });
    for m in f.get_metric() {
        let mut labels = String::new();
        for (i, l) in m.get_label().iter().enumerate() {
            if i > 0 {
                labels.push(',');
            }
            let _ = write!(labels, "{}=\"{}\"", l.name(), escape(l.value()));
        }
        let point = match fam.kind {
            MetricType::COUNTER => Point::Value(m.get_counter().get_value()),
            MetricType::GAUGE => Point::Value(m.get_gauge().get_value()),
            MetricType::SUMMARY => {
                let s = m.get_summary();
                Point::Summary {
                    quantiles: s
                        .get_quantile()
                        .iter()
                        .map(|q| (q.quantile(), q.value()))
                        .collect(),
                    sum: s.sample_sum(),
                    count: s.sample_count(),
                }
            }
            _ => continue,
        };
        let kind = fam.kind;
        let points = fam.series.entry(labels).or_insert_with(|| match prev {
            Some(p) if kind == MetricType::COUNTER => vec![(p, Point::Value(0.0))],
            _ => Vec::new(),
        });
        match points.last_mut() {
            Some(last) if last.0 >= ms => last.1 = point,
            _ => points.push((ms, point)),
        }
    }
}

/// `zonewatch_alerts_total` and `zonewatch_dos_episodes_active` at every
/// snapshot, from the alert lines (module docs).
fn alert_families(log: &AlertLog, stamps: &[u64]) -> Vec<(String, Family)> {
    let mut lines: Vec<&(u64, [String; 4])> = log.lines.iter().collect();
    lines.sort_by_key(|l| l.0);
    let mut alerts = Family {
        help: M::Alerts.def().help.to_string(),
        kind: MetricType::COUNTER,
        series: BTreeMap::new(),
    };
    let mut dos = Family {
        help: M::DosEpisodesActive.def().help.to_string(),
        kind: MetricType::GAUGE,
        series: BTreeMap::new(),
    };
    if log.lines.is_empty() {
        return Vec::new();
    }
    let names = M::Alerts.def().labels;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for l in &lines {
        counts.entry(label_set(names, &l.1)).or_insert(0);
    }
    let mut next = 0usize;
    let mut open = 0i64;
    for (i, &ms) in stamps.iter().enumerate() {
        let last = i + 1 == stamps.len();
        while let Some(l) = lines.get(next).filter(|l| last || l.0 <= ms) {
            *counts.entry(label_set(names, &l.1)).or_insert(0) += 1;
            match l.1[0].as_str() {
                "dos_start" => open += 1,
                "dos_end" => open -= 1,
                _ => {}
            }
            next += 1;
        }
        for (k, v) in &counts {
            alerts
                .series
                .entry(k.clone())
                .or_default()
                .push((ms, Point::Value(*v as f64)));
        }
        dos.series
            .entry(String::new())
            .or_default()
            .push((ms, Point::Value(open.max(0) as f64)));
    }
    vec![
        (M::Alerts.def().name.to_string(), alerts),
        (M::DosEpisodesActive.def().name.to_string(), dos),
    ]
}

fn label_set(names: &[&str], values: &[String]) -> String {
    let mut s = String::new();
    for (i, (n, v)) in names.iter().zip(values).enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{n}=\"{}\"", escape(v));
    }
    s
}

/// OpenMetrics escaping of label values and help text.
fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// A sample line: `name{labels[,extra]} value timestamp`.
fn sample(buf: &mut String, name: &str, labels: &str, extra: &str, v: &str, ms: u64) {
    buf.push_str(name);
    if !labels.is_empty() || !extra.is_empty() {
        buf.push('{');
        buf.push_str(labels);
        if !labels.is_empty() && !extra.is_empty() {
            buf.push(',');
        }
        buf.push_str(extra);
        buf.push('}');
    }
    let _ = writeln!(buf, " {v} {}.{:03}", ms / 1000, ms % 1000);
}

/// One family in OpenMetrics: counters are typed under the name without
/// `_total` (their samples keep it); samples grouped by series, in time order.
fn write_family(buf: &mut String, name: &str, f: &Family) -> u64 {
    let (family, kind) = match f.kind {
        MetricType::COUNTER => match name.strip_suffix("_total") {
            Some(base) => (base, "counter"),
            // Not a valid OpenMetrics counter name: keep the name, untyped.
            None => (name, "unknown"),
        },
        MetricType::GAUGE => (name, "gauge"),
        MetricType::SUMMARY => (name, "summary"),
        _ => (name, "unknown"),
    };
    let _ = writeln!(buf, "# TYPE {family} {kind}");
    let _ = writeln!(buf, "# HELP {family} {}", escape(&f.help));
    let mut n = 0;
    for (labels, points) in &f.series {
        for (ms, p) in points {
            match p {
                Point::Value(v) => {
                    sample(buf, name, labels, "", &num(*v), *ms);
                    n += 1;
                }
                Point::Summary {
                    quantiles,
                    sum,
                    count,
                } => {
                    for (q, v) in quantiles.iter() {
                        let extra = format!("quantile=\"{}\"", num(*q));
                        sample(buf, name, labels, &extra, &num(*v), *ms);
                    }
                    sample(buf, &format!("{name}_sum"), labels, "", &num(*sum), *ms);
                    sample(
                        buf,
                        &format!("{name}_count"),
                        labels,
                        "",
                        &count.to_string(),
                        *ms,
                    );
                    n += quantiles.len() as u64 + 2;
                }
            }
        }
    }
    n
}

/// The `--alerts` sink with every line also given to a [`Recorder`].
pub struct Tee {
    pub inner: Box<dyn crate::sink::AlertSink>,
    pub recorder: Arc<Recorder>,
}

impl crate::sink::AlertSink for Tee {
    fn alert(&mut self, a: &crate::alert::Alert) -> io::Result<()> {
        self.recorder.alert(a);
        self.inner.alert(a)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Recorder {
        Recorder::new(Arc::new(Metrics::new(1).unwrap()), 1)
    }

    fn text(r: &Recorder) -> String {
        let mut v = Vec::new();
        r.write(&mut v).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn families_once_grouped_by_series_stamped_in_seconds() {
        let r = rec();
        let c = r.metrics.counter(M::FlowsCreated, &[]);
        r.snapshot(1_700_000_000_000_000_000, false);
        c.inc_by(3);
        r.snapshot(1_700_000_001_000_000_000, false);
        c.inc_by(2);
        // Same millisecond: replaces the values of the previous snapshot.
        r.snapshot(1_700_000_001_000_400_000, true);
        let t = text(&r);
        assert_eq!(
            t.matches("# TYPE zonewatch_flows_created counter\n")
                .count(),
            1
        );
        assert!(
            t.contains(
                "zonewatch_flows_created_total 0 1700000000.000\nzonewatch_flows_created_total 5 1700000001.000\n"
            ),
            "{t}"
        );
        assert!(t.ends_with("# EOF\n"));
        assert!(t.contains(
            "zonewatch_packet_verdict_latency_seconds{quantile=\"0.5\"} 0 1700000000.000\n"
        ));
        assert!(t.contains("zonewatch_packet_verdict_latency_seconds_count 0 1700000001.000\n"));
        assert!(
            !t.contains("zonewatch_alerts"),
            "no alert series without alerts:\n{t}"
        );
    }

    #[test]
    fn late_counter_series_start_at_zero_at_the_previous_snapshot() {
        let r = rec();
        r.snapshot(5_000_000_000, false);
        r.metrics
            .counter(M::Packets, &["a", "b", "allowed"])
            .inc_by(7);
        r.snapshot(6_000_000_000, true);
        let t = text(&r);
        assert!(
            t.contains("zonewatch_packets_total{dst_zone=\"b\",src_zone=\"a\",verdict=\"allowed\"} 0 5.000\nzonewatch_packets_total{dst_zone=\"b\",src_zone=\"a\",verdict=\"allowed\"} 7 6.000\n"),
            "{t}"
        );
    }

    #[test]
    fn alerts_counted_by_their_own_timestamp_the_last_snapshot_counts_all() {
        let r = rec();
        let mut a = crate::alert::Alert {
            kind: "separation_violation",
            severity: crate::model::Severity::High,
            src_zone: Some("x\"y".into()),
            timestamp: 2_500_000_000,
            ..Default::default()
        };
        r.alert(&a);
        a.timestamp = 9_000_000_000;
        r.alert(&a);
        for s in [1, 2, 3] {
            r.snapshot(s * 1_000_000_000, s == 3);
        }
        let t = text(&r);
        let l = "zonewatch_alerts_total{kind=\"separation_violation\",severity=\"high\",src_zone=\"x\\\"y\",dst_zone=\"-\"}";
        assert!(
            t.contains(&format!("{l} 0 1.000\n{l} 0 2.000\n{l} 2 3.000\n")),
            "{t}"
        );
        assert!(t.contains("zonewatch_dos_episodes_active 0 3.000\n"), "{t}");
    }

    #[test]
    fn interval_snapshots_are_capped_the_last_is_kept() {
        let r = rec();
        for s in 0..MAX_SNAPSHOTS as u64 + 5 {
            r.snapshot((s + 1) * 1_000_000_000, false);
        }
        r.snapshot(u64::MAX / 2, true);
        let w = r.write(&mut io::sink()).unwrap();
        assert_eq!((w.snapshots, w.skipped), (MAX_SNAPSHOTS + 1, 5));
    }
}
