//! Digest authentication (RFC 2617, RFC 7616 / RFC 8760 for SIP): the
//! response computation per algorithm ([`digest`]), the stateless nonces
//! a challenge carries ([`nonce`]) and the check of a request's credentials
//! with its typed outcome ([`verify`]). The host functions (`www_authorize`,
//! `proxy_challenge`, ...) and the subscriber store build on these.

pub mod digest;
pub mod nonce;
pub mod verify;
