#!/usr/bin/env bash
# Record one capture per MIC model (issue #19): real clients in network namespaces at
# the example site's addresses (rules/example-site.toml), planting every flow the
# guideline allows that the presets once judged wrongly (each must raise nothing) and
# every flow the presets once allowed too broadly (each must be a violation of the
# right severity). Ground truth: captures/README.md and tests/models.rs.
#
# Usage: sudo captures/record-models.sh [OUTDIR]   (OUTDIR defaults to this directory)
# Writes model-alpha.pcap, model-alpha-prime.pcap, model-beta.pcap, model-beta-prime.pcap.
#
# Topology (IPv4 only: IPv6 is off in every namespace, so the only noise is ARP): one
# namespace per segment, each on its own veth to the router zw-mrt-PID, which holds
# the first or last address of every block. tc mirrors every frame entering a router
# port, and of the frames leaving it only the router's own (as record-zones.sh), so a
# routed packet is recorded once. The first address of a segment is its primary, the
# source of clients that cannot choose one (ntpdig, smbclient, logger).
#
#   segment  block              router  hosts (zone; role in the example site)
#   my_t     192.0.2.0/27       .1      .5 terminal, .20 中間サーバー端末 (mynumber.term)
#   my_s     192.0.2.32/28      .33     .45 ntp_mynumber, .40 mynumber_update (mynumber.srv)
#   my_e     192.0.2.48/28      .62     .49 juki_cs, .50 linkage (mynumber.edge)
#   lg_t     192.0.2.64/27      .65     .70 terminal (lgwan.term)
#   lg_s     192.0.2.96/28      .110    .104 lgwan_vdi, .100 lgwan_mail, .101 file_drop,
#                                       .102 AD, .103 WSUS (lgwan.srv)
#   lg_e     192.0.2.112/28     .113    .114 lbo_gateway (lgwan.edge)
#   in_t     192.0.2.128/27     .129    .130 terminal (inet.term)
#   in_s     192.0.2.160/28     .174    .161 screen_transfer, .165 inet_mail,
#                                       .167 β' business system (inet.srv)
#   rl       192.0.2.176/28     .190    .178 relay_file, .177 relay_mail, .179 relay_handover
#   mg       192.0.2.224/28     .238    .226 a log collector shared by two tiers, .227 a
#                                       monitoring server polling two tiers (mgmt)
#   wan      198.51.100.0/26    .1      .10 tokutei, .20 chukan, .30 jlis_pf, .41 LGWAN
#                                       mail relay, .42 lgwan_ntp, .50 telework LGWAN-ASP
#   juki     198.51.100.64/27   .94     .70 都道府県サーバ (juki_net)
#   gov      198.51.100.96/27   .126    .100 標準準拠システム (gov_cloud)
#   sec      198.51.100.128/26  .190    .130 sec_proxy, .134 inet_ntp (sec_cloud)
#   cloud    203.0.113.0/26     .62     .10 SaaS tenant, .11 media relay (cloud_allow)
#   net      203.0.113.128/25   .254    .153 lbo_dns (dnsmasq), .180 lbo_pki (internet)
#   zw-mtap-PID  the capture port (tcpdump -i cap1)
#
# Clients: curl (HTTP on every TCP port but 25 and 445), nc (SMTP, UDP media and polls),
# smbclient (SMB), ntpdig (NTP), dig (DNS), logger (syslog). Servers: dnsmasq (DNS)
# and captures/model-server.py (HTTP/SMTP banners, NTP replies, UDP echo), each
# bounded by `timeout`. Every namespace is deleted on exit.
#
# Needs: iproute2 tcpdump curl netcat-openbsd python3 dnsmasq-base ntpsec-ntpdig
#        bind9-dnsutils smbclient bsdutils (logger)   (make capture-deps)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=${1:-$here}
mkdir -p "$outdir"
[ "$(id -u)" -eq 0 ] || { echo "record-models.sh: must run as root (network namespaces)" >&2; exit 1; }
for t in ip tc tcpdump curl nc python3 dnsmasq ntpdig dig smbclient logger timeout ss; do
    command -v "$t" >/dev/null || { echo "record-models.sh: $t is missing (make capture-deps)" >&2; exit 1; }
done
# shellcheck source=netns-lib.sh
source "$here/netns-lib.sh"

# segment -> "block-length router host..."
declare -A SEG=(
    [my_t]="27 192.0.2.1 192.0.2.5 192.0.2.20"
    [my_s]="28 192.0.2.33 192.0.2.45 192.0.2.40"
    [my_e]="28 192.0.2.62 192.0.2.49 192.0.2.50"
    [lg_t]="27 192.0.2.65 192.0.2.70"
    [lg_s]="28 192.0.2.110 192.0.2.104 192.0.2.100 192.0.2.101 192.0.2.102 192.0.2.103"
    [lg_e]="28 192.0.2.113 192.0.2.114"
    [in_t]="27 192.0.2.129 192.0.2.130"
    [in_s]="28 192.0.2.174 192.0.2.161 192.0.2.165 192.0.2.167"
    [rl]="28 192.0.2.190 192.0.2.178 192.0.2.177 192.0.2.179"
    [mg]="28 192.0.2.238 192.0.2.226 192.0.2.227"
    [wan]="26 198.51.100.1 198.51.100.10 198.51.100.20 198.51.100.30 198.51.100.41 198.51.100.42 198.51.100.50"
    [juki]="27 198.51.100.94 198.51.100.70"
    [gov]="27 198.51.100.126 198.51.100.100"
    [sec]="26 198.51.100.190 198.51.100.130 198.51.100.134"
    [cloud]="26 203.0.113.62 203.0.113.10 203.0.113.11"
    [net]="25 203.0.113.254 203.0.113.153 203.0.113.180"
)
# The ports each segment's server answers on.
declare -A PORTS=(
    [my_s]="udp:123"
    [my_e]="tcp:443"
    [lg_t]="tcp:445 udp:161"
    [lg_s]="tcp:445 tcp:443 tcp:3389"
    [in_s]="tcp:3389"
    [rl]="tcp:443 tcp:445"
    [mg]="udp:514"
    [in_t]="udp:161"
    [wan]="tcp:443 tcp:80 tcp:25 udp:123"
    [juki]="tcp:443 tcp:4444"
    [gov]="tcp:443 tcp:3389 tcp:445"
    [sec]="tcp:8080 udp:123"
    [cloud]="tcp:443 tcp:22 udp:3478"
    [net]="tcp:80"
)
segs=(my_t my_s my_e lg_t lg_s lg_e in_t in_s rl mg wan juki gov sec cloud net)

R=zw-mrt-$$
TAP=zw-mtap-$$
ns_add "$R" "$TAP"
for s in "${segs[@]}"; do ns_add "zw-m$s-$$"; done
for n in "${all_ns[@]}"; do
    in_ns "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    in_ns "$n" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
done
in_ns "$R" sysctl -qw net.ipv4.ip_forward=1

router_ips=()
for s in "${segs[@]}"; do
    read -r len rip hosts <<<"${SEG[$s]}"
    n=zw-m$s-$$
    ip link add name h0 netns "$n" type veth peer name "r-$s" netns "$R"
    for a in $hosts; do in_ns "$n" ip addr add "$a/$len" dev h0; done
    in_ns "$n" ip link set dev h0 gso_max_segs 1
    in_ns "$n" ip link set h0 up
    in_ns "$n" ip route add default via "$rip"
    in_ns "$R" ip addr add "$rip/$len" dev "r-$s"
    in_ns "$R" ip link set "r-$s" up
    router_ips+=("$rip")
done
capture_link "$R" "$TAP"
for s in "${segs[@]}"; do mirror_if "$R" "r-$s" "${router_ips[@]}"; done

# ---- servers (bounded by timeout even if cleanup never runs) ----
lifetime=240
for s in "${!PORTS[@]}"; do
    read -r _ _ hosts <<<"${SEG[$s]}"
    # shellcheck disable=SC2086
    ip netns exec "zw-m$s-$$" timeout "$lifetime" python3 "$here/model-server.py" "$lifetime" "${hosts// /,}" ${PORTS[$s]} \
        >"$work/server-$s.log" 2>&1 &
    pids+=($!)
done
ip netns exec "zw-mnet-$$" timeout "$lifetime" dnsmasq --no-daemon --conf-file=/dev/null --user=root \
    --listen-address=203.0.113.153 --bind-interfaces --no-resolv --no-hosts \
    --address=/tenant.cloud.example/203.0.113.10 --pid-file="$work/dnsmasq.pid" 2>"$work/dnsmasq.log" &
pids+=($!)
for s in "${!PORTS[@]}"; do
    for _ in $(seq 100); do grep -q ready "$work/server-$s.log" 2>/dev/null && break; sleep 0.1; done
    grep -q ready "$work/server-$s.log" || { cat "$work/server-$s.log" >&2; echo "record-models.sh: server $s did not start" >&2; exit 1; }
done
for _ in $(seq 100); do in_ns "zw-mnet-$$" ss -Hlun "sport = :53" | grep -q . && break; sleep 0.1; done

# ---- clients: in SEGMENT's namespace, each bounded by timeout ----
on() { local s=$1; shift; in_ns "zw-m$s-$$" timeout 10 "$@"; }
web() { on "$1" curl -sS -o /dev/null --max-time 5 --interface "$2" "http://$3:$4/" || true; }  # SEG SRC DST PORT
smtp() { printf 'HELO zonewatch.example\r\nQUIT\r\n' | on "$1" nc -N -w 2 -s "$2" "$3" 25 >/dev/null || true; }
smb() { on "$1" smbclient -L "//$2" -N -p 445 -t 3 >/dev/null 2>&1 || true; }           # from the primary
ntp() { on "$1" ntpdig -t 2 "$2" >/dev/null 2>&1 || true; }                              # from the primary
udp() { printf 'zonewatch %s\n' "$4" | on "$1" nc -u -w 1 -s "$2" "$3" "$4" >/dev/null || true; }  # SEG SRC DST PORT
syslog() { on "$1" logger --udp --server "$2" --port 514 "zonewatch model capture" || true; }

# Flows every model judges alike (ground truth: captures/README.md).
common_flows() {
    # -- compliant: nothing may alert --
    web my_t 192.0.2.20 198.51.100.20 443      # A3t 中間サーバー端末 -> 中間サーバー
    web my_e 192.0.2.50 198.51.100.10 443      # A4  linkage -> 特定通信 (eLTAX)
    web my_t 192.0.2.5 198.51.100.100 443      # A5  terminal -> 標準準拠システム (site port)
    web my_e 192.0.2.49 198.51.100.70 443      # A1  CS -> 都道府県サーバ (site port)
    web juki 198.51.100.70 192.0.2.49 443      # A1r 都道府県サーバ -> CS
    web my_s 192.0.2.40 198.51.100.30 80       # A6  My Number WSUS -> J-LIS platform, http
    web lg_s 192.0.2.103 198.51.100.30 80      # L1  LGWAN WSUS -> J-LIS platform, http
    web lg_t 192.0.2.70 198.51.100.50 80       # L1  terminal -> LGWAN-ASP on http
    smtp lg_s 192.0.2.100 198.51.100.41        # L1m LGWAN mail server -> LGWAN mail relay
    web in_t 192.0.2.130 192.0.2.178 443       # I6  upload into the file sanitiser
    smb rl 192.0.2.101                         # L5  sanitiser (.178) -> drop share
    ntp my_t 192.0.2.45                        # intra: terminal -> zone time server
    ntp my_s 198.51.100.42                     # N1  zone time server (.45) -> LGWAN time
    ntp lg_t 198.51.100.42                     # L1u terminal -> LGWAN time
    ntp in_t 198.51.100.134                    # N3  terminal -> security-cloud time
    web in_t 192.0.2.130 198.51.100.130 8080   # I1  terminal -> security-cloud proxy
    # -- too broad before issue #19: each a violation --
    web my_e 192.0.2.49 198.51.100.70 4444     # CS on a port the site did not give: critical
    web my_e 192.0.2.50 198.51.100.50 443      # linkage -> telework LGWAN-ASP: critical
    web my_t 192.0.2.5 198.51.100.100 3389     # RDP to the government cloud: critical
    smb my_t 198.51.100.100                    # SMB to the government cloud: critical
    smb rl 192.0.2.102                         # sanitiser -> AD server, SMB: critical
    syslog my_t 192.0.2.226                    # My Number syslog to a shared collector: critical
    syslog in_t 192.0.2.226                    # internet-zone syslog to it: critical, and the
                                               # collector is a zone_bridge by paths
    smb wan 192.0.2.70                         # LGWAN (.10) -> a terminal, SMB: high
    smb rl 192.0.2.70                          # sanitiser (.178) -> a terminal, SMB: critical
    udp mg 192.0.2.227 192.0.2.70 161          # monitor polls an LGWAN terminal: high, and ...
    udp mg 192.0.2.227 192.0.2.130 161         # ... an internet-zone one: high, a zone_bridge
}

alpha_flows() {
    web lg_t 192.0.2.70 192.0.2.161 3389       # L3  screen transfer LGWAN -> internet side
}
alpha_prime_flows() {
    alpha_flows
    web lg_e 192.0.2.114 203.0.113.10 443      # A'1  breakout gateway -> SaaS
    udp lg_e 192.0.2.114 203.0.113.11 3478     # A'1u gateway -> Teams media relay
    on lg_e dig -b 192.0.2.114 @203.0.113.153 tenant.cloud.example +tries=1 +time=2 >/dev/null || true  # A'3
    web lg_e 192.0.2.114 203.0.113.180 80      # A'4  gateway OCSP / CRL
    web lg_t 192.0.2.70 203.0.113.10 443       # A'2t transparent breakout (option lbo_transparent)
    web lg_e 192.0.2.114 203.0.113.180 443     # gateway to the internet on https: critical
}
beta_flows() {
    web in_t 192.0.2.130 192.0.2.104 3389      # B1  screen transfer internet terminal -> LGWAN desktop
    smb lg_s 192.0.2.178                       # L5p LGWAN desktop (.104) fetches from the sanitiser
    web lg_s 192.0.2.104 192.0.2.179 443       # L6  LGWAN desktop -> hand-over server
    web lg_t 192.0.2.70 192.0.2.161 3389       # β has no L3: lgwan -> inet, high
}
beta_prime_flows() {
    beta_flows
    web in_t 192.0.2.130 203.0.113.10 443      # B'2  terminal -> SaaS (option saas)
    web in_s 192.0.2.167 203.0.113.10 443      # B'2s business system -> SaaS (option saas)
    web in_s 192.0.2.167 203.0.113.10 22       # business system -> SaaS on ssh: high
}

record() { # NAME FLOWS-FUNCTION
    local tmp="$work/$1"
    start_tcpdump "$TAP" "$tmp"
    echo "recording $1..." >&2
    common_flows
    "$2"
    sleep 1
    stop_tcpdump
    cp "$tmp" "$outdir/$1"
    chmod 0644 "$outdir/$1"
    echo "wrote $outdir/$1" >&2
}
record model-alpha.pcap alpha_flows
record model-alpha-prime.pcap alpha_prime_flows
record model-beta.pcap beta_flows
record model-beta-prime.pcap beta_prime_flows
exit 0
