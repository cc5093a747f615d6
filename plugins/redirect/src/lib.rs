//! # Redirect Server — seed 001, "Destination Set" and "Redirect Server"
//!
//! SER's redirect example (`examples/redirect.cfg` of the admin guide,
//! `shared/seeds/001_*.txt`): the destination set is the rewritten
//! Request-URI plus an appended branch, and a 3xx from `sl_send_reply`
//! lists the whole set in Contact. With param `mode = "forward"` the same
//! set is forwarded statelessly instead, which — as the guide says of
//! "most other ser actions" — uses the first URI only. With `mode =
//! "relay"` it is relayed statefully: "If called with a non-trivial
//! destination set, t_relay forks incoming request to all URIs in current
//! destination set."
//!
//! Params: `first` and `second` (the seed's `sip:parallel@iptel.org:9` and
//! `sip:redirect@iptel.org:9` by default), `mode` (`redirect`, `forward` or
//! `relay`).
//!
//! Build: `make plugins` (component at `target/plugins/redirect.wasm`).

use std::sync::OnceLock;
use wisp_sdk::prelude::*;

/// What the route does with the destination set.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Redirect,
    Forward,
    Relay,
}

struct Config {
    first: String,
    second: String,
    mode: Mode,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

struct Redirect;

impl Plugin for Redirect {
    fn init(params: &Params) -> Result<(), String> {
        let mode = params.get_or("mode", "redirect".to_owned())?;
        let mode = match mode.as_str() {
            "redirect" => Mode::Redirect,
            "forward" => Mode::Forward,
            "relay" => Mode::Relay,
            other => {
                return Err(format!(
                    "param mode: {other:?} is not redirect, forward or relay"
                ));
            }
        };
        let _ = CONFIG.set(Config {
            first: params.get_or("first", "sip:parallel@iptel.org:9".to_owned())?,
            second: params.get_or("second", "sip:redirect@iptel.org:9".to_owned())?,
            mode,
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
        match cfg.mode {
            // forward(uri:host, uri:port);  -- the first URI only
            Mode::Forward => msg.forward(),
            // t_relay();  -- forks to every URI of the set
            Mode::Relay => msg.relay(),
            // sl_send_reply("300", "Redirect");  -- Contact: the destination set
            Mode::Redirect => msg.sl_send_reply(300, "Redirect"),
        }
    }
}

wisp_sdk::export!(Redirect);
