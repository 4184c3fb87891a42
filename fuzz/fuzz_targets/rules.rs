//! The rules loader never panics on any text: it returns a policy or a list
//! of diagnostics. A policy that loads also renders its `check` and
//! `check --sources` reports and answers verdicts and zone look-ups for a few
//! addresses. The detectors' `[detect]` table (read by their own floor) is
//! read too, and gives a config or one located error.
//! Input: the bytes of a rules file (invalid UTF-8 is replaced).

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use zonewatch::policy::{render_check, render_sources, LoadError, Policy};

const ADDRS: [&str; 6] = [
    "192.0.2.10",
    "198.51.100.130",
    "203.0.113.200",
    "2001:db8:0:110::10",
    "2001:db8:ffff:20::1",
    "0.0.0.0",
];

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    if let Err(d) = zonewatch::detect::config_of("fuzz.toml", &text) {
        let _ = d.to_string();
    }
    match Policy::from_source("fuzz.toml", &text) {
        Ok((policy, warnings)) => {
            let _ = render_check("fuzz.toml", &policy, &warnings);
            let _ = render_sources("fuzz.toml", &policy, &warnings);
            for a in ADDRS {
                let src: IpAddr = a.parse().expect("constant address");
                for b in ADDRS {
                    let dst: IpAddr = b.parse().expect("constant address");
                    for (proto, port, vlan) in [(6u8, 443u16, None), (17, 53, Some(110)), (1, 0, Some(4095))] {
                        let v = policy.verdict(src, dst, proto, port, vlan);
                        let _ = policy.describe(&v);
                        let _ = policy.zone_of(src, vlan);
                    }
                }
            }
        }
        Err(LoadError::Invalid { errors, warnings }) => {
            // Every diagnostic renders (file:line:col) and there is at least one error.
            assert!(!errors.is_empty());
            for d in errors.iter().chain(&warnings) {
                let _ = d.to_string();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
