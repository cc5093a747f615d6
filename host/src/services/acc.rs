//! The accounting log: records from the transaction layer ([`AccRecord`])
//! go through a bounded queue to a writer thread, which writes each as a
//! log line (target `wisp::acc`), keeps the latest for `wisp ctl acc show`
//! and, when the user-location store has a database, appends them to its
//! `acc` table, one transaction per batch (all the records waiting). Routing
//! never waits on it: a full queue leaves the record out and counts it
//! (`wisp_acc_dropped_total`); a batch the database refuses (it is down)
//! is counted (`wisp_acc_db_failures_total`, per record) and logged once
//! per change of state, the records staying in the log and in memory.
//!
//! The thread also gives a BYE's record the call's duration: it remembers
//! when each accounted INVITE got its first 2xx, by Call-ID (a re-INVITE
//! keeps the call's start), for the last [`OPEN_CALLS`] calls answered.
//!
//! ```text
//! INFO wisp::acc: transaction answered method="OPTIONS" code=200 reason="OK" call_id="c1@h" cseq=1
//!     from="<sip:carol@h>;tag=1" to="<sip:alice@h>" ruri="sip:alice@10.0.0.2:5060" src="udp:10.0.0.1:5060"
//! ```

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::AccConfig;
use crate::stats::{self, Counter};
use crate::store::StoreError;
use crate::store::acc::{AccStore, StoredAcc};
use crate::store::postgres::{PgStore, off_runtime};
use crate::store::sqlite::{Durability, SqliteStore, read_latest_acc};
use crate::tm::acc::{AccRecord, AccSink};
use crate::util::lock;

/// Records `wisp ctl acc show` can list from memory (the table keeps all).
pub const KEPT: usize = 1000;
/// Calls answered whose BYE may still come, for its duration: a call
/// outlived by this many later answered calls gets no duration.
pub const OPEN_CALLS: usize = 100_000;
/// Most records in one database transaction.
const BATCH: usize = 1000;

/// When the accounted calls were answered, by Call-ID, and the Call-IDs in
/// the order they were answered (ended ones included, until they are the
/// oldest: no search on each BYE).
#[derive(Default)]
struct OpenCalls {
    by_id: std::collections::HashMap<String, SystemTime>,
    order: VecDeque<(String, SystemTime)>,
}

impl OpenCalls {
    /// Remember an answered INVITE; give a BYE its call's duration.
    fn note(&mut self, r: &mut AccRecord) {
        if r.missed {
            return;
        }
        match r.method.as_str() {
            "INVITE" if (200..300).contains(&r.code) => {
                if self.by_id.contains_key(&r.call_id) {
                    return;
                }
                self.by_id.insert(r.call_id.clone(), r.time);
                self.order.push_back((r.call_id.clone(), r.time));
                while self.order.len() > OPEN_CALLS {
                    if let Some((old, at)) = self.order.pop_front()
                        && self.by_id.get(&old) == Some(&at)
                    {
                        self.by_id.remove(&old);
                    }
                }
            }
            "BYE" => {
                if let Some(start) = self.by_id.remove(&r.call_id) {
                    r.duration = r.time.duration_since(start).ok();
                }
            }
            _ => {}
        }
    }
}

/// The database the records go to: the user-location store's.
#[derive(Debug, Clone, PartialEq)]
pub enum AccDb {
    Sqlite(PathBuf),
    /// A `postgres://` URL.
    Postgres(String),
}

impl AccDb {
    /// The writer's connection (PostgreSQL connects at its first batch).
    fn open(&self) -> Result<Box<dyn AccStore>, StoreError> {
        Ok(match self {
            AccDb::Sqlite(path) => Box::new(SqliteStore::open(path, Durability::Normal)?),
            AccDb::Postgres(url) => Box::new(PgStore::unconnected(url)?),
        })
    }

    /// The latest `n` rows, on a connection of this call's own. Blocks:
    /// never on a receive task.
    fn latest(&self, n: usize) -> Result<Vec<StoredAcc>, StoreError> {
        match self {
            AccDb::Sqlite(path) => read_latest_acc(path, n),
            AccDb::Postgres(url) => off_runtime(|| PgStore::connect(url)?.latest_acc(n)),
        }
    }
}

/// The queue and the latest records.
pub struct AccLog {
    tx: SyncSender<AccRecord>,
    latest: Arc<Mutex<VecDeque<StoredAcc>>>,
    db: Option<AccDb>,
}

impl AccLog {
    /// Start the writer thread, with a queue of `cfg.queue` records, also
    /// writing to `db` if given.
    pub fn spawn(cfg: &AccConfig, db: Option<AccDb>) -> std::io::Result<Arc<AccLog>> {
        let (tx, rx) = mpsc::sync_channel::<AccRecord>(cfg.queue);
        let latest = Arc::new(Mutex::new(VecDeque::with_capacity(KEPT)));
        let kept = latest.clone();
        let target = db.clone();
        std::thread::Builder::new()
            .name("wisp-acc".into())
            .spawn(move || run(rx, kept, target))?;
        Ok(Arc::new(AccLog { tx, latest, db }))
    }

    /// The latest `n` records written, oldest first: from the database's
    /// `acc` table when there is one (so they outlive a restart, and on a
    /// shared database include the other routers'), else from memory. If
    /// the database cannot be read, from memory, with why.
    pub fn latest(&self, n: usize) -> (Vec<StoredAcc>, Option<String>) {
        if let Some(db) = &self.db {
            match db.latest(n) {
                Ok(rows) => return (rows, None),
                Err(e) => {
                    return (
                        self.kept(n),
                        Some(format!(
                            "the acc table cannot be read ({e}): records in memory"
                        )),
                    );
                }
            }
        }
        (self.kept(n), None)
    }

    /// The latest `n` records this router wrote, from memory.
    pub fn kept(&self, n: usize) -> Vec<StoredAcc> {
        let kept = lock(&self.latest);
        kept.iter()
            .skip(kept.len().saturating_sub(n))
            .cloned()
            .collect()
    }
}

/// The writer thread: every record waiting makes one batch.
fn run(rx: Receiver<AccRecord>, kept: Arc<Mutex<VecDeque<StoredAcc>>>, target: Option<AccDb>) {
    let mut open = OpenCalls::default();
    let mut db = Db::new(target);
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let rows: Vec<StoredAcc> = batch
            .into_iter()
            .map(|mut r| {
                open.note(&mut r);
                write(&r);
                row(&r)
            })
            .collect();
        db.insert(&rows);
        let mut kept = lock(&kept);
        for r in rows {
            if kept.len() == KEPT {
                kept.pop_front();
            }
            kept.push_back(r);
        }
    }
}

/// The writer's database and whether it took the last batch.
struct Db {
    target: Option<AccDb>,
    store: Option<Box<dyn AccStore>>,
    down: bool,
}

impl Db {
    fn new(target: Option<AccDb>) -> Db {
        Db {
            target,
            store: None,
            down: false,
        }
    }

    fn insert(&mut self, rows: &[StoredAcc]) {
        let Some(target) = &self.target else {
            return;
        };
        let result = match &mut self.store {
            Some(store) => store.insert_acc(rows),
            None => target.open().and_then(|mut store| {
                let r = store.insert_acc(rows);
                self.store = Some(store);
                r
            }),
        };
        match result {
            Ok(()) => {
                stats::add(Counter::AccStored, rows.len() as u64);
                if self.down {
                    self.down = false;
                    tracing::info!("acc: the database takes records again");
                }
            }
            Err(e) => {
                stats::add(Counter::AccDbFailures, rows.len() as u64);
                if !self.down {
                    self.down = true;
                    tracing::warn!(
                        "acc: the database refused {} record(s), they are only in the log \
                         until it is back: {e}",
                        rows.len()
                    );
                }
            }
        }
    }
}

impl AccSink for AccLog {
    fn record(&self, record: AccRecord) {
        match self.tx.try_send(record) {
            Ok(()) => stats::inc(Counter::AccRecords),
            Err(TrySendError::Full(_)) => {
                stats::inc(Counter::AccDropped);
                crate::log_limited!(warn, "acc: queue full, record left out");
            }
            Err(TrySendError::Disconnected(_)) => stats::inc(Counter::AccDropped),
        }
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A record as the `acc` table keeps it.
pub fn row(r: &AccRecord) -> StoredAcc {
    StoredAcc {
        method: r.method.clone(),
        from_tag: r.from_tag.clone(),
        to_tag: r.to_tag.clone(),
        callid: r.call_id.clone(),
        cseq: r.cseq,
        sip_code: r.code,
        sip_reason: r.reason.clone(),
        // Milliseconds, as the log shows them.
        time: (unix_seconds(r.time) * 1000.0).round() / 1000.0,
        from: r.from.clone(),
        to: r.to.clone(),
        ruri: r.ruri.clone(),
        src: format!("{}:{}", r.proto.to_string().to_ascii_lowercase(), r.source),
        duration: r.duration.map(|d| d.as_secs_f64()),
        missed: r.missed,
    }
}

/// One record as a line: what `wisp ctl acc show` shows.
pub fn line(r: &StoredAcc) -> String {
    let duration = r
        .duration
        .map(|d| format!(" duration={d:.3}"))
        .unwrap_or_default();
    let time = Duration::try_from_secs_f64(r.time).unwrap_or_default();
    format!(
        "{} {} {} {} call_id={:?} cseq={} reason={:?} from={:?} to={:?} ruri={:?} src={}{duration}",
        humantime::format_rfc3339_millis(UNIX_EPOCH + time),
        if r.missed { "missed" } else { "answered" },
        r.method,
        r.sip_code,
        r.callid,
        r.cseq,
        r.sip_reason,
        r.from,
        r.to,
        r.ruri,
        r.src
    )
}

fn write(r: &AccRecord) {
    let what = if r.missed {
        "call missed"
    } else {
        "transaction answered"
    };
    tracing::info!(
        target: "wisp::acc",
        method = %r.method,
        code = r.code,
        reason = %r.reason,
        call_id = %r.call_id,
        cseq = r.cseq,
        from = %r.from,
        to = %r.to,
        ruri = %r.ruri,
        src = %format_args!("{}:{}", r.proto.to_string().to_ascii_lowercase(), r.source),
        duration_s = r.duration.map(|d| d.as_secs_f64()),
        "{what}"
    );
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant, SystemTime};

    use super::*;
    use crate::config::Proto;

    fn rec(code: u16) -> AccRecord {
        AccRecord {
            method: "INVITE".into(),
            from: "<sip:a@h>;tag=1".into(),
            to: "<sip:b@h>".into(),
            ruri: "sip:b@10.0.0.2".into(),
            call_id: format!("c{code}"),
            cseq: 1,
            from_tag: "1".into(),
            to_tag: String::new(),
            code,
            reason: "Busy Here".into(),
            missed: code >= 300,
            time: SystemTime::UNIX_EPOCH,
            source: "10.0.0.1:5060".parse().expect("addr"),
            proto: Proto::Udp,
            duration: None,
        }
    }

    #[test]
    fn a_bye_gets_the_duration_of_its_answered_call() {
        let mut open = OpenCalls::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut invite = AccRecord {
            call_id: "call-1".into(),
            time: t0,
            ..rec(200)
        };
        open.note(&mut invite);
        // A re-INVITE keeps the call's start.
        let mut reinvite = AccRecord {
            time: t0 + Duration::from_secs(30),
            ..invite.clone()
        };
        open.note(&mut reinvite);
        let mut bye = AccRecord {
            method: "BYE".into(),
            call_id: "call-1".into(),
            time: t0 + Duration::from_millis(62_500),
            ..rec(200)
        };
        open.note(&mut bye);
        assert_eq!(bye.duration, Some(Duration::from_millis(62_500)));
        assert!(
            line(&row(&bye)).ends_with(" duration=62.500"),
            "{}",
            line(&row(&bye))
        );
        // Once: a second BYE (or one of an unknown call) has none.
        let mut again = bye.clone();
        again.duration = None;
        open.note(&mut again);
        assert_eq!(again.duration, None);
        // A failed INVITE opens no call.
        let mut failed = AccRecord {
            call_id: "call-2".into(),
            missed: false,
            ..rec(486)
        };
        open.note(&mut failed);
        assert!(open.by_id.is_empty());
    }

    /// Wait until `f` holds (the writer thread works on its own).
    fn eventually(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn records_go_to_the_acc_table_and_are_read_back_from_it() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join("wisp.db");
        drop(SqliteStore::open(&path, Durability::Normal).expect("create"));
        let db = AccDb::Sqlite(path.clone());
        let log = AccLog::spawn(&AccConfig::default(), Some(db.clone())).expect("thread");
        for code in [200, 486] {
            log.record(rec(code));
        }
        eventually("two rows", || db.latest(10).is_ok_and(|r| r.len() == 2));
        let (rows, note) = log.latest(10);
        assert_eq!(note, None);
        assert_eq!(rows, vec![row(&rec(200)), row(&rec(486))]);
        assert_eq!(rows[1].sip_reason, "Busy Here");
        assert!(rows[1].missed);
        // Another log on the same file (a restart) lists them.
        let again = AccLog::spawn(&AccConfig::default(), Some(db)).expect("thread");
        assert_eq!(again.latest(1).0, vec![row(&rec(486))]);
        assert!(again.kept(10).is_empty(), "not from memory");
    }

    #[test]
    fn a_database_that_refuses_is_counted_and_the_records_stay_in_memory() {
        // A directory under a file: it can never be created.
        let tmp = tempfile::tempdir().expect("temp dir");
        let file = tmp.path().join("file");
        std::fs::write(&file, b"x").expect("write");
        let db = AccDb::Sqlite(file.join("sub/wisp.db"));
        let before = stats::get(Counter::AccDbFailures);
        let log = AccLog::spawn(&AccConfig::default(), Some(db)).expect("thread");
        log.record(rec(200));
        eventually("counted", || stats::get(Counter::AccDbFailures) > before);
        eventually("kept", || log.kept(10).len() == 1);
        let (rows, note) = log.latest(10);
        assert_eq!(rows, vec![row(&rec(200))]);
        assert!(note.is_some_and(|n| n.contains("cannot be read")));
    }

    #[test]
    fn records_are_kept_in_order_and_a_full_queue_never_blocks() {
        let log = AccLog::spawn(
            &AccConfig {
                queue: 1,
                ..AccConfig::default()
            },
            None,
        )
        .expect("thread");
        let dropped_before = stats::get(Counter::AccDropped);
        // Far more than the queue holds, at once: each call returns
        // whether or not the writer keeps up.
        for code in 200..400 {
            log.record(rec(code));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let written = loop {
            let w = log.kept(KEPT);
            let dropped = stats::get(Counter::AccDropped) - dropped_before;
            if w.len() as u64 + dropped >= 200 || Instant::now() > deadline {
                break w;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(!written.is_empty());
        assert!(
            written.windows(2).all(|w| w[0].sip_code < w[1].sip_code),
            "in order"
        );
        assert_eq!(log.kept(1).len(), 1);
        assert_eq!(log.latest(1).0.len(), 1, "no database: from memory");
        assert_eq!(
            line(&row(&rec(486))),
            "1970-01-01T00:00:00.000Z missed INVITE 486 call_id=\"c486\" cseq=1 \
             reason=\"Busy Here\" from=\"<sip:a@h>;tag=1\" to=\"<sip:b@h>\" ruri=\"sip:b@10.0.0.2\" src=udp:10.0.0.1:5060"
        );
    }
}
