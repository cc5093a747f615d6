//! `wisp:router/proxy`: forwarding, `myself`, Max-Forwards, branches.

use wasmtime::component::Resource;
use wisp_sip::Uri;

use super::{HostError, PluginState};
use crate::msg_context::{ActionError, Handled, MAX_BRANCHES, MsgContext, RouteKind};
use crate::plugin::bindings::Transport;
use crate::plugin::bindings::wisp::router::proxy;
use crate::stateless::{forward, maxfwd};

impl proxy::Host for PluginState {
    fn is_myself(&mut self, uri: String) -> wasmtime::Result<bool> {
        Ok(Uri::parse(uri.as_bytes()).is_ok_and(|u| self.core.myself().uri_is_myself(&u)))
    }

    fn ruri_is_myself(&mut self, m: Resource<MsgContext>) -> wasmtime::Result<bool> {
        Ok(self.with_msg(&m, |core, ctx| core.myself().uri_is_myself(ctx.ruri()))?)
    }

    fn forward(
        &mut self,
        m: Resource<MsgContext>,
        host: Option<String>,
        port: Option<u16>,
    ) -> Result<(), HostError> {
        let hop = host.map(|host| forward::NextHop {
            proto: None,
            host,
            port,
        });
        Ok(self.with_msg(&m, |core, ctx| forward::forward_request(core, ctx, hop))??)
    }

    fn forward_to(
        &mut self,
        m: Resource<MsgContext>,
        proto: Transport,
        host: String,
        port: Option<u16>,
    ) -> Result<(), HostError> {
        let proto = super::sendable(proto)?;
        let hop = Some(forward::NextHop {
            proto: Some(proto),
            host,
            port,
        });
        Ok(self.with_msg(&m, |core, ctx| forward::forward_request(core, ctx, hop))??)
    }

    fn mf_process_maxfwd_header(
        &mut self,
        m: Resource<MsgContext>,
        limit: u32,
    ) -> Result<bool, HostError> {
        Ok(maxfwd::process_maxfwd(self.msg(&m)?, limit)?)
    }

    fn drop_request(&mut self, m: Resource<MsgContext>) -> Result<(), HostError> {
        let ctx = self.msg(&m)?;
        if ctx.route != RouteKind::Request {
            return Err(ActionError::NotAllowedHere(
                "drop-request ends a request route; return instead".into(),
            )
            .into());
        }
        ctx.ensure_unhandled()?;
        ctx.handled = Some(Handled::Dropped);
        Ok(())
    }

    fn append_branch(
        &mut self,
        m: Resource<MsgContext>,
        uri: Option<String>,
    ) -> Result<(), HostError> {
        let ctx = self.msg(&m)?;
        let uri = match uri {
            Some(u) => {
                Uri::parse(u.as_bytes())
                    .map_err(|e| ActionError::InvalidArgument(format!("{u:?}: {}", e.reason())))?;
                u
            }
            None => String::from_utf8_lossy(&ctx.msg.request_uri_raw()).into_owned(),
        };
        if ctx.branches.len() >= MAX_BRANCHES {
            return Err(ActionError::LimitReached(format!(
                "destination set holds at most {MAX_BRANCHES} branches"
            ))
            .into());
        }
        ctx.branches.push(crate::msg_context::DestBranch::to(uri));
        Ok(())
    }

    fn branches(&mut self, m: Resource<MsgContext>) -> wasmtime::Result<Vec<String>> {
        Ok(self
            .msg(&m)?
            .branches
            .iter()
            .map(|b| b.uri.clone())
            .collect())
    }
}
