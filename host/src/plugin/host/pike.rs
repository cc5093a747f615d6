//! `wisp:router/pike`: `pike-check-req` over the services' per-source buckets.

use wasmtime::component::Resource;

use super::PluginState;
use crate::plugin::bindings::wisp::router::pike;
use crate::tm::RouteContext;

impl pike::Host for PluginState {
    fn pike_check_req(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<bool> {
        Ok(self.with_msg(&m, |host, ctx| {
            host.services.pike().check(ctx.source.remote.ip())
        })?)
    }
}
