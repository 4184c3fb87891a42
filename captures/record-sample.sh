#!/usr/bin/env bash
# Record captures/sample.pcap (and derive captures/sample-vlan.pcap) from real
# traffic between network namespaces. Must run as root. Re-runnable: every
# namespace name carries this script's PID and everything is removed on exit.
#
# Topology (documentation addresses only; the three subnets become the
# municipal zones later):
#
#   zw-my-PID   host "mynumber"  192.0.2.10/25    2001:db8:1::10/64
#        | veth h-my <-> r-my
#   zw-rt-PID   router           192.0.2.1/25     2001:db8:1::1/64   (r-my)
#                                198.51.100.1/24  2001:db8:2::1/64   (r-lg)
#                                203.0.113.1/24   2001:db8:3::1/64   (r-in)
#        | veth h-lg <-> r-lg                  | veth h-in <-> r-in
#   zw-lg-PID   host "lgwan"     198.51.100.10/24 2001:db8:2::10/64
#   zw-in-PID   host "internet"  203.0.113.10/24  2001:db8:3::10/64
#
# Mirroring (tc clsact + u32 "match all"; this kernel has no matchall
# classifier, no Linux bridge and no 802.1Q module): every frame that ENTERS a
# router interface is mirrored to the capture veth cap0 (router side); frames
# LEAVING a router interface are mirrored only when the router itself sent them
# (ARP, ICMP errors, echo replies, NDP), so a forwarded packet is recorded once
# (on its way in), as a SPAN of the hosts' ports would show it. tcpdump records
# on cap1, the peer of cap0, in its own namespace zw-tap-PID.
#
# Usage: sudo captures/record-sample.sh [OUTDIR]   (default: this directory)
# Needs: iproute2 tcpdump curl iputils-ping netcat-openbsd tcpreplay python3
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "record-sample.sh: must run as root (creates network namespaces)" >&2
    exit 1
fi
for tool in ip tc tcpdump curl ping nc tcprewrite python3 timeout; do
    command -v "$tool" >/dev/null || { echo "record-sample.sh: missing tool: $tool" >&2; exit 1; }
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=${1:-$here}
mkdir -p "$outdir"

ns_my=zw-my-$$
ns_lg=zw-lg-$$
ns_in=zw-in-$$
ns_rt=zw-rt-$$
ns_tap=zw-tap-$$
# shellcheck source=captures/netns-lib.sh
. "$here/netns-lib.sh"
ns_add "$ns_my" "$ns_lg" "$ns_in" "$ns_rt" "$ns_tap"

# Quiet IPv6 on interfaces that must not originate traffic of their own, and
# no router solicitations/DAD noise from the hosts (addresses are added nodad).
in_ns "$ns_rt" sysctl -qw net.ipv4.ip_forward=1
in_ns "$ns_rt" sysctl -qw net.ipv6.conf.all.forwarding=1
in_ns "$ns_rt" sysctl -qw net.ipv6.conf.default.accept_ra=0

# host link: NS IFACE_HOST IFACE_ROUTER V4_HOST V4_ROUTER PREFIX V6_HOST V6_ROUTER
link_host() {
    local ns=$1 hif=$2 rif=$3 h4=$4 r4=$5 len=$6 h6=$7 r6=$8
    ip link add name "$hif" netns "$ns" type veth peer name "$rif" netns "$ns_rt"
    in_ns "$ns" sysctl -qw "net.ipv6.conf.$hif.router_solicitations=0"
    in_ns "$ns" ip addr add "$h4/$len" dev "$hif"
    in_ns "$ns" ip -6 addr add "$h6/64" dev "$hif" nodad
    # Hand the router wire-sized frames: no TSO/GSO super-frames from the hosts.
    in_ns "$ns" ip link set dev "$hif" gso_max_segs 1
    in_ns "$ns" ip link set "$hif" up
    in_ns "$ns" ip route add default via "$r4"
    in_ns "$ns" ip -6 route add default via "$r6"
    in_ns "$ns_rt" ip addr add "$r4/$len" dev "$rif"
    in_ns "$ns_rt" ip -6 addr add "$r6/64" dev "$rif" nodad
    in_ns "$ns_rt" ip link set "$rif" up
}
link_host "$ns_my" h-my r-my 192.0.2.10 192.0.2.1 25 2001:db8:1::10 2001:db8:1::1
link_host "$ns_lg" h-lg r-lg 198.51.100.10 198.51.100.1 24 2001:db8:2::10 2001:db8:2::1
link_host "$ns_in" h-in r-in 203.0.113.10 203.0.113.1 24 2001:db8:3::10 2001:db8:3::1

capture_link "$ns_rt" "$ns_tap"
for rif in r-my r-lg r-in; do
    mirror_if "$ns_rt" "$rif" 192.0.2.1 198.51.100.1 203.0.113.1 \
        2001:db8:1::1/128 2001:db8:2::1/128 2001:db8:3::1/128 fe80::/10
done

# Services. Both exit on their own (timeout) even if cleanup never runs.
mkdir -p "$work/www"
printf 'zonewatch sample page\n' >"$work/www/index.html"
# A page of several full-size segments (deterministic content).
for i in $(seq 120); do printf 'line %03d of the larger zonewatch sample page ....\n' "$i"; done >"$work/www/big.html"
(cd "$work/www" && exec ip netns exec "$ns_lg" timeout 60 python3 -m http.server 8080 --bind :: \
    >"$work/http.log" 2>&1) &
pids+=($!)

# DNS-like responder on lgwan:53 (v4 and v6): answers each query with NXDOMAIN,
# stops after 4 queries or 60 s.
cat >"$work/dns_server.py" <<'EOF'
import select, socket, sys
socks = []
for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, 53))
    socks.append(s)
answered = 0
while answered < 4:
    ready, _, _ = select.select(socks, [], [], 60)
    if not ready:
        sys.exit(1)
    for s in ready:
        q, peer = s.recvfrom(512)
        if len(q) < 12:
            continue
        # Same id, QR=1 RD=1 RA=1 RCODE=3 (NXDOMAIN), question echoed, no answers.
        s.sendto(q[:2] + b"\x81\x83" + q[4:6] + b"\x00\x00\x00\x00\x00\x00" + q[12:], peer)
        answered += 1
EOF
ip netns exec "$ns_lg" timeout 60 python3 "$work/dns_server.py" &
dns_pid=$!
pids+=("$dns_pid")

# DNS-like client: one A query for NAME to SERVER:53, waits up to 2 s for the reply.
cat >"$work/dns_query.py" <<'EOF'
import socket, struct, sys
server, name, qid = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in server else socket.AF_INET
q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
q += struct.pack(">HH", 1, 1)
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(q, (server, 53))
r = s.recv(512)
assert r[:2] == q[:2], "reply id mismatch"
EOF

# Traceroute-like probe: one UDP datagram with TTL/hop limit 1 (the router answers
# with ICMP time exceeded quoting it).
cat >"$work/ttl1.py" <<'EOF'
import socket, sys
dst, port = sys.argv[1], int(sys.argv[2])
if ":" in dst:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 1)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
s.sendto(b"zonewatch-probe", (dst, port))
EOF

# Wait until the services listen (bounded).
for _ in $(seq 50); do
    if in_ns "$ns_lg" ss -Hltn 'sport = :8080' | grep -q . &&
        in_ns "$ns_lg" ss -Hlun 'sport = :53' | grep -q .; then
        break
    fi
    sleep 0.1
done

pcap_tmp="$work/sample.pcap"
start_tcpdump "$ns_tap" "$pcap_tmp"

my() { in_ns "$ns_my" timeout 10 "$@"; }
lg() { in_ns "$ns_lg" timeout 10 "$@"; }
inet() { in_ns "$ns_in" timeout 10 "$@"; }

echo "recording traffic..." >&2
# The phases are spaced out so the recording lasts about 10 s (a replay at
# --speed 1 then takes long enough to be interrupted).
# 1. ICMP echo, IPv4 mynumber -> lgwan, and IPv6 mynumber -> internet.
my ping -n -q -c 3 -i 0.5 198.51.100.10 >/dev/null
my ping -6 -n -q -c 3 -i 0.5 2001:db8:3::10 >/dev/null
# 2. HTTP GETs to the lgwan server, IPv4 and IPv6, from mynumber and internet;
#    big.html is ~6 KB, several full-size segments.
my curl -sS -o /dev/null http://198.51.100.10:8080/
my curl -sS -o /dev/null 'http://[2001:db8:2::10]:8080/'
inet curl -sS -o /dev/null http://198.51.100.10:8080/index.html
my curl -sS -o /dev/null http://198.51.100.10:8080/big.html
inet curl -sS -o /dev/null 'http://[2001:db8:2::10]:8080/big.html'
for _ in 1 2 3 4; do
    sleep 0.5
    my curl -sS -o /dev/null http://198.51.100.10:8080/index.html
done
# 3. DNS-like UDP queries mynumber -> lgwan:53 (IPv4 x3, IPv6 x1).
my python3 "$work/dns_query.py" 198.51.100.10 www.example.com 4660
my python3 "$work/dns_query.py" 198.51.100.10 mail.example.net 4661
my python3 "$work/dns_query.py" 198.51.100.10 www.example.org 4662
my python3 "$work/dns_query.py" 2001:db8:2::10 www.example.com 4663
sleep 1
# 4. TCP to a closed port (SYN answered by RST), IPv4 and IPv6.
inet nc -z -w 1 192.0.2.10 9 || true
inet nc -6 -z -w 1 2001:db8:1::10 9 || true
# 5. UDP to a closed port (ICMP / ICMPv6 port unreachable from the host).
printf 'hello\n' | inet nc -u -w 1 198.51.100.10 9999 || true
printf 'hello\n' | inet nc -6 -u -w 1 2001:db8:2::10 9999 || true
# 6. TTL 1 / hop limit 1: ICMP time exceeded from the router (UDP and echo).
my python3 "$work/ttl1.py" 203.0.113.10 33434
my python3 "$work/ttl1.py" 2001:db8:3::10 33435
my ping -n -q -c 1 -t 1 -W 1 203.0.113.10 >/dev/null || true
# 7. ICMP echo lgwan -> internet (IPv4), 1 s apart.
lg ping -n -q -c 3 203.0.113.10 >/dev/null
# Let the last replies and any delayed FIN/ACKs arrive.
sleep 1

wait "$dns_pid"
stop_tcpdump

cp "$pcap_tmp" "$outdir/sample.pcap"
tcprewrite --enet-vlan=add --enet-vlan-tag=100 --enet-vlan-pri=0 --enet-vlan-cfi=0 \
    --infile="$outdir/sample.pcap" --outfile="$outdir/sample-vlan.pcap"
chmod 0644 "$outdir/sample.pcap" "$outdir/sample-vlan.pcap"
echo "wrote $outdir/sample.pcap and $outdir/sample-vlan.pcap" >&2
