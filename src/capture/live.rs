//! Live capture through libpcap. The only module that imports the `pcap` crate.
use super::{CaptureError, Next, PacketSource, SourceReport};

/// Options for opening an interface.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    pub iface: String,
    pub promisc: bool,
    pub snaplen: i32,
    /// Kernel buffer size in bytes.
    pub buffer_bytes: i32,
    /// BPF filter expression, if any.
    pub filter: Option<String>,
    /// Read timeout: how often `next` returns `Idle` on a quiet link.
    pub timeout_ms: i32,
}

pub struct LiveSource {}

impl LiveSource {
    pub fn open(cfg: &LiveConfig) -> Result<LiveSource, CaptureError> {
        let _ = cfg;
        todo!()
    }
}

impl PacketSource for LiveSource {
    fn next(&mut self) -> Result<Next<'_>, CaptureError> {
        todo!()
    }
    fn report(&self) -> SourceReport {
        todo!()
    }
    fn is_live(&self) -> bool {
        true
    }
}
