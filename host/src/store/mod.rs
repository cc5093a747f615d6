//! Persistence of user location: the rows a binding becomes on disk, the
//! narrow [`BindingStore`] trait a database implements (SQLite for one
//! router, PostgreSQL for several that share their users), and the
//! background [`writer`] that batches changes into transactions off the
//! receive path. Subscribers and groups have their own narrow trait,
//! [`subscriber::SubscriberStore`], on the same database.
//!
//! Times on disk are wall-clock Unix seconds: an `Instant` means nothing to
//! the next process.

pub mod acc;
pub mod health;
pub mod postgres;
pub mod sqlite;
pub mod subscriber;
pub mod writer;

use std::time::{SystemTime, UNIX_EPOCH};

/// One binding as it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBinding {
    pub table: String,
    pub aor: String,
    pub contact: String,
    pub q: f32,
    /// Unix seconds of expiry; `None` for a permanent contact (`wisp ctl ul add ... permanent`).
    pub expires: Option<i64>,
    pub call_id: String,
    pub cseq: u32,
    pub received: Option<String>,
    /// The Path header values (RFC 3327) the contact registered through.
    pub path: Option<String>,
    /// The Contact's header parameters other than `q` and `expires`, as
    /// registered (`;+sip.instance="<urn:uuid:..>";reg-id=1`, RFC 5626 §6).
    pub params: Option<String>,
    /// Unix seconds of the last write (freshness ordering survives a restart).
    pub updated: i64,
    /// The router that saved it (`server.server_id`, Kamailio's `server_id`).
    pub server_id: u32,
    /// The socket the REGISTER came in on, `proto:ip:port` (Kamailio's
    /// `socket`): how another router reaches the owner of a contact bound
    /// to one of its connections.
    pub socket: Option<String>,
    /// Behind a NAT (Kamailio's `nat_bflag` in `cflags`): kept alive by
    /// the keepalives of its owner (`server_id`).
    pub nat: bool,
}

/// A change to one (table, AOR, contact) row.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Insert or replace the binding.
    Put(StoredBinding),
    /// Remove the binding, if it is there and not newer than the removal
    /// (RFC 3261 §10.3 step 7, across nodes): a row of the same Call-ID
    /// with a higher CSeq, or of another Call-ID saved after `at`, stays.
    Delete {
        table: String,
        aor: String,
        contact: String,
        /// The Call-ID of the REGISTER that removed the binding; empty for
        /// a management removal (`wisp ctl ul rm`), which always applies.
        call_id: String,
        /// The CSeq of that REGISTER.
        cseq: u32,
        /// Unix seconds of that REGISTER.
        at: i64,
    },
}

impl Change {
    /// A management removal of one binding (`wisp ctl`): applies whatever
    /// the row holds.
    pub fn delete(table: &str, aor: &str, contact: &str) -> Change {
        Change::Delete {
            table: table.to_owned(),
            aor: aor.to_owned(),
            contact: contact.to_owned(),
            call_id: String::new(),
            cseq: 0,
            at: 0,
        }
    }

    /// The row this change writes: later changes to the same key supersede it.
    pub fn key(&self) -> (&str, &str, &str) {
        match self {
            Change::Put(b) => (&b.table, &b.aor, &b.contact),
            Change::Delete {
                table,
                aor,
                contact,
                ..
            } => (table, aor, contact),
        }
    }
}

/// Why the database refused.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create {path}: {source}")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is damaged ({detail}). Stop wisp and restore the file from a backup, or move \
         it away to start with an empty database (`sqlite3 {path} .recover` may save its rows)"
    )]
    Damaged { path: String, detail: String },
    #[error("database schema version {found} is newer than this wisp understands ({supported})")]
    TooNew { found: i64, supported: i64 },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{url}: {detail}")]
    Url { url: String, detail: String },
    #[error("cannot connect to {url}: {}", pg_detail(source))]
    Connect {
        url: String,
        #[source]
        source: ::postgres::Error,
    },
    #[error("postgres: {}", pg_detail(.0))]
    Postgres(#[from] ::postgres::Error),
    #[error("the connection to the database is lost")]
    Disconnected,
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("cannot start the database writer: {0}")]
    Spawn(std::io::Error),
}

impl StoreError {
    /// Whether waiting will not help: the database's schema is newer, its
    /// URL is wrong, or the server answered and refused the login (no such
    /// database, a wrong password). A router does not start then, while it
    /// does start when the database is only away.
    pub fn is_refusal(&self) -> bool {
        match self {
            StoreError::TooNew { .. } | StoreError::Url { .. } => true,
            StoreError::Connect { source, .. } => source.code().is_some_and(|c| {
                let code = c.code();
                code.starts_with("28") || code == "3D000"
            }),
            _ => false,
        }
    }
}

/// What a PostgreSQL error says, with its cause: the server's own message
/// ("FATAL: terminating connection due to administrator command"), or the
/// I/O error under "error connecting to server".
fn pg_detail(e: &::postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// A database of bindings. Called from the writer thread only (and once at
/// start for [`BindingStore::load`]), so implementations need no locking.
pub trait BindingStore: Send + 'static {
    /// Every binding not yet expired at `now` (Unix seconds), permanent ones included.
    fn load(&mut self, now: i64) -> Result<Vec<StoredBinding>, StoreError>;
    /// Apply `changes` in order, all or nothing.
    fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError>;
    /// Delete bindings expired at `now`; returns how many.
    fn purge_expired(&mut self, now: i64) -> Result<usize, StoreError>;
    /// Whether the database answers (a server that may go away); a local
    /// file does.
    fn ping(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Wall-clock Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
