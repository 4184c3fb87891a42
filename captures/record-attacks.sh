#!/usr/bin/env bash
# Record the attack captures (scans, sweeps, SSH brute force, floods) and two
# benign look-alikes from real tools between network namespaces placed at the
# addresses of the example site (rules/example-site.toml). Ground truth, checked
# with TShark: captures/README.md.
#
# Usage: sudo captures/record-attacks.sh [OUTDIR]   (default: this directory)
# Must run as root. Re-runnable: every namespace name carries this script's PID
# and everything (namespaces, servers, temp files) is removed on exit; every
# sending tool runs with a packet count and under `timeout`.
#
# IPv4 only: IPv6 is disabled in every namespace before any interface exists.
#
#   ns            address(es)                  zone (example site)  role
#   zw-aint-PID   203.0.113.66/28              internet             attacker (nmap, hping3)
#   zw-ams-PID    192.0.2.34/28                mynumber.srv         victim: sshd :22, TCP :25,
#                                                                   HTTP :80 :443, UDP :53 :123 :514
#   zw-ait-PID    192.0.2.130-139/27           inet.term            hydra (.130); curl clients
#   zw-asc-PID    198.51.100.130/26            sec_cloud (sec_proxy) HTTP :8080 (benign server)
#   zw-alg70-PID  192.0.2.70/27                lgwan.term           ARP sweeper; live host
#   zw-alg71/75/80/90-PID  192.0.2.71 .75 .80 .90/27  lgwan.term    live hosts of the sweeps
#   zw-art-PID    router: 203.0.113.78/28 (r-nt), 192.0.2.33/28 (r-ms), 192.0.2.129/27 (r-it),
#                 198.51.100.129/26 (r-sc), 192.0.2.65/27 (r-lg, to the hub)
#   zw-ahub-PID   a tc hub: the LGWAN terminal segment 192.0.2.64/27 (no Linux bridge here)
#   zw-atap-PID   tcpdump -i cap1: the router's mirror (netns-lib.sh mirror_if)
#   zw-ahtap-PID  tcpdump -i cap1: the hub's mirror (sweep-arp.pcap only)
#
# Router mirror as in record-zones.sh: every frame ENTERING a router interface,
# and of frames leaving it ARP and what the router itself sends, so a forwarded
# packet is recorded once. The hub is one namespace whose ports are veths: each
# frame entering a port is copied (tc u32 + mirred) to every other port and to
# the hub's capture veth, as a repeater hub would; this kernel has no bridge, no
# macvlan and no tc gact/pedit, only mirred.
#
# Spoofed sources (dos-syn-flood.pcap): hping3 --rand-source picks any IPv4
# address and this kernel has no tc pedit/NAT to rewrite it, so 20 bounded
# hping3 instances run at once, each with a fixed -a in 203.0.113.128/25 (the
# example site's internet zone); the router routes that /25 back to the attacker,
# whose kernel drops the victim's SYN-ACKs (not its addresses), so the victim's
# connections stay half-open as with real spoofing.
#
# benign-download.pcap is cut to 128 bytes per frame (editcap -s 128; original
# lengths kept) so a 20 MiB transfer stays a ~3 MB file.
#
# Needs: iproute2 tcpdump curl python3 nmap hping3 hydra openssh-server
#        tshark (editcap)
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "record-attacks.sh: must run as root (creates network namespaces)" >&2
    exit 1
fi
for tool in ip tc tcpdump curl python3 timeout ss nmap hping3 hydra ssh-keygen editcap; do
    command -v "$tool" >/dev/null || { echo "record-attacks.sh: missing tool: $tool" >&2; exit 1; }
done
sshd_bin=/usr/sbin/sshd
[[ -x $sshd_bin ]] || { echo "record-attacks.sh: missing tool: sshd (openssh-server)" >&2; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
outdir=${1:-$here}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

# ---- addresses ----
atk=203.0.113.66     # internet attacker
vic=192.0.2.34       # My Number server (victim)
itc=192.0.2.130      # internet-zone terminal (hydra; first curl client)
srv=198.51.100.130   # sec_proxy (benign HTTP server)
lg_hosts=(70 71 75 80 90) # live LGWAN terminals 192.0.2.X/27
spoof_net=203.0.113.128/25

ns_rt=zw-art-$$
ns_tap=zw-atap-$$
ns_hub=zw-ahub-$$
ns_htap=zw-ahtap-$$
ns_nt=zw-aint-$$
ns_ms=zw-ams-$$
ns_it=zw-ait-$$
ns_sc=zw-asc-$$
lg_ns() { echo "zw-alg$1-$$"; }

# shellcheck source=captures/netns-lib.sh
. "$here/netns-lib.sh"
# Stop the sshd we start (it daemonises into its own pid file) and remove the
# privilege-separation directory if we made it, then the library's cleanup.
made_run_sshd=0
attacks_cleanup() {
    local rc=$?
    set +e
    if [[ -f $work/ssh/sshd.pid ]]; then
        kill "$(cat "$work/ssh/sshd.pid")" 2>/dev/null
    fi
    [[ $made_run_sshd == 1 ]] && rmdir /run/sshd 2>/dev/null
    (exit "$rc")
    netns_cleanup
}
trap attacks_cleanup EXIT INT TERM

ns_add "$ns_rt" "$ns_tap" "$ns_hub" "$ns_htap" "$ns_nt" "$ns_ms" "$ns_it" "$ns_sc"
for h in "${lg_hosts[@]}"; do ns_add "$(lg_ns "$h")"; done
for n in "${all_ns[@]}"; do
    in_ns "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    in_ns "$n" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
    in_ns "$n" sysctl -qw net.ipv4.conf.all.rp_filter=0
    in_ns "$n" sysctl -qw net.ipv4.conf.default.rp_filter=0
done
in_ns "$ns_rt" sysctl -qw net.ipv4.ip_forward=1

router_ips=(203.0.113.78 192.0.2.33 192.0.2.129 198.51.100.129 192.0.2.65)
rt_ifs=()
# host_link NS RIF ADDR/LEN ROUTER_ADDR: veth h0 (in NS) <-> RIF (in the router).
host_link() {
    local n=$1 rif=$2 addr=$3 raddr=$4
    local len=${addr#*/}
    ip link add name h0 netns "$n" type veth peer name "$rif" netns "$ns_rt"
    in_ns "$n" ip addr add "$addr" dev h0
    in_ns "$n" ip link set dev h0 gso_max_segs 1
    in_ns "$n" ip link set h0 up
    in_ns "$n" ip route add default via "$raddr"
    in_ns "$ns_rt" ip addr add "$raddr/$len" dev "$rif"
    in_ns "$ns_rt" ip link set "$rif" up
    rt_ifs+=("$rif")
}
host_link "$ns_nt" r-nt "$atk/28" 203.0.113.78
host_link "$ns_ms" r-ms "$vic/28" 192.0.2.33
host_link "$ns_it" r-it "$itc/27" 192.0.2.129
host_link "$ns_sc" r-sc "$srv/26" 198.51.100.129
for i in $(seq 131 139); do in_ns "$ns_it" ip addr add "192.0.2.$i/27" dev h0; done
# Spoofed sources live "behind" the attacker: replies to them go there and die.
in_ns "$ns_rt" ip route add "$spoof_net" via "$atk"

# ---- the LGWAN terminal segment: a tc hub ----
ip link add name r-lg netns "$ns_rt" type veth peer name hp-rt netns "$ns_hub"
in_ns "$ns_rt" ip addr add 192.0.2.65/27 dev r-lg
in_ns "$ns_rt" ip link set r-lg up
rt_ifs+=(r-lg)
hub_ports=(hp-rt)
for h in "${lg_hosts[@]}"; do
    n=$(lg_ns "$h")
    ip link add name h0 netns "$n" type veth peer name "hp-$h" netns "$ns_hub"
    in_ns "$n" ip addr add "192.0.2.$h/27" dev h0
    in_ns "$n" ip link set dev h0 gso_max_segs 1
    in_ns "$n" ip link set h0 up
    in_ns "$n" ip route add default via 192.0.2.65
    hub_ports+=("hp-$h")
done
ip link add name hcap0 netns "$ns_hub" type veth peer name cap1 netns "$ns_htap"
in_ns "$ns_htap" ip link set cap1 up
in_ns "$ns_hub" ip link set hcap0 up
for p in "${hub_ports[@]}"; do in_ns "$ns_hub" ip link set "$p" up; done
for p in "${hub_ports[@]}"; do
    acts=()
    for q in "${hub_ports[@]}"; do
        [[ $q == "$p" ]] || acts+=(action mirred egress mirror dev "$q")
    done
    in_ns "$ns_hub" tc qdisc add dev "$p" clsact
    in_ns "$ns_hub" tc filter add dev "$p" ingress protocol all u32 match u32 0 0 \
        "${acts[@]}" action mirred egress redirect dev hcap0
done

capture_link "$ns_rt" "$ns_tap"
for rif in "${rt_ifs[@]}"; do
    mirror_if "$ns_rt" "$rif" "${router_ips[@]}"
done

# ---- services (each bounded by timeout even if cleanup never runs) ----
svc_time=900
mkdir -p "$work/www" "$work/ssh"
printf '<html><body>zonewatch example page</body></html>\n' >"$work/www/index.html"
head -c $((20 * 1024 * 1024)) /dev/urandom >"$work/www/big.bin"
http() { # NS ADDR PORT
    (cd "$work/www" && exec ip netns exec "$1" timeout "$svc_time" python3 -m http.server "$3" \
        --bind "$2" >>"$work/http.log" 2>&1) &
    pids+=($!)
}
http "$ns_ms" "$vic" 80
http "$ns_ms" "$vic" 443
http "$ns_sc" "$srv" 8080
# An SMTP-like banner on 25; UDP: 53 and 123 answer (echo), 514 swallows.
cat >"$work/svc.py" <<'EOF'
import socket, sys, threading
addr = sys.argv[1]
def smtp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 25)); s.listen(64)
    while True:
        c, _ = s.accept()
        try:
            c.sendall(b"220 mail.example ESMTP\r\n")
        except OSError:
            pass
        c.close()
def udp(port, answer):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((addr, port))
    while True:
        data, peer = u.recvfrom(2048)
        if answer and data:
            u.sendto(data, peer)
threading.Thread(target=smtp, daemon=True).start()
threading.Thread(target=udp, args=(123, True), daemon=True).start()
threading.Thread(target=udp, args=(514, False), daemon=True).start()
udp(53, True)
EOF
ip netns exec "$ns_ms" timeout "$svc_time" python3 "$work/svc.py" "$vic" >>"$work/svc.log" 2>&1 &
svc_pid=$!
pids+=("$svc_pid")

# sshd: temporary host key and config; nobody can log in (no such user, no root).
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host_ed25519" -C zonewatch-capture
if [[ ! -d /run/sshd ]]; then
    mkdir -m 0755 /run/sshd
    made_run_sshd=1
fi
cat >"$work/ssh/sshd_config" <<EOF
Port 22
ListenAddress $vic
HostKey $work/ssh/host_ed25519
PidFile $work/ssh/sshd.pid
UsePAM no
PermitRootLogin no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication no
AllowUsers nosuchuser-zw
MaxStartups 64
MaxAuthTries 6
LogLevel INFO
EOF
in_ns "$ns_ms" "$sshd_bin" -f "$work/ssh/sshd_config" -E "$work/ssh/sshd.log"

listening() { # NS PROTO(t|u) PORT
    in_ns "$1" ss -H"l$2n" "sport = :$3" | grep -q .
}
all_listening() {
    listening "$ns_ms" t 22 && listening "$ns_ms" t 25 && listening "$ns_ms" t 80 &&
        listening "$ns_ms" t 443 && listening "$ns_ms" u 53 && listening "$ns_ms" u 123 &&
        listening "$ns_ms" u 514 && listening "$ns_sc" t 8080
}
for _ in $(seq 100); do
    all_listening && break
    sleep 0.1
done
all_listening || { echo "record-attacks.sh: services did not start" >&2; exit 1; }

# record NAME TAP_NS CMD...: record one capture while CMD runs, then 1 s more.
record() {
    local name=$1 tap=$2
    shift 2
    echo "== $name" >&2
    start_tcpdump "$tap" "$work/$name"
    "$@"
    sleep 1
    stop_tcpdump
    cp "$work/$name" "$outdir/$name"
    chmod 0644 "$outdir/$name"
    echo "wrote $outdir/$name" >&2
}
on() { local n=$1 t=$2; shift 2; in_ns "$n" timeout "$t" "$@"; }
# The router's and hosts' ARP caches start empty in every capture.
flush_arp() {
    local n
    for n in "${all_ns[@]}"; do in_ns "$n" ip neigh flush all 2>/dev/null || true; done
}

nmap_common=(-n -T4 --max-retries 1 --reason)
scan_syn() { on "$ns_nt" 120 nmap -sS -p 1-1024 "${nmap_common[@]}" "$vic" | tee -a "$work/tools.log"; }
scan_connect() { on "$ns_nt" 120 nmap -sT -p 1-1024 "${nmap_common[@]}" "$vic" | tee -a "$work/tools.log"; }
scan_udp() {
    on "$ns_nt" 120 nmap -sU --top-ports 50 -n -T4 --max-retries 0 --host-timeout 60s --reason "$vic" |
        tee -a "$work/tools.log"
}
sweep_ping() {
    on "$ns_nt" 120 nmap -sn -PE --disable-arp-ping -n -T4 192.0.2.64/27 | tee -a "$work/tools.log"
    sleep 3 # the router's ARP for the dead addresses fails: ICMP host unreachable
}
sweep_arp() {
    on "$(lg_ns 70)" 120 nmap -sn -PR -n -T4 192.0.2.64/27 | tee -a "$work/tools.log"
}
bruteforce_ssh() {
    local pw=(123456 password 12345678 qwerty 123456789 12345 1234 111111 1234567 dragon
        123123 baseball abc123 football monkey letmein 696969 shadow master 666666
        qwertyuiop 123321 mustang 1234567890 michael 654321 superman 1qaz2wsx 7777777 admin)
    printf '%s\n' "${pw[@]}" >"$work/passwords.txt"
    : >"$work/ssh/sshd.log.mark"
    (cd "$work" && on "$ns_it" 180 hydra -I -l admin -P "$work/passwords.txt" -t 4 \
        "ssh://$vic" 2>&1 | tee -a "$work/tools.log") || true
    sleep 1
    echo "sshd log: $(grep -c 'Failed password' "$work/ssh/sshd.log" || true) 'Failed password'," \
        "$(grep -c 'Invalid user' "$work/ssh/sshd.log" || true) 'Invalid user' lines" >&2
    echo "sshd 'Failed password' per client port:" \
        "$(grep 'Failed password' "$work/ssh/sshd.log" | sed 's/.* port \([0-9]*\) .*/\1/' |
            sort | uniq -c | tr -s ' \n' ' ')" >&2
}
dos_syn() {
    local i hp=()
    for i in $(seq 0 19); do
        on "$ns_nt" 60 hping3 -q -S -p 80 -c 150 -i u20000 -a "203.0.113.$((130 + 6 * i))" "$vic" \
            >>"$work/hping.log" 2>&1 &
        hp+=($!)
    done
    for i in "${hp[@]}"; do wait "$i" || true; done
    sleep 2 # the victim's SYN-ACK retransmissions
}
dos_udp() { on "$ns_nt" 60 hping3 -q --udp -p 53 -c 3000 -i u500 "$vic" >>"$work/hping.log" 2>&1 || true; }
dos_icmp() { on "$ns_nt" 60 hping3 -q --icmp -c 3000 -i u500 "$vic" >>"$work/hping.log" 2>&1 || true; }
benign_download() {
    on "$ns_it" 120 curl -sS -o /dev/null --limit-rate 10M --max-time 60 \
        -w 'download: %{size_download} bytes in %{time_total} s\n' "http://$srv:8080/big.bin" >&2
}
benign_web() {
    local i c=()
    for i in $(seq 130 139); do
        local urls=()
        for _ in $(seq 30); do urls+=(-o /dev/null "http://$srv:8080/index.html"); done
        on "$ns_it" 60 curl -sS --interface "192.0.2.$i" --max-time 5 "${urls[@]}" &
        c+=($!)
    done
    for i in "${c[@]}"; do wait "$i"; done
}

flush_arp; record scan-nmap-syn.pcap "$ns_tap" scan_syn
flush_arp; record scan-nmap-connect.pcap "$ns_tap" scan_connect
flush_arp; record scan-nmap-udp.pcap "$ns_tap" scan_udp
flush_arp; record sweep-ping.pcap "$ns_tap" sweep_ping
flush_arp; record sweep-arp.pcap "$ns_htap" sweep_arp
flush_arp; record bruteforce-ssh.pcap "$ns_tap" bruteforce_ssh
# The floods hit UDP 53 closed: stop the UDP/SMTP services first.
kill "$svc_pid" 2>/dev/null || true
wait "$svc_pid" 2>/dev/null || true
flush_arp; record dos-udp-flood.pcap "$ns_tap" dos_udp
flush_arp; record dos-icmp-flood.pcap "$ns_tap" dos_icmp
flush_arp; record benign-web.pcap "$ns_tap" benign_web
flush_arp
start_tcpdump "$ns_tap" "$work/benign-download-full.pcap"
echo "== benign-download.pcap" >&2
benign_download
sleep 1
stop_tcpdump
editcap -F pcap -s 128 "$work/benign-download-full.pcap" "$outdir/benign-download.pcap"
chmod 0644 "$outdir/benign-download.pcap"
echo "wrote $outdir/benign-download.pcap (128 bytes per frame)" >&2
# Last: the victim retransmits SYN-ACKs to the spoofed sources for a minute
# after the flood, which would leak into any capture recorded after it.
flush_arp; record dos-syn-flood.pcap "$ns_tap" dos_syn
echo "hping3 (syn x20, udp, icmp):" >&2
grep 'packets transmitted' "$work/hping.log" | sort | uniq -c >&2
