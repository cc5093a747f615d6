//! `wisp:router/rr`: `record_route`, `loose_route`.

use wasmtime::component::Resource;

use super::{HostError, PluginState};
use crate::plugin::bindings::wisp::router::rr;
use crate::stateless::rr as stateless_rr;
use crate::tm::RouteContext;

impl rr::Host for PluginState {
    fn record_route(&mut self, m: Resource<RouteContext>) -> Result<(), HostError> {
        Ok(self.with_msg(&m, |host, ctx| stateless_rr::record_route(&host.sl, ctx))??)
    }

    fn loose_route(&mut self, m: Resource<RouteContext>) -> Result<bool, HostError> {
        Ok(self.with_msg(&m, |host, ctx| stateless_rr::loose_route(&host.sl, ctx))??)
    }
}
