#!/usr/bin/env bash
# Record captures/zones.pcap: real traffic between network namespaces placed at
# the addresses of the example site (rules/example-site.toml), with planted
# ALLOWED flows and planted VIOLATIONS. Must run as root. Re-runnable: every
# namespace name carries this script's PID and everything is removed on exit.
# IPv4 only (IPv6 is disabled in every namespace, so there is no NDP/MLD noise).
#
# Hosts (one namespace each, each on its own veth to the router zw-zrt-PID; the
# router holds one address in each host's zone block):
#
#   zw-zmy-PID   192.0.2.10/27     mynumber.term  My Number terminal      router .1
#   zw-zms-PID   192.0.2.34/28     mynumber.srv   My Number server        router .33
#   zw-zlg-PID   192.0.2.70/27     lgwan.term     LGWAN terminal          router .65
#   zw-zlm-PID   192.0.2.100/28    lgwan.srv      lgwan_mail              router .97
#   zw-zit-PID   192.0.2.130/27    inet.term      internet-zone terminal  router .129
#   zw-zst-PID   192.0.2.161/28    inet.srv       screen_transfer (RDS)   router .174
#                192.0.2.165/28    inet.srv       inet_mail (same host)
#   zw-zrl-PID   192.0.2.177/28    relay          relay_mail              router .190
#                192.0.2.178/28    relay          relay_file (same host)
#   zw-zsc-PID   198.51.100.130/26 sec_cloud      sec_proxy               router .129
#   zw-znt-PID   203.0.113.200/24  internet       outside web server      router .254
#   zw-ztap-PID  capture (tcpdump -i cap1)
#
# Mirroring as in record-sample.sh (tc clsact + u32 match-all + mirred): every
# frame ENTERING a router interface is mirrored to cap0; frames LEAVING it only
# when the router sent them (ARP, or an IP source that is a router address), so a
# forwarded packet is recorded once.
#
# Usage: sudo captures/record-zones.sh [OUTDIR]   (default: this directory)
# Needs: iproute2 tcpdump curl iputils-ping netcat-openbsd python3
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "record-zones.sh: must run as root (creates network namespaces)" >&2
    exit 1
fi
for tool in ip tc tcpdump curl ping nc python3 timeout ss; do
    command -v "$tool" >/dev/null || { echo "record-zones.sh: missing tool: $tool" >&2; exit 1; }
done

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=${1:-$here}
mkdir -p "$outdir"

ns_rt=zw-zrt-$$
ns_tap=zw-ztap-$$
declare -A ns=(
    [my]=zw-zmy-$$ [ms]=zw-zms-$$ [lg]=zw-zlg-$$ [lm]=zw-zlm-$$ [it]=zw-zit-$$
    [st]=zw-zst-$$ [rl]=zw-zrl-$$ [sc]=zw-zsc-$$ [nt]=zw-znt-$$
)
# shellcheck source=captures/netns-lib.sh
. "$here/netns-lib.sh"
ns_add "$ns_rt" "$ns_tap"
for k in my ms lg lm it st rl sc nt; do ns_add "${ns[$k]}"; done
for n in "${all_ns[@]}"; do
    in_ns "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    in_ns "$n" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
done
in_ns "$ns_rt" sysctl -qw net.ipv4.ip_forward=1

rt_ifs=()
router_ips=()
# host link: KEY ROUTER_ADDR/LEN HOST_ADDR/LEN [EXTRA_HOST_ADDR/LEN...]
link_host() {
    local key=$1 raddr=$2 haddr=$3
    shift 3
    local n=${ns[$key]} rif=r-$key
    ip link add name h0 netns "$n" type veth peer name "$rif" netns "$ns_rt"
    in_ns "$n" ip addr add "$haddr" dev h0
    local extra
    for extra in "$@"; do
        in_ns "$n" ip addr add "$extra" dev h0
    done
    in_ns "$n" ip link set dev h0 gso_max_segs 1
    in_ns "$n" ip link set h0 up
    in_ns "$n" ip route add default via "${raddr%/*}"
    in_ns "$ns_rt" ip addr add "$raddr" dev "$rif"
    in_ns "$ns_rt" ip link set "$rif" up
    rt_ifs+=("$rif")
    router_ips+=("${raddr%/*}")
}
link_host my 192.0.2.1/27 192.0.2.10/27
link_host ms 192.0.2.33/28 192.0.2.34/28
link_host lg 192.0.2.65/27 192.0.2.70/27
link_host lm 192.0.2.97/28 192.0.2.100/28
link_host it 192.0.2.129/27 192.0.2.130/27
link_host st 192.0.2.174/28 192.0.2.161/28 192.0.2.165/28
link_host rl 192.0.2.190/28 192.0.2.177/28 192.0.2.178/28
link_host sc 198.51.100.129/26 198.51.100.130/26
link_host nt 203.0.113.254/24 203.0.113.200/24

capture_link "$ns_rt" "$ns_tap"
for rif in "${rt_ifs[@]}"; do
    mirror_if "$ns_rt" "$rif" "${router_ips[@]}"
done

# ---- services (each exits on its own via timeout even if cleanup never runs) ----
mkdir -p "$work/www"
printf 'zonewatch zones page\n' >"$work/www/index.html"
http() { # KEY ADDR PORT
    (cd "$work/www" && exec ip netns exec "${ns[$1]}" timeout 60 python3 -m http.server "$3" \
        --bind "$2" >>"$work/http.log" 2>&1) &
    pids+=($!)
}
http sc 198.51.100.130 8080 # sec_proxy, I1 port
http sc 198.51.100.130 8081 # sec_proxy, not an I1 port
http st 192.0.2.161 3389    # screen transfer, L3 port (HTTP stands in for RDP)
http st 192.0.2.161 80      # screen transfer, not an L3 port
http lm 192.0.2.100 443     # LGWAN server, L5 port (plain HTTP)
http nt 203.0.113.200 80    # outside web server
# One-shot TCP listeners (SMTP-like) and a UDP sink, OpenBSD nc.
tcp_once() { # KEY ADDR PORT
    ip netns exec "${ns[$1]}" timeout 60 nc -l "$2" "$3" </dev/null >/dev/null &
    pids+=($!)
}
tcp_once lm 192.0.2.100 25  # lgwan_mail
tcp_once rl 192.0.2.177 25  # relay_mail
ip netns exec "${ns[st]}" timeout 60 nc -u -l 192.0.2.161 3389 </dev/null >/dev/null &
pids+=($!)

listening() { # KEY PROTO(t|u) PORT
    in_ns "${ns[$1]}" ss -H"l$2n" "sport = :$3" | grep -q .
}
for _ in $(seq 100); do
    if listening sc t 8080 && listening sc t 8081 && listening st t 3389 && listening st t 80 &&
        listening lm t 443 && listening nt t 80 && listening lm t 25 && listening rl t 25 &&
        listening st u 3389; then
        break
    fi
    sleep 0.1
done

pcap_tmp="$work/zones.pcap"
start_tcpdump "$ns_tap" "$pcap_tmp"

on() { local k=$1; shift; in_ns "${ns[$k]}" timeout 10 "$@"; }
get() { on "$1" curl -sS -o /dev/null --max-time 5 "${@:2}"; }

echo "recording traffic..." >&2
# ---- (a) allowed flows ----
# A1 rule I1: internet-zone terminal -> security-cloud proxy :8080.
get it http://198.51.100.130:8080/
# A2 rule L3: LGWAN terminal -> screen-transfer server :3389 (TCP).
get lg http://192.0.2.161:3389/
# A3 rule L3u: LGWAN terminal -> screen-transfer server :3389 (UDP).
printf 'zonewatch-l3u\n' | on lg nc -u -w 1 -s 192.0.2.70 192.0.2.161 3389 || true
# A4 rule L5: file sanitiser -> LGWAN server :443.
get rl --interface 192.0.2.178 http://192.0.2.100:443/
# A5 rule L4: mail text-ification gateway -> LGWAN mail :25.
printf 'HELO relay.example\r\nQUIT\r\n' | on rl nc -N -w 2 -s 192.0.2.177 192.0.2.100 25
# A6 rule I5: internet-zone mail server -> mail text-ification gateway :25.
printf 'HELO mail.example\r\nQUIT\r\n' | on st nc -N -w 2 -s 192.0.2.165 192.0.2.177 25
# ---- (b) violations ----
# V1 mynumber.term -> internet HTTP (critical).
get my http://203.0.113.200/
# V2 lgwan.term -> internet HTTP, bypassing screen transfer (critical).
get lg http://203.0.113.200/
# V3 inet.term -> mynumber.srv, ICMP echo (critical).
on it ping -n -q -c 2 -i 0.5 192.0.2.34 >/dev/null
# V4 lgwan.term -> screen-transfer server on a port L3 does not allow (high).
get lg http://192.0.2.161:80/
# V5 inet.term -> internet directly, bypassing the proxy (high).
get it http://203.0.113.200/
# V6 inet.term -> security-cloud proxy on a port I1 does not allow (medium).
get it http://198.51.100.130:8081/
sleep 1

stop_tcpdump

cp "$pcap_tmp" "$outdir/zones.pcap"
chmod 0644 "$outdir/zones.pcap"
echo "wrote $outdir/zones.pcap" >&2
