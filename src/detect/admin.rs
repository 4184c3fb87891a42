//! Stub: to be filled in (detector `admin_access`).

use super::obs::Obs;
use super::{Ctx, Detector, DetectorStats, Emit};
use serde::{Deserialize, Serialize};

/// `[detect.admin_access]` in a rules file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub enabled: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { enabled: true }
    }
}

pub struct AdminDetector {
    #[allow(dead_code)]
    cfg: AdminConfig,
    stats: DetectorStats,
}

impl AdminDetector {
    pub fn new(cfg: AdminConfig) -> AdminDetector {
        AdminDetector {
            cfg,
            stats: DetectorStats::default(),
        }
    }
}

impl Detector for AdminDetector {
    fn name(&self) -> &'static str {
        "admin_access"
    }
    fn observe(&mut self, _o: &Obs, _cx: &Ctx, _out: &mut Emit) {}
    fn advance(&mut self, _now_ns: u64, _cx: &Ctx, _out: &mut Emit) {}
    fn stats(&self) -> DetectorStats {
        self.stats.clone()
    }
}
