//! `wisp:router/registrar`: `save` and `lookup`.

use wasmtime::component::Resource;

use super::{HostError, PluginState};
use crate::msg_context::MsgContext;
use crate::plugin::bindings::wisp::router::registrar;
use crate::services::registrar as service;

impl registrar::Host for PluginState {
    fn save(&mut self, m: Resource<MsgContext>, table: String) -> Result<(), HostError> {
        Ok(self.with_msg(&m, |core, ctx| service::save(core, ctx, &table))??)
    }

    fn lookup(&mut self, m: Resource<MsgContext>, table: String) -> Result<(), HostError> {
        Ok(self.with_msg(&m, |core, ctx| service::lookup(core, ctx, &table))??)
    }

    fn fix_nated_register(&mut self, m: Resource<MsgContext>) -> wasmtime::Result<()> {
        self.msg(&m)?.nated_register = true;
        Ok(())
    }
}
