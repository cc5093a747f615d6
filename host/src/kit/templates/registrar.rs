//! # {name} — a Wisp registrar with digest authentication
//!
//! REGISTER to this domain is challenged (`www_authorize`, users from
//! `wisp ctl user add`), saved when the credentials match the To user;
//! requests to a registered user are relayed to its contact, others get 404.
//!
//! Build: `wisp build` (prints where the component is).
//! Test:  `cargo test`, or `wisp test --plugin target/plugins/{lib}.wasm cases`.

use wisp_sdk::prelude::*;

struct Registrar;

impl Plugin for Registrar {
    fn route(msg: &Msg) -> Result {
        if !msg.mf_process_maxfwd_header(10)? {
            return msg.sl_send_reply(483, "Too Many Hops");
        }
        if !msg.ruri_is_myself() {
            return msg.sl_send_reply(403, "Not relaying");
        }
        if msg.is_method("REGISTER") {
            if auth::require_www(msg, "")?.challenged() {
                return Ok(());
            }
            if !msg.check_to() {
                return msg.sl_send_reply(403, "Forbidden auth ID");
            }
            return msg.save("location");
        }
        match msg.lookup("location") {
            Err(Error::NotFound) => return msg.sl_send_reply(404, "Not Found"),
            other => other?,
        }
        msg.relay()
    }
}

wisp_sdk::export!(Registrar);
