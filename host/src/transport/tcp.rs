//! TCP, and what every stream transport shares: the accept loop, and one
//! task per connection that reads framed messages (Content-Length framing,
//! RFC 3261 §18.3) and writes what a queue holds for the peer, so that
//! replies and forwards from any task reach the connection in order. TLS ([`super::tls`]) runs
//! its streams through the same [`serve_stream`] once the handshake is done,
//! under the same limits.
//!
//! What a connection may cost is bounded by `[tcp]` ([`TcpConfig`]):
//! - [`ConnTable`] counts accepted connections, in total and per source IP.
//!   At the total limit a newcomer is still accepted and the least recently
//!   active *idle* connection (no message half-received) is closed in its
//!   place, so clients that connect and say nothing cannot lock TCP out; a
//!   source over its own limit has its newcomer closed at once.
//! - Each connection has two deadlines: `idle_timeout_s` after its last
//!   complete message, and `message_timeout_ms` after the first byte of the
//!   message being received. Bytes of an unfinished message restart neither,
//!   so a client trickling a byte at a time (slowloris) is closed as soon as
//!   its message is late.
//!
//! The receive path takes no lock: a connection publishes its activity to
//! the table through atomics; the table's mutex is taken once at accept and
//! once at close.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::VecDeque;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use wisp_sip::StreamFramer;

use super::sendsock::SendSocket;
use super::{ConnectionHandle, Inbound, Proto, Source, Transports};
use crate::config::TcpConfig;
use crate::util::lock;

/// Accept connections forever; what arrives on them goes to `inbound`.
pub async fn accept_loop(
    transports: Arc<Transports>,
    inbound: Arc<dyn Inbound>,
    listener: TcpListener,
) {
    accept_with(
        transports,
        inbound,
        listener,
        "tcp",
        |t, i, stream, remote, slot| {
            tokio::spawn(serve_accepted(t, i, stream, remote, slot));
        },
    )
    .await
}

/// The accept loop of every stream listener: each connection is admitted
/// to the table under the `[tcp]` limits, then handed to `on_accept` with
/// its place there (TCP serves it, TLS shakes hands first). `what` names
/// the transport in the log.
pub(crate) async fn accept_with(
    transports: Arc<Transports>,
    inbound: Arc<dyn Inbound>,
    listener: TcpListener,
    what: &'static str,
    on_accept: impl Fn(Arc<Transports>, Arc<dyn Inbound>, TcpStream, SocketAddr, Slot),
) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let table = transports.tcp_table();
                match table.admit(remote.ip()) {
                    Ok((slot, evicted)) => {
                        if evicted {
                            crate::log_limited!(
                                info,
                                %remote,
                                "{what}: at max_connections ({}): the least recently active idle connection closed for a newcomer",
                                table.config.max_connections
                            );
                        }
                        on_accept(transports.clone(), inbound.clone(), stream, remote, slot);
                    }
                    // Closed at once: the client sees its connection end
                    // instead of waiting in the backlog.
                    Err(Refused::Full) => crate::log_limited!(
                        warn,
                        %remote,
                        "{what}: at max_connections ({}) with every connection mid-message: newcomer closed",
                        table.config.max_connections
                    ),
                    Err(Refused::PerIp) => crate::log_limited!(
                        warn,
                        %remote,
                        "{what}: address at max_connections_per_ip ({}): newcomer closed",
                        table.config.max_connections_per_ip
                    ),
                }
            }
            Err(e) => {
                // Out of descriptors and similar: back off instead of spinning.
                crate::log_limited!(warn, "{what} accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Open a TCP connection to `dest` and serve it like an accepted one (the
/// peer answers on it); `tx` is its handle in the connection table and `rx`
/// the queue (with the first message) its writer drains. Not counted in the
/// table of limits: the router opens these for its own relaying, bounded by
/// its transactions.
pub(crate) async fn connect(
    transports: Arc<Transports>,
    dest: SocketAddr,
    tx: mpsc::UnboundedSender<Bytes>,
    rx: mpsc::UnboundedReceiver<Bytes>,
) -> std::io::Result<()> {
    let inbound = transports
        .inbound()
        .ok_or_else(|| std::io::Error::other("router is shutting down"))?;
    let stream = connect_tcp(&transports, dest).await?;
    let local = stream.local_addr()?;
    tokio::spawn(serve_stream(
        transports,
        inbound,
        Proto::Tcp,
        SendSocket(stream),
        dest,
        local,
        tx,
        rx,
        None,
    ));
    Ok(())
}

/// A TCP connection to `dest` within `tcp.connect_timeout_ms`.
pub(crate) async fn connect_tcp(
    transports: &Transports,
    dest: SocketAddr,
) -> std::io::Result<TcpStream> {
    let limit = transports.tcp_table().config.connect_timeout_ms;
    let stream = tokio::time::timeout(Duration::from_millis(limit), TcpStream::connect(dest))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("not connected within tcp.connect_timeout_ms ({limit} ms)"),
            )
        })??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

async fn serve_accepted(
    transports: Arc<Transports>,
    inbound: Arc<dyn Inbound>,
    stream: TcpStream,
    remote: SocketAddr,
    slot: Slot,
) {
    let Some(local) = accepted_local(&stream, Proto::Tcp, remote) else {
        return;
    };
    let stream = SendSocket(stream);
    serve_registered(transports, inbound, Proto::Tcp, stream, remote, local, slot).await
}

/// The start every accepted connection shares: no Nagle delay (a SIP
/// message is sent whole), and the local address it arrived on.
pub(crate) fn accepted_local(
    stream: &TcpStream,
    proto: Proto,
    remote: SocketAddr,
) -> Option<SocketAddr> {
    let _ = stream.set_nodelay(true);
    match stream.local_addr() {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::debug!(%remote, "{proto} setup: {e}");
            None
        }
    }
}

/// Run an accepted connection's handshake (TLS, WebSocket upgrade) within
/// `tcp.message_timeout_ms`. Meanwhile the connection counts as a message
/// in progress: under the message deadline, and never the idle connection
/// evicted for a newcomer. `None`, logged, when it fails or is late.
pub(crate) async fn handshake<T, E: std::fmt::Display>(
    transports: &Transports,
    slot: &Slot,
    proto: Proto,
    remote: SocketAddr,
    shake: impl std::future::Future<Output = Result<T, E>>,
) -> Option<T> {
    slot.update(Instant::now(), false, true);
    let limit = Duration::from_millis(transports.tcp_table().config.message_timeout_ms);
    match tokio::time::timeout(limit, shake).await {
        Ok(Ok(done)) => {
            slot.update(Instant::now(), true, false);
            Some(done)
        }
        Ok(Err(e)) => {
            crate::log_limited!(info, %remote, "{proto} handshake failed: {e}");
            None
        }
        Err(_) => {
            crate::log_limited!(
                info,
                %remote,
                "{proto} handshake not done within tcp.message_timeout_ms ({limit:?}): closed"
            );
            None
        }
    }
}

/// Make an accepted byte stream (TCP, TLS) reachable for sends to
/// `remote`, then serve it until it ends.
pub(crate) async fn serve_registered<S: StreamIo>(
    transports: Arc<Transports>,
    inbound: Arc<dyn Inbound>,
    proto: Proto,
    stream: S,
    remote: SocketAddr,
    local: SocketAddr,
    slot: Slot,
) {
    let (tx, rx) = register(&transports, proto, remote);
    serve_stream(
        transports,
        inbound,
        proto,
        stream,
        remote,
        local,
        tx,
        rx,
        Some(slot),
    )
    .await
}

/// Make an accepted connection reachable for sends to `remote` over
/// `proto`; returns its handle's sender and the queue its writer drains.
pub(crate) fn register(
    transports: &Transports,
    proto: Proto,
    remote: SocketAddr,
) -> (mpsc::UnboundedSender<Bytes>, mpsc::UnboundedReceiver<Bytes>) {
    let (tx, rx) = mpsc::unbounded_channel();
    transports.register_connection((proto, remote), ConnectionHandle { tx: tx.clone() });
    (tx, rx)
}

/// A byte stream a connection runs on (TCP, or TLS over it). One task owns
/// it whole: it reads, and writes what is queued for the peer, in the same
/// poll.
pub(crate) trait StreamIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> StreamIo for S {}

/// Why a connection's read loop ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// No complete message for `idle_timeout_s`.
    Idle,
    /// A message begun and not finished within `message_timeout_ms`.
    Message,
}

/// The deadlines of one connection, driven by what the framer holds after
/// each read.
#[derive(Debug)]
struct Deadlines {
    idle: Duration,
    message: Duration,
    last_message: Instant,
    /// When the message being received must be complete; none between messages.
    message_due: Option<Instant>,
}

impl Deadlines {
    fn new(config: &TcpConfig, now: Instant) -> Deadlines {
        Deadlines {
            idle: Duration::from_secs(config.idle_timeout_s),
            message: Duration::from_millis(config.message_timeout_ms),
            last_message: now,
            message_due: None,
        }
    }

    /// After handing over what was buffered: `delivered` whether a complete
    /// message (or a keepalive) came out, `partial` whether bytes of the
    /// next one remain.
    fn update(&mut self, now: Instant, delivered: bool, partial: bool) {
        if delivered {
            self.last_message = now;
        }
        self.message_due = match (partial, self.message_due) {
            (false, _) => None,
            // The clock of a message starts with its first byte and is not
            // moved by the bytes that follow it.
            (true, Some(due)) if !delivered => Some(due),
            (true, _) => Some(now + self.message),
        };
    }

    /// The next deadline and which one it is.
    fn next(&self) -> (Instant, Deadline) {
        let idle = self.last_message + self.idle;
        match self.message_due {
            Some(due) if due < idle => (due, Deadline::Message),
            _ => (idle, Deadline::Idle),
        }
    }
}

/// The connection whose messages this thread is routing, and what is sent
/// to it meanwhile. Its task writes that when routing returns: an answer
/// to a request goes out without the connection map, its lock, or waking
/// the task that is already running.
struct Serving {
    key: Option<(Proto, SocketAddr)>,
    sent: Vec<Bytes>,
}

thread_local! {
    static SERVING: std::cell::RefCell<Serving> = const {
        std::cell::RefCell::new(Serving { key: None, sent: Vec::new() })
    };
}

/// Take `data` for the connection to `key` if this thread is routing a
/// message from it; else hand `data` back.
pub(crate) fn offer_to_serving(key: (Proto, SocketAddr), data: Bytes) -> Result<(), Bytes> {
    SERVING.with(|serving| match serving.try_borrow_mut() {
        Ok(mut serving) if serving.key == Some(key) => {
            serving.sent.push(data);
            Ok(())
        }
        _ => Err(data),
    })
}

/// Route `deliver` with this thread serving `key`, then move what was sent
/// to it into `out`.
fn serving<R>(key: (Proto, SocketAddr), out: &mut Outbox, deliver: impl FnOnce() -> R) -> R {
    /// Leaves the thread serving nothing, however `deliver` ends.
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            SERVING.with(|serving| {
                if let Ok(mut serving) = serving.try_borrow_mut() {
                    serving.key = None;
                    serving.sent.clear();
                }
            });
        }
    }
    SERVING.with(|serving| {
        if let Ok(mut serving) = serving.try_borrow_mut() {
            serving.key = Some(key);
        }
    });
    let leave = Leave;
    let result = deliver();
    SERVING.with(|serving| {
        if let Ok(mut serving) = serving.try_borrow_mut() {
            for data in serving.sent.drain(..) {
                out.push(data);
            }
        }
    });
    drop(leave);
    result
}

/// Bytes queued for the peer beyond which a connection stops reading: a
/// peer that sends requests but does not read their answers gets no more
/// work done for it until it does (and is closed when idle too long).
const OUTBOX_LIMIT: usize = 1 << 20;

/// At most this many queued messages go out in one vectored write.
const WRITE_BATCH: usize = 64;

/// What is queued for the peer, in order, written as the socket takes it.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<Bytes>,
    bytes: usize,
    unflushed: bool,
}

impl Outbox {
    fn push(&mut self, data: Bytes) {
        self.bytes += data.len();
        self.queue.push_back(data);
    }

    /// Take everything `rx` holds now; `Ready(())` once every sender is gone.
    fn poll_take(
        &mut self,
        cx: &mut Context<'_>,
        rx: &mut mpsc::UnboundedReceiver<Bytes>,
    ) -> Poll<()> {
        loop {
            match rx.poll_recv(cx) {
                Poll::Ready(Some(data)) => self.push(data),
                Poll::Ready(None) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Write the queue, then flush (a TLS stream holds records until then;
    /// for TCP the flush is free). `Ready(Ok)` when all is out.
    fn poll_write<S: StreamIo>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut S,
    ) -> Poll<std::io::Result<()>> {
        while !self.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); WRITE_BATCH];
            let mut n_slices = 0;
            for (slot, data) in slices.iter_mut().zip(&self.queue) {
                *slot = IoSlice::new(data);
                n_slices += 1;
            }
            let written =
                std::task::ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n_slices]))?;
            if written == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.unflushed = true;
            self.bytes -= written;
            let mut left = written;
            while left > 0 {
                let Some(front) = self.queue.front_mut() else {
                    break;
                };
                if front.len() <= left {
                    left -= front.len();
                    self.queue.pop_front();
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
        }
        if self.unflushed {
            std::task::ready!(Pin::new(&mut *io).poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }
}

/// What woke a connection's task.
enum Event {
    /// Bytes appended to the framer's buffer; 0 at the end of the stream.
    Read(usize),
    ReadFailed(std::io::Error),
    WriteFailed(std::io::Error),
    /// Closed to make room for a newcomer (it was idle).
    Evicted,
    /// The armed deadline passed (it may have moved since it was armed).
    Timer,
}

/// One turn of a connection: take what is queued for the peer and write it,
/// then read (unless the peer is not reading its answers), then the
/// eviction notice and the timer.
fn poll_event<S: StreamIo>(
    cx: &mut Context<'_>,
    io: &mut S,
    rx: &mut mpsc::UnboundedReceiver<Bytes>,
    out: &mut Outbox,
    framer: &mut StreamFramer,
    evicted: Pin<&mut impl Future<Output = ()>>,
    timer: Pin<&mut tokio::time::Sleep>,
) -> Poll<Event> {
    // The task holds a sender itself, so the queue cannot close meanwhile.
    let _ = out.poll_take(cx, rx);
    if let Poll::Ready(Err(e)) = out.poll_write(cx, io) {
        return Poll::Ready(Event::WriteFailed(e));
    }
    if out.bytes <= OUTBOX_LIMIT {
        match tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, framer.buffer_mut()) {
            Poll::Ready(Ok(n)) => return Poll::Ready(Event::Read(n)),
            Poll::Ready(Err(e)) => return Poll::Ready(Event::ReadFailed(e)),
            Poll::Pending => {}
        }
    }
    if evicted.poll(cx).is_ready() {
        return Poll::Ready(Event::Evicted);
    }
    if timer.poll(cx).is_ready() {
        return Poll::Ready(Event::Timer);
    }
    Poll::Pending
}

/// Serve one connection until it ends: frame what it receives and hand each
/// message to `inbound` as from `proto`, answer keepalives, enforce the
/// deadlines, and write what `rx` queues for the peer. `tx` is the
/// connection's handle in the table, forgotten when reading stops; `slot`
/// its place in the table of limits (none for connections the router
/// opened).
///
/// One task does all of it: an answer made while a message is routed on
/// this task is written in the same turn, with no hop to another task.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve_stream<S: StreamIo>(
    transports: Arc<Transports>,
    inbound: Arc<dyn Inbound>,
    proto: Proto,
    mut stream: S,
    remote: SocketAddr,
    local: SocketAddr,
    tx: mpsc::UnboundedSender<Bytes>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    slot: Option<Slot>,
) {
    let mut framer = StreamFramer::new(transports.max_message_size());
    let mut deadlines = Deadlines::new(&transports.tcp_table().config, Instant::now());
    let mut out = Outbox::default();
    let source = Source {
        proto,
        remote,
        local,
    };
    // One timer for the connection's life. It is moved earlier when a
    // message begins; a deadline that moved later (the idle clock
    // restarted) is found when the timer fires, so a busy connection does
    // not touch the timer wheel per message.
    let mut armed = deadlines.next().0;
    let timer = tokio::time::sleep_until(armed);
    tokio::pin!(timer);
    let evicted = closing(slot.as_ref());
    tokio::pin!(evicted);
    let mut write_failed = false;
    'conn: loop {
        // Hand over every complete message already buffered before reading
        // more; what routing sends back on this connection is written in
        // this turn.
        let framed = serving((proto, remote), &mut out, || {
            let mut delivered = false;
            loop {
                match framer.next_message() {
                    Ok(Some(msg)) => {
                        delivered = true;
                        inbound.receive(msg, source);
                    }
                    Ok(None) => return Ok(delivered),
                    Err(e) => return Err(e),
                }
            }
        });
        let mut delivered = match framed {
            Ok(delivered) => delivered,
            Err(e) => {
                // A stream that cannot be framed cannot be resynchronised:
                // end this connection only. Counted as a bad message.
                crate::stats::inc(crate::stats::Counter::BadMessages);
                crate::log_limited!(warn, %remote, "{proto} framing: {e}; closing connection");
                break 'conn;
            }
        };
        let pings = framer.take_pings();
        delivered |= pings > 0;
        // The table learns this connection's state before anything is
        // answered, so what the peer sees next is already counted.
        let now = Instant::now();
        let partial = !framer.buffer_mut().is_empty();
        deadlines.update(now, delivered, partial);
        if let Some(slot) = &slot {
            slot.update(now, delivered, partial);
        }
        for _ in 0..pings {
            // RFC 5626 §3.5.1: answer a CRLFCRLF ping with a CRLF pong, on
            // this connection.
            out.push(Bytes::from_static(b"\r\n"));
        }
        let due = deadlines.next().0;
        if due < armed {
            armed = due;
            timer.as_mut().reset(due);
        }
        let event = std::future::poll_fn(|cx| {
            poll_event(
                cx,
                &mut stream,
                &mut rx,
                &mut out,
                &mut framer,
                evicted.as_mut(),
                timer.as_mut(),
            )
        })
        .await;
        match event {
            Event::Read(0) => break,
            Event::Read(_) => {}
            Event::ReadFailed(e) => {
                tracing::debug!(%remote, "{proto} read: {e}");
                break;
            }
            Event::WriteFailed(e) => {
                tracing::debug!(%remote, "{proto} write: {e}");
                write_failed = true;
                break;
            }
            Event::Evicted => {
                tracing::debug!(%remote, "{proto} connection idle at the connection limit: closed");
                break;
            }
            Event::Timer => {
                let (due, which) = deadlines.next();
                if Instant::now() >= due {
                    match which {
                        Deadline::Idle => {
                            tracing::debug!(%remote, "{proto} connection idle for {:?}: closed", deadlines.idle)
                        }
                        Deadline::Message => {
                            tracing::debug!(%remote, "{proto} message not complete within {:?} of its first byte: closed", deadlines.message)
                        }
                    }
                    break;
                }
                armed = due;
                timer.as_mut().reset(due);
            }
        }
    }
    // Leave the table first: the slot is free as soon as reading stops.
    let accepted = slot.is_some();
    drop(slot);
    if accepted {
        inbound.connection_closed(source);
    }
    // Only the connection map keeps a sender now: once it is forgotten,
    // what is queued (a reply to the last request) is written and the
    // stream shut down, but not waiting on a peer that stopped reading.
    transports.forget_connection_of((proto, remote), &tx);
    drop(tx);
    if write_failed {
        return;
    }
    let drain = async {
        std::future::poll_fn(|cx| {
            let closed = out.poll_take(cx, &mut rx).is_ready();
            std::task::ready!(out.poll_write(cx, &mut stream))?;
            if closed {
                Poll::Ready(Ok::<(), std::io::Error>(()))
            } else {
                Poll::Pending
            }
        })
        .await?;
        stream.shutdown().await
    };
    if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(2), drain).await {
        tracing::debug!(%remote, "{proto} write: {e}");
    }
}

/// Resolves when `slot`'s connection is to close to make room; never for
/// a connection outside the table. The future owns what it waits on, so
/// the slot itself may be dropped while it is alive.
pub(crate) fn closing(slot: Option<&Slot>) -> impl Future<Output = ()> + use<> {
    let state = slot.map(|s| s.state.clone());
    async move {
        match state {
            Some(state) => state.close.notified().await,
            None => std::future::pending().await,
        }
    }
}

/// Descriptors kept besides accepted connections: UDP sockets, the
/// database, connections the router opens, plugin files, the ctl socket.
const DESCRIPTOR_HEADROOM: u64 = 256;

/// Make room for `max_connections` in the process's descriptor limit:
/// raise the soft limit towards the hard one if needed, and warn when even
/// that is short. Past the limit `accept` fails, and newcomers wait in the
/// backlog instead of taking an idle connection's place.
pub fn fit_descriptor_limit(max_connections: usize) {
    let need = (max_connections as u64).saturating_add(DESCRIPTOR_HEADROOM);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    // `rlim_t` is u64 on Linux.
    let (soft, hard): (u64, u64) = (lim.rlim_cur, lim.rlim_max);
    let target = raised_soft_limit(soft, hard, need);
    let mut have = soft;
    if target > soft {
        lim.rlim_cur = target;
        // SAFETY: setrlimit reads the struct it is given, nothing else.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
            have = target;
        }
    }
    if have < need {
        tracing::warn!(
            "tcp.max_connections = {max_connections} needs ~{need} file descriptors but the \
             limit is {have} (hard limit {hard}): past it new TCP clients wait instead of \
             replacing idle connections; raise `ulimit -n` (LimitNOFILE=) or lower max_connections"
        );
    }
}

/// The soft descriptor limit to ask for: `need`, within `hard`, never lower
/// than `soft`.
fn raised_soft_limit(soft: u64, hard: u64, need: u64) -> u64 {
    soft.max(need.min(hard))
}

/// Why an accepted connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("tcp.max_connections reached and every connection busy with a message")]
    Full,
    #[error("tcp.max_connections_per_ip reached for this address")]
    PerIp,
}

/// The accepted connections, in total and per source IP, with what the
/// limits need to know of each: when it last delivered a message and
/// whether one is half-received.
pub struct ConnTable {
    pub(crate) config: TcpConfig,
    epoch: Instant,
    inner: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    conns: HashMap<u64, Arc<ConnState>>,
    per_ip: HashMap<IpAddr, usize>,
    next_id: u64,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Arc<ConnState>> {
        let state = self.conns.remove(&id)?;
        if let Some(n) = self.per_ip.get_mut(&state.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&state.ip);
            }
        }
        Some(state)
    }
}

/// One connection as the table sees it; its task writes the atomics, the
/// accept loop reads them when looking for an idle connection.
struct ConnState {
    ip: IpAddr,
    /// Nanoseconds from the table's epoch to the last complete message
    /// (or the accept): fine enough that connections active within one
    /// millisecond are still told apart.
    last_message_ns: AtomicU64,
    /// Bytes of a message are buffered.
    busy: AtomicBool,
    /// Notified when the table closes this connection for a newcomer.
    close: Notify,
}

/// An accepted connection's place in the table; dropping it frees the place.
pub(crate) struct Slot {
    table: Arc<ConnTable>,
    id: u64,
    state: Arc<ConnState>,
}

impl Slot {
    pub(crate) fn update(&self, now: Instant, delivered: bool, partial: bool) {
        if delivered {
            let ns = self.table.nanos(now);
            self.state.last_message_ns.store(ns, Ordering::Relaxed);
        }
        self.state.busy.store(partial, Ordering::Relaxed);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Already gone when it was evicted.
        lock(&self.table.inner).remove(self.id);
    }
}

impl ConnTable {
    pub fn new(config: TcpConfig) -> Arc<ConnTable> {
        Arc::new(ConnTable {
            config,
            epoch: Instant::now(),
            inner: Mutex::new(Table::default()),
        })
    }

    fn nanos(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Accepted connections in the table now.
    pub fn len(&self) -> usize {
        lock(&self.inner).conns.len()
    }

    /// Whether no accepted connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take a place for a connection from `ip`, and say whether an idle
    /// connection was evicted for it: refused when `ip` has its share; at
    /// the total limit, the least recently active idle connection is told
    /// to close and its place given to the newcomer.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<(Slot, bool), Refused> {
        let mut t = lock(&self.inner);
        if t.per_ip.get(&ip).copied().unwrap_or(0) >= self.config.max_connections_per_ip {
            return Err(Refused::PerIp);
        }
        let mut evicted = false;
        if t.conns.len() >= self.config.max_connections {
            // A scan, only at the limit: no ordering to maintain on the
            // receive path.
            let victim = t
                .conns
                .iter()
                .filter(|(_, c)| !c.busy.load(Ordering::Relaxed))
                .min_by_key(|(id, c)| (c.last_message_ns.load(Ordering::Relaxed), **id))
                .map(|(id, _)| *id);
            let state = victim.and_then(|id| t.remove(id)).ok_or(Refused::Full)?;
            // A stored permit: the connection sees it even if it is not
            // waiting yet.
            state.close.notify_one();
            evicted = true;
        }
        let id = t.next_id;
        t.next_id += 1;
        let state = Arc::new(ConnState {
            ip,
            last_message_ns: AtomicU64::new(self.nanos(Instant::now())),
            busy: AtomicBool::new(false),
            close: Notify::new(),
        });
        t.conns.insert(id, state.clone());
        *t.per_ip.entry(ip).or_insert(0) += 1;
        Ok((
            Slot {
                table: self.clone(),
                id,
                state,
            },
            evicted,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max: usize, per_ip: usize) -> Arc<ConnTable> {
        ConnTable::new(TcpConfig {
            max_connections: max,
            max_connections_per_ip: per_ip,
            ..TcpConfig::default()
        })
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    /// Whether `slot` was told to close (its permit is consumed).
    fn told_to_close(slot: &Slot) -> bool {
        let notified = slot.state.close.notified();
        tokio::pin!(notified);
        // A stored permit completes the future on its first poll.
        notified.as_mut().enable()
    }

    #[test]
    fn at_the_limit_the_least_recently_active_idle_connection_makes_room() {
        let t = table(3, 10);
        let a = t.admit(ip(1)).expect("room").0;
        let b = t.admit(ip(2)).expect("room").0;
        let c = t.admit(ip(3)).expect("room").0;
        // `a` is the oldest but delivers a message now; `b` is then the
        // least recently active.
        let later = Instant::now() + Duration::from_secs(1);
        a.update(later, true, false);
        let (d, evicted) = t.admit(ip(4)).expect("an idle connection makes room");
        assert!(evicted);
        assert_eq!(t.len(), 3);
        assert!(told_to_close(&b), "b was the least recently active");
        assert!(!told_to_close(&a) && !told_to_close(&c));
        // `b`'s task ends later: dropping its slot must not free a second place.
        drop(b);
        assert_eq!(t.len(), 3);
        drop(d);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn a_connection_with_a_message_in_progress_is_never_evicted() {
        let t = table(2, 10);
        let a = t.admit(ip(1)).expect("room").0;
        let b = t.admit(ip(2)).expect("room").0;
        a.update(Instant::now(), false, true);
        b.update(Instant::now(), false, true);
        assert_eq!(t.admit(ip(3)).err(), Some(Refused::Full));
        // `b` finishes its message: it is idle again, and goes.
        b.update(Instant::now(), true, false);
        let (_c, evicted) = t.admit(ip(3)).expect("b is idle now");
        assert!(evicted);
        assert!(told_to_close(&b));
        assert!(!told_to_close(&a));
    }

    #[test]
    fn one_address_gets_its_share_and_no_more() {
        let t = table(10, 2);
        let a1 = t.admit(ip(1)).expect("room").0;
        let _a2 = t.admit(ip(1)).expect("room").0;
        assert_eq!(t.admit(ip(1)).err(), Some(Refused::PerIp));
        // Another address is not affected, and the refusal took no place.
        let _b = t.admit(ip(2)).expect("room").0;
        assert_eq!(t.len(), 3);
        drop(a1);
        let (_a3, evicted) = t.admit(ip(1)).expect("a place of ip 1 was freed");
        assert!(!evicted, "below the total limit nothing is evicted");
    }

    #[test]
    fn an_address_at_its_share_cannot_evict_others() {
        let t = table(2, 1);
        let _a = t.admit(ip(1)).expect("room").0;
        let b = t.admit(ip(2)).expect("room").0;
        assert_eq!(t.admit(ip(1)).err(), Some(Refused::PerIp));
        assert!(!told_to_close(&b));
    }

    #[test]
    fn the_descriptor_limit_is_raised_to_what_is_needed_within_the_hard_limit() {
        assert_eq!(raised_soft_limit(1024, 524_288, 4352), 4352);
        assert_eq!(raised_soft_limit(1024, 2048, 4352), 2048, "capped by hard");
        assert_eq!(
            raised_soft_limit(65_536, 524_288, 4352),
            65_536,
            "never lowered"
        );
    }

    fn deadlines() -> (Deadlines, Instant) {
        let config = TcpConfig {
            idle_timeout_s: 120,
            message_timeout_ms: 5000,
            ..TcpConfig::default()
        };
        let t0 = Instant::now();
        (Deadlines::new(&config, t0), t0)
    }

    #[test]
    fn trickled_bytes_do_not_move_the_message_deadline() {
        let (mut d, t0) = deadlines();
        assert_eq!(d.next(), (t0 + Duration::from_secs(120), Deadline::Idle));
        // The first byte of a message at t0+1 s, then a byte a second.
        d.update(t0 + Duration::from_secs(1), false, true);
        for s in 2..5 {
            d.update(t0 + Duration::from_secs(s), false, true);
        }
        assert_eq!(d.next(), (t0 + Duration::from_secs(6), Deadline::Message));
    }

    #[test]
    fn a_complete_message_restarts_both_clocks() {
        let (mut d, t0) = deadlines();
        d.update(t0 + Duration::from_secs(1), false, true);
        // The message completes at 3 s and the next one has begun in the
        // same read: its own 5 s start now.
        d.update(t0 + Duration::from_secs(3), true, true);
        assert_eq!(d.next(), (t0 + Duration::from_secs(8), Deadline::Message));
        // It completes with nothing after it: only the idle clock runs.
        d.update(t0 + Duration::from_secs(4), true, false);
        assert_eq!(d.next(), (t0 + Duration::from_secs(124), Deadline::Idle));
        // Stray bytes that frame nothing (a lone CRLF) are not activity.
        d.update(t0 + Duration::from_secs(100), false, false);
        assert_eq!(d.next(), (t0 + Duration::from_secs(124), Deadline::Idle));
    }
}
