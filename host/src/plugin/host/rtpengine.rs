//! `wisp:router/rtpengine`: media relaying, over `tm::media` (offers when
//! `t_relay` sends) and the relay client (deletes, in a task).

use wasmtime::component::Resource;

use super::{HostError, PluginState};
use crate::plugin::bindings::wisp::router::rtpengine;
use crate::stateless::context::{ActionError, RouteKind};
use crate::tm::RouteContext;

fn no_relay() -> ActionError {
    ActionError::Internal("no media relay configured ([rtpengine] sockets)".into())
}

impl rtpengine::Host for PluginState {
    fn rtpengine_offer(
        &mut self,
        m: Resource<RouteContext>,
        flags: String,
    ) -> Result<(), HostError> {
        if self.host.tm.media_relay().is_none() {
            return Err(no_relay().into());
        }
        if flags.contains(['\r', '\n']) {
            return Err(ActionError::InvalidArgument("flags with CR or LF".into()).into());
        }
        let ctx = self.msg(&m)?;
        if ctx.route == RouteKind::Reply {
            return Err(
                ActionError::NotAllowedHere("rtpengine_offer in a reply route".into()).into(),
            );
        }
        ctx.media_offer = Some(flags);
        Ok(())
    }

    fn rtpengine_delete(&mut self, m: Resource<RouteContext>) -> Result<(), HostError> {
        let Some(relay) = self.host.tm.media_relay().cloned() else {
            return Err(no_relay().into());
        };
        let ctx = self.msg(&m)?;
        let call_id = ctx
            .msg
            .call_id()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .map_err(|e| ActionError::BadMessage(format!("Call-ID: {}", e.reason())))?;
        let from_tag = ctx
            .msg
            .checked_from_tag()
            .ok()
            .flatten()
            .map(|t| t.to_string())
            .unwrap_or_default();
        let to_tag = ctx
            .msg
            .to()
            .ok()
            .and_then(|to| to.tag().map(|t| t.to_string()));
        tokio::spawn(async move {
            if let Err(e) = relay.delete(call_id, from_tag, to_tag).await {
                crate::log_limited!(info, "rtpengine delete: {e}");
            }
        });
        Ok(())
    }
}
