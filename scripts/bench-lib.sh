# Shared by the benchmark scripts (source it): one server under test at a
# time, pinned to SERVER_CPU in its own process group, and its CPU time.
# The sourcing script sets WISP_BENCH (the load tool) and READY_TIMEOUT.

log() { echo "== $*" >&2; }

SERVER_PID=""

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    local pid=$SERVER_PID
    SERVER_PID=""
    # The server runs in its own process group (setsid): signal the whole group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "server $pid did not stop, killing"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# start_server LOGFILE CMD...: starts CMD pinned to SERVER_CPU in a new session.
start_server() {
    local logfile=$1; shift
    setsid taskset -c "$SERVER_CPU" "$@" >"$logfile" 2>&1 </dev/null &
    SERVER_PID=$!
}

# answers PORT: one OPTIONS over UDP gets a final response (any status: the
# REGISTER benchmark's Kamailio answers OPTIONS 404).
answers() {
    local port=$1
    "$WISP_BENCH" --target "127.0.0.1:$port" --count 1 --timeout-ms 500 --json 2>/dev/null \
        | grep -q '"answered":1,'
}

# wait_ready PORT LOGFILE: until the server answers on UDP PORT, it exits,
# or READY_TIMEOUT seconds pass.
wait_ready() {
    local port=$1 logfile=$2
    local deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "server exited during startup; log:"; cat "$logfile" >&2; return 1
        fi
        if answers "$port"; then return 0; fi
        sleep 0.2
    done
    log "server on port $port did not answer within ${READY_TIMEOUT}s; log tail:"
    tail -20 "$logfile" >&2
    return 1
}

# CPU time (clock ticks) used so far by all processes of the server's process group,
# as "user system". Reported per request, it is a figure that other load on the
# machine disturbs less than throughput does.
server_ticks() {
    # cat, not awk on the glob: awk stops at a process that ended meanwhile.
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v g="$SERVER_PID" '$5 == g { u += $14; s += $15 } END { print u + 0, s + 0 }'
}

# cpu_per NAME UNIT ANSWERED U0 S0 U1 S1: prints the server's CPU per answer.
cpu_per() {
    local name=$1 unit=$2 n=$3 u=$(($6 - $4)) s=$(($7 - $5))
    awk -v u="$u" -v s="$s" -v hz="$(getconf CLK_TCK)" -v n="${n:-0}" -v name="$name" -v unit="$unit" 'BEGIN {
        d = u + s
        printf "== %s: server CPU %.2f s", name, d / hz
        if (n > 0) printf " = %.1f us/%s (user %.1f, kernel %.1f)", d / hz * 1e6 / n, unit,
            u / hz * 1e6 / n, s / hz * 1e6 / n
        printf "\n" }' >&2
}
