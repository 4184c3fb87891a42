//! Floor L0, the model: the small types and pure functions every other floor
//! shares, importing nothing of the crate. Packet and flow keys (`packet`),
//! protocol names and ICMP port equivalents (`proto`), Community ID
//! (`community_id`), time formatting (`time`), `Severity`, `Cidr` (one
//! strictness for every rules-file address), well-known service names
//! (`services`) and the hash maps keyed by addresses a sender chooses (`maps`).
//!
//! The floors (ARCHITECTURE.md): L0 model; L1 capture, decode, policy; L2 flow;
//! L3 detect, alert; L4 evidence, metrics, output; L5 pipeline; L6 app, cli,
//! report, summary. Imports only go down (`tools/layers.py` checks it).

pub mod cidr;
pub mod community_id;
pub mod maps;
pub mod packet;
pub mod pcap;
pub mod proto;
pub mod services;
pub mod severity;
pub mod time;

pub use cidr::{parse_cidr, Cidr};
pub use severity::Severity;
