//! Stub: to be filled in (detector `brute_force`).

use super::obs::Obs;
use super::{Ctx, Detector, DetectorStats, Emit};
use serde::{Deserialize, Serialize};

/// `[detect.brute_force]` in a rules file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BruteConfig {
    pub enabled: bool,
}

impl Default for BruteConfig {
    fn default() -> Self {
        BruteConfig { enabled: true }
    }
}

pub struct BruteDetector {
    #[allow(dead_code)]
    cfg: BruteConfig,
    stats: DetectorStats,
}

impl BruteDetector {
    pub fn new(cfg: BruteConfig) -> BruteDetector {
        BruteDetector {
            cfg,
            stats: DetectorStats::default(),
        }
    }
}

impl Detector for BruteDetector {
    fn name(&self) -> &'static str {
        "brute_force"
    }
    fn observe(&mut self, _o: &Obs, _cx: &Ctx, _out: &mut Emit) {}
    fn advance(&mut self, _now_ns: u64, _cx: &Ctx, _out: &mut Emit) {}
    fn stats(&self) -> DetectorStats {
        self.stats.clone()
    }
}
