//! # {name} — a Wisp routing plugin
//!
//! The SER/OpenSER "Hello World" script: sanity checks, REGISTER ->
//! `save("location")`, requests for a local user -> `lookup("location")`
//! or 404, everything else relayed statefully.
//!
//! Build: `wisp build` (prints where the component is).
//! Test:  `cargo test`, or `wisp test --plugin target/plugins/{lib}.wasm cases`.
//! Run:   `wisp run --config wisp.toml`.

use wisp_sdk::prelude::*;

struct Router {
    /// Requests this long or longer get 513 (param `max_len`).
    max_len: u32,
}

impl Configured for Router {
    fn init(params: &Params) -> Result<Self, String> {
        Ok(Router {
            max_len: params.get_or("max_len", 8192u32)?,
        })
    }

    fn route(&self, msg: &Msg) -> Result {
        if !msg.mf_process_maxfwd_header(10)? {
            return msg.sl_send_reply(483, "Too Many Hops");
        }
        if msg.len() >= self.max_len {
            return msg.sl_send_reply(513, "Message too big");
        }
        let method = msg.method();
        if !method.is("REGISTER") {
            msg.record_route()?;
        }
        if msg.loose_route()? || !msg.ruri_is_myself() {
            return msg.relay();
        }
        if method.is("REGISTER") {
            return msg.save("location");
        }
        match msg.lookup("location") {
            Err(Error::NotFound) => return msg.sl_send_reply(404, "Not Found"),
            other => other?,
        }
        msg.relay()
    }
}

wisp_sdk::export!(Router);
