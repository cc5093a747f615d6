//! # registrar-auth — a registrar and proxy nobody can hijack
//!
//! The OpenSER "MySQL and Authentication" script (on Wisp's subscriber
//! store) with the rules of Kamailio's default `route[AUTH]`: a REGISTER
//! must authenticate as the AOR it registers (`www_authorize` +
//! `check_to`); any other request that claims to come from one of our
//! domains must authenticate as its From user (`proxy_authorize` +
//! `check_from`); a request neither from nor to our domains is refused, so
//! the router is no open relay. Credentials are consumed before relaying.
//!
//! ```text
//! route {
//!     if (!mf_process_maxfwd_header("10")) { sl_send_reply("483","Too Many Hops"); exit; }
//!     if (msg:len >= max_len) { sl_send_reply("513", "Message too big"); exit; }
//!     if (is_method("OPTIONS") && uri==myself && $rU==$null) { sl_send_reply("200","Keepalive"); exit; }
//!     if (has_totag() && loose_route()) { route(1); }     # within a dialog
//!     if (method=="REGISTER") {
//!         if (!uri==myself) { sl_send_reply("403", "Not relaying"); exit; }
//!         if (!www_authorize("", "subscriber")) { www_challenge("", "0"); exit; }
//!         if (!check_to()) { sl_send_reply("403", "Forbidden auth ID"); exit; }
//!         save("location"); exit;
//!     }
//!     if (from_uri==myself) {
//!         if (!proxy_authorize("", "subscriber")) { proxy_challenge("", "0"); exit; }
//!         if (!check_from()) { sl_send_reply("403", "Forbidden auth ID"); exit; }
//!         consume_credentials();
//!     } else if (!uri==myself) {
//!         sl_send_reply("403", "Not relaying"); exit;
//!     }
//!     if (!is_method("REGISTER")) { record_route(); }
//!     if (!uri==myself) { route(1); }
//!     lookup("aliases");
//!     if (!uri==myself) { route(1); }
//!     if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
//!     route(1);
//! }
//! route[1] { if (!t_relay()) { sl_reply_error(); } exit; }
//! ```
//!
//! Every authentication failure (no credentials, unknown user, wrong
//! password, replayed or expired nonce) gets the same fresh challenge
//! (`wisp_sdk::auth::require_www` / `require_proxy`). ACK and CANCEL
//! cannot be challenged and pass (RFC 3261 §22.1).
//!
//! Params: `max_len` (default 8192).
//! Run: `make run CONFIG=config/registrar-auth.toml`, users with
//! `wisp ctl user add alice@example.com s3cret`.

use wisp_sdk::prelude::*;

struct RegistrarAuth {
    max_len: u32,
}

impl Configured for RegistrarAuth {
    fn init(params: &Params) -> Result<Self, String> {
        Ok(RegistrarAuth {
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
        let for_me = msg.ruri_is_myself();
        let method = msg.method();
        if for_me && method.is("OPTIONS") && msg.ruri_user().is_none() {
            return msg.sl_send_reply(200, "Keepalive");
        }
        // Within a dialog the Route set decides; a request without a
        // To-tag takes the checks below whatever Route it carries.
        if has_to_tag(msg) && msg.loose_route()? {
            return msg.relay();
        }
        if method.is("REGISTER") {
            if !for_me {
                return msg.sl_send_reply(403, "Not relaying");
            }
            if auth::require_www(msg, "")?.challenged() {
                return Ok(());
            }
            if !msg.check_to() {
                return msg.sl_send_reply(403, "Forbidden auth ID");
            }
            return msg.save("location");
        }
        if from_is_myself(msg) {
            if auth::require_proxy(msg, "")?.challenged() {
                return Ok(());
            }
            // ACK and CANCEL pass authorize with nobody marked.
            if !method.is("ACK|CANCEL") {
                if !msg.check_from() {
                    return msg.sl_send_reply(403, "Forbidden auth ID");
                }
                msg.consume_credentials()?;
            }
        } else if !for_me {
            return msg.sl_send_reply(403, "Not relaying");
        }
        msg.record_route()?;
        if !for_me {
            return msg.relay();
        }
        if msg.lookup("aliases").is_ok() && !msg.ruri_is_myself() {
            return msg.relay();
        }
        match msg.lookup("location") {
            Err(Error::NotFound) => return msg.sl_send_reply(404, "Not Found"),
            other => other?,
        }
        msg.relay()
    }
}

/// Kamailio `has_totag()`.
fn has_to_tag(msg: &Msg) -> bool {
    msg.header("To")
        .is_some_and(|to| params_of(&to).any(|p| p.trim().to_ascii_lowercase().starts_with("tag=")))
}

/// Kamailio `from_uri==myself`.
fn from_is_myself(msg: &Msg) -> bool {
    msg.header("From")
        .and_then(|from| uri_of(&from).map(str::to_owned))
        .is_some_and(|uri| is_myself(&uri))
}

/// The URI of a name-addr header value: inside `<>`, else up to the first `;`.
fn uri_of(value: &str) -> Option<&str> {
    match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => Some(&value[open + 1..close]),
        _ => value.split(';').next().map(str::trim),
    }
}

/// The header parameters of a name-addr header value (after `>` or the URI).
fn params_of(value: &str) -> impl Iterator<Item = &str> {
    let rest = match value.find('>') {
        Some(close) => &value[close + 1..],
        None => value.split_once(';').map_or("", |(_, r)| r),
    };
    rest.split(';').filter(|p| !p.trim().is_empty())
}

wisp_sdk::export!(RegistrarAuth);
