//! `wisp:router/sl`: stateless replies.

use wasmtime::component::Resource;

use super::{HostError, PluginState};
use crate::msg_context::MsgContext;
use crate::plugin::bindings::wisp::router::sl;
use crate::stateless::reply;

impl sl::Host for PluginState {
    fn send_reply(
        &mut self,
        m: Resource<MsgContext>,
        code: u16,
        reason: String,
    ) -> Result<(), HostError> {
        Ok(self.with_msg(&m, |core, ctx| {
            reply::sl_send_reply(core, ctx, code, &reason)
        })??)
    }

    fn reply_error(&mut self, m: Resource<MsgContext>) -> Result<(), HostError> {
        Ok(self.with_msg(&m, reply::sl_reply_error)??)
    }
}
