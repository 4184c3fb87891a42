//! zonewatch: a network sensor for Japanese municipal three-tier networks.
//!
//! Data flow (see ARCHITECTURE.md):
//! `capture` (frames) → `decode` (PacketMeta) → `pipeline` (hash, batch, dispatch)
//! → worker threads (`flow` tables) → outputs (`output`, `summary`).

pub mod capture;
pub mod decode;
pub mod flow;
pub mod packet;
