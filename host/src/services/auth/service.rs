//! The auth host functions' work: `www_authorize` / `proxy_authorize` find
//! the request's credentials for a realm and [`verify`] them, marking the
//! message ([`AuthMark`]) for `check_to`, `check_from`, `is_user_in` and
//! `consume_credentials`; `www_challenge` / `proxy_challenge` answer 401 /
//! 407 through the transaction layer's one answer path.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use wisp_sip::{Credentials, HeaderName, Method, NameAddr};

use super::Directory;
use super::challenge::{self, ChallengeParams};
use super::digest::Algorithm;
use super::nonce::{NonceKey, ReplayGuard};
use super::verify::{Verdict, verify};
use crate::config::{AuthConfig, DigestAlgorithm};
use crate::stateless::{ActionError, RouteKind, reply};
use crate::tm::context::{AuthMark, AuthorizedCredentials};
use crate::tm::{RouteContext, Tm};

/// The table name `authorize` takes (Kamailio's default `subscriber`):
/// the one subscriber table of the [`Directory`].
pub const SUBSCRIBER_TABLE: &str = "subscriber";

/// Which of the two header pairs: a registrar or UAS asks with 401 and
/// `WWW-Authenticate`, a proxy with 407 and `Proxy-Authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Www,
    Proxy,
}

impl Kind {
    fn credentials(self) -> HeaderName {
        match self {
            Kind::Www => HeaderName::Authorization,
            Kind::Proxy => HeaderName::ProxyAuthorization,
        }
    }

    fn challenge_header(self) -> &'static str {
        match self {
            Kind::Www => "WWW-Authenticate",
            Kind::Proxy => "Proxy-Authenticate",
        }
    }

    fn status(self) -> (u16, &'static str) {
        match self {
            Kind::Www => (401, "Unauthorized"),
            Kind::Proxy => (407, "Proxy Authentication Required"),
        }
    }
}

/// What an authorize found, as the WIT `auth-result` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    NoCredentials,
    Malformed,
    InvalidNonce,
    StaleNonce,
    UnknownUser,
    WrongResponse,
    Replayed,
}

impl From<&Verdict> for Outcome {
    fn from(v: &Verdict) -> Outcome {
        match v {
            Verdict::Authorized { .. } => Outcome::Ok,
            Verdict::NoCredentials => Outcome::NoCredentials,
            Verdict::Malformed(_) => Outcome::Malformed,
            Verdict::InvalidNonce => Outcome::InvalidNonce,
            Verdict::Stale => Outcome::StaleNonce,
            Verdict::UnknownUser => Outcome::UnknownUser,
            Verdict::WrongResponse => Outcome::WrongResponse,
            Verdict::Replayed => Outcome::Replayed,
        }
    }
}

/// Whose user `is_user_in` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserOf {
    RequestUri,
    To,
    From,
    /// The digest user and realm an authorize accepted.
    Credentials,
}

impl From<DigestAlgorithm> for Algorithm {
    fn from(a: DigestAlgorithm) -> Algorithm {
        match a {
            DigestAlgorithm::Md5 => Algorithm::Md5,
            DigestAlgorithm::Sha256 => Algorithm::Sha256,
            DigestAlgorithm::Sha512_256 => Algorithm::Sha512_256,
        }
    }
}

/// Digest authentication for one router: the nonce key, the replay record,
/// the subscribers and the algorithms challenges offer.
pub struct AuthService {
    key: NonceKey,
    replays: ReplayGuard,
    directory: Arc<dyn Directory>,
    algorithms: Vec<Algorithm>,
}

impl AuthService {
    /// The service `cfg` describes over `directory`. Without a configured
    /// secret it makes a random one: nonces then die with the process.
    pub fn new(cfg: &AuthConfig, directory: Arc<dyn Directory>) -> AuthService {
        let random: [u8; 32];
        let secret = match cfg.secret() {
            Some(s) => s,
            None => {
                random = rand::random();
                &random
            }
        };
        AuthService {
            key: NonceKey::new(secret, Duration::from_secs(cfg.nonce_expires)),
            replays: ReplayGuard::new(cfg.replay_slots),
            directory,
            algorithms: cfg.algorithms.iter().map(|a| Algorithm::from(*a)).collect(),
        }
    }

    /// `www_authorize(realm, table)` / `proxy_authorize(realm, table)`:
    /// check the credentials for `realm` (empty: the request's domain, see
    /// [`default_realm`]) and mark the message with what was found.
    pub fn authorize(
        &self,
        ctx: &mut RouteContext,
        kind: Kind,
        realm: &str,
        table: &str,
    ) -> Result<Outcome, ActionError> {
        self.authorize_at(ctx, kind, realm, table, SystemTime::now())
    }

    fn authorize_at(
        &self,
        ctx: &mut RouteContext,
        kind: Kind,
        realm: &str,
        table: &str,
        now: SystemTime,
    ) -> Result<Outcome, ActionError> {
        if table != SUBSCRIBER_TABLE {
            return Err(ActionError::InvalidArgument(format!(
                "unknown subscriber table {table:?} (expected {SUBSCRIBER_TABLE:?})"
            )));
        }
        let method = request_method(ctx)?;
        ctx.auth = AuthMark::default();
        // RFC 3261 §22.1: ACK and CANCEL cannot be challenged (Kamailio
        // lets them through the same way); nothing is marked.
        if matches!(method, Method::Ack | Method::Cancel) {
            return Ok(Outcome::Ok);
        }
        let realm = realm_or_default(ctx, realm)?;
        let wanted = kind.credentials();
        let mut unparsable = false;
        let mut found = None;
        for (i, h) in ctx.msg.headers().iter().enumerate() {
            if h.name != wanted {
                continue;
            }
            match Credentials::parse(&h.value) {
                Ok(c) if c.param("realm") == Some(realm.as_str()) => {
                    found = Some((i, c));
                    break;
                }
                Ok(_) => {}
                Err(_) => unparsable = true,
            }
        }
        let Some((index, creds)) = found else {
            return Ok(if unparsable {
                Outcome::Malformed
            } else {
                Outcome::NoCredentials
            });
        };
        let directory = &self.directory;
        let users = |u: &str, r: &str, a: Algorithm| directory.ha1(u, r, a);
        let verdict = verify(
            &creds,
            &realm,
            method.as_str(),
            ctx.msg.body(),
            now,
            &self.key,
            &self.replays,
            &users,
        );
        let outcome = Outcome::from(&verdict);
        match verdict {
            Verdict::Authorized { user } => {
                ctx.auth.authorized = Some(AuthorizedCredentials {
                    user,
                    realm,
                    header_index: index,
                });
            }
            Verdict::Stale => ctx.auth.stale = true,
            _ => {}
        }
        Ok(outcome)
    }

    /// `www_challenge(realm, flags)` / `proxy_challenge(realm, flags)`:
    /// answer 401 / 407 with one challenge header per configured algorithm,
    /// one fresh nonce, `stale=true` when the last authorize found an
    /// expired nonce (or `flags` ask for it).
    pub fn challenge(
        &self,
        tm: &Tm,
        ctx: &mut RouteContext,
        kind: Kind,
        realm: &str,
        flags: u32,
    ) -> Result<(), ActionError> {
        let values = self.challenge_values(ctx, realm, flags, SystemTime::now())?;
        let name = kind.challenge_header();
        let headers: Vec<(&str, &str)> = values.iter().map(|v| (name, v.as_str())).collect();
        let (code, reason) = kind.status();
        tm.reply(ctx, code, reason, &headers)
    }

    /// The challenge header values for `ctx`, checked before anything is sent.
    fn challenge_values(
        &self,
        ctx: &RouteContext,
        realm: &str,
        flags: u32,
        now: SystemTime,
    ) -> Result<Vec<String>, ActionError> {
        if flags & !challenge::KNOWN_FLAGS != 0 {
            return Err(ActionError::InvalidArgument(format!(
                "unknown challenge flags {:#x} (known: 1 qop auth, 2 qop auth-int, 16 stale)",
                flags & !challenge::KNOWN_FLAGS
            )));
        }
        if !realm.is_empty() && !challenge::realm_is_quotable(realm) {
            return Err(bad_realm(realm));
        }
        request_method(ctx)?;
        reply::check_answerable(ctx)?;
        ctx.ensure_unhandled()?;
        let realm = realm_or_default(ctx, realm)?;
        let nonce = self.key.issue(now);
        let params = ChallengeParams {
            realm: &realm,
            nonce: &nonce,
            auth_int: flags & challenge::FLAG_QOP_AUTH_INT != 0,
            stale: ctx.auth.stale || flags & challenge::FLAG_STALE != 0,
        };
        Ok(challenge::header_values(&params, &self.algorithms))
    }

    /// `is_user_in(which, group)`: whether the user `which` names is in
    /// `group`. False for credentials no authorize accepted, and for a URI
    /// without a user part.
    pub fn is_user_in(
        &self,
        ctx: &RouteContext,
        which: UserOf,
        group: &str,
    ) -> Result<bool, ActionError> {
        let (user, domain) = match which {
            UserOf::Credentials => match &ctx.auth.authorized {
                Some(a) => (a.user.clone(), a.realm.clone()),
                None => return Ok(false),
            },
            UserOf::RequestUri => match user_and_domain(ctx.ruri()) {
                Some(ud) => ud,
                None => return Ok(false),
            },
            UserOf::To | UserOf::From => {
                let addr = party(ctx, which == UserOf::To)?;
                match user_and_domain(&addr.uri) {
                    Some(ud) => ud,
                    None => return Ok(false),
                }
            }
        };
        Ok(self.directory.in_group(&user, &domain, group))
    }
}

/// `check_to()` / `check_from()`: the credentials an authorize accepted
/// are those of the To (`to`) or From URI: digest user equal to its user
/// part (percent-decoded, case-sensitive), realm to its host (without case).
pub fn check_party(ctx: &RouteContext, to: bool) -> Result<bool, ActionError> {
    let Some(auth) = &ctx.auth.authorized else {
        return Ok(false);
    };
    let addr = party(ctx, to)?;
    Ok(match user_and_domain(&addr.uri) {
        Some((user, domain)) => user == auth.user && domain.eq_ignore_ascii_case(&auth.realm),
        None => false,
    })
}

/// `consume_credentials()`: remove the Authorization / Proxy-Authorization
/// an authorize accepted, so it is not relayed. `not-found` without one.
pub fn consume_credentials(ctx: &mut RouteContext) -> Result<(), ActionError> {
    let Some(auth) = &ctx.auth.authorized else {
        return Err(ActionError::NotFound);
    };
    let index = auth.header_index;
    if ctx.msg.remove_header_at(index) {
        Ok(())
    } else {
        Err(ActionError::NotFound)
    }
}

/// The request's method; a response (reply route) has no credentials.
fn request_method(ctx: &RouteContext) -> Result<Method, ActionError> {
    match ctx.msg.method() {
        Some(m) if ctx.route != RouteKind::Reply => Ok(m.clone()),
        _ => Err(ActionError::NotAllowedHere(
            "digest authentication is for requests, not a reply route".into(),
        )),
    }
}

/// `realm`, or for an empty one the request's domain: the To host of a
/// REGISTER (the AOR being registered), else the From host (the caller),
/// as Kamailio does; lowercased, as subscriber domains are.
pub fn default_realm(ctx: &RouteContext) -> Result<String, ActionError> {
    let register = ctx.msg.method() == Some(&Method::Register);
    let addr = party(ctx, register)?;
    Ok(addr.uri.host.to_string().to_ascii_lowercase())
}

fn realm_or_default(ctx: &RouteContext, realm: &str) -> Result<String, ActionError> {
    let realm = if realm.is_empty() {
        default_realm(ctx)?
    } else {
        realm.to_owned()
    };
    if !challenge::realm_is_quotable(&realm) {
        return Err(bad_realm(&realm));
    }
    Ok(realm)
}

fn bad_realm(realm: &str) -> ActionError {
    ActionError::InvalidArgument(format!(
        "realm {realm:?} has a quote, backslash or control character"
    ))
}

/// The To (`to`) or From header of the request, parsed.
fn party(ctx: &RouteContext, to: bool) -> Result<NameAddr, ActionError> {
    let parsed = if to { ctx.msg.to() } else { ctx.msg.from() };
    parsed.map_err(|e| ActionError::BadMessage(e.to_string()))
}

/// A URI's user (percent-decoded) and host (lowercased); none without a user.
fn user_and_domain(uri: &wisp_sip::Uri) -> Option<(String, String)> {
    let user = uri.user_unescaped().filter(|u| !u.is_empty())?;
    Some((user, uri.host.to_string().to_ascii_lowercase()))
}

#[cfg(test)]
mod tests;
