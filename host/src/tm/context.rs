//! A message in a route's hands, with what the transaction layer adds to
//! the stateless [`MsgContext`]: its transaction, the routes `t_relay` will
//! arm, and who armed them ([`RouteOwner`]).

use std::any::Any;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use wisp_sip::Message;

use super::TxnHandle;
use crate::stateless::{MsgContext, RequestSummary, RouteKind};
use crate::transport::Source;

/// Who armed a transaction's failure or reply route: the plugin build that
/// must run it, whatever is loaded by then. Opaque to the transaction
/// layer, which keeps it while the transaction may still run the route and
/// hands it back with the work ([`ArmedRoute`](super::ArmedRoute)).
pub trait RouteOwner: Any + Send + Sync {
    /// One more transaction holds this owner.
    fn armed(&self);
    /// A transaction let this owner go (it ended, or re-armed with another).
    fn released(&self);
}

/// One transaction's hold on the owner of its routes: [`RouteOwner::armed`]
/// when made, [`RouteOwner::released`] when dropped.
pub struct OwnerHold(Arc<dyn RouteOwner>);

impl OwnerHold {
    pub fn new(owner: Arc<dyn RouteOwner>) -> Self {
        owner.armed();
        OwnerHold(owner)
    }

    pub fn owner(&self) -> &Arc<dyn RouteOwner> {
        &self.0
    }

    /// Whether this hold is on `owner` (the same object, not an equal one).
    pub fn is_on(&self, owner: &Arc<dyn RouteOwner>) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(owner))
    }
}

impl Drop for OwnerHold {
    fn drop(&mut self) {
        self.0.released();
    }
}

impl std::fmt::Debug for OwnerHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnerHold")
    }
}

/// A message a route works on: the stateless [`MsgContext`] (which this
/// derefs to, so `ctx.msg` reads the same at every layer) plus the
/// transaction state.
pub struct RouteContext {
    /// What every route sees.
    pub base: MsgContext,
    /// The transaction, once `t_relay`/`t_newtran`/`t_reply` made one (and
    /// always in a failure route).
    pub txn: Option<TxnHandle>,
    /// Who runs this message's current route call: a failure or reply route
    /// armed now runs in it, even after a reload.
    pub owner: Option<Arc<dyn RouteOwner>>,
    /// `t_relay` already ran in this route call.
    pub relayed_in_route: bool,
    /// Armed by `t_on_failure` / `t_on_reply`, taken by the next `t_relay`.
    pub on_failure: Option<String>,
    pub on_reply: Option<String>,
    /// `t_set_fr(fr_inv, fr)`.
    pub fr_override: Option<(Duration, Duration)>,
    /// In a failure route: status of the best final response so far
    /// (Kamailio `$T_reply_code`, `t_check_status`).
    pub reply_code: Option<u16>,
    /// What the last `www_authorize` / `proxy_authorize` found; the auth
    /// service reads and writes it.
    pub auth: AuthMark,
    /// `rtpengine_offer(flags)`: the next `t_relay` sends the request's SDP
    /// through the media relay first (see `tm::media`).
    pub media_offer: Option<String>,
    /// `rtpengine_answer` / `rtpengine_manage` in a reply route (or on an
    /// ACK): the message's SDP goes through the media relay when it leaves.
    pub media_reply: Option<super::media::MediaOp>,
}

/// What digest authentication has established about this message (Kamailio
/// marks the credentials it authorized on the message).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthMark {
    /// The credentials the last authorize accepted, if it accepted any.
    pub authorized: Option<AuthorizedCredentials>,
    /// The last authorize found an expired nonce: the next challenge says
    /// `stale=true`.
    pub stale: bool,
}

/// Credentials an authorize accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedCredentials {
    /// The digest `username`.
    pub user: String,
    /// The realm checked (the subscriber's domain).
    pub realm: String,
    /// Where the header is in the message as received (`Message::headers`
    /// order), so `consume_credentials` removes that one.
    pub header_index: usize,
}

impl RouteContext {
    /// A message about to enter a route of kind `route`.
    pub fn new(msg: Message, source: Source, summary: RequestSummary, route: RouteKind) -> Self {
        let mut base = MsgContext::new(msg, source, summary);
        base.route = route;
        RouteContext {
            base,
            txn: None,
            owner: None,
            relayed_in_route: false,
            on_failure: None,
            on_reply: None,
            fr_override: None,
            reply_code: None,
            auth: AuthMark::default(),
            media_offer: None,
            media_reply: None,
        }
    }
}

impl Deref for RouteContext {
    type Target = MsgContext;

    fn deref(&self) -> &MsgContext {
        &self.base
    }
}

impl DerefMut for RouteContext {
    fn deref_mut(&mut self) -> &mut MsgContext {
        &mut self.base
    }
}
