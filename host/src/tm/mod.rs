//! The transaction layer (Kamailio `tm`, RFC 3261 §16 and §17): stateful
//! relaying with forking, retransmission absorption, CANCEL, failure and
//! reply routes, and every timer.
//!
//! The sans-IO parts:
//! - [`client`] / [`server`]: the §17 state machines.
//! - [`transaction`]: a proxy transaction — server side, branches, the
//!   response context that picks the best final response (§16.7).
//! - [`timer`]: timer values, the clock, the queue of pending timers.
//! - [`generated`]: the ACK and CANCEL requests the layer makes itself.
//!
//! [`Tm`] drives them, one file per job:
//! - [`table`]: the live transactions, by key and by id.
//! - [`requests`]: a request before routing (retransmission, ACK, CANCEL)
//!   and the transaction a route creates for it (`t_newtran`).
//! - [`relay`]: `t_relay`, `t_replicate`, branches and their next hops
//!   (RFC 3263 resolution off the receive path), fail-over, CANCEL down.
//! - [`responses`]: a response on a branch, the best final response up, the
//!   end of the request and failure routes.
//! - [`answer`]: the one place that decides how a request is answered:
//!   through its transaction when it has one, else statelessly.
//! - [`timeouts`]: what a due timer does, and the task that fires them.
//! - [`actions`]: the I/O the state machines ask for.
//! - [`context`]: what a transaction adds to a message in a route's hands.
//! - [`acc`]: the accounting record of a flagged transaction's final reply.
//!
//! Plugins never run while a transaction is locked, and this layer never
//! calls a plugin: where a failure route is due it sends a [`FailureWork`] on
//! the channel [`Tm::new`] returned, whose receiver (the router) runs the
//! route and reports back with [`Tm::failure_route_finished`]. Who armed the
//! route travels as an opaque [`RouteOwner`].
//!
//! A transaction exists only for requests a route relays statefully
//! (`t_relay`) or takes over (`t_newtran`, `t_reply`), as in Kamailio: a
//! request answered with `sl_send_reply` leaves no state, so its
//! retransmission runs the route again and gets the same stateless reply.

pub mod acc;
pub mod actions;
pub mod answer;
pub mod client;
pub mod context;
pub mod generated;
pub mod media;
pub mod relay;
pub mod requests;
pub mod responses;
pub mod server;
pub mod table;
pub mod timeouts;
pub mod timer;
pub mod transaction;

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use tokio::sync::mpsc;

pub use self::context::{OwnerHold, RouteContext, RouteOwner};
use self::table::TxnTable;
use self::timer::{Clock, TimerQueue, Timers};
use self::transaction::Transaction;
use crate::config::TmConfig;
use crate::stateless::{RequestSummary, Stateless};

pub type TxnCell = Mutex<Transaction>;
pub type TxnHandle = Arc<TxnCell>;

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
    /// A branch of a transaction that has ended (or of an earlier run of
    /// this router): dropped.
    Ended,
    Branch {
        txn: TxnHandle,
        branch: u16,
        on_reply: Option<ArmedRoute>,
    },
}

/// A route a plugin armed, with who armed it (none when a transaction was
/// made without a plugin call, as in unit tests).
pub struct ArmedRoute {
    pub name: String,
    pub owner: Option<Arc<dyn RouteOwner>>,
}

/// A failure route to run: the router calls the plugin's `failure-route`
/// with `ctx`, then [`Tm::failure_route_finished`].
pub struct FailureWork {
    pub route: ArmedRoute,
    pub ctx: Box<RouteContext>,
}

/// The request summary of a transaction, for a reply route's context.
pub fn lock_summary(t: &TxnCell) -> RequestSummary {
    (*lock(t).summary).clone()
}

fn lock(t: &TxnCell) -> MutexGuard<'_, Transaction> {
    crate::util::lock(t)
}

/// The transaction layer.
pub struct Tm {
    sl: Arc<Stateless>,
    /// RFC 3263 next-hop resolution; none when the system resolver
    /// configuration is unusable (then only IP literals are reachable).
    resolver: Option<wisp_dns::Resolver>,
    /// Where due failure routes go. Unbounded: each item is a live
    /// transaction, and those are bounded by `memory_mb`.
    failure_routes: mpsc::UnboundedSender<FailureWork>,
    /// This layer itself, for the tasks it spawns (DNS resolution).
    me: Weak<Tm>,
    timers: Timers,
    clock: Arc<dyn Clock>,
    queue: TimerQueue,
    table: TxnTable,
    /// Random per run of the router, part of every Via branch it makes, so a
    /// restarted router never reuses a branch (RFC 3261 §8.1.1.7, §16.6
    /// step 8).
    run_id: u32,
    /// Accounting (`[acc]`), once the router sets it.
    acc: OnceLock<acc::Accounting>,
    /// The media relay (`[rtpengine]`), once the router sets it.
    media: OnceLock<Arc<dyn media::MediaRelay>>,
}

impl Tm {
    /// The layer, and the receiving end of the failure routes it will ask
    /// for (see [`FailureWork`]).
    pub fn new(
        cfg: &TmConfig,
        clock: Arc<dyn Clock>,
        sl: Arc<Stateless>,
        resolver: Option<wisp_dns::Resolver>,
    ) -> (Arc<Tm>, mpsc::UnboundedReceiver<FailureWork>) {
        let (failure_routes, rx) = mpsc::unbounded_channel();
        let tm = Arc::new_cyclic(|me| Tm {
            sl,
            resolver,
            failure_routes,
            me: me.clone(),
            timers: Timers::from_config(cfg),
            clock,
            queue: TimerQueue::default(),
            table: TxnTable::new(cfg.memory_mb, cfg.max_transactions)
                .with_source_share(cfg.source_share_percent),
            run_id: rand::random(),
            acc: OnceLock::new(),
            media: OnceLock::new(),
        });
        (tm, rx)
    }

    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// Timers waiting to fire (retransmission, timeout and wait timers of
    /// every transaction and branch).
    pub fn pending_timers(&self) -> usize {
        self.queue.len()
    }

    /// Live transactions.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Bytes the live transactions are charged with against `tm.memory_mb`.
    pub fn held_bytes(&self) -> u64 {
        self.table.held_bytes()
    }

    /// Hand a due failure route to whoever runs them (the router).
    fn queue_failure_route(&self, work: Option<FailureWork>) {
        if let Some(work) = work
            && self.failure_routes.send(work).is_err()
        {
            tracing::debug!("no failure route runner: router shutting down");
        }
    }
}

fn call_id(msg: &wisp_sip::Message) -> String {
    msg.call_id()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
