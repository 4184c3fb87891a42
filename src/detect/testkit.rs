//! Test helpers shared by the detectors' unit tests: crafted keys and flow
//! starts, and a run of one detector over observations in release order.

use super::obs::Obs;
use super::{Ctx, Detector, Emit};
use crate::alert::Alert;
use crate::flow::FlowStart;
use crate::packet::{proto, tcp_flags, FlowKey};
use crate::policy::Policy;
use std::net::IpAddr;

pub const S: u64 = 1_000_000_000;
pub const T0: u64 = 1_700_000_000 * S;

/// A flow key between two test addresses.
pub fn key(p: u8, src: &str, sport: u16, dst: &str, dport: u16) -> FlowKey {
    let ip = |s: &str| s.parse::<IpAddr>().expect("test address");
    FlowKey::new(p, ip(src), sport, ip(dst), dport)
}

/// A new flow from its initiator: a SYN for TCP, the first datagram else.
pub fn start(ts: u64, k: FlowKey) -> Obs {
    start_flags(
        ts,
        k,
        if k.proto == proto::TCP {
            tcp_flags::SYN
        } else {
            0
        },
    )
}

/// A new flow whose first packet carried `flags`.
pub fn start_flags(ts: u64, k: FlowKey, flags: u8) -> Obs {
    Obs::Start(FlowStart {
        key: k,
        ts_ns: ts,
        tag: 0,
        quote_keyed: false,
        mac: [2, 0, 0, 0, 0, 1],
        mac_is_initiator: true,
        tcp_flags: flags,
        source: 0,
    })
}

/// Run `d` over `obs` (sorted into release order first) and the end of input:
/// its alerts with their due times. Only the observations the detector
/// declares it needs ([`crate::detect::Spec::needs`]) reach it, as in the
/// sensor, so a detector that reads a kind it did not declare fails its tests.
/// The needs are those of the detector's *default* config: a test of a config
/// that declares more (hosts with an inventory also reads answers) feeds it
/// with that config's `needs()` instead, as `hosts`' own tests do.
pub fn run(d: &mut dyn Detector, policy: Option<&Policy>, mut obs: Vec<Obs>) -> Vec<(u64, Alert)> {
    let needs = crate::detect::default_needs(d.name())
        .unwrap_or_else(|| panic!("detector {} is not in the registry", d.name()));
    obs.retain(|o| fed(&needs, o));
    obs.sort_by_key(Obs::sort_key);
    let cx = Ctx {
        policy,
        end: crate::detect::END_OF_INPUT,
    };
    let mut out = Emit::default();
    for o in &obs {
        d.observe(o, &cx, &mut out);
    }
    d.advance(u64::MAX, &cx, &mut out);
    out.items.into_iter().map(|(t, _, a)| (t, a)).collect()
}

/// Whether the workers send `o` to a detector with `needs` (closes: on any
/// port here, since tests may set their own service ports).
pub fn fed(needs: &crate::detect::Needs, o: &Obs) -> bool {
    needs.feeds(o)
}

/// Each alert as it finally stands: a later line of a detector's group
/// (`update` > 0) replaces the group's first line (keeping the first line's
/// due time); silent markers are dropped; alerts without a group pass as they are.
pub fn finals(lines: Vec<(u64, Alert)>) -> Vec<(u64, Alert)> {
    let mut out: Vec<(u64, Alert)> = Vec::with_capacity(lines.len());
    let mut at = std::collections::HashMap::new();
    for (t, a) in lines {
        match (a.group, a.update) {
            (Some(g), 0) => {
                assert!(at.insert(g, out.len()).is_none(), "group {g} opened twice");
                out.push((t, a));
            }
            (Some(g), _) => {
                let i = at.remove(&g).expect("an update follows its first line");
                if !a.silent {
                    out[i].1 = a;
                }
            }
            (None, _) => out.push((t, a)),
        }
    }
    assert!(at.is_empty(), "every early alert was judged: {at:?}");
    out
}

/// An evidence value of an alert (`null` when missing).
pub fn ev(a: &Alert, k: &str) -> serde_json::Value {
    a.evidence
        .as_ref()
        .map(crate::alert::Evidence::json)
        .map(|e| e[k].clone())
        .unwrap_or_default()
}
