//! A request before it is routed — a retransmission answered from its
//! transaction, the ACK of our non-2xx, a CANCEL (§16.10) — and the
//! transaction a route creates for it (`t_newtran`, RFC 3261 §17.2.3 key).

use std::sync::Arc;

use wisp_sip::{Method, text};

use super::server::ServerTransaction;
use super::table::{self, Full};
use super::transaction::{Phase, Transaction};
use super::{RequestMatch, RouteContext, Tm, TxnHandle, call_id, lock};
use crate::stateless::{ActionError, Handled, MsgContext, RouteKind, reply};

impl Tm {
    /// Before a request is routed: absorb a retransmission (answering it with
    /// the last response sent), the ACK of a non-2xx we sent, and a CANCEL
    /// of an INVITE we hold (§16.10).
    pub fn on_request(&self, ctx: &MsgContext) -> RequestMatch {
        if self.is_empty() {
            return RequestMatch::New;
        }
        let method = ctx.msg.method();
        let as_invite = matches!(method, Some(Method::Ack | Method::Cancel));
        let Some(key) = server_key(ctx, as_invite) else {
            return RequestMatch::New;
        };
        let Some(handle) = self.table.by_key(&key) else {
            return RequestMatch::New;
        };
        let now = self.clock.now();
        match method {
            Some(Method::Ack) => {
                let mut txn = lock(&handle);
                let mut out = Vec::new();
                if txn.server.on_ack(now, &self.timers, &mut out) {
                    self.run_server_actions(&mut txn, out);
                    RequestMatch::Absorbed
                } else {
                    RequestMatch::New
                }
            }
            Some(Method::Cancel) => {
                self.cancel_from_upstream(&handle, ctx);
                RequestMatch::Absorbed
            }
            _ => {
                let txn = lock(&handle);
                if txn.phase == Phase::Replicating {
                    // Answered statelessly: the route answers the copy again.
                    return RequestMatch::New;
                }
                if let Some(last) = txn.server.on_retransmission() {
                    let _ = self.sl.transports().send_response(
                        txn.source.proto,
                        txn.response_dest,
                        Some(txn.source.local),
                        last,
                    );
                }
                tracing::debug!(call_id = %call_id(&ctx.msg), "request retransmission absorbed");
                crate::stats::inc(crate::stats::Counter::RetransmissionsAbsorbed);
                RequestMatch::Absorbed
            }
        }
    }

    /// The transaction of the request in `ctx`, created if there is none
    /// (`t_newtran`). Over `max_transactions`, the caller is answered 503
    /// with Retry-After here and `LimitReached` returned.
    pub fn ensure_transaction(&self, ctx: &mut RouteContext) -> Result<TxnHandle, ActionError> {
        ctx.ensure_unhandled()?;
        self.transaction_for(ctx)
    }

    /// The transaction of `ctx`, also after a stateless reply (for
    /// `t_replicate` after `save`, as in SER's replicate.cfg).
    pub(super) fn transaction_for(&self, ctx: &mut RouteContext) -> Result<TxnHandle, ActionError> {
        if let Some(t) = &ctx.txn {
            return Ok(t.clone());
        }
        if ctx.route != RouteKind::Request {
            return Err(ActionError::NotAllowedHere(
                "transactions are created in the request route".into(),
            ));
        }
        if ctx.msg.method() == Some(&Method::Ack) {
            return Err(ActionError::NotAllowedHere(
                "an ACK has no transaction; t_relay forwards it statelessly".into(),
            ));
        }
        let charge = table::charge_for(ctx.msg.len());
        if let Err(full) = self.table.room_for(charge, ctx.source.remote.ip()) {
            let why = match full {
                Full::Memory { budget_mb } => {
                    format!("transaction memory budget reached (tm.memory_mb = {budget_mb})")
                }
                Full::Count { max } => {
                    format!("{max} transactions in flight (tm.max_transactions)")
                }
                Full::Source { percent } => format!(
                    "{} holds its share of the transaction memory ({percent}%, tm.source_share_percent)",
                    ctx.source.remote.ip()
                ),
            };
            crate::log_limited!(warn, call_id = %crate::util::CallId(&ctx.msg), "{why}: 503");
            let _ = reply::send_stateless_reply(
                &self.sl,
                &ctx.msg,
                &ctx.summary,
                ctx.source,
                503,
                "Service Unavailable",
                &[("Retry-After", "5")],
            );
            ctx.handled = Some(Handled::Replied(503));
            return Err(ActionError::LimitReached(format!("{why}; answered 503")));
        }
        let key = server_key(ctx, false)
            .ok_or_else(|| ActionError::BadMessage("no top Via to key a transaction".into()))?;
        // The request with the route's edits so far, recorded, not applied:
        // no serialize and reparse. It holds the received bytes, which every
        // transport copies out at their exact size, so it pins no receive
        // buffer.
        let request = Arc::new(ctx.msg.clone());
        let invite = ctx.msg.method() == Some(&Method::Invite);
        let summary = Arc::new(ctx.summary.clone());
        let response_dest = reply::reply_destination(ctx.source, &ctx.summary);
        let (fr, fr_inv) = (self.timers.fr, self.timers.fr_inv);
        let handle = self.table.insert(key, charge, |id, key| Transaction {
            id,
            key,
            request,
            source: ctx.source,
            summary,
            flags: ctx.flags,
            record_routed: ctx.record_routed,
            invite,
            server: ServerTransaction::new(invite, ctx.source.proto.is_stream()),
            response_dest,
            branches: Vec::new(),
            candidates: Vec::new(),
            on_failure: None,
            on_reply: None,
            armed_by: None,
            fr,
            fr_inv,
            canceled: false,
            phase: Phase::Routing,
            ended: false,
            resolving: 0,
            charge,
            spent_call_id: None,
            media: None,
        });
        ctx.txn = Some(handle.clone());
        Ok(handle)
    }

    /// A CANCEL for an INVITE we hold (§16.10): 200 to the CANCEL, CANCEL
    /// down every pending branch; the branches' 487s end the INVITE.
    fn cancel_from_upstream(&self, handle: &TxnHandle, ctx: &MsgContext) {
        let _ = reply::send_stateless_reply(
            &self.sl,
            &ctx.msg,
            &ctx.summary,
            ctx.source,
            200,
            "OK",
            &[],
        );
        let now = self.clock.now();
        let mut txn = lock(handle);
        if txn.server.is_final() || txn.canceled {
            return;
        }
        txn.canceled = true;
        for i in 0..txn.branches.len() {
            self.cancel_branch(&mut txn, i, now);
        }
        if txn.pending_branches() == 0 && txn.resolving == 0 && txn.phase != Phase::FailureRoute {
            self.reply_local(&mut txn, 487, "Request Terminated");
        }
    }
}

/// RFC 3261 §17.2.3: branch + sent-by + method (ACK and CANCEL looked up as
/// the INVITE they belong to). Requests from RFC 2543 clients (no magic
/// cookie) are keyed by Call-ID, From-tag, CSeq number and sent-by.
fn server_key(ctx: &MsgContext, as_invite: bool) -> Option<String> {
    let via = &ctx.summary.top_via;
    let method = if as_invite {
        "INVITE"
    } else {
        ctx.msg.method()?.as_str()
    };
    let sent_by = via.sent_by();
    // Pushed piece by piece: `format!` costs several times more here.
    let mut key = String::with_capacity(96);
    match via.branch() {
        Some(b) if b.starts_with("z9hG4bK") => key.push_str(b),
        _ => {
            key.push_str("2543|");
            key.push_str(&call_id(&ctx.msg));
            key.push('|');
            key.push_str(ctx.summary.from_tag.as_deref().unwrap_or(""));
            key.push('|');
            text::push_int(&mut key, ctx.summary.cseq);
        }
    }
    key.push('|');
    key.push_str(&sent_by);
    key.push('|');
    key.push_str(method);
    Some(key)
}
