#!/usr/bin/env bash
# Record office-noise.pcap: what one My Number terminal sends on its segment in its
# first seconds on the network, from the real clients and daemons a Windows or
# Linux office PC runs (issue #12 point 1; ground truth in captures/README.md).
#
# Usage: sudo captures/record-office.sh [OUTDIR]   (OUTDIR defaults to this directory)
#
# Two namespaces joined by one veth, at the example site's mynumber.term block
# (rules/example-site.toml: 192.0.2.0/27, 2001:db8:0:110::/64):
#   zw-ofr-PID  "router": 192.0.2.1/27, 2001:db8:0:110::1/64; dnsmasq serves DHCPv4
#               (192.0.2.20-29), DHCPv6 (::100-::1ff) and router advertisements.
#               tcpdump records its port r0, as a SPAN of the terminal's port would.
#   zw-oft-PID  the terminal, no address at first:
#     - the kernel brings the link up: IPv6 DAD from ::, router solicitation, MLD reports;
#     - dhclient -4 (DISCOVER from 0.0.0.0 to 255.255.255.255) and dhclient -6 (Solicit
#       from fe80:: to ff02::1:2); the leased IPv4 address is then configured by hand
#       (dhclient runs with -sf /bin/true so nothing outside the namespace is touched);
#     - avahi-daemon: mDNS announcements and queries to 224.0.0.251 / ff02::fb, IGMP joins;
#     - nmblookup: a NetBIOS name query to the segment's directed broadcast 192.0.2.31;
#     - a Python LLMNR query (224.0.0.252 / ff02::1:3, udp/5355), as Windows sends for
#       every unresolved name, and Python SSDP M-SEARCH / WS-Discovery probes to
#       239.255.255.250 (udp/1900, udp/3702) with TTL 2;
#     - planted: one datagram to the routable group 239.1.2.3:5004 (an RTP stream's
#       group), which the rules must judge (mynumber -> multicast: critical);
#     - planted: two pings to the router (intra-zone, allowed).
# Every namespace is deleted on exit; every sender is bounded in count and time.
#
# Needs: iproute2 tcpdump dnsmasq-base isc-dhcp-client avahi-daemon samba-common-bin python3
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here}
[ "$(id -u)" -eq 0 ] || { echo "record-office.sh: must run as root (network namespaces)" >&2; exit 1; }
for t in tcpdump dnsmasq dhclient avahi-daemon nmblookup python3; do
    command -v "$t" >/dev/null || { echo "record-office.sh: $t is missing (make deps)" >&2; exit 1; }
done
# shellcheck source=netns-lib.sh
source "$here/netns-lib.sh"

R=zw-ofr-$$
T=zw-oft-$$
ns_add "$R" "$T"
ip link add name r0 netns "$R" type veth peer name t0 netns "$T"
in_ns "$R" ip addr add 192.0.2.1/27 dev r0
in_ns "$R" ip -6 addr add 2001:db8:0:110::1/64 dev r0 nodad
in_ns "$R" ip link set r0 up

start_tcpdump "$R" "$work/office.pcap" r0

ip netns exec "$R" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface=r0 --bind-interfaces \
    --dhcp-range=192.0.2.20,192.0.2.29,255.255.255.224,10m \
    --dhcp-range=2001:db8:0:110::100,2001:db8:0:110::1ff,64,10m --enable-ra \
    --dhcp-leasefile="$work/dnsmasq.leases" --pid-file="$work/dnsmasq.pid" 2>"$work/dnsmasq.log" &
pids+=($!)
sleep 1

# The terminal joins the segment: DAD, RS and MLD come from the kernel.
in_ns "$T" sysctl -qw net.ipv6.conf.t0.accept_ra=1
in_ns "$T" ip link set t0 up
sleep 3

timeout 30 ip netns exec "$T" dhclient -4 -1 -v -sf /bin/true -lf "$work/dh4.leases" \
    -pf "$work/dh4.pid" t0 2>"$work/dh4.log" || true
[ -s "$work/dh4.pid" ] && kill "$(cat "$work/dh4.pid")" 2>/dev/null || true
lease=$(sed -n 's/^ *fixed-address \([0-9.]*\);/\1/p' "$work/dh4.leases" | tail -1)
[ -n "$lease" ] || { cat "$work/dh4.log" "$work/dnsmasq.log" >&2; echo "record-office.sh: no DHCPv4 lease" >&2; exit 1; }
in_ns "$T" ip addr add "$lease/27" dev t0
timeout 30 ip netns exec "$T" dhclient -6 -1 -v -sf /bin/true -lf "$work/dh6.leases" \
    -pf "$work/dh6.pid" t0 2>"$work/dh6.log" || true
# dhclient stays in the background once bound: stop it (-sf /bin/true: nothing to undo).
[ -s "$work/dh6.pid" ] && kill "$(cat "$work/dh6.pid")" 2>/dev/null || true
in_ns "$T" ip route add default via 192.0.2.1 2>/dev/null || true

# avahi-daemon, confined to t0, no D-Bus, no files outside $work.
cat >"$work/avahi.conf" <<EOF
[server]
host-name=mynumber-pc-01
use-ipv4=yes
use-ipv6=yes
allow-interfaces=t0
enable-dbus=no
[publish]
publish-workstation=yes
EOF
ip netns exec "$T" avahi-daemon --no-drop-root --no-chroot --no-rlimits --no-proc-title \
    -f "$work/avahi.conf" 2>"$work/avahi.log" &
avahi_pid=$!
pids+=("$avahi_pid")
sleep 4

timeout 10 ip netns exec "$T" nmblookup -s /dev/null -B 192.0.2.31 WORKGROUP >"$work/nmb.log" 2>&1 || true

in_ns "$T" timeout 20 python3 - <<'EOF'
import socket, struct, time

def llmnr(name, qtype):
    hdr = struct.pack("!HHHHHH", 0x4a3f, 0, 1, 0, 0, 0)
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return hdr + q + struct.pack("!HH", qtype, 1)

s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s4.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
ifidx = socket.if_nametoindex("t0")
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifidx)
for _ in range(2):  # Windows repeats an LLMNR query once
    s4.sendto(llmnr("fileserver", 1), ("224.0.0.252", 5355))
    s6.sendto(llmnr("fileserver", 28), ("ff02::1:3", 5355, 0, ifidx))
    time.sleep(0.1)

ssdp = (b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
        b"MAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n")
wsd = (b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope '
       b'xmlns:soap="http://www.w3.org/2003/05/soap-envelope" '
       b'xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
       b'xmlns:wsd="http://schemas.xmlsoap.org/ws/2005/04/discovery"><soap:Header>'
       b'<wsa:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsa:To>'
       b'<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</wsa:Action>'
       b'<wsa:MessageID>urn:uuid:00000000-0000-4000-8000-000000000001</wsa:MessageID>'
       b'</soap:Header><soap:Body><wsd:Probe/></soap:Body></soap:Envelope>')
m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
m.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
for _ in range(2):
    m.sendto(ssdp, ("239.255.255.250", 1900))
    m.sendto(wsd, ("239.255.255.250", 3702))
    time.sleep(0.2)
# Planted: a routable group the rules do not allow.
m.sendto(b"\x80\x60\x00\x01" + bytes(28), ("239.1.2.3", 5004))
EOF

in_ns "$T" ping -c 2 -i 0.2 -W 1 192.0.2.1 >/dev/null
sleep 2

kill "$avahi_pid" 2>/dev/null || true
pkill -f -- "-lf $work/dh" 2>/dev/null || true  # a dhclient that wrote no pid file yet
wait "$avahi_pid" 2>/dev/null || true
sleep 1
stop_tcpdump
cp "$work/office.pcap" "$out/office-noise.pcap"
echo "wrote $out/office-noise.pcap (DHCPv4 lease $lease)" >&2
