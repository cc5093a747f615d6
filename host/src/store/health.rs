//! What an operator asks first when registrations fail: is the database
//! up? [`Health`] is written by the threads that talk to the database (the
//! writer after each commit or probe, the shared mode's listener) and read
//! by `wisp ctl ps` and `/metrics`: only memory, never the database.
//!
//! A change of state is logged here, once: "down" when a call that worked
//! fails (or the first one does), "up" when one works again.

use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use super::{StoreError, unix_now};

/// The database's state, as its last call found it.
#[derive(Debug)]
pub struct Health {
    /// `sqlite` or `postgres`.
    backend: &'static str,
    /// Where: the SQLite file, or PostgreSQL's host, port and database (no
    /// user, no password).
    location: String,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None` until the first call answered or failed.
    up: Option<bool>,
    /// Unix seconds of the last change of `up`.
    since: i64,
    last_error: Option<String>,
    last_commit: Option<Instant>,
}

/// A snapshot of [`Health`] for `wisp ctl ps` and the metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    pub backend: &'static str,
    pub location: String,
    /// `up`, `down`, or `connecting` before the first call answered.
    pub state: &'static str,
    /// Unix seconds of the last change of state (the start, before any).
    pub since: i64,
    /// The last error the database gave, kept after it is up again.
    pub last_error: Option<String>,
    /// Seconds since the last commit that succeeded; `None` before one.
    pub last_commit_age_seconds: Option<u64>,
}

impl HealthReport {
    /// Whether the last call to the database worked.
    pub fn is_up(&self) -> bool {
        self.state == "up"
    }
}

impl Health {
    pub fn new(backend: &'static str, location: String) -> Health {
        Health {
            backend,
            location,
            inner: Mutex::new(Inner {
                up: None,
                since: unix_now(),
                last_error: None,
                last_commit: None,
            }),
        }
    }

    /// A call to the database worked (logs the way back up, once).
    pub fn up(&self) {
        let mut i = crate::util::lock(&self.inner);
        if i.up != Some(true) {
            if i.up == Some(false) {
                tracing::info!(
                    backend = self.backend,
                    "usrloc: the database {} is up again",
                    self.location
                );
            }
            i.up = Some(true);
            i.since = unix_now();
        }
    }

    /// A commit succeeded (the database is up).
    pub fn committed(&self) {
        self.up();
        crate::util::lock(&self.inner).last_commit = Some(Instant::now());
    }

    /// A call to the database failed with `e` (logs the fall, once).
    pub fn down(&self, e: &StoreError) {
        let mut i = crate::util::lock(&self.inner);
        if i.up != Some(false) {
            tracing::error!(
                backend = self.backend,
                "usrloc: the database {} is down ({e}): write-through REGISTERs are answered \
                 503 until it is back, which is logged",
                self.location
            );
            i.up = Some(false);
            i.since = unix_now();
        }
        i.last_error = Some(e.to_string());
    }

    pub fn report(&self) -> HealthReport {
        let i = crate::util::lock(&self.inner);
        HealthReport {
            backend: self.backend,
            location: self.location.clone(),
            state: match i.up {
                Some(true) => "up",
                Some(false) => "down",
                None => "connecting",
            },
            since: i.since,
            last_error: i.last_error.clone(),
            last_commit_age_seconds: i.last_commit.map(|t| t.elapsed().as_secs()),
        }
    }
}

/// Where a PostgreSQL URL points, without user or password:
/// `host=/run/postgresql port=5432 dbname=wisp`.
pub fn pg_location(config: &::postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            ::postgres::config::Host::Tcp(name) => name.clone(),
            ::postgres::config::Host::Unix(dir) => dir.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    let mut out = format!("host={}", hosts.join(","));
    if !ports.is_empty() {
        out.push_str(&format!(" port={}", ports.join(",")));
    }
    if let Some(db) = config.get_dbname() {
        out.push_str(&format!(" dbname={db}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_follows_the_last_call_and_keeps_the_last_error() {
        let h = Health::new("postgres", "host=db port=5432 dbname=wisp".into());
        assert_eq!(h.report().state, "connecting");
        h.down(&StoreError::Disconnected);
        let r = h.report();
        assert_eq!((r.state, r.last_commit_age_seconds), ("down", None));
        assert_eq!(
            r.last_error.as_deref(),
            Some("the connection to the database is lost")
        );
        h.committed();
        let r = h.report();
        assert!(r.is_up());
        assert_eq!(r.last_commit_age_seconds, Some(0));
        assert!(
            r.last_error.is_some(),
            "the last error stays for the operator"
        );
    }

    #[test]
    fn pg_location_shows_no_password() {
        let c: ::postgres::Config = "postgres://wisp:s3cret@db.example:6432/sip"
            .parse()
            .expect("url");
        let shown = pg_location(&c);
        assert_eq!(shown, "host=db.example port=6432 dbname=sip");
        let c: ::postgres::Config = "postgres://wisp@/wisp?host=/run/pg".parse().expect("url");
        assert_eq!(pg_location(&c), "host=/run/pg dbname=wisp");
    }
}
