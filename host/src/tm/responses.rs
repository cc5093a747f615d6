//! Responses on our branches (§16.7): provisional ones up, every 2xx up,
//! the best final response up once every branch has answered — unless a
//! failure route is armed, which then gets the transaction. Also the end of
//! a request route or failure route, which may complete the transaction.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use wisp_sip::{Message, Method};

use super::generated;
use super::timer::{TimerKind, TimerRef};
use super::transaction::{
    Branch, CANCEL_BIT, CancelState, Candidate, Phase, Transaction, parse_branch_id,
};
use super::{ArmedRoute, FailureWork, ResponseMatch, RouteContext, Tm, TxnHandle, call_id, lock};
use crate::stateless::RouteKind;
use crate::stats::{self, ReplyOrigin};

impl Tm {
    /// Which branch a response belongs to (by the Via branch we made).
    pub fn match_response(&self, msg: &Message) -> ResponseMatch {
        let Ok(Some(top)) = msg.checked_top_via() else {
            return ResponseMatch::NotOurs;
        };
        let Some((run, id, idx)) = top.branch().and_then(parse_branch_id) else {
            return ResponseMatch::NotOurs;
        };
        if run != self.run_id {
            // A branch of this router's previous run.
            return ResponseMatch::Ended;
        }
        let handle = self.table.by_id(id);
        let Some(handle) = handle else {
            return ResponseMatch::Ended;
        };
        let is_cancel = msg.cseq().is_ok_and(|c| c.method == Method::Cancel);
        let branch = if is_cancel { idx | CANCEL_BIT } else { idx };
        let on_reply = if is_cancel {
            None
        } else {
            let txn = lock(&handle);
            txn.on_reply.clone().map(|name| ArmedRoute {
                name,
                owner: txn.armed_by.as_ref().map(|h| h.owner().clone()),
            })
        };
        ResponseMatch::Branch {
            txn: handle,
            branch,
            on_reply,
        }
    }

    /// A response on branch `idx` (after the reply route, if one is armed).
    pub fn on_response(&self, handle: &TxnHandle, idx: u16, msg: Message) {
        let work = self.response_on_branch(handle, idx, msg);
        self.queue_failure_route(work);
    }

    fn response_on_branch(
        &self,
        handle: &TxnHandle,
        idx: u16,
        mut msg: Message,
    ) -> Option<FailureWork> {
        let code = msg.status()?;
        let now = self.clock.now();
        let mut guard = lock(handle);
        let txn = &mut *guard;
        if idx & CANCEL_BIT != 0 {
            let i = (idx & !CANCEL_BIT) as usize;
            let mut out = Vec::new();
            if let Some(Branch {
                cancel: CancelState::Sent(c),
                ..
            }) = txn.branches.get_mut(i)
            {
                c.on_response(code, now, &self.timers, || None, &mut out);
            }
            self.run_branch_actions(txn, idx, out);
            return None;
        }
        let i = idx as usize;
        let b = txn.branches.get_mut(i)?;
        let mut out = Vec::new();
        let sent = b.client.request().clone();
        let user_agent = self.sl.user_agent_header();
        let pass_up = b.client.on_response(
            code,
            now,
            &self.timers,
            || {
                Message::parse(sent)
                    .and_then(|s| generated::ack_for(&s, &msg, user_agent))
                    .ok()
            },
            &mut out,
        );
        let replica = b.replica;
        self.run_branch_actions(txn, idx, out);
        if i >= txn.branches.len() {
            // The actions answered the transaction, which dropped its
            // finished branches ([`compact`]).
            return None;
        }
        if txn.server.is_final() && !txn.branches[i].client.is_pending() {
            // A late final on a branch of an answered transaction.
            txn.branches[i].client.release_request();
        }
        if replica {
            return None;
        }
        if !pass_up {
            // A retransmitted 2xx to an INVITE: the client transaction has
            // ended, but the UAS repeats it until the caller's ACK comes, so
            // it goes up as it is (RFC 6026 §8.4; the proxy is stateless for it).
            if txn.invite && (200..300).contains(&code) && msg.remove_top_via().is_ok() {
                let _ = self.sl.transports().send_response(
                    txn.source.proto,
                    txn.response_dest,
                    Some(txn.source.local),
                    msg.serialize(),
                );
            }
            return None;
        }
        let was_done = txn.branches[i].done;
        if msg.remove_top_via().is_err() {
            return None;
        }
        match code {
            100..=199 => {
                let b = &mut txn.branches[i];
                let first = !b.provisional;
                b.provisional = true;
                if txn.invite && first && !b.done {
                    // Timer C / fr_inv_timer: now wait for the callee to answer.
                    b.fr_generation += 1;
                    let r = TimerRef {
                        txn: txn.id,
                        branch: Some(idx),
                        kind: TimerKind::FinalResponse,
                        generation: b.fr_generation,
                    };
                    b.fr_inv_at = Some(now + txn.fr_inv);
                    self.queue.schedule(now + txn.fr_inv, r);
                }
                if matches!(b.cancel, CancelState::Wanted) {
                    self.send_cancel(txn, i, now);
                }
                if code > 100 && !was_done {
                    self.send_upstream(txn, code, msg.serialize(), now, ReplyOrigin::Relayed);
                }
                None
            }
            200..=299 => {
                txn.branches[i].done = true;
                self.cancel_fr_inv(txn.id, idx, &mut txn.branches[i]);
                // §16.7 step 5: every 2xx goes up, even after a first one.
                self.send_upstream(txn, code, msg.serialize(), now, ReplyOrigin::Relayed);
                if txn.invite {
                    for j in 0..txn.branches.len() {
                        self.cancel_branch(txn, j, now);
                    }
                }
                None
            }
            _ => {
                if was_done {
                    return None;
                }
                txn.branches[i].done = true;
                self.cancel_fr_inv(txn.id, idx, &mut txn.branches[i]);
                let challenges = if matches!(code, 401 | 407) {
                    msg.headers()
                        .iter()
                        .filter(|h| h.is("WWW-Authenticate") || h.is("Proxy-Authenticate"))
                        .map(|h| {
                            (
                                String::from_utf8_lossy(&h.raw_name).into_owned(),
                                h.value.clone(),
                            )
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                txn.candidates.push(Candidate {
                    code,
                    upstream: msg.serialize(),
                    challenges,
                    local: false,
                });
                if code >= 600 && txn.invite {
                    // §16.7 step 5: a 6xx cancels the other branches.
                    for j in 0..txn.branches.len() {
                        self.cancel_branch(txn, j, now);
                    }
                }
                self.maybe_complete(handle, txn)
            }
        }
    }

    /// A branch has its final answer: its `fr_inv_timer` no longer applies.
    fn cancel_fr_inv(&self, txn: u64, idx: u16, b: &mut Branch) {
        if let Some(at) = b.fr_inv_at.take() {
            let r = TimerRef {
                txn,
                branch: Some(idx),
                kind: TimerKind::FinalResponse,
                generation: b.fr_generation,
            };
            self.queue.cancel(at, r);
        }
    }

    /// Send a response upstream on the server transaction; a second 2xx to an
    /// INVITE (forking) goes straight to the caller.
    fn send_upstream(
        &self,
        txn: &mut Transaction,
        code: u16,
        bytes: Bytes,
        now: Instant,
        origin: ReplyOrigin,
    ) {
        let mut out = Vec::new();
        match txn
            .server
            .send_response(code, bytes.clone(), now, &self.timers, &mut out)
        {
            Ok(()) => {
                stats::reply_sent(code, origin);
                self.run_server_actions(txn, out);
                if code >= 200 {
                    self.final_reply_sent(txn, code, &bytes);
                    self.media_failed(txn, code);
                    compact(txn);
                    self.table
                        .shrink_charge(txn, super::table::TXN_OVERHEAD + bytes.len());
                }
            }
            Err(_) if (200..300).contains(&code) => {
                if self
                    .sl
                    .transports()
                    .send_response(
                        txn.source.proto,
                        txn.response_dest,
                        Some(txn.source.local),
                        bytes,
                    )
                    .is_ok()
                {
                    stats::reply_sent(code, origin);
                }
            }
            Err(_) => {}
        }
    }

    /// Every branch has its answer: run the failure route if armed, else
    /// send the best response upstream.
    pub(super) fn maybe_complete(
        &self,
        handle: &TxnHandle,
        txn: &mut Transaction,
    ) -> Option<FailureWork> {
        if txn.phase != Phase::Proxying
            || txn.pending_branches() > 0
            || txn.resolving > 0
            || txn.server.is_final()
            || txn.ended
        {
            return None;
        }
        if txn.candidates.is_empty() && txn.branches.iter().all(|b| b.replica) {
            // Only replicas (e.g. `t_replicate` to a name that resolved late):
            // nothing to answer from here.
            txn.phase = Phase::Replicating;
            if txn.branches.is_empty() {
                self.table.forget(txn);
            }
            return None;
        }
        if !txn.canceled
            && let Some(name) = txn.on_failure.take()
        {
            txn.phase = Phase::FailureRoute;
            let mut ctx = Box::new(RouteContext::new(
                (*txn.request).clone(),
                txn.source,
                (*txn.summary).clone(),
                RouteKind::Failure,
            ));
            ctx.flags = txn.flags;
            ctx.reply_code = txn.best_candidate().map(|c| c.code);
            ctx.txn = Some(handle.clone());
            let owner = txn.armed_by.as_ref().map(|h| h.owner().clone());
            return Some(FailureWork {
                route: ArmedRoute { name, owner },
                ctx,
            });
        }
        self.send_best(txn);
        None
    }

    /// The request route returned. A transaction it created but neither
    /// answered, relayed nor dropped gets its one final answer now (the
    /// reply of the last failed action, else 500): a request the router took
    /// over — after an INVITE's 100 Trying, say — is never left unanswered.
    /// One whose branches all ended while the route ran completes now.
    pub fn route_finished(&self, ctx: &mut RouteContext) {
        let Some(handle) = ctx.txn.clone() else {
            return;
        };
        let mut txn = lock(&handle);
        if txn.phase != Phase::Routing {
            return;
        }
        if txn.branches.is_empty() && txn.resolving == 0 && !txn.server.is_final() {
            if ctx.handled.is_none() {
                drop(txn);
                let (code, reason) = ctx.last_error.unwrap_or((500, "Server Internal Error"));
                tracing::info!(call_id = %call_id(&ctx.msg), "route ended without answering a request it made a transaction for: {code}");
                if let Err(e) = self.reply(ctx, code, reason, &[]) {
                    tracing::info!("no final answer possible: {e}");
                }
                return;
            }
            tracing::debug!(call_id = %txn.call_id(), "route answered or dropped the request itself: transaction dropped");
            self.table.forget(&mut txn);
            return;
        }
        if txn.resolving == 0
            && !txn.branches.is_empty()
            && txn.branches.iter().all(|b| b.replica)
            && !txn.server.is_final()
        {
            // Only `t_replicate` copies: the route answered (statelessly) or
            // dropped the request itself; the copies end on their own.
            txn.phase = Phase::Replicating;
            return;
        }
        txn.phase = Phase::Proxying;
        let work = self.maybe_complete(&handle, &mut txn);
        drop(txn);
        self.queue_failure_route(work);
    }

    /// A failure route returned: new branches wait, or the best response goes up.
    pub fn failure_route_finished(&self, ctx: &RouteContext) {
        let Some(handle) = ctx.txn.as_ref() else {
            return;
        };
        let mut txn = lock(handle);
        txn.phase = Phase::Proxying;
        // Nothing new started: the best response so far goes upstream. New
        // branches that already failed while the route ran (a fast 486) run
        // the failure route the route armed again — the armed name is only
        // on the transaction when the route relayed.
        let work = self.maybe_complete(handle, &mut txn);
        drop(txn);
        self.queue_failure_route(work);
    }

    /// A response the proxy makes up for a branch (408, 478, 503).
    pub(super) fn local_candidate(
        &self,
        txn: &Transaction,
        code: u16,
        reason: &str,
    ) -> Option<Candidate> {
        let upstream = self.response_bytes(txn, code, reason, &[]).ok()?;
        Some(Candidate {
            code,
            upstream,
            challenges: Vec::new(),
            local: true,
        })
    }

    pub(super) fn reply_local(&self, txn: &mut Transaction, code: u16, reason: &str) {
        if let Some(c) = self.local_candidate(txn, code, reason) {
            let now = self.clock.now();
            self.send_upstream(txn, code, c.upstream, now, ReplyOrigin::Local);
        }
    }

    /// §16.7 steps 6–7: the best final response goes upstream, with every
    /// challenge of the 401/407s collected into it.
    fn send_best(&self, txn: &mut Transaction) {
        let now = self.clock.now();
        let Some(best) = txn.best_candidate().cloned() else {
            // No branch produced anything (none could be started).
            return self.reply_local(txn, 500, "Server Internal Error");
        };
        let mut bytes = best.upstream.clone();
        if matches!(best.code, 401 | 407) {
            let others: Vec<(String, Bytes)> = txn
                .candidates
                .iter()
                .filter(|c| matches!(c.code, 401 | 407))
                .flat_map(|c| c.challenges.iter().cloned())
                .filter(|ch| !best.challenges.contains(ch))
                .collect();
            if !others.is_empty()
                && let Ok(mut m) = Message::parse(bytes.clone())
            {
                for (name, value) in others {
                    m.append_header(&name, value);
                }
                bytes = m.serialize();
            }
        }
        let origin = if best.local {
            ReplyOrigin::Local
        } else {
            ReplyOrigin::Relayed
        };
        self.send_upstream(txn, best.code, bytes, now, origin);
    }
}

/// After the final response went up, a transaction only absorbs
/// retransmissions until its timers end: drop the request copy, its
/// summary (unless a reply route may still read it), the candidates and the finished branches (of a non-INVITE) or
/// their requests (of an INVITE, whose branches still send ACKs).
fn compact(txn: &mut Transaction) {
    type Spent = Option<(Arc<Message>, Arc<crate::stateless::RequestSummary>)>;
    static SPENT: std::sync::LazyLock<Spent> = std::sync::LazyLock::new(|| {
        let msg = Message::parse(Bytes::from_static(
            b"OPTIONS sip:spent.invalid SIP/2.0\r\nVia: SIP/2.0/UDP spent.invalid;branch=z9hG4bKspent\r\nFrom: <sip:spent.invalid>;tag=x\r\nTo: <sip:spent.invalid>\r\nCall-ID: spent\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        ))
        .ok()?;
        let summary = crate::stateless::sanity::check_request(&msg).ok()?;
        Some((Arc::new(msg), Arc::new(summary)))
    });
    if let Some((msg, summary)) = SPENT.as_ref() {
        if txn.invite && txn.spent_call_id.is_none() {
            txn.spent_call_id = txn
                .request
                .call_id()
                .ok()
                .map(|c| String::from_utf8_lossy(c).into());
        }
        txn.request = msg.clone();
        // A reply route still runs for late responses (another fork's
        // 2xx) and reads the request's summary: it stays when one is armed.
        if txn.on_reply.is_none() {
            txn.summary = summary.clone();
        }
    }
    txn.candidates = Vec::new();
    if !txn.invite && txn.branches.iter().all(|b| !b.client.is_pending()) {
        // A finished non-INVITE client transaction only absorbs copies of
        // its final response: a response for a branch that is gone is
        // dropped all the same, and the branches' memory is freed now
        // rather than after the wait timer.
        txn.branches = Vec::new();
        return;
    }
    for b in &mut txn.branches {
        b.client.release_request();
        if !b.client.is_pending() {
            b.uri = String::new();
            b.alternatives = Vec::new();
        }
    }
}
