//! Named tables shared by every plugin and instance (Kamailio `htable`):
//! integers and strings by key, each table bounded (`size`, least recently
//! used evicted first) and optionally expiring (`autoexpire` seconds after
//! an item was last set). The stock use is a ban list: `sht-set("ipban",
//! src_ip, 1)` when `pike-check-req` fails, `sht-get` in `REQINIT`.
//! Tables live in memory only and start empty.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use moka::ops::compute::{CompResult, Op};
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use crate::config::HtableConfig;

/// Longest key or string value, in bytes: a plugin storing message text
/// cannot make one item cost more than this.
pub const MAX_ITEM_BYTES: usize = 4096;

/// What an item holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShtValue {
    Int(i64),
    Str(Arc<str>),
}

/// Why a table operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HtableError {
    #[error("no [[htable]] named {0:?} in the manifest")]
    NoTable(String),
    #[error("keys and values are at most {MAX_ITEM_BYTES} bytes")]
    TooLong,
    #[error("{key:?} in {table:?} holds a string; sht-inc needs an integer")]
    NotAnInteger { table: String, key: String },
}

/// Every `[[htable]]` of the manifest, by name.
#[derive(Default)]
pub struct Htables {
    tables: HashMap<String, Cache<Arc<str>, ShtValue>>,
}

impl Htables {
    pub fn new(configs: &[HtableConfig]) -> Htables {
        let tables = configs
            .iter()
            .map(|c| {
                let mut builder = Cache::builder()
                    .max_capacity(c.size)
                    .eviction_policy(EvictionPolicy::lru());
                if c.autoexpire > 0 {
                    builder = builder.time_to_live(Duration::from_secs(c.autoexpire));
                }
                (c.name.clone(), builder.build())
            })
            .collect();
        Htables { tables }
    }

    fn table(&self, name: &str) -> Result<&Cache<Arc<str>, ShtValue>, HtableError> {
        self.tables
            .get(name)
            .ok_or_else(|| HtableError::NoTable(name.to_owned()))
    }

    /// The table names, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }

    /// `$sht(table=>key)`: the item, if it is there and not expired.
    pub fn get(&self, table: &str, key: &str) -> Result<Option<ShtValue>, HtableError> {
        Ok(self.table(table)?.get(key))
    }

    /// `$sht(table=>key) = value`: set the item, restarting its expiry.
    pub fn set(&self, table: &str, key: &str, value: ShtValue) -> Result<(), HtableError> {
        let t = self.table(table)?;
        check_len(key)?;
        if let ShtValue::Str(s) = &value {
            check_len(s)?;
        }
        t.insert(Arc::from(key), value);
        Ok(())
    }

    /// `$shtinc(table=>key)` by `delta`: atomically add to an integer item
    /// (a missing one counts from 0) and return the new value, restarting
    /// its expiry. Wraps at the ends of i64.
    pub fn inc(&self, table: &str, key: &str, delta: i64) -> Result<i64, HtableError> {
        let t = self.table(table)?;
        check_len(key)?;
        let result =
            t.entry(Arc::from(key))
                .and_compute_with(|old| match old.map(|e| e.into_value()) {
                    None => Op::Put(ShtValue::Int(delta)),
                    Some(ShtValue::Int(n)) => Op::Put(ShtValue::Int(n.wrapping_add(delta))),
                    Some(ShtValue::Str(_)) => Op::Nop,
                });
        match result {
            CompResult::Inserted(e) | CompResult::ReplacedWith(e) => match e.into_value() {
                ShtValue::Int(n) => Ok(n),
                ShtValue::Str(_) => Err(self.not_an_integer(table, key)),
            },
            _ => Err(self.not_an_integer(table, key)),
        }
    }

    fn not_an_integer(&self, table: &str, key: &str) -> HtableError {
        HtableError::NotAnInteger {
            table: table.to_owned(),
            key: key.to_owned(),
        }
    }

    /// `sht_rm(table, key)`: remove the item; true when it was there.
    pub fn remove(&self, table: &str, key: &str) -> Result<bool, HtableError> {
        Ok(self.table(table)?.remove(key).is_some())
    }

    /// Every live item of `table`, sorted by key (`wisp ctl htable dump`).
    pub fn dump(&self, table: &str) -> Result<Vec<(Arc<str>, ShtValue)>, HtableError> {
        let t = self.table(table)?;
        let mut items: Vec<_> = t.iter().map(|(k, v)| (Arc::clone(&*k), v)).collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(items)
    }
}

fn check_len(s: &str) -> Result<(), HtableError> {
    if s.len() > MAX_ITEM_BYTES {
        return Err(HtableError::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> Htables {
        Htables::new(&[
            HtableConfig {
                name: "ipban".into(),
                autoexpire: 1,
                size: 100,
            },
            HtableConfig {
                name: "small".into(),
                autoexpire: 0,
                size: 10,
            },
        ])
    }

    #[test]
    fn set_get_inc_remove() {
        let t = tables();
        assert_eq!(t.get("small", "a"), Ok(None));
        t.set("small", "a", ShtValue::Str("x".into())).expect("set");
        assert_eq!(t.get("small", "a"), Ok(Some(ShtValue::Str("x".into()))));
        assert_eq!(
            t.inc("small", "n", 5),
            Ok(5),
            "a missing item counts from 0"
        );
        assert_eq!(t.inc("small", "n", -2), Ok(3));
        assert_eq!(t.get("small", "n"), Ok(Some(ShtValue::Int(3))));
        assert!(matches!(
            t.inc("small", "a", 1),
            Err(HtableError::NotAnInteger { .. })
        ));
        assert_eq!(t.remove("small", "a"), Ok(true));
        assert_eq!(t.remove("small", "a"), Ok(false));
        assert_eq!(t.get("small", "a"), Ok(None));
    }

    #[test]
    fn an_unknown_table_and_an_oversized_item_are_errors() {
        let t = tables();
        assert_eq!(t.get("nope", "k"), Err(HtableError::NoTable("nope".into())));
        let long = "k".repeat(MAX_ITEM_BYTES + 1);
        assert_eq!(
            t.set("small", &long, ShtValue::Int(1)),
            Err(HtableError::TooLong)
        );
        assert_eq!(
            t.set("small", "k", ShtValue::Str(long.into())),
            Err(HtableError::TooLong)
        );
    }

    #[test]
    fn a_table_holds_at_most_its_size() {
        let t = tables();
        for i in 0..1000 {
            t.set("small", &format!("k{i}"), ShtValue::Int(i))
                .expect("set");
        }
        t.tables["small"].run_pending_tasks();
        assert!(t.tables["small"].entry_count() <= 10);
        assert_eq!(
            t.get("small", "k999"),
            Ok(Some(ShtValue::Int(999))),
            "the newest item is kept"
        );
    }

    #[test]
    fn items_expire_autoexpire_seconds_after_their_last_set() {
        let t = tables();
        t.set("ipban", "192.0.2.7", ShtValue::Int(1)).expect("set");
        assert_eq!(t.dump("ipban").map(|d| d.len()), Ok(1));
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(t.get("ipban", "192.0.2.7"), Ok(None));
        assert_eq!(t.dump("ipban").map(|d| d.len()), Ok(0));
    }
}
