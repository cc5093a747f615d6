//! Per-source flood detection (Kamailio `pike`): each source IP address has
//! a token bucket of `reqs_density_per_unit` requests refilled over
//! `sampling_time_unit` seconds (GCRA, by `governor`). `pike-check-req`
//! takes one token; a source with none left floods.
//!
//! Memory is bounded: [`Pike::sweep`] (run every unit by the router)
//! forgets sources whose bucket is full again, and past `max_sources`
//! addresses a new one is not tracked (it passes) until a sweep makes room,
//! so a flood from spoofed addresses costs at most `max_sources` entries.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::config::PikeConfig;
use crate::log_limited;

type Limiter<C> =
    RateLimiter<IpAddr, DashMapStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The per-source buckets, shared by every worker and plugin.
pub struct Pike<C: Clock = DefaultClock> {
    limiter: Limiter<C>,
    max_sources: usize,
    unit: Duration,
    /// Sources tracked when last counted. Counting reads every shard of the
    /// map, so it is done every [`RECOUNT`] checks (and each sweep), and on
    /// every check only when the table may be within [`RECOUNT`] of
    /// `max_sources`: between two counts at most that many can be added.
    counted: AtomicUsize,
    checks: AtomicU32,
}

/// Checks between two counts of the tracked sources.
const RECOUNT: u32 = 64;

impl Pike {
    pub fn new(config: &PikeConfig) -> Pike {
        Pike::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock> Pike<C> {
    /// Buckets on `clock` (a manual clock in tests).
    pub fn with_clock(config: &PikeConfig, clock: C) -> Pike<C> {
        let burst = NonZeroU32::new(config.reqs_density_per_unit).unwrap_or(NonZeroU32::MIN);
        let unit = Duration::from_secs(u64::from(config.sampling_time_unit.max(1)));
        // One token back every unit / density; the config check keeps both
        // non-zero, so the period is too (at worst 1 µs per token).
        let period = (unit / burst.get()).max(Duration::from_micros(1));
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(burst))
            .allow_burst(burst);
        Pike {
            limiter: RateLimiter::dashmap_with_clock(quota, clock),
            max_sources: config.max_sources,
            unit,
            counted: AtomicUsize::new(0),
            checks: AtomicU32::new(0),
        }
    }

    /// Count one request from `ip` (Kamailio `pike_check_req`): false when
    /// `ip` is over its rate, true otherwise.
    pub fn check(&self, ip: IpAddr) -> bool {
        let nth = self.checks.fetch_add(1, Ordering::Relaxed);
        let near = self.counted.load(Ordering::Relaxed) + RECOUNT as usize >= self.max_sources;
        if (near || nth.is_multiple_of(RECOUNT)) && self.recount() >= self.max_sources {
            self.limiter.retain_recent();
            if self.recount() >= self.max_sources {
                log_limited!(
                    warn,
                    max_sources = self.max_sources,
                    "pike: tracking as many sources as [pike] max_sources allows; new ones pass uncounted"
                );
                return true;
            }
        }
        self.limiter.check_key(&ip).is_ok()
    }

    /// Count the tracked sources.
    fn recount(&self) -> usize {
        let n = self.limiter.len();
        self.counted.store(n, Ordering::Relaxed);
        n
    }

    /// Forget sources whose bucket is full again; returns how many remain.
    pub fn sweep(&self) -> usize {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        self.recount()
    }

    /// `sampling_time_unit`: how often [`Pike::sweep`] should run.
    pub fn unit(&self) -> Duration {
        self.unit
    }

    /// Sources currently tracked.
    pub fn sources(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;

    fn pike(
        density: u32,
        unit: u32,
        max_sources: usize,
    ) -> (Pike<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let config = PikeConfig {
            sampling_time_unit: unit,
            reqs_density_per_unit: density,
            max_sources,
        };
        (Pike::with_clock(&config, clock.clone()), clock)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn a_source_over_its_density_floods_and_others_do_not() {
        let (pike, _clock) = pike(30, 2, 100);
        let attacker = ip("192.0.2.7");
        let passed = (0..100).filter(|_| pike.check(attacker)).count();
        assert_eq!(passed, 30, "the burst is reqs_density_per_unit");
        assert!(pike.check(ip("192.0.2.8")), "another source is unaffected");
        assert!(pike.check(ip("2001:db8::1")));
    }

    #[test]
    fn a_flooding_source_recovers_at_the_configured_rate() {
        let (pike, clock) = pike(30, 2, 100);
        let src = ip("192.0.2.7");
        while pike.check(src) {}
        // 30 per 2 s: one request back every 66.7 ms.
        clock.advance(Duration::from_millis(60));
        assert!(!pike.check(src));
        clock.advance(Duration::from_millis(10));
        assert!(pike.check(src));
        assert!(!pike.check(src));
        clock.advance(Duration::from_secs(2));
        assert_eq!((0..100).filter(|_| pike.check(src)).count(), 30);
    }

    #[test]
    fn quiet_sources_are_forgotten_and_the_table_is_bounded() {
        let (pike, clock) = pike(5, 1, 3);
        for last in 1..=3 {
            assert!(pike.check(ip(&format!("192.0.2.{last}"))));
        }
        assert_eq!(pike.sources(), 3);
        // Full, and every source still recent: a fourth passes uncounted.
        let fourth = ip("192.0.2.4");
        assert!((0..20).all(|_| pike.check(fourth)));
        assert_eq!(pike.sources(), 3);
        clock.advance(Duration::from_secs(2));
        assert_eq!(pike.sweep(), 0, "full buckets are forgotten");
        assert_eq!((0..20).filter(|_| pike.check(fourth)).count(), 5);
    }

    #[test]
    fn far_from_the_bound_the_table_is_counted_once_every_recount_checks() {
        let (pike, _clock) = pike(5, 1, 10_000);
        for i in 0..(3 * RECOUNT) {
            pike.check(ip(&format!("10.0.{}.{}", i / 256, i % 256)));
        }
        // Counted at the first check and at each RECOUNT-th: the last count
        // saw the sources added before it, not the ones after.
        assert_eq!(pike.counted.load(Ordering::Relaxed), 2 * RECOUNT as usize);
        assert_eq!(pike.sources(), 3 * RECOUNT as usize);
    }
}
