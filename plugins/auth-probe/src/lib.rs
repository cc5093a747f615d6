//! # auth-probe — a test fixture that calls every `auth` host function
//!
//! Its answers' reason phrases say what the host functions returned, so a
//! test reads them off the wire. The realm is the request's `X-Realm`
//! header, or empty (the request's domain) without one.
//!
//! | request | what the route does |
//! |---|---|
//! | REGISTER | `auth::require_www`; once authorized: `200 "OK to=<check_to> from=<check_from>"` |
//! | INVITE, MESSAGE | `auth::require_proxy`; once authorized: `consume_credentials` twice, then `200 "OK from=<check_from> int=<is_user_in(credentials, "int")> consumed=<first> again=<second>"` |
//! | OPTIONS to `www` / `proxy` | `www_authorize` / `proxy_authorize` and `200 "result=<auth-result>"`, no challenge |
//! | OPTIONS to `www-challenge` / `proxy-challenge` | `www_challenge` / `proxy_challenge` with the `X-Flags` header's number (default 0); an error fails the route |
//! | OPTIONS to `groups` | `200 "ruri=.. to=.. from=.. credentials=.."`: `is_user_in` of each for group `int` |

use wisp_sdk::prelude::*;

struct AuthProbe;

fn realm(msg: &Msg) -> String {
    msg.header("X-Realm").unwrap_or_default()
}

fn result_name(r: AuthResult) -> &'static str {
    match r {
        AuthResult::Ok => "ok",
        AuthResult::NoCredentials => "no-credentials",
        AuthResult::Malformed => "malformed",
        AuthResult::InvalidNonce => "invalid-nonce",
        AuthResult::StaleNonce => "stale-nonce",
        AuthResult::UnknownUser => "unknown-user",
        AuthResult::WrongResponse => "wrong-response",
        AuthResult::Replayed => "replayed",
    }
}

fn outcome(r: Result) -> &'static str {
    match r {
        Ok(()) => "ok",
        Err(Error::NotFound) => "not-found",
        Err(_) => "error",
    }
}

impl Plugin for AuthProbe {
    fn route(msg: &Msg) -> Result {
        let realm = realm(msg);
        let method = msg.method();
        if method.is("REGISTER") {
            if auth::require_www(msg, &realm)?.challenged() {
                return Ok(());
            }
            let reason = format!("OK to={} from={}", msg.check_to(), msg.check_from());
            return msg.sl_send_reply(200, &reason);
        }
        if method.is("INVITE|MESSAGE") {
            if auth::require_proxy(msg, &realm)?.challenged() {
                return Ok(());
            }
            let from = msg.check_from();
            let int = msg.is_user_in(UserOf::Credentials, "int");
            let consumed = outcome(msg.consume_credentials());
            let again = outcome(msg.consume_credentials());
            let reason = format!("OK from={from} int={int} consumed={consumed} again={again}");
            return msg.sl_send_reply(200, &reason);
        }
        let flags = || {
            msg.header("X-Flags")
                .and_then(|f| f.trim().parse().ok())
                .unwrap_or(0)
        };
        match msg.ruri_user().as_deref() {
            Some("www") => {
                let r = msg.www_authorize(&realm, auth::SUBSCRIBER_TABLE)?;
                msg.sl_send_reply(200, &format!("result={}", result_name(r)))
            }
            Some("proxy") => {
                let r = msg.proxy_authorize(&realm, auth::SUBSCRIBER_TABLE)?;
                msg.sl_send_reply(200, &format!("result={}", result_name(r)))
            }
            Some("www-challenge") => msg.www_challenge(&realm, flags()),
            Some("proxy-challenge") => msg.proxy_challenge(&realm, flags()),
            Some("groups") => {
                let reason = format!(
                    "ruri={} to={} from={} credentials={}",
                    msg.is_user_in(UserOf::RequestUri, "int"),
                    msg.is_user_in(UserOf::To, "int"),
                    msg.is_user_in(UserOf::From, "int"),
                    msg.is_user_in(UserOf::Credentials, "int"),
                );
                msg.sl_send_reply(200, &reason)
            }
            _ => msg.sl_send_reply(404, "Not Here"),
        }
    }
}

wisp_sdk::export!(AuthProbe);
