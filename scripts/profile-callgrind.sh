#!/usr/bin/env bash
# Instructions per request in the router's user space, and where they go:
# the router runs under callgrind (config/bench.toml, one worker), wisp-bench
# warms it up, the counters are zeroed, COUNT more requests are sent, and
# the counters are dumped. Instruction counts do not depend on the VM's
# speed, so they compare builds where timings cannot.
#
# Usage: scripts/profile-callgrind.sh [--relay | --calls] [--count N] [--top K]
#   --relay     OPTIONS relayed statefully (t_relay) to wisp-bench's UAS
#   --calls     calls (INVITE-200-ACK-BYE) relayed the same way; per call
#   --count N   requests (or calls) measured, after as many to warm up
#               (default 4000)
#   --top K     functions listed, by their own cost (default 25)
# Environment: WISP_BIN (default target/release/wisp), WISP_BENCH
# (default target/release/wisp-bench), WISP_PORT=5060, UAS_PORT=5090,
# OUT (callgrind output file, default target/callgrind.<mode>.out).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

WISP_BIN=${WISP_BIN:-target/release/wisp}
WISP_BENCH=${WISP_BENCH:-target/release/wisp-bench}
WISP_PORT=${WISP_PORT:-5060}
UAS_PORT=${UAS_PORT:-5090}
MODE=options
COUNT=4000
TOP=25
while [[ $# -gt 0 ]]; do
    case "$1" in
        --relay) MODE=relay ;;
        --calls) MODE=calls ;;
        --count) COUNT=$2; shift ;;
        --top) TOP=$2; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
OUT=${OUT:-target/callgrind.$MODE.out}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

LOAD=(--target "127.0.0.1:$WISP_PORT" --window 16 --timeout-ms 20000)
case $MODE in
    relay) LOAD+=(--uas "127.0.0.1:$UAS_PORT" --uri "sip:uas@127.0.0.1:$UAS_PORT") ;;
    calls) LOAD+=(--method call --uas "127.0.0.1:$UAS_PORT" --uri "sip:uas@127.0.0.1:$UAS_PORT") ;;
esac

# config/bench.toml on WISP_PORT, with its own management socket; beside
# config/, so its relative paths still lead to target/plugins.
sed -e "s/127.0.0.1:5060/127.0.0.1:$WISP_PORT/" -e 's|^ctl_socket = .*|ctl_socket = "callgrind.ctl"|' \
    -e 's|^plugin_cache = .*|plugin_cache = "callgrind-plugin-cache"|' \
    config/bench.toml >target/callgrind.toml
rm -f "$OUT" "$OUT".*
valgrind --tool=callgrind --callgrind-out-file="$OUT" \
    "$WISP_BIN" run --config target/callgrind.toml >target/callgrind.log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
# The log level of config/bench.toml hides "wisp ready": wait for the port.
for _ in $(seq 1 120); do
    ss -Huln "sport = :$WISP_PORT" | grep -q . && break
    kill -0 $PID 2>/dev/null || { cat target/callgrind.log >&2; exit 1; }
    sleep 0.5
done
"$WISP_BENCH" "${LOAD[@]}" --count "$COUNT" --duration 600 >/dev/null
callgrind_control --zero $PID >/dev/null
"$WISP_BENCH" "${LOAD[@]}" --count "$COUNT" --duration 600
callgrind_control --dump $PID >/dev/null
sleep 1
DUMP=$(ls -t "$OUT".* 2>/dev/null | head -1)
[ -n "$DUMP" ] || { echo "no callgrind dump" >&2; exit 1; }
TOTAL=$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1; exit}')
echo "mode $MODE: $TOTAL instructions for $COUNT, $((TOTAL / COUNT)) per unit"
callgrind_annotate --inclusive=no --threshold=100 "$DUMP" 2>/dev/null | sed -n '/^Ir/,$p' | head -$((TOP + 3))
