//! The accounting log: records from the transaction layer ([`AccRecord`])
//! go through a bounded queue to a writer thread, which writes each as a
//! log line (target `wisp::acc`) and keeps the latest for `wisp ctl acc
//! show`. Routing never waits on it: a full queue leaves the record out
//! and counts it (`wisp_acc_dropped_total`).
//!
//! The thread also gives a BYE's record the call's duration: it remembers
//! when each accounted INVITE got its first 2xx, by Call-ID (a re-INVITE
//! keeps the call's start), for the last [`OPEN_CALLS`] calls answered.
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
/// Calls answered whose BYE may still come, for its duration: a call
/// outlived by this many later answered calls gets no duration.
pub const OPEN_CALLS: usize = 100_000;

/// When the accounted calls were answered, by Call-ID, and the Call-IDs in
/// the order they were answered (ended ones included, until they are the
/// oldest: no search on each BYE).
#[derive(Default)]
struct OpenCalls {
    by_id: std::collections::HashMap<String, std::time::SystemTime>,
    order: VecDeque<(String, std::time::SystemTime)>,
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
                let mut open = OpenCalls::default();
                for mut r in rx {
                    open.note(&mut r);
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
    let duration = r
        .duration
        .map(|d| format!(" duration={:.3}", d.as_secs_f64()))
        .unwrap_or_default();
    format!(
        "{} {} {} {} call_id={:?} cseq={} from={:?} to={:?} ruri={:?} src={}:{}{duration}",
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
            code,
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
        assert!(line(&bye).ends_with(" duration=62.500"), "{}", line(&bye));
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
