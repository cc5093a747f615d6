//! # Minimal — the fixture of the per-message overhead benchmark
//!
//! The cheapest route that still crosses the host boundary the way every
//! route does: read the method, and for an OPTIONS set a flag and append a
//! header. It sends nothing, so `host/benches/plugin_call.rs` measures the
//! call and its host calls rather than a socket; the bench runs the same
//! logic as native Rust for comparison.
//!
//! Build: `make plugins` (component at `target/plugins/minimal.wasm`).

use wisp_sdk::prelude::*;

struct Minimal;

impl Plugin for Minimal {
    fn route(msg: &Msg) -> Result {
        if msg.method() == "OPTIONS" {
            msg.setflag(1);
            msg.append_hf("X-Wisp-Seen: 1")?;
        }
        Ok(())
    }
}

wisp_sdk::export!(Minimal);
