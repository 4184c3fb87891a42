//! Stub: to be filled in (detector `dos`).

use super::obs::Obs;
use super::{Ctx, Detector, DetectorStats, Emit};
use serde::{Deserialize, Serialize};

/// `[detect.dos]` in a rules file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DosConfig {
    pub enabled: bool,
}

impl Default for DosConfig {
    fn default() -> Self {
        DosConfig { enabled: true }
    }
}

pub struct DosDetector {
    #[allow(dead_code)]
    cfg: DosConfig,
    stats: DetectorStats,
}

impl DosDetector {
    pub fn new(cfg: DosConfig) -> DosDetector {
        DosDetector {
            cfg,
            stats: DetectorStats::default(),
        }
    }
}

impl Detector for DosDetector {
    fn name(&self) -> &'static str {
        "dos"
    }
    fn observe(&mut self, _o: &Obs, _cx: &Ctx, _out: &mut Emit) {}
    fn advance(&mut self, _now_ns: u64, _cx: &Ctx, _out: &mut Emit) {}
    fn stats(&self) -> DetectorStats {
        self.stats.clone()
    }
}
