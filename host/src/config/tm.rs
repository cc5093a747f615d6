//! `[tm]`: transaction timers (RFC 3261 §17, Kamailio `tm` parameters) and
//! the bound on transaction memory.

use serde::Deserialize;

use super::{Invalid, KeyPath};

/// `[tm]`: transaction timers and the bound on transaction memory. Times
/// in milliseconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TmConfig {
    /// RTT estimate: first retransmission interval (timers A, E, G);
    /// default 500.
    pub t1_ms: u64,
    /// Cap of the retransmission interval of non-INVITE requests and INVITE
    /// responses; default 4000.
    pub t2_ms: u64,
    /// How long the network may still hold a message (timers I, K);
    /// default 5000.
    pub t4_ms: u64,
    /// Wait for a final response when no provisional came (Kamailio
    /// `fr_timer`); default 30000.
    pub fr_timer_ms: u64,
    /// Wait for the final response to an INVITE after a provisional
    /// (Kamailio `fr_inv_timer`, RFC 3261 timer C); default 120000.
    pub fr_inv_timer_ms: u64,
    /// How long a completed transaction stays to absorb retransmissions
    /// (Kamailio `wait_timer`, default 5000; RFC 3261 timers J and L are
    /// 64*T1 = 32 s, which holds ~6x more transactions under load for
    /// copies that, after the final response, rarely come).
    pub wait_timer_ms: u64,
    /// Memory the live transactions may hold, in MiB; past it new requests
    /// that need a transaction are answered 503 with Retry-After. Each
    /// transaction counts a fixed part plus its request twice (the copy it
    /// keeps and the copy it relays). Default 1024 (some 700,000 relayed
    /// OPTIONS, 70,000 transactions a second held for `wait_timer_ms`).
    pub memory_mb: u64,
    /// Optional cap on the number of live transactions besides the memory
    /// budget (Kamailio has none; unset by default).
    pub max_transactions: Option<usize>,
    /// The part of `memory_mb` the transactions of one source IP may hold,
    /// in percent (1..=100, default 50): a flood from one address is
    /// answered 503 while others still get transactions. 100 turns it off
    /// (a router behind one SBC, whose traffic all comes from one address).
    pub source_share_percent: u8,
}

impl Default for TmConfig {
    fn default() -> Self {
        TmConfig {
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            fr_timer_ms: 30_000,
            fr_inv_timer_ms: 120_000,
            wait_timer_ms: 5000,
            memory_mb: 1024,
            max_transactions: None,
            source_share_percent: 50,
        }
    }
}

impl TmConfig {
    /// Rules serde does not check: each timer's range, T2 >= T1.
    pub(super) fn check(&self) -> Result<(), Invalid> {
        let key = |k| KeyPath::new(&["tm", k]);
        for (k, v, lo, hi) in [
            ("t1_ms", self.t1_ms, 1, 60_000),
            ("t2_ms", self.t2_ms, 1, 600_000),
            ("t4_ms", self.t4_ms, 0, 600_000),
            ("fr_timer_ms", self.fr_timer_ms, 1, 3_600_000),
            ("fr_inv_timer_ms", self.fr_inv_timer_ms, 1, 3_600_000),
            ("wait_timer_ms", self.wait_timer_ms, 0, 600_000),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(Invalid::new(key(k), format!("expected {lo}..={hi} ms")));
            }
        }
        if self.t2_ms < self.t1_ms {
            return Err(Invalid::new(key("t2_ms"), "must not be less than tm.t1_ms"));
        }
        if self.max_transactions == Some(0) {
            return Err(Invalid::new(key("max_transactions"), "expected at least 1"));
        }
        if !(1..=100).contains(&self.source_share_percent) {
            return Err(Invalid::new(
                key("source_share_percent"),
                "expected a percentage between 1 and 100",
            ));
        }
        if !(1..=1 << 20).contains(&self.memory_mb) {
            return Err(Invalid::new(key("memory_mb"), "expected 1..=1048576 MiB"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::tests::{GOOD, refused, refused_at};
    use crate::config::*;

    #[test]
    fn tm_defaults_and_a_timer_out_of_range_names_its_line() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert_eq!((m.tm.t1_ms, m.tm.t2_ms), (500, 4000));
        assert_eq!((m.tm.memory_mb, m.tm.max_transactions), (1024, None));
        let text = format!("{GOOD}\n[tm]\nt1_ms = 0\nt2_ms = 4000\n");
        let e = refused_at(&text, text.lines().count() - 1, "tm.t1_ms");
        assert!(e.contains("1..=60000 ms"), "{e}");
    }

    #[test]
    fn a_memory_budget_of_zero_is_refused_with_its_line() {
        let text = format!("{GOOD}\n[tm]\nmemory_mb = 0\n");
        refused_at(&text, text.lines().count(), "tm.memory_mb");
        let text = format!("{GOOD}\n[tm]\nmax_transactions = 0\n");
        assert!(refused(&text).contains("tm.max_transactions"));
        let text = format!("{GOOD}\n[tm]\nsource_share_percent = 0\n");
        refused_at(&text, text.lines().count(), "tm.source_share_percent");
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert_eq!(m.tm.source_share_percent, 50);
    }

    #[test]
    fn t2_below_t1_is_refused() {
        let text = format!("{GOOD}\n[tm]\nt2_ms = 100\n");
        refused_at(&text, text.lines().count(), "tm.t2_ms");
    }
}
