//! Floor L1. Packet sources: replay files (mmap + pcap-parser) and live interfaces (libpcap).
//!
//! Only this module touches capture formats; only `live.rs` imports the `pcap` crate.
//! A source yields borrowed [`RawFrame`]s one at a time; the pipeline decodes each
//! before asking for the next, so no frame is ever copied.

pub mod clock;
// Unsafe: memmap2's map of a replay file (the file may change under the
// mapping: the reader checks every length against the window it holds).
#[allow(unsafe_code)]
pub mod file;
pub mod mem;
pub mod pace;

use crate::packet::RawFrame;
use serde::Serialize;
use std::path::PathBuf;

pub use file::{FileSource, MAX_CAPLEN};
pub use live::{LiveConfig, LiveSource};
pub use mem::{MemFrame, MemSource};
pub use pace::{InvalidSpeed, Paced};

/// The live sources `run --interface [KIND::]IFACE` can open, one line each:
/// `"KIND" => module::Type,` (the line declares the module; the first entry is
/// the one an interface without a `KIND::` prefix gets, as Zeek names its
/// packet sources `af_packet::eth0`). A new live source is its file here,
/// implementing [`LiveOpen`], and one line in this list.
macro_rules! live_sources {
    ($($(#[$attr:meta])* $kind:literal => $m:ident :: $ty:ident,)*) => {
        $($(#[$attr])* pub mod $m;)*

        /// The kinds of live source, in the registry's order (the first is the default).
        pub const LIVE_SOURCES: &[&str] = &[$($kind),*];

        /// Open the live source `cfg.iface` names (`KIND::IFACE`, or `IFACE` for
        /// the first kind) and hand it to `user` with its concrete type, so the
        /// capture loop stays monomorphic.
        pub fn open_live<U: SourceUser>(cfg: &LiveConfig, user: U) -> Result<U::Out, CaptureError> {
            let (kind, iface) = split_kind(&cfg.iface);
            let cfg = LiveConfig {
                iface: iface.to_string(),
                ..cfg.clone()
            };
            $(
                if kind.is_none_or(|k| k == $kind) {
                    return Ok(user.run(<$m::$ty as LiveOpen>::open(&cfg)?));
                }
            )*
            Err(CaptureError::UnknownLiveSource {
                iface: cfg.iface,
                kind: kind.unwrap_or_default().to_string(),
                known: LIVE_SOURCES.join(", "),
            })
        }
    };
}

live_sources! {
    // Unsafe: poll() on libpcap's selectable fd, so a stop request is seen at once.
    #[allow(unsafe_code)]
    "pcap" => live::LiveSource,
}

/// `KIND::IFACE` split; `IFACE` alone has no kind.
fn split_kind(iface: &str) -> (Option<&str>, &str) {
    match iface.split_once("::") {
        Some((k, i)) => (Some(k), i),
        None => (None, iface),
    }
}

/// A live source the registry opens ([`open_live`]).
pub trait LiveOpen: PacketSource + Sized {
    fn open(cfg: &LiveConfig) -> Result<Self, CaptureError>;
    /// The link type of its frames (said when the capture starts).
    fn link_name(&self) -> &'static str;
}

/// What runs a source once it is open (the application: outputs, privileges,
/// the pipeline), called with the source's concrete type: a call up through a
/// trait, generic so nothing dispatches per packet.
pub trait SourceUser {
    type Out;
    fn run<S: LiveOpen>(self, source: S) -> Self::Out;
}

/// What a source has for the pipeline.
#[derive(Debug)]
pub enum Next<'a> {
    /// A frame, borrowed until the next call.
    Frame(RawFrame<'a>),
    /// Live capture only: nothing is buffered (once right after the buffer was
    /// drained, then once per read timeout while the link stays quiet). `now_ns` is
    /// the wall clock, so flows can still time out while the link is quiet.
    Idle { now_ns: Option<u64> },
    /// Every input is exhausted (or stopped at damage; see [`SourceReport`]).
    End,
}

/// A stream of frames from one or more inputs.
pub trait PacketSource {
    /// The next frame in timestamp order (files) or arrival order (live).
    fn next(&mut self) -> Result<Next<'_>, CaptureError>;
    /// Per-input counters and anomalies so far.
    fn report(&self) -> SourceReport;
    /// (bytes consumed, bytes total) for a progress bar; total 0 when unknown (live).
    fn progress(&self) -> (u64, u64) {
        (0, 0)
    }
    /// Re-read counters that cost a system call (libpcap's `pcap_stats`) so the
    /// next [`PacketSource::report`] is current. Live sources also refresh on their
    /// own every few thousand frames and on every read timeout; call this once after
    /// the last `next` and before the final `report`. Files: nothing to do.
    fn refresh_counters(&mut self) {}
    /// True for live capture: the pipeline must never block on a full queue.
    fn is_live(&self) -> bool;
}

impl<S: PacketSource + ?Sized> PacketSource for Box<S> {
    fn next(&mut self) -> Result<Next<'_>, CaptureError> {
        (**self).next()
    }
    fn report(&self) -> SourceReport {
        (**self).report()
    }
    fn progress(&self) -> (u64, u64) {
        (**self).progress()
    }
    fn refresh_counters(&mut self) {
        (**self).refresh_counters()
    }
    fn is_live(&self) -> bool {
        (**self).is_live()
    }
}

/// Counters for all inputs of a source.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SourceReport {
    pub inputs: Vec<InputReport>,
}

/// Counters and anomalies of one input (file or interface).
#[derive(Clone, Debug, Default, Serialize)]
pub struct InputReport {
    /// File path or interface name.
    pub name: String,
    /// The source name alerts carry as `in_iface`: the interface, or for a
    /// replay the `NAME` of `NAME=PATH`, else the file's (or its directory's) name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// "pcap", "pcap-ns" (nanosecond pcap), "pcapng", "empty" (0-byte file) or "live".
    pub format: String,
    /// Link types seen (LinkType::as_str names): a classic pcap's header link type;
    /// for pcapng the link types of the frames delivered.
    pub link_types: Vec<String>,
    /// Frames yielded.
    pub frames: u64,
    /// Captured bytes yielded (sum of caplen).
    pub bytes: u64,
    /// Why this input ended before its end, with the byte offset (e.g. "record at
    /// offset 5035 claims 4325376 captured bytes, more than the 262144 maximum",
    /// "file cut short: 2 bytes of a record header at offset 8877"). Every frame
    /// before that point was delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<String>,
    /// Records skipped but not fatal, by reason: "unknown_block_type",
    /// "undefined_interface", "caplen_over_262144", `"invalid_if_tsresol:<n>"`,
    /// "unsupported_linktype:LINKTYPE_IEEE802_11 (105)" (pcapng packets on an
    /// interface whose link type zonewatch does not read).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// libpcap counters (live only): ps_recv, ps_drop, ps_ifdrop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveCounters>,
}

/// libpcap's own counters for a live capture.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct LiveCounters {
    /// Packets received by the filter (ps_recv).
    pub received: u64,
    /// Packets dropped because the kernel buffer was full (ps_drop).
    pub dropped: u64,
    /// Packets dropped by the interface or driver (ps_ifdrop).
    pub if_dropped: u64,
}

/// Errors that stop a source from starting (damage inside a file is not an
/// error: the input stops there and its report says why).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file (first bytes {magic})")]
    NotACapture { path: PathBuf, magic: String },
    #[error("{path}: unsupported capture format: {detail}")]
    Unsupported { path: PathBuf, detail: String },
    #[error("{path}: unsupported link type {linktype}; zonewatch reads Ethernet, Linux SLL/SLL2, raw IPv4/IPv6 and BSD loopback")]
    UnsupportedLinkType { path: PathBuf, linktype: String },
    #[error("interface {iface}: {detail}")]
    Live { iface: String, detail: String },
    #[error("no input files given")]
    NoInput,
    #[error("interface {iface}: no live source {kind:?} (known: {known})")]
    UnknownLiveSource {
        iface: String,
        kind: String,
        known: String,
    },
}
