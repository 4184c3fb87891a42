#!/usr/bin/env bash
# End-to-end test of rsyslog-zonewatch.conf: the same file with the alert path and the SIEM
# address pointed at a temporary file and a local TCP listener; rsyslogd runs in the foreground,
# alert lines are appended, and every line must arrive as one RFC 5424 message whose MSG is the
# JSON line unchanged. Needs rsyslogd and python3 (Debian packages rsyslog, python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
rs_pid=""; ls_pid=""
cleanup() {
    if [ -n "$rs_pid" ]; then kill "$rs_pid" 2>/dev/null || true; wait "$rs_pid" 2>/dev/null || true; fi
    if [ -n "$ls_pid" ]; then kill "$ls_pid" 2>/dev/null || true; wait "$ls_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$tmp/spool"

# Listener: accepts one TCP connection, reads octet-counted frames, writes their MSG parts.
cat > "$tmp/listen.py" <<'PY'
import socket, sys
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
open(sys.argv[1], "w").write(str(srv.getsockname()[1]))
srv.settimeout(30)
conn, _ = srv.accept(); conn.settimeout(30)
want = int(sys.argv[3]); buf = b""; out = open(sys.argv[2], "wb"); got = 0
while got < want:
    chunk = conn.recv(65536)
    if not chunk:
        break
    buf += chunk
    while b" " in buf:
        n, rest = buf.split(b" ", 1)
        n = int(n)
        if len(rest) < n:
            break
        out.write(rest[:n] + b"\n"); out.flush(); got += 1
        buf = rest[n:]
PY

# Two alert lines in the --alerts format (src/alert/mod.rs), documentation addresses.
cat > "$tmp/expected.jsonl" <<'JL'
{"timestamp":"2025-01-06T01:02:03.000004Z","kind":"separation_violation","severity":"critical","src_ip":"192.0.2.10","src_port":49152,"dst_ip":"203.0.113.5","dst_port":443,"proto":"tcp","vlan":[110],"src_zone":"mynumber.term","dst_zone":"internet","rule":"mynumber->*","reason":"mynumber.term → internet: no allow rule matched (例示市)","community_id":"1:LQU9qZlK+B5F3KDmev6m5PMibrg=","count":3,"first_seen":"2025-01-06T01:02:03.000004Z","last_seen":"2025-01-06T01:02:40.000000Z","folded_by":"flow"}
{"timestamp":"2025-01-06T01:05:00.000000Z","kind":"dos_start","severity":"high","vlan":[],"src_zone":null,"dst_zone":"inet.srv","rule":"detect.dos","reason":"SYN flood","count":1,"first_seen":"2025-01-06T01:05:00.000000Z","last_seen":"2025-01-06T01:05:00.000000Z","evidence":{"pps":52000}}
JL

python3 "$tmp/listen.py" "$tmp/port" "$tmp/received" 2 & ls_pid=$!
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
port="$(cat "$tmp/port")"

sed -e "s#/var/log/zonewatch/alerts.jsonl#$tmp/alerts.jsonl#" \
    -e 's#target="siem.example.net"#target="127.0.0.1"#' \
    -e "s#port=\"514\"#port=\"$port\"#" "$here/rsyslog-zonewatch.conf" > "$tmp/zonewatch.conf"
grep -q "$tmp/alerts.jsonl" "$tmp/zonewatch.conf" && grep -q "port=\"$port\"" "$tmp/zonewatch.conf" \
    || { echo "FAIL: could not point the config at the test file and listener"; exit 1; }
cat > "$tmp/rsyslog.conf" <<CONF
global(workDirectory="$tmp/spool")
include(file="$tmp/zonewatch.conf")
CONF

rsyslogd -N1 -f "$tmp/rsyslog.conf" >"$tmp/n1.log" 2>&1 || { cat "$tmp/n1.log"; echo "FAIL: rsyslogd -N1"; exit 1; }
: > "$tmp/alerts.jsonl"
rsyslogd -n -f "$tmp/rsyslog.conf" -i "$tmp/rsyslogd.pid" >"$tmp/rsyslogd.log" 2>&1 & rs_pid=$!
sleep 1
cat "$tmp/expected.jsonl" >> "$tmp/alerts.jsonl"
for _ in $(seq 100); do kill -0 "$ls_pid" 2>/dev/null || break; sleep 0.1; done
wait "$ls_pid" || true; ls_pid=""

python3 - "$tmp/expected.jsonl" "$tmp/received" <<'PY'
import json, re, sys
exp = [l for l in open(sys.argv[1], encoding="utf-8").read().splitlines() if l]
got = open(sys.argv[2], encoding="utf-8").read().splitlines()
assert len(got) == len(exp), f"FAIL: {len(got)} messages received, {len(exp)} expected: {got!r}"
hdr = re.compile(r"^<(\d+)>1 \S+ \S+ zonewatch - \S+ - (.*)$")
for e, g in zip(exp, got):
    m = hdr.match(g)
    assert m, f"FAIL: not RFC 5424 with APP-NAME zonewatch: {g!r}"
    assert int(m.group(1)) == 20 * 8 + 4, f"FAIL: PRI {m.group(1)} is not local4.warning (164)"
    assert m.group(2) == e, f"FAIL: MSG changed:\n{m.group(2)}\n{e}"
    json.loads(m.group(2))
print(f"rsyslog shipping: {len(got)} alert lines arrived unchanged as RFC 5424 over TCP")
PY
