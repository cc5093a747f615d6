//! The table of live transactions: by RFC 3261 §17.2.3 key (to absorb
//! retransmissions, ACKs and CANCELs) and by id (to match responses and
//! timers, which carry the id in our Via branch and in the timer entry).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::TxnHandle;
use super::transaction::Transaction;
use crate::util::lock;

/// Each map is split in this many shards, each with its own lock. A shard
/// grows by rehashing only its own entries: one map of 200,000
/// transactions stalled the receive path for milliseconds at each
/// doubling, which showed in the relay benchmark's p99. Two workers rarely
/// wait on the same shard.
const SHARDS: usize = 64;

/// Keys come from the network: a seeded hash of good quality, per router.
type KeyMap = HashMap<String, u64, foldhash::quality::RandomState>;
/// Ids are ours (sequential): the fast one.
type IdMap = HashMap<u64, TxnHandle, foldhash::fast::RandomState>;

/// Live transactions, by key and by id. Nothing is done under a shard's
/// lock but the map operation itself.
pub struct TxnTable {
    by_key: Box<[Mutex<KeyMap>]>,
    by_id: Box<[Mutex<IdMap>]>,
    /// Which shard of `by_key` a key is in.
    key_shard: foldhash::quality::RandomState,
    /// Number of live transactions, readable without a lock.
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
/// request: its state, one branch, its timers and its two table entries.
/// With twice a ~450-byte request that is ~1.4 KB, what
/// `scripts/bench-tm-memory.sh` measures per relayed OPTIONS (1.45 KB of RSS).
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
            by_key: (0..SHARDS).map(|_| Mutex::default()).collect(),
            by_id: (0..SHARDS).map(|_| Mutex::default()).collect(),
            key_shard: foldhash::quality::RandomState::default(),
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

    fn key_shard(&self, key: &str) -> &Mutex<KeyMap> {
        &self.by_key[self.key_shard.hash_one(key) as usize % SHARDS]
    }

    fn id_shard(&self, id: u64) -> &Mutex<IdMap> {
        &self.by_id[id as usize % SHARDS]
    }

    /// Add a transaction under `key`. A request with the key of a live
    /// transaction that was not absorbed (raced in on another worker) takes
    /// the key; the older one lives on by id until its timers end it.
    pub fn insert(&self, key: String, id: u64, handle: TxnHandle, charge: usize) {
        // By id first: whoever finds the key finds the transaction.
        lock(self.id_shard(id)).insert(id, handle);
        if let Some(old) = lock(self.key_shard(&key)).insert(key, id) {
            tracing::debug!(old, "transaction key reused");
        }
        self.live.fetch_add(1, Ordering::Relaxed);
        self.held.fetch_add(charge as u64, Ordering::Relaxed);
    }

    pub fn by_key(&self, key: &str) -> Option<TxnHandle> {
        let id = *lock(self.key_shard(key)).get(key)?;
        self.by_id(id)
    }

    pub fn by_id(&self, id: u64) -> Option<TxnHandle> {
        lock(self.id_shard(id)).get(&id).cloned()
    }

    /// Take `txn` out of the table (once; later calls do nothing).
    pub fn forget(&self, txn: &mut Transaction) {
        if txn.ended {
            return;
        }
        txn.ended = true;
        {
            let mut keys = lock(self.key_shard(&txn.key));
            if keys.get(&txn.key) == Some(&txn.id) {
                keys.remove(&txn.key);
            }
        }
        if lock(self.id_shard(txn.id)).remove(&txn.id).is_some() {
            self.live.fetch_sub(1, Ordering::Relaxed);
            self.held.fetch_sub(txn.charge as u64, Ordering::Relaxed);
        }
    }
}
