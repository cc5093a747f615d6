//! UDP: one datagram is one SIP message.
//!
//! Datagrams are taken in bursts (`recvmmsg`), and the responses a burst
//! produces leave together (`sendmmsg`) when it has been handled. Under load
//! one system call, and one wake-up of the peer waiting for the answers,
//! serves many messages; a lone datagram is still handled, and answered,
//! the moment it arrives, because a burst never waits to fill up.
//!
//! With several workers on one socket, every datagram of one call (one
//! Call-ID) goes to the same worker, in the order the socket gave them
//! ([`serve`]): one worker reads a burst at a time and steers each datagram
//! to its worker's queue before the next burst is read. Two workers never
//! handle a 180 and the 200 behind it, or an ACK and the BYE behind it, at
//! the same time, so they leave in the order they came.

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use super::{Inbound, Proto, Source};
use crate::util::lock;

/// Most datagrams taken per receive, and sent per `sendmmsg`.
const BURST: usize = 32;

/// No UDP payload is longer (65535 less the 8-byte UDP header).
const MAX_DATAGRAM: usize = 65_527;

/// Serve `sock` with `workers` receive tasks that hand each datagram to
/// `inbound`. One worker reads the socket in a plain loop; several share it
/// with every call steered to one of them ([`Steering`]). A datagram over
/// `limit` bytes (`max_message_size`) is dropped.
pub fn serve<I: Inbound + ?Sized>(
    inbound: Arc<I>,
    sock: Arc<UdpSocket>,
    workers: usize,
    limit: usize,
) {
    let local = match sock.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("udp socket without local address: {e}");
            return;
        }
    };
    if workers <= 1 {
        tokio::spawn(receive_loop(inbound, sock, local, limit));
        return;
    }
    let steering = Arc::new(Steering {
        reader: tokio::sync::Mutex::new(Reader::new(workers, limit, local)),
        queues: (0..workers).map(|_| WorkerQueue::default()).collect(),
        sock,
        local,
        limit,
    });
    for me in 0..workers {
        tokio::spawn(steered_loop(inbound.clone(), steering.clone(), me));
    }
}

/// One worker alone on a socket: read a burst, handle it, answer it.
async fn receive_loop<I: Inbound + ?Sized>(
    inbound: Arc<I>,
    sock: Arc<UdpSocket>,
    local: SocketAddr,
    limit: usize,
) {
    let mut reader = Reader::new(1, limit, local);
    loop {
        if let Err(e) = reader.read(&sock).await {
            tracing::error!(%local, "udp socket failed: {e}");
            return;
        }
        let _responses = ResponseBurst::open();
        for (buf, &(n, remote)) in reader.bufs.iter().zip(&reader.burst) {
            if let Some(d) = Datagram::take(buf, n, remote, local, limit) {
                inbound.receive(d.data, udp_source(d.remote, local));
            }
        }
        // Dropping `_responses` sends what the burst answered.
    }
}

/// A socket shared by several workers, each call steered to one of them.
struct Steering {
    sock: Arc<UdpSocket>,
    local: SocketAddr,
    limit: usize,
    /// The right to read the socket: whoever holds it reads one burst and
    /// queues every datagram before the next reader starts, so each queue
    /// is in the socket's order.
    reader: tokio::sync::Mutex<Reader>,
    queues: Box<[WorkerQueue]>,
}

/// The datagrams steered to one worker, oldest first.
#[derive(Default)]
struct WorkerQueue {
    pending: Mutex<Vec<Datagram>>,
    wake: Notify,
}

/// A received datagram on its way to its worker.
struct Datagram {
    data: Bytes,
    remote: SocketAddr,
}

impl Datagram {
    /// The `n` bytes of `buf` from `remote`, copied out at their exact
    /// size; `None` (logged) when there is no source or it is too long.
    fn take(
        buf: &[u8],
        n: usize,
        remote: Option<SocketAddr>,
        local: SocketAddr,
        limit: usize,
    ) -> Option<Datagram> {
        let Some(remote) = remote else {
            tracing::debug!(%local, "udp datagram without a source address dropped");
            return None;
        };
        if n > limit {
            crate::log_limited!(warn, %remote, "datagram over max_message_size ({limit} bytes) dropped");
            return None;
        }
        Some(Datagram {
            data: Bytes::copy_from_slice(&buf[..n]),
            remote,
        })
    }
}

fn udp_source(remote: SocketAddr, local: SocketAddr) -> Source {
    Source {
        proto: Proto::Udp,
        remote,
        local,
    }
}

/// Worker `me` of a shared socket: handle what was steered to it; when
/// there is nothing, wait for more or for the turn to read.
async fn steered_loop<I: Inbound + ?Sized>(inbound: Arc<I>, steering: Arc<Steering>, me: usize) {
    let mine = &steering.queues[me];
    let mut batch = Vec::with_capacity(BURST);
    loop {
        loop {
            std::mem::swap(&mut batch, &mut *lock(&mine.pending));
            if batch.is_empty() {
                break;
            }
            let _responses = ResponseBurst::open();
            for d in batch.drain(..) {
                inbound.receive(d.data, udp_source(d.remote, steering.local));
            }
        }
        tokio::select! {
            biased;
            () = mine.wake.notified() => {}
            mut reader = steering.reader.lock() => {
                if let Err(e) = reader.read(&steering.sock).await {
                    tracing::error!(local = %steering.local, "udp socket failed: {e}");
                    return;
                }
                steering.steer(&mut reader, me);
            }
        }
    }
}

impl Steering {
    /// Queue the burst `reader` holds, each datagram to the worker of its
    /// Call-ID, and wake the other workers that got some.
    fn steer(&self, reader: &mut Reader, me: usize) {
        let workers = self.queues.len();
        let Reader {
            bufs,
            burst,
            steered,
            ..
        } = reader;
        for (buf, &(n, remote)) in bufs.iter().zip(burst.iter()) {
            let Some(d) = Datagram::take(buf, n, remote, self.local, self.limit) else {
                continue;
            };
            let worker = worker_of(&d, workers);
            steered[worker].push(d);
        }
        for (worker, datagrams) in steered.iter_mut().enumerate() {
            if datagrams.is_empty() {
                continue;
            }
            lock(&self.queues[worker].pending).append(datagrams);
            if worker != me {
                self.queues[worker].wake.notify_one();
            }
        }
    }
}

/// The worker every datagram of this one's call goes to: by Call-ID, or by
/// source when there is none (it will be refused, wherever it lands).
fn worker_of(d: &Datagram, workers: usize) -> usize {
    let hasher = foldhash::fast::FixedState::with_seed(0x5749_5350);
    let hash = match wisp_sip::peek::call_id(&d.data) {
        Some(call_id) => hasher.hash_one(call_id),
        None => hasher.hash_one(d.remote),
    };
    (hash % workers as u64) as usize
}

/// The receive buffers of a socket's reader and the burst last read.
struct Reader {
    /// Reused; each datagram is copied out at its exact size. Splitting a
    /// shared slab instead (zero-copy) made every datagram allocate a fresh
    /// slab — `reserve` cannot reuse one the previous message still holds —
    /// and a transaction that kept its request kept the whole slab alive.
    /// One byte more than the limit tells an oversize datagram apart.
    bufs: Box<[Vec<u8>; BURST]>,
    /// Length and source of each datagram of the last burst.
    burst: Vec<(usize, Option<SocketAddr>)>,
    /// Per worker, the datagrams of the burst being steered.
    steered: Vec<Vec<Datagram>>,
    /// The socket's family (which kernel headers receive its sources).
    v4: bool,
}

impl Reader {
    fn new(workers: usize, limit: usize, local: SocketAddr) -> Reader {
        Reader {
            bufs: Box::new(std::array::from_fn(|_| {
                vec![0u8; (limit + 1).min(MAX_DATAGRAM)]
            })),
            burst: Vec::with_capacity(BURST),
            steered: (0..workers).map(|_| Vec::with_capacity(BURST)).collect(),
            v4: local.is_ipv4(),
        }
    }

    /// Wait until `sock` has datagrams and take a burst of them. Only a
    /// failed socket is an error.
    async fn read(&mut self, sock: &UdpSocket) -> io::Result<()> {
        let v4 = self.v4;
        loop {
            sock.readable().await?;
            self.burst.clear();
            match sock.try_io(Interest::READABLE, || {
                receive_burst(sock, v4, &mut self.bufs, &mut self.burst)
            }) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // ICMP port unreachable from an earlier send surfaces here
                // on Linux; it concerns that peer only.
                Err(e) => tracing::debug!("udp recv: {e}"),
            }
        }
    }
}

/// One `recvmmsg` without waiting: the length and source of each datagram
/// taken, in the order of `bufs`.
fn receive_burst(
    sock: &UdpSocket,
    sock_is_ipv4: bool,
    bufs: &mut [Vec<u8>; BURST],
    out: &mut Vec<(usize, Option<SocketAddr>)>,
) -> io::Result<()> {
    let headers = if sock_is_ipv4 {
        &RECEIVE_HEADERS_V4
    } else {
        &RECEIVE_HEADERS_V6
    };
    headers.with_borrow_mut(|headers| {
        let mut iovs = bufs.each_mut().map(|b| [IoSliceMut::new(b.as_mut_slice())]);
        let received = recvmmsg(
            sock.as_raw_fd(),
            headers,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        out.extend(received.map(|m| (m.bytes, m.address.as_ref().and_then(socket_addr))));
        Ok(())
    })
}

fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

/// What to do when a datagram queued for the end of the burst cannot be
/// sent (a relayed request's branch fails). Runs after the burst, with no
/// lock of the caller held.
pub type OnSendError = Box<dyn FnOnce(io::Error) + Send>;

/// A datagram waiting for the end of the receive burst.
struct Pending {
    sock: Arc<UdpSocket>,
    dest: SocketAddr,
    data: Bytes,
    on_error: Option<OnSendError>,
}

/// The datagrams of the receive burst being handled on this thread, if one
/// is, and the failures to report once it is done.
#[derive(Default)]
struct SendQueue {
    open: bool,
    pending: Vec<Pending>,
    failed: Vec<(OnSendError, io::Error)>,
}

thread_local! {
    static QUEUE: RefCell<SendQueue> = RefCell::new(SendQueue::default());
    // The kernel's message headers, set up once per thread (they hold raw
    // pointers, so they cannot live in a task). Receiving and sending each
    // have their own: `sendmmsg` points the headers' addresses at the
    // caller's, where a later `recvmmsg` would write. And receiving has one
    // per address family: the kernel shrinks an address's room to the size
    // of the last one it wrote.
    static RECEIVE_HEADERS_V4: RefCell<MultiHeaders<SockaddrStorage>> =
        RefCell::new(MultiHeaders::preallocate(BURST, None));
    static RECEIVE_HEADERS_V6: RefCell<MultiHeaders<SockaddrStorage>> =
        RefCell::new(MultiHeaders::preallocate(BURST, None));
    static SEND_HEADERS: RefCell<MultiHeaders<SockaddrStorage>> =
        RefCell::new(MultiHeaders::preallocate(BURST, None));
}

/// While alive, datagrams queued on this thread wait; dropping it sends
/// them, then reports the ones that failed. Handling a message is
/// synchronous, so nothing else runs on the thread between `open` and the
/// drop.
struct ResponseBurst(());

impl ResponseBurst {
    fn open() -> ResponseBurst {
        QUEUE.with_borrow_mut(|q| q.open = true);
        ResponseBurst(())
    }
}

/// Run `f` as the handling of one receive burst: what it queues is sent
/// when it returns, and failures are reported then (tests of the layers
/// above use it to send as a receive loop does).
#[cfg(test)]
pub(crate) fn in_burst<R>(f: impl FnOnce() -> R) -> R {
    let _burst = ResponseBurst::open();
    f()
}

impl Drop for ResponseBurst {
    fn drop(&mut self) {
        QUEUE.with_borrow_mut(|q| q.open = false);
        send_queued_responses();
        let failed = QUEUE.with_borrow_mut(|q| std::mem::take(&mut q.failed));
        for (report, e) in failed {
            report(e);
        }
    }
}

/// Send now what the burst open on this thread has queued so far. Whatever
/// is sent at once after those datagrams (a forwarded CANCEL after the 200
/// to it, ...) may cause answers elsewhere that must not overtake them.
pub(super) fn send_queued_responses() {
    let mut pending = QUEUE.with_borrow_mut(|q| std::mem::take(&mut q.pending));
    if pending.is_empty() {
        return;
    }
    let failed = send_all(&mut pending);
    pending.clear();
    QUEUE.with_borrow_mut(|q| {
        q.failed.extend(failed);
        // Keep the queue's room for the next burst.
        if q.pending.is_empty() {
            q.pending = pending;
        }
    });
}

/// Queue `data` for the end of the receive burst being handled on this
/// thread (`on_error` is told if it then cannot be sent); gives it back
/// when no burst is open.
pub(super) fn queue_datagram(
    sock: &Arc<UdpSocket>,
    dest: SocketAddr,
    data: Bytes,
    on_error: Option<OnSendError>,
) -> Result<(), (Bytes, Option<OnSendError>)> {
    QUEUE.with_borrow_mut(|q| {
        if !q.open {
            return Err((data, on_error));
        }
        q.pending.push(Pending {
            sock: Arc::clone(sock),
            dest,
            data,
            on_error,
        });
        Ok(())
    })
}

/// Send `pending` with as few `sendmmsg` calls as its sockets allow. A
/// datagram the kernel refuses is logged and skipped, and its `on_error`
/// returned; a full socket buffer hands the rest to a task that waits for
/// room.
fn send_all(pending: &mut [Pending]) -> Vec<(OnSendError, io::Error)> {
    let mut failed = Vec::new();
    let mut refused = |p: &mut Pending, e: io::Error| {
        crate::log_limited!(warn, dest = %p.dest, "udp send failed: {e}");
        if let Some(report) = p.on_error.take() {
            failed.push((report, e));
        }
    };
    let mut start = 0;
    while start < pending.len() {
        let sock = Arc::clone(&pending[start].sock);
        let run_len = pending[start..]
            .iter()
            .take(BURST)
            .take_while(|p| Arc::ptr_eq(&p.sock, &sock))
            .count();
        if run_len == 1 {
            // Light load: a plain send, no `sendmmsg` set-up.
            let one = &mut pending[start];
            let on_error = one.on_error.take();
            if let Err((e, on_error)) = send_datagram(&sock, one.dest, one.data.clone(), on_error) {
                one.on_error = on_error;
                refused(one, e);
            }
            start += 1;
            continue;
        }
        let sent = {
            let run = &pending[start..start + run_len];
            let iovs: Vec<[IoSlice<'_>; 1]> = run.iter().map(|p| [IoSlice::new(&p.data)]).collect();
            let addrs: Vec<Option<SockaddrStorage>> = run
                .iter()
                .map(|p| Some(SockaddrStorage::from(p.dest)))
                .collect();
            SEND_HEADERS.with_borrow_mut(|headers| {
                sendmmsg(
                    sock.as_raw_fd(),
                    headers,
                    &iovs,
                    &addrs,
                    [],
                    MsgFlags::MSG_DONTWAIT,
                )
                .map(|sent| sent.count())
            })
        };
        match sent {
            // The kernel stops at the first datagram it refuses; the next
            // call reports why.
            Ok(sent) => start += sent.max(1),
            Err(Errno::EAGAIN) => {
                for p in &mut pending[start..start + run_len] {
                    send_when_room(
                        Arc::clone(&p.sock),
                        p.dest,
                        p.data.clone(),
                        p.on_error.take(),
                    );
                }
                start += run_len;
            }
            Err(e) => {
                refused(&mut pending[start], io::Error::from(e));
                start += 1;
            }
        }
    }
    failed
}

/// Send one datagram now. A full socket buffer does not fail the send: it
/// is finished off the receive path ([`send_when_room`], which tells
/// `on_error` if it fails then); another error is returned with `on_error`.
pub(super) fn send_datagram(
    sock: &Arc<UdpSocket>,
    dest: SocketAddr,
    data: Bytes,
    on_error: Option<OnSendError>,
) -> Result<(), (io::Error, Option<OnSendError>)> {
    match sock.try_send_to(&data, dest) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            send_when_room(Arc::clone(sock), dest, data, on_error);
            Ok(())
        }
        Err(e) => Err((e, on_error)),
    }
}

/// Socket buffer full: a task waits for room and sends then.
fn send_when_room(
    sock: Arc<UdpSocket>,
    dest: SocketAddr,
    data: Bytes,
    on_error: Option<OnSendError>,
) {
    tokio::spawn(async move {
        if let Err(e) = sock.send_to(&data, dest).await {
            crate::log_limited!(warn, %dest, "udp send failed: {e}");
            if let Some(report) = on_error {
                report(e);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receiver() -> std::net::UdpSocket {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        s
    }

    fn recv(s: &std::net::UdpSocket) -> Vec<u8> {
        let mut buf = [0u8; 64];
        let n = s.recv(&mut buf).expect("datagram");
        buf[..n].to_vec()
    }

    /// Sends two rounds from five sockets on `ip` and checks each datagram
    /// comes out of the bursts with its own source.
    async fn burst_sources(ip: &str) {
        let sock = UdpSocket::bind((ip, 0)).await.expect("bind");
        let dest = sock.local_addr().expect("addr");
        let senders: Vec<_> = (0..5)
            .map(|_| std::net::UdpSocket::bind((ip, 0)).expect("bind"))
            .collect();
        for round in 0..2 {
            for s in &senders {
                let text = format!("{round} from {}", s.local_addr().expect("addr"));
                s.send_to(text.as_bytes(), dest).expect("send");
            }
        }
        let mut bufs: [Vec<u8>; BURST] = std::array::from_fn(|_| vec![0u8; 100]);
        let mut got = Vec::new();
        while got.len() < 10 {
            sock.readable().await.expect("readable");
            let mut burst = Vec::new();
            let v4 = dest.is_ipv4();
            if sock
                .try_io(Interest::READABLE, || {
                    receive_burst(&sock, v4, &mut bufs, &mut burst)
                })
                .is_err()
            {
                continue;
            }
            for (buf, (n, from)) in bufs.iter().zip(burst) {
                let from = from.expect("source");
                got.push((String::from_utf8_lossy(&buf[..n]).into_owned(), from));
            }
        }
        for (text, from) in &got {
            assert!(
                text.ends_with(&format!("from {from}")),
                "{text:?} arrived from {from}"
            );
        }
    }

    #[tokio::test]
    async fn a_burst_keeps_each_datagram_with_its_source() {
        burst_sources("127.0.0.1").await;
        // On the same thread: an IPv6 source must not be cut to the size
        // of the IPv4 ones received before.
        if std::net::UdpSocket::bind("[::1]:0").is_ok() {
            burst_sources("::1").await;
            burst_sources("127.0.0.1").await;
        }
    }

    /// Records, per Call-ID, the sequence numbers handed up and whether two
    /// of one call were ever handled at the same time.
    #[derive(Default)]
    struct Recorder {
        seen: Mutex<std::collections::HashMap<String, Vec<u32>>>,
        busy: Mutex<std::collections::HashSet<String>>,
        overlaps: std::sync::atomic::AtomicUsize,
        total: std::sync::atomic::AtomicUsize,
    }

    impl Inbound for Recorder {
        fn receive(&self, data: Bytes, _source: Source) {
            let text = String::from_utf8_lossy(&data).into_owned();
            let call = wisp_sip::peek::call_id(&data)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .unwrap_or_default();
            let seq: u32 = text
                .lines()
                .next()
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(u32::MAX);
            if !lock(&self.busy).insert(call.clone()) {
                self.overlaps
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            // Long enough that another worker would be caught handling the
            // same call meanwhile.
            std::thread::sleep(Duration::from_micros(20));
            lock(&self.seen).entry(call.clone()).or_default().push(seq);
            lock(&self.busy).remove(&call);
            self.total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_workers_handle_each_call_in_socket_order_and_one_at_a_time() {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        let dest = sock.local_addr().expect("addr");
        let recorder = Arc::new(Recorder::default());
        serve(recorder.clone(), sock, 2, 65535);
        // One sender, as a peer proxy or SBC is: the calls interleave.
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        const CALLS: u32 = 8;
        const EACH: u32 = 250;
        for seq in 0..EACH {
            for call in 0..CALLS {
                let compact = if call % 2 == 0 { "Call-ID" } else { "i" };
                let msg = format!("MSG sip:x SIP/2.0 {seq}\r\n{compact}: call{call}\r\n\r\n");
                sender.send_to(msg.as_bytes(), dest).expect("send");
            }
            if seq % 16 == 0 {
                // Keep within the socket's buffer.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while recorder.total.load(std::sync::atomic::Ordering::Relaxed) < (CALLS * EACH) as usize
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let seen = lock(&recorder.seen);
        for call in 0..CALLS {
            let got = seen
                .get(&format!("call{call}"))
                .cloned()
                .unwrap_or_default();
            assert_eq!(
                got,
                (0..EACH).collect::<Vec<_>>(),
                "call{call} out of order or lost"
            );
        }
        assert_eq!(
            recorder.overlaps.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }

    #[tokio::test]
    async fn a_message_sent_at_once_does_not_overtake_queued_responses() {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        let transports = Arc::new(super::super::Transports::new(
            vec![sock.clone()],
            vec![],
            65535,
        ));
        // Sends go through tokio's `try_send_to`, which needs the reactor
        // to have seen the socket writable once (the router's sockets have).
        sock.writable().await.expect("writable");
        let a = receiver();
        let dest = a.local_addr().expect("addr");
        let burst = ResponseBurst::open();
        assert!(queue_datagram(&sock, dest, Bytes::from("response"), None).is_ok());
        transports
            .send(Proto::Udp, dest, None, Bytes::from("request"))
            .expect("send");
        assert_eq!(recv(&a), b"response");
        assert_eq!(recv(&a), b"request");
        drop(burst);
        a.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 16];
        assert!(a.recv(&mut buf).is_err(), "the response went out twice");
    }

    #[tokio::test]
    async fn responses_wait_for_the_burst_and_a_refused_one_does_not_stop_the_rest() {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
        let (a, b) = (receiver(), receiver());
        let to = |s: &std::net::UdpSocket| s.local_addr().expect("addr");
        // Port 0 is refused by the kernel (EINVAL), in the middle of the run.
        let refused: SocketAddr = "127.0.0.1:0".parse().expect("addr");

        let burst = ResponseBurst::open();
        for (dest, data) in [
            (to(&a), "one"),
            (refused, "lost"),
            (to(&b), "two"),
            (to(&a), "three"),
        ] {
            assert!(queue_datagram(&sock, dest, Bytes::from(data), None).is_ok());
        }
        a.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 8];
        assert!(a.recv(&mut buf).is_err(), "sent before the burst ended");
        a.set_nonblocking(false).expect("blocking");
        drop(burst);

        assert_eq!(recv(&a), b"one");
        assert_eq!(recv(&a), b"three");
        assert_eq!(recv(&b), b"two");
        // No burst open: the caller sends itself.
        assert!(queue_datagram(&sock, to(&a), Bytes::from("now"), None).is_err());
    }
}
