//! The database writer: one dedicated thread owns the [`BindingStore`] and
//! receives changes over a channel, so a receive task never waits for the
//! disk. Whatever queued up while the last commit ran goes into the next
//! one — one SQLite transaction (and one fsync) for many REGISTERs.
//!
//! A change may carry a completion ([`Done`]) that runs on this thread once
//! the transaction holding the change has committed (or failed): the
//! registrar's write-through mode sends its 200 OK from there.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::health::Health;
use super::{BindingStore, Change, StoreError, StoredBinding, unix_now};

/// Runs after the commit that holds its change; gets the commit's outcome.
pub type Done = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// Takes the bindings the database holds, once it could read them (a
/// router started while its database was away loads them when it is back).
pub type Loader = Box<dyn FnOnce(Vec<StoredBinding>) + Send>;

/// When queued changes reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// As soon as the writer gets to them (Kamailio `db_mode = 1`).
    Through,
    /// Every `interval`, coalesced per binding (Kamailio `db_mode = 2`):
    /// a crash loses at most the changes of the last interval. A change
    /// with a completion is committed at once (management commands).
    Back { interval: Duration },
}

/// Most changes in one transaction: bounds the wait of the first one.
const MAX_BATCH: usize = 4096;
/// How often expired rows are deleted from the database.
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// A writer with nothing to commit asks the database this often whether it
/// is there, so that `wisp ctl ps` and `wisp_store_up` tell without a REGISTER.
const PROBE_EVERY: Duration = Duration::from_secs(2);
/// Between attempts of the initial load while the database is away.
const LOAD_RETRY: Duration = Duration::from_secs(1);

enum Op {
    Changes {
        changes: Vec<Change>,
        done: Option<Done>,
    },
    /// Commit everything queued, then run the completion.
    Flush(Done),
}

/// Handle to the writer thread; the thread ends (after a last commit) when
/// every handle is dropped.
pub struct Writer {
    tx: mpsc::Sender<Op>,
    /// Changes submitted and not yet committed (a gauge for the metrics).
    queued: Arc<AtomicUsize>,
}

impl Writer {
    /// Start the writer thread. Completions run inside `runtime` when given,
    /// so they may send on tokio sockets and spawn tasks. Each commit and
    /// probe tells `health`. With a `loader`, the writer first reads every
    /// binding (again each second until the database answers) and gives
    /// them to it.
    pub fn spawn(
        store: Box<dyn BindingStore>,
        mode: WriteMode,
        runtime: Option<tokio::runtime::Handle>,
        health: Arc<Health>,
        loader: Option<Loader>,
    ) -> Result<Writer, StoreError> {
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        std::thread::Builder::new()
            .name("wisp-db-writer".into())
            .spawn(move || {
                let _entered = runtime.as_ref().map(|h| h.enter());
                run(store, mode, rx, &q, &health, loader)
            })
            .map_err(StoreError::Spawn)?;
        Ok(Writer { tx, queued })
    }

    /// Changes submitted and not yet committed.
    pub fn queue_len(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queue `changes`; `done` runs once they are committed. Never blocks.
    pub fn submit(&self, changes: Vec<Change>, done: Option<Done>) {
        if changes.is_empty() && done.is_none() {
            return;
        }
        self.queued.fetch_add(changes.len(), Ordering::Relaxed);
        if let Err(mpsc::SendError(op)) = self.tx.send(Op::Changes { changes, done }) {
            tracing::error!("usrloc: database writer has stopped; change not persisted");
            if let Op::Changes { done: Some(d), .. } = op {
                d(Err(&StoreError::WriterGone));
            }
        }
    }

    /// Commit everything queued so far, then run `done` (shutdown, tests).
    pub fn flush(&self, done: Done) {
        if let Err(mpsc::SendError(Op::Flush(d))) = self.tx.send(Op::Flush(done)) {
            d(Err(&StoreError::WriterGone));
        }
    }
}

/// Changes waiting for a commit. Write-back keeps one change per binding:
/// a contact refreshed ten times in an interval is written once.
#[derive(Default)]
struct Pending {
    changes: Vec<Change>,
    index: HashMap<(String, String, String), usize>,
    coalesce: bool,
    /// Changes submitted into this batch, before coalescing.
    submitted: usize,
}

impl Pending {
    fn push(&mut self, change: Change) {
        self.submitted += 1;
        if !self.coalesce {
            self.changes.push(change);
            return;
        }
        let (t, a, c) = change.key();
        let key = (t.to_owned(), a.to_owned(), c.to_owned());
        match self.index.get(&key) {
            Some(&i) => self.changes[i] = change,
            None => {
                self.index.insert(key, self.changes.len());
                self.changes.push(change);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    fn clear(&mut self) {
        self.changes.clear();
        self.index.clear();
        self.submitted = 0;
    }
}

fn run(
    mut store: Box<dyn BindingStore>,
    mode: WriteMode,
    rx: mpsc::Receiver<Op>,
    queued: &AtomicUsize,
    health: &Health,
    mut loader: Option<Loader>,
) {
    let interval = match mode {
        WriteMode::Through => None,
        WriteMode::Back { interval } => Some(interval),
    };
    let mut pending = Pending {
        coalesce: interval.is_some(),
        ..Pending::default()
    };
    let mut waiters: Vec<Done> = Vec::new();
    let mut next_flush = interval.map(|i| Instant::now() + i);
    let mut next_purge = Instant::now() + PURGE_EVERY;
    let mut next_probe = Instant::now() + PROBE_EVERY;
    loop {
        if let Some(load) = loader.take() {
            match store.load(unix_now()) {
                Ok(rows) => {
                    health.up();
                    load(rows);
                    next_probe = Instant::now() + PROBE_EVERY;
                }
                Err(e) => {
                    health.down(&e);
                    loader = Some(load);
                    next_probe = Instant::now() + LOAD_RETRY;
                }
            }
        }
        let mut wake = next_purge.min(next_probe);
        if let Some(f) = next_flush
            && !pending.is_empty()
        {
            wake = wake.min(f);
        }
        let mut disconnected = false;
        match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
            Ok(op) => {
                take(op, &mut pending, &mut waiters);
                // Everything that queued up meanwhile joins this transaction.
                while pending.changes.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(op) => take(op, &mut pending, &mut waiters),
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => {
                            disconnected = true;
                            break;
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => disconnected = true,
        }
        let now = Instant::now();
        let due = match next_flush {
            None => true,
            Some(f) => now >= f || !waiters.is_empty() || disconnected,
        };
        if due && (!pending.is_empty() || !waiters.is_empty()) {
            let submitted = pending.submitted;
            commit(
                &mut *store,
                &mut pending,
                &mut waiters,
                interval.is_some(),
                health,
            );
            if pending.is_empty() {
                queued.fetch_sub(submitted, Ordering::Relaxed);
            }
            next_probe = now + PROBE_EVERY;
        }
        if now >= next_probe && loader.is_none() {
            match store.ping() {
                Ok(()) => health.up(),
                Err(e) => health.down(&e),
            }
            next_probe = now + PROBE_EVERY;
        }
        if let (Some(i), true) = (interval, due) {
            next_flush = Some(now + i);
        }
        if now >= next_purge {
            match store.purge_expired(unix_now()) {
                Ok(n) if n > 0 => {
                    tracing::debug!("usrloc: {n} expired bindings deleted from the database")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("usrloc: purging expired bindings failed: {e}"),
            }
            next_purge = now + PURGE_EVERY;
        }
        if disconnected {
            return;
        }
    }
}

fn take(op: Op, pending: &mut Pending, waiters: &mut Vec<Done>) {
    match op {
        Op::Changes { changes, done } => {
            for c in changes {
                pending.push(c);
            }
            waiters.extend(done);
        }
        Op::Flush(done) => waiters.push(done),
    }
}

/// One transaction of everything pending, then every waiter told its
/// outcome. `health` logs a database that is away once when commits start
/// failing and once when they succeed again, not at every REGISTER.
fn commit(
    store: &mut dyn BindingStore,
    pending: &mut Pending,
    waiters: &mut Vec<Done>,
    retry_on_error: bool,
    health: &Health,
) {
    let result = if pending.is_empty() {
        Ok(())
    } else {
        let started = Instant::now();
        let r = store.commit(&pending.changes);
        crate::stats::store_commit(started.elapsed(), r.is_ok());
        r
    };
    match &result {
        Ok(()) => {
            tracing::trace!(changes = pending.changes.len(), "usrloc: committed");
            if !pending.is_empty() {
                health.committed();
            }
            pending.clear();
        }
        Err(e) => {
            health.down(e);
            tracing::debug!(
                changes = pending.changes.len(),
                "usrloc: database commit failed: {e}"
            );
            // Write-back tries again at the next interval; write-through has
            // told each waiter already, and their UAs will register again.
            if !retry_on_error {
                pending.clear();
            }
        }
    }
    for done in waiters.drain(..) {
        done(result.as_ref().map(|_| ()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::store::StoredBinding;

    /// Records each commit's changes.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<Change>>>>);

    impl BindingStore for Recorder {
        fn load(&mut self, _now: i64) -> Result<Vec<StoredBinding>, StoreError> {
            Ok(Vec::new())
        }
        fn commit(&mut self, changes: &[Change]) -> Result<(), StoreError> {
            self.0.lock().expect("lock").push(changes.to_vec());
            Ok(())
        }
        fn purge_expired(&mut self, _now: i64) -> Result<usize, StoreError> {
            Ok(0)
        }
    }

    fn put(contact: &str, cseq: u32) -> Change {
        Change::Put(StoredBinding {
            table: "location".into(),
            aor: "a".into(),
            contact: contact.into(),
            q: 1.0,
            expires: Some(10),
            call_id: "c".into(),
            cseq,
            received: None,
            path: None,
            params: None,
            updated: 0,
            server_id: 0,
            socket: None,
            nat: false,
        })
    }

    fn health() -> Arc<Health> {
        Arc::new(Health::new("sqlite", "test".into()))
    }

    fn flushed(w: &Writer) {
        let (tx, rx) = mpsc::channel();
        w.flush(Box::new(move |r| {
            let _ = tx.send(r.is_ok());
        }));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(true));
    }

    #[test]
    fn write_through_runs_the_completion_after_the_commit_that_holds_the_change() {
        let rec = Recorder::default();
        let w = Writer::spawn(
            Box::new(rec.clone()),
            WriteMode::Through,
            None,
            health(),
            None,
        )
        .expect("spawn");
        let (tx, rx) = mpsc::channel();
        let seen = rec.clone();
        w.submit(
            vec![put("sip:a@1", 1)],
            Some(Box::new(move |r| {
                // The change is in the store when the completion runs.
                let committed = seen.0.lock().expect("lock").concat();
                let _ = tx.send((r.is_ok(), committed.len()));
            })),
        );
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok((true, 1)));
    }

    #[test]
    fn write_back_coalesces_changes_of_one_binding_until_the_interval() {
        let rec = Recorder::default();
        let w = Writer::spawn(
            Box::new(rec.clone()),
            WriteMode::Back {
                interval: Duration::from_secs(3600),
            },
            None,
            health(),
            None,
        )
        .expect("spawn");
        for cseq in 1..=10 {
            w.submit(vec![put("sip:a@1", cseq)], None);
        }
        w.submit(vec![put("sip:a@2", 1)], None);
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            rec.0.lock().expect("lock").is_empty(),
            "nothing is written before the interval"
        );
        flushed(&w);
        let commits = rec.0.lock().expect("lock").clone();
        assert_eq!(commits, vec![vec![put("sip:a@1", 10), put("sip:a@2", 1)]]);
    }

    #[test]
    fn write_back_commits_when_the_interval_elapses() {
        let rec = Recorder::default();
        let w = Writer::spawn(
            Box::new(rec.clone()),
            WriteMode::Back {
                interval: Duration::from_millis(100),
            },
            None,
            health(),
            None,
        )
        .expect("spawn");
        w.submit(vec![put("sip:a@1", 1)], None);
        let deadline = Instant::now() + Duration::from_secs(5);
        while rec.0.lock().expect("lock").is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(rec.0.lock().expect("lock").len(), 1);
    }
}
