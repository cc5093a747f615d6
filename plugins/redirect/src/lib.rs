//! # Redirect Server — seed 001, "Destination Set" and "Redirect Server"
//!
//! SER's redirect example (`examples/redirect.cfg` of the admin guide,
//! `shared/seeds/001_*.txt`): the destination set is the rewritten
//! Request-URI plus an appended branch, and a 3xx from `sl_send_reply`
//! lists the whole set in Contact. With param `mode = "forward"` the same
//! set is forwarded statelessly instead, which — as the guide says of
//! "most other ser actions" — uses the first URI only.
//!
//! Params: `first` and `second` (the seed's `sip:parallel@iptel.org:9` and
//! `sip:redirect@iptel.org:9` by default), `mode` (`redirect` or `forward`).
//!
//! Build: `make plugins` (component at `target/plugins/redirect.wasm`).

use std::sync::OnceLock;
use wisp_sdk::prelude::*;

struct Config {
    first: String,
    second: String,
    forward: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

struct Redirect;

impl Plugin for Redirect {
    fn init(params: &Params) -> Result<(), String> {
        let mode = params.get_or("mode", "redirect".to_owned())?;
        let forward = match mode.as_str() {
            "redirect" => false,
            "forward" => true,
            other => return Err(format!("param mode: {other:?} is not redirect or forward")),
        };
        let _ = CONFIG.set(Config {
            first: params.get_or("first", "sip:parallel@iptel.org:9".to_owned())?,
            second: params.get_or("second", "sip:redirect@iptel.org:9".to_owned())?,
            forward,
        });
        Ok(())
    }

    fn route(msg: &Msg) -> Result {
        let Some(cfg) = CONFIG.get() else {
            return msg.sl_send_reply(500, "Not Initialized");
        };
        // # redirect to these two destinations
        // rewriteuri("sip:parallel@iptel.org:9");
        msg.set_ruri(&cfg.first)?;
        // append_branch("sip:redirect@iptel.org:9");
        msg.append_branch(Some(&cfg.second))?;
        if cfg.forward {
            // forward(uri:host, uri:port);  -- the first URI only
            return msg.forward();
        }
        // sl_send_reply("300", "Redirect");  -- Contact: the destination set
        msg.sl_send_reply(300, "Redirect")
    }
}

wisp_sdk::export!(Redirect);
