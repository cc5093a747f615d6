//! [`BindingStore`] and [`SubscriberStore`] on PostgreSQL: the database
//! several routers share (`usrloc.db_url`). Same rows as on SQLite; the
//! schema is created and migrated here, counted in `wisp_schema`, under an
//! advisory lock so that routers starting together migrate once.
//!
//! The client is the synchronous `postgres` crate, used from the thread
//! that owns the store (the database writer, the change listener, the
//! subscriber directory's management calls): never from a receive task. A
//! connection that broke is dropped and made again at the next call.
//!
//! Across nodes, an upsert keeps RFC 3261 §10.3 step 7 in SQL: a binding
//! with the same Call-ID and a CSeq not higher than stored changes nothing
//! (the node that took the later REGISTER wrote a newer row already).
//! Every change to `bindings` NOTIFYs [`CHANNEL`] with `[table, aor]`, so
//! that each node can re-read that AOR into its memory.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls, Row};

use super::acc::{AccStore, StoredAcc};
use super::subscriber::{StoredGroup, StoredSubscriber, SubscriberRows, SubscriberStore};
use super::{BindingStore, Change, StoreError, StoredBinding};
use crate::config::parse_db_url;

/// The channel every change of `bindings` is announced on; the payload is
/// the JSON array `[usrloc_table, aor, node]`, `node` the changing
/// session's `wisp.node` ([`PgStore::set_node`]) or null.
pub const CHANNEL: &str = "wisp_bindings";

/// The channel every change of `subscriber` or `grp` is announced on; the
/// payload is the changing session's `wisp.node`, empty for another client.
pub const SUBSCRIBER_CHANNEL: &str = "wisp_subscribers";

/// Each entry takes the schema from version `i` to `i + 1`. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: user location (as on SQLite: `expires` NULL is a permanent
    // contact, times are Unix seconds), subscribers and their groups.
    "CREATE TABLE bindings (
        usrloc_table TEXT NOT NULL,
        aor TEXT NOT NULL,
        contact TEXT NOT NULL,
        q REAL NOT NULL,
        expires BIGINT,
        call_id TEXT NOT NULL,
        cseq BIGINT NOT NULL,
        received TEXT,
        path TEXT,
        params TEXT,
        updated BIGINT NOT NULL,
        PRIMARY KEY (usrloc_table, aor, contact)
    );
    CREATE INDEX bindings_expires ON bindings (expires) WHERE expires IS NOT NULL;
    CREATE TABLE subscriber (
        username TEXT NOT NULL,
        domain TEXT NOT NULL,
        ha1 TEXT NOT NULL DEFAULT '',
        ha1_sha256 TEXT NOT NULL DEFAULT '',
        ha1_sha512_256 TEXT NOT NULL DEFAULT '',
        password TEXT,
        PRIMARY KEY (username, domain)
    );
    CREATE TABLE grp (
        username TEXT NOT NULL,
        domain TEXT NOT NULL,
        grp TEXT NOT NULL,
        PRIMARY KEY (username, domain, grp)
    );",
    // 2: every change of a binding announces its AOR and the router that
    // made it (the session's `wisp.node`, NULL for another client), once
    // per transaction: PostgreSQL folds equal notifications of one
    // transaction into one.
    "CREATE FUNCTION wisp_bindings_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('wisp_bindings', json_build_array(
                OLD.usrloc_table, OLD.aor, current_setting('wisp.node', true))::text);
        ELSE
            PERFORM pg_notify('wisp_bindings', json_build_array(
                NEW.usrloc_table, NEW.aor, current_setting('wisp.node', true))::text);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER bindings_notify AFTER INSERT OR UPDATE OR DELETE ON bindings
        FOR EACH ROW EXECUTE FUNCTION wisp_bindings_notify();",
    // 3: a change of the subscribers or their groups is announced once per
    // statement: the other routers read the directory again.
    "CREATE FUNCTION wisp_subscribers_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('wisp_subscribers', coalesce(current_setting('wisp.node', true), ''));
        RETURN NULL;
    END $$;
    CREATE TRIGGER subscriber_notify AFTER INSERT OR UPDATE OR DELETE ON subscriber
        FOR EACH STATEMENT EXECUTE FUNCTION wisp_subscribers_notify();
    CREATE TRIGGER grp_notify AFTER INSERT OR UPDATE OR DELETE ON grp
        FOR EACH STATEMENT EXECUTE FUNCTION wisp_subscribers_notify();",
    // 4: the router that saved the binding (`server.server_id`) and the
    // socket the REGISTER came in on (`tcp:ip:port`), as in Kamailio.
    "ALTER TABLE bindings ADD COLUMN server_id BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN socket TEXT;",
    // 5: accounting records, as on SQLite (Kamailio's `acc` columns, its
    // `missed_calls` rows with `missed` true; `time` in Unix seconds).
    "CREATE TABLE acc (
        id BIGSERIAL PRIMARY KEY,
        method TEXT NOT NULL,
        from_tag TEXT NOT NULL,
        to_tag TEXT NOT NULL,
        callid TEXT NOT NULL,
        cseq BIGINT NOT NULL,
        sip_code INTEGER NOT NULL,
        sip_reason TEXT NOT NULL,
        time DOUBLE PRECISION NOT NULL,
        from_hdr TEXT NOT NULL,
        to_hdr TEXT NOT NULL,
        ruri TEXT NOT NULL,
        src TEXT NOT NULL,
        duration DOUBLE PRECISION,
        missed BOOLEAN NOT NULL
    );
    CREATE INDEX acc_time ON acc (time);
    CREATE INDEX acc_callid ON acc (callid);",
    // 6: the binding is behind a NAT (saved after `fix-nated-register`,
    // Kamailio's `nat_bflag`): its owner's keepalives ping it.
    "ALTER TABLE bindings ADD COLUMN nat BOOLEAN NOT NULL DEFAULT false;",
];

/// The schema version this wisp brings a database to.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Advisory lock keys (any 64-bit numbers of our own).
const MIGRATION_LOCK: i64 = 0x7769_7370_0001;
const PURGE_LOCK: i64 = 0x7769_7370_0002;

/// Rows expired this long ago are deleted: a node whose clock is a little
/// behind never sees a contact it still counts as live vanish under it.
/// Reads filter on `expires` anyway, so a late purge returns no dead contact.
const PURGE_GRACE_S: i64 = 60;

const COLUMNS: &str = "usrloc_table, aor, contact, q, expires, call_id, cseq, received, path, \
    params, updated, server_id, socket, nat";

/// Run `f` on a thread of its own and wait for it. The synchronous client
/// drives its connection on a runtime of its own, which may neither be
/// entered nor dropped on a thread that runs async tasks: connecting and
/// loading at start (inside the router's runtime) go through here.
pub fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// A connection to one PostgreSQL database, made again when it broke.
pub struct PgStore {
    config: postgres::Config,
    /// The URL with any password hidden, for messages.
    shown: String,
    client: Option<Client>,
    /// How many connections were made: a caller that needs one connection
    /// throughout (LISTEN) sees when it was replaced.
    connections: u64,
    /// This router's name in change notifications (`wisp.node`).
    node: Option<String>,
    /// Whether [`PgStore::wait_changes`] leaves out this node's own changes.
    skip_own: bool,
}

/// `url` with the password of its user info, if any, replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

impl PgStore {
    /// Connect to `url` and bring its schema up to date.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let mut store = PgStore::unconnected(url)?;
        store.with_client(|_| Ok(()))?;
        Ok(store)
    }

    /// A store for `url` that connects (and migrates) at its first call: a
    /// shared router starts while the database is away.
    pub fn unconnected(url: &str) -> Result<PgStore, StoreError> {
        let shown = redact(url);
        let config = parse_db_url(url).map_err(|detail| StoreError::Url {
            url: shown.clone(),
            detail,
        })?;
        Ok(PgStore {
            config,
            shown,
            client: None,
            connections: 0,
            node: None,
            skip_own: true,
        })
    }

    /// Name the changes this store makes `node` in their notifications
    /// (the session setting `wisp.node`, set on each new connection), and
    /// leave out of [`PgStore::wait_changes`] the ones so named: a router
    /// applied its own changes to memory before committing them.
    pub fn set_node(&mut self, node: &str) -> Result<(), StoreError> {
        self.node = Some(node.to_owned());
        if let Some(c) = self.client.as_mut().filter(|c| !c.is_closed()) {
            c.execute("SELECT set_config('wisp.node', $1, false)", &[&node])?;
        }
        Ok(())
    }

    /// Whether [`PgStore::wait_changes`] leaves out the changes of this
    /// store's own node (by default it does).
    pub fn set_skip_own(&mut self, skip: bool) {
        self.skip_own = skip;
    }

    /// How many connections this store has made so far (a LISTEN lasts
    /// as long as its connection).
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// The URL, password hidden.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    /// Where the database is, for `wisp ctl ps`: host, port and database
    /// name, no user or password.
    pub fn location(&self) -> String {
        super::health::pg_location(&self.config)
    }

    /// A client connected to the same database, for a second thread (the
    /// change listener's `LISTEN`).
    pub fn connect_again(&self) -> Result<Client, StoreError> {
        self.config
            .connect(NoTls)
            .map_err(|source| StoreError::Connect {
                url: self.shown.clone(),
                source,
            })
    }

    /// Run `f` on the connection, connecting first if there is none (and
    /// bringing the schema up to date on each new connection: the database
    /// may have been restored meanwhile); a connection that broke under `f`
    /// is dropped, so the next call makes a new one.
    fn with_client<T>(
        &mut self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            let mut client = self.connect_again()?;
            migrate(&mut client)?;
            if let Some(node) = &self.node {
                client.execute("SELECT set_config('wisp.node', $1, false)", &[node])?;
            }
            self.client = Some(client);
            self.connections += 1;
        }
        let Some(client) = self.client.as_mut() else {
            return Err(StoreError::WriterGone);
        };
        let result = f(client);
        if result.is_err() && client.is_closed() {
            self.client = None;
        }
        result
    }

    /// The schema version of the database.
    pub fn schema_version(&mut self) -> Result<i64, StoreError> {
        self.with_client(|c| {
            let row = c.query_one("SELECT coalesce(max(version), 0) FROM wisp_schema", &[])?;
            Ok(i64::from(row.try_get::<_, i32>(0)?))
        })
    }

    /// `LISTEN` on [`CHANNEL`], connecting first if need be. A new
    /// connection listens to nothing: call it again after
    /// [`PgStore::wait_changes`] reported the connection lost.
    pub fn listen(&mut self) -> Result<(), StoreError> {
        self.with_client(|c| Ok(c.batch_execute(&format!("LISTEN {CHANNEL}"))?))
    }

    /// Wait up to `timeout` for changes announced on [`CHANNEL`] (after
    /// [`PgStore::listen`]); returns the `(table, aor)` keys that changed,
    /// each once, empty when none did, leaving out those this store's own
    /// node made ([`PgStore::set_node`]). [`StoreError::Disconnected`] (or the
    /// error) when the connection is gone: nothing was heard meanwhile.
    pub fn wait_changes(&mut self, timeout: Duration) -> Result<Vec<(String, String)>, StoreError> {
        let mut keys = BTreeSet::new();
        for n in self.wait_notifications(timeout)? {
            if n.channel() != CHANNEL {
                continue;
            }
            match serde_json::from_str::<(String, String, Option<String>)>(n.payload()) {
                Ok((_, _, Some(node))) if self.skip_own && self.node.as_ref() == Some(&node) => {}
                Ok((table, aor, _)) => {
                    keys.insert((table, aor));
                }
                Err(e) => {
                    tracing::warn!("usrloc: change notification {:?} ignored: {e}", n.payload())
                }
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// `LISTEN` on [`SUBSCRIBER_CHANNEL`] (as [`PgStore::listen`]).
    pub fn listen_subscribers(&mut self) -> Result<(), StoreError> {
        self.with_client(|c| Ok(c.batch_execute(&format!("LISTEN {SUBSCRIBER_CHANNEL}"))?))
    }

    /// Wait up to `timeout` for a change of the subscribers or groups made
    /// by another node (after [`PgStore::listen_subscribers`]): `true` when
    /// there was one. Errors as [`PgStore::wait_changes`].
    pub fn wait_subscriber_changes(&mut self, timeout: Duration) -> Result<bool, StoreError> {
        let own = self.node.clone().unwrap_or_default();
        Ok(self
            .wait_notifications(timeout)?
            .iter()
            .any(|n| n.channel() == SUBSCRIBER_CHANNEL && (own.is_empty() || n.payload() != own)))
    }

    /// The notifications of up to `timeout` (all that arrived, once one did).
    fn wait_notifications(
        &mut self,
        timeout: Duration,
    ) -> Result<Vec<postgres::Notification>, StoreError> {
        let Some(client) = self.client.as_mut().filter(|c| !c.is_closed()) else {
            self.client = None;
            return Err(StoreError::Disconnected);
        };
        let heard = {
            let mut notes = client.notifications();
            let mut heard = notes
                .timeout_iter(timeout)
                .next()
                .map(|first| first.into_iter().collect::<Vec<_>>());
            // Take whatever else has arrived, without waiting.
            if let Ok(list) = &mut heard
                && !list.is_empty()
            {
                let mut more = notes.iter();
                loop {
                    match more.next() {
                        Ok(Some(n)) => list.push(n),
                        Ok(None) => break,
                        Err(e) => {
                            heard = Err(e);
                            break;
                        }
                    }
                }
            }
            heard
        };
        let closed = client.is_closed();
        match heard {
            Err(e) => {
                self.client = None;
                Err(e.into())
            }
            Ok(list) if list.is_empty() && closed => {
                self.client = None;
                Err(StoreError::Disconnected)
            }
            Ok(list) => Ok(list),
        }
    }

    /// A round trip, to find out whether the connection still works
    /// (connecting if there is none).
    pub fn ping(&mut self) -> Result<(), StoreError> {
        self.with_client(|c| Ok(c.batch_execute("SELECT 1")?))
    }

    /// The bindings of one AOR not expired at `now` (the change listener
    /// re-reads an AOR another node changed).
    pub fn load_aor(
        &mut self,
        table: &str,
        aor: &str,
        now: i64,
    ) -> Result<Vec<StoredBinding>, StoreError> {
        self.with_client(|c| {
            c.query(
                &format!(
                    "SELECT {COLUMNS} FROM bindings
                     WHERE usrloc_table = $1 AND aor = $2 AND (expires IS NULL OR expires > $3)"
                ),
                &[&table, &aor, &now],
            )?
            .iter()
            .map(binding_of)
            .collect()
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // The last holder may be an async task (the subscriber directory at
        // shutdown): the client's runtime is dropped on a thread of its own.
        if let Some(client) = self.client.take() {
            off_runtime(move || drop(client));
        }
    }
}

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let supported = MIGRATIONS.len() as i64;
    let mut tx = client.transaction()?;
    // Routers starting together: one migrates, the others wait and find it done.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS wisp_schema (version INTEGER NOT NULL)")?;
    let found = i64::from(
        tx.query_one("SELECT coalesce(max(version), 0) FROM wisp_schema", &[])?
            .try_get::<_, i32>(0)?,
    );
    if found > supported {
        return Err(StoreError::TooNew { found, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql)?;
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute("INSERT INTO wisp_schema (version) VALUES ($1)", &[&version])?;
    }
    tx.commit()?;
    Ok(())
}

fn binding_of(r: &Row) -> Result<StoredBinding, StoreError> {
    let cseq: i64 = r.try_get(6)?;
    Ok(StoredBinding {
        table: r.try_get(0)?,
        aor: r.try_get(1)?,
        contact: r.try_get(2)?,
        q: r.try_get(3)?,
        expires: r.try_get(4)?,
        call_id: r.try_get(5)?,
        cseq: u32::try_from(cseq).unwrap_or(u32::MAX),
        received: r.try_get(7)?,
        path: r.try_get(8)?,
        params: r.try_get(9)?,
        updated: r.try_get(10)?,
        server_id: u32::try_from(r.try_get::<_, i64>(11)?).unwrap_or(0),
        socket: r.try_get(12)?,
        nat: r.try_get(13)?,
    })
}

/// The bindings of one commit's puts, column by column (one array
/// parameter each: `unnest` turns them back into rows).
#[derive(Default)]
struct Columns<'a> {
    table: Vec<&'a str>,
    aor: Vec<&'a str>,
    contact: Vec<&'a str>,
    q: Vec<f32>,
    expires: Vec<Option<i64>>,
    call_id: Vec<&'a str>,
    cseq: Vec<i64>,
    received: Vec<Option<&'a str>>,
    path: Vec<Option<&'a str>>,
    params: Vec<Option<&'a str>>,
    updated: Vec<i64>,
    server_id: Vec<i64>,
    socket: Vec<Option<&'a str>>,
    nat: Vec<bool>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, b: &'a StoredBinding) {
        self.table.push(&b.table);
        self.aor.push(&b.aor);
        self.contact.push(&b.contact);
        self.q.push(b.q);
        self.expires.push(b.expires);
        self.call_id.push(&b.call_id);
        self.cseq.push(i64::from(b.cseq));
        self.received.push(b.received.as_deref());
        self.path.push(b.path.as_deref());
        self.params.push(b.params.as_deref());
        self.updated.push(b.updated);
        self.server_id.push(i64::from(b.server_id));
        self.socket.push(b.socket.as_deref());
        self.nat.push(b.nat);
    }
}

/// Many bindings in one statement. RFC 3261 §10.3 step 7 across nodes:
/// the same Call-ID with a CSeq not higher than stored changes nothing. A
/// management change (`wisp ctl`, empty Call-ID) always applies.
const UPSERT: &str = "INSERT INTO bindings
    (usrloc_table, aor, contact, q, expires, call_id, cseq, received, path, params, updated,
     server_id, socket, nat)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::real[], $5::bigint[],
        $6::text[], $7::bigint[], $8::text[], $9::text[], $10::text[], $11::bigint[],
        $12::bigint[], $13::text[], $14::boolean[])
    ON CONFLICT (usrloc_table, aor, contact) DO UPDATE SET
        q = EXCLUDED.q, expires = EXCLUDED.expires, call_id = EXCLUDED.call_id,
        cseq = EXCLUDED.cseq, received = EXCLUDED.received, path = EXCLUDED.path,
        params = EXCLUDED.params, updated = EXCLUDED.updated,
        server_id = EXCLUDED.server_id, socket = EXCLUDED.socket, nat = EXCLUDED.nat
    WHERE bindings.call_id <> EXCLUDED.call_id OR bindings.cseq < EXCLUDED.cseq
        OR EXCLUDED.call_id = ''";

/// The removals of one commit, column by column.
#[derive(Default)]
struct Removals<'a> {
    table: Vec<&'a str>,
    aor: Vec<&'a str>,
    contact: Vec<&'a str>,
    call_id: Vec<&'a str>,
    cseq: Vec<i64>,
    at: Vec<i64>,
}

/// Many removals in one statement. RFC 3261 §10.3 step 7 across nodes: a
/// row stays when it is newer than the REGISTER that removed it — the
/// same Call-ID with a CSeq not lower, or another Call-ID saved after it
/// (another node took a later REGISTER). A management removal (empty
/// Call-ID) always applies.
const DELETE: &str = "DELETE FROM bindings b
    USING unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])
        AS d (t, a, c, call_id, cseq, at)
    WHERE b.usrloc_table = d.t AND b.aor = d.a AND b.contact = d.c
        AND (d.call_id = ''
            OR (b.call_id = d.call_id AND b.cseq < d.cseq)
            OR (b.call_id <> d.call_id AND b.updated <= d.at))";

impl BindingStore for PgStore {
    fn load(&mut self, now: i64) -> Result<Vec<StoredBinding>, StoreError> {
        self.with_client(|c| {
            c.query(
                &format!("SELECT {COLUMNS} FROM bindings WHERE expires IS NULL OR expires > $1"),
                &[&now],
            )?
            .iter()
            .map(binding_of)
            .collect()
        })
    }

    /// One transaction of at most two statements, however many changes:
    /// each row's last change only (later changes to a row supersede
    /// earlier ones, so the result is that of applying them in order), the
    /// puts as one multi-row upsert, the deletes as one delete.
    fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let mut last: HashMap<(&str, &str, &str), &Change> = HashMap::with_capacity(changes.len());
        for change in changes {
            last.insert(change.key(), change);
        }
        let mut puts = Columns::default();
        let mut deletes = Removals::default();
        for change in last.into_values() {
            match change {
                Change::Put(b) => puts.push(b),
                Change::Delete {
                    table,
                    aor,
                    contact,
                    call_id,
                    cseq,
                    at,
                } => {
                    deletes.table.push(table);
                    deletes.aor.push(aor);
                    deletes.contact.push(contact);
                    deletes.call_id.push(call_id);
                    deletes.cseq.push(i64::from(*cseq));
                    deletes.at.push(*at);
                }
            }
        }
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            if !puts.table.is_empty() {
                tx.execute(
                    UPSERT,
                    &[
                        &puts.table,
                        &puts.aor,
                        &puts.contact,
                        &puts.q,
                        &puts.expires,
                        &puts.call_id,
                        &puts.cseq,
                        &puts.received,
                        &puts.path,
                        &puts.params,
                        &puts.updated,
                        &puts.server_id,
                        &puts.socket,
                        &puts.nat,
                    ],
                )?;
            }
            if !deletes.table.is_empty() {
                tx.execute(
                    DELETE,
                    &[
                        &deletes.table,
                        &deletes.aor,
                        &deletes.contact,
                        &deletes.call_id,
                        &deletes.cseq,
                        &deletes.at,
                    ],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        PgStore::ping(self)
    }

    fn purge_expired(&mut self, now: i64) -> Result<usize, StoreError> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            // One node at a time; the others skip this round.
            let mine: bool = tx
                .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PURGE_LOCK])?
                .try_get(0)?;
            if !mine {
                return Ok(0);
            }
            let n = tx.execute(
                "DELETE FROM bindings WHERE expires IS NOT NULL AND expires <= $1",
                &[&(now - PURGE_GRACE_S)],
            )?;
            tx.commit()?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}

const ACC_COLUMNS: &str = "method, from_tag, to_tag, callid, cseq, sip_code, sip_reason, time,
    from_hdr, to_hdr, ruri, src, duration, missed";

impl AccStore for PgStore {
    fn insert_acc(&mut self, rows: &[StoredAcc]) -> Result<(), StoreError> {
        // One statement for the batch: each column is one array parameter.
        let text = |f: fn(&StoredAcc) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
        let method = text(|r| &r.method);
        let from_tag = text(|r| &r.from_tag);
        let to_tag = text(|r| &r.to_tag);
        let callid = text(|r| &r.callid);
        let cseq: Vec<i64> = rows.iter().map(|r| i64::from(r.cseq)).collect();
        let code: Vec<i32> = rows.iter().map(|r| i32::from(r.sip_code)).collect();
        let reason = text(|r| &r.sip_reason);
        let time: Vec<f64> = rows.iter().map(|r| r.time).collect();
        let from = text(|r| &r.from);
        let to = text(|r| &r.to);
        let ruri = text(|r| &r.ruri);
        let src = text(|r| &r.src);
        let duration: Vec<Option<f64>> = rows.iter().map(|r| r.duration).collect();
        let missed: Vec<bool> = rows.iter().map(|r| r.missed).collect();
        let sql = format!(
            "INSERT INTO acc ({ACC_COLUMNS})
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                 $6::integer[], $7::text[], $8::float8[], $9::text[], $10::text[], $11::text[],
                 $12::text[], $13::float8[], $14::boolean[])"
        );
        self.with_client(|c| {
            c.execute(
                &sql,
                &[
                    &method, &from_tag, &to_tag, &callid, &cseq, &code, &reason, &time, &from, &to,
                    &ruri, &src, &duration, &missed,
                ],
            )?;
            Ok(())
        })
    }

    fn latest_acc(&mut self, n: usize) -> Result<Vec<StoredAcc>, StoreError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {ACC_COLUMNS} FROM (SELECT * FROM acc ORDER BY id DESC LIMIT $1) AS latest
             ORDER BY id"
        );
        self.with_client(|c| {
            c.query(&sql, &[&n])?
                .iter()
                .map(|r| {
                    let cseq: i64 = r.try_get(4)?;
                    let code: i32 = r.try_get(5)?;
                    Ok(StoredAcc {
                        method: r.try_get(0)?,
                        from_tag: r.try_get(1)?,
                        to_tag: r.try_get(2)?,
                        callid: r.try_get(3)?,
                        cseq: u32::try_from(cseq).unwrap_or(u32::MAX),
                        sip_code: u16::try_from(code).unwrap_or(0),
                        sip_reason: r.try_get(6)?,
                        time: r.try_get(7)?,
                        from: r.try_get(8)?,
                        to: r.try_get(9)?,
                        ruri: r.try_get(10)?,
                        src: r.try_get(11)?,
                        duration: r.try_get(12)?,
                        missed: r.try_get(13)?,
                    })
                })
                .collect()
        })
    }
}

impl PgStore {
    /// Run `sql`, whose parameters `$1`..`$6` are the subscriber's columns in
    /// table order; `true` when it wrote the row.
    fn write_subscriber(&mut self, sql: &str, s: &StoredSubscriber) -> Result<bool, StoreError> {
        self.with_client(|c| {
            let n = c.execute(
                sql,
                &[
                    &s.username,
                    &s.domain,
                    &s.ha1,
                    &s.ha1_sha256,
                    &s.ha1_sha512_256,
                    &s.password,
                ],
            )?;
            Ok(n == 1)
        })
    }
}

impl SubscriberStore for PgStore {
    fn load_all(&mut self, limit: usize) -> Result<SubscriberRows, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1;
        self.with_client(|c| {
            let subscribers = c
                .query(
                    "SELECT username, domain, ha1, ha1_sha256, ha1_sha512_256, password
                     FROM subscriber LIMIT $1",
                    &[&limit],
                )?
                .iter()
                .map(|r| {
                    Ok(StoredSubscriber {
                        username: r.try_get(0)?,
                        domain: r.try_get(1)?,
                        ha1: r.try_get(2)?,
                        ha1_sha256: r.try_get(3)?,
                        ha1_sha512_256: r.try_get(4)?,
                        password: r.try_get(5)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let groups = c
                .query("SELECT username, domain, grp FROM grp", &[])?
                .iter()
                .map(|r| {
                    Ok(StoredGroup {
                        username: r.try_get(0)?,
                        domain: r.try_get(1)?,
                        group: r.try_get(2)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(SubscriberRows {
                subscribers,
                groups,
            })
        })
    }

    fn insert_subscriber(&mut self, s: &StoredSubscriber) -> Result<bool, StoreError> {
        self.write_subscriber(
            "INSERT INTO subscriber
             (username, domain, ha1, ha1_sha256, ha1_sha512_256, password)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            s,
        )
    }

    fn set_credentials(&mut self, s: &StoredSubscriber) -> Result<bool, StoreError> {
        self.write_subscriber(
            "UPDATE subscriber SET ha1 = $3, ha1_sha256 = $4, ha1_sha512_256 = $5,
             password = $6 WHERE username = $1 AND domain = $2",
            s,
        )
    }

    fn remove_subscriber(&mut self, username: &str, domain: &str) -> Result<bool, StoreError> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "DELETE FROM subscriber WHERE username = $1 AND domain = $2",
                &[&username, &domain],
            )?;
            tx.execute(
                "DELETE FROM grp WHERE username = $1 AND domain = $2",
                &[&username, &domain],
            )?;
            tx.commit()?;
            Ok(n == 1)
        })
    }

    fn grant(&mut self, g: &StoredGroup) -> Result<bool, StoreError> {
        self.with_client(|c| {
            let n = c.execute(
                "INSERT INTO grp (username, domain, grp) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&g.username, &g.domain, &g.group],
            )?;
            Ok(n == 1)
        })
    }

    fn revoke(&mut self, g: &StoredGroup) -> Result<bool, StoreError> {
        self.with_client(|c| {
            let n = c.execute(
                "DELETE FROM grp WHERE username = $1 AND domain = $2 AND grp = $3",
                &[&g.username, &g.domain, &g.group],
            )?;
            Ok(n == 1)
        })
    }
}
