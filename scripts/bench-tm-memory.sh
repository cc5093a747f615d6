#!/usr/bin/env bash
# Memory per in-flight transaction: Wisp's peak RSS growth while wisp-bench
# relays OPTIONS through t_relay to its own stateless UAS (closed loop,
# window 64), divided by the transactions alive at the peak (rate x wait_timer,
# or the count when the run is shorter).
#
# Usage: scripts/bench-tm-memory.sh [count]     (default 100000; needs
# target/release/{wisp,wisp-bench} and the default plugin: make build plugins;
# WISP_BIN runs another router binary)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-100000}
WAIT_S=5   # [tm] wait_timer_ms of config/bench.toml (default)
setsid taskset -c 0 ${WISP_BIN:-target/release/wisp} run --config config/bench.toml >/tmp/wisp-tm-memory.log 2>&1 </dev/null &
PID=$!
trap 'kill -TERM -- -$PID 2>/dev/null || true' EXIT
sleep 1.5
base=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
out=$(mktemp)
taskset -c 1 target/release/wisp-bench --target 127.0.0.1:5060 --uas 127.0.0.1:5090 \
    --uri sip:uas@127.0.0.1:5090 --count "$COUNT" --duration 8 --window 64 --json >"$out" 2>/dev/null &
BP=$!
peak=$base
while kill -0 $BP 2>/dev/null; do
    r=$(awk '/VmRSS/{print $2}' /proc/$PID/status)
    ((r > peak)) && peak=$r
    sleep 0.2
done
tps=$(grep -oE '"throughput":[0-9.]+' "$out" | cut -d: -f2)
lost=$(grep -oE '"lost":[0-9]+' "$out" | cut -d: -f2)
# Alive at the peak: every transaction of the last WAIT_S seconds, or all of
# them when the run is shorter than the wait timer.
awk -v b="$base" -v p="$peak" -v t="$tps" -v w="$WAIT_S" -v l="$lost" -v c="$COUNT" 'BEGIN {
    live = t * w
    if (live > c) live = c
    printf "idle RSS %.1f MB, peak %.1f MB, %.0f transactions/s (lost %d), ~%.0f alive at the peak: %.2f KB per transaction\n",
        b / 1024, p / 1024, t, l, live, (p - b) / live }'
rm -f "$out"
