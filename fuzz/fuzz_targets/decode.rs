//! Decode never panics on any bytes, for any link type and original length,
//! and the fast path, where it applies, agrees with the slow path.
//! Input: byte 0 picks the link type and an original-length surplus; the rest
//! is the frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use zonewatch::decode::{decode, decode_fast, decode_slow, DecodeStats, LinkIds};
use zonewatch::packet::{LinkType, PacketMeta, RawFrame};

fuzz_target!(|input: &[u8]| {
    let Some((&sel, data)) = input.split_first() else {
        return;
    };
    let link = LinkType::ALL[usize::from(sel) % LinkType::ALL.len()];
    let surplus = u32::from(sel >> 3) * 97;
    let frame = RawFrame {
        ts_ns: 1,
        orig_len: data.len() as u32 + surplus,
        data,
        link,
        source: 0,
    };
    let mut links = LinkIds::new();
    let mut meta = PacketMeta::default();
    let r = decode(&frame, &mut links, &mut meta);
    let mut slow = PacketMeta::default();
    let rs = decode_slow(&frame, &mut LinkIds::new(), &mut slow);
    assert_eq!((meta, r), (slow, rs));
    let mut fast = PacketMeta::default();
    if decode_fast(&frame, &mut fast) {
        assert_eq!((fast, Ok(())), (slow, rs));
    }
    let mut stats = DecodeStats::new();
    stats.record(&frame, &meta, r);
});
