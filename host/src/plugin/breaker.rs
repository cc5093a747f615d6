//! Holding back a plugin that cannot make an instance.
//!
//! A failing request costs only itself: a call that traps (panic, deadline
//! overrun, memory or table cap) has its request answered 500 and its
//! instance thrown away, and the next request that finds the pool empty
//! makes a new one. A flood of requests that each make the plugin trap
//! therefore costs one instance per request (tens of microseconds), never
//! an innocent request's answer.
//!
//! What is held back is a plugin that cannot serve at all: when making an
//! instance fails (instantiation, or `init` refusing or trapping)
//! [`THRESHOLD`] times in a row, no new instance is tried for a pause that
//! doubles with each further failure, up to [`MAX_PAUSE`]; requests that
//! find no pooled instance meanwhile get their 500 at once instead of
//! running a failing `init` each. Any call that completes, and any instance
//! made, lifts it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Failed instance creations in a row before new ones are held back.
pub const THRESHOLD: u32 = 5;
/// The first pause; each further failure in a row doubles it.
pub const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause: a fixed build is in service within this after a reload
/// (a reload makes a new runtime with a fresh breaker anyway).
pub const MAX_PAUSE: Duration = Duration::from_secs(10);

/// What happened to one call or one attempt to make an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A call returned (with or without an error result).
    Completed,
    /// A new instance was made and its `init` accepted the params.
    Created,
    /// A call trapped: it cost its own request and its instance, nothing
    /// more. It neither counts towards a hold-back nor lifts one (the
    /// instance it ran in was made before whatever fails now).
    Trapped,
    /// No instance could be made: instantiation failed, or `init` refused
    /// or trapped.
    CreateFailed,
}

#[derive(Default)]
pub struct Breaker {
    /// Failed creations since the last completed call or instance made.
    in_a_row: AtomicU32,
    held_until: Mutex<Option<Instant>>,
}

impl Breaker {
    /// Note `event`. Returns the pause when it starts or lengthens one.
    /// The clock is read only when a failure needs it (not on every call).
    pub fn record(&self, event: Event, now: impl FnOnce() -> Instant) -> Option<Duration> {
        match event {
            Event::Completed | Event::Created => {
                // Read first: the hot path leaves the cache line shared.
                if self.in_a_row.load(Ordering::Relaxed) != 0 {
                    self.in_a_row.store(0, Ordering::Relaxed);
                }
                None
            }
            Event::Trapped => None,
            Event::CreateFailed => {
                let n = self.in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                if n < THRESHOLD {
                    return None;
                }
                let doublings = (n - THRESHOLD).min(16);
                let pause = FIRST_PAUSE.saturating_mul(1 << doublings).min(MAX_PAUSE);
                *crate::util::lock(&self.held_until) = Some(now() + pause);
                Some(pause)
            }
        }
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
    fn calls_that_trap_never_hold_back() {
        let b = Breaker::default();
        let now = Instant::now();
        // A flood of trapping requests, each in an instance made for it.
        for _ in 0..1000 {
            assert_eq!(b.record(Event::Trapped, || now), None);
            assert_eq!(b.record(Event::Created, || now), None);
        }
        assert_eq!(b.held_back(now), None);
        // Even with no instance made in between (the pool had them).
        for _ in 0..1000 {
            assert_eq!(b.record(Event::Trapped, || now), None);
        }
        assert_eq!(b.held_back(now), None);
    }

    #[test]
    fn occasional_creation_failures_never_hold_back() {
        let b = Breaker::default();
        let now = Instant::now();
        for lifted_by in [Event::Completed, Event::Created] {
            for _ in 0..100 {
                for _ in 0..THRESHOLD - 1 {
                    assert_eq!(b.record(Event::CreateFailed, || now), None);
                }
                b.record(lifted_by, || now);
            }
        }
        assert_eq!(b.held_back(now), None);
    }

    #[test]
    fn creation_failing_in_a_row_holds_back_with_a_doubling_pause() {
        let b = Breaker::default();
        let now = Instant::now();
        for _ in 0..THRESHOLD - 1 {
            assert_eq!(b.record(Event::CreateFailed, || now), None);
            // Traps between the failures neither count nor lift.
            assert_eq!(b.record(Event::Trapped, || now), None);
        }
        assert_eq!(b.held_back(now), None, "not yet");
        assert_eq!(b.record(Event::CreateFailed, || now), Some(FIRST_PAUSE));
        assert_eq!(b.held_back(now), Some(FIRST_PAUSE));
        b.record(Event::Trapped, || now);
        assert_eq!(
            b.held_back(now),
            Some(FIRST_PAUSE),
            "a trap does not lift it"
        );
        assert_eq!(b.held_back(now + FIRST_PAUSE), None, "the pause ends");
        // The probe after the pause fails too: twice as long.
        assert_eq!(
            b.record(Event::CreateFailed, || now + FIRST_PAUSE),
            Some(FIRST_PAUSE * 2)
        );
        for _ in 0..40 {
            b.record(Event::CreateFailed, || now);
        }
        assert_eq!(b.held_back(now), Some(MAX_PAUSE), "capped");
        b.record(Event::Completed, || now);
        assert_eq!(b.held_back(now), None, "one completed call lifts it");
        for _ in 0..THRESHOLD {
            b.record(Event::CreateFailed, || now);
        }
        assert!(b.held_back(now).is_some());
        b.record(Event::Created, || now);
        assert_eq!(b.held_back(now), None, "one instance made lifts it");
    }
}
