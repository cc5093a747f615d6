# Wisp: two commands do everything on a fresh Debian machine.
#   make run   installs what is missing, builds host and plugins, starts the
#              router on config/wisp.toml (127.0.0.1:5060 UDP and TCP).
#   make test  the whole suite (unit, parser, plugin, end-to-end with sipsak).
# `make plugins` builds the Rust plugins and, where their toolchains are, the
# Hello World in C, Zig, JavaScript and Python (scripts/build-languages.sh).

CONFIG ?= config/wisp.toml

.PHONY: all setup build plugins run test bench check fmt fuzz

all: build plugins

setup:
	@scripts/setup.sh

build: setup
	cargo build --release -p wisp -p wisp-bench

plugins: setup
	scripts/build-plugins.sh

run: build plugins
	target/release/wisp run --config $(CONFIG)

check: build plugins
	target/release/wisp check --config $(CONFIG)

# Native crates only: plugins are built for wasm32 by `make plugins`.
NATIVE = --workspace $(foreach p,$(notdir $(patsubst %/Cargo.toml,%,$(wildcard plugins/*/Cargo.toml))),--exclude wisp-plugin-$(p))

# One build of every target first: with dev-dependencies' features unified
# the same way as the test run, so the wisp binary the end-to-end tests
# drive is not compiled twice.
test: setup plugins
	cargo build --release $(NATIVE) --all-targets
	cargo test --release $(NATIVE) $(TEST_ARGS)

bench: build plugins
	cargo bench -p wisp-sip --bench parse
	cargo bench -p wisp --bench plugin_call
	scripts/bench-startup.sh
	scripts/bench-options.sh

fmt:
	cargo fmt --all

# Coverage-guided fuzzing (cargo-fuzz, libFuzzer + AddressSanitizer) of the
# parser, the TCP framer and the header parsers, FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)
