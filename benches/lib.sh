# shellcheck shell=bash
# Shared by benches/run.sh and benches/live.sh (sourced, not run): messages,
# tool checks and numeric settings. The sourcing script sets BENCH_NAME (the
# prefix of its messages) first.

die() {
    echo "${BENCH_NAME}: $*" >&2
    exit 1
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"
}

is_count() {
    [[ "$1" =~ ^[1-9][0-9]*$ ]]
}
