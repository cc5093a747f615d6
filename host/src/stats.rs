//! Counters every layer increments on its hot path, summed when read (the
//! Prometheus endpoint, `wisp ctl stats`).
//!
//! Each counter is sharded: a thread adds to its own shard (relaxed atomics,
//! one cache line per shard and counter block, so two workers never write
//! the same line) and a read sums the shards. An increment is one
//! uncontended `lock add` on a line the thread already owns: no measurable
//! cost next to parsing a message (docs/performance.md).
//!
//! The counters are process-wide statics (one router per process), so any
//! layer can count without being handed anything; a test that runs several
//! routers in one process reads their sum.
//!
//! What is counted here is what happens (requests, replies, commits);
//! what *is* (transactions alive, contacts registered, the writer's queue)
//! is read from its owner when the numbers are asked for, and costs the hot
//! path nothing.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// Shards per counter set. More than the worker threads (plus the writer,
/// the timers, blocking threads); threads beyond that share shards, which
/// is still correct, only less private.
pub const SHARDS: usize = 32;

/// One shard of `N` counters, aligned so that no two shards share a line.
#[repr(C, align(128))]
struct Shard<const N: usize>([AtomicU64; N]);

/// `N` sharded counters.
pub struct Counters<const N: usize> {
    shards: [Shard<N>; SHARDS],
}

impl<const N: usize> Default for Counters<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Counters<N> {
    pub const fn new() -> Self {
        Counters {
            shards: [const { Shard([const { AtomicU64::new(0) }; N]) }; SHARDS],
        }
    }

    /// Add `n` to counter `i` (out-of-range `i` is ignored).
    #[inline]
    pub fn add(&self, i: usize, n: u64) {
        if let Some(c) = self.shards[shard()].0.get(i) {
            c.fetch_add(n, Relaxed);
        }
    }

    /// Counter `i`, summed over the shards.
    pub fn get(&self, i: usize) -> u64 {
        self.shards
            .iter()
            .filter_map(|s| s.0.get(i))
            .fold(0u64, |sum, c| sum.wrapping_add(c.load(Relaxed)))
    }
}

/// This thread's shard: handed out round-robin on a thread's first count.
#[inline]
fn shard() -> usize {
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    SHARD.with(|s| {
        let i = s.get();
        if i < SHARDS {
            return i;
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let i = NEXT.fetch_add(1, Relaxed) % SHARDS;
        s.set(i);
        i
    })
}

/// Histogram bucket bounds, in microseconds: 10 µs to 10 s. Plugin calls
/// sit at the low end, store commits in the middle.
pub const BUCKETS_US: [u64; 16] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 500_000,
    1_000_000, 10_000_000,
];

/// Slots of one histogram: a count per bucket (not cumulative), one above
/// the last bound, and the sum in nanoseconds.
pub const HISTOGRAM_SLOTS: usize = BUCKETS_US.len() + 2;

/// A latency histogram over [`BUCKETS_US`].
pub struct Histogram {
    c: Counters<HISTOGRAM_SLOTS>,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// What a [`Histogram`] holds when read: the count of each bucket by its
/// upper bound in seconds (not cumulative: the form `prometheus-client`
/// encodes, adding them up), the count, the sum in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub const fn new() -> Self {
        Histogram { c: Counters::new() }
    }

    #[inline]
    pub fn observe(&self, d: Duration) {
        // 584 years of nanoseconds fit in a u64.
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US
            .iter()
            .position(|b| ns <= b * 1000)
            .unwrap_or(BUCKETS_US.len());
        self.c.add(bucket, 1);
        self.c.add(HISTOGRAM_SLOTS - 1, ns);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = Vec::with_capacity(BUCKETS_US.len() + 1);
        for (i, b) in BUCKETS_US.iter().enumerate() {
            buckets.push((*b as f64 / 1e6, self.c.get(i)));
        }
        buckets.push((f64::INFINITY, self.c.get(BUCKETS_US.len())));
        HistogramSnapshot {
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
            sum_seconds: self.c.get(HISTOGRAM_SLOTS - 1) as f64 / 1e9,
        }
    }
}

/// Request methods counted by name; anything else is `other`.
pub const METHODS: [&str; 15] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "INFO",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "UPDATE",
    "MESSAGE",
    "REFER",
    "PUBLISH",
    "other",
];

fn method_index(m: &wisp_sip::Method) -> usize {
    use wisp_sip::Method::*;
    match m {
        Invite => 0,
        Ack => 1,
        Bye => 2,
        Cancel => 3,
        Register => 4,
        Options => 5,
        Info => 6,
        Prack => 7,
        Subscribe => 8,
        Notify => 9,
        Update => 10,
        Message => 11,
        Refer => 12,
        Publish => 13,
        Other(_) => 14,
    }
}

/// Reply classes, `1xx` to `6xx`.
pub const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// The counters without labels (and the labelled ones' base slots).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Requests a route ended without answering or relaying, and ACKs
    /// refused by the sanity check (nothing is sent back to those).
    RequestsDropped,
    /// Messages that did not parse or failed the sanity check.
    BadMessages,
    TransactionsCreated,
    /// Retransmitted requests a transaction answered (or ignored) itself.
    RetransmissionsAbsorbed,
    RegistersAccepted,
    RegistersRefused,
    ReloadsDone,
    ReloadsRefused,
    StoreCommits,
    StoreCommitFailures,
    DnsLookups,
    DnsFailures,
    /// Transactions whose final reply went upstream.
    TransactionsAnswered,
    /// Of those, the ones whose timers have ended: the difference are the
    /// transactions waiting (absorbing retransmissions of the request).
    TransactionsAnsweredEnded,
    /// Accounting records queued for the log.
    AccRecords,
    /// Accounting records left out: the queue was full.
    AccDropped,
    /// Accounting records written to the database's `acc` table.
    AccStored,
    /// Accounting records the database refused (it was down): in the log only.
    AccDbFailures,
    /// Keepalives sent to contacts behind NAT (`[nat]`).
    KeepaliveSent,
    /// Keepalive requests answered (any status).
    KeepaliveAnswered,
    /// Keepalives unanswered when their round ended.
    KeepaliveMissed,
    /// Bindings removed after `keepalive_max_failures` misses in a row.
    KeepaliveRemoved,
}

impl Counter {
    pub const ALL: [Counter; 22] = [
        Counter::RequestsDropped,
        Counter::BadMessages,
        Counter::TransactionsCreated,
        Counter::RetransmissionsAbsorbed,
        Counter::RegistersAccepted,
        Counter::RegistersRefused,
        Counter::ReloadsDone,
        Counter::ReloadsRefused,
        Counter::StoreCommits,
        Counter::StoreCommitFailures,
        Counter::DnsLookups,
        Counter::DnsFailures,
        Counter::TransactionsAnswered,
        Counter::TransactionsAnsweredEnded,
        Counter::AccRecords,
        Counter::AccDropped,
        Counter::AccStored,
        Counter::AccDbFailures,
        Counter::KeepaliveSent,
        Counter::KeepaliveAnswered,
        Counter::KeepaliveMissed,
        Counter::KeepaliveRemoved,
    ];
}

const REQUESTS: usize = Counter::ALL.len();
const REPLIES_LOCAL: usize = REQUESTS + METHODS.len();
const REPLIES_RELAYED: usize = REPLIES_LOCAL + CLASSES.len();
const REPLIES_RECEIVED: usize = REPLIES_RELAYED + CLASSES.len();
const GLOBAL_SLOTS: usize = REPLIES_RECEIVED + CLASSES.len();

static GLOBAL: Counters<GLOBAL_SLOTS> = Counters::new();
static COMMIT_LATENCY: Histogram = Histogram::new();

#[inline]
pub fn inc(c: Counter) {
    GLOBAL.add(c as usize, 1);
}

#[inline]
pub fn add(c: Counter, n: u64) {
    GLOBAL.add(c as usize, n);
}

pub fn get(c: Counter) -> u64 {
    GLOBAL.get(c as usize)
}

/// A request arrived (retransmissions included).
#[inline]
pub fn request_received(m: &wisp_sip::Method) {
    GLOBAL.add(REQUESTS + method_index(m), 1);
}

fn class_index(code: u16) -> usize {
    (code / 100).clamp(1, 6) as usize - 1
}

/// A reply arrived from downstream (retransmissions included).
#[inline]
pub fn reply_received(code: u16) {
    GLOBAL.add(REPLIES_RECEIVED + class_index(code), 1);
}

/// Who made a reply that went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyOrigin {
    /// Wisp built it (sl, t_reply, a timeout, a 100 Trying).
    Local,
    /// It came from downstream and was passed up.
    Relayed,
}

/// A reply went out (a retransmission of the same reply does not count).
#[inline]
pub fn reply_sent(code: u16, origin: ReplyOrigin) {
    let class = class_index(code);
    let base = match origin {
        ReplyOrigin::Local => REPLIES_LOCAL,
        ReplyOrigin::Relayed => REPLIES_RELAYED,
    };
    GLOBAL.add(base + class, 1);
}

/// A store transaction committed (or failed to), taking `d`.
pub fn store_commit(d: Duration, ok: bool) {
    inc(if ok {
        Counter::StoreCommits
    } else {
        Counter::StoreCommitFailures
    });
    COMMIT_LATENCY.observe(d);
}

/// Every process-wide counter, summed now.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// `(counter, value)` in [`Counter::ALL`] order.
    pub counters: Vec<(Counter, u64)>,
    /// `(method, requests)` in [`METHODS`] order.
    pub requests: Vec<(&'static str, u64)>,
    /// `(class, replies)` in [`CLASSES`] order.
    pub replies_local: Vec<(&'static str, u64)>,
    pub replies_relayed: Vec<(&'static str, u64)>,
    pub replies_received: Vec<(&'static str, u64)>,
    pub commit_latency: HistogramSnapshot,
}

impl Snapshot {
    pub fn get(&self, c: Counter) -> u64 {
        self.counters
            .iter()
            .find(|(k, _)| *k == c)
            .map_or(0, |(_, v)| *v)
    }
}

pub fn snapshot() -> Snapshot {
    let labelled = |base: usize, names: &[&'static str]| {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, GLOBAL.get(base + i)))
            .collect()
    };
    Snapshot {
        counters: Counter::ALL.iter().map(|c| (*c, get(*c))).collect(),
        requests: labelled(REQUESTS, &METHODS),
        replies_local: labelled(REPLIES_LOCAL, &CLASSES),
        replies_relayed: labelled(REPLIES_RELAYED, &CLASSES),
        replies_received: labelled(REPLIES_RECEIVED, &CLASSES),
        commit_latency: COMMIT_LATENCY.snapshot(),
    }
}

/// A plugin build's counts (one per loaded build; `wisp_plugin_*` metrics
/// carry its name and build). The calls are the latency histogram's count.
#[derive(Default)]
pub struct PluginStats {
    /// Traps, deadline overruns, memory overruns.
    c: Counters<3>,
    latency: Histogram,
}

/// What ended a plugin call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// Returned (ok or error).
    Returned,
    /// Trapped: a panic, an out-of-bounds access...
    Trapped,
    /// Ran past its deadline.
    Deadline,
    /// Asked for more memory than its cap.
    Memory,
}

/// A plugin build's counts, read.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSnapshot {
    pub calls: u64,
    /// Traps of any kind, deadline and memory included.
    pub traps: u64,
    pub deadline: u64,
    pub memory: u64,
    pub latency: HistogramSnapshot,
}

impl PluginStats {
    pub const fn new() -> Self {
        PluginStats {
            c: Counters::new(),
            latency: Histogram::new(),
        }
    }

    #[inline]
    pub fn call(&self, d: Duration, end: CallEnd) {
        match end {
            CallEnd::Returned => {}
            CallEnd::Trapped => self.c.add(0, 1),
            CallEnd::Deadline => {
                self.c.add(0, 1);
                self.c.add(1, 1);
            }
            CallEnd::Memory => {
                self.c.add(0, 1);
                self.c.add(2, 1);
            }
        }
        self.latency.observe(d);
    }

    pub fn snapshot(&self) -> PluginSnapshot {
        let latency = self.latency.snapshot();
        PluginSnapshot {
            calls: latency.count,
            traps: self.c.get(0),
            deadline: self.c.get(1),
            memory: self.c.get(2),
            latency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        let c: &'static Counters<3> = Box::leak(Box::new(Counters::new()));
        let threads: Vec<_> = (0..(SHARDS + 8))
            .map(|_| {
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.add(1, 1);
                    }
                    c.add(2, 5);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(c.get(0), 0);
        assert_eq!(c.get(1), (SHARDS as u64 + 8) * 1000);
        assert_eq!(c.get(2), (SHARDS as u64 + 8) * 5);
        // Out of range: ignored, never a panic.
        c.add(3, 1);
        assert_eq!(c.get(3), 0);
    }

    #[test]
    fn a_histogram_counts_per_bucket_with_count_and_sum() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(7)); // <= 10 µs
        h.observe(Duration::from_micros(10)); // <= 10 µs (bounds are inclusive)
        h.observe(Duration::from_micros(300)); // <= 500 µs
        h.observe(Duration::from_secs(60)); // above the last bound
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets.first(), Some(&(10e-6, 2)));
        let at = |bound: f64| s.buckets.iter().find(|(b, _)| *b == bound).map(|(_, n)| *n);
        assert_eq!(at(250e-6), Some(0));
        assert_eq!(at(500e-6), Some(1));
        assert_eq!(at(10.0), Some(0));
        assert_eq!(at(f64::INFINITY), Some(1));
        assert!(
            (s.sum_seconds - 60.000317).abs() < 1e-9,
            "{}",
            s.sum_seconds
        );
    }

    #[test]
    fn replies_count_by_class_and_origin() {
        let before = snapshot();
        reply_sent(100, ReplyOrigin::Local);
        reply_sent(486, ReplyOrigin::Relayed);
        reply_sent(699, ReplyOrigin::Relayed);
        let after = snapshot();
        let diff = |a: &[(&str, u64)], b: &[(&str, u64)], k: &str| {
            let v = |s: &[(&str, u64)]| s.iter().find(|(n, _)| *n == k).map_or(0, |(_, v)| *v);
            v(a) - v(b)
        };
        assert_eq!(diff(&after.replies_local, &before.replies_local, "1xx"), 1);
        assert_eq!(
            diff(&after.replies_relayed, &before.replies_relayed, "4xx"),
            1
        );
        assert_eq!(
            diff(&after.replies_relayed, &before.replies_relayed, "6xx"),
            1
        );
        request_received(&wisp_sip::Method::Other("FROB".into()));
        assert!(
            snapshot()
                .requests
                .iter()
                .any(|(m, n)| *m == "other" && *n >= 1)
        );
    }

    #[test]
    fn a_plugin_call_that_overran_counts_as_a_trap_and_a_deadline() {
        let p = PluginStats::new();
        p.call(Duration::from_micros(20), CallEnd::Returned);
        p.call(Duration::from_millis(100), CallEnd::Deadline);
        p.call(Duration::from_micros(20), CallEnd::Memory);
        p.call(Duration::from_micros(20), CallEnd::Trapped);
        let s = p.snapshot();
        assert_eq!((s.calls, s.traps, s.deadline, s.memory), (4, 3, 1, 1));
        assert_eq!(s.latency.count, 4);
    }
}
