//! `wisp:router/acc`: accounting a request the route answered itself.

use wasmtime::component::Resource;

use super::{HostError, PluginState};
use crate::plugin::bindings::wisp::router::acc;
use crate::tm::RouteContext;

impl acc::Host for PluginState {
    fn acc_request(&mut self, m: Resource<RouteContext>, reason: String) -> Result<(), HostError> {
        Ok(self.with_msg(&m, |host, ctx| host.tm.acc_request(ctx, &reason))??)
    }
}
