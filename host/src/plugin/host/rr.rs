//! `wisp:router/rr`: `record_route`, `loose_route`.

use wasmtime::component::Resource;

use super::{HostError, PluginState};
use crate::msg_context::MsgContext;
use crate::plugin::bindings::wisp::router::rr;
use crate::stateless::rr as core_rr;

impl rr::Host for PluginState {
    fn record_route(&mut self, m: Resource<MsgContext>) -> Result<(), HostError> {
        Ok(self.with_msg(&m, core_rr::record_route)??)
    }

    fn loose_route(&mut self, m: Resource<MsgContext>) -> Result<bool, HostError> {
        Ok(self.with_msg(&m, core_rr::loose_route)??)
    }
}
