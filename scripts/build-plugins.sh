#!/usr/bin/env bash
# Build every plugin crate under plugins/ to a WebAssembly component in
# target/plugins/<crate_name>.wasm.
#
# The wasm32 recipe (which standard library, which linker) is
# scripts/wasm32.sh, shared with `wisp build`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/plugins
mkdir -p "$out"

plugins=()
for dir in plugins/*/; do
    [ -f "$dir/Cargo.toml" ] || continue
    plugins+=(-p "$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$dir/Cargo.toml" | head -1)")
done

. scripts/wasm32.sh
missing=$(wasm32_missing)
if [ -n "$missing" ]; then
    echo "build-plugins: cannot build plugins here:" >&2
    echo "$missing" >&2
    exit 1
fi

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
