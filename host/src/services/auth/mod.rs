//! Digest authentication (RFC 2617, RFC 7616 / RFC 8760 for SIP): the
//! response computation per algorithm ([`digest`]), the stateless nonces
//! a challenge carries ([`nonce`]) and the check of a request's credentials
//! with its typed outcome ([`verify`]). [`service::AuthService`] does the
//! work of the host functions (`www_authorize`, `proxy_challenge`, ...)
//! over a [`Directory`] of subscribers; [`challenge`] writes the
//! challenge headers.

pub mod challenge;
pub mod digest;
pub mod nonce;
pub mod service;
pub mod subscribers;
pub mod verify;

pub use service::AuthService;

use digest::Algorithm;

/// The subscribers and groups the auth host functions read. Lookups read
/// memory only, so they may run on a receive task; the store behind an
/// implementation is written and reread off that path.
///
/// A subscriber is `user@domain`; its credentials are for the realm equal
/// to its domain (Kamailio's `auth_db` with `use_domain`), so a realm names
/// the domain whose subscribers are checked.
pub trait Directory: Send + Sync + 'static {
    /// The HA1 of `user` in realm (= domain) `realm` for `algorithm`, in
    /// lowercase hex, or `None` if there is no such subscriber.
    fn ha1(&self, user: &str, realm: &str, algorithm: Algorithm) -> Option<String>;
    /// Whether `user@domain` is a member of `group` (the `grp` table).
    fn in_group(&self, user: &str, domain: &str, group: &str) -> bool;
}

/// A directory with nobody in it: every authorize finds an unknown user.
/// What [`Services::new`](crate::services::Services::new) starts with,
/// before the router gives it the subscriber store.
pub struct NoSubscribers;

impl Directory for NoSubscribers {
    fn ha1(&self, _user: &str, _realm: &str, _algorithm: Algorithm) -> Option<String> {
        None
    }

    fn in_group(&self, _user: &str, _domain: &str, _group: &str) -> bool {
        false
    }
}
