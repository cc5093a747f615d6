//! Keepalives for registered contacts behind a NAT (Kamailio's nathelper
//! `natping_interval` with `sipping_method`, and the keepalive module's
//! removal of contacts that stopped answering).
//!
//! Every `[nat] keepalive_interval_s` a round starts: the bindings this
//! router owns (in a shared database, `server_id`; elsewhere all of them)
//! that are flagged NATed (or every one with `ping_nated_only = false`) are
//! listed, and each gets one ping during the round, the pings spread evenly
//! over the interval so that a hundred thousand phones do not mean a burst
//! of a hundred thousand datagrams. A UDP contact gets a request
//! (`OPTIONS` by default) at the address its REGISTER came from, from the
//! socket it came in on: any answer, even a 404 or 405, proves the pinhole
//! open, and the answer is absorbed here ([`Keepalive::absorb`]), never
//! relayed or shown to a plugin. A TCP or TLS contact gets a CRLF keepalive
//! (RFC 5626 §3.5.1) on the connection it opened, which no one answers: a
//! connection still there counts as an answer. A WebSocket contact and one
//! registered through a Path are not pinged.
//!
//! A ping still unanswered when its round ends is a miss; with
//! `keepalive_max_failures` > 0 a binding missing that many rounds in a row
//! is removed. A new REGISTER of the binding starts its count again.
//!
//! The pure part, [`Schedule`], decides what to send when, on the instants
//! it is given; [`Keepalive`] runs it on a 100 ms timer task, off every
//! receive path, and sends without blocking.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wisp_sip::{Host, Message, Uri};

use crate::config::{DbMode, NatConfig, Proto};
use crate::stats::{self, Counter};
use crate::transport::Transports;
use crate::util::lock;

use super::usrloc::{ContactBinding, Usrloc};

/// How often the timer task wakes to send the pings due.
pub const TICK: Duration = Duration::from_millis(100);

/// Most pings sent in one tick (50 000 a second): a round with more
/// targets than its interval allows ends with the rest unsent.
pub const MAX_PER_TICK: usize = 5000;

/// The Call-ID prefix of the pings: how [`Keepalive::absorb`] knows their
/// answers.
const CALL_ID_PREFIX: &str = "wisp-ka-";

/// A binding, by table, AOR and contact.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub table: String,
    pub aor: String,
    pub contact: String,
}

/// One binding to ping in a round.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub key: Key,
    /// The REGISTER that saved it (`Call-ID`, `CSeq`): a new one restarts
    /// the count of misses.
    pub registration: (String, u32),
    pub proto: Proto,
    /// Where the ping goes: the REGISTER's source when saved behind NAT,
    /// else the Contact's address.
    pub dest: SocketAddr,
    /// The socket the REGISTER came in on, the ping leaves from it.
    pub local: Option<SocketAddr>,
}

/// Consecutive misses of one binding, for one registration of it.
#[derive(Debug)]
struct Misses {
    registration: (String, u32),
    count: u32,
}

/// What to ping when, and who stopped answering. Driven with instants, so
/// tests run it on a clock of their own.
#[derive(Debug)]
pub struct Schedule {
    interval: Duration,
    max_failures: u32,
    /// The current round: when it started, its targets, how many are sent.
    round: Option<(Instant, Vec<Target>, usize)>,
    /// Pings of the current round waiting for their answer, by token.
    waiting: HashMap<u64, Key>,
    misses: HashMap<Key, Misses>,
    next_token: u64,
}

impl Schedule {
    pub fn new(interval: Duration, max_failures: u32) -> Self {
        Schedule {
            interval,
            max_failures,
            round: None,
            waiting: HashMap::new(),
            misses: HashMap::new(),
            next_token: 1,
        }
    }

    /// Whether a new round is due at `now` (none yet, or the interval is over).
    pub fn round_due(&self, now: Instant) -> bool {
        self.round
            .as_ref()
            .is_none_or(|(start, _, _)| now.saturating_duration_since(*start) >= self.interval)
    }

    /// End the current round and start one at `now` over `targets`. Each
    /// ping of the ended round still unanswered counts a miss; returns the
    /// bindings that missed `max_failures` rounds in a row (to remove).
    /// Bindings no longer listed are forgotten; a binding registered again
    /// since its ping (another Call-ID or CSeq) starts again from 0.
    pub fn begin_round(&mut self, now: Instant, mut targets: Vec<Target>) -> Vec<Key> {
        let mut removed = Vec::new();
        {
            let listed: HashMap<&Key, &(String, u32)> =
                targets.iter().map(|t| (&t.key, &t.registration)).collect();
            for (_, key) in self.waiting.drain() {
                let Some(m) = self.misses.get_mut(&key) else {
                    continue;
                };
                stats::inc(Counter::KeepaliveMissed);
                if listed.get(&key) != Some(&&m.registration) {
                    // Gone, or registered again: that proves it reachable.
                    continue;
                }
                m.count += 1;
                if self.max_failures > 0 && m.count >= self.max_failures {
                    removed.push(key);
                }
            }
        }
        targets.retain(|t| !removed.contains(&t.key));
        let mut misses = HashMap::with_capacity(targets.len());
        for t in &targets {
            // A new REGISTER of the binding starts the count again.
            let count = match self.misses.remove(&t.key) {
                Some(m) if m.registration == t.registration => m.count,
                _ => 0,
            };
            misses.insert(
                t.key.clone(),
                Misses {
                    registration: t.registration.clone(),
                    count,
                },
            );
        }
        self.misses = misses;
        self.round = Some((now, targets, 0));
        removed
    }

    /// The targets due at `now`: the round's first `n * elapsed / interval`
    /// not sent yet, at most [`MAX_PER_TICK`], so that the round's pings
    /// are spread evenly over it.
    pub fn due(&mut self, now: Instant) -> Vec<Target> {
        let interval = self.interval.as_nanos().max(1);
        let Some((start, targets, sent)) = &mut self.round else {
            return Vec::new();
        };
        let elapsed = now
            .saturating_duration_since(*start)
            .as_nanos()
            .min(interval);
        // Ping i goes at i * interval / n: the first at the round's start.
        let n = targets.len() as u128;
        let upto = if elapsed >= interval {
            targets.len()
        } else {
            ((n * elapsed) / interval + 1).min(n) as usize
        };
        let first = *sent;
        let upto = upto.clamp(first, first + MAX_PER_TICK);
        *sent = upto;
        targets[first..upto].to_vec()
    }

    /// A ping to `key` is sent: the token its answer will carry.
    pub fn sent(&mut self, key: Key) -> u64 {
        let token = self.next_token;
        self.next_token += 1;
        self.waiting.insert(token, key);
        token
    }

    /// The ping of `token` was answered (or, for a connection, delivered):
    /// its binding's misses start again from 0. False for a token not
    /// waiting (answered already, or of an earlier round).
    pub fn answered(&mut self, token: u64) -> bool {
        let Some(key) = self.waiting.remove(&token) else {
            return false;
        };
        if let Some(m) = self.misses.get_mut(&key) {
            m.count = 0;
        }
        true
    }

    /// Consecutive misses of `key` (tests, logs).
    pub fn misses(&self, key: &Key) -> u32 {
        self.misses.get(key).map_or(0, |m| m.count)
    }
}

/// The keepalive service: the schedule, and what it sends with.
pub struct Keepalive {
    config: NatConfig,
    /// This router; only its own bindings are pinged when several share
    /// the database.
    server_id: u32,
    shared: bool,
    tables: Vec<String>,
    schedule: Mutex<Schedule>,
}

impl Keepalive {
    /// `None` when `[nat]` turns keepalives off.
    pub fn new(config: &NatConfig, usrloc: &Usrloc) -> Option<Arc<Self>> {
        config.keepalives().then(|| {
            Arc::new(Keepalive {
                config: config.clone(),
                server_id: usrloc.config.server_id,
                shared: usrloc.config.db_mode == DbMode::Shared,
                tables: usrloc.config.tables.clone(),
                schedule: Mutex::new(Schedule::new(
                    Duration::from_secs(config.keepalive_interval_s),
                    config.keepalive_max_failures,
                )),
            })
        })
    }

    /// Run the rounds until the process ends: a timer task of its own.
    pub async fn run(self: Arc<Self>, services: Arc<super::Services>, transports: Arc<Transports>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.tick(services.usrloc(), &transports, Instant::now());
        }
    }

    /// One tick: start a round when due (removing the bindings that
    /// stopped answering), then send the pings due.
    pub fn tick(&self, usrloc: &Usrloc, transports: &Arc<Transports>, now: Instant) {
        let round_due = lock(&self.schedule).round_due(now);
        if round_due {
            // Listed outside the schedule's lock: answers keep coming in.
            let targets = self.targets(usrloc, now);
            let removed = lock(&self.schedule).begin_round(now, targets);
            for key in removed {
                if let Ok(1..) = usrloc.remove(&key.table, &key.aor, Some(&key.contact), None) {
                    stats::inc(Counter::KeepaliveRemoved);
                    tracing::info!(
                        aor = %key.aor,
                        contact = %key.contact,
                        "keepalive: binding removed after {} unanswered pings",
                        self.config.keepalive_max_failures
                    );
                }
            }
        }
        let due = lock(&self.schedule).due(now);
        for t in due {
            self.ping(transports, t);
        }
    }

    /// Send one ping, never blocking.
    fn ping(&self, transports: &Arc<Transports>, t: Target) {
        let token = lock(&self.schedule).sent(t.key.clone());
        stats::inc(Counter::KeepaliveSent);
        let sent = match t.proto {
            Proto::Udp => {
                let local = transports.local_for(Proto::Udp, &t.dest, t.local);
                let Some(local) = local else { return };
                let data = self.request(&t, local, token);
                transports.send(Proto::Udp, t.dest, Some(local), data)
            }
            Proto::Tcp | Proto::Tls => {
                // No one answers a CRLF keepalive: delivered to a
                // connection still open is as good as answered.
                if transports.send_if_connected(t.proto, t.dest, Bytes::from_static(b"\r\n\r\n")) {
                    lock(&self.schedule).answered(token);
                }
                Ok(())
            }
            // Left out of the targets ([`Keepalive::target`]).
            Proto::Ws | Proto::Wss => Ok(()),
        };
        if let Err(e) = sent {
            crate::log_limited!(debug, dest = %t.dest, "keepalive not sent: {e}");
        }
    }

    /// The ping request to `t`, from `local`.
    fn request(&self, t: &Target, local: SocketAddr, token: u64) -> Bytes {
        let method = &self.config.keepalive_method;
        let via = crate::stateless::forward::our_via(
            Proto::Udp,
            local,
            &format!("z9hG4bK{CALL_ID_PREFIX}{token}"),
        );
        let contact = &t.key.contact;
        let from = &self.config.from;
        let tag = token.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Bytes::from(format!(
            "{method} {contact} SIP/2.0\r\nVia: {via};rport\r\nMax-Forwards: 70\r\n\
             From: <{from}>;tag={tag:x}\r\nTo: <{contact}>\r\n\
             Call-ID: {CALL_ID_PREFIX}{token}-{server:x}\r\nCSeq: 1 {method}\r\n\
             Content-Length: 0\r\n\r\n",
            server = self.server_id,
        ))
    }

    /// Whether `msg`, a response, answers one of our pings: then it is
    /// counted and goes no further. Reads memory only (the receive path).
    pub fn absorb(&self, msg: &Message) -> bool {
        let Ok(call_id) = msg.call_id() else {
            return false;
        };
        let Some(rest) = call_id.strip_prefix(CALL_ID_PREFIX.as_bytes()) else {
            return false;
        };
        let token = std::str::from_utf8(rest)
            .ok()
            .and_then(|r| r.split('-').next())
            .and_then(|t| t.parse::<u64>().ok());
        // Ours by its Call-ID, answered or late: absorbed either way.
        if msg.status().is_some_and(|c| c >= 200)
            && let Some(token) = token
            && lock(&self.schedule).answered(token)
        {
            stats::inc(Counter::KeepaliveAnswered);
        }
        true
    }

    /// This round's targets: the live bindings to ping, in table order.
    fn targets(&self, usrloc: &Usrloc, now: Instant) -> Vec<Target> {
        let mut out = Vec::new();
        for table in &self.tables {
            let Ok(all) = usrloc.snapshot(table, None, now) else {
                continue;
            };
            for (aor, bindings) in all {
                for b in bindings {
                    if let Some(t) = self.target(table, &aor, &b) {
                        out.push(t);
                    }
                }
            }
        }
        out
    }

    /// The target a binding is, if it is pinged.
    fn target(&self, table: &str, aor: &str, b: &ContactBinding) -> Option<Target> {
        if self.config.ping_nated_only && !b.nat {
            return None;
        }
        if self.shared && b.server_id != self.server_id {
            return None;
        }
        if b.path.is_some() {
            return None;
        }
        let (proto, dest) = reach(b)?;
        if proto.is_websocket() {
            // No ping frame yet: not pinged, so never counted as missing.
            return None;
        }
        let local = b
            .socket
            .as_deref()
            .and_then(|s| s.split_once(':'))
            .and_then(|(_, a)| a.parse().ok());
        Some(Target {
            key: Key {
                table: table.to_owned(),
                aor: aor.to_owned(),
                contact: b.contact.clone(),
            },
            registration: (b.call_id.clone(), b.cseq),
            proto,
            dest,
            local,
        })
    }
}

/// Where a binding is reached: its `received` (the REGISTER's source, or
/// the connection it came over) else its Contact, when that names an IP
/// address (no DNS for a keepalive).
fn reach(b: &ContactBinding) -> Option<(Proto, SocketAddr)> {
    let uri = Uri::parse(b.received.as_deref().unwrap_or(&b.contact).as_bytes()).ok()?;
    let proto = match uri.transport() {
        None => Proto::Udp,
        Some(t) if t.eq_ignore_ascii_case("udp") => Proto::Udp,
        Some(t) if t.eq_ignore_ascii_case("tcp") => Proto::Tcp,
        Some(t) if t.eq_ignore_ascii_case("tls") => Proto::Tls,
        Some(t) if t.eq_ignore_ascii_case("ws") => Proto::Ws,
        Some(t) if t.eq_ignore_ascii_case("wss") => Proto::Wss,
        Some(_) => return None,
    };
    let ip = match uri.host {
        Host::Ipv4(ip) => std::net::IpAddr::V4(ip),
        Host::Ipv6(ip) => std::net::IpAddr::V6(ip),
        Host::Domain(_) => return None,
    };
    Some((
        proto,
        SocketAddr::new(ip, uri.port.unwrap_or(proto.default_port())),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(i: usize) -> Target {
        Target {
            key: Key {
                table: "location".into(),
                aor: format!("u{i}"),
                contact: format!("sip:u{i}@10.0.0.{i}"),
            },
            registration: ("c".into(), 1),
            proto: Proto::Udp,
            dest: SocketAddr::from(([192, 0, 2, 1], 40000 + i as u16)),
            local: None,
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_rounds_pings_are_spread_evenly_over_its_interval() {
        let t0 = Instant::now();
        let mut s = Schedule::new(10 * S, 0);
        assert!(s.round_due(t0));
        s.begin_round(t0, (0..100).map(target).collect());
        assert!(!s.round_due(t0 + 9 * S));
        // Each tenth of the interval sends a tenth of the pings.
        let mut sent = Vec::new();
        for tenth in 0..10u32 {
            let batch = s.due(t0 + tenth * S);
            assert!(
                (9..=11).contains(&batch.len()) || (tenth == 0 && batch.len() == 1),
                "tick {tenth}: {} pings",
                batch.len()
            );
            sent.extend(batch);
        }
        sent.extend(s.due(t0 + 10 * S - Duration::from_nanos(1)));
        assert_eq!(sent.len(), 100, "all sent within the interval");
        let aors: Vec<_> = sent.iter().map(|t| t.key.aor.clone()).collect();
        let expected: Vec<_> = (0..100).map(|i| format!("u{i}")).collect();
        assert_eq!(aors, expected, "each once, in order");
        assert!(s.due(t0 + 10 * S).is_empty(), "nothing twice");
        assert!(s.round_due(t0 + 10 * S));
    }

    #[test]
    fn a_tick_sends_at_most_its_bound() {
        let t0 = Instant::now();
        let mut s = Schedule::new(S, 0);
        s.begin_round(t0, (0..MAX_PER_TICK * 2 + 10).map(target).collect());
        assert_eq!(s.due(t0 + S).len(), MAX_PER_TICK);
        assert_eq!(s.due(t0 + S).len(), MAX_PER_TICK);
        assert_eq!(s.due(t0 + S).len(), 10);
    }

    #[test]
    fn unanswered_rounds_remove_a_binding_after_max_failures_and_an_answer_resets() {
        let t0 = Instant::now();
        let mut s = Schedule::new(S, 3);
        let quiet = target(1);
        let chatty = target(2);
        let round = |s: &mut Schedule, at: u32, answer_chatty: bool| {
            let removed = s.begin_round(t0 + at * S, vec![quiet.clone(), chatty.clone()]);
            for t in s.due(t0 + at * S + S) {
                let token = s.sent(t.key.clone());
                if t.key == chatty.key && answer_chatty {
                    assert!(s.answered(token));
                    assert!(!s.answered(token), "an answer counts once");
                }
            }
            removed
        };
        assert!(round(&mut s, 0, true).is_empty());
        assert!(round(&mut s, 1, false).is_empty());
        // Round 0's pings counted when round 1 began: Quiet's missed.
        assert_eq!((s.misses(&quiet.key), s.misses(&chatty.key)), (1, 0));
        // Round 2 counts Chatty's silence in round 1, then his answer
        // starts him again from 0.
        let removed = s.begin_round(t0 + 2 * S, vec![quiet.clone(), chatty.clone()]);
        assert!(removed.is_empty());
        assert_eq!((s.misses(&quiet.key), s.misses(&chatty.key)), (2, 1));
        for t in s.due(t0 + 3 * S) {
            let token = s.sent(t.key.clone());
            if t.key == chatty.key {
                assert!(s.answered(token));
            }
        }
        assert_eq!(s.misses(&chatty.key), 0, "an answer starts again");
        // The third miss in a row: removed, when the next round starts.
        assert_eq!(round(&mut s, 3, true), vec![quiet.key.clone()]);
        assert_eq!(s.misses(&chatty.key), 0);
    }

    #[test]
    fn zero_max_failures_never_removes_and_a_new_register_restarts_the_count() {
        let t0 = Instant::now();
        let mut never = Schedule::new(S, 0);
        let mut twice = Schedule::new(S, 2);
        let mut t = target(1);
        // (round, CSeq of the binding then, misses of `twice` once it began)
        for (at, cseq, misses) in [(0u32, 1, 0), (1, 1, 1), (2, 2, 0), (3, 2, 1)] {
            t.registration.1 = cseq;
            for s in [&mut never, &mut twice] {
                assert!(s.begin_round(t0 + at * S, vec![t.clone()]).is_empty());
                for d in s.due(t0 + at * S + S) {
                    s.sent(d.key);
                }
            }
            assert_eq!(twice.misses(&t.key), misses, "round {at}");
        }
        assert_eq!(
            twice.begin_round(t0 + 4 * S, vec![t.clone()]),
            vec![t.key.clone()]
        );
        for at in 4..10u32 {
            assert!(never.begin_round(t0 + at * S, vec![t.clone()]).is_empty());
            for d in never.due(t0 + at * S + S) {
                never.sent(d.key);
            }
        }
        assert_eq!(never.misses(&t.key), 7, "counted, never removed");
    }

    fn binding(nat: bool, server_id: u32, received: Option<&str>) -> ContactBinding {
        let now = Instant::now();
        ContactBinding {
            contact: "sip:a@10.0.0.9:5060".into(),
            q: 1.0,
            expires_at: Some(now + 60 * S),
            call_id: "c".into(),
            cseq: 1,
            received: received.map(str::to_owned),
            path: None,
            params: None,
            updated: now,
            server_id,
            socket: Some("udp:192.0.2.1:5060".into()),
            nat,
        }
    }

    fn service(ping_nated_only: bool, shared: bool) -> Keepalive {
        Keepalive {
            config: NatConfig {
                keepalive_interval_s: 1,
                ping_nated_only,
                ..NatConfig::default()
            },
            server_id: 1,
            shared,
            tables: vec!["location".into()],
            schedule: Mutex::new(Schedule::new(S, 0)),
        }
    }

    #[test]
    fn only_nated_bindings_this_router_owns_are_pinged_at_their_source() {
        let ka = service(true, true);
        let t = ka
            .target(
                "location",
                "a",
                &binding(true, 1, Some("sip:198.51.100.7:40123")),
            )
            .expect("NATed, ours");
        assert_eq!(t.proto, Proto::Udp);
        assert_eq!(t.dest, "198.51.100.7:40123".parse().expect("addr"));
        assert_eq!(t.local, Some("192.0.2.1:5060".parse().expect("addr")));
        assert_eq!(ka.target("location", "a", &binding(false, 1, None)), None);
        assert_eq!(
            ka.target("location", "a", &binding(true, 2, None)),
            None,
            "another router's binding in a shared database"
        );
        // Not shared: every binding is this router's.
        assert!(
            service(true, false)
                .target("location", "a", &binding(true, 2, None))
                .is_some()
        );
        // ping_nated_only = false: the Contact's own address.
        let t = service(false, false)
            .target("location", "a", &binding(false, 1, None))
            .expect("every binding");
        assert_eq!(t.dest, "10.0.0.9:5060".parse().expect("addr"));
        // A TCP contact is reached over its connection.
        let t = ka
            .target(
                "location",
                "a",
                &binding(true, 1, Some("sip:198.51.100.7:40123;transport=tcp")),
            )
            .expect("tcp");
        assert_eq!(t.proto, Proto::Tcp);
        let ws = binding(true, 1, Some("sip:198.51.100.7:40123;transport=ws"));
        assert_eq!(ka.target("location", "a", &ws), None, "no WebSocket ping");
        let mut through_path = binding(true, 1, None);
        through_path.path = Some("<sip:edge.example;lr>".into());
        assert_eq!(ka.target("location", "a", &through_path), None);
    }

    #[test]
    fn answers_to_pings_are_absorbed_and_nothing_else() {
        let ka = service(true, false);
        let t = target(1);
        let token = lock(&ka.schedule).sent(t.key.clone());
        let local: SocketAddr = "192.0.2.1:5060".parse().expect("addr");
        let request = ka.request(&t, local, token);
        let text = String::from_utf8_lossy(&request).into_owned();
        assert!(
            text.starts_with("OPTIONS sip:u1@10.0.0.1 SIP/2.0\r\n"),
            "{text}"
        );
        let call_id = text
            .lines()
            .find_map(|l| l.strip_prefix("Call-ID: "))
            .expect("Call-ID")
            .to_owned();
        let reply = |code: u16, call_id: &str| {
            Message::parse(Bytes::from(format!(
                "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\r\n\
                 From: <sip:pinger@localhost>;tag=1\r\nTo: <sip:u1@10.0.0.1>;tag=2\r\n\
                 Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )))
            .expect("parses")
        };
        assert!(!ka.absorb(&reply(200, "someone-elses-call")));
        assert!(ka.absorb(&reply(405, &call_id)), "any status is an answer");
        assert_eq!(lock(&ka.schedule).waiting.len(), 0);
        assert!(
            ka.absorb(&reply(200, &call_id)),
            "a late copy is absorbed too"
        );
    }
}
