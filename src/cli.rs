//! Floor L6. Command-line flags (clap) and their validation into the types the library uses.
//! Raw flags are checked once here; the rest of the crate sees validated values.

use crate::policy::Severity;
use crate::sink::{AlertSink, OpenCx, OpenError, SinkSpec, SINKS};
use clap::{Arg, ArgAction, ArgGroup, ArgMatches, Args, FromArgMatches, Parser, Subcommand};
use std::ffi::{OsStr, OsString};
use std::num::NonZeroUsize;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "zonewatch", version, about = "Network sensor for three-tier (三層の対策) municipal networks", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay pcap/pcapng files (merged by timestamp) through the pipeline.
    Replay(ReplayArgs),
    /// Capture live from an interface through libpcap.
    Run(RunArgs),
    /// Check a zone-policy rules file: errors (exit 2), or warnings and the zone × zone matrix.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Rules file (TOML, see rules/README.md).
    #[arg(value_name = "RULES")]
    pub rules: PathBuf,
    /// Dry run: replay these capture files with the rules and list what would
    /// alert, grouped by zone pair (nothing is written).
    #[arg(long, value_name = "FILE.pcap", num_args = 1..)]
    pub against: Vec<PathBuf>,
    /// List every allow rule (on or off) with what it rests on: primary text
    /// (document and quote), practice (who does it) or unverified, and the
    /// options a site can turn on; instead of the zone matrix.
    #[arg(long, conflicts_with = "against")]
    pub sources: bool,
    #[command(flatten)]
    pub alerts: AlertArgs,
    /// With --against: exit 1 when the dry run would raise an alert of this
    /// severity or higher (info, low, medium, high, critical); 0 otherwise.
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity, requires = "against")]
    pub fail_on: Option<Severity>,
    /// With --against: keep VLAN ids in the flow key (as `replay --vlan-in-flow-key`).
    #[arg(long, requires = "against")]
    pub vlan_in_flow_key: bool,
}

/// How `separation_violation` alerts fold (see `alert` module docs).
#[derive(Debug, Args, Clone, Copy)]
pub struct AlertArgs {
    /// Repeats of the same (initiator, responder, protocol, responder port, rule)
    /// starting within this many seconds (packet time) of the first fold into one
    /// alert with a count; the alert is written when the window closes. 0 = one
    /// alert per violating flow, written at once.
    #[arg(long, default_value_t = 60, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub alert_window_secs: u64,
    /// Alert groups one initiator may open per zone pair and window; further
    /// targets fold into one alert with `folded_by: "source"` (0 = no cap).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub alert_max_per_source: u32,
}

impl AlertArgs {
    pub fn fold_config(&self) -> crate::alert::fold::FoldConfig {
        crate::alert::fold::FoldConfig {
            window_ns: self.alert_window_secs * 1_000_000_000,
            max_per_source: self.alert_max_per_source,
            ..Default::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Capture files (pcap or pcapng, detected by magic number).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Pace the replay by packet timestamps: 1.0 = original speed, 10 = ten times faster.
    /// Default: as fast as possible.
    #[arg(long, value_name = "X", value_parser = parse_speed)]
    pub speed: Option<f64>,
    /// After the replay ends, keep serving --metrics-listen until SIGINT or
    /// SIGTERM (the summary is written first).
    #[arg(long, requires = "metrics_listen")]
    pub hold: bool,
    /// Write the metrics to FILE ('-' = stdout) in the OpenMetrics text format:
    /// the registry every --openmetrics-interval-secs of packet time, each sample
    /// stamped with that packet time, for `promtool tsdb create-blocks-from
    /// openmetrics FILE DIR` (backfill: the dashboard shows the capture when it
    /// happened). Needs no --metrics-listen.
    #[arg(long, value_name = "FILE")]
    pub openmetrics: Option<PathBuf>,
    /// Packet-time seconds between two --openmetrics snapshots.
    #[arg(long, default_value_t = crate::metrics::openmetrics::DEFAULT_INTERVAL_SECS, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400), requires = "openmetrics")]
    pub openmetrics_interval_secs: u64,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interface to capture on. KIND::IFACE picks the live source (known:
    /// pcap, through libpcap, the default).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub iface: String,
    /// Do not put the interface in promiscuous mode.
    #[arg(long)]
    pub no_promisc: bool,
    /// Bytes captured per packet.
    #[arg(long, default_value_t = 262_144, value_name = "BYTES", value_parser = clap::value_parser!(i32).range(64..=262_144))]
    pub snaplen: i32,
    /// Kernel capture buffer size.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES", value_parser = clap::value_parser!(i32).range(65_536..))]
    pub buffer_bytes: i32,
    /// BPF capture filter (tcpdump syntax).
    #[arg(long, value_name = "BPF")]
    pub filter: Option<String>,
    /// Stop after this many packets.
    #[arg(short = 'c', long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration_secs: Option<u64>,
    /// Drop root for good once set up: the capture is opened, then the output
    /// files (0640), and the metrics endpoint is already bound, all as root;
    /// then the supplementary groups become just NAME's primary group and the
    /// real, effective and saved uid/gid become NAME's. Needs root; unknown
    /// users exit 2. SIGHUP then reloads --rules as NAME. Without root, grant
    /// the binary `setcap cap_net_raw,cap_net_admin=eip` instead.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Worker threads (flow tables).
    #[arg(short = 'w', long, default_value = "2", value_name = "N")]
    pub workers: NonZeroUsize,
    /// Write one JSON line per finished flow to FILE ('-' = stdout). `run`
    /// appends to an existing FILE, `replay` replaces it; SIGHUP reopens it
    /// (logrotate).
    #[arg(long, value_name = "FILE")]
    pub flows: Option<PathBuf>,
    /// Write the JSON summary to FILE ('-' = stdout).
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Write the run report (JSON, docs/report.md) to FILE ('-' = stdout):
    /// totals, the zone × zone matrix with verdicts, alerts by kind and
    /// severity, top talkers per zone pair, capture anomalies (early stops,
    /// decode failures, drops, time gaps). Only one output may be '-'.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Silences in packet time longer than this are listed as report anomalies.
    #[arg(long, default_value_t = 60, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub report_gap_secs: u64,
    /// Language of the human summary: en, or ja (Japanese, for municipal
    /// staff). JSON outputs keep their English keys.
    #[arg(long, value_enum, default_value_t = crate::report::Lang::En, value_name = "LANG")]
    pub lang: crate::report::Lang,
    /// Zone-policy rules file (TOML, see rules/README.md): every flow gets a verdict
    /// (flow lines gain src_zone, dst_zone, verdict, rule, severity; the summary a
    /// policy section). Invalid rules: errors as `zonewatch check` prints them, exit 2.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// The alert sinks (`--alerts FILE` and every other entry of `crate::sink::SINKS`).
    #[command(flatten)]
    pub sinks: SinkArgs,
    #[command(flatten)]
    pub alert: AlertArgs,
    /// Exit 1 (instead of 0) when the run raised an alert of this severity or
    /// higher: info, low, medium, high, critical. The alerts are computed
    /// even without --alerts (then counted, not written). Errors exit 2.
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    pub fail_on: Option<Severity>,
    /// Name of this sensor, written as `host` in every alert line.
    /// Default: the machine's host name.
    #[arg(long, value_name = "NAME")]
    pub sensor: Option<String>,
    #[command(flatten)]
    pub evidence: EvidenceArgs,
    /// Flow-table cap per worker; beyond it the oldest half-open, then idle flows are evicted.
    #[arg(long, default_value = "1048576", value_name = "N")]
    pub max_flows: NonZeroUsize,
    /// Keep VLAN ids in the flow key: the same 5-tuple on two VLANs is two
    /// flows. For sites that reuse addresses across VLANs. By default one
    /// connection is one flow however its two directions are tagged (a router
    /// trunk tags each direction with the segment it entered from).
    #[arg(long)]
    pub vlan_in_flow_key: bool,
    /// Packets per batch handed to a worker.
    #[arg(long, default_value = "256", value_name = "N")]
    pub batch_size: NonZeroUsize,
    /// Batches queued per worker.
    #[arg(long, default_value = "64", value_name = "N")]
    pub queue_depth: NonZeroUsize,
    /// No human summary and no progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Serve Prometheus metrics on http://ADDR/metrics (IP:PORT; port 0 = any
    /// free port; the bound address is printed on stderr). `run` serves on
    /// 127.0.0.1:9464 unless given another ADDR or `none` (or `off`); `replay`
    /// serves only when given. An address that cannot be bound (port taken)
    /// is an error (exit 2): run without metrics only by saying `none`.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub metrics_listen: Option<Listen>,
}

/// `--evidence DIR`: a pcap per alert (see docs/alerts.md, "Evidence files").
#[derive(Args, Clone, Debug)]
pub struct EvidenceArgs {
    /// Write, per alert, DIR/<alert id>.pcap with the packets of its flows:
    /// up to --evidence-packets per flow from before the detection, then what
    /// follows for --evidence-follow-secs, within the byte caps. The alert
    /// line names its file (`evidence_pcap`). DIR is created if missing.
    #[arg(long, value_name = "DIR", requires = sink_required())]
    pub evidence: Option<PathBuf>,
    /// Packets kept per flow for evidence before a detection (the ring).
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000), requires = "evidence")]
    pub evidence_packets: u64,
    /// Packet-time seconds a file keeps collecting after its alert is written.
    #[arg(long, default_value_t = 10, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=86_400), requires = "evidence")]
    pub evidence_follow_secs: u64,
    /// Bytes one evidence file may hold (pcap headers included).
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(64..), requires = "evidence")]
    pub evidence_max_bytes: u64,
    /// Bytes all evidence files of the run may hold together; alerts past it get no file (counted).
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(64..), requires = "evidence")]
    pub evidence_total_bytes: u64,
    /// Memory for the per-flow rings; beyond it the least recently active flows' rings go first (counted).
    #[arg(long, default_value_t = 128 << 20, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1 << 16..), requires = "evidence")]
    pub evidence_buffer_bytes: u64,
}

/// Clap group of every alert-sink flag (`--evidence` needs one of them).
const SINK_GROUP: &str = "alert_sinks";

/// What `--evidence` requires: any alert sink. With one sink in the table,
/// its flag itself, so clap's error names it plainly (`--alerts <FILE>`).
fn sink_required() -> &'static str {
    match SINKS {
        [one] => one.flag,
        _ => SINK_GROUP,
    }
}

/// The alert-sink flags given, built from the registry ([`crate::sink::SINKS`]):
/// one flag per entry, in the table's order, so a new sink needs no edit here.
#[derive(Clone, Debug, Default)]
pub struct SinkArgs {
    given: Vec<(&'static SinkSpec, OsString)>,
}

impl SinkArgs {
    /// Add a flag per entry of `table` to `cmd`.
    fn augment_with(cmd: clap::Command, table: &'static [SinkSpec]) -> clap::Command {
        let mut cmd = cmd;
        for spec in table {
            cmd = cmd.arg(
                Arg::new(spec.flag)
                    .long(spec.flag)
                    .value_name(spec.value_name)
                    .help(spec.help)
                    .action(ArgAction::Set)
                    .value_parser(clap::value_parser!(OsString)),
            );
        }
        cmd.group(
            ArgGroup::new(SINK_GROUP)
                .args(table.iter().map(|s| s.flag))
                .multiple(true),
        )
    }

    /// The flags of `table` found in `m`.
    fn from_matches_with(m: &ArgMatches, table: &'static [SinkSpec]) -> SinkArgs {
        let given = table
            .iter()
            .filter_map(|spec| {
                m.try_get_one::<OsString>(spec.flag)
                    .ok()
                    .flatten()
                    .map(|v| (spec, v.clone()))
            })
            .collect();
        SinkArgs { given }
    }

    /// At least one alert sink is given (the detectors run, the summary has
    /// an alert section).
    pub fn any(&self) -> bool {
        !self.given.is_empty()
    }

    /// `--FLAG` of the first sink given that writes to stdout.
    pub fn stdout_flag(&self) -> Option<String> {
        self.given
            .iter()
            .find(|(spec, target)| spec.writes_stdout(target))
            .map(|(spec, _)| format!("--{}", spec.flag))
    }

    /// Open every sink given, in the table's order (before `run --user`
    /// drops root).
    pub fn open(&self, cx: &OpenCx) -> Result<Vec<Box<dyn AlertSink>>, OpenError> {
        self.given
            .iter()
            .map(|(spec, target)| (spec.open)(OsStr::new(target), cx))
            .collect()
    }
}

impl FromArgMatches for SinkArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(SinkArgs::from_matches_with(m, SINKS))
    }
    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = SinkArgs::from_matches_with(m, SINKS);
        Ok(())
    }
}

impl Args for SinkArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        SinkArgs::augment_with(cmd, SINKS)
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        SinkArgs::augment_with(cmd, SINKS)
    }
}

/// Where `--metrics-listen` serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// `none` (or `off`): no endpoint.
    Off,
    Addr(std::net::SocketAddr),
}

fn parse_listen(s: &str) -> Result<Listen, String> {
    if s == "none" || s == "off" {
        return Ok(Listen::Off);
    }
    s.parse()
        .map(Listen::Addr)
        .map_err(|_| format!("'{s}' is not IP:PORT (e.g. 127.0.0.1:9464) or 'none'"))
}

/// `--fail-on`: one of the policy's severities, by name.
fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| {
        format!("'{s}' is not a severity; expected one of info, low, medium, high, critical")
    })
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("speed must be a positive number, got {s}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{OpenMode, OutputSet};
    use crate::sink::{Collect, JsonLines};

    /// A sink defined only here, to show that a table entry alone gives a
    /// flag, and that several sinks open together.
    fn open_memory(_: &OsStr, _: &OpenCx) -> Result<Box<dyn AlertSink>, OpenError> {
        Ok(Box::new(Collect::default()))
    }

    static TABLE: &[SinkSpec] = &[
        SinkSpec {
            flag: "alerts-a",
            value_name: "FILE",
            help: "first",
            dash_is_stdout: true,
            open: |_, _| Ok(Box::new(JsonLines(Vec::new()))),
        },
        SinkSpec {
            flag: "memory",
            value_name: "NAME",
            help: "second",
            dash_is_stdout: false,
            open: open_memory,
        },
    ];

    fn parse(args: &[&str]) -> Result<SinkArgs, clap::Error> {
        let cmd = SinkArgs::augment_with(clap::Command::new("t"), TABLE);
        cmd.try_get_matches_from(std::iter::once("t").chain(args.iter().copied()))
            .map(|m| SinkArgs::from_matches_with(&m, TABLE))
    }

    #[test]
    fn every_table_entry_is_a_flag_and_several_open_together() {
        let none = parse(&[]).expect("no sink");
        assert!(!none.any());
        let both = parse(&["--memory", "-", "--alerts-a", "-"]).expect("two sinks");
        assert!(both.any());
        // `-` is stdout for the first entry only; the flag keeps its dashes.
        assert_eq!(both.stdout_flag().as_deref(), Some("--alerts-a"));
        let set = OutputSet::default();
        let cx = OpenCx {
            set: &set,
            mode: OpenMode::Truncate,
        };
        assert_eq!(both.open(&cx).expect("open").len(), 2);
        let memory = parse(&["--memory", "-"]).expect("one sink");
        assert_eq!(memory.stdout_flag(), None);
        assert!(parse(&["--nope", "x"]).is_err());
    }

    #[test]
    fn the_product_table_gives_replay_its_alerts_flag() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let replay = cmd.find_subcommand("replay").expect("replay");
        for spec in SINKS {
            assert!(
                replay
                    .get_arguments()
                    .any(|a| a.get_long() == Some(spec.flag)),
                "--{} missing",
                spec.flag
            );
        }
        Cli::command().debug_assert();
    }
}
