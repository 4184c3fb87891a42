//! Floor L1 (`capture`). Format detection and file headers, for [`super::FileSource`]. Floor L1
//! (capture).
//!
//! Owns: opening one input (the read-only map; the format by magic, not
//! extension, with a hint for gzip and zstd), the classic pcap file header
//! (through `pcap_parser::parse_pcap_header`; a header cut short is damage, not
//! an error), and the first pcapng section header (byte-order magic, version)
//! with the metadata blocks before the first packet, so that a file whose
//! interfaces all have unsupported link types is refused at open. Leaves
//! alone: the records after the header (`pcap`, `pcapng`).

use super::pcapng::{Step, PCAPNG_BOM, PCAPNG_SHB};
use super::{u32_at, Input};
use crate::capture::CaptureError;
use crate::packet::{linktype_name, LinkType};
use memmap2::Mmap;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
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
    pub(super) fn open(path: &Path) -> Result<Input, CaptureError> {
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
}

#[cfg(test)]
mod test {
    use super::super::testkit::*;
    use crate::capture::CaptureError;

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
}
