//! `wisp:router/registrar`: `save` and `lookup`.

use wasmtime::component::Resource;

use super::{HostError, PluginState};
use crate::plugin::bindings::wisp::router::registrar;
use crate::services::registrar as service;
use crate::tm::RouteContext;

impl registrar::Host for PluginState {
    fn save(&mut self, m: Resource<RouteContext>, table: String) -> Result<(), HostError> {
        Ok(self.with_msg(&m, |host, ctx| service::save(&host.services, ctx, &table))??)
    }

    fn lookup(&mut self, m: Resource<RouteContext>, table: String) -> Result<(), HostError> {
        Ok(self.with_msg(&m, |host, ctx| service::lookup(&host.services, ctx, &table))??)
    }

    fn fix_nated_register(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<()> {
        self.msg(&m)?.nated_register = true;
        Ok(())
    }
}
