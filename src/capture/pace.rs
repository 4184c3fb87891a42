//! `--speed X`: replay paced by packet timestamps.
use super::{CaptureError, Next, PacketSource, SourceReport};

/// Wraps a source and releases each frame no earlier than
/// `first_wall + (ts - first_ts) / speed`. Sleeps in slices of at most 100 ms,
/// returning `Next::Idle` between them so the pipeline can notice Ctrl-C.
pub struct Paced<S> {
    pub inner: S,
    pub speed: f64,
}

impl<S: PacketSource> PacketSource for Paced<S> {
    fn next(&mut self) -> Result<Next<'_>, CaptureError> {
        todo!()
    }
    fn report(&self) -> SourceReport {
        self.inner.report()
    }
    fn progress(&self) -> (u64, u64) {
        self.inner.progress()
    }
    fn is_live(&self) -> bool {
        false
    }
}
