//! Floor L1 (`capture`). The classic pcap record loop. Floor L1 (capture).
//!
//! Owns: reading one record after another (microsecond or nanosecond
//! timestamps, either byte order, Kuznetzov's 24-byte "modified" headers) and
//! naming damage precisely (cut short, or a caplen over [`MAX_CAPLEN`]). The
//! common 16-byte record header is read by hand in place and inlined into the
//! capture loop; the end of the file, damage and 24-byte headers go through
//! `pcap_parser::pcap::parse_pcap_frame{,_be,_modified}` after a bounds check
//! that reads the record's caplen. Leaves alone: the file header (`format`) and
//! the map's windows (`window`).

use super::{rd_u32, u32_at, Input, Rec, MAX_CAPLEN};
use crate::packet::LinkType;

impl Input {
    /// The classic pcap hot loop: one record header read in place after a bounds
    /// check that names the damage. The 16-byte header is read by hand (the same
    /// fields as pcap-parser's `parse_pcap_frame`); the rare 24-byte "modified"
    /// header goes through pcap-parser.
    #[inline(always)]
    pub(super) fn next_pcap(
        &mut self,
        be: bool,
        nano: bool,
        rec_hdr: usize,
        link: LinkType,
    ) -> Option<Rec> {
        let pos = self.pos;
        let rest = self.map.get(pos..).unwrap_or_default();
        let (ts_sec, ts_frac, caplen, origlen) = match rest.first_chunk::<16>() {
            Some(h) if rec_hdr == 16 => (
                rd_u32([h[0], h[1], h[2], h[3]], be),
                rd_u32([h[4], h[5], h[6], h[7]], be),
                rd_u32([h[8], h[9], h[10], h[11]], be),
                rd_u32([h[12], h[13], h[14], h[15]], be),
            ),
            _ => return self.next_pcap_other(be, nano, rec_hdr, link),
        };
        let len = caplen as usize;
        if caplen > MAX_CAPLEN || len > rest.len() - 16 {
            return self.next_pcap_other(be, nano, rec_hdr, link);
        }
        let frac_ns = if nano {
            u64::from(ts_frac)
        } else {
            u64::from(ts_frac) * 1_000
        };
        let start = pos + 16;
        self.pos = start + len;
        Some(Rec {
            ts_ns: u64::from(ts_sec) * 1_000_000_000 + frac_ns,
            start,
            len,
            orig_len: origlen,
            link,
        })
    }

    /// [`Input::next_pcap`] for the end of the file, damage, and 24-byte headers.
    #[cold]
    #[inline(never)]
    fn next_pcap_other(
        &mut self,
        be: bool,
        nano: bool,
        rec_hdr: usize,
        link: LinkType,
    ) -> Option<Rec> {
        let pos = self.pos;
        let rest = self.map.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            self.done = true;
            return None;
        }
        let caplen = match u32_at(rest, 8, be) {
            Some(c) if rest.len() >= rec_hdr => c,
            _ => {
                self.stop(format!(
                    "file cut short: {} bytes of a record header at offset {pos}",
                    rest.len()
                ));
                return None;
            }
        };
        if caplen > MAX_CAPLEN {
            self.stop(format!(
                "record at offset {pos} claims {caplen} captured bytes, more than the {MAX_CAPLEN} maximum"
            ));
            return None;
        }
        let avail = rest.len() - rec_hdr;
        if caplen as usize > avail {
            self.stop(format!(
                "file cut short: record at offset {pos} claims {caplen} captured bytes, only {avail} remain"
            ));
            return None;
        }
        let parsed = if rec_hdr == 24 {
            pcap_parser::pcap::parse_pcap_frame_modified(rest)
        } else if be {
            pcap_parser::pcap::parse_pcap_frame_be(rest)
        } else {
            pcap_parser::pcap::parse_pcap_frame(rest)
        };
        let Ok((_, rec)) = parsed else {
            // Not reachable after the checks above; stop rather than guess.
            self.stop(format!("malformed record at offset {pos}"));
            return None;
        };
        let start = (rec.data.as_ptr() as usize).wrapping_sub(self.map.as_ptr() as usize);
        let len = rec.data.len();
        let frac_ns = if nano {
            u64::from(rec.ts_usec)
        } else {
            u64::from(rec.ts_usec) * 1_000
        };
        let r = Rec {
            ts_ns: u64::from(rec.ts_sec) * 1_000_000_000 + frac_ns,
            start,
            len,
            orig_len: rec.origlen,
            link,
        };
        self.pos = start + len;
        Some(r)
    }
}

#[cfg(test)]
mod test {
    use super::super::testkit::*;
    use crate::packet::LinkType;

    #[test]
    fn classic_little_endian_two_records() {
        let (got, rep) = open_one(&PCAP_LE, "le.pcap");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].ts_ns, 1_600_000_000_123_456_000);
        assert_eq!(got[0].data, [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(got[0].orig_len, 60);
        assert_eq!(got[0].link, LinkType::Ethernet);
        assert_eq!(got[1].ts_ns, 1_600_000_001_999_999_000);
        assert_eq!(got[1].data, [1, 2]);
        assert_eq!(got[1].orig_len, 2);
        assert_eq!(rep.format, "pcap");
        assert_eq!(rep.frames, 2);
        assert_eq!(rep.bytes, 6);
        assert_eq!(rep.link_types, ["ethernet"]);
        assert_eq!(rep.stopped_early, None);
        assert!(rep.skipped.is_empty());
    }

    #[test]
    fn classic_big_endian_reads_like_little_endian() {
        let (le, _) = open_one(&PCAP_LE, "le.pcap");
        let (be, rep) = open_one(&PCAP_BE, "be.pcap");
        assert_eq!(be, le);
        assert_eq!(rep.format, "pcap");
    }

    #[test]
    fn nanosecond_pcap() {
        let (got, rep) = open_one(&PCAP_NS, "ns.pcap");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].ts_ns, 1_600_000_000_123_456_789);
        assert_eq!(rep.format, "pcap-ns");
    }

    #[test]
    fn truncated_inside_record_data() {
        let (got, rep) = open_one(&PCAP_LE[..61], "cut.pcap");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, [0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(
            rep.stopped_early.as_deref(),
            Some("file cut short: record at offset 44 claims 2 captured bytes, only 1 remain")
        );
    }

    #[test]
    fn truncated_inside_record_header() {
        let (got, rep) = open_one(&PCAP_LE[..46], "cut.pcap");
        assert_eq!(got.len(), 1);
        assert_eq!(
            rep.stopped_early.as_deref(),
            Some("file cut short: 2 bytes of a record header at offset 44")
        );
    }

    #[test]
    fn bad_record_length_stops_the_input_and_names_the_offset() {
        let mut bad = PCAP_LE;
        bad[52..56].copy_from_slice(&4_325_376u32.to_le_bytes());
        let (got, rep) = open_one(&bad, "bad.pcap");
        assert_eq!(got.len(), 1);
        assert_eq!(
            rep.stopped_early.as_deref(),
            Some("record at offset 44 claims 4325376 captured bytes, more than the 262144 maximum")
        );
    }
}
