# Shared by the capture recording scripts (sourced, not run): namespaces that are
# always deleted, a capture veth fed by tc mirroring, and tcpdump on it.
#
# After sourcing: $work (scratch dir), pids (background processes to stop),
# in_ns NS CMD..., and an EXIT/INT/TERM trap that stops the processes, deletes
# every namespace added with ns_add (their veths go with them) and $work.

work=$(mktemp -d)
pids=()
all_ns=()

in_ns() { local n=$1; shift; ip netns exec "$n" "$@"; }

netns_cleanup() {
    local rc=$?
    set +e
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null
    done
    for n in "${all_ns[@]}"; do
        ip netns del "$n" 2>/dev/null
    done
    rm -rf "$work"
    exit "$rc"
}
trap netns_cleanup EXIT INT TERM

# ns_add NS...: create namespaces with loopback up (deleted on exit).
ns_add() {
    local n
    for n in "$@"; do
        ip netns add "$n"
        all_ns+=("$n")
        in_ns "$n" ip link set lo up
    done
}

# capture_link ROUTER_NS TAP_NS: veth cap0 (router side) <-> cap1 (tap side),
# no addresses and no IPv6, so neither end sends anything of its own.
capture_link() {
    ip link add name cap0 netns "$1" type veth peer name cap1 netns "$2"
    in_ns "$1" sysctl -qw net.ipv6.conf.cap0.disable_ipv6=1
    in_ns "$2" sysctl -qw net.ipv6.conf.cap1.disable_ipv6=1
    in_ns "$1" ip link set cap0 up
    in_ns "$2" ip link set cap1 up
}

# mirror_if ROUTER_NS IFACE SRC...: copy to cap0 everything entering IFACE, and of
# what leaves it only ARP and packets from the router's own addresses SRC (IPv4
# a.b.c.d, or IPv6 prefixes such as 2001:db8:1::1/128 and fe80::/10), so a
# forwarded packet is recorded once, as a SPAN of the hosts' ports would show it.
# (tc clsact + u32 "match all": this kernel has no matchall classifier.)
mirror_if() {
    local rns=$1 rif=$2 src
    shift 2
    local mirror=(action mirred egress mirror dev cap0)
    in_ns "$rns" tc qdisc add dev "$rif" clsact
    in_ns "$rns" tc filter add dev "$rif" ingress protocol all u32 match u32 0 0 "${mirror[@]}"
    in_ns "$rns" tc filter add dev "$rif" egress protocol arp u32 match u32 0 0 "${mirror[@]}"
    for src in "$@"; do
        if [[ $src == *:* ]]; then
            in_ns "$rns" tc filter add dev "$rif" egress protocol ipv6 u32 match ip6 src "$src" "${mirror[@]}"
        else
            in_ns "$rns" tc filter add dev "$rif" egress protocol ip u32 match ip src "$src/32" "${mirror[@]}"
        fi
    done
}

# start_tcpdump TAP_NS FILE [IFACE]: record IFACE (default cap1) to FILE; returns once
# tcpdump listens.
start_tcpdump() {
    ip netns exec "$1" tcpdump -i "${3:-cap1}" -n -s 0 -U -w "$2" 2>"$work/tcpdump.log" &
    tcpdump_pid=$!
    pids+=("$tcpdump_pid")
    for _ in $(seq 50); do
        grep -q "listening on" "$work/tcpdump.log" && break
        sleep 0.1
    done
    sleep 0.5
}

# stop_tcpdump: flush and stop the recording.
stop_tcpdump() {
    kill -INT "$tcpdump_pid"
    wait "$tcpdump_pid" || true
    cat "$work/tcpdump.log" >&2
}
