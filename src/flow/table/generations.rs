//! Floor L2 (`flow`). The policy side of the table: [`judge`], a new flow's verdict (once, when
//! it is created), and the policy generations: up to `POLICY_GENERATIONS`
//! policies, one per slot a flow tag names, so a reload
//! ([`FlowTable::swap_policy`]) never redescribes live flows ("Policy
//! generations (reload)" in the table's module docs).
//!
//! Floor L2 (flow): uses `policy` (L1). The live-flow count per slot is kept
//! where flows are created and emitted (`mod.rs`).

use std::sync::Arc;

use super::entry::FREE;
use super::FlowTable;
use crate::flow::record::policy_vlan;
use crate::packet::FlowKey;
use crate::policy::{generation_of, Policy, Verdict, POLICY_GENERATIONS};

/// The verdict of a new flow stored as `key` (initiator → responder), judged
/// with the responder's port and the innermost VLAN.
#[inline]
pub(super) fn judge(p: &Policy, key: &FlowKey) -> Verdict {
    p.judge(
        key.src_ip(),
        key.dst_ip(),
        key.proto,
        key.sport,
        key.dport,
        policy_vlan(key),
    )
}

impl FlowTable {
    /// The policy judging new flows, if any.
    pub fn policy(&self) -> Option<&Arc<Policy>> {
        self.gens
            .get(usize::from(self.cur))
            .and_then(Option::as_ref)
    }

    /// The generation slot of the policy judging new flows (0 until the
    /// first [`swap_policy`](Self::swap_policy)).
    pub fn generation(&self) -> u8 {
        self.cur
    }

    /// The policy a flow's tag
    /// ([`FlowRecord::tag`](crate::flow::FlowRecord::tag),
    /// [`FlowStart::tag`](crate::flow::FlowStart::tag)) was made with: the
    /// one in its generation slot. `None` for tag 0 (no
    /// verdict). Valid while the flow is live and when its record or start is
    /// handed to the sink; a slot is reused only once no live flow names it.
    pub fn policy_for(&self, tag: u32) -> Option<&Arc<Policy>> {
        if tag == 0 {
            return None;
        }
        self.gens
            .get(usize::from(generation_of(tag)))
            .and_then(Option::as_ref)
    }

    /// Judge new flows with `p` from now on (policy reload); flows already
    /// live keep their tags, described by the policy of their slot
    /// ([`policy_for`](Self::policy_for)). Returns the slot `p` now occupies.
    ///
    /// The slot is the next one after the current (round-robin) that no live
    /// flow names. If all 15 others are still named (15 reloads within one
    /// flow's lifetime), the one named by the fewest live flows is taken and
    /// those flows are judged again under `p` (counted in
    /// `FlowStats::policy_rejudged`; `FlowStats::policy` is unchanged, and
    /// `flow_violation` is not called for them). Works on a table made
    /// without a policy too: flows created from now on get verdicts.
    pub fn swap_policy(&mut self, p: Arc<Policy>) -> u8 {
        const N: usize = POLICY_GENERATIONS;
        let cur = usize::from(self.cur);
        let live = self.live;
        // The first slot named by the fewest live flows, in round-robin order
        // after the current one: the next free slot if there is one.
        let slot = (1..N)
            .map(|i| (cur + i) % N)
            .min_by_key(|&s| live[s])
            .unwrap_or((cur + 1) % N);
        if live[slot] > 0 {
            let tag_slot = slot as u8;
            let mut n = 0u64;
            if let Some(c) = &mut self.cells {
                c.slot_reused(tag_slot);
            }
            for (i, e) in self.slab.iter_mut().enumerate() {
                if e.class() == FREE || e.tag == 0 || generation_of(e.tag) != tag_slot {
                    continue;
                }
                e.tag = judge(&p, &e.key).pack_in(tag_slot);
                if let Some(c) = &mut self.cells {
                    c.flow_created(i as u32, &e.key, e.tag, Some(&p), policy_vlan(&e.key));
                }
                n += 1;
            }
            self.stats.policy_rejudged += n;
        } else if let Some(c) = &mut self.cells {
            c.slot_reused(slot as u8);
        }
        self.gens[slot] = Some(p);
        self.cur = slot as u8;
        self.cur
    }
}
