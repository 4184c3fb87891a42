#!/usr/bin/env python3
"""Copy a classic Ethernet pcap, inserting an 802.1Q tag (priority 0) after each
frame's MAC addresses and changing nothing else (record-trunk.sh).

Usage: vlan-tag.py VLAN IN.pcap OUT.pcap
"""
import struct
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    vlan = int(sys.argv[1])
    if not 1 <= vlan <= 4094:
        sys.exit(f"vlan-tag.py: VLAN {vlan} is outside 1-4094")
    data = open(sys.argv[2], "rb").read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        sys.exit(f"vlan-tag.py: {sys.argv[2]}: not a classic pcap file")
    if struct.unpack(e + "I", data[20:24])[0] != 1:
        sys.exit(f"vlan-tag.py: {sys.argv[2]}: link type is not Ethernet")
    out = bytearray(data[:24])
    at = 24
    tag = b"\x81\x00" + struct.pack(">H", vlan)
    while at + 16 <= len(data):
        s, us, incl, orig = struct.unpack(e + "IIII", data[at:at + 16])
        body = data[at + 16:at + 16 + incl]
        if incl < 14 or len(body) != incl:
            sys.exit(f"vlan-tag.py: {sys.argv[2]}: short frame at offset {at}")
        out += struct.pack(e + "IIII", s, us, incl + 4, orig + 4) + body[:12] + tag + body[12:]
        at += 16 + incl
    if at != len(data):
        sys.exit(f"vlan-tag.py: {sys.argv[2]}: trailing bytes at offset {at}")
    open(sys.argv[3], "wb").write(out)


if __name__ == "__main__":
    main()
