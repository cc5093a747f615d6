//! The one place `bindgen!` runs over `wit/`. Imports are trappable: a host
//! function returns either a guest-visible WIT `error` or a trap (a host bug
//! or a stale resource handle), via [`HostError`]. The `msg` resource is the
//! host's [`RouteContext`](crate::tm::RouteContext), kept in the store's
//! `ResourceTable`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: trappable },
    trappable_error_type: {
        "wisp:router/types.error" => super::host::HostError,
    },
    with: {
        "wisp:router/message.msg": crate::tm::RouteContext,
    },
});

pub use wisp::router::types::{Error as WitError, LogLevel, Transport};
