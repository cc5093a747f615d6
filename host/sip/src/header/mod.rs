//! Header names and typed header views.
//!
//! Headers are stored raw ([`Header`]); the types here are parsed from a
//! header value on demand, each in its own module.

pub mod auth;
pub mod contact;
pub mod cseq;
pub mod name;
pub mod name_addr;
pub mod via;

pub use auth::{Challenge, Credentials};
pub use contact::Contacts;
pub use cseq::CSeq;
pub use name::{Header, HeaderName};
pub use name_addr::NameAddr;
pub use via::Via;
