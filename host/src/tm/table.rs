//! The table of live transactions: by RFC 3261 §17.2.3 key (to absorb
//! retransmissions, ACKs and CANCELs) and by id (to match responses and
//! timers, which carry the id in our Via branch and in the timer entry).
//!
//! By id it is a slab: the id names its slot, so a lookup is one index and
//! no hash, and transactions made together sit together (a response comes
//! while its transaction's slot is still in cache; wait timers end them in
//! slot order). By key it maps a seeded hash of the key to the id, and the
//! key itself is checked on the transaction: no key text is stored twice
//! or compared in the map. Profiles of the relay benchmark before: 18% of
//! the router's CPU in the two hash maps at 270,000 live transactions.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::TxnHandle;
use super::transaction::Transaction;
use crate::util::lock;

/// Each half of the table is split in this many shards, each with its own
/// lock: a shard grows alone (one map of 200,000 transactions stalled the
/// receive path for milliseconds at each doubling), and two workers rarely
/// wait on the same shard.
const SHARDS: usize = 64;
const SHARD_BITS: u32 = 6;
/// Slots per shard, at most (the memory budget allows far fewer).
const SLOT_BITS: u32 = 26;

/// Key hash → id. The hash is the key's (seeded): hashing it again is
/// wasted, so the map uses it as it is.
type KeyMap = HashMap<u64, u64, std::hash::BuildHasherDefault<PassThrough>>;

/// A `Hasher` that returns the `u64` it is given.
#[derive(Default)]
struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; anything else still hashes.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One shard of the slab.
#[derive(Default)]
struct IdShard {
    slots: Vec<Slot>,
    /// Slots free for reuse.
    free: Vec<u32>,
}

#[derive(Default)]
struct Slot {
    /// Bumped at each reuse: an id of an ended transaction never finds the
    /// slot's next one.
    generation: u32,
    txn: Option<TxnHandle>,
}

/// Live transactions, by key and by id. Nothing is done under a shard's
/// lock but the slab or map operation itself.
pub struct TxnTable {
    by_id: Box<[Mutex<IdShard>]>,
    by_key: Box<[Mutex<KeyMap>]>,
    key_hash: foldhash::quality::RandomState,
    /// The shard the next transaction goes to (round robin).
    next_shard: AtomicUsize,
    /// Number of live transactions, readable without a lock.
    live: AtomicU64,
    /// Bytes the live transactions are charged with ([`charge_for`]).
    held: AtomicU64,
    /// `tm.memory_mb` in bytes.
    budget: u64,
    /// `tm.max_transactions`, or no cap.
    max: u64,
    /// Bytes charged per source IP, sharded by the IP's hash.
    sources: Box<[Mutex<HashMap<IpAddr, u64, foldhash::fast::FixedState>>]>,
    /// What one source IP may hold (`tm.source_share_percent` of the budget).
    source_budget: u64,
}

/// `(generation, slot, shard)` in one id: the generation in the high half.
fn make_id(generation: u32, slot: usize, shard: usize) -> u64 {
    (u64::from(generation) << 32) | ((slot as u64) << SHARD_BITS) | shard as u64
}

fn split_id(id: u64) -> (u32, usize, usize) {
    let shard = (id & (SHARDS as u64 - 1)) as usize;
    let slot = ((id >> SHARD_BITS) & ((1 << SLOT_BITS) - 1)) as usize;
    ((id >> 32) as u32, slot, shard)
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
    /// The source's share of `tm.memory_mb` would be exceeded.
    Source { percent: u64 },
}

impl TxnTable {
    pub fn new(memory_mb: u64, max_transactions: Option<usize>) -> TxnTable {
        TxnTable {
            by_id: (0..SHARDS).map(|_| Mutex::default()).collect(),
            by_key: (0..SHARDS).map(|_| Mutex::default()).collect(),
            key_hash: foldhash::quality::RandomState::default(),
            next_shard: AtomicUsize::new(0),
            live: AtomicU64::new(0),
            held: AtomicU64::new(0),
            budget: memory_mb.saturating_mul(1 << 20),
            max: max_transactions.map_or(u64::MAX, |m| m as u64),
            sources: (0..SHARDS).map(|_| Mutex::default()).collect(),
            source_budget: u64::MAX,
        }
    }

    /// One source IP may hold `percent` of the budget (100: no limit).
    pub fn with_source_share(mut self, percent: u8) -> TxnTable {
        self.source_budget = if percent >= 100 {
            u64::MAX
        } else {
            self.budget / 100 * u64::from(percent)
        };
        self
    }

    fn source_shard(&self, ip: IpAddr) -> &Mutex<HashMap<IpAddr, u64, foldhash::fast::FixedState>> {
        let hash = foldhash::fast::FixedState::with_seed(0x5eed).hash_one(ip);
        &self.sources[(hash >> (64 - SHARD_BITS)) as usize]
    }

    /// Bytes the transactions of `ip` are charged with.
    pub fn held_by(&self, ip: IpAddr) -> u64 {
        lock(self.source_shard(ip)).get(&ip).copied().unwrap_or(0)
    }

    /// Whether a transaction charged `charge` bytes fits now. Checked
    /// before it is built; two workers may both pass the check for the last
    /// room, which overshoots by one transaction at most per worker.
    pub fn room_for(&self, charge: usize, source: IpAddr) -> Result<(), Full> {
        if self.live.load(Ordering::Relaxed) >= self.max {
            return Err(Full::Count { max: self.max });
        }
        if self.held.load(Ordering::Relaxed) + charge as u64 > self.budget {
            return Err(Full::Memory {
                budget_mb: self.budget >> 20,
            });
        }
        if self.source_budget != u64::MAX
            && self.held_by(source) + charge as u64 > self.source_budget
        {
            return Err(Full::Source {
                percent: self.source_budget * 100 / self.budget.max(1),
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

    fn key_shard(&self, hash: u64) -> &Mutex<KeyMap> {
        &self.by_key[(hash >> (64 - SHARD_BITS)) as usize]
    }

    /// Add the transaction `make` builds from the id it is given (one no
    /// transaction of this router run had before) and `key`, under `key`. A request
    /// with the key of a live transaction that was not absorbed (raced in on
    /// another worker) takes the key; the older one lives on by id until its
    /// timers end it.
    pub fn insert(
        &self,
        key: String,
        charge: usize,
        make: impl FnOnce(u64, String) -> Transaction,
    ) -> TxnHandle {
        let hash = self.key_hash.hash_one(&key);
        let shard_no = self.next_shard.fetch_add(1, Ordering::Relaxed) % SHARDS;
        let source;
        let (id, handle) = {
            let mut shard = lock(&self.by_id[shard_no]);
            let slot = match shard.free.pop() {
                Some(s) => s as usize,
                None => {
                    shard.slots.push(Slot::default());
                    shard.slots.len() - 1
                }
            };
            let entry = &mut shard.slots[slot];
            entry.generation = entry.generation.wrapping_add(1).max(1);
            let id = make_id(entry.generation, slot, shard_no);
            let txn = make(id, key);
            source = txn.source.remote.ip();
            let handle = Arc::new(Mutex::new(txn));
            entry.txn = Some(handle.clone());
            (id, handle)
        };
        // By id first: whoever finds the key finds the transaction.
        if let Some(old) = lock(self.key_shard(hash)).insert(hash, id) {
            tracing::debug!(old, "transaction key reused");
        }
        self.live.fetch_add(1, Ordering::Relaxed);
        crate::stats::inc(crate::stats::Counter::TransactionsCreated);
        self.held.fetch_add(charge as u64, Ordering::Relaxed);
        if self.source_budget != u64::MAX {
            *lock(self.source_shard(source)).entry(source).or_insert(0) += charge as u64;
        }
        handle
    }

    /// The live transaction of `key`. Takes the transaction's lock for a
    /// moment (to check its key): the caller must not hold another's.
    pub fn by_key(&self, key: &str) -> Option<TxnHandle> {
        let hash = self.key_hash.hash_one(key);
        let id = *lock(self.key_shard(hash)).get(&hash)?;
        let txn = self.by_id(id)?;
        let same = lock(&txn).key == key;
        same.then_some(txn)
    }

    pub fn by_id(&self, id: u64) -> Option<TxnHandle> {
        let (generation, slot, shard) = split_id(id);
        let shard = lock(&self.by_id[shard]);
        let entry = shard.slots.get(slot)?;
        if entry.generation != generation {
            return None;
        }
        entry.txn.clone()
    }

    /// Charge `txn` only `to` bytes from now on, when it holds less than it
    /// was charged (after its final answer it keeps only that answer, for
    /// retransmissions): an INVITE whose 408/487 is never acknowledged
    /// holds its slot 32 s (timer H), but no longer its request's charge.
    pub fn shrink_charge(&self, txn: &mut Transaction, to: usize) {
        if txn.ended || to >= txn.charge {
            return;
        }
        let freed = (txn.charge - to) as u64;
        txn.charge = to;
        self.held.fetch_sub(freed, Ordering::Relaxed);
        if self.source_budget != u64::MAX {
            let ip = txn.source.remote.ip();
            if let Some(held) = lock(self.source_shard(ip)).get_mut(&ip) {
                *held = held.saturating_sub(freed);
            }
        }
    }

    /// Take `txn` out of the table (once; later calls do nothing).
    pub fn forget(&self, txn: &mut Transaction) {
        if txn.ended {
            return;
        }
        txn.ended = true;
        if txn.server.is_final() {
            crate::stats::inc(crate::stats::Counter::TransactionsAnsweredEnded);
        }
        let hash = self.key_hash.hash_one(&txn.key);
        {
            let mut keys = lock(self.key_shard(hash));
            if keys.get(&hash) == Some(&txn.id) {
                keys.remove(&hash);
            }
        }
        let (generation, slot, shard_no) = split_id(txn.id);
        let removed = {
            let mut shard = lock(&self.by_id[shard_no]);
            match shard.slots.get_mut(slot) {
                Some(entry) if entry.generation == generation && entry.txn.is_some() => {
                    let gone = entry.txn.take();
                    shard.free.push(slot as u32);
                    gone
                }
                _ => None,
            }
        };
        // Dropped outside the lock: it may be the last reference.
        if removed.is_some() {
            self.live.fetch_sub(1, Ordering::Relaxed);
            self.held.fetch_sub(txn.charge as u64, Ordering::Relaxed);
            if self.source_budget != u64::MAX {
                let ip = txn.source.remote.ip();
                let mut shard = lock(self.source_shard(ip));
                if let Some(held) = shard.get_mut(&ip) {
                    *held = held.saturating_sub(txn.charge as u64);
                    if *held == 0 {
                        shard.remove(&ip);
                    }
                }
            }
        }
    }
}
