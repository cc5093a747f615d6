//! # Domain Matching — seed 001, "URI Matching"
//!
//! The SER admin guide decides whether a request is for a served domain two
//! ways (`shared/seeds/001_*.txt`): `uri==myself`, true for the server's own
//! addresses and the names in `alias=` (the manifest's `server.aliases`),
//! and a regular expression that must not match longer host names such as
//! `192.168.0.101` or `foo.bar.otherdomain.com`. Param `match = "myself"`
//! (default) or `"regex"` picks the form. A served request is answered
//! `200 Served Domain` here (the seed's "domain-specific logic follows
//! here"); any other is relayed (`t_relay`), as the seed does, or, with
//! param `relay_outbound = false`, answered `403 Outbound Domain` (tests use
//! it: the seed's outbound hosts are not on this machine's loopback).
//!
//! Build: `make plugins` (component at `target/plugins/domain_matching.wasm`).

use std::sync::OnceLock;

use regex::Regex;
use wisp_sdk::prelude::*;

struct Config {
    /// `None`: `uri==myself`; else the seed's expression.
    served: Option<Regex>,
    relay_outbound: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// "Domain Matching Using Regular Expressions": server sip.foo.bar at
/// 192.168.0.10 serving foo.bar; matches are case-insensitive.
const SEED_EXPRESSION: &str = r"(?i)^sip:(.+@)?(192\.168\.0\.10|(sip\.)?foo\.bar)([:;\?].*)?$";

struct DomainMatching;

impl Plugin for DomainMatching {
    fn init(params: &Params) -> Result<(), String> {
        let served = match params.get("match").unwrap_or("myself") {
            "myself" => None,
            "regex" => Some(Regex::new(SEED_EXPRESSION).map_err(|e| e.to_string())?),
            other => return Err(format!("param match: {other:?} is not myself or regex")),
        };
        let relay_outbound = params.get_or("relay_outbound", true)?;
        let _ = CONFIG.set(Config {
            served,
            relay_outbound,
        });
        Ok(())
    }

    fn route(msg: &Msg) -> Result {
        let Some(cfg) = CONFIG.get() else {
            return msg.sl_send_reply(500, "Not Initialized");
        };
        let served = match &cfg.served {
            // if (uri=~"^sip:(.+@)?(192\.168\.0\.10|(sip\.)?foo\.bar)([:;\?].*)?$")
            Some(re) => re.is_match(&msg.ruri()),
            // if (uri==myself)
            None => msg.ruri_is_myself(),
        };
        if served {
            // log(1,"request for served domain")
            log(LogLevel::Info, "request for served domain");
            // ... some domain-specific logic follows here
            return msg.sl_send_reply(200, "Served Domain");
        }
        // log(1,"request for outbound domain"); t_relay();
        log(LogLevel::Info, "request for outbound domain");
        if !cfg.relay_outbound {
            return msg.sl_send_reply(403, "Outbound Domain");
        }
        relay(msg)
    }
}

/// `route[RELAY]`: `t_relay()` or else `sl_reply_error()`.
fn relay(msg: &Msg) -> Result {
    if msg.t_relay().is_err() {
        return msg.sl_reply_error();
    }
    Ok(())
}

wisp_sdk::export!(DomainMatching);
