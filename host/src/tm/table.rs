//! The table of live transactions: by RFC 3261 §17.2.3 key (to absorb
//! retransmissions, ACKs and CANCELs) and by id (to match responses and
//! timers, which carry the id in our Via branch and in the timer entry).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::TxnHandle;
use super::transaction::Transaction;
use crate::util::lock;

#[derive(Default)]
struct Maps {
    by_key: HashMap<String, u64>,
    by_id: HashMap<u64, TxnHandle>,
}

/// Live transactions. One lock for both maps; nothing is done under it but
/// the map operation itself.
#[derive(Default)]
pub struct TxnTable {
    maps: Mutex<Maps>,
    /// Number of live transactions, readable without the lock.
    live: AtomicU64,
    next_id: AtomicU64,
}

impl TxnTable {
    /// Live transactions.
    pub fn len(&self) -> usize {
        self.live.load(Ordering::Relaxed) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An id no transaction of this router run had before.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn maps(&self) -> MutexGuard<'_, Maps> {
        lock(&self.maps)
    }

    /// Add a transaction under `key`. A request with the key of a live
    /// transaction that was not absorbed (raced in on another worker) takes
    /// the key; the older one lives on by id until its timers end it.
    pub fn insert(&self, key: String, id: u64, handle: TxnHandle) {
        let mut m = self.maps();
        if let Some(old) = m.by_key.insert(key, id) {
            tracing::debug!(old, "transaction key reused");
        }
        m.by_id.insert(id, handle);
        drop(m);
        self.live.fetch_add(1, Ordering::Relaxed);
    }

    pub fn by_key(&self, key: &str) -> Option<TxnHandle> {
        let m = self.maps();
        let id = m.by_key.get(key)?;
        m.by_id.get(id).cloned()
    }

    pub fn by_id(&self, id: u64) -> Option<TxnHandle> {
        self.maps().by_id.get(&id).cloned()
    }

    /// Take `txn` out of the table (once; later calls do nothing).
    pub fn forget(&self, txn: &mut Transaction) {
        if txn.ended {
            return;
        }
        txn.ended = true;
        let mut m = self.maps();
        if m.by_key.get(&txn.key) == Some(&txn.id) {
            m.by_key.remove(&txn.key);
        }
        if m.by_id.remove(&txn.id).is_some() {
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
