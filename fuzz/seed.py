#!/usr/bin/env python3
"""Seed the fuzz corpora (standard library only).

decode: one file per frame of every classic pcap given (pcapng files are
converted by the caller with editcap), prefixed with the selector byte the
decode target reads (index of the link type in LinkType::ALL); at most
MAX_PER_FILE frames per capture.
rules: every rules file given, copied as is.

usage: seed.py DECODE_DIR RULES_DIR FILE...
"""
import os
import struct
import sys

# LINKTYPE number -> index in zonewatch::packet::LinkType::ALL
ALL = {0: 0, 1: 1, 101: 2, 108: 3, 113: 4, 228: 5, 229: 6, 276: 7}
MAX_PER_FILE = 200


def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        return
    link = struct.unpack(end + "I", data[20:24])[0] & 0x0FFFFFFF
    if link not in ALL:
        return
    off, n = 24, 0
    while off + 16 <= len(data) and n < MAX_PER_FILE:
        incl = struct.unpack(end + "I", data[off + 8:off + 12])[0]
        frame = data[off + 16:off + 16 + incl]
        if len(frame) < incl:
            return
        yield bytes([ALL[link]]) + frame
        off += 16 + incl
        n += 1


def main():
    decode_dir, rules_dir, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(decode_dir, exist_ok=True)
    os.makedirs(rules_dir, exist_ok=True)
    nd = nr = 0
    for path in files:
        base = os.path.basename(path)
        if path.endswith(".toml"):
            with open(path, "rb") as f, open(os.path.join(rules_dir, base), "wb") as o:
                o.write(f.read())
            nr += 1
            continue
        for i, fr in enumerate(frames(path)):
            with open(os.path.join(decode_dir, f"{base}-{i}"), "wb") as o:
                o.write(fr)
            nd += 1
    print(f"seeded {nd} frames, {nr} rules files")


if __name__ == "__main__":
    main()
