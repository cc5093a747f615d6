//! Load over connections (`--transport tcp|tls`): OPTIONS or REGISTER
//! pipelined on `--connections` long-lived connections (the closed-loop
//! window shared between them), or, with `--handshakes`, one fresh
//! connection per request (TCP connect, TLS handshake, the request, its
//! final answer, close), `--window` of them at a time.
//!
//! Everything runs on one current-thread tokio runtime, so the load tool
//! needs one core however many connections it holds. Over TLS the server's
//! certificate is verified against `--ca` with the target's IP address as
//! the name (the benchmark script issues one for 127.0.0.1).

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use crate::engine::{Config, Summary, run_nonce};
use crate::request::{RequestTemplate, uri_host};
use crate::response::{header, match_seq, status_code};

/// How the load over connections is shaped.
#[derive(Debug, Clone)]
pub struct StreamLoad {
    /// Long-lived connections sharing the window (ignored with `handshakes`).
    pub connections: u64,
    /// One connection (and handshake) per request.
    pub handshakes: bool,
    /// TLS, with the PEM file of the CA that issued the server's
    /// certificate; plain TCP when `None`.
    pub ca: Option<std::path::PathBuf>,
}

/// A connection's byte stream, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Io for T {}

/// Opens connections to the target: TCP, then TLS when configured.
#[derive(Clone)]
struct Dialer {
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

/// What the connections share: the next sequence number and the summary.
struct Shared {
    cfg: Config,
    tmpl: RequestTemplate,
    token: Vec<u8>,
    next_seq: u64,
    send_until: Instant,
    s: Summary,
    first_send: Option<Instant>,
    last_answer: Option<Instant>,
}

impl Shared {
    /// No request is left to send: `--count` or `--duration` is reached.
    fn exhausted(&self) -> bool {
        self.next_seq >= self.cfg.count || Instant::now() >= self.send_until
    }

    /// The next request number, or `None` once `--count` or `--duration` is reached.
    fn claim(&mut self) -> Option<u64> {
        if self.exhausted() {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.first_send.get_or_insert_with(Instant::now);
        Some(seq)
    }

    fn user(&self, seq: u64) -> u64 {
        seq % self.cfg.users.max(1)
    }

    /// Counts one final answer sent at `sent`.
    fn answered(&mut self, code: u16, sent: Instant) {
        let now = Instant::now();
        self.last_answer = Some(now);
        self.s.answered += 1;
        self.s.transactions += 1;
        if code == self.cfg.expect {
            self.s.succeeded += 1;
        } else {
            self.s.failed += 1;
            *self.s.failed_by_code.entry(code).or_default() += 1;
        }
        let us = now.duration_since(sent).as_micros().max(1) as u64;
        let _ = self.s.hist.record(us);
    }
}

type State = Rc<RefCell<Shared>>;

pub fn run(cfg: &Config, load: &StreamLoad) -> Result<Summary> {
    if cfg.rate != 0 {
        bail!("--transport tcp|tls runs closed loop only (leave out --rate)");
    }
    if cfg.window == 0 {
        bail!("--window must be at least 1");
    }
    if !load.handshakes && load.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let dialer = Dialer {
        tls: match &load.ca {
            Some(ca) => Some((
                connector(ca)?,
                ServerName::IpAddress(cfg.target.ip().into()),
            )),
            None => None,
        },
    };
    let mut tmpl = RequestTemplate::new(
        cfg.method,
        &cfg.uri,
        uri_host(&cfg.uri),
        cfg.bind,
        run_nonce(),
    )?;
    tmpl.set_via_transport(if load.ca.is_some() { "TLS" } else { "TCP" });
    let token = tmpl.token().as_bytes().to_vec();
    let mut s = Summary::new(cfg, cfg.bind, 0, 0);
    s.hist = Histogram::new_with_bounds(1, 3_600_000_000, 3).context("histogram bounds")?;
    let start = Instant::now();
    let state: State = Rc::new(RefCell::new(Shared {
        cfg: cfg.clone(),
        tmpl,
        token,
        next_seq: 0,
        send_until: start + cfg.duration,
        s,
        first_send: None,
        last_answer: None,
    }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let local = tokio::task::LocalSet::new();
    let tasks = if load.handshakes {
        cfg.window
    } else {
        load.connections
    };
    // Each long-lived connection gets its share of the window (at least one).
    let per_conn = (cfg.window / load.connections.max(1)).max(1) as usize;
    let handshakes = load.handshakes;
    let connect_errors = local.block_on(&rt, async {
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (st, dialer) = (state.clone(), dialer.clone());
            handles.push(tokio::task::spawn_local(async move {
                if handshakes {
                    one_per_request(st, dialer).await
                } else {
                    pipelined(st, dialer, per_conn).await
                }
            }));
        }
        let mut errors = Vec::new();
        for h in handles {
            match h.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(format!("{e:#}")),
                Err(e) => errors.push(e.to_string()),
            }
        }
        errors
    });
    let mut st = Rc::try_unwrap(state)
        .map_err(|_| anyhow::anyhow!("connection tasks still hold the state"))?
        .into_inner();
    if let Some(first) = connect_errors.first() {
        eprintln!(
            "wisp-bench: {} connection(s) failed, first: {first}",
            connect_errors.len()
        );
    }
    st.s.wall = start.elapsed();
    st.s.elapsed = match (st.first_send, st.last_answer) {
        (Some(a), Some(b)) if b > a => b - a,
        (Some(a), _) => st.send_until.min(Instant::now()) - a,
        _ => Duration::ZERO,
    };
    Ok(st.s)
}

fn connector(ca: &Path) -> Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("--ca {}", ca.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("--ca {}: not PEM certificates", ca.display()))?;
    if certs.is_empty() {
        bail!("--ca {}: no certificate in it", ca.display());
    }
    for c in certs {
        roots
            .add(c)
            .with_context(|| format!("--ca {}", ca.display()))?;
    }
    // ring, as the router uses (rustls marks it deprecated for lacking
    // post-quantum key exchange), offering X25519 first as OpenSSL and
    // phones do: rustls's ring list starts with P-384.
    #[allow(deprecated)]
    let provider = {
        use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
        Arc::new(rustls::crypto::CryptoProvider {
            kx_groups: vec![X25519, SECP256R1, SECP384R1],
            ..rustls::crypto::ring::default_provider()
        })
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

impl Dialer {
    async fn open(&self, st: &State) -> Result<Box<dyn Io>> {
        let (target, timeout) = {
            let s = st.borrow();
            (s.cfg.target, s.cfg.timeout)
        };
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(target))
            .await
            .context("TCP connect timed out")?
            .context("TCP connect")?;
        tcp.set_nodelay(true)?;
        let Some((connector, name)) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let tls = tokio::time::timeout(timeout, connector.connect(name.clone(), tcp))
            .await
            .context("TLS handshake timed out")?
            .context("TLS handshake")?;
        Ok(Box::new(tls))
    }
}

/// A complete SIP message at the start of `buf`: its length, or `None` if
/// more bytes are needed. A message without Content-Length ends at its
/// blank line (the answers to our requests carry no body).
fn framed_len(buf: &[u8]) -> Option<usize> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let body = header(&buf[..end], b"Content-Length", b"l")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<usize>().ok())
        .unwrap_or(0);
    (buf.len() >= end + body).then_some(end + body)
}

/// Reads until one complete message is in `buf`; returns its length.
async fn read_message<R: AsyncReadExt + Unpin>(
    rd: &mut R,
    buf: &mut Vec<u8>,
    chunk: &mut [u8],
) -> Result<Option<usize>> {
    loop {
        // Keepalive pongs (CRLF) between messages are not messages.
        let skip = buf
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        buf.drain(..skip);
        if let Some(n) = framed_len(buf) {
            return Ok(Some(n));
        }
        let n = rd.read(chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One long-lived connection: up to `window` requests outstanding on it.
async fn pipelined(st: State, dialer: Dialer, window: usize) -> Result<()> {
    let stream = dialer.open(&st).await?;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let permits = Rc::new(Semaphore::new(window));
    // Send times by sequence number, for the requests outstanding here.
    let inflight: Rc<RefCell<std::collections::HashMap<u64, Instant>>> = Rc::default();
    let done_sending = Rc::new(std::cell::Cell::new(false));
    let timeout = st.borrow().cfg.timeout;

    let writer = {
        let (st, permits, inflight, done) = (
            st.clone(),
            permits.clone(),
            inflight.clone(),
            done_sending.clone(),
        );
        async move {
            let mut out = Vec::with_capacity(1024);
            loop {
                let Ok(p) = permits.acquire().await else {
                    break;
                };
                p.forget();
                let Some(seq) = st.borrow_mut().claim() else {
                    break;
                };
                {
                    let s = st.borrow();
                    s.tmpl.write(seq, s.user(seq), &mut out);
                }
                inflight.borrow_mut().insert(seq, Instant::now());
                st.borrow_mut().s.sent += 1;
                if let Err(e) = wr.write_all(&out).await {
                    st.borrow_mut().s.send_errors += 1;
                    done.set(true);
                    return Err(anyhow::Error::from(e).context("send"));
                }
            }
            done.set(true);
            // The server sees the end of our requests only when we close;
            // keep the write half open until the reader finished.
            Ok::<_, anyhow::Error>(wr)
        }
    };
    let reader = {
        let (st, permits, inflight, done) = (
            st.clone(),
            permits.clone(),
            inflight.clone(),
            done_sending.clone(),
        );
        async move {
            let mut buf = Vec::with_capacity(16 * 1024);
            let mut chunk = vec![0u8; 16 * 1024];
            loop {
                // Nothing outstanding here and nothing left to send
                // anywhere: the writer is about to stop, if it has not.
                if inflight.borrow().is_empty() && (done.get() || st.borrow().exhausted()) {
                    return Ok::<_, anyhow::Error>(());
                }
                let n = match tokio::time::timeout(
                    timeout,
                    read_message(&mut rd, &mut buf, &mut chunk),
                )
                .await
                {
                    Err(_) => return Ok(()), // nothing for a whole timeout: the rest is lost
                    Ok(Ok(Some(n))) => n,
                    Ok(Ok(None)) => bail!("the server closed the connection"),
                    Ok(Err(e)) => return Err(e.context("receive")),
                };
                let msg = &buf[..n];
                let mut s = st.borrow_mut();
                match (status_code(msg), match_seq(msg, &s.token)) {
                    (Some(code), Some(seq)) if code >= 200 => {
                        match inflight.borrow_mut().remove(&seq) {
                            Some(sent) => {
                                s.answered(code, sent);
                                permits.add_permits(1);
                            }
                            None => s.s.stale += 1,
                        }
                    }
                    (Some(_), Some(_)) => s.s.provisional += 1,
                    _ => s.s.unmatched += 1,
                }
                drop(s);
                buf.drain(..n);
            }
        }
    };
    // When the reader gives up (nothing for a whole timeout, or an
    // error), no permit comes back: close them so the writer stops too.
    let reader = async {
        let r = reader.await;
        permits.close();
        r
    };
    let (w, r) = tokio::join!(writer, reader);
    let lost = inflight.borrow().len() as u64;
    st.borrow_mut().s.lost += lost;
    if let Ok(mut wr) = w {
        let _ = wr.shutdown().await;
    }
    r
}

/// One connection per request, until the count or the duration is reached.
async fn one_per_request(st: State, dialer: Dialer) -> Result<()> {
    let mut out = Vec::with_capacity(1024);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 4096];
    let timeout = st.borrow().cfg.timeout;
    loop {
        let Some(seq) = st.borrow_mut().claim() else {
            return Ok(());
        };
        let sent = Instant::now();
        st.borrow_mut().s.sent += 1;
        let answer = async {
            let mut stream = dialer.open(&st).await?;
            {
                let s = st.borrow();
                s.tmpl.write(seq, s.user(seq), &mut out);
            }
            stream.write_all(&out).await.context("send")?;
            buf.clear();
            loop {
                let Some(n) = read_message(&mut stream, &mut buf, &mut chunk).await? else {
                    bail!("the server closed the connection before answering");
                };
                let code = status_code(&buf[..n]);
                buf.drain(..n);
                match code {
                    Some(c) if c >= 200 => {
                        let _ = stream.shutdown().await;
                        return Ok(c);
                    }
                    Some(_) => st.borrow_mut().s.provisional += 1,
                    None => st.borrow_mut().s.unmatched += 1,
                }
            }
        };
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(code)) => st.borrow_mut().answered(code, sent),
            Ok(Err(e)) => {
                let mut s = st.borrow_mut();
                s.s.lost += 1;
                s.s.send_errors += 1;
                if s.s.send_errors == 1 {
                    eprintln!("wisp-bench: first failed handshake: {e:#}");
                }
            }
            Err(_) => st.borrow_mut().s.lost += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use rcgen::{CertificateParams, KeyPair};
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    use tokio::net::TcpListener;

    use super::*;
    use crate::engine::tests::cfg;

    /// A TLS server on 127.0.0.1 (self-signed for that address, written to
    /// `dir/ca.pem`) that answers every request 200, or 486 for every
    /// `busy_every`-th one, copying Via, From, To, Call-ID and CSeq.
    fn tls_responder(dir: &Path, busy_every: u64) -> SocketAddr {
        responder(dir, busy_every, true)
    }

    /// [`tls_responder`], over plain TCP when `tls` is false.
    fn responder(dir: &Path, busy_every: u64, tls: bool) -> SocketAddr {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        std::fs::write(dir.join("ca.pem"), cert.pem()).expect("write ca.pem");
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).expect("key"),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = std_listener.local_addr().expect("addr");
        std_listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).expect("listener");
                let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, seen) = (acceptor.clone(), seen.clone());
                    tokio::spawn(async move {
                        let mut tls: Box<dyn Io + Send> = if tls {
                            match acceptor.accept(tcp).await {
                                Ok(s) => Box::new(s),
                                Err(_) => return,
                            }
                        } else {
                            Box::new(tcp)
                        };
                        let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 4096]);
                        while let Ok(Some(n)) = read_message(&mut tls, &mut buf, &mut chunk).await {
                            let nth = seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                            let code = if busy_every > 0 && nth % busy_every == 0 {
                                486
                            } else {
                                200
                            };
                            let mut r = format!("SIP/2.0 {code} Whatever\r\n").into_bytes();
                            for (long, compact) in [
                                ("Via", "v"),
                                ("From", "f"),
                                ("To", "t"),
                                ("Call-ID", "i"),
                                ("CSeq", ""),
                            ] {
                                if let Some(v) =
                                    header(&buf[..n], long.as_bytes(), compact.as_bytes())
                                {
                                    r.extend_from_slice(format!("{long}: ").as_bytes());
                                    r.extend_from_slice(v);
                                    r.extend_from_slice(b"\r\n");
                                }
                            }
                            r.extend_from_slice(b"Content-Length: 0\r\n\r\n");
                            buf.drain(..n);
                            if tls.write_all(&r).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
        });
        addr
    }

    fn load(dir: &Path, connections: u64, handshakes: bool) -> StreamLoad {
        StreamLoad {
            connections,
            handshakes,
            ca: Some(dir.join("ca.pem")),
        }
    }

    #[test]
    fn pipelined_load_counts_every_answer_on_many_connections() {
        let dir = tempfile_dir();
        let target = tls_responder(&dir, 10);
        let mut c = cfg(target, 300);
        c.window = 40;
        let s = run(&c, &load(&dir, 8, false)).expect("run");
        assert_eq!((s.sent, s.answered, s.lost), (300, 300, 0));
        assert_eq!((s.succeeded, s.failed), (270, 30));
        assert_eq!(s.failed_by_code.get(&486), Some(&30));
        assert_eq!(s.hist.len(), 300);
    }

    #[test]
    fn plain_tcp_load_counts_every_answer() {
        let dir = tempfile_dir();
        let target = responder(&dir, 0, false);
        let mut c = cfg(target, 100);
        c.window = 10;
        let tcp = StreamLoad {
            connections: 5,
            handshakes: false,
            ca: None,
        };
        let s = run(&c, &tcp).expect("run");
        assert_eq!(
            (s.sent, s.answered, s.succeeded, s.lost),
            (100, 100, 100, 0)
        );
    }

    /// A server that accepts and never answers: the run ends after the
    /// timeout with everything sent counted lost, instead of waiting on.
    #[test]
    fn a_silent_server_ends_the_run_with_the_requests_lost() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut c = cfg(listener.local_addr().expect("addr"), 50);
        c.window = 4;
        c.timeout = Duration::from_millis(300);
        let tcp = StreamLoad {
            connections: 2,
            handshakes: false,
            ca: None,
        };
        let s = run(&c, &tcp).expect("run");
        assert_eq!((s.sent, s.answered, s.lost), (4, 0, 4));
        drop(listener);
    }

    #[test]
    fn handshake_load_opens_a_connection_per_request() {
        let dir = tempfile_dir();
        let target = tls_responder(&dir, 0);
        let mut c = cfg(target, 24);
        c.window = 4;
        let s = run(&c, &load(&dir, 1, true)).expect("run");
        assert_eq!((s.sent, s.answered, s.succeeded, s.lost), (24, 24, 24, 0));
    }

    #[test]
    fn a_certificate_of_another_ca_is_refused() {
        let dir = tempfile_dir();
        let target = tls_responder(&dir, 0);
        // Trust another self-signed certificate instead.
        let other = tempfile_dir();
        let _ = tls_responder(&other, 0);
        let mut c = cfg(target, 5);
        c.window = 1;
        c.timeout = Duration::from_millis(500);
        let s = run(&c, &load(&other, 1, true)).expect("run");
        assert_eq!((s.answered, s.lost), (0, 5));
    }

    /// A fresh folder under the system's temporary one, removed on drop.
    struct TempDir(std::path::PathBuf);

    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn tempfile_dir() -> TempDir {
        let dir = std::env::temp_dir().join(format!("wisp-bench-tls-{}", run_nonce()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    #[test]
    fn frames_by_content_length() {
        let m = b"SIP/2.0 200 OK\r\nContent-Length: 3\r\n\r\nabcSIP/2.0";
        assert_eq!(framed_len(m), Some(m.len() - 7));
        assert_eq!(framed_len(b"SIP/2.0 200 OK\r\nl: 5\r\n\r\nab"), None);
        assert_eq!(framed_len(b"SIP/2.0 200 OK\r\nVia: x\r\n"), None);
        assert_eq!(framed_len(b"SIP/2.0 200 OK\r\n\r\n"), Some(18));
    }
}
