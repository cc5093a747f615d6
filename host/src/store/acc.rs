//! The `acc` table (Kamailio's `acc` and `missed_calls` tables in one,
//! `missed` telling them apart): one row per accounting record, written in
//! batches by the accounting writer thread, read back by `wisp ctl acc
//! show`. Times are Unix seconds with their fraction (`datetime(time,
//! 'unixepoch')` on SQLite, `to_timestamp(time)` on PostgreSQL).

use super::StoreError;

/// One record as it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAcc {
    pub method: String,
    /// The `tag` of the request's From (empty without one).
    pub from_tag: String,
    /// The `tag` of the final reply's To (empty without one).
    pub to_tag: String,
    pub callid: String,
    pub cseq: u32,
    pub sip_code: u16,
    pub sip_reason: String,
    /// Unix seconds (with milliseconds) when the final reply went out.
    pub time: f64,
    /// The From and To header values, the Request-URI.
    pub from: String,
    pub to: String,
    pub ruri: String,
    /// Where the request came from: `udp:192.0.2.1:5060`.
    pub src: String,
    /// Of a BYE: seconds since its call's INVITE was answered.
    pub duration: Option<f64>,
    /// A missed-call record (`log_missed_flag`), not a plain one.
    pub missed: bool,
}

/// A database that keeps accounting records. Called from one thread at a
/// time (the accounting writer, or a `wisp ctl acc show` on a connection
/// of its own).
pub trait AccStore: Send + 'static {
    /// Append `rows` in one transaction, all or nothing.
    fn insert_acc(&mut self, rows: &[StoredAcc]) -> Result<(), StoreError>;
    /// The latest `n` rows, oldest first.
    fn latest_acc(&mut self, n: usize) -> Result<Vec<StoredAcc>, StoreError>;
}
