//! # Bench-options — the fixture of the OPTIONS benchmarks
//!
//! The same script as `bench/kamailio-options.cfg` and
//! `bench/kamailio-options-tls.cfg`, so that both routers do the same work
//! per request and the benchmark measures the transport, the parser and
//! one stateless reply:
//!
//! ```text
//! request_route {
//!     sl_send_reply("200", "OK");
//!     exit;
//! }
//! ```
//!
//! Build: `make plugins` (component at `target/plugins/bench_options.wasm`);
//! run by `scripts/bench-tls.sh`.

use wisp_sdk::prelude::*;

struct BenchOptions;

impl Plugin for BenchOptions {
    fn route(msg: &Msg) -> Result {
        // sl_send_reply("200", "OK"); exit;
        msg.sl_send_reply(200, "OK")
    }
}

wisp_sdk::export!(BenchOptions);
