//! User location (Kamailio `usrloc`): Contact bindings per AOR, per table,
//! with expiry. In memory; persistence comes with the registrar issue.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::UsrlocConfig;

/// One Contact bound to an AOR (RFC 3261 §10.3).
#[derive(Debug, Clone)]
pub struct ContactBinding {
    /// The Contact URI as registered.
    pub contact: String,
    pub q: f32,
    pub expires_at: Instant,
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from, as a URI (`sip:ip:port;transport=tcp`),
    /// when it differs from the Contact: how to reach a contact behind NAT.
    pub received: Option<String>,
    /// When this binding was last written (for freshness ordering).
    pub updated: Instant,
}

impl ContactBinding {
    /// Seconds until expiry, 0 when expired.
    pub fn remaining(&self, now: Instant) -> u32 {
        self.expires_at.saturating_duration_since(now).as_secs() as u32
    }
}

/// Every table named in the manifest.
pub struct Usrloc {
    tables: HashMap<String, Mutex<HashMap<String, Vec<ContactBinding>>>>,
    pub config: UsrlocConfig,
}

/// `save`/`lookup` named a table the manifest does not declare.
#[derive(Debug, thiserror::Error)]
#[error("no usrloc table {0:?} (declare it in [usrloc] tables)")]
pub struct UnknownTable(pub String);

impl Usrloc {
    pub fn new(config: UsrlocConfig) -> Self {
        let tables = config
            .tables
            .iter()
            .map(|t| (t.clone(), Mutex::new(HashMap::new())))
            .collect();
        Usrloc { tables, config }
    }

    /// Run `f` on the bindings map of `table`.
    pub fn with_table<R>(
        &self,
        table: &str,
        f: impl FnOnce(&mut HashMap<String, Vec<ContactBinding>>) -> R,
    ) -> Result<R, UnknownTable> {
        let t = self
            .tables
            .get(table)
            .ok_or_else(|| UnknownTable(table.to_owned()))?;
        // A panic while holding the lock cannot leave a binding half-written
        // (each update replaces whole values), so a poisoned lock is usable.
        let mut guard = t.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&mut guard))
    }

    /// Current bindings of `aor`, best first: highest q, then most recently updated.
    pub fn current(
        &self,
        table: &str,
        aor: &str,
        now: Instant,
    ) -> Result<Vec<ContactBinding>, UnknownTable> {
        self.with_table(table, |t| {
            let mut v: Vec<ContactBinding> = t
                .get(aor)
                .map(|b| b.iter().filter(|b| b.expires_at > now).cloned().collect())
                .unwrap_or_default();
            v.sort_by(|a, b| b.q.total_cmp(&a.q).then(b.updated.cmp(&a.updated)));
            v
        })
    }

    /// Drop expired bindings (and AORs left without any).
    pub fn purge_expired(&self, now: Instant) -> usize {
        let mut removed = 0;
        for t in self.tables.values() {
            let mut t = t.lock().unwrap_or_else(|p| p.into_inner());
            t.retain(|_, bindings| {
                let before = bindings.len();
                bindings.retain(|b| b.expires_at > now);
                removed += before - bindings.len();
                !bindings.is_empty()
            });
        }
        removed
    }

    /// Clamp a requested expiry into the manifest's bounds (0 stays 0).
    pub fn clamp_expires(&self, requested: u32) -> Duration {
        let secs = if requested == 0 {
            0
        } else {
            requested.min(self.config.max_expires)
        };
        Duration::from_secs(secs as u64)
    }
}
