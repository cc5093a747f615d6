//! Server transactions (RFC 3261 §17.2, with RFC 6026's Accepted state):
//! the side of a proxied or locally answered request that faces the caller.
//! Sans-IO like [`super::client`]: responses go in, actions come out.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::client::TxnAction;
use super::timer::{TimerKind, Timers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Non-INVITE before any response.
    Trying,
    Proceeding,
    /// A final response was sent (INVITE: a non-2xx, waiting for the ACK).
    Completed,
    /// INVITE: the ACK for the non-2xx arrived.
    Confirmed,
    /// INVITE: a 2xx was sent (RFC 6026 §8.7).
    Accepted,
    Terminated,
}

/// Why a response could not be sent on this transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the transaction already sent its final response")]
pub struct AlreadyFinal;

#[derive(Debug)]
pub struct ServerTransaction {
    invite: bool,
    reliable: bool,
    state: ServerState,
    /// The last response sent: what a retransmitted request gets again.
    last: Option<Bytes>,
    last_code: u16,
    interval: Duration,
}

impl ServerTransaction {
    pub fn new(invite: bool, reliable: bool) -> Self {
        ServerTransaction {
            invite,
            reliable,
            state: if invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            last: None,
            last_code: 0,
            interval: Duration::ZERO,
        }
    }

    pub fn state(&self) -> ServerState {
        self.state
    }

    /// Status of the last response sent (0 when none).
    pub fn last_code(&self) -> u16 {
        self.last_code
    }

    /// A final response went out.
    pub fn is_final(&self) -> bool {
        self.last_code >= 200
    }

    /// The request came again: what to send back (the last response), if anything.
    pub fn on_retransmission(&self) -> Option<Bytes> {
        match self.state {
            ServerState::Proceeding | ServerState::Completed | ServerState::Accepted => {
                self.last.clone()
            }
            _ => None,
        }
    }

    /// Send a response (provisional or final) on this transaction.
    pub fn send_response(
        &mut self,
        code: u16,
        response: Bytes,
        now: Instant,
        t: &Timers,
        out: &mut Vec<TxnAction>,
    ) -> Result<(), AlreadyFinal> {
        use ServerState::*;
        if !matches!(self.state, Trying | Proceeding) {
            return Err(AlreadyFinal);
        }
        out.push(TxnAction::Send(response.clone()));
        self.last = Some(response);
        self.last_code = code;
        match code {
            100..=199 => self.state = Proceeding,
            200..=299 if self.invite => {
                self.state = Accepted;
                out.push(TxnAction::Schedule(TimerKind::L, now + t.wait));
            }
            _ if self.invite => {
                self.state = Completed;
                if !self.reliable {
                    self.interval = t.t1;
                    out.push(TxnAction::Schedule(TimerKind::G, now + t.t1));
                }
                out.push(TxnAction::Schedule(TimerKind::H, now + t.t1x64()));
            }
            _ => {
                self.state = Completed;
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    t.wait
                };
                out.push(TxnAction::Schedule(TimerKind::J, now + wait));
            }
        }
        Ok(())
    }

    /// An ACK matched this INVITE transaction. True when it was the ACK for
    /// our non-2xx (absorbed here, §17.2.1); false when it is not ours to absorb.
    pub fn on_ack(&mut self, now: Instant, t: &Timers, out: &mut Vec<TxnAction>) -> bool {
        match self.state {
            ServerState::Completed if self.invite => {
                self.state = ServerState::Confirmed;
                let wait = if self.reliable { Duration::ZERO } else { t.t4 };
                out.push(TxnAction::Schedule(TimerKind::I, now + wait));
                true
            }
            ServerState::Confirmed => true,
            _ => false,
        }
    }

    pub fn on_timer(
        &mut self,
        kind: TimerKind,
        now: Instant,
        t: &Timers,
        out: &mut Vec<TxnAction>,
    ) {
        use ServerState::*;
        match (kind, self.state) {
            (TimerKind::G, Completed) => {
                if let Some(r) = &self.last {
                    out.push(TxnAction::Send(r.clone()));
                }
                self.interval = (self.interval * 2).min(t.t2);
                out.push(TxnAction::Schedule(TimerKind::G, now + self.interval));
            }
            (TimerKind::H, Completed) => {
                // The ACK never came: give up (§17.2.1).
                self.state = Terminated;
                out.push(TxnAction::Timeout);
                out.push(TxnAction::Terminated);
            }
            (TimerKind::I, Confirmed) | (TimerKind::J, Completed) | (TimerKind::L, Accepted) => {
                self.state = Terminated;
                out.push(TxnAction::Terminated);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tm::timer::{Clock, ManualClock};

    #[test]
    fn rfc3261_17_2_1_non_2xx_final_is_retransmitted_until_ack_then_absorbed() {
        let clock = ManualClock::new();
        let t = Timers::default();
        let mut s = ServerTransaction::new(true, false);
        let mut out = Vec::new();
        s.send_response(100, Bytes::from_static(b"100"), clock.now(), &t, &mut out)
            .unwrap();
        assert_eq!(s.on_retransmission(), Some(Bytes::from_static(b"100")));
        out.clear();
        let start = clock.now();
        s.send_response(486, Bytes::from_static(b"486"), start, &t, &mut out)
            .unwrap();
        assert!(out.contains(&TxnAction::Schedule(TimerKind::G, start + t.t1)));
        assert!(out.contains(&TxnAction::Schedule(TimerKind::H, start + t.t1 * 64)));
        // Timer G fires at T1, 2T1, 4T1, capped at T2.
        let mut sent = 0;
        let mut next = start + t.t1;
        for expected_gap in [2, 4, 8, 16, 16] {
            clock.advance(next - clock.now());
            out.clear();
            s.on_timer(TimerKind::G, clock.now(), &t, &mut out);
            sent += out
                .iter()
                .filter(|a| matches!(a, TxnAction::Send(_)))
                .count();
            next = clock.now() + (t.t1 * expected_gap).min(t.t2);
            assert!(
                out.contains(&TxnAction::Schedule(TimerKind::G, next)),
                "{out:?}"
            );
        }
        assert_eq!(sent, 5);
        out.clear();
        assert!(s.on_ack(clock.now(), &t, &mut out));
        assert_eq!(s.state(), ServerState::Confirmed);
        out.clear();
        s.on_timer(TimerKind::G, next, &t, &mut out);
        assert!(out.is_empty(), "no retransmission after the ACK");
        assert_eq!(s.on_retransmission(), None, "Confirmed absorbs silently");
        s.on_timer(TimerKind::I, clock.now() + t.t4, &t, &mut out);
        assert_eq!(out, vec![TxnAction::Terminated]);
    }

    #[test]
    fn rfc3261_17_2_1_timer_h_gives_up_when_no_ack_comes() {
        let t = Timers::default();
        let now = Instant::now();
        let mut s = ServerTransaction::new(true, false);
        let mut out = Vec::new();
        s.send_response(404, Bytes::from_static(b"404"), now, &t, &mut out)
            .unwrap();
        out.clear();
        s.on_timer(TimerKind::H, now + t.t1x64(), &t, &mut out);
        assert_eq!(out, vec![TxnAction::Timeout, TxnAction::Terminated]);
    }

    #[test]
    fn rfc6026_2xx_to_invite_is_accepted_and_a_second_final_refused() {
        let t = Timers::default();
        let now = Instant::now();
        let mut s = ServerTransaction::new(true, false);
        let mut out = Vec::new();
        s.send_response(200, Bytes::from_static(b"200"), now, &t, &mut out)
            .unwrap();
        assert_eq!(s.state(), ServerState::Accepted);
        assert!(out.contains(&TxnAction::Schedule(TimerKind::L, now + t.wait)));
        assert_eq!(
            s.send_response(486, Bytes::from_static(b"486"), now, &t, &mut out),
            Err(AlreadyFinal)
        );
        assert!(!s.on_ack(now, &t, &mut out), "a 2xx ACK is end to end");
    }

    #[test]
    fn rfc3261_17_2_2_non_invite_final_is_kept_for_timer_j_wait_timer_only_on_udp() {
        let t = Timers::default();
        let now = Instant::now();
        for (reliable, wait) in [(false, t.wait), (true, Duration::ZERO)] {
            let mut s = ServerTransaction::new(false, reliable);
            assert_eq!(s.on_retransmission(), None, "Trying: nothing to resend");
            let mut out = Vec::new();
            s.send_response(200, Bytes::from_static(b"200"), now, &t, &mut out)
                .unwrap();
            assert!(out.contains(&TxnAction::Schedule(TimerKind::J, now + wait)));
            assert_eq!(s.on_retransmission(), Some(Bytes::from_static(b"200")));
        }
    }
}
