#!/usr/bin/env bash
# Coverage-guided fuzzing of the parser, the stream framer and the header
# parsers (fuzz/, cargo-fuzz: libFuzzer with AddressSanitizer), each target
# for a bounded time. Starts from the seed corpus in fuzz/corpus/<target>
# (read only: what a run finds goes to target/fuzz-corpus/<target>, kept
# between runs). A crash stops the run with the input that caused it in
# fuzz/artifacts/<target>/; make it a regression test (a seed of
# host/sip/tests/fuzz_parse.rs, or a unit test beside the code that broke).
#
# Usage: scripts/fuzz.sh [seconds per target] [target ...]
#   default 60 s and every target (message, datagram, stream, header); `make fuzz`
#   runs this, `make fuzz FUZZ_SECONDS=3600` runs each for an hour.
# cargo-fuzz is installed if missing; libFuzzer needs nightly flags, which
# RUSTC_BOOTSTRAP=1 allows on the stable toolchain.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT/fuzz"

SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(message datagram stream header)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install -q cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
# The main workspace's target directory keeps one copy of the build.
export CARGO_TARGET_DIR="$ROOT/target/fuzz"

for t in "${TARGETS[@]}"; do
    work="$ROOT/target/fuzz-corpus/$t"
    mkdir -p "$work" "artifacts/$t"
    echo "fuzz: $t for ${SECONDS_EACH}s" >&2
    log="$ROOT/target/fuzz-$t.log"
    set +e
    cargo fuzz run -O "$t" "$work" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1
    status=$?
    set -e
    grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
    # cargo fuzz's status is the target's: non-zero on a crash, a leak, a
    # time-out or running out of memory.
    if ((status != 0)); then
        tail -40 "$log" >&2
        echo "fuzz: $t FAILED (status $status); the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "fuzz: ${#TARGETS[@]} targets, ${SECONDS_EACH}s each, no crash" >&2
