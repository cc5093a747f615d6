//! Digest authentication made safe by default.
//!
//! [`require_www`] (a registrar) and [`require_proxy`] (a proxy) do what a
//! Kamailio script's
//!
//! ```text
//! if (!www_authorize("", "subscriber")) { www_challenge("", "0"); exit; }
//! ```
//!
//! does, with the rules that keep user names secret: every result but
//! [`AuthResult::Ok`] is answered with the same fresh challenge (an unknown
//! user exactly as a wrong password; `stale=true` only after an expired
//! nonce, which needs the password to reach), so a client learns nothing
//! but "not authenticated".
//!
//! ```ignore
//! use wisp_sdk::prelude::*;
//!
//! fn route(msg: &Msg) -> Result {
//!     if msg.is_method("REGISTER") {
//!         if auth::require_www(msg, "")?.challenged() {
//!             return Ok(());
//!         }
//!         if !msg.check_to() {
//!             return msg.sl_send_reply(403, "Forbidden");
//!         }
//!         return msg.save("location");
//!     }
//!     // ...
//!     Ok(())
//! }
//! ```
//!
//! The single host functions are methods of [`MsgExt`](crate::MsgExt)
//! (`msg.www_authorize(realm, table)`, `msg.check_from()`, ...), documented
//! in `wit/auth.wit`.

use crate::bindings::wisp::router::auth as wit;
use crate::{AuthResult, Msg, Result};

/// The subscriber table `require_www` and `require_proxy` check (Kamailio's
/// `subscriber`).
pub const SUBSCRIBER_TABLE: &str = "subscriber";

/// Challenge flag: offer `qop=auth` (always offered; Kamailio's 1).
pub const QOP_AUTH: u32 = 1;
/// Challenge flag: offer `qop=auth-int` too (Kamailio's 2).
pub const QOP_AUTH_INT: u32 = 2;
/// Challenge flag: say `stale=true` whatever the last authorize found
/// (Kamailio's 16).
pub const STALE: u32 = 16;

/// What [`require_www`] / [`require_proxy`] did.
#[must_use = "a challenged request is answered: return from the route"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authentication {
    /// The credentials are right: go on (`msg.check_to()`, `save`, relay).
    Authorized,
    /// The request was answered with a challenge (401 / 407): return.
    Challenged,
}

impl Authentication {
    /// Whether the request was answered with a challenge, so the route must
    /// return: `if auth::require_www(msg, "")?.challenged() { return Ok(()) }`.
    pub fn challenged(self) -> bool {
        self == Authentication::Challenged
    }
}

/// Authenticate as a registrar / UAS (`www_authorize` against
/// `subscriber`) and answer 401 with a challenge unless the credentials are
/// right. `realm` empty: the request's domain (To host of a REGISTER, else
/// From host). Errors are those of `auth.www-authorize` and
/// `auth.www-challenge` (e.g. `already-handled`).
pub fn require_www(msg: &Msg, realm: &str) -> Result<Authentication> {
    let found = wit::www_authorize(msg, realm, SUBSCRIBER_TABLE)?;
    settle(found, || wit::www_challenge(msg, realm, QOP_AUTH))
}

/// Authenticate as a proxy (`proxy_authorize` against `subscriber`) and
/// answer 407 with a challenge unless the credentials are right. `realm`
/// empty: the From host (To host for a REGISTER).
pub fn require_proxy(msg: &Msg, realm: &str) -> Result<Authentication> {
    let found = wit::proxy_authorize(msg, realm, SUBSCRIBER_TABLE)?;
    settle(found, || wit::proxy_challenge(msg, realm, QOP_AUTH))
}

/// `Ok` passes; everything else gets the same challenge (the host adds
/// `stale=true` after a stale nonce).
fn settle(found: AuthResult, challenge: impl FnOnce() -> Result) -> Result<Authentication> {
    match found {
        AuthResult::Ok => Ok(Authentication::Authorized),
        AuthResult::NoCredentials
        | AuthResult::Malformed
        | AuthResult::InvalidNonce
        | AuthResult::StaleNonce
        | AuthResult::UnknownUser
        | AuthResult::WrongResponse
        | AuthResult::Replayed => {
            challenge()?;
            Ok(Authentication::Challenged)
        }
    }
}
