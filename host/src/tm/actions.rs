//! The I/O the sans-IO state machines ask for: send on the server side
//! (to the caller) or on a branch, schedule a timer, time a branch out,
//! forget an ended transaction.

use super::Tm;
use super::client::{self, TxnAction};
use super::timer::TimerRef;
use super::transaction::{CANCEL_BIT, Phase, Transaction};

impl Tm {
    /// Carry out what the server side (toward the caller) asked for.
    pub(super) fn run_server_actions(&self, txn: &mut Transaction, out: Vec<TxnAction>) {
        for a in out {
            match a {
                TxnAction::Send(b) => {
                    if let Err(e) = self.sl.transports().send_response(
                        txn.source.proto,
                        txn.response_dest,
                        Some(txn.source.local),
                        b,
                    ) {
                        crate::log_limited!(info, dest = %txn.response_dest, call_id = %crate::util::CallId(&txn.request), "response send failed: {e}");
                    }
                }
                TxnAction::Schedule(kind, at) => {
                    self.queue.schedule(at, TimerRef::of(txn.id, None, kind))
                }
                TxnAction::Cancel(kind, at) => {
                    self.queue.cancel(at, TimerRef::of(txn.id, None, kind))
                }
                TxnAction::Timeout => {
                    crate::log_limited!(info, call_id = %txn.call_id(), "no ACK for our final response (timer H)");
                }
                TxnAction::Terminated => self.table.forget(txn),
            }
        }
    }

    /// Carry out what branch `idx` (with [`CANCEL_BIT`]: its CANCEL) asked
    /// for. Returns true when the branch timed out (timer B/F) and now has a 408.
    pub(super) fn run_branch_actions(
        &self,
        txn: &mut Transaction,
        idx: u16,
        out: Vec<TxnAction>,
    ) -> bool {
        let mut timed_out = false;
        let i = (idx & !CANCEL_BIT) as usize;
        for a in out {
            match a {
                TxnAction::Send(bytes) => {
                    if let Some(b) = txn.branches.get(i)
                        && !(b.unsent && idx & CANCEL_BIT == 0)
                        && let Err(e) =
                            self.sl
                                .transports()
                                .send(b.proto, b.dest, Some(b.local), bytes)
                    {
                        crate::log_limited!(info, dest = %b.dest, call_id = %crate::util::CallId(&txn.request), "branch send failed: {e}");
                    }
                }
                TxnAction::Schedule(kind, at) => self
                    .queue
                    .schedule(at, TimerRef::of(txn.id, Some(idx), kind)),
                TxnAction::Cancel(kind, at) => {
                    self.queue.cancel(at, TimerRef::of(txn.id, Some(idx), kind))
                }
                TxnAction::Timeout if idx & CANCEL_BIT == 0 => {
                    let pending = txn.branches.get(i).is_some_and(|b| !b.done);
                    if pending && self.fail_over(txn, i, self.clock.now()) {
                        if let Some(b) = txn.branches.get_mut(i) {
                            b.done = true;
                        }
                        continue;
                    }
                    if let Some(b) = txn.branches.get_mut(i)
                        && !b.done
                        && !b.replica
                    {
                        b.done = true;
                        timed_out = true;
                    }
                    if timed_out {
                        let c = self.local_candidate(txn, 408, "Request Timeout");
                        txn.candidates.extend(c);
                    }
                }
                TxnAction::Terminated => {
                    let all_ended = txn
                        .branches
                        .iter()
                        .all(|b| b.client.state() == client::ClientState::Terminated);
                    if txn.phase == Phase::Replicating && all_ended {
                        self.table.forget(txn);
                    }
                }
                TxnAction::Timeout => {}
            }
        }
        timed_out
    }
}
