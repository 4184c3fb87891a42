//! Replay of pcap / pcapng files: mmap'd, parsed in place, several files merged
//! by timestamp.
//!
//! Owns: format detection by magic, the classic pcap record loop, pcapng block
//! handling (sections, interfaces, timestamp resolution/offset), damage handling
//! (an input stops at the first damaged record and says where), and the k-way
//! merge. Leaves alone: everything inside a frame (that is `decode`).
//!
//! Parsing choices (measured):
//! - classic pcap: the file header goes through `pcap_parser::parse_pcap_header` and
//!   every record through `pcap_parser::pcap::parse_pcap_frame{,_be,_modified}`,
//!   after a bounds check that reads the record's caplen to name damage precisely.
//!   A hand-parsed record loop measured the same (3.76 M records: 48 vs 52 ms of
//!   user time, within noise), so the library stays.
//! - pcapng: EPBs go straight to `pcap_parser::pcapng::parse_enhancedpacketblock_le/_be`
//!   (going through `parse_block_*` and its `Block` enum cost ~15% more CPU), every other
//!   block through `parse_block_le/_be`. pcap-parser allocates a `Vec` for a block's
//!   options, so EPBs that carry options (comments, `epb_flags`) cost one allocation
//!   each; option-less EPBs (what tcpdump/dumpcap write by default) cost none.
//!   pcapng costs ~60 ns of CPU per packet against ~14 ns for classic pcap.
//!
//! Frame bytes are never copied: a [`RawFrame`] borrows the mapped file.

use super::{CaptureError, InputReport, Next, PacketSource, SourceReport};
use crate::packet::{linktype_name, LinkType, RawFrame};
use memmap2::Mmap;
use pcap_parser::pcapng::{Block, OptionCode};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Largest captured length accepted in a record, as Wireshark
/// (`WTAP_MAX_PACKET_SIZE_STANDARD`) and libpcap (`MAXIMUM_SNAPLEN`) do.
pub const MAX_CAPLEN: u32 = 262_144;

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_BOM: u32 = 0x1A2B_3C4D;
/// Obsolete Packet Block (pcapng draft, written by very old tools).
const PCAPNG_OPB: u32 = 0x0000_0002;
const IDB: u32 = 0x0000_0001;
const SPB: u32 = 0x0000_0003;
const EPB: u32 = 0x0000_0006;

/// One or more capture files merged in timestamp order.
pub struct FileSource {
    inputs: Vec<Input>,
    /// Merge only: the next record of each input (None once it has ended).
    heads: Vec<Option<Rec>>,
    /// Merge only: heads have been filled once.
    primed: bool,
    /// Merge only: input whose head was handed out last and must be refilled
    /// before the next pick (it could not be refilled while the frame was lent).
    refill: Option<usize>,
    total_bytes: u64,
}

/// Where a record's bytes are in its input's map, plus its header facts.
#[derive(Clone, Copy, Debug)]
struct Rec {
    ts_ns: u64,
    start: usize,
    len: usize,
    orig_len: u32,
    link: LinkType,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A 0-byte file: no header, no records.
    Empty,
    Pcap {
        be: bool,
        /// Fraction field is nanoseconds (magic 0xa1b23c4d).
        nano: bool,
        /// 16, or 24 for Kuznetzov's "modified" pcap (magic 0xa1b2cd34).
        rec_hdr: usize,
        link: LinkType,
    },
    PcapNg,
}

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
struct Iface {
    link: Option<LinkType>,
    snaplen: u32,
    ts: TsConv,
    /// Skip reason for packets on this interface (unsupported link type or bad
    /// `if_tsresol`), built once when the IDB is read.
    skip: Option<String>,
}

/// Bytes of the map prefaulted ahead of the reader, and kept behind it.
const WINDOW: usize = 8 << 20;
/// How far ahead of the reader cache lines are prefetched.
const PREFETCH_BYTES: usize = 4096;

/// One open capture file and its parse state and counters.
struct Input {
    name: String,
    /// Source name (`in_iface`), see [`FileSource::open_named`].
    label: String,
    map: Mmap,
    pos: usize,
    kind: Kind,
    done: bool,
    // pcapng state
    ng_be: bool,
    ifaces: Vec<Iface>,
    /// Timestamp of the previous packet (Simple Packet Blocks carry none).
    last_ts: u64,
    // counters
    frames: u64,
    bytes: u64,
    /// Bit `LinkType as usize` set once a frame of that link type was delivered.
    link_mask: u16,
    stopped_early: Option<String>,
    /// The map is prefaulted up to here (see `Input::window`).
    ready_to: usize,
    /// Pages before this were handed back to the kernel.
    released_to: usize,
    /// Cache lines before this were prefetched.
    prefetched_to: usize,
    skipped: BTreeMap<String, u64>,
}

/// What one pcapng block step produced.
enum Step {
    Frame(Rec),
    /// A metadata block (or a skipped packet) was consumed.
    Again,
    /// Open-time prescan only: the next block is a packet block (not consumed).
    PacketAhead,
    /// The input ended (cleanly or at damage).
    Done,
}

#[inline]
fn rd_u32(b: [u8; 4], be: bool) -> u32 {
    if be {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

/// 4 bytes at `off`, or None past the end.
#[inline]
fn u32_at(b: &[u8], off: usize, be: bool) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    let a: [u8; 4] = s.try_into().ok()?;
    Some(rd_u32(a, be))
}

fn hex_prefix(b: &[u8]) -> String {
    let mut s: Vec<String> = b.iter().take(4).map(|x| format!("{x:02x}")).collect();
    if b.is_empty() {
        s.push("(none: file shorter than 4 bytes)".into());
    }
    let mut out = s.join(" ");
    // A few common mistakes get a hint.
    if b.starts_with(&[0x1f, 0x8b]) {
        out.push_str(" (gzip: decompress it first)");
    } else if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        out.push_str(" (zstd: decompress it first)");
    }
    out
}

impl Input {
    fn open(path: &Path) -> Result<Input, CaptureError> {
        let io = |source| CaptureError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the map is read-only and private to this process. The file could be
        // truncated or rewritten by another process while mapped (a SIGBUS or changed
        // bytes); every read below is bounds-checked against the map length taken
        // here, which is the standard caveat of replaying from mmap (tcpdump's reader
        // has the equivalent "file changed under us" exposure with read()).
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        // Advice is an optimisation only; a refusal changes nothing.
        let _ = map.advise(memmap2::Advice::Sequential);

        let mut input = Input {
            name: path.display().to_string(),
            label: String::new(),
            map,
            pos: 0,
            kind: Kind::Empty,
            done: false,
            ng_be: false,
            ifaces: Vec::new(),
            last_ts: 0,
            frames: 0,
            bytes: 0,
            link_mask: 0,
            stopped_early: None,
            ready_to: 0,
            released_to: 0,
            prefetched_to: 0,
            skipped: BTreeMap::new(),
        };
        if input.map.is_empty() {
            input.done = true;
            return Ok(input);
        }
        let not_capture = |b: &[u8]| CaptureError::NotACapture {
            path: path.to_path_buf(),
            magic: hex_prefix(b),
        };
        let unsupported = |detail: String| CaptureError::Unsupported {
            path: path.to_path_buf(),
            detail,
        };
        let Some(&magic_bytes) = input.map.first_chunk::<4>() else {
            return Err(not_capture(&input.map));
        };
        let magic_le = u32::from_le_bytes(magic_bytes);
        let magic_be = u32::from_be_bytes(magic_bytes);
        match (magic_le, magic_be) {
            (_, PCAPNG_SHB) => input.open_pcapng(path, &unsupported)?,
            (0xa1b2_c3d4 | 0xa1b2_3c4d | 0xa1b2_cd34, _) | (_, 0xa1b2_c3d4 | 0xa1b2_3c4d) => {
                input.open_pcap(path, &unsupported)?
            }
            (_, 0xa1b2_cd34) => {
                return Err(unsupported(
                    "big-endian \"modified\" pcap (magic 0xa1b2cd34 byte-swapped) unsupported"
                        .into(),
                ))
            }
            _ => return Err(not_capture(&input.map)),
        }
        Ok(input)
    }

    fn open_pcap(
        &mut self,
        path: &Path,
        unsupported: &dyn Fn(String) -> CaptureError,
    ) -> Result<(), CaptureError> {
        let hdr = match pcap_parser::parse_pcap_header(&self.map) {
            Ok((_, h)) => h,
            Err(_) => {
                // Magic is right but fewer than 24 bytes: damage, not "not a capture".
                let nano = self.map.first_chunk::<4>().is_some_and(|m| {
                    u32::from_le_bytes(*m) == 0xa1b2_3c4d || u32::from_be_bytes(*m) == 0xa1b2_3c4d
                });
                self.kind = Kind::Pcap {
                    be: false,
                    nano,
                    rec_hdr: 16,
                    link: LinkType::Ethernet, // never used: the input is done
                };
                self.stop(format!(
                    "file cut short: {} bytes of the 24-byte pcap file header",
                    self.map.len()
                ));
                self.pos = self.map.len();
                return Ok(());
            }
        };
        if hdr.version_major != 2 {
            return Err(unsupported(format!(
                "pcap major version {} unsupported",
                hdr.version_major
            )));
        }
        // libpcap's LT_LINKTYPE(): the upper 16 bits carry FCS-length flags.
        let raw_link = (hdr.network.0 as u32) & 0xffff;
        let Some(link) = LinkType::from_number(raw_link) else {
            return Err(CaptureError::UnsupportedLinkType {
                path: path.to_path_buf(),
                linktype: linktype_name(raw_link),
            });
        };
        self.kind = Kind::Pcap {
            be: hdr.is_bigendian(),
            nano: hdr.is_nanosecond_precision(),
            rec_hdr: if hdr.is_modified_format() { 24 } else { 16 },
            link,
        };
        self.link_mask |= 1 << (link as usize);
        self.pos = 24;
        Ok(())
    }

    fn open_pcapng(
        &mut self,
        path: &Path,
        unsupported: &dyn Fn(String) -> CaptureError,
    ) -> Result<(), CaptureError> {
        self.kind = Kind::PcapNg;
        // First section header: a wrong byte-order magic or version is an error at
        // open time (later sections with the same problem stop the input instead).
        if let Some(bom) = u32_at(&self.map, 8, false) {
            let be = match bom {
                PCAPNG_BOM => false,
                x if x == PCAPNG_BOM.swap_bytes() => true,
                x => {
                    return Err(unsupported(format!(
                        "pcapng section header has an invalid byte-order magic 0x{x:08x}"
                    )))
                }
            };
            if let Some(major) = self
                .map
                .get(12..14)
                .and_then(|s| <[u8; 2]>::try_from(s).ok())
                .map(|a| {
                    if be {
                        u16::from_be_bytes(a)
                    } else {
                        u16::from_le_bytes(a)
                    }
                })
            {
                if major != 1 {
                    return Err(unsupported(format!(
                        "pcapng major version {major} unsupported"
                    )));
                }
            }
        }
        // Read the leading metadata blocks (SHB, IDBs, ...) up to the first packet.
        while let Step::Again = self.ng_step(true) {}
        if !self.ifaces.is_empty() && self.ifaces.iter().all(|i| i.link.is_none()) {
            let mut names: Vec<String> = Vec::new();
            for i in &self.ifaces {
                if let Some(s) = &i.skip {
                    let n = s.trim_start_matches("unsupported_linktype:").to_string();
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
            return Err(CaptureError::UnsupportedLinkType {
                path: path.to_path_buf(),
                linktype: names.join(", "),
            });
        }
        Ok(())
    }

    fn stop(&mut self, why: String) {
        self.done = true;
        if self.stopped_early.is_none() {
            self.stopped_early = Some(why);
        }
    }

    fn skip(&mut self, reason: &str) {
        if let Some(c) = self.skipped.get_mut(reason) {
            *c += 1;
        } else {
            self.skipped.insert(reason.to_string(), 1);
        }
    }

    /// Ask the CPU to load the cache lines [`PREFETCH_BYTES`] ahead of the reader.
    /// The decoder touches only the first line or two of each record, so the
    /// hardware prefetchers miss most record headers; without this, the load of
    /// each record's length was ~90% of the reader's time (a DRAM miss per packet).
    #[inline]
    fn prefetch_ahead(&mut self) {
        let target = (self.pos + PREFETCH_BYTES).min(self.map.len());
        let base = self.map.as_ptr();
        while self.prefetched_to < target {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `prefetched_to < map.len()`, so the address is inside the map;
            // a prefetch is only a hint and never faults.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                _mm_prefetch(base.add(self.prefetched_to) as *const i8, _MM_HINT_T0);
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = base;
            self.prefetched_to += 64;
        }
    }

    /// Prefault the next window of the map in one `MADV_POPULATE_READ` call
    /// instead of one page fault per 4 KiB (measured: page faults were ~15% of
    /// replay time), and hand pages far behind the reader back with
    /// `MADV_DONTNEED`, so resident memory stays at a few windows however big
    /// the file is (the page cache keeps the data). Both are hints: a refusal
    /// (older kernel) changes nothing but speed.
    #[cold]
    fn window(&mut self) {
        let len = self.map.len();
        let start = self.ready_to.min(len);
        let n = WINDOW.min(len - start);
        if n > 0 {
            let _ = self
                .map
                .advise_range(memmap2::Advice::PopulateRead, start, n);
        }
        self.ready_to = start + WINDOW;
        let keep_from = self.pos.saturating_sub(WINDOW) & !0xfff;
        if keep_from > self.released_to {
            // SAFETY: DONTNEED on a private read-only file mapping only drops the
            // page-table entries; a later access refaults the same file bytes. No
            // slice into the released range is alive: frames borrowed from this map
            // end before the next `advance` call, and these pages lie a whole window
            // behind the current record.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    self.released_to,
                    keep_from - self.released_to,
                )
            };
            self.released_to = keep_from;
        }
    }

    /// Parse forward to the next deliverable record. None at the end or at damage.
    ///
    /// The common case (classic pcap, window ready) is inlined into the capture
    /// loop; everything else goes through [`Input::advance_slow`].
    #[inline(always)]
    fn advance(&mut self) -> Option<Rec> {
        if let Kind::Pcap {
            be,
            nano,
            rec_hdr,
            link,
        } = self.kind
        {
            if !self.done && self.pos + WINDOW / 2 < self.ready_to {
                self.prefetch_ahead();
                return self.next_pcap(be, nano, rec_hdr, link);
            }
        }
        self.advance_slow()
    }

    #[inline(never)]
    fn advance_slow(&mut self) -> Option<Rec> {
        if self.done {
            return None;
        }
        if self.pos + WINDOW / 2 >= self.ready_to {
            self.window();
        }
        self.prefetch_ahead();
        match self.kind {
            Kind::Pcap {
                be,
                nano,
                rec_hdr,
                link,
            } => self.next_pcap(be, nano, rec_hdr, link),
            Kind::PcapNg => loop {
                match self.ng_step(false) {
                    Step::Frame(r) => return Some(r),
                    Step::Again | Step::PacketAhead => continue,
                    Step::Done => return None,
                }
            },
            Kind::Empty => {
                self.done = true;
                None
            }
        }
    }

    /// The classic pcap hot loop: one record header read in place after a bounds
    /// check that names the damage. The 16-byte header is read by hand (the same
    /// fields as pcap-parser's `parse_pcap_frame`); the rare 24-byte "modified"
    /// header goes through pcap-parser.
    #[inline(always)]
    fn next_pcap(&mut self, be: bool, nano: bool, rec_hdr: usize, link: LinkType) -> Option<Rec> {
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

    /// Handle one pcapng block at `pos`. With `prescan`, a packet block is left
    /// unconsumed (`PacketAhead`).
    fn ng_step(&mut self, prescan: bool) -> Step {
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

    /// Count a record as delivered and lend its bytes.
    #[inline]
    fn frame(&mut self, r: Rec, source: u16) -> RawFrame<'_> {
        self.frames += 1;
        self.bytes += r.len as u64;
        self.link_mask |= 1 << (r.link as usize);
        let data = self
            .map
            .get(r.start..r.start.saturating_add(r.len))
            .unwrap_or_default();
        RawFrame {
            ts_ns: r.ts_ns,
            orig_len: r.orig_len,
            data,
            link: r.link,
            source,
        }
    }

    fn report(&self) -> InputReport {
        let format = match self.kind {
            Kind::Empty => "empty",
            Kind::Pcap { nano: true, .. } => "pcap-ns",
            Kind::Pcap { .. } => "pcap",
            Kind::PcapNg => "pcapng",
        };
        InputReport {
            name: self.name.clone(),
            label: self.label.clone(),
            format: format.to_string(),
            link_types: LinkType::ALL
                .iter()
                .filter(|l| self.link_mask & (1 << (**l as usize)) != 0)
                .map(|l| l.as_str().to_string())
                .collect(),
            frames: self.frames,
            bytes: self.bytes,
            stopped_early: self.stopped_early.clone(),
            skipped: self.skipped.clone(),
            live: None,
        }
    }
}

/// The default source name of an input path: its last component.
pub fn default_label(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// `paths` with each directory replaced by its regular, non-hidden files in
/// name order (the merge orders packets by time whatever the file order);
/// each file keeps the label of the argument it came from.
fn expand_dirs(paths: &[(String, PathBuf)]) -> Result<Vec<(String, PathBuf)>, CaptureError> {
    let mut out = Vec::with_capacity(paths.len());
    for (label, p) in paths {
        if !p.is_dir() {
            out.push((label.clone(), p.clone()));
            continue;
        }
        let io = |source| CaptureError::Io {
            path: p.clone(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(p).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if path.is_file() && !hidden {
                files.push(path);
            }
        }
        files.sort();
        out.extend(files.into_iter().map(|f| (label.clone(), f)));
    }
    Ok(out)
}

impl FileSource {
    /// Open every file (format by magic, not extension). Fails if any file cannot be
    /// opened, is not a capture, or uses an unsupported link type.
    ///
    /// Damage inside a file is not an error: that input stops at the damage and its
    /// [`InputReport::stopped_early`] says where and why.
    ///
    /// pcapng: the blocks before the first packet are read here; if interfaces were
    /// described and none has a supported link type, that is
    /// [`CaptureError::UnsupportedLinkType`]. Packets on unsupported interfaces of a
    /// file that has supported ones are skipped and counted.
    /// A directory among `paths` stands for every regular file in it (not
    /// hidden), so a directory of rotated captures replays as one merged run
    /// in packet-time order; a file in it that is not a capture is an error.
    pub fn open(paths: &[PathBuf]) -> Result<FileSource, CaptureError> {
        let named: Vec<(String, PathBuf)> = paths
            .iter()
            .map(|p| (default_label(p), p.clone()))
            .collect();
        FileSource::open_named(&named)
    }

    /// [`open`](Self::open) with a source name per argument (`in_iface` of
    /// alerts; a directory's files share its name).
    pub fn open_named(named: &[(String, PathBuf)]) -> Result<FileSource, CaptureError> {
        let expanded = expand_dirs(named)?;
        let labels: Vec<String> = expanded.iter().map(|(l, _)| l.clone()).collect();
        let expanded: Vec<PathBuf> = expanded.into_iter().map(|(_, p)| p).collect();
        let paths = expanded.as_slice();
        if paths.is_empty() {
            return Err(CaptureError::NoInput);
        }
        if let Some(p) = paths.get(usize::from(u16::MAX) + 1) {
            return Err(CaptureError::Unsupported {
                path: p.clone(),
                detail: format!("too many input files (at most {})", u16::MAX as usize + 1),
            });
        }
        let mut inputs = paths
            .iter()
            .map(|p| Input::open(p))
            .collect::<Result<Vec<_>, _>>()?;
        for (inp, l) in inputs.iter_mut().zip(labels) {
            inp.label = l;
        }
        let total_bytes = inputs.iter().map(|i| i.map.len() as u64).sum();
        Ok(FileSource {
            heads: vec![None; inputs.len()],
            inputs,
            primed: false,
            refill: None,
            total_bytes,
        })
    }
}

impl FileSource {
    /// Source names by input index ([`crate::packet::RawFrame::source`]).
    pub fn labels(&self) -> Vec<String> {
        self.inputs.iter().map(|i| i.label.clone()).collect()
    }

    /// [`PacketSource::next`] over several inputs: a k-way merge by time.
    #[inline(never)]
    fn next_merged(&mut self) -> Result<Next<'_>, CaptureError> {
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

impl PacketSource for FileSource {
    #[inline(always)]
    fn next(&mut self) -> Result<Next<'_>, CaptureError> {
        // Fast path: one input, no merge state at all.
        if self.inputs.len() == 1 {
            return Ok(match self.inputs.first_mut() {
                Some(only) => match only.advance() {
                    Some(r) => Next::Frame(only.frame(r, 0)),
                    None => Next::End,
                },
                None => Next::End,
            });
        }
        self.next_merged()
    }

    fn report(&self) -> SourceReport {
        SourceReport {
            inputs: self.inputs.iter().map(Input::report).collect(),
        }
    }

    fn progress(&self) -> (u64, u64) {
        let done = self
            .inputs
            .iter()
            .map(|i| if i.done { i.map.len() } else { i.pos } as u64)
            .sum();
        (done, self.total_bytes)
    }

    fn is_live(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use std::collections::HashMap;

    // Test vectors (checked with tshark 4.0: same timestamps and lengths).
    const PCAP_LE: [u8; 62] = [
        // header: magic a1b2c3d4 LE, v2.4, zone 0, sigfigs 0, snaplen 65535, LINKTYPE_ETHERNET
        0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0xff, 0xff, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        // record 1 at 24: 1600000000.123456, caplen 4, orig 60
        0x00, 0x10, 0x5e, 0x5f, 0x40, 0xe2, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x00,
        0x00, 0xde, 0xad, 0xbe, 0xef,
        // record 2 at 44: 1600000001.999999, caplen 2, orig 2
        0x01, 0x10, 0x5e, 0x5f, 0x3f, 0x42, 0x0f, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
        0x00, 0x01, 0x02,
    ];
    const PCAP_BE: [u8; 62] = [
        // the same file written big-endian
        0xa1, 0xb2, 0xc3, 0xd4, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x5f, 0x5e, 0x10, 0x00, 0x00, 0x01,
        0xe2, 0x40, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x3c, 0xde, 0xad, 0xbe, 0xef, 0x5f,
        0x5e, 0x10, 0x01, 0x00, 0x0f, 0x42, 0x3f, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02,
        0x01, 0x02,
    ];
    const PCAP_NS: [u8; 44] = [
        // magic a1b23c4d (nanosecond) LE; one record 1600000000.123456789
        0x4d, 0x3c, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0xff, 0xff, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x10, 0x5e, 0x5f, 0x15, 0xcd,
        0x5b, 0x07, 0x04, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef,
    ];
    const PCAPNG_4IDB: [u8; 376] = [
        // SHB, little-endian, v1.0
        0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0x00, 0x00, 0x00, 0x4d, 0x3c, 0x2b, 0x1a, 0x01, 0x00, 0x00,
        0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1c, 0x00, 0x00, 0x00,
        // IDB 0: LINKTYPE_ETHERNET, no options (if_tsresol 10^-6)
        0x01, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04,
        0x00, 0x14, 0x00, 0x00, 0x00, // IDB 1: LINKTYPE_RAW, if_tsresol 9 (10^-9)
        0x01, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00, 0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04,
        0x00, 0x09, 0x00, 0x01, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00,
        0x00, 0x00,
        // IDB 2: LINKTYPE_ETHERNET, if_tsresol 0x94 (2^-20), if_tsoffset 1000 s
        0x01, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04,
        0x00, 0x09, 0x00, 0x01, 0x00, 0x94, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x08, 0x00, 0xe8, 0x03,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00,
        // IDB 3: LINKTYPE_IEEE802_11 (unsupported)
        0x01, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x69, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04,
        0x00, 0x14, 0x00, 0x00, 0x00,
        // EPB if 0: 1600000000123456 us, Ethernet/IPv4 192.0.2.1 -> 192.0.2.2
        0x06, 0x00, 0x00, 0x00, 0x44, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x31, 0xaf, 0x05,
        0x00, 0x40, 0xe2, 0xa5, 0x07, 0x22, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x02, 0x00,
        0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00, 0x00,
        0x14, 0x00, 0x01, 0x00, 0x00, 0x40, 0xff, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x01, 0xc0, 0x00,
        0x02, 0x02, 0x00, 0x00, 0x44, 0x00, 0x00, 0x00,
        // EPB if 1: 1600000000123456789 ns, raw IPv4
        0x06, 0x00, 0x00, 0x00, 0x34, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x85, 0x57, 0x34,
        0x16, 0x15, 0xcd, 0xfb, 0xdf, 0x14, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x45, 0x00,
        0x00, 0x14, 0x00, 0x01, 0x00, 0x00, 0x40, 0xff, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x01, 0xc0,
        0x00, 0x02, 0x02, 0x34, 0x00, 0x00, 0x00,
        // EPB if 3: skipped (unsupported link type)
        0x06, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x31, 0xaf, 0x05,
        0x00, 0x40, 0xe2, 0xa5, 0x07, 0x0a, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00,
        // EPB if 2: (1600000000 << 20) + 2^19 ticks + 1000 s = 1600001000.5
        0x06, 0x00, 0x00, 0x00, 0x44, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0xe1, 0xf5, 0x05,
        0x00, 0x00, 0x00, 0x08, 0x00, 0x22, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x02, 0x00,
        0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00, 0x00,
        0x14, 0x00, 0x01, 0x00, 0x00, 0x40, 0xff, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x01, 0xc0, 0x00,
        0x02, 0x02, 0x00, 0x00, 0x44, 0x00, 0x00, 0x00,
    ];
    const PCAPNG_BE: [u8; 140] = [
        // SHB, big-endian
        0x0a, 0x0d, 0x0d, 0x0a, 0x00, 0x00, 0x00, 0x1c, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x01, 0x00,
        0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x1c,
        // IDB 0: LINKTYPE_ETHERNET, if_tsresol 0x94 (2^-20), if_tsoffset 1000 s
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0x00,
        0x00, 0x00, 0x09, 0x00, 0x01, 0x94, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x08, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2c,
        // EPB if 0: (1600000000 << 20) + 2^19 ticks + 1000 s = 1600001000.5
        0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x44, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0xf5,
        0xe1, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x22, 0x02, 0x00,
        0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x45, 0x00, 0x00,
        0x14, 0x00, 0x01, 0x00, 0x00, 0x40, 0xff, 0x00, 0x00, 0xc0, 0x00, 0x02, 0x01, 0xc0, 0x00,
        0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x44,
    ];

    /// What a test keeps of a frame.
    #[derive(Debug, PartialEq, Clone)]
    struct Got {
        ts_ns: u64,
        data: Vec<u8>,
        orig_len: u32,
        link: LinkType,
        source: u16,
    }

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write test file");
        p
    }

    fn drain(src: &mut FileSource) -> Vec<Got> {
        let mut out = Vec::new();
        loop {
            match src.next().expect("files never error after open") {
                Next::Frame(f) => out.push(Got {
                    ts_ns: f.ts_ns,
                    data: f.data.to_vec(),
                    orig_len: f.orig_len,
                    link: f.link,
                    source: f.source,
                }),
                Next::Idle { .. } => panic!("a file source never idles"),
                Next::End => break,
            }
        }
        // End stays End.
        assert!(matches!(src.next(), Ok(Next::End)));
        out
    }

    fn open_one(bytes: &[u8], name: &str) -> (Vec<Got>, InputReport) {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(&dir, name, bytes);
        let mut src = FileSource::open(&[p]).expect("open");
        let got = drain(&mut src);
        let mut rep = src.report().inputs;
        assert_eq!(rep.len(), 1);
        (got, rep.remove(0))
    }

    fn open_err(bytes: &[u8], name: &str) -> CaptureError {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(&dir, name, bytes);
        match FileSource::open(&[p]) {
            Ok(_) => panic!("{name}: expected an error"),
            Err(e) => e,
        }
    }

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
    fn truncated_file_header_is_damage_not_an_error() {
        let (got, rep) = open_one(&PCAP_LE[..10], "cut.pcap");
        assert!(got.is_empty());
        assert_eq!(
            rep.stopped_early.as_deref(),
            Some("file cut short: 10 bytes of the 24-byte pcap file header")
        );
        assert_eq!(rep.format, "pcap");
        assert!(rep.link_types.is_empty());
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

    #[test]
    fn not_a_capture_names_the_magic() {
        let e = open_err(b"PK\x03\x04 this is a zip", "x.pcap");
        assert!(matches!(e, CaptureError::NotACapture { .. }), "{e:?}");
        assert!(e.to_string().contains("50 4b 03 04"), "{e}");
        let e = open_err(&[0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0], "x.pcap.gz");
        assert!(e.to_string().contains("1f 8b 08 00 (gzip"), "{e}");
        let e = open_err(b"ab", "short.pcap");
        assert!(e.to_string().contains("61 62"), "{e}");
    }

    #[test]
    fn unsupported_classic_link_type_is_an_error_naming_it() {
        let mut wifi = PCAP_LE;
        wifi[20] = 105;
        let e = open_err(&wifi, "wifi.pcap");
        assert!(
            matches!(e, CaptureError::UnsupportedLinkType { .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("LINKTYPE_IEEE802_11 (105)"), "{e}");
    }

    #[test]
    fn pcapng_with_only_unsupported_interfaces_is_an_error() {
        // SHB + IDB 3 (802.11) + its EPB.
        let mut f = PCAPNG_4IDB[..28].to_vec();
        f.extend_from_slice(&PCAPNG_4IDB[124..144]);
        let mut epb = PCAPNG_4IDB[264..308].to_vec();
        epb[8] = 0; // interface 0
        f.extend_from_slice(&epb);
        let e = open_err(&f, "wifi.pcapng");
        assert!(
            matches!(e, CaptureError::UnsupportedLinkType { .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("LINKTYPE_IEEE802_11 (105)"), "{e}");
    }

    #[test]
    fn unsupported_versions() {
        let mut v1 = PCAP_LE;
        v1[4] = 1;
        let e = open_err(&v1, "v1.pcap");
        assert!(matches!(e, CaptureError::Unsupported { .. }), "{e:?}");
        assert!(
            e.to_string().contains("pcap major version 1 unsupported"),
            "{e}"
        );
        let mut ng2 = PCAPNG_4IDB;
        ng2[12] = 2;
        let e = open_err(&ng2, "v2.pcapng");
        assert!(
            e.to_string().contains("pcapng major version 2 unsupported"),
            "{e}"
        );
    }

    #[test]
    fn empty_and_header_only_files_end_at_once() {
        let (got, rep) = open_one(&[], "empty.pcap");
        assert!(got.is_empty());
        assert_eq!(rep.format, "empty");
        assert_eq!(rep.stopped_early, None);
        let (got, rep) = open_one(&PCAP_LE[..24], "hdr.pcap");
        assert!(got.is_empty());
        assert_eq!(rep.format, "pcap");
        assert_eq!(rep.stopped_early, None);
        let (got, rep) = open_one(&PCAPNG_4IDB[..144], "idbs.pcapng");
        assert!(got.is_empty());
        assert_eq!(rep.format, "pcapng");
        assert_eq!(rep.stopped_early, None);
    }

    #[test]
    fn no_input_is_an_error() {
        assert!(matches!(FileSource::open(&[]), Err(CaptureError::NoInput)));
        let e = FileSource::open(&[PathBuf::from("/nonexistent/zonewatch-test.pcap")]);
        assert!(matches!(e, Err(CaptureError::Io { .. })));
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

    #[test]
    fn progress_moves_with_the_single_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(&dir, "le.pcap", &PCAP_LE);
        let mut src = FileSource::open(&[p]).expect("open");
        assert_eq!(src.progress(), (24, 62));
        assert!(matches!(src.next(), Ok(Next::Frame(_))));
        assert_eq!(src.progress(), (44, 62));
    }

    #[test]
    fn never_panics_on_cut_or_corrupted_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut n = 0;
        for base in [&PCAP_LE[..], &PCAP_BE[..], &PCAPNG_4IDB[..], &PCAPNG_BE[..]] {
            let mut variants: Vec<Vec<u8>> = (0..base.len()).map(|l| base[..l].to_vec()).collect();
            for i in 0..base.len() {
                for x in [0xff, 0x80, 0x01] {
                    let mut v = base.to_vec();
                    v[i] ^= x;
                    variants.push(v);
                }
            }
            for v in variants {
                n += 1;
                let p = write(&dir, &format!("v{n}"), &v);
                if let Ok(mut src) = FileSource::open(&[p]) {
                    let frames = drain(&mut src);
                    let rep = src.report();
                    assert_eq!(rep.inputs[0].frames as usize, frames.len());
                }
            }
        }
        assert!(n > 1000);
    }

    // ---- the shared public captures -------------------------------------------

    const PUBLIC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/captures/public");

    fn provenance() -> String {
        std::fs::read_to_string(format!("{PUBLIC}/PROVENANCE.md"))
            .expect("shared/captures/public/PROVENANCE.md must exist next to the crate")
    }

    /// (file, packets, "read before error") from the PROVENANCE index table.
    fn index(md: &str) -> Vec<(String, u64, bool)> {
        let table = md
            .split("## Index")
            .nth(1)
            .expect("index section")
            .split("\n## ")
            .next()
            .unwrap_or_default();
        let mut rows = Vec::new();
        for line in table.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 5 || !cells[1].contains('/') {
                continue;
            }
            let n: u64 = cells[3]
                .split_whitespace()
                .next()
                .and_then(|s| s.replace(',', "").parse().ok())
                .unwrap_or_else(|| panic!("packets column of {line}"));
            rows.push((
                cells[1].to_string(),
                n,
                cells[3].contains("read before error"),
            ));
        }
        rows
    }

    /// (file, packets) from the table of the `j_community_id` section (the
    /// Community ID specification's pcaps, listed by bare name; its columns:
    /// file, path in the repository, blob, bytes, packets).
    fn cidspec_index(md: &str) -> Vec<(String, u64)> {
        let table = md
            .split("\n## j_community_id")
            .nth(1)
            .expect("j_community_id section")
            .split("\n## ")
            .next()
            .unwrap_or_default();
        let mut rows = Vec::new();
        for line in table.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 7 || !cells[1].ends_with(".pcap") {
                continue;
            }
            let n: u64 = cells[5]
                .parse()
                .unwrap_or_else(|_| panic!("packets column of {line}"));
            rows.push((format!("j_community_id/{}", cells[1]), n));
        }
        rows
    }

    /// Per-file section lines ("### path" → its "- ..." lines).
    fn sections(md: &str) -> HashMap<String, Vec<String>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        let mut cur: Option<String> = None;
        for line in md.lines() {
            if let Some(name) = line.strip_prefix("### ") {
                cur = Some(name.trim().to_string());
            } else if let Some(c) = &cur {
                out.entry(c.clone()).or_default().push(line.to_string());
            }
        }
        out
    }

    /// "2010-07-04 20:24:16.274870" (UTC) → ns since the epoch, exact to the digits given.
    fn capinfos_time(s: &str) -> u64 {
        let t = humantime::parse_rfc3339_weak(s.trim()).unwrap_or_else(|e| panic!("{s}: {e}"));
        let d = t.duration_since(std::time::UNIX_EPOCH).expect("after 1970");
        d.as_nanos() as u64
    }

    #[test]
    fn public_captures_frame_counts_match_provenance() {
        let md = provenance();
        let mut rows = index(&md);
        assert_eq!(rows.len(), 50, "PROVENANCE index lists 50 files");
        let cidspec = cidspec_index(&md);
        assert_eq!(cidspec.len(), 8, "j_community_id lists 8 pcaps");
        rows.extend(cidspec.into_iter().map(|(f, n)| (f, n, false)));
        for (file, packets, before_error) in rows {
            let path = PathBuf::from(format!("{PUBLIC}/{file}"));
            match FileSource::open(&[path]) {
                Ok(mut src) => {
                    let got = drain(&mut src);
                    let rep = src.report();
                    assert_eq!(got.len() as u64, packets, "{file}");
                    assert_eq!(rep.inputs[0].frames, packets, "{file}");
                    if before_error {
                        assert!(rep.inputs[0].stopped_early.is_some(), "{file}");
                    }
                }
                Err(e) => {
                    // Only the invalid-version file is refused, as Wireshark does.
                    assert!(before_error && packets == 0, "{file}: {e}");
                    assert!(
                        matches!(e, CaptureError::Unsupported { .. }),
                        "{file}: {e:?}"
                    );
                    assert!(
                        e.to_string().contains("pcap major version 1 unsupported"),
                        "{e}"
                    );
                }
            }
        }
    }

    #[test]
    fn public_captures_first_last_times_formats_and_link_types() {
        let md = provenance();
        let secs = sections(&md);
        let mut checked = 0;
        for (file, _, _) in index(&md) {
            let lines = secs
                .get(&file)
                .unwrap_or_else(|| panic!("section for {file}"));
            let path = PathBuf::from(format!("{PUBLIC}/{file}"));
            let Ok(mut src) = FileSource::open(&[path]) else {
                continue; // the invalid-version file (checked above)
            };
            let got = drain(&mut src);
            let rep = src.report().inputs.remove(0);
            // Format from the independent byte-level parse (not the extension).
            let container = lines
                .iter()
                .find_map(|l| l.strip_prefix("- Container: "))
                .unwrap_or_else(|| panic!("container line of {file}"));
            let want = if container.starts_with("pcapng") {
                "pcapng"
            } else if container.contains("nanosecond") {
                "pcap-ns"
            } else {
                "pcap"
            };
            assert_eq!(rep.format, want, "{file}");
            if let Some(n) = container
                .split("link-type field ")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse::<u32>().ok())
            {
                let lt = LinkType::from_number(n).expect("supported");
                assert_eq!(rep.link_types, [lt.as_str()], "{file}");
            }
            // capinfos reports the earliest and latest time stamp.
            let Some(ci) = lines
                .iter()
                .find_map(|l| l.strip_prefix("- capinfos: "))
                .and_then(|l| l.split("; first ").nth(1))
            else {
                continue;
            };
            let (first, rest) = ci.split_once(" / last ").expect("first / last");
            let last = rest.split(" UTC").next().expect("last");
            let min = got.iter().map(|g| g.ts_ns).min().expect("frames");
            let max = got.iter().map(|g| g.ts_ns).max().expect("frames");
            assert_eq!(min, capinfos_time(first), "{file} first");
            assert_eq!(max, capinfos_time(last), "{file} last");
            checked += 1;
        }
        assert!(checked >= 45, "{checked}");
    }

    #[test]
    fn public_nanosecond_sll_and_multi_interface_pcapng_times() {
        // Spelled out for the two files the brief names (also covered by the loop above).
        let (got, rep) = {
            let p = PathBuf::from(format!(
                "{PUBLIC}/g_formats_linktypes/tcpdump_tcp-handshake-nano_sll.pcap"
            ));
            let mut s = FileSource::open(&[p]).expect("open");
            (drain(&mut s), s.report().inputs.remove(0))
        };
        assert_eq!(rep.format, "pcap-ns");
        assert_eq!(
            got.first().map(|g| g.ts_ns),
            Some(1_418_145_369_924_505_488)
        );
        assert_eq!(got.last().map(|g| g.ts_ns), Some(1_418_145_370_052_115_157));
        assert!(got.iter().all(|g| g.link == LinkType::LinuxSll));

        let p = PathBuf::from(format!(
            "{PUBLIC}/g_formats_linktypes/zeek_pcapng-multi-interface.pcapng"
        ));
        let mut s = FileSource::open(&[p]).expect("open");
        let got = drain(&mut s);
        assert_eq!(got.len(), 6);
        let min = got.iter().map(|g| g.ts_ns).min();
        let max = got.iter().map(|g| g.ts_ns).max();
        assert_eq!(min, Some(capinfos_time("2026-01-06 01:31:29.500330493")));
        assert_eq!(max, Some(capinfos_time("2026-01-06 01:37:17.140942")));
    }

    #[test]
    fn public_captures_merge_in_time_order() {
        let a = PathBuf::from(format!("{PUBLIC}/i_tunnels/zeek_geneve.pcap"));
        let b = PathBuf::from(format!("{PUBLIC}/i_tunnels/zeek_erspanII.pcap"));
        let c = PathBuf::from(format!("{PUBLIC}/a_scans/chrissanders_synscan.pcapng"));
        let mut src = FileSource::open(&[a, b, c]).expect("open");
        let got = drain(&mut src);
        assert_eq!(got.len(), 6 + 4 + 2011);
        assert!(got.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
        // geneve and erspanII are both from 2014-06-14; synscan is from 2010: first.
        assert_eq!(got[0].source, 2);
        let per: Vec<usize> = (0..3)
            .map(|s| got.iter().filter(|g| g.source == s).count())
            .collect();
        assert_eq!(per, [6, 4, 2011]);
    }
}
