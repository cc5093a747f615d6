//! `[acc]`: accounting (Kamailio's `acc` module parameters).

use serde::Deserialize;

use super::{Invalid, KeyPath};

/// `[acc]`: which transactions produce an accounting record.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccConfig {
    /// A transaction whose request carries this flag (0..=63, `setflag`)
    /// produces a record when its final reply goes out (Kamailio
    /// `log_flag`); unset: none.
    pub log_flag: Option<u8>,
    /// A transaction whose request carries this flag and whose final reply
    /// is 300 or more produces a missed-call record (Kamailio
    /// `log_missed_flag`); unset: none.
    pub log_missed_flag: Option<u8>,
    /// Records waiting to be written; past it they are counted
    /// (`wisp_acc_dropped_total`) and left out, never waited for.
    pub queue: usize,
    /// Records also go to the `acc` table of the user-location database
    /// when it has one (`usrloc.db_mode` 1, 2 or 3: SQLite at `db_path`, or
    /// PostgreSQL at `db_url`), so that they outlive the router; default
    /// true.
    pub db: bool,
}

impl Default for AccConfig {
    fn default() -> Self {
        AccConfig {
            log_flag: None,
            log_missed_flag: None,
            queue: 10_000,
            db: true,
        }
    }
}

impl AccConfig {
    pub(super) fn check(&self) -> Result<(), Invalid> {
        let key = |k| KeyPath::new(&["acc", k]);
        for (k, flag) in [
            ("log_flag", self.log_flag),
            ("log_missed_flag", self.log_missed_flag),
        ] {
            if flag.is_some_and(|f| f > 63) {
                return Err(Invalid::new(key(k), "a flag is 0..=63"));
            }
        }
        if !(1..=1_000_000).contains(&self.queue) {
            return Err(Invalid::new(key("queue"), "expected 1..=1000000"));
        }
        Ok(())
    }

    /// Whether anything is accounted at all.
    pub fn enabled(&self) -> bool {
        self.log_flag.is_some() || self.log_missed_flag.is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::tests::{GOOD, refused};
    use crate::config::*;

    #[test]
    fn acc_is_off_by_default_and_a_flag_past_63_names_its_line() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert!(!m.acc.enabled());
        let text = format!("{GOOD}\n[acc]\nlog_flag = 1\nlog_missed_flag = 2\n");
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
        assert_eq!((m.acc.log_flag, m.acc.log_missed_flag), (Some(1), Some(2)));
        let text = format!("{GOOD}\n[acc]\nlog_flag = 64\n");
        let e = refused(&text);
        assert!(e.contains("key `acc.log_flag`"), "{e}");
        assert!(e.contains(&format!(":{}:", text.lines().count())), "{e}");
        let text = format!("{GOOD}\n[acc]\nqueue = 0\n");
        assert!(refused(&text).contains("key `acc.queue`"));
    }
}
