//! `wisp:router/tm`: stateful relaying, failure and reply routes.

use std::time::Duration;

use wasmtime::component::Resource;

use super::{HostError, PluginState};
use crate::plugin::bindings::Transport;
use crate::plugin::bindings::wisp::router::tm;
use crate::stateless::context::{ActionError, RouteKind};
use crate::stateless::forward::NextHop;
use crate::tm::RouteContext;

impl tm::Host for PluginState {
    fn t_relay(&mut self, m: Resource<RouteContext>) -> Result<(), HostError> {
        Ok(self.with_msg(&m, |host, ctx| host.tm.t_relay(ctx, None))??)
    }

    fn t_relay_to(
        &mut self,
        m: Resource<RouteContext>,
        proto: Transport,
        host: String,
        port: Option<u16>,
    ) -> Result<(), HostError> {
        let proto = super::sendable(proto)?;
        let hop = NextHop {
            proto: Some(proto),
            host,
            port,
        };
        Ok(self.with_msg(&m, |host, ctx| host.tm.t_relay(ctx, Some(hop)))??)
    }

    fn t_newtran(&mut self, m: Resource<RouteContext>) -> Result<(), HostError> {
        Ok(self.with_msg(&m, |host, ctx| host.tm.ensure_transaction(ctx).map(|_| ()))??)
    }

    fn t_reply(
        &mut self,
        m: Resource<RouteContext>,
        code: u16,
        reason: String,
    ) -> Result<(), HostError> {
        Ok(self.with_msg(&m, |host, ctx| host.tm.t_reply(ctx, code, &reason))??)
    }

    fn t_replicate(&mut self, m: Resource<RouteContext>, uri: String) -> Result<(), HostError> {
        Ok(self.with_msg(&m, |host, ctx| host.tm.t_replicate(ctx, &uri))??)
    }

    fn t_on_failure(&mut self, m: Resource<RouteContext>, name: String) -> wasmtime::Result<()> {
        self.msg(&m)?.on_failure = Some(name);
        Ok(())
    }

    fn t_on_reply(&mut self, m: Resource<RouteContext>, name: String) -> wasmtime::Result<()> {
        self.msg(&m)?.on_reply = Some(name);
        Ok(())
    }

    fn t_set_fr(
        &mut self,
        m: Resource<RouteContext>,
        fr_inv_ms: u32,
        fr_ms: u32,
    ) -> Result<(), HostError> {
        for v in [fr_inv_ms, fr_ms] {
            if v == 0 || v > 3_600_000 {
                return Err(ActionError::InvalidArgument(format!(
                    "timer {v} ms is not in 1..=3600000"
                ))
                .into());
            }
        }
        self.msg(&m)?.fr_override = Some((
            Duration::from_millis(fr_inv_ms.into()),
            Duration::from_millis(fr_ms.into()),
        ));
        Ok(())
    }

    fn t_check_status(
        &mut self,
        m: Resource<RouteContext>,
        pattern: String,
    ) -> Result<bool, HostError> {
        let code = reply_code(self.msg(&m)?);
        let anchored = format!("^(?:{pattern})$");
        let re = regex::Regex::new(&anchored)
            .map_err(|e| ActionError::InvalidArgument(format!("{pattern:?}: {e}")))?;
        Ok(code.is_some_and(|c| re.is_match(&c.to_string())))
    }

    fn t_reply_code(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<Option<u16>> {
        Ok(reply_code(self.msg(&m)?))
    }

    fn t_is_canceled(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<bool> {
        let ctx = self.msg(&m)?;
        Ok(ctx
            .txn
            .as_ref()
            .is_some_and(|t| crate::util::lock(t).canceled))
    }
}

fn reply_code(ctx: &RouteContext) -> Option<u16> {
    match ctx.route {
        RouteKind::Failure => ctx.reply_code,
        RouteKind::Reply => ctx.msg.status(),
        RouteKind::Request => None,
    }
}
