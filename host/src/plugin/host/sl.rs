//! `wisp:router/sl`: stateless replies.

use wasmtime::component::Resource;

use super::{HostError, PluginState};
use crate::plugin::bindings::wisp::router::sl;
use crate::tm::RouteContext;

impl sl::Host for PluginState {
    fn send_reply(
        &mut self,
        m: Resource<RouteContext>,
        code: u16,
        reason: String,
    ) -> Result<(), HostError> {
        Ok(self.with_msg(&m, |host, ctx| host.tm.sl_send_reply(ctx, code, &reason))??)
    }

    fn reply_error(&mut self, m: Resource<RouteContext>) -> Result<(), HostError> {
        Ok(self.with_msg(&m, |host, ctx| host.tm.sl_reply_error(ctx))??)
    }
}
