//! What a due timer does to its transaction (retransmit, time a branch out
//! with a 408, end the transaction), and the task that fires them.

use std::sync::Arc;
use std::time::Duration;

use super::timer::TimerKind;
use super::transaction::{Branch, CANCEL_BIT, CancelState};
use super::{Tm, lock};

impl Tm {
    /// Fire every due timer. Failure routes that become due go to the
    /// router's channel.
    pub fn fire_due(&self) {
        let now = self.clock.now();
        for r in self.queue.pop_due(now) {
            let handle = self.table.by_id(r.txn);
            let Some(handle) = handle else { continue };
            let mut guard = lock(&handle);
            let txn = &mut *guard;
            match r.branch {
                None => {
                    let mut out = Vec::new();
                    txn.server.on_timer(r.kind, now, &self.timers, &mut out);
                    self.run_server_actions(txn, out);
                }
                Some(b) if b & CANCEL_BIT != 0 => {
                    let mut out = Vec::new();
                    if let Some(Branch {
                        cancel: CancelState::Sent(c),
                        ..
                    }) = txn.branches.get_mut((b & !CANCEL_BIT) as usize)
                    {
                        c.on_timer(r.kind, now, &self.timers, &mut out);
                    }
                    self.run_branch_actions(txn, b, out);
                }
                Some(b) if r.kind == TimerKind::FinalResponse => {
                    let i = b as usize;
                    let Some(br) = txn.branches.get_mut(i) else {
                        continue;
                    };
                    if br.done || br.fr_generation != r.generation || !br.client.is_pending() {
                        continue;
                    }
                    // fr_inv_timer (timer C, §16.8), armed only when an
                    // INVITE branch rang: no final response in time, so the
                    // branch is CANCELed and counts as a 408. (A branch that
                    // never answered ends by its timer B/F, which is fr_timer.)
                    br.done = true;
                    tracing::debug!(txn = txn.id, branch = b, call_id = %crate::util::CallId(&txn.request), "fr_inv_timer: 408");
                    self.send_cancel(txn, i, now);
                    let c = self.local_candidate(txn, 408, "Request Timeout");
                    txn.candidates.extend(c);
                    if let Some(w) = self.maybe_complete(&handle, txn) {
                        self.queue_failure_route(Some(w));
                    }
                }
                Some(b) => {
                    let mut out = Vec::new();
                    if let Some(br) = txn.branches.get_mut(b as usize) {
                        br.client.on_timer(r.kind, now, &self.timers, &mut out);
                    }
                    if self.run_branch_actions(txn, b, out)
                        && let Some(w) = self.maybe_complete(&handle, txn)
                    {
                        self.queue_failure_route(Some(w));
                    }
                }
            }
        }
    }

    /// Fire timers for as long as the layer lives: sleep until the
    /// earliest is due, or until an earlier one is scheduled.
    pub async fn run_timers(self: Arc<Self>) {
        loop {
            let wake = self.queue.wake.notified();
            let sleep = match self.queue.next_deadline() {
                Some(at) => at.saturating_duration_since(self.clock.now()),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = wake => {}
                _ = tokio::time::sleep(sleep) => {}
            }
            self.fire_due();
        }
    }
}
