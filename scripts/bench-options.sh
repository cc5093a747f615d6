#!/usr/bin/env bash
# Side-by-side OPTIONS benchmark: Kamailio (stateless sl_send_reply 200) vs Wisp,
# both driven by wisp-bench over UDP on loopback.
#
# Usage: scripts/bench-options.sh [options] [-- extra wisp-bench args]
#   --kamailio-only | --wisp-only   run only one side (default: both; Wisp is skipped
#                                   with a message if its binary does not exist yet)
#   --windows "64 256"              closed-loop windows to run (default "64 256")
#   --count N                       requests per run (default 300000)
#   --duration S                    max seconds of sending per run (default 20)
#   --children N                    Kamailio UDP workers (default 1)
#   --workers N                     both: Kamailio children=N, and Wisp on a copy of
#                                   config/bench.toml with workers = N (written to
#                                   target/bench-workers.toml). With N > 1 give the
#                                   server and the load tool the same cores, e.g.
#                                   SERVER_CPU=0,1 CLIENT_CPU=0,1: they then share them
#   --kamailio-mem qm|fm|tlsf       Kamailio memory manager (-x/-X). Default fm, its
#                                   fastest: Debian's default (qm, built with memory
#                                   debugging) spends most of its time in qm_malloc
#   --relay                         relay benchmark: wisp-bench also runs a stateless UAS
#                                   (port UAS_PORT) and addresses every OPTIONS to it, so
#                                   each router relays statefully (t_relay); Kamailio
#                                   runs bench/kamailio-relay.cfg with -m 4096
#   --calls                         call benchmark: as --relay, but every unit is a call
#                                   (wisp-bench --method call: INVITE, then ACK and BYE
#                                   through the router's loose_route); --count counts calls
#   --register                      REGISTER benchmark: every REGISTER a new AOR, user
#                                   location written through to SQLite on both sides
#                                   (Kamailio: bench/kamailio-registrar-sqlite.cfg, db_mode 1,
#                                   WAL; Wisp: config/bench-register.toml, db_mode 1);
#                                   both databases start empty
#   --floor                         also run tools/wisp-bench/examples/udp_floor.rs (port
#                                   FLOOR_PORT): a responder that only copies five header
#                                   lines into a 200 between one recvmmsg and one sendmmsg.
#                                   Its CPU per request is the kernel's share every router
#                                   pays on loopback (stateless OPTIONS only)
#   --register-auth                 as --register, but every REGISTER is challenged and
#                                   retried with digest credentials (wisp-bench --password);
#                                   USERS subscribers (default: --count) in both databases.
#                                   Kamailio: bench/kamailio-registrar-auth.cfg (auth_db,
#                                   check_to, nonce counts); Wisp: config/bench-register-auth.toml
#                                   (plugins/registrar-auth)
#   --json                          wisp-bench prints one JSON object per run
#
# Environment (all optional):
#   KAM_PORT=5080          Kamailio UDP port (127.0.0.1)
#   WISP_PORT=5060         port Wisp listens on (must match its config)
#   SERVER_CPU=0           core the router under test is pinned to
#   CLIENT_CPU=1           core wisp-bench is pinned to
#   KAMAILIO=/usr/sbin/kamailio
#   KAM_CFG=bench/kamailio-options.cfg
#   WISP_CMD="target/release/wisp run --config config/bench.toml"  (pinned with taskset)
#   WISP_BENCH=path/to/wisp-bench  (default: target/release/wisp-bench, else
#                                   target/h-bench/release/wisp-bench, else built)
#   UAS_PORT=5090          the UAS of --relay runs (127.0.0.1)
#   FLOOR_PORT=5070        the --floor responder's port (127.0.0.1)
#   READY_TIMEOUT=10       seconds to wait for a server to answer before giving up
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=bench-lib.sh
. scripts/bench-lib.sh

KAM_PORT=${KAM_PORT:-5080}
WISP_PORT=${WISP_PORT:-5060}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
KAMAILIO=${KAMAILIO:-/usr/sbin/kamailio}
KAM_CFG=${KAM_CFG:-bench/kamailio-options.cfg}
WISP_CMD=${WISP_CMD:-target/release/wisp run --config config/bench.toml}
READY_TIMEOUT=${READY_TIMEOUT:-10}

RUN_KAM=1
RUN_WISP=1
RUN_FLOOR=0
FLOOR_PORT=${FLOOR_PORT:-5070}
WINDOWS="64 256"
COUNT=300000
DURATION=20
CHILDREN=1
KAM_MEM=fm
JSON=()
EXTRA=()
RELAY=0
REGISTER=0
AUTH=0
METHOD=options
KAM_SHM=64

while [[ $# -gt 0 ]]; do
    case "$1" in
        --kamailio-only) RUN_WISP=0 ;;
        --wisp-only) RUN_KAM=0 ;;
        --floor) RUN_FLOOR=1 ;;
        --windows) WINDOWS=$2; shift ;;
        --count) COUNT=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --children) CHILDREN=$2; shift ;;
        --workers) CHILDREN=$2; WORKERS=$2; shift ;;
        --kamailio-mem) KAM_MEM=$2; shift ;;
        --json) JSON=(--json) ;;
        --relay) RELAY=1 ;;
        --calls) RELAY=1; METHOD=call ;;
        --register) REGISTER=1 ;;
        --register-auth) REGISTER=1; AUTH=1 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [[ -n "${WORKERS:-}" ]]; then
    # Beside config/, so the manifest's relative paths still lead to target/.
    sed "s/^workers = .*/workers = $WORKERS/" config/bench.toml >target/bench-workers.toml
    WISP_CMD="target/release/wisp run --config target/bench-workers.toml"
fi

UAS_PORT=${UAS_PORT:-5090}
LOAD=()
if ((REGISTER)); then
    METHOD=register
    KAM_CFG=${KAM_CFG_REGISTER:-bench/kamailio-registrar-sqlite.cfg}
    KAM_SHM=1024
    WISP_CMD=${WISP_CMD_REGISTER:-target/release/wisp run --config config/bench-register.toml}
    if ! command -v sqlite3 >/dev/null || [[ ! -f /usr/share/kamailio/db_sqlite/usrloc-create.sql ]]; then
        echo "--register needs sqlite3 and kamailio-sqlite-modules (apt-get install sqlite3 kamailio-sqlite-modules)" >&2
        exit 2
    fi
    # Fresh databases: Kamailio's from its own schema, Wisp's created by Wisp.
    rm -rf /tmp/kamailio-bench && mkdir -p /tmp/kamailio-bench
    sqlite3 /tmp/kamailio-bench/kamailio.db </usr/share/kamailio/db_sqlite/standard-create.sql
    sqlite3 /tmp/kamailio-bench/kamailio.db </usr/share/kamailio/db_sqlite/usrloc-create.sql
    # WAL is a property of the database file, so set it here too: Kamailio
    # 5.6's db_set_journal_mode did not take effect in our runs.
    sqlite3 /tmp/kamailio-bench/kamailio.db "PRAGMA journal_mode=WAL;" >/dev/null
    rm -f var/bench-register.db var/bench-register.db-wal var/bench-register.db-shm
fi
if ((AUTH)); then
    KAM_CFG=${KAM_CFG_REGISTER_AUTH:-bench/kamailio-registrar-auth.cfg}
    WISP_CMD=${WISP_CMD_REGISTER_AUTH:-target/release/wisp run --config config/bench-register-auth.toml}
    USERS=${USERS:-$COUNT}
    LOAD=(--password secret --users "$USERS")
    sqlite3 /tmp/kamailio-bench/kamailio.db </usr/share/kamailio/db_sqlite/auth_db-create.sql
    scripts/bench-subscribers.py kamailio /tmp/kamailio-bench/kamailio.db "$USERS" 127.0.0.1 secret
    # Wisp creates its database (the schema is its own), then is stopped
    # and the subscribers go in before the measured start loads them.
    WISP_DB=var/bench-register-auth.db
    rm -f "$WISP_DB" "$WISP_DB-wal" "$WISP_DB-shm"
fi
if ((RELAY)); then
    KAM_CFG=${KAM_CFG_RELAY:-bench/kamailio-relay.cfg}
    # Kamailio holds ~15 KB of shared memory per transaction until its wait
    # timer ends: the default 64 MB answers 500 after a few seconds.
    KAM_SHM=4096
    LOAD=(--uas "127.0.0.1:$UAS_PORT" --uri "sip:uas@127.0.0.1:$UAS_PORT")
fi

# --- wisp-bench binary -------------------------------------------------------
if [[ -z "${WISP_BENCH:-}" ]]; then
    for c in target/release/wisp-bench target/h-bench/release/wisp-bench; do
        if [[ -x $c ]]; then WISP_BENCH=$c; break; fi
    done
fi
if [[ -z "${WISP_BENCH:-}" ]]; then
    log "building wisp-bench"
    CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/h-bench} cargo build --release -p wisp-bench >&2
    WISP_BENCH=${CARGO_TARGET_DIR:-target/h-bench}/release/wisp-bench
fi

# --- server lifecycle ----------------------------------------------------------
trap stop_server EXIT
trap 'exit 130' INT TERM

# run_load NAME PORT: the closed-loop runs for each window.
run_load() {
    local name=$1 port=$2 w out u0 s0 u1 s1 answered
    for w in $WINDOWS; do
        log "$name: $METHOD, window $w, count $COUNT, duration ${DURATION}s (wisp-bench on cpu $CLIENT_CPU)"
        read -r u0 s0 < <(server_ticks)
        out=$(taskset -c "$CLIENT_CPU" "$WISP_BENCH" --target "127.0.0.1:$port" --method "$METHOD" \
            --count "$COUNT" --duration "$DURATION" --window "$w" "${LOAD[@]}" "${JSON[@]}" "${EXTRA[@]}")
        read -r u1 s1 < <(server_ticks)
        echo "$out"
        answered=$(grep -oE '"answered":[0-9]+|^  answered +[0-9]+' <<<"$out" | grep -oE '[0-9]+$' || echo 0)
        cpu_per "$name" "$([[ $METHOD == call ]] && echo call || echo request)" "$answered" "$u0" "$s0" "$u1" "$s1"
    done
}

STATUS=0
LOGDIR=$(mktemp -d /tmp/bench-options.XXXXXX)
log "logs in $LOGDIR; load average: $(cut -d' ' -f1-3 /proc/loadavg)"

if ((RUN_KAM)); then
    if [[ ! -x $KAMAILIO ]]; then
        log "kamailio not found at $KAMAILIO, skipping"
    else
        log "kamailio: port $KAM_PORT, children=$CHILDREN, memory manager $KAM_MEM, cpu $SERVER_CPU"
        start_server "$LOGDIR/kamailio.log" "$KAMAILIO" -f "$KAM_CFG" -DD -E -m "$KAM_SHM" -M 8 -x "$KAM_MEM" -X "$KAM_MEM" \
            -A "BENCH_PORT=$KAM_PORT" -A "BENCH_CHILDREN=$CHILDREN"
        if wait_ready "$KAM_PORT" "$LOGDIR/kamailio.log"; then
            run_load kamailio "$KAM_PORT"
        else
            STATUS=1
        fi
        stop_server
    fi
fi

if ((RUN_WISP)); then
    read -r -a wisp_argv <<<"$WISP_CMD"
    if [[ ! -x ${wisp_argv[0]} ]] && ! command -v "${wisp_argv[0]}" >/dev/null; then
        log "wisp: ${wisp_argv[0]} does not exist (yet), skipping Wisp"
    else
        log "wisp: $WISP_CMD (port $WISP_PORT, cpu $SERVER_CPU)"
        if ((AUTH)); then
            start_server "$LOGDIR/wisp-schema.log" "${wisp_argv[@]}"
            wait_ready "$WISP_PORT" "$LOGDIR/wisp-schema.log" || STATUS=1
            stop_server
            scripts/bench-subscribers.py wisp "$WISP_DB" "$USERS" 127.0.0.1 secret
        fi
        start_server "$LOGDIR/wisp.log" "${wisp_argv[@]}"
        if wait_ready "$WISP_PORT" "$LOGDIR/wisp.log"; then
            run_load wisp "$WISP_PORT"
        else
            STATUS=1
        fi
        stop_server
    fi
fi

if ((RUN_FLOOR)); then
    FLOOR_BIN=target/release/examples/udp_floor
    [[ -x $FLOOR_BIN ]] || cargo build --release -q -p wisp-bench --example udp_floor
    log "floor: $FLOOR_BIN (port $FLOOR_PORT, cpu $SERVER_CPU)"
    start_server "$LOGDIR/floor.log" "$FLOOR_BIN" "$FLOOR_PORT"
    if wait_ready "$FLOOR_PORT" "$LOGDIR/floor.log"; then
        run_load floor "$FLOOR_PORT"
    else
        STATUS=1
    fi
    stop_server
fi

exit "$STATUS"
