//! Small helpers every layer uses.

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, also when a thread panicked while holding it. Every mutex of
/// the router guards state that stays consistent between statements (a
/// panic is a bug, never a half-done update we rely on), so the one way to
/// handle poisoning is to carry on with the data rather than take down
/// every later caller.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A message's Call-ID as a log field (`call_id = %CallId(&msg)`): what an
/// operator greps for to follow a message through the log. Written as
/// lossy text without an allocation; empty when the header is missing or
/// unusable.
pub struct CallId<'a>(pub &'a wisp_sip::Message);

impl std::fmt::Display for CallId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for chunk in self.0.call_id().unwrap_or_default().utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }
}

/// Log lines that an attacker can make the router write once per message
/// (a 503 per refused INVITE, a 500 per trapping request, a failed send per
/// datagram) are limited per call site: the first [`LogLimit::BURST`] of
/// each [`LogLimit::INTERVAL_MS`] are written, the rest counted, and the
/// first line after the interval says how many were left out
/// (`left_out=N`). A flood then writes a few lines every 10 s, not one per
/// message, and nothing is silently lost from the count.
///
/// One `LogLimit` per call site, in a `static` (see [`log_limited!`]).
pub struct LogLimit {
    /// Start of the current interval, ms since [`LogLimit::epoch`].
    window_start: std::sync::atomic::AtomicU64,
    /// Events in the current interval.
    count: std::sync::atomic::AtomicU64,
    /// Events not written since the last written one.
    left_out: std::sync::atomic::AtomicU64,
}

impl Default for LogLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl LogLimit {
    /// Lines written per call site and interval before the rest are counted.
    pub const BURST: u64 = 5;
    pub const INTERVAL_MS: u64 = 10_000;

    pub const fn new() -> LogLimit {
        use std::sync::atomic::AtomicU64;
        LogLimit {
            window_start: AtomicU64::new(0),
            count: AtomicU64::new(0),
            left_out: AtomicU64::new(0),
        }
    }

    fn epoch() -> std::time::Instant {
        static EPOCH: std::sync::LazyLock<std::time::Instant> =
            std::sync::LazyLock::new(std::time::Instant::now);
        *EPOCH
    }

    /// Whether to write this event now: `Some(n)` with the number of events
    /// left out since the last one written, `None` to count it instead.
    pub fn admit(&self) -> Option<u64> {
        let now = Self::epoch().elapsed().as_millis() as u64 + Self::INTERVAL_MS;
        self.admit_at(now)
    }

    /// [`admit`](Self::admit) at `now_ms` (tests drive the time).
    pub fn admit_at(&self, now_ms: u64) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let start = self.window_start.load(Relaxed);
        if now_ms.saturating_sub(start) >= Self::INTERVAL_MS
            && self
                .window_start
                .compare_exchange(start, now_ms, Relaxed, Relaxed)
                .is_ok()
        {
            self.count.store(1, Relaxed);
            return Some(self.left_out.swap(0, Relaxed));
        }
        if self.count.fetch_add(1, Relaxed) < Self::BURST {
            Some(self.left_out.swap(0, Relaxed))
        } else {
            self.left_out.fetch_add(1, Relaxed);
            None
        }
    }
}

/// `tracing::<level>!(...)` limited per call site by a [`LogLimit`]:
/// `log_limited!(warn, dest = %d, "udp send failed: {e}")`. A line after
/// some were left out carries `left_out = N`.
#[macro_export]
macro_rules! log_limited {
    ($level:ident, $($arg:tt)+) => {{
        static LIMIT: $crate::util::LogLimit = $crate::util::LogLimit::new();
        match LIMIT.admit() {
            Some(0) => tracing::$level!($($arg)+),
            Some(left_out) => tracing::$level!(left_out, $($arg)+),
            None => {}
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::LogLimit;

    #[test]
    fn a_flood_writes_a_burst_per_interval_and_then_says_how_many_were_left_out() {
        let limit = LogLimit::new();
        let t0 = LogLimit::INTERVAL_MS;
        let written: Vec<_> = (0..1000).filter_map(|i| limit.admit_at(t0 + i)).collect();
        assert_eq!(
            written,
            vec![0; LogLimit::BURST as usize],
            "a burst, then silence"
        );
        // The next interval: its first line carries the count.
        let next = t0 + LogLimit::INTERVAL_MS;
        assert_eq!(limit.admit_at(next), Some(1000 - LogLimit::BURST));
        assert_eq!(limit.admit_at(next + 1), Some(0));
        // A quiet site writes every event.
        let quiet = LogLimit::new();
        for i in 0..3 {
            assert_eq!(quiet.admit_at(t0 + i * LogLimit::INTERVAL_MS), Some(0));
        }
    }
}
