//! The load loop: one thread, one UDP socket, an O(1) in-flight table.
//!
//! Single-threaded on purpose: the tool is meant to be pinned to one core (`taskset`),
//! where a sender/receiver thread pair would only fight over that core. Each loop
//! iteration expires timed-out requests, does due retransmissions, sends what the window
//! (closed loop) or the schedule (open loop) allows, then receives one datagram. In
//! closed loop, when the window is full, that receive blocks (SO_RCVTIMEO 1 ms), so a
//! saturated run costs one `sendto` + one `recv` per request. In open loop, when there is
//! nothing to do, it sleeps in `ppoll` until a datagram arrives or the next request is
//! due (or spins if that is less than ~50 µs away).
//!
//! In-flight requests live in a power-of-two ring indexed by the sequence number that is
//! embedded in the Call-ID and Via branch; a slot holds the first send time (+1, 0 = free).
//! Requests are sent in sequence order with increasing times, so time-outs and timer-E
//! retransmission rounds are processed in sequence order with a few cursors.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use socket2::{Domain, Protocol, Socket, Type};

use crate::request::{Method, RequestTemplate, uri_host};
use crate::response::{match_seq, status_code};

/// RFC 3261 T1 / T2 (timer E: T1, 2T1, 4T1, ... capped at T2; timer F = 64*T1).
const T1_NS: u64 = 500_000_000;
const T2_NS: u64 = 4_000_000_000;
const TIMER_F_NS: u64 = 64 * T1_NS;
/// Max in-flight table size (entries of 8 bytes).
pub(crate) const MAX_RING: u64 = 1 << 21;
/// Per-iteration bound on new sends so receiving interleaves under load.
pub(crate) const SEND_BATCH: usize = 128;
const SOCK_BUF: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct Config {
    pub target: SocketAddr,
    pub bind: SocketAddr,
    pub method: Method,
    /// Requests per second (open loop); 0 = closed loop.
    pub rate: u64,
    /// Closed loop: requests in flight.
    pub window: u64,
    pub count: u64,
    pub duration: Duration,
    pub timeout: Duration,
    /// Request-URI.
    pub uri: String,
    /// REGISTER: number of distinct AORs cycled.
    pub users: u64,
    pub expect: u16,
    pub retransmit: bool,
    /// REGISTER: answer a 401/407 once with digest credentials of
    /// `user<N>` and this password (the same for every user).
    pub password: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub method: Method,
    pub target: SocketAddr,
    pub local: SocketAddr,
    pub rate: u64,
    pub window: u64,
    pub expect: u16,
    pub timeout: Duration,
    /// Distinct requests sent (retransmissions not included).
    pub sent: u64,
    pub retransmissions: u64,
    pub send_errors: u64,
    /// Final (>= 200) responses matched to an in-flight request.
    pub answered: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub failed_by_code: BTreeMap<u16, u64>,
    /// No final response within the timeout.
    pub lost: u64,
    /// Datagrams that are not a SIP response of this run.
    pub unmatched: u64,
    /// Responses of this run for a request that was no longer in flight
    /// (duplicate final response, or answer after it was counted lost).
    pub stale: u64,
    pub provisional: u64,
    /// Final responses to any transaction (calls: INVITE and BYE; else = answered).
    pub transactions: u64,
    /// Calls: ACKs and BYEs sent (an ACK for each INVITE final, a BYE for each 2xx).
    pub acks: u64,
    pub byes: u64,
    /// Calls: 2xx to an INVITE that set up no dialog (no To tag or Contact); counted failed.
    pub unusable_2xx: u64,
    /// First send to last final response (or to the end of sending if none arrived).
    pub elapsed: Duration,
    /// Whole run including the straggler wait.
    pub wall: Duration,
    pub hist: Histogram<u64>,
    pub rcvbuf: usize,
    pub sndbuf: usize,
}

impl Summary {
    pub(crate) fn new(cfg: &Config, local: SocketAddr, rcvbuf: usize, sndbuf: usize) -> Summary {
        Summary {
            method: cfg.method,
            target: cfg.target,
            local,
            rate: cfg.rate,
            window: cfg.window,
            expect: cfg.expect,
            timeout: cfg.timeout,
            sent: 0,
            retransmissions: 0,
            send_errors: 0,
            answered: 0,
            succeeded: 0,
            failed: 0,
            failed_by_code: BTreeMap::new(),
            lost: 0,
            unmatched: 0,
            stale: 0,
            provisional: 0,
            transactions: 0,
            acks: 0,
            byes: 0,
            unusable_2xx: 0,
            elapsed: Duration::ZERO,
            wall: Duration::ZERO,
            hist: Histogram::new(1).expect("histogram"),
            rcvbuf,
            sndbuf,
        }
    }

    fn per_s(&self, n: u64) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { n as f64 / s } else { 0.0 }
    }

    /// Answered requests (calls: completed calls) per second.
    pub fn throughput(&self) -> f64 {
        self.per_s(self.answered)
    }

    /// Transactions answered with a final response per second (calls: INVITE + BYE).
    pub fn transactions_per_s(&self) -> f64 {
        self.per_s(self.transactions)
    }
}

pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 127,
        IpAddr::V6(v6) => {
            v6 == Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped().is_some_and(|v4| v4.octets()[0] == 127)
        }
    }
}

pub(crate) fn make_socket(bind: SocketAddr) -> Result<(UdpSocket, usize, usize)> {
    let s = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))
        .context("socket")?;
    // Big kernel buffers so bursts are not dropped; FORCE variants work as root and
    // bypass net.core.{r,w}mem_max, otherwise fall back to the capped request.
    for (opt_force, which) in [(libc::SO_RCVBUFFORCE, 0), (libc::SO_SNDBUFFORCE, 1)] {
        let v = SOCK_BUF as libc::c_int;
        // SAFETY: plain setsockopt on a valid fd with a c_int option value.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt_force,
                &v as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let _ = if which == 0 {
                s.set_recv_buffer_size(SOCK_BUF)
            } else {
                s.set_send_buffer_size(SOCK_BUF)
            };
        }
    }
    s.bind(&bind.into())
        .with_context(|| format!("bind {bind}"))?;
    let rcv = s.recv_buffer_size().unwrap_or(0);
    let snd = s.send_buffer_size().unwrap_or(0);
    Ok((s.into(), rcv, snd))
}

/// Offsets (from first send) of the timer-E retransmissions that fall before `limit_ns`.
fn retransmit_offsets(limit_ns: u64) -> Vec<u64> {
    let mut v = Vec::new();
    let (mut at, mut interval) = (0u64, T1_NS);
    loop {
        at += interval;
        if at >= limit_ns || at >= TIMER_F_NS {
            return v;
        }
        v.push(at);
        interval = (interval * 2).min(T2_NS);
    }
}

pub(crate) fn run_nonce() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let x = t.as_nanos() as u64 ^ ((std::process::id() as u64) << 32) ^ (&t as *const _ as u64);
    // splitmix64 finaliser
    let mut z = x.wrapping_add(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    (z ^ (z >> 31)) as u32
}

/// Blocks until the socket is readable (or writable if `want_write`) or `wait_ns` passes.
pub(crate) fn wait_fd(fd: libc::c_int, wait_ns: u64, want_write: bool) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN | if want_write { libc::POLLOUT } else { 0 },
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: (wait_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (wait_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: one valid pollfd, valid timespec, no signal mask change.
    unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
}

/// The plain request load (OPTIONS, REGISTER): an in-flight table,
/// answer accounting and timer-E retransmissions.
struct Requests<'a> {
    /// First send time in ns since start, +1; 0 = not in flight. Indexed by seq & mask.
    ring: Vec<u64>,
    mask: u64,
    /// Every seq < oldest is resolved (answered or lost).
    oldest: u64,
    /// Next sequence number to send.
    next_seq: u64,
    inflight: u64,
    hist: Histogram<u64>,
    last_answer_ns: u64,
    token: Vec<u8>,
    expect: u16,
    timeout_ns: u64,
    tmpl: &'a RequestTemplate,
    users: u64,
    fd: libc::c_int,
    dest: socket2::SockAddr,
    /// Timer-E offsets, and a cursor a round: no seq below it is due in that round.
    rtx_offsets: Vec<u64>,
    rtx_cursor: Vec<u64>,
    out: Vec<u8>,
    /// `--password`: the digest password, the Request-URI the digest covers,
    /// and each challenged seq's retry (what a retransmission resends).
    password: Option<&'a str>,
    uri: &'a str,
    retries: std::collections::HashMap<u64, Vec<u8>>,
}

impl Requests<'_> {
    /// Answers the challenge `msg` to request `seq` with its retry; false if
    /// there is nothing to answer it with (no password, a retry already
    /// sent, or a challenge this tool cannot answer).
    fn answer_challenge(&mut self, seq: u64, msg: &[u8], s: &mut Summary) -> bool {
        let Some(password) = self.password else {
            return false;
        };
        if self.retries.contains_key(&seq) {
            return false;
        }
        let Some(ch) = crate::digest::challenge(msg) else {
            return false;
        };
        self.tmpl.write(seq, seq % self.users, &mut self.out);
        let Some(user) = crate::digest::to_user(&self.out) else {
            return false;
        };
        let cnonce = format!("{seq:x}");
        let auth = crate::digest::answer(&ch, user, password, "REGISTER", self.uri, &cnonce);
        let Some(retry) = crate::digest::retry(&self.out, &auth) else {
            return false;
        };
        if send_to(self.fd, &retry, &self.dest).is_err() {
            s.send_errors += 1;
        }
        self.retries.insert(seq, retry);
        true
    }
}

impl Load for Requests<'_> {
    fn oldest(&self) -> u64 {
        self.oldest
    }

    fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn inflight(&self) -> u64 {
        self.inflight
    }

    fn timers(&mut self, now: u64, s: &mut Summary) -> TimerWork {
        let mut work = TimerWork::default();
        // Expire (in sequence order) requests unanswered for longer than the timeout.
        while self.oldest < self.next_seq {
            let slot = &mut self.ring[(self.oldest & self.mask) as usize];
            if *slot != 0 {
                if now < *slot - 1 + self.timeout_ns {
                    break;
                }
                *slot = 0;
                self.inflight -= 1;
                s.lost += 1;
                self.retries.remove(&self.oldest);
            }
            self.oldest += 1;
        }
        // Timer-E retransmissions (one cursor per round; rounds are time-ordered by seq).
        'rtx: for (k, &off) in self.rtx_offsets.iter().enumerate() {
            let cur = &mut self.rtx_cursor[k];
            *cur = (*cur).max(self.oldest);
            while *cur < self.next_seq {
                let slot = self.ring[(*cur & self.mask) as usize];
                if slot != 0 {
                    if now < slot - 1 + off {
                        break;
                    }
                    let again = match self.retries.get(cur) {
                        Some(retry) => retry,
                        None => {
                            self.tmpl.write(*cur, *cur % self.users, &mut self.out);
                            &self.out
                        }
                    };
                    match send_to(self.fd, again, &self.dest) {
                        Ok(()) => s.retransmissions += 1,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            work.send_blocked = true;
                            break 'rtx;
                        }
                        Err(_) => s.send_errors += 1,
                    }
                    work.progressed = true;
                }
                *cur += 1;
            }
        }
        work
    }

    fn write(&self, seq: u64, out: &mut Vec<u8>) {
        self.tmpl.write(seq, seq % self.users, out);
    }

    fn sent(&mut self, seq: u64, at: u64) {
        self.ring[(seq & self.mask) as usize] = at + 1;
        self.next_seq += 1;
        self.inflight += 1;
    }

    #[inline]
    fn on_datagram(&mut self, msg: &[u8], now: u64, s: &mut Summary) {
        let Some(code) = status_code(msg) else {
            s.unmatched += 1;
            return;
        };
        let Some(seq) = match_seq(msg, &self.token) else {
            s.unmatched += 1;
            return;
        };
        if code < 200 {
            s.provisional += 1;
            return;
        }
        if seq < self.oldest || seq >= self.next_seq {
            s.stale += 1;
            return;
        }
        let slot = &mut self.ring[(seq & self.mask) as usize];
        if *slot == 0 {
            s.stale += 1;
            return;
        }
        if matches!(code, 401 | 407) && self.answer_challenge(seq, msg, s) {
            s.transactions += 1;
            return;
        }
        let slot = &mut self.ring[(seq & self.mask) as usize];
        let sent_at = *slot - 1;
        *slot = 0;
        self.inflight -= 1;
        self.last_answer_ns = now;
        s.answered += 1;
        s.transactions += 1;
        if self.password.is_some() {
            self.retries.remove(&seq);
        }
        self.hist
            .saturating_record((now.saturating_sub(sent_at) / 1000).max(1));
        if code == self.expect {
            s.succeeded += 1;
        } else {
            s.failed += 1;
            *s.failed_by_code.entry(code).or_insert(0) += 1;
        }
    }

    fn next_timer(&self, now: u64) -> Option<u64> {
        let mut wake = None::<u64>;
        let mut at = |t: u64| wake = Some(wake.map_or(t, |w| w.min(t)));
        if self.oldest < self.next_seq {
            let slot = self.ring[(self.oldest & self.mask) as usize];
            if slot != 0 {
                at(slot - 1 + self.timeout_ns);
            }
        }
        for (k, &off) in self.rtx_offsets.iter().enumerate() {
            let c = self.rtx_cursor[k].max(self.oldest);
            if c < self.next_seq {
                let slot = self.ring[(c & self.mask) as usize];
                // An answered slot at the cursor is skipped on the next pass; be eager.
                at(if slot != 0 { slot - 1 + off } else { now });
            }
        }
        wake
    }

    fn last_answer_ns(&self) -> u64 {
        self.last_answer_ns
    }

    fn take_hist(&mut self) -> Histogram<u64> {
        std::mem::replace(&mut self.hist, Histogram::new(1).expect("histogram"))
    }
}

/// `recv(2)`; non-blocking unless `block` (then bounded by the socket's SO_RCVTIMEO).
#[inline]
pub(crate) fn recv(fd: libc::c_int, buf: &mut [u8], block: bool) -> io::Result<usize> {
    let flags = if block { 0 } else { libc::MSG_DONTWAIT };
    // SAFETY: buf is valid for writes of buf.len() bytes.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Non-blocking `sendto(2)` of one datagram.
#[inline]
pub(crate) fn send_to(fd: libc::c_int, buf: &[u8], dest: &socket2::SockAddr) -> io::Result<()> {
    // SAFETY: buf valid for reads; dest is a valid socket address of dest.len() bytes.
    let n = unsafe {
        libc::sendto(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
            dest.as_ptr().cast(),
            dest.len(),
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// What one receive attempt of a run loop came to.
pub(crate) enum Received {
    /// A datagram of this many bytes is in the buffer.
    Datagram(usize),
    /// Nothing was waiting (or the 1 ms block ran out).
    Nothing,
    /// EINTR, or an ICMP error surfaced on the socket: not a response; try again.
    Again,
}

/// One receive for a run loop: non-blocking unless `block`.
#[inline]
pub(crate) fn receive(fd: libc::c_int, buf: &mut [u8], block: bool) -> Result<Received> {
    match recv(fd, buf, block) {
        Ok(n) => Ok(Received::Datagram(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Received::Nothing),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(Received::Again)
        }
        Err(e) => Err(e).context("recv"),
    }
}

/// What a run loop does after sending a new request.
pub(crate) enum Sent {
    Ok,
    /// The send buffer is full: stop sending until the socket is writable.
    Blocked,
    /// EINTR: send the same request again.
    Retry,
    /// Another error (e.g. ECONNREFUSED from an earlier ICMP error): counted;
    /// the same sequence number is tried in the next round.
    Failed,
}

/// Counts send errors of new requests and gives up on a target that keeps
/// refusing them.
#[derive(Default)]
pub(crate) struct SendErrors {
    consecutive: u32,
}

impl SendErrors {
    pub(crate) fn check(
        &mut self,
        result: io::Result<()>,
        s: &mut Summary,
        target: SocketAddr,
    ) -> Result<Sent> {
        match result {
            Ok(()) => {
                self.consecutive = 0;
                s.sent += 1;
                Ok(Sent::Ok)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Sent::Blocked),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Sent::Retry),
            Err(e) => {
                s.send_errors += 1;
                self.consecutive += 1;
                if self.consecutive >= 1000 {
                    return Err(e).context(format!("sendto {target} keeps failing"));
                }
                Ok(Sent::Failed)
            }
        }
    }
}

/// Idle (open loop, or send buffer full) until `wake_ns`: sleep in poll
/// until a datagram arrives (or the socket is writable again) or the time
/// comes; spin when that is very close.
pub(crate) fn idle(fd: libc::c_int, now_ns: u64, wake_ns: u64, send_blocked: bool) {
    let wait = wake_ns.saturating_sub(now_ns);
    if send_blocked {
        wait_fd(fd, wait.min(1_000_000), true);
    } else if wait > 50_000 {
        wait_fd(fd, wait.min(100_000_000), false);
    } else {
        std::hint::spin_loop();
    }
}

/// What the timers of one loop iteration did.
#[derive(Default)]
pub(crate) struct TimerWork {
    /// Something was sent (a retransmission): loop again before idling.
    pub progressed: bool,
    /// The send buffer is full: send nothing new until it drains.
    pub send_blocked: bool,
}

/// One kind of load as [`drive`] runs it: requests numbered by a sequence
/// number, sent in order, each in flight until resolved (answered or lost).
pub(crate) trait Load {
    /// Every seq below this one is resolved.
    fn oldest(&self) -> u64;
    /// The seq of the next new request.
    fn next_seq(&self) -> u64;
    fn inflight(&self) -> u64;
    /// Resolves what timed out (counted lost) and sends what is due again.
    fn timers(&mut self, now: u64, s: &mut Summary) -> TimerWork;
    /// The new request `seq`.
    fn write(&self, seq: u64, out: &mut Vec<u8>);
    /// Request `seq` left at `at` (ns since start).
    fn sent(&mut self, seq: u64, at: u64);
    fn on_datagram(&mut self, msg: &[u8], now: u64, s: &mut Summary);
    /// The earliest time-out or retransmission to wake for.
    fn next_timer(&self, now: u64) -> Option<u64>;
    /// When the last final response was taken (ns since start).
    fn last_answer_ns(&self) -> u64;
    fn take_hist(&mut self) -> Histogram<u64>;
}

/// The run loop shared by every load, on one socket: each iteration runs
/// the timers, sends what the window (closed loop) or the schedule (open
/// loop) allows, then receives one datagram. A ring of `ring_len` slots
/// bounds the seqs in flight. Fills in `s`'s times and histogram.
pub(crate) fn drive<L: Load>(
    cfg: &Config,
    fd: libc::c_int,
    ring_len: u64,
    load: &mut L,
    s: &mut Summary,
) -> Result<()> {
    let dest = socket2::SockAddr::from(cfg.target);
    let send_deadline_ns = cfg.duration.as_nanos().min(u64::MAX as u128) as u64;
    let mut out = Vec::with_capacity(1024);
    let mut rbuf = vec![0u8; 65536];
    let mut sending_done = cfg.count == 0;
    let mut send_end_ns = 0u64;
    let mut send_errors = SendErrors::default();
    let t0 = Instant::now();
    let now_ns = || t0.elapsed().as_nanos() as u64;
    // Open loop schedule: request n is due at n * 1e9 / rate (no drift accumulation).
    let due_ns =
        |seq: u64| -> u64 { (seq as u128 * 1_000_000_000u128 / cfg.rate.max(1) as u128) as u64 };
    let can_send = |load: &L, now: u64| {
        load.next_seq() < cfg.count
            && load.next_seq() - load.oldest() < ring_len
            && if cfg.rate == 0 {
                load.inflight() < cfg.window
            } else {
                due_ns(load.next_seq()) <= now
            }
    };

    loop {
        let now = now_ns();
        // 1. Time-outs and retransmissions.
        let TimerWork {
            mut progressed,
            mut send_blocked,
        } = load.timers(now, s);

        // 2. Send new requests.
        if !sending_done && (load.next_seq() >= cfg.count || now >= send_deadline_ns) {
            sending_done = true;
            send_end_ns = now;
        }
        if !sending_done && !send_blocked {
            for _ in 0..SEND_BATCH {
                if !can_send(&*load, now) {
                    break;
                }
                let seq = load.next_seq();
                load.write(seq, &mut out);
                let t_send = now_ns();
                match send_errors.check(send_to(fd, &out, &dest), s, cfg.target)? {
                    Sent::Ok => {
                        load.sent(seq, t_send);
                        progressed = true;
                    }
                    Sent::Blocked => {
                        send_blocked = true;
                        break;
                    }
                    Sent::Retry => continue,
                    Sent::Failed => break,
                }
            }
        }

        // 3. Done when nothing is left to send and nothing is in flight.
        if sending_done && load.inflight() == 0 {
            break;
        }

        // 4. Receive one datagram. In closed loop, when no request can be sent until an
        //    answer arrives, block in recv (SO_RCVTIMEO = 1 ms, so timers still run):
        //    at saturation that is one sendto + one recv per request.
        let block = cfg.rate == 0 && !send_blocked && (sending_done || !can_send(&*load, now));
        match receive(fd, &mut rbuf, block)? {
            Received::Datagram(n) => {
                load.on_datagram(&rbuf[..n], now_ns(), s);
                continue;
            }
            Received::Again => continue,
            Received::Nothing => {}
        }
        if block || progressed {
            continue;
        }

        // 5. Idle (open loop or send buffer full): sleep until a datagram arrives or the
        //    next timer is due; spin if that is very close.
        let now = now_ns();
        let mut wake = load.next_timer(now).unwrap_or(u64::MAX);
        if !sending_done {
            wake = wake.min(send_deadline_ns);
            if cfg.rate > 0 && load.next_seq() - load.oldest() < ring_len {
                wake = wake.min(due_ns(load.next_seq()));
            }
        }
        idle(fd, now, wake, send_blocked);
    }

    let end = now_ns();
    s.elapsed = Duration::from_nanos(if s.answered > 0 {
        load.last_answer_ns()
    } else {
        send_end_ns.max(1)
    });
    s.wall = Duration::from_nanos(end);
    s.hist = load.take_hist();
    Ok(())
}

/// The bound socket and the address advertised in Via/Contact.
pub(crate) struct Endpoint {
    pub sock: UdpSocket,
    pub local: SocketAddr,
    pub via_addr: SocketAddr,
    pub rcvbuf: usize,
    pub sndbuf: usize,
}

pub(crate) fn open(cfg: &Config) -> Result<Endpoint> {
    let (sock, rcvbuf, sndbuf) = make_socket(cfg.bind)?;
    let local = sock.local_addr()?;
    // Never advertise an unspecified address in Via/Contact.
    let via_addr = if local.ip().is_unspecified() {
        let ip = match local {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        SocketAddr::new(ip, local.port())
    } else {
        local
    };
    sock.set_read_timeout(Some(Duration::from_millis(1)))?;
    Ok(Endpoint {
        sock,
        local,
        via_addr,
        rcvbuf,
        sndbuf,
    })
}

pub fn run(cfg: &Config) -> Result<Summary> {
    if !is_loopback(cfg.target.ip()) {
        bail!(
            "target {} is not a loopback address (only 127.0.0.0/8 and ::1 are allowed)",
            cfg.target
        );
    }
    if cfg.users == 0 {
        bail!("--users must be at least 1");
    }
    if cfg.rate == 0 && cfg.window == 0 {
        bail!("--window must be at least 1 in closed-loop mode");
    }
    if cfg.method == Method::Invite {
        return crate::calls::run(cfg);
    }
    let ep = open(cfg)?;
    let tmpl = RequestTemplate::new(
        cfg.method,
        &cfg.uri,
        uri_host(&cfg.uri),
        ep.via_addr,
        run_nonce(),
    )?;
    let ring_len = cfg.count.clamp(1, MAX_RING).next_power_of_two();
    let timeout_ns = cfg.timeout.as_nanos().min(u64::MAX as u128) as u64;
    let rtx_offsets = if cfg.retransmit {
        retransmit_offsets(timeout_ns)
    } else {
        Vec::new()
    };
    let mut load = Requests {
        ring: vec![0u64; ring_len as usize],
        mask: ring_len - 1,
        oldest: 0,
        next_seq: 0,
        inflight: 0,
        hist: Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds"),
        last_answer_ns: 0,
        token: tmpl.token().as_bytes().to_vec(),
        expect: cfg.expect,
        timeout_ns,
        tmpl: &tmpl,
        users: cfg.users,
        fd: ep.sock.as_raw_fd(),
        dest: socket2::SockAddr::from(cfg.target),
        rtx_cursor: vec![0u64; rtx_offsets.len()],
        rtx_offsets,
        out: Vec::with_capacity(1024),
        password: cfg.password.as_deref(),
        uri: &cfg.uri,
        retries: std::collections::HashMap::new(),
    };
    let mut s = Summary::new(cfg, ep.local, ep.rcvbuf, ep.sndbuf);
    drive(cfg, ep.sock.as_raw_fd(), ring_len, &mut load, &mut s)?;
    Ok(s)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::response::header;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread::JoinHandle;

    /// Tiny stateless UDP responder for tests: copies Via/From/To/Call-ID/CSeq.
    /// `answer(n)` gives, for the n-th request received (0-based), the list of status
    /// codes to send back (empty = drop).
    pub struct Responder {
        pub addr: SocketAddr,
        stop: Arc<AtomicBool>,
        handle: Option<JoinHandle<u64>>,
    }

    impl Responder {
        pub fn start(answer: impl Fn(u64) -> Vec<u16> + Send + 'static) -> Self {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let addr = sock.local_addr().unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = stop.clone();
            let handle = std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut n = 0u64;
                while !stop2.load(Ordering::Relaxed) {
                    let Ok((len, from)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    let req = &buf[..len];
                    for code in answer(n) {
                        let mut r = format!("SIP/2.0 {code} Whatever\r\n").into_bytes();
                        for (long, compact) in [
                            ("Via", "v"),
                            ("From", "f"),
                            ("To", "t"),
                            ("Call-ID", "i"),
                            ("CSeq", ""),
                        ] {
                            if let Some(v) = header(req, long.as_bytes(), compact.as_bytes()) {
                                r.extend_from_slice(long.as_bytes());
                                r.extend_from_slice(b": ");
                                r.extend_from_slice(v);
                                r.extend_from_slice(b"\r\n");
                            }
                        }
                        r.extend_from_slice(b"Content-Length: 0\r\n\r\n");
                        let _ = sock.send_to(&r, from);
                    }
                    n += 1;
                }
                n
            });
            Self {
                addr,
                stop,
                handle: Some(handle),
            }
        }

        /// Stops the thread; returns the number of requests it received.
        pub fn stop(mut self) -> u64 {
            self.stop.store(true, Ordering::Relaxed);
            self.handle.take().unwrap().join().unwrap()
        }
    }

    impl Drop for Responder {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    pub fn cfg(target: SocketAddr, count: u64) -> Config {
        Config {
            target,
            bind: "127.0.0.1:0".parse().unwrap(),
            method: Method::Options,
            rate: 0,
            window: 64,
            count,
            duration: Duration::from_secs(20),
            timeout: Duration::from_millis(2000),
            uri: format!("sip:{target}"),
            users: count.max(1),
            expect: 200,
            retransmit: false,
            password: None,
        }
    }

    /// A registrar that challenges every first REGISTER and accepts a retry
    /// only if its MD5 response is right for `user<N>` / `secret`.
    fn challenging_registrar() -> (SocketAddr, std::thread::JoinHandle<(u64, u64)>) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut challenged, mut accepted) = (0, 0);
            let mut buf = vec![0u8; 65536];
            while let Ok((len, from)) = sock.recv_from(&mut buf) {
                let req = &buf[..len];
                let user = crate::digest::to_user(req).unwrap().to_string();
                let copy = |code: &str, extra: &str| {
                    let mut r = format!("SIP/2.0 {code}\r\n").into_bytes();
                    for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
                        let v = header(req, h.as_bytes(), b"").unwrap();
                        r.extend_from_slice(
                            format!("{h}: {}\r\n", String::from_utf8_lossy(v)).as_bytes(),
                        );
                    }
                    r.extend_from_slice(format!("{extra}Content-Length: 0\r\n\r\n").as_bytes());
                    r
                };
                let reply = match header(req, b"Authorization", b"") {
                    None => {
                        challenged += 1;
                        copy(
                            "401 Unauthorized",
                            "WWW-Authenticate: Digest realm=\"bench\", nonce=\"abc\", qop=\"auth\"\r\n",
                        )
                    }
                    Some(auth) => {
                        let ch = crate::digest::Challenge {
                            proxy: false,
                            realm: "bench".into(),
                            nonce: "abc".into(),
                            opaque: None,
                            algorithm: crate::digest::Algorithm::Md5,
                            qop_auth: true,
                        };
                        let auth = String::from_utf8_lossy(auth);
                        let cnonce = auth
                            .split("cnonce=\"")
                            .nth(1)
                            .unwrap()
                            .split('"')
                            .next()
                            .unwrap();
                        let uri = auth
                            .split("uri=\"")
                            .nth(1)
                            .unwrap()
                            .split('"')
                            .next()
                            .unwrap();
                        let want =
                            crate::digest::answer(&ch, &user, "secret", "REGISTER", uri, cnonce);
                        let want = want
                            .split("response=")
                            .nth(1)
                            .unwrap()
                            .split(',')
                            .next()
                            .unwrap()
                            .trim();
                        if auth.contains(want) {
                            accepted += 1;
                            copy("200 OK", "")
                        } else {
                            copy("403 Forbidden", "")
                        }
                    }
                };
                sock.send_to(&reply, from).unwrap();
            }
            (challenged, accepted)
        });
        (addr, handle)
    }

    #[test]
    fn challenged_registers_are_retried_once_with_credentials() {
        let (addr, registrar) = challenging_registrar();
        let mut c = cfg(addr, 300);
        c.method = Method::Register;
        c.password = Some("secret".into());
        let s = run(&c).unwrap();
        assert_eq!((s.succeeded, s.failed, s.lost), (300, 0, 0));
        assert_eq!(s.transactions, 600, "a 401 and a 200 per registration");
        assert_eq!(registrar.join().unwrap(), (300, 300));
    }

    #[test]
    fn a_wrong_password_ends_in_the_registrars_refusal() {
        let (addr, registrar) = challenging_registrar();
        let mut c = cfg(addr, 50);
        c.method = Method::Register;
        c.password = Some("not the secret".into());
        let s = run(&c).unwrap();
        assert_eq!((s.succeeded, s.failed), (0, 50));
        assert_eq!(s.failed_by_code.get(&403), Some(&50));
        assert_eq!(registrar.join().unwrap(), (50, 0));
    }

    #[test]
    fn closed_loop_against_responder() {
        let r = Responder::start(|_| vec![200]);
        let s = run(&cfg(r.addr, 2000)).unwrap();
        assert_eq!(r.stop(), 2000);
        assert_eq!(s.sent, 2000);
        assert_eq!(s.answered, 2000);
        assert_eq!(s.succeeded, 2000);
        assert_eq!(s.lost, 0);
        assert_eq!(s.failed, 0);
        assert_eq!(s.unmatched, 0);
        assert_eq!(s.hist.len(), 2000);
    }

    #[test]
    fn register_open_loop_with_provisionals_failures_and_losses() {
        // Every 10th request dropped, every 7th answered 100 then 404, the rest 100 + 200 + a duplicate 200.
        let r = Responder::start(|n| {
            if n % 10 == 9 {
                vec![]
            } else if n % 7 == 0 {
                vec![100, 404]
            } else {
                vec![100, 200, 200]
            }
        });
        let mut c = cfg(r.addr, 300);
        c.method = Method::Register;
        c.rate = 3000;
        c.users = 10;
        c.timeout = Duration::from_millis(1000);
        let s = run(&c).unwrap();
        assert_eq!(r.stop(), 300);
        let dropped = (0..300).filter(|n| n % 10 == 9).count() as u64;
        let not_found = (0..300).filter(|n| n % 10 != 9 && n % 7 == 0).count() as u64;
        assert_eq!(s.sent, 300);
        assert_eq!(s.lost, dropped);
        assert_eq!(s.answered, 300 - dropped);
        assert_eq!(s.failed, not_found);
        assert_eq!(s.failed_by_code.get(&404), Some(&not_found));
        assert_eq!(s.succeeded, 300 - dropped - not_found);
        assert_eq!(s.provisional, 300 - dropped);
        assert_eq!(s.stale, 300 - dropped - not_found);
        assert_eq!(s.unmatched, 0);
        // 300 requests at 3000/s take ~100 ms: paced, not a burst.
        assert!(s.elapsed >= Duration::from_millis(90), "{:?}", s.elapsed);
    }

    #[test]
    fn retransmits_until_answered() {
        // Drop the first 2 transmissions of everything; timer E resends at 500 ms, 1.5 s.
        let r = Responder::start(|n| if n < 10 { vec![] } else { vec![200] });
        let mut c = cfg(r.addr, 5);
        c.retransmit = true;
        c.timeout = Duration::from_millis(2500);
        let s = run(&c).unwrap();
        assert_eq!(r.stop(), 15);
        assert_eq!(s.sent, 5);
        assert_eq!(s.retransmissions, 10);
        assert_eq!(s.answered, 5);
        assert_eq!(s.lost, 0);
        assert!(s.hist.min() >= 1_400_000, "latency is from the first send");
    }

    #[test]
    fn refuses_non_loopback_target() {
        let c = cfg("192.0.2.1:5060".parse().unwrap(), 1);
        let e = run(&c).unwrap_err().to_string();
        assert!(e.contains("not a loopback"), "{e}");
        assert!(is_loopback("127.1.2.3".parse().unwrap()));
        assert!(is_loopback("::1".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("10.0.0.1".parse().unwrap()));
        assert!(!is_loopback("::".parse().unwrap()));
    }

    #[test]
    fn unanswered_requests_are_lost_and_run_is_bounded() {
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut c = cfg(sink.local_addr().unwrap(), 1_000_000);
        c.duration = Duration::from_millis(100);
        c.timeout = Duration::from_millis(100);
        let t = Instant::now();
        let s = run(&c).unwrap();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(s.sent, 64, "closed loop never exceeds the window");
        assert_eq!(s.lost, 64);
        assert_eq!(s.answered, 0);
    }

    #[test]
    fn retransmit_schedule() {
        assert_eq!(
            retransmit_offsets(2_000_000_000),
            vec![500_000_000, 1_500_000_000]
        );
        let v = retransmit_offsets(u64::MAX);
        assert_eq!(
            &v[..5],
            &[
                500_000_000,
                1_500_000_000,
                3_500_000_000,
                7_500_000_000,
                11_500_000_000
            ]
        );
        assert!(*v.last().unwrap() < TIMER_F_NS);
    }
}
