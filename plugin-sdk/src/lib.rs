//! # wisp-sdk — write Wisp routing plugins in Rust
//!
//! A Wisp plugin is a WebAssembly component that plays the part of a Kamailio /
//! SER script's `route{}` blocks. This crate wraps the `wisp:router` WIT
//! contract (the `wit/` folder of the repository, the one source of truth) so
//! that a plugin reads like a `ser.cfg` route block:
//!
//! ```ignore
//! use wisp_sdk::prelude::*;
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn route(msg: &Msg) -> Result<()> {
//!         if !msg.mf_process_maxfwd_header(10)? {
//!             return msg.sl_send_reply(483, "Too Many Hops");
//!         }
//!         if msg.is_method("REGISTER") {
//!             return msg.save("location");
//!         }
//!         if msg.ruri_is_myself() {
//!             match msg.lookup("location") {
//!                 Err(Error::NotFound) => return msg.sl_send_reply(404, "Not Found"),
//!                 other => other?,
//!             }
//!         }
//!         msg.forward()
//!     }
//! }
//!
//! wisp_sdk::export!(Hello);
//! ```
//!
//! Build a plugin with `make plugins` (see the README): it compiles the crate
//! to `wasm32-unknown-unknown` and wraps the module into a component with
//! `wasm-tools component new`.
//!
//! Layout: [`Plugin`] is the trait a plugin implements ([`Configured`] when
//! it has params: read once into `self`); [`MsgExt`] adds the
//! Kamailio-named functions as methods on [`Msg`]; [`auth`] has the safe
//! way to authenticate (`require_www`, `require_proxy`); [`Params`] is the
//! plugin's manifest table; [`log`] writes to the router's log.
//!
//! Every host function is documented once, in its WIT comment (`wit/*.wit`,
//! rendered as `docs/host-functions.md`), with the Kamailio name it replaces;
//! [`Msg`]'s own methods carry those comments, and each [`MsgExt`] method names
//! the WIT function it calls. Script constructs that are not host functions:
//!
//! | Kamailio / SER | wisp-sdk |
//! |---|---|
//! | `request_route { ... }`, `route { ... }` | `fn route(msg: &Msg) -> Result` in `impl Plugin` |
//! | `route(1);`, `route[1] { ... }` | a plain Rust function, `return my_route(msg);` |
//! | `route[RELAY] { if (!t_relay()) { sl_reply_error(); } exit; }` | `return msg.relay();` ([`MsgExt::relay`]) |
//! | `exit;`, `drop;` | `return Ok(());` (in a chain: on to the next plugin), or `msg.drop_request()` |
//! | `failure_route[1] { ... }`, `onreply_route[1] { ... }` | `fn failure_route(name, msg)`, `fn onreply_route(name, msg)`, matching `name` |
//! | `modparam(...)`, global settings | the manifest's `[plugin.params]`, read once in [`Configured::init`] into the plugin's own value (`&self` in every route); registrar and tm settings in `[usrloc]`, `[tm]` |
//! | `alias=example.com` | the manifest's `server.aliases` |
//! | `$var(x)`, `$avp(x)` | Rust locals, passed between functions as arguments |
//! | `if (!f()) { ... }` | `match msg.f() { Err(e) => ..., Ok(()) => ... }`, or `?` to pass the error up |
//! | `sanity_check()` | automatic: malformed requests get 400 before `route` runs |
//! | `if (!www_authorize("", "subscriber")) { www_challenge("", "0"); exit; }` | `if auth::require_www(msg, "")?.challenged() { return Ok(()); }` (and `require_proxy`): every failure gets the same challenge |
#![deny(missing_docs)]

#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        default_bindings_module: "wisp_sdk::bindings",
        export_macro_name: "export_plugin_world",
        generate_all,
    });
}

pub mod auth;
mod configured;
pub mod htable;
mod msg_ext;
mod params;

pub use configured::Configured;
pub use msg_ext::MsgExt;
pub use params::Params;

/// What an authorize found (WIT enum `wisp:router/auth.auth-result`).
#[doc(inline)]
pub use bindings::wisp::router::auth::AuthResult;
/// Whose user `is_user_in` checks (WIT enum `wisp:router/auth.user-of`).
#[doc(inline)]
pub use bindings::wisp::router::auth::UserOf;
/// The SIP message a route works on (WIT resource `wisp:router/message.msg`).
#[doc(inline)]
pub use bindings::wisp::router::message::Msg;
/// A SIP method (WIT variant `wisp:router/message.request-method`), what
/// `msg.method()` returns. Compares with a string (`msg.method() ==
/// "INVITE"`) and prints as the method token.
#[doc(inline)]
pub use bindings::wisp::router::message::RequestMethod;
/// Why a host function refused or failed (WIT variant `wisp:router/types.error`).
#[doc(inline)]
pub use bindings::wisp::router::types::Error;
/// Log severity (WIT enum `wisp:router/types.log-level`).
#[doc(inline)]
pub use bindings::wisp::router::types::LogLevel;
/// Transport protocol (WIT enum `wisp:router/types.transport`).
#[doc(inline)]
pub use bindings::wisp::router::types::Transport;

impl RequestMethod {
    /// The method token as in the request line (`"INVITE"`, or the
    /// extension token of `Other`).
    pub fn as_str(&self) -> &str {
        match self {
            RequestMethod::Invite => "INVITE",
            RequestMethod::Ack => "ACK",
            RequestMethod::Bye => "BYE",
            RequestMethod::Cancel => "CANCEL",
            RequestMethod::Register => "REGISTER",
            RequestMethod::Options => "OPTIONS",
            RequestMethod::Info => "INFO",
            RequestMethod::Prack => "PRACK",
            RequestMethod::Subscribe => "SUBSCRIBE",
            RequestMethod::Notify => "NOTIFY",
            RequestMethod::Update => "UPDATE",
            RequestMethod::Message => "MESSAGE",
            RequestMethod::Refer => "REFER",
            RequestMethod::Publish => "PUBLISH",
            RequestMethod::Other(token) => token,
        }
    }

    /// Kamailio's `is_method` on a method already fetched: `"INVITE"`, or
    /// several as `"INVITE|ACK"`, compared without regard to case.
    pub fn is(&self, methods: &str) -> bool {
        methods
            .split('|')
            .any(|candidate| candidate.eq_ignore_ascii_case(self.as_str()))
    }
}

impl core::fmt::Display for RequestMethod {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Case-sensitive, like methods in SIP (RFC 3261 §7.1).
impl PartialEq<str> for RequestMethod {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for RequestMethod {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Result of a route or host function.
pub type Result<T = (), E = Error> = core::result::Result<T, E>;

/// What a plugin implements. Only [`Plugin::route`] is required. The world's
/// WIT comments (`wit/world.wit`) say when each runs and how its result is used.
pub trait Plugin {
    /// Once per instance, with the `[plugin.params]` table; `Err` refuses the
    /// load (WIT export `init`).
    fn init(_params: &Params) -> core::result::Result<(), String> {
        Ok(())
    }

    /// Kamailio `request_route` (WIT export `route`); an `Err` goes to the
    /// host by `log.route-error`.
    fn route(msg: &Msg) -> Result;

    /// Kamailio `failure_route[name]` (WIT export `failure-route`). Default:
    /// do nothing, so the best reply goes upstream.
    fn failure_route(_name: &str, _msg: &Msg) -> Result {
        Ok(())
    }

    /// Kamailio `onreply_route[name]` (WIT export `onreply-route`). Default:
    /// let the reply pass.
    fn onreply_route(_name: &str, _msg: &Msg) -> Result {
        Ok(())
    }
}

/// Kamailio `xlog(L_INFO, "...")` (WIT `log.log`).
pub fn log(level: LogLevel, text: &str) {
    bindings::wisp::router::log::log(level, text)
}

/// Kamailio `is_myself("sip:...")` (WIT `proxy.is-myself`).
pub fn is_myself(uri: &str) -> bool {
    bindings::wisp::router::proxy::is_myself(uri)
}

/// Everything a route block needs, for `use wisp_sdk::prelude::*`.
pub mod prelude {
    pub use crate::auth::Authentication;
    pub use crate::{
        AuthResult, Configured, Error, LogLevel, Msg, MsgExt, Params, Plugin, RequestMethod,
        Result, Transport, UserOf, auth, is_myself, log,
    };
}

#[doc(hidden)]
pub mod __export {
    //! Glue used by [`export!`](crate::export); not part of the API.
    pub use crate::bindings::Guest;

    /// A route's `Result` as the WIT export returns it: the error goes to
    /// the host by `log.route-error`, the export says only `err` (see
    /// `wit/world.wit` for why).
    #[inline]
    #[allow(clippy::result_unit_err)] // the WIT export's own type: a bare `result`
    pub fn outcome(r: crate::Result) -> Result<(), ()> {
        r.map_err(|e| crate::bindings::wisp::router::log::route_error(&e))
    }
}

/// Export a type implementing [`Plugin`] as the plugin's component exports.
/// Use once per plugin crate: `wisp_sdk::export!(MyPlugin);`
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        const _: () = {
            struct __WispGuest;
            impl $crate::__export::Guest for __WispGuest {
                fn init(
                    params: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    <$plugin as $crate::Plugin>::init(&$crate::Params::from(params))
                }
                fn route(msg: &$crate::Msg) -> ::core::result::Result<(), ()> {
                    $crate::__export::outcome(<$plugin as $crate::Plugin>::route(msg))
                }
                fn failure_route(
                    name: ::std::string::String,
                    msg: &$crate::Msg,
                ) -> ::core::result::Result<(), ()> {
                    $crate::__export::outcome(<$plugin as $crate::Plugin>::failure_route(
                        &name, msg,
                    ))
                }
                fn onreply_route(
                    name: ::std::string::String,
                    msg: &$crate::Msg,
                ) -> ::core::result::Result<(), ()> {
                    $crate::__export::outcome(<$plugin as $crate::Plugin>::onreply_route(
                        &name, msg,
                    ))
                }
            }
    $crate::bindings::export_plugin_world!(__WispGuest with_types_in $crate::bindings);
        };
    };
}
