#!/usr/bin/env bash
# Several routers on one PostgreSQL (issue 17), side by side with Kamailio:
#
#  1. REGISTER write-through: every REGISTER a new AOR, answered after the
#     commit that holds it. Kamailio: usrloc db_mode 3 on db_postgres
#     (bench/kamailio-usrloc-pg.cfg); Wisp: usrloc.db_mode 3 on the same
#     server (config/bench-pg.toml, plugins/bench-lookup). Same script.
#  2. Lookups from a second node: a second router of the same kind, started
#     after the REGISTERs, answers OPTIONS to those AORs from user location
#     (200 Found, 404 when not found: any 404 is a failure).
#
# One throwaway PostgreSQL 15 server (Debian's postgresql, fsync on) on
# 127.0.0.1:PG_PORT holds both databases; each side starts from an empty one.
# Each router runs on SERVER_CPU, wisp-bench and PostgreSQL on CLIENT_CPU.
# Run it on a quiet machine; the rounds alternate Kamailio and Wisp.
#
# Usage: scripts/bench-pg.sh [--count N] [--rounds R] [--window W] [--duration S]
#   --count N      REGISTERs (new AORs) per run and lookups per run (default 50000)
#   --rounds R     alternated Kamailio/Wisp rounds (default 2)
#   --window W     requests outstanding (default 256)
#   --duration S   max seconds of sending per run (default 30)
#   --kam-children N  Kamailio UDP workers, all on SERVER_CPU (default 1). In
#                  db_mode 3 each waits on the database per request, so more
#                  of them on the same core overlap those waits.
#
# Prints one JSON line per run, then a table (requests/s, failures, the
# router's CPU per request).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

COUNT=50000 ROUNDS=2 WINDOW=256 DURATION=30 KAM_CHILDREN=1
while (($#)); do
    case $1 in
        --count) COUNT=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --window) WINDOW=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --kam-children) KAM_CHILDREN=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

PG_PORT=${PG_PORT:-5499}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
KAMAILIO=${KAMAILIO:-/usr/sbin/kamailio}
PORT_A=5060 PORT_B=5061
WISP_BENCH=target/release/wisp-bench
log() { echo "== $*" >&2; }

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
for need in "$PG_BIN/initdb" "$KAMAILIO" /usr/lib/x86_64-linux-gnu/kamailio/modules/db_postgres.so \
    "$WISP_BENCH" target/release/wisp target/plugins/bench_lookup.wasm; do
    [[ -e $need ]] || { echo "missing $need (apt-get install postgresql kamailio kamailio-postgres-modules; make build plugins)" >&2; exit 2; }
done

# --- the database server -------------------------------------------------------
PGDIR=/tmp/wisp-bench-pg
as_pg() { if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_stop() { as_pg "$PG_BIN/pg_ctl" -D "$PGDIR/data" -m fast stop >/dev/null 2>&1 || true; }
rm -rf "$PGDIR" && mkdir -p "$PGDIR"
((EUID == 0)) && chown postgres "$PGDIR"
as_pg "$PG_BIN/initdb" -D "$PGDIR/data" -U wisp --auth=trust >"$PGDIR/initdb.log" 2>&1
as_pg taskset -c "$CLIENT_CPU" "$PG_BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w \
    -o "-p $PG_PORT -k $PGDIR -c listen_addresses=127.0.0.1 -c max_connections=50" start >/dev/null
SERVER_PID=""
cleanup() { stop_router; pg_stop; }
trap cleanup EXIT
trap 'exit 130' INT TERM
psql_() { psql -q -h 127.0.0.1 -p "$PG_PORT" -U wisp -v ON_ERROR_STOP=1 "$@"; }

fresh_databases() {
    psql_ -d postgres -c "DROP DATABASE IF EXISTS kamailio" -c "DROP DATABASE IF EXISTS wisp" \
        -c "CREATE DATABASE kamailio" -c "CREATE DATABASE wisp"
    psql_ -d kamailio -f /usr/share/kamailio/postgres/standard-create.sql >/dev/null
    psql_ -d kamailio -f /usr/share/kamailio/postgres/usrloc-create.sql >/dev/null
}

# --- routers ---------------------------------------------------------------------
stop_router() {
    [[ -n "$SERVER_PID" ]] || return 0
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
LOGDIR=$(mktemp -d /tmp/bench-pg.XXXXXX)
start_router() { # NAME PORT
    local name=$1 port=$2
    if [[ $name == kamailio ]]; then
        setsid taskset -c "$SERVER_CPU" "$KAMAILIO" -f bench/kamailio-usrloc-pg.cfg -DD -E -m 1024 -M 8 \
            -x fm -X fm -A "BENCH_PORT=$port" -A "BENCH_CHILDREN=$KAM_CHILDREN" \
            -A "BENCH_DB_URL=\"postgres://wisp@127.0.0.1:$PG_PORT/kamailio\"" \
            >"$LOGDIR/$name-$port.log" 2>&1 </dev/null &
    else
        sed -e "s/127.0.0.1:5060/127.0.0.1:$port/; s/bench-pg.ctl/bench-pg-$port.ctl/; s/:5499/:$PG_PORT/" \
            config/bench-pg.toml >"target/bench-pg-$port.toml"
        setsid taskset -c "$SERVER_CPU" target/release/wisp run --config "target/bench-pg-$port.toml" \
            >"$LOGDIR/$name-$port.log" 2>&1 </dev/null &
    fi
    SERVER_PID=$!
    local deadline=$((SECONDS + 15))
    while ((SECONDS < deadline)); do
        # Any final answer (a 404 for this unknown user) means it is up.
        if "$WISP_BENCH" --target "127.0.0.1:$port" --uri "sip:nobody@127.0.0.1" --count 1 \
            --timeout-ms 500 --expect 404 --json 2>/dev/null | grep -q '"answered":1,'; then
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.2
    done
    log "$name on $port did not start; log:"; tail -20 "$LOGDIR/$name-$port.log" >&2
    exit 1
}
server_ticks() {
    # cat, not awk on the glob: a process that ends meanwhile must not end the sum.
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v g="$SERVER_PID" '$5 == g { t += $14 + $15 } END { print t + 0 }'
}
load() { # NAME WHAT PORT wisp-bench-args...
    local name=$1 what=$2 port=$3; shift 3
    local t0 t1 out
    t0=$(server_ticks)
    out=$(taskset -c "$CLIENT_CPU" "$WISP_BENCH" --target "127.0.0.1:$port" --count "$COUNT" \
        --duration "$DURATION" --window "$WINDOW" --json "$@")
    t1=$(server_ticks)
    echo "{\"router\":\"$name\",\"what\":\"$what\",\"server_cpu_ticks\":$((t1 - t0)),\"bench\":$out}" \
        | tee -a "$LOGDIR/results.jsonl"
}

for round in $(seq "$ROUNDS"); do
    for name in kamailio wisp; do
        fresh_databases
        log "round $round: $name REGISTER x $COUNT through node A (port $PORT_A)"
        start_router "$name" "$PORT_A"
        out=$(load "$name" register "$PORT_A" --method register)
        echo "$out"
        registered=$(grep -oE '"succeeded":[0-9]+' <<<"$out" | grep -oE '[0-9]+$')
        stop_router
        log "round $round: $name lookups x $COUNT of the $registered AORs, through node B (port $PORT_B)"
        start_router "$name" "$PORT_B"
        load "$name" lookup "$PORT_B" --method options --uri "sip:user{user}@127.0.0.1" --users "${registered:-1}"
        stop_router
    done
done
python3 - "$LOGDIR/results.jsonl" "$(getconf CLK_TCK)" <<'PY'
import json, sys
hz = int(sys.argv[2])
print(f"{'router':9} {'run':9} {'req/s':>9} {'failed':>6} {'lost':>5} {'CPU us/req':>10}")
for line in open(sys.argv[1]):
    r = json.loads(line); b = r["bench"]
    cpu = r["server_cpu_ticks"] / hz * 1e6 / max(b["answered"], 1)
    print(f"{r['router']:9} {r['what']:9} {b['throughput']:9.0f} {b['failed']:6} {b['lost']:5} {cpu:10.1f}")
PY
log "logs in $LOGDIR"
