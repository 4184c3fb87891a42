//! Floor L1 (`decode`). [`LinkIds`]: small ids for the links tunnelled packets arrive on.
//!
//! A link is the chain of tunnels a packet was found in, each hop given by its
//! kind, outer endpoint addresses and session id (GRE key, ERSPAN session,
//! VXLAN/Geneve VNI). The endpoints are stored in canonical order so that both
//! directions of a tunnel share one id (otherwise the two directions of an
//! inner flow would get different flow keys).

use std::collections::HashMap;
use std::fmt::Write as _;

use super::MAX_TUNNEL_DEPTH;
use crate::packet::{to_ip, Addr, Tunnel};

/// The id every link gets once [`LinkIds`] is full (ids 1..=65534 are
/// assigned individually).
pub const LINK_OVERFLOW: u16 = u16::MAX;

/// One tunnel hop of a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Hop {
    pub src: Addr,
    pub dst: Addr,
    pub id: u32,
    pub kind: Tunnel,
    pub v6: bool,
}

impl Hop {
    /// The same hop with its endpoints in canonical (sorted) order.
    fn canonical(mut self) -> Hop {
        if self.src > self.dst {
            std::mem::swap(&mut self.src, &mut self.dst);
        }
        self
    }
}

/// The tunnel chain of the packet being decoded (outermost first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Chain {
    hops: [Hop; MAX_TUNNEL_DEPTH],
    len: u8,
}

impl Chain {
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
    pub fn push(&mut self, hop: Hop) {
        let n = self.len();
        if let Some(slot) = self.hops.get_mut(n) {
            *slot = hop;
            self.len += 1;
        }
    }
    pub fn pop(&mut self) {
        let n = self.len().wrapping_sub(1);
        if let Some(slot) = self.hops.get_mut(n) {
            *slot = Hop::default();
            self.len -= 1;
        }
    }
    fn hops(&self) -> &[Hop] {
        self.hops.get(..self.len()).unwrap_or(&[])
    }
    fn canonical(&self) -> Chain {
        let mut c = *self;
        for h in c.hops.iter_mut() {
            *h = h.canonical();
        }
        c
    }
}

/// Interns tunnel outer endpoints into small link ids (`FlowKey::link`).
/// Lives on the capture thread; ids are assigned in order of first appearance
/// (1, 2, ...), so they do not depend on the worker count. 0 is the capture
/// link itself. At most 65534 links get their own id; later ones all map to
/// [`LINK_OVERFLOW`] and are counted in [`LinkIds::overflowed`].
#[derive(Default)]
pub struct LinkIds {
    ids: HashMap<Chain, u16, foldhash::fast::RandomState>,
    /// First-seen (not canonical) chain of id `i + 1`, for descriptions.
    seen: Vec<Chain>,
    /// Last canonical chain looked up and its id: consecutive packets mostly
    /// share a link.
    last: Option<(Chain, u16)>,
    overflowed: u64,
}

impl LinkIds {
    pub fn new() -> LinkIds {
        LinkIds::default()
    }

    /// Id of the link `chain` (which must not be empty).
    pub(super) fn intern(&mut self, chain: &Chain) -> u16 {
        let key = chain.canonical();
        if let Some((k, id)) = &self.last {
            if *k == key {
                return *id;
            }
        }
        let id = match self.ids.get(&key) {
            Some(id) => *id,
            None if self.seen.len() < usize::from(LINK_OVERFLOW - 1) => {
                self.seen.push(*chain);
                let id = self.seen.len() as u16;
                self.ids.insert(key, id);
                id
            }
            None => {
                self.overflowed += 1;
                LINK_OVERFLOW
            }
        };
        if id != LINK_OVERFLOW {
            self.last = Some((key, id));
        }
        id
    }

    /// Number of links that got their own id.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Packets of links that found the table full (mapped to [`LINK_OVERFLOW`]).
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Description of link `id`, e.g. `"gre 198.51.100.1<->198.51.100.2"`,
    /// nested hops joined by `" / "` (outermost first). None for 0, unknown
    /// ids and [`LINK_OVERFLOW`].
    pub fn describe(&self, id: u16) -> Option<String> {
        let chain = self.seen.get(usize::from(id).checked_sub(1)?)?;
        let mut s = String::new();
        for (i, h) in chain.hops().iter().enumerate() {
            if i > 0 {
                s.push_str(" / ");
            }
            s.push_str(h.kind.as_str());
            match h.kind {
                Tunnel::Vxlan | Tunnel::Geneve => {
                    let _ = write!(s, " vni {}", h.id);
                }
                Tunnel::ErspanII | Tunnel::ErspanIII => {
                    let _ = write!(s, " session {}", h.id);
                }
                Tunnel::Gre if h.id != 0 => {
                    let _ = write!(s, " key {}", h.id);
                }
                _ => {}
            }
            let _ = write!(s, " {}<->{}", to_ip(&h.src, h.v6), to_ip(&h.dst, h.v6));
        }
        Some(s)
    }

    /// Every interned link as (id, description), in id order (for the summary).
    pub fn list(&self) -> impl Iterator<Item = (u16, String)> + '_ {
        (1..=self.seen.len() as u16).filter_map(|id| Some((id, self.describe(id)?)))
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::packet::addr_v4;

    fn hop(a: u8, b: u8, kind: Tunnel, id: u32) -> Hop {
        Hop {
            src: addr_v4([198, 51, 100, a]),
            dst: addr_v4([198, 51, 100, b]),
            id,
            kind,
            v6: false,
        }
    }

    #[test]
    fn ids_in_order_both_directions_share() {
        let mut l = LinkIds::new();
        let mut c = Chain::default();
        c.push(hop(1, 2, Tunnel::Gre, 0));
        assert_eq!(l.intern(&c), 1);
        let mut r = Chain::default();
        r.push(hop(2, 1, Tunnel::Gre, 0));
        assert_eq!(l.intern(&r), 1);
        let mut v = Chain::default();
        v.push(hop(1, 2, Tunnel::Vxlan, 123));
        assert_eq!(l.intern(&v), 2);
        v.push(hop(3, 4, Tunnel::Vxlan, 7));
        assert_eq!(l.intern(&v), 3);
        assert_eq!(l.intern(&c), 1);
        assert_eq!(l.describe(1).unwrap(), "gre 198.51.100.1<->198.51.100.2");
        assert_eq!(
            l.describe(3).unwrap(),
            "vxlan vni 123 198.51.100.1<->198.51.100.2 / vxlan vni 7 198.51.100.3<->198.51.100.4"
        );
        assert_eq!(l.describe(0), None);
        assert_eq!(l.list().count(), 3);
    }

    #[test]
    fn full_table_maps_to_overflow() {
        let mut l = LinkIds::new();
        for i in 0..u32::from(LINK_OVERFLOW) + 2 {
            let mut c = Chain::default();
            c.push(hop(1, 2, Tunnel::Vxlan, i));
            let id = l.intern(&c);
            if i < u32::from(LINK_OVERFLOW) - 1 {
                assert_eq!(u32::from(id), i + 1);
            } else {
                assert_eq!(id, LINK_OVERFLOW);
            }
        }
        assert_eq!(l.len(), usize::from(LINK_OVERFLOW) - 1);
        assert_eq!(l.overflowed(), 3);
        assert_eq!(l.describe(LINK_OVERFLOW), None);
    }
}
