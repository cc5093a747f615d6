//! The stateless core (Kamailio core + `sl` + `maxfwd` + `rr`): replies, forwarding
//! of requests and of responses along Via, Max-Forwards, `myself`, and the
//! sanity checks a request passes before any plugin sees it.
//!
//! - [`context`]: a message in a route's hands, as every route sees it.
//! - [`reply`]: stateless replies, their To-tag and destination.
//! - [`forward`]: stateless forwarding of requests and responses.
//! - [`rr`]: `record_route`, `loose_route`.
//! - [`nat`]: nathelper: NAT tests, Contact alias, SDP address fixes.
//! - [`maxfwd`], [`myself`], [`sanity`]: one check each.
//!
//! Everything here acts through a [`Stateless`] handle: the sockets, the
//! router's own names and the `[rr]` settings. Nothing here knows of
//! transactions or plugins.

pub mod context;
pub mod forward;
pub mod maxfwd;
pub mod myself;
pub mod nat;
pub mod reply;
pub mod rr;
pub mod sanity;

use std::sync::Arc;

pub use context::{ActionError, DestBranch, Handled, MsgContext, RequestSummary, RouteKind};

use crate::config::RrConfig;
use crate::transport::Transports;
use myself::Myself;

/// What the stateless core acts with: the sockets, `myself` and the
/// Record-Route settings.
pub struct Stateless {
    transports: Arc<Transports>,
    myself: Myself,
    rr: RrConfig,
    /// The `Server:` value of every reply built here (`None`: no header).
    server_header: Option<Arc<str>>,
    /// The `User-Agent:` value of requests the router makes itself (tm's
    /// CANCEL and ACK); `None`: no header.
    user_agent_header: Option<Arc<str>>,
    /// `server.sip_warning`: every reply built here carries a `Warning: 392`
    /// that describes the request (Kamailio core `sip_warning`).
    sip_warning: bool,
}

impl Stateless {
    /// A core over bound sockets: `myself` is every address they listen on
    /// (the bound port when the manifest asked for port 0) and `aliases`.
    pub fn new(transports: Arc<Transports>, aliases: &[String], rr: RrConfig) -> Self {
        let listen = transports.listen_addrs().into_iter().map(|(_, a)| a);
        let myself = Myself::new(listen, aliases);
        Stateless {
            transports,
            myself,
            rr,
            server_header: Some(Arc::from(reply::SERVER)),
            user_agent_header: Some(Arc::from(reply::SERVER)),
            sip_warning: false,
        }
    }

    /// The manifest's `server.server_header` and `server.user_agent_header`
    /// (Kamailio `server_header`, `user_agent_header`); `""` leaves the
    /// header out.
    pub fn with_identity(mut self, server_header: &str, user_agent_header: &str) -> Self {
        let value = |v: &str| (!v.is_empty()).then(|| Arc::from(v));
        self.server_header = value(server_header);
        self.user_agent_header = value(user_agent_header);
        self
    }

    /// The manifest's `server.sip_warning` (Kamailio core `sip_warning`):
    /// every reply the router generates carries a `Warning: 392` naming the
    /// process, the request's source, its Request-URI before and after the
    /// route and its Via count.
    pub fn with_sip_warning(mut self, on: bool) -> Self {
        self.sip_warning = on;
        self
    }

    /// What every reply built here carries besides the request's headers.
    pub fn reply_headers(&self) -> reply::ReplyHeaders<'_> {
        reply::ReplyHeaders {
            server: self.server_header.as_deref(),
            sip_warning: self.sip_warning,
        }
    }

    pub fn server_header(&self) -> Option<&Arc<str>> {
        self.server_header.as_ref()
    }

    pub fn user_agent_header(&self) -> Option<&str> {
        self.user_agent_header.as_deref()
    }

    pub fn transports(&self) -> &Arc<Transports> {
        &self.transports
    }

    pub fn myself(&self) -> &Myself {
        &self.myself
    }

    pub fn rr(&self) -> &RrConfig {
        &self.rr
    }
}
