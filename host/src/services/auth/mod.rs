//! Digest authentication (RFC 2617, RFC 7616 / RFC 8760 for SIP): the
//! response computation per algorithm ([`digest`]), the stateless nonces
//! a challenge carries ([`nonce`]) and the check of a request's credentials
//! with its typed outcome ([`verify`]). The host functions (`www_authorize`,
//! `proxy_challenge`, ...) and the subscriber store build on these.

pub mod digest;
pub mod nonce;
pub mod subscribers;
pub mod verify;

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
