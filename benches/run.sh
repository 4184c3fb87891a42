#!/usr/bin/env bash
# Whole-process benchmark behind `make bench`: `zonewatch replay` against
# `tcpdump -r F -w /dev/null` on generated captures (IMIX and 64-byte frames), plain and
# as a deployment runs it (rules, every detector, alerts written, metrics served; #18).
# See benches/README.md. Writes bench-data/results.md and prints it.
#
# Environment:
#   BENCH_PACKETS   packets per file (default 10000000)
#   BENCH_FLOWS     concurrent flows in the generated files (default min(500000, packets/20))
#   BENCH_SEED      generator seed (default 1)
#   BENCH_RUNS      hyperfine runs per command (default 5)
#   BENCH_PROFILES  generator profiles to run, space- or comma-separated, from
#                   "imix small" (default "imix small")
set -euo pipefail

BENCH_NAME=bench
# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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
PROFILES=()
for prof in ${BENCH_PROFILES:-imix small}; do
    [[ "$prof" == , ]] && continue
    prof="${prof%,}"
    prof="${prof#,}"
    case "$prof" in
    imix | small) ;;
    *) die "BENCH_PROFILES: unknown profile '$prof' (imix, small)" ;;
    esac
    [[ " ${PROFILES[*]-} " == *" $prof "* ]] || PROFILES+=("$prof")
done
((${#PROFILES[@]} > 0)) || die "BENCH_PROFILES names no profile"

need cargo "install Rust from https://rustup.rs"
need hyperfine "install it (apt-get install hyperfine, or cargo install hyperfine)"
need tcpdump "install it (apt-get install tcpdump)"
need python3 "install it (apt-get install python3); it reads hyperfine's JSON and zonewatch's summary"
if ! [[ -x /usr/bin/time ]] || ! /usr/bin/time -v true >/dev/null 2>&1; then
    die "GNU time (/usr/bin/time -v) not found: install it (apt-get install time); it measures peak RSS"
fi

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

# ---- rules files: rare violations (the generator's clients may reach its servers), the
# example site (most generated flows violate), and the example site with every detector
# off (the baseline of the worst-case target). The detector keys come from the registry
# in src/detect/mod.rs, so a new detector is turned off here too.
RULES_GEN=benches/rules-generated.toml
RULES_SITE=rules/example-site.toml
RULES_OFF="$OUT/example-site-detectors-off.toml"
[[ -s "$RULES_GEN" ]] || die "$RULES_GEN missing"
[[ -s "$RULES_SITE" ]] || die "$RULES_SITE missing"
grep -q '^[[:space:]]*\[detect' "$RULES_GEN" "$RULES_SITE" &&
    die "$RULES_GEN or $RULES_SITE has a [detect] table: the full-pipeline commands expect every detector on (the defaults)"
mapfile -t DETECTORS < <(sed -n '/^registry! {/,/^}/ s/^[[:space:]]*\([a-z_][a-z0-9_]*\) in [a-z_][a-z0-9_]*:.*/\1/p' src/detect/mod.rs)
((${#DETECTORS[@]} > 0)) || die "no detector keys found in the registry! of src/detect/mod.rs"
{
    cat "$RULES_SITE"
    echo
    echo "# Appended by benches/run.sh: every detector off (only separation violations)."
    for d in "${DETECTORS[@]}"; do
        echo
        echo "[detect.$d]"
        echo "enabled = false"
    done
} >"$RULES_OFF.tmp"
mv "$RULES_OFF.tmp" "$RULES_OFF"
"$ZW" check "$RULES_OFF" >/dev/null 2>&1 ||
    die "$RULES_OFF does not load: $("$ZW" check "$RULES_OFF" 2>&1 | head -n 5)"

# ---- the commands, by hyperfine name: tcpdump, then zonewatch replay with these
# arguments before the file ($prof in the alert file names).
NAMES=(tcpdump "zonewatch -w 1" "zonewatch -w 2" "full, generated rules"
    "full, example site" "example site, detectors off")
zw_args() { # NAME PROFILE -> ARGS
    local full=(--metrics-listen 127.0.0.1:0)
    case "$1" in
    "zonewatch -w 1") ARGS=(-w 1) ;;
    "zonewatch -w 2") ARGS=(-w 2) ;;
    "full, generated rules")
        ARGS=(-w 2 --rules "$RULES_GEN" --alerts "$OUT/alerts-$2-generated.jsonl" "${full[@]}")
        ;;
    "full, example site")
        ARGS=(-w 2 --rules "$RULES_SITE" --alerts "$OUT/alerts-$2-site.jsonl" "${full[@]}")
        ;;
    "example site, detectors off")
        ARGS=(-w 2 --rules "$RULES_OFF" --alerts "$OUT/alerts-$2-site-off.jsonl" "${full[@]}")
        ;;
    *) die "unknown command name '$1'" ;;
    esac
}
# file-safe short name of a command
slug() {
    case "$1" in
    tcpdump) echo tcpdump ;;
    "zonewatch -w 1") echo w1 ;;
    "zonewatch -w 2") echo w2 ;;
    "full, generated rules") echo full-generated ;;
    "full, example site") echo full-site ;;
    "example site, detectors off") echo site-off ;;
    esac
}

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
qargs() { printf ' %q' "$@"; }
rss_of() { awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$1"; }
# ge A B: A >= B (decimals)
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

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
        "peak RSS, packets seen, drops and alert lines from one more \`/usr/bin/time -v\` run" \
        "with \`--summary\`"
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
    echo "## Commands"
    echo
    echo "\`F\` is the profile's file, \`zonewatch\` is \`zonewatch replay -q\`; \`*.jsonl\` alert" \
        "files are in bench-data/ (one per profile and command, replaced by each run). Every" \
        "detector is on in the full commands (neither rules file has a \`[detect]\` table)."
    echo
    echo "| name | command |"
    echo "|---|---|"
    for name in "${NAMES[@]}"; do
        if [[ "$name" == tcpdump ]]; then
            echo "| tcpdump | \`tcpdump -r F -w /dev/null\` |"
        else
            zw_args "$name" PROF
            echo "| $name | \`zonewatch$(qargs "${ARGS[@]}") F\` |"
        fi
    done
    echo
    echo "\`$RULES_OFF\` is \`$RULES_SITE\` with \`[detect.KEY] enabled = false\` appended for" \
        "each detector (${DETECTORS[*]}): the same run, separation violations folded and" \
        "written, no detector."
    echo
    echo "## Results"
    echo
    echo "| profile | command | median s | min–max s | tcpdump/this | Mpps | peak RSS MiB | alert lines | target | packets seen, drops |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---|---|"
} >"$MD_TMP"

notes=()
targets=()
for prof in "${PROFILES[@]}"; do
    f="${FILE[$prof]}"
    cat "$f" >/dev/null
    json="$OUT/hyperfine-$prof.json"
    hf=()
    for name in "${NAMES[@]}"; do
        if [[ "$name" == tcpdump ]]; then
            hf+=(-n tcpdump "tcpdump -r $(q "$f") -w /dev/null")
        else
            zw_args "$name" "$prof"
            hf+=(-n "$name" "$(q "$ZW") replay -q$(qargs "${ARGS[@]}") $(q "$f")")
        fi
    done
    echo "bench: hyperfine on $f" >&2
    hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$json" "${hf[@]}"

    declare -A MED=()
    while IFS=$'\t' read -r cmd median; do
        MED[$cmd]="$median"
    done < <(pyjson "$json" '[(r["command"], r["median"]) for r in d["results"]]')
    base="${MED[tcpdump]:-}"
    [[ -n "$base" ]] || die "no tcpdump result in $json"

    # Peak RSS, one run each; the zonewatch runs also write a summary: packets seen,
    # drops, alert lines, violating flows.
    declare -A RSS=() SEEN=([tcpdump]="–") ALERTS=([tcpdump]="–" ["zonewatch -w 1"]="–" ["zonewatch -w 2"]="–")
    for name in "${NAMES[@]}"; do
        t="$OUT/time-$prof-$(slug "$name").txt"
        if [[ "$name" == tcpdump ]]; then
            /usr/bin/time -v -o "$t" tcpdump -r "$f" -w /dev/null 2>/dev/null
            RSS[tcpdump]="$(rss_of "$t")"
            continue
        fi
        s="$OUT/summary-$prof-$(slug "$name").json"
        e="$OUT/stderr-$prof-$(slug "$name").txt"
        zw_args "$name" "$prof"
        /usr/bin/time -v -o "$t" "$ZW" replay -q "${ARGS[@]}" --summary "$s" "$f" 2>"$e" ||
            die "zonewatch replay ${ARGS[*]} failed on $f (see $t, $e)"
        RSS[$name]="$(rss_of "$t")"
        seen="$(pyjson "$s" 'd.get("packets", "?")')"
        drops="$(pyjson "$s" 'sum(v for v in (d.get("drops") or {}).values() if isinstance(v, int))')"
        SEEN[$name]="$seen, $drops"
        if [[ "$seen" != "$PACKETS" || "$drops" != "0" ]]; then
            notes+=("WARNING: $prof, $name saw $seen of $PACKETS packets with $drops drops ($s)")
        fi
        if [[ " ${ARGS[*]} " == *" --alerts "* ]]; then
            ALERTS[$name]="$(pyjson "$s" '(d.get("alerts") or {}).get("written", "?")')"
            info="$(pyjson "$s" '"%s violating flows of %s created (%.1f%%); alert lines by kind: %s; detectors observing: %s" % (
                d["alerts"]["violating_flows"], d["flows"]["created"],
                100.0 * d["alerts"]["violating_flows"] / max(1, d["flows"]["created"]),
                ", ".join("%s %s" % kv for kv in sorted(d["alerts"]["by_kind"].items())) or "none",
                ", ".join(k for k, v in sorted(d["alerts"]["detectors"].items()) if v.get("observed")) or "none")')"
            notes+=("$prof, $name: $info.")
            grep -q 'metrics on http://' "$e" ||
                notes+=("WARNING: $prof, $name did not say it served metrics ($e)")
        fi
    done

    # Per command: median, min–max, tcpdump/this, Mpps, and its #18 target if it has one.
    off="${MED["example site, detectors off"]:-}"
    BASE="$base" N="$PACKETS" pyjson "$json" '[(r["command"], r["median"], r["min"], r["max"],
        float(os.environ["BASE"]) / r["median"], int(os.environ["N"]) / r["median"] / 1e6)
        for r in d["results"]]' |
        while IFS=$'\t' read -r cmd median min max ratio mpps; do
            verdict=""
            case "$cmd" in
            tcpdump) verdict="(baseline)" ;;
            "full, generated rules")
                if [[ "$prof" == imix ]]; then
                    ge "$ratio" 1.5 && v=met || v=MISSED
                    verdict="#18: ≥ 1.5× faster than tcpdump: $v"
                else
                    ge "$ratio" 0.8 && v=met || v=MISSED
                    verdict="#18: ≤ 1.25× tcpdump's time: $v"
                fi
                ;;
            "full, example site")
                times="$(awk -v a="$median" -v b="$off" 'BEGIN { printf "%.2f", a / b }')"
                ge 2 "$times" && v=met || v=MISSED
                verdict="#18: ≤ 2× detectors off ($times×): $v"
                ;;
            "example site, detectors off") verdict="(baseline of the example site)" ;;
            esac
            printf '| %s | %s | %.3f | %.3f–%.3f | %.2f | %.2f | %s | %s | %s | %s |\n' \
                "$prof" "$cmd" "$median" "$min" "$max" "$ratio" "$mpps" \
                "${RSS[$cmd]:-?}" "${ALERTS[$cmd]:-?}" "$verdict" "${SEEN[$cmd]:-?}"
        done >>"$MD_TMP"

    # The #18 targets, one line each.
    gen="${MED["full, generated rules"]}"
    site="${MED["full, example site"]}"
    r="$(awk -v a="$base" -v b="$gen" 'BEGIN { printf "%.2f", a / b }')"
    x="$(awk -v a="$gen" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
    if [[ "$prof" == imix ]]; then
        ge "$r" 1.5 && v=met || v=MISSED
        targets+=("IMIX, full pipeline, rare violations: ≥ 1.5× faster than tcpdump — tcpdump/this $r (${x}× tcpdump's time): **$v**")
    else
        ge "$r" 0.8 && v=met || v=MISSED
        targets+=("64-byte, full pipeline, rare violations: ≤ 1.25× tcpdump's time — ${x}× (tcpdump/this $r): **$v**")
    fi
    x="$(awk -v a="$site" -v b="$off" 'BEGIN { printf "%.2f", a / b }')"
    ge 2 "$x" && v=met || v=MISSED
    targets+=("$prof, example site: ≤ 2× the same run with every detector off — ${x}× ($(printf '%.3f s against %.3f s' "$site" "$off"), medians): **$v**")
    unset MED RSS SEEN ALERTS
done

{
    echo
    echo "## #18 targets"
    echo
    for t in "${targets[@]}"; do
        echo "- $t"
    done
    echo
    echo "The plain \`zonewatch -w 1|2\` rows carry no target: they are the floor (no rules," \
        "no analysis thread). The analysis per flow (≤ 300 ns) is \`cargo bench --bench analysis\`."
    echo
    echo "Peak RSS counts the pages of the mmap'd capture resident at the peak (file-backed" \
        "page cache, shared and reclaimable), not only heap: compare it with the file size."
    echo
    echo "## Notes"
    echo
    for n in ${notes[@]+"${notes[@]}"}; do
        echo "- $n"
    done
} >>"$MD_TMP"
mv "$MD_TMP" "$MD"
echo
cat "$MD"
