//! Stateful relaying: `t_relay` and `t_replicate` start branches (client
//! transactions) toward the destination set; a next hop given by name is
//! resolved (RFC 3263) off the receive path; a branch that times out fails
//! over to the next address of its name; CANCEL goes down the branches.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use wisp_sip::{Message, Method, Uri};

use super::client::{ClientTransaction, TxnAction};
use super::context::{OwnerHold, RouteOwner};
use super::generated;
use super::transaction::{Branch, CANCEL_BIT, CancelState, Transaction, branch_id};
use super::{RouteContext, Tm, TxnHandle, lock};
use crate::stateless::forward::{self, NextHop};
use crate::stateless::{ActionError, Handled, RouteKind, maxfwd, rr};
use crate::transport::Proto;

/// Most branches one transaction may start over its life (all failure
/// routes together), so a failure route that keeps failing ends.
const MAX_BRANCHES_PER_TRANSACTION: usize = 64;

/// Longest wait for RFC 3263 resolution of one branch's next hop.
const DNS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Record who arms a transaction's routes; a hold it already has on the
/// same owner is kept.
fn arm_with(hold: &mut Option<OwnerHold>, owner: Option<&Arc<dyn RouteOwner>>) {
    let Some(owner) = owner else { return };
    if hold.as_ref().is_some_and(|h| h.is_on(owner)) {
        return;
    }
    *hold = Some(OwnerHold::new(owner.clone()));
}

impl Tm {
    /// `t_relay()` / `t_relay_to()`: forward statefully to the destination
    /// set (the Request-URI, or `$du`, plus appended branches); in a failure
    /// route to the appended branches, or the Request-URI when none.
    pub fn t_relay(&self, ctx: &mut RouteContext, hop: Option<NextHop>) -> Result<(), ActionError> {
        if ctx.route == RouteKind::Reply {
            return Err(ActionError::NotAllowedHere(
                "t_relay in a reply route".into(),
            ));
        }
        if ctx.msg.method() == Some(&Method::Ack) {
            // An ACK for a 2xx is end to end (§16.7 step ... / §17.1.1.3): forward it as is.
            if let Some(op) = ctx.media_reply.take()
                && !ctx.msg.body().is_empty()
            {
                let flags = match op {
                    super::media::MediaOp::Offer(f)
                    | super::media::MediaOp::Answer(f)
                    | super::media::MediaOp::Manage(f) => f,
                };
                return self.forward_ack_through_media(ctx, hop, flags);
            }
            return forward::forward_request(&self.sl, ctx, hop);
        }
        if ctx.relayed_in_route {
            return Err(ActionError::AlreadyHandled);
        }
        if ctx.route == RouteKind::Request {
            ctx.ensure_unhandled()?;
            maxfwd::before_forwarding(ctx)?;
        }
        let handle = self.ensure_transaction(ctx)?;
        let targets = relay_targets(ctx, hop)?;
        let now = self.clock.now();
        let mut txn = lock(&handle);
        if txn.server.is_final() {
            return Err(ActionError::AlreadyHandled);
        }
        if txn.canceled {
            return Err(ActionError::NotAllowedHere(
                "the caller canceled this transaction".into(),
            ));
        }
        if txn.branches.len() + targets.len() > MAX_BRANCHES_PER_TRANSACTION {
            return Err(ActionError::LimitReached(format!(
                "a transaction starts at most {MAX_BRANCHES_PER_TRANSACTION} branches"
            )));
        }
        if ctx.on_failure.is_some() || ctx.on_reply.is_some() {
            arm_with(&mut txn.armed_by, ctx.owner.as_ref());
        }
        if let Some(name) = ctx.on_failure.take() {
            txn.on_failure = Some(name);
        }
        if let Some(name) = ctx.on_reply.clone() {
            txn.on_reply = Some(name);
        }
        if let Some((fr_inv, fr)) = ctx.fr_override {
            txn.fr_inv = fr_inv;
            txn.fr = fr;
        }
        txn.flags = ctx.flags;
        if txn.invite && txn.server.last_code() == 0 {
            // §16.2: a 100 Trying at once, so the caller stops retransmitting.
            if let Ok(bytes) = self.response_bytes(&txn, 100, "Trying", &[]) {
                let mut out = Vec::new();
                if txn
                    .server
                    .send_response(100, bytes, now, &self.timers, &mut out)
                    .is_ok()
                {
                    crate::stats::reply_sent(100, crate::stats::ReplyOrigin::Local);
                }
                self.run_server_actions(&mut txn, out);
            }
        }
        let mut started = 0;
        let mut last_err = None;
        match ctx.media_offer.take() {
            // `rtpengine_offer`: the branches leave once the relay answered.
            Some(flags) if !ctx.msg.body().is_empty() => {
                match self.relay_through_media(&handle, &mut txn, ctx, targets, flags) {
                    Ok(n) => started = n,
                    Err(e) => last_err = Some(e),
                }
            }
            _ => {
                for target in targets {
                    match self.start_branch(&handle, &mut txn, ctx, target, false) {
                        Ok(()) => started += 1,
                        Err(e) => last_err = Some(e),
                    }
                }
            }
        }
        drop(txn);
        if started == 0
            && let Some(e) = last_err
        {
            // Not relayed: the request is still the route's to answer, and
            // `sl_reply_error` answers it through the transaction (after an
            // INVITE's 100 Trying, the caller waits for that answer).
            let unroutable = match ctx.dst_uri {
                None => forward::unroutable_scheme_reply(ctx.ruri()),
                Some(_) => None,
            };
            let (code, reason) = unroutable.unwrap_or((503, "Service Unavailable"));
            return Err(ctx.fail(code, reason, e));
        }
        ctx.branches.clear();
        ctx.relayed_in_route = true;
        ctx.handled = Some(Handled::Relayed);
        Ok(())
    }

    /// `t_replicate(uri)`: a stateful copy of the request to `uri`, whose
    /// responses are absorbed; the request itself is still the route's to
    /// answer or relay.
    pub fn t_replicate(&self, ctx: &mut RouteContext, uri: &str) -> Result<(), ActionError> {
        Uri::parse(uri.as_bytes())
            .map_err(|e| ActionError::InvalidArgument(format!("{uri:?}: {}", e.reason())))?;
        let handle = self.transaction_for(ctx)?;
        let mut txn = lock(&handle);
        let target = RelayTarget {
            uri: Some(uri.to_owned()),
            hop: None,
            dst_uri: None,
            path: None,
        };
        self.start_branch(&handle, &mut txn, ctx, target, true)
            .map_err(|e| ctx.fail(503, "Service Unavailable", e))
    }

    /// Start one branch toward `target`: at once to an IP address, after
    /// RFC 3263 resolution (off the receive path) for a name.
    fn start_branch(
        &self,
        handle: &TxnHandle,
        txn: &mut Transaction,
        ctx: &RouteContext,
        target: RelayTarget,
        replica: bool,
    ) -> Result<(), ActionError> {
        let (out, hop) = self.prepare_branch(ctx, target, replica)?;
        self.launch_branch(handle, txn, out, hop)
    }

    /// `t_relay` after `rtpengine_offer`: the branches are made now, and
    /// sent when the media relay has answered with its SDP (in a task, so
    /// the route and its worker never wait on the relay). Until then the
    /// transaction counts them as pending; a relay that fails gives the
    /// request a 503.
    fn relay_through_media(
        &self,
        handle: &TxnHandle,
        txn: &mut Transaction,
        ctx: &RouteContext,
        targets: Vec<RelayTarget>,
        flags: String,
    ) -> Result<usize, ActionError> {
        let Some(relay) = self.media.get().cloned() else {
            return Err(ActionError::Internal(
                "rtpengine_offer: no media relay ([rtpengine] sockets)".into(),
            ));
        };
        let super::media::MediaSession { call_id, from_tag } =
            super::media::MediaSession::of(&ctx.msg)?;
        let mut prepared = Vec::new();
        let mut last_err = None;
        for target in targets {
            match self.prepare_branch(ctx, target, false) {
                Ok(p) => prepared.push(p),
                Err(e) => last_err = Some(e),
            }
        }
        if prepared.is_empty() {
            return Err(last_err.unwrap_or(ActionError::NotFound));
        }
        let n = prepared.len();
        txn.resolving += 1;
        let sdp = ctx.msg.body().clone();
        let handle = handle.clone();
        let tm = self.me.clone();
        let session = super::media::MediaSession {
            call_id: call_id.clone(),
            from_tag: from_tag.clone(),
        };
        tokio::spawn(async move {
            let answered = relay.offer(call_id, from_tag, sdp, flags).await;
            if let Some(tm) = tm.upgrade() {
                tm.media_answered(&handle, prepared, answered, session);
            }
        });
        Ok(n)
    }

    /// The media relay answered the offer of `prepared`'s request: send
    /// each branch with its SDP, or answer 503 when it failed.
    fn media_answered(
        &self,
        handle: &TxnHandle,
        prepared: Vec<(Outgoing, Hop)>,
        answered: Result<Bytes, String>,
        session: super::media::MediaSession,
    ) {
        let mut txn = lock(handle);
        txn.resolving = txn.resolving.saturating_sub(1);
        let live = !txn.ended && !txn.canceled && !txn.server.is_final();
        if answered.is_ok() && txn.invite && txn.media.is_none() {
            // The relay holds a session now, even if the caller gave up
            // meanwhile: the failed INVITE's answer deletes it.
            txn.media = Some(session);
        }
        if live {
            match answered {
                Ok(sdp) => {
                    let mut sent = 0;
                    for (mut out, hop) in prepared {
                        out.msg.set_body(sdp.clone(), None);
                        match self.launch_branch(handle, &mut txn, out, hop) {
                            Ok(()) => sent += 1,
                            Err(e) => {
                                crate::log_limited!(info, call_id = %crate::util::CallId(&txn.request), "branch not sent: {e}")
                            }
                        }
                    }
                    if sent == 0 {
                        let made = self.local_candidate(&txn, 503, "Service Unavailable");
                        txn.candidates.extend(made);
                    }
                }
                Err(e) => {
                    crate::log_limited!(warn, call_id = %crate::util::CallId(&txn.request), "rtpengine offer failed: {e}");
                    let made = self.local_candidate(&txn, 503, "Media Relay Unavailable");
                    txn.candidates.extend(made);
                }
            }
        }
        let work = self.maybe_complete(handle, &mut txn);
        drop(txn);
        self.queue_failure_route(work);
    }

    /// The request a branch toward `target` sends, and where.
    fn prepare_branch(
        &self,
        ctx: &RouteContext,
        target: RelayTarget,
        replica: bool,
    ) -> Result<(Outgoing, Hop), ActionError> {
        let uri = match &target.uri {
            Some(u) => u.clone(),
            None => ctx.ruri().to_string(),
        };
        let hop = next_hop(ctx, &target, &uri)?;
        let mut msg = ctx.msg.clone();
        if target.uri.is_some() {
            msg.set_request_uri(Bytes::from(uri.clone()));
        }
        if let Some(path) = &target.path {
            // RFC 3327 §5.3: the Path becomes the Route set toward the contact.
            msg.append_header("Route", Bytes::from(path.clone()));
        }
        // The name a TLS peer's certificate must carry (RFC 5922 §7): the
        // host of the URI the request goes to. Kept only where TLS may be
        // picked: no allocation for a plain relay to an address.
        let peer = (hop.proto == Proto::Tls || hop.secure || hop.ip.is_none())
            .then(|| Arc::from(hop.host.trim_matches(['[', ']'])));
        let out = Outgoing {
            msg,
            uri,
            replica,
            peer,
        };
        Ok((out, hop))
    }

    /// Send a prepared branch: at once to an IP address, after RFC 3263
    /// resolution (in a task) for a name.
    fn launch_branch(
        &self,
        handle: &TxnHandle,
        txn: &mut Transaction,
        out: Outgoing,
        hop: Hop,
    ) -> Result<(), ActionError> {
        match hop
            .ip
            .or_else(|| hop.host.trim_matches(['[', ']']).parse::<IpAddr>().ok())
        {
            Some(ip) => {
                let dest = SocketAddr::new(ip, hop.port);
                self.send_branch(txn, out, hop.proto, dest, self.clock.now())?;
            }
            None => self.resolve_then_send(handle, txn, out, hop),
        }
        Ok(())
    }

    /// A branch to a name: resolve it (RFC 3263) in a task; the branch then
    /// starts with the first destination and keeps the rest for fail-over.
    /// Until then it counts as pending.
    fn resolve_then_send(
        &self,
        handle: &TxnHandle,
        txn: &mut Transaction,
        out: Outgoing,
        hop: Hop,
    ) {
        txn.resolving += 1;
        let handle = handle.clone();
        let tm = self.me.clone();
        let resolver = self.resolver.clone();
        let target = wisp_dns::SipTarget {
            host: hop.host.clone(),
            port: hop.explicit_port,
            transport: hop.explicit_proto.map(|p| match p {
                Proto::Udp => wisp_dns::Transport::Udp,
                // WebSocket peers are reached over their own connection,
                // never resolved: a name over ws(s) resolves as TCP (TLS),
                // and a send to it fails unless such a client is connected.
                Proto::Tcp | Proto::Ws => wisp_dns::Transport::Tcp,
                Proto::Tls | Proto::Wss => wisp_dns::Transport::Tls,
            }),
            secure: hop.secure,
        };
        let supported = self.sl.transports().supported_dns_transports();
        tokio::spawn(async move {
            crate::stats::inc(crate::stats::Counter::DnsLookups);
            let found = match resolver {
                Some(r) => tokio::time::timeout(DNS_TIMEOUT, r.resolve(&target, &supported))
                    .await
                    .map_err(|_| "DNS timed out".to_owned())
                    .and_then(|r| r.map_err(|e| e.to_string())),
                None => Err("no DNS resolver".to_owned()),
            };
            let dests = match found {
                Ok(list) => list
                    .into_iter()
                    .map(|d| match d.transport {
                        wisp_dns::Transport::Udp => (Proto::Udp, d.addr),
                        wisp_dns::Transport::Tcp => (Proto::Tcp, d.addr),
                        wisp_dns::Transport::Tls => (Proto::Tls, d.addr),
                    })
                    .collect(),
                Err(e) => {
                    crate::stats::inc(crate::stats::Counter::DnsFailures);
                    crate::log_limited!(info, host = %target.host, "t_relay: {e}");
                    Vec::new()
                }
            };
            if let Some(tm) = tm.upgrade() {
                tm.branch_resolved(&handle, out, &target.host, dests);
            }
        });
    }

    /// The name of a branch resolved to `dests` (none: it did not): start
    /// the branch, or count it as a 478.
    fn branch_resolved(
        &self,
        handle: &TxnHandle,
        out: Outgoing,
        host: &str,
        mut dests: Vec<(Proto, SocketAddr)>,
    ) {
        let now = self.clock.now();
        let mut txn = lock(handle);
        txn.resolving = txn.resolving.saturating_sub(1);
        let live = !txn.ended && !txn.canceled && !txn.server.is_final();
        let mut started = false;
        while live && !started && !dests.is_empty() {
            let (p, d) = dests.remove(0);
            match self.send_branch(&mut txn, out.clone(), p, d, now) {
                Ok(i) => {
                    txn.branches[i].alternatives = std::mem::take(&mut dests);
                    started = true;
                }
                Err(e) => {
                    crate::log_limited!(info, dest = %d, call_id = %crate::util::CallId(&txn.request), "branch not sent: {e}")
                }
            }
        }
        if !started && !out.replica && live {
            crate::log_limited!(info, %host, call_id = %crate::util::CallId(&txn.request), "t_relay: destination does not resolve");
            let made = self.local_candidate(&txn, 478, "Unresolvable destination");
            txn.candidates.extend(made);
        }
        let work = self.maybe_complete(handle, &mut txn);
        drop(txn);
        self.queue_failure_route(work);
    }

    /// RFC 3263 §4.3: a branch that timed out without any response tries
    /// the next destination its name resolved to. True when one was started.
    pub(super) fn fail_over(&self, txn: &mut Transaction, i: usize, now: Instant) -> bool {
        let Some(b) = txn.branches.get_mut(i) else {
            return false;
        };
        if b.provisional || b.alternatives.is_empty() || txn.server.is_final() {
            return false;
        }
        let mut rest = std::mem::take(&mut b.alternatives);
        let (uri, replica, peer) = (b.uri.clone(), b.replica, b.peer.clone());
        let mut msg = (*txn.request).clone();
        if uri != txn.summary.ruri.to_string() {
            msg.set_request_uri(Bytes::from(uri.clone()));
        }
        let out = Outgoing {
            msg,
            uri,
            replica,
            peer,
        };
        while !rest.is_empty() {
            let (p, d) = rest.remove(0);
            match self.send_branch(txn, out.clone(), p, d, now) {
                Ok(j) => {
                    crate::log_limited!(info, dest = %d, call_id = %crate::util::CallId(&txn.request), "fail-over to the next destination");
                    txn.branches[j].alternatives = rest;
                    return true;
                }
                Err(e) => {
                    crate::log_limited!(info, dest = %d, call_id = %crate::util::CallId(&txn.request), "fail-over destination not sent: {e}")
                }
            }
        }
        false
    }

    /// Send `out` to `dest` as a new branch of `txn` (its index returned):
    /// our Via on top, a client transaction to retransmit it. A socket
    /// error fails the branch at once.
    fn send_branch(
        &self,
        txn: &mut Transaction,
        out: Outgoing,
        proto: Proto,
        dest: SocketAddr,
        now: Instant,
    ) -> Result<usize, ActionError> {
        let idx = txn.branches.len() as u16;
        let transports = self.sl.transports();
        let proto = transports.connected_proto(proto, dest);
        let arrived_on = (txn.source.proto == proto).then_some(txn.source.local);
        let local = transports
            .local_for(proto, &dest, arrived_on)
            .ok_or_else(|| ActionError::SendFailed(format!("no {proto} listener to send from")))?;
        let Outgoing {
            mut msg,
            uri,
            replica,
            peer,
        } = out;
        forward::mark_received(&mut msg, &txn.summary.top_via, txn.source);
        if let Some(rr) = rr::second_record_route(
            txn.record_routed,
            (txn.source.proto, txn.source.local),
            (proto, local),
            self.sl.rr().enable_full_lr,
        ) {
            msg.insert_record_route(rr);
        }
        let branch = branch_id(self.run_id, txn.id, idx);
        msg.insert_via(Bytes::from(forward::our_via(proto, local, &branch)));
        let bytes = msg.serialize();
        let mut actions = Vec::new();
        // fr_timer is timer B/F of the branch: no response (INVITE: no
        // provisional) by then and it counts as 408. After a provisional an
        // INVITE waits fr_inv_timer instead (armed in `on_response`).
        let client = ClientTransaction::start_with_timeout(
            txn.invite,
            proto.is_stream(),
            bytes,
            txn.fr.min(self.timers.t1x64()),
            now,
            &self.timers,
            &mut actions,
        );
        // The first send happens here: a socket error known now fails the
        // branch now; over UDP during a receive burst the request leaves
        // with the burst's other datagrams, and an error then fails the
        // branch after the burst (`branch_unsent`).
        let first = match actions.first() {
            Some(TxnAction::Send(b)) => b.clone(),
            _ => Bytes::new(),
        };
        let (tm, id) = (self.me.clone(), txn.id);
        transports
            .send_request_batched(
                proto,
                dest,
                Some(local),
                peer.as_deref(),
                first,
                Box::new(move |e| {
                    if let Some(tm) = tm.upgrade() {
                        tm.branch_unsent(id, idx, e);
                    }
                }),
            )
            .map_err(|e| ActionError::SendFailed(e.to_string()))?;
        if txn.branches.capacity() == 0 {
            // Most transactions have one branch: the first push would make
            // room for four, a kilobyte per transaction for the timers' wait.
            txn.branches.reserve_exact(1);
        }
        txn.branches.push(Branch {
            uri,
            proto,
            dest,
            local,
            client,
            fr_generation: 0,
            fr_inv_at: None,
            provisional: false,
            done: false,
            cancel: CancelState::None,
            replica,
            alternatives: Vec::new(),
            unsent: false,
            peer,
        });
        actions.remove(0);
        self.run_branch_actions(txn, idx, actions);
        Ok(idx as usize)
    }

    /// The first send of branch `idx` of transaction `id` failed when its
    /// receive burst was sent: the branch fails as a send refused in
    /// `t_relay` would have (the next destination its name resolved to, or
    /// a 503 toward the best response and the failure route).
    pub(super) fn branch_unsent(&self, id: u64, idx: u16, e: std::io::Error) {
        let Some(handle) = self.table.by_id(id) else {
            return;
        };
        let now = self.clock.now();
        let mut txn = lock(&handle);
        let i = idx as usize;
        let Some(b) = txn.branches.get_mut(i) else {
            return;
        };
        if b.done || b.provisional || b.unsent {
            return;
        }
        b.unsent = true;
        let (replica, dest) = (b.replica, b.dest);
        crate::log_limited!(info, %dest, call_id = %crate::util::CallId(&txn.request), "branch not sent: {e}");
        let moved_on = self.fail_over(&mut txn, i, now);
        if let Some(b) = txn.branches.get_mut(i) {
            b.done = true;
        }
        if !moved_on && !replica {
            let c = self.local_candidate(&txn, 503, "Service Unavailable");
            txn.candidates.extend(c);
        }
        let work = self.maybe_complete(&handle, &mut txn);
        drop(txn);
        self.queue_failure_route(work);
    }

    pub(super) fn cancel_branch(&self, txn: &mut Transaction, i: usize, now: Instant) {
        if !txn.invite {
            return;
        }
        let Some(b) = txn.branches.get_mut(i) else {
            return;
        };
        if b.done && !b.provisional
            || !matches!(b.cancel, CancelState::None)
            || !b.client.is_pending()
        {
            return;
        }
        if !b.provisional {
            // §9.1: CANCEL only once a provisional arrived.
            b.cancel = CancelState::Wanted;
            return;
        }
        self.send_cancel(txn, i, now);
    }

    pub(super) fn send_cancel(&self, txn: &mut Transaction, i: usize, now: Instant) {
        let Some(b) = txn.branches.get_mut(i) else {
            return;
        };
        let cancel = match Message::parse(b.client.request().clone())
            .and_then(|sent| generated::cancel_for(&sent, self.sl.user_agent_header()))
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot build CANCEL: {}", e.reason());
                return;
            }
        };
        let mut out = Vec::new();
        let c = ClientTransaction::start(
            false,
            b.proto.is_stream(),
            cancel,
            now,
            &self.timers,
            &mut out,
        );
        b.cancel = CancelState::Sent(Box::new(c));
        self.run_branch_actions(txn, i as u16 | CANCEL_BIT, out);
    }
}

/// What one branch sends: the request as the route left it, with the
/// branch's own Request-URI and Route set, before our Via.
#[derive(Clone)]
struct Outgoing {
    msg: Message,
    uri: String,
    /// A `t_replicate` copy.
    replica: bool,
    /// The next hop's host: the name a TLS connection verifies.
    peer: Option<Arc<str>>,
}

/// Where a branch goes next, and what its URI said explicitly (RFC 3263
/// uses SRV only when neither port nor IP is given).
struct Hop {
    proto: Proto,
    host: String,
    /// The host when the URI names an IP address (no DNS, no text parse).
    ip: Option<IpAddr>,
    port: u16,
    explicit_port: Option<u16>,
    explicit_proto: Option<Proto>,
    /// A `sips:` URI: only TLS may be picked (RFC 3263 §4.1).
    secure: bool,
}

/// The next hop toward `target` (whose URI is `uri`): the explicit one of
/// `t_relay_to`, else `$du` (of the message, or of the appended branch),
/// else the URI itself.
fn next_hop(ctx: &RouteContext, target: &RelayTarget, uri: &str) -> Result<Hop, ActionError> {
    if let Some(h) = &target.hop {
        return Ok(Hop {
            proto: h.proto.unwrap_or(Proto::Udp),
            host: h.host.clone(),
            ip: None,
            port: h
                .port
                .unwrap_or(h.proto.unwrap_or(Proto::Udp).default_port()),
            explicit_port: h.port,
            explicit_proto: h.proto,
            secure: false,
        });
    }
    let next = match (&target.uri, &ctx.dst_uri, &target.dst_uri) {
        (None, Some(du), _) | (Some(_), _, Some(du)) => du.as_str(),
        _ => uri,
    };
    // The Request-URI itself is parsed already.
    let reparsed;
    let parsed = if target.uri.is_none() && ctx.dst_uri.is_none() {
        ctx.ruri()
    } else {
        reparsed = Uri::parse(next.as_bytes())
            .map_err(|e| ActionError::BadMessage(format!("next hop {next:?}: {}", e.reason())))?;
        &reparsed
    };
    let (proto, host, port) = forward::next_hop_of(parsed)?;
    let ip = match parsed.host {
        wisp_sip::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        wisp_sip::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        wisp_sip::Host::Domain(_) => None,
    };
    Ok(Hop {
        explicit_proto: parsed.transport().map(|_| proto),
        explicit_port: parsed.port,
        secure: matches!(parsed.scheme, wisp_sip::Scheme::Sips),
        proto,
        host,
        ip,
        port,
    })
}

/// One destination of a relay: a URI other than the Request-URI (a branch),
/// and/or an explicit next hop (`t_relay_to`).
struct RelayTarget {
    uri: Option<String>,
    hop: Option<NextHop>,
    /// Next hop of an appended branch (`lookup`: NAT source, Path).
    dst_uri: Option<String>,
    /// Route header values to add (a contact's Path).
    path: Option<String>,
}

fn relay_targets(
    ctx: &RouteContext,
    hop: Option<NextHop>,
) -> Result<Vec<RelayTarget>, ActionError> {
    if let Some(h) = hop {
        return Ok(vec![RelayTarget {
            uri: None,
            hop: Some(h),
            dst_uri: None,
            path: None,
        }]);
    }
    let mut targets = Vec::new();
    // In a failure route the Request-URI was tried already: the appended
    // branches are the new destinations (SER's `append_branch(); t_relay()`).
    if ctx.route != RouteKind::Failure || ctx.branches.is_empty() {
        targets.push(RelayTarget {
            uri: None,
            hop: None,
            dst_uri: None,
            path: ctx.path.clone(),
        });
    }
    for b in &ctx.branches {
        targets.push(RelayTarget {
            uri: Some(b.uri.clone()),
            hop: None,
            dst_uri: b.dst_uri.clone(),
            path: b.path.clone(),
        });
    }
    Ok(targets)
}
