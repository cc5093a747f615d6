#!/usr/bin/env bash
# Build every plugin crate under plugins/ to a WebAssembly component in
# target/plugins/<crate_name>.wasm.
#
# Two ways to get a wasm32 standard library (see shared/DESIGN.md):
#  - where rustup has the wasm32-unknown-unknown target installed: plain cargo;
#  - otherwise Debian's rustc-web/cargo-web/rust-web-src and -Zbuild-std.
# The plugin build gets its own target dir so the two toolchains never share
# build outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/plugins
mkdir -p "$out"

# Plugins ship without debug info: smaller components compile faster at load.
export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true

plugins=()
for dir in plugins/*/; do
    [ -f "$dir/Cargo.toml" ] || continue
    plugins+=(-p "$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$dir/Cargo.toml" | head -1)")
done

libdir=$(rustc --print target-libdir --target wasm32-unknown-unknown 2>/dev/null || true)
wasm_build() {
    if [ -n "$libdir" ] && ls "$libdir"/libcore-*.rlib >/dev/null 2>&1; then
        cargo build --release --target wasm32-unknown-unknown --target-dir target/wasm "$@"
    else
        lld=$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld
        PATH=/usr/bin:$PATH RUSTC_BOOTSTRAP=1 RUSTFLAGS="-C linker=$lld" \
            cargo build --release --target wasm32-unknown-unknown --target-dir target/wasm \
            -Zbuild-std=std,panic_abort "$@"
    fi
}

# componentize <crate name> <output name>
componentize() {
    local lib=${1//-/_}
    wasm-tools component new "target/wasm/wasm32-unknown-unknown/release/$lib.wasm" -o "$out/$2.wasm"
    echo "built $out/$2.wasm ($(stat -c %s "$out/$2.wasm") bytes)"
}

wasm_build "${plugins[@]}"
for dir in plugins/*/; do
    [ -f "$dir/Cargo.toml" ] || continue
    name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$dir/Cargo.toml" | head -1)
    lib=${name//-/_}
    componentize "$name" "${lib#wisp_plugin_}"
done

# Extra builds of a plugin with other features (test fixtures): each line of
# plugins/<dir>/variants is "<suffix> <features>", built to <name>_<suffix>.wasm.
for variants in plugins/*/variants; do
    [ -f "$variants" ] || continue
    dir=$(dirname "$variants")
    name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$dir/Cargo.toml" | head -1)
    while read -r suffix features; do
        [ -n "$suffix" ] || continue
        wasm_build -p "$name" --features "$features"
        lib=${name//-/_}
        componentize "$name" "${lib#wisp_plugin_}_$suffix"
    done < "$variants"
done


# Hello World in C, Zig, JavaScript and Python, where their toolchains are.
scripts/build-languages.sh
