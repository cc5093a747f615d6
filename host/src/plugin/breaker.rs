//! Holding back a plugin that fails every call.
//!
//! A trap costs the instance it happened in; the next request makes a new
//! one. That is right for a plugin that fails on one odd message, and wrong
//! for one that fails on all of them (a broken build, `init` refusing on
//! every new instance): it would compile-and-crash in a tight loop at the
//! message rate. After [`THRESHOLD`] failures in a row, no new instance is
//! made for a pause that doubles with each further failure, up to
//! [`MAX_PAUSE`]; requests meanwhile get their 500 at once. Any call that
//! completes resets the count, so a plugin that fails on some messages and
//! not others is never held back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Failures in a row before new instances are held back.
pub const THRESHOLD: u32 = 5;
/// The first pause; each further failure in a row doubles it.
pub const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause: a fixed build is in service within this after a reload
/// (a reload makes a new runtime with a fresh breaker anyway).
pub const MAX_PAUSE: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Breaker {
    in_a_row: AtomicU32,
    held_until: Mutex<Option<Instant>>,
}

impl Breaker {
    /// A call completed (with or without an error result).
    pub fn success(&self) {
        // Read first: the hot path leaves the cache line shared.
        if self.in_a_row.load(Ordering::Relaxed) != 0 {
            self.in_a_row.store(0, Ordering::Relaxed);
        }
    }

    /// A call trapped or an instance could not be made. Returns the pause
    /// when this failure starts or lengthens one.
    pub fn failure(&self, now: Instant) -> Option<Duration> {
        let n = self.in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        if n < THRESHOLD {
            return None;
        }
        let doublings = (n - THRESHOLD).min(16);
        let pause = FIRST_PAUSE.saturating_mul(1 << doublings).min(MAX_PAUSE);
        *crate::util::lock(&self.held_until) = Some(now + pause);
        Some(pause)
    }

    /// How long new instances are still held back, if they are.
    pub fn held_back(&self, now: Instant) -> Option<Duration> {
        if self.in_a_row.load(Ordering::Relaxed) < THRESHOLD {
            return None;
        }
        let until = (*crate::util::lock(&self.held_until))?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occasional_failures_never_hold_back() {
        let b = Breaker::default();
        let now = Instant::now();
        for _ in 0..100 {
            for _ in 0..THRESHOLD - 1 {
                assert_eq!(b.failure(now), None);
            }
            b.success();
        }
        assert_eq!(b.held_back(now), None);
    }

    #[test]
    fn failures_in_a_row_hold_back_with_a_doubling_pause() {
        let b = Breaker::default();
        let now = Instant::now();
        for _ in 0..THRESHOLD - 1 {
            assert_eq!(b.failure(now), None);
        }
        assert_eq!(b.failure(now), Some(FIRST_PAUSE));
        assert_eq!(b.held_back(now), Some(FIRST_PAUSE));
        assert_eq!(b.held_back(now + FIRST_PAUSE), None, "the pause ends");
        // The probe after the pause fails too: twice as long.
        assert_eq!(b.failure(now + FIRST_PAUSE), Some(FIRST_PAUSE * 2));
        for _ in 0..40 {
            b.failure(now);
        }
        assert_eq!(b.held_back(now), Some(MAX_PAUSE), "capped");
        b.success();
        assert_eq!(b.held_back(now), None, "one success lifts it");
    }
}
