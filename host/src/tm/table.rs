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
pub struct TxnTable {
    maps: Mutex<Maps>,
    /// Number of live transactions, readable without the lock.
    live: AtomicU64,
    /// Bytes the live transactions are charged with ([`charge_for`]).
    held: AtomicU64,
    /// `tm.memory_mb` in bytes.
    budget: u64,
    /// `tm.max_transactions`, or no cap.
    max: u64,
    next_id: AtomicU64,
}

/// What a transaction is charged against the memory budget, besides its
/// request: its state, one branch, its timers and its two table entries
/// (measured with `scripts/bench-tm-memory.sh`: 1.2–1.4 KB of RSS per relayed
/// OPTIONS of ~400 bytes).
pub const TXN_OVERHEAD: usize = 512;

/// The charge of a transaction whose request is `request_len` bytes: the
/// fixed part, the copy it keeps and the copy it relays.
pub fn charge_for(request_len: usize) -> usize {
    TXN_OVERHEAD + 2 * request_len
}

/// Why a transaction could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `tm.memory_mb` would be exceeded.
    Memory { budget_mb: u64 },
    /// `tm.max_transactions` are live.
    Count { max: u64 },
}

impl TxnTable {
    pub fn new(memory_mb: u64, max_transactions: Option<usize>) -> TxnTable {
        TxnTable {
            maps: Mutex::default(),
            live: AtomicU64::new(0),
            held: AtomicU64::new(0),
            budget: memory_mb.saturating_mul(1 << 20),
            max: max_transactions.map_or(u64::MAX, |m| m as u64),
            next_id: AtomicU64::new(0),
        }
    }

    /// Whether a transaction charged `charge` bytes fits now. Checked
    /// before it is built; two workers may both pass the check for the last
    /// room, which overshoots by one transaction at most per worker.
    pub fn room_for(&self, charge: usize) -> Result<(), Full> {
        if self.live.load(Ordering::Relaxed) >= self.max {
            return Err(Full::Count { max: self.max });
        }
        if self.held.load(Ordering::Relaxed) + charge as u64 > self.budget {
            return Err(Full::Memory {
                budget_mb: self.budget >> 20,
            });
        }
        Ok(())
    }

    /// Bytes the live transactions are charged with.
    pub fn held_bytes(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

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
    pub fn insert(&self, key: String, id: u64, handle: TxnHandle, charge: usize) {
        let mut m = self.maps();
        if let Some(old) = m.by_key.insert(key, id) {
            tracing::debug!(old, "transaction key reused");
        }
        m.by_id.insert(id, handle);
        drop(m);
        self.live.fetch_add(1, Ordering::Relaxed);
        self.held.fetch_add(charge as u64, Ordering::Relaxed);
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
            self.held.fetch_sub(txn.charge as u64, Ordering::Relaxed);
        }
    }
}
