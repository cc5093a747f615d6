//! [`BindingStore`] on SQLite: one file, WAL journal, schema created and
//! migrated here (`PRAGMA user_version` counts the migrations applied).

use std::path::Path;

use rusqlite::{Connection, params};

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
        let conn = Connection::open(path).map_err(open_err)?;
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
            "SELECT usrloc_table, aor, contact, q, expires, call_id, cseq, received, updated, path
             FROM bindings WHERE expires IS NULL OR expires > ?1",
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
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO bindings
                 (usrloc_table, aor, contact, q, expires, call_id, cseq, received, updated, path)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            let mut delete = tx.prepare_cached(
                "DELETE FROM bindings WHERE usrloc_table = ?1 AND aor = ?2 AND contact = ?3",
            )?;
            for change in changes {
                match change {
                    Change::Put(b) => {
                        put.execute(params![
                            b.table, b.aor, b.contact, b.q as f64, b.expires, b.call_id, b.cseq,
                            b.received, b.updated, b.path
                        ])?;
                    }
                    Change::Delete {
                        table,
                        aor,
                        contact,
                    } => {
                        delete.execute(params![table, aor, contact])?;
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
            updated: 1000,
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
            Change::Delete {
                table: "location".into(),
                aor: "c".into(),
                contact: "sip:c@1".into(),
            },
        ])
        .expect("commit");
        let mut rows = s.load(1600).expect("load");
        rows.sort_by(|x, y| x.contact.cmp(&y.contact));
        assert_eq!(rows, vec![replaced, binding("b", "sip:b@1", None)]);
        assert_eq!(s.purge_expired(1600).expect("purge"), 1);
        assert_eq!(s.load(0).expect("load").len(), 2);
    }
}
