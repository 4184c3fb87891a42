//! Floor L2 (`flow`). Packets and bytes by (source zone, destination zone, verdict) without
//! per-packet label work: a flow table with zone counting on
//! ([`crate::flow::FlowTable::count_zone_pairs`]) gives each new flow a *cell*
//! (one per distinct label set) in a side array parallel to its slab; each
//! packet adds to its flow's cell; the worker's metrics publisher
//! (`metrics::WorkerPub`) drains the dirty cells after the batch.
//!
//! A cell is found at flow creation through a small map keyed by (policy
//! generation slot, zone indices, verdict kind), then by the label strings,
//! so a zone keeps one cell across reloads. Cells are never freed (label sets
//! are bounded by the rules); past [`MAX_CELLS`] new label sets share one
//! overflow cell labelled `"-"`, `"-"`, `"overflow"`.
//!
//! Floor L2 (flow): the table fills the cells, so they live beside it; `metrics`
//! (a higher floor) imports them from here and only drains and publishes them.
//! Owns the cells, their labels and counts; leaves names, registry and
//! exposition to `metrics`.

use super::tally::NO_ZONE;
use crate::packet::FlowKey;
use crate::policy::{generation_of, Policy, Verdict, ZoneIdx};
use std::collections::HashMap;

/// Distinct label sets a table tracks (cell indices are `u16`).
pub const MAX_CELLS: usize = u16::MAX as usize;

/// The labels of one cell.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CellLabels {
    pub src: String,
    pub dst: String,
    pub verdict: &'static str,
}

/// No zone index (address in no zone, or no rules).
use super::tally::NONE;

/// Per-table zone-pair counting (see the module docs).
#[derive(Debug)]
pub struct ZoneCells {
    /// Cell of each slab entry (valid for live entries).
    cell_of: Vec<u16>,
    /// Packets and bytes per cell since the last drain.
    counts: Vec<[u64; 2]>,
    /// Cells with non-zero counts.
    dirty: Vec<u16>,
    labels: Vec<CellLabels>,
    /// (slot, kind, src zone, dst zone) → cell.
    fast: HashMap<u64, u16, foldhash::fast::FixedState>,
    by_label: HashMap<CellLabels, u16, foldhash::fast::FixedState>,
}

impl ZoneCells {
    /// For a table of `max_flows` entries.
    pub fn new(max_flows: usize) -> ZoneCells {
        ZoneCells {
            cell_of: vec![0; max_flows],
            counts: Vec::new(),
            dirty: Vec::new(),
            labels: Vec::new(),
            fast: HashMap::default(),
            by_label: HashMap::default(),
        }
    }

    /// Side-array bytes (for memory accounting).
    pub fn reserved_bytes(&self) -> usize {
        self.cell_of.len() * std::mem::size_of::<u16>()
    }

    /// The cell of a new flow in slab entry `idx`, stored as `key`
    /// (initiator → responder), with packed verdict `tag` made by `policy`.
    /// Once per flow: at most two zone lookups, a map probe.
    pub fn flow_created(
        &mut self,
        idx: u32,
        key: &FlowKey,
        tag: u32,
        policy: Option<&Policy>,
        vlan: Option<u16>,
    ) {
        let cell = self.cell_for(key, tag, policy, vlan);
        if let Some(c) = self.cell_of.get_mut(idx as usize) {
            *c = cell;
        }
    }

    fn cell_for(
        &mut self,
        key: &FlowKey,
        tag: u32,
        policy: Option<&Policy>,
        vlan: Option<u16>,
    ) -> u16 {
        let verdict = Verdict::unpack(tag);
        let (kind, src, dst) = match (verdict, policy) {
            (None, _) | (_, None) => (0u64, NONE, NONE),
            (
                Some(Verdict::Violation {
                    reason: r,
                    severity: _,
                }),
                _,
            ) => (2, r.src_zone.0, r.dst_zone.0),
            (Some(v), Some(p)) => {
                let z = |z: Option<ZoneIdx>| z.map_or(NONE, |z| z.0);
                let k = match v {
                    Verdict::Allowed { .. } => 1,
                    Verdict::Local => 4,
                    _ => 3,
                };
                let (s, d) = p.flow_zones(key.src_ip(), key.dst_ip(), key.proto, key.sport, vlan);
                (k, z(s), z(d))
            }
        };
        let fast_key = u64::from(generation_of(tag)) << 40
            | kind << 32
            | u64::from(src) << 16
            | u64::from(dst);
        if let Some(&c) = self.fast.get(&fast_key) {
            return c;
        }
        let name = |z: u16| super::tally::zone_name(policy, z);
        let labels = CellLabels {
            src: name(src),
            dst: name(dst),
            verdict: match kind {
                0 => "none",
                1 => "allowed",
                2 => "violation",
                4 => "local",
                _ => "unknown",
            },
        };
        let cell = self.cell_by_label(labels);
        self.fast.insert(fast_key, cell);
        cell
    }

    fn cell_by_label(&mut self, labels: CellLabels) -> u16 {
        if let Some(&c) = self.by_label.get(&labels) {
            return c;
        }
        let labels = if self.labels.len() + 1 >= MAX_CELLS {
            CellLabels {
                src: NO_ZONE.into(),
                dst: NO_ZONE.into(),
                verdict: "overflow",
            }
        } else {
            labels
        };
        if let Some(&c) = self.by_label.get(&labels) {
            return c;
        }
        let c = self.labels.len() as u16;
        self.labels.push(labels.clone());
        self.counts.push([0, 0]);
        self.by_label.insert(labels, c);
        c
    }

    /// A reload put a new policy in generation `slot`: forget the zone indices
    /// of the policy that had it (label strings keep their cells).
    pub fn slot_reused(&mut self, slot: u8) {
        self.fast.retain(|k, _| (k >> 40) as u8 != slot);
    }

    /// One packet of `wire_len` bytes on the flow in slab entry `idx`.
    #[inline(always)]
    pub fn count(&mut self, idx: u32, wire_len: u32) {
        let Some(&c) = self.cell_of.get(idx as usize) else {
            return;
        };
        if let Some(n) = self.counts.get_mut(usize::from(c)) {
            if n[0] == 0 {
                self.dirty.push(c);
            }
            n[0] += 1;
            n[1] += u64::from(wire_len);
        }
    }

    /// Prefetch the cell of slab entry `idx`.
    #[inline(always)]
    pub fn cell_ptr(&self, idx: u32) -> Option<&u16> {
        self.cell_of.get(idx as usize)
    }

    /// Hand every dirty cell's (cell, labels, packets, bytes) to `f` and zero it.
    pub fn drain(&mut self, mut f: impl FnMut(u16, &CellLabels, u64, u64)) {
        for c in self.dirty.drain(..) {
            let i = usize::from(c);
            if let (Some(n), Some(l)) = (self.counts.get_mut(i), self.labels.get(i)) {
                f(c, l, n[0], n[1]);
                *n = [0, 0];
            }
        }
    }

    /// The labels of `cell`.
    pub fn labels(&self, cell: u16) -> Option<&CellLabels> {
        self.labels.get(usize::from(cell))
    }

    /// The cell of slab entry `idx`.
    pub fn cell_of(&self, idx: u32) -> Option<u16> {
        self.cell_of.get(idx as usize).copied()
    }
}
