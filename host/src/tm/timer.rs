//! Time for the transaction layer: the timer values of RFC 3261 §17 (from
//! the manifest's `[tm]`), a clock the tests can drive by hand, and the queue
//! of pending timers that one driver task fires.
//!
//! Transactions never sleep: they ask for a timer at an instant and are
//! handed the timer back when it is due. Tests use [`ManualClock`] and call
//! [`TimerQueue::pop_due`] themselves, so a 32-second Timer B is checked
//! without waiting 32 seconds.

use std::collections::BTreeMap;
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
        let mut t = crate::util::lock(&self.0);
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
        *crate::util::lock(&self.0)
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
/// their state; the long ones (timeouts, `fr_inv_timer`) are also cancelled
/// when their branch is answered, so they do not outlive it in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerRef {
    pub txn: u64,
    pub branch: Option<u16>,
    pub kind: TimerKind,
    /// Generation of the branch/server state that set it; a stale one is ignored.
    pub generation: u32,
}

impl TimerRef {
    /// A timer of a state machine (no generation: only `fr_inv_timer` has one).
    pub fn of(txn: u64, branch: Option<u16>, kind: TimerKind) -> Self {
        TimerRef {
            txn,
            branch,
            kind,
            generation: 0,
        }
    }
}

/// Width of one bucket of the [`TimerQueue`].
const BUCKET: Duration = Duration::from_millis(1);

/// Pending timers, filed by deadline into 1 ms buckets.
///
/// At thousands of transactions per second the queue holds hundreds of
/// thousands of timers. A binary heap paid a cache-missing walk of twenty
/// levels for every timer popped; here a timer is appended to its bucket
/// and popped with the whole bucket, the ordered map has one key per
/// millisecond that holds timers, not one per timer, and a cancel searches
/// one bucket.
pub struct TimerQueue {
    /// When bucket 0 starts.
    origin: Instant,
    buckets: Mutex<BTreeMap<u64, Bucket>>,
    /// Wakes the driver when a timer earlier than the one it sleeps for arrives.
    pub(crate) wake: tokio::sync::Notify,
}

/// The timers due within one [`BUCKET`], in the order they were scheduled.
struct Bucket {
    earliest: Instant,
    timers: Vec<(Instant, TimerRef)>,
}

impl Default for TimerQueue {
    fn default() -> Self {
        TimerQueue::starting_at(Instant::now())
    }
}

impl TimerQueue {
    /// A queue whose first bucket starts at `origin`; a deadline before it
    /// goes to that first bucket.
    pub fn starting_at(origin: Instant) -> Self {
        TimerQueue {
            origin,
            buckets: Mutex::new(BTreeMap::new()),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The bucket holding deadline `at`: every deadline in bucket `k` lies
    /// in `[origin + k·BUCKET, origin + (k+1)·BUCKET)`.
    fn bucket_of(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin);
        (since.as_nanos() / BUCKET.as_nanos()) as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Bucket>> {
        crate::util::lock(&self.buckets)
    }

    pub fn schedule(&self, at: Instant, timer: TimerRef) {
        let key = self.bucket_of(at);
        let mut buckets = self.lock();
        let earliest = buckets
            .first_key_value()
            .is_none_or(|(k, b)| key < *k || (key == *k && at < b.earliest));
        let bucket = buckets.entry(key).or_insert_with(|| Bucket {
            earliest: at,
            timers: Vec::new(),
        });
        bucket.earliest = bucket.earliest.min(at);
        bucket.timers.push((at, timer));
        drop(buckets);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Every timer due at `now`: bucket by bucket, earliest first, and in
    /// the order scheduled within one bucket.
    pub fn pop_due(&self, now: Instant) -> Vec<TimerRef> {
        let current = self.bucket_of(now);
        let mut buckets = self.lock();
        let mut due = Vec::new();
        // Buckets wholly in the past go as they are.
        while let Some(entry) = buckets.first_entry() {
            if *entry.key() >= current {
                break;
            }
            due.extend(entry.remove().timers.into_iter().map(|(_, r)| r));
        }
        // The bucket `now` falls in: only what is due by `now`.
        if let Some(mut entry) = buckets.first_entry().filter(|e| *e.key() == current) {
            let bucket = entry.get_mut();
            if bucket.earliest <= now {
                bucket.timers.retain(|&(at, r)| {
                    if at <= now {
                        due.push(r);
                        false
                    } else {
                        true
                    }
                });
                match bucket.timers.iter().map(|(at, _)| *at).min() {
                    Some(earliest) => bucket.earliest = earliest,
                    None => {
                        entry.remove();
                    }
                }
            }
        }
        due
    }

    /// Take out the timer scheduled for `at` (a no-op when it fired or was
    /// never there). Only its own bucket is searched.
    pub fn cancel(&self, at: Instant, timer: TimerRef) {
        let key = self.bucket_of(at);
        let mut buckets = self.lock();
        let Some(bucket) = buckets.get_mut(&key) else {
            return;
        };
        let Some(i) = bucket.timers.iter().position(|e| *e == (at, timer)) else {
            return;
        };
        bucket.timers.swap_remove(i);
        match bucket.timers.iter().map(|(at, _)| *at).min() {
            Some(earliest) => bucket.earliest = earliest,
            None => {
                buckets.remove(&key);
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.lock().first_key_value().map(|(_, b)| b.earliest)
    }

    pub fn len(&self) -> usize {
        self.lock().values().map(|b| b.timers.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
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
    fn a_timer_is_due_at_its_deadline_to_the_nanosecond_whatever_its_bucket() {
        let t0 = Instant::now();
        let q = TimerQueue::starting_at(t0);
        let us = Duration::from_micros;
        // Two timers inside one 1 ms bucket, scheduled out of order, one
        // before the queue's origin, one in a later bucket.
        q.schedule(t0 + us(2_700), r(1, TimerKind::E));
        q.schedule(t0 + us(2_300), r(2, TimerKind::A));
        q.schedule(t0 - us(50), r(3, TimerKind::K));
        q.schedule(t0 + us(9_000), r(4, TimerKind::F));
        assert_eq!(q.len(), 4);
        assert_eq!(q.next_deadline(), Some(t0 - us(50)));
        assert_eq!(q.pop_due(t0 - us(51)), vec![]);
        assert_eq!(q.pop_due(t0 - us(50)), vec![r(3, TimerKind::K)]);
        assert_eq!(q.next_deadline(), Some(t0 + us(2_300)));
        assert_eq!(q.pop_due(t0 + us(2_299)), vec![]);
        assert_eq!(q.pop_due(t0 + us(2_300)), vec![r(2, TimerKind::A)]);
        assert_eq!(q.next_deadline(), Some(t0 + us(2_700)));
        // A later `now` takes the rest of the bucket and nothing beyond.
        assert_eq!(q.pop_due(t0 + us(8_999)), vec![r(1, TimerKind::E)]);
        assert_eq!(q.next_deadline(), Some(t0 + us(9_000)));
        assert_eq!(q.pop_due(t0 + us(60_000)), vec![r(4, TimerKind::F)]);
        assert!(q.is_empty());
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn timers_of_one_bucket_come_out_in_the_order_scheduled() {
        let t0 = Instant::now();
        let q = TimerQueue::starting_at(t0);
        let at = t0 + Duration::from_millis(32);
        for txn in 0..100 {
            q.schedule(at, r(txn, TimerKind::B));
        }
        let due = q.pop_due(at);
        assert_eq!(
            due.iter().map(|t| t.txn).collect::<Vec<_>>(),
            (0..100).collect::<Vec<_>>()
        );
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

    #[test]
    fn a_cancelled_timer_never_fires_and_leaves_no_bucket() {
        let origin = Instant::now();
        let q = TimerQueue::starting_at(origin);
        let at = origin + Duration::from_secs(30);
        q.schedule(at, r(1, TimerKind::F));
        q.schedule(at, r(2, TimerKind::F));
        q.cancel(at, r(1, TimerKind::F));
        q.cancel(at, r(9, TimerKind::F));
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_due(at), vec![r(2, TimerKind::F)]);
        q.schedule(at, r(3, TimerKind::F));
        q.cancel(at, r(3, TimerKind::F));
        assert!(q.is_empty(), "the emptied bucket is gone");
        assert_eq!(q.next_deadline(), None);
    }
}
