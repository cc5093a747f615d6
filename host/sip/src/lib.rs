//! `wisp-sip`: the SIP message core of Wisp.
//!
//! A received datagram or stream frame becomes a [`Message`] by splitting
//! its start line and header block into raw, zero-copy [`bytes::Bytes`]
//! slices (one pass of block byte searches). Typed views (Via, From/To,
//! Contact, CSeq, credentials, URIs) are parsed with nom only when asked
//! for. Changes are recorded as edits and applied once, when the message
//! is serialized — the same idea as Kamailio's lumps. No I/O happens in
//! this crate.
//!
//! # Layout
//!
//! - [`parse`] — shared grammar pieces (tokens, LWS, quoted strings,
//!   parameter lists, list splitting) and [`ParseError`].
//! - [`uri`] — SIP/SIPS/tel URIs and hosts.
//! - [`header`] — header names and one module per typed header view:
//!   `name` (names, compact forms, raw [`Header`]), `via`, `name_addr`
//!   (From/To/Route/Record-Route), `contact`, `cseq`, `auth` (credentials
//!   and challenges).
//! - [`message`] — framing a datagram into a [`Message`], lookups and typed
//!   accessors.
//! - [`edit`] — recorded edits and the serializer that applies them.
//! - [`reply`] — building a response to a request (RFC 3261 §8.2.6).
//! - [`sanity`] — the checks a request passes before routing, and the
//!   [`sanity::RequestSummary`] of what they parsed.
//! - [`text`] — numbers and addresses written into header text without
//!   the `fmt` machinery (every relayed request writes several).
//! - [`framer`] — cutting messages out of a TCP/TLS byte stream (RFC 3261 §18.3).
//! - [`peek`] — one header of an unparsed message (the Call-ID that steers
//!   a datagram to its worker).

pub mod edit;
pub mod framer;
#[doc(hidden)]
pub mod fuzzing;
pub mod header;
pub mod message;
pub mod parse;
pub mod peek;
pub mod reply;
pub mod sanity;
pub mod sdp;
pub mod text;
pub mod uri;

pub use compact_str::CompactString;
pub use framer::{FrameError, StreamFramer};
pub use header::{CSeq, Challenge, Contacts, Credentials, Header, HeaderName, NameAddr, Via};
pub use message::{Message, Method, StartLine, TransactionKey};
pub use parse::{Param, Params, ParseError};
pub use reply::{ReplyOptions, build_reply};
pub use uri::{Host, Scheme, Uri};
