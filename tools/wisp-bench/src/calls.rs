//! The call load (`--method call`): INVITE -> 200 -> ACK + BYE -> 200 per call,
//! driven by the engine's run loop ([`drive`]) on its single thread and socket.
//!
//! A call is in flight from its INVITE until the BYE's final response (or a
//! time-out). ACK and BYE are sent as soon as the INVITE's 200 arrives, built from
//! that 200 alone, so a call's state is two words: its start time and its phase.
//! Time-outs are per step: INVITEs are sent in sequence order, so their deadlines
//! are scanned with a cursor over the ring; BYEs are sent in arrival order of the
//! 200s, so their deadlines go in a FIFO.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;

use anyhow::{Result, bail};
use hdrhistogram::Histogram;

use crate::dialog::{CallWriter, dialog};
use crate::engine::{Config, Load, MAX_RING, Summary, TimerWork, drive, open, run_nonce, send_to};
use crate::request::{RequestTemplate, uri_host};
use crate::response::{cseq_method, match_seq, status_code};

const FREE: u8 = 0;
const INVITING: u8 = 1;
const BYEING: u8 = 2;

struct Calls {
    /// Start (INVITE send) time in ns + 1, by seq & mask; valid while phase != FREE.
    start: Vec<u64>,
    phase: Vec<u8>,
    mask: u64,
    /// Every seq < oldest is resolved.
    oldest: u64,
    /// INVITE time-out cursor: no seq below it is still INVITING.
    inv_cur: u64,
    next_seq: u64,
    inflight: u64,
    /// (seq, BYE send time): BYE deadlines in time order.
    byes: VecDeque<(u64, u64)>,
    hist: Histogram<u64>,
    last_answer_ns: u64,
}

impl Calls {
    fn idx(&self, seq: u64) -> usize {
        (seq & self.mask) as usize
    }

    fn resolve(&mut self, seq: u64) {
        let i = self.idx(seq);
        self.phase[i] = FREE;
        self.inflight -= 1;
    }

    /// Counts calls whose current step timed out as lost.
    fn expire(&mut self, now: u64, timeout_ns: u64, s: &mut Summary) {
        self.inv_cur = self.inv_cur.max(self.oldest);
        while self.inv_cur < self.next_seq {
            let i = self.idx(self.inv_cur);
            if self.phase[i] == INVITING {
                if now < self.start[i] - 1 + timeout_ns {
                    break;
                }
                self.resolve(self.inv_cur);
                s.lost += 1;
            }
            self.inv_cur += 1;
        }
        while let Some(&(seq, sent)) = self.byes.front() {
            // seq >= oldest: its slot cannot have been reused by a later call.
            if seq >= self.oldest && self.phase[self.idx(seq)] == BYEING {
                if now < sent + timeout_ns {
                    break;
                }
                self.resolve(seq);
                s.lost += 1;
            }
            self.byes.pop_front();
        }
        while self.oldest < self.next_seq && self.phase[self.idx(self.oldest)] == FREE {
            self.oldest += 1;
        }
    }

    /// Earliest pending step deadline, if any.
    fn next_deadline(&self, timeout_ns: u64) -> Option<u64> {
        let inv = (self.inv_cur.max(self.oldest)..self.next_seq)
            .next()
            .map(|seq| self.idx(seq))
            .filter(|&i| self.phase[i] == INVITING)
            .map(|i| self.start[i] - 1 + timeout_ns);
        let bye = self.byes.front().map(|&(_, t)| t + timeout_ns);
        match (inv, bye) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Per-datagram scratch buffers and what is needed to answer a response.
struct Io<'a> {
    fd: libc::c_int,
    dest: socket2::SockAddr,
    writer: &'a CallWriter,
    tmpl: &'a RequestTemplate,
    token: &'a [u8],
    expect: u16,
    timeout_ns: u64,
    ack: Vec<u8>,
    bye: Vec<u8>,
}

/// The call load as the shared run loop drives it.
struct CallLoad<'a> {
    calls: Calls,
    io: Io<'a>,
}

impl Load for CallLoad<'_> {
    fn oldest(&self) -> u64 {
        self.calls.oldest
    }

    fn next_seq(&self) -> u64 {
        self.calls.next_seq
    }

    fn inflight(&self) -> u64 {
        self.calls.inflight
    }

    fn timers(&mut self, now: u64, s: &mut Summary) -> TimerWork {
        self.calls.expire(now, self.io.timeout_ns, s);
        TimerWork::default()
    }

    fn write(&self, seq: u64, out: &mut Vec<u8>) {
        self.io.tmpl.write(seq, 0, out);
    }

    fn sent(&mut self, seq: u64, at: u64) {
        let c = &mut self.calls;
        let i = c.idx(seq);
        c.start[i] = at + 1;
        c.phase[i] = INVITING;
        c.next_seq += 1;
        c.inflight += 1;
    }

    fn on_datagram(&mut self, msg: &[u8], now: u64, s: &mut Summary) {
        self.io.on_datagram(&mut self.calls, msg, now, s);
    }

    fn next_timer(&self, _now: u64) -> Option<u64> {
        self.calls.next_deadline(self.io.timeout_ns)
    }

    fn last_answer_ns(&self) -> u64 {
        self.calls.last_answer_ns
    }

    fn take_hist(&mut self) -> Histogram<u64> {
        std::mem::replace(&mut self.calls.hist, Histogram::new(1).expect("histogram"))
    }
}

impl Io<'_> {
    fn send(&self, buf: &[u8], s: &mut Summary) -> bool {
        // A failed ACK/BYE is not retried: the call then times out and counts lost.
        let ok = send_to(self.fd, buf, &self.dest).is_ok();
        if !ok {
            s.send_errors += 1;
        }
        ok
    }

    fn on_datagram(&mut self, c: &mut Calls, msg: &[u8], now: u64, s: &mut Summary) {
        let (Some(code), Some(seq)) = (status_code(msg), match_seq(msg, self.token)) else {
            s.unmatched += 1;
            return;
        };
        let phase = match cseq_method(msg) {
            Some(m) if m.eq_ignore_ascii_case(b"INVITE") => INVITING,
            Some(m) if m.eq_ignore_ascii_case(b"BYE") => BYEING,
            _ => {
                s.unmatched += 1;
                return;
            }
        };
        if code < 200 {
            s.provisional += 1;
            return;
        }
        let i = c.idx(seq);
        // A retransmitted final, or one for a call already resolved.
        if seq < c.oldest || seq >= c.next_seq || c.phase[i] != phase {
            s.stale += 1;
            return;
        }
        s.transactions += 1;
        if phase == INVITING && code < 300 {
            let Some(d) = dialog(msg) else {
                s.unusable_2xx += 1;
                self.finish(c, seq, 0, now, s);
                return;
            };
            self.writer
                .write_ack_bye(seq, &d, &mut self.ack, &mut self.bye);
            if self.send(&self.ack, s) {
                s.acks += 1;
            }
            if self.send(&self.bye, s) {
                s.byes += 1;
            }
            c.phase[i] = BYEING;
            c.byes.push_back((seq, now));
            return;
        }
        if phase == INVITING
            && self
                .writer
                .write_ack_failure(seq, msg, &mut self.ack)
                .is_some()
            && self.send(&self.ack, s)
        {
            s.acks += 1;
        }
        self.finish(c, seq, code, now, s);
    }

    /// Resolves call `seq` with the final `code` of its last step (0: unusable 2xx).
    fn finish(&self, c: &mut Calls, seq: u64, code: u16, now: u64, s: &mut Summary) {
        let start = c.start[c.idx(seq)] - 1;
        c.resolve(seq);
        c.last_answer_ns = now;
        s.answered += 1;
        c.hist
            .saturating_record((now.saturating_sub(start) / 1000).max(1));
        if code == self.expect {
            s.succeeded += 1;
        } else {
            s.failed += 1;
            if code != 0 {
                *s.failed_by_code.entry(code).or_insert(0) += 1;
            }
        }
    }
}

pub fn run(cfg: &Config) -> Result<Summary> {
    if cfg.retransmit {
        bail!("--retransmit is not supported with --method call");
    }
    let ep = open(cfg)?;
    let fd = ep.sock.as_raw_fd();
    let nonce = run_nonce();
    let tmpl = RequestTemplate::new(cfg.method, &cfg.uri, uri_host(&cfg.uri), ep.via_addr, nonce)?;
    let writer = CallWriter::new(&cfg.uri, ep.via_addr, tmpl.token());
    let token = tmpl.token().as_bytes().to_vec();
    let ring_len = cfg.count.clamp(1, MAX_RING).next_power_of_two();
    let mut load = CallLoad {
        calls: Calls {
            start: vec![0; ring_len as usize],
            phase: vec![FREE; ring_len as usize],
            mask: ring_len - 1,
            oldest: 0,
            inv_cur: 0,
            next_seq: 0,
            inflight: 0,
            byes: VecDeque::new(),
            hist: Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds"),
            last_answer_ns: 0,
        },
        io: Io {
            fd,
            dest: socket2::SockAddr::from(cfg.target),
            writer: &writer,
            tmpl: &tmpl,
            token: &token,
            expect: cfg.expect,
            timeout_ns: cfg.timeout.as_nanos().min(u64::MAX as u128) as u64,
            ack: Vec::with_capacity(1024),
            bye: Vec::with_capacity(1024),
        },
    };
    let mut s = Summary::new(cfg, ep.local, ep.rcvbuf, ep.sndbuf);
    drive(cfg, fd, ring_len, &mut load, &mut s)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tests::cfg;
    use crate::request::Method;
    use crate::response::header;
    use std::net::{SocketAddr, UdpSocket};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    /// Router and UAS in one: record-routes each INVITE as a proxy would, answers
    /// like `uas::answer`, except INVITEs of calls `busy(n)` (486) and BYEs of
    /// calls `drop_bye(n)` (no answer). Returns the requests' start line + Route.
    #[allow(clippy::type_complexity)]
    fn peer(
        busy: fn(u64) -> bool,
        drop_bye: fn(u64) -> bool,
    ) -> (
        SocketAddr,
        Arc<AtomicBool>,
        std::thread::JoinHandle<Vec<(String, String)>>,
    ) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 65536];
            let contact = format!("<sip:uas@{addr}>");
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let req = String::from_utf8(buf[..n].to_vec()).unwrap();
                let (first, rest) = req.split_once("\r\n").unwrap();
                let route = header(req.as_bytes(), b"Route", b"")
                    .map(|r| String::from_utf8(r.to_vec()).unwrap())
                    .unwrap_or_default();
                seen.push((first.to_owned(), route));
                let cid = header(req.as_bytes(), b"Call-ID", b"i").unwrap();
                let cid = std::str::from_utf8(cid).unwrap();
                let call: u64 = cid.split(['-', '@']).nth(1).unwrap().parse().unwrap();
                let rr = format!("{first}\r\nRecord-Route: <sip:{addr};lr>\r\n{rest}");
                let mut out = Vec::new();
                let routed = if first.starts_with("INVITE ") {
                    rr.as_bytes()
                } else {
                    req.as_bytes()
                };
                if first.starts_with("BYE ") && drop_bye(call)
                    || !crate::uas::answer(routed, contact.as_bytes(), &mut out)
                {
                    continue;
                }
                if first.starts_with("INVITE ") && busy(call) {
                    let r = String::from_utf8(out).unwrap();
                    let _ = sock.send_to(r.replacen("200 OK", "100 Trying", 1).as_bytes(), from);
                    let r = r.replacen("200 OK", "486 Busy Here", 1);
                    out = r.into_bytes();
                }
                sock.send_to(&out, from).unwrap();
            }
            seen
        });
        (addr, stop, h)
    }

    fn call_cfg(target: SocketAddr, count: u64) -> Config {
        let mut c = cfg(target, count);
        c.method = Method::Invite;
        c.uri = format!("sip:uas@{target}");
        c
    }

    #[test]
    fn calls_go_through_ack_and_bye_along_the_route_set() {
        let (addr, stop, h) = peer(|_| false, |_| false);
        let s = run(&call_cfg(addr, 500)).unwrap();
        stop.store(true, Ordering::Relaxed);
        let seen = h.join().unwrap();
        assert_eq!((s.sent, s.answered, s.succeeded), (500, 500, 500));
        assert_eq!((s.failed, s.lost, s.stale, s.unmatched), (0, 0, 0, 0));
        assert_eq!((s.acks, s.byes, s.transactions), (500, 500, 1000));
        assert_eq!(s.hist.len(), 500);
        assert_eq!(seen.len(), 1500);
        let uas = format!("sip:uas@{addr}");
        for (first, route) in &seen {
            if first.starts_with("INVITE ") {
                assert!(route.is_empty(), "{first} {route}");
            } else {
                // ACK and BYE: R-URI = the UAS's Contact, Route = the Record-Route set.
                assert!(
                    first.starts_with("ACK ") || first.starts_with("BYE "),
                    "{first}"
                );
                assert_eq!(first, &format!("{} {uas} SIP/2.0", &first[..3]));
                assert_eq!(route, &format!("<sip:{addr};lr>"));
            }
        }
    }

    #[test]
    fn busy_calls_fail_with_an_ack_and_unanswered_byes_are_lost() {
        let (addr, stop, h) = peer(|n| n % 7 == 3, |n| n % 10 == 9);
        let mut c = call_cfg(addr, 200);
        c.window = 16;
        c.timeout = Duration::from_millis(300);
        let s = run(&c).unwrap();
        stop.store(true, Ordering::Relaxed);
        let seen = h.join().unwrap();
        let busy = (0..200).filter(|n| n % 7 == 3).count() as u64;
        let lost = (0..200).filter(|n| n % 7 != 3 && n % 10 == 9).count() as u64;
        assert_eq!(s.sent, 200);
        assert_eq!(s.failed, busy);
        assert_eq!(s.failed_by_code.get(&486), Some(&busy));
        assert_eq!(s.lost, lost);
        assert_eq!(s.succeeded, 200 - busy - lost);
        assert_eq!(s.answered, 200 - lost);
        assert_eq!(s.byes, 200 - busy);
        assert_eq!(s.acks, 200, "an ACK for every final to an INVITE");
        assert_eq!(s.provisional, busy);
        assert_eq!(s.transactions, 200 + (200 - busy - lost));
        // The ACK for a 486 repeats the INVITE's R-URI and has no Route.
        let acks_to_invite_uri = seen
            .iter()
            .filter(|(f, r)| f.starts_with("ACK ") && r.is_empty())
            .count() as u64;
        assert_eq!(acks_to_invite_uri, busy);
    }

    #[test]
    fn unanswered_invites_are_lost_within_the_window() {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut c = call_cfg(sink.local_addr().unwrap(), 1_000_000);
        c.duration = Duration::from_millis(100);
        c.timeout = Duration::from_millis(100);
        let t = Instant::now();
        let s = run(&c).unwrap();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!((s.sent, s.lost, s.answered, s.byes), (64, 64, 0, 0));
        let mut c = call_cfg(sink.local_addr().unwrap(), 1);
        c.retransmit = true;
        assert!(run(&c).unwrap_err().to_string().contains("--retransmit"));
    }
}
