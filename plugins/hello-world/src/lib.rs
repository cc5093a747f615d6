//! # Hello World — the seeds' first ser.cfg / openser.cfg, as a Wisp plugin
//!
//! The "Hello World" script of the SER and OpenSER guides
//! (`shared/seeds/002_*.txt`, `004_*.txt`): sanity checks (Max-Forwards,
//! message size), REGISTER -> `save("location")`, requests for a local user ->
//! `lookup("location")` or 404, everything else relayed.
//!
//! Build: `make plugins` (component at `target/plugins/hello_world.wasm`).
//! Run:   `target/release/wisp run --config config/hello-world.toml`.

use std::sync::OnceLock;
use wisp_sdk::prelude::*;

/// The seed's `max_len`: requests this long or longer get 513.
static MAX_LEN: OnceLock<u32> = OnceLock::new();

struct HelloWorld;

impl Plugin for HelloWorld {
    fn init(params: &Params) -> Result<(), String> {
        let max_len = params.get_or("max_len", 8192u32)?;
        let _ = MAX_LEN.set(max_len);
        Ok(())
    }

    fn route(msg: &Msg) -> Result {
        // if (!mf_process_maxfwd_header("10")) { sl_send_reply("483","Too Many Hops"); exit; }
        if !msg.mf_process_maxfwd_header(10)? {
            return msg.sl_send_reply(483, "Too Many Hops");
        }
        // if (msg:len >= max_len) { sl_send_reply("513", "Message too big"); exit; }
        if msg.len() >= *MAX_LEN.get().unwrap_or(&8192) {
            return msg.sl_send_reply(513, "Message too big");
        }
        // if (!method=="REGISTER") { record_route(); }  -- dialogs stay on this proxy
        // (the OpenSER guide prints `method=="REGISTER"`; every Hello World
        // in use records the route of everything *but* REGISTER).
        if !msg.is_method("REGISTER") {
            msg.record_route()?;
        }
        // if (loose_route()) { append_hf("P-hint: rr-enforced\r\n"); route(1); }
        if msg.loose_route()? {
            msg.append_hf("P-hint: rr-enforced")?;
            return relay(msg);
        }
        // if (!uri==myself) { append_hf("P-hint: outbound\r\n"); route(1); }
        if !msg.ruri_is_myself() {
            msg.append_hf("P-hint: outbound")?;
            return relay(msg);
        }
        // if (method=="REGISTER") { save("location"); exit; }
        if msg.is_method("REGISTER") {
            return msg.save("location");
        }
        // if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
        match msg.lookup("location") {
            Err(Error::NotFound) => return msg.sl_send_reply(404, "Not Found"),
            other => other?,
        }
        // append_hf("P-hint: usrloc applied\r\n");
        msg.append_hf("P-hint: usrloc applied")?;
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

wisp_sdk::export!(HelloWorld);
