//! Floor L1 (`capture`). The k-way merge of several inputs by time. Floor L1 (capture).
//!
//! Owns: [`FileSource::next`](crate::capture::PacketSource::next) when there
//! is more than one input, with the merge state declared on
//! [`FileSource`] (`heads`, `primed`, `refill`): each input's next record is
//! the only candidate from that input, the earliest wins, ties go to the
//! lowest input index. A single input never comes here. Leaves alone: how an
//! input reads its records (`Input::advance`).

use super::FileSource;
use crate::capture::{CaptureError, Next};

impl FileSource {
    /// [`PacketSource::next`] over several inputs: a k-way merge by time.
    #[inline(never)]
    pub(super) fn next_merged(&mut self) -> Result<Next<'_>, CaptureError> {
        if !self.primed {
            for (h, inp) in self.heads.iter_mut().zip(self.inputs.iter_mut()) {
                *h = inp.advance();
            }
            self.primed = true;
        }
        if let Some(i) = self.refill.take() {
            if let (Some(h), Some(inp)) = (self.heads.get_mut(i), self.inputs.get_mut(i)) {
                *h = inp.advance();
            }
        }
        // Small linear scan: strict `<` keeps the lowest input index on ties, and each
        // input's own order is kept because only its next record is a candidate.
        let mut best: Option<(usize, u64)> = None;
        for (i, h) in self.heads.iter().enumerate() {
            if let Some(r) = h {
                if best.is_none_or(|(_, t)| r.ts_ns < t) {
                    best = Some((i, r.ts_ns));
                }
            }
        }
        let Some((i, _)) = best else {
            return Ok(Next::End);
        };
        let (Some(r), Some(inp)) = (
            self.heads.get_mut(i).and_then(Option::take),
            self.inputs.get_mut(i),
        ) else {
            return Ok(Next::End);
        };
        self.refill = Some(i);
        Ok(Next::Frame(inp.frame(r, i as u16)))
    }
}

#[cfg(test)]
mod test {
    use super::super::testkit::*;
    use super::FileSource;
    use crate::capture::PacketSource;

    #[test]
    fn damaged_input_does_not_stop_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bad = PCAP_LE;
        bad[52..56].copy_from_slice(&4_325_376u32.to_le_bytes());
        let a = write(&dir, "bad.pcap", &bad);
        let b = write(&dir, "good.pcap", &PCAP_BE);
        let mut src = FileSource::open(&[a, b]).expect("open");
        let got = drain(&mut src);
        let sources: Vec<u16> = got.iter().map(|g| g.source).collect();
        assert_eq!(sources, [0, 1, 1]);
        let rep = src.report();
        assert!(rep.inputs[0].stopped_early.is_some());
        assert_eq!(rep.inputs[1].stopped_early, None);
        assert_eq!(rep.inputs[1].frames, 2);
    }

    #[test]
    fn merge_interleaves_by_time_and_breaks_ties_by_input_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let le = write(&dir, "le.pcap", &PCAP_LE);
        let ns = write(&dir, "ns.pcap", &PCAP_NS);
        let be = write(&dir, "be.pcap", &PCAP_BE);
        // le: .123456000, 1.999999000; ns: .123456789; be: same times as le.
        let mut src = FileSource::open(&[le, ns, be]).expect("open");
        let got = drain(&mut src);
        let order: Vec<(u16, u64)> = got.iter().map(|g| (g.source, g.ts_ns)).collect();
        assert_eq!(
            order,
            [
                (0, 1_600_000_000_123_456_000),
                (2, 1_600_000_000_123_456_000),
                (1, 1_600_000_000_123_456_789),
                (0, 1_600_000_001_999_999_000),
                (2, 1_600_000_001_999_999_000),
            ]
        );
        let total = (PCAP_LE.len() + PCAP_NS.len() + PCAP_BE.len()) as u64;
        assert_eq!(src.progress(), (total, total));
        let rep = src.report();
        let frames: Vec<u64> = rep.inputs.iter().map(|i| i.frames).collect();
        assert_eq!(frames, [2, 1, 2]);
    }
}
