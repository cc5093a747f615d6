//! # wisp — a SIP router whose routing logic runs in WebAssembly plugins
//!
//! ## Layout
//! Layers, top to bottom. A module uses only the layers below it (the test
//! `tests/layers.rs` keeps this true, reading [`LAYERS`]); each has one job.
//!
//! - [`kit`] — the plugin developer's commands: `wisp new`, `build`, `test`,
//!   `replay` (a router on a virtual network, [`router::Router::bind_virtual`]).
//! - [`ctl`] — the management socket and `wisp ctl`.
//! - [`router`] — the composition root: binds the manifest's sockets, builds
//!   every layer below, loads the plugins, runs each incoming message (the
//!   transports' `Inbound`) and the failure routes tm hands it.
//! - [`plugin`] — wasmtime engine, component loading, instance pool, the host
//!   side of every WIT interface (`plugin::host::*`, over a `HostContext`),
//!   deadlines and memory caps, reload.
//! - [`services`] — registrar (`save`, `lookup`) over user location
//!   (`usrloc`), `exec`.
//! - [`tm`] — transactions (RFC 3261 §16/§17): `t_relay`, forking, CANCEL,
//!   failure and reply routes, timers; the one place deciding how a request
//!   is answered (`tm::answer`).
//! - [`stateless`] — Kamailio's core/`sl`/`maxfwd`/`rr`: replies,
//!   forwarding, Max-Forwards, `myself`, request sanity, and the message
//!   context every route sees.
//! - [`transport`] — UDP, TCP and TLS sockets, stream framing, the send path; hands
//!   what it receives to an `Inbound`.
//! - [`store`] — persistence: the SQLite and PostgreSQL schemas and their migrations, the
//!   background writer that batches binding changes into transactions.
//! - [`config`] — the TOML manifest, its defaults and its validation.
//! - [`stats`] — the counters every layer increments (sharded per thread,
//!   summed when read by the metrics endpoint and `wisp ctl stats`).
//! - [`util`] — small helpers every layer uses.
//! - The SIP message model itself is the `wisp-sip` crate (no I/O), DNS
//!   (RFC 3263) the `wisp-dns` crate.

pub mod config;
pub mod ctl;
pub mod kit;
pub mod plugin;
pub mod router;
pub mod services;
pub mod stateless;
pub mod stats;
pub mod store;
pub mod tm;
pub mod transport;
pub mod util;

/// The router crate's top-level modules, top layer first. A module may use
/// the ones after it, never one before it.
pub const LAYERS: &[&str] = &[
    "kit",
    "ctl",
    "router",
    "plugin",
    "services",
    "tm",
    "stateless",
    "transport",
    "store",
    "config",
    "stats",
    "util",
];
