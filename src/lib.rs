//! zonewatch: a network sensor for Japanese municipal three-tier networks.
//!
//! Data flow (see ARCHITECTURE.md):
//! `capture` (frames) → `decode` (PacketMeta) → `pipeline` (hash, batch, dispatch)
//! → worker threads (`flow` tables) → outputs (flow lines, `summary`).

// No unsafe code, except in the modules that say why they need it.
#![deny(unsafe_code)]

pub mod alert;
pub mod app;
pub mod capture;
pub mod cli;
pub mod decode;
pub mod detect;
pub mod evidence;
pub mod flow;
pub mod format;
pub mod metrics;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod policy;
pub mod report;
pub mod sink;
pub mod summary;

/// The packet and flow keys (floor L0), at their historical path.
pub use model::packet;
