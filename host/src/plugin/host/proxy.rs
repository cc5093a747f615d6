//! `wisp:router/proxy`: forwarding, `myself`, Max-Forwards, branches.

use wasmtime::component::Resource;
use wisp_sip::Uri;

use super::{HostError, PluginState};
use crate::plugin::bindings::Transport;
use crate::plugin::bindings::wisp::router::proxy;
use crate::stateless::context::{ActionError, DestBranch, Handled, MAX_BRANCHES, RouteKind};
use crate::stateless::{forward, maxfwd};
use crate::tm::RouteContext;

impl proxy::Host for PluginState {
    fn is_myself(&mut self, uri: String) -> wasmtime::Result<bool> {
        Ok(Uri::parse(uri.as_bytes()).is_ok_and(|u| self.host.sl.myself().uri_is_myself(&u)))
    }

    fn ruri_is_myself(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<bool> {
        Ok(self.with_msg(&m, |host, ctx| host.sl.myself().uri_is_myself(ctx.ruri()))?)
    }

    fn src_is_myself(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<bool> {
        Ok(self.with_msg(&m, |host, ctx| {
            host.sl.myself().ip_is_myself(ctx.source.remote.ip())
        })?)
    }

    fn forward(
        &mut self,
        m: Resource<RouteContext>,
        host: Option<String>,
        port: Option<u16>,
    ) -> Result<(), HostError> {
        let hop = host.map(|host| forward::NextHop {
            proto: None,
            host,
            port,
        });
        Ok(self.with_msg(&m, |host, ctx| forward::forward_request(&host.sl, ctx, hop))??)
    }

    fn forward_to(
        &mut self,
        m: Resource<RouteContext>,
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
        Ok(self.with_msg(&m, |host, ctx| forward::forward_request(&host.sl, ctx, hop))??)
    }

    fn mf_process_maxfwd_header(
        &mut self,
        m: Resource<RouteContext>,
        limit: u32,
    ) -> Result<bool, HostError> {
        Ok(maxfwd::process_maxfwd(self.msg(&m)?, limit)?)
    }

    fn drop_request(&mut self, m: Resource<RouteContext>) -> Result<(), HostError> {
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
        m: Resource<RouteContext>,
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
        ctx.branches.push(DestBranch::to(uri));
        Ok(())
    }

    fn branches(&mut self, m: Resource<RouteContext>) -> wasmtime::Result<Vec<String>> {
        Ok(self
            .msg(&m)?
            .branches
            .iter()
            .map(|b| b.uri.clone())
            .collect())
    }
}
