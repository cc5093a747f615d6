//! `[subscriber]`: the subscriber directory that digest authentication
//! checks (`wisp ctl user|acl`). Its rows live in the user location
//! database (`usrloc.db_path`), in memory only when `usrloc.db_mode = 0`.

use serde::Deserialize;

use super::{Invalid, KeyPath};

/// `[subscriber]`: what the subscriber table keeps, and how many rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubscriberConfig {
    /// Store each plain password next to its HA1s (Kamailio's
    /// `calculate_ha1`): HA1s are then computed from it, for the realm as
    /// the client spells it, at the cost of readable passwords in the
    /// database. Default false.
    pub store_passwords: bool,
    /// Most subscribers the directory holds in memory, 1..=100000000: a
    /// database with more is refused at start, and `wisp ctl user add`
    /// past it is refused. Default 1000000.
    pub max_entries: usize,
}

impl Default for SubscriberConfig {
    fn default() -> Self {
        SubscriberConfig {
            store_passwords: false,
            max_entries: 1_000_000,
        }
    }
}

impl SubscriberConfig {
    /// Rules serde does not check: the bound of `max_entries`.
    pub(super) fn check(&self) -> Result<(), Invalid> {
        if !(1..=100_000_000).contains(&self.max_entries) {
            return Err(Invalid::new(
                KeyPath::new(&["subscriber", "max_entries"]),
                "expected 1..=100000000",
            ));
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
    fn subscriber_section_defaults_keep_no_passwords_and_a_million_entries() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert!(!m.subscriber.store_passwords);
        assert_eq!(m.subscriber.max_entries, 1_000_000);
        let text = format!("{GOOD}\n[subscriber]\nstore_passwords = true\nmax_entries = 10\n");
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
        assert!(m.subscriber.store_passwords);
        assert_eq!(m.subscriber.max_entries, 10);
    }

    #[test]
    fn bad_subscriber_keys_are_named_with_their_line() {
        let text = format!("{GOOD}\n[subscriber]\nmax_entries = 0\n");
        let e = refused_at(&text, text.lines().count(), "subscriber.max_entries");
        assert!(e.contains("1..=100000000"), "{e}");
        let text = format!("{GOOD}\n[subscriber]\nstore_passwords = \"yes\"\n");
        refused_at(&text, text.lines().count(), "subscriber.store_passwords");
        let text = format!("{GOOD}\n[subscriber]\nmax_users = 5\n");
        let e = refused(&text);
        assert!(e.contains("key `subscriber.max_users`"), "{e}");
    }
}
