#!/usr/bin/env python3
"""Write the synthetic Kerberos-over-UDP captures (standard library only).

bruteforce-kerberos.pcap: 192.0.2.70 sends 60 UDP datagrams to the KDC
192.0.2.100:88, one every 0.5 s (29.5 s), each from a new source port
(50000, 50001, ...), as kerbrute sends one AS-REQ per guess; requests 0, 3,
6, ... (20 of them) get a small UDP reply 2 ms later, the other 40 none.

benign-kerberos.pcap: 192.0.2.71 sends 6 requests to the same KDC within
0.5 s (a logon: AS-REQ, AS-REQ with pre-authentication, TGS-REQs), all
answered.

Payloads are fixed placeholder bytes (the detector never reads them).
Usage: python3 captures/make-kerberos.py [OUTPUT_DIR]  (default: this directory)
"""

import os
import struct
import sys

T0 = 1_764_000_000  # 2025-11-24T16:00:00Z
KDC = "192.0.2.100"
MAC_KDC = bytes.fromhex("020000000064")
REQ = b"AS-REQ placeholder " * 8  # 152 bytes
REP = b"KRB-ERROR placeholder " * 4  # 88 bytes


def ip4(a):
    return bytes(int(x) for x in a.split("."))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(smac, dmac, src, sport, dst, dport, payload, ident):
    udp_len = 8 + len(payload)
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    uc = csum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", uc) + udp[8:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, ident, 0, 64, 17, 0, ip4(src), ip4(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return dmac + smac + b"\x08\x00" + hdr + udp


def write(path, packets):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts_us, data in sorted(packets, key=lambda p: p[0]):
            f.write(struct.pack("<IIII", ts_us // 1_000_000, ts_us % 1_000_000, len(data), len(data)))
            f.write(data)


def session(client, last_octet, n, gap_us, answered):
    mac = bytes.fromhex(f"0200000000{last_octet:02x}")
    out = []
    for i in range(n):
        ts = T0 * 1_000_000 + i * gap_us
        sport = 50000 + i
        out.append((ts, frame(mac, MAC_KDC, client, sport, KDC, 88, REQ, 0x1000 + i)))
        if answered(i):
            out.append((ts + 2000, frame(MAC_KDC, mac, KDC, 88, client, sport, REP, 0x2000 + i)))
    return out


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    write(os.path.join(out, "bruteforce-kerberos.pcap"), session("192.0.2.70", 70, 60, 500_000, lambda i: i % 3 == 0))
    write(os.path.join(out, "benign-kerberos.pcap"), session("192.0.2.71", 71, 6, 100_000, lambda i: True))


if __name__ == "__main__":
    main()
