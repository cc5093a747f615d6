#!/usr/bin/env bash
# Hello World in C, Zig, JavaScript and Python (plugins/hello-world-{c,zig,js,py},
# issue 22), each built when its toolchain is present (scripts/setup.sh installs
# them) to target/plugins/hello_world_<lang>.wasm.
#   scripts/build-languages.sh           build every language whose toolchain is here
#   scripts/build-languages.sh c py      build these (fails when a toolchain is missing)
#   scripts/build-languages.sh --list    print the languages whose toolchain is here:
#                                        the end-to-end test holds each to its build
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/plugins
mkdir -p "$out"
wit_world="$PWD/wit"

have_c() { command -v clang-19 >/dev/null && command -v wasm-ld-19 >/dev/null \
    && [ -f /usr/lib/wasm32-wasi/libc.a ]; }
have_zig() { python3 -c 'import ziglang' 2>/dev/null; }
have_js() { command -v npm >/dev/null && command -v node >/dev/null; }
have_py() { command -v componentize-py >/dev/null; }

languages() {
    have_c && echo c
    have_zig && echo zig
    have_js && echo js
    have_py && echo py
    return 0
}

# C (and Zig) link wit-bindgen's C bindings, committed under bindings/ (see
# plugins/hello-world-c/README.md to regenerate them).
c_bindings=plugins/hello-world-c/bindings

build_c() {
    local tmp=target/lang/c
    mkdir -p "$tmp"
    clang-19 --target=wasm32-wasi -O2 -mexec-model=reactor -Wall -Werror \
        -I "$c_bindings" -I plugins/hello-world-c \
        -Wl,--no-entry -Wl,--strip-all \
        -o "$tmp/hello_world_c.core.wasm" \
        plugins/hello-world-c/hello_world.c "$c_bindings/plugin.c" \
        "$c_bindings/plugin_component_type.o"
    wasm-tools component new "$tmp/hello_world_c.core.wasm" -o "$out/hello_world_c.wasm"
    echo "built $out/hello_world_c.wasm ($(stat -c %s "$out/hello_world_c.wasm") bytes)"
}

build_zig() {
    local tmp=target/lang/zig
    mkdir -p "$tmp"
    # Zig 0.16+ has no @cImport: the C header becomes a module "c".
    # -mexec-model=reactor: no _start, so no wasi_snapshot_preview1 imports
    # (args_get, proc_exit) and the core module becomes a component as is.
    python3 -m ziglang translate-c -target wasm32-wasi -lc "$c_bindings/plugin.h" \
        > "$tmp/plugin_h.zig"
    python3 -m ziglang build-exe -target wasm32-wasi -O ReleaseSmall -fno-entry -mexec-model=reactor -lc \
        -I "$c_bindings" "$c_bindings/plugin.c" "$c_bindings/plugin_component_type.o" \
        --dep c -Mroot=plugins/hello-world-zig/hello_world.zig -Mc="$tmp/plugin_h.zig" \
        -femit-bin="$tmp/hello_world_zig.core.wasm" \
        --cache-dir "$tmp/cache" --global-cache-dir "$tmp/global-cache"
    wasm-tools component new "$tmp/hello_world_zig.core.wasm" -o "$out/hello_world_zig.wasm"
    echo "built $out/hello_world_zig.wasm ($(stat -c %s "$out/hello_world_zig.wasm") bytes)"
}

build_js() {
    # componentize-js as pinned by package-lock.json (setup.sh installs it).
    # Again when package-lock.json is newer than what npm last installed.
    local js=plugins/hello-world-js
    if [ ! -x $js/node_modules/.bin/componentize-js ] \
        || [ $js/package-lock.json -nt $js/node_modules/.package-lock.json ]; then
        npm ci --prefix $js --no-audit --no-fund --silent
    fi
    # Without WASI: stdio, random, clocks, http and fetch-event are left out.
    plugins/hello-world-js/node_modules/.bin/componentize-js plugins/hello-world-js/app.js \
        --wit "$wit_world" -n plugin -o "$out/hello_world_js.wasm" \
        -d stdio random clocks http fetch-event
    echo "built $out/hello_world_js.wasm ($(stat -c %s "$out/hello_world_js.wasm") bytes)"
}

build_py() {
    componentize-py -d "$wit_world" -w plugin componentize -p plugins/hello-world-py app \
        -o "$out/hello_world_py.wasm" >/dev/null
    echo "built $out/hello_world_py.wasm ($(stat -c %s "$out/hello_world_py.wasm") bytes)"
    # The WASI refusal tests' fixture (tests/tests/wasi.rs).
    componentize-py -d "$wit_world" -w plugin componentize -p plugins/wasi-probe-py app \
        -o "$out/wasi_probe_py.wasm" >/dev/null
    echo "built $out/wasi_probe_py.wasm ($(stat -c %s "$out/wasi_probe_py.wasm") bytes)"
}

if [ "${1:-}" = --list ]; then
    languages
    exit 0
fi
if [ $# -eq 0 ]; then
    set -- $(languages)
fi
for lang in "$@"; do
    "build_$lang"
done
