#!/usr/bin/env bash
# Record trunk-vlan.pcap and trunk-untagged.pcap: what a sensor on a router-on-a-stick
# trunk mirror sees (issue #12 point 2; ground truth in captures/README.md).
#
# Usage: sudo captures/record-trunk.sh [OUTDIR]   (OUTDIR defaults to this directory)
#
# A router namespace with one link per segment, each host on its own link:
#   zw-tmy-PID  192.0.2.10/27     mynumber.term  VLAN 110 on the trunk   curl, ping
#   zw-tlg-PID  192.0.2.100/28    lgwan.srv      VLAN 220 on the trunk   sshd :22, HTTP :8080
#   zw-tnt-PID  203.0.113.200/24  internet       VLAN 340 on the trunk   hydra, nmap
# Every frame ENTERING a router link is mirrored (tc clsact ingress + mirred) to that
# link's own capture veth and recorded there, so each file holds the frames of one
# segment. On a trunk each such frame carries its segment's VLAN: a routed connection's
# two directions are tagged differently. The kernel here has no 8021q module, so the
# tags are added afterwards, by vlan-tag.py (this directory), which inserts the 4 bytes
# and changes nothing else. (tcprewrite 4.4.3 `--enet-vlan=add` also recomputes the TCP
# checksums that veth offload leaves partial in a capture, and rewrites the source MAC of
# IPv6 multicast frames, so its output is not the same frames with a tag.) The per-link
# files are merged by time (mergecap) twice: untagged, and each tagged with its link's VLAN.
#
# Traffic (every sender bounded in count and time):
#   1. curl x3: 192.0.2.10 -> 192.0.2.100:8080 (mynumber -> lgwan: critical);
#   2. hydra: 203.0.113.200 -> 192.0.2.100:22, 30 passwords, 4 tasks, all failing;
#   3. nmap -sS -p 1-200: 203.0.113.200 -> 192.0.2.10 (a port scan into My Number);
#   4. ping x2: 192.0.2.10 -> 203.0.113.200.
#
# Needs: iproute2 tcpdump curl python3 hydra nmap openssh-server wireshark-common (mergecap)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$here}
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "record-trunk.sh: must run as root (network namespaces)" >&2; exit 1; }
for t in ip tc tcpdump curl python3 hydra nmap ssh-keygen mergecap ss; do
    command -v "$t" >/dev/null || { echo "record-trunk.sh: $t is missing (make capture-deps)" >&2; exit 1; }
done
sshd_bin=/usr/sbin/sshd
[[ -x $sshd_bin ]] || { echo "record-trunk.sh: missing sshd (openssh-server)" >&2; exit 1; }

# shellcheck source=netns-lib.sh
source "$here/netns-lib.sh"
made_run_sshd=0
trunk_cleanup() {
    local rc=$?
    set +e
    [[ -f $work/sshd.pid ]] && kill "$(cat "$work/sshd.pid")" 2>/dev/null
    [[ $made_run_sshd == 1 ]] && rmdir /run/sshd 2>/dev/null
    (exit "$rc")
    netns_cleanup
}
trap trunk_cleanup EXIT INT TERM

R=zw-trt-$$
TAP=zw-ttap-$$
MY=zw-tmy-$$
LG=zw-tlg-$$
NT=zw-tnt-$$
ns_add "$R" "$TAP" "$MY" "$LG" "$NT"
for n in "${all_ns[@]}"; do
    in_ns "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    in_ns "$n" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
done
in_ns "$R" sysctl -qw net.ipv4.ip_forward=1

# segment NAME NS HOST/LEN ROUTER VLAN: the host's veth h0 <-> r-NAME in the router, and
# the capture veth m-NAME (router) <-> t-NAME (tap) fed by an ingress mirror of r-NAME.
segs=()
declare -A vlan_of
segment() {
    local name=$1 n=$2 addr=$3 raddr=$4 vlan=$5
    ip link add name h0 netns "$n" type veth peer name "r-$name" netns "$R"
    in_ns "$n" ip addr add "$addr" dev h0
    in_ns "$n" ip link set dev h0 gso_max_segs 1
    in_ns "$n" ip link set h0 up
    in_ns "$n" ip route add default via "$raddr"
    in_ns "$R" ip addr add "$raddr/${addr#*/}" dev "r-$name"
    in_ns "$R" ip link set "r-$name" up
    ip link add name "m-$name" netns "$R" type veth peer name "t-$name" netns "$TAP"
    in_ns "$R" ip link set "m-$name" up
    in_ns "$TAP" ip link set "t-$name" up
    in_ns "$R" tc qdisc add dev "r-$name" clsact
    in_ns "$R" tc filter add dev "r-$name" ingress protocol all u32 match u32 0 0 \
        action mirred egress mirror dev "m-$name"
    segs+=("$name")
    vlan_of[$name]=$vlan
}
segment my "$MY" 192.0.2.10/27 192.0.2.1 110
segment lg "$LG" 192.0.2.100/28 192.0.2.97 220
segment nt "$NT" 203.0.113.200/24 203.0.113.254 340

# Services on the LGWAN server: sshd (nobody can log in) and a small HTTP server.
ssh-keygen -q -t ed25519 -N '' -f "$work/host_ed25519" -C zonewatch-capture
if [[ ! -d /run/sshd ]]; then mkdir -m 0755 /run/sshd; made_run_sshd=1; fi
cat >"$work/sshd_config" <<EOF
Port 22
ListenAddress 192.0.2.100
HostKey $work/host_ed25519
PidFile $work/sshd.pid
UsePAM no
PermitRootLogin no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication no
AllowUsers nosuchuser-zw
MaxStartups 64
EOF
in_ns "$LG" "$sshd_bin" -f "$work/sshd_config" -E "$work/sshd.log"
mkdir -p "$work/www" && echo "LGWAN intranet" >"$work/www/index.html"
ip netns exec "$LG" timeout 300 python3 -m http.server 8080 --bind 192.0.2.100 \
    --directory "$work/www" >"$work/http.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    in_ns "$LG" ss -Htln "sport = :22" | grep -q . && in_ns "$LG" ss -Htln "sport = :8080" | grep -q . && break
    sleep 0.1
done

# One tcpdump per segment, each ready before any traffic.
declare -A dump_pid
for s in "${segs[@]}"; do
    ip netns exec "$TAP" tcpdump -i "t-$s" -n -s 0 -U -w "$work/$s.pcap" 2>"$work/$s.log" &
    dump_pid[$s]=$!
    pids+=($!)
done
for s in "${segs[@]}"; do
    for _ in $(seq 100); do grep -q "listening on" "$work/$s.log" && break; sleep 0.1; done
done
sleep 0.5

on() { local n=$1 t=$2; shift 2; in_ns "$n" timeout "$t" "$@"; }
for _ in 1 2 3; do on "$MY" 10 curl -s -o /dev/null http://192.0.2.100:8080/; sleep 0.2; done
printf '%s\n' 123456 password 12345678 qwerty 123456789 12345 1234 111111 1234567 dragon \
    123123 baseball abc123 football monkey letmein 696969 shadow master 666666 \
    qwertyuiop 123321 mustang 1234567890 michael 654321 superman 1qaz2wsx 7777777 admin \
    >"$work/passwords.txt"
(cd "$work" && on "$NT" 120 hydra -I -l admin -P "$work/passwords.txt" -t 4 ssh://192.0.2.100 \
    >"$work/hydra.log" 2>&1) || true
on "$NT" 60 nmap -sS -p 1-200 -n -T4 --max-retries 1 192.0.2.10 >"$work/nmap.log" 2>&1 || true
on "$MY" 10 ping -c 2 -i 0.2 -W 1 203.0.113.200 >/dev/null || true
sleep 1

for s in "${segs[@]}"; do
    kill -INT "${dump_pid[$s]}"
    wait "${dump_pid[$s]}" || true
    cat "$work/$s.log" >&2
    python3 "$here/vlan-tag.py" "${vlan_of[$s]}" "$work/$s.pcap" "$work/$s-vlan.pcap"
done
(cd "$work" && mergecap -F pcap -w "$out/trunk-untagged.pcap" "${segs[@]/%/.pcap}" &&
    mergecap -F pcap -w "$out/trunk-vlan.pcap" "${segs[@]/%/-vlan.pcap}")
echo "hydra: $(grep -c 'Failed password' "$work/sshd.log" || true) failed passwords in the sshd log" >&2
echo "wrote $out/trunk-untagged.pcap and $out/trunk-vlan.pcap" >&2
