//! User location (Kamailio `usrloc`): Contact bindings per AOR, per table,
//! with expiry. The in-memory tables answer every `lookup`; with
//! `db_mode` 1, 2 or 3 each change is also queued to the database writer
//! ([`crate::store::writer`]) and the tables are loaded from it at start.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{DbMode, UsrlocConfig};
use crate::store::health::{Health, HealthReport};
use crate::store::postgres::{PgStore, off_runtime};
use crate::store::sqlite::{Durability, SqliteStore};
use crate::store::writer::{Done, Loader, WriteMode, Writer};
use crate::store::{BindingStore, Change, StoreError, StoredBinding, unix_now};

/// One Contact bound to an AOR (RFC 3261 §10.3).
#[derive(Debug, Clone)]
pub struct ContactBinding {
    /// The Contact URI as registered.
    pub contact: String,
    pub q: f32,
    /// `None`: a permanent contact (added with `wisp ctl ul add ... permanent`),
    /// which no REGISTER replaces or removes, not even `Contact: *`.
    pub expires_at: Option<Instant>,
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from, as a URI (`sip:ip:port;transport=tcp`),
    /// when it differs from the Contact: how to reach a contact behind NAT.
    pub received: Option<String>,
    /// The Path header values (RFC 3327) of the REGISTER: requests to the
    /// contact are routed through them.
    pub path: Option<String>,
    /// The Contact's header parameters other than `q` and `expires`, as
    /// registered (`;+sip.instance="<urn:uuid:..>";reg-id=1`): returned
    /// with the binding in the 200 to a REGISTER (RFC 5626 §6).
    pub params: Option<String>,
    /// When this binding was last written (for freshness ordering).
    pub updated: Instant,
    /// The router that saved it (`server.server_id`).
    pub server_id: u32,
    /// The socket its REGISTER came in on (`tcp:192.0.2.1:5060`).
    pub socket: Option<String>,
    /// Behind a NAT (saved after `fix-nated-register`; Kamailio's
    /// `nat_bflag`): the keepalives ([`super::keepalive`]) ping it.
    pub nat: bool,
}

impl ContactBinding {
    /// Seconds until expiry, 0 when expired; `None` for a permanent contact.
    pub fn remaining(&self, now: Instant) -> Option<u32> {
        self.expires_at
            .map(|at| at.saturating_duration_since(now).as_secs() as u32)
    }

    /// Not expired at `now`.
    pub fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

type Table = HashMap<String, Vec<ContactBinding>>;
/// Each table of the manifest by name. Shared with the change listener of
/// `db_mode = 3` ([`super::usrloc_sync`]).
pub(crate) type Tables = HashMap<String, Mutex<Table>>;

/// Every table named in the manifest, and the database behind them.
pub struct Usrloc {
    tables: Arc<Tables>,
    pub config: UsrlocConfig,
    /// The database writer; `None` in memory-only mode.
    writer: Option<Writer>,
    /// Set when memory may hold a change the database refused (a failed
    /// write-through commit): the shared mode's listener then reloads it.
    stale: Arc<AtomicBool>,
    /// The database's state; `None` in memory-only mode.
    health: Option<Arc<Health>>,
    /// Cleared while the initial load waits for a database that was away.
    ready: Arc<AtomicBool>,
}

/// `save`/`lookup` named a table the manifest does not declare.
#[derive(Debug, thiserror::Error)]
#[error("no usrloc table {0:?} (declare it in [usrloc] tables)")]
pub struct UnknownTable(pub String);

impl Usrloc {
    /// Memory only, whatever `db_mode` says (tests, `wisp check`).
    pub fn new(config: UsrlocConfig) -> Self {
        let tables = config
            .tables
            .iter()
            .map(|t| (t.clone(), Mutex::new(HashMap::new())))
            .collect();
        Usrloc {
            tables: Arc::new(tables),
            config,
            writer: None,
            stale: Arc::new(AtomicBool::new(false)),
            health: None,
            ready: Arc::new(AtomicBool::new(true)),
        }
    }

    /// As `db_mode` says: with 1, 2 or 3, open (create, migrate) the
    /// database — PostgreSQL at `db_url` when the manifest gives one, else
    /// SQLite at `db_path` — load the bindings not yet expired and start the
    /// writer. Completions of the writer (deferred replies) run in `runtime`.
    pub fn open(
        config: UsrlocConfig,
        db_path: &Path,
        runtime: Option<tokio::runtime::Handle>,
    ) -> Result<Self, StoreError> {
        let (mode, durability) = match config.db_mode {
            DbMode::MemoryOnly => return Ok(Usrloc::new(config)),
            DbMode::WriteThrough | DbMode::Shared => (WriteMode::Through, Durability::Full),
            DbMode::WriteBack => (
                WriteMode::Back {
                    interval: Duration::from_secs(config.timer_interval),
                },
                Durability::Normal,
            ),
        };
        let shared = config.db_mode == DbMode::Shared;
        let mut usrloc = Usrloc::new(config);
        let mut listener = None;
        let mut loader: Option<Loader> = None;
        let (store, health): (Box<dyn BindingStore>, Health) = match &usrloc.config.db_url {
            Some(url) => {
                let url = url.clone();
                // Off the caller's runtime (the router starts inside one).
                // This router's name in the database's change notifications:
                // its listener skips what it wrote itself.
                let node = format!("{:016x}", rand::random::<u64>());
                let opened = off_runtime(|| {
                    let mut store = PgStore::connect(&url)?;
                    store.set_node(&node)?;
                    // Listen before loading: no change between the two is missed.
                    let listening = if shared {
                        let mut l = PgStore::connect(&url)?;
                        l.set_node(&node)?;
                        l.listen()?;
                        Some((l, true))
                    } else {
                        None
                    };
                    let rows = store.load(unix_now())?;
                    Ok::<_, StoreError>((store, listening, rows))
                });
                match opened {
                    Ok((store, listening, rows)) => {
                        let health = Health::new("postgres", store.location());
                        health.up();
                        let loaded = restore(&usrloc.tables, rows);
                        tracing::info!(
                            "usrloc: {loaded} bindings loaded from {}",
                            store.shown_url()
                        );
                        listener = listening;
                        (Box::new(store), health)
                    }
                    // The router starts while the database is away (another
                    // router may be serving): REGISTERs are answered 503 and
                    // lookups answer from memory until it is back; then the
                    // bindings are loaded (by the listener when shared, else
                    // by the writer).
                    Err(e) if !e.is_refusal() => {
                        let mut store = PgStore::unconnected(&url)?;
                        store.set_node(&node)?;
                        let health = Health::new("postgres", store.location());
                        health.down(&e);
                        tracing::warn!(
                            "usrloc: starting with no bindings, loaded once the database is \
                             back; REGISTERs are answered 503 meanwhile"
                        );
                        if shared {
                            let mut listening = PgStore::unconnected(&url)?;
                            listening.set_node(&node)?;
                            listener = Some((listening, false));
                        } else {
                            usrloc.ready.store(false, Ordering::Relaxed);
                            let tables = Arc::downgrade(&usrloc.tables);
                            let ready = usrloc.ready.clone();
                            loader = Some(Box::new(move |rows| {
                                if let Some(t) = tables.upgrade() {
                                    let n = restore(&t, rows);
                                    tracing::info!("usrloc: {n} bindings loaded from the database");
                                }
                                ready.store(true, Ordering::Relaxed);
                            }));
                        }
                        (Box::new(store), health)
                    }
                    Err(e) => return Err(e),
                }
            }
            None => {
                let mut store = SqliteStore::open(db_path, durability)?;
                let rows = store.load(unix_now())?;
                let loaded = restore(&usrloc.tables, rows);
                tracing::info!(
                    "usrloc: {loaded} bindings loaded from {}",
                    db_path.display()
                );
                let health = Health::new("sqlite", db_path.display().to_string());
                health.up();
                (Box::new(store), health)
            }
        };
        let health = Arc::new(health);
        usrloc.health = Some(health.clone());
        usrloc.writer = Some(Writer::spawn(store, mode, runtime, health, loader)?);
        if let Some((l, connected)) = listener {
            super::usrloc_sync::spawn(
                l,
                connected,
                Arc::downgrade(&usrloc.tables),
                usrloc.stale.clone(),
            )?;
        }
        Ok(usrloc)
    }

    /// The database's state (`None` in memory-only mode), for `wisp ctl ps`
    /// and `/metrics`.
    pub fn store_health(&self) -> Option<HealthReport> {
        self.health.as_ref().map(|h| h.report())
    }

    /// Whether the bindings have been loaded from the database: a router
    /// started while it was away answers REGISTERs 503 until then.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Whether changes go to a database (`db_mode` 1, 2 or 3).
    pub fn persistent(&self) -> bool {
        self.writer.is_some()
    }

    /// What a failed commit calls so that memory is read again from the
    /// database (it holds the refused change); `None` unless shared
    /// (`db_mode = 3`), where a listener does that.
    pub fn on_failed_commit(&self) -> Option<impl Fn() + Send + 'static> {
        let stale = self.stale.clone();
        (self.persistent() && self.config.db_mode == DbMode::Shared)
            .then_some(move || stale.store(true, Ordering::Relaxed))
    }

    /// Whether a REGISTER is answered only after its commit (`db_mode` 1 or 3).
    pub fn write_through(&self) -> bool {
        self.persistent() && matches!(self.config.db_mode, DbMode::WriteThrough | DbMode::Shared)
    }

    /// Queue `changes` for the database; `done` runs after their commit (at
    /// once, with success, in memory-only mode). Call it while still holding
    /// the table (inside [`Usrloc::with_table`]) so that the database sees
    /// changes to one AOR in the order memory did.
    pub fn persist(&self, changes: Vec<Change>, done: Option<Done>) {
        match &self.writer {
            Some(w) => w.submit(changes, done),
            None => {
                if let Some(d) = done {
                    d(Ok(()))
                }
            }
        }
    }

    /// Commit everything queued, then run `done` (at once when memory-only).
    pub fn flush(&self, done: Done) {
        match &self.writer {
            Some(w) => w.flush(done),
            None => done(Ok(())),
        }
    }

    /// The database row of `binding` (wall-clock times from `now`).
    pub fn stored(
        table: &str,
        aor: &str,
        binding: &ContactBinding,
        now: Instant,
        now_unix: i64,
    ) -> StoredBinding {
        StoredBinding {
            table: table.to_owned(),
            aor: aor.to_owned(),
            contact: binding.contact.clone(),
            q: binding.q,
            expires: binding
                .remaining(now)
                .map(|secs| now_unix + i64::from(secs)),
            call_id: binding.call_id.clone(),
            cseq: binding.cseq,
            received: binding.received.clone(),
            path: binding.path.clone(),
            params: binding.params.clone(),
            updated: now_unix - now.saturating_duration_since(binding.updated).as_secs() as i64,
            server_id: binding.server_id,
            socket: binding.socket.clone(),
            nat: binding.nat,
        }
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
        let mut guard = crate::util::lock(t);
        Ok(f(&mut guard))
    }

    /// Current bindings of `aor`, best first: highest q, then most recently updated.
    pub fn current(
        &self,
        table: &str,
        aor: &str,
        now: Instant,
    ) -> Result<Vec<ContactBinding>, UnknownTable> {
        let mut v = self.with_table(table, |t| live_sorted(t.get(aor), now))?;
        if self.config.desc_time_order {
            // Stable: among equal times the q order stays.
            v.sort_by_key(|b| std::cmp::Reverse(b.updated));
        }
        Ok(v)
    }

    /// Every AOR of `table` (or only `aor`) with its current bindings, by AOR.
    pub fn snapshot(
        &self,
        table: &str,
        aor: Option<&str>,
        now: Instant,
    ) -> Result<Vec<(String, Vec<ContactBinding>)>, UnknownTable> {
        self.with_table(table, |t| {
            let mut out: Vec<(String, Vec<ContactBinding>)> = match aor {
                Some(a) => vec![(a.to_owned(), live_sorted(t.get(a), now))],
                None => t
                    .iter()
                    .map(|(a, b)| (a.clone(), live_sorted(Some(b), now)))
                    .collect(),
            };
            out.retain(|(_, b)| !b.is_empty());
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        })
    }

    /// Add or replace one binding outside of a REGISTER (`wisp ctl ul add`);
    /// `expires` `None` makes it permanent. `done` runs after its commit.
    pub fn add(
        &self,
        table: &str,
        aor: &str,
        contact: &str,
        expires: Option<u32>,
        done: Option<Done>,
    ) -> Result<(), UnknownTable> {
        self.put(table, aor, contact, expires, false, done)
    }

    /// Make `contact` the only binding of `aor`, permanent (`wisp ctl alias
    /// add`: an alias names one canonical AOR). One step under the table
    /// lock, so a `lookup` never sees the alias missing in between.
    pub fn set_only(
        &self,
        table: &str,
        aor: &str,
        contact: &str,
        done: Option<Done>,
    ) -> Result<(), UnknownTable> {
        self.put(table, aor, contact, None, true, done)
    }

    fn put(
        &self,
        table: &str,
        aor: &str,
        contact: &str,
        expires: Option<u32>,
        only: bool,
        done: Option<Done>,
    ) -> Result<(), UnknownTable> {
        let now = Instant::now();
        let binding = ContactBinding {
            contact: contact.to_owned(),
            q: 1.0,
            expires_at: expires.map(|s| now + Duration::from_secs(u64::from(s))),
            call_id: String::new(),
            cseq: 0,
            received: None,
            path: None,
            params: None,
            updated: now,
            server_id: self.config.server_id,
            socket: None,
            nat: false,
        };
        self.with_table(table, |t| {
            let bindings = t.entry(aor.to_owned()).or_default();
            let mut changes = Vec::new();
            if self.persistent() {
                if only {
                    changes.extend(
                        bindings
                            .iter()
                            .filter(|b| b.contact != contact)
                            .map(|b| Change::delete(table, aor, &b.contact)),
                    );
                }
                changes.push(Change::Put(Usrloc::stored(
                    table,
                    aor,
                    &binding,
                    now,
                    unix_now(),
                )));
            }
            if only {
                bindings.clear();
            }
            bindings.retain(|b| b.contact != contact);
            bindings.push(binding);
            self.persist(changes, done);
        })
    }

    /// Remove one contact of `aor`, or all of them (`wisp ctl ul rm`).
    /// Returns how many were removed; `done` runs after the commit.
    pub fn remove(
        &self,
        table: &str,
        aor: &str,
        contact: Option<&str>,
        done: Option<Done>,
    ) -> Result<usize, UnknownTable> {
        self.with_table(table, |t| {
            let mut removed = Vec::new();
            if let Some(bindings) = t.get_mut(aor) {
                bindings.retain(|b| {
                    let gone = contact.is_none_or(|c| c == b.contact);
                    if gone {
                        removed.push(b.contact.clone());
                    }
                    !gone
                });
                if bindings.is_empty() {
                    t.remove(aor);
                }
            }
            let n = removed.len();
            let changes = removed
                .into_iter()
                .map(|contact| Change::delete(table, aor, &contact))
                .collect();
            self.persist(
                if self.persistent() {
                    changes
                } else {
                    Vec::new()
                },
                done,
            );
            n
        })
    }

    /// Remove, from every table, the bindings whose `received` is
    /// `received` (the bindings registered over a connection that is gone:
    /// Kamailio's `handle_lost_tcp`). Memory only, then the deletes are
    /// queued for the database; returns how many went. A scan of the
    /// bindings, run when an accepted connection ends.
    pub fn remove_received(&self, received: &str) -> usize {
        let mut changes = Vec::new();
        for (name, t) in self.tables.iter() {
            let mut t = crate::util::lock(t);
            t.retain(|aor, bindings| {
                bindings.retain(|b| {
                    let gone = b.received.as_deref() == Some(received);
                    if gone {
                        changes.push(Change::delete(name, aor, &b.contact));
                    }
                    !gone
                });
                !bindings.is_empty()
            });
        }
        let n = changes.len();
        if n > 0 && self.persistent() {
            self.persist(changes, None);
        }
        n
    }

    /// `(table, AORs, contacts)` per table, sorted by name; bindings
    /// expired since the last purge still count (metrics read this).
    pub fn counts(&self) -> Vec<(String, usize, usize)> {
        let mut out: Vec<_> = self
            .tables
            .iter()
            .map(|(name, t)| {
                let t = crate::util::lock(t);
                (name.clone(), t.len(), t.values().map(Vec::len).sum())
            })
            .collect();
        out.sort();
        out
    }

    /// Changes waiting for the database writer (0 in memory-only mode).
    pub fn writer_queue_len(&self) -> usize {
        self.writer.as_ref().map_or(0, Writer::queue_len)
    }

    /// Drop expired bindings (and AORs left without any). The database
    /// deletes its expired rows on its own (the writer's purge).
    pub fn purge_expired(&self, now: Instant) -> usize {
        let mut removed = 0;
        for t in self.tables.values() {
            let mut t = crate::util::lock(t);
            t.retain(|_, bindings| {
                let before = bindings.len();
                bindings.retain(|b| b.is_live(now));
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

/// A binding as memory holds it, from its database row (wall-clock times
/// turned into `Instant`s from `now`).
fn from_row(row: StoredBinding, now: Instant, now_unix: i64) -> (String, String, ContactBinding) {
    let binding = ContactBinding {
        contact: row.contact,
        q: row.q,
        expires_at: row
            .expires
            .map(|e| now + Duration::from_secs(e.saturating_sub(now_unix).max(0) as u64)),
        call_id: row.call_id,
        cseq: row.cseq,
        received: row.received,
        path: row.path,
        params: row.params,
        updated: now
            .checked_sub(Duration::from_secs(
                now_unix.saturating_sub(row.updated).max(0) as u64,
            ))
            .unwrap_or(now),
        server_id: row.server_id,
        socket: row.socket,
        nat: row.nat,
    };
    (row.table, row.aor, binding)
}

/// Put rows loaded from the database into the tables; returns how many.
/// A contact memory holds already (changed while the load waited for the
/// database) keeps its binding.
fn restore(tables: &Tables, rows: Vec<StoredBinding>) -> usize {
    let (now, now_unix) = (Instant::now(), unix_now());
    let mut loaded = 0;
    for row in rows {
        let (table, aor, binding) = from_row(row, now, now_unix);
        let Some(t) = tables.get(&table) else {
            tracing::warn!("usrloc: database row for undeclared table {table:?} ignored");
            continue;
        };
        let mut t = crate::util::lock(t);
        let bindings = t.entry(aor).or_default();
        if !bindings.iter().any(|b| b.contact == binding.contact) {
            bindings.push(binding);
            loaded += 1;
        }
    }
    loaded
}

/// Replace every table's contents by `rows` (the shared mode's reload after
/// the database came back); returns how many bindings there are.
pub(crate) fn replace_all(tables: &Tables, rows: Vec<StoredBinding>) -> usize {
    let (now, now_unix) = (Instant::now(), unix_now());
    let mut fresh: HashMap<String, Table> = HashMap::new();
    let mut loaded = 0;
    for row in rows {
        let (table, aor, binding) = from_row(row, now, now_unix);
        if tables.contains_key(&table) {
            fresh
                .entry(table)
                .or_default()
                .entry(aor)
                .or_default()
                .push(binding);
            loaded += 1;
        }
    }
    for (name, t) in tables {
        *crate::util::lock(t) = fresh.remove(name).unwrap_or_default();
    }
    loaded
}

/// Replace the bindings of `aor` in `table` by `rows`, its rows in the
/// database (none: it has no binding left).
pub(crate) fn replace_aor(tables: &Tables, table: &str, aor: &str, rows: Vec<StoredBinding>) {
    let Some(t) = tables.get(table) else {
        return;
    };
    let (now, now_unix) = (Instant::now(), unix_now());
    let bindings: Vec<ContactBinding> = rows
        .into_iter()
        .map(|row| from_row(row, now, now_unix).2)
        .collect();
    let mut t = crate::util::lock(t);
    if bindings.is_empty() {
        t.remove(aor);
    } else {
        t.insert(aor.to_owned(), bindings);
    }
}

/// The live bindings of one AOR, best first: highest q, then freshest.
fn live_sorted(bindings: Option<&Vec<ContactBinding>>, now: Instant) -> Vec<ContactBinding> {
    let mut v: Vec<ContactBinding> = bindings
        .map(|b| b.iter().filter(|b| b.is_live(now)).cloned().collect())
        .unwrap_or_default();
    v.sort_by(|a, b| b.q.total_cmp(&a.q).then(b.updated.cmp(&a.updated)));
    v
}

/// Persistence driven through [`Usrloc`] on a real SQLite file: what one
/// process writes, the next one loads.
#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn config(db_mode: u8) -> UsrlocConfig {
        UsrlocConfig {
            db_mode: DbMode::try_from(db_mode).expect("0, 1 or 2"),
            ..UsrlocConfig::default()
        }
    }

    fn flushed(u: &Usrloc) {
        let (tx, rx) = mpsc::channel();
        u.flush(Box::new(move |r| {
            let _ = tx.send(r.is_ok());
        }));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(true));
    }

    #[test]
    fn bindings_and_permanent_contacts_survive_a_reopen_with_their_remaining_expiry() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        let path = dir.join("var/wisp.db");
        for mode in [1, 2] {
            let _ = std::fs::remove_file(&path);
            let u = Usrloc::open(config(mode), &path, None).expect("open");
            u.add("location", "alice", "sip:alice@10.0.0.1", Some(600), None)
                .expect("table");
            u.add("location", "bob", "sip:bob@10.0.0.2", None, None)
                .expect("table");
            u.add("location", "carol", "sip:carol@10.0.0.3", Some(600), None)
                .expect("table");
            assert_eq!(u.remove("location", "carol", None, None).expect("table"), 1);
            flushed(&u);
            drop(u);

            let u = Usrloc::open(config(mode), &path, None).expect("reopen");
            let now = Instant::now();
            let all = u.snapshot("location", None, now).expect("table");
            let aors: Vec<&str> = all.iter().map(|(a, _)| a.as_str()).collect();
            assert_eq!(aors, ["alice", "bob"], "db_mode {mode}");
            let alice = &all[0].1[0];
            assert!(
                (598..=600).contains(&alice.remaining(now).unwrap_or(0)),
                "{alice:?}"
            );
            assert_eq!(all[1].1[0].expires_at, None, "permanent stays permanent");
        }
    }

    #[test]
    fn memory_only_mode_opens_no_database() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        let path = dir.join("wisp.db");
        let u = Usrloc::open(config(0), &path, None).expect("open");
        assert!(!u.persistent());
        assert!(!path.exists());
    }
}
