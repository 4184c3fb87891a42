//! A classic pcap writer (nanosecond variant): the 24-byte file header and a
//! 16-byte header per record. Written by hand: it is two fixed little-endian
//! structs (<https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html>),
//! smaller than any dependency, and `tshark`/Wireshark read it (tested).

use crate::packet::LinkType;
use std::io::{self, Write};

/// Magic of a pcap file whose timestamps' fraction is in nanoseconds.
pub const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// Snap length written in the header: the largest frame the readers accept.
pub const SNAPLEN: u32 = 262_144;
/// Bytes of the file header.
pub const FILE_HEADER: u64 = 24;
/// Bytes of a record header.
pub const RECORD_HEADER: u64 = 16;

/// Write the file header for `link`.
pub fn write_header(w: &mut impl Write, link: LinkType) -> io::Result<()> {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC_NS.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs stay 0.
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&link.number().to_le_bytes());
    w.write_all(&h)
}

/// Write one record: capture time `ts_ns`, captured `data`, length on the wire `orig_len`.
pub fn write_record(w: &mut impl Write, ts_ns: u64, orig_len: u32, data: &[u8]) -> io::Result<()> {
    let mut h = [0u8; 16];
    let secs = u32::try_from(ts_ns / 1_000_000_000).unwrap_or(u32::MAX);
    let frac = (ts_ns % 1_000_000_000) as u32;
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    h[0..4].copy_from_slice(&secs.to_le_bytes());
    h[4..8].copy_from_slice(&frac.to_le_bytes());
    h[8..12].copy_from_slice(&len.to_le_bytes());
    h[12..16].copy_from_slice(&orig_len.max(len).to_le_bytes());
    w.write_all(&h)?;
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
