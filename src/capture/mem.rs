//! Floor L1 (`capture`). An in-memory source: frames loaded once, replayed `repeat` times
//! (shared, never copied) with
//! timestamps shifted so packet time keeps moving forward. For benches and
//! tests that must not measure file I/O.

use super::{CaptureError, InputReport, Next, PacketSource, SourceReport};
use crate::packet::{LinkType, RawFrame};
use std::sync::Arc;

/// One stored frame.
#[derive(Clone, Debug)]
pub struct MemFrame {
    pub ts_ns: u64,
    pub orig_len: u32,
    pub link: LinkType,
    pub data: Vec<u8>,
}

/// Replays stored frames `repeat` times. Each pass is shifted by the capture's
/// span plus `gap_ns`, so a small gap keeps flows alive across passes and a
/// large one makes them time out.
pub struct MemSource {
    frames: Arc<Vec<MemFrame>>,
    repeat: u64,
    gap_ns: u64,
    pass: u64,
    pos: usize,
    span_ns: u64,
    yielded: u64,
    bytes: u64,
}

impl MemSource {
    pub fn new(frames: Arc<Vec<MemFrame>>, repeat: u64, gap_ns: u64) -> MemSource {
        let span_ns = match (frames.first(), frames.last()) {
            (Some(a), Some(b)) => b.ts_ns.saturating_sub(a.ts_ns),
            _ => 0,
        };
        MemSource {
            frames,
            repeat,
            gap_ns,
            pass: 0,
            pos: 0,
            span_ns,
            yielded: 0,
            bytes: 0,
        }
    }

    /// Load every frame of capture files (merged by time) into memory.
    pub fn load(paths: &[std::path::PathBuf]) -> Result<Vec<MemFrame>, CaptureError> {
        let mut src = super::FileSource::open(paths)?;
        let mut out = Vec::new();
        while let Next::Frame(f) = src.next()? {
            out.push(MemFrame {
                ts_ns: f.ts_ns,
                orig_len: f.orig_len,
                link: f.link,
                data: f.data.to_vec(),
            });
        }
        Ok(out)
    }
}

impl PacketSource for MemSource {
    fn next(&mut self) -> Result<Next<'_>, CaptureError> {
        if self.pos == self.frames.len() {
            self.pass += 1;
            self.pos = 0;
        }
        if self.pass >= self.repeat || self.frames.is_empty() {
            return Ok(Next::End);
        }
        let shift = self.pass * (self.span_ns + self.gap_ns);
        let f = &self.frames[self.pos];
        self.pos += 1;
        self.yielded += 1;
        self.bytes += f.data.len() as u64;
        Ok(Next::Frame(RawFrame {
            ts_ns: f.ts_ns + shift,
            orig_len: f.orig_len,
            data: &f.data,
            link: f.link,
            source: 0,
        }))
    }

    fn report(&self) -> SourceReport {
        SourceReport {
            inputs: vec![InputReport {
                name: "memory".into(),
                format: "memory".into(),
                frames: self.yielded,
                bytes: self.bytes,
                ..Default::default()
            }],
        }
    }

    fn is_live(&self) -> bool {
        false
    }
}
