//! Floor L1 (`capture`). pcapng block handling. Floor L1 (capture).
//!
//! Owns: one block at a time (section headers and their byte order, interface
//! descriptions with `if_tsresol` and `if_tsoffset`, enhanced, simple and
//! obsolete packet blocks; other blocks pass, unknown ones are counted), and
//! damage inside a pcapng file. Leaves alone: the checks of the first section
//! header at open (`format`) and the map's windows (`window`).
//!
//! Parsing choices (measured):
//! - EPBs go straight to `pcap_parser::pcapng::parse_enhancedpacketblock_le/_be`
//!   (going through `parse_block_*` and its `Block` enum cost ~15% more CPU), every other
//!   block through `parse_block_le/_be`. pcap-parser allocates a `Vec` for a block's
//!   options, so EPBs that carry options (comments, `epb_flags`) cost one allocation
//!   each; option-less EPBs (what tcpdump/dumpcap write by default) cost none.
//!   pcapng costs ~60 ns of CPU per packet against ~14 ns for classic pcap.

use super::{u32_at, Input, Rec, MAX_CAPLEN};
use crate::packet::{linktype_name, LinkType};
use pcap_parser::pcapng::{Block, OptionCode};

pub(super) const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
pub(super) const PCAPNG_BOM: u32 = 0x1A2B_3C4D;
/// Obsolete Packet Block (pcapng draft, written by very old tools).
const PCAPNG_OPB: u32 = 0x0000_0002;
const IDB: u32 = 0x0000_0001;
const SPB: u32 = 0x0000_0003;
const EPB: u32 = 0x0000_0006;

/// Timestamp conversion of one pcapng interface.
#[derive(Clone, Copy, Debug)]
struct TsConv {
    /// Ticks per second (`if_tsresol`), 0 when the option value is unusable.
    units: u64,
    /// `if_tsoffset`, seconds added to every timestamp.
    offset_s: i64,
}

impl TsConv {
    /// Exact integer conversion (truncating below 1 ns for power-of-2 resolutions).
    #[inline]
    fn to_ns(self, ticks: u64) -> u64 {
        let base = match self.units {
            1_000_000 => ticks.saturating_mul(1_000),
            1_000_000_000 => ticks,
            0 => 0,
            u => {
                let ns = u128::from(ticks) * 1_000_000_000 / u128::from(u);
                u64::try_from(ns).unwrap_or(u64::MAX)
            }
        };
        if self.offset_s == 0 {
            base
        } else {
            let t = i128::from(base) + i128::from(self.offset_s) * 1_000_000_000;
            u64::try_from(t.max(0)).unwrap_or(u64::MAX)
        }
    }
}

/// `if_tsresol` byte → ticks per second: bit 7 clear = 10^-n, set = 2^-n.
/// (pcap-parser 0.17's `build_ts_resolution` rejects every power-of-2 value.)
fn tsresol_units(b: u8) -> Option<u64> {
    if b & 0x80 == 0 {
        10u64.checked_pow(u32::from(b))
    } else {
        1u64.checked_shl(u32::from(b & 0x7f))
    }
}

#[derive(Debug)]
pub(super) struct Iface {
    pub(super) link: Option<LinkType>,
    snaplen: u32,
    ts: TsConv,
    /// Skip reason for packets on this interface (unsupported link type or bad
    /// `if_tsresol`), built once when the IDB is read.
    pub(super) skip: Option<String>,
}

/// What one pcapng block step produced.
pub(super) enum Step {
    Frame(Rec),
    /// A metadata block (or a skipped packet) was consumed.
    Again,
    /// Open-time prescan only: the next block is a packet block (not consumed).
    PacketAhead,
    /// The input ended (cleanly or at damage).
    Done,
}

impl Input {
    /// Handle one pcapng block at `pos`. With `prescan`, a packet block is left
    /// unconsumed (`PacketAhead`).
    pub(super) fn ng_step(&mut self, prescan: bool) -> Step {
        let pos = self.pos;
        let rest = self.map.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            self.done = true;
            return Step::Done;
        }
        if rest.len() < 12 {
            self.stop(format!(
                "file cut short: {} bytes of a block header at offset {pos}",
                rest.len()
            ));
            return Step::Done;
        }
        let btype_le = u32_at(rest, 0, false).unwrap_or(0);
        let mut be = self.ng_be;
        if btype_le == PCAPNG_SHB {
            be = match u32_at(rest, 8, false).unwrap_or(0) {
                PCAPNG_BOM => false,
                x if x == PCAPNG_BOM.swap_bytes() => true,
                x => {
                    self.stop(format!(
                        "section header at offset {pos} has an invalid byte-order magic 0x{x:08x}"
                    ));
                    return Step::Done;
                }
            };
        }
        let btype = if be { btype_le.swap_bytes() } else { btype_le };
        let blen = u32_at(rest, 4, be).unwrap_or(0);
        if blen < 12 || !blen.is_multiple_of(4) {
            self.stop(format!(
                "block at offset {pos} (type 0x{btype:08x}) has invalid length {blen}"
            ));
            return Step::Done;
        }
        let blen_us = blen as usize;
        let Some(block) = rest.get(..blen_us) else {
            self.stop(format!(
                "file cut short: block at offset {pos} (type 0x{btype:08x}) claims {blen} bytes, only {} remain",
                rest.len()
            ));
            return Step::Done;
        };
        let trailer = u32_at(block, blen_us - 4, be).unwrap_or(0);
        if trailer != blen {
            self.stop(format!(
                "block at offset {pos} (type 0x{btype:08x}): trailing length {trailer} differs from leading length {blen}"
            ));
            return Step::Done;
        }
        let is_packet = matches!(btype, EPB | SPB | PCAPNG_OPB);
        if prescan && is_packet {
            return Step::PacketAhead;
        }
        let next_pos = pos + blen_us;

        if btype == PCAPNG_OPB {
            // Obsolete Packet Block: if_id u16, drops u16, ts_high, ts_low, caplen, len, data.
            let parsed = (|| {
                let idw = u32_at(block, 8, be)?;
                let if_id = if be { idw >> 16 } else { idw & 0xffff };
                let hi = u32_at(block, 12, be)?;
                let lo = u32_at(block, 16, be)?;
                let caplen = u32_at(block, 20, be)?;
                let orig = u32_at(block, 24, be)?;
                // Data must fit before the 4-byte trailer.
                (28 + caplen as usize <= blen_us - 4).then_some((if_id, hi, lo, caplen, orig))
            })();
            self.pos = next_pos;
            return match parsed {
                Some((if_id, hi, lo, caplen, orig)) => {
                    self.packet(if_id, hi, lo, caplen, orig, pos + 28)
                }
                None => {
                    self.stop(format!(
                        "malformed packet block at offset {pos}: captured length runs past the block end"
                    ));
                    Step::Done
                }
            };
        }

        let base = self.map.as_ptr() as usize;
        if btype == EPB {
            // Hot path: straight to the EPB parser, no `Block` enum to build and move.
            let parsed = if be {
                pcap_parser::pcapng::parse_enhancedpacketblock_be(block)
            } else {
                pcap_parser::pcapng::parse_enhancedpacketblock_le(block)
            };
            return match parsed {
                Ok((_, epb)) => {
                    let start = (epb.data.as_ptr() as usize).wrapping_sub(base);
                    let (if_id, hi, lo, caplen, orig) =
                        (epb.if_id, epb.ts_high, epb.ts_low, epb.caplen, epb.origlen);
                    drop(epb);
                    self.pos = next_pos;
                    self.packet(if_id, hi, lo, caplen, orig, start)
                }
                Err(e) => {
                    let incomplete = matches!(e, pcap_parser::nom::Err::Incomplete(_));
                    self.malformed(btype, pos, incomplete)
                }
            };
        }
        let parsed = if be {
            pcap_parser::pcapng::parse_block_be(block)
        } else {
            pcap_parser::pcapng::parse_block_le(block)
        };
        let b = match parsed {
            Ok((_, b)) => b,
            Err(e) => {
                let incomplete = matches!(e, pcap_parser::nom::Err::Incomplete(_));
                return self.malformed(btype, pos, incomplete);
            }
        };
        self.pos = next_pos;
        match b {
            Block::SectionHeader(shb) => {
                if shb.major_version != 1 {
                    self.stop(format!(
                        "section at offset {pos}: pcapng major version {} unsupported",
                        shb.major_version
                    ));
                    return Step::Done;
                }
                self.ng_be = shb.big_endian();
                self.ifaces.clear();
                Step::Again
            }
            Block::InterfaceDescription(idb) => {
                let raw = u32::from(idb.linktype.0 as u16);
                let link = LinkType::from_number(raw);
                let mut resol = 6u8;
                let mut offset_s = 0i64;
                for o in &idb.options {
                    let Ok(v) = o.as_bytes() else { continue };
                    if o.code == OptionCode::IfTsresol {
                        if let Some(&r) = v.first() {
                            resol = r;
                        }
                    } else if o.code == OptionCode::IfTsoffset {
                        if let Ok(a) = <[u8; 8]>::try_from(v) {
                            offset_s = if be {
                                i64::from_be_bytes(a)
                            } else {
                                i64::from_le_bytes(a)
                            };
                        }
                    }
                }
                let units = tsresol_units(resol);
                let skip = if link.is_none() {
                    Some(format!("unsupported_linktype:{}", linktype_name(raw)))
                } else if units.is_none() {
                    Some(format!("invalid_if_tsresol:{resol}"))
                } else {
                    None
                };
                self.ifaces.push(Iface {
                    link,
                    snaplen: idb.snaplen,
                    ts: TsConv {
                        units: units.unwrap_or(0),
                        offset_s,
                    },
                    skip,
                });
                Step::Again
            }
            Block::SimplePacket(spb) => {
                let start = (spb.data.as_ptr() as usize).wrapping_sub(base);
                let (orig, room) = (spb.origlen, spb.data.len());
                let Some(iface) = self.ifaces.first() else {
                    self.skip("undefined_interface");
                    return Step::Again;
                };
                if let Some(r) = &iface.skip {
                    let r = r.clone();
                    self.skip(&r);
                    return Step::Again;
                }
                let mut len = (orig as usize).min(room);
                if iface.snaplen > 0 {
                    len = len.min(iface.snaplen as usize);
                }
                let link = iface.link.unwrap_or(LinkType::Ethernet);
                Step::Frame(Rec {
                    ts_ns: self.last_ts,
                    start,
                    len,
                    orig_len: orig,
                    link,
                })
            }
            Block::Unknown(_) => {
                self.skip("unknown_block_type");
                Step::Again
            }
            // Name resolution, statistics, secrets, journal, process, custom blocks:
            // metadata that carries no packet. (EPBs were handled above.)
            _ => Step::Again,
        }
    }

    #[cold]
    fn malformed(&mut self, btype: u32, pos: usize, incomplete: bool) -> Step {
        let what = if incomplete {
            "contents run past the block end"
        } else {
            "invalid contents"
        };
        let name = match btype {
            PCAPNG_SHB => "section header".to_string(),
            IDB => "interface description".to_string(),
            EPB => "enhanced packet".to_string(),
            SPB => "simple packet".to_string(),
            _ => format!("type 0x{btype:08x}"),
        };
        self.stop(format!("malformed {name} block at offset {pos}: {what}"));
        Step::Done
    }

    /// A packet of an EPB/OPB whose data starts at `start` in the map.
    #[inline]
    fn packet(
        &mut self,
        if_id: u32,
        hi: u32,
        lo: u32,
        caplen: u32,
        orig: u32,
        start: usize,
    ) -> Step {
        let Some(iface) = self.ifaces.get(if_id as usize) else {
            self.skip("undefined_interface");
            return Step::Again;
        };
        if let Some(r) = &iface.skip {
            // Clone only to end the borrow; `skip` allocates only on a new reason.
            let r = r.clone();
            self.skip(&r);
            return Step::Again;
        }
        if caplen > MAX_CAPLEN {
            // The block framing is intact, so only this packet is lost.
            self.skip("caplen_over_262144");
            return Step::Again;
        }
        let link = iface.link.unwrap_or(LinkType::Ethernet);
        let ts_ns = iface.ts.to_ns((u64::from(hi) << 32) | u64::from(lo));
        self.last_ts = ts_ns;
        Step::Frame(Rec {
            ts_ns,
            start,
            len: caplen as usize,
            orig_len: orig,
            link,
        })
    }
}

#[cfg(test)]
mod test {
    use super::super::testkit::*;
    use crate::packet::LinkType;

    #[test]
    fn pcapng_interfaces_with_different_resolutions_and_link_types() {
        let (got, rep) = open_one(&PCAPNG_4IDB, "four.pcap"); // wrong extension on purpose
        assert_eq!(rep.format, "pcapng");
        let ts: Vec<u64> = got.iter().map(|g| g.ts_ns).collect();
        assert_eq!(
            ts,
            [
                1_600_000_000_123_456_000, // if 0: default 10^-6
                1_600_000_000_123_456_789, // if 1: 10^-9
                1_600_001_000_500_000_000, // if 2: 2^-20 plus if_tsoffset 1000 s
            ]
        );
        let links: Vec<LinkType> = got.iter().map(|g| g.link).collect();
        assert_eq!(
            links,
            [LinkType::Ethernet, LinkType::Raw, LinkType::Ethernet]
        );
        assert_eq!(got[0].data.len(), 34);
        assert_eq!(got[0].data[26..30], [192, 0, 2, 1]);
        assert_eq!(got[1].data.len(), 20);
        assert_eq!(got[1].data[0], 0x45);
        assert_eq!(rep.frames, 3);
        assert_eq!(rep.bytes, 34 + 20 + 34);
        assert_eq!(rep.link_types, ["ethernet", "raw"]);
        assert_eq!(
            rep.skipped
                .get("unsupported_linktype:LINKTYPE_IEEE802_11 (105)"),
            Some(&1)
        );
        assert_eq!(rep.skipped.len(), 1);
        assert_eq!(rep.stopped_early, None);
    }

    #[test]
    fn pcapng_big_endian_with_power_of_two_resolution_and_offset() {
        let (got, rep) = open_one(&PCAPNG_BE, "be.pcapng");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].ts_ns, 1_600_001_000_500_000_000);
        assert_eq!(got[0].data.len(), 34);
        assert_eq!(got[0].data[30..34], [192, 0, 2, 2]);
        assert_eq!(rep.format, "pcapng");
    }

    #[test]
    fn pcapng_several_sections_reset_interfaces() {
        // Section 1 = the 4-IDB file; section 2 = the big-endian file, whose single
        // IDB becomes interface 0 again.
        let mut two = PCAPNG_4IDB.to_vec();
        two.extend_from_slice(&PCAPNG_BE);
        let (got, rep) = open_one(&two, "two-sections.pcapng");
        assert_eq!(got.len(), 4);
        assert_eq!(got[3].ts_ns, 1_600_001_000_500_000_000);
        assert_eq!(rep.stopped_early, None);
    }

    #[test]
    fn pcapng_simple_and_obsolete_packet_blocks() {
        // SHB + IDB 0 (Ethernet, snaplen 3) + SPB (orig 5, 8 data bytes) + OPB.
        let mut f = PCAPNG_4IDB[..28].to_vec();
        f.extend_from_slice(&[
            0x01, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x00,
            0x00, 0x00, 0x14, 0x00, 0x00, 0x00,
        ]);
        // SPB: type 3, len 24, orig_len 5, data 8 bytes, len 24
        f.extend_from_slice(&[
            0x03, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5,
            0, 0, 0, 0x18, 0x00, 0x00, 0x00,
        ]);
        // OPB: type 2, len 36, if 0, drops 0, ts 0:1_000_000 us, caplen 2, len 9, data, len
        f.extend_from_slice(&[
            0x02, 0x00, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x40, 0x42, 0x0f, 0x00, 0x02, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 7,
            8, 0, 0, 0x24, 0x00, 0x00, 0x00,
        ]);
        let (got, rep) = open_one(&f, "spb.pcapng");
        assert_eq!(got.len(), 2, "{rep:?}");
        assert_eq!(got[0].data, [1, 2, 3], "SPB cut to the interface snaplen");
        assert_eq!(got[0].orig_len, 5);
        assert_eq!(
            got[0].ts_ns, 0,
            "an SPB has no timestamp: previous packet's"
        );
        assert_eq!(got[1].data, [7, 8]);
        assert_eq!(got[1].orig_len, 9);
        assert_eq!(got[1].ts_ns, 1_000_000_000);
    }

    #[test]
    fn pcapng_damage_is_reported_with_the_offset() {
        // Cut in the middle of the last EPB (offset 308).
        let (got, rep) = open_one(&PCAPNG_4IDB[..330], "cut.pcapng");
        assert_eq!(got.len(), 2);
        assert_eq!(
            rep.stopped_early.as_deref(),
            Some("file cut short: block at offset 308 (type 0x00000006) claims 68 bytes, only 22 remain")
        );
        // Trailing length that disagrees with the leading one.
        let mut bad = PCAPNG_4IDB;
        bad[372] = 0x48;
        let (got, rep) = open_one(&bad, "bad.pcapng");
        assert_eq!(got.len(), 2);
        assert_eq!(
            rep.stopped_early.as_deref(),
            Some("block at offset 308 (type 0x00000006): trailing length 72 differs from leading length 68")
        );
        // A length that is not a multiple of 4.
        let mut bad = PCAPNG_4IDB;
        bad[148] = 0x45;
        let (got, rep) = open_one(&bad, "bad.pcapng");
        assert!(got.is_empty());
        assert_eq!(
            rep.stopped_early.as_deref(),
            Some("block at offset 144 (type 0x00000006) has invalid length 69")
        );
        // EPB whose captured length runs past its block.
        let mut bad = PCAPNG_4IDB;
        bad[144 + 20] = 0x40;
        let (got, rep) = open_one(&bad, "bad.pcapng");
        assert!(got.is_empty());
        assert_eq!(
            rep.stopped_early.as_deref(),
            Some("malformed enhanced packet block at offset 144: contents run past the block end")
        );
    }
}
