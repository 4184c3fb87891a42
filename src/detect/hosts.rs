//! Stub: to be filled in (detector `hosts`).

use super::obs::Obs;
use super::{Ctx, Detector, DetectorStats, Emit};
use serde::{Deserialize, Serialize};

/// `[detect.hosts]` in a rules file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HostsConfig {
    pub enabled: bool,
}

impl Default for HostsConfig {
    fn default() -> Self {
        HostsConfig { enabled: true }
    }
}

pub struct HostsDetector {
    #[allow(dead_code)]
    cfg: HostsConfig,
    stats: DetectorStats,
}

impl HostsDetector {
    pub fn new(cfg: HostsConfig) -> HostsDetector {
        HostsDetector {
            cfg,
            stats: DetectorStats::default(),
        }
    }
}

impl Detector for HostsDetector {
    fn name(&self) -> &'static str {
        "hosts"
    }
    fn observe(&mut self, _o: &Obs, _cx: &Ctx, _out: &mut Emit) {}
    fn advance(&mut self, _now_ns: u64, _cx: &Ctx, _out: &mut Emit) {}
    fn stats(&self) -> DetectorStats {
        self.stats.clone()
    }
}
