#!/usr/bin/env bash
# Cold and warm start of `wisp run`: time from exec to the first answered
# OPTIONS, the moment the router really serves (the "wisp ready" log line
# comes a little earlier and proves less).
#
# The manifest is config/wisp.toml with free loopback ports and a var/ of its
# own in a temporary directory. "cold": that var/ is empty before each start
# (no plugin cache, no database); "warm": it is kept from the previous start
# (plugin cache and database present), as on a restart.
#
# A poller sends an OPTIONS every 0.5 ms over a connected UDP socket (each
# with a new branch and Call-ID) until one is answered; before the socket is
# bound the kernel refuses at once, so the poll adds at most ~0.5 ms.
#
# Usage: scripts/bench-startup.sh [RUNS]     (default 10 per case)
# Environment: WISP=target/release/wisp  PLUGIN=target/plugins/default.wasm
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

RUNS=${1:-10}
WISP=${WISP:-target/release/wisp}
PLUGIN=${PLUGIN:-target/plugins/default.wasm}
for f in "$WISP" "$PLUGIN"; do
    [[ -e $f ]] || { echo "$f missing: run make build plugins" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/bench-startup.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

python3 - "$RUNS" "$(realpath "$WISP")" "$(realpath "$PLUGIN")" "$WORK" <<'EOF'
import os, shutil, socket, statistics, subprocess, sys, time

runs, wisp, plugin, work = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

def free_port():
    # Free for both UDP and TCP: the manifest listens on both.
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                    t.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue

port = free_port()
manifest = os.path.join(work, "wisp.toml")
with open("config/wisp.toml") as f:
    text = f.read()
text = (text.replace("127.0.0.1:5060", f"127.0.0.1:{port}")
            .replace('"../var/', '"var/')
            .replace('"../target/plugins/default.wasm"', f'"{plugin}"'))
with open(manifest, "w") as f:
    f.write(text)

def options(n):
    return (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{sock_port};branch=z9hG4bK-start-{n};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:bench@127.0.0.1>;tag=start{n}\r\n"
            f"To: <sip:127.0.0.1:{port}>\r\n"
            f"Call-ID: start-{n}-{os.getpid()}@127.0.0.1\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()

def one_start():
    global sock_port
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    sock_port = s.getsockname()[1]
    s.connect(("127.0.0.1", port))
    s.settimeout(0.0005)
    log = open(os.path.join(work, "wisp.log"), "ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen([wisp, "run", "--config", manifest],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    n = 0
    try:
        while True:
            if proc.poll() is not None:
                sys.exit(f"wisp exited during start; see log:\n{open(log.name).read()}")
            if time.perf_counter() - t0 > 10:
                sys.exit("no answer within 10 s")
            n += 1
            try:
                s.send(options(n))
                if s.recv(65535).startswith(b"SIP/2.0 "):
                    return (time.perf_counter() - t0) * 1000
            except (ConnectionRefusedError, socket.timeout):
                pass
    finally:
        proc.terminate()
        proc.wait()
        s.close()
        log.close()

var = os.path.join(work, "var")
for case in ("cold", "warm"):
    times = []
    if case == "warm":
        one_start()  # fill the cache (and create the database) once
    for _ in range(runs):
        if case == "cold":
            shutil.rmtree(var, ignore_errors=True)
        times.append(one_start())
    times.sort()
    print(f"{case}: median {statistics.median(times):.1f} ms, "
          f"min {times[0]:.1f}, max {times[-1]:.1f} ({runs} starts, exec -> first answered OPTIONS)")
with open(os.path.join(work, "wisp.log")) as f:
    loaded = [l.strip() for l in f if "plugin loaded from cache" in l or "plugin compiled" in l]
for l in loaded[:1] + loaded[-1:]:
    print("  log:", l)
EOF
