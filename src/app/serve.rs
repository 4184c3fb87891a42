//! Floor L6 (`app`). The `/metrics` endpoint (`--metrics-listen`) and the `zonewatch_policy_info`
//! labels.

use super::AppError;
use crate::cli::{CommonArgs, Listen};
use crate::metrics::server::MetricsServer;
use crate::metrics::Metrics;
use crate::policy::Policy;
use std::path::Path;
use std::sync::Arc;

/// A running `/metrics` endpoint and the registry it serves.
pub(super) struct Serving {
    pub(super) metrics: Arc<Metrics>,
    pub(super) server: MetricsServer,
}

/// Start the endpoint `--metrics-listen` asks for (or `default` when the flag
/// is absent), with build and policy info set; `None` = no metrics.
pub(super) fn start_metrics(
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
pub(super) fn set_policy_info(m: &Metrics, path: Option<&Path>, policy: Option<&Policy>) {
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
