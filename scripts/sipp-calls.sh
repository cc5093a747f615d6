#!/usr/bin/env bash
# Calls through Wisp with SIPp (Debian's sip-tester): SIPp's built-in `uac`
# scenario (INVITE, 180, 200, ACK, BYE, 200) calls a user through the router,
# which looks it up (a permanent contact added with `wisp ctl ul add`) and
# relays with `t_relay` to SIPp's built-in `uas` scenario. The router runs the
# default manifest (`make run`'s) unchanged but for where its state lives:
# a copy in a temp dir keeps its database and ctl socket there.
#
# It prints, for each side, the calls attempted, successful and failed, the
# unexpected messages and the retransmissions, and exits 1 when any call
# failed, any message was unexpected, or the uas did not see every call
# (2 on a setup error: a missing tool, the router not starting).
#
# Usage: scripts/sipp-calls.sh [options]
#   --rate N          calls per second (default 1000)
#   --duration S      seconds of calls (default 60): the uac places rate*S calls,
#                     then stops (bounded by SIPp's -timeout and `timeout`)
#   --workers N       receive workers, written into the manifest copy (default:
#                     keep the manifest's, `workers = 0`: one per core)
#   --config FILE     the manifest (default config/wisp.toml)
#   --port P          the router's port (default: the manifest's, 5060)
#   --keep            keep the temp dir (router log, SIPp stats, error traces);
#                     kept anyway when the run fails
#
# Environment (all optional):
#   WISP_BIN=target/release/wisp   the router (`make build` builds it)
#   SIPP=sipp                      SIPp (`scripts/setup.sh` installs sip-tester)
#   UAC_PORT=5070                  the uac's UDP port (127.0.0.1)
#   UAS_PORT=5090                  the uas's UDP port (127.0.0.1)
#   CALLEE=bob                     the AOR called (its contact: the uas)
#   READY_TIMEOUT=30               seconds to wait for the router to be ready
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

WISP_BIN=${WISP_BIN:-target/release/wisp}
SIPP=${SIPP:-sipp}
UAC_PORT=${UAC_PORT:-5070}
UAS_PORT=${UAS_PORT:-5090}
CALLEE=${CALLEE:-bob}
READY_TIMEOUT=${READY_TIMEOUT:-30}

RATE=1000
DURATION=60
WORKERS=
CONFIG=config/wisp.toml
PORT=
KEEP=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "sipp-calls: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --rate) RATE=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --config) CONFIG=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done
for n in "$RATE" "$DURATION" ${WORKERS:+"$WORKERS"} ${PORT:+"$PORT"}; do
    [[ $n =~ ^[0-9]+$ ]] || die "not a number: $n"
done
[ "$RATE" -gt 0 ] && [ "$DURATION" -gt 0 ] || die "--rate and --duration must be positive"
CALLS=$((RATE * DURATION))

command -v "$SIPP" >/dev/null || die "$SIPP not found: scripts/setup.sh installs it (apt-get install sip-tester)"
[ -x "$WISP_BIN" ] || die "$WISP_BIN does not exist: make build (or set WISP_BIN)"
[ -f "$CONFIG" ] || die "no manifest $CONFIG"
WISP_BIN=$(cd "$(dirname "$WISP_BIN")" && pwd)/$(basename "$WISP_BIN")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/wisp-sipp.XXXXXX")
ROUTER_PID=
UAS_PID=
UAC_PID=

stop() { # pid: TERM, then KILL if it has not gone within 3 s
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop "$UAC_PID"
    stop "$UAS_PID"
    stop "$ROUTER_PID"
    if [ "$KEEP" = 1 ]; then
        echo "sipp-calls: kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------ the manifest copy
# Relative paths are relative to the manifest: made absolute, except the
# database and the ctl socket, which move into the temp dir (a running
# `make run` and its var/wisp.db are left alone). `plugin_cache` stays where
# the manifest puts it: a cache, and sharing it saves compiling the plugin.
CONF_DIR=$(cd "$(dirname "$CONFIG")" && pwd)
awk -v dir="$CONF_DIR" -v tmp="$TMP" -v workers="$WORKERS" -v port="$PORT" '
    function abs(p) { return (p == "" || p ~ /^\//) ? p : dir "/" p }
    /^ctl_socket *=/ { print "ctl_socket = \"" tmp "/wisp.ctl\""; next }
    /^db_path *=/ { print "db_path = \"" tmp "/wisp.db\""; next }
    /^(plugin_cache|path) *=/ {
        split($0, q, "\""); sub(/ *=.*/, "", $0)
        print $0 " = \"" abs(q[2]) "\""; next
    }
    /^workers *=/ && workers != "" { print "workers = " workers; next }
    /^listen *=/ && port != "" { gsub(/:[0-9]+"/, ":" port "\""); print; next }
    { print }
' "$CONFIG" > "$TMP/wisp.toml"

ROUTER=$(grep -m1 -o '"udp:[^"]*"' "$TMP/wisp.toml" | tr -d '"') || die "the manifest listens on no UDP socket"
ROUTER=${ROUTER#udp:}
MANIFEST_WORKERS=$(sed -n 's/^workers *= *\([0-9]*\).*/\1/p' "$TMP/wisp.toml")
echo "sipp-calls: $CALLS calls ($RATE/s for $DURATION s), uac 127.0.0.1:$UAC_PORT -> wisp $ROUTER (workers = ${MANIFEST_WORKERS:-?}, $CONFIG) -> uas 127.0.0.1:$UAS_PORT"

# ------------------------------------------------------------ the router
"$WISP_BIN" run --config "$TMP/wisp.toml" >"$TMP/wisp.log" 2>&1 &
ROUTER_PID=$!
deadline=$((SECONDS + READY_TIMEOUT))
until grep -qs "wisp ready" "$TMP/wisp.log"; do
    if ! kill -0 "$ROUTER_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
        cat "$TMP/wisp.log" >&2
        die "the router did not get ready"
    fi
    sleep 0.1
done
grep -o "wisp ready.*" "$TMP/wisp.log" | sed 's/^/sipp-calls: /'

# ------------------------------------------------------------ the callee
# The uas ends by itself once it has seen every call (-m); the global
# -timeout bounds it if some never arrive.
SIPP_COMMON=(-i 127.0.0.1 -nostdin -m "$CALLS" -trace_stat -fd 1 -trace_counts -trace_err -trace_screen)
UAS_TIMEOUT=$((DURATION + 60))
mkdir "$TMP/uas" "$TMP/uac"
(cd "$TMP/uas" && exec timeout -k 5 $((UAS_TIMEOUT + 10)) "$SIPP" -sn uas -p "$UAS_PORT" "${SIPP_COMMON[@]}" \
    -stf stat.csv -error_file errors.log -screen_file screen.log -timeout "${UAS_TIMEOUT}s" \
    >"$TMP/uas/out.log" 2>&1) &
UAS_PID=$!
"$WISP_BIN" ctl --config "$TMP/wisp.toml" ul add "$CALLEE" "sip:$CALLEE@127.0.0.1:$UAS_PORT" >/dev/null
sleep 0.5
kill -0 "$UAS_PID" 2>/dev/null || { cat "$TMP/uas/out.log" >&2; die "the uas did not start"; }

# ------------------------------------------------------------ the calls
UAC_TIMEOUT=$((DURATION + 30))
set +e
(cd "$TMP/uac" && exec timeout -k 5 $((UAC_TIMEOUT + 10)) "$SIPP" -sn uac -s "$CALLEE" "$ROUTER" -p "$UAC_PORT" \
    -r "$RATE" "${SIPP_COMMON[@]}" \
    -stf stat.csv -error_file errors.log -screen_file screen.log -timeout "${UAC_TIMEOUT}s" -timeout_error \
    >"$TMP/uac/out.log" 2>&1) &
UAC_PID=$!
wait "$UAC_PID"
UAC_RC=$?
UAC_PID=
# Give the uas its 4 s of timewait after the last BYE, then ask it to quit.
for _ in $(seq 100); do
    kill -0 "$UAS_PID" 2>/dev/null || break
    sleep 0.1
done
kill -USR1 "$UAS_PID" 2>/dev/null
for _ in $(seq 100); do
    kill -0 "$UAS_PID" 2>/dev/null || break
    sleep 0.1
done
stop "$UAS_PID"
wait "$UAS_PID" 2>/dev/null
UAS_PID=
set -e

ROUTER_ALIVE=yes
kill -0 "$ROUTER_PID" 2>/dev/null || ROUTER_ALIVE=no

# ------------------------------------------------------------ the counts
# stat(side, column): the column of the last row of SIPp's -trace_stat file.
stat() {
    [ -f "$TMP/$1/stat.csv" ] || { echo "?"; return; }
    awk -F';' -v col="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        { last = (c ? $c : "?") }
        END { print (last == "" ? "?" : last) }' "$TMP/$1/stat.csv"
}
# counts(side, suffix): the sum over the scenario's messages of the columns
# ending in suffix (_Unexp, _Retrans, _Timeout) in the -trace_counts file.
counts() {
    local f
    f=$(ls "$TMP/$1"/*_counts.csv 2>/dev/null | head -1)
    [ -n "$f" ] || { echo "?"; return; }
    awk -F';' -v suf="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ suf "$") c[i] = 1; next }
        { s = 0; for (i in c) s += $i; last = s }
        END { print last + 0 }' "$f"
}

FAIL=()
check_side() { # side expected_calls
    local side=$1 calls ok failed unexp fu ooc dead retrans
    if [ "$side" = uac ]; then calls=$(stat uac "OutgoingCall(C)"); else calls=$(stat uas "IncomingCall(C)"); fi
    ok=$(stat "$side" "SuccessfulCall(C)")
    failed=$(stat "$side" "FailedCall(C)")
    unexp=$(counts "$side" _Unexp)
    # An unexpected message while SIPp sends (a 180 as it sends the ACK) has
    # no _Unexp column; it still fails its call.
    fu=$(stat "$side" "FailedUnexpectedMessage(C)")
    if [[ $unexp =~ ^[0-9]+$ && $fu =~ ^[0-9]+$ ]] && [ "$fu" -gt "$unexp" ]; then unexp=$fu; fi
    ooc=$(stat "$side" "OutOfCallMsgs(C)")
    dead=$(stat "$side" "DeadCallMsgs(C)")
    retrans=$(stat "$side" "Retransmissions(C)")
    printf '%s: calls %s, successful %s, failed %s (unexpected message %s, max UDP retransmissions %s, receive timeout %s); unexpected messages %s, out-of-call %s, dead-call %s; retransmissions %s\n' \
        "$side" "$calls" "$ok" "$failed" \
        "$(stat "$side" "FailedUnexpectedMessage(C)")" "$(stat "$side" "FailedMaxUDPRetrans(C)")" \
        "$(stat "$side" "FailedTimeoutOnRecv(C)")" "$unexp" "$ooc" "$dead" "$retrans"
    [ "$calls" = "$CALLS" ] || FAIL+=("$side saw $calls calls of $CALLS")
    [ "$ok" = "$CALLS" ] || FAIL+=("$side: $ok successful calls of $CALLS")
    [ "$failed" = 0 ] || FAIL+=("$side: $failed failed calls")
    [ "$unexp" = 0 ] && [ "$ooc" = 0 ] && [ "$dead" = 0 ] ||
        FAIL+=("$side: unexpected messages (in call $unexp, out of call $ooc, dead call $dead)")
}
echo "uac exit status $UAC_RC; router still running: $ROUTER_ALIVE"
check_side uac
check_side uas
[ "$ROUTER_ALIVE" = yes ] || FAIL+=("the router exited")

# What was unexpected, from SIPp's -trace_err logs: one line a kind, counted.
for side in uac uas; do
    [ -s "$TMP/$side/errors.log" ] || continue
    echo "$side errors (SIPp -trace_err), by kind:"
    # An event starts with its time (after the quote closing the message
    # before): keep its text up to the received message's first line.
    grep -E "^'?[0-9]{4}-[0-9]{2}-[0-9]{2}[[:space:]]" "$TMP/$side/errors.log" |
        sed -E -e "s/^'?[0-9-]+[[:space:]]+[0-9:.]+[[:space:]]+[0-9.]+: //" \
            -e "s/Call-I[dD] '[^']*'/Call-Id <id>/; s/Dead call [^ ]+/Dead call <id>/" \
            -e 's/index [0-9]+/index N/; s/\r$//' |
        sort | uniq -c | sort -rn | head -20 | sed 's/^ */  /'
done
WARN=$(grep -cE " (WARN|ERROR) " "$TMP/wisp.log" || true)
echo "router log: $WARN warning/error lines"
[ "$WARN" = 0 ] || grep -E " (WARN|ERROR) " "$TMP/wisp.log" | sed -E 's/^[^ ]+ +//' | sort | uniq -c | sort -rn | head -10 | sed 's/^/  /'

if [ ${#FAIL[@]} -gt 0 ]; then
    printf 'sipp-calls: FAIL: %s\n' "${FAIL[@]}"
    KEEP=1 # the router log and SIPp's traces, for a look
    exit 1
fi
echo "sipp-calls: OK: $CALLS calls, none failed, no unexpected message"
