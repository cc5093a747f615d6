//! # A simple Numbering Plan — seed 001, "URI Matching", as a Wisp plugin
//!
//! The SER admin guide's dialing plan: the prefix "8" is kept for IP users,
//! other numbers go to the PSTN — US numbers (prefix "1", stripped) to one
//! gateway, the rest to another — and non-numeric usernames are IP users,
//! looked up in user location (`shared/seeds/001_*.txt`).
//!
//! Params: `us_gateway` and `gateway` (`host:port`; the seed's
//! `192.168.0.1:5060` and `10.0.0.1:5060` by default).
//!
//! Build: `make plugins` (component at `target/plugins/numbering_plan.wasm`).

use std::sync::OnceLock;
use wisp_sdk::prelude::*;

/// The two PSTN gateways, as `(host, port)`.
static GATEWAYS: OnceLock<Gateways> = OnceLock::new();

struct Gateways {
    us: (String, u16),
    other: (String, u16),
}

/// `host:port` (port 5060 when left out).
fn host_port(param: &str, value: &str) -> Result<(String, u16), String> {
    match value.rsplit_once(':') {
        Some((host, port)) => port
            .parse()
            .map(|p| (host.to_owned(), p))
            .map_err(|_| format!("param {param}: {value:?} is not host:port")),
        None => Ok((value.to_owned(), 5060)),
    }
}

struct NumberingPlan;

impl Plugin for NumberingPlan {
    fn init(params: &Params) -> Result<(), String> {
        let us = params.get_or("us_gateway", "192.168.0.1:5060".to_owned())?;
        let other = params.get_or("gateway", "10.0.0.1:5060".to_owned())?;
        let _ = GATEWAYS.set(Gateways {
            us: host_port("us_gateway", &us)?,
            other: host_port("gateway", &other)?,
        });
        Ok(())
    }

    fn route(msg: &Msg) -> Result {
        let Some(gw) = GATEWAYS.get() else {
            return msg.sl_send_reply(500, "Not Initialized");
        };
        if msg.is_method("REGISTER") {
            return msg.save("location");
        }
        let user = msg.ruri_user().unwrap_or_default();
        // # is it a PSTN destination? (is username numerical and does not begin with 8?)
        // if (uri=~"^sip:[0-79][0-9]*@") {
        if is_pstn(&user) {
            // if (uri=~"^sip:1") {
            if user.starts_with('1') {
                // strip(1); forward(192.168.0.1, 5060);
                msg.strip(1)?;
                return msg.forward_to_host(&gw.us.0, Some(gw.us.1));
            }
            // } else { forward(10.0.0.1, 5060); }
            return msg.forward_to_host(&gw.other.0, Some(gw.other.1));
        }
        // # it is an IP destination -- try to lookup it up in user location DB
        // if (!lookup("location")) { sl_send_reply("404", "Not Found"); break; }
        match msg.lookup("location") {
            Err(Error::NotFound) => return msg.sl_send_reply(404, "Not Found"),
            other => other?,
        }
        // forward(uri:host,uri:port);
        msg.forward()
    }
}

/// `^sip:[0-79][0-9]*@`: all digits, not beginning with 8.
fn is_pstn(user: &str) -> bool {
    !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit()) && !user.starts_with('8')
}

wisp_sdk::export!(NumberingPlan);
