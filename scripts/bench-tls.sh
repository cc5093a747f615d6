#!/usr/bin/env bash
# OPTIONS over TLS: Kamailio's tls module against Wisp, the same stateless
# "200 to everything" script (bench/kamailio-options-tls.cfg; config/bench-tls.toml
# with plugins/bench-options), each router pinned to one core, wisp-bench on the other.
#
# Two loads per router and round, alternating which router goes first:
#   connections  --connections long-lived TLS connections, --window requests
#                outstanding over all of them (wisp-bench --transport tls)
#   handshakes   a new connection per OPTIONS (connect, handshake, OPTIONS, 200,
#                close), --handshake-window at a time (wisp-bench --handshakes)
# Both sides get the same certificate: ECDSA P-256 for 127.0.0.1, issued by a
# throwaway CA into target/bench-tls/ (openssl).
#
# Usage: scripts/bench-tls.sh [options]
#   --rounds N             alternated rounds (default 2)
#   --count N              OPTIONS per connections run (default 200000)
#   --connections N        long-lived connections (default 1000)
#   --window N             outstanding OPTIONS over all connections (default 1000)
#   --handshake-count N    connections per handshakes run (default 20000)
#   --handshake-window N   handshakes in progress at once (default 32)
#   --duration S           max seconds of sending per run (default 20)
#   --kam-children N       Kamailio tcp_children (default 1; all on the one core)
#   --wisp-plugin NAME     run Wisp with target/plugins/NAME.wasm instead of
#                          bench_options (e.g. default: REQINIT, maxfwd, myself)
#   --kamailio-only | --wisp-only
#
# Environment: SERVER_CPU=0, CLIENT_CPU=1, KAMAILIO=/usr/sbin/kamailio,
#   KAM_PORT=5080 (UDP) / KAM_TLS_PORT=5081, WISP_PORT=5060 / WISP_TLS_PORT=5061
#   (as in config/bench-tls.toml), WISP_BENCH, READY_TIMEOUT=10.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench-lib.sh
. scripts/bench-lib.sh

SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
KAMAILIO=${KAMAILIO:-/usr/sbin/kamailio}
KAM_PORT=${KAM_PORT:-5080}
KAM_TLS_PORT=${KAM_TLS_PORT:-5081}
WISP_PORT=${WISP_PORT:-5060}
WISP_TLS_PORT=${WISP_TLS_PORT:-5061}
READY_TIMEOUT=${READY_TIMEOUT:-10}
ROUNDS=2
COUNT=200000
CONNECTIONS=1000
WINDOW=1000
HS_COUNT=20000
HS_WINDOW=32
DURATION=20
KAM_CHILDREN=1
RUN_KAM=1
RUN_WISP=1
WISP_PLUGIN=bench_options

while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift ;;
        --count) COUNT=$2; shift ;;
        --connections) CONNECTIONS=$2; shift ;;
        --window) WINDOW=$2; shift ;;
        --handshake-count) HS_COUNT=$2; shift ;;
        --handshake-window) HS_WINDOW=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --kam-children) KAM_CHILDREN=$2; shift ;;
        --wisp-plugin) WISP_PLUGIN=$2; shift ;;
        --kamailio-only) RUN_WISP=0 ;;
        --wisp-only) RUN_KAM=0 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

for tool in openssl taskset; do
    command -v $tool >/dev/null || { echo "bench-tls: needs $tool" >&2; exit 2; }
done
if ((RUN_KAM)) && [[ ! -f /usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so ]]; then
    echo "bench-tls: Kamailio's tls module is missing (apt-get install kamailio-tls-modules)" >&2
    exit 2
fi
WISP_BENCH=${WISP_BENCH:-target/release/wisp-bench}
[[ -x $WISP_BENCH ]] || cargo build --release -p wisp-bench >&2
[[ -x target/release/wisp ]] || cargo build --release -p wisp >&2

# Long-lived connections on both ends.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- certificate ---------------------------------------------------------------
CERTS=$ROOT/target/bench-tls
if [[ ! -f $CERTS/cert.pem ]]; then
    log "issuing a throwaway CA and a certificate for 127.0.0.1 into $CERTS"
    mkdir -p "$CERTS"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=wisp bench CA" -keyout "$CERTS/ca-key.pem" -out "$CERTS/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$CERTS/key.pem" -out "$CERTS/cert.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$CERTS/ext.cnf"
    openssl x509 -req -in "$CERTS/cert.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca-key.pem" \
        -CAcreateserial -days 30 -extfile "$CERTS/ext.cnf" -out "$CERTS/cert.pem" 2>/dev/null
fi

trap stop_server EXIT
trap 'exit 130' INT TERM

LOGDIR=$(mktemp -d /tmp/bench-tls.XXXXXX)
sed "s|@CERT_DIR@|$CERTS|g" bench/kamailio-options-tls.cfg >"$LOGDIR/kamailio-tls.cfg"
WISP_CONFIG=config/bench-tls.toml
if [[ $WISP_PLUGIN != bench_options ]]; then
    [[ -f target/plugins/$WISP_PLUGIN.wasm ]] || { echo "bench-tls: no target/plugins/$WISP_PLUGIN.wasm (make plugins)" >&2; exit 2; }
    WISP_CONFIG=target/bench-tls-$WISP_PLUGIN.toml
    sed "s|bench_options.wasm|$WISP_PLUGIN.wasm|" config/bench-tls.toml >"$WISP_CONFIG"
fi
log "wisp runs target/plugins/$WISP_PLUGIN.wasm"
log "logs in $LOGDIR; load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# load NAME TLS_PORT KIND wisp-bench-args...: one run, its output and the server's CPU per answer.
load() {
    local name=$1 port=$2 kind=$3 out u0 s0 u1 s1 answered; shift 3
    log "$name: $kind ($*)"
    read -r u0 s0 < <(server_ticks)
    out=$(taskset -c "$CLIENT_CPU" "$WISP_BENCH" --target "127.0.0.1:$port" --transport tls \
        --ca "$CERTS/ca.pem" --duration "$DURATION" --timeout-ms 5000 "$@")
    read -r u1 s1 < <(server_ticks)
    echo "$out"
    answered=$(grep -oE '^  answered +[0-9]+' <<<"$out" | grep -oE '[0-9]+$' || echo 0)
    cpu_per "$name $kind" "$([[ $kind == handshakes ]] && echo handshake || echo request)" \
        "$answered" "$u0" "$s0" "$u1" "$s1"
}

# side NAME: start the router, run both loads, stop it.
side() {
    local name=$1 udp tls
    if [[ $name == kamailio ]]; then
        udp=$KAM_PORT; tls=$KAM_TLS_PORT
        start_server "$LOGDIR/kamailio.log" "$KAMAILIO" -f "$LOGDIR/kamailio-tls.cfg" -DD -E \
            -m 1024 -M 32 -x fm -X fm \
            -A "BENCH_PORT=$udp" -A "BENCH_TLS_PORT=$tls" -A "BENCH_CHILDREN=$KAM_CHILDREN"
    else
        udp=$WISP_PORT; tls=$WISP_TLS_PORT
        start_server "$LOGDIR/wisp.log" target/release/wisp run --config "$WISP_CONFIG"
    fi
    wait_ready "$udp" "$LOGDIR/$name.log" || return 1
    load "$name" "$tls" connections --count "$COUNT" --connections "$CONNECTIONS" --window "$WINDOW"
    load "$name" "$tls" handshakes --handshakes --count "$HS_COUNT" --window "$HS_WINDOW"
    stop_server
}

for round in $(seq "$ROUNDS"); do
    if ((round % 2)); then order="kamailio wisp"; else order="wisp kamailio"; fi
    for name in $order; do
        [[ $name == kamailio ]] && ((!RUN_KAM)) && continue
        [[ $name == wisp ]] && ((!RUN_WISP)) && continue
        log "round $round: $name"
        side "$name"
    done
done
