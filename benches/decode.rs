//! Decode throughput per stack: `decode` (fast path with slow fallback) vs
//! `decode_slow` (etherparse only). Frames are loaded before timing; each
//! iteration decodes every frame of the case once.
//!
//! Cases: `eth_ipv4_tcp` (the chrissanders SYN scan capture), `vlan_ipv6_udp`
//! (crafted 802.1Q + IPv6 + UDP frames), `gre_erspan_vxlan` (arkime's nested
//! tunnel capture) and `public_mix` (every frame of the public captures).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use zonewatch::capture::MemSource;
use zonewatch::decode::{decode, decode_slow, LinkIds};
use zonewatch::packet::{LinkType, PacketMeta, RawFrame};

const PUBLIC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/captures/public");

type Frames = Vec<(LinkType, Vec<u8>, u32)>;

/// Frames of one capture file, read by the crate's own reader (up to any
/// damage; files it refuses, like the invalid-version one, give none).
fn read_frames(path: &str) -> Frames {
    match MemSource::load(&[std::path::PathBuf::from(path)]) {
        Ok(frames) => frames
            .into_iter()
            .map(|f| (f.link, f.data, f.orig_len))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn public_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            public_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
            out.push(p);
        }
    }
}

/// 256 Ethernet + 802.1Q + IPv6 + UDP frames (documentation addresses).
fn vlan_ipv6_udp() -> Frames {
    (0..256u16)
        .map(|i| {
            let mut f = vec![0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a, 0x81, 0x00];
            f.extend_from_slice(&[0x00, 0x64, 0x86, 0xdd]); // VLAN 100, IPv6
            let payload = 64u16;
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&(8 + payload).to_be_bytes());
            f.extend_from_slice(&[17, 64]);
            f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            f.extend_from_slice(&(40000 + i).to_be_bytes());
            f.extend_from_slice(&53u16.to_be_bytes());
            f.extend_from_slice(&(8 + payload).to_be_bytes());
            f.extend_from_slice(&[0, 0]);
            f.resize(f.len() + usize::from(payload), 0x55);
            let len = f.len() as u32;
            (LinkType::Ethernet, f, len)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut all = Vec::new();
    public_files(std::path::Path::new(PUBLIC), &mut all);
    all.sort();
    let mix: Frames = all
        .iter()
        .flat_map(|p| read_frames(&p.to_string_lossy()))
        .collect();
    let cases: Vec<(&str, Frames)> = vec![
        (
            "eth_ipv4_tcp",
            read_frames(&format!("{PUBLIC}/a_scans/chrissanders_synscan.pcapng")),
        ),
        ("vlan_ipv6_udp", vlan_ipv6_udp()),
        (
            "gre_erspan_vxlan",
            read_frames(&format!("{PUBLIC}/i_tunnels/arkime_gre-erspan-vxlan.pcap")),
        ),
        ("public_mix", mix),
    ];
    for (name, frames) in &cases {
        assert!(!frames.is_empty(), "{name}: no frames");
        let mut g = c.benchmark_group(format!("decode/{name}"));
        g.throughput(Throughput::Elements(frames.len() as u64));
        type DecodeFn = fn(
            &RawFrame<'_>,
            &mut LinkIds,
            &mut PacketMeta,
        ) -> Result<(), zonewatch::decode::DecodeError>;
        let paths: [(&str, DecodeFn); 2] = [("fast", decode), ("slow_only", decode_slow)];
        for (path, f) in paths {
            g.bench_with_input(BenchmarkId::from_parameter(path), frames, |b, frames| {
                let mut links = LinkIds::new();
                let mut meta = PacketMeta::default();
                b.iter(|| {
                    let mut failed = 0u32;
                    for (link, data, orig) in frames {
                        let frame = RawFrame {
                            ts_ns: 0,
                            orig_len: *orig,
                            data,
                            link: *link,
                            source: 0,
                        };
                        failed += u32::from(f(&frame, &mut links, &mut meta).is_err());
                        black_box(&meta);
                    }
                    failed
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
