//! Floor L0 (`model`). The classic pcap format as bytes: the 24-byte file header and the 16-byte
//! record header, little-endian (<https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html>).
//! The one writer of the crate: evidence files (nanoseconds) and the benchmark
//! generator `zonewatch-gen` (microseconds) both build their headers here.

/// Snap length written in the file header: the largest frame the readers accept.
pub const SNAPLEN: u32 = 262_144;
/// Magic of a pcap file whose timestamps' fraction is in microseconds.
pub const MAGIC_US: u32 = 0xa1b2_c3d4;
/// Magic of a pcap file whose timestamps' fraction is in nanoseconds.
pub const MAGIC_NS: u32 = 0xa1b2_3c4d;

/// The unit of a record timestamp's fraction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsUnit {
    Micro,
    Nano,
}

/// The file header: version 2.4, no time zone, [`SNAPLEN`], link type `link`
/// (a LINKTYPE_* number).
pub fn file_header(link: u32, unit: TsUnit) -> [u8; 24] {
    let magic = match unit {
        TsUnit::Micro => MAGIC_US,
        TsUnit::Nano => MAGIC_NS,
    };
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&magic.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone and sigfigs stay 0.
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&link.to_le_bytes());
    h
}

/// A record header: time `ts_ns` (ns since the Unix epoch; seconds saturate
/// past 2106), `caplen` bytes captured of `orig_len` on the wire.
#[inline]
pub fn record_header(ts_ns: u64, caplen: u32, orig_len: u32, unit: TsUnit) -> [u8; 16] {
    let secs = u32::try_from(ts_ns / 1_000_000_000).unwrap_or(u32::MAX);
    let frac = match unit {
        TsUnit::Micro => (ts_ns % 1_000_000_000 / 1000) as u32,
        TsUnit::Nano => (ts_ns % 1_000_000_000) as u32,
    };
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&secs.to_le_bytes());
    h[4..8].copy_from_slice(&frac.to_le_bytes());
    h[8..12].copy_from_slice(&caplen.to_le_bytes());
    h[12..16].copy_from_slice(&orig_len.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_the_classic_layout() {
        let h = file_header(1, TsUnit::Micro);
        assert_eq!(&h[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&h[4..8], &[2, 0, 4, 0]);
        assert_eq!(&h[16..24], &[0, 0, 4, 0, 1, 0, 0, 0]);
        assert_eq!(
            &file_header(1, TsUnit::Nano)[0..4],
            &[0x4d, 0x3c, 0xb2, 0xa1]
        );
        let r = record_header(1_700_000_000_123_456_789, 60, 1514, TsUnit::Micro);
        assert_eq!(u32::from_le_bytes([r[0], r[1], r[2], r[3]]), 1_700_000_000);
        assert_eq!(u32::from_le_bytes([r[4], r[5], r[6], r[7]]), 123_456);
        assert_eq!(u32::from_le_bytes([r[8], r[9], r[10], r[11]]), 60);
        assert_eq!(u32::from_le_bytes([r[12], r[13], r[14], r[15]]), 1514);
        let n = record_header(1_700_000_000_123_456_789, 60, 60, TsUnit::Nano);
        assert_eq!(u32::from_le_bytes([n[4], n[5], n[6], n[7]]), 123_456_789);
    }
}
