//! The accounting log: records from the transaction layer ([`AccRecord`])
//! go through a bounded queue to a writer thread, which writes each as a
//! log line (target `wisp::acc`) and keeps the latest for `wisp ctl acc
//! show`. Routing never waits on it: a full queue leaves the record out
//! and counts it (`wisp_acc_dropped_total`).
//!
//! ```text
//! INFO wisp::acc: transaction answered method="OPTIONS" code=200 call_id="c1@h" cseq=1
//!     from="<sip:carol@h>;tag=1" to="<sip:alice@h>" ruri="sip:alice@10.0.0.2:5060" src="udp:10.0.0.1:5060"
//! ```

use std::collections::VecDeque;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use crate::config::AccConfig;
use crate::stats::{self, Counter};
use crate::tm::acc::{AccRecord, AccSink};
use crate::util::lock;

/// Records `wisp ctl acc show` can list.
pub const KEPT: usize = 1000;

/// The queue and the latest records.
pub struct AccLog {
    tx: SyncSender<AccRecord>,
    latest: Arc<Mutex<VecDeque<AccRecord>>>,
}

impl AccLog {
    /// Start the writer thread, with a queue of `cfg.queue` records.
    pub fn spawn(cfg: &AccConfig) -> std::io::Result<Arc<AccLog>> {
        let (tx, rx) = mpsc::sync_channel::<AccRecord>(cfg.queue);
        let latest = Arc::new(Mutex::new(VecDeque::with_capacity(KEPT)));
        let kept = latest.clone();
        std::thread::Builder::new()
            .name("wisp-acc".into())
            .spawn(move || {
                for r in rx {
                    write(&r);
                    let mut kept = lock(&kept);
                    if kept.len() == KEPT {
                        kept.pop_front();
                    }
                    kept.push_back(r);
                }
            })?;
        Ok(Arc::new(AccLog { tx, latest }))
    }

    /// The latest `n` records written, oldest first.
    pub fn latest(&self, n: usize) -> Vec<AccRecord> {
        let kept = lock(&self.latest);
        kept.iter()
            .skip(kept.len().saturating_sub(n))
            .cloned()
            .collect()
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

/// One record as a line: what `wisp ctl acc show` and the log show.
pub fn line(r: &AccRecord) -> String {
    format!(
        "{} {} {} {} call_id={:?} cseq={} from={:?} to={:?} ruri={:?} src={}:{}",
        humantime::format_rfc3339_millis(r.time),
        if r.missed { "missed" } else { "answered" },
        r.method,
        r.code,
        r.call_id,
        r.cseq,
        r.from,
        r.to,
        r.ruri,
        r.proto.to_string().to_ascii_lowercase(),
        r.source
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
        call_id = %r.call_id,
        cseq = r.cseq,
        from = %r.from,
        to = %r.to,
        ruri = %r.ruri,
        src = %format_args!("{}:{}", r.proto.to_string().to_ascii_lowercase(), r.source),
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
            code,
            missed: code >= 300,
            time: SystemTime::UNIX_EPOCH,
            source: "10.0.0.1:5060".parse().expect("addr"),
            proto: Proto::Udp,
        }
    }

    #[test]
    fn records_are_kept_in_order_and_a_full_queue_never_blocks() {
        let log = AccLog::spawn(&AccConfig {
            queue: 1,
            ..AccConfig::default()
        })
        .expect("thread");
        let dropped_before = stats::get(Counter::AccDropped);
        // Far more than the queue holds, at once: each call returns
        // whether or not the writer keeps up.
        for code in 200..400 {
            log.record(rec(code));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let written = loop {
            let w = log.latest(KEPT);
            let dropped = stats::get(Counter::AccDropped) - dropped_before;
            if w.len() as u64 + dropped >= 200 || Instant::now() > deadline {
                break w;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(!written.is_empty());
        assert!(
            written.windows(2).all(|w| w[0].code < w[1].code),
            "in order"
        );
        assert_eq!(log.latest(1).len(), 1);
        assert_eq!(
            line(&rec(486)),
            "1970-01-01T00:00:00.000Z missed INVITE 486 call_id=\"c486\" cseq=1 \
             from=\"<sip:a@h>;tag=1\" to=\"<sip:b@h>\" ruri=\"sip:b@10.0.0.2\" src=udp:10.0.0.1:5060"
        );
    }
}
