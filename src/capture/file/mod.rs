//! Floor L1 (`capture`). Replay of pcap / pcapng files: mmap'd, parsed in place, several files
//! merged
//! by timestamp. Floor L1 (capture); from below it uses only the shared types
//! of `crate::packet`.
//!
//! This file owns [`FileSource`] and the public API (opening files and
//! directories, source labels, [`default_label`], [`MAX_CAPLEN`]), the state
//! and counters of one input (`Input`) and its report, and the step that reads
//! an input's next record (`Input::advance`: the inlined classic pcap fast
//! path, else window, then format). Damage handling: an input stops at the
//! first damaged record and says where ([`InputReport::stopped_early`]).
//! The parts beside it:
//!
//! - `format`: format detection by magic and the file headers;
//! - `window`: the mmap windows (prefault ahead, release behind) and prefetch;
//! - `pcap`: the classic pcap record loop;
//! - `pcapng`: pcapng block handling (sections, interfaces, timestamp
//!   resolution/offset);
//! - `merge`: the k-way merge of several inputs by time.
//!
//! Leaves alone: everything inside a frame (that is `decode`).
//!
//! Frame bytes are never copied: a [`RawFrame`] borrows the mapped file.

mod format;
mod merge;
mod pcap;
mod pcapng;
#[cfg(test)]
mod testkit;
mod window;

use super::{CaptureError, InputReport, Next, PacketSource, SourceReport};
use crate::packet::{LinkType, RawFrame};
use format::Kind;
use memmap2::Mmap;
use pcapng::{Iface, Step};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use window::WINDOW;

/// Largest captured length accepted in a record, as Wireshark
/// (`WTAP_MAX_PACKET_SIZE_STANDARD`) and libpcap (`MAXIMUM_SNAPLEN`) do.
pub const MAX_CAPLEN: u32 = 262_144;

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

impl Input {
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

/// The PROVENANCE.md tables' one reader, shared with the integration tests
/// (tests/util.rs): std only, so both test crates compile it.
#[cfg(test)]
#[path = "../../../tests/util/provenance.rs"]
mod provenance;

#[cfg(test)]
mod test {
    use super::testkit::*;
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn no_input_is_an_error() {
        assert!(matches!(FileSource::open(&[]), Err(CaptureError::NoInput)));
        let e = FileSource::open(&[PathBuf::from("/nonexistent/zonewatch-test.pcap")]);
        assert!(matches!(e, Err(CaptureError::Io { .. })));
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

    use super::provenance::{self, Provenance};

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
        let mut rows = provenance::index(&md);
        assert_eq!(rows.len(), 50, "PROVENANCE index lists 50 files");
        let cidspec = provenance::cidspec(&md);
        assert_eq!(cidspec.len(), 8, "j_community_id lists 8 pcaps");
        rows.extend(cidspec);
        for Provenance {
            rel: file,
            packets,
            before_error,
        } in rows
        {
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
        for Provenance { rel: file, .. } in provenance::index(&md) {
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
