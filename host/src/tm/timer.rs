//! Time for the transaction layer: the timer values of RFC 3261 §17 (from
//! the manifest's `[tm]`), a clock the tests can drive by hand, and the queue
//! of pending timers that one driver task fires.
//!
//! Transactions never sleep: they ask for a timer at an instant and are
//! handed the timer back when it is due. Tests use [`ManualClock`] and call
//! [`TimerQueue::pop_due`] themselves, so a 32-second Timer B is checked
//! without waiting 32 seconds.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::TmConfig;

/// Timer values in effect (RFC 3261 Table 4, Kamailio `fr_timer` / `fr_inv_timer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    pub fr: Duration,
    pub fr_inv: Duration,
    /// Kamailio `wait_timer`: timers J and L (see `TmConfig::wait_timer_ms`).
    pub wait: Duration,
}

impl Timers {
    pub fn from_config(c: &TmConfig) -> Self {
        Timers {
            t1: Duration::from_millis(c.t1_ms),
            t2: Duration::from_millis(c.t2_ms),
            t4: Duration::from_millis(c.t4_ms),
            fr: Duration::from_millis(c.fr_timer_ms),
            fr_inv: Duration::from_millis(c.fr_inv_timer_ms),
            wait: Duration::from_millis(c.wait_timer_ms),
        }
    }

    /// 64*T1: timers B, F, H, J and the wait before a transaction is forgotten.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }
}

impl Default for Timers {
    fn default() -> Self {
        Timers::from_config(&TmConfig::default())
    }
}

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to, for timer tests.
pub struct ManualClock(Mutex<Instant>);

impl ManualClock {
    pub fn new() -> Self {
        ManualClock(Mutex::new(Instant::now()))
    }
    pub fn advance(&self, d: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += d;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The RFC 3261 timers, plus the proxy's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimerKind {
    /// INVITE client retransmission.
    A,
    /// INVITE client timeout (no response at all).
    B,
    /// Wait in INVITE client Completed for retransmitted finals (ACK again).
    D,
    /// Non-INVITE client retransmission.
    E,
    /// Non-INVITE client timeout.
    F,
    /// Non-INVITE client Completed wait.
    K,
    /// INVITE server: retransmit the final non-2xx response.
    G,
    /// INVITE server: give up waiting for the ACK.
    H,
    /// INVITE server Confirmed wait.
    I,
    /// Non-INVITE server Completed wait (`wait_timer` over UDP).
    J,
    /// INVITE server after a 2xx (RFC 6026 Accepted): absorb retransmissions
    /// for `wait_timer`.
    L,
    /// Proxy: no final response in time (Kamailio `fr_timer` / `fr_inv_timer`).
    FinalResponse,
}

/// A pending timer: which transaction, which branch (`None` = the server
/// side), which kind. Transactions ignore timers that no longer apply to
/// their state, so a timer is never cancelled, only outlived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerRef {
    pub txn: u64,
    pub branch: Option<u16>,
    pub kind: TimerKind,
    /// Generation of the branch/server state that set it; a stale one is ignored.
    pub generation: u32,
}

/// Pending timers ordered by deadline.
#[derive(Default)]
pub struct TimerQueue {
    heap: Mutex<BinaryHeap<Reverse<(Instant, u64, TimerRef)>>>,
    seq: std::sync::atomic::AtomicU64,
    /// Wakes the driver when a timer earlier than the one it sleeps for arrives.
    pub(crate) wake: tokio::sync::Notify,
}

impl TimerQueue {
    pub fn schedule(&self, at: Instant, timer: TimerRef) {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut heap = self.heap.lock().unwrap_or_else(|p| p.into_inner());
        let earliest = heap.peek().is_none_or(|Reverse((t, _, _))| at < *t);
        heap.push(Reverse((at, seq, timer)));
        drop(heap);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Every timer due at `now`, earliest first.
    pub fn pop_due(&self, now: Instant) -> Vec<TimerRef> {
        let mut heap = self.heap.lock().unwrap_or_else(|p| p.into_inner());
        let mut due = Vec::new();
        while let Some(Reverse((t, _, _))) = heap.peek() {
            if *t > now {
                break;
            }
            if let Some(Reverse((_, _, r))) = heap.pop() {
                due.push(r);
            }
        }
        due
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let heap = self.heap.lock().unwrap_or_else(|p| p.into_inner());
        heap.peek().map(|Reverse((t, _, _))| *t)
    }

    pub fn len(&self) -> usize {
        self.heap.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(txn: u64, kind: TimerKind) -> TimerRef {
        TimerRef {
            txn,
            branch: None,
            kind,
            generation: 0,
        }
    }

    #[test]
    fn due_timers_come_out_in_deadline_order_and_only_when_due() {
        let clock = ManualClock::new();
        let q = TimerQueue::default();
        let t0 = clock.now();
        q.schedule(t0 + Duration::from_millis(500), r(1, TimerKind::A));
        q.schedule(t0 + Duration::from_millis(100), r(2, TimerKind::E));
        q.schedule(t0 + Duration::from_secs(32), r(1, TimerKind::B));
        assert!(q.pop_due(clock.now()).is_empty());
        clock.advance(Duration::from_millis(600));
        assert_eq!(
            q.pop_due(clock.now()),
            vec![r(2, TimerKind::E), r(1, TimerKind::A)]
        );
        assert_eq!(q.next_deadline(), Some(t0 + Duration::from_secs(32)));
        clock.advance(Duration::from_secs(40));
        assert_eq!(q.pop_due(clock.now()), vec![r(1, TimerKind::B)]);
        assert!(q.is_empty());
    }

    #[test]
    fn defaults_are_rfc3261_table_4_and_kamailio_fr_timers() {
        let t = Timers::default();
        assert_eq!(t.t1, Duration::from_millis(500));
        assert_eq!(t.t2, Duration::from_secs(4));
        assert_eq!(t.t4, Duration::from_secs(5));
        assert_eq!(t.t1x64(), Duration::from_secs(32));
        assert_eq!(t.fr, Duration::from_secs(30));
        assert_eq!(t.fr_inv, Duration::from_secs(120));
        assert_eq!(t.wait, Duration::from_secs(5), "Kamailio's wait_timer");
    }
}
