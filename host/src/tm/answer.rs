//! How a request is answered: the one place that decides. A request with a
//! transaction (`t_newtran`, a `t_relay` whose branches all failed, a
//! failure route) is answered through it, so a retransmission gets the
//! answer again and branches still out are canceled; one without is
//! answered statelessly. Either way an ACK is never answered, a reply route
//! cannot answer, and a second final answer is refused with
//! `AlreadyHandled`.

use super::{RouteContext, Tm, lock};
use crate::stateless::reply::{self, DeferredReply};
use crate::stateless::{ActionError, Handled};

impl Tm {
    /// The bytes of a response to `txn`'s request (To-tag, `received` /
    /// `rport`, the manifest's `Server`), as its server transaction sends it.
    pub(super) fn response_bytes(
        &self,
        txn: &super::transaction::Transaction,
        code: u16,
        reason: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<bytes::Bytes, reply::ReplyError> {
        let (bytes, _) = reply::build_response(
            self.sl.reply_headers(),
            &txn.request,
            &txn.summary,
            txn.source,
            code,
            reason,
            extra_headers,
        )?;
        Ok(bytes)
    }

    /// Answer the request in `ctx`: through its transaction when it has
    /// one, else statelessly (Kamailio's `send_reply`).
    pub fn reply(
        &self,
        ctx: &mut RouteContext,
        code: u16,
        reason: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<(), ActionError> {
        self.answer(ctx, code, reason, extra_headers, false)
    }

    /// `sl_send_reply(code, reason)`. A 3xx lists the destination set in
    /// Contact: that is how a redirect server names where to go.
    pub fn sl_send_reply(
        &self,
        ctx: &mut RouteContext,
        code: u16,
        reason: &str,
    ) -> Result<(), ActionError> {
        self.answer_with_redirect(ctx, code, reason, false)
    }

    /// `t_reply(code, reason)`: answer statefully, making the transaction
    /// when there is none yet (kept for retransmissions); a 3xx carries the
    /// same Contact as [`sl_send_reply`](Self::sl_send_reply).
    pub fn t_reply(
        &self,
        ctx: &mut RouteContext,
        code: u16,
        reason: &str,
    ) -> Result<(), ActionError> {
        self.answer_with_redirect(ctx, code, reason, true)
    }

    /// [`answer`](Self::answer) with the destination set in Contact when
    /// `code` is a 3xx.
    fn answer_with_redirect(
        &self,
        ctx: &mut RouteContext,
        code: u16,
        reason: &str,
        stateful: bool,
    ) -> Result<(), ActionError> {
        let contact = reply::redirect_contact(ctx, code);
        let contact = contact.as_deref().map(|c| ("Contact", c));
        self.answer(ctx, code, reason, contact.as_slice(), stateful)
    }

    /// `sl_reply_error()`: the reply matching the last failed action, else 500.
    pub fn sl_reply_error(&self, ctx: &mut RouteContext) -> Result<(), ActionError> {
        let (code, reason) = ctx.last_error.unwrap_or((500, "Server Internal Error"));
        self.sl_send_reply(ctx, code, reason)
    }

    /// Take the right to answer the request in `ctx` later (the
    /// registrar's write-through commit). `None` when the request has a
    /// transaction: its answer must go through it, now, with
    /// [`reply`](Self::reply).
    pub fn defer_reply(&self, ctx: &RouteContext) -> Result<Option<DeferredReply>, ActionError> {
        reply::check_answerable(ctx)?;
        if ctx.txn.is_some() {
            return Ok(None);
        }
        DeferredReply::take(&self.sl, ctx).map(Some)
    }

    /// The decision: through the transaction of `ctx` when it has one or
    /// `stateful` asks for one (made if need be), else statelessly. The
    /// status line and whether the message may be answered at all are
    /// checked first either way, in that order.
    fn answer(
        &self,
        ctx: &mut RouteContext,
        code: u16,
        reason: &str,
        extra_headers: &[(&str, &str)],
        stateful: bool,
    ) -> Result<(), ActionError> {
        if !stateful && ctx.txn.is_none() {
            return reply::send_stateless(&self.sl, ctx, code, reason, extra_headers);
        }
        reply::check_status_line(code, reason)?;
        reply::check_answerable(ctx)?;
        let handle = self.ensure_transaction(ctx)?;
        let now = self.clock.now();
        let mut txn = lock(&handle);
        if txn.server.is_final() {
            return Err(ActionError::AlreadyHandled);
        }
        let bytes = self
            .response_bytes(&txn, code, reason, extra_headers)
            .map_err(|e| ActionError::BadMessage(e.to_string()))?;
        let mut out = Vec::new();
        txn.server
            .send_response(code, bytes.clone(), now, &self.timers, &mut out)
            .map_err(|_| ActionError::AlreadyHandled)?;
        crate::stats::reply_sent(code, crate::stats::ReplyOrigin::Local);
        self.run_server_actions(&mut txn, out);
        if code >= 200 {
            self.final_reply_sent(&txn, code, &bytes);
            // A final reply ends the branches still out there.
            if txn.invite {
                for i in 0..txn.branches.len() {
                    self.cancel_branch(&mut txn, i, now);
                }
            }
            ctx.handled = Some(Handled::Replied(code));
        }
        Ok(())
    }
}
