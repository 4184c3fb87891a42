//! Floor L3, worker side of the DoS detector: [`DosCounter`] counts every
//! packet into the current 1 s window's set-associative destination table and
//! source sketch, and ships each window as a [`DosPartial`] (see the parent
//! module's docs). Leaves alone: judging windows and episodes ([`super::detector`]).

use super::{
    addr_hash, hll_add, mix, DosConfig, DosPartial, DstAgg, DstKey, SrcSample, CMS_COLS, CMS_N,
    CMS_ROWS, ECHO_OUT, NS, QUERY_OUT, SYNACK_OUT, SYN_OUT, UDP_OUT,
};
use crate::packet::{proto, tcp_flags, Addr, Frag, PacketMeta, L3};

const SETS: usize = 1024;
const WAYS: usize = 4;
const SLOTS: usize = SETS * WAYS;

/// A worker's per-packet counter (see the module docs).
pub struct DosCounter {
    window: u64,
    keys: Vec<(Addr, u8)>,
    aggs: Vec<DstAgg>,
    used: Vec<u32>,
    cms: Vec<[u32; CMS_N]>,
    cms_used: bool,
    extra: Vec<DstAgg>,
    dropped: u64,
    amp_bits: Vec<u64>,
    amp_ports: Vec<u16>,
}

impl DosCounter {
    pub fn new(cfg: &DosConfig) -> DosCounter {
        let mut amp_bits = vec![0u64; 1024];
        for &p in &cfg.amp_ports {
            if let Some(w) = amp_bits.get_mut(usize::from(p >> 6)) {
                *w |= 1 << (p & 63);
            }
        }
        DosCounter {
            window: 0,
            keys: vec![([0; 16], 0); SLOTS],
            aggs: vec![DstAgg::default(); SLOTS],
            used: Vec::with_capacity(SLOTS),
            cms: vec![[0; CMS_N]; CMS_ROWS * CMS_COLS],
            cms_used: false,
            extra: Vec::new(),
            dropped: 0,
            amp_bits,
            amp_ports: cfg.amp_ports.iter().copied().take(32).collect(),
        }
    }

    #[inline]
    fn is_amp(&self, port: u16) -> bool {
        self.amp_bits
            .get(usize::from(port >> 6))
            .is_some_and(|w| w & (1 << (port & 63)) != 0)
    }

    /// Count one packet; returns the previous window when this packet's
    /// window is later (ship it before anything else).
    #[inline]
    pub fn count(&mut self, m: &PacketMeta) -> Option<DosPartial> {
        if !matches!(m.l3, L3::Ipv4 | L3::Ipv6) {
            return None;
        }
        let w = m.ts_ns / NS;
        let shipped = if w > self.window {
            let p = self.take();
            self.window = w;
            p
        } else {
            None
        };
        self.add(m);
        shipped
    }

    /// The current window if packet time `now_ns` is past its end.
    pub fn flush_before(&mut self, now_ns: u64) -> Option<DosPartial> {
        if now_ns / NS > self.window {
            let p = self.take();
            self.window = now_ns / NS;
            p
        } else {
            None
        }
    }

    /// The current window, whatever the time (end of input).
    pub fn finish(&mut self) -> Option<DosPartial> {
        self.take()
    }

    fn cms_add(&mut self, a: &Addr, v6: bool, what: usize) {
        let h = addr_hash(a, v6);
        self.cms_used = true;
        for r in 0..CMS_ROWS {
            let col = ((h >> (r * 16)) as usize) & (CMS_COLS - 1);
            if let Some(c) = self
                .cms
                .get_mut(r * CMS_COLS + col)
                .and_then(|c| c.get_mut(what))
            {
                *c = c.saturating_add(1);
            }
        }
    }

    #[inline]
    fn add(&mut self, m: &PacketMeta) {
        let k = &m.key;
        let tag = 1 + u8::from(k.v6);
        let dh = addr_hash(&k.dst, k.v6);
        let set = (dh as usize) & (SETS - 1);
        let base = set * WAYS;
        let mut slot = None;
        let mut free = None;
        for i in base..base + WAYS {
            match self.keys.get(i) {
                Some((a, t)) if *t == tag && *a == k.dst => {
                    slot = Some(i);
                    break;
                }
                Some((_, 0)) if free.is_none() => free = Some(i),
                _ => {}
            }
        }
        let i = match (slot, free) {
            (Some(i), _) => i,
            (None, Some(i)) => {
                self.claim(i, k.dst, tag, k.v6);
                i
            }
            (None, None) => {
                // Evict the way with the fewest packets; ship it later.
                let mut v = base;
                for i in base + 1..base + WAYS {
                    if self.aggs.get(i).map_or(0, |a| a.pkts)
                        < self.aggs.get(v).map_or(0, |a| a.pkts)
                    {
                        v = i;
                    }
                }
                if let Some(old) = self.aggs.get(v) {
                    if self.extra.len() < SLOTS * 2 {
                        self.extra.push(*old);
                    } else {
                        self.dropped += 1;
                    }
                }
                self.claim(v, k.dst, tag, k.v6);
                v
            }
        };
        let bytes = u64::from(m.wire_len);
        let (sport, dport) = (k.sport, k.dport);
        let amp_idx = if k.proto == proto::UDP && m.frag != Frag::NonFirst && self.is_amp(sport) {
            self.amp_ports.iter().position(|&p| p == sport)
        } else {
            None
        };
        let dport_amp = self.is_amp(dport);
        let Some(a) = self.aggs.get_mut(i) else {
            return;
        };
        a.pkts += 1;
        a.bytes += bytes;
        a.first_ns = a.first_ns.min(m.ts_ns);
        a.last_ns = a.last_ns.max(m.ts_ns);
        // The smallest innermost VLAN seen: the same whichever worker saw which
        // packet (merge takes the minimum too).
        let v = crate::packet::inner_vlan(k.vlan).unwrap_or(0);
        if v != 0 && (a.vlan == 0 || v < a.vlan) {
            a.vlan = v;
        }
        let sh = addr_hash(&k.src, k.v6);
        hll_add(&mut a.src_hll, sh);
        let fh = mix(sh ^ (u64::from(sport) << 32 | u64::from(dport) << 8 | u64::from(k.proto)));
        hll_add(&mut a.flow_hll, fh);
        a.sample_add(SrcSample {
            hash: sh,
            addr: k.src,
            pkts: 1,
            bytes,
        });
        let mut out = None;
        match k.proto {
            proto::TCP => {
                a.tcp += 1;
                let f = m.tcp_flags;
                if f & tcp_flags::SYN != 0 {
                    if f & tcp_flags::ACK == 0 {
                        a.syn += 1;
                        out = Some(SYN_OUT);
                    } else {
                        a.synack += 1;
                        out = Some(SYNACK_OUT);
                    }
                }
            }
            proto::UDP if m.frag == Frag::NonFirst => {
                a.frag += 1;
                a.frag_bytes += bytes;
            }
            proto::UDP => {
                a.udp += 1;
                if let Some(ix) = amp_idx {
                    if !dport_amp {
                        a.amp += 1;
                        a.amp_bytes += bytes;
                        a.amp_mask |= 1 << ix;
                    }
                }
                out = Some(UDP_OUT);
            }
            proto::ICMP | proto::ICMPV6 => {
                a.icmp += 1;
                match (k.proto, sport) {
                    (proto::ICMP, 0) | (proto::ICMPV6, 129) => a.echo_reply += 1,
                    (proto::ICMP, 8) | (proto::ICMPV6, 128) => out = Some(ECHO_OUT),
                    _ => {}
                }
            }
            _ => {}
        }
        if let Some(what) = out {
            self.cms_add(&k.src, k.v6, what);
            if what == UDP_OUT && dport_amp {
                self.cms_add(&k.src, k.v6, QUERY_OUT);
            }
        }
    }

    fn claim(&mut self, i: usize, addr: Addr, tag: u8, v6: bool) {
        if let Some(k) = self.keys.get_mut(i) {
            *k = (addr, tag);
        }
        if let Some(a) = self.aggs.get_mut(i) {
            *a = DstAgg {
                key: DstKey { addr, v6 },
                ..DstAgg::default()
            };
        }
        if self.keys.get(i).is_some() && self.used.len() < SLOTS {
            self.used.push(i as u32);
        }
    }

    /// Ship and reset the current window (None when it is empty).
    fn take(&mut self) -> Option<DosPartial> {
        if self.used.is_empty() && self.extra.is_empty() && !self.cms_used {
            return None;
        }
        // One allocation of the exact size; the evicted records' vector keeps
        // its capacity for the next window (it was a fresh 2.4 MB reservation
        // per window, and a reallocation to append the table).
        let mut dsts = Vec::with_capacity(self.used.len() + self.extra.len());
        dsts.append(&mut self.extra);
        for &i in &self.used {
            let i = i as usize;
            if let (Some(k), Some(a)) = (self.keys.get_mut(i), self.aggs.get(i)) {
                if k.1 != 0 {
                    dsts.push(*a);
                }
                k.1 = 0;
            }
        }
        self.used.clear();
        let src_cms = if self.cms_used {
            self.cms_used = false;
            std::mem::replace(&mut self.cms, vec![[0; CMS_N]; CMS_ROWS * CMS_COLS])
        } else {
            Vec::new()
        };
        let dropped = std::mem::take(&mut self.dropped);
        Some(DosPartial {
            window: self.window,
            dsts,
            src_cms,
            dropped,
        })
    }
}

impl crate::detect::PacketTap for DosCounter {
    fn batch(&mut self, pkts: &[PacketMeta], now_ns: u64, out: &mut Vec<crate::detect::TapPart>) {
        for m in pkts {
            if let Some(p) = self.count(m) {
                out.push(Box::new(p));
            }
        }
        if let Some(p) = self.flush_before(now_ns) {
            out.push(Box::new(p));
        }
    }

    fn finish(&mut self, out: &mut Vec<crate::detect::TapPart>) {
        if let Some(p) = DosCounter::finish(self) {
            out.push(Box::new(p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{pkt, T0, VICTIM};
    use super::*;
    use crate::packet::{to_ip, FlowKey};

    #[test]
    fn memory_stays_bounded_under_spoofed_destinations() {
        // 200 000 distinct destinations in one window: the table keeps its
        // size, extra records are capped, the victim is still counted.
        let cfg = DosConfig::default();
        let mut c = DosCounter::new(&cfg);
        for i in 0..200_000u64 {
            let dst = std::net::Ipv6Addr::from(
                0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
            );
            let mut m = pkt(T0 + i, proto::UDP, "192.0.2.1", 1, VICTIM, 2, 0, 60);
            m.key = FlowKey::new(
                proto::UDP,
                "2001:db8::1".parse().expect("addr"),
                1,
                dst.into(),
                2,
            );
            c.count(&m);
            let mut to_victim = m;
            to_victim.key.dst = FlowKey::new(
                proto::UDP,
                "2001:db8::1".parse().expect("addr"),
                1,
                "2001:db8:ffff::34".parse().expect("addr"),
                2,
            )
            .dst;
            c.count(&to_victim);
        }
        let p = c.finish().expect("a window");
        assert!(p.dsts.len() <= 3 * SLOTS, "{}", p.dsts.len());
        assert!(p.dropped > 0);
        let victim: u64 = p
            .dsts
            .iter()
            .filter(|d| to_ip(&d.key.addr, d.key.v6).to_string() == "2001:db8:ffff::34")
            .map(|d| d.pkts)
            .sum();
        assert_eq!(victim, 200_000);
    }
}
