//! # default — the plugin `make run` loads
//!
//! The seeds' Hello World script (see `plugins/hello-world`) plus what
//! Kamailio's default `kamailio.cfg` does for keepalives: an OPTIONS to the
//! router itself without a user part is answered `200 Keepalive`.
//!
//! ```text
//! route {
//!     if (!mf_process_maxfwd_header("10")) { sl_send_reply("483","Too Many Hops"); exit; }
//!     if (msg:len >= max_len) { sl_send_reply("513", "Message too big"); exit; }
//!     if (is_method("OPTIONS") && uri==myself && $rU==$null) { sl_send_reply("200","Keepalive"); exit; }
//!     if (!method=="REGISTER") { record_route(); }
//!     if (loose_route()) { route(1); }
//!     if (!uri==myself) { route(1); }
//!     if (method=="REGISTER") { save("location"); exit; }
//!     lookup("aliases");                  # seed 003, "User Aliases"
//!     if (!uri==myself) { route(1); }
//!     if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
//!     route(1);
//! }
//! route[1] { if (!t_relay()) { sl_reply_error(); } exit; }
//! ```
//!
//! Params: `max_len` (default 8192).
//! Build: `make plugins` (component at `target/plugins/default.wasm`).
//! Run:   `make run` (manifest `config/wisp.toml`).

use std::sync::OnceLock;
use wisp_sdk::prelude::*;

static MAX_LEN: OnceLock<u32> = OnceLock::new();

struct Default;

impl Plugin for Default {
    fn init(params: &Params) -> Result<(), String> {
        let _ = MAX_LEN.set(params.get_or("max_len", 8192u32)?);
        Ok(())
    }

    fn route(msg: &Msg) -> Result {
        if !msg.mf_process_maxfwd_header(10)? {
            return msg.sl_send_reply(483, "Too Many Hops");
        }
        if msg.len() >= *MAX_LEN.get().unwrap_or(&8192) {
            return msg.sl_send_reply(513, "Message too big");
        }
        let for_me = msg.ruri_is_myself();
        // The method once: every `is_method` is a host call.
        let method = msg.method();
        if for_me && method.is("OPTIONS") && msg.ruri_user().is_none() {
            return msg.sl_send_reply(200, "Keepalive");
        }
        if !method.is("REGISTER") {
            msg.record_route()?;
        }
        if msg.loose_route()? {
            return relay(msg);
        }
        if !for_me {
            return relay(msg);
        }
        if method.is("REGISTER") {
            return msg.save("location");
        }
        // An alias (`wisp ctl alias add`) rewrites the R-URI to its canonical
        // AOR, which may be elsewhere. As in the seed the result is not
        // checked: no alias, no user part or no `aliases` table all leave
        // the request to `lookup("location")`.
        if msg.lookup("aliases").is_ok() && !msg.ruri_is_myself() {
            return relay(msg);
        }
        match msg.lookup("location") {
            Err(Error::NotFound) => return msg.sl_send_reply(404, "Not Found"),
            other => other?,
        }
        relay(msg)
    }
}

/// `route[1]`: `if (!t_relay()) { sl_reply_error(); }`
fn relay(msg: &Msg) -> Result {
    if msg.t_relay().is_err() {
        return msg.sl_reply_error();
    }
    Ok(())
}

wisp_sdk::export!(Default);
