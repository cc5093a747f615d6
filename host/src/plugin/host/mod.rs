//! Host side of every WIT interface, one file each (`message.rs` implements
//! `wisp:router/message`, ...). Each file holds only its trait impl and the
//! conversions it needs; the work is done by the stateless core and the
//! services, which know nothing of Wasm.

mod acc;
mod auth;
mod exec;
mod htable;
mod log;
mod message;
mod nathelper;
mod pike;
mod proxy;
mod registrar;
mod rr;
mod rtpengine;
mod sl;
mod tm;
mod types;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::StoreLimits;
use wasmtime::component::{Resource, ResourceTableError};

use super::bindings::WitError;
use crate::config::PluginConfig;
use crate::services::Services;
use crate::services::exec::ExecGrant;
use crate::stateless::{ActionError, Stateless};
use crate::tm::{RouteContext, Tm};

/// The layers host functions act on, and where plugins are loaded from.
/// One per router, shared by every instance of every plugin build.
pub struct HostContext {
    pub sl: Arc<Stateless>,
    pub tm: Arc<Tm>,
    pub services: Arc<Services>,
    /// The manifest's directory: relative paths of grants resolve against it.
    pub base_dir: PathBuf,
    /// Compiled components (`server.plugin_cache`); none when off.
    pub cache_dir: Option<PathBuf>,
}

/// What the manifest grants one plugin (`[plugin.capabilities]`), decided
/// at load. The default grants nothing: every capability-gated host
/// function refuses with `not-permitted`.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub(crate) exec: ExecGrant,
    /// How long one exec'd program may run: the plugin's `deadline_ms`,
    /// since a call past it traps anyway on return to Wasm.
    pub(crate) exec_timeout: Duration,
}

impl Capabilities {
    /// The grants of `cfg`; relative program paths resolve against
    /// `base_dir`, the manifest's directory.
    pub fn from_config(cfg: &PluginConfig, base_dir: &Path) -> Arc<Self> {
        Arc::new(Capabilities {
            exec: ExecGrant::new(&cfg.capabilities.exec, base_dir),
            exec_timeout: Duration::from_millis(cfg.deadline_ms),
        })
    }
}

/// Per-instance data of a plugin's store: the message being routed, the
/// instance's limits and the layers it acts on.
/// Public so that benchmarks can drive instances outside `PluginRuntime`.
pub struct PluginState {
    /// The message of the call in progress ([`PluginState::lend`]).
    message: Option<Box<RouteContext>>,
    pub limits: StoreLimits,
    pub(crate) host: Arc<HostContext>,
    pub(crate) plugin_name: Arc<str>,
    /// The build this instance runs (the short hash logs name it by).
    pub(crate) plugin_version: Arc<str>,
    /// Compiled `search` patterns, so a route that searches every message
    /// compiles its regex once per instance.
    pub(crate) regex_cache: Vec<(String, regex::bytes::Regex)>,
    pub(crate) caps: Arc<Capabilities>,
    /// Why the route in progress fails, from `log.route-error`.
    pub(crate) route_error: Option<crate::plugin::bindings::WitError>,
    /// WASI of a plugin granted it, made on its first use.
    pub(crate) wasi: Option<Box<crate::plugin::wasi::WasiState>>,
}

/// The representation of the one message a call works on.
const MESSAGE_REP: u32 = 1;

impl PluginState {
    pub fn new(host: Arc<HostContext>, plugin_name: Arc<str>, limits: StoreLimits) -> Self {
        PluginState {
            message: None,
            limits,
            host,
            plugin_name,
            plugin_version: Arc::from(""),
            regex_cache: Vec::new(),
            caps: Arc::new(Capabilities::default()),
            route_error: None,
            wasi: None,
        }
    }

    /// The build this instance runs, as its log lines name it.
    pub(crate) fn with_version(mut self, version: &str) -> Self {
        self.plugin_version = Arc::from(version);
        self
    }

    /// The Call-ID of the message the call in progress works on, for log
    /// lines; empty between calls.
    pub(crate) fn call_id(&self) -> &[u8] {
        self.message
            .as_ref()
            .and_then(|ctx| ctx.msg.call_id().ok())
            .unwrap_or_default()
    }

    /// Grant what the manifest lists for this plugin; without it, nothing.
    pub(crate) fn with_capabilities(mut self, caps: Arc<Capabilities>) -> Self {
        self.caps = caps;
        self
    }

    /// Hand the message to the plugin for one call: the borrow handle the
    /// export takes. The message stays in place in this state rather than
    /// in the `ResourceTable`, which would box and move it on every call;
    /// a call works on exactly one message, so one slot is all it needs.
    pub fn lend(&mut self, ctx: Box<RouteContext>) -> Resource<RouteContext> {
        self.message = Some(ctx);
        Resource::new_borrow(MESSAGE_REP)
    }

    /// Take the message back after the call.
    pub fn take_back(&mut self) -> Option<Box<RouteContext>> {
        self.message.take()
    }

    /// The message behind a handle; a stale handle traps the plugin.
    pub(crate) fn msg(
        &mut self,
        handle: &Resource<RouteContext>,
    ) -> Result<&mut RouteContext, ResourceTableError> {
        match &mut self.message {
            Some(ctx) if handle.rep() == MESSAGE_REP => Ok(ctx),
            _ => Err(ResourceTableError::NotPresent),
        }
    }

    /// Run `f` with the layers and the message behind `handle`.
    pub(crate) fn with_msg<R>(
        &mut self,
        handle: &Resource<RouteContext>,
        f: impl FnOnce(&HostContext, &mut RouteContext) -> R,
    ) -> Result<R, ResourceTableError> {
        match &mut self.message {
            Some(ctx) if handle.rep() == MESSAGE_REP => Ok(f(&self.host, ctx)),
            _ => Err(ResourceTableError::NotPresent),
        }
    }
}

/// Compiled `search` patterns an instance keeps.
const REGEX_CACHE: usize = 32;

impl PluginState {
    /// The compiled `pattern` (from the instance's cache, or compiled into
    /// it) and the message behind `handle`, borrowed together: no clone of
    /// the regex, whose clone would start a new match cache each call.
    pub(crate) fn regex_and_msg(
        &mut self,
        handle: &Resource<RouteContext>,
        pattern: String,
    ) -> Result<(&regex::bytes::Regex, &RouteContext), HostError> {
        let idx = match self.regex_cache.iter().position(|(p, _)| *p == pattern) {
            Some(i) => i,
            None => {
                let re = regex::bytes::RegexBuilder::new(&pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| ActionError::InvalidArgument(format!("regex {pattern:?}: {e}")))?;
                if self.regex_cache.len() >= REGEX_CACHE {
                    self.regex_cache.remove(0);
                }
                self.regex_cache.push((pattern, re));
                self.regex_cache.len() - 1
            }
        };
        match &self.message {
            Some(ctx) if handle.rep() == MESSAGE_REP => Ok((&self.regex_cache[idx].1, ctx)),
            _ => Err(ResourceTableError::NotPresent.into()),
        }
    }
}

/// The transport a plugin named, as one the router can send on.
pub(crate) fn sendable(
    proto: super::bindings::Transport,
) -> Result<crate::config::Proto, ActionError> {
    use super::bindings::Transport;
    match proto {
        Transport::Udp => Ok(crate::config::Proto::Udp),
        Transport::Tcp => Ok(crate::config::Proto::Tcp),
        Transport::Tls => Ok(crate::config::Proto::Tls),
        // Only over a connection the client opened: a send without one fails.
        Transport::Ws => Ok(crate::config::Proto::Ws),
        Transport::Wss => Ok(crate::config::Proto::Wss),
    }
}

/// What a host function returns: a WIT error the plugin sees, or a trap.
#[derive(Debug)]
pub enum HostError {
    Guest(WitError),
    Trap(wasmtime::Error),
}

impl From<ActionError> for HostError {
    fn from(e: ActionError) -> Self {
        HostError::Guest(match e {
            ActionError::InvalidArgument(s) => WitError::InvalidArgument(s),
            ActionError::BadMessage(s) => WitError::BadMessage(s),
            ActionError::NotAllowedHere(s) => WitError::NotAllowedHere(s),
            ActionError::AlreadyHandled => WitError::AlreadyHandled,
            ActionError::NotFound => WitError::NotFound,
            ActionError::SendFailed(s) => WitError::SendFailed(s),
            ActionError::LimitReached(s) => WitError::LimitReached(s),
            ActionError::Internal(s) => WitError::Internal(s),
            ActionError::NotPermitted(s) => WitError::NotPermitted(s),
        })
    }
}

impl From<ResourceTableError> for HostError {
    fn from(e: ResourceTableError) -> Self {
        HostError::Trap(e.into())
    }
}
