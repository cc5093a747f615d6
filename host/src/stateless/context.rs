//! A SIP message in the hands of a route, as every route sees it: the parsed
//! message plus what the route decided so far (flags, destination set,
//! whether it was answered). The transaction layer adds its own part
//! (`tm::RouteContext`); the plugin layer lends that to plugins as the WIT
//! `msg` resource.

use bytes::Bytes;
use wisp_sip::{Message, Uri};

use crate::transport::Source;

/// What already happened to a request; a second final action is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Answered with this final status.
    Replied(u16),
    /// Forwarded statelessly.
    Forwarded,
    /// Relayed statefully (`t_relay`).
    Relayed,
    /// Dropped on purpose (`drop-request`, Kamailio `drop`): no later
    /// plugin of the chain sees it.
    Dropped,
}

/// Which route a message is in: what a host function may do depends on it
/// (Kamailio's REQUEST_ROUTE / FAILURE_ROUTE / ONREPLY_ROUTE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Request,
    Failure,
    Reply,
}

/// A routing action failed. Mirrors the WIT `error` variant without depending
/// on the bindings, so the stateless core and services stay Wasm-free.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("bad message: {0}")]
    BadMessage(String),
    #[error("not allowed here: {0}")]
    NotAllowedHere(String),
    #[error("request already answered or relayed")]
    AlreadyHandled,
    #[error("not found")]
    NotFound,
    #[error("send failed: {0}")]
    SendFailed(String),
    #[error("limit reached: {0}")]
    LimitReached(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// The manifest does not grant the capability the action needs.
    #[error("not permitted: {0}")]
    NotPermitted(String),
}

/// One entry of the destination set beyond the Request-URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestBranch {
    pub uri: String,
    /// Next hop instead of `uri`'s host (Kamailio's per-branch `$du`): a
    /// contact's NAT source, or the first hop of its Path.
    pub dst_uri: Option<String>,
    /// Route header values to add when relaying to it (the Path, RFC 3327).
    pub path: Option<String>,
}

impl DestBranch {
    pub fn to(uri: String) -> Self {
        DestBranch {
            uri,
            dst_uri: None,
            path: None,
        }
    }
}

/// Most branches a destination set may hold (Kamailio `max_branches`).
pub const MAX_BRANCHES: usize = 16;

pub use wisp_sip::sanity::RequestSummary;

/// The message a route works on, with the state the route builds up.
pub struct MsgContext {
    pub msg: Message,
    pub source: Source,
    /// Message flags 0..=63 (`setflag`, `isflagset`).
    pub flags: u64,
    /// Destination set beyond the Request-URI (`append_branch`, `lookup`).
    pub branches: Vec<DestBranch>,
    /// Route header values for the Request-URI branch (`lookup` of a contact
    /// registered with a Path).
    pub path: Option<String>,
    /// `fix_nated_register()`: `save` stores the REGISTER's source.
    pub nated_register: bool,
    /// Next hop overriding the Request-URI (Kamailio `$du`), e.g. a NATed
    /// contact's source address found by `lookup`.
    pub dst_uri: Option<String>,
    pub handled: Option<Handled>,
    /// The reply `sl_reply_error` sends: set by a failed action.
    pub last_error: Option<(u16, &'static str)>,
    /// The request's transaction headers as received.
    pub summary: RequestSummary,
    pub route: RouteKind,
    /// `record_route` inserted our Record-Route (a second one is refused).
    pub record_routed: bool,
    /// What `loose_route` returned; a second call returns it again instead
    /// of applying the Route edits twice.
    pub loose_routed: Option<bool>,
    /// Max-Forwards was decremented (`mf_process_maxfwd_header`, or the
    /// host before the first forward): a request does it once per hop.
    pub maxfwd_processed: bool,
}

impl MsgContext {
    pub fn new(msg: Message, source: Source, summary: RequestSummary) -> Self {
        MsgContext {
            msg,
            source,
            flags: 0,
            branches: Vec::new(),
            path: None,
            nated_register: false,
            dst_uri: None,
            handled: None,
            last_error: None,
            summary,
            maxfwd_processed: false,
            route: RouteKind::Request,
            record_routed: false,
            loose_routed: None,
        }
    }

    /// The current Request-URI, parsed (kept in step with every rewrite).
    pub fn ruri(&self) -> &Uri {
        &self.summary.ruri
    }

    /// Rewrite the Request-URI (`rewriteuri` and friends, `lookup`).
    pub fn set_ruri(&mut self, uri: Uri) {
        self.msg.set_request_uri(Bytes::from(uri.to_string()));
        self.summary.ruri = uri;
    }

    /// Refuse a second final action on the same request.
    pub fn ensure_unhandled(&self) -> Result<(), ActionError> {
        match self.handled {
            None => Ok(()),
            Some(_) => Err(ActionError::AlreadyHandled),
        }
    }

    /// Remember the reply for `sl_reply_error` and pass the error on.
    pub fn fail(&mut self, code: u16, reason: &'static str, err: ActionError) -> ActionError {
        self.last_error = Some((code, reason));
        err
    }
}
