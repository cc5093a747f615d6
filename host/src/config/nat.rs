//! `[nat]`: keepalives for registered contacts behind a NAT (Kamailio's
//! nathelper `natping_interval`, `ping_nated_only`, `sipping_from`,
//! `sipping_method`, and the keepalive module's failure count).

use serde::Deserialize;

use super::{Invalid, KeyPath};

/// `[nat]`. Keepalives are off while `keepalive_interval_s` is 0.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct NatConfig {
    /// Seconds between two keepalives of one binding, 0 (default: off) or
    /// 1..=3600 (Kamailio `natping_interval`). The pings of one round are
    /// spread evenly over the interval.
    pub keepalive_interval_s: u64,
    /// `"OPTIONS"` (default) or `"NOTIFY"` (Kamailio `sipping_method`): the
    /// request sent to a UDP contact. A TCP or TLS contact gets a CRLF
    /// keepalive (RFC 5626 §3.5.1) on its connection; a WebSocket one none.
    pub keepalive_method: String,
    /// The From URI of the pings (Kamailio `sipping_from`).
    pub from: String,
    /// Ping only the bindings flagged NATed (saved after
    /// `fix-nated-register`); default true (Kamailio `ping_nated_only`).
    pub ping_nated_only: bool,
    /// Consecutive unanswered pings after which a binding is removed; 0
    /// (default) never removes (the keepalive module's failure count).
    pub keepalive_max_failures: u32,
}

impl Default for NatConfig {
    fn default() -> Self {
        NatConfig {
            keepalive_interval_s: 0,
            keepalive_method: "OPTIONS".into(),
            from: "sip:pinger@localhost".into(),
            ping_nated_only: true,
            keepalive_max_failures: 0,
        }
    }
}

impl NatConfig {
    /// Whether keepalives are sent at all.
    pub fn keepalives(&self) -> bool {
        self.keepalive_interval_s > 0
    }

    pub(super) fn check(&self) -> Result<(), Invalid> {
        let key = |k| KeyPath::new(&["nat", k]);
        if self.keepalive_interval_s > 3600 {
            return Err(Invalid::new(
                key("keepalive_interval_s"),
                "expected 0 (off) or 1..=3600",
            ));
        }
        if !["OPTIONS", "NOTIFY"].contains(&self.keepalive_method.as_str()) {
            return Err(Invalid::new(
                key("keepalive_method"),
                "expected \"OPTIONS\" or \"NOTIFY\"",
            ));
        }
        let sip = self.from.starts_with("sip:") || self.from.starts_with("sips:");
        if !sip || wisp_sip::Uri::parse(self.from.as_bytes()).is_err() {
            return Err(Invalid::new(
                key("from"),
                "expected a SIP URI (\"sip:pinger@example.com\")",
            ));
        }
        if self.keepalive_max_failures > 1000 {
            return Err(Invalid::new(
                key("keepalive_max_failures"),
                "expected 0 (never remove) or 1..=1000",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{GOOD, refused_at};
    use crate::config::{Manifest, NatConfig};
    use std::path::Path;

    #[test]
    fn keepalives_are_off_by_default_and_read_from_the_manifest() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert_eq!(m.nat, NatConfig::default());
        assert!(!m.nat.keepalives());
        let text = format!(
            "{GOOD}\n[nat]\nkeepalive_interval_s = 20\nfrom = \"sip:ka@example.com\"\n\
             ping_nated_only = false\nkeepalive_max_failures = 3\n"
        );
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
        assert!(m.nat.keepalives());
        assert_eq!(m.nat.keepalive_interval_s, 20);
        assert_eq!(m.nat.from, "sip:ka@example.com");
        assert!(!m.nat.ping_nated_only);
        assert_eq!(m.nat.keepalive_max_failures, 3);
    }

    #[test]
    fn a_bad_key_is_named_with_its_line() {
        let base = format!("{GOOD}\n[nat]\n");
        let at = base.lines().count() + 1;
        for (line, key) in [
            ("keepalive_interval_s = 7200", "nat.keepalive_interval_s"),
            ("keepalive_method = \"INFO\"", "nat.keepalive_method"),
            ("from = \"pinger\"", "nat.from"),
            (
                "keepalive_max_failures = 5000",
                "nat.keepalive_max_failures",
            ),
            ("keepalive_interval = 5", "nat.keepalive_interval"),
        ] {
            refused_at(&format!("{base}{line}\n"), at, key);
        }
    }
}
