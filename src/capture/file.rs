//! Replay of pcap / pcapng files: mmap'd, parsed with pcap-parser, several
//! files merged by timestamp.
use super::{CaptureError, Next, PacketSource, SourceReport};
use std::path::PathBuf;

/// One or more capture files merged in timestamp order.
pub struct FileSource {}

impl FileSource {
    /// Open every file (format by magic, not extension). Fails if any file cannot be
    /// opened, is not a capture, or uses an unsupported link type.
    pub fn open(paths: &[PathBuf]) -> Result<FileSource, CaptureError> {
        let _ = paths;
        todo!()
    }
}

impl PacketSource for FileSource {
    fn next(&mut self) -> Result<Next<'_>, CaptureError> {
        todo!()
    }
    fn report(&self) -> SourceReport {
        todo!()
    }
    fn is_live(&self) -> bool {
        false
    }
}
