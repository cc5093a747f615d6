//! The shared user location (`usrloc.db_mode = 3`): several routers on one
//! PostgreSQL database, each answering `lookup` from its own memory (the
//! receive path never waits for the database). A thread per router keeps
//! that memory current: the database NOTIFYs every changed AOR (a trigger
//! on `bindings`), and the thread reads that AOR again and puts its rows in
//! place of what memory held. When the connection is lost the memory keeps
//! serving what it had; once the database is back, the thread listens
//! again and reloads every table whole (changes made meanwhile were not
//! heard). Each change of state is logged once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::usrloc::{Tables, replace_all, replace_aor};
use crate::store::postgres::PgStore;
use crate::store::{BindingStore, StoreError, unix_now};

/// How long one wait for notifications lasts: also how soon the thread
/// notices that its router is gone.
const WAIT: Duration = Duration::from_secs(1);
/// A quiet connection is tried this often, so that a lost one is noticed
/// (and memory reloaded) without waiting for the next change.
const PING_EVERY: Duration = Duration::from_secs(5);
/// Between attempts to reach a database that is away.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// After a reload, how long this router's own changes are read again too:
/// a commit of its own that landed after the reload's snapshot was wiped
/// from memory by it, and only its notification brings it back.
const OWN_AFTER_RELOAD: Duration = Duration::from_secs(5);

/// Start the listener thread on `store`: `connected`, it already LISTENs
/// and `tables` was loaded from the database; else (the database was away
/// at start) it connects, listens and loads as soon as it can. It ends
/// when `tables` is dropped.
pub(super) fn spawn(
    store: PgStore,
    connected: bool,
    tables: Weak<Tables>,
    stale: Arc<AtomicBool>,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("wisp-db-listen".into())
        .spawn(move || run(store, connected, tables, stale))
        .map(|_| ())
        .map_err(StoreError::Spawn)
}

fn run(mut store: PgStore, mut connected: bool, tables: Weak<Tables>, stale: Arc<AtomicBool>) {
    // The connection that LISTENs: a call that had to make another one
    // (the old one broke) means notifications were missed.
    let mut listening_on = store.connections();
    let mut quiet_since = Instant::now();
    let mut own_again_until: Option<Instant> = None;
    // Reloading because a commit failed, not because the connection was lost.
    let mut refused = false;
    loop {
        if own_again_until.is_some_and(|t| Instant::now() >= t) {
            own_again_until = None;
            store.set_skip_own(true);
        }
        if tables.strong_count() == 0 {
            return;
        }
        // A failed commit left memory holding a change the database does
        // not have: read it all again, as after a reconnection.
        if connected && stale.swap(false, Ordering::Relaxed) {
            connected = false;
            refused = true;
        }
        if !connected {
            stale.store(false, Ordering::Relaxed);
            let back = store.listen().and_then(|()| store.load(unix_now()));
            match back {
                Ok(rows) => {
                    listening_on = store.connections();
                    let Some(t) = tables.upgrade() else { return };
                    let n = replace_all(&t, rows);
                    store.set_skip_own(false);
                    own_again_until = Some(Instant::now() + OWN_AFTER_RELOAD);
                    if refused {
                        tracing::info!(
                            "usrloc: a commit failed: {n} bindings reloaded from the database"
                        );
                    } else {
                        tracing::info!(
                            "usrloc: the database is back: {n} bindings reloaded, listening for changes again"
                        );
                    }
                    connected = true;
                    refused = false;
                    quiet_since = Instant::now();
                }
                Err(e) => {
                    if std::mem::take(&mut refused) {
                        warn_lost(&e);
                    }
                    tracing::debug!("usrloc: the database is still away: {e}");
                    std::thread::sleep(RETRY_EVERY);
                    continue;
                }
            }
        }
        let heard = store.wait_changes(WAIT).and_then(|keys| {
            if keys.is_empty() {
                if quiet_since.elapsed() >= PING_EVERY {
                    quiet_since = Instant::now();
                    store.ping()?;
                }
                return Ok(());
            }
            quiet_since = Instant::now();
            let now = unix_now();
            for (table, aor) in keys {
                let rows = store.load_aor(&table, &aor, now)?;
                let Some(t) = tables.upgrade() else {
                    return Ok(());
                };
                replace_aor(&t, &table, &aor, rows);
            }
            Ok(())
        });
        let heard = heard.and_then(|()| {
            if store.connections() == listening_on {
                Ok(())
            } else {
                Err(StoreError::Disconnected)
            }
        });
        if let Err(e) = heard {
            warn_lost(&e);
            connected = false;
        }
    }
}

fn warn_lost(e: &StoreError) {
    tracing::warn!(
        "usrloc: lost the database's change notifications ({e}); lookups answer from \
         memory, which may miss changes made through other routers until it is back"
    );
}
