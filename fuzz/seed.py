#!/usr/bin/env python3
"""Seed the fuzz corpora (standard library only).

decode: one file per frame of every classic pcap given (pcapng files are
converted by the caller with editcap), prefixed with the selector byte the
decode target reads (index of the link type in LinkType::ALL); at most
MAX_PER_FILE frames per capture.
rules: every rules file given, copied as is.
capture: every capture given as it is, pcap or pcapng, cut at a record (or
block) boundary to fit MAX_CAPTURE bytes with the capture target's selector
byte: each file alone twice (plain; tight thresholds with evidence), and each
file paired with the next one as two files merged by time (a u16 split point
after the selector), each half cut to half the budget.

usage: seed.py decode DIR PCAP...
       seed.py rules DIR TOML...
       seed.py capture DIR CAPTURE...
"""
import os
import struct
import sys

# LINKTYPE number -> index in zonewatch::packet::LinkType::ALL
ALL = {0: 0, 1: 1, 101: 2, 108: 3, 113: 4, 228: 5, 229: 6, 276: 7}
MAX_PER_FILE = 200
# The capture target's -max_len in run.sh.
MAX_CAPTURE = 65536
# Selector bits of fuzz_targets/capture.rs.
TWO_FILES, EVIDENCE, TIGHT = 0x01, 0x02, 0x10


def pcap_endian(data):
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        return "<"
    if magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        return ">"
    return None


def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    end = pcap_endian(data)
    if end is None:
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


def boundaries(data):
    """Offsets where a classic pcap record or a pcapng block ends, in order,
    as far as the framing is sound."""
    end = pcap_endian(data)
    if end is not None and len(data) >= 24:
        off = 24
        yield off
        while off + 16 <= len(data):
            incl = struct.unpack(end + "I", data[off + 8:off + 12])[0]
            off += 16 + incl
            if off > len(data):
                return
            yield off
        return
    if data[:4] == b"\x0a\x0d\x0d\x0a" and len(data) >= 12:
        off, end = 0, "<"
        while off + 12 <= len(data):
            if data[off:off + 4] == b"\x0a\x0d\x0d\x0a":
                bom = data[off + 8:off + 12]
                end = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            blen = struct.unpack(end + "I", data[off + 4:off + 8])[0]
            if blen < 12 or blen % 4:
                return
            off += blen
            if off > len(data):
                return
            yield off


def cut(data, budget):
    """`data` whole if it fits, else up to its last record/block boundary
    within `budget`, else its first `budget` bytes."""
    if len(data) <= budget:
        return data
    best = 0
    for b in boundaries(data):
        if b > budget:
            break
        best = b
    return data[:best] if best else data[:budget]


def seed_capture(out_dir, files):
    blobs = []
    for path in files:
        with open(path, "rb") as f:
            blobs.append((os.path.basename(path), f.read()))
    n = 0

    def put(name, body):
        nonlocal n
        with open(os.path.join(out_dir, name), "wb") as o:
            o.write(body)
        n += 1

    for base, data in blobs:
        one = cut(data, MAX_CAPTURE - 1)
        put(f"{base}", bytes([0]) + one)
        put(f"{base}-tight-evidence", bytes([TIGHT | EVIDENCE]) + one)
    half = (MAX_CAPTURE - 3) // 2
    for i, (base, data) in enumerate(blobs):
        if len(blobs) < 2:
            break
        other_base, other = blobs[(i + 1) % len(blobs)]
        a, b = cut(data, half), cut(other, half)
        sel = TWO_FILES | TIGHT | (EVIDENCE if i % 2 else 0)
        put(f"{base}+{other_base}", bytes([sel]) + struct.pack("<H", len(a)) + a + b)
    return n


def seed_decode(out_dir, files):
    n = 0
    for path in files:
        base = os.path.basename(path)
        for i, fr in enumerate(frames(path)):
            with open(os.path.join(out_dir, f"{base}-{i}"), "wb") as o:
                o.write(fr)
            n += 1
    return n


def seed_rules(out_dir, files):
    for path in files:
        with open(path, "rb") as f, open(os.path.join(out_dir, os.path.basename(path)), "wb") as o:
            o.write(f.read())
    return len(files)


def main():
    seeders = {"decode": seed_decode, "rules": seed_rules, "capture": seed_capture}
    if len(sys.argv) < 3 or sys.argv[1] not in seeders:
        sys.exit(__doc__)
    kind, out_dir, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(out_dir, exist_ok=True)
    n = seeders[kind](out_dir, files)
    print(f"seeded {n} {kind} inputs in {out_dir}")


if __name__ == "__main__":
    main()
