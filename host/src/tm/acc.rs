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

use bytes::Bytes;

use super::transaction::Transaction;
use super::{RouteContext, Tm};
use crate::config::{AccConfig, Proto};
use crate::stateless::ActionError;
use crate::transport::Source;

/// One accounted transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct AccRecord {
    pub method: String,
    pub from: String,
    pub to: String,
    pub ruri: String,
    pub call_id: String,
    pub cseq: u32,
    /// The tag of the request's From, of the final reply's To (empty
    /// without one).
    pub from_tag: String,
    pub to_tag: String,
    /// The final reply's status and reason phrase.
    pub code: u16,
    pub reason: String,
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

    /// `txn`'s final reply `code` (`reply`) went upstream: count it, and
    /// its records if flagged.
    pub(super) fn final_reply_sent(&self, txn: &Transaction, code: u16, reply: &Bytes) {
        crate::stats::inc(crate::stats::Counter::TransactionsAnswered);
        let Some(acc) = self.acc.get() else {
            return;
        };
        let plain = set(txn.flags, acc.log_flag);
        let missed = code >= 300 && set(txn.flags, acc.missed_flag);
        if !plain && !missed {
            return;
        }
        let (reason, to_tag) = reason_and_to_tag(reply);
        let record = AccRecord {
            call_id: txn.call_id(),
            code,
            reason,
            to_tag,
            ..request_record(&txn.request, txn.summary.cseq, &txn.source)
        };
        acc.record(record, plain, missed);
    }

    /// `acc_request(reason)` (Kamailio `acc_log_request` /
    /// `acc_db_request`): account the request of `ctx`, which the route
    /// answered itself, with the status and reason `text` gives (`"404 Not
    /// Found"`; text without a leading status is all reason, status 0). It
    /// is recorded whatever its flags; with `log_missed_flag` set on it and
    /// a status of 300 or more, a missed-call record too.
    pub fn acc_request(&self, ctx: &RouteContext, text: &str) -> Result<(), ActionError> {
        if text.contains(['\r', '\n']) {
            return Err(ActionError::InvalidArgument(
                "the reason may not contain CR or LF".into(),
            ));
        }
        let msg = &ctx.base.msg;
        if !msg.is_request() {
            return Err(ActionError::NotAllowedHere(
                "acc_request accounts a request, not a reply".into(),
            ));
        }
        let Some(acc) = self.acc.get() else {
            return Err(ActionError::Internal(
                "accounting is off: set [acc] log_flag or log_missed_flag".into(),
            ));
        };
        let (code, reason) = parse_comment(text);
        let missed = code >= 300 && set(ctx.base.flags, acc.missed_flag);
        let record = AccRecord {
            call_id: msg
                .call_id()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .unwrap_or_default(),
            code,
            reason: reason.to_owned(),
            to_tag: msg
                .to()
                .ok()
                .and_then(|t| t.tag().map(str::to_owned))
                .unwrap_or_default(),
            ..request_record(msg, ctx.base.summary.cseq, &ctx.base.source)
        };
        acc.record(record, true, missed);
        Ok(())
    }
}

impl Accounting {
    /// Hand the plain record, the missed-call one, or both to the sink.
    fn record(&self, record: AccRecord, plain: bool, missed: bool) {
        if plain && missed {
            self.sink.record(record.clone());
        }
        self.sink.record(AccRecord { missed, ..record });
    }
}

/// What a record takes from the request itself.
fn request_record(req: &wisp_sip::Message, cseq: u32, source: &Source) -> AccRecord {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let header = |name: &str| req.header(name).map(|h| text(&h.value)).unwrap_or_default();
    AccRecord {
        method: req.method().map(|m| m.to_string()).unwrap_or_default(),
        from: header("From"),
        to: header("To"),
        ruri: text(&req.request_uri_raw()),
        call_id: String::new(),
        cseq,
        from_tag: req
            .from()
            .ok()
            .and_then(|f| f.tag().map(str::to_owned))
            .unwrap_or_default(),
        to_tag: String::new(),
        code: 0,
        reason: String::new(),
        missed: false,
        time: SystemTime::now(),
        source: source.remote,
        proto: source.proto,
        duration: None,
    }
}

/// Kamailio's acc comment: a leading three-digit status and a space, then
/// the reason (`"404 Not Found"`); without one, all of it is the reason.
fn parse_comment(text: &str) -> (u16, &str) {
    let text = text.trim();
    let b = text.as_bytes();
    if b.len() >= 3
        && b[..3].iter().all(u8::is_ascii_digit)
        && (b.len() == 3 || b[3] == b' ')
        && let Ok(code) = text[..3].parse::<u16>()
        && (100..=699).contains(&code)
    {
        return (code, text[3..].trim_start());
    }
    (0, text)
}

/// The reason phrase and the To tag of a reply we sent (it parsed when
/// built or received; empty if not).
fn reason_and_to_tag(reply: &Bytes) -> (String, String) {
    let Ok(msg) = wisp_sip::Message::parse(reply.clone()) else {
        return Default::default();
    };
    let reason = match msg.start_line() {
        wisp_sip::StartLine::Response { reason, .. } => {
            String::from_utf8_lossy(reason).into_owned()
        }
        wisp_sip::StartLine::Request { .. } => String::new(),
    };
    let to_tag = msg
        .to()
        .ok()
        .and_then(|t| t.tag().map(str::to_owned))
        .unwrap_or_default();
    (reason, to_tag)
}

#[cfg(test)]
mod tests {
    use super::{parse_comment, set};

    #[test]
    fn a_comment_gives_a_status_and_a_reason_like_kamailio() {
        assert_eq!(parse_comment("404 Not Found"), (404, "Not Found"));
        assert_eq!(parse_comment(" 403  Forbidden "), (403, "Forbidden"));
        assert_eq!(parse_comment("200"), (200, ""));
        assert_eq!(parse_comment("call screened"), (0, "call screened"));
        assert_eq!(parse_comment("4040 x"), (0, "4040 x"));
        assert_eq!(parse_comment("999 Odd"), (0, "999 Odd"));
        assert_eq!(parse_comment(""), (0, ""));
    }

    #[test]
    fn a_flag_is_one_bit_of_the_request_flags() {
        assert!(set(1 << 3, Some(3)));
        assert!(!set(1 << 3, Some(2)));
        assert!(!set(u64::MAX, None));
        assert!(set(1 << 63, Some(63)));
        assert!(!set(u64::MAX, Some(64)), "out of range is never set");
    }
}
