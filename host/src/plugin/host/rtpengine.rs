//! `wisp:router/rtpengine`: media relaying, over `tm::media` (offers when
//! `t_relay` sends, answers when the reply route returns) and the relay
//! client (deletes, in a task).

use wasmtime::component::Resource;
use wisp_sip::Method;

use super::{HostError, PluginState};
use crate::plugin::bindings::wisp::router::rtpengine;
use crate::stateless::context::{ActionError, RouteKind};
use crate::tm::RouteContext;
use crate::tm::media::{MediaOp, MediaSession};

fn no_relay() -> ActionError {
    ActionError::Internal("no media relay configured ([rtpengine] sockets)".into())
}

/// Kamailio's flags, plus where the message came from when they ask for
/// `SIP-source-address` (rtpengine's `received-from`).
fn flags_for(ctx: &RouteContext, flags: String) -> Result<String, ActionError> {
    if flags.contains(['\r', '\n']) {
        return Err(ActionError::InvalidArgument("flags with CR or LF".into()));
    }
    if !flags.split_whitespace().any(|f| f == "SIP-source-address") {
        return Ok(flags);
    }
    let ip = ctx.source.remote.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    Ok(format!("{flags} received-from={family}:{ip}"))
}

impl PluginState {
    fn media_checked(
        &mut self,
        m: &Resource<RouteContext>,
        flags: String,
    ) -> Result<(&mut RouteContext, String), HostError> {
        if self.host.tm.media_relay().is_none() {
            return Err(no_relay().into());
        }
        let ctx = self.msg(m)?;
        let flags = flags_for(ctx, flags)?;
        Ok((ctx, flags))
    }

    /// `rtpengine_delete` of `ctx`'s call, in a task.
    fn media_delete(&mut self, m: &Resource<RouteContext>) -> Result<(), HostError> {
        let Some(relay) = self.host.tm.media_relay().cloned() else {
            return Err(no_relay().into());
        };
        let ctx = self.msg(m)?;
        let MediaSession { call_id, from_tag } = MediaSession::of(&ctx.msg)?;
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

impl rtpengine::Host for PluginState {
    fn rtpengine_offer(
        &mut self,
        m: Resource<RouteContext>,
        flags: String,
    ) -> Result<(), HostError> {
        let (ctx, flags) = self.media_checked(&m, flags)?;
        if ctx.route == RouteKind::Reply {
            ctx.media_reply = Some(MediaOp::Offer(flags));
        } else {
            ctx.media_offer = Some(flags);
        }
        Ok(())
    }

    fn rtpengine_answer(
        &mut self,
        m: Resource<RouteContext>,
        flags: String,
    ) -> Result<(), HostError> {
        let (ctx, flags) = self.media_checked(&m, flags)?;
        if ctx.msg.is_request() && ctx.msg.method() != Some(&Method::Ack) {
            return Err(ActionError::NotAllowedHere(
                "rtpengine_answer on a request other than ACK".into(),
            )
            .into());
        }
        ctx.media_reply = Some(MediaOp::Answer(flags));
        Ok(())
    }

    fn rtpengine_manage(
        &mut self,
        m: Resource<RouteContext>,
        flags: String,
    ) -> Result<(), HostError> {
        let (ctx, flags) = self.media_checked(&m, flags)?;
        if !ctx.msg.is_request() {
            ctx.media_reply = Some(MediaOp::Manage(flags));
            return Ok(());
        }
        let has_sdp = !ctx.msg.body().is_empty();
        let delete = match ctx.msg.method() {
            Some(Method::Invite | Method::Update) if has_sdp => {
                ctx.media_offer = Some(flags);
                false
            }
            Some(Method::Ack) if has_sdp => {
                ctx.media_reply = Some(MediaOp::Answer(flags));
                false
            }
            Some(Method::Bye | Method::Cancel) => true,
            _ => false,
        };
        if delete {
            return self.media_delete(&m);
        }
        Ok(())
    }

    fn rtpengine_delete(&mut self, m: Resource<RouteContext>) -> Result<(), HostError> {
        self.media_delete(&m)
    }
}
