//! Accounting (Kamailio `acc`): a transaction whose request carries the
//! manifest's `log_flag` produces one [`AccRecord`] when its final reply
//! goes upstream, whether relayed or made here; with `log_missed_flag`, a
//! final reply of 300 or more produces a missed-call record. Retransmitted
//! requests are absorbed by their transaction, so they add nothing.
//!
//! This layer only builds the record and hands it to an [`AccSink`] (the
//! services layer's queue, which writes it off the routing path): it holds
//! the transaction's lock, so a sink must never block.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use super::Tm;
use super::transaction::Transaction;
use crate::config::{AccConfig, Proto};

/// One accounted transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct AccRecord {
    pub method: String,
    pub from: String,
    pub to: String,
    pub ruri: String,
    pub call_id: String,
    pub cseq: u32,
    /// The final reply's status.
    pub code: u16,
    /// A missed call (the `log_missed_flag` record), not a plain one.
    pub missed: bool,
    /// When the final reply went out.
    pub time: SystemTime,
    pub source: SocketAddr,
    pub proto: Proto,
    /// Of a BYE: how long the call lasted, from its accounted INVITE's 2xx
    /// (filled by the accounting log, off the routing path).
    pub duration: Option<std::time::Duration>,
}

/// Where records go. Called with the transaction locked: never block.
pub trait AccSink: Send + Sync {
    fn record(&self, record: AccRecord);
}

/// The manifest's flags and the sink.
pub struct Accounting {
    log_flag: Option<u8>,
    missed_flag: Option<u8>,
    sink: Arc<dyn AccSink>,
}

impl Accounting {
    pub fn new(cfg: &AccConfig, sink: Arc<dyn AccSink>) -> Accounting {
        Accounting {
            log_flag: cfg.log_flag,
            missed_flag: cfg.log_missed_flag,
            sink,
        }
    }
}

fn set(flags: u64, flag: Option<u8>) -> bool {
    flag.is_some_and(|f| f < 64 && flags & (1 << f) != 0)
}

impl Tm {
    /// Account the transactions of the manifest's flags from now on (the
    /// router sets this once, at start).
    pub fn set_accounting(&self, acc: Accounting) {
        if self.acc.set(acc).is_err() {
            tracing::warn!("acc: accounting set twice; the first stays");
        }
    }

    /// `txn`'s final reply `code` went upstream: count it, and its
    /// records if flagged.
    pub(super) fn final_reply_sent(&self, txn: &Transaction, code: u16) {
        crate::stats::inc(crate::stats::Counter::TransactionsAnswered);
        let Some(acc) = self.acc.get() else {
            return;
        };
        let plain = set(txn.flags, acc.log_flag);
        let missed = code >= 300 && set(txn.flags, acc.missed_flag);
        if !plain && !missed {
            return;
        }
        let req = &txn.request;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let header = |name: &str| req.header(name).map(|h| text(&h.value)).unwrap_or_default();
        let record = AccRecord {
            method: req.method().map(|m| m.to_string()).unwrap_or_default(),
            from: header("From"),
            to: header("To"),
            ruri: text(&req.request_uri_raw()),
            call_id: txn.call_id(),
            cseq: txn.summary.cseq,
            code,
            missed: false,
            time: SystemTime::now(),
            source: txn.source.remote,
            proto: txn.source.proto,
            duration: None,
        };
        if plain && missed {
            acc.sink.record(record.clone());
        }
        acc.sink.record(AccRecord { missed, ..record });
    }
}

#[cfg(test)]
mod tests {
    use super::set;

    #[test]
    fn a_flag_is_one_bit_of_the_request_flags() {
        assert!(set(1 << 3, Some(3)));
        assert!(!set(1 << 3, Some(2)));
        assert!(!set(u64::MAX, None));
        assert!(set(1 << 63, Some(63)));
        assert!(!set(u64::MAX, Some(64)), "out of range is never set");
    }
}
