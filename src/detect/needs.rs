//! Floor L3. What each detector asks of the workers: which observations to
//! send ([`Needs`]) and which per-packet work to do for it ([`PacketTap`]).
//! The runtime unites the needs of the detectors the rules enable
//! ([`super::needs()`]) and sends nothing else, so a detector that is off
//! costs the workers nothing, and no runtime code names a detector.

use crate::packet::PacketMeta;

/// A set of TCP/UDP ports, one bit each.
#[derive(Clone, PartialEq, Eq)]
pub struct PortSet(Box<[u64; 1024]>);

impl Default for PortSet {
    fn default() -> Self {
        PortSet(Box::new([0; 1024]))
    }
}

impl std::fmt::Debug for PortSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl PortSet {
    pub fn of(ports: &[u16]) -> PortSet {
        let mut s = PortSet::default();
        for &p in ports {
            s.insert(p);
        }
        s
    }

    pub fn insert(&mut self, p: u16) {
        if let Some(w) = self.0.get_mut(usize::from(p >> 6)) {
            *w |= 1 << (p & 63);
        }
    }

    #[inline]
    pub fn contains(&self, p: u16) -> bool {
        self.0
            .get(usize::from(p >> 6))
            .is_some_and(|w| w & (1 << (p & 63)) != 0)
    }

    pub fn union(&mut self, o: &PortSet) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a |= b;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..=u16::MAX).filter(|&p| self.contains(p))
    }
}

/// The observations ([`super::obs::Obs`]) a detector needs the workers to
/// send. Violating flow starts and their `Seen` activity always go (the
/// separation folding needs them); the rest only when some enabled detector
/// asks for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Every new flow, not only violating ones (`Obs::Start`).
    pub starts: bool,
    /// The responder's first packet (`Obs::Answered`).
    pub answered: bool,
    /// Refused attempts: RST before the handshake, ICMP errors (`Obs::Refused`).
    pub refused: bool,
    /// TCP closes whose responder port is in the set (`Obs::Closed`).
    pub closes: Option<PortSet>,
    /// ARP packets (`Obs::Arp`).
    pub arp: bool,
    /// A known flow's packet on other VLANs than its direction's first (`Obs::Moved`).
    pub moved: bool,
}

impl Needs {
    /// What either `self` or `o` needs.
    pub fn union(&mut self, o: Needs) {
        self.starts |= o.starts;
        self.answered |= o.answered;
        self.refused |= o.refused;
        self.arp |= o.arp;
        self.moved |= o.moved;
        match (&mut self.closes, o.closes) {
            (Some(a), Some(b)) => a.union(&b),
            (None, Some(b)) => self.closes = Some(b),
            _ => {}
        }
    }

    /// Whether a detector with these needs reads `o` (closes: on any port;
    /// the workers send only those on the declared ports).
    #[inline]
    pub fn feeds(&self, o: &super::obs::Obs) -> bool {
        use super::obs::Obs;
        match o {
            Obs::Start(_) => self.starts,
            Obs::Answered { .. } => self.answered,
            Obs::Refused { .. } => self.refused,
            Obs::Closed(_) => self.closes.is_some(),
            Obs::Arp(_) => self.arp,
            Obs::Moved(_) => self.moved,
            // The separation folding's alone.
            Obs::Seen { .. } => false,
        }
    }

    /// Whether a TCP close on responder port `port` is needed.
    #[inline]
    pub fn close_on(&self, port: u16) -> bool {
        self.closes.as_ref().is_some_and(|s| s.contains(port))
    }
}

/// Something a tap ships to its detector (a window of per-packet counts):
/// the detector that made the tap downcasts it ([`super::Detector::tapped`]).
pub type TapPart = Box<dyn std::any::Any + Send>;

/// Per-packet work a detector needs done in every worker (the DoS counters):
/// each worker owns one per such detector, sees every packet it analyses, in
/// packet order, and ships parts to the detector on the analysis thread,
/// each before the watermark that passes its time.
pub trait PacketTap: Send {
    /// Count a batch; the worker's clock is now `now_ns` (packet time): push
    /// what is complete up to it onto `out`.
    fn batch(&mut self, pkts: &[PacketMeta], now_ns: u64, out: &mut Vec<TapPart>);
    /// The input ended: push what is left.
    fn finish(&mut self, out: &mut Vec<TapPart>);
}

/// A detector's description beside its config: what it needs from the
/// workers. Every config in the registry implements it.
pub trait Spec {
    /// The observations the detector reads.
    fn needs(&self) -> Needs;
    /// Per-packet work in each worker, if the detector needs any.
    fn tap(&self) -> Option<Box<dyn PacketTap>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_sets_unite() {
        let mut n = Needs {
            closes: Some(PortSet::of(&[22, 3389])),
            ..Needs::default()
        };
        n.union(Needs {
            arp: true,
            closes: Some(PortSet::of(&[21])),
            ..Needs::default()
        });
        assert!(n.arp && !n.starts);
        assert!(n.close_on(21) && n.close_on(22) && n.close_on(3389));
        assert!(!n.close_on(23) && !n.close_on(0) && !n.close_on(65535));
        let all: Vec<u16> = n
            .closes
            .as_ref()
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        assert_eq!(all, vec![21, 22, 3389]);
        let mut e = Needs::default();
        e.union(Needs::default());
        assert!(!e.close_on(22));
    }
}
