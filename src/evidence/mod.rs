//! Floor L4. Evidence pcaps (`--evidence DIR`): per alert, a pcap of the packets that
//! show it.
//!
//! Owns the copies of captured frames kept for evidence, the per-flow rings,
//! and the files. It leaves alone: what alerts (the folder and the
//! detectors), and when a line is written (the analysis thread,
//! `crate::pipeline::analysis::serve`).
//!
//! # Data flow
//!
//! The capture thread copies every frame it forwards to a worker into a
//! [`Batch`] (bytes + a [`Rec`] per frame, keyed by the frame's flow) and sends
//! it to the analysis thread, which queues it in capture order. The analysis
//! thread releases observations in packet-time order; before it acts at
//! packet time `t` it [commits](Store::commit) every queued frame up to `t`:
//!
//! * each frame goes into its flow's **ring**, the last `ring_packets` frames
//!   of that flow (what happened before a detection);
//! * each frame is appended to every **open file** that wants it (what
//!   follows a detection), up to `alert_bytes` per file.
//!
//! A `separation_violation` group opens its file when its first flow is
//! released (with that flow's ring) and adds every flow folded into it, so the
//! file holds exactly the group's flows from their first packet. A detector's
//! alert opens its file when the line is written, with the rings of every flow
//! its selector matches (the attacker's or the victim's flows, see
//! [`Selector::for_alert`]). Either way a file keeps collecting for
//! `follow_ns` of packet time after the line is written, then closes.
//!
//! Files are named `<alert id>.pcap` and the line names it (`evidence_pcap`).
//! The file is put on disk (0640) with what it holds *before* the line is
//! written, and the line names it only when that worked: an alert never
//! names a file that does not exist. One that cannot be created is counted
//! (`alerts_file_failed`, the first error on stderr). Frames that follow are
//! appended at least once a second ([`Store::flush_named`]) and when the file
//! closes; an append that fails is cut back to the last whole frame and
//! counted (`write_errors`). A group's buffers spill to `.open-<n>.pcap`
//! until its line is final.
//!
//! Everything is decided on packet time in release order, so files are the
//! same for any worker count and for a live capture and a replay of it.
//!
//! # Bounds
//!
//! Rings live `keep_ns` of packet time after their flow's last frame (long
//! enough for the slowest alert to be written) and hold at most
//! `buffer_bytes` together, the least recently used going first. Each file
//! stops at `alert_bytes`, all files together at `total_bytes`. Everything cut
//! is counted in [`EvidenceStats`] with its reason.

pub mod pcap;

use crate::alert::Alert;
use crate::packet::{Addr, FlowKey, LinkType, RawFrame};
use serde::Serialize;
use std::collections::VecDeque;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::model::maps::FastMap as HashMap;

/// `--evidence*` settings.
#[derive(Clone, Debug)]
pub struct EvidenceConfig {
    pub dir: PathBuf,
    /// Frames kept per flow before a detection.
    pub ring_packets: usize,
    /// Bytes per file, headers included.
    pub alert_bytes: u64,
    /// Bytes over all files of the run.
    pub total_bytes: u64,
    /// Memory for the rings.
    pub buffer_bytes: u64,
    /// Packet time a file keeps collecting after its alert is written.
    pub follow_ns: u64,
    /// Packet time a ring is kept after its flow's last frame.
    pub keep_ns: u64,
    /// Flows one file collects explicitly (a fold group) at most.
    pub max_flows: usize,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            dir: PathBuf::from("evidence"),
            ring_packets: 32,
            alert_bytes: 1 << 20,
            total_bytes: 256 << 20,
            buffer_bytes: 128 << 20,
            follow_ns: 10_000_000_000,
            keep_ns: 130_000_000_000,
            max_flows: 4096,
        }
    }
}

/// Frames the capture thread copied, in capture order.
pub struct Batch {
    pub data: Vec<u8>,
    pub recs: Vec<Rec>,
}

/// One copied frame.
#[derive(Clone, Copy, Debug)]
pub struct Rec {
    pub ts_ns: u64,
    pub orig_len: u32,
    pub off: u32,
    pub len: u32,
    pub link: LinkType,
    /// The frame's flow, in canonical orientation ([`canonical`]).
    pub key: FlowKey,
}

/// Frames per batch the capture thread sends.
pub const BATCH_FRAMES: usize = 1024;
/// Bytes per batch the capture thread sends.
pub const BATCH_BYTES: usize = 1 << 20;

impl Default for Batch {
    /// Sized once for a full batch: no reallocation while it fills.
    fn default() -> Self {
        Batch {
            data: Vec::with_capacity(BATCH_BYTES + crate::capture::MAX_CAPLEN as usize),
            recs: Vec::with_capacity(BATCH_FRAMES),
        }
    }
}

impl Batch {
    /// Copy `frame`, whose decoded flow key is `key`.
    pub fn push(&mut self, frame: &RawFrame<'_>, key: &FlowKey) {
        let (Ok(off), Ok(len)) = (
            u32::try_from(self.data.len()),
            u32::try_from(frame.data.len()),
        ) else {
            return;
        };
        self.data.extend_from_slice(frame.data);
        self.recs.push(Rec {
            ts_ns: frame.ts_ns,
            orig_len: frame.orig_len,
            off,
            len,
            link: frame.link,
            key: canonical(key),
        });
    }

    pub fn is_full(&self) -> bool {
        self.recs.len() >= BATCH_FRAMES || self.data.len() >= BATCH_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    fn frame(&self, r: &Rec) -> &[u8] {
        let (a, b) = (r.off as usize, r.off as usize + r.len as usize);
        self.data.get(a..b).unwrap_or(&[])
    }
}

/// The orientation both directions of a flow share: lower (address, port)
/// first, VLAN ids cleared (a router trunk tags the two directions of one
/// connection differently; an evidence file follows the 5-tuple and link).
pub fn canonical(k: &FlowKey) -> FlowKey {
    let mut c = if (k.src, k.sport) <= (k.dst, k.dport) {
        *k
    } else {
        k.reversed()
    };
    c.vlan = [0; 2];
    c
}

/// Which frames a detector's alert wants: every key given must match, in
/// either direction of the frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    pub src: Option<Addr>,
    pub dst: Option<Addr>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub proto: Option<u8>,
}

impl Selector {
    /// What a detector's alert shows, from its addresses, ports and protocol:
    ///
    /// | kind | frames |
    /// |---|---|
    /// | `port_scan`, `host_sweep` | every frame to or from the initiator (probes of any protocol, ARP included) |
    /// | `rogue_host`, `zone_bridge` | every frame to or from the host |
    /// | `dos_*` | every frame to or from the victim |
    /// | `brute_force`, `admin_access` and others | initiator ↔ target (when one) on the service port and protocol |
    pub fn for_alert(a: &Alert) -> Option<Selector> {
        let addr = |ip: Option<std::net::IpAddr>| ip.map(|ip| FlowKey::new(0, ip, 0, ip, 0).src);
        let (src, dst) = (addr(a.src_ip), addr(a.dst_ip));
        let host = |h: Option<Addr>| Selector {
            src: h,
            ..Selector::default()
        };
        let s = match a.kind {
            "port_scan" | "host_sweep" | "rogue_host" | "zone_bridge" => host(src.or(dst)),
            k if k.starts_with("dos_") => host(dst),
            _ => Selector {
                src,
                dst,
                sport: None,
                dport: a.dst_port,
                proto: match a.proto {
                    Some(crate::model::proto::Protocol::Ip(p)) => Some(p),
                    _ => None,
                },
            },
        };
        (s.src.is_some() || s.dst.is_some()).then_some(s)
    }

    fn anchor(&self) -> Option<Addr> {
        self.src.or(self.dst)
    }

    fn one_way(&self, k: &FlowKey) -> bool {
        self.src.is_none_or_eq(k.src)
            && self.dst.is_none_or_eq(k.dst)
            && self.sport.is_none_or_eq(k.sport)
            && self.dport.is_none_or_eq(k.dport)
            && self.proto.is_none_or_eq(k.proto)
    }

    pub fn matches(&self, k: &FlowKey) -> bool {
        self.one_way(k) || self.one_way(&k.reversed())
    }
}

/// `Option::is_none_or` for MSRV 1.80.
trait NoneOrEq<T> {
    fn is_none_or_eq(&self, v: T) -> bool;
}

impl<T: PartialEq> NoneOrEq<T> for Option<T> {
    fn is_none_or_eq(&self, v: T) -> bool {
        match self {
            None => true,
            Some(x) => *x == v,
        }
    }
}

/// What the evidence store wrote and cut, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EvidenceStats {
    /// Files written (each named by an alert line).
    pub files: u64,
    pub packets: u64,
    /// Bytes of all files, headers included.
    pub bytes: u64,
    /// Alerts without a file because `--evidence-total-bytes` was reached.
    pub alerts_without_file: u64,
    /// Alerts written without `evidence_pcap` because their file could not be
    /// created (the directory became unwritable, the disk is full...; the
    /// first error on stderr).
    pub alerts_file_failed: u64,
    /// Frames not written because their file reached `--evidence-alert-bytes`
    /// (counted once the file is full, while it would still collect).
    pub frames_over_alert_cap: u64,
    /// Frames not written because all files reached `--evidence-total-bytes`.
    pub frames_over_total_cap: u64,
    /// Frames not written because their link type differs from the file's.
    pub frames_other_link: u64,
    /// Flows a fold group added beyond `max_flows` (their frames are not collected).
    pub flows_over_cap: u64,
    /// Rings dropped before their time because the rings held `buffer_bytes`.
    pub rings_evicted: u64,
    /// Frames that were in those rings.
    pub frames_evicted: u64,
    /// Appends to a named file (or spills to a group's temporary file) that
    /// failed: the file keeps its whole frames and collects no more (the
    /// first error on stderr).
    pub write_errors: u64,
    /// Frames the capture thread could not hand over because the analysis
    /// thread was behind (live only; a replay waits instead).
    pub frames_not_copied: u64,
}

/// A flow's last frames.
struct Ring {
    frames: VecDeque<Stored>,
    bytes: u64,
    last_ns: u64,
}

struct Stored {
    ts_ns: u64,
    orig_len: u32,
    link: LinkType,
    data: Box<[u8]>,
}

/// Evidence being collected: in memory until it closes (so files never
/// hold descriptors while they wait), then written at once.
struct Open {
    /// `DIR/<alert id>.pcap`, once the line is written (the file exists then).
    path: Option<PathBuf>,
    /// Bytes not yet on disk.
    buf: Vec<u8>,
    /// Where earlier bytes went when the buffers were spilled (the final
    /// path, or `.open-<n>.pcap` until the line names the file).
    spilled: Option<PathBuf>,
    /// Bytes of `spilled` on disk: whole frames (a failed append is cut back
    /// to it).
    on_disk: u64,
    /// Bytes of the file so far (on disk and in `buf`).
    size: u64,
    /// Frames in the file so far.
    packets: u64,
    /// A spill before the line named the file failed: its first bytes are
    /// gone, so it will not be named (the error, for the count).
    lost: Option<io::Error>,
    link: Option<LinkType>,
    /// Explicit flows (a fold group), or a selector (a detector).
    flows: Vec<FlowKey>,
    sel: Option<Selector>,
    /// Close once packet time passes this (set when the line is written).
    until_ns: u64,
    /// The fold group this file belongs to, until its line is written.
    slot: Option<u64>,
    full: bool,
}

/// The analysis thread's evidence state (see the module docs).
pub struct Store {
    cfg: EvidenceConfig,
    pending: VecDeque<Batch>,
    /// Next record of `pending.front()`.
    next: usize,
    rings: HashMap<FlowKey, Ring>,
    /// Rings by address (may name rings already dropped; cleaned on sweeps).
    by_addr: HashMap<Addr, Vec<FlowKey>>,
    ring_bytes: u64,
    /// Files being collected, by id (creation order).
    open: std::collections::BTreeMap<u64, Open>,
    next_id: u64,
    /// Which open files want a flow (fold groups) / frames of an address (selectors).
    by_flow: HashMap<FlowKey, Vec<u64>>,
    by_anchor: HashMap<Addr, Vec<u64>>,
    /// Files by fold group.
    slots: HashMap<u64, u64>,
    /// Packet time committed so far.
    committed_ns: u64,
    next_sweep_ns: u64,
    written: u64,
    /// Bytes in the open files' buffers together.
    buffered: u64,
    /// Files a frame goes to (reused).
    scratch: Vec<u64>,
    stats: EvidenceStats,
    error_told: bool,
    file_failed_told: bool,
    /// Link type of the last frame committed: the header of a file that has
    /// no frame yet when its line is written.
    last_link: LinkType,
}

/// Bytes the open files may buffer together before they are appended to disk.
pub const MAX_BUFFERED: u64 = 64 << 20;

/// Append `bytes` to `path` (created 0640 if missing), whose first `on_disk`
/// bytes are whole frames: a write that fails part-way is cut back to them,
/// so the file never ends in a torn record. `fresh`: the file starts here
/// (a stale file of an earlier run with that name is emptied first), and is
/// removed again if the write fails.
fn append(path: &Path, on_disk: u64, bytes: &[u8], fresh: bool) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(crate::output::FILE_MODE)
        .open(path)?;
    let r = if fresh { f.set_len(0) } else { Ok(()) }.and_then(|()| f.write_all(bytes));
    if r.is_err() {
        if fresh {
            let _ = std::fs::remove_file(path);
        } else {
            let _ = f.set_len(on_disk);
        }
    }
    r
}

/// Reasons evidence is cut ([`EvidenceStats::cuts`]; metrics label values).
pub const CUT_REASONS: [&str; 9] = [
    "alerts_without_file",
    "alerts_file_failed",
    "frames_over_alert_cap",
    "frames_over_total_cap",
    "frames_other_link",
    "flows_over_cap",
    "frames_evicted",
    "write_errors",
    "frames_not_copied",
];

impl EvidenceStats {
    /// Every cut count with its reason, in [`CUT_REASONS`] order.
    pub fn cuts(&self) -> [(&'static str, u64); 9] {
        let n = [
            self.alerts_without_file,
            self.alerts_file_failed,
            self.frames_over_alert_cap,
            self.frames_over_total_cap,
            self.frames_other_link,
            self.flows_over_cap,
            self.frames_evicted,
            self.write_errors,
            self.frames_not_copied,
        ];
        std::array::from_fn(|i| (CUT_REASONS[i], n[i]))
    }
}

/// Bytes a ring frame costs beyond its data (allocation, slot, map share),
/// for the `buffer_bytes` budget.
const FRAME_OVERHEAD: u64 = 96;

/// How often rings are swept for age, in packet time.
const SWEEP_NS: u64 = 1_000_000_000;

impl Store {
    pub fn new(cfg: EvidenceConfig) -> Store {
        Store {
            cfg,
            pending: VecDeque::new(),
            next: 0,
            rings: HashMap::default(),
            by_addr: HashMap::default(),
            ring_bytes: 0,
            open: std::collections::BTreeMap::new(),
            next_id: 0,
            by_flow: HashMap::default(),
            by_anchor: HashMap::default(),
            slots: HashMap::default(),
            committed_ns: 0,
            next_sweep_ns: 0,
            written: 0,
            buffered: 0,
            scratch: Vec::new(),
            stats: EvidenceStats::default(),
            error_told: false,
            file_failed_told: false,
            last_link: LinkType::Ethernet,
        }
    }

    pub fn stats(&self) -> &EvidenceStats {
        &self.stats
    }

    /// Frames from the capture thread, in capture order.
    pub fn queue(&mut self, b: Batch) {
        if !b.is_empty() {
            self.pending.push_back(b);
        }
    }

    /// Take in every queued frame with a time up to `t`, in capture order.
    pub fn commit(&mut self, t: u64) {
        self.committed_ns = self.committed_ns.max(t);
        while let Some(b) = self.pending.front() {
            let Some(r) = b.recs.get(self.next).copied() else {
                self.pending.pop_front();
                self.next = 0;
                continue;
            };
            if r.ts_ns > t {
                break;
            }
            self.next += 1;
            let data: Box<[u8]> = b.frame(&r).into();
            self.take(&r, data);
        }
        // Idle input: still close files whose time is over (sweeps only
        // collect garbage; what a file or a snapshot sees depends on packet
        // times alone).
        if t != u64::MAX && t >= self.next_sweep_ns {
            self.sweep(t);
            self.next_sweep_ns = t.saturating_add(SWEEP_NS);
        }
    }

    /// A ring is visible at `now` while its flow was active within `keep_ns`.
    fn ring_at(&self, k: &FlowKey, now: u64) -> Option<&Ring> {
        let keep = self.cfg.keep_ns;
        self.rings
            .get(k)
            .filter(|r| r.last_ns.saturating_add(keep) >= now)
    }

    fn take(&mut self, r: &Rec, data: Box<[u8]>) {
        self.last_link = r.link;
        if r.ts_ns >= self.next_sweep_ns {
            self.sweep(r.ts_ns);
            self.next_sweep_ns = r.ts_ns.saturating_add(SWEEP_NS);
        }
        // Files first: a frame at or after their opening follows it.
        if !self.open.is_empty() {
            // A scratch vector kept across frames: no allocation per frame.
            let mut ids = std::mem::take(&mut self.scratch);
            ids.clear();
            ids.extend(self.by_flow.get(&r.key).into_iter().flatten());
            for a in [r.key.src, r.key.dst] {
                if let Some(v) = self.by_anchor.get(&a) {
                    ids.extend(v.iter().filter(|id| {
                        self.open
                            .get(id)
                            .and_then(|o| o.sel)
                            .is_some_and(|s| s.matches(&r.key))
                    }));
                }
            }
            ids.sort_unstable();
            ids.dedup();
            for &id in &ids {
                self.write_frame(id, r.ts_ns, r.orig_len, r.link, &data);
            }
            self.scratch = ids;
        }
        let len = data.len() as u64 + FRAME_OVERHEAD;
        let ring = match self.rings.get_mut(&r.key) {
            Some(x) => x,
            None => {
                for a in [r.key.src, r.key.dst] {
                    self.by_addr.entry(a).or_default().push(r.key);
                }
                self.rings.entry(r.key).or_insert(Ring {
                    frames: VecDeque::new(),
                    bytes: 0,
                    last_ns: 0,
                })
            }
        };
        ring.last_ns = ring.last_ns.max(r.ts_ns);
        ring.frames.push_back(Stored {
            ts_ns: r.ts_ns,
            orig_len: r.orig_len,
            link: r.link,
            data,
        });
        ring.bytes += len;
        self.ring_bytes += len;
        while ring.frames.len() > self.cfg.ring_packets.max(1) {
            if let Some(old) = ring.frames.pop_front() {
                let l = old.data.len() as u64 + FRAME_OVERHEAD;
                ring.bytes -= l;
                self.ring_bytes -= l;
            }
        }
        if self.ring_bytes > self.cfg.buffer_bytes {
            self.evict_lru();
        }
    }

    /// Drop rings idle longer than `keep_ns`; close files past their time.
    fn sweep(&mut self, now: u64) {
        let keep = self.cfg.keep_ns;
        let mut freed = 0;
        self.rings.retain(|_, r| {
            let live = r.last_ns.saturating_add(keep) >= now;
            if !live {
                freed += r.bytes;
            }
            live
        });
        self.ring_bytes -= freed;
        if freed > 0 {
            let rings = &self.rings;
            self.by_addr.retain(|_, v| {
                v.retain(|k| rings.contains_key(k));
                v.sort_unstable();
                v.dedup();
                !v.is_empty()
            });
        }
        let due: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, o)| o.slot.is_none() && o.until_ns < now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.close(id);
        }
    }

    /// The rings hold `buffer_bytes`: drop the least recently active
    /// quarter or so (every ring idle since the first quartile of last
    /// activity; linear time, no sort).
    fn evict_lru(&mut self) {
        let mut ages: Vec<u64> = self.rings.values().map(|r| r.last_ns).collect();
        if ages.is_empty() {
            return;
        }
        let q = ages.len() / 4;
        let (_, cut, _) = ages.select_nth_unstable(q);
        let cut = *cut;
        let (mut freed, mut rings, mut frames) = (0, 0, 0);
        self.rings.retain(|_, r| {
            let keep = r.last_ns > cut;
            if !keep {
                freed += r.bytes;
                rings += 1;
                frames += r.frames.len() as u64;
            }
            keep
        });
        self.ring_bytes -= freed;
        self.stats.rings_evicted += rings;
        self.stats.frames_evicted += frames;
    }

    /// A fold group (`slot`) took in the released flow `key` at packet time
    /// `t`: open its file on the first flow, and collect the flow's frames
    /// from its ring on.
    pub fn fold(&mut self, slot: u64, key: &FlowKey, t: u64) {
        self.commit(t);
        let key = canonical(key);
        let i = match self.slots.get(&slot) {
            Some(&i) => i,
            None => {
                if self.written + pcap::FILE_HEADER > self.cfg.total_bytes {
                    return;
                }
                let i = self.create(None, Some(slot));
                self.slots.insert(slot, i);
                i
            }
        };
        let Some(o) = self.open.get_mut(&i) else {
            return;
        };
        if o.flows.len() >= self.cfg.max_flows {
            self.stats.flows_over_cap += 1;
            return;
        }
        let ids = self.by_flow.entry(key).or_default();
        if ids.contains(&i) {
            return;
        }
        ids.push(i);
        o.flows.push(key);
        let frames: Vec<(u64, u32, LinkType, Box<[u8]>)> = match self.ring_at(&key, t) {
            Some(r) => r
                .frames
                .iter()
                .map(|s| (s.ts_ns, s.orig_len, s.link, s.data.clone()))
                .collect(),
            None => Vec::new(),
        };
        for (ts, orig, link, data) in frames {
            self.write_frame(i, ts, orig, link, &data);
        }
    }

    /// `a` is about to be written at packet time `at`: name its file, opening
    /// one for a detector's alert from the matching rings.
    pub fn alert(&mut self, a: &mut Alert, at: u64) {
        self.commit(at);
        let until = at.saturating_add(self.cfg.follow_ns);
        let path = self.cfg.dir.join(format!("{}.pcap", a.id));
        let i = match a.evidence_slot {
            Some(slot) => match self.slots.remove(&slot) {
                Some(i) => i,
                None => {
                    // Its group opened after --evidence-total-bytes was reached.
                    self.stats.alerts_without_file += 1;
                    return;
                }
            },
            None => {
                let Some(sel) = Selector::for_alert(a) else {
                    return;
                };
                if self.written + pcap::FILE_HEADER > self.cfg.total_bytes {
                    self.stats.alerts_without_file += 1;
                    return;
                }
                let i = self.create(Some(sel), None);
                self.backfill(i, &sel, at);
                i
            }
        };
        self.name_file(i, a, &path, Some(until));
    }

    /// Put file `i` on disk as `path` and name it in `a` (`evidence_pcap`),
    /// or count why not. `finish`: the file stops collecting its group's
    /// flows and collects until that packet time (`None`: a fold group's
    /// first line; the group keeps collecting until it closes).
    fn name_file(&mut self, i: u64, a: &mut Alert, path: &std::path::Path, finish: Option<u64>) {
        let path = path.to_path_buf();
        let last_link = self.last_link;
        let Some(o) = self.open.get_mut(&i) else {
            return;
        };
        if let Some(until) = finish {
            o.slot = None;
            o.until_ns = until;
        }
        if o.link.is_none() {
            // No frame yet: a valid pcap for the capture's link type.
            let _ = pcap::write_header(&mut o.buf, last_link);
            o.link = Some(last_link);
        }
        // On disk before the line names it: the group's spilled file renamed
        // (or a stale file of that name replaced), then what is buffered.
        let buffered = o.buf.len() as u64;
        let put = match (o.lost.take(), o.spilled.take()) {
            // Its buffers could not be spilled: the file lacks its start.
            (Some(e), _) => Err(e),
            (None, Some(tmp)) => match std::fs::rename(&tmp, &path) {
                // (Renamed: a failed append removes what is now ours.)
                Ok(()) => append(&path, o.on_disk, &o.buf, false).inspect_err(|_| {
                    let _ = std::fs::remove_file(&path);
                }),
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    Err(e)
                }
            },
            // (A failed fresh append removes what it created.)
            (None, None) => append(&path, 0, &o.buf, true),
        };
        match put {
            Ok(()) => {
                o.on_disk += buffered;
                o.buf = Vec::new();
                self.buffered = self.buffered.saturating_sub(buffered);
                o.spilled = Some(path.clone());
                o.path = Some(path.clone());
                a.evidence_pcap = Some(path.display().to_string());
                self.stats.files += 1;
            }
            Err(e) => {
                self.drop_file(i);
                self.stats.alerts_file_failed += 1;
                if !self.file_failed_told {
                    self.file_failed_told = true;
                    eprintln!(
                        "zonewatch: evidence: cannot create {}: {e}; alert {} is written without evidence_pcap (counted: alerts.evidence.alerts_file_failed)",
                        path.display(),
                        a.id
                    );
                }
            }
        }
    }

    /// Forget file `i` without writing it (its creation failed), giving
    /// back what it counted.
    fn drop_file(&mut self, i: u64) {
        let Some(o) = self.open.remove(&i) else {
            return;
        };
        self.forget(i, &o);
        let size = o.size.max(pcap::FILE_HEADER);
        self.written = self.written.saturating_sub(size);
        self.stats.bytes = self.stats.bytes.saturating_sub(size);
        self.stats.packets = self.stats.packets.saturating_sub(o.packets);
        self.buffered = self.buffered.saturating_sub(o.buf.len() as u64);
    }

    /// Remove file `id` from the flow and anchor indexes.
    fn forget(&mut self, id: u64, o: &Open) {
        for k in &o.flows {
            if let Some(v) = self.by_flow.get_mut(k) {
                v.retain(|&x| x != id);
                if v.is_empty() {
                    self.by_flow.remove(k);
                }
            }
        }
        if let Some(a) = o.sel.and_then(|s| s.anchor()) {
            if let Some(v) = self.by_anchor.get_mut(&a) {
                v.retain(|&x| x != id);
                if v.is_empty() {
                    self.by_anchor.remove(&a);
                }
            }
        }
    }

    /// A fold group's first line `a` is about to be written at `at`: name the
    /// file its flows are collecting into; it keeps collecting (every flow
    /// that folds in) until the group closes ([`close_slot`](Self::close_slot)).
    pub fn alert_open(&mut self, a: &mut Alert, at: u64) {
        self.commit(at);
        let Some(slot) = a.evidence_slot else {
            return;
        };
        let Some(&i) = self.slots.get(&slot) else {
            // Its group opened after --evidence-total-bytes was reached.
            self.stats.alerts_without_file += 1;
            return;
        };
        let path = self.cfg.dir.join(format!("{}.pcap", a.id));
        self.name_file(i, a, &path, None);
    }

    /// Fold group `slot` closed at `at`: its file collects what follows for
    /// `--evidence-follow-secs`, then is finished.
    pub fn close_slot(&mut self, slot: u64, at: u64) {
        self.commit(at);
        let until = at.saturating_add(self.cfg.follow_ns);
        if let Some(i) = self.slots.remove(&slot) {
            if let Some(o) = self.open.get_mut(&i) {
                o.slot = None;
                o.until_ns = until;
            }
        }
    }

    /// Give a detector's new file the frames of every ring `sel` matches,
    /// oldest first (ties by flow), up to the file's cap.
    fn backfill(&mut self, i: u64, sel: &Selector, at: u64) {
        let mut keys: Vec<FlowKey> = sel
            .anchor()
            .and_then(|a| self.by_addr.get(&a))
            .map(|v| v.iter().filter(|k| sel.matches(k)).copied().collect())
            .unwrap_or_default();
        keys.sort_unstable();
        keys.dedup();
        let mut frames: Vec<(u64, FlowKey, usize)> = Vec::new();
        for k in &keys {
            if let Some(r) = self.ring_at(k, at) {
                frames.extend(r.frames.iter().enumerate().map(|(j, f)| (f.ts_ns, *k, j)));
            }
        }
        frames.sort_unstable();
        for (_, k, j) in frames {
            if self.open.get(&i).is_none_or(|o| o.full) {
                break;
            }
            let Some(f) = self.rings.get(&k).and_then(|r| r.frames.get(j)) else {
                continue;
            };
            let (ts, orig, link, data) = (f.ts_ns, f.orig_len, f.link, f.data.clone());
            self.write_frame(i, ts, orig, link, &data);
        }
    }

    /// Take in what is queued and write every file (end of the run).
    pub fn finish(&mut self) {
        self.commit(u64::MAX);
        while let Some(id) = self.open.keys().next().copied() {
            self.close(id);
        }
    }

    /// End of a hurried run (a second interrupt): write every file with what
    /// it holds, without taking in the frames still queued. Returns how many
    /// frames were left out.
    pub fn finish_now(&mut self) -> u64 {
        let queued: usize = self.pending.iter().map(|b| b.recs.len()).sum();
        let left = queued.saturating_sub(self.next) as u64;
        self.pending.clear();
        self.next = 0;
        while let Some(id) = self.open.keys().next().copied() {
            self.close(id);
        }
        left
    }

    /// Append what every named file collected since its last write (the
    /// analysis thread calls this about once a second).
    pub fn flush_named(&mut self) {
        let ids: Vec<u64> = self
            .open
            .iter()
            .filter(|(_, o)| o.path.is_some() && !o.buf.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.write_out(id);
        }
    }

    /// Append file `id`'s buffer to its named file; a failure is counted and
    /// the file collects no more.
    fn write_out(&mut self, id: u64) {
        let Some(o) = self.open.get_mut(&id) else {
            return;
        };
        let Some(path) = o.path.clone() else {
            return;
        };
        let n = o.buf.len() as u64;
        let r = append(&path, o.on_disk, &o.buf, false);
        o.buf = Vec::new();
        self.buffered = self.buffered.saturating_sub(n);
        match r {
            Ok(()) => o.on_disk += n,
            Err(e) => {
                o.full = true;
                self.error(&path, &e);
            }
        }
    }

    fn create(&mut self, sel: Option<Selector>, slot: Option<u64>) -> u64 {
        // Every file gets its header, even with no frame: reserve it now.
        self.written += pcap::FILE_HEADER;
        self.stats.bytes += pcap::FILE_HEADER;
        let id = self.next_id;
        self.next_id += 1;
        if let Some(a) = sel.and_then(|s| s.anchor()) {
            self.by_anchor.entry(a).or_default().push(id);
        }
        self.open.insert(
            id,
            Open {
                path: None,
                buf: Vec::new(),
                spilled: None,
                on_disk: 0,
                size: 0,
                packets: 0,
                lost: None,
                link: None,
                flows: Vec::new(),
                sel,
                until_ns: u64::MAX,
                slot,
                full: false,
            },
        );
        id
    }

    fn write_frame(&mut self, i: u64, ts: u64, orig: u32, link: LinkType, data: &[u8]) {
        let (cap, total) = (self.cfg.alert_bytes, self.cfg.total_bytes);
        let Some(o) = self.open.get_mut(&i) else {
            return;
        };
        if ts > o.until_ns {
            return;
        }
        let need = pcap::RECORD_HEADER + data.len() as u64;
        // The header (reserved at creation) counts towards the file's cap.
        let size = o.size.max(pcap::FILE_HEADER);
        if o.full || size + need > cap {
            o.full = true;
            self.stats.frames_over_alert_cap += 1;
            return;
        }
        if self.written + need > total {
            self.stats.frames_over_total_cap += 1;
            return;
        }
        let before = o.buf.len();
        match o.link {
            Some(l) if l != link => {
                self.stats.frames_other_link += 1;
                return;
            }
            Some(_) => {}
            None => {
                let _ = pcap::write_header(&mut o.buf, link);
                o.link = Some(link);
            }
        }
        let _ = pcap::write_record(&mut o.buf, ts, orig, data);
        let added = (o.buf.len() - before) as u64;
        o.size += added;
        o.packets += 1;
        self.buffered += added;
        self.written += need;
        self.stats.packets += 1;
        self.stats.bytes += need;
        if self.buffered > MAX_BUFFERED {
            self.spill();
        }
    }

    /// Move every file's buffered bytes to disk (appending; no descriptor is
    /// kept), so buffers stay under [`MAX_BUFFERED`] together.
    fn spill(&mut self) {
        let dir = self.cfg.dir.clone();
        let mut failed: Option<(PathBuf, io::Error)> = None;
        // Largest buffers first, until half the budget is free: few system
        // calls, and small files usually close before they ever spill.
        // Named files before unnamed ones (a group's file would need a
        // temporary name and a rename).
        let mut sizes: Vec<(bool, usize, u64)> = self
            .open
            .iter()
            .filter(|(_, o)| !o.buf.is_empty())
            .map(|(id, o)| (o.path.is_some(), o.buf.len(), *id))
            .collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        let mut left = self.buffered;
        for (_, len, id) in sizes {
            if left <= MAX_BUFFERED / 2 {
                break;
            }
            left = left.saturating_sub(len as u64);
            let Some(o) = self.open.get_mut(&id) else {
                continue;
            };
            let (target, fresh) = match &o.spilled {
                Some(p) => (p.clone(), false),
                None => (dir.join(format!(".open-{id}.pcap")), true),
            };
            match append(&target, o.on_disk, &o.buf, fresh) {
                Ok(()) => {
                    o.spilled = Some(target);
                    o.on_disk += o.buf.len() as u64;
                    o.buf = Vec::new();
                }
                Err(e) => {
                    o.buf = Vec::new();
                    o.full = true;
                    if o.path.is_none() {
                        o.lost = Some(io::Error::new(e.kind(), e.to_string()));
                    }
                    failed.get_or_insert((target, e));
                }
            }
        }
        self.buffered = left;
        if let Some((p, e)) = failed {
            self.error(&p, &e);
        }
    }

    /// Write file `i` out and forget it.
    fn close(&mut self, id: u64) {
        // A named file exists already (written when its line was): append
        // the rest.
        if self.open.get(&id).is_some_and(|o| o.path.is_some()) {
            self.write_out(id);
        }
        let Some(o) = self.open.remove(&id) else {
            return;
        };
        self.forget(id, &o);
        self.buffered = self.buffered.saturating_sub(o.buf.len() as u64);
        if o.path.is_none() {
            // A group whose line was never written: nothing names it.
            if let Some(tmp) = o.spilled {
                let _ = std::fs::remove_file(tmp);
            }
        }
    }

    fn error(&mut self, path: &Path, e: &io::Error) {
        self.stats.write_errors += 1;
        if !self.error_told {
            self.error_told = true;
            eprintln!("zonewatch: evidence: {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests;
