//! Floor L2 (`flow`). The per-worker flow table: bidirectional flows keyed by [`FlowKey`], timed
//! out on packet time, capped at `max_flows`, finished into a [`FlowSink`].
//!
//! Owns flow state only; it never sees frame bytes, never reads the clock and
//! never allocates after [`FlowTable::new`].
//!
//! Floor L2 (flow): imports from `packet` and `policy` below it and from its
//! `flow` siblings, never from a higher floor.
//!
//! # Files
//!
//! - this file: [`FlowConfig`], [`FlowTable`] and its public API, the
//!   per-packet path (update, touch, create, end), expiry, eviction, flush,
//!   and the table's tests;
//! - `stats`: [`FlowStats`], [`PolicyStats`];
//! - `entry`: the slab entry and its bit-packing;
//! - `tcp`: the TCP state machine, timeout classes, end reasons;
//! - `index`: the open-addressing index and the LRU lists;
//! - `memory`: huge pages, pre-faulting, prefetching (all the `unsafe`);
//! - `generations`: verdicts and policy generation slots (reload).
//!
//! # Which packets make flows
//!
//! Only `l3` = IPv4/IPv6. ARP packets are counted (`FlowStats::arp`) and left to
//! later detectors; anything else is counted in `FlowStats::non_ip`. Non-first
//! fragments (ports 0, no L4 header) form their own `(address pair, proto)`
//! flow, tracked without TCP state: we do not reassemble.
//!
//! # Orientation: who is the initiator
//!
//! Records are oriented initiator → responder (`orig_*` / `resp_*`, as Zeek).
//! - TCP: the sender of the first SYN (without ACK). If the first packet seen is
//!   a SYN-ACK, its *receiver* is the initiator. If the first packet is neither
//!   (flow picked up mid-stream), the side with the higher port is the
//!   initiator (ephemeral client port heuristic; on a tie the sender of the
//!   first packet) and the record says `midstream: true`.
//! - UDP, ICMP and every other protocol: the sender of the first packet.
//! - ICMP/ICMPv6 type/code are replaced by the Community ID port equivalents,
//!   so an echo request and its reply (8 ↔ 0, 128 ↔ 129, ...) are one flow;
//!   one-way types (errors, ...) only match in their own direction.
//!
//! # TCP state
//!
//! `SynSent` (SYN) → `SynReceived` (SYN-ACK from the responder) → `Established`
//! (initiator's ACK; or a mid-stream pick-up; or an initiator ACK while still
//! `SynSent`, when the SYN-ACK was not captured) → `FinWait` (one side sent
//! FIN) → `Closed` (both sides sent FIN). RST from any state but `Closed`
//! gives `Reset`. The union of flags each side sent is kept. A SYN (without
//! ACK) on a `Closed`/`Reset` flow ends it (reason `fin`/`rst`) and starts a
//! new flow (port reuse).
//!
//! # Timeouts (packet time)
//!
//! | class | config field | default | Zeek (init-bare.zeek) | Suricata (suricata.yaml) |
//! |---|---|---|---|---|
//! | TCP half-open (`SynSent`, `SynReceived`) | `tcp_syn_timeout_ns` | 30 s | `tcp_SYN_timeout` 5 s (attempt) | tcp `new` 60 s |
//! | TCP `Established`, `FinWait` | `tcp_established_timeout_ns` | 600 s | `tcp_inactivity_timeout` 5 min | tcp `established` 600 s |
//! | TCP `Closed`, `Reset` (linger) | `tcp_closed_timeout_ns` | 5 s | `tcp_close_delay` / `tcp_reset_delay` 5 s | tcp `closed` 60 s |
//! | UDP | `udp_timeout_ns` | 60 s | `udp_inactivity_timeout` 1 min | udp `established` 300 s |
//! | ICMP, ICMPv6 | `icmp_timeout_ns` | 30 s | `icmp_inactivity_timeout` 1 min | icmp `new` 30 s |
//! | other protocols, TCP fragments | `other_timeout_ns` | 60 s | `unknown_ip_inactivity_timeout` 1 min | default `established` 300 s |
//!
//! 600 s for established TCP follows Suricata: office sessions (SMB, RDP,
//! database pools) idle for minutes, and splitting them would misreport them;
//! the cost is memory, bounded by `max_flows`. Half-open flows get 30 s
//! (SYN retransmissions back off 1+2+4+8+16 s) so SYN floods and scans drain
//! quickly. The 5 s linger keeps the final ACK and retransmitted FIN/RST in
//! the same flow.
//!
//! A flow has timed out at time `t` when `t - last_seen > timeout(class)`.
//! A packet arriving for a timed-out flow first ends it (`idle_timeout`, or
//! `fin`/`rst` for a closed one) and then starts a new flow; [`FlowTable::expire`]
//! only emits such flows earlier. Records therefore do not depend on how often
//! `expire` is called, which makes them identical whatever the worker count,
//! given this contract:
//! - `expire(now)` is called with a `now` no later than the timestamps of the
//!   packets given to `update` afterwards (call it after a batch's packets,
//!   with the batch's newest time);
//! - before `flush`, every table has been told the capture's last packet time
//!   (via `update` or `expire`): `flush` reports flows already timed out at
//!   that time with their timeout reason, not `end_of_capture` (and TCP
//!   connections closed by FIN/RST always with `fin`/`rst`);
//! - no eviction happened (eviction depends on each table's population).
//!
//! `expire` pops list heads; a flow is emitted at most one LRU "epoch" (≤ 1/8
//! of its class timeout, see below) after its timeout passed.
//!
//! # ICMP errors
//!
//! An ICMP error whose quoted header (`has_quote`) names a flow in this table
//! (the dispatcher sends it to the worker owning that flow) is counted on that
//! flow (`icmp_errors`) and creates nothing. Otherwise the error is its own
//! ICMP flow, identified by its own key *and* the hash of the quoted flow: two
//! errors about different unknown flows are different flows, so records do
//! not depend on which worker saw which error.
//!
//! # Eviction
//!
//! At `max_flows`, flows already timed out are ended first; if none, one flow
//! is evicted (`evicted`, counted): the oldest half-open TCP flow if any,
//! else the least-recently-seen flow among the other classes.
//!
//! # Policy verdict
//!
//! A table made with [`FlowTable::with_policy`] asks the zone policy for the
//! verdict of each new flow once, when it is created, oriented initiator →
//! responder as above (so a flow first seen by its SYN-ACK, or picked up
//! mid-stream, is judged with its initiator as the source), with the
//! responder's port and the flow's innermost VLAN ([`policy_vlan`]). The
//! orientation is fixed at creation (later packets never swap the sides), so
//! the verdict never needs recomputing. It is cached packed
//! ([`Verdict::pack_in`](crate::policy::Verdict::pack_in)) in the entry's
//! 4-byte `tag` and handed out in [`FlowRecord::tag`]; packets after the first
//! cost nothing. Flows created are also counted by verdict
//! (`FlowStats::policy`). Without a policy `tag` is 0.
//!
//! A new flow whose verdict is a violation is also handed to
//! [`FlowSink::flow_violation`] as a [`FlowStart`], once, by the packet that
//! creates it (oriented as stored; `quote_keyed` for an ICMP error about a
//! flow never seen). Replies and ICMP errors joining a known flow create
//! nothing, so they never call it.
//!
//! ## Policy generations (reload)
//!
//! [`FlowTable::swap_policy`] replaces the policy judging new flows while live
//! flows keep their state and their tag. A tag's rule and zone indices mean
//! something only in the policy that made it, so the table keeps up to
//! [`POLICY_GENERATIONS`] (16) policies, one per generation slot, and the tag
//! carries its slot (`generation_of(tag)`, bits 29..26); records are described
//! with [`FlowTable::policy_for`]`(tag)`. A live-flow count per slot (changed
//! when a flow is created or ends, never per packet) tells which slots are
//! free: a swap takes the next slot round-robin that no live flow names. If
//! every other slot is still named (15 reloads within one flow's lifetime),
//! the least-named slot is taken and its live flows are judged again under
//! the new policy (`FlowStats::policy_rejudged`).
//!
//! # Memory layout
//!
//! - Slab `Vec<Entry>` with capacity `max_flows` reserved up front (pages never
//!   written cost nothing resident; the slab and index ask for transparent huge
//!   pages, so residency grows in 2 MiB steps: at 500k random-order flows the
//!   TLB misses of 4 KiB pages cost more than zeroing whole huge pages), a free
//!   list threaded through `next`.
//!   `size_of::<Entry>() == 104` (const-asserted): key 44 B, policy tag 4 B,
//!   LRU prev/next 8 B, packets 2 × 4 B, first/last seen 16 B, two words
//!   packing 48-bit byte counters with the flags of each side, the TCP state,
//!   class bits and a saturating 8-bit ICMP error count, the responder's first
//!   VLAN ids 4 B and a VLAN-moved flag (1 B, 3 B padding). A 104-byte entry
//!   spans two or three cache lines; prefetches fetch its first and last byte.
//! - Index: open addressing with linear probing over `u64` slots
//!   (`slab index + 1` in the low half, the low 32 bits of the flow hash in the
//!   high half: 0 = empty), `2 × max_flows` rounded up to a power of two
//!   (load ≤ 0.5), backward-shift deletion (no tombstones). 16 B per flow at
//!   `max_flows` = 2^20. A `u32` per slab entry remembers its slot, so ending
//!   a flow needs no hash: the table never hashes keys, it trusts `meta.hash`.
//! - So 104 + 16 + 4 = 124 B per flow when the table is full
//!   (benches/flow_table.rs measures resident memory at 1M flows).
//! - With metrics on ([`FlowTable::count_zone_pairs`]), a `u16` per entry beside
//!   the slab names the flow's (zones, verdict) cell, set at creation;
//!   each packet adds to its cell ([`crate::flow::zones`]); +2 B per flow.
//! - One intrusive doubly linked list per timeout class, ordered by the
//!   "epoch" of each flow's last packet: `last_seen >> shift`, with `2^shift`
//!   ns the largest power of two ≤ 1/8 of the class timeout (e.g. 4.3 s for
//!   UDP's 60 s, 68.7 s for established TCP's 600 s, 0.54 s for the 5 s
//!   linger). A packet moves its flow to the list tail only when it starts a
//!   new epoch or changes the class, so most packets touch no neighbour
//!   entries (moving costs two random cache misses); expiry pops heads in
//!   O(1), eviction reads at most 6 heads. The price: within one epoch the
//!   order is approximate, so `expire` may emit a flow up to one epoch late
//!   and eviction's "least recently seen" is exact to one epoch.
//! - `meta.hash` (computed once by the dispatcher) locates the flow; the
//!   unbatched `update` costs two dependent cache misses (slot, entry) on a
//!   large table. [`FlowTable::update_batch`] prefetches slots, entries and
//!   list neighbours ahead so misses overlap: workers should use it.
use std::num::NonZeroUsize;
use std::sync::Arc;

use super::hash::quoted_key;
use super::record::{policy_vlan, EndReason, FlowClose, FlowRecord, FlowStart, Refusal, TcpState};
use super::zones::ZoneCells;
use super::FlowSink;
use crate::model::proto::{icmp_family, icmp_port_equivalents};
use crate::packet::{proto, tcp_flags, FlowKey, Frag, PacketMeta, L3};
use crate::policy::{generation_of, Policy, POLICY_GENERATIONS};

mod entry;
mod generations;
mod index;
// Unsafe (the flow table's only unsafe code): madvise(MADV_HUGEPAGE) on the slab
// and index, volatile writes that pre-fault the index, and prefetch hints.
#[allow(unsafe_code)]
mod memory;
mod stats;
mod tcp;

pub use entry::ENTRY_BYTES;
pub use stats::{FlowStats, PolicyStats};

use entry::{
    Entry, BYTES, FREE, ICMP, NCLASS, NIL, OTHER, ST_MIDSTREAM, ST_QUOTE_KEYED, TCP_CLOSED,
    TCP_EST, TCP_SYN, UDP,
};
use generations::judge;
use index::epoch_shift;
use memory::{huge_pages, touch_pages};
use tcp::{class_of, tcp_next, timeout_reason};

const SEC: u64 = 1_000_000_000;

/// Largest accepted `max_flows` (slab indices are `u32`, and the index has
/// twice as many slots).
pub const MAX_FLOWS_LIMIT: usize = 1 << 30;

/// Flow table limits and timeouts (packet time, nanoseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    /// Hard cap of concurrent flows in one table (clamped to [`MAX_FLOWS_LIMIT`]).
    pub max_flows: NonZeroUsize,
    /// Half-open TCP (SYN or SYN-ACK seen, handshake not completed).
    pub tcp_syn_timeout_ns: u64,
    /// Established or half-closed TCP.
    pub tcp_established_timeout_ns: u64,
    /// Linger after the FIN exchange or a RST.
    pub tcp_closed_timeout_ns: u64,
    pub udp_timeout_ns: u64,
    /// ICMP and ICMPv6.
    pub icmp_timeout_ns: u64,
    /// Every other protocol, and TCP flows made of non-first fragments.
    pub other_timeout_ns: u64,
    /// VLAN ids are part of the flow key (`--vlan-in-flow-key`): packets of one
    /// 5-tuple on two VLANs are two flows. Off by default: on a router trunk
    /// each direction of a routed connection carries the VLAN of the segment it
    /// entered from, and both directions must meet in one flow. Must match the
    /// [`FlowHasher`](super::FlowHasher)'s setting.
    pub vlan_in_key: bool,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            max_flows: NonZeroUsize::new(1 << 20).unwrap_or(NonZeroUsize::MIN),
            tcp_syn_timeout_ns: 30 * SEC,
            tcp_established_timeout_ns: 600 * SEC,
            tcp_closed_timeout_ns: 5 * SEC,
            udp_timeout_ns: 60 * SEC,
            icmp_timeout_ns: 30 * SEC,
            other_timeout_ns: 60 * SEC,
            vlan_in_key: false,
        }
    }
}

/// The key of the flow `meta` belongs to as this table stores it (ICMP port
/// equivalents; an ICMP error: the flow it quotes), in either orientation.
pub fn flow_key_of(meta: &PacketMeta) -> FlowKey {
    if meta.has_quote {
        canonical(&quoted_key(meta)).0
    } else {
        canonical(&meta.key).0
    }
}

/// Replace ICMP type/code by the Community ID port equivalents (other keys
/// unchanged); returns whether the key is a one-way ICMP type (matched only
/// in its own direction).
#[inline]
fn canonical(key: &FlowKey) -> (FlowKey, bool) {
    match icmp_family(key.proto) {
        Some(v6) => {
            let (a, b, one_way) = icmp_port_equivalents(v6, key.sport, key.dport);
            let mut k = *key;
            k.sport = a;
            k.dport = b;
            (k, one_way)
        }
        None => (*key, false),
    }
}

/// Per-worker flow table. See the module docs.
pub struct FlowTable {
    slab: Vec<Entry>,
    free: u32,
    /// 0 = empty, else `(idx + 1) | (hash as u32) << 32`.
    slots: Vec<u64>,
    /// Slot position of each slab entry, so removal needs no hash.
    slot_of: Vec<u32>,
    mask: usize,
    heads: [u32; NCLASS],
    tails: [u32; NCLASS],
    timeouts: [u64; NCLASS],
    /// `epoch_shift` of each class timeout.
    shifts: [u32; NCLASS],
    max_flows: usize,
    /// Newest packet time seen (by `update` or `expire`).
    now: u64,
    stats: FlowStats,
    /// Policy generations (see "Policy verdict" in the module docs): slot
    /// `cur` judges each new flow; the others describe older flows' tags.
    gens: [Option<Arc<Policy>>; POLICY_GENERATIONS],
    /// [`FlowConfig::vlan_in_key`].
    vlan_in_key: bool,
    /// The generation slot new flows are judged and packed with.
    cur: u8,
    /// Live flows whose tag names each slot (tag ≠ 0 only); changed only when
    /// a flow is created or emitted.
    live: [u32; POLICY_GENERATIONS],
    /// Packets and bytes by (zone, zone, verdict) cell: a `u16` per slab entry
    /// beside the slab (entries stay 104 B); `None` unless
    /// [`count_zone_pairs`](Self::count_zone_pairs) turned it on (metrics).
    cells: Option<Box<ZoneCells>>,
}

impl FlowTable {
    /// An empty table. It never hashes keys itself: flows are located by
    /// `meta.hash`, so every packet must carry the hash of one and the same
    /// [`FlowHasher`](super::FlowHasher) (`hash_packet`), whatever its seed.
    pub fn new(cfg: &FlowConfig) -> FlowTable {
        FlowTable::with_policy(cfg, None)
    }

    /// [`new`](Self::new), and every flow created gets `policy`'s verdict
    /// (packed in [`FlowRecord::tag`]); `None` = no verdicts (`tag` 0).
    pub fn with_policy(cfg: &FlowConfig, policy: Option<Arc<Policy>>) -> FlowTable {
        let max_flows = cfg.max_flows.get().min(MAX_FLOWS_LIMIT);
        let nslots = (max_flows * 2).next_power_of_two().max(16);
        let mut timeouts = [0u64; NCLASS];
        timeouts[TCP_SYN as usize] = cfg.tcp_syn_timeout_ns;
        timeouts[TCP_EST as usize] = cfg.tcp_established_timeout_ns;
        timeouts[TCP_CLOSED as usize] = cfg.tcp_closed_timeout_ns;
        timeouts[UDP as usize] = cfg.udp_timeout_ns;
        timeouts[ICMP as usize] = cfg.icmp_timeout_ns;
        timeouts[OTHER as usize] = cfg.other_timeout_ns;
        // The index arrays are written once here, page by page. Left to the lazy
        // zeroed allocation, the first access to a page is often a read (the
        // lookup or prefetch of an empty slot), which maps the shared zero page;
        // the later write then copy-on-writes it and must flush the TLBs of every
        // CPU running this process: measured, those IPIs were ~25% of worker
        // time with 2 workers. The slab stays lazy (entries are written first).
        let mut slots = vec![0u64; nslots];
        let mut slot_of = vec![0u32; max_flows];
        let slab: Vec<Entry> = Vec::with_capacity(max_flows);
        huge_pages(slots.as_ptr() as *const u8, slots.len() * 8);
        huge_pages(
            slab.as_ptr() as *const u8,
            max_flows * std::mem::size_of::<Entry>(),
        );
        touch_pages(&mut slots);
        touch_pages(&mut slot_of);
        FlowTable {
            slab,
            free: NIL,
            slots,
            slot_of,
            mask: nslots - 1,
            heads: [NIL; NCLASS],
            tails: [NIL; NCLASS],
            timeouts,
            shifts: timeouts.map(epoch_shift),
            max_flows,
            now: 0,
            stats: FlowStats::default(),
            gens: std::array::from_fn(|i| if i == 0 { policy.clone() } else { None }),
            cur: 0,
            live: [0; POLICY_GENERATIONS],
            cells: None,
            vlan_in_key: cfg.vlan_in_key,
        }
    }

    /// Count packets and bytes per (source zone, destination zone, verdict)
    /// of their flow, for the metrics ([`ZoneCells`]): one side-array write
    /// per new flow, one cell add per packet. Call before the first packet.
    pub fn count_zone_pairs(&mut self) {
        self.cells = Some(Box::new(ZoneCells::new(self.max_flows)));
    }

    /// The zone-pair counts since the last drain, if counting is on.
    pub fn zone_cells(&mut self) -> Option<&mut ZoneCells> {
        self.cells.as_deref_mut()
    }

    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    /// Flows currently tracked.
    pub fn len(&self) -> usize {
        self.stats.active as usize
    }

    pub fn is_empty(&self) -> bool {
        self.stats.active == 0
    }

    /// Virtual memory reserved by the table (slab capacity + index), bytes.
    /// Resident memory is lower until the table fills.
    pub fn reserved_bytes(&self) -> usize {
        self.slab.capacity() * ENTRY_BYTES
            + self.slots.len() * std::mem::size_of::<u64>()
            + self.slot_of.len() * std::mem::size_of::<u32>()
    }

    /// Account one packet (`meta.hash` already set by the dispatcher with
    /// `FlowHasher::hash_packet`).
    #[inline]
    pub fn update(&mut self, meta: &PacketMeta, sink: &mut impl FlowSink) {
        match meta.l3 {
            L3::Ipv4 | L3::Ipv6 => {}
            L3::Arp => {
                self.stats.arp += 1;
                sink.arp(meta);
                return;
            }
            _ => {
                self.stats.non_ip += 1;
                return;
            }
        }
        self.stats.packets += 1;
        let ts = meta.ts_ns;
        if ts > self.now {
            self.now = ts;
        }
        if meta.has_quote {
            let (q, q_one_way) = canonical(&quoted_key(meta));
            if let Some((idx, _)) = self.find(meta.hash, &q, q_one_way, None) {
                match self.timed_out(idx, ts) {
                    Some(reason) => self.end(idx, reason, sink),
                    None => {
                        if let Some(c) = &mut self.cells {
                            c.count(idx, meta.wire_len);
                        }
                        if let Some(e) = self.slab.get_mut(idx as usize) {
                            e.add_icmp_error();
                            let k = e.key;
                            sink.flow_refused(&k, ts, Refusal::IcmpError);
                        }
                        self.stats.icmp_errors_matched += 1;
                        return;
                    }
                }
            }
            let (key, _) = canonical(&meta.key);
            self.account(meta.hash, &key, true, Some(meta.hash), meta, sink);
            return;
        }
        let (key, one_way) = canonical(&meta.key);
        self.account(meta.hash, &key, one_way, None, meta, sink);
    }

    /// [`update`](Self::update) for a batch, prefetching index slots and flow
    /// entries a few packets ahead so their cache misses overlap.
    ///
    /// Three stages ahead of the packet being processed: 16 packets ahead the
    /// index slot is prefetched, 8 ahead the flow entry it points to, and 4
    /// ahead (entry now cached) the LRU neighbours when the packet will move
    /// its flow in the list.
    pub fn update_batch(&mut self, metas: &[PacketMeta], sink: &mut impl FlowSink) {
        const SLOT: usize = 16;
        const ENTRY: usize = 8;
        const LINKS: usize = 4;
        for m in metas.iter().take(SLOT) {
            self.prefetch_slot(m.hash);
        }
        for m in metas.iter().take(ENTRY) {
            self.prefetch_entry(m.hash);
        }
        for (i, m) in metas.iter().enumerate() {
            if let Some(n) = metas.get(i + SLOT) {
                self.prefetch_slot(n.hash);
            }
            if let Some(n) = metas.get(i + ENTRY) {
                self.prefetch_entry(n.hash);
            }
            if let Some(n) = metas.get(i + LINKS) {
                self.prefetch_links(n);
            }
            self.update(m, sink);
        }
    }

    /// Packet time moved to `now_ns`: finish flows whose timeout has passed.
    /// Call after the packets older than `now_ns` were given to `update`.
    pub fn expire(&mut self, now_ns: u64, sink: &mut impl FlowSink) {
        if now_ns > self.now {
            self.now = now_ns;
        }
        self.expire_at(self.now, sink);
    }

    /// Finish every flow (end of capture or shutdown) with `reason`, except:
    /// TCP connections already closed by FIN or RST end with `fin`/`rst` (the
    /// reason describes the connection, lingering or not), and flows already
    /// timed out at the newest time seen end with `idle_timeout`.
    /// The table is empty and reusable afterwards.
    pub fn flush(&mut self, reason: EndReason, sink: &mut impl FlowSink) {
        // Everything goes, so no flow needs unlinking or unindexing one by one
        // (each would cost a few cache misses, walking the lists is a chain of
        // dependent ones): scan the slab in memory order, report every live
        // entry, then reset the index and the lists wholesale.
        let now = self.now;
        for i in 0..self.slab.len() {
            let Some(&e) = self.slab.get(i) else {
                break;
            };
            let class = e.class();
            if class == FREE {
                continue;
            }
            let r = match e.tcp() {
                t @ (TcpState::Closed | TcpState::Reset) => timeout_reason(t),
                _ => match self.timeouts.get(class as usize) {
                    Some(&timeout) if now.saturating_sub(e.last_ns) > timeout => {
                        timeout_reason(e.tcp())
                    }
                    _ => reason,
                },
            };
            self.emit(&e, r, sink);
        }
        self.slots.fill(0);
        self.heads = [NIL; NCLASS];
        self.tails = [NIL; NCLASS];
        self.stats.active = 0;
        // Start the slab over.
        self.slab.clear();
        self.free = NIL;
    }

    // ---- internals -------------------------------------------------------

    fn expire_at(&mut self, now: u64, sink: &mut impl FlowSink) {
        for c in 0..NCLASS {
            while let Some(&h) = self.heads.get(c) {
                if h == NIL {
                    break;
                }
                match self.timed_out(h, now) {
                    Some(r) => self.end(h, r, sink),
                    None => break,
                }
            }
        }
    }

    /// The reason a flow has ended by time `t`, if its timeout passed.
    #[inline]
    fn timed_out(&self, idx: u32, t: u64) -> Option<EndReason> {
        let e = self.slab.get(idx as usize)?;
        let timeout = *self.timeouts.get(e.class() as usize)?;
        if t.saturating_sub(e.last_ns) > timeout {
            Some(timeout_reason(e.tcp()))
        } else {
            None
        }
    }

    #[inline]
    fn account(
        &mut self,
        hash: u64,
        key: &FlowKey,
        one_way: bool,
        quote: Option<u64>,
        meta: &PacketMeta,
        sink: &mut impl FlowSink,
    ) {
        if let Some((idx, is_orig)) = self.find(hash, key, one_way, quote) {
            if let Some(reason) = self.timed_out(idx, meta.ts_ns) {
                self.end(idx, reason, sink);
            } else if let Some(reason) = self.restarts(idx, meta) {
                self.end(idx, reason, sink);
            } else {
                self.touch(idx, is_orig, meta, sink);
                return;
            }
        }
        self.create(hash, key, quote, meta, sink);
    }

    /// A SYN (without ACK) on a closed or reset TCP flow starts a new connection.
    #[inline]
    fn restarts(&self, idx: u32, meta: &PacketMeta) -> Option<EndReason> {
        let e = self.slab.get(idx as usize)?;
        let t = e.tcp();
        let syn_only = meta.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN;
        if syn_only && matches!(t, TcpState::Closed | TcpState::Reset) {
            Some(timeout_reason(t))
        } else {
            None
        }
    }

    /// Count a packet on an existing flow.
    #[inline]
    fn touch(&mut self, idx: u32, is_orig: bool, meta: &PacketMeta, sink: &mut impl FlowSink) {
        if let Some(c) = &mut self.cells {
            c.count(idx, meta.wire_len);
        }
        let Some(e) = self.slab.get_mut(idx as usize) else {
            return;
        };
        // The responder's first packet (quote-keyed flows keep the quote hash
        // in the responder counters and never see one).
        let answered = !is_orig && e.resp_pkts == 0 && !e.quote_keyed();
        if answered {
            e.resp_vlan = meta.key.vlan;
        } else if !self.vlan_in_key && !e.quote_keyed() {
            if is_orig && e.orig_pkts == 0 {
                // First seen by its reply: now the initiator's VLANs are known.
                e.key.vlan = meta.key.vlan;
            } else {
                let first = if is_orig { e.key.vlan } else { e.resp_vlan };
                if first != meta.key.vlan && !e.vlan_moved {
                    e.vlan_moved = true;
                    let mut key = e.key;
                    key.vlan = meta.key.vlan;
                    sink.flow_vlan_moved(&FlowStart {
                        key,
                        ts_ns: meta.ts_ns,
                        tag: e.tag,
                        quote_keyed: false,
                        mac: meta.src_mac,
                        mac_is_initiator: is_orig,
                        tcp_flags: 0,
                        source: meta.source,
                    });
                }
            }
        }
        let ts = meta.ts_ns;
        let old_class = e.class();
        let shift = self.shifts.get(old_class as usize).copied().unwrap_or(30);
        let old_epoch = e.last_ns >> shift;
        let old_last = e.last_ns;
        if ts > e.last_ns {
            e.last_ns = ts;
            if ts >> super::SEEN_SHIFT != old_last >> super::SEEN_SHIFT
                && crate::policy::is_violation_tag(e.tag)
            {
                sink.flow_seen(&e.key, e.tag, ts);
            }
        }
        if ts < e.first_ns {
            e.first_ns = ts;
        }
        let t = e.tcp();
        if t == TcpState::None {
            e.count(is_orig, meta.wire_len, 0);
        } else {
            e.count(is_orig, meta.wire_len, meta.tcp_flags);
            let fin_o = e.flags_orig() & tcp_flags::FIN != 0;
            let fin_r = e.flags_resp() & tcp_flags::FIN != 0;
            let n = tcp_next(t, meta.tcp_flags, is_orig, fin_o, fin_r);
            if n != t {
                e.set_tcp(n);
                if matches!(n, TcpState::Closed | TcpState::Reset) {
                    let refused = n == TcpState::Reset
                        && !is_orig
                        && matches!(t, TcpState::SynSent | TcpState::SynReceived);
                    let close = FlowClose {
                        key: e.key,
                        first_ns: e.first_ns,
                        ts_ns: ts,
                        orig_pkts: u64::from(e.orig_pkts),
                        orig_bytes: e.orig & BYTES,
                        resp_pkts: u64::from(e.resp_pkts),
                        resp_bytes: e.resp & BYTES,
                        state: n,
                        established: matches!(t, TcpState::Established | TcpState::FinWait),
                        flags_orig: e.flags_orig(),
                        flags_resp: e.flags_resp(),
                    };
                    if answered {
                        sink.flow_answered(&close.key, ts);
                    }
                    if refused {
                        sink.flow_refused(&close.key, ts, Refusal::Rst);
                    }
                    sink.flow_closed(&close);
                    self.relink(idx, old_class, old_epoch, shift);
                    return;
                }
            }
        }
        if answered {
            let k = e.key;
            sink.flow_answered(&k, ts);
        }
        self.relink(idx, old_class, old_epoch, shift);
    }

    /// Start a new flow with this packet.
    fn create(
        &mut self,
        hash: u64,
        key: &FlowKey,
        quote: Option<u64>,
        meta: &PacketMeta,
        sink: &mut impl FlowSink,
    ) {
        if self.len() >= self.max_flows {
            self.make_room(sink);
        }
        let is_tcp = key.proto == proto::TCP && meta.frag != Frag::NonFirst && quote.is_none();
        let f = meta.tcp_flags;
        let syn = f & tcp_flags::SYN != 0;
        let ack = f & tcp_flags::ACK != 0;
        let (stored, is_orig, tcp, midstream) = if !is_tcp {
            (*key, true, TcpState::None, false)
        } else if syn && !ack {
            (*key, true, TcpState::SynSent, false)
        } else if syn {
            (key.reversed(), false, TcpState::SynReceived, false)
        } else if key.sport >= key.dport {
            (*key, true, TcpState::Established, true)
        } else {
            (key.reversed(), false, TcpState::Established, true)
        };
        let mut e = Entry {
            key: stored,
            tag: 0,
            prev: NIL,
            next: NIL,
            orig_pkts: 0,
            resp_pkts: 0,
            first_ns: meta.ts_ns,
            last_ns: meta.ts_ns,
            orig: 0,
            resp: 0,
            resp_vlan: if is_orig { [0; 2] } else { meta.key.vlan },
            vlan_moved: false,
        };
        let mut st = tcp as u8;
        if midstream {
            st |= ST_MIDSTREAM;
        }
        if let Some(qh) = quote {
            st |= ST_QUOTE_KEYED;
            e.resp_pkts = qh as u32;
            e.resp = qh >> 32;
        }
        e.set_state(st);
        if tcp == TcpState::None {
            e.count(is_orig, meta.wire_len, 0);
        } else {
            e.count(is_orig, meta.wire_len, f);
            let fin_o = e.flags_orig() & tcp_flags::FIN != 0;
            let fin_r = e.flags_resp() & tcp_flags::FIN != 0;
            e.set_tcp(tcp_next(tcp, f, is_orig, fin_o, fin_r));
        }
        let class = class_of(stored.proto, e.tcp());
        e.set_class(class);
        let cur = self.cur;
        let verdict = match self.gens.get(usize::from(cur)) {
            // Once per flow, after the orientation is decided (it never changes).
            Some(Some(p)) => {
                let v = judge(p, &stored);
                e.tag = v.pack_in(cur);
                Some(v)
            }
            _ => None,
        };

        let idx = if self.free != NIL {
            let idx = self.free;
            match self.slab.get_mut(idx as usize) {
                Some(slot) => {
                    self.free = slot.next;
                    *slot = e;
                }
                None => return, // unreachable: free list holds slab indices
            }
            idx
        } else if self.slab.len() < self.slab.capacity() {
            // Within the capacity reserved by `new`: never reallocates.
            self.slab.push(e);
            (self.slab.len() - 1) as u32
        } else {
            return; // unreachable: len() < max_flows after make_room
        };
        self.index_insert(hash, idx);
        self.link_tail(idx, class);
        if let Some(c) = &mut self.cells {
            let p = self.gens.get(usize::from(cur)).and_then(Option::as_deref);
            c.flow_created(idx, &stored, e.tag, p, policy_vlan(&stored));
            c.count(idx, meta.wire_len);
        }
        self.stats.created += 1;
        self.stats.active += 1;
        if self.stats.active > self.stats.peak_active {
            self.stats.peak_active = self.stats.active;
        }
        if let Some(v) = verdict {
            self.stats.policy.count(&v);
            if let Some(n) = self.live.get_mut(usize::from(cur)) {
                *n += 1;
            }
        }
        sink.flow_started(&FlowStart {
            key: stored,
            ts_ns: meta.ts_ns,
            tag: e.tag,
            quote_keyed: quote.is_some(),
            mac: meta.src_mac,
            mac_is_initiator: is_orig,
            tcp_flags: if is_tcp { f } else { 0 },
            source: meta.source,
        });
    }

    /// Free one entry: timed-out flows first, else evict.
    fn make_room(&mut self, sink: &mut impl FlowSink) {
        self.expire_at(self.now, sink);
        if self.len() < self.max_flows {
            return;
        }
        let mut victim = self.heads[TCP_SYN as usize];
        if victim == NIL {
            let mut oldest = u64::MAX;
            for (c, &h) in self.heads.iter().enumerate() {
                if c == TCP_SYN as usize || h == NIL {
                    continue;
                }
                if let Some(e) = self.slab.get(h as usize) {
                    if e.last_ns < oldest {
                        oldest = e.last_ns;
                        victim = h;
                    }
                }
            }
        }
        if victim != NIL {
            self.end(victim, EndReason::Evicted, sink);
            self.stats.evicted += 1;
        }
    }

    /// Emit the record of flow `idx` and free it.
    fn end(&mut self, idx: u32, reason: EndReason, sink: &mut impl FlowSink) {
        let Some(e) = self.slab.get(idx as usize).copied() else {
            return;
        };
        self.emit(&e, reason, sink);
        self.index_remove(idx);
        self.unlink(idx, e.class());
        if e.prev == NIL && e.next != NIL {
            // A list head ended (expiry, eviction): its successor is the next
            // candidate. Its entry is cached now (unlink wrote it); fetch what
            // ending it would wait for: its slot position and its successor.
            self.prefetch_head(e.next);
        }
        if let Some(slot) = self.slab.get_mut(idx as usize) {
            slot.set_class(FREE);
            slot.next = self.free;
            slot.prev = NIL;
        }
        self.free = idx;
        self.stats.active = self.stats.active.saturating_sub(1);
    }

    /// Hand the record of entry `e` ending for `reason` to the sink and count it.
    #[inline]
    fn emit(&mut self, e: &Entry, reason: EndReason, sink: &mut impl FlowSink) {
        let quote_keyed = e.quote_keyed();
        let rec = FlowRecord {
            key: e.key,
            first_ns: e.first_ns,
            last_ns: e.last_ns,
            orig_pkts: e.orig_pkts as u64,
            orig_bytes: e.orig & BYTES,
            resp_pkts: if quote_keyed { 0 } else { e.resp_pkts as u64 },
            resp_bytes: if quote_keyed { 0 } else { e.resp & BYTES },
            tcp_state: e.tcp(),
            tcp_flags_orig: e.flags_orig(),
            tcp_flags_resp: e.flags_resp(),
            midstream: e.state() & ST_MIDSTREAM != 0,
            icmp_errors: e.icmp_errors() as u32,
            tag: e.tag,
            end: reason,
            resp_vlan: e.resp_vlan,
        };
        sink.flow_ended(&rec);
        if let Some(n) = self.stats.ended.get_mut(reason as usize) {
            *n += 1;
        }
        if e.tag != 0 {
            if let Some(n) = self.live.get_mut(usize::from(generation_of(e.tag))) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::flow::FlowHasher;
    use crate::packet::{addr_v4, tcp_flags::*, Quote};
    use crate::policy::{Severity, Verdict};

    const HASH_SEED: u64 = 42;

    fn hasher() -> FlowHasher {
        FlowHasher::with_seed(HASH_SEED)
    }

    fn cfg(max: usize) -> FlowConfig {
        FlowConfig {
            max_flows: NonZeroUsize::new(max).unwrap(),
            ..FlowConfig::default()
        }
    }

    fn table(max: usize) -> FlowTable {
        FlowTable::new(&cfg(max))
    }

    const A: [u8; 4] = [192, 0, 2, 10];
    const B: [u8; 4] = [198, 51, 100, 20];
    const C: [u8; 4] = [203, 0, 113, 30];

    fn pkt(
        ts_s: f64,
        src: [u8; 4],
        sp: u16,
        dst: [u8; 4],
        dp: u16,
        p: u8,
        flags: u8,
    ) -> PacketMeta {
        let mut m = PacketMeta {
            ts_ns: (ts_s * 1e9).round() as u64,
            key: FlowKey {
                src: addr_v4(src),
                dst: addr_v4(dst),
                sport: sp,
                dport: dp,
                proto: p,
                ..Default::default()
            },
            wire_len: 100,
            l3: L3::Ipv4,
            tcp_flags: flags,
            ..Default::default()
        };
        m.hash = hasher().hash_packet(&m);
        m
    }

    fn tcp(ts: f64, src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, flags: u8) -> PacketMeta {
        pkt(ts, src, sp, dst, dp, proto::TCP, flags)
    }

    /// Feed packets one by one, then flush.
    fn run(t: &mut FlowTable, pkts: &[PacketMeta]) -> Vec<FlowRecord> {
        let mut out = Vec::new();
        for p in pkts {
            t.update(p, &mut out);
        }
        t.flush(EndReason::EndOfCapture, &mut out);
        out
    }

    fn handshake_close(t0: f64) -> Vec<PacketMeta> {
        vec![
            tcp(t0, A, 40000, B, 80, SYN),
            tcp(t0 + 0.01, B, 80, A, 40000, SYN | ACK),
            tcp(t0 + 0.02, A, 40000, B, 80, ACK),
            tcp(t0 + 0.03, A, 40000, B, 80, PSH | ACK),
            tcp(t0 + 0.04, B, 80, A, 40000, PSH | ACK),
            tcp(t0 + 0.05, A, 40000, B, 80, FIN | ACK),
            tcp(t0 + 0.06, B, 80, A, 40000, FIN | ACK),
            tcp(t0 + 0.07, A, 40000, B, 80, ACK), // final ACK: same flow
        ]
    }

    #[test]
    fn entry_layout() {
        assert_eq!(std::mem::size_of::<Entry>(), 104);
        let t = table(1 << 20);
        // 104 B entry + 16 B of index slots + 4 B slot position per flow when full.
        assert_eq!(t.reserved_bytes(), (1 << 20) * (104 + 16 + 4));
    }

    #[test]
    fn expire_is_late_by_at_most_one_epoch() {
        let mut t = table(64);
        let mut out = Vec::new();
        // Same UDP epoch (4.29 s): the list keeps creation order, although
        // flow 1 is refreshed after flow 2's last packet.
        t.update(&pkt(0.0, A, 1, B, 9, proto::UDP, 0), &mut out);
        t.update(&pkt(0.5, A, 2, B, 9, proto::UDP, 0), &mut out);
        t.update(&pkt(1.0, A, 1, B, 9, proto::UDP, 0), &mut out);
        t.expire(60_600_000_000, &mut out); // flow 2 timed out, flow 1 not
        assert!(out.len() <= 1);
        let epoch = 1u64 << epoch_shift(t.timeouts[UDP as usize]);
        t.expire(60_500_000_001 + epoch, &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|r| r.end == EndReason::IdleTimeout));
        // Records say when the flows really ended.
        let mut last: Vec<_> = out.iter().map(|r| (r.key.sport, r.last_ns)).collect();
        last.sort();
        assert_eq!(last, [(1, SEC), (2, SEC / 2)]);
    }

    #[test]
    fn vlan_and_link_separate_flows() {
        // With VLAN ids in the key (`--vlan-in-flow-key`).
        let cfg = FlowConfig {
            vlan_in_key: true,
            ..FlowConfig::default()
        };
        let mut t = FlowTable::new(&cfg);
        let h = hasher().with_vlan_in_key(true);
        let mut a = pkt(1.0, A, 1000, B, 53, proto::UDP, 0);
        a.hash = h.hash_packet(&a);
        let mut v = a;
        v.key.vlan = [10, 0];
        v.hash = h.hash_packet(&v);
        let mut l = a;
        l.key.link = 2;
        l.hash = h.hash_packet(&l);
        let out = run(&mut t, &[a, v, l, a]);
        assert_eq!(out.len(), 3);
        assert_eq!(out.iter().map(|r| r.orig_pkts).sum::<u64>(), 4);
        // By default the VLAN is not part of the key: only the link separates.
        let mut t = table(16);
        let mut v = a;
        v.key.vlan = [10, 0];
        v.hash = hasher().hash_packet(&v);
        let mut l = a;
        l.key.link = 2;
        l.hash = hasher().hash_packet(&l);
        a.hash = hasher().hash_packet(&a);
        let out = run(&mut t, &[a, v, l, a]);
        assert_eq!(out.len(), 2);
    }

    /// Issue #12 point 2: on a router trunk each direction of a routed
    /// connection carries the VLAN of the segment it entered from. It is one
    /// flow, oriented by its initiator, with the VLANs of both directions.
    #[test]
    fn router_trunk_directions_on_two_vlans_are_one_flow() {
        let mut t = table(16);
        let mut pk = handshake_close(1.0);
        for p in &mut pk {
            p.key.vlan = if p.key.src == addr_v4(A) {
                [0, 110]
            } else {
                [0, 220]
            };
            p.hash = hasher().hash_packet(p);
        }
        let out = run(&mut t, &pk);
        assert_eq!(out.len(), 1, "{out:?}");
        let r = &out[0];
        assert_eq!(
            (r.key.src, r.key.vlan, r.resp_vlan),
            (addr_v4(A), [0, 110], [0, 220])
        );
        assert_eq!(r.orig_pkts + r.resp_pkts, pk.len() as u64);
        assert_eq!(r.tcp_state, TcpState::Closed);
    }

    #[test]
    fn any_dispatcher_hasher_gives_the_same_records() {
        let pkts = mixed_traffic(3000);
        let mut results = Vec::new();
        for h in [FlowHasher::new(), FlowHasher::with_seed(1), hasher()] {
            let mut t = table(64);
            let mut out = Vec::new();
            for p in &pkts {
                let mut p = *p;
                p.hash = h.hash_packet(&p);
                t.update(&p, &mut out);
                t.expire(p.ts_ns, &mut out);
            }
            assert!(t.stats().evicted > 0, "the small table evicts");
            t.flush(EndReason::EndOfCapture, &mut out);
            assert_eq!(t.len(), 0);
            out.sort_by_key(sort_key);
            results.push(out);
        }
        assert!(results[0].len() > 100);
        assert_eq!(results[0], results[1]);
        assert_eq!(results[0], results[2]);
    }

    #[test]
    fn syn_first_orientation_and_fin_close() {
        let mut t = table(16);
        let mut out = Vec::new();
        for p in handshake_close(100.0) {
            t.update(&p, &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(t.len(), 1);
        // Still lingering 4 s later; ends by the linger after 5 s.
        t.expire(100.07e9 as u64 + 4 * SEC, &mut out);
        assert!(out.is_empty());
        t.expire(100.07e9 as u64 + 6 * SEC, &mut out);
        assert_eq!(out.len(), 1);
        let r = out[0];
        assert_eq!(r.key.src, addr_v4(A));
        assert_eq!(r.key.sport, 40000);
        assert_eq!(r.key.dst, addr_v4(B));
        assert_eq!(r.key.dport, 80);
        assert_eq!((r.orig_pkts, r.resp_pkts), (5, 3));
        assert_eq!((r.orig_bytes, r.resp_bytes), (500, 300));
        assert_eq!(r.tcp_state, TcpState::Closed);
        assert_eq!(r.end, EndReason::Fin);
        assert_eq!(r.tcp_flags_orig, SYN | ACK | PSH | FIN);
        assert_eq!(r.tcp_flags_resp, SYN | ACK | PSH | FIN);
        assert!(!r.midstream);
        assert_eq!(r.first_ns, 100_000_000_000);
        assert_eq!(r.last_ns, 100_070_000_000, "last packet, not expiry time");
        assert_eq!(t.stats().ended_by(EndReason::Fin), 1);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn state_progression() {
        let mut t = table(16);
        let mut out = Vec::new();
        let p = handshake_close(1.0);
        let states = [
            TcpState::SynSent,
            TcpState::SynReceived,
            TcpState::Established,
            TcpState::Established,
            TcpState::Established,
            TcpState::FinWait,
            TcpState::Closed,
            TcpState::Closed,
        ];
        for (m, want) in p.iter().zip(states) {
            t.update(m, &mut out);
            let e = t.slab[t.heads.iter().find(|&&h| h != NIL).copied().unwrap() as usize];
            assert_eq!(e.tcp(), want);
        }
    }

    #[test]
    fn synack_first_receiver_is_initiator() {
        let mut t = table(16);
        let out = run(
            &mut t,
            &[
                tcp(1.0, B, 80, A, 40000, SYN | ACK),
                tcp(1.1, A, 40000, B, 80, ACK),
            ],
        );
        assert_eq!(out.len(), 1);
        let r = out[0];
        assert_eq!((r.key.src, r.key.sport), (addr_v4(A), 40000));
        assert_eq!((r.key.dst, r.key.dport), (addr_v4(B), 80));
        assert_eq!((r.orig_pkts, r.resp_pkts), (1, 1));
        assert_eq!(r.end, EndReason::EndOfCapture);
        assert_eq!(r.tcp_state, TcpState::Established);
        assert!(!r.midstream);
        assert_eq!(r.end, EndReason::EndOfCapture);
    }

    #[test]
    fn midstream_higher_port_is_initiator() {
        let mut t = table(16);
        // First packet from the server (port 443): the client (higher port) initiates.
        let out = run(
            &mut t,
            &[
                tcp(1.0, B, 443, A, 51000, PSH | ACK),
                tcp(1.1, A, 51000, B, 443, ACK),
                tcp(1.2, B, 443, A, 51000, PSH | ACK),
            ],
        );
        assert_eq!(out.len(), 1);
        let r = out[0];
        assert_eq!((r.key.src, r.key.sport), (addr_v4(A), 51000));
        assert_eq!((r.orig_pkts, r.resp_pkts), (1, 2));
        assert!(r.midstream);
        assert_eq!(r.tcp_state, TcpState::Established);
        // Tie: the sender of the first packet.
        let mut t = table(16);
        let out = run(&mut t, &[tcp(1.0, B, 179, A, 179, ACK)]);
        assert_eq!(out[0].key.src, addr_v4(B));
        assert!(out[0].midstream);
    }

    #[test]
    fn rst_ends_with_rst_after_linger() {
        let mut t = table(16);
        let mut out = Vec::new();
        for p in [
            tcp(1.0, A, 40001, B, 25, SYN),
            tcp(1.001, B, 25, A, 40001, RST | ACK),
            tcp(1.5, A, 40001, B, 25, RST), // stray RST within linger: same flow
        ] {
            t.update(&p, &mut out);
        }
        t.expire(7 * SEC, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].end, EndReason::Rst);
        assert_eq!(out[0].tcp_state, TcpState::Reset);
        assert_eq!((out[0].orig_pkts, out[0].resp_pkts), (2, 1));
        assert_eq!(out[0].tcp_flags_resp, RST | ACK);
    }

    #[test]
    fn flush_keeps_fin_and_rst_reasons() {
        let mut t = table(16);
        let mut p = handshake_close(1.0);
        p.push(tcp(1.5, C, 40002, B, 9, SYN));
        p.push(tcp(1.5001, B, 9, C, 40002, RST | ACK));
        p.push(tcp(1.6, C, 40003, B, 80, SYN));
        let mut out = run(&mut t, &p); // flushed within the 5 s linger
        out.sort_by_key(|r| r.key.sport);
        let ends: Vec<_> = out.iter().map(|r| (r.key.sport, r.end)).collect();
        assert_eq!(
            ends,
            [
                (40000, EndReason::Fin),
                (40002, EndReason::Rst),
                (40003, EndReason::EndOfCapture)
            ]
        );
    }

    #[test]
    fn syn_after_close_starts_new_flow() {
        let mut t = table(16);
        let mut p = handshake_close(1.0);
        p.push(tcp(2.0, A, 40000, B, 80, SYN)); // reuse within linger
        let out = run(&mut t, &p);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].end, EndReason::Fin);
        assert_eq!(out[0].orig_pkts + out[0].resp_pkts, 8);
        assert_eq!(out[1].tcp_state, TcpState::SynSent);
        assert_eq!(out[1].first_ns, 2 * SEC);
        assert_eq!(t.stats().created, 2);
    }

    #[test]
    fn idle_timeout_by_packet_time_and_reuse() {
        let mut t = table(16);
        let mut out = Vec::new();
        let dns = |ts, from_a: bool| {
            if from_a {
                pkt(ts, A, 5353, C, 53, proto::UDP, 0)
            } else {
                pkt(ts, C, 53, A, 5353, proto::UDP, 0)
            }
        };
        t.update(&dns(10.0, true), &mut out);
        t.update(&dns(10.1, false), &mut out);
        // 60 s exactly is not yet a timeout; expire is never called here.
        t.update(&dns(70.1, true), &mut out);
        assert!(out.is_empty());
        // 61 s of silence: the packet ends the old flow and starts a new one.
        t.update(&dns(131.2, false), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].end, EndReason::IdleTimeout);
        assert_eq!((out[0].orig_pkts, out[0].resp_pkts), (2, 1));
        assert_eq!(out[0].last_ns, 70_100_000_000);
        t.flush(EndReason::Shutdown, &mut out);
        assert_eq!(out.len(), 2);
        // The new flow is oriented by its own first packet (from C).
        assert_eq!(out[1].key.src, addr_v4(C));
        assert_eq!(out[1].end, EndReason::Shutdown);
        assert_eq!(out[1].first_ns, 131_200_000_000);
        assert_eq!(t.stats().created, 2);
        assert_eq!(t.stats().ended_by(EndReason::IdleTimeout), 1);
        assert_eq!(t.stats().ended_by(EndReason::Shutdown), 1);
    }

    #[test]
    fn flush_reports_timed_out_flows_as_timeouts() {
        let mut t = table(16);
        let mut out = Vec::new();
        t.update(&pkt(1.0, A, 1000, B, 2000, proto::UDP, 0), &mut out);
        t.update(&pkt(100.0, A, 1001, B, 2000, proto::UDP, 0), &mut out);
        t.flush(EndReason::EndOfCapture, &mut out);
        let mut reasons: Vec<_> = out.iter().map(|r| (r.key.sport, r.end)).collect();
        reasons.sort();
        assert_eq!(
            reasons,
            [
                (1000, EndReason::IdleTimeout),
                (1001, EndReason::EndOfCapture)
            ]
        );
        // Reusable after flush.
        t.update(&pkt(200.0, A, 1000, B, 2000, proto::UDP, 0), &mut out);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn icmp_echo_is_one_flow() {
        let mut t = table(16);
        let out = run(
            &mut t,
            &[
                pkt(1.0, A, 8, B, 0, proto::ICMP, 0),
                pkt(1.01, B, 0, A, 0, proto::ICMP, 0),
                pkt(2.0, A, 8, B, 0, proto::ICMP, 0),
            ],
        );
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].orig_pkts, out[0].resp_pkts), (2, 1));
        assert_eq!((out[0].key.sport, out[0].key.dport), (8, 0));
        assert_eq!(out[0].key.src, addr_v4(A));
    }

    fn icmp_error(ts: f64, from: [u8; 4], to: [u8; 4], quoted: &PacketMeta) -> PacketMeta {
        let mut m = pkt(ts, from, 3, to, 3, proto::ICMP, 0);
        m.has_quote = true;
        m.quote = Quote {
            src: quoted.key.src,
            dst: quoted.key.dst,
            sport: quoted.key.sport,
            dport: quoted.key.dport,
            proto: quoted.key.proto,
            v6: quoted.key.v6,
        };
        m.hash = hasher().hash_packet(&m);
        m
    }

    #[test]
    fn icmp_error_attached_to_its_flow() {
        let mut t = table(16);
        let probe = pkt(1.0, A, 33000, C, 33434, proto::UDP, 0);
        let err = icmp_error(1.01, C, A, &probe);
        let out = run(&mut t, &[probe, err, err]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].key.proto, proto::UDP);
        assert_eq!(out[0].icmp_errors, 2);
        assert_eq!((out[0].orig_pkts, out[0].resp_pkts), (1, 0));
        assert_eq!(t.stats().icmp_errors_matched, 2);
    }

    #[test]
    fn icmp_error_without_flow_is_own_flow_per_quote() {
        let mut t = table(16);
        let q1 = pkt(1.0, A, 33000, C, 33434, proto::UDP, 0);
        let q2 = pkt(1.0, A, 33001, C, 33434, proto::UDP, 0);
        let out = run(
            &mut t,
            &[
                icmp_error(1.0, C, A, &q1),
                icmp_error(1.1, C, A, &q1),
                icmp_error(1.2, C, A, &q2),
            ],
        );
        assert_eq!(out.len(), 2, "one flow per quoted flow: {out:?}");
        let mut pk: Vec<_> = out
            .iter()
            .map(|r| (r.orig_pkts, r.resp_pkts, r.resp_bytes))
            .collect();
        pk.sort();
        assert_eq!(pk, [(1, 0, 0), (2, 0, 0)]);
        for r in &out {
            assert_eq!(r.key.proto, proto::ICMP);
            assert_eq!(r.key.src, addr_v4(C));
            assert_eq!((r.key.sport, r.key.dport), (3, 3));
        }
        assert_eq!(t.stats().icmp_errors_matched, 0);
    }

    #[test]
    fn icmp_error_for_timed_out_flow_does_not_attach() {
        let mut t = table(16);
        let probe = pkt(1.0, A, 33000, C, 33434, proto::UDP, 0);
        let err = icmp_error(100.0, C, A, &probe);
        let out = run(&mut t, &[probe, err]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].end, EndReason::IdleTimeout);
        assert_eq!(out[0].icmp_errors, 0);
        assert_eq!(out[1].key.proto, proto::ICMP);
    }

    #[test]
    fn arp_and_non_ip_make_no_flows() {
        let mut t = table(16);
        let mut a = pkt(1.0, A, 1, B, 0, 0, 0);
        a.l3 = L3::Arp;
        let mut o = a;
        o.l3 = L3::Other;
        let mut n = a;
        n.l3 = L3::None;
        let out = run(&mut t, &[a, o, n]);
        assert!(out.is_empty());
        assert_eq!(t.stats().arp, 1);
        assert_eq!(t.stats().non_ip, 2);
        assert_eq!(t.stats().created, 0);
    }

    #[test]
    fn non_first_fragments_form_their_own_flow() {
        let mut t = table(16);
        let first = tcp(1.0, A, 40000, B, 80, SYN);
        let mut frag = tcp(1.0, A, 0, B, 0, 0);
        frag.frag = Frag::NonFirst;
        let out = run(&mut t, &[first, frag, frag]);
        assert_eq!(out.len(), 2);
        let f = out.iter().find(|r| r.key.sport == 0).unwrap();
        assert_eq!(f.orig_pkts, 2);
        assert_eq!(f.tcp_state, TcpState::None);
        assert!(!f.midstream);
    }

    #[test]
    fn eviction_prefers_half_open_then_lru() {
        let mut t = table(4);
        let mut out = Vec::new();
        // Two established flows, then two half-open ones (all recent).
        for (i, p) in [40000u16, 40001].iter().enumerate() {
            let t0 = 1.0 + i as f64;
            for m in [
                tcp(t0, A, *p, B, 80, SYN),
                tcp(t0 + 0.01, B, 80, A, *p, SYN | ACK),
                tcp(t0 + 0.02, A, *p, B, 80, ACK),
            ] {
                t.update(&m, &mut out);
            }
        }
        t.update(&tcp(5.0, C, 50000, B, 22, SYN), &mut out);
        t.update(&tcp(6.0, C, 50001, B, 22, SYN), &mut out);
        assert_eq!(t.len(), 4);
        // A fifth flow evicts the oldest half-open flow, even though the
        // established ones were seen earlier.
        t.update(&pkt(7.0, A, 5000, C, 53, proto::UDP, 0), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].end, EndReason::Evicted);
        assert_eq!(out[0].key.sport, 50000);
        t.update(&pkt(8.0, A, 5001, C, 53, proto::UDP, 0), &mut out);
        assert_eq!(out[1].key.sport, 50001);
        // No half-open left: least recently seen (flow 40000 at t=1.02).
        t.update(&pkt(9.0, A, 5002, C, 53, proto::UDP, 0), &mut out);
        assert_eq!(out[2].key.sport, 40000);
        assert_eq!(out[2].tcp_state, TcpState::Established);
        assert_eq!(t.stats().evicted, 3);
        assert_eq!(t.stats().ended_by(EndReason::Evicted), 3);
        assert_eq!(t.len(), 4);
        assert_eq!(t.stats().peak_active, 4);
    }

    #[test]
    fn full_table_expires_before_evicting() {
        let mut t = table(2);
        let mut out = Vec::new();
        t.update(&pkt(1.0, A, 1, B, 2, proto::UDP, 0), &mut out);
        t.update(&pkt(50.0, A, 3, B, 4, proto::UDP, 0), &mut out);
        t.update(&pkt(62.0, A, 5, B, 6, proto::UDP, 0), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].end, EndReason::IdleTimeout);
        assert_eq!(t.stats().evicted, 0);
    }

    #[test]
    fn many_flows_insert_find_remove() {
        // Exercise the index (probe runs, backward-shift deletion) at full load.
        let n = 5000;
        let mut t = table(n);
        let mut out = Vec::new();
        let mk = |i: usize, ts: f64| {
            let [a, b] = (i as u16).to_be_bytes();
            pkt(
                ts,
                [192, 0, 2, a],
                1024 + b as u16,
                [198, 51, 100, 1],
                53,
                proto::UDP,
                0,
            )
        };
        for round in 0..3 {
            for i in 0..n {
                t.update(&mk(i, 1.0 + round as f64), &mut out);
            }
            assert_eq!(t.len(), n);
            assert_eq!(t.stats().created, n as u64);
        }
        // Remove every other flow by timing out half of them (via packets later).
        let mut t2 = table(n);
        for i in 0..n {
            t2.update(&mk(i, 1.0), &mut out);
        }
        for i in (0..n).step_by(2) {
            t2.update(&mk(i, 30.0), &mut out);
        }
        t2.expire(62 * SEC, &mut out);
        assert_eq!(t2.len(), n / 2);
        for i in 0..n {
            t2.update(&mk(i, 62.0), &mut out);
        }
        assert_eq!(t2.len(), n);
        assert_eq!(t2.stats().created, (n + n / 2) as u64);
        assert!(out.iter().all(|r| r.orig_pkts == 1 || r.orig_pkts == 2));
    }

    #[test]
    fn batch_equals_single() {
        let pkts = mixed_traffic(3000);
        let mut a = table(1 << 12);
        let mut b = table(1 << 12);
        let mut ra = Vec::new();
        let mut rb = Vec::new();
        for p in &pkts {
            a.update(p, &mut ra);
        }
        for chunk in pkts.chunks(64) {
            b.update_batch(chunk, &mut rb);
        }
        a.flush(EndReason::EndOfCapture, &mut ra);
        b.flush(EndReason::EndOfCapture, &mut rb);
        assert_eq!(ra, rb);
        assert!(ra.len() > 100);
    }

    /// A deterministic mix: TCP handshakes/closes/resets, UDP, ICMP echo and
    /// errors, over time spans that exercise every timeout class.
    fn mixed_traffic(n: usize) -> Vec<PacketMeta> {
        let mut out = Vec::new();
        let mut x: u64 = 0x1234_5678;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut ts = 1000.0;
        for _ in 0..n {
            let r = next();
            ts += (r % 2000) as f64 / 1000.0; // 0..2 s apart
            let host = [192, 0, 2, (r >> 8) as u8 % 16];
            let server = [198, 51, 100, (r >> 16) as u8 % 4];
            let port = 40000 + (r >> 24) as u16 % 8;
            match (r >> 40) % 9 {
                0 => out.push(tcp(ts, host, port, server, 80, SYN)),
                1 => out.push(tcp(ts, server, 80, host, port, SYN | ACK)),
                2 => out.push(tcp(ts, host, port, server, 80, ACK)),
                3 => out.push(tcp(ts, host, port, server, 80, FIN | ACK)),
                4 => out.push(tcp(ts, server, 80, host, port, FIN | ACK)),
                5 => out.push(tcp(ts, server, 80, host, port, RST)),
                6 => out.push(pkt(ts, host, port, server, 53, proto::UDP, 0)),
                7 => {
                    let (s, d, ty) = if r & 1 == 0 {
                        (host, server, 8)
                    } else {
                        (server, host, 0)
                    };
                    out.push(pkt(ts, s, ty, d, 0, proto::ICMP, 0))
                }
                _ => {
                    let q = pkt(ts, host, port, server, 53, proto::UDP, 0);
                    out.push(icmp_error(ts, server, host, &q))
                }
            }
        }
        out
    }

    type SortKey = (
        u64,
        [u8; 16],
        u16,
        [u8; 16],
        u16,
        u8,
        u64,
        u64,
        u64,
        u32,
        EndReason,
    );

    fn sort_key(r: &FlowRecord) -> SortKey {
        let k = &r.key;
        (
            r.first_ns,
            k.src,
            k.sport,
            k.dst,
            k.dport,
            k.proto,
            r.last_ns,
            r.orig_pkts,
            r.resp_pkts,
            r.icmp_errors,
            r.end,
        )
    }

    #[test]
    fn records_independent_of_worker_count_and_expire_cadence() {
        let pkts = mixed_traffic(20_000);
        let last_ts = pkts.last().unwrap().ts_ns;

        // One table, expire after every packet.
        let mut one = table(1 << 16);
        let mut r1 = Vec::new();
        for p in &pkts {
            one.update(p, &mut r1);
            one.expire(p.ts_ns, &mut r1);
        }
        one.flush(EndReason::EndOfCapture, &mut r1);

        // Four tables by hash % 4, batches of 97, expire once per batch
        // (after the batch, with its newest time) sent to every table.
        let mut four: Vec<FlowTable> = (0..4).map(|_| table(1 << 16)).collect();
        let mut r4 = Vec::new();
        for batch in pkts.chunks(97) {
            for p in batch {
                four[(p.hash % 4) as usize].update(p, &mut r4);
            }
            let newest = batch.iter().map(|p| p.ts_ns).max().unwrap();
            for t in four.iter_mut() {
                t.expire(newest, &mut r4);
            }
        }
        for t in four.iter_mut() {
            t.expire(last_ts, &mut r4);
            t.flush(EndReason::EndOfCapture, &mut r4);
        }

        // Four tables, expire never called until the end.
        let mut lazy: Vec<FlowTable> = (0..4).map(|_| table(1 << 16)).collect();
        let mut rl = Vec::new();
        for p in &pkts {
            lazy[(p.hash % 4) as usize].update(p, &mut rl);
        }
        for t in lazy.iter_mut() {
            t.expire(last_ts, &mut rl);
            t.flush(EndReason::EndOfCapture, &mut rl);
        }

        for v in [&mut r1, &mut r4, &mut rl] {
            v.sort_by_key(sort_key);
        }
        assert!(r1.len() > 1000, "{}", r1.len());
        assert_eq!(r1, r4);
        assert_eq!(r1, rl);
        // The mix covered every end reason it can produce.
        for reason in [
            EndReason::Fin,
            EndReason::Rst,
            EndReason::IdleTimeout,
            EndReason::EndOfCapture,
        ] {
            assert!(r1.iter().any(|r| r.end == reason), "{reason:?}");
        }
        assert!(r1.iter().any(|r| r.icmp_errors > 0));
        assert!(r1.iter().any(|r| r.midstream));
        let mut merged = FlowStats::default();
        for t in &four {
            merged.merge(t.stats());
        }
        assert_eq!(merged.created, one.stats().created);
        assert_eq!(merged.ended, one.stats().ended);
        assert_eq!(merged.icmp_errors_matched, one.stats().icmp_errors_matched);
        assert_eq!(merged.active, 0);
    }

    /// Zones a (192.0.2.0/24) and b (198.51.100.0/24) of the test policies.
    const TEST_ZONES: &str = r#"
[[zone]]
id = "a"
cidrs = ["192.0.2.0/24"]

[[zone]]
id = "b"
cidrs = ["198.51.100.0/24"]
"#;

    /// a→b tcp/80 allowed ("web"), else critical, b→a low.
    const TEST_RULES: &str = r#"
[[allow]]
id = "web"
from = ["a"]
to = ["b"]
proto = "tcp"
ports = [80]

[severity]
default = "critical"
"b->a" = "low"
"#;

    fn policy_of(name: &str, rules: &str) -> Arc<Policy> {
        match Policy::from_source(name, &format!("{TEST_ZONES}{rules}")) {
            Ok((p, _)) => Arc::new(p),
            Err(e) => panic!("{e:?}"),
        }
    }

    fn test_policy() -> Arc<Policy> {
        policy_of("t.toml", TEST_RULES)
    }

    /// The record of a single flow made of `pkts` (flushed), with `policy`.
    fn one_flow(policy: &Arc<Policy>, pkts: &[PacketMeta]) -> (FlowRecord, FlowStats) {
        let mut t = FlowTable::with_policy(&cfg(16), Some(policy.clone()));
        let out = run(&mut t, pkts);
        assert_eq!(out.len(), 1, "{out:?}");
        (out[0], t.stats().clone())
    }

    #[test]
    fn verdict_follows_the_initiator_whatever_packet_comes_first() {
        use crate::policy::{Allowance, Reason, RuleIdx, ZoneIdx};
        use std::net::IpAddr;
        let p = test_policy();
        let allowed = Verdict::Allowed {
            rule: Allowance::Rule(RuleIdx(0)),
        };
        let want = p.verdict(IpAddr::from(A), IpAddr::from(B), proto::TCP, 80, None);
        assert_eq!(want, allowed);

        // SYN first: A is the initiator, allowed by "web".
        let (syn_first, stats) = one_flow(&p, &handshake_close(1.0));
        assert_eq!(syn_first.key.src, addr_v4(A));
        assert_eq!(Verdict::unpack(syn_first.tag), Some(allowed));
        assert_eq!((stats.policy.allowed, stats.policy.violation), (1, 0));

        // SYN-ACK first (the SYN was missed): its receiver A is the initiator, so
        // the flow gets the same verdict, not the B -> A one.
        let synack_first: Vec<PacketMeta> = handshake_close(1.0).into_iter().skip(1).collect();
        let (r, _) = one_flow(&p, &synack_first);
        assert_eq!((r.key.src, r.key.dport), (addr_v4(A), 80));
        assert_eq!(r.tag, syn_first.tag);

        // Mid-stream from the server's side: the higher port (A's) initiates.
        let (r, _) = one_flow(&p, &[tcp(1.0, B, 80, A, 40000, PSH | ACK)]);
        assert!(r.midstream);
        assert_eq!(r.key.src, addr_v4(A));
        assert_eq!(r.tag, syn_first.tag);

        // B really initiating towards A is a violation (b->a = low).
        let (r, stats) = one_flow(&p, &[tcp(1.0, B, 40000, A, 80, SYN)]);
        assert_eq!(
            Verdict::unpack(r.tag),
            Some(Verdict::Violation {
                severity: Severity::Low,
                reason: Reason {
                    src_zone: ZoneIdx(1),
                    dst_zone: ZoneIdx(0),
                },
            })
        );
        assert_eq!(stats.policy.violation, 1);
        assert_eq!(
            stats.policy.violations_by_severity[Severity::Low as usize],
            1
        );

        // C is in no zone and there is no default zone.
        let (r, stats) = one_flow(&p, &[pkt(1.0, A, 5000, C, 53, proto::UDP, 0)]);
        assert_eq!(Verdict::unpack(r.tag), Some(Verdict::Unknown));
        assert_eq!(stats.policy.unknown, 1);

        // The record's policy facts (its line's policy keys) say the same.
        let f = syn_first.policy_facts(&p);
        assert_eq!(
            (f.src_zone, f.dst_zone, f.verdict.kind_str(), f.rule),
            (Some("a"), Some("b"), "allowed", Some("web"))
        );
    }

    #[test]
    fn no_policy_no_verdict() {
        let mut t = table(16);
        assert!(t.policy().is_none());
        let out = run(&mut t, &handshake_close(1.0));
        assert_eq!(out[0].tag, 0);
        assert_eq!(t.stats().policy, PolicyStats::default());
    }

    /// Records and violation starts, in the order the table hands them out.
    #[derive(Default)]
    struct Recorder {
        recs: Vec<FlowRecord>,
        starts: Vec<FlowStart>,
    }

    impl FlowSink for Recorder {
        fn flow_ended(&mut self, rec: &FlowRecord) {
            self.recs.push(*rec);
        }
        fn flow_violation(&mut self, start: &FlowStart) {
            self.starts.push(*start);
        }
    }

    /// Like `TEST_RULES` with other rules in front, so the same indices name
    /// other rules: a→b tcp/80 is now a violation (high), b→a tcp/80 allowed.
    const RELOADED_RULES: &str = r#"
[[allow]]
id = "dns"
from = ["a"]
to = ["b"]
proto = "udp"
ports = [53]

[[allow]]
id = "back"
from = ["b"]
to = ["a"]
proto = "tcp"
ports = [80]

[severity]
default = "high"
"#;

    fn reloaded_policy() -> Arc<Policy> {
        policy_of("r.toml", RELOADED_RULES)
    }

    /// The verdict, rule and severity of a record described with `p` (its
    /// line's `verdict`, `rule` and `severity` keys).
    fn described<'p>(
        r: &FlowRecord,
        p: Option<&'p Arc<Policy>>,
    ) -> (&'static str, Option<&'p str>, Option<&'static str>) {
        let Some(p) = p else {
            return ("", None, None);
        };
        let f = r.policy_facts(p);
        let severity = match f.verdict {
            Verdict::Violation { severity, .. } => Some(severity.as_str()),
            _ => None,
        };
        (f.verdict.kind_str(), f.rule, severity)
    }

    #[test]
    fn violation_hook_fires_once_per_violating_flow_with_its_orientation() {
        let p = test_policy();
        let mut t = FlowTable::with_policy(&cfg(64), Some(p.clone()));
        let mut sink = Recorder::default();
        // 1. B really initiates towards A:80: a violation (b->a = low); the
        //    SYN-ACK reply, the ACK and an ICMP error quoting the SYN join it.
        let syn = tcp(1.0, B, 40000, A, 80, SYN);
        // 2. Allowed (web), 3. unknown (C is in no zone): never a hook.
        // 4. First seen by its SYN-ACK from A:80: its receiver B initiated.
        // 5. An ICMP error from B to A about a flow never seen: its own flow,
        //    B -> A icmp, a violation.
        let never_seen = pkt(0.5, A, 33000, B, 33434, proto::UDP, 0);
        let pkts = [
            syn,
            tcp(1.01, A, 80, B, 40000, SYN | ACK),
            tcp(1.02, B, 40000, A, 80, ACK),
            icmp_error(1.03, A, B, &syn),
            tcp(1.04, B, 40000, A, 80, PSH | ACK),
            tcp(2.0, A, 40001, B, 80, SYN),
            tcp(2.01, B, 80, A, 40001, SYN | ACK),
            pkt(3.0, A, 5000, C, 53, proto::UDP, 0),
            pkt(3.01, C, 53, A, 5000, proto::UDP, 0),
            tcp(4.0, A, 80, B, 40002, SYN | ACK),
            tcp(4.01, B, 40002, A, 80, ACK),
            icmp_error(5.0, B, A, &never_seen),
            icmp_error(5.01, B, A, &never_seen),
        ];
        for m in &pkts {
            t.update(m, &mut sink);
        }
        assert_eq!(t.stats().icmp_errors_matched, 1);
        let starts = sink.starts.clone();
        assert_eq!(starts.len(), 3, "{starts:?}");
        assert_eq!(t.stats().policy.violation, 3);

        // The SYN's flow, oriented B -> A, at the SYN's time.
        assert_eq!(starts[0].key, syn.key);
        assert_eq!(starts[0].ts_ns, syn.ts_ns);
        assert!(!starts[0].quote_keyed);
        // Seen by its SYN-ACK A -> B: oriented B -> A:80 all the same.
        let s = starts[1];
        assert_eq!(
            (s.key.src, s.key.sport, s.key.dst, s.key.dport),
            (addr_v4(B), 40002, addr_v4(A), 80)
        );
        assert_eq!(s.ts_ns, 4 * SEC);
        assert!(!s.quote_keyed);
        // The ICMP error's own flow, once for both errors.
        let s = starts[2];
        assert!(s.quote_keyed);
        assert_eq!((s.key.src, s.key.proto), (addr_v4(B), proto::ICMP));
        assert_eq!(s.ts_ns, 5 * SEC);
        for s in &starts {
            let want = Verdict::Violation {
                severity: Severity::Low,
                reason: crate::policy::Reason {
                    src_zone: crate::policy::ZoneIdx(1),
                    dst_zone: crate::policy::ZoneIdx(0),
                },
            };
            assert_eq!(Verdict::unpack(s.tag), Some(want), "{s:?}");
            assert!(Arc::ptr_eq(t.policy_for(s.tag).unwrap(), &p));
        }

        // Each start's tag is the one its record carries.
        t.flush(EndReason::EndOfCapture, &mut sink);
        assert_eq!(sink.recs.len(), 5);
        for s in &starts {
            let r = sink.recs.iter().find(|r| r.key == s.key).unwrap();
            assert_eq!((r.tag, r.first_ns), (s.tag, s.ts_ns));
        }
        assert_eq!(sink.starts.len(), 3, "flush calls no hook");

        // Without a policy the same traffic calls no hook.
        let mut t = table(64);
        let mut sink = Recorder::default();
        for m in &pkts {
            t.update(m, &mut sink);
        }
        assert!(sink.starts.is_empty());
    }

    #[test]
    fn swap_policy_keeps_old_verdicts_and_judges_new_flows_with_the_new_one() {
        let old = test_policy();
        let new = reloaded_policy();
        let mut t = FlowTable::with_policy(&cfg(64), Some(old.clone()));
        assert_eq!(t.generation(), 0);
        let mut sink = Recorder::default();
        t.update(&tcp(1.0, A, 40000, B, 80, SYN), &mut sink); // web under old
        assert_eq!(t.live[0], 1);

        assert_eq!(t.swap_policy(new.clone()), 1);
        assert_eq!(t.generation(), 1);
        assert!(Arc::ptr_eq(t.policy().unwrap(), &new));
        // The old flow's packets keep its verdict; new flows get the new one.
        t.update(&tcp(1.1, B, 80, A, 40000, SYN | ACK), &mut sink);
        t.update(&tcp(1.2, A, 40001, B, 80, SYN), &mut sink); // violation (high)
        t.update(&tcp(1.3, B, 40002, A, 80, SYN), &mut sink); // back
        assert_eq!((t.live[0], t.live[1]), (1, 2));
        assert_eq!(sink.starts.len(), 1);
        assert_eq!(t.stats().policy.allowed, 2);
        assert_eq!(t.stats().policy.violation, 1);
        assert_eq!(t.stats().policy_rejudged, 0);

        t.flush(EndReason::EndOfCapture, &mut sink);
        assert_eq!(t.live, [0; POLICY_GENERATIONS]);
        let rec = |sport: u16| *sink.recs.iter().find(|r| r.key.sport == sport).unwrap();
        let (before, violating, back) = (rec(40000), rec(40001), rec(40002));
        assert_eq!(before.resp_pkts, 1, "the reply joined the old flow");

        assert_eq!(generation_of(before.tag), 0);
        assert!(Arc::ptr_eq(t.policy_for(before.tag).unwrap(), &old));
        assert_eq!(
            described(&before, t.policy_for(before.tag)),
            ("allowed", Some("web"), None)
        );
        // Described with the new policy, its rule index would name "dns".
        assert_eq!(
            described(&before, Some(&new)),
            ("allowed", Some("dns"), None)
        );
        for r in [violating, back] {
            assert_eq!(generation_of(r.tag), 1);
            assert!(Arc::ptr_eq(t.policy_for(r.tag).unwrap(), &new));
        }
        assert_eq!(sink.starts[0].tag, violating.tag);
        assert_eq!(
            described(&violating, t.policy_for(violating.tag)),
            ("violation", None, Some("high"))
        );
        assert_eq!(
            described(&back, t.policy_for(back.tag)),
            ("allowed", Some("back"), None)
        );

        // Slot 0 is free again but round-robin goes on to slot 2.
        assert_eq!(t.swap_policy(old.clone()), 2);
        assert!(t.policy_for(0).is_none());
    }

    #[test]
    fn swap_policy_with_every_slot_named_rejudges_the_least_named_slot() {
        let p1 = test_policy();
        let p2 = reloaded_policy();
        let mut t = FlowTable::with_policy(&cfg(256), Some(p1.clone()));
        let mut sink = Recorder::default();
        let mut sport = 40000u16;
        // Every slot keeps live flows A -> B:80 (allowed under p1, a violation
        // under p2): slot 1 one flow, the others two.
        for slot in 0..POLICY_GENERATIONS as u8 {
            if slot > 0 {
                let p = if slot % 2 == 1 { &p2 } else { &p1 };
                assert_eq!(t.swap_policy(p.clone()), slot);
            }
            for _ in 0..if slot == 1 { 1 } else { 2 } {
                t.update(&tcp(1.0, A, sport, B, 80, SYN), &mut sink);
                sport += 1;
            }
        }
        assert_eq!(t.live[1], 1);
        assert!(t.live.iter().all(|&n| n >= 1));
        let created = t.stats().policy.clone();
        assert_eq!((created.allowed, created.violation), (16, 15));
        let slot1_flow = {
            let e = t.slab.iter().find(|e| e.key.sport == 40002).unwrap();
            assert_eq!(generation_of(e.tag), 1);
            assert_eq!(Verdict::unpack(e.tag).unwrap().kind_str(), "violation");
            e.tag
        };

        // A 16th policy: slot 1 has the fewest live flows, so its flow is
        // judged again under the new policy (here p1's rules: allowed by web).
        let p3 = test_policy();
        assert_eq!(t.swap_policy(p3.clone()), 1);
        assert_eq!(t.generation(), 1);
        assert_eq!(t.stats().policy_rejudged, 1);
        assert_eq!(t.stats().policy, created, "created counts unchanged");
        assert_eq!(t.live[1], 1);
        let e = t.slab.iter().find(|e| e.key.sport == 40002).unwrap();
        assert_ne!(e.tag, slot1_flow);
        let web = Verdict::Allowed {
            rule: crate::policy::Allowance::Rule(crate::policy::RuleIdx(0)),
        };
        assert_eq!(e.tag, web.pack_in(1));
        // Flows of other p2 slots were not touched.
        let untouched: Vec<&Entry> = t
            .slab
            .iter()
            .filter(|e| generation_of(e.tag) == 3)
            .collect();
        assert_eq!(untouched.len(), 2);
        for e in untouched {
            assert_eq!(Verdict::unpack(e.tag).unwrap().kind_str(), "violation");
        }

        t.update(&tcp(2.0, A, 50000, B, 80, SYN), &mut sink);
        assert_eq!(t.live[1], 2);
        t.flush(EndReason::EndOfCapture, &mut sink);
        assert_eq!(t.live, [0; POLICY_GENERATIONS]);
        assert_eq!(sink.recs.len(), 32);
        for r in sink.recs.iter().filter(|r| generation_of(r.tag) == 1) {
            assert!(Arc::ptr_eq(t.policy_for(r.tag).unwrap(), &p3));
            assert_eq!(
                described(r, t.policy_for(r.tag)),
                ("allowed", Some("web"), None)
            );
        }
        // A re-judged violation calls no hook: 8 p2 slots × 2, minus slot 1's
        // second flow that never existed, saw one hook each.
        assert_eq!(sink.starts.len(), 15);
    }

    #[test]
    fn swap_policy_on_a_table_without_policy() {
        let mut t = table(16);
        let mut sink = Recorder::default();
        t.update(&tcp(1.0, B, 40000, A, 80, SYN), &mut sink);
        let p = test_policy();
        assert_eq!(t.swap_policy(p.clone()), 1);
        t.update(&tcp(1.1, B, 40001, A, 80, SYN), &mut sink);
        t.update(&tcp(1.2, A, 40002, B, 80, SYN), &mut sink);
        assert_eq!(sink.starts.len(), 1);
        assert_eq!(sink.starts[0].key.sport, 40001);
        assert_eq!((t.live[0], t.live[1]), (0, 2));
        t.flush(EndReason::EndOfCapture, &mut sink);
        assert_eq!(t.live, [0; POLICY_GENERATIONS]);
        let before = sink.recs.iter().find(|r| r.key.sport == 40000).unwrap();
        assert_eq!(before.tag, 0);
        assert!(t.policy_for(before.tag).is_none());
        assert_eq!(t.stats().policy.violation + t.stats().policy.allowed, 2);
    }

    #[test]
    fn live_counts_follow_ends_evictions_and_timeouts() {
        let p = test_policy();
        let mut t = FlowTable::with_policy(&cfg(2), Some(p));
        let mut out = Vec::new();
        t.update(&tcp(1.0, A, 40000, B, 80, SYN), &mut out);
        t.update(&pkt(1.0, A, 5000, B, 53, proto::UDP, 0), &mut out);
        assert_eq!(t.live[0], 2);
        // Full: the half-open flow is evicted for the new one.
        t.update(&pkt(1.1, A, 5001, B, 53, proto::UDP, 0), &mut out);
        assert_eq!((out.len(), t.live[0]), (1, 2));
        // Both UDP flows time out.
        t.expire(100 * SEC, &mut out);
        assert_eq!((out.len(), t.live[0]), (3, 0));
        // A flow ended by FIN then reused by a SYN.
        let mut pkts = handshake_close(200.0);
        pkts.push(tcp(200.5, A, 40000, B, 80, SYN));
        for m in &pkts {
            t.update(m, &mut out);
        }
        assert_eq!((out.len(), t.live[0]), (4, 1));
        t.flush(EndReason::EndOfCapture, &mut out);
        assert_eq!(t.live, [0; POLICY_GENERATIONS]);
    }

    /// Everything the detector hooks report, as text, in order.
    #[derive(Default)]
    struct Hooks(Vec<String>);

    impl FlowSink for Hooks {
        fn flow_ended(&mut self, _rec: &FlowRecord) {}
        fn flow_started(&mut self, s: &FlowStart) {
            self.0.push(format!(
                "start {}:{} flags {:#x} mac-from-initiator {}",
                s.key.src_ip(),
                s.key.sport,
                s.tcp_flags,
                s.mac_is_initiator
            ));
        }
        fn flow_answered(&mut self, k: &FlowKey, ts: u64) {
            self.0
                .push(format!("answered {}:{} at {ts}", k.src_ip(), k.sport));
        }
        fn flow_refused(&mut self, k: &FlowKey, _ts: u64, how: Refusal) {
            self.0
                .push(format!("refused {}:{} {how:?}", k.src_ip(), k.sport));
        }
        fn flow_closed(&mut self, c: &FlowClose) {
            self.0.push(format!(
                "closed {}:{} {:?} established {} pkts {}/{}",
                c.key.src_ip(),
                c.key.sport,
                c.state,
                c.established,
                c.orig_pkts,
                c.resp_pkts
            ));
        }
        fn arp(&mut self, m: &PacketMeta) {
            self.0.push(format!("arp {:?}", m.key.dst));
        }
    }

    #[test]
    fn detector_hooks_report_answers_refusals_and_closes_at_the_packet() {
        let mut t = table(64);
        let mut h = Hooks::default();
        // Open port: handshake, data, FIN both ways.
        for m in [
            tcp(1.0, A, 40000, B, 80, SYN),
            tcp(1.1, B, 80, A, 40000, SYN | ACK),
            tcp(1.2, A, 40000, B, 80, ACK),
            tcp(1.3, A, 40000, B, 80, ACK | PSH),
            tcp(1.4, B, 80, A, 40000, ACK | FIN),
            tcp(1.5, A, 40000, B, 80, ACK | FIN),
        ] {
            t.update(&m, &mut h);
        }
        // Closed port: RST from the responder.
        t.update(&tcp(2.0, A, 40001, B, 81, SYN), &mut h);
        t.update(&tcp(2.1, B, 81, A, 40001, RST | ACK), &mut h);
        // SYN scan of an open port: SYN-ACK, then the scanner resets.
        t.update(&tcp(3.0, A, 40002, B, 22, SYN), &mut h);
        t.update(&tcp(3.1, B, 22, A, 40002, SYN | ACK), &mut h);
        t.update(&tcp(3.2, A, 40002, B, 22, RST), &mut h);
        // UDP probe answered by an ICMP port unreachable; a second error adds nothing new.
        let probe = pkt(4.0, A, 33000, C, 33434, proto::UDP, 0);
        t.update(&probe, &mut h);
        t.update(&icmp_error(4.1, C, A, &probe), &mut h);
        // UDP answered.
        t.update(&pkt(5.0, A, 5353, C, 53, proto::UDP, 0), &mut h);
        t.update(&pkt(5.1, C, 53, A, 5353, proto::UDP, 0), &mut h);
        t.update(&pkt(5.2, C, 53, A, 5353, proto::UDP, 0), &mut h);
        let mut arp = pkt(6.0, A, 1, C, 0, 0, 0);
        arp.l3 = L3::Arp;
        t.update(&arp, &mut h);
        let ms = |s: f64| (s * 1e9).round() as u64;
        assert_eq!(
            h.0,
            [
                "start 192.0.2.10:40000 flags 0x2 mac-from-initiator true".to_string(),
                format!("answered 192.0.2.10:40000 at {}", ms(1.1)),
                "closed 192.0.2.10:40000 Closed established true pkts 4/2".to_string(),
                "start 192.0.2.10:40001 flags 0x2 mac-from-initiator true".to_string(),
                format!("answered 192.0.2.10:40001 at {}", ms(2.1)),
                "refused 192.0.2.10:40001 Rst".to_string(),
                "closed 192.0.2.10:40001 Reset established false pkts 1/1".to_string(),
                "start 192.0.2.10:40002 flags 0x2 mac-from-initiator true".to_string(),
                format!("answered 192.0.2.10:40002 at {}", ms(3.1)),
                "closed 192.0.2.10:40002 Reset established false pkts 2/1".to_string(),
                "start 192.0.2.10:33000 flags 0x0 mac-from-initiator true".to_string(),
                "refused 192.0.2.10:33000 IcmpError".to_string(),
                "start 192.0.2.10:5353 flags 0x0 mac-from-initiator true".to_string(),
                format!("answered 192.0.2.10:5353 at {}", ms(5.1)),
                format!("arp {:?}", arp.key.dst),
            ]
        );
        // A flow first seen by its SYN-ACK: the creating packet's MAC is the responder's.
        let mut h = Hooks::default();
        t.update(&tcp(7.0, B, 443, A, 41000, SYN | ACK), &mut h);
        assert_eq!(
            h.0,
            ["start 192.0.2.10:41000 flags 0x12 mac-from-initiator false"]
        );
    }
}
