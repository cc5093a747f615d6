//! # pstn-gateway — access control in front of a PSTN gateway
//!
//! SER's `pstn.cfg` (seed 003, "Access Control (PSTN Gateway)"): only
//! numbers go to the gateway; free numbers and the gateway's own requests
//! pass; everyone else proves who they are (digest) and needs the group of
//! the destination: "local" for `0…`, "ld" for `00…`, "int" for `000…`
//! (`wisp ctl acl grant alice@example.com int`). INVITEs are record-routed
//! so the whole call visits the router.
//!
//! ```text
//! route {
//!     if (!mf_process_maxfwd_header("10")) { sl_send_reply("483","Alas Too Many Hops"); break; };
//!     if (msg:len >= max_len) { sl_send_reply("513", "Message too long"); break; };
//!     if (has_totag() && loose_route()) { t_relay(); break; };   # seed: any Route
//!     if (method=="INVITE") { record_route(); };
//!     if (!uri=~"sip:\+?[0-9]+@.*") {
//!         if (method=="INVITE") { sl_send_reply("403", "Call cannot be served here"); }
//!         else { forward(uri:host, uri:port); };
//!         break;
//!     };
//!     if (is_user_in("Request-URI", "free-pstn") | uri=~"sip:[79][0-9][0-9][0-9]@.*"
//!             | uri=~"sip:98[0-9][0-9][0-9][0-9]") {
//!         log("free call");
//!     } else if (src_ip==gateway) {
//!         log("gateway-originated request");
//!     } else {
//!         if (!proxy_authorize(realm, "subscriber")) { proxy_challenge(realm, "0"); break; };
//!         if (method=="INVITE") {
//!             if (uri=~"sip:0[1-9][0-9]+@.*") {
//!                 if (!is_user_in("credentials", "local")) { sl_send_reply("403", "No permission for local calls"); break; };
//!             } else if (uri=~"sip:00[1-9][0-9]+@.*") {
//!                 if (!is_user_in("credentials", "ld")) { sl_send_reply("403", "No permission for LD"); break; };
//!             } else if (uri=~"sip:000[1-9][0-9]+@.*") {
//!                 if (!is_user_in("credentials", "int")) { sl_send_reply("403", "International permissions needed"); break; };
//!             } else { sl_send_reply("403", "Forbidden"); break; };
//!         };
//!         consume_credentials();
//!     };
//!     rewritehostport(gateway);
//!     if (!t_relay()) { sl_reply_error(); break; };
//! }
//! ```
//!
//! Every authentication failure gets the same fresh challenge
//! (`wisp_sdk::auth::require_proxy`); credentials are consumed before the
//! request goes to the gateway.
//!
//! Params: `gateway` (`"host:port"` of the PSTN gateway, required), `realm`
//! (default empty: the caller's From domain), `max_len` (default 8192).

use wisp_sdk::prelude::*;

struct PstnGateway {
    gateway: String,
    gateway_host: String,
    realm: String,
    max_len: u32,
}

impl Configured for PstnGateway {
    fn init(params: &Params) -> Result<Self, String> {
        let gateway = params
            .get("gateway")
            .ok_or("param `gateway` (host:port of the PSTN gateway) is required")?
            .to_owned();
        let gateway_host = match gateway.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => host.to_owned(),
            _ => gateway.clone(),
        };
        Ok(PstnGateway {
            gateway,
            gateway_host: gateway_host.trim_matches(['[', ']']).to_owned(),
            realm: params.get("realm").unwrap_or_default().to_owned(),
            max_len: params.get_or("max_len", 8192u32)?,
        })
    }

    fn route(&self, msg: &Msg) -> Result {
        let cfg = self;
        if !msg.mf_process_maxfwd_header(10)? {
            return msg.sl_send_reply(483, "Alas Too Many Hops");
        }
        if msg.len() >= cfg.max_len {
            return msg.sl_send_reply(513, "Message too long");
        }
        // Within a dialog only: a preloaded Route to the gateway on a new
        // request would skip every check below (the seed's script follows
        // any Route).
        if has_to_tag(msg) && msg.loose_route()? {
            return msg.relay();
        }
        let invite = msg.is_method("INVITE");
        if invite {
            msg.record_route()?;
        }
        let number = msg.ruri_user().filter(|u| is_number(u));
        let Some(number) = number else {
            if invite {
                return msg.sl_send_reply(403, "Call cannot be served here");
            }
            return msg.forward();
        };
        let digits = number.trim_start_matches('+');
        let free = msg.is_user_in(UserOf::RequestUri, "free-pstn")
            || (digits.len() == 4 && digits.starts_with(['7', '9']))
            || (digits.len() == 6 && digits.starts_with("98"));
        if free {
            log(LogLevel::Info, "free call");
        } else if msg.src_ip() == cfg.gateway_host {
            log(LogLevel::Info, "gateway-originated request");
        } else {
            if auth::require_proxy(msg, &cfg.realm)?.challenged() {
                return Ok(());
            }
            if invite {
                let (group, refusal) = match zeros(digits) {
                    1 => ("local", "No permission for local calls"),
                    2 => ("ld", "No permission for LD"),
                    3 => ("int", "International permissions needed"),
                    _ => return msg.sl_send_reply(403, "Forbidden"),
                };
                if !msg.is_user_in(UserOf::Credentials, group) {
                    return msg.sl_send_reply(403, refusal);
                }
            }
            // ACK and CANCEL pass authorize without credentials to consume.
            let _ = msg.consume_credentials();
        }
        msg.rewrite_hostport(&cfg.gateway)?;
        msg.relay()
    }
}

/// Kamailio `has_totag()`.
fn has_to_tag(msg: &Msg) -> bool {
    msg.header("To").is_some_and(|to| {
        let params = to.rsplit_once('>').map_or(to.as_str(), |(_, p)| p);
        params
            .split(';')
            .any(|p| p.trim().to_ascii_lowercase().starts_with("tag="))
    })
}

/// `\+?[0-9]+`.
fn is_number(user: &str) -> bool {
    let digits = user.strip_prefix('+').unwrap_or(user);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// How many zeros a dialled number starts with, when a non-zero digit and
/// at least one more digit follow (`0[1-9][0-9]+`, `00[1-9][0-9]+`, ...);
/// 0 for anything else.
fn zeros(digits: &str) -> usize {
    let n = digits.bytes().take_while(|b| *b == b'0').count();
    let rest = &digits.as_bytes()[n..];
    if n > 0 && rest.len() >= 2 && rest[0] != b'0' {
        n
    } else {
        0
    }
}

wisp_sdk::export!(PstnGateway);
