//! The media relay as the transaction layer sees it. A route asks for an
//! offer (`rtpengine_offer`); `t_relay` then hands the request's SDP to the
//! relay in a task and sends the branches with the relay's SDP when it
//! answers, so no route and no worker waits on the relay. The relay itself
//! (rtpengine's `ng` client) is a service above this layer and comes in
//! through [`MediaRelay`].
//!
//! The answer side works the same way: a reply route that asks for an
//! answer (`rtpengine_answer`, `rtpengine_manage`) leaves the response with
//! the transaction ([`Tm::on_response_with_media`]), which hands its SDP to
//! the relay in a task and passes the response on with the relay's SDP once
//! it answered. A relay that fails on the answer side does not lose the
//! response: it goes on unchanged, with a warning in the log (Kamailio's
//! `rtpengine_answer` returns false and the script forwards the reply as
//! it is). An ACK with SDP (the answer to a late offer) leaves the same way.
//!
//! An INVITE whose offer went through the relay and that fails (its
//! negative final response goes upstream, after any failure route) has its
//! media session deleted, whoever made that response.
//!
//! Order: a response waiting for the relay is passed on when the relay
//! answers, so a 183 and a 200 with SDP that arrive together both wait, and
//! a provisional one overtaken by the final one is dropped as it would be
//! had it arrived late.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use wisp_sip::{Message, Method};

use super::{Tm, TxnHandle, lock};
use crate::stateless::ActionError;

/// What a relay answers, later.
pub type MediaFuture<T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send>>;

/// A media relay (rtpengine): SDP in, SDP pointing at the relay out.
pub trait MediaRelay: Send + Sync {
    /// The offer of call `call_id` from `from_tag`, rewritten by the relay.
    fn offer(
        &self,
        call_id: String,
        from_tag: String,
        sdp: Bytes,
        flags: String,
    ) -> MediaFuture<Bytes>;
    /// The answer of `to_tag` to `from_tag`'s offer, rewritten by the relay.
    fn answer(
        &self,
        call_id: String,
        from_tag: String,
        to_tag: String,
        sdp: Bytes,
        flags: String,
    ) -> MediaFuture<Bytes>;
    /// End the call's media session (rtpengine matches the tags in either
    /// order, so a BYE from either side will do).
    fn delete(&self, call_id: String, from_tag: String, to_tag: Option<String>) -> MediaFuture<()>;
}

/// What a reply route (or the request route of an ACK) asked of the relay
/// for its message; done when the message leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaOp {
    /// `rtpengine_offer` on a reply: the callee's SDP is the offer (the
    /// INVITE had none, a late offer).
    Offer(String),
    /// `rtpengine_answer`: the SDP answers the offer made earlier.
    Answer(String),
    /// `rtpengine_manage` on a reply: an answer when this transaction's
    /// request was offered, an offer when it was not (late offer); nothing
    /// for a negative final reply (the failed INVITE's session is deleted
    /// when that reply goes upstream) or one without SDP.
    Manage(String),
}

/// The media session an INVITE transaction's offer made: deleted when the
/// INVITE fails.
#[derive(Debug, Clone)]
pub struct MediaSession {
    pub call_id: String,
    pub from_tag: String,
}

impl MediaSession {
    /// The session `msg` belongs to, as the relay names sessions: its
    /// Call-ID and From-tag (empty when it has none).
    pub fn of(msg: &Message) -> Result<MediaSession, ActionError> {
        let call_id = msg
            .call_id()
            .map_err(|e| ActionError::BadMessage(format!("Call-ID: {}", e.reason())))?;
        Ok(MediaSession {
            call_id: String::from_utf8_lossy(call_id).into_owned(),
            from_tag: msg
                .checked_from_tag()
                .ok()
                .flatten()
                .map(|t| t.to_string())
                .unwrap_or_default(),
        })
    }
}

/// `(call_id, from_tag, to_tag)` of `msg` as the relay wants them for `op`
/// on it: the offerer's tag first. An offer in a reply (the callee offers)
/// and an answer in a request (the ACK of a late offer: the caller
/// answers) swap From and To, as Kamailio's module does.
pub fn tags_for(msg: &Message, answer: bool) -> Option<(String, String, String)> {
    let MediaSession {
        call_id,
        from_tag: from,
    } = MediaSession::of(msg).ok()?;
    let to = msg
        .to()
        .ok()
        .and_then(|t| t.tag().map(|t| t.to_string()))
        .unwrap_or_default();
    let straight = msg.is_request() != answer;
    Some(if straight {
        (call_id, from, to)
    } else {
        (call_id, to, from)
    })
}

impl Tm {
    /// Set the media relay (`[rtpengine]`), once, at start.
    pub fn set_media_relay(&self, relay: std::sync::Arc<dyn MediaRelay>) {
        if self.media.set(relay).is_err() {
            tracing::warn!("tm: media relay set twice; the first stays");
        }
    }

    /// The media relay, if the manifest has one.
    pub fn media_relay(&self) -> Option<&std::sync::Arc<dyn MediaRelay>> {
        self.media.get()
    }

    /// A response on branch `idx` after its reply route asked for `op`:
    /// its SDP goes through the relay first (in a task; the response waits,
    /// no worker does), then it goes on as [`Tm::on_response`] takes it.
    pub fn on_response_with_media(
        &self,
        handle: &TxnHandle,
        idx: u16,
        msg: Message,
        op: Option<MediaOp>,
    ) {
        let relay = self.media.get().cloned();
        let (Some(op), Some(relay)) = (op, relay) else {
            return self.on_response(handle, idx, msg);
        };
        if msg.body().is_empty() {
            return self.on_response(handle, idx, msg);
        }
        let answer = match op {
            MediaOp::Offer(flags) => Some((false, flags)),
            MediaOp::Answer(flags) => Some((true, flags)),
            MediaOp::Manage(flags) => {
                let code = msg.status().unwrap_or(0);
                let method_ok = msg
                    .cseq()
                    .is_ok_and(|c| matches!(c.method, Method::Invite | Method::Update));
                if code >= 300 || !method_ok {
                    None
                } else {
                    let offered = lock(handle).media.is_some();
                    Some((offered, flags))
                }
            }
        };
        let Some((answer, flags)) = answer else {
            return self.on_response(handle, idx, msg);
        };
        let Some((call_id, from_tag, to_tag)) = tags_for(&msg, answer) else {
            return self.on_response(handle, idx, msg);
        };
        if !answer {
            // A late offer: the session is this transaction's from now on.
            let mut txn = lock(handle);
            if txn.invite && txn.media.is_none() {
                txn.media = Some(MediaSession {
                    call_id: call_id.clone(),
                    from_tag: from_tag.clone(),
                });
            }
        }
        let handle = handle.clone();
        let tm = self.me.clone();
        let sdp = msg.body().clone();
        tokio::spawn(async move {
            let what = if answer { "answer" } else { "offer" };
            let done = if answer {
                relay.answer(call_id, from_tag, to_tag, sdp, flags).await
            } else {
                relay.offer(call_id, from_tag, sdp, flags).await
            };
            let mut msg = msg;
            match done {
                Ok(sdp) => msg.set_body(sdp, None),
                Err(e) => {
                    crate::log_limited!(warn, call_id = %crate::util::CallId(&msg), "rtpengine {what} on a reply failed, reply relayed unchanged: {e}")
                }
            }
            if let Some(tm) = tm.upgrade() {
                tm.on_response(&handle, idx, msg);
            }
        });
    }

    /// An INVITE failed (`code` >= 300 went upstream): its media session, if
    /// its offer made one, ends.
    pub(super) fn media_failed(&self, txn: &mut super::transaction::Transaction, code: u16) {
        if code < 300 {
            return;
        }
        let (Some(session), Some(relay)) = (txn.media.take(), self.media.get().cloned()) else {
            return;
        };
        tokio::spawn(async move {
            if let Err(e) = relay.delete(session.call_id, session.from_tag, None).await {
                crate::log_limited!(info, "rtpengine delete of a failed call: {e}");
            }
        });
    }
}

impl Tm {
    /// `t_relay` of an ACK whose SDP answers a late offer
    /// (`rtpengine_answer` / `rtpengine_manage` on it): forwarded statelessly
    /// as every ACK to a 2xx, once the relay rewrote its SDP (in a task), or
    /// unchanged with a warning when the relay failed.
    pub(super) fn forward_ack_through_media(
        &self,
        ctx: &mut super::RouteContext,
        hop: Option<crate::stateless::forward::NextHop>,
        flags: String,
    ) -> Result<(), crate::stateless::ActionError> {
        use crate::stateless::{Handled, MsgContext, forward};
        let relay = self.media.get().cloned();
        let tags = tags_for(&ctx.msg, true);
        let (Some(relay), Some((call_id, from_tag, to_tag))) = (relay, tags) else {
            return forward::forward_request(&self.sl, ctx, hop);
        };
        ctx.ensure_unhandled()?;
        let mut detached = MsgContext::new(ctx.msg.clone(), ctx.source, ctx.summary.clone());
        detached.dst_uri = ctx.dst_uri.clone();
        detached.flags = ctx.flags;
        let sdp = ctx.msg.body().clone();
        let sl = self.sl.clone();
        tokio::spawn(async move {
            match relay.answer(call_id, from_tag, to_tag, sdp, flags).await {
                Ok(sdp) => detached.msg.set_body(sdp, None),
                Err(e) => {
                    crate::log_limited!(warn, call_id = %crate::util::CallId(&detached.msg), "rtpengine answer on an ACK failed, ACK relayed unchanged: {e}")
                }
            }
            if let Err(e) = forward::forward_request(&sl, &mut detached, hop) {
                crate::log_limited!(info, call_id = %crate::util::CallId(&detached.msg), "ACK not relayed: {e}");
            }
        });
        ctx.handled = Some(Handled::Forwarded);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Message {
        Message::parse(Bytes::from(text.replace('\n', "\r\n"))).expect("parses")
    }

    const HEADERS: &str = "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\nFrom: <sip:a@x>;tag=caller\nTo: <sip:b@x>;tag=callee\nCall-ID: c1\n";

    #[test]
    fn the_offerers_tag_goes_first() {
        let ok = parse(&format!(
            "SIP/2.0 200 OK\n{HEADERS}CSeq: 1 INVITE\nContent-Length: 0\n\n"
        ));
        let ack = parse(&format!(
            "ACK sip:b@x SIP/2.0\n{HEADERS}CSeq: 1 ACK\nContent-Length: 0\n\n"
        ));
        let tags = |m: &Message, answer| {
            let (c, f, t) = tags_for(m, answer).expect("tags");
            (c, f, t)
        };
        let straight = ("c1".to_string(), "caller".to_string(), "callee".to_string());
        let swapped = ("c1".to_string(), "callee".to_string(), "caller".to_string());
        // The caller offered in the INVITE, the callee answers in the 200.
        assert_eq!(tags(&ok, true), straight);
        // A late offer: the callee offers in the 200, the caller's ACK answers.
        assert_eq!(tags(&ok, false), swapped);
        assert_eq!(tags(&ack, true), swapped);
        assert_eq!(tags(&ack, false), straight);
    }
}
