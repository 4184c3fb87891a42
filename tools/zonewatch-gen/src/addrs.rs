//! The generator's addresses, MACs and TCP port mix: clients in 192.0.2.0/24 and
//! 198.51.100.0/24 (IPv6: 2001:db8:100::/40), servers in 203.0.113.0/24
//! (2001:db8:ff::/48), four gateways. Also read by `benches/analysis.rs`
//! (`#[path]`), whose flows must look like the generator's.

pub fn client_v4(host: u16) -> [u8; 4] {
    if host < 254 {
        [192, 0, 2, host as u8 + 1]
    } else {
        [198, 51, 100, (host - 254) as u8 + 1]
    }
}

pub fn server_v4(host: u16) -> [u8; 4] {
    [203, 0, 113, host as u8 + 1]
}

/// 2001:db8:1hh:hh00::/56-ish: injective in (client host, port) so every flow's
/// client is distinct in its (address, port) pair, with ≈ 55 k distinct hosts.
pub fn client_v6(host: u16, port: u16) -> [u8; 16] {
    let h = host.to_be_bytes();
    let p = (port >> 9).to_be_bytes();
    [
        0x20,
        0x01,
        0x0d,
        0xb8,
        0x01,
        0x00,
        h[0],
        h[1],
        0,
        0,
        0,
        0,
        0,
        0,
        p[0],
        p[1] + 1,
    ]
}

pub fn server_v6(host: u16) -> [u8; 16] {
    [
        0x20,
        0x01,
        0x0d,
        0xb8,
        0x00,
        0xff,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        host as u8 + 1,
    ]
}

pub fn client_mac(host: u16) -> [u8; 6] {
    let h = host.to_be_bytes();
    [0x02, 0x00, 0x0c, 0x00, h[0], h[1]]
}

/// Traffic to servers leaves through one of four gateways.
pub fn gateway_mac(host: u16) -> [u8; 6] {
    [0x02, 0x00, 0x5e, 0x00, 0x00, (host & 3) as u8 + 1]
}

/// TCP server ports and their weights per 1000 TCP flows.
pub const TCP_PORTS: [(u16, u64); 6] = [
    (443, 600),
    (80, 250),
    (853, 50),
    (25, 40),
    (993, 30),
    (8080, 30),
];
