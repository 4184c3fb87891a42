#!/usr/bin/env python3
"""Write the zone-bridge test captures (see captures/README.md, "bridge-*.pcap").

Crafted, not recorded: the frames a dual-homed PC, a router and a few ordinary
hosts would send at the example site's addresses (rules/example-site.toml).
Deterministic: running it again writes byte-identical files.

    python3 captures/make-bridge.py [OUTDIR]    (default: the directory of this script)
"""
import os
import struct
import sys

T0 = 1767225600  # 2026-01-01T00:00:00Z


def mac(last):
    return bytes([0x02, 0x00, 0x00, 0x00, 0x0B, last])


M_BRIDGE = mac(0x01)  # the dual-homed PC of bridge-dual-homed.pcap
M_VLAN = mac(0x02)    # the PC on two VLANs of bridge-vlan.pcap
M_TERM = mac(0x0A)    # an ordinary My Number terminal
M_LGT = mac(0x0B)     # an ordinary LGWAN terminal
M_ROGUE = mac(0x0C)   # a host the inventory does not list
M_MNSRV = mac(0x22)   # My Number server 192.0.2.34
M_LGSRV = mac(0x64)   # LGWAN mail 192.0.2.100
M_ROUTER = mac(0xFE)  # the router (layer-3 switch)
BCAST = b"\xff" * 6


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def eth(dst, src, etype, payload, vlan=None):
    if vlan is None:
        return dst + src + struct.pack("!H", etype) + payload
    return dst + src + struct.pack("!HHH", 0x8100, vlan, etype) + payload


def ipv4(src, dst, proto, l4):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0, ip4(src), ip4(dst))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + l4


def l4sum(src, dst, proto, seg):
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, proto, len(seg))
    return csum(pseudo + seg)


def tcp(src, sport, dst, dport, flags, seq=1000, ack=0):
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
    c = l4sum(src, dst, 6, seg)
    return ipv4(src, dst, 6, seg[:16] + struct.pack("!H", c) + seg[18:])


def udp(src, sport, dst, dport, payload):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = l4sum(src, dst, 17, seg) or 0xFFFF
    return ipv4(src, dst, 17, seg[:6] + struct.pack("!H", c) + seg[8:])


def arp(op, smac, sip, tmac, tip):
    return struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + smac + ip4(sip) + tmac + ip4(tip)


SYN, SYNACK, ACK = 0x02, 0x12, 0x10


def handshake(frames, t, cmac, cip, sport, smac, sip, dport, vlan=None):
    """SYN, SYN-ACK, ACK of one TCP connection, 1 ms apart."""
    frames.append((t, eth(smac, cmac, 0x0800, tcp(cip, sport, sip, dport, SYN), vlan)))
    frames.append((t + 0.001, eth(cmac, smac, 0x0800, tcp(sip, dport, cip, sport, SYNACK, 5000, 1001), vlan)))
    frames.append((t + 0.002, eth(smac, cmac, 0x0800, tcp(cip, sport, sip, dport, ACK, 1001, 5001), vlan)))


def syslog(frames, t, src, vlan=None):
    """The router forwards a syslog datagram of `src` to the collector."""
    frames.append((t, eth(mac(0xE2), M_ROUTER, 0x0800,
                          udp(src, 514, "192.0.2.226", 514, b"<134>zonewatch test"), vlan)))


def dual_homed():
    f = []
    # The PC's My Number NIC resolves the My Number server and connects.
    f.append((T0 + 0.0, eth(BCAST, M_BRIDGE, 0x0806, arp(1, M_BRIDGE, "192.0.2.10", b"\0" * 6, "192.0.2.34"))))
    f.append((T0 + 0.001, eth(M_BRIDGE, M_MNSRV, 0x0806, arp(2, M_MNSRV, "192.0.2.34", M_BRIDGE, "192.0.2.10"))))
    handshake(f, T0 + 1, M_BRIDGE, "192.0.2.10", 40001, M_MNSRV, "192.0.2.34", 445)
    # Ordinary terminals of both zones.
    handshake(f, T0 + 2, M_TERM, "192.0.2.11", 40002, M_MNSRV, "192.0.2.34", 445)
    handshake(f, T0 + 3, M_LGT, "192.0.2.71", 40003, M_LGSRV, "192.0.2.100", 25)
    # The router forwards syslog of five hosts of two zones (one MAC, many addresses).
    for i, src in enumerate(["192.0.2.12", "192.0.2.72", "192.0.2.13", "192.0.2.73", "192.0.2.74"]):
        syslog(f, T0 + 4 + i * 0.1, src)
    # The same PC, now from its LGWAN address: the bridge.
    handshake(f, T0 + 5, M_BRIDGE, "192.0.2.70", 40004, M_LGSRV, "192.0.2.100", 25)
    # A host no inventory lists, in the My Number terminal segment.
    handshake(f, T0 + 6, M_ROGUE, "192.0.2.20", 40005, M_MNSRV, "192.0.2.34", 445)
    return f


def two_vlans():
    f = []
    # One PC on VLAN 220 (lgwan.srv) and VLAN 230 (lgwan.edge).
    handshake(f, T0 + 1, M_VLAN, "192.0.2.101", 40011, M_LGSRV, "192.0.2.100", 25, vlan=220)
    handshake(f, T0 + 2, mac(0x66), "192.0.2.102", 40012, M_LGSRV, "192.0.2.100", 25, vlan=220)
    # A router on a stick: one MAC on VLANs 110 and 210, forwarding SNMP of five
    # management hosts to terminals.
    for i, (dmac, dst, v) in enumerate([(M_TERM, "192.0.2.11", 110), (M_LGT, "192.0.2.71", 210)] * 3):
        if i == 5:
            break
        src = "192.0.2.%d" % (227 + i)
        f.append((T0 + 3 + i * 0.1, eth(dmac, M_ROUTER, 0x0800,
                                         udp(src, 40100 + i, dst, 161, b"zonewatch test"), v)))
    handshake(f, T0 + 4, M_VLAN, "192.0.2.113", 40013, mac(0x72), "192.0.2.114", 25, vlan=230)
    return f


def write(path, frames):
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, data in sorted(frames, key=lambda x: x[0]):
            sec = int(t)
            usec = int(round((t - sec) * 1e6))
            out.write(struct.pack("<IIII", sec, usec, len(data), len(data)))
            out.write(data)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    write(os.path.join(outdir, "bridge-dual-homed.pcap"), dual_homed())
    write(os.path.join(outdir, "bridge-vlan.pcap"), two_vlans())


if __name__ == "__main__":
    main()
