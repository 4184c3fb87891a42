#!/usr/bin/env bash
# Whole-process benchmark behind `make bench`: `zonewatch replay` against
# `tcpdump -r F -w /dev/null` on two generated captures (IMIX and 64-byte frames).
# See benches/README.md. Writes bench-data/results.md and prints it.
#
# Environment:
#   BENCH_PACKETS  packets per file (default 10000000)
#   BENCH_FLOWS    concurrent flows in the generated files (default min(500000, packets/20))
#   BENCH_SEED     generator seed (default 1)
#   BENCH_RUNS     hyperfine runs per command (default 5)
set -euo pipefail

die() {
    echo "bench: $*" >&2
    exit 1
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"
}

is_count() {
    [[ "$1" =~ ^[1-9][0-9]*$ ]]
}

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKETS="${BENCH_PACKETS:-10000000}"
is_count "$PACKETS" || die "BENCH_PACKETS must be a positive integer, got '$PACKETS'"
default_flows=$((PACKETS / 20))
((default_flows > 500000)) && default_flows=500000
((default_flows < 1)) && default_flows=1
FLOWS="${BENCH_FLOWS:-$default_flows}"
is_count "$FLOWS" || die "BENCH_FLOWS must be a positive integer, got '$FLOWS'"
SEED="${BENCH_SEED:-1}"
[[ "$SEED" =~ ^[0-9]+$ ]] || die "BENCH_SEED must be a non-negative integer, got '$SEED'"
RUNS="${BENCH_RUNS:-5}"
is_count "$RUNS" || die "BENCH_RUNS must be a positive integer, got '$RUNS'"

need cargo "install Rust from https://rustup.rs"
need hyperfine "install it (apt-get install hyperfine, or cargo install hyperfine)"
need tcpdump "install it (apt-get install tcpdump)"
need python3 "install it (apt-get install python3); it reads hyperfine's JSON and zonewatch's summary"
[[ -x /usr/bin/time ]] && /usr/bin/time -v true >/dev/null 2>&1 ||
    die "GNU time (/usr/bin/time -v) not found: install it (apt-get install time); it measures peak RSS"

echo "bench: cargo build --release -p zonewatch -p zonewatch-gen" >&2
cargo build --release -p zonewatch -p zonewatch-gen
# pyjson FILE EXPR: print a Python expression over the JSON document `d` read from FILE
# ('-' = stdin); a list prints one tab-separated line per element.
pyjson() {
    python3 -c '
import json, os, sys
d = json.load(sys.stdin if sys.argv[1] == "-" else open(sys.argv[1]))
r = eval(sys.argv[2])
print("\n".join("\t".join(map(str, x)) for x in r) if isinstance(r, list) else r)
' "$1" "$2"
}

target_dir="$(cargo metadata --format-version 1 --no-deps | pyjson - 'd["target_directory"]')"
ZW="$target_dir/release/zonewatch"
GEN="$target_dir/release/zonewatch-gen"
[[ -x "$ZW" ]] || die "$ZW missing after the build"
[[ -x "$GEN" ]] || die "$GEN missing after the build"

OUT=bench-data
mkdir -p "$OUT"
PROFILES=(imix small)

# ---- generate the captures (once; the name carries every generator input)
declare -A FILE
for prof in "${PROFILES[@]}"; do
    f="$OUT/$prof-p$PACKETS-c$FLOWS-s$SEED.pcap"
    FILE[$prof]="$f"
    if [[ ! -s "$f" || ! -s "$f.txt" ]]; then
        echo "bench: generating $f" >&2
        "$GEN" --out "$f.tmp" --packets "$PACKETS" --profile "$prof" \
            --concurrent-flows "$FLOWS" --seed "$SEED" >"$f.txt.tmp"
        mv "$f.tmp" "$f"
        mv "$f.txt.tmp" "$f.txt"
    fi
    cat "$f.txt" >&2
done

# ---- warm the page cache (and say so if the files cannot all stay there)
total_kib=0
for prof in "${PROFILES[@]}"; do
    total_kib=$((total_kib + $(stat -c %s "${FILE[$prof]}") / 1024))
done
avail_kib="$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)"
if ((total_kib * 5 / 4 > avail_kib)); then
    echo "bench: WARNING: files ($((total_kib / 1024)) MiB) may not stay in the page cache" \
        "($((avail_kib / 1024)) MiB available); runs may read from disk" >&2
fi

q() { printf '%q' "$1"; }
rss_of() { awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$1"; }

MD="$OUT/results.md"
MD_TMP="$MD.tmp"
{
    echo "# zonewatch bench results"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- machine: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores," \
        "$((avail_kib / 1024 / 1024)) GiB available, kernel $(uname -r)," \
        "load average at start $(cut -d' ' -f1-3 /proc/loadavg) (figures mean little above ~0.5)"
    echo "- zonewatch: $(git describe --always --dirty 2>/dev/null || echo unknown);" \
        "$(tcpdump --version 2>&1 | head -n1); $(hyperfine --version)"
    echo "- method: file in page cache, \`hyperfine -N --warmup 1 --runs $RUNS\`, one invocation" \
        "per file; ratio = tcpdump median / command median (> 1 = faster than tcpdump);" \
        "peak RSS from one \`/usr/bin/time -v\` run"
    echo
    echo "## Files"
    echo
    echo "| profile | file | packets | size MiB | mean frame B | distinct flows | concurrent flows |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    for prof in "${PROFILES[@]}"; do
        f="${FILE[$prof]}"
        mean="$(sed -n 's/.*mean frame \([0-9.]*\) B.*/\1/p' "$f.txt")"
        distinct="$(sed -n 's/.*distinct flows \([0-9]*\) .*/\1/p' "$f.txt")"
        echo "| $prof | \`$(basename "$f")\` | $PACKETS | $(($(stat -c %s "$f") / 1048576)) | $mean | $distinct | $FLOWS |"
    done
    echo
    echo "## Results"
    echo
    echo "| profile | command | median s | min–max s | tcpdump/this | Mpps | peak RSS MiB | target | packets seen, drops |"
    echo "|---|---|---:|---:|---:|---:|---:|---|---|"
} >"$MD_TMP"

notes=()
for prof in "${PROFILES[@]}"; do
    f="${FILE[$prof]}"
    cat "$f" >/dev/null
    json="$OUT/hyperfine-$prof.json"
    echo "bench: hyperfine on $f" >&2
    hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$json" \
        -n tcpdump "tcpdump -r $(q "$f") -w /dev/null" \
        -n "zonewatch -w 1" "$(q "$ZW") replay -q -w 1 $(q "$f")" \
        -n "zonewatch -w 2" "$(q "$ZW") replay -q -w 2 $(q "$f")"

    base="$(pyjson "$json" 'next((r["median"] for r in d["results"] if r["command"] == "tcpdump"), "")')"
    [[ -n "$base" ]] || die "no tcpdump result in $json"

    # Peak RSS, one run each; the zonewatch runs also write a summary to check the count.
    /usr/bin/time -v -o "$OUT/time-$prof-tcpdump.txt" tcpdump -r "$f" -w /dev/null 2>/dev/null
    declare -A RSS=([tcpdump]="$(rss_of "$OUT/time-$prof-tcpdump.txt")")
    declare -A SEEN=([tcpdump]="–")
    for w in 1 2; do
        t="$OUT/time-$prof-w$w.txt"
        s="$OUT/summary-$prof-w$w.json"
        /usr/bin/time -v -o "$t" "$ZW" replay -q -w "$w" --summary "$s" "$f" ||
            die "zonewatch replay -w $w failed on $f (see $t)"
        RSS["zonewatch -w $w"]="$(rss_of "$t")"
        seen="$(pyjson "$s" 'd.get("packets", "?")')"
        drops="$(pyjson "$s" 'sum(v for v in (d.get("drops") or {}).values() if isinstance(v, int))')"
        SEEN["zonewatch -w $w"]="$seen, $drops"
        if [[ "$seen" != "$PACKETS" || "$drops" != "0" ]]; then
            notes+=("WARNING: $prof, zonewatch -w $w saw $seen of $PACKETS packets with $drops drops ($s)")
        fi
    done

    if [[ "$prof" == imix ]]; then
        min_ratio=1.5
        target_text="≥ 1.5× faster"
    else
        min_ratio=0.8
        target_text="≤ 1.25× tcpdump's time"
    fi
    BASE="$base" N="$PACKETS" pyjson "$json" '[(r["command"], r["median"], r["min"], r["max"],
        float(os.environ["BASE"]) / r["median"], int(os.environ["N"]) / r["median"] / 1e6)
        for r in d["results"]]' |
        while IFS=$'\t' read -r cmd median min max ratio mpps; do
            if [[ "$cmd" == tcpdump ]]; then
                verdict="(baseline)"
            elif awk -v r="$ratio" -v m="$min_ratio" 'BEGIN { exit !(r >= m) }'; then
                verdict="$target_text: met"
            else
                verdict="$target_text: MISSED"
            fi
            printf '| %s | %s | %.3f | %.3f–%.3f | %.2f | %.2f | %s | %s | %s |\n' \
                "$prof" "$cmd" "$median" "$min" "$max" "$ratio" "$mpps" \
                "${RSS[$cmd]:-?}" "$verdict" "${SEEN[$cmd]:-?}"
        done >>"$MD_TMP"
    unset RSS SEEN
done

{
    echo
    echo "Targets: IMIX — zonewatch ≥ 1.5× faster than tcpdump (ratio ≥ 1.5);" \
        "64-byte frames — zonewatch ≤ 1.25× tcpdump's time (ratio ≥ 0.80)."
    echo
    echo "Peak RSS counts the pages of the mmap'd capture resident at the peak (file-backed" \
        "page cache, shared and reclaimable), not only heap: compare it with the file size."
    for n in ${notes[@]+"${notes[@]}"}; do
        echo
        echo "$n"
    done
} >>"$MD_TMP"
mv "$MD_TMP" "$MD"
echo
cat "$MD"
