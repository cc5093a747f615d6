//! The transaction layer (Kamailio `tm`, RFC 3261 §16 and §17): stateful
//! relaying with forking, retransmission absorption, CANCEL, failure and
//! reply routes, and every timer.
//!
//! - [`client`] / [`server`]: the §17 state machines, sans-IO.
//! - [`transaction`]: a proxy transaction — server side, branches, the
//!   response context that picks the best final response (§16.7).
//! - [`timer`]: timer values, the clock, the queue one driver task fires.
//! - [`generated`]: the ACK and CANCEL requests the layer makes itself.
//!
//! Plugins never run while a transaction is locked: where a failure route
//! is due, the layer hands a [`FailureWork`] to the router, which runs the
//! plugin and reports back with [`Tm::failure_route_finished`].
//!
//! A transaction exists only for requests a route relays statefully
//! (`t_relay`) or takes over (`t_newtran`, `t_reply`), as in Kamailio: a
//! request answered with `sl_send_reply` leaves no state, so its
//! retransmission runs the route again and gets the same stateless reply.

pub mod client;
pub mod generated;
pub mod server;
pub mod timer;
pub mod transaction;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use wisp_sip::{Message, Method, Uri};

use self::client::{ClientTransaction, TxnAction};
use self::server::ServerTransaction;
use self::timer::{Clock, TimerKind, TimerQueue, TimerRef, Timers};
use self::transaction::{
    Branch, CANCEL_BIT, CancelState, Candidate, Phase, Transaction, branch_id, parse_branch_id,
};
use crate::config::TmConfig;
use crate::msg_context::{ActionError, Handled, MsgContext, RouteKind};
use crate::plugin::{PluginRuntime, VersionLease};
use crate::router::RouterCore;
use crate::stateless::forward::{self, NextHop};
use crate::stateless::reply;
use crate::transport::Proto;

pub type TxnCell = Mutex<Transaction>;
pub type TxnHandle = Arc<TxnCell>;

/// Most branches one transaction may start over its life (all failure
/// routes together), so a failure route that keeps failing ends.
const MAX_BRANCHES_PER_TRANSACTION: usize = 64;

/// Longest wait for RFC 3263 resolution of one branch's next hop.
const DNS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// What happened to a request before routing.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestMatch {
    /// No transaction knows it: route it.
    New,
    /// A retransmission, the ACK of our non-2xx, or a CANCEL we handled.
    Absorbed,
}

/// What a response belongs to.
pub enum ResponseMatch {
    /// Not a branch of ours: stateless handling.
    NotOurs,
    /// A branch of a transaction that has ended: dropped.
    Ended,
    Branch {
        txn: TxnHandle,
        branch: u16,
        on_reply: Option<ArmedRoute>,
    },
}

/// A route a plugin armed, with the build that armed it (none when a
/// transaction was made without a plugin call, as in unit tests).
pub struct ArmedRoute {
    pub name: String,
    pub plugin: Option<Arc<PluginRuntime>>,
}

/// A failure route to run: the router calls the plugin's `failure-route`
/// with `ctx`, then [`Tm::failure_route_finished`].
pub struct FailureWork {
    pub route: ArmedRoute,
    pub ctx: Box<MsgContext>,
}

/// Record the build arming a transaction's routes; a lease it already holds
/// on the same build is kept as it is.
fn arm_with(lease: &mut Option<VersionLease>, plugin: Option<&Arc<PluginRuntime>>) {
    let Some(plugin) = plugin else { return };
    if lease
        .as_ref()
        .is_some_and(|l| Arc::ptr_eq(l.plugin(), plugin))
    {
        return;
    }
    *lease = Some(VersionLease::new(plugin.clone()));
}

/// The request summary of a transaction, for a reply route's context.
pub fn lock_summary(t: &TxnCell) -> crate::msg_context::RequestSummary {
    lock(t).summary.clone()
}

fn lock(t: &TxnCell) -> MutexGuard<'_, Transaction> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct Table {
    by_key: HashMap<String, u64>,
    by_id: HashMap<u64, TxnHandle>,
}

/// The transaction layer.
pub struct Tm {
    timers: Timers,
    clock: Arc<dyn Clock>,
    queue: TimerQueue,
    table: Mutex<Table>,
    /// Number of live transactions, readable without the table lock.
    live: AtomicU64,
    next_id: AtomicU64,
    max: usize,
}

impl Tm {
    pub fn new(cfg: &TmConfig, clock: Arc<dyn Clock>) -> Tm {
        Tm {
            timers: Timers::from_config(cfg),
            clock,
            queue: TimerQueue::default(),
            table: Mutex::new(Table::default()),
            live: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            max: cfg.max_transactions,
        }
    }

    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn find(&self, key: &str) -> Option<TxnHandle> {
        let t = self.table();
        let id = t.by_key.get(key)?;
        t.by_id.get(id).cloned()
    }

    fn forget(&self, txn: &mut Transaction) {
        if txn.ended {
            return;
        }
        txn.ended = true;
        let mut t = self.table();
        if t.by_key.get(&txn.key) == Some(&txn.id) {
            t.by_key.remove(&txn.key);
        }
        if t.by_id.remove(&txn.id).is_some() {
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
    }

    // ---- requests -------------------------------------------------------

    /// Before a request is routed: absorb a retransmission (answering it with
    /// the last response sent), the ACK of a non-2xx we sent, and a CANCEL
    /// of an INVITE we hold (§16.10).
    pub fn on_request(&self, core: &RouterCore, ctx: &MsgContext) -> RequestMatch {
        if self.is_empty() {
            return RequestMatch::New;
        }
        let method = ctx.msg.method();
        let as_invite = matches!(method, Some(Method::Ack | Method::Cancel));
        let Some(key) = server_key(ctx, as_invite) else {
            return RequestMatch::New;
        };
        let Some(handle) = self.find(&key) else {
            return RequestMatch::New;
        };
        let now = self.clock.now();
        match method {
            Some(Method::Ack) => {
                let mut txn = lock(&handle);
                let mut out = Vec::new();
                if txn.server.on_ack(now, &self.timers, &mut out) {
                    self.run_server_actions(core, &mut txn, out);
                    RequestMatch::Absorbed
                } else {
                    RequestMatch::New
                }
            }
            Some(Method::Cancel) => {
                self.cancel_from_upstream(core, &handle, ctx);
                RequestMatch::Absorbed
            }
            _ => {
                let txn = lock(&handle);
                if txn.phase == Phase::Replicating {
                    // Answered statelessly: the route answers the copy again.
                    return RequestMatch::New;
                }
                if let Some(last) = txn.server.on_retransmission() {
                    let _ = core.transports().send_response(
                        txn.source.proto,
                        txn.response_dest,
                        Some(txn.source.local),
                        last,
                    );
                }
                tracing::debug!(call_id = %call_id(&ctx.msg), "request retransmission absorbed");
                RequestMatch::Absorbed
            }
        }
    }

    /// The transaction of the request in `ctx`, created if there is none
    /// (`t_newtran`). Over `max_transactions`, the caller is answered 503
    /// with Retry-After here and `LimitReached` returned.
    pub fn ensure_transaction(
        &self,
        core: &RouterCore,
        ctx: &mut MsgContext,
    ) -> Result<TxnHandle, ActionError> {
        ctx.ensure_unhandled()?;
        self.transaction_for(core, ctx)
    }

    /// The transaction of `ctx`, also after a stateless reply (for
    /// `t_replicate` after `save`, as in SER's replicate.cfg).
    fn transaction_for(
        &self,
        core: &RouterCore,
        ctx: &mut MsgContext,
    ) -> Result<TxnHandle, ActionError> {
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
        if self.len() >= self.max {
            tracing::warn!(max = self.max, "transaction limit reached: 503");
            let _ = reply::send_stateless_reply(
                core.transports(),
                &ctx.msg,
                &ctx.summary,
                ctx.source,
                503,
                "Service Unavailable",
                &[("Retry-After", "5")],
            );
            ctx.handled = Some(Handled::Replied(503));
            return Err(ActionError::LimitReached(format!(
                "{} transactions in flight (tm.max_transactions); answered 503",
                self.max
            )));
        }
        let key = server_key(ctx, false)
            .ok_or_else(|| ActionError::BadMessage("no top Via to key a transaction".into()))?;
        // Own copy of the request with the route's edits so far: it must
        // not pin the receive buffer for the transaction's lifetime.
        let request = Message::parse(Bytes::copy_from_slice(&ctx.msg.serialize()))
            .map(Arc::new)
            .map_err(|e| ActionError::Internal(format!("request copy: {}", e.reason())))?;
        let invite = ctx.msg.method() == Some(&Method::Invite);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let txn = Transaction {
            id,
            key: key.clone(),
            request,
            source: ctx.source,
            summary: ctx.summary.clone(),
            flags: ctx.flags,
            invite,
            server: ServerTransaction::new(invite, ctx.source.proto == Proto::Tcp),
            response_dest: reply::reply_destination(ctx.source, &ctx.summary),
            branches: Vec::new(),
            candidates: Vec::new(),
            on_failure: None,
            on_reply: None,
            armed_by: None,
            fr: self.timers.fr,
            fr_inv: self.timers.fr_inv,
            canceled: false,
            phase: Phase::Routing,
            ended: false,
            resolving: 0,
        };
        let handle = Arc::new(Mutex::new(txn));
        {
            let mut t = self.table();
            if let Some(old) = t.by_key.insert(key, id) {
                // A request with the key of a live transaction that was not
                // absorbed (raced in on another worker): the newer one wins
                // the key; the older lives on by id until its timers end it.
                tracing::debug!(old, "transaction key reused");
            }
            t.by_id.insert(id, handle.clone());
        }
        self.live.fetch_add(1, Ordering::Relaxed);
        ctx.txn = Some(handle.clone());
        Ok(handle)
    }

    /// `t_relay()` / `t_relay_to()`: forward statefully to the destination
    /// set (the Request-URI, or `$du`, plus appended branches); in a failure
    /// route to the appended branches, or the Request-URI when none.
    pub fn t_relay(
        &self,
        core: &RouterCore,
        ctx: &mut MsgContext,
        hop: Option<NextHop>,
    ) -> Result<(), ActionError> {
        if ctx.route == RouteKind::Reply {
            return Err(ActionError::NotAllowedHere(
                "t_relay in a reply route".into(),
            ));
        }
        if ctx.msg.method() == Some(&Method::Ack) {
            // An ACK for a 2xx is end to end (§16.7 step ... / §17.1.1.3): forward it as is.
            return forward::forward_request(core, ctx, hop);
        }
        if ctx.relayed_in_route {
            return Err(ActionError::AlreadyHandled);
        }
        if ctx.route == RouteKind::Request {
            ctx.ensure_unhandled()?;
        }
        let handle = self.ensure_transaction(core, ctx)?;
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
            arm_with(&mut txn.armed_by, ctx.plugin.as_ref());
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
            if let Ok((bytes, _)) =
                reply::build_response(&txn.request, &txn.summary, txn.source, 100, "Trying", &[])
            {
                let mut out = Vec::new();
                let _ = txn
                    .server
                    .send_response(100, bytes, now, &self.timers, &mut out);
                self.run_server_actions(core, &mut txn, out);
            }
        }
        let mut started = 0;
        let mut last_err = None;
        for target in targets {
            match self.start_branch(core, &handle, &mut txn, ctx, target, false, now) {
                Ok(()) => started += 1,
                Err(e) => last_err = Some(e),
            }
        }
        drop(txn);
        ctx.branches.clear();
        ctx.relayed_in_route = true;
        ctx.handled = Some(Handled::Relayed);
        match (started, last_err) {
            (0, Some(e)) => Err(ctx.fail(503, "Service Unavailable", e)),
            _ => Ok(()),
        }
    }

    /// `t_replicate(uri)`: a stateful copy of the request to `uri`, whose
    /// responses are absorbed; the request itself is still the route's to
    /// answer or relay.
    pub fn t_replicate(
        &self,
        core: &RouterCore,
        ctx: &mut MsgContext,
        uri: &str,
    ) -> Result<(), ActionError> {
        Uri::parse(uri.as_bytes())
            .map_err(|e| ActionError::InvalidArgument(format!("{uri:?}: {}", e.reason())))?;
        let handle = self.transaction_for(core, ctx)?;
        let now = self.clock.now();
        let mut txn = lock(&handle);
        let target = RelayTarget {
            uri: Some(uri.to_owned()),
            hop: None,
            dst_uri: None,
            path: None,
        };
        self.start_branch(core, &handle, &mut txn, ctx, target, true, now)
            .map_err(|e| ctx.fail(503, "Service Unavailable", e))
    }

    /// `t_reply(code, reason)`: answer statefully (kept for retransmissions).
    pub fn t_reply(
        &self,
        core: &RouterCore,
        ctx: &mut MsgContext,
        code: u16,
        reason: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<(), ActionError> {
        reply::check_status_line(code, reason)?;
        if ctx.route == RouteKind::Reply {
            return Err(ActionError::NotAllowedHere(
                "t_reply in a reply route".into(),
            ));
        }
        let handle = self.ensure_transaction(core, ctx)?;
        let now = self.clock.now();
        let mut txn = lock(&handle);
        if txn.server.is_final() {
            return Err(ActionError::AlreadyHandled);
        }
        let (bytes, _) = reply::build_response(
            &txn.request,
            &txn.summary,
            txn.source,
            code,
            reason,
            extra_headers,
        )
        .map_err(|e| ActionError::BadMessage(e.to_string()))?;
        let mut out = Vec::new();
        txn.server
            .send_response(code, bytes, now, &self.timers, &mut out)
            .map_err(|_| ActionError::AlreadyHandled)?;
        self.run_server_actions(core, &mut txn, out);
        if code >= 200 {
            // A final reply ends the branches still out there.
            if txn.invite {
                for i in 0..txn.branches.len() {
                    self.cancel_branch(core, &mut txn, i, now);
                }
            }
            ctx.handled = Some(Handled::Replied(code));
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn start_branch(
        &self,
        core: &RouterCore,
        handle: &TxnHandle,
        txn: &mut Transaction,
        ctx: &MsgContext,
        target: RelayTarget,
        replica: bool,
        now: Instant,
    ) -> Result<(), ActionError> {
        let uri_text = match &target.uri {
            Some(u) => u.clone(),
            None => ctx.ruri().to_string(),
        };
        // The next hop, and what the URI said explicitly (RFC 3263 uses
        // SRV only when neither port nor IP is given).
        let (proto, host, port, explicit_port, explicit_proto) = match target.hop {
            Some(h) => (
                h.proto.unwrap_or(Proto::Udp),
                h.host,
                h.port.unwrap_or(5060),
                h.port,
                h.proto,
            ),
            None => {
                let next = match (&target.uri, &ctx.dst_uri, &target.dst_uri) {
                    (None, Some(du), _) | (Some(_), _, Some(du)) => du.clone(),
                    _ => uri_text.clone(),
                };
                let uri = Uri::parse(next.as_bytes()).map_err(|e| {
                    ActionError::BadMessage(format!("next hop {next:?}: {}", e.reason()))
                })?;
                let (proto, host, port) = forward::next_hop_of(&uri)?;
                let explicit_proto = uri.transport().map(|_| proto);
                (proto, host, port, uri.port, explicit_proto)
            }
        };
        let idx = txn.branches.len() as u16;
        let mut msg = ctx.msg.clone();
        if target.uri.is_some() {
            msg.set_request_uri(Bytes::from(uri_text.clone()));
        }
        if let Some(path) = &target.path {
            // RFC 3327 §5.3: the Path becomes the Route set toward the contact.
            msg.append_header("Route", Bytes::from(path.clone()));
        }
        match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => {
                let dest = std::net::SocketAddr::new(ip, port);
                self.send_branch(core, txn, msg, uri_text, proto, dest, idx, replica, now)?;
                Ok(())
            }
            Err(_) => {
                // A name: RFC 3263 resolution off the receive path, then the
                // branch starts with the first destination and keeps the
                // rest for fail-over. Until then it counts as pending.
                txn.resolving += 1;
                let handle = handle.clone();
                let core_transports = core.transports().clone();
                let resolver = core.resolver().cloned();
                let sip_target = wisp_dns::SipTarget {
                    host: host.clone(),
                    port: explicit_port,
                    transport: explicit_proto.map(|p| match p {
                        Proto::Udp => wisp_dns::Transport::Udp,
                        Proto::Tcp => wisp_dns::Transport::Tcp,
                    }),
                    secure: false,
                };
                let supported = core.transports().supported_dns_transports();
                tokio::spawn(async move {
                    let found = match resolver {
                        Some(r) => {
                            tokio::time::timeout(DNS_TIMEOUT, r.resolve(&sip_target, &supported))
                                .await
                                .map_err(|_| "DNS timed out".to_owned())
                                .and_then(|r| r.map_err(|e| e.to_string()))
                        }
                        None => Err("no DNS resolver".to_owned()),
                    };
                    let mut dests: Vec<(Proto, std::net::SocketAddr)> = match found {
                        Ok(list) => list
                            .into_iter()
                            .filter_map(|d| match d.transport {
                                wisp_dns::Transport::Udp => Some((Proto::Udp, d.addr)),
                                wisp_dns::Transport::Tcp => Some((Proto::Tcp, d.addr)),
                                wisp_dns::Transport::Tls => None,
                            })
                            .collect(),
                        Err(e) => {
                            tracing::info!(%host, "t_relay: {e}");
                            Vec::new()
                        }
                    };
                    let Some(router) = core_transports.router() else {
                        return;
                    };
                    let core = router.core().clone();
                    let tm = core.tm();
                    let now = tm.clock.now();
                    let work = {
                        let mut txn = lock(&handle);
                        txn.resolving = txn.resolving.saturating_sub(1);
                        let live = !txn.ended && !txn.canceled && !txn.server.is_final();
                        let mut started = false;
                        while live && !started && !dests.is_empty() {
                            let (p, d) = dests.remove(0);
                            let idx = txn.branches.len() as u16;
                            match tm.send_branch(
                                &core,
                                &mut txn,
                                msg.clone(),
                                uri_text.clone(),
                                p,
                                d,
                                idx,
                                replica,
                                now,
                            ) {
                                Ok(i) => {
                                    txn.branches[i].alternatives = std::mem::take(&mut dests);
                                    started = true;
                                }
                                Err(e) => tracing::info!(dest = %d, "branch not sent: {e}"),
                            }
                        }
                        if !started && !replica && live {
                            tracing::info!(%host, "t_relay: destination does not resolve");
                            let made = tm.local_candidate(&txn, 478, "Unresolvable destination");
                            txn.candidates.extend(made);
                        }
                        tm.maybe_complete(&core, &handle, &mut txn)
                    };
                    if let Some(w) = work {
                        router.run_failure_route(w);
                    }
                });
                Ok(())
            }
        }
    }

    /// RFC 3263 §4.3: a branch that timed out without any response tries
    /// the next destination its name resolved to. True when one was started.
    fn fail_over(&self, core: &RouterCore, txn: &mut Transaction, i: usize, now: Instant) -> bool {
        let Some(b) = txn.branches.get_mut(i) else {
            return false;
        };
        if b.provisional || b.alternatives.is_empty() || txn.server.is_final() {
            return false;
        }
        let mut rest = std::mem::take(&mut b.alternatives);
        let (uri, replica) = (b.uri.clone(), b.replica);
        let mut msg = (*txn.request).clone();
        if uri != txn.summary.ruri.to_string() {
            msg.set_request_uri(Bytes::from(uri.clone()));
        }
        while !rest.is_empty() {
            let (p, d) = rest.remove(0);
            let idx = txn.branches.len() as u16;
            match self.send_branch(core, txn, msg.clone(), uri.clone(), p, d, idx, replica, now) {
                Ok(j) => {
                    tracing::info!(dest = %d, "fail-over to the next destination");
                    txn.branches[j].alternatives = rest;
                    return true;
                }
                Err(e) => tracing::info!(dest = %d, "fail-over destination not sent: {e}"),
            }
        }
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn send_branch(
        &self,
        core: &RouterCore,
        txn: &mut Transaction,
        mut msg: Message,
        uri: String,
        proto: Proto,
        dest: std::net::SocketAddr,
        idx: u16,
        replica: bool,
        now: Instant,
    ) -> Result<usize, ActionError> {
        let transports = core.transports();
        let arrived_on = (txn.source.proto == proto).then_some(txn.source.local);
        let local = transports
            .local_for(proto, &dest, arrived_on)
            .ok_or_else(|| ActionError::SendFailed(format!("no {proto} listener to send from")))?;
        forward::mark_received(&mut msg, txn.source);
        let via = format!("SIP/2.0/{proto} {local};branch={}", branch_id(txn.id, idx));
        msg.insert_via(Bytes::from(via));
        let bytes = msg.serialize();
        let mut out = Vec::new();
        // fr_timer is timer B/F of the branch: no response (INVITE: no
        // provisional) by then and it counts as 408. After a provisional an
        // INVITE waits fr_inv_timer instead (armed in `on_response`).
        let client = ClientTransaction::start_with_timeout(
            txn.invite,
            proto == Proto::Tcp,
            bytes,
            txn.fr.min(self.timers.t1x64()),
            now,
            &self.timers,
            &mut out,
        );
        // The first send happens below; a socket error fails the branch now.
        let first = match out.first() {
            Some(TxnAction::Send(b)) => b.clone(),
            _ => Bytes::new(),
        };
        transports
            .send(proto, dest, Some(local), first)
            .map_err(|e| ActionError::SendFailed(e.to_string()))?;
        txn.branches.push(Branch {
            uri,
            proto,
            dest,
            local,
            client,
            fr_generation: 0,
            provisional: false,
            done: false,
            cancel: CancelState::None,
            replica,
            alternatives: Vec::new(),
        });
        out.remove(0);
        self.run_branch_actions(core, txn, idx, out);
        Ok(idx as usize)
    }

    /// The request route returned. A transaction it created but neither
    /// answered nor relayed is dropped; one whose branches all ended while
    /// the route ran completes now.
    pub fn route_finished(&self, core: &RouterCore, ctx: &MsgContext) -> Option<FailureWork> {
        let handle = ctx.txn.as_ref()?;
        let mut txn = lock(handle);
        if txn.phase != Phase::Routing {
            return None;
        }
        if txn.branches.is_empty() && txn.resolving == 0 && !txn.server.is_final() {
            tracing::debug!(call_id = %call_id(&txn.request), "route ended without reply or relay: transaction dropped");
            self.forget(&mut txn);
            return None;
        }
        if txn.resolving == 0
            && !txn.branches.is_empty()
            && txn.branches.iter().all(|b| b.replica)
            && !txn.server.is_final()
        {
            // Only `t_replicate` copies: the route answered (statelessly) or
            // dropped the request itself; the copies end on their own.
            txn.phase = Phase::Replicating;
            return None;
        }
        txn.phase = Phase::Proxying;
        self.maybe_complete(core, handle, &mut txn)
    }

    /// A failure route returned: new branches wait, or the best response goes up.
    pub fn failure_route_finished(
        &self,
        core: &RouterCore,
        ctx: &MsgContext,
    ) -> Option<FailureWork> {
        let handle = ctx.txn.as_ref()?;
        let mut txn = lock(handle);
        txn.phase = Phase::Proxying;
        // Nothing new started: the best response so far goes upstream. New
        // branches that already failed while the route ran (a fast 486) run
        // the failure route the route armed again — the armed name is only
        // on the transaction when the route relayed.
        self.maybe_complete(core, handle, &mut txn)
    }

    /// A CANCEL for an INVITE we hold (§16.10): 200 to the CANCEL, CANCEL
    /// down every pending branch; the branches' 487s end the INVITE.
    fn cancel_from_upstream(&self, core: &RouterCore, handle: &TxnHandle, ctx: &MsgContext) {
        let _ = reply::send_stateless_reply(
            core.transports(),
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
            self.cancel_branch(core, &mut txn, i, now);
        }
        if txn.pending_branches() == 0 && txn.resolving == 0 && txn.phase != Phase::FailureRoute {
            self.reply_local(core, &mut txn, 487, "Request Terminated");
        }
    }

    fn cancel_branch(&self, core: &RouterCore, txn: &mut Transaction, i: usize, now: Instant) {
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
        self.send_cancel(core, txn, i, now);
    }

    fn send_cancel(&self, core: &RouterCore, txn: &mut Transaction, i: usize, now: Instant) {
        let Some(b) = txn.branches.get_mut(i) else {
            return;
        };
        let cancel = match Message::parse(b.client.request().clone())
            .and_then(|sent| generated::cancel_for(&sent))
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
            b.proto == Proto::Tcp,
            cancel,
            now,
            &self.timers,
            &mut out,
        );
        b.cancel = CancelState::Sent(c);
        self.run_branch_actions(core, txn, i as u16 | CANCEL_BIT, out);
    }

    // ---- responses ------------------------------------------------------

    /// Which branch a response belongs to (by the Via branch we made).
    pub fn match_response(&self, msg: &Message) -> ResponseMatch {
        let Ok(Some(top)) = msg.checked_top_via() else {
            return ResponseMatch::NotOurs;
        };
        let Some((id, idx)) = top.branch().and_then(parse_branch_id) else {
            return ResponseMatch::NotOurs;
        };
        let handle = self.table().by_id.get(&id).cloned();
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
                plugin: txn.armed_by.as_ref().map(|l| l.plugin().clone()),
            })
        };
        ResponseMatch::Branch {
            txn: handle,
            branch,
            on_reply,
        }
    }

    /// A response on branch `idx` (after the reply route, if one is armed).
    pub fn on_response(
        &self,
        core: &RouterCore,
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
            self.run_branch_actions(core, txn, idx, out);
            return None;
        }
        let i = idx as usize;
        let b = txn.branches.get_mut(i)?;
        let mut out = Vec::new();
        let sent = b.client.request().clone();
        let pass_up = b.client.on_response(
            code,
            now,
            &self.timers,
            || {
                Message::parse(sent)
                    .and_then(|s| generated::ack_for(&s, &msg))
                    .ok()
            },
            &mut out,
        );
        let replica = b.replica;
        self.run_branch_actions(core, txn, idx, out);
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
                let _ = core.transports().send_response(
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
                    self.queue.schedule(now + txn.fr_inv, r);
                }
                if matches!(b.cancel, CancelState::Wanted) {
                    self.send_cancel(core, txn, i, now);
                }
                if code > 100 && !was_done {
                    self.send_upstream(core, txn, code, msg.serialize(), now);
                }
                None
            }
            200..=299 => {
                txn.branches[i].done = true;
                // §16.7 step 5: every 2xx goes up, even after a first one.
                self.send_upstream(core, txn, code, msg.serialize(), now);
                if txn.invite {
                    for j in 0..txn.branches.len() {
                        self.cancel_branch(core, txn, j, now);
                    }
                }
                None
            }
            _ => {
                if was_done {
                    return None;
                }
                txn.branches[i].done = true;
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
                });
                if code >= 600 && txn.invite {
                    // §16.7 step 5: a 6xx cancels the other branches.
                    for j in 0..txn.branches.len() {
                        self.cancel_branch(core, txn, j, now);
                    }
                }
                self.maybe_complete(core, handle, txn)
            }
        }
    }

    /// Send a response upstream on the server transaction; a second 2xx to an
    /// INVITE (forking) goes straight to the caller.
    fn send_upstream(
        &self,
        core: &RouterCore,
        txn: &mut Transaction,
        code: u16,
        bytes: Bytes,
        now: Instant,
    ) {
        let mut out = Vec::new();
        match txn
            .server
            .send_response(code, bytes.clone(), now, &self.timers, &mut out)
        {
            Ok(()) => {
                self.run_server_actions(core, txn, out);
                if code >= 200 {
                    compact(txn);
                }
            }
            Err(_) if (200..300).contains(&code) => {
                let _ = core.transports().send_response(
                    txn.source.proto,
                    txn.response_dest,
                    Some(txn.source.local),
                    bytes,
                );
            }
            Err(_) => {}
        }
    }

    /// Every branch has its answer: run the failure route if armed, else
    /// send the best response upstream.
    fn maybe_complete(
        &self,
        core: &RouterCore,
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
                self.forget(txn);
            }
            return None;
        }
        if !txn.canceled
            && let Some(name) = txn.on_failure.take()
        {
            txn.phase = Phase::FailureRoute;
            let mut ctx = Box::new(MsgContext::new(
                (*txn.request).clone(),
                txn.source,
                txn.summary.clone(),
            ));
            ctx.flags = txn.flags;
            ctx.route = RouteKind::Failure;
            ctx.reply_code = txn.best_candidate().map(|c| c.code);
            ctx.txn = Some(handle.clone());
            let plugin = txn.armed_by.as_ref().map(|l| l.plugin().clone());
            return Some(FailureWork {
                route: ArmedRoute { name, plugin },
                ctx,
            });
        }
        self.send_best(core, txn);
        None
    }

    // ---- timers -----------------------------------------------------------

    /// Fire every due timer; returns the failure routes that became due.
    pub fn fire_due(&self, core: &RouterCore) -> Vec<FailureWork> {
        let now = self.clock.now();
        let mut work = Vec::new();
        for r in self.queue.pop_due(now) {
            let handle = self.table().by_id.get(&r.txn).cloned();
            let Some(handle) = handle else { continue };
            let mut guard = lock(&handle);
            let txn = &mut *guard;
            match r.branch {
                None => {
                    let mut out = Vec::new();
                    txn.server.on_timer(r.kind, now, &self.timers, &mut out);
                    self.run_server_actions(core, txn, out);
                }
                Some(b) if b & CANCEL_BIT != 0 => {
                    let mut out = Vec::new();
                    if let Some(Branch {
                        cancel: CancelState::Sent(c),
                        ..
                    }) = txn.branches.get_mut((b & !CANCEL_BIT) as usize)
                    {
                        c.on_timer(r.kind, now, &self.timers, &mut out);
                    }
                    self.run_branch_actions(core, txn, b, out);
                }
                Some(b) if r.kind == TimerKind::FinalResponse => {
                    let i = b as usize;
                    let Some(br) = txn.branches.get_mut(i) else {
                        continue;
                    };
                    if br.done || br.fr_generation != r.generation || !br.client.is_pending() {
                        continue;
                    }
                    // fr_inv_timer (timer C, §16.8), armed only when an
                    // INVITE branch rang: no final response in time, so the
                    // branch is CANCELed and counts as a 408. (A branch that
                    // never answered ends by its timer B/F, which is fr_timer.)
                    br.done = true;
                    tracing::debug!(txn = txn.id, branch = b, "fr_inv_timer: 408");
                    self.send_cancel(core, txn, i, now);
                    let c = self.local_candidate(txn, 408, "Request Timeout");
                    txn.candidates.extend(c);
                    if let Some(w) = self.maybe_complete(core, &handle, txn) {
                        work.push(w);
                    }
                }
                Some(b) => {
                    let mut out = Vec::new();
                    if let Some(br) = txn.branches.get_mut(b as usize) {
                        br.client.on_timer(r.kind, now, &self.timers, &mut out);
                    }
                    if self.run_branch_actions(core, txn, b, out)
                        && let Some(w) = self.maybe_complete(core, &handle, txn)
                    {
                        work.push(w);
                    }
                }
            }
        }
        work
    }

    /// When the next timer is due, and the notifier that fires when an
    /// earlier one is scheduled.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.next_deadline()
    }

    pub fn timer_wake(&self) -> &tokio::sync::Notify {
        &self.queue.wake
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    // ---- I/O of the state machines ---------------------------------------

    fn run_server_actions(&self, core: &RouterCore, txn: &mut Transaction, out: Vec<TxnAction>) {
        for a in out {
            match a {
                TxnAction::Send(b) => {
                    if let Err(e) = core.transports().send_response(
                        txn.source.proto,
                        txn.response_dest,
                        Some(txn.source.local),
                        b,
                    ) {
                        tracing::info!(dest = %txn.response_dest, "response send failed: {e}");
                    }
                }
                TxnAction::Schedule(kind, at) => self.queue.schedule(
                    at,
                    TimerRef {
                        txn: txn.id,
                        branch: None,
                        kind,
                        generation: 0,
                    },
                ),
                TxnAction::Timeout => {
                    tracing::info!(call_id = %call_id(&txn.request), "no ACK for our final response (timer H)");
                }
                TxnAction::Terminated => self.forget(txn),
            }
        }
    }

    /// Returns true when the branch timed out (timer B/F) and now has a 408.
    fn run_branch_actions(
        &self,
        core: &RouterCore,
        txn: &mut Transaction,
        idx: u16,
        out: Vec<TxnAction>,
    ) -> bool {
        let mut timed_out = false;
        let i = (idx & !CANCEL_BIT) as usize;
        for a in out {
            match a {
                TxnAction::Send(bytes) => {
                    if let Some(b) = txn.branches.get(i)
                        && let Err(e) =
                            core.transports()
                                .send(b.proto, b.dest, Some(b.local), bytes)
                    {
                        tracing::info!(dest = %b.dest, "branch send failed: {e}");
                    }
                }
                TxnAction::Schedule(kind, at) => self.queue.schedule(
                    at,
                    TimerRef {
                        txn: txn.id,
                        branch: Some(idx),
                        kind,
                        generation: 0,
                    },
                ),
                TxnAction::Timeout if idx & CANCEL_BIT == 0 => {
                    let pending = txn.branches.get(i).is_some_and(|b| !b.done);
                    if pending && self.fail_over(core, txn, i, self.clock.now()) {
                        if let Some(b) = txn.branches.get_mut(i) {
                            b.done = true;
                        }
                        continue;
                    }
                    if let Some(b) = txn.branches.get_mut(i)
                        && !b.done
                        && !b.replica
                    {
                        b.done = true;
                        timed_out = true;
                    }
                    if timed_out {
                        let c = self.local_candidate(txn, 408, "Request Timeout");
                        txn.candidates.extend(c);
                    }
                }
                TxnAction::Terminated => {
                    let all_ended = txn
                        .branches
                        .iter()
                        .all(|b| b.client.state() == client::ClientState::Terminated);
                    if txn.phase == Phase::Replicating && all_ended {
                        self.forget(txn);
                    }
                }
                TxnAction::Timeout => {}
            }
        }
        timed_out
    }

    /// A response the proxy makes up for a branch (408, 478, 503).
    fn local_candidate(&self, txn: &Transaction, code: u16, reason: &str) -> Option<Candidate> {
        let (upstream, _) =
            reply::build_response(&txn.request, &txn.summary, txn.source, code, reason, &[])
                .ok()?;
        Some(Candidate {
            code,
            upstream,
            challenges: Vec::new(),
        })
    }

    fn reply_local(&self, core: &RouterCore, txn: &mut Transaction, code: u16, reason: &str) {
        if let Some(c) = self.local_candidate(txn, code, reason) {
            let now = self.clock.now();
            self.send_upstream(core, txn, code, c.upstream, now);
        }
    }

    /// §16.7 steps 6–7: the best final response goes upstream, with every
    /// challenge of the 401/407s collected into it.
    fn send_best(&self, core: &RouterCore, txn: &mut Transaction) {
        let now = self.clock.now();
        let Some(best) = txn.best_candidate().cloned() else {
            // No branch produced anything (none could be started).
            return self.reply_local(core, txn, 500, "Server Internal Error");
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
        self.send_upstream(core, txn, best.code, bytes, now);
    }
}

/// After the final response went up, a transaction only absorbs
/// retransmissions until its timers end: drop the request copy, the
/// candidates and the requests of finished branches.
fn compact(txn: &mut Transaction) {
    static SPENT: std::sync::LazyLock<Option<Arc<Message>>> = std::sync::LazyLock::new(|| {
        Message::parse(Bytes::from_static(
            b"OPTIONS sip:spent.invalid SIP/2.0\r\nVia: SIP/2.0/UDP spent.invalid;branch=z9hG4bKspent\r\nFrom: <sip:spent.invalid>;tag=x\r\nTo: <sip:spent.invalid>\r\nCall-ID: spent\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        ))
        .ok()
        .map(Arc::new)
    });
    if let Some(spent) = SPENT.as_ref() {
        txn.request = spent.clone();
    }
    txn.candidates = Vec::new();
    for b in &mut txn.branches {
        b.client.release_request();
        if !b.client.is_pending() {
            b.uri = String::new();
            b.alternatives = Vec::new();
        }
    }
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

fn relay_targets(ctx: &MsgContext, hop: Option<NextHop>) -> Result<Vec<RelayTarget>, ActionError> {
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
    match via.branch() {
        Some(b) if b.starts_with("z9hG4bK") => Some(format!("{b}|{sent_by}|{method}")),
        _ => Some(format!(
            "2543|{}|{}|{}|{sent_by}|{method}",
            call_id(&ctx.msg),
            ctx.summary.from_tag.as_deref().unwrap_or(""),
            ctx.summary.cseq
        )),
    }
}

fn call_id(msg: &Message) -> String {
    msg.call_id()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_default()
}
