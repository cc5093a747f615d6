//! # Hello World — the seeds' first ser.cfg / openser.cfg, as a Wisp plugin
//!
//! The "Hello World" script of the SER and OpenSER guides
//! (`shared/seeds/002_*.txt`, `004_*.txt`): sanity checks (Max-Forwards,
//! message size), REGISTER -> `save("location")`, requests for a local user ->
//! `lookup("location")` or 404, everything else relayed.
//!
//! Build: `make plugins` (component at `target/plugins/hello_world.wasm`).
//! Run:   `target/release/wisp run --config config/hello-world.toml`.

use wisp_sdk::prelude::*;

struct HelloWorld {
    /// The seed's `max_len`: requests this long or longer get 513.
    max_len: u32,
}

impl Configured for HelloWorld {
    fn init(params: &Params) -> Result<Self, String> {
        Ok(HelloWorld {
            max_len: params.get_or("max_len", 8192u32)?,
        })
    }

    fn route(&self, msg: &Msg) -> Result {
        // if (!mf_process_maxfwd_header("10")) { sl_send_reply("483","Too Many Hops"); exit; }
        if !msg.mf_process_maxfwd_header(10)? {
            return msg.sl_send_reply(483, "Too Many Hops");
        }
        // if (msg:len >= max_len) { sl_send_reply("513", "Message too big"); exit; }
        if msg.len() >= self.max_len {
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
            return msg.relay();
        }
        // if (!uri==myself) { append_hf("P-hint: outbound\r\n"); route(1); }
        if !msg.ruri_is_myself() {
            msg.append_hf("P-hint: outbound")?;
            return msg.relay();
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
        msg.relay()
    }
}

wisp_sdk::export!(HelloWorld);
