#!/usr/bin/env python3
"""The servers of record-models.sh: one process per namespace answers on every
port the planted flows of that namespace need, for at most LIFETIME seconds.

Usage: model-server.py LIFETIME ADDR[,ADDR...] tcp:PORT... udp:PORT...

TCP: an SMTP-like banner on 25 (then "221" to anything), a minimal HTTP 200
reply on every other port (the clients are curl, smbclient and nc: the flow,
its handshake and first bytes are what the captures need). UDP: an NTP server
reply (mode 4) on 123, the datagram echoed on any other port. TCP binds the
wildcard address; UDP binds each ADDR, so a reply leaves from the address the
request was sent to (from the wildcard it would leave from the primary one and
look like a new flow).
"""

import selectors
import socket
import struct
import sys
import time

NTP_EPOCH = 2208988800


def ntp_reply(req: bytes) -> bytes:
    now = time.time() + NTP_EPOCH
    secs, frac = int(now), int((now % 1) * 2**32)
    origin = req[40:48] if len(req) >= 48 else b"\0" * 8
    head = struct.pack("!BBbbII4s", (0 << 6) | (4 << 3) | 4, 2, 6, -20, 0, 0, b"ZWTS")
    ts = struct.pack("!II", secs, frac)
    return head + ts + origin + ts + ts


def main() -> None:
    lifetime = float(sys.argv[1])
    addrs = sys.argv[2].split(",")
    sel = selectors.DefaultSelector()
    for spec in sys.argv[3:]:
        kind, port = spec.split(":")
        socks = []
        if kind == "tcp":
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", int(port)))
            s.listen(16)
            socks.append(s)
        else:
            for a in addrs:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((a, int(port)))
                socks.append(s)
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, (kind, int(port)))
    print("ready", flush=True)
    end = time.monotonic() + lifetime
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.2):
            kind, port = key.data
            s = key.fileobj
            if kind == "udp":
                data, peer = s.recvfrom(2048)
                s.sendto(ntp_reply(data) if port == 123 else data, peer)
                continue
            conn, _ = s.accept()
            conn.settimeout(2)
            try:
                if port == 25:
                    conn.sendall(b"220 zonewatch model capture ESMTP\r\n")
                    conn.recv(1024)
                    conn.sendall(b"221 bye\r\n")
                else:
                    conn.recv(4096)
                    body = b"zonewatch model capture\n"
                    conn.sendall(
                        b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
            except OSError:
                pass
            finally:
                conn.close()


if __name__ == "__main__":
    main()
