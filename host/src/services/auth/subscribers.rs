//! The subscriber directory: every subscriber's HA1s and groups in memory,
//! the [`Directory`] the auth host functions read. It is loaded from the
//! database once at start (never on a receive task) and bounded by
//! `[subscriber] max_entries`; `wisp ctl user|acl` changes go to the
//! database first and to memory once stored, so what a lookup sees is
//! always on disk too.
//!
//! Readers take a read lock on a map keyed by domain, then user: a lookup
//! allocates nothing until it hex-encodes the HA1 it found. Writers are
//! serialised by the store's lock, so the database and memory see the same
//! order of changes. The store is a connection of its own to the user
//! location database: with WAL and a busy timeout, it and the usrloc
//! writer thread wait for each other's short transactions rather than fail.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::Directory;
use super::digest::{Algorithm, to_hex};
use crate::config::SubscriberConfig;
use crate::store::StoreError;
use crate::store::postgres::{PgStore, off_runtime};
use crate::store::sqlite::{Durability, SqliteStore};
use crate::store::subscriber::{StoredGroup, StoredSubscriber, SubscriberRows, SubscriberStore};
use crate::util::lock;

/// Why a directory change or load was refused; the text is for the operator.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{0}: already a subscriber")]
    Exists(String),
    #[error("{0}: no such subscriber")]
    NoSuchUser(String),
    #[error("{aor}: already in group {group:?}")]
    AlreadyMember { aor: String, group: String },
    #[error("{aor}: not in group {group:?}")]
    NotMember { aor: String, group: String },
    #[error("the directory is full: {max} subscribers ([subscriber] max_entries)")]
    Full { max: usize },
    #[error(
        "the database holds more than {max} subscribers; raise [subscriber] max_entries to load them"
    )]
    TooMany { max: usize },
    #[error("{what} {value:?}: {why}")]
    BadName {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("subscriber database: {0}")]
    Store(#[from] StoreError),
}

/// The shared directory's thread: reads the directory again when another
/// router changed it; when the connection is lost, logs it once, and once
/// the database is back listens again and reads it whole. Ends with the
/// directory.
fn follow(mut listener: PgStore, mut connected: bool, dir: std::sync::Weak<Subscribers>) {
    const WAIT: std::time::Duration = std::time::Duration::from_secs(1);
    let mut listening_on = listener.connections();
    loop {
        if !connected {
            let Some(d) = dir.upgrade() else { return };
            match listener
                .listen_subscribers()
                .map_err(DirectoryError::from)
                .and_then(|()| d.reload())
            {
                Ok(n) => {
                    tracing::info!("subscribers: the database is back: {n} loaded");
                    connected = true;
                    listening_on = listener.connections();
                }
                Err(e) => {
                    tracing::debug!("subscribers: the database is still away: {e}");
                    drop(d);
                    std::thread::sleep(WAIT);
                    continue;
                }
            }
        }
        if dir.strong_count() == 0 {
            return;
        }
        let heard = listener
            .wait_subscriber_changes(WAIT)
            .map_err(DirectoryError::from)
            .and_then(|changed| match (changed, dir.upgrade()) {
                (true, Some(d)) => d.reload().map(|_| ()),
                _ => Ok(()),
            });
        let heard = heard.and_then(|()| {
            if listener.connections() == listening_on {
                Ok(())
            } else {
                Err(DirectoryError::Store(StoreError::Disconnected))
            }
        });
        if let Err(e) = heard {
            tracing::warn!(
                "subscribers: lost the database's change notifications ({e}); changes made \
                 through other routers are missed until it is back"
            );
            connected = false;
        }
    }
}

/// One subscriber in memory: raw HA1 bytes (80 bytes for all three, not
/// 160 hex characters), the password only when the manifest keeps it.
#[derive(Debug, Default)]
struct Entry {
    md5: Option<[u8; 16]>,
    sha256: Option<[u8; 32]>,
    sha512_256: Option<[u8; 32]>,
    password: Option<Box<str>>,
    /// Sorted, no duplicates.
    groups: Vec<Box<str>>,
}

impl Entry {
    fn from_row(row: &StoredSubscriber) -> Entry {
        let aor = || format!("{}@{}", row.username, row.domain);
        Entry {
            md5: from_hex(&row.ha1, "ha1", &aor),
            sha256: from_hex(&row.ha1_sha256, "ha1_sha256", &aor),
            sha512_256: from_hex(&row.ha1_sha512_256, "ha1_sha512_256", &aor),
            password: row.password.as_deref().map(Box::from),
            groups: Vec::new(),
        }
    }
}

/// An HA1 column: empty is "none for this algorithm"; one that is not
/// hex of the right length is none too, said once in the log at load.
fn from_hex<const N: usize>(hex: &str, column: &str, aor: &dyn Fn() -> String) -> Option<[u8; N]> {
    if hex.is_empty() {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16);
    let mut out = [0u8; N];
    let bytes = hex.as_bytes();
    let ok = bytes.len() == 2 * N
        && out.iter_mut().zip(bytes.chunks_exact(2)).all(|(o, pair)| {
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => {
                    *o = (h * 16 + l) as u8;
                    true
                }
                _ => false,
            }
        });
    if !ok {
        tracing::warn!(
            "subscriber {}: column {column} is not {} hex digits; ignored",
            aor(),
            2 * N
        );
        return None;
    }
    Some(out)
}

/// Domain, then user.
#[derive(Default)]
struct Table {
    domains: HashMap<String, HashMap<String, Entry>>,
    count: usize,
}

impl Table {
    fn get(&self, user: &str, domain: &str) -> Option<&Entry> {
        self.domains.get(domain)?.get(user)
    }

    fn get_mut(&mut self, user: &str, domain: &str) -> Option<&mut Entry> {
        self.domains.get_mut(domain)?.get_mut(user)
    }

    fn insert(&mut self, user: &str, domain: &str, entry: Entry) {
        let users = self.domains.entry(domain.to_owned()).or_default();
        if users.insert(user.to_owned(), entry).is_none() {
            self.count += 1;
        }
    }

    fn remove(&mut self, user: &str, domain: &str) -> bool {
        let Some(users) = self.domains.get_mut(domain) else {
            return false;
        };
        let removed = users.remove(user).is_some();
        if users.is_empty() {
            self.domains.remove(domain);
        }
        if removed {
            self.count -= 1;
        }
        removed
    }
}

/// What `wisp ctl user show` lists of a subscriber: never its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberInfo {
    pub user: String,
    pub domain: String,
    pub groups: Vec<String>,
}

/// The subscriber directory (see the module docs).
pub struct Subscribers {
    config: SubscriberConfig,
    table: RwLock<Table>,
    /// `None`: memory only (`usrloc.db_mode = 0`). Held across each change,
    /// database write and memory update both.
    store: Mutex<Option<Box<dyn SubscriberStore>>>,
}

impl Subscribers {
    /// An empty directory that stores nothing (memory-only routers, tests).
    pub fn in_memory(config: SubscriberConfig) -> Subscribers {
        Subscribers {
            config,
            table: RwLock::new(Table::default()),
            store: Mutex::new(None),
        }
    }

    /// Open the database at `db_path` (the user location database; created
    /// and migrated if need be) and load it; `None` is memory only.
    pub fn open(
        config: SubscriberConfig,
        db_path: Option<&Path>,
    ) -> Result<Subscribers, DirectoryError> {
        let Some(path) = db_path else {
            return Ok(Subscribers::in_memory(config));
        };
        // Management changes are rare: each one reaches the disk.
        let store = SqliteStore::open(path, Durability::Full)?;
        let dir = Subscribers::load(config, Box::new(store))?;
        tracing::info!("subscribers: {} loaded from {}", dir.len(), path.display());
        Ok(dir)
    }

    /// Connect to the PostgreSQL database at `url` (`usrloc.db_url`;
    /// migrated if need be) and load it, for a router on PostgreSQL
    /// (`usrloc.db_mode` 1, 2 or 3): a thread reads the directory again whenever
    /// another router changed it (the database NOTIFYs every change). The
    /// router starts while the database is away: the directory is empty
    /// then (every authorize finds no user) until the database answers.
    pub fn open_shared(
        config: SubscriberConfig,
        url: &str,
    ) -> Result<Arc<Subscribers>, DirectoryError> {
        // This directory's name in the notifications: its own changes are
        // in memory already.
        let node = format!("{:016x}", rand::random::<u64>());
        let opened = off_runtime(|| {
            // Listen before loading: no change between the two is missed.
            let mut listener = PgStore::connect(url)?;
            listener.set_node(&node)?;
            listener.listen_subscribers()?;
            let mut store = PgStore::connect(url)?;
            store.set_node(&node)?;
            let shown = store.shown_url().to_owned();
            let dir = Subscribers::load(config.clone(), Box::new(store))?;
            tracing::info!("subscribers: {} loaded from {shown}", dir.len());
            Ok::<_, DirectoryError>((dir, listener))
        });
        let (dir, listener, connected) = match opened {
            Ok((dir, listener)) => (Arc::new(dir), listener, true),
            Err(e @ DirectoryError::TooMany { .. }) => return Err(e),
            Err(DirectoryError::Store(e)) if e.is_refusal() => {
                return Err(DirectoryError::Store(e));
            }
            Err(e) => {
                tracing::warn!(
                    "subscribers: the database is away ({e}): starting with none, loaded once it is back"
                );
                let mut store = PgStore::unconnected(url)?;
                store.set_node(&node)?;
                let mut listener = PgStore::unconnected(url)?;
                listener.set_node(&node)?;
                let dir = Arc::new(Subscribers {
                    config,
                    table: RwLock::new(Table::default()),
                    store: Mutex::new(Some(Box::new(store))),
                });
                (dir, listener, false)
            }
        };
        let weak = Arc::downgrade(&dir);
        std::thread::Builder::new()
            .name("wisp-db-subscribers".into())
            .spawn(move || follow(listener, connected, weak))
            .map_err(|e| DirectoryError::Store(StoreError::Spawn(e)))?;
        Ok(dir)
    }

    /// Read every row again and put them in place of the directory's;
    /// returns how many subscribers there are. Blocking (database).
    pub fn reload(&self) -> Result<usize, DirectoryError> {
        let mut store = lock(&self.store);
        let Some(s) = store.as_mut() else {
            return Ok(self.len());
        };
        let table = Subscribers::table_of(
            s.load_all(self.config.max_entries)?,
            self.config.max_entries,
        )?;
        let n = table.count;
        *self.write() = table;
        Ok(n)
    }

    /// Load every row of `store`, refusing more than `max_entries`.
    pub fn load(
        config: SubscriberConfig,
        mut store: Box<dyn SubscriberStore>,
    ) -> Result<Subscribers, DirectoryError> {
        let max = config.max_entries;
        let table = Subscribers::table_of(store.load_all(max)?, max)?;
        Ok(Subscribers {
            config,
            table: RwLock::new(table),
            store: Mutex::new(Some(store)),
        })
    }

    /// The directory of `rows`, refusing more than `max` subscribers.
    fn table_of(rows: SubscriberRows, max: usize) -> Result<Table, DirectoryError> {
        if rows.subscribers.len() > max {
            return Err(DirectoryError::TooMany { max });
        }
        let mut table = Table::default();
        for row in &rows.subscribers {
            table.insert(&row.username, &row.domain, Entry::from_row(row));
        }
        let mut orphans = 0;
        for g in rows.groups {
            match table.get_mut(&g.username, &g.domain) {
                Some(e) => {
                    if let Err(at) = e.groups.binary_search_by(|x| (**x).cmp(&g.group)) {
                        e.groups.insert(at, g.group.into());
                    }
                }
                None => orphans += 1,
            }
        }
        if orphans > 0 {
            tracing::warn!("subscribers: {orphans} group rows name no subscriber; ignored");
        }
        Ok(table)
    }

    /// Whether changes are stored (else they last until the router stops).
    pub fn persistent(&self) -> bool {
        lock(&self.store).is_some()
    }

    /// How many subscribers there are.
    pub fn len(&self) -> usize {
        self.read().count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add `user@domain` with `password`; refused if it exists or the
    /// directory is full. Blocking (database): not on a receive task.
    pub fn add(&self, user: &str, domain: &str, password: &str) -> Result<(), DirectoryError> {
        let domain = check_aor(user, domain)?;
        let row = self.row(user, &domain, password)?;
        let mut store = lock(&self.store);
        {
            let t = self.read();
            if t.get(user, &domain).is_some() {
                return Err(DirectoryError::Exists(aor(user, &domain)));
            }
            if t.count >= self.config.max_entries {
                return Err(DirectoryError::Full {
                    max: self.config.max_entries,
                });
            }
        }
        if let Some(s) = store.as_mut()
            && !s.insert_subscriber(&row)?
        {
            return Err(DirectoryError::Exists(aor(user, &domain)));
        }
        self.write().insert(user, &domain, Entry::from_row(&row));
        Ok(())
    }

    /// Give `user@domain` a new password (new HA1s). Blocking.
    pub fn set_password(
        &self,
        user: &str,
        domain: &str,
        password: &str,
    ) -> Result<(), DirectoryError> {
        let domain = check_aor(user, domain)?;
        let row = self.row(user, &domain, password)?;
        let mut store = lock(&self.store);
        let missing = || DirectoryError::NoSuchUser(aor(user, &domain));
        if self.read().get(user, &domain).is_none() {
            return Err(missing());
        }
        if let Some(s) = store.as_mut()
            && !s.set_credentials(&row)?
        {
            return Err(missing());
        }
        let mut t = self.write();
        let entry = t.get_mut(user, &domain).ok_or_else(missing)?;
        let groups = std::mem::take(&mut entry.groups);
        *entry = Entry {
            groups,
            ..Entry::from_row(&row)
        };
        Ok(())
    }

    /// Remove `user@domain` and its group memberships. Blocking.
    pub fn remove(&self, user: &str, domain: &str) -> Result<(), DirectoryError> {
        let domain = domain.to_ascii_lowercase();
        let mut store = lock(&self.store);
        let missing = || DirectoryError::NoSuchUser(aor(user, &domain));
        if self.read().get(user, &domain).is_none() {
            return Err(missing());
        }
        if let Some(s) = store.as_mut()
            && !s.remove_subscriber(user, &domain)?
        {
            return Err(missing());
        }
        self.write().remove(user, &domain);
        Ok(())
    }

    /// Put `user@domain` in `group`. Blocking.
    pub fn grant(&self, user: &str, domain: &str, group: &str) -> Result<(), DirectoryError> {
        self.membership(user, domain, group, true)
    }

    /// Take `user@domain` out of `group`. Blocking.
    pub fn revoke(&self, user: &str, domain: &str, group: &str) -> Result<(), DirectoryError> {
        self.membership(user, domain, group, false)
    }

    fn membership(
        &self,
        user: &str,
        domain: &str,
        group: &str,
        member: bool,
    ) -> Result<(), DirectoryError> {
        check_name("group", group)?;
        let domain = domain.to_ascii_lowercase();
        let row = StoredGroup {
            username: user.to_owned(),
            domain: domain.clone(),
            group: group.to_owned(),
        };
        let mut store = lock(&self.store);
        let already = || {
            let (aor, group) = (aor(user, &domain), group.to_owned());
            if member {
                DirectoryError::AlreadyMember { aor, group }
            } else {
                DirectoryError::NotMember { aor, group }
            }
        };
        match self.read().get(user, &domain) {
            None => return Err(DirectoryError::NoSuchUser(aor(user, &domain))),
            Some(e) if e.groups.iter().any(|g| &**g == group) == member => return Err(already()),
            Some(_) => {}
        }
        if let Some(s) = store.as_mut() {
            let changed = if member {
                s.grant(&row)?
            } else {
                s.revoke(&row)?
            };
            if !changed {
                return Err(already());
            }
        }
        let mut t = self.write();
        let entry = t
            .get_mut(user, &domain)
            .ok_or_else(|| DirectoryError::NoSuchUser(aor(user, &domain)))?;
        match (entry.groups.binary_search_by(|g| (**g).cmp(group)), member) {
            (Err(at), true) => entry.groups.insert(at, group.into()),
            (Ok(at), false) => {
                entry.groups.remove(at);
            }
            _ => {}
        }
        Ok(())
    }

    /// The groups of `user@domain`, `None` if there is no such subscriber.
    pub fn groups(&self, user: &str, domain: &str) -> Option<Vec<String>> {
        let t = self.read();
        let e = t.get(user, &domain.to_ascii_lowercase())?;
        Some(e.groups.iter().map(|g| g.to_string()).collect())
    }

    /// Every subscriber (or only `user@domain`), by domain then user.
    pub fn list(&self, only: Option<(&str, &str)>) -> Vec<SubscriberInfo> {
        let info = |user: &str, domain: &str, e: &Entry| SubscriberInfo {
            user: user.to_owned(),
            domain: domain.to_owned(),
            groups: e.groups.iter().map(|g| g.to_string()).collect(),
        };
        let t = self.read();
        if let Some((user, domain)) = only {
            let domain = domain.to_ascii_lowercase();
            return t
                .get(user, &domain)
                .map(|e| info(user, &domain, e))
                .into_iter()
                .collect();
        }
        let mut all: Vec<SubscriberInfo> = t
            .domains
            .iter()
            .flat_map(|(d, users)| users.iter().map(move |(u, e)| (u, d, e)))
            .map(|(u, d, e)| info(u, d, e))
            .collect();
        drop(t);
        all.sort_by(|a, b| (&a.domain, &a.user).cmp(&(&b.domain, &b.user)));
        all
    }

    /// The row of a subscriber with `password`: HA1s for the realm equal
    /// to the domain; the password itself only if the manifest keeps it.
    fn row(
        &self,
        user: &str,
        domain: &str,
        password: &str,
    ) -> Result<StoredSubscriber, DirectoryError> {
        if password.is_empty() {
            return Err(DirectoryError::BadName {
                what: "password",
                value: String::new(),
                why: "must not be empty",
            });
        }
        Ok(StoredSubscriber {
            username: user.to_owned(),
            domain: domain.to_owned(),
            ha1: Algorithm::Md5.ha1(user, domain, password),
            ha1_sha256: Algorithm::Sha256.ha1(user, domain, password),
            ha1_sha512_256: Algorithm::Sha512_256.ha1(user, domain, password),
            password: self.config.store_passwords.then(|| password.to_owned()),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Table> {
        // Each change replaces whole values: a panic cannot leave one half done.
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Table> {
        self.table.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Directory for Subscribers {
    fn ha1(&self, user: &str, realm: &str, algorithm: Algorithm) -> Option<String> {
        let lower;
        let domain = if realm.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = realm.to_ascii_lowercase();
            lower.as_str()
        } else {
            realm
        };
        let password = {
            let t = self.read();
            let e = t.get(user, domain)?;
            match &e.password {
                Some(p) => p.clone(),
                None => {
                    return match algorithm {
                        Algorithm::Md5 => e.md5.map(|h| to_hex(&h)),
                        Algorithm::Sha256 => e.sha256.map(|h| to_hex(&h)),
                        Algorithm::Sha512_256 => e.sha512_256.map(|h| to_hex(&h)),
                    };
                }
            }
        };
        // Computed outside the lock, for the realm as the client wrote it.
        Some(algorithm.ha1(user, realm, &password))
    }

    fn in_group(&self, user: &str, domain: &str, group: &str) -> bool {
        let t = self.read();
        let entry = match t.get(user, domain) {
            Some(e) => Some(e),
            None if domain.bytes().any(|b| b.is_ascii_uppercase()) => {
                t.get(user, &domain.to_ascii_lowercase())
            }
            None => None,
        };
        entry.is_some_and(|e| e.groups.iter().any(|g| &**g == group))
    }
}

fn aor(user: &str, domain: &str) -> String {
    format!("{user}@{domain}")
}

/// A user and domain fit to be a subscriber; the domain lower-cased (the
/// form it is stored and looked up in).
fn check_aor(user: &str, domain: &str) -> Result<String, DirectoryError> {
    check_name("user", user)?;
    check_name("domain", domain)?;
    if user.contains('@') || domain.contains('@') {
        return Err(DirectoryError::BadName {
            what: if user.contains('@') { "user" } else { "domain" },
            value: if user.contains('@') { user } else { domain }.to_owned(),
            why: "must not contain '@'",
        });
    }
    Ok(domain.to_ascii_lowercase())
}

/// Not empty, and no spaces or control characters: names an operator can
/// type and a digest `username` can carry.
fn check_name(what: &'static str, value: &str) -> Result<(), DirectoryError> {
    let why = if value.is_empty() {
        "must not be empty"
    } else if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "must not contain spaces or control characters"
    } else {
        return Ok(());
    };
    Err(DirectoryError::BadName {
        what,
        value: value.to_owned(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max: usize, store_passwords: bool) -> SubscriberConfig {
        SubscriberConfig {
            store_passwords,
            max_entries: max,
        }
    }

    fn on_disk(path: &Path, max: usize, store_passwords: bool) -> Subscribers {
        Subscribers::open(config(max, store_passwords), Some(path)).expect("open")
    }

    #[test]
    fn rfc2617_ha1_of_each_algorithm_is_h_of_user_realm_password() {
        let d = Subscribers::in_memory(config(10, false));
        d.add("alice", "Example.COM", "s3cret").expect("add");
        for alg in Algorithm::ALL {
            assert_eq!(
                d.ha1("alice", "example.com", alg),
                Some(alg.ha1("alice", "example.com", "s3cret")),
                "{alg:?}"
            );
        }
        assert!(
            matches!(
                d.add("Mufasa", "testrealm@host.com", "Circle Of Life"),
                Err(DirectoryError::BadName { what: "domain", .. })
            ),
            "a realm with '@' (RFC 2617's example) is no domain"
        );
        assert_eq!(d.ha1("alice", "example.org", Algorithm::Md5), None);
        assert_eq!(d.ha1("bob", "example.com", Algorithm::Md5), None);
        assert_eq!(d.ha1("Alice", "example.com", Algorithm::Md5), None);
    }

    #[test]
    fn a_known_vector_and_the_realm_in_any_case() {
        let d = Subscribers::in_memory(config(10, false));
        d.add("Mufasa", "testrealm.host.com", "Circle Of Life")
            .expect("add");
        // md5("Mufasa:testrealm.host.com:Circle Of Life"), by Python's hashlib.
        assert_eq!(
            d.ha1("Mufasa", "TestRealm.host.com", Algorithm::Md5)
                .as_deref(),
            Some("1b9252507f9577ba8a726be59b4548e5"),
            "realms are domains: matched without case, HA1 as stored"
        );
    }

    #[test]
    fn a_stored_password_computes_the_ha1_for_the_realm_as_written() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("wisp.db");
        let d = on_disk(&path, 10, true);
        d.add("alice", "example.com", "s3cret").expect("add");
        assert_eq!(
            d.ha1("alice", "Example.com", Algorithm::Sha256),
            Some(Algorithm::Sha256.ha1("alice", "Example.com", "s3cret"))
        );
        let mut store = SqliteStore::open(&path, Durability::Normal).expect("open");
        let rows = store.load_all(10).expect("load");
        assert_eq!(rows.subscribers[0].password.as_deref(), Some("s3cret"));
        drop(d);
        let d = on_disk(&path, 10, false);
        d.set_password("alice", "example.com", "n3w")
            .expect("passwd");
        let rows = store.load_all(10).expect("load");
        assert_eq!(
            rows.subscribers[0].password, None,
            "store_passwords = false keeps no password, not even an old one"
        );
        assert_eq!(
            rows.subscribers[0].ha1,
            Algorithm::Md5.ha1("alice", "example.com", "n3w")
        );
    }

    #[test]
    fn changes_are_refused_with_the_reason() {
        let d = Subscribers::in_memory(config(2, false));
        d.add("alice", "example.com", "a").expect("add");
        assert!(matches!(
            d.add("alice", "EXAMPLE.com", "b"),
            Err(DirectoryError::Exists(a)) if a == "alice@example.com"
        ));
        assert_eq!(
            d.ha1("alice", "example.com", Algorithm::Md5),
            Some(Algorithm::Md5.ha1("alice", "example.com", "a")),
            "a refused add changed nothing"
        );
        assert!(matches!(
            d.set_password("bob", "example.com", "x"),
            Err(DirectoryError::NoSuchUser(_))
        ));
        assert!(matches!(
            d.remove("bob", "example.com"),
            Err(DirectoryError::NoSuchUser(_))
        ));
        assert!(matches!(
            d.grant("bob", "example.com", "int"),
            Err(DirectoryError::NoSuchUser(_))
        ));
        for (user, domain, password) in [
            ("", "example.com", "x"),
            ("al ice", "example.com", "x"),
            ("alice", "", "x"),
            ("alice", "exa\nmple.com", "x"),
            ("carol", "example.com", ""),
        ] {
            assert!(
                matches!(
                    d.add(user, domain, password),
                    Err(DirectoryError::BadName { .. })
                ),
                "{user:?} {domain:?} {password:?}"
            );
        }
        assert!(matches!(
            d.grant("alice", "example.com", ""),
            Err(DirectoryError::BadName { .. })
        ));
    }

    #[test]
    fn max_entries_bounds_adds_and_loads() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("wisp.db");
        let d = on_disk(&path, 2, false);
        d.add("a", "d", "p").expect("add");
        d.add("b", "d", "p").expect("add");
        let e = d.add("c", "d", "p").expect_err("full");
        assert!(matches!(e, DirectoryError::Full { max: 2 }), "{e}");
        assert!(e.to_string().contains("max_entries"), "{e}");
        assert_eq!(d.len(), 2);
        // Room again once one is removed.
        d.remove("a", "d").expect("rm");
        d.add("c", "d", "p").expect("add");
        drop(d);
        let e = Subscribers::open(config(1, false), Some(&path))
            .err()
            .expect("two rows, room for one");
        assert!(matches!(e, DirectoryError::TooMany { max: 1 }), "{e}");
        assert_eq!(on_disk(&path, 2, false).len(), 2);
    }

    #[test]
    fn groups_are_granted_revoked_and_go_with_the_subscriber() {
        let d = Subscribers::in_memory(config(10, false));
        d.add("alice", "example.com", "a").expect("add");
        assert!(!d.in_group("alice", "example.com", "int"));
        d.grant("alice", "example.com", "int").expect("grant");
        d.grant("alice", "Example.com", "local").expect("grant");
        assert!(d.in_group("alice", "example.com", "int"));
        assert!(d.in_group("alice", "EXAMPLE.COM", "int"));
        assert!(!d.in_group("alice", "example.org", "int"));
        assert!(!d.in_group("bob", "example.com", "int"));
        assert!(matches!(
            d.grant("alice", "example.com", "int"),
            Err(DirectoryError::AlreadyMember { .. })
        ));
        assert_eq!(
            d.groups("alice", "example.com"),
            Some(vec!["int".into(), "local".into()])
        );
        d.revoke("alice", "example.com", "int").expect("revoke");
        assert!(!d.in_group("alice", "example.com", "int"));
        assert!(matches!(
            d.revoke("alice", "example.com", "int"),
            Err(DirectoryError::NotMember { .. })
        ));
        d.set_password("alice", "example.com", "b").expect("passwd");
        assert!(
            d.in_group("alice", "example.com", "local"),
            "a new password keeps the groups"
        );
        d.remove("alice", "example.com").expect("rm");
        d.add("alice", "example.com", "a").expect("add");
        assert!(
            !d.in_group("alice", "example.com", "local"),
            "a user added again starts without the old rights"
        );
    }

    #[test]
    fn what_ctl_changes_is_there_after_a_reload() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("var/wisp.db");
        let d = on_disk(&path, 10, false);
        assert!(d.persistent());
        d.add("alice", "example.com", "a").expect("add");
        d.add("bob", "example.com", "b").expect("add");
        d.add("carol", "example.org", "c").expect("add");
        d.grant("alice", "example.com", "int").expect("grant");
        d.set_password("bob", "example.com", "b2").expect("passwd");
        d.remove("carol", "example.org").expect("rm");
        drop(d);
        let d = on_disk(&path, 10, false);
        assert_eq!(
            d.list(None),
            vec![
                SubscriberInfo {
                    user: "alice".into(),
                    domain: "example.com".into(),
                    groups: vec!["int".into()],
                },
                SubscriberInfo {
                    user: "bob".into(),
                    domain: "example.com".into(),
                    groups: vec![],
                },
            ]
        );
        assert_eq!(
            d.ha1("bob", "example.com", Algorithm::Sha512_256),
            Some(Algorithm::Sha512_256.ha1("bob", "example.com", "b2"))
        );
        assert!(d.in_group("alice", "example.com", "int"));
        assert_eq!(d.list(Some(("carol", "example.org"))), vec![]);
    }

    #[test]
    fn an_imported_row_with_only_an_md5_ha1_serves_md5_only() {
        let mut s = SqliteStore::open_in_memory().expect("open");
        let md5 = Algorithm::Md5.ha1("dave", "example.com", "d");
        s.insert_subscriber(&StoredSubscriber {
            username: "dave".into(),
            domain: "example.com".into(),
            ha1: md5.clone(),
            ha1_sha256: String::new(),
            ha1_sha512_256: "not hex".into(),
            password: None,
        })
        .expect("insert");
        s.grant(&StoredGroup {
            username: "nobody".into(),
            domain: "example.com".into(),
            group: "int".into(),
        })
        .expect("orphan group row");
        let d = Subscribers::load(config(10, false), Box::new(s)).expect("load");
        assert_eq!(d.ha1("dave", "example.com", Algorithm::Md5), Some(md5));
        assert_eq!(d.ha1("dave", "example.com", Algorithm::Sha256), None);
        assert_eq!(d.ha1("dave", "example.com", Algorithm::Sha512_256), None);
        assert!(!d.in_group("nobody", "example.com", "int"));
    }

    /// A database that refuses every write.
    struct Broken;

    impl SubscriberStore for Broken {
        fn load_all(
            &mut self,
            _: usize,
        ) -> Result<crate::store::subscriber::SubscriberRows, StoreError> {
            Ok(Default::default())
        }
        fn insert_subscriber(&mut self, _: &StoredSubscriber) -> Result<bool, StoreError> {
            Err(StoreError::WriterGone)
        }
        fn set_credentials(&mut self, _: &StoredSubscriber) -> Result<bool, StoreError> {
            Err(StoreError::WriterGone)
        }
        fn remove_subscriber(&mut self, _: &str, _: &str) -> Result<bool, StoreError> {
            Err(StoreError::WriterGone)
        }
        fn grant(&mut self, _: &StoredGroup) -> Result<bool, StoreError> {
            Err(StoreError::WriterGone)
        }
        fn revoke(&mut self, _: &StoredGroup) -> Result<bool, StoreError> {
            Err(StoreError::WriterGone)
        }
    }

    #[test]
    fn memory_changes_only_once_the_database_took_them() {
        let d = Subscribers::load(config(10, false), Box::new(Broken)).expect("load");
        assert!(matches!(
            d.add("alice", "example.com", "a"),
            Err(DirectoryError::Store(_))
        ));
        assert_eq!(d.ha1("alice", "example.com", Algorithm::Md5), None);
        assert!(d.is_empty());
    }
}
