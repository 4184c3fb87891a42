#!/usr/bin/env bash
# Build the fuzz targets (nightly; instrumented as cargo-fuzz does, without
# needing cargo-fuzz), seed their corpora from the bundled and public captures
# and the rules files, and run each for FUZZ_SECS seconds (default 600).
# Crashes are written to fuzz/artifacts/TARGET/; add a regression test for each.
# Exits non-zero when any target crashed, failed a check or timed out (every
# target still runs, so one run reports on all three).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-${FUZZ_SECS:-600}}
triple=x86_64-unknown-linux-gnu
targets=(decode rules capture)
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo +nightly build --release --target "$triple" "${targets[@]/#/--bin=}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# decode reads classic pcap only: pcapng files are converted for it. capture
# reads both, so it is seeded with every file as it is.
pcaps=()
captures=()
for f in ../captures/*.pcap ../../shared/captures/public/*/*.pcap ../../shared/captures/public/*/*.pcapng; do
    [ -e "$f" ] || continue
    captures+=("$f")
    case "$f" in
        *.pcapng) out="$work/$(basename "$f").pcap"; editcap -F pcap "$f" "$out" 2>/dev/null && pcaps+=("$out") ;;
        *) pcaps+=("$f") ;;
    esac
done
mkdir -p "${targets[@]/#/artifacts/}"
python3 seed.py decode corpus/decode "${pcaps[@]}"
python3 seed.py rules corpus/rules ../rules/*.toml ../rules/presets/*.toml \
    ../tests/golden/*.toml ../tests/golden/check/*.toml
python3 seed.py capture corpus/capture "${captures[@]}"
# The capture target writes its scratch captures and evidence under TMPDIR.
mkdir -p "$work/tmp"
declare -A max_len=([decode]=16384 [rules]=16384 [capture]=65536)
failed=()
for t in "${targets[@]}"; do
    echo "== $t for ${secs}s"
    # A hang is a finding too: -timeout (per input) far above any normal input.
    set +e
    TMPDIR="$work/tmp" "target/$triple/release/$t" -max_total_time="$secs" -max_len="${max_len[$t]}" \
        -timeout=60 -print_final_stats=1 -artifact_prefix="artifacts/$t/" "corpus/$t" 2>&1 |
        grep -E "^(Done|#[0-9]+[[:space:]]+DONE|stat::|==|SUMMARY|artifact_prefix|Test unit written|Base64)|panicked|ERROR"
    status=("${PIPESTATUS[@]}")
    set -e
    # grep: 1 = no line matched (fine), 2 = grep itself failed.
    if [ "${status[1]}" -gt 1 ]; then
        echo "== $t: output filter failed (grep exit ${status[1]})"
        failed+=("$t")
    fi
    if [ "${status[0]}" -ne 0 ]; then
        echo "== $t: libFuzzer exited ${status[0]}: crash, failed check or timeout; input in fuzz/artifacts/$t/"
        failed+=("$t")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "== failed: ${failed[*]}"
    exit 1
fi
echo "== no crash in: ${targets[*]}"
