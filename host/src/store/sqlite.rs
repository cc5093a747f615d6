//! [`BindingStore`] on SQLite: one file, WAL journal, schema created and
//! migrated here (`PRAGMA user_version` counts the migrations applied).

use std::path::Path;

use rusqlite::{Connection, params};

use super::acc::{AccStore, StoredAcc};
use super::subscriber::{StoredGroup, StoredSubscriber, SubscriberRows, SubscriberStore};
use super::{BindingStore, Change, StoreError, StoredBinding};

/// Each entry takes the schema from version `i` to `i + 1`. Append only:
/// a database written by an older wisp is brought up to date at start.
const MIGRATIONS: &[&str] = &[
    // 1: user location. `usrloc_table` is the name `save`/`lookup` use
    // (`location`, `aliases`, ...); `expires` NULL is a permanent contact.
    "CREATE TABLE bindings (
        usrloc_table TEXT NOT NULL,
        aor TEXT NOT NULL,
        contact TEXT NOT NULL,
        q REAL NOT NULL,
        expires INTEGER,
        call_id TEXT NOT NULL,
        cseq INTEGER NOT NULL,
        received TEXT,
        updated INTEGER NOT NULL,
        PRIMARY KEY (usrloc_table, aor, contact)
    ) WITHOUT ROWID;
    CREATE INDEX bindings_expires ON bindings(expires) WHERE expires IS NOT NULL;",
    // 2: the Path (RFC 3327) a contact registered through.
    "ALTER TABLE bindings ADD COLUMN path TEXT;",
    // 3: subscribers (Kamailio's `subscriber` with one HA1 column per
    // digest algorithm; the realm of each HA1 is the domain) and their
    // groups (`grp`). `password` is NULL unless the manifest asks to store
    // plain passwords; an empty HA1 means none for that algorithm.
    "CREATE TABLE subscriber (
        username TEXT NOT NULL,
        domain TEXT NOT NULL,
        ha1 TEXT NOT NULL DEFAULT '',
        ha1_sha256 TEXT NOT NULL DEFAULT '',
        ha1_sha512_256 TEXT NOT NULL DEFAULT '',
        password TEXT,
        PRIMARY KEY (username, domain)
    ) WITHOUT ROWID;
    CREATE TABLE grp (
        username TEXT NOT NULL,
        domain TEXT NOT NULL,
        grp TEXT NOT NULL,
        PRIMARY KEY (username, domain, grp)
    ) WITHOUT ROWID;",
    // 4: the Contact's header parameters other than q and expires
    // (`+sip.instance`, `reg-id`, ...; RFC 5626 §6), as registered.
    "ALTER TABLE bindings ADD COLUMN params TEXT;",
    // 5: the router that saved the binding (`server.server_id`) and the
    // socket the REGISTER came in on (`tcp:ip:port`), as in Kamailio.
    "ALTER TABLE bindings ADD COLUMN server_id INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE bindings ADD COLUMN socket TEXT;",
    // 6: accounting records (Kamailio's `acc` columns, and its
    // `missed_calls` rows with `missed` = 1). `time` is Unix seconds with
    // the fraction; `duration` (seconds) only on a BYE of an answered call.
    "CREATE TABLE acc (
        id INTEGER PRIMARY KEY,
        method TEXT NOT NULL,
        from_tag TEXT NOT NULL,
        to_tag TEXT NOT NULL,
        callid TEXT NOT NULL,
        cseq INTEGER NOT NULL,
        sip_code INTEGER NOT NULL,
        sip_reason TEXT NOT NULL,
        time REAL NOT NULL,
        from_hdr TEXT NOT NULL,
        to_hdr TEXT NOT NULL,
        ruri TEXT NOT NULL,
        src TEXT NOT NULL,
        duration REAL,
        missed INTEGER NOT NULL
    );
    CREATE INDEX acc_time ON acc(time);
    CREATE INDEX acc_callid ON acc(callid);",
    // 7: the binding is behind a NAT (saved after `fix-nated-register`,
    // Kamailio's `nat_bflag`): its owner's keepalives ping it.
    "ALTER TABLE bindings ADD COLUMN nat INTEGER NOT NULL DEFAULT 0;",
];

/// How hard a commit insists on reaching the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = FULL`: the WAL is fsynced at every commit, so a
    /// committed binding survives a power cut, not only a crash. Batching
    /// keeps that to one fsync per batch.
    Full,
    /// `synchronous = NORMAL`: survives a crash of wisp; a power cut may
    /// lose the last commits (write-back accepts losing an interval anyway).
    Normal,
}

pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// Open (creating the file and its directory) and migrate the database.
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
            tracing::warn!(
                path = %path.display(),
                "the database file is empty (0 bytes): starting with an empty database; \
                 if it should hold registrations or subscribers, stop wisp and restore it from a backup"
            );
        }
        let conn = Connection::open(path).map_err(open_err)?;
        quick_check(&conn).map_err(|detail| StoreError::Damaged {
            path: path.display().to_string(),
            detail,
        })?;
        Self::setup(conn, durability).map_err(|e| match e {
            StoreError::Sqlite(source) => open_err(source),
            other => other,
        })
    }

    /// An in-memory database (tests).
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        Self::setup(Connection::open_in_memory()?, Durability::Normal)
    }

    fn setup(mut conn: Connection, durability: Durability) -> Result<SqliteStore, StoreError> {
        // WAL: readers (a future `ul show` from another process) never
        // block the writer, and a commit appends instead of rewriting pages.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.pragma_update(
            None,
            "synchronous",
            match durability {
                Durability::Full => "FULL",
                Durability::Normal => "NORMAL",
            },
        )?;
        // Another process holding the lock briefly (a backup) is waited for.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(SqliteStore { conn })
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}

/// SQLite's `PRAGMA quick_check` (the structure of every page, without the
/// index-content cross-check of `integrity_check`): a damaged file is
/// refused at start instead of failing the writes that reach its bad pages.
/// `Err` carries what SQLite found (its first few lines).
fn quick_check(conn: &Connection) -> Result<(), String> {
    let found: Result<Vec<String>, rusqlite::Error> = conn
        .prepare("PRAGMA quick_check(8)")
        .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect());
    match found {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(()),
        Ok(lines) => Err(lines.join("; ")),
        Err(e) => Err(e.to_string()),
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let supported = MIGRATIONS.len() as i64;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > supported {
        return Err(StoreError::TooNew { found, supported });
    }
    let tx = conn.transaction()?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        // PRAGMA takes no bound parameters; `i + 1` is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
    }
    tx.commit()?;
    Ok(())
}

impl BindingStore for SqliteStore {
    fn load(&mut self, now: i64) -> Result<Vec<StoredBinding>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT usrloc_table, aor, contact, q, expires, call_id, cseq, received, updated, path,
             params, server_id, socket, nat FROM bindings WHERE expires IS NULL OR expires > ?1",
        )?;
        let rows = stmt.query_map([now], |r| {
            Ok(StoredBinding {
                table: r.get(0)?,
                aor: r.get(1)?,
                contact: r.get(2)?,
                q: r.get::<_, f64>(3)? as f32,
                expires: r.get(4)?,
                call_id: r.get(5)?,
                cseq: r.get(6)?,
                received: r.get(7)?,
                updated: r.get(8)?,
                path: r.get(9)?,
                params: r.get(10)?,
                server_id: r.get(11)?,
                socket: r.get(12)?,
                nat: r.get(13)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO bindings
                 (usrloc_table, aor, contact, q, expires, call_id, cseq, received, updated, path,
                  params, server_id, socket, nat)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            // RFC 3261 §10.3 step 7, as on PostgreSQL: a row newer than the
            // REGISTER that removed it (same Call-ID with a CSeq not lower,
            // or another Call-ID saved after it) stays; a management
            // removal (empty Call-ID) always applies.
            let mut delete = tx.prepare_cached(
                "DELETE FROM bindings WHERE usrloc_table = ?1 AND aor = ?2 AND contact = ?3
                 AND (?4 = ''
                      OR (call_id = ?4 AND cseq < ?5)
                      OR (call_id <> ?4 AND updated <= ?6))",
            )?;
            for change in changes {
                match change {
                    Change::Put(b) => {
                        put.execute(params![
                            b.table,
                            b.aor,
                            b.contact,
                            b.q as f64,
                            b.expires,
                            b.call_id,
                            b.cseq,
                            b.received,
                            b.updated,
                            b.path,
                            b.params,
                            b.server_id,
                            b.socket,
                            b.nat
                        ])?;
                    }
                    Change::Delete {
                        table,
                        aor,
                        contact,
                        call_id,
                        cseq,
                        at,
                    } => {
                        delete.execute(params![table, aor, contact, call_id, cseq, at])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn purge_expired(&mut self, now: i64) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM bindings WHERE expires IS NOT NULL AND expires <= ?1",
            [now],
        )?)
    }
}

const ACC_COLUMNS: &str = "method, from_tag, to_tag, callid, cseq, sip_code, sip_reason, time,
    from_hdr, to_hdr, ruri, src, duration, missed";

impl AccStore for SqliteStore {
    fn insert_acc(&mut self, rows: &[StoredAcc]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO acc ({ACC_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
            ))?;
            for r in rows {
                insert.execute(params![
                    r.method,
                    r.from_tag,
                    r.to_tag,
                    r.callid,
                    r.cseq,
                    r.sip_code,
                    r.sip_reason,
                    r.time,
                    r.from,
                    r.to,
                    r.ruri,
                    r.src,
                    r.duration,
                    r.missed
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn latest_acc(&mut self, n: usize) -> Result<Vec<StoredAcc>, StoreError> {
        latest_acc(&self.conn, n)
    }
}

/// The latest `n` accounting records of the database at `path`, oldest
/// first, on a read-only connection of its own (`wisp ctl acc show`, while
/// the writer thread keeps its own).
pub fn read_latest_acc(path: &Path, n: usize) -> Result<Vec<StoredAcc>, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.display().to_string(),
        source,
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    latest_acc(&conn, n)
}

fn latest_acc(conn: &Connection, n: usize) -> Result<Vec<StoredAcc>, StoreError> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ACC_COLUMNS} FROM (SELECT * FROM acc ORDER BY id DESC LIMIT ?1) ORDER BY id"
    ))?;
    let rows = stmt.query_map([n], |r| {
        Ok(StoredAcc {
            method: r.get(0)?,
            from_tag: r.get(1)?,
            to_tag: r.get(2)?,
            callid: r.get(3)?,
            cseq: r.get(4)?,
            sip_code: r.get(5)?,
            sip_reason: r.get(6)?,
            time: r.get(7)?,
            from: r.get(8)?,
            to: r.get(9)?,
            ruri: r.get(10)?,
            src: r.get(11)?,
            duration: r.get(12)?,
            missed: r.get(13)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

impl SubscriberStore for SqliteStore {
    fn load_all(&mut self, limit: usize) -> Result<SubscriberRows, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
        let mut stmt = self.conn.prepare(
            "SELECT username, domain, ha1, ha1_sha256, ha1_sha512_256, password
             FROM subscriber LIMIT ?1",
        )?;
        let subscribers = stmt
            .query_map([limit], |r| {
                Ok(StoredSubscriber {
                    username: r.get(0)?,
                    domain: r.get(1)?,
                    ha1: r.get(2)?,
                    ha1_sha256: r.get(3)?,
                    ha1_sha512_256: r.get(4)?,
                    password: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = self.conn.prepare("SELECT username, domain, grp FROM grp")?;
        let groups = stmt
            .query_map([], |r| {
                Ok(StoredGroup {
                    username: r.get(0)?,
                    domain: r.get(1)?,
                    group: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SubscriberRows {
            subscribers,
            groups,
        })
    }

    fn insert_subscriber(&mut self, s: &StoredSubscriber) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO subscriber
             (username, domain, ha1, ha1_sha256, ha1_sha512_256, password)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                s.username,
                s.domain,
                s.ha1,
                s.ha1_sha256,
                s.ha1_sha512_256,
                s.password
            ],
        )?;
        Ok(n == 1)
    }

    fn set_credentials(&mut self, s: &StoredSubscriber) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "UPDATE subscriber SET ha1 = ?3, ha1_sha256 = ?4, ha1_sha512_256 = ?5, password = ?6
             WHERE username = ?1 AND domain = ?2",
            params![
                s.username,
                s.domain,
                s.ha1,
                s.ha1_sha256,
                s.ha1_sha512_256,
                s.password
            ],
        )?;
        Ok(n == 1)
    }

    fn remove_subscriber(&mut self, username: &str, domain: &str) -> Result<bool, StoreError> {
        // Immediate: the write lock (waited for under the busy timeout) is
        // taken up front, as the other connection on this file may write.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "DELETE FROM subscriber WHERE username = ?1 AND domain = ?2",
            params![username, domain],
        )?;
        tx.execute(
            "DELETE FROM grp WHERE username = ?1 AND domain = ?2",
            params![username, domain],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }

    fn grant(&mut self, g: &StoredGroup) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO grp (username, domain, grp) VALUES (?1, ?2, ?3)",
            params![g.username, g.domain, g.group],
        )?;
        Ok(n == 1)
    }

    fn revoke(&mut self, g: &StoredGroup) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "DELETE FROM grp WHERE username = ?1 AND domain = ?2 AND grp = ?3",
            params![g.username, g.domain, g.group],
        )?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::OptionalExtension;

    fn has_bindings_table(conn: &Connection) -> Result<bool, StoreError> {
        Ok(conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'bindings'",
                [],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn binding(aor: &str, contact: &str, expires: Option<i64>) -> StoredBinding {
        StoredBinding {
            table: "location".into(),
            aor: aor.into(),
            contact: contact.into(),
            q: 0.5,
            expires,
            call_id: "c1".into(),
            cseq: 7,
            received: Some("sip:10.0.0.1:5060".into()),
            path: Some("<sip:edge.example;lr>".into()),
            params: Some(
                ";+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1"
                    .into(),
            ),
            updated: 1000,
            server_id: 2,
            socket: Some("tcp:192.0.2.9:5060".into()),
            nat: true,
        }
    }

    #[test]
    fn fresh_database_is_migrated_to_the_latest_schema() {
        let s = SqliteStore::open_in_memory().expect("open");
        assert_eq!(
            s.schema_version().expect("version"),
            MIGRATIONS.len() as i64
        );
        assert!(has_bindings_table(&s.conn).expect("query"));
    }

    #[test]
    fn a_database_from_a_newer_wisp_is_refused() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path();
        let path = dir.join("sub/wisp.db");
        drop(SqliteStore::open(&path, Durability::Normal).expect("create"));
        let conn = Connection::open(&path).expect("reopen");
        conn.execute_batch("PRAGMA user_version = 99")
            .expect("bump");
        drop(conn);
        let err = SqliteStore::open(&path, Durability::Normal)
            .err()
            .expect("refused");
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
    }

    #[test]
    fn a_damaged_database_is_refused_with_what_to_do_and_an_empty_file_is_a_new_one() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("wisp.db");
        let mut s = SqliteStore::open(&path, Durability::Normal).expect("create");
        let rows: Vec<Change> = (0..3000)
            .map(|i| Change::Put(binding(&format!("user{i}"), "sip:u@192.0.2.1", Some(4000))))
            .collect();
        s.commit(&rows).expect("commit");
        s.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .expect("checkpoint");
        drop(s);
        // Overwrite two pages in the middle of the table's b-tree.
        let mut bytes = std::fs::read(&path).expect("read");
        assert!(bytes.len() > 12 * 4096, "{} bytes", bytes.len());
        bytes[8 * 4096..10 * 4096].fill(0xA5);
        std::fs::write(&path, &bytes).expect("write");
        let err = SqliteStore::open(&path, Durability::Normal)
            .err()
            .expect("a damaged database is refused");
        let text = err.to_string();
        assert!(matches!(err, StoreError::Damaged { .. }), "{text}");
        assert!(
            text.contains("wisp.db") && text.contains("backup"),
            "{text}"
        );
        // A file that is not a database at all.
        std::fs::write(&path, b"not a database, just some bytes of another file").expect("write");
        let err = SqliteStore::open(&path, Durability::Normal)
            .err()
            .expect("refused");
        assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
        // A zero-length file is taken as a new database (with a warning).
        std::fs::write(&path, b"").expect("truncate");
        let s = SqliteStore::open(&path, Durability::Normal).expect("empty file opens");
        assert_eq!(
            s.schema_version().expect("version"),
            MIGRATIONS.len() as i64
        );
    }

    #[test]
    fn put_replace_delete_and_load_skips_expired() {
        let mut s = SqliteStore::open_in_memory().expect("open");
        s.commit(&[
            Change::Put(binding("a", "sip:a@1", Some(2000))),
            Change::Put(binding("a", "sip:a@2", Some(1500))),
            Change::Put(binding("b", "sip:b@1", None)),
            Change::Put(binding("c", "sip:c@1", Some(3000))),
        ])
        .expect("commit");
        let mut replaced = binding("a", "sip:a@1", Some(2500));
        replaced.cseq = 8;
        s.commit(&[
            Change::Put(replaced.clone()),
            Change::delete("location", "c", "sip:c@1"),
        ])
        .expect("commit");
        let mut rows = s.load(1600).expect("load");
        rows.sort_by(|x, y| x.contact.cmp(&y.contact));
        assert_eq!(rows, vec![replaced, binding("b", "sip:b@1", None)]);
        assert_eq!(s.purge_expired(1600).expect("purge"), 1);
        assert_eq!(s.load(0).expect("load").len(), 2);
    }

    #[test]
    fn an_older_unregister_cannot_remove_a_newer_binding() {
        let mut s = SqliteStore::open_in_memory().expect("open");
        let unregister = |call_id: &str, cseq: u32, at: i64| Change::Delete {
            table: "location".into(),
            aor: "a".into(),
            contact: "sip:a@1".into(),
            call_id: call_id.into(),
            cseq,
            at,
        };
        // Saved by the REGISTER c1/7 at 1000.
        let newer = binding("a", "sip:a@1", None);
        s.commit(&[Change::Put(newer.clone())]).expect("commit");
        // Same Call-ID, CSeq not higher: §10.3 step 7 aborts it.
        s.commit(&[unregister("c1", 6, 5000), unregister("c1", 7, 5000)])
            .expect("commit");
        // Another Call-ID from before the binding was saved.
        s.commit(&[unregister("c2", 100, 999)]).expect("commit");
        assert_eq!(s.load(0).expect("load"), vec![newer.clone()]);
        s.commit(&[unregister("c1", 8, 0)]).expect("commit");
        assert_eq!(s.load(0).expect("load"), vec![]);
        s.commit(&[Change::Put(newer.clone())]).expect("commit");
        s.commit(&[unregister("c2", 1, 1000)]).expect("commit");
        assert_eq!(s.load(0).expect("load"), vec![], "another Call-ID, later");
        s.commit(&[Change::Put(newer)]).expect("commit");
        s.commit(&[Change::delete("location", "a", "sip:a@1")])
            .expect("commit");
        assert_eq!(s.load(0).expect("load"), vec![], "management removal");
    }

    fn subscriber(user: &str, domain: &str, password: Option<&str>) -> StoredSubscriber {
        StoredSubscriber {
            username: user.into(),
            domain: domain.into(),
            ha1: format!("md5-{user}"),
            ha1_sha256: format!("sha256-{user}"),
            ha1_sha512_256: format!("sha512-{user}"),
            password: password.map(str::to_owned),
        }
    }

    fn group(user: &str, domain: &str, group: &str) -> StoredGroup {
        StoredGroup {
            username: user.into(),
            domain: domain.into(),
            group: group.into(),
        }
    }

    #[test]
    fn subscribers_are_inserted_once_updated_and_removed_with_their_groups() {
        let mut s = SqliteStore::open_in_memory().expect("open");
        let alice = subscriber("alice", "example.com", None);
        assert!(s.insert_subscriber(&alice).expect("insert"));
        assert!(
            !s.insert_subscriber(&subscriber("alice", "example.com", Some("x")))
                .expect("insert"),
            "an existing subscriber is not replaced"
        );
        // Same user in another domain is another subscriber.
        let other = subscriber("alice", "example.org", Some("pw"));
        assert!(s.insert_subscriber(&other).expect("insert"));

        let mut changed = alice.clone();
        changed.ha1 = "new".into();
        changed.password = Some("s3cret".into());
        assert!(s.set_credentials(&changed).expect("update"));
        assert!(
            !s.set_credentials(&subscriber("bob", "example.com", None))
                .expect("update"),
            "no row for bob"
        );

        assert!(
            s.grant(&group("alice", "example.com", "int"))
                .expect("grant")
        );
        assert!(
            !s.grant(&group("alice", "example.com", "int"))
                .expect("grant")
        );
        assert!(
            s.grant(&group("alice", "example.com", "local"))
                .expect("grant")
        );
        assert!(
            s.grant(&group("alice", "example.org", "int"))
                .expect("grant")
        );
        assert!(
            s.revoke(&group("alice", "example.com", "local"))
                .expect("revoke")
        );
        assert!(
            !s.revoke(&group("alice", "example.com", "local"))
                .expect("revoke")
        );

        let mut rows = s.load_all(10).expect("load");
        rows.subscribers.sort_by(|a, b| a.domain.cmp(&b.domain));
        rows.groups.sort();
        assert_eq!(rows.subscribers, vec![changed, other]);
        assert_eq!(
            rows.groups,
            vec![
                group("alice", "example.com", "int"),
                group("alice", "example.org", "int")
            ]
        );

        assert!(s.remove_subscriber("alice", "example.com").expect("rm"));
        assert!(!s.remove_subscriber("alice", "example.com").expect("rm"));
        let rows = s.load_all(10).expect("load");
        assert_eq!(rows.subscribers.len(), 1);
        assert_eq!(
            rows.groups,
            vec![group("alice", "example.org", "int")],
            "the removed subscriber's memberships went with it"
        );
    }

    #[test]
    fn load_all_reads_at_most_one_subscriber_past_the_limit() {
        let mut s = SqliteStore::open_in_memory().expect("open");
        for i in 0..5 {
            s.insert_subscriber(&subscriber(&format!("u{i}"), "d", None))
                .expect("insert");
        }
        assert_eq!(s.load_all(2).expect("load").subscribers.len(), 3);
        assert_eq!(s.load_all(5).expect("load").subscribers.len(), 5);
        assert_eq!(s.load_all(usize::MAX).expect("load").subscribers.len(), 5);
    }

    pub(crate) fn acc_row(callid: &str, code: u16, missed: bool) -> StoredAcc {
        StoredAcc {
            method: "INVITE".into(),
            from_tag: "f1".into(),
            to_tag: "t1".into(),
            callid: callid.into(),
            cseq: 1,
            sip_code: code,
            sip_reason: "Busy Here".into(),
            time: 1_700_000_000.25,
            from: "<sip:a@h>;tag=f1".into(),
            to: "<sip:b@h>;tag=t1".into(),
            ruri: "sip:b@10.0.0.2".into(),
            src: "udp:10.0.0.1:5060".into(),
            duration: Some(1.5),
            missed,
        }
    }

    #[test]
    fn acc_rows_are_appended_in_batches_and_read_back_latest_last() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("wisp.db");
        let mut s = SqliteStore::open(&path, Durability::Normal).expect("open");
        let first: Vec<StoredAcc> = (0..3)
            .map(|i| acc_row(&format!("c{i}"), 200, false))
            .collect();
        s.insert_acc(&first).expect("insert");
        let missed = StoredAcc {
            duration: None,
            ..acc_row("c3", 486, true)
        };
        s.insert_acc(std::slice::from_ref(&missed)).expect("insert");
        assert_eq!(
            s.latest_acc(2).expect("read"),
            vec![first[2].clone(), missed.clone()]
        );
        // Another connection, read-only, while the first stays open.
        let all = read_latest_acc(&path, 100).expect("read");
        assert_eq!(all.len(), 4);
        assert_eq!(all[0], first[0]);
        assert_eq!(all[3], missed);
    }

    #[test]
    fn a_version_2_database_gains_the_subscriber_tables_and_keeps_its_bindings() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("wisp.db");
        {
            let mut conn = Connection::open(&path).expect("create");
            let tx = conn.transaction().expect("tx");
            tx.execute_batch(MIGRATIONS[0]).expect("v1");
            tx.execute_batch(MIGRATIONS[1]).expect("v2");
            tx.execute_batch("PRAGMA user_version = 2")
                .expect("version");
            tx.commit().expect("commit");
        }
        let mut s = SqliteStore::open(&path, Durability::Normal).expect("migrate");
        s.commit(&[Change::Put(binding("a", "sip:a@1", None))])
            .expect("bindings still work");
        assert!(
            s.insert_subscriber(&subscriber("alice", "example.com", None))
                .expect("the subscriber table exists")
        );
        assert_eq!(
            s.schema_version().expect("version"),
            MIGRATIONS.len() as i64
        );
    }

    #[test]
    fn a_version_3_database_gains_contact_params_and_its_bindings_load_without_them() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("wisp.db");
        {
            let mut conn = Connection::open(&path).expect("create");
            let tx = conn.transaction().expect("tx");
            for sql in &MIGRATIONS[..3] {
                tx.execute_batch(sql).expect("old schema");
            }
            tx.execute(
                "INSERT INTO bindings (usrloc_table, aor, contact, q, expires, call_id, cseq,
                 received, updated, path) VALUES ('location', 'old', 'sip:old@1', 1.0, NULL,
                 'c', 1, NULL, 5, NULL)",
                [],
            )
            .expect("old row");
            tx.execute_batch("PRAGMA user_version = 3")
                .expect("version");
            tx.commit().expect("commit");
        }
        let mut s = SqliteStore::open(&path, Durability::Normal).expect("migrate");
        assert_eq!(
            s.schema_version().expect("version"),
            MIGRATIONS.len() as i64
        );
        let with_params = binding("new", "sip:new@1", None);
        s.commit(&[Change::Put(with_params.clone())])
            .expect("commit");
        let mut rows = s.load(0).expect("load");
        rows.sort_by(|x, y| x.aor.cmp(&y.aor));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], with_params, "params kept with the binding");
        assert_eq!(
            (rows[1].aor.as_str(), rows[1].params.as_deref()),
            ("old", None)
        );
        assert_eq!(
            (rows[1].server_id, rows[1].socket.as_deref()),
            (0, None),
            "an older row belongs to router 0, socket unknown"
        );
        assert!(!rows[1].nat, "an older row is not flagged NATed");
    }
}
