//! `[usrloc]`: registrar tables, expiry bounds and persistence (Kamailio
//! `usrloc` and `registrar` module parameters).

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Unexpected, Visitor};

use super::{Invalid, KeyPath};

/// `[usrloc]`: registrar tables and expiry bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsrlocConfig {
    /// `server.server_id`, copied here when the manifest is read: the owner
    /// each binding saved by this router records.
    #[serde(skip)]
    pub server_id: u32,
    /// Default `["location", "aliases"]`; at least one.
    pub tables: Vec<String>,
    /// Default false.
    pub use_domain: bool,
    /// Seconds, when a Contact gives none; default 3600.
    pub default_expires: u32,
    /// Seconds, default 60; at most `max_expires`.
    pub min_expires: u32,
    /// Seconds, default 86400.
    pub max_expires: u32,
    /// A Contact asking for less than `min_expires`: `raise` it to the
    /// minimum (Kamailio's default) or `reject` the REGISTER with 423.
    pub brief_expires: BriefExpires,
    /// `lookup` adds the AOR's other bindings as branches (Kamailio
    /// registrar `append_branches`, default true); false keeps only the best
    /// one (seed 003, "Using Only Latest User's Contact", with
    /// `desc_time_order`).
    pub append_branches: bool,
    /// Order an AOR's bindings newest first, whatever their q (Kamailio
    /// usrloc `desc_time_order`); by default highest q first, newest first
    /// among equal q.
    pub desc_time_order: bool,
    /// Persistence (Kamailio usrloc `db_mode`), written as Kamailio's
    /// integers: 0 memory only (default), 1 write-through, 2 write-back,
    /// 3 shared by several routers (needs `db_url`).
    pub db_mode: DbMode,
    /// Most bindings one AOR may have; a REGISTER that would exceed it is
    /// refused with 503 (Kamailio registrar `max_contacts`). 0 = no limit.
    pub max_contacts: usize,
    /// The SQLite database, relative to the manifest's directory; default
    /// `var/wisp.db`.
    pub db_path: PathBuf,
    /// A PostgreSQL database instead of `db_path`, as a libpq-style URL
    /// (`postgres://user:password@host:5432/db`, or `postgres://user@/db?host=/run/postgresql`
    /// for a socket directory): user location and subscribers live there,
    /// and several routers may share it (`db_mode = 3`). Needs `db_mode` 1,
    /// 2 or 3.
    pub db_url: Option<String>,
    /// Seconds between write-back commits (`db_mode = 2`), 1..=86400;
    /// default 60.
    pub timer_interval: u64,
    /// MiB the AORs of one table may hold, 1..=1048576; default 512. Each
    /// AOR is reckoned at [`AOR_BUDGET_BYTES`] (measured: 0.6–0.7 KB for an
    /// AOR with one contact), so a table holds at most `memory_mb * 1024`
    /// AORs; a REGISTER that would add one more is answered `503` with
    /// `Retry-After`, and a registration flood cannot grow the router
    /// without bound. Existing AORs are still updated.
    pub memory_mb: usize,
}

/// What one AOR is reckoned to hold against `usrloc.memory_mb`.
pub const AOR_BUDGET_BYTES: usize = 1024;

impl Default for UsrlocConfig {
    fn default() -> Self {
        UsrlocConfig {
            server_id: 0,
            tables: vec!["location".into(), "aliases".into()],
            use_domain: false,
            default_expires: 3600,
            min_expires: 60,
            max_expires: 86400,
            brief_expires: BriefExpires::default(),
            append_branches: true,
            desc_time_order: false,
            db_mode: DbMode::default(),
            max_contacts: 0,
            db_path: PathBuf::from("var/wisp.db"),
            db_url: None,
            timer_interval: 60,
            memory_mb: 512,
        }
    }
}

impl UsrlocConfig {
    /// The most AORs one table may hold (`memory_mb` over
    /// [`AOR_BUDGET_BYTES`]).
    pub fn max_aors(&self) -> usize {
        self.memory_mb.saturating_mul(1 << 20) / AOR_BUDGET_BYTES
    }

    /// Rules serde does not check: bounds and the expiry order.
    pub(super) fn check(&self) -> Result<(), Invalid> {
        let key = |k| KeyPath::new(&["usrloc", k]);
        if !(1..=1 << 20).contains(&self.memory_mb) {
            return Err(Invalid::new(
                key("memory_mb"),
                "expected MiB between 1 and 1048576",
            ));
        }
        if self.min_expires > self.max_expires {
            return Err(Invalid::new(
                key("min_expires"),
                "must not exceed usrloc.max_expires",
            ));
        }
        if !(1..=86_400).contains(&self.timer_interval) {
            return Err(Invalid::new(
                key("timer_interval"),
                "expected 1..=86400 seconds",
            ));
        }
        if self.tables.is_empty() {
            return Err(Invalid::new(
                key("tables"),
                "at least one table is required",
            ));
        }
        if let Some(url) = &self.db_url {
            parse_db_url(url).map_err(|e| Invalid::new(key("db_url"), e))?;
            if self.db_mode == DbMode::MemoryOnly {
                return Err(Invalid::new(
                    key("db_url"),
                    "a database needs usrloc.db_mode 1, 2 or 3 (it is 0, memory only)",
                ));
            }
        } else if self.db_mode == DbMode::Shared {
            return Err(Invalid::new(
                key("db_mode"),
                "3 (shared) needs usrloc.db_url, the PostgreSQL database the routers share",
            ));
        }
        Ok(())
    }
}

/// A `connect_timeout` when the URL gives none: a database that does not
/// answer fails the call instead of hanging the thread that made it.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Parse `usrloc.db_url`, a libpq-style URL (`postgres://user@host/db`,
/// `?host=/socket/dir`); the error says what is wrong with it.
pub fn parse_db_url(url: &str) -> Result<postgres::Config, String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("expected a postgres:// or postgresql:// URL".into());
    }
    let mut config: postgres::Config = url
        .parse()
        .map_err(|e: postgres::Error| format!("not a PostgreSQL URL: {e}"))?;
    if config.get_hosts().is_empty() {
        return Err("the URL names no host (a name, an address or ?host=/socket/dir)".into());
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(config)
}

/// What `db_mode` selects. In the manifest it is Kamailio's integer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DbMode {
    /// 0: bindings live in memory only.
    #[default]
    MemoryOnly,
    /// 1: a REGISTER is answered after its binding is committed.
    WriteThrough,
    /// 2: changes are committed every `timer_interval` seconds.
    WriteBack,
    /// 3: several routers share one PostgreSQL database (`db_url`). Written
    /// through as with 1; each router's memory is loaded at start and kept
    /// current from the database's change notifications, so a binding
    /// saved through one router is found by the others.
    Shared,
}

/// The values `db_mode` takes, for error messages.
const DB_MODES: &str = "0 (memory only), 1 (write-through), 2 (write-back) or 3 (shared)";

impl TryFrom<u8> for DbMode {
    type Error = u8;
    /// Kamailio's `db_mode` number; other numbers are given back.
    fn try_from(n: u8) -> Result<Self, u8> {
        match n {
            0 => Ok(DbMode::MemoryOnly),
            1 => Ok(DbMode::WriteThrough),
            2 => Ok(DbMode::WriteBack),
            3 => Ok(DbMode::Shared),
            other => Err(other),
        }
    }
}

impl<'de> Deserialize<'de> for DbMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DbModeNumber;
        impl Visitor<'_> for DbModeNumber {
            type Value = DbMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DB_MODES)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<DbMode, E> {
                u8::try_from(n)
                    .ok()
                    .and_then(|n| DbMode::try_from(n).ok())
                    .ok_or_else(|| E::invalid_value(Unexpected::Signed(n), &self))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<DbMode, E> {
                u8::try_from(n)
                    .ok()
                    .and_then(|n| DbMode::try_from(n).ok())
                    .ok_or_else(|| E::invalid_value(Unexpected::Unsigned(n), &self))
            }
        }
        d.deserialize_i64(DbModeNumber)
    }
}

/// What `save` does with an expiry below `min_expires`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BriefExpires {
    /// Store the binding with `min_expires` (Kamailio registrar).
    #[default]
    Raise,
    /// Answer 423 Interval Too Brief with Min-Expires (RFC 3261 §10.3 step 7).
    Reject,
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::config::tests::{GOOD, refused, refused_at};
    use crate::config::*;

    #[test]
    fn persistence_keys_default_to_memory_only_and_db_mode_is_bounded() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert_eq!(m.usrloc.db_mode, DbMode::MemoryOnly);
        assert_eq!(m.usrloc.db_path, PathBuf::from("var/wisp.db"));
        assert_eq!(m.server.ctl_socket, PathBuf::from("var/wisp.ctl"));
        let text = format!("{GOOD}\n[usrloc]\ndb_mode = 4\n");
        let e = refused(&text);
        assert!(e.contains("key `usrloc.db_mode`"), "{e}");
        assert!(e.contains(&format!(":{}:", text.lines().count())), "{e}");
    }

    #[test]
    fn db_mode_takes_kamailio_integers() {
        for (n, mode) in [
            (0, DbMode::MemoryOnly),
            (1, DbMode::WriteThrough),
            (2, DbMode::WriteBack),
        ] {
            let text = format!("{GOOD}\n[usrloc]\ndb_mode = {n}\n");
            let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
            assert_eq!(m.usrloc.db_mode, mode);
        }
    }

    #[test]
    fn bad_db_mode_names_line_key_and_allowed_values() {
        for bad in ["4", "-1", "\"1\"", "\"write-back\""] {
            let text = format!("{GOOD}\n[usrloc]\nuse_domain = true\ndb_mode = {bad}\n");
            let e = refused(&text);
            let line = text.lines().count();
            assert!(
                e.starts_with(&format!("w.toml:{line}: key `usrloc.db_mode`: ")),
                "{bad}: {e}"
            );
            assert!(
                e.contains("0 (memory only), 1 (write-through), 2 (write-back) or 3 (shared)"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn db_url_selects_postgres_and_db_mode_3_needs_it() {
        let url = "postgres://wisp:pw@db.example:5433/wisp";
        let text = format!("{GOOD}\n[usrloc]\ndb_mode = 3\ndb_url = \"{url}\"\n");
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
        assert_eq!(m.usrloc.db_mode, DbMode::Shared);
        assert_eq!(m.usrloc.db_url.as_deref(), Some(url));
        let socket = "postgres://wisp@/wisp?host=/run/postgresql";
        let text = format!("{GOOD}\n[usrloc]\ndb_mode = 1\ndb_url = \"{socket}\"\n");
        assert!(Manifest::parse(&text, Path::new("w.toml")).is_ok());

        let text = format!("{GOOD}\n[usrloc]\ndb_mode = 3\n");
        let e = refused_at(&text, text.lines().count(), "usrloc.db_mode");
        assert!(e.contains("needs usrloc.db_url"), "{e}");
        for (bad, why) in [
            ("sqlite:///var/wisp.db", "postgres://"),
            ("postgres:///wisp", "no host"),
            ("postgres://wisp@db/wisp?bogus=1", "not a PostgreSQL URL"),
        ] {
            let text = format!("{GOOD}\n[usrloc]\ndb_mode = 3\ndb_url = \"{bad}\"\n");
            let e = refused_at(&text, text.lines().count(), "usrloc.db_url");
            assert!(e.contains(why), "{bad}: {e}");
        }
        let text = format!("{GOOD}\n[usrloc]\ndb_url = \"{url}\"\n");
        let e = refused_at(&text, text.lines().count(), "usrloc.db_url");
        assert!(e.contains("db_mode 1, 2 or 3"), "{e}");
    }

    #[test]
    fn brief_expires_is_raise_or_reject() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert_eq!(m.usrloc.brief_expires, BriefExpires::Raise);
        let text = format!("{GOOD}\n[usrloc]\nbrief_expires = \"reject\"\n");
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
        assert_eq!(m.usrloc.brief_expires, BriefExpires::Reject);
        let text = format!("{GOOD}\n[usrloc]\nbrief_expires = \"ignore\"\n");
        let e = refused(&text);
        assert!(e.contains("key `usrloc.brief_expires`"), "{e}");
        assert!(e.contains(&format!(":{}:", text.lines().count())), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let text = format!("{GOOD}\n[usrloc]\nmin_expires = \"soon\"\n");
        let e = refused(&text);
        assert!(e.contains("key `usrloc.min_expires`"), "{e}");
        assert!(e.contains(&format!(":{}:", text.lines().count())), "{e}");
    }

    #[test]
    fn cross_field_rule_names_key_and_line() {
        let text = format!("{GOOD}\n[usrloc]\nmin_expires = 100\nmax_expires = 10\n");
        let e = refused(&text);
        assert!(e.contains("key `usrloc.min_expires`"), "{e}");
        assert!(
            e.contains(&format!(":{}:", text.lines().count() - 1)),
            "{e}"
        );
    }
}
