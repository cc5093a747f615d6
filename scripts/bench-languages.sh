#!/usr/bin/env bash
# The Hello World plugin in each language (Rust, C, Zig, JavaScript, Python):
# component size, cold compile, cached load, instantiate + init, route call
# and memory, as a Markdown table (host/benches/languages.rs says what each
# column measures). Builds what is missing first; languages whose toolchain
# is absent show as "not built".
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f target/plugins/minimal.wasm ] && [ -f target/plugins/hello_world.wasm ] || scripts/build-plugins.sh
for lang in $(scripts/build-languages.sh --list); do
    [ -f "target/plugins/hello_world_$lang.wasm" ] || scripts/build-languages.sh "$lang"
done
cargo bench -q -p wisp --bench languages
