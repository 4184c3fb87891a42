//! Floor L4 (`evidence`). Evidence files are classic pcap, nanosecond variant; the headers are the
//! crate's one pcap writer's (`crate::model::pcap`), which `tshark` and
//! Wireshark read (tested).

use crate::packet::LinkType;
use std::io::{self, Write};

use crate::model::pcap::{file_header, record_header, TsUnit};
pub use crate::model::pcap::{MAGIC_NS, SNAPLEN};

/// Bytes of the file header.
pub const FILE_HEADER: u64 = 24;
/// Bytes of a record header.
pub const RECORD_HEADER: u64 = 16;

/// Write the file header for `link`.
pub fn write_header(w: &mut impl Write, link: LinkType) -> io::Result<()> {
    w.write_all(&file_header(link.number(), TsUnit::Nano))
}

/// Write one record: capture time `ts_ns`, captured `data`, length on the wire `orig_len`.
pub fn write_record(w: &mut impl Write, ts_ns: u64, orig_len: u32, data: &[u8]) -> io::Result<()> {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    w.write_all(&record_header(ts_ns, len, orig_len.max(len), TsUnit::Nano))?;
    w.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_record_read_back_with_the_replay_reader() {
        let mut f = Vec::new();
        write_header(&mut f, LinkType::Raw).expect("header");
        let pkt = [
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
        ];
        write_record(&mut f, 1_700_000_000_123_456_789, 1500, &pkt).expect("record");
        assert_eq!(
            f.len() as u64,
            FILE_HEADER + RECORD_HEADER + pkt.len() as u64
        );
        let dir = std::env::temp_dir().join(format!("zw-pcapw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("one.pcap");
        std::fs::write(&path, &f).expect("write");
        let mut src = crate::capture::FileSource::open(std::slice::from_ref(&path)).expect("open");
        use crate::capture::{Next, PacketSource};
        match src.next().expect("next") {
            Next::Frame(fr) => {
                assert_eq!(fr.ts_ns, 1_700_000_000_123_456_789);
                assert_eq!(fr.orig_len, 1500);
                assert_eq!(fr.data, &pkt[..]);
                assert_eq!(fr.link, LinkType::Raw);
            }
            _ => panic!("no frame"),
        }
        assert!(matches!(src.next().expect("end"), Next::End));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
