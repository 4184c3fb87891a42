#!/usr/bin/env bash
# Build the fuzz targets (nightly; instrumented as cargo-fuzz does, without
# needing cargo-fuzz), seed their corpora from the bundled and public captures
# and the rules files, and run each for FUZZ_SECS seconds (default 600).
# Crashes are written to fuzz/artifacts/TARGET/; add a regression test for each.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-${FUZZ_SECS:-600}}
triple=x86_64-unknown-linux-gnu
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo +nightly build --release --target "$triple" --bin decode --bin rules
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# pcapng files become classic pcap for the seeder.
inputs=()
for f in ../captures/*.pcap ../../shared/captures/public/*/*.pcap ../../shared/captures/public/*/*.pcapng; do
    [ -e "$f" ] || continue
    case "$f" in
        *.pcapng) out="$work/$(basename "$f").pcap"; editcap -F pcap "$f" "$out" 2>/dev/null && inputs+=("$out") ;;
        *) inputs+=("$f") ;;
    esac
done
mkdir -p corpus/decode corpus/rules artifacts/decode artifacts/rules
python3 seed.py corpus/decode corpus/rules "${inputs[@]}" ../rules/*.toml ../rules/presets/*.toml \
    ../tests/golden/*.toml ../tests/golden/check/*.toml
for t in decode rules; do
    echo "== $t for ${secs}s"
    "target/$triple/release/$t" -max_total_time="$secs" -max_len=16384 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" "corpus/$t" 2>&1 | grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss|==|SUMMARY)|panicked|ERROR" || true
done
