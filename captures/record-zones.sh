#!/usr/bin/env bash
# Record the zone-policy captures: real traffic between network namespaces placed
# at the addresses of the example site (rules/example-site.toml), with planted
# ALLOWED flows and planted VIOLATIONS (ground truth: captures/README.md).
#
# Usage: sudo captures/record-zones.sh [--v4 | --v6 | --vlan-only] [OUTDIR]
#   (no mode)    both families, one after the other: --v4, then --v6
#   --v4         zones.pcap (IPv4), then zones-vlan.pcap derived from it
#   --v6         zones-v6.pcap (IPv6)
#   --vlan-only  only derive zones-vlan.pcap from the existing OUTDIR/zones.pcap
#                (no root, no namespaces)
# OUTDIR defaults to this directory. Must run as root (except --vlan-only).
# Re-runnable: every namespace name carries this script's PID and everything is
# removed on exit.
#
# One family per recording: the other family is absent, so there is no noise.
#   IPv4: IPv6 is disabled in every namespace (no NDP/MLD); ARP resolves.
#   IPv6: addresses are added `nodad`, link-local addresses are never generated
#         (addr_gen_mode none), router solicitations/RAs are off and every
#         neighbour is a static (permanent) entry, so no NDP is sent; tcpdump
#         starts only after the kernel's unsolicited MLD reports are over. (NDP
#         would be ICMPv6 and so make flows of its own; ARP makes none.)
#
# Hosts (one namespace each, each on its own veth to the router zw-zrt-PID; the
# router holds one address in each host's zone block):
#
#   ns           IPv4              IPv6                        zone           role
#   zw-zmy-PID   192.0.2.10/27     2001:db8:0:110::10/64       mynumber.term  My Number terminal
#   zw-zms-PID   192.0.2.34/28     2001:db8:0:120::34/64       mynumber.srv   My Number server
#   zw-zlg-PID   192.0.2.70/27     2001:db8:0:210::70/64       lgwan.term     LGWAN terminal
#   zw-zlm-PID   192.0.2.100/28    2001:db8:0:220::100/64      lgwan.srv      lgwan_mail
#   zw-zit-PID   192.0.2.130/27    2001:db8:0:310::130/64      inet.term      internet-zone terminal
#   zw-zst-PID   192.0.2.161/28    2001:db8:0:320::161/64      inet.srv       screen_transfer (RDS)
#                192.0.2.165/28    (inet_mail has no IPv6)     inet.srv       inet_mail (same host)
#   zw-zrl-PID   192.0.2.177/28    2001:db8:0:330::177/64      relay          relay_mail
#                192.0.2.178/28    2001:db8:0:330::178/64      relay          relay_file (same host)
#   zw-zsc-PID   198.51.100.130/26 2001:db8:ffff:4::130/64     sec_cloud      sec_proxy
#   zw-znt-PID   203.0.113.200/24  2001:db8:ffff:20::200/64    internet       outside web server
#   zw-ztap-PID  capture (tcpdump -i cap1)
# Router side: IPv4 .1 .33 .65 .97 .129 .174 .190 198.51.100.129 203.0.113.254;
# IPv6 ::1 of each /64.
#
# Mirroring as in record-sample.sh (tc clsact + u32 match-all + mirred): every
# frame ENTERING a router interface is mirrored to cap0; frames LEAVING it only
# when the router sent them (ARP, or an IP source that is a router address), so a
# forwarded packet is recorded once.
#
# IPv6 has no inet_mail address, so rule I5 (inet_mail -> relay_mail, A6 in IPv4)
# cannot be planted over IPv6; its place is taken by L5p (LGWAN terminal pulls
# from relay_file, tcp/443), the other allowed flow into the relay zone.
#
# zones-vlan.pcap: zones.pcap with every frame tagged 802.1Q VLAN $vlan_tag (the
# example site's mgmt VLAN, as if the mirror were delivered to the sensor over the
# management VLAN); the kernel here has no 8021q module, so tcprewrite adds it.
#
# Needs: iproute2 tcpdump curl iputils-ping netcat-openbsd python3 tcpreplay
set -euo pipefail

vlan_tag=900
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

mode=all
case ${1:-} in
    --v4) mode=4; shift ;;
    --v6) mode=6; shift ;;
    --vlan-only) mode=vlan; shift ;;
    -*) echo "usage: record-zones.sh [--v4 | --v6 | --vlan-only] [OUTDIR]" >&2; exit 2 ;;
esac
outdir=${1:-$here}
mkdir -p "$outdir"

# derive_vlan: OUTDIR/zones.pcap -> OUTDIR/zones-vlan.pcap, one 802.1Q tag per frame.
derive_vlan() {
    command -v tcprewrite >/dev/null || { echo "record-zones.sh: missing tool: tcprewrite" >&2; exit 1; }
    tcprewrite --enet-vlan=add --enet-vlan-tag="$vlan_tag" --enet-vlan-pri=0 --enet-vlan-cfi=0 \
        --infile="$outdir/zones.pcap" --outfile="$outdir/zones-vlan.pcap"
    chmod 0644 "$outdir/zones-vlan.pcap"
    echo "wrote $outdir/zones-vlan.pcap (VLAN $vlan_tag)" >&2
}

case $mode in
    vlan) derive_vlan; exit 0 ;;
    all)
        bash "${BASH_SOURCE[0]}" --v4 "$outdir"
        bash "${BASH_SOURCE[0]}" --v6 "$outdir"
        exit 0
        ;;
esac

if [[ $(id -u) -ne 0 ]]; then
    echo "record-zones.sh: must run as root (creates network namespaces)" >&2
    exit 1
fi
for tool in ip tc tcpdump curl ping nc python3 timeout ss tcprewrite; do
    command -v "$tool" >/dev/null || { echo "record-zones.sh: missing tool: $tool" >&2; exit 1; }
done

# ---- per-family addresses (A = address; R = router side; P = prefix length) ----
if [[ $mode == 4 ]]; then
    declare -A A=(
        [my]=192.0.2.10 [ms]=192.0.2.34 [lg]=192.0.2.70 [lm]=192.0.2.100 [it]=192.0.2.130
        [st]=192.0.2.161 [st_mail]=192.0.2.165 [rl]=192.0.2.177 [rl_file]=192.0.2.178
        [sc]=198.51.100.130 [nt]=203.0.113.200
    )
    declare -A R=(
        [my]=192.0.2.1 [ms]=192.0.2.33 [lg]=192.0.2.65 [lm]=192.0.2.97 [it]=192.0.2.129
        [st]=192.0.2.174 [rl]=192.0.2.190 [sc]=198.51.100.129 [nt]=203.0.113.254
    )
    declare -A P=([my]=27 [ms]=28 [lg]=27 [lm]=28 [it]=27 [st]=28 [rl]=28 [sc]=26 [nt]=24)
    out_name=zones.pcap
else
    declare -A A=(
        [my]=2001:db8:0:110::10 [ms]=2001:db8:0:120::34 [lg]=2001:db8:0:210::70
        [lm]=2001:db8:0:220::100 [it]=2001:db8:0:310::130 [st]=2001:db8:0:320::161
        [rl]=2001:db8:0:330::177 [rl_file]=2001:db8:0:330::178
        [sc]=2001:db8:ffff:4::130 [nt]=2001:db8:ffff:20::200
    )
    declare -A R=(
        [my]=2001:db8:0:110::1 [ms]=2001:db8:0:120::1 [lg]=2001:db8:0:210::1
        [lm]=2001:db8:0:220::1 [it]=2001:db8:0:310::1 [st]=2001:db8:0:320::1
        [rl]=2001:db8:0:330::1 [sc]=2001:db8:ffff:4::1 [nt]=2001:db8:ffff:20::1
    )
    declare -A P=([my]=64 [ms]=64 [lg]=64 [lm]=64 [it]=64 [st]=64 [rl]=64 [sc]=64 [nt]=64)
    out_name=zones-v6.pcap
fi
# URL host part: IPv6 literals in brackets.
u() { if [[ $mode == 6 ]]; then echo "[$1]"; else echo "$1"; fi; }

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
    if [[ $mode == 4 ]]; then
        in_ns "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
        in_ns "$n" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    else
        # Interfaces created from now on: no DAD, no link-local, no RS/RA.
        for c in all default; do
            in_ns "$n" sysctl -qw "net.ipv6.conf.$c.accept_dad=0"
            in_ns "$n" sysctl -qw "net.ipv6.conf.$c.addr_gen_mode=1"
            in_ns "$n" sysctl -qw "net.ipv6.conf.$c.accept_ra=0"
            in_ns "$n" sysctl -qw "net.ipv6.conf.$c.router_solicitations=0"
        done
    fi
done
if [[ $mode == 4 ]]; then
    in_ns "$ns_rt" sysctl -qw net.ipv4.ip_forward=1
else
    in_ns "$ns_rt" sysctl -qw net.ipv6.conf.all.forwarding=1
fi

rt_ifs=()
router_ips=()
# host link: KEY [EXTRA_HOST_KEY...]: host address A[KEY] (and A[EXTRA]) on h0,
# router address R[KEY] on r-KEY; for IPv6 static neighbour entries both ways.
link_host() {
    local key=$1
    shift
    local n=${ns[$key]} rif=r-$key len=${P[$key]} extra
    local addrs=("${A[$key]}")
    for extra in "$@"; do
        [[ -n ${A[$extra]:-} ]] && addrs+=("${A[$extra]}")
    done
    ip link add name h0 netns "$n" type veth peer name "$rif" netns "$ns_rt"
    local nodad=()
    [[ $mode == 6 ]] && nodad=(nodad)
    local a
    for a in "${addrs[@]}"; do
        in_ns "$n" ip addr add "$a/$len" dev h0 "${nodad[@]}"
    done
    in_ns "$n" ip link set dev h0 gso_max_segs 1
    in_ns "$n" ip link set h0 up
    in_ns "$n" ip route add default via "${R[$key]}"
    in_ns "$ns_rt" ip addr add "${R[$key]}/$len" dev "$rif" "${nodad[@]}"
    in_ns "$ns_rt" ip link set "$rif" up
    if [[ $mode == 6 ]]; then
        local hmac rmac
        hmac=$(in_ns "$n" cat /sys/class/net/h0/address)
        rmac=$(in_ns "$ns_rt" cat "/sys/class/net/$rif/address")
        in_ns "$n" ip -6 neigh replace "${R[$key]}" lladdr "$rmac" dev h0 nud permanent
        for a in "${addrs[@]}"; do
            in_ns "$ns_rt" ip -6 neigh replace "$a" lladdr "$hmac" dev "$rif" nud permanent
        done
        router_ips+=("${R[$key]}/128")
    else
        router_ips+=("${R[$key]}")
    fi
    rt_ifs+=("$rif")
}
link_host my
link_host ms
link_host lg
link_host lm
link_host it
link_host st st_mail
link_host rl rl_file
link_host sc
link_host nt

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
http sc "${A[sc]}" 8080 # sec_proxy, I1 port
http sc "${A[sc]}" 8081 # sec_proxy, not an I1 port
http st "${A[st]}" 3389 # screen transfer, L3 port (HTTP stands in for RDP)
http st "${A[st]}" 80   # screen transfer, not an L3 port
http lm "${A[lm]}" 443  # LGWAN server, L5 port (plain HTTP)
http nt "${A[nt]}" 80   # outside web server
[[ $mode == 6 ]] && http rl "${A[rl_file]}" 443 # relay_file, L5p port (IPv6 only)
# One-shot TCP listeners (SMTP-like) and a UDP sink, OpenBSD nc.
tcp_once() { # KEY ADDR PORT
    ip netns exec "${ns[$1]}" timeout 60 nc -l "$2" "$3" </dev/null >/dev/null &
    pids+=($!)
}
tcp_once lm "${A[lm]}" 25 # lgwan_mail
[[ $mode == 4 ]] && tcp_once rl "${A[rl]}" 25 # relay_mail (IPv4 only: I5)
ip netns exec "${ns[st]}" timeout 60 nc -u -l "${A[st]}" 3389 </dev/null >/dev/null &
pids+=($!)

listening() { # KEY PROTO(t|u) PORT
    in_ns "${ns[$1]}" ss -H"l$2n" "sport = :$3" | grep -q .
}
all_listening() {
    listening sc t 8080 && listening sc t 8081 && listening st t 3389 && listening st t 80 &&
        listening lm t 443 && listening nt t 80 && listening lm t 25 && listening st u 3389 &&
        if [[ $mode == 4 ]]; then listening rl t 25; else listening rl t 443; fi
}
for _ in $(seq 100); do
    all_listening && break
    sleep 0.1
done
if [[ $mode == 6 ]]; then
    # Let the unsolicited MLD reports for the new addresses (2 per group, within
    # about 1 s at the default interval) finish before recording.
    sleep 3
fi

pcap_tmp="$work/$out_name"
start_tcpdump "$ns_tap" "$pcap_tmp"

on() { local k=$1; shift; in_ns "${ns[$k]}" timeout 10 "$@"; }
get() { on "$1" curl -sS -o /dev/null --max-time 5 "${@:2}"; }

echo "recording IPv$mode traffic..." >&2
# ---- (a) allowed flows ----
# A1 rule I1: internet-zone terminal -> security-cloud proxy :8080.
get it "http://$(u "${A[sc]}"):8080/"
# A2 rule L3: LGWAN terminal -> screen-transfer server :3389 (TCP).
get lg "http://$(u "${A[st]}"):3389/"
# A3 rule L3u: LGWAN terminal -> screen-transfer server :3389 (UDP).
printf 'zonewatch-l3u\n' | on lg nc -u -w 1 -s "${A[lg]}" "${A[st]}" 3389 || true
# A4 rule L5: file sanitiser -> LGWAN server :443.
get rl --interface "${A[rl_file]}" "http://$(u "${A[lm]}"):443/"
# A5 rule L4: mail text-ification gateway -> LGWAN mail :25.
printf 'HELO relay.example\r\nQUIT\r\n' | on rl nc -N -w 2 -s "${A[rl]}" "${A[lm]}" 25
if [[ $mode == 4 ]]; then
    # A6 rule I5: internet-zone mail server -> mail text-ification gateway :25.
    printf 'HELO mail.example\r\nQUIT\r\n' | on st nc -N -w 2 -s "${A[st_mail]}" "${A[rl]}" 25
else
    # A6 (IPv6) rule L5p: LGWAN terminal pulls from the file sanitiser :443.
    get lg "http://$(u "${A[rl_file]}"):443/"
fi
# ---- (b) violations ----
# V1 mynumber.term -> internet HTTP (critical).
get my "http://$(u "${A[nt]}")/"
# V2 lgwan.term -> internet HTTP, bypassing screen transfer (critical).
get lg "http://$(u "${A[nt]}")/"
# V3 inet.term -> mynumber.srv, ICMP / ICMPv6 echo (critical).
on it ping "-$mode" -n -q -c 2 -i 0.5 "${A[ms]}" >/dev/null
# V4 lgwan.term -> screen-transfer server on a port L3 does not allow (high).
get lg "http://$(u "${A[st]}"):80/"
# V5 inet.term -> internet directly, bypassing the proxy (high).
get it "http://$(u "${A[nt]}")/"
# V6 inet.term -> security-cloud proxy on a port I1 does not allow (medium).
get it "http://$(u "${A[sc]}"):8081/"
sleep 1

stop_tcpdump

cp "$pcap_tmp" "$outdir/$out_name"
chmod 0644 "$outdir/$out_name"
echo "wrote $outdir/$out_name" >&2
[[ $mode == 4 ]] && derive_vlan
exit 0
