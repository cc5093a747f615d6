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
}

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
        }
    }

    /// Count one request from `ip` (Kamailio `pike_check_req`): false when
    /// `ip` is over its rate, true otherwise.
    pub fn check(&self, ip: IpAddr) -> bool {
        if self.limiter.len() >= self.max_sources {
            self.limiter.retain_recent();
            if self.limiter.len() >= self.max_sources {
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

    /// Forget sources whose bucket is full again; returns how many remain.
    pub fn sweep(&self) -> usize {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        self.limiter.len()
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
}
