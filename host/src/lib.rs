//! # wisp — a SIP router whose routing logic runs in WebAssembly plugins
//!
//! ## Layout
//! Layers depend downward only; each module has one job.
//!
//! - [`ctl`] — the management socket and `wisp ctl` (`ul show|add|rm`).
//! - [`plugin`] — wasmtime engine, component loading, instance pool, the host
//!   side of every WIT interface (`plugin::host::*`), deadlines and memory caps.
//! - [`router`] — binds the manifest's sockets, loads the plugin, and runs each
//!   incoming message: sanity checks, the plugin's `route`, responses along Via.
//! - [`services`] — registrar (`save`, `lookup`) over user location (`usrloc`).
//! - [`store`] — persistence: the SQLite schema and its migrations, the
//!   background writer that batches binding changes into transactions.
//! - [`tm`] — transactions (RFC 3261 §16/§17): `t_relay`, forking, CANCEL,
//!   failure and reply routes, timers.
//! - [`stateless`] — Kamailio's core/`sl`/`maxfwd`: replies, forwarding,
//!   Max-Forwards, `myself`, request sanity.
//! - [`msg_context`] — a message in a route's hands (the WIT `msg` resource).
//! - [`transport`] — UDP and TCP sockets, stream framing, the send path.
//! - [`config`] — the TOML manifest, its defaults and its validation.
//! - The SIP message model itself is the `wisp-sip` crate (no I/O).

pub mod config;
pub mod ctl;
pub mod msg_context;
pub mod plugin;
pub mod router;
pub mod services;
pub mod stateless;
pub mod store;
pub mod tm;
pub mod transport;
