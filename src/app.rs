//! Floor L6. Runs a parsed command: opens the source and outputs, installs signal
//! handlers, runs the pipeline, writes the summary. `main.rs` only maps the
//! result to an exit code.

use crate::alert::{AlertSink, Collect, Discard, JsonLines};
use crate::capture::{CaptureError, FileSource, LiveConfig, LiveSource, Paced, PacketSource};
use crate::cli::{CheckArgs, Cli, Command, CommonArgs, Listen};
use crate::detect::DetectConfig;
use crate::metrics::openmetrics::{Recorder, Tee};
use crate::metrics::server::MetricsServer;
use crate::metrics::Metrics;
use crate::output::{OpenMode, Output, OutputSet};
use crate::pipeline::{self, Outputs, PipelineConfig, PipelineError, Progress};
use crate::policy::{Diagnostic, LoadError, Policy, Severity};
use crate::summary::{AlertSummary, PolicySummary, Summary};
use arc_swap::ArcSwap;
use std::fs::OpenOptions;
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("{path}: {source}")]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("installing signal handlers: {0}")]
    Signal(io::Error),
    #[error(transparent)]
    Policy(#[from] crate::policy::LoadError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::server::ServerError),
    #[error("--metrics-listen {addr}{}: {detail}; port {} is taken or cannot be bound here. Choose a free address with --metrics-listen IP:PORT, or run without metrics with --metrics-listen none", if *.default { " (the default of `run`)" } else { "" }, .addr.port())]
    MetricsListen {
        addr: std::net::SocketAddr,
        /// The address was `run`'s default, not given.
        default: bool,
        detail: String,
    },
    #[error("--evidence {}: cannot create files in it: {source}; give a directory zonewatch can write to", .dir.display())]
    EvidenceDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    MetricsSetup(#[from] crate::metrics::MetricsError),
    #[error(transparent)]
    User(#[from] privs::UserError),
    #[error("{first} - and {second} - would both write to stdout; give one of them a file")]
    StdoutTwice {
        first: &'static str,
        second: &'static str,
    },
}

/// Exit status of a successful run.
pub const EXIT_OK: i32 = 0;

/// Exit status of a successful run that raised an alert at or above `--fail-on`.
pub const EXIT_ALERTS: i32 = 1;

/// Exit status after a second interrupt (what was computed is written, and
/// stderr says what was not).
pub const EXIT_INTERRUPTED: i32 = 130;

/// Alerts at or above `min`, from counts indexed by `Severity as usize`.
fn at_or_above(by_severity: &[u64; 5], min: Severity) -> u64 {
    by_severity.iter().skip(min as usize).sum()
}

/// The exit status `--fail-on` asks for, with a note on stderr when it fails.
fn fail_on_status(min: Option<Severity>, by_severity: &[u64; 5], quiet: bool) -> i32 {
    let Some(min) = min else { return EXIT_OK };
    let n = at_or_above(by_severity, min);
    if n == 0 {
        return EXIT_OK;
    }
    if !quiet {
        eprintln!(
            "zonewatch: {n} alert{} at or above {} (--fail-on): exit {EXIT_ALERTS}",
            if n == 1 { "" } else { "s" },
            min.as_str()
        );
    }
    EXIT_ALERTS
}

pub fn run(cli: Cli) -> Result<i32, AppError> {
    let control = Control::start()?;
    let result = run_with(cli, &control);
    control.finish();
    result
}

fn run_with(cli: Cli, control: &Control) -> Result<i32, AppError> {
    let stop = control.stop.clone();
    match cli.command {
        Command::Check(args) if !args.against.is_empty() => check_against(&args, &stop),
        Command::Check(args) => check(&args.rules, args.sources),
        Command::Replay(args) => {
            let Some(rules) = load_rules(args.common.rules.as_deref())? else {
                return Ok(EXIT_RULES_INVALID);
            };
            let detect = rules.as_ref().map(|r| r.detect.clone());
            let policy = rules.map(|r| r.policy);
            let files = FileSource::open_named(&named_inputs(&args.files))?;
            let om_out = match &args.openmetrics {
                Some(p) => Some((p.clone(), open_output(p)?)),
                None => None,
            };
            // A replay serves metrics only when asked (`--metrics-listen`).
            let serving = start_metrics(&args.common, None, policy.as_deref())?;
            // `--openmetrics` snapshots the registry, served or not.
            let metrics = match (&serving, &om_out) {
                (Some(s), _) => Some(s.metrics.clone()),
                (None, Some(_)) => {
                    let m = Arc::new(Metrics::new(args.common.workers.get())?);
                    set_policy_info(&m, args.common.rules.as_deref(), policy.as_deref());
                    Some(m)
                }
                (None, None) => None,
            };
            let recorder = match (&metrics, &om_out) {
                (Some(m), Some(_)) => Some(Arc::new(Recorder::new(
                    m.clone(),
                    args.openmetrics_interval_secs,
                ))),
                _ => None,
            };
            let mut cfg = base_config(&args.common, policy, detect);
            cfg.sources = files.labels();
            cfg.metrics = metrics;
            cfg.openmetrics = recorder.clone();
            cfg.hurry = Some(control.hurry.clone());
            // A replay is a reproducible investigation: its files hold this
            // run only (truncated), unlike `run`'s, which append.
            let outputs = OpenedOutputs::open(&args.common, &control.outputs, OpenMode::Truncate)?;
            // Concrete source types: the reader inlines into the capture loop.
            let code = match args.speed {
                Some(speed) => execute(
                    Paced::new(files, speed, stop.clone()),
                    outputs,
                    &args.common,
                    cfg,
                    &stop,
                    None,
                ),
                None => execute(files, outputs, &args.common, cfg, &stop, None),
            }?;
            if let (Some(r), Some((path, mut out))) = (recorder, om_out) {
                let w = r
                    .write(&mut out)
                    .and_then(|w| out.flush().map(|()| w))
                    .map_err(|source| AppError::Output { path, source })?;
                if w.skipped > 0 {
                    eprintln!(
                        "zonewatch: warning: --openmetrics kept {} snapshots, skipped {} past the cap; use a longer --openmetrics-interval-secs",
                        w.snapshots, w.skipped
                    );
                }
            }
            if let Some(s) = serving {
                if args.hold {
                    eprintln!(
                        "zonewatch: replay done; serving http://{}/metrics until SIGINT/SIGTERM (--hold)",
                        s.server.addr()
                    );
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                s.server.stop();
            }
            Ok(code)
        }
        Command::Run(args) => {
            let Some(loaded) = load_rules(args.common.rules.as_deref())? else {
                return Ok(EXIT_RULES_INVALID);
            };
            let (policy, detect, rules_text) = match loaded {
                Some(r) => (Some(r.policy), Some(r.detect), Some(r.text)),
                None => (None, None, None),
            };
            // `--user`: look the account up and check we are root before
            // opening anything, so a typo fails at once (exit 2), and while
            // NSS still works as it did for the caller.
            let account = match &args.user {
                Some(name) => Some(privs::Account::lookup(name)?),
                None => None,
            };
            // A live sensor serves metrics unless told `--metrics-listen none`.
            let default: std::net::SocketAddr = crate::metrics::DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 9464)));
            let serving = start_metrics(&args.common, Some(default), policy.as_deref())?;
            let metrics = serving.as_ref().map(|s| s.metrics.clone());
            // SIGHUP also reloads --rules (live only: a replay's verdicts stay
            // reproducible). The handler is installed at start (`Control`),
            // so an early SIGHUP never takes the default action.
            let reloader = match (&args.common.rules, &policy, &detect, rules_text) {
                (Some(path), Some(p), Some(d), Some(text)) => Some(control.set_reload(
                    Reload::new(path.clone(), p.clone(), d.clone(), text, metrics.clone()),
                )),
                _ => None,
            };
            // Order of set-up with privileges: metrics bound (above), capture
            // opened, output files opened, then `--user` drops root for good.
            // Everything that needs root is held as a descriptor by then.
            let opened = open_live(&args, account.as_ref(), &control.outputs);
            let (live, outputs) = match opened {
                Ok(o) => o,
                Err(e) => {
                    if let Some(s) = serving {
                        s.server.stop();
                    }
                    return Err(e);
                }
            };
            let cfg = PipelineConfig {
                max_frames: args.count,
                max_duration: args.duration_secs.map(Duration::from_secs),
                policy_updates: reloader.as_ref().map(|r| r.cell.clone()),
                metrics,
                sources: vec![args.iface.clone()],
                hurry: Some(control.hurry.clone()),
                ..base_config(&args.common, policy, detect)
            };
            let result = execute(live, outputs, &args.common, cfg, &stop, reloader);
            if let Some(s) = serving {
                s.server.stop();
            }
            result
        }
    }
}

/// `run`'s privileged steps, in order: open the capture, open the output
/// files, drop to `account` (`--user`) if given.
fn open_live(
    args: &crate::cli::RunArgs,
    account: Option<&privs::Account>,
    set: &OutputSet,
) -> Result<(LiveSource, OpenedOutputs), AppError> {
    let live = LiveSource::open(&LiveConfig {
        iface: args.iface.clone(),
        promisc: !args.no_promisc,
        snaplen: args.snaplen,
        buffer_bytes: args.buffer_bytes,
        filter: args.filter.clone(),
        timeout_ms: 100,
    })?;
    // As tcpdump does: the capture is open from here on (scripts and tests
    // wait for this line).
    eprintln!(
        "zonewatch: listening on {}, link-type {}, snaplen {} bytes",
        args.iface,
        live.link_type().as_str(),
        args.snaplen
    );
    // A live sensor appends: a restart (systemd Restart=on-failure) must not
    // wipe what the last run wrote.
    let outputs = OpenedOutputs::open(&args.common, set, OpenMode::Append)?;
    if let Some(a) = account {
        // Evidence files are created later, as the account: it owns the directory.
        if let Some(dir) = &args.common.evidence.evidence {
            std::os::unix::fs::chown(dir, Some(a.uid), Some(a.gid)).map_err(|source| {
                AppError::Output {
                    path: dir.clone(),
                    source,
                }
            })?;
        }
        a.become_user()?;
        eprintln!(
            "zonewatch: dropped root: now user {} (uid {}, gid {}); root cannot be regained",
            a.name, a.uid, a.gid
        );
        // Evidence files are created as NAME: check that NAME can.
        if let Some(dir) = &args.common.evidence.evidence {
            check_writable(dir)?;
        }
    }
    Ok((live, outputs))
}

/// Exit status of `check` when the rules have errors.
pub const EXIT_RULES_INVALID: i32 = 2;

/// `zonewatch check RULES`: errors to stderr (exit 2), or the report to stdout (exit 0).
fn check(path: &Path, sources: bool) -> Result<i32, AppError> {
    match crate::detect::load_rules(path) {
        Ok(crate::detect::Rules {
            policy, warnings, ..
        }) => {
            let name = path.display().to_string();
            let report = if sources {
                crate::policy::render_sources(&name, &policy, &warnings)
            } else {
                crate::policy::render_check(&name, &policy, &warnings)
            };
            write_stdout(&report)?;
            Ok(EXIT_OK)
        }
        Err(LoadError::Invalid { errors, warnings }) => {
            print_invalid(&errors, &warnings);
            Ok(EXIT_RULES_INVALID)
        }
        Err(e) => Err(e.into()),
    }
}

/// Every error, then every warning, then the counts, on stderr (as `check`).
fn print_invalid(errors: &[Diagnostic], warnings: &[Diagnostic]) {
    let mut err = io::stderr().lock();
    for d in errors.iter().chain(warnings) {
        let _ = writeln!(err, "{d}");
    }
    let _ = writeln!(
        err,
        "{} error(s), {} warning(s)",
        errors.len(),
        warnings.len()
    );
}

/// Loaded rules: the policy, the `[detect]` thresholds and the text of the
/// file they were loaded from.
struct LoadedRules {
    policy: Arc<Policy>,
    detect: DetectConfig,
    text: String,
}

/// `--rules FILE` of `replay` / `run`: `Some(None)` without the flag,
/// `Some(Some(rules))` when it loads (its warnings go to stderr), `None` when
/// the rules are invalid (errors printed as `check` prints them; exit 2).
fn load_rules(path: Option<&Path>) -> Result<Option<Option<LoadedRules>>, AppError> {
    let Some(path) = path else {
        return Ok(Some(None));
    };
    match crate::detect::load_rules(path) {
        Ok(r) => {
            let mut err = io::stderr().lock();
            for d in &r.warnings {
                let _ = writeln!(err, "{d}");
            }
            Ok(Some(Some(LoadedRules {
                policy: Arc::new(r.policy),
                detect: r.detect,
                text: r.text,
            })))
        }
        Err(LoadError::Invalid { errors, warnings }) => {
            print_invalid(&errors, &warnings);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// A running `/metrics` endpoint and the registry it serves.
struct Serving {
    metrics: Arc<Metrics>,
    server: MetricsServer,
}

/// Start the endpoint `--metrics-listen` asks for (or `default` when the flag
/// is absent), with build and policy info set; `None` = no metrics.
fn start_metrics(
    c: &CommonArgs,
    default: Option<std::net::SocketAddr>,
    policy: Option<&Policy>,
) -> Result<Option<Serving>, AppError> {
    let (addr, asked) = match (&c.metrics_listen, default) {
        (Some(Listen::Off), _) | (None, None) => return Ok(None),
        (Some(Listen::Addr(a)), _) => (*a, true),
        (None, Some(a)) => (a, false),
    };
    let metrics = Arc::new(Metrics::new(c.workers.get())?);
    set_policy_info(&metrics, c.rules.as_deref(), policy);
    // A sensor whose endpoint is taken would run unseen (Prometheus scrapes
    // whoever holds the port, and its SensorDown never fires): refuse to
    // start, default address or not; `--metrics-listen none` is the way to
    // run without metrics.
    let server = match MetricsServer::start(&addr.to_string(), metrics.clone()) {
        Ok(s) => s,
        Err(crate::metrics::server::ServerError::Bind { detail, .. }) => {
            return Err(AppError::MetricsListen {
                addr,
                default: !asked,
                detail,
            })
        }
        Err(e) => return Err(e.into()),
    };
    eprintln!("zonewatch: metrics on http://{}/metrics", server.addr());
    Ok(Some(Serving { metrics, server }))
}

/// `zonewatch_policy_info` for `policy`, loaded from `path` (hashed as it is
/// now), or `"-"` labels without rules.
fn set_policy_info(m: &Metrics, path: Option<&Path>, policy: Option<&Policy>) {
    let (Some(path), Some(p)) = (path, policy) else {
        m.set_policy("-", "-", "-");
        return;
    };
    let sha = std::fs::read(path)
        .map(|b| crate::metrics::sha256_12(&b))
        .unwrap_or_else(|_| "-".into());
    m.set_policy(
        p.site_name.as_deref().unwrap_or("-"),
        p.preset.as_deref().unwrap_or("-"),
        &sha,
    );
}

fn base_config(
    c: &CommonArgs,
    policy: Option<Arc<Policy>>,
    rules_detect: Option<DetectConfig>,
) -> PipelineConfig {
    // With --alerts (or --fail-on, which counts the alerts) the detectors
    // run, with the rules' [detect] thresholds.
    let detect =
        (c.alerts.is_some() || c.fail_on.is_some()).then(|| rules_detect.unwrap_or_default());
    let mut cfg = PipelineConfig {
        detect,
        workers: c.workers,
        batch_size: c.batch_size,
        queue_depth: c.queue_depth,
        policy,
        fold: c.alert.fold_config(),
        ..PipelineConfig::default()
    };
    cfg.flow.max_flows = c.max_flows;
    cfg.flow.vlan_in_key = c.vlan_in_flow_key;
    cfg.sensor = Some(c.sensor.clone().unwrap_or_else(host_name));
    cfg.evidence = c.evidence.evidence.as_ref().map(|dir| {
        let e = &c.evidence;
        crate::evidence::EvidenceConfig {
            dir: dir.clone(),
            ring_packets: usize::try_from(e.evidence_packets).unwrap_or(usize::MAX),
            alert_bytes: e.evidence_max_bytes,
            total_bytes: e.evidence_total_bytes,
            buffer_bytes: e.evidence_buffer_bytes,
            follow_ns: e.evidence_follow_secs.saturating_mul(1_000_000_000),
            // The slowest alert is written a fold window (or a detector's
            // window, at most a few minutes) after its flows were active.
            keep_ns: cfg.fold.window_ns.saturating_add(300_000_000_000),
            ..crate::evidence::EvidenceConfig::default()
        }
    });
    // The report's accumulators run for --report and for the human summary.
    cfg.report_gap_ns =
        (c.report.is_some() || !c.quiet).then(|| c.report_gap_secs.saturating_mul(1_000_000_000));
    cfg
}

/// Replay arguments as (source name, path): `NAME=PATH` names a link (when
/// no file is literally called that), else the file's or directory's name.
fn named_inputs(files: &[PathBuf]) -> Vec<(String, PathBuf)> {
    files
        .iter()
        .map(|p| {
            let split = p
                .to_str()
                .filter(|_| !p.exists())
                .and_then(|s| s.split_once('='))
                .filter(|(name, path)| !name.is_empty() && !name.contains('/') && !path.is_empty());
            match split {
                Some((name, path)) => (name.to_string(), PathBuf::from(path)),
                None => (crate::capture::file::default_label(p), p.clone()),
            }
        })
        .collect()
}

/// The machine's host name (`--sensor` default), or "zonewatch".
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "zonewatch".to_string())
}

/// The `--flows`, `--alerts`, `--summary` and `--report` outputs, opened
/// (created 0640) before the pipeline starts, and before `run --user` drops
/// root. `run` opens them for appending (the summary and the report are
/// replaced when the run ends), `replay` empties them first.
struct OpenedOutputs {
    flows: Option<Output>,
    alerts: Option<Output>,
    summary: Option<Output>,
    report: Option<Output>,
}

impl OpenedOutputs {
    fn open(
        common: &CommonArgs,
        set: &OutputSet,
        mode: OpenMode,
    ) -> Result<OpenedOutputs, AppError> {
        // `--report -` shares stdout with no other machine output.
        if is_stdout(&common.report) {
            let others = [
                ("--flows", &common.flows),
                ("--summary", &common.summary),
                ("--alerts", &common.alerts),
            ];
            if let Some((name, _)) = others.iter().find(|(_, p)| is_stdout(p)) {
                return Err(AppError::StdoutTwice {
                    first: name,
                    second: "--report",
                });
            }
        }
        let open = |p: &Option<PathBuf>| -> Result<Option<Output>, AppError> {
            p.as_deref()
                .map(|p| {
                    set.open(p, mode).map_err(|source| AppError::Output {
                        path: p.to_path_buf(),
                        source,
                    })
                })
                .transpose()
        };
        let flows = open(&common.flows)?;
        let alerts = open(&common.alerts)?;
        let summary = open(&common.summary)?;
        if let Some(dir) = &common.evidence.evidence {
            std::fs::create_dir_all(dir).map_err(|source| AppError::Output {
                path: dir.clone(),
                source,
            })?;
            check_writable(dir)?;
        }
        let report = open(&common.report)?;
        Ok(OpenedOutputs {
            flows,
            alerts,
            summary,
            report,
        })
    }
}

/// `--evidence DIR` must take new files: an alert never names a file that
/// could not be created, so a directory that refuses them is an error at
/// start (exit 2) rather than a run of alerts without evidence.
fn check_writable(dir: &Path) -> Result<(), AppError> {
    let probe = dir.join(format!(".zonewatch-probe-{}", std::process::id()));
    let made = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(crate::output::FILE_MODE)
        .open(&probe);
    match made {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(source) => Err(AppError::EvidenceDir {
            dir: dir.to_path_buf(),
            source,
        }),
    }
}

/// Write `doc` (the summary or the report) over `out`'s content.
fn write_doc(out: &Output, doc: &impl serde::Serialize) -> Result<(), AppError> {
    let path = out.path().unwrap_or_else(|| PathBuf::from("-"));
    let mut bytes = serde_json::to_vec_pretty(doc).map_err(|e| AppError::Output {
        path: path.clone(),
        source: io::Error::from(e),
    })?;
    bytes.push(b'\n');
    out.replace(&bytes)
        .map_err(|source| AppError::Output { path, source })
}

fn execute<S: PacketSource>(
    mut source: S,
    outputs: OpenedOutputs,
    common: &CommonArgs,
    cfg: PipelineConfig,
    stop: &AtomicBool,
    reloads: Option<ReloadCounts>,
) -> Result<i32, AppError> {
    let OpenedOutputs {
        flows,
        alerts,
        summary: summary_out,
        report: report_out,
    } = outputs;
    let flows = flows.map(|o| Box::new(o) as Box<dyn Write + Send>);
    let alerts = alerts.map(|o| Box::new(JsonLines(o)) as Box<dyn AlertSink>);
    // `--openmetrics` counts alert lines by their own time (openmetrics docs).
    let alerts = match (alerts, &cfg.openmetrics) {
        (Some(inner), Some(r)) => Some(Box::new(Tee {
            inner,
            recorder: r.clone(),
        }) as Box<dyn AlertSink>),
        (a, _) => a,
    };
    // `--fail-on` without `--alerts`: the alerts are computed and counted, not written.
    let alerts = match (alerts, common.fail_on) {
        (None, Some(_)) => Some(Box::new(Discard) as Box<dyn AlertSink>),
        (a, _) => a,
    };
    let stdout_is_data = is_stdout(&common.flows)
        || is_stdout(&common.summary)
        || is_stdout(&common.alerts)
        || is_stdout(&common.report);
    let bar = if !common.quiet && !source.is_live() && io::stderr().is_terminal() {
        let (_, total) = source.progress();
        Some(Bar::new(total))
    } else {
        None
    };
    let report = pipeline::run(
        &mut source,
        &cfg,
        Outputs { flows, alerts },
        stop,
        bar.as_ref().map(|b| b as &dyn Progress),
    );
    let reloads = reloads.map(|r| r.get());
    let report = report?;
    if let Some(b) = &bar {
        b.0.finish_and_clear();
    }
    let mut summary = Summary::from_report(&report);
    if cfg.policy.is_some() {
        let mut p = PolicySummary::new(&report.flows.policy);
        if let Some((ok, failed)) = reloads {
            (p.reloads, p.reload_failures) = (ok, failed);
        }
        summary.policy = Some(p);
    }
    // The summary's alert section counts lines written: only with --alerts.
    if let (Some(a), Some(_)) = (&report.alerts, &common.alerts) {
        summary.alerts = Some(AlertSummary::new(a, cfg.fold.window_ns));
    }
    if let Some(out) = &summary_out {
        write_doc(out, &summary)?;
    }
    let full = report
        .report
        .as_ref()
        .map(|d| crate::report::Report::new(&summary, d, cfg.policy.as_deref()));
    if let (Some(out), Some(r)) = (&report_out, &full) {
        write_doc(out, r)?;
    }
    if !common.quiet {
        let text = match &full {
            Some(r) => crate::report::render(&summary, r, common.lang),
            None => summary.to_human(),
        };
        // Machine output owns stdout when asked for; the human table then goes to stderr.
        let _ = if stdout_is_data {
            io::stderr().write_all(text.as_bytes())
        } else {
            io::stdout().write_all(text.as_bytes())
        };
    }
    let hurried = cfg
        .hurry
        .as_ref()
        .is_some_and(|h| h.load(Ordering::Relaxed));
    if hurried {
        // Said even with -q: the operator asked twice, and some of the run
        // is missing from the files.
        let u = report.unwritten.clone().unwrap_or_default();
        eprintln!(
            "zonewatch: stopped by a second signal; not written: {} open flows (no flow line), {} captured packets not analysed, {} frames not added to evidence files; the flow lines, alerts, evidence files and summary computed before it are complete (exit {EXIT_INTERRUPTED})",
            u.open_flows, u.packets, u.evidence_frames
        );
        return Ok(EXIT_INTERRUPTED);
    }
    let by_severity = report
        .alerts
        .as_ref()
        .map_or([0; 5], |a| a.written_by_severity);
    Ok(fail_on_status(common.fail_on, &by_severity, common.quiet))
}

fn is_stdout(p: &Option<PathBuf>) -> bool {
    p.as_deref() == Some(Path::new("-"))
}

/// Open a file written once at the end (`--openmetrics`: 0640, truncated),
/// or stdout for "-".
pub fn open_output(path: &Path) -> Result<Box<dyn Write + Send>, AppError> {
    if path == Path::new("-") {
        return Ok(Box::new(io::BufWriter::with_capacity(
            1 << 16,
            io::stdout(),
        )));
    }
    let f =
        crate::output::open_file(path, OpenMode::Truncate).map_err(|source| AppError::Output {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Box::new(io::BufWriter::with_capacity(1 << 16, f)))
}

/// `zonewatch check RULES --against FILE...`: replay the files with the rules,
/// fold alerts as `--alerts` would, and print them grouped by zone pair.
fn check_against(args: &CheckArgs, stop: &AtomicBool) -> Result<i32, AppError> {
    let Some(Some(LoadedRules { policy, .. })) = load_rules(Some(&args.rules))? else {
        return Ok(EXIT_RULES_INVALID);
    };
    let mut files = FileSource::open(&args.against)?;
    let mut cfg = PipelineConfig {
        policy: Some(policy),
        fold: args.alerts.fold_config(),
        ..PipelineConfig::default()
    };
    cfg.flow.vlan_in_key = args.vlan_in_flow_key;
    let collected = Collect::default();
    let report = pipeline::run(
        &mut files,
        &cfg,
        Outputs {
            flows: None,
            alerts: Some(Box::new(collected.clone())),
        },
        stop,
        None,
    )?;
    let lines = collected.0.lock().map(|v| v.clone()).unwrap_or_default();
    // Each alert as it finally stands: an update line replaces its first line.
    let mut alerts: Vec<crate::alert::Alert> = Vec::with_capacity(lines.len());
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for a in lines {
        match at.get(&a.id) {
            Some(&i) if a.update > 0 => alerts[i] = a,
            _ => {
                at.insert(a.id.clone(), alerts.len());
                alerts.push(a);
            }
        }
    }
    let p = &report.flows.policy;
    let inputs: Vec<String> = args
        .against
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let mut header = format!(
        "Dry run of {} against {}\n{} packets, {} flows: {} allowed, {} violating, {} unknown, {} segment-local -> {} alert{} (fold window {} s, {} per source)\n",
        args.rules.display(),
        inputs.join(", "),
        report.frames,
        report.flows.created,
        p.allowed,
        p.violation,
        p.unknown,
        p.local,
        alerts.len(),
        if alerts.len() == 1 { "" } else { "s" },
        args.alerts.alert_window_secs,
        args.alerts.alert_max_per_source,
    );
    for src in &report.source.inputs {
        if let Some(why) = &src.stopped_early {
            header.push_str(&format!("warning: {} stopped early: {why}\n", src.name));
        }
    }
    write_stdout(&crate::alert::render_dry_run(&header, &alerts))?;
    let mut by_severity = [0u64; 5];
    for a in &alerts {
        if let Some(n) = by_severity.get_mut(a.severity as usize) {
            *n += 1;
        }
    }
    Ok(fail_on_status(args.fail_on, &by_severity, false))
}

/// A report on stdout, flushed; a closed pipe or full disk is an error.
fn write_stdout(text: &str) -> Result<(), AppError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| AppError::Output {
            path: PathBuf::from("-"),
            source,
        })
}

/// Signals, and the outputs' timer, on one thread (`zw-signals`), started
/// before anything else so no signal ever takes its default action:
///
/// - SIGINT/SIGTERM: the first sets `stop` (in the handler: the capture loop
///   sees it at its next frame); the second sets `hurry` (stop at once, but
///   write what is computed; `PipelineConfig::hurry`); the third flushes the
///   line outputs' buffers and exits 130.
/// - SIGHUP: reopen every output at its path (logrotate), then, live with
///   `--rules`, reload the rules.
/// - Every second: write the line outputs' buffers out.
struct Control {
    stop: Arc<AtomicBool>,
    hurry: Arc<AtomicBool>,
    outputs: OutputSet,
    reload: Arc<Mutex<Option<Reload>>>,
    quit: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often the signal thread looks at its flags.
const CONTROL_TICK: Duration = Duration::from_millis(50);
/// How often every line output is flushed.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Count `sig` in `n` from inside the signal handler, and set `hurry` at the
/// second one. A counter, because signal-hook's safe iterator folds two quick
/// signals into one; `hurry` is set here, not by a thread, so the pipeline sees
/// it at once.
// Unsafe: the one low-level handler of the crate (reason above).
#[allow(unsafe_code)]
fn count_interrupts(
    sig: std::ffi::c_int,
    n: Arc<AtomicUsize>,
    hurry: Arc<AtomicBool>,
) -> io::Result<signal_hook::SigId> {
    // SAFETY: the action only touches atomics, which is async-signal-safe
    // (no allocation, no lock).
    unsafe {
        signal_hook::low_level::register(sig, move || {
            if n.fetch_add(1, Ordering::SeqCst) >= 1 {
                hurry.store(true, Ordering::SeqCst);
            }
        })
    }
}

impl Control {
    fn start() -> Result<Control, AppError> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        use signal_hook::flag;
        let stop = Arc::new(AtomicBool::new(false));
        let hurry = Arc::new(AtomicBool::new(false));
        let interrupts = Arc::new(AtomicUsize::new(0));
        for sig in [SIGINT, SIGTERM] {
            flag::register(sig, stop.clone()).map_err(AppError::Signal)?;
            count_interrupts(sig, interrupts.clone(), hurry.clone()).map_err(AppError::Signal)?;
        }
        let hup = Arc::new(AtomicBool::new(false));
        flag::register(SIGHUP, hup.clone()).map_err(AppError::Signal)?;
        let c = Control {
            stop,
            hurry,
            outputs: OutputSet::default(),
            reload: Arc::new(Mutex::new(None)),
            quit: Arc::new(AtomicBool::new(false)),
            thread: None,
        };
        let (outputs, reload, quit) = (c.outputs.clone(), c.reload.clone(), c.quit.clone());
        let thread = std::thread::Builder::new()
            .name("zw-signals".into())
            .spawn(move || {
                let mut flushed = Instant::now();
                let mut told = 0;
                while !quit.load(Ordering::Relaxed) {
                    // (`finish` unparks it: no tick's wait at the end of a run.)
                    std::thread::park_timeout(CONTROL_TICK);
                    let n = interrupts.load(Ordering::SeqCst);
                    if n >= 2 && told < 2 {
                        told = 2;
                        eprintln!(
                            "zonewatch: second signal: stopping now, without draining the capture or writing open flows; what is already computed is still written (a third signal exits at once)"
                        );
                    }
                    if n >= 3 {
                        outputs.flush_now();
                        eprintln!(
                            "zonewatch: third signal: exiting at once ({EXIT_INTERRUPTED}); the summary and anything not yet computed are not written"
                        );
                        std::process::exit(EXIT_INTERRUPTED);
                    }
                    if hup.swap(false, Ordering::SeqCst) {
                        let reopened = reopen(&outputs);
                        if let Some(r) = reload.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                            r.apply(reopened);
                        }
                    }
                    if flushed.elapsed() >= FLUSH_EVERY {
                        flushed = Instant::now();
                        // Skips an output its writer holds right now: it is
                        // being written anyway, and this thread must stay free
                        // for the next signal.
                        outputs.flush_now();
                    }
                }
            })
            .map_err(AppError::Signal)?;
        Ok(Control {
            thread: Some(thread),
            ..c
        })
    }

    /// Reload the rules on SIGHUP from now on; the cell the workers read.
    fn set_reload(&self, r: Reload) -> ReloadCounts {
        let counts = ReloadCounts {
            cell: r.cell.clone(),
            ok: r.ok.clone(),
            failed: r.failed.clone(),
        };
        *self.reload.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        counts
    }

    /// Stop the thread (the handlers stay installed: a late signal is
    /// counted, never fatal) and write every buffer out.
    fn finish(mut self) {
        self.quit.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        self.outputs.flush_all();
    }
}

/// SIGHUP: every output reopened at its path, said on stderr. True when
/// at least one was.
fn reopen(outputs: &OutputSet) -> bool {
    let (done, failed) = outputs.reopen_all();
    let reopened = !done.is_empty();
    if reopened {
        let names: Vec<String> = done.iter().map(|p| p.display().to_string()).collect();
        eprintln!("zonewatch: SIGHUP: reopened {}", names.join(", "));
    }
    for (path, e) in failed {
        eprintln!(
            "zonewatch: SIGHUP: cannot reopen {}: {e}; still writing to the file it had open",
            path.display()
        );
    }
    reopened
}

/// Reloads the rules file (on SIGHUP, live) and publishes it to the workers
/// (they pick it up at their next batch). A file that does not load leaves
/// the running rules in place; every error is printed as `check` prints it.
/// A file that did not change is not swapped in: logrotate's nightly SIGHUP
/// must not restart the open alert groups (they are keyed by the policy
/// that judged them) nor count as a reload.
struct Reload {
    path: PathBuf,
    cell: Arc<ArcSwap<Policy>>,
    /// The `[detect]` thresholds of the rules in force, as loaded (with the
    /// host inventory they name).
    detect: DetectConfig,
    /// The text the rules in force were loaded from.
    text: String,
    metrics: Option<Arc<Metrics>>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

/// The workers' view of the reloaded rules, and the reload counts.
struct ReloadCounts {
    cell: Arc<ArcSwap<Policy>>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl ReloadCounts {
    /// (reloads applied, reloads failed).
    fn get(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

impl Reload {
    fn new(
        path: PathBuf,
        initial: Arc<Policy>,
        detect: DetectConfig,
        text: String,
        metrics: Option<Arc<Metrics>>,
    ) -> Reload {
        Reload {
            path,
            cell: Arc::new(ArcSwap::new(initial)),
            detect,
            text,
            metrics,
            ok: Arc::new(AtomicU64::new(0)),
            failed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// `reopened`: the same SIGHUP reopened the outputs (said with "rules
    /// unchanged").
    fn apply(&mut self, reopened: bool) {
        let path = &self.path;
        let loaded = crate::detect::load_rules(path);
        // Unchanged: the same text gives the same rules (a preset is compiled
        // into the binary), except for what the rules name outside the file,
        // the host inventory of [detect.hosts], which is compared as loaded.
        if let Ok(r) = &loaded {
            if r.text == self.text && r.detect == self.detect {
                eprintln!(
                    "zonewatch: SIGHUP: rules unchanged ({}); {}",
                    path.display(),
                    if reopened {
                        "outputs reopened, the running rules stay in force"
                    } else {
                        "the running rules stay in force"
                    }
                );
                return;
            }
        }
        if let Some(m) = &self.metrics {
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            m.reload(loaded.is_ok(), unix);
            // policy_info's hash names the text that loaded.
            if let Ok(r) = &loaded {
                m.set_policy(
                    r.policy.site_name.as_deref().unwrap_or("-"),
                    r.policy.preset.as_deref().unwrap_or("-"),
                    &crate::metrics::sha256_12(r.text.as_bytes()),
                );
            }
        }
        match loaded {
            Ok(r) => {
                let mut err = io::stderr().lock();
                for d in &r.warnings {
                    let _ = writeln!(err, "{d}");
                }
                self.cell.store(Arc::new(r.policy));
                self.detect = r.detect;
                self.text = r.text;
                let n = self.ok.fetch_add(1, Ordering::Relaxed) + 1;
                let _ = writeln!(
                    err,
                    "zonewatch: SIGHUP: rules reloaded from {} (reload {n}); new flows get the new verdicts",
                    path.display()
                );
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                match &e {
                    LoadError::Invalid { errors, warnings } => print_invalid(errors, warnings),
                    other => eprintln!("{other}"),
                }
                eprintln!(
                    "zonewatch: SIGHUP: {} does not load; keeping the running rules",
                    path.display()
                );
            }
        }
    }
}

/// Progress bar on stderr for long replays.
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new(total: u64) -> Bar {
        let pb = indicatif::ProgressBar::new(total);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({eta}) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Bar(pb)
    }
}

impl Progress for Bar {
    fn update(&self, done: u64, _total: u64, frames: u64) {
        self.0.set_position(done);
        self.0.set_message(format!("{frames} packets"));
    }
}

/// `run --user NAME`: give up root for good once the capture, the outputs and
/// the metrics socket are open (the descriptors keep working: the kernel checks
/// privileges when a packet socket is opened, not when it is read).
///
/// The switch is the classic one, in the only order that works: supplementary
/// groups to just NAME's primary group, then real/effective/saved gid, then
/// real/effective/saved uid (the filesystem ids follow the effective ones).
/// Leaving uid 0 clears every capability (no `PR_SET_KEEPCAPS`). glibc's
/// `set*id` wrappers apply the change to every thread of the process (the
/// metrics server and SIGHUP threads already run); the kernel call alone would
/// change only the calling thread. Then it checks that `setuid(0)` and
/// `setgid(0)` fail and that every id is NAME's.
mod privs {
    use nix::errno::Errno;
    use nix::unistd::{self, Gid, Uid, User};
    use std::io;

    #[derive(Debug, thiserror::Error)]
    pub enum UserError {
        #[error("--user {name}: no such user")]
        Unknown { name: String },
        #[error("--user {name}: a user name cannot contain a NUL byte")]
        Nul { name: String },
        #[error("--user {name}: looking the user up failed: {source}")]
        Lookup {
            name: String,
            #[source]
            source: io::Error,
        },
        #[error("--user {name}: uid {uid} gid {gid} is root or the root group; name an unprivileged user")]
        Privileged { name: String, uid: u32, gid: u32 },
        #[error("--user {name}: dropping privileges needs root, but zonewatch runs as uid {euid}; run it as root, or drop --user and give the binary the capture capabilities (setcap cap_net_raw,cap_net_admin=eip)")]
        NotRoot { name: String, euid: u32 },
        #[error("--user {name}: {call} failed: {source}")]
        Switch {
            name: String,
            call: &'static str,
            #[source]
            source: io::Error,
        },
        #[error("--user {name}: after switching to uid {uid} gid {gid}, {what}; refusing to run")]
        NotDropped {
            name: String,
            uid: u32,
            gid: u32,
            what: String,
        },
    }

    /// An unprivileged account from the user database.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Account {
        pub name: String,
        pub uid: u32,
        pub gid: u32,
    }

    impl Account {
        /// Look `name` up (getpwnam_r: /etc/passwd or whatever NSS says) and
        /// check that the switch can happen: an unprivileged account, and
        /// zonewatch running as root.
        pub fn lookup(name: &str) -> Result<Account, UserError> {
            let a = Account::find(name)?;
            if a.uid == 0 || a.gid == 0 {
                return Err(UserError::Privileged {
                    name: a.name,
                    uid: a.uid,
                    gid: a.gid,
                });
            }
            let euid = Uid::effective().as_raw();
            if euid != 0 {
                return Err(UserError::NotRoot { name: a.name, euid });
            }
            Ok(a)
        }

        /// The user database entry for `name`, whoever runs this.
        pub fn find(name: &str) -> Result<Account, UserError> {
            if name.contains('\0') {
                return Err(UserError::Nul {
                    name: name.escape_debug().to_string(),
                });
            }
            match User::from_name(name) {
                Ok(Some(u)) => Ok(Account {
                    name: name.to_string(),
                    uid: u.uid.as_raw(),
                    gid: u.gid.as_raw(),
                }),
                // Not found: no entry (POSIX), or ENOENT / ESRCH from some NSS
                // modules (getpwnam_r(3)).
                Ok(None) | Err(Errno::ENOENT | Errno::ESRCH) => Err(UserError::Unknown {
                    name: name.to_string(),
                }),
                Err(e) => Err(UserError::Lookup {
                    name: name.to_string(),
                    source: io::Error::from(e),
                }),
            }
        }

        /// Become this user for good (see the module docs), and prove it.
        pub fn become_user(&self) -> Result<(), UserError> {
            let fail = |call: &'static str| {
                move |e: Errno| UserError::Switch {
                    name: self.name.clone(),
                    call,
                    source: io::Error::from(e),
                }
            };
            let (uid, gid) = (Uid::from_raw(self.uid), Gid::from_raw(self.gid));
            unistd::setgroups(&[gid]).map_err(fail("setgroups"))?;
            unistd::setresgid(gid, gid, gid).map_err(fail("setresgid"))?;
            unistd::setresuid(uid, uid, uid).map_err(fail("setresuid"))?;
            self.verify()
        }

        /// Every id is this account's, and root cannot be regained.
        fn verify(&self) -> Result<(), UserError> {
            let not = |what: String| UserError::NotDropped {
                name: self.name.clone(),
                uid: self.uid,
                gid: self.gid,
                what,
            };
            // Success here is the error case.
            if unistd::setuid(Uid::from_raw(0)).is_ok() {
                return Err(not("setuid(0) still succeeds".into()));
            }
            if unistd::setgid(Gid::from_raw(0)).is_ok() {
                return Err(not("setgid(0) still succeeds".into()));
            }
            let u = unistd::getresuid().map_err(|e| not(format!("getresuid failed: {e}")))?;
            let (r, e, s) = (u.real.as_raw(), u.effective.as_raw(), u.saved.as_raw());
            if [r, e, s] != [self.uid; 3] {
                return Err(not(format!("uids are real {r} effective {e} saved {s}")));
            }
            let g = unistd::getresgid().map_err(|e| not(format!("getresgid failed: {e}")))?;
            let (r, e, s) = (g.real.as_raw(), g.effective.as_raw(), g.saved.as_raw());
            if [r, e, s] != [self.gid; 3] {
                return Err(not(format!("gids are real {r} effective {e} saved {s}")));
            }
            Ok(())
        }
    }

    #[cfg(test)]
    mod test {
        use super::*;

        #[test]
        fn root_is_found_with_uid_and_gid_zero_and_refused_as_a_target() {
            let root = Account::find("root").expect("root is in every user database");
            assert_eq!((root.uid, root.gid), (0, 0));
            match Account::lookup("root") {
                Err(e @ UserError::Privileged { .. }) => {
                    assert!(e.to_string().contains("unprivileged user"), "{e}")
                }
                other => panic!("--user root accepted: {other:?}"),
            }
        }

        #[test]
        fn unknown_user_is_named_in_the_error() {
            match Account::find("zw-no-such-user-x") {
                Err(e @ UserError::Unknown { .. }) => {
                    assert_eq!(e.to_string(), "--user zw-no-such-user-x: no such user")
                }
                other => panic!("{other:?}"),
            }
        }

        #[test]
        fn nul_in_the_name_is_an_error_not_a_panic() {
            assert!(matches!(
                Account::find("no\0body"),
                Err(UserError::Nul { .. })
            ));
        }
    }
}
