//! A stateful proxy transaction (RFC 3261 §16): the server transaction that
//! faces the caller, the branches (client transactions) it forked to, and
//! the response context that picks the best final response (§16.7).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wisp_sip::Message;

use super::client::ClientTransaction;
use super::context::OwnerHold;
use super::server::ServerTransaction;
use crate::stateless::RequestSummary;
use crate::transport::{Proto, Source};

/// Branch numbers at or above this name a branch's CANCEL transaction in timers.
pub const CANCEL_BIT: u16 = 0x8000;

/// Prefix of the Via branch of every stateful branch:
/// `z9hG4bKwspT<run>.<txn>.<branch>`, the run id being random per start of
/// the router so that no branch is ever reused (RFC 3261 §8.1.1.7, §16.6
/// step 8: unique across time and space). Stateless forwards use
/// `z9hG4bKwsp<hash>` (no `T`).
pub const BRANCH_PREFIX: &str = "z9hG4bKwspT";

pub fn branch_id(run: u32, txn: u64, branch: u16) -> String {
    let mut id = String::with_capacity(BRANCH_PREFIX.len() + 32);
    id.push_str(BRANCH_PREFIX);
    wisp_sip::text::push_hex8(&mut id, run);
    id.push('.');
    wisp_sip::text::push_hex(&mut id, txn);
    id.push('.');
    wisp_sip::text::push_int(&mut id, branch);
    id
}

/// `(run, transaction, branch)` from a Via branch this router made, if it
/// is one.
pub fn parse_branch_id(branch: &str) -> Option<(u32, u64, u16)> {
    let rest = branch.strip_prefix(BRANCH_PREFIX)?;
    let (run, rest) = rest.split_once('.')?;
    let (txn, b) = rest.split_once('.')?;
    if run.len() != 8 {
        return None;
    }
    Some((
        u32::from_str_radix(run, 16).ok()?,
        u64::from_str_radix(txn, 16).ok()?,
        b.parse().ok()?,
    ))
}

/// How far a branch got.
#[derive(Debug)]
pub enum CancelState {
    None,
    /// CANCEL wanted but no provisional yet (§9.1: wait for one).
    Wanted,
    /// Boxed: most branches never send a CANCEL, and a branch is kept for
    /// the transaction's wait timer.
    Sent(Box<ClientTransaction>),
}

/// One destination of the request.
#[derive(Debug)]
pub struct Branch {
    pub uri: String,
    pub proto: Proto,
    pub dest: SocketAddr,
    pub local: SocketAddr,
    pub client: ClientTransaction,
    /// Generation of the final-response timer; a provisional re-arms it.
    pub fr_generation: u32,
    /// When `fr_inv_timer` (timer C) is due, once a provisional armed it.
    pub fr_inv_at: Option<Instant>,
    pub provisional: bool,
    /// The branch has its final answer (received, or 408/503 made up).
    pub done: bool,
    pub cancel: CancelState,
    /// A `t_replicate` copy: its responses are absorbed, never forwarded.
    pub replica: bool,
    /// Further destinations the next hop's name resolved to (RFC 3263),
    /// tried in order when this one times out without an answer.
    pub alternatives: Vec<(Proto, SocketAddr)>,
    /// Its first send failed after `t_relay` returned: nothing more is sent.
    pub unsent: bool,
    /// The next hop's host when it may be reached over TLS: the name its
    /// certificate must carry.
    pub peer: Option<std::sync::Arc<str>>,
}

/// A final response a finished branch contributed.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub code: u16,
    /// What goes upstream: the received response minus our Via, or one we made.
    pub upstream: Bytes,
    /// WWW-/Proxy-Authenticate values of a 401/407, for aggregation (§16.7 step 7).
    pub challenges: Vec<(String, Bytes)>,
    /// Made here (a timeout, 487, 500...), not received from a branch.
    pub local: bool,
}

/// What a route is doing with the transaction right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// In the request route (or created by `t_newtran`).
    Routing,
    /// Branches out, waiting for responses.
    Proxying,
    /// The failure route is running.
    FailureRoute,
    /// Only `t_replicate` copies are out; the request was answered without
    /// the transaction. It ends when the copies do.
    Replicating,
}

/// A proxy transaction. Lives in the table behind a mutex; plugins never
/// run while it is locked.
pub struct Transaction {
    pub id: u64,
    pub key: String,
    /// The request as the route left it at the first `t_relay`/`t_newtran`
    /// (own copy: it must not pin the receive buffer).
    pub request: std::sync::Arc<Message>,
    pub source: Source,
    /// Shared, so a finished transaction can drop its own ([`compact`]
    /// swaps in a spent one) and a reply route gets it without a copy.
    pub summary: std::sync::Arc<RequestSummary>,
    pub flags: u64,
    /// The route record-routed `request`: a branch leaving by another
    /// transport or socket gets a second Record-Route.
    pub record_routed: bool,
    pub invite: bool,
    pub server: ServerTransaction,
    pub response_dest: SocketAddr,
    pub branches: Vec<Branch>,
    pub candidates: Vec<Candidate>,
    pub on_failure: Option<String>,
    pub on_reply: Option<String>,
    /// Who armed `on_failure` / `on_reply` (the plugin build): they run in it.
    pub armed_by: Option<OwnerHold>,
    pub fr: Duration,
    pub fr_inv: Duration,
    /// The caller CANCELed (§16.10).
    pub canceled: bool,
    pub phase: Phase,
    /// The server side ended (timer J/I/L/H): the transaction is forgotten.
    pub ended: bool,
    /// Branches whose next hop is still being resolved.
    pub resolving: usize,
    /// Bytes charged against `tm.memory_mb` while it lives.
    pub charge: usize,
    /// The Call-ID of an INVITE whose request [`compact`] dropped: its
    /// server side may still time out (timer H) and say so in the log.
    pub spent_call_id: Option<Box<str>>,
    /// The media session this INVITE's offer made (`tm::media`): deleted
    /// when the INVITE fails.
    pub media: Option<super::media::MediaSession>,
}

impl Transaction {
    /// The request's Call-ID, for log lines, also after [`compact`].
    pub fn call_id(&self) -> String {
        match &self.spent_call_id {
            Some(c) => c.to_string(),
            None => super::call_id(&self.request),
        }
    }

    /// Branches that still wait for a final response (replicas excluded).
    pub fn pending_branches(&self) -> usize {
        self.branches
            .iter()
            .filter(|b| !b.done && !b.replica)
            .count()
    }

    /// §16.7 step 6: the best of the final responses collected so far.
    pub fn best_candidate(&self) -> Option<&Candidate> {
        best_of(&self.candidates)
    }
}

/// Best response per RFC 3261 §16.7 step 6: any 6xx wins; else the lowest
/// class; within 4xx prefer 401, 407, 415, 420, 484; else the first received.
pub fn best_of(candidates: &[Candidate]) -> Option<&Candidate> {
    if let Some(c) = candidates.iter().find(|c| c.code >= 600) {
        return Some(c);
    }
    let class = candidates.iter().map(|c| c.code / 100).min()?;
    let in_class = || candidates.iter().filter(move |c| c.code / 100 == class);
    if class == 4 {
        for preferred in [401, 407, 415, 420, 484] {
            if let Some(c) = in_class().find(|c| c.code == preferred) {
                return Some(c);
            }
        }
    }
    in_class().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: u16) -> Candidate {
        Candidate {
            code,
            upstream: Bytes::from(code.to_string()),
            challenges: Vec::new(),
            local: false,
        }
    }

    #[test]
    fn rfc3261_16_7_step_6_lowest_class_wins_and_6xx_beats_all() {
        assert_eq!(
            best_of(&[c(486), c(302), c(503)]).map(|c| c.code),
            Some(302)
        );
        assert_eq!(
            best_of(&[c(486), c(603), c(302)]).map(|c| c.code),
            Some(603)
        );
        assert_eq!(best_of(&[c(503), c(408)]).map(|c| c.code), Some(408));
        assert_eq!(best_of(&[]).map(|c| c.code), None);
    }

    #[test]
    fn rfc3261_16_7_step_6_challenges_are_preferred_within_4xx() {
        assert_eq!(
            best_of(&[c(404), c(407), c(486)]).map(|c| c.code),
            Some(407)
        );
        assert_eq!(
            best_of(&[c(486), c(404)]).map(|c| c.code),
            Some(486),
            "first received"
        );
    }

    #[test]
    fn branch_ids_round_trip_and_stateless_ones_are_not_ours() {
        assert_eq!(
            parse_branch_id(&branch_id(0xdead_beef, 0x1f2e, 3)),
            Some((0xdead_beef, 0x1f2e, 3))
        );
        assert_eq!(parse_branch_id(&branch_id(1, 1, 0)), Some((1, 1, 0)));
        assert_eq!(parse_branch_id("z9hG4bKwsp0123456789abcdef"), None);
        assert_eq!(parse_branch_id("z9hG4bKwspT0000000a.zz.1"), None);
        // The form of the routers before run ids: not ours.
        assert_eq!(parse_branch_id("z9hG4bKwspT1.0"), None);
    }

    #[test]
    fn rfc3261_8_1_1_7_branches_of_two_runs_differ() {
        assert_ne!(branch_id(1, 1, 0), branch_id(2, 1, 0));
        assert!(
            !crate::stateless::forward::is_stateless_branch(&branch_id(1, 1, 0)),
            "a transaction's branch is not taken for a stateless forward's"
        );
    }
}
