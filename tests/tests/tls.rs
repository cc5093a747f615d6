//! SIP over TLS (issue 19): `tls:` listeners, outbound TLS to `sips:`
//! targets with the peer's name verified, client certificates, and the
//! certificate replaced while connections stay up.
//!
//! Every certificate comes from a CA this test makes with `rcgen`; the
//! clients and the TLS user agent server are `tokio-rustls`.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector, client};
use wisp_e2e::certs::{Ca, Leaf, provider};
use wisp_e2e::*;
use wisp_sip::Message;

// ---------------------------------------------------------------- certificates

/// The router's manifest with a `tls:` listener beside UDP and TCP and a
/// `[tls]` section naming `cert` and `key` (plus `extra` lines).
fn with_tls(m: Manifest, cert: &Path, key: &Path, extra: &str) -> Manifest {
    let mut m = m.set(
        "server",
        "listen",
        "[\"udp:127.0.0.1:0\", \"tcp:127.0.0.1:0\", \"tls:127.0.0.1:0\"]",
    );
    m.extra.push_str(&format!(
        "\n[tls]\ncertificate = {:?}\nprivate_key = {:?}\n{extra}",
        cert.display().to_string(),
        key.display().to_string()
    ));
    m
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---------------------------------------------------------------- a TLS client

/// A SIP user agent on one TLS connection to the router.
struct TlsUa {
    rt: tokio::runtime::Runtime,
    stream: client::TlsStream<TcpStream>,
    local: SocketAddr,
    user: String,
    buf: Vec<u8>,
}

impl TlsUa {
    /// Connect to `addr`, trusting `ca` and expecting a certificate for
    /// `name`; presenting `client_cert` when given. The error is the
    /// handshake's.
    fn connect(
        addr: SocketAddr,
        ca: &Ca,
        name: &str,
        client_cert: Option<&Leaf>,
        user: &str,
    ) -> io::Result<TlsUa> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(ca.roots());
        let config = match client_cert {
            Some(c) => builder
                .with_client_auth_cert(vec![c.der.clone()], c.key_der())
                .expect("client certificate"),
            None => builder.with_no_client_auth(),
        };
        let rt = runtime();
        let name = ServerName::try_from(name.to_owned()).expect("server name");
        let stream = rt.block_on(async {
            let tcp = TcpStream::connect(addr).await?;
            tokio::time::timeout(
                RECV,
                TlsConnector::from(Arc::new(config)).connect(name, tcp),
            )
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "handshake timed out"))?
        })?;
        let local = stream.get_ref().0.local_addr()?;
        Ok(TlsUa {
            rt,
            stream,
            local,
            user: user.into(),
            buf: Vec::new(),
        })
    }

    /// The certificate the router presented.
    fn peer_cert(&self) -> CertificateDer<'static> {
        self.stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .expect("the router presented a certificate")
            .clone()
            .into_owned()
    }

    fn request(&self, method: &str, ruri: &str) -> RequestBuilder {
        RequestBuilder::new(method, ruri, self.local, &self.user)
            .transport("TLS")
            .contact(Some(&format!(
                "sip:{}@{};transport=tls",
                self.user, self.local
            )))
    }

    /// Write `bytes`; false when the connection is gone.
    fn send(&mut self, bytes: &[u8]) -> bool {
        let stream = &mut self.stream;
        self.rt.block_on(async {
            stream.write_all(bytes).await.is_ok() && stream.flush().await.is_ok()
        })
    }

    /// Bytes until `timeout`, EOF or an error; what arrived is in `buf`.
    /// Returns false on EOF or error.
    fn read_some(&mut self, timeout: Duration) -> bool {
        let stream = &mut self.stream;
        let buf = &mut self.buf;
        self.rt.block_on(async {
            let mut chunk = [0u8; 16384];
            match tokio::time::timeout(timeout, stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => false,
                Ok(Ok(n)) => {
                    buf.extend_from_slice(&chunk[..n]);
                    true
                }
                Err(_) => true,
            }
        })
    }

    /// Next message within `timeout`; none on timeout, EOF or error.
    fn recv_msg(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(raw) = take_frame(&mut self.buf) {
                return Some(Message::parse(Bytes::from(raw)).expect("a SIP message"));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if !self.read_some(left) {
                return None;
            }
        }
    }

    /// Send `req` and wait for its final response.
    fn transact(&mut self, req: &RequestBuilder, timeout: Duration) -> Option<Message> {
        if !self.send(&req.build()) {
            return None;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.recv_msg(left)?;
            if m.status().is_some_and(|s| s >= 200)
                && call_id_of(&m).as_deref() == Some(req.call_id.as_str())
            {
                return Some(m);
            }
        }
    }
}

/// Whether the router serves a TLS client: an OPTIONS on a new connection
/// is answered 200. False when the handshake or the connection fails.
fn served(router: &Router, ca: &Ca, client_cert: Option<&Leaf>) -> bool {
    let Ok(mut ua) = TlsUa::connect(router.tls_addr(), ca, "127.0.0.1", client_cert, "alice")
    else {
        return false;
    };
    let opt = ua.request("OPTIONS", &format!("sip:{}", router.tls_addr()));
    ua.transact(&opt, RECV)
        .is_some_and(|m| m.status() == Some(200))
}

// ---------------------------------------------------------------- tests

#[test]
fn register_and_options_over_tls_with_keepalive_pong() {
    let ca = Ca::new("Wisp test CA");
    let dir = TempDir::new();
    let (cert, key) = ca.leaf(&["127.0.0.1"]).write_to(dir.path());
    let router = Router::start_with(|m| with_tls(m, &cert, &key, ""));
    let mut ua = TlsUa::connect(router.tls_addr(), &ca, "127.0.0.1", None, "carol")
        .expect("TLS handshake with the router");

    let reg = ua
        .request("REGISTER", &format!("sip:{}", router.tls_addr()))
        .from(&router.aor("carol"))
        .to(&router.aor("carol"))
        .expires(3600);
    let fin = ua
        .transact(&reg, RECV)
        .expect("no response to REGISTER over TLS");
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
    let contacts: Vec<String> = fin
        .header_values("Contact")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert!(
        contacts.iter().any(|c| c.contains(&ua.local.to_string())),
        "the 200 lists the TLS binding {}:\n{}",
        ua.local,
        text(&fin)
    );
    // The binding is reached over this connection: the registrar recorded
    // its source as a TLS one.
    let shown = router.ctl_ok(&["ul", "show", "carol"]);
    assert!(shown.contains("transport=tls"), "{shown}");

    let opt = ua
        .request("OPTIONS", &format!("sip:{}", router.tls_addr()))
        .cseq(2);
    let fin = ua
        .transact(&opt, RECV)
        .expect("no response to OPTIONS over TLS");
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
    let v = vias(&fin);
    assert_eq!(
        (v.len(), v[0].transport.as_str()),
        (1, "TLS"),
        "{}",
        text(&fin)
    );
    assert_eq!(v[0].branch(), Some(opt.branch.as_str()));

    // RFC 5626 §3.5.1: a CRLFCRLF ping is answered with a CRLF pong.
    assert!(ua.send(b"\r\n\r\n"));
    let deadline = Instant::now() + RECV;
    while ua.buf.len() < 2 && Instant::now() < deadline {
        assert!(
            ua.read_some(Duration::from_millis(200)),
            "connection closed"
        );
    }
    assert_eq!(ua.buf, b"\r\n", "the pong is one CRLF");
}

/// The TLS user agent server of the relay tests: accepts one connection
/// with `leaf`, answers each request 200 and reports the requests it saw.
struct TlsUas {
    addr: SocketAddr,
    seen: std::sync::mpsc::Receiver<Message>,
}

impl TlsUas {
    fn start(leaf: &Leaf) -> TlsUas {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der.clone()], leaf.key_der())
            .expect("UAS certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let rt = runtime();
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("UAS listener");
        let addr = listener.local_addr().expect("UAS address");
        let (tx, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            rt.block_on(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    // A client that does not trust us ends here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        continue;
                    };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 16384];
                    loop {
                        while let Some(raw) = take_frame(&mut buf) {
                            let Ok(req) = Message::parse(Bytes::from(raw)) else {
                                continue;
                            };
                            let resp = answer_200(&req);
                            let _ = tx.send(req);
                            if tls.write_all(&resp).await.is_err() || tls.flush().await.is_err() {
                                break;
                            }
                        }
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                }
            })
        });
        TlsUas { addr, seen }
    }
}

/// A 200 to `req`: its Via, From, To (with a tag), Call-ID and CSeq.
fn answer_200(req: &Message) -> Vec<u8> {
    let head = |name: &str| -> Vec<String> {
        req.header_values(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    };
    let mut s = String::from("SIP/2.0 200 OK\r\n");
    for v in head("Via") {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    for name in ["From", "Call-ID", "CSeq"] {
        for v in head(name) {
            s.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    for v in head("To") {
        s.push_str(&format!("To: {v};tag=uas\r\n"));
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    s.into_bytes()
}

/// A router trusting `ca` (`[tls] ca_file`) for what it connects to.
fn router_trusting(ca: &Ca, dir: &Path) -> Router {
    let (cert, key) = ca.leaf(&["127.0.0.1"]).write_to(dir);
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write ca.pem");
    let extra = format!("ca_file = {:?}\n", ca_file.display().to_string());
    Router::start_with(|m| with_tls(m, &cert, &key, &extra))
}

/// An OPTIONS to `sips:uas@<uas>` from a UDP client through the router:
/// its final status, or none.
fn relay_options_to_sips(router: &Router, uas: SocketAddr) -> Option<u16> {
    let ua = TestUa::new("alice");
    let ruri = format!("sips:uas@{uas}");
    let opt = ua.request("OPTIONS", &ruri).to(&ruri);
    ua.transact(router.udp_addr(), &opt, Duration::from_secs(6))
        .1
        .and_then(|m| m.status())
}

#[test]
fn a_sips_target_is_reached_over_tls_with_its_address_verified() {
    let ca = Ca::new("Wisp test CA");
    let dir = TempDir::new();
    let router = router_trusting(&ca, dir.path());
    let uas = TlsUas::start(&ca.leaf(&["127.0.0.1"]));

    assert_eq!(relay_options_to_sips(&router, uas.addr), Some(200));
    let req = uas
        .seen
        .recv_timeout(RECV)
        .expect("the UAS saw the OPTIONS");
    let v = vias(&req);
    assert_eq!(v[0].transport, "TLS", "our Via says TLS:\n{}", text(&req));
    assert_eq!(
        v[0].port,
        Some(router.tls_addr().port()),
        "sent-by is the TLS listener\n{}",
        text(&req)
    );
    // UDP in, TLS out: two Record-Routes (Kamailio's double RR), the top
    // one facing the callee (TLS), the next facing the caller (UDP).
    let rr: Vec<String> = req
        .header_values("Record-Route")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(
        rr,
        [
            format!("<sip:{};transport=tls;lr>", router.tls_addr()),
            format!("<sip:{};lr>", router.udp_addr()),
        ],
        "{}",
        text(&req)
    );
    // A second request reuses the connection (the UAS serves one at a time).
    assert_eq!(relay_options_to_sips(&router, uas.addr), Some(200));
}

#[test]
fn a_peer_with_the_wrong_name_or_an_unknown_ca_is_refused() {
    let ca = Ca::new("Wisp test CA");
    let dir = TempDir::new();
    let router = router_trusting(&ca, dir.path());

    // Signed by the trusted CA, but for another name.
    let wrong_name = TlsUas::start(&ca.leaf(&["sip.other.example"]));
    let status = relay_options_to_sips(&router, wrong_name.addr);
    assert!(
        matches!(status, Some(503) | Some(408)),
        "a peer that is not 127.0.0.1 fails the branch: {status:?}\n{}",
        router.log()
    );
    assert!(
        wrong_name.seen.try_recv().is_err(),
        "nothing was sent to the wrong peer"
    );

    // The right name, from a CA the router does not trust.
    let rogue = Ca::new("Rogue CA");
    let unknown_ca = TlsUas::start(&rogue.leaf(&["127.0.0.1"]));
    let status = relay_options_to_sips(&router, unknown_ca.addr);
    assert!(
        matches!(status, Some(503) | Some(408)),
        "a peer with an unknown CA fails the branch: {status:?}"
    );
    assert!(unknown_ca.seen.try_recv().is_err());
    let log = router.log();
    assert!(
        log.contains("TLS handshake") && log.contains("certificate"),
        "the log says why:\n{log}"
    );
}

#[test]
fn a_client_certificate_is_required_when_the_manifest_says_so() {
    let ca = Ca::new("Wisp test CA");
    let dir = TempDir::new();
    let (cert, key) = ca.leaf(&["127.0.0.1"]).write_to(dir.path());
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write ca.pem");
    let extra = format!(
        "ca_file = {:?}\nverify_client = true\n",
        ca_file.display().to_string()
    );
    let router = Router::start_with(|m| with_tls(m, &cert, &key, &extra));

    assert!(
        !served(&router, &ca, None),
        "a client without a certificate is refused"
    );
    let rogue = Ca::new("Rogue CA");
    assert!(
        !served(&router, &ca, Some(&rogue.leaf(&["phone.example"]))),
        "a client certificate from another CA is refused"
    );
    assert!(
        served(&router, &ca, Some(&ca.leaf(&["phone.example"]))),
        "a client with a certificate of the CA is served\n{}",
        router.log()
    );
}

#[test]
fn without_verify_client_a_client_needs_no_certificate() {
    // The same router without verify_client serves a client with no
    // certificate: what the test above refuses is the manifest's doing.
    let ca = Ca::new("Wisp test CA");
    let dir = TempDir::new();
    let (cert, key) = ca.leaf(&["127.0.0.1"]).write_to(dir.path());
    let router = Router::start_with(|m| with_tls(m, &cert, &key, ""));
    assert!(served(&router, &ca, None));
}

#[test]
fn the_certificate_is_replaced_while_connections_stay_up() {
    let ca = Ca::new("Wisp test CA");
    let dir = TempDir::new();
    let first = ca.leaf(&["127.0.0.1"]);
    let (cert, key) = first.write_to(dir.path());
    let router = Router::start_with(|m| with_tls(m, &cert, &key, ""));
    let mut old =
        TlsUa::connect(router.tls_addr(), &ca, "127.0.0.1", None, "alice").expect("handshake");
    assert_eq!(old.peer_cert(), first.der);

    // A new certificate on disk, read on `wisp ctl tls reload`.
    let second = ca.leaf(&["127.0.0.1"]);
    second.write_to(dir.path());
    let said = router.ctl_ok(&["tls", "reload"]);
    assert!(said.contains("loaded"), "{said}");
    let fresh = TlsUa::connect(router.tls_addr(), &ca, "127.0.0.1", None, "bob")
        .expect("handshake after the reload");
    assert_eq!(
        fresh.peer_cert(),
        second.der,
        "a new connection sees the new certificate"
    );
    // The connection made before the reload is still served.
    let opt = old.request("OPTIONS", &format!("sip:{}", router.tls_addr()));
    let fin = old
        .transact(&opt, RECV)
        .expect("the old connection is still served after the reload");
    assert_eq!(fin.status(), Some(200));

    // A key that does not belong to the certificate: refused, and the
    // loaded certificate stays.
    let third = ca.leaf(&["127.0.0.1"]);
    std::fs::write(&cert, &third.cert_pem).expect("write cert.pem");
    let out = router.ctl(&["tls", "reload"]);
    assert!(
        !out.success(),
        "a mismatched key is refused: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("tls.private_key") && out.stderr.contains("is not the key of"),
        "{}",
        out.stderr
    );
    let after = TlsUa::connect(router.tls_addr(), &ca, "127.0.0.1", None, "carol")
        .expect("handshake after a refused reload");
    assert_eq!(
        after.peer_cert(),
        second.der,
        "the loaded certificate stays"
    );

    // Completing the pair on disk is seen without a command: the files are
    // watched.
    std::fs::write(&key, &third.key_pem).expect("write key.pem");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ua = TlsUa::connect(router.tls_addr(), &ca, "127.0.0.1", None, "dave")
            .expect("handshake while the watch reloads");
        if ua.peer_cert() == third.der {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the file change was not picked up\n{}",
            router.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn tcp_limits_hold_for_tls_and_a_silent_client_is_closed_at_the_handshake_deadline() {
    let ca = Ca::new("Wisp test CA");
    let dir = TempDir::new();
    let (cert, key) = ca.leaf(&["127.0.0.1"]).write_to(dir.path());
    let extra = "\n[tcp]\nmax_connections_per_ip = 2\nmessage_timeout_ms = 300\n";
    let router = Router::start_with(|m| {
        let mut m = with_tls(m, &cert, &key, "");
        m.extra.push_str(extra);
        m
    });

    // A client that connects and never starts its handshake holds its
    // place only until the message deadline.
    let started = Instant::now();
    let mut silent =
        std::net::TcpStream::connect(router.tls_addr()).expect("TCP connect to the TLS port");
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let n = std::io::Read::read(&mut silent, &mut byte);
    assert!(
        matches!(n, Ok(0) | Err(_)) && started.elapsed() < Duration::from_secs(4),
        "closed at tcp.message_timeout_ms, not kept: {n:?} after {:?}",
        started.elapsed()
    );

    // Two connections from 127.0.0.1 are served; a third is closed.
    let mut a = TlsUa::connect(router.tls_addr(), &ca, "127.0.0.1", None, "a").expect("first");
    let _b = TlsUa::connect(router.tls_addr(), &ca, "127.0.0.1", None, "b").expect("second");
    let third = TlsUa::connect(router.tls_addr(), &ca, "127.0.0.1", None, "c");
    let refused = match third {
        Err(_) => true,
        Ok(mut c) => {
            let opt = c.request("OPTIONS", &format!("sip:{}", router.tls_addr()));
            c.transact(&opt, Duration::from_secs(1)).is_none()
        }
    };
    assert!(refused, "a third TLS connection from one address is closed");
    let opt = a.request("OPTIONS", &format!("sip:{}", router.tls_addr()));
    assert_eq!(a.transact(&opt, RECV).and_then(|m| m.status()), Some(200));
}
