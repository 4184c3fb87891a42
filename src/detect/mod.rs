//! Floor L3. Detectors for unauthorised access and DoS; the analysis thread
//! that runs them beside the separation-violation folding is the runtime's
//! (`crate::pipeline::analysis`, floor L5).
//!
//! Owns: what workers observe for detection ([`obs::Obs`]: flow starts,
//! answers, refusals, closes, ARP, all at packet time), the deterministic
//! merge of the workers' streams ([`merge::Merger`]), the [`Detector`] trait
//! every detector implements, their thresholds ([`DetectConfig`], the
//! `[detect]` table of the rules file), and what a detector writes into ([`Emit`]).
//! It leaves alone: flow tracking (the table reports through
//! [`crate::flow::FlowSink`] hooks) and the alert line format ([`crate::alert`]).
//!
//! Every detector has the same parts, as Suricata gives every parser the same
//! parts: a config struct with units in its key names, per-key state with a
//! bound, `observe` for each released observation, `advance` when packet time
//! passes (windows close there), and a stats struct. Detectors see
//! observations and packet time only, never frames or the wall clock, so a
//! replay and a live run of the same traffic, with any worker count, give the
//! same alerts in the same order.

pub mod merge;
pub mod needs;
pub mod obs;
#[cfg(test)]
mod testkit;
pub mod window;

use crate::alert::Alert;
use crate::policy::Policy;
pub use needs::{Needs, PacketTap, PortSet, Spec, TapPart};
use obs::Obs;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The detector registry: each detector once, in the order they run (a
/// detector's place is its rank in the alert order), as `[detect.KEY]` table:
/// `KEY in MODULE: Config => Detector` (the line declares the module too).
/// It makes [`DetectConfig`] (the `[detect]` table), [`DetectConfig::none`],
/// [`detectors`], [`needs`] and [`taps`]. A config has a public `enabled`
/// flag and implements [`Spec`] (what the detector needs from the workers);
/// a detector has a `new(config)`. Adding a detector: its file (or folder)
/// and one line here; its rank in the alert order is its place in the list.
macro_rules! registry {
    ($($key:ident in $m:ident: $cfg:ident => $det:ident,)*) => {
        $(pub mod $m;)*

        /// Thresholds of every detector: the `[detect]` table of a rules file
        /// (rules/README.md). Unknown keys are errors; every key has a default.
        #[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
        #[serde(deny_unknown_fields, default)]
        pub struct DetectConfig {
            $(pub $key: $m::$cfg,)*
        }

        impl DetectConfig {
            /// Every detector off (only separation violations are folded).
            pub fn none() -> DetectConfig {
                let mut c = DetectConfig::default();
                $(c.$key.enabled = false;)*
                c
            }

            /// Whether any detector is on.
            pub fn any_enabled(&self) -> bool {
                false $(|| self.$key.enabled)*
            }
        }

        /// The detectors `cfg` enables, in registry order.
        pub fn detectors(cfg: &DetectConfig) -> Vec<Box<dyn Detector>> {
            let mut v: Vec<Box<dyn Detector>> = Vec::new();
            $(
                if cfg.$key.enabled {
                    v.push(Box::new($m::$det::new(cfg.$key.clone())));
                }
            )*
            v
        }

        /// What each detector [`detectors`] makes for `cfg` reads, in the same order.
        pub fn needs_each(cfg: &DetectConfig) -> Vec<Needs> {
            let mut v = Vec::new();
            $(
                if cfg.$key.enabled {
                    v.push(Spec::needs(&cfg.$key));
                }
            )*
            v
        }

        /// What the detectors `cfg` enables need from the workers, united.
        pub fn needs(cfg: &DetectConfig) -> Needs {
            let mut n = Needs::default();
            $(
                if cfg.$key.enabled {
                    n.union(Spec::needs(&cfg.$key));
                }
            )*
            n
        }

        /// One worker's taps for the detectors `cfg` enables: (the
        /// detector's index in [`detectors`], its tap).
        pub fn taps(cfg: &DetectConfig) -> Vec<(usize, Box<dyn PacketTap>)> {
            let mut v: Vec<(usize, Box<dyn PacketTap>)> = Vec::new();
            let mut i = 0;
            $(
                if cfg.$key.enabled {
                    if let Some(t) = Spec::tap(&cfg.$key) {
                        v.push((i, t));
                    }
                    i += 1;
                }
            )*
            let _ = i;
            v
        }

        /// What the detector named `name` needs with its default thresholds
        /// (the detector tests feed a detector only what it declares).
        #[cfg(test)]
        pub(crate) fn default_needs(name: &str) -> Option<Needs> {
            $(
                if stringify!($key) == name {
                    return Some(Spec::needs(&$m::$cfg::default()));
                }
            )*
            None
        }
    };
}

registry! {
    port_scan in scan: ScanConfig => ScanDetector,
    brute_force in brute: BruteConfig => BruteDetector,
    admin_access in admin: AdminConfig => AdminDetector,
    hosts in hosts: HostsConfig => HostsDetector,
    dos in dos: DosConfig => DosDetector,
}

/// The `[detect]` table of a rules file's text (`file` names it in errors):
/// the policy's floor accepts the table without reading it; this floor reads
/// it, with the same `FILE:LINE:COL` errors (a bad inventory line included).
pub fn config_of(file: &str, text: &str) -> Result<DetectConfig, crate::policy::Diagnostic> {
    #[derive(Deserialize)]
    struct Only {
        #[serde(default)]
        detect: Option<DetectConfig>,
    }
    match toml::from_str::<Only>(text) {
        Ok(o) => Ok(o.detect.unwrap_or_default()),
        Err(e) => Err(crate::policy::toml_error(file, text, &e)),
    }
}

/// A rules file as the sensor runs it: the zone policy and the detectors'
/// thresholds, with the policy's warnings and the text it was read from.
pub struct Rules {
    pub policy: Policy,
    pub detect: DetectConfig,
    pub warnings: Vec<crate::policy::Diagnostic>,
    pub text: String,
}

/// Load a rules file ([`Policy::load_text`], then [`config_of`]); an error in
/// `[detect]` is an `Invalid` error like the policy's own.
pub fn load_rules(path: &std::path::Path) -> Result<Rules, crate::policy::LoadError> {
    let ((policy, warnings), text) = Policy::load_text(path)?;
    match config_of(&path.display().to_string(), &text) {
        Ok(detect) => Ok(Rules {
            policy,
            detect,
            warnings,
            text,
        }),
        Err(d) => Err(crate::policy::LoadError::Invalid {
            errors: vec![d],
            warnings,
        }),
    }
}

/// What a detector may look up while it works.
pub struct Ctx<'a> {
    /// The rules in force (zone names), if any.
    pub policy: Option<&'a Policy>,
    /// Why input ends, for what the final `advance(u64::MAX)` closes:
    /// [`END_OF_INPUT`] (replay) or [`SHUTDOWN`] (signal or limit).
    pub end: &'static str,
}

/// `Ctx::end` when every input ended.
pub const END_OF_INPUT: &str = "end_of_input";
/// `Ctx::end` when a signal or a limit stopped the capture.
pub const SHUTDOWN: &str = "shutdown";

impl Ctx<'_> {
    /// Zone id of an address, if there are rules and it is in a zone.
    pub fn zone(&self, ip: IpAddr, vlan: Option<u16>) -> Option<String> {
        let p = self.policy?;
        p.zone_of(ip, vlan).map(|z| p.zone(z).id.clone())
    }
}

/// Alerts a detector writes, each with the packet time it is written at (the
/// analysis thread orders output by it).
#[derive(Default)]
pub struct Emit {
    /// (due time, producer rank, alert); rank 0 is the separation folding,
    /// detector `i` is `i + 1`. The runtime drains them.
    pub(crate) items: Vec<(u64, usize, Alert)>,
    /// The producer writing now (set by the runtime before each detector runs).
    pub(crate) rank: usize,
}

impl Emit {
    pub fn push(&mut self, at_ns: u64, a: Alert) {
        self.items.push((at_ns, self.rank, a));
    }

    /// A window's judgement at `at`: its alert `judged` (if it makes one),
    /// as the update line of group `early` when an alert was already written
    /// when the window crossed its threshold (a silent marker if the window
    /// makes none now), else as a new alert, counted in `alerts`.
    pub fn judged(&mut self, at: u64, judged: Option<Alert>, early: Option<u64>, alerts: &mut u64) {
        match (judged, early) {
            (Some(mut a), Some(g)) => {
                a.group = Some(g);
                a.update = 1;
                self.push(at, a);
            }
            (Some(a), None) => {
                *alerts += 1;
                self.push(at, a);
            }
            (None, Some(g)) => self.push(
                at,
                Alert {
                    group: Some(g),
                    update: 1,
                    silent: true,
                    ..Alert::default()
                },
            ),
            (None, None) => {}
        }
    }
}

/// Per-detector counters for the summary.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct DetectorStats {
    /// Observations the detector looked at.
    pub observed: u64,
    /// Alerts written.
    pub alerts: u64,
    /// Keys (sources, targets...) dropped to keep state bounded.
    pub state_evictions: u64,
}

/// One detector (see the module docs).
pub trait Detector: Send {
    /// Stable name (summary key, metrics label).
    fn name(&self) -> &'static str;
    /// A released observation, in release order.
    fn observe(&mut self, o: &Obs, cx: &Ctx, out: &mut Emit);
    /// Every observation up to `now_ns` has been seen: close what ended.
    fn advance(&mut self, now_ns: u64, cx: &Ctx, out: &mut Emit);
    /// A part its workers' [`PacketTap`]s shipped (only detectors whose
    /// [`Spec::tap`] makes one get any).
    fn tapped(&mut self, part: TapPart) {
        let _ = part;
    }
    fn stats(&self) -> DetectorStats;
}

#[cfg(test)]
mod tests;
