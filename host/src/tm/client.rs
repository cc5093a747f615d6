//! Client transactions (RFC 3261 §17.1): one per branch a proxy sends.
//!
//! Sans-IO: events go in with the time they happen at, [`TxnAction`]s come
//! out (send these bytes, set this timer, this branch timed out). The proxy
//! layer owns the sockets and the timer queue.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::timer::{TimerKind, Timers};

/// What a transaction asks its owner to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnAction {
    /// (Re)send these bytes to the transaction's peer.
    Send(Bytes),
    /// Hand this timer back at that instant.
    Schedule(TimerKind, Instant),
    /// The timer scheduled for that instant no longer applies: take it out
    /// of the queue, rather than keep it until it fires for nothing.
    Cancel(TimerKind, Instant),
    /// Timer B or F: the peer never answered (the proxy treats it as 408).
    Timeout,
    /// Nothing more will happen: the transaction can be forgotten.
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE sent, nothing heard (non-INVITE: "Trying").
    Calling,
    Proceeding,
    Completed,
    Terminated,
}

/// The client side of one branch.
#[derive(Debug)]
pub struct ClientTransaction {
    invite: bool,
    reliable: bool,
    state: ClientState,
    request: Bytes,
    interval: Duration,
    /// The ACK sent for a non-2xx final, sent again for each retransmission of it.
    ack: Option<Bytes>,
    /// Timer B/F, and the next retransmission (A/E), while pending.
    timeout: (TimerKind, Instant),
    retransmit: Option<(TimerKind, Instant)>,
}

impl ClientTransaction {
    /// Send `request` and arm the retransmission (unreliable transports
    /// only) and timeout timers.
    pub fn start(
        invite: bool,
        reliable: bool,
        request: Bytes,
        now: Instant,
        t: &Timers,
        out: &mut Vec<TxnAction>,
    ) -> Self {
        Self::start_with_timeout(invite, reliable, request, t.t1x64(), now, t, out)
    }

    /// Like [`start`](Self::start) with timer B/F at `timeout` instead of
    /// 64*T1: a proxy whose `fr_timer` is shorter gives up earlier, with one
    /// timer instead of two.
    pub fn start_with_timeout(
        invite: bool,
        reliable: bool,
        request: Bytes,
        timeout: Duration,
        now: Instant,
        t: &Timers,
        out: &mut Vec<TxnAction>,
    ) -> Self {
        out.push(TxnAction::Send(request.clone()));
        let retransmit = (!reliable).then(|| {
            let kind = if invite { TimerKind::A } else { TimerKind::E };
            (kind, now + t.t1)
        });
        if let Some((kind, at)) = retransmit {
            out.push(TxnAction::Schedule(kind, at));
        }
        let kind = if invite { TimerKind::B } else { TimerKind::F };
        let timeout = (kind, now + timeout);
        out.push(TxnAction::Schedule(timeout.0, timeout.1));
        ClientTransaction {
            invite,
            reliable,
            state: ClientState::Calling,
            request,
            interval: t.t1,
            ack: None,
            timeout,
            retransmit,
        }
    }

    /// A final answer came: the timeout and retransmission timers are
    /// cancelled (timer F alone would otherwise outlive the transaction by
    /// half a minute).
    fn cancel_pending_timers(&mut self, out: &mut Vec<TxnAction>) {
        out.push(TxnAction::Cancel(self.timeout.0, self.timeout.1));
        if let Some((kind, at)) = self.retransmit.take() {
            out.push(TxnAction::Cancel(kind, at));
        }
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    /// The request as sent (for building CANCEL and ACK).
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// True until a final response arrived or the transaction gave up.
    pub fn is_pending(&self) -> bool {
        matches!(self.state, ClientState::Calling | ClientState::Proceeding)
    }

    /// A response arrived. Returns whether it goes up to the proxy (false:
    /// a retransmission absorbed here). For a non-2xx final to an INVITE,
    /// `ack` builds the hop-by-hop ACK (§17.1.1.3), sent at once.
    pub fn on_response(
        &mut self,
        code: u16,
        now: Instant,
        t: &Timers,
        ack: impl FnOnce() -> Option<Bytes>,
        out: &mut Vec<TxnAction>,
    ) -> bool {
        use ClientState::*;
        match (self.state, code) {
            (Calling | Proceeding, 100..=199) => {
                self.state = Proceeding;
                true
            }
            (Calling | Proceeding, 200..=299) if self.invite => {
                // §17.1.1.2: a 2xx ends the INVITE client transaction; its
                // retransmissions and the ACK are end to end.
                self.cancel_pending_timers(out);
                self.state = Terminated;
                out.push(TxnAction::Terminated);
                true
            }
            (Calling | Proceeding, _) if self.invite => {
                self.cancel_pending_timers(out);
                self.state = Completed;
                self.ack = ack();
                if let Some(a) = &self.ack {
                    out.push(TxnAction::Send(a.clone()));
                }
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    t.t1x64()
                };
                out.push(TxnAction::Schedule(TimerKind::D, now + wait));
                true
            }
            (Calling | Proceeding, _) => {
                self.cancel_pending_timers(out);
                self.state = Completed;
                let wait = if self.reliable { Duration::ZERO } else { t.t4 };
                out.push(TxnAction::Schedule(TimerKind::K, now + wait));
                true
            }
            (Completed, 300..=699) if self.invite => {
                if let Some(a) = &self.ack {
                    out.push(TxnAction::Send(a.clone()));
                }
                false
            }
            _ => false,
        }
    }

    /// One of this transaction's timers is due.
    pub fn on_timer(
        &mut self,
        kind: TimerKind,
        now: Instant,
        t: &Timers,
        out: &mut Vec<TxnAction>,
    ) {
        use ClientState::*;
        match (kind, self.state) {
            (TimerKind::A, Calling) => {
                self.interval *= 2;
                out.push(TxnAction::Send(self.request.clone()));
                self.retransmit = Some((TimerKind::A, now + self.interval));
                out.push(TxnAction::Schedule(TimerKind::A, now + self.interval));
            }
            (TimerKind::E, Calling | Proceeding) => {
                // §17.1.2.2: doubling up to T2; in Proceeding straight at T2.
                self.interval = if self.state == Proceeding {
                    t.t2
                } else {
                    (self.interval * 2).min(t.t2)
                };
                out.push(TxnAction::Send(self.request.clone()));
                self.retransmit = Some((TimerKind::E, now + self.interval));
                out.push(TxnAction::Schedule(TimerKind::E, now + self.interval));
            }
            (TimerKind::B, Calling) | (TimerKind::F, Calling | Proceeding) => {
                if let Some((kind, at)) = self.retransmit.take() {
                    out.push(TxnAction::Cancel(kind, at));
                }
                self.state = Terminated;
                out.push(TxnAction::Timeout);
                out.push(TxnAction::Terminated);
            }
            (TimerKind::D | TimerKind::K, Completed) => {
                self.state = Terminated;
                out.push(TxnAction::Terminated);
            }
            _ => {}
        }
    }

    /// Drop the request bytes once nothing can resend them (no longer
    /// pending): a completed transaction waits out its timers on a few
    /// hundred bytes instead of a copy of the request.
    pub fn release_request(&mut self) {
        if !self.is_pending() {
            self.request = Bytes::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tm::timer::{Clock, ManualClock};

    fn sends(out: &[TxnAction]) -> usize {
        out.iter()
            .filter(|a| matches!(a, TxnAction::Send(_)))
            .count()
    }

    fn scheduled(out: &[TxnAction], kind: TimerKind) -> Option<Instant> {
        out.iter().find_map(|a| match a {
            TxnAction::Schedule(k, at) if *k == kind => Some(*at),
            _ => None,
        })
    }

    /// Drive a transaction's own timers until `until`, as the driver would.
    fn run_timers(
        c: &mut ClientTransaction,
        clock: &ManualClock,
        t: &Timers,
        mut pending: Vec<(Instant, TimerKind)>,
        until: Duration,
    ) -> Vec<TxnAction> {
        let end = clock.now() + until;
        let mut all = Vec::new();
        loop {
            pending.sort();
            let Some(&(at, kind)) = pending.first() else {
                break;
            };
            if at > end {
                break;
            }
            pending.remove(0);
            clock.advance(at.saturating_duration_since(clock.now()));
            let mut out = Vec::new();
            c.on_timer(kind, clock.now(), t, &mut out);
            for a in &out {
                if let TxnAction::Schedule(k, at) = a {
                    pending.push((*at, *k));
                }
            }
            all.extend(out);
        }
        all
    }

    #[test]
    fn rfc3261_17_1_1_2_invite_over_udp_retransmits_at_doubling_intervals_until_timer_b() {
        let clock = ManualClock::new();
        let t = Timers::default();
        let mut out = Vec::new();
        let start = clock.now();
        let mut c = ClientTransaction::start(
            true,
            false,
            Bytes::from_static(b"INVITE"),
            start,
            &t,
            &mut out,
        );
        assert_eq!(sends(&out), 1);
        assert_eq!(scheduled(&out, TimerKind::A), Some(start + t.t1));
        assert_eq!(scheduled(&out, TimerKind::B), Some(start + t.t1 * 64));
        let pending = vec![
            (start + t.t1, TimerKind::A),
            (start + t.t1 * 64, TimerKind::B),
        ];
        let all = run_timers(&mut c, &clock, &t, pending, Duration::from_secs(40));
        // Retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s, then Timer B at 32 s.
        assert_eq!(sends(&all), 6);
        assert!(all.contains(&TxnAction::Timeout));
        assert_eq!(c.state(), ClientState::Terminated);
        assert_eq!(clock.now(), start + t.t1 * 64);
    }

    #[test]
    fn rfc3261_17_1_2_2_non_invite_retransmits_capped_at_t2_until_timer_f() {
        let clock = ManualClock::new();
        let t = Timers::default();
        let mut out = Vec::new();
        let start = clock.now();
        let mut c = ClientTransaction::start(
            false,
            false,
            Bytes::from_static(b"OPTIONS"),
            start,
            &t,
            &mut out,
        );
        let pending = vec![
            (start + t.t1, TimerKind::E),
            (start + t.t1 * 64, TimerKind::F),
        ];
        let all = run_timers(&mut c, &clock, &t, pending, Duration::from_secs(40));
        // 0.5, 1.5, 3.5, 7.5, then every 4 s: 11.5 ... 31.5 -> 4 + 6 = 10.
        assert_eq!(sends(&all), 10);
        assert!(all.contains(&TxnAction::Timeout));
    }

    #[test]
    fn rfc3261_17_1_1_2_reliable_transport_has_no_retransmission_timer() {
        let t = Timers::default();
        let mut out = Vec::new();
        let now = Instant::now();
        ClientTransaction::start(true, true, Bytes::from_static(b"INVITE"), now, &t, &mut out);
        assert_eq!(scheduled(&out, TimerKind::A), None);
        assert!(scheduled(&out, TimerKind::B).is_some());
    }

    #[test]
    fn rfc3261_17_1_1_2_provisional_stops_retransmission_and_timer_b() {
        let clock = ManualClock::new();
        let t = Timers::default();
        let mut out = Vec::new();
        let start = clock.now();
        let mut c = ClientTransaction::start(
            true,
            false,
            Bytes::from_static(b"INVITE"),
            start,
            &t,
            &mut out,
        );
        assert!(c.on_response(180, start, &t, || None, &mut out));
        let pending = vec![
            (start + t.t1, TimerKind::A),
            (start + t.t1 * 64, TimerKind::B),
        ];
        let all = run_timers(&mut c, &clock, &t, pending, Duration::from_secs(40));
        assert!(all.is_empty(), "{all:?}");
        assert_eq!(c.state(), ClientState::Proceeding);
    }

    #[test]
    fn rfc3261_17_1_1_3_non_2xx_final_is_acked_and_its_retransmission_acked_again() {
        let t = Timers::default();
        let now = Instant::now();
        let mut out = Vec::new();
        let mut c = ClientTransaction::start(
            true,
            false,
            Bytes::from_static(b"INVITE"),
            now,
            &t,
            &mut out,
        );
        out.clear();
        let ack = Bytes::from_static(b"ACK");
        assert!(c.on_response(486, now, &t, || Some(ack.clone()), &mut out));
        assert!(out.contains(&TxnAction::Send(ack.clone())));
        assert_eq!(
            scheduled(&out, TimerKind::D),
            Some(now + Duration::from_secs(32))
        );
        out.clear();
        // The retransmitted 486 is not passed up, but ACKed again.
        assert!(!c.on_response(486, now, &t, || None, &mut out));
        assert_eq!(out, vec![TxnAction::Send(ack)]);
        out.clear();
        c.on_timer(TimerKind::D, now + Duration::from_secs(32), &t, &mut out);
        assert_eq!(out, vec![TxnAction::Terminated]);
    }

    #[test]
    fn rfc3261_17_1_1_2_2xx_terminates_invite_client_transaction() {
        let t = Timers::default();
        let now = Instant::now();
        let mut out = Vec::new();
        let mut c = ClientTransaction::start(
            true,
            false,
            Bytes::from_static(b"INVITE"),
            now,
            &t,
            &mut out,
        );
        out.clear();
        assert!(c.on_response(200, now, &t, || None, &mut out));
        assert_eq!(
            out,
            vec![
                TxnAction::Cancel(TimerKind::B, now + t.t1x64()),
                TxnAction::Cancel(TimerKind::A, now + t.t1),
                TxnAction::Terminated
            ]
        );
        // A late 200 retransmission is not the transaction's business.
        assert!(!c.on_response(200, now, &t, || None, &mut out));
    }

    #[test]
    fn rfc3261_17_1_2_2_non_invite_final_waits_timer_k_then_terminates() {
        let t = Timers::default();
        let now = Instant::now();
        let mut out = Vec::new();
        let mut c =
            ClientTransaction::start(false, false, Bytes::from_static(b"BYE"), now, &t, &mut out);
        out.clear();
        assert!(c.on_response(200, now, &t, || None, &mut out));
        assert_eq!(scheduled(&out, TimerKind::K), Some(now + t.t4));
        assert!(!c.on_response(200, now, &t, || None, &mut out));
        out.clear();
        c.on_timer(TimerKind::E, now + t.t1, &t, &mut out);
        assert!(out.is_empty(), "no retransmission once completed");
        c.on_timer(TimerKind::K, now + t.t4, &t, &mut out);
        assert_eq!(out, vec![TxnAction::Terminated]);
    }

    #[test]
    fn a_final_answer_cancels_the_timeout_and_retransmission_timers() {
        let t = Timers::default();
        let now = Instant::now();
        let mut out = Vec::new();
        let mut c = ClientTransaction::start_with_timeout(
            false,
            false,
            Bytes::from_static(b"OPTIONS"),
            Duration::from_secs(30),
            now,
            &t,
            &mut out,
        );
        out.clear();
        // One retransmission: the E timer moved on.
        c.on_timer(TimerKind::E, now + t.t1, &t, &mut out);
        let next_e = scheduled(&out, TimerKind::E).expect("E again");
        out.clear();
        assert!(c.on_response(200, now + t.t1, &t, || None, &mut out));
        assert!(out.contains(&TxnAction::Cancel(
            TimerKind::F,
            now + Duration::from_secs(30)
        )));
        assert!(out.contains(&TxnAction::Cancel(TimerKind::E, next_e)));
        assert!(scheduled(&out, TimerKind::K).is_some());
    }
}
