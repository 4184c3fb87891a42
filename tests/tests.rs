//! The one integration-test binary (as ripgrep's tests/tests.rs): it runs the
//! built `zonewatch` binary on the bundled and public captures and on a live veth,
//! and compares what it reports with TShark.
//!
//! Needs: tshark on PATH; root for `live` (network namespaces); the public
//! capture set at ../shared/captures/public next to the crate.

mod alerts;
mod backfill;
mod check;
mod detect;
mod detect_access;
mod detect_dos;
mod detect_hosts;
mod determinism;
mod evidence;
mod flood;
mod flows;
mod layers;
mod live;
mod live_alerts;
mod metrics;
mod models;
mod outputs;
mod overload;
mod policy_flows;
mod privilege;
mod prometheus;
mod reload;
mod replay;
mod report;
mod scripting;
mod segment_local;
mod shutdown;
mod stops;
mod trunk;
mod util;
mod zones_capture;
