//! Floor L6 (`app`). `run --interface IFACE`: metrics served by default, the rules reloaded on
//! SIGHUP, the privileged set-up (capture, outputs, then `--user`), outputs
//! appended.

use super::config::{base_config, load_rules};
use super::control::Control;
use super::execute::execute;
use super::outputs::{check_writable, OpenedOutputs};
use super::reload::Reload;
use super::serve::start_metrics;
use super::{privs, AppError, EXIT_RULES_INVALID};
use crate::capture::{LiveConfig, LiveOpen, SourceUser};
use crate::cli::RunArgs;
use crate::output::{OpenMode, OutputSet};
use crate::pipeline::PipelineConfig;
use std::time::Duration;

/// `zonewatch run --interface IFACE`.
pub(super) fn run_live(args: &RunArgs, control: &Control) -> Result<i32, AppError> {
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
        (Some(path), Some(p), Some(d), Some(text)) => Some(control.set_reload(Reload::new(
            path.clone(),
            p.clone(),
            d.clone(),
            text,
            metrics.clone(),
        ))),
        _ => None,
    };
    // Order of set-up with privileges: metrics bound (above), capture
    // opened, output files opened, then `--user` drops root for good.
    // Everything that needs root is held as a descriptor by then.
    let live = LiveRun {
        args,
        account: account.as_ref(),
        control,
        cfg: PipelineConfig {
            max_frames: args.count,
            max_duration: args.duration_secs.map(Duration::from_secs),
            policy_updates: reloader.as_ref().map(|r| r.cell.clone()),
            metrics,
            sources: vec![args.iface.clone()],
            hurry: Some(control.hurry.clone()),
            ..base_config(&args.common, policy, detect)
        },
        reloader,
    };
    let result = crate::capture::open_live(&live_config(args), live)
        .map_err(AppError::from)
        .and_then(|r| r);
    if let Some(s) = serving {
        s.server.stop();
    }
    result
}

/// The capture settings of `run`'s flags.
fn live_config(args: &RunArgs) -> LiveConfig {
    LiveConfig {
        iface: args.iface.clone(),
        promisc: !args.no_promisc,
        snaplen: args.snaplen,
        buffer_bytes: args.buffer_bytes,
        filter: args.filter.clone(),
        timeout_ms: 100,
    }
}

/// The rest of `run` once its capture is open, whatever the source's type
/// (`capture::open_live` calls it with the concrete type).
struct LiveRun<'a> {
    args: &'a RunArgs,
    account: Option<&'a privs::Account>,
    control: &'a Control,
    cfg: PipelineConfig,
    reloader: Option<super::reload::ReloadCounts>,
}

impl SourceUser for LiveRun<'_> {
    type Out = Result<i32, AppError>;
    fn run<S: LiveOpen>(self, live: S) -> Result<i32, AppError> {
        let outputs = after_open(self.args, &live, self.account, &self.control.outputs)?;
        let stop = self.control.stop.clone();
        execute(
            live,
            outputs,
            &self.args.common,
            self.cfg,
            &stop,
            self.reloader,
        )
    }
}

/// `run`'s privileged steps once the capture is open, in order: say so, open
/// the output files, drop to `account` (`--user`) if given.
fn after_open<S: LiveOpen>(
    args: &RunArgs,
    live: &S,
    account: Option<&privs::Account>,
    set: &OutputSet,
) -> Result<OpenedOutputs, AppError> {
    eprintln!(
        "zonewatch: listening on {}, link-type {}, snaplen {} bytes",
        args.iface,
        live.link_name(),
        args.snaplen
    );
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
    Ok(outputs)
}
