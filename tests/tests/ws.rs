//! SIP over WebSocket (RFC 7118, issue 19): `ws:` and `wss:` listeners,
//! the `sip` subprotocol, one message per frame, and requests to a
//! WebSocket client over the connection it opened (a browser's Contact has
//! a `.invalid` host: only its connection reaches it).
//!
//! The clients are `tokio-tungstenite` (over `tokio-rustls` for wss, with a
//! CA this test makes with `rcgen`).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as Frame};
use wisp_e2e::certs::Ca;
use wisp_e2e::*;
use wisp_sip::Message;

// ---------------------------------------------------------------- certificates

/// A router listening on UDP, TCP, WS and WSS (the certificate of `ca`),
/// with the default plugin.
fn ws_router(ca: &Ca, dir: &TempDir) -> Router {
    ws_router_with(ca, dir, |m| m)
}

/// [`ws_router`] with `f` applied to the manifest (another plugin).
fn ws_router_with(ca: &Ca, dir: &TempDir, f: impl Fn(Manifest) -> Manifest) -> Router {
    let (cert, key) = ca.leaf(&["127.0.0.1"]).write_to(dir.path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    Router::start_with(|m| {
        let mut m = f(m).set(
            "server",
            "listen",
            "[\"udp:127.0.0.1:0\", \"tcp:127.0.0.1:0\", \"ws:127.0.0.1:0\", \"wss:127.0.0.1:0\"]",
        );
        m.extra.push_str(&format!(
            "\n[tls]\ncertificate = {cert:?}\nprivate_key = {key:?}\n"
        ));
        m
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---------------------------------------------------------------- a WebSocket client

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How a client reaches the router.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Ws,
    Wss,
}

/// A SIP user agent on one WebSocket connection to the router, as a
/// browser is: its Via and Contact name a `.invalid` host.
struct WsUa {
    rt: tokio::runtime::Runtime,
    ws: WebSocketStream<Box<dyn Io>>,
    local: SocketAddr,
    kind: Kind,
    user: String,
    /// Frames that were not SIP messages (pongs), counted.
    pongs: usize,
    /// The subprotocol the router answered.
    protocol: Option<String>,
}

/// An upgraded connection, its local address and the subprotocol the
/// router answered.
type Upgraded = (WebSocketStream<Box<dyn Io>>, SocketAddr, Option<String>);

/// Open a TCP (and, for wss, TLS) connection to `addr` and upgrade it,
/// offering `subprotocol` when given. The error is the upgrade's.
fn connect(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    kind: Kind,
    ca: &Ca,
    subprotocol: Option<&str>,
) -> Result<Upgraded, WsError> {
    let scheme = if kind == Kind::Wss { "wss" } else { "ws" };
    let mut req = format!("{scheme}://{addr}/")
        .into_client_request()
        .expect("request");
    if let Some(p) = subprotocol {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(p).expect("header"),
        );
    }
    rt.block_on(async {
        let tcp = TcpStream::connect(addr).await?;
        let local = tcp.local_addr()?;
        let io: Box<dyn Io> = match kind {
            Kind::Ws => Box::new(tcp),
            Kind::Wss => {
                let name = ServerName::try_from("127.0.0.1").expect("name");
                Box::new(
                    TlsConnector::from(ca.client_config())
                        .connect(name, tcp)
                        .await?,
                )
            }
        };
        let (ws, resp) = tokio::time::timeout(RECV, tokio_tungstenite::client_async(req, io))
            .await
            .map_err(|_| WsError::Io(io::Error::other("upgrade timed out")))??;
        let protocol = resp
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((ws, local, protocol))
    })
}

impl WsUa {
    fn connect(router: &Router, kind: Kind, ca: &Ca, user: &str) -> WsUa {
        let addr = match kind {
            Kind::Ws => router.ws_addr(),
            Kind::Wss => router.wss_addr(),
        };
        let rt = runtime();
        let (ws, local, protocol) = connect(&rt, addr, kind, ca, Some("sip"))
            .unwrap_or_else(|e| panic!("{kind:?} upgrade refused: {e}\n{}", router.log()));
        WsUa {
            rt,
            ws,
            local,
            kind,
            user: user.into(),
            pongs: 0,
            protocol,
        }
    }

    /// The Via transport of this client (RFC 7118 §5.2).
    fn via_transport(&self) -> &'static str {
        match self.kind {
            Kind::Ws => "WS",
            Kind::Wss => "WSS",
        }
    }

    /// A request as JsSIP writes it: a random `.invalid` host in Via and
    /// Contact, `transport=ws` (for WSS too).
    fn request(&self, method: &str, ruri: &str) -> RequestBuilder {
        RequestBuilder::new(method, ruri, self.local, &self.user)
            .transport(self.via_transport())
            .via_sent_by("df7jal23ls0d.invalid")
            .contact(Some(&format!(
                "sip:{}@df7jal23ls0d.invalid;transport=ws",
                self.user
            )))
    }

    /// One SIP message in one text frame; false when the connection is gone.
    fn send(&mut self, bytes: &[u8]) -> bool {
        let text = String::from_utf8(bytes.to_vec()).expect("SIP text");
        let ws = &mut self.ws;
        self.rt
            .block_on(async { ws.send(Frame::text(text)).await.is_ok() })
    }

    fn ping(&mut self) -> bool {
        let ws = &mut self.ws;
        self.rt.block_on(async {
            ws.send(Frame::Ping(Bytes::from_static(b"wisp")))
                .await
                .is_ok()
        })
    }

    /// The next SIP message within `timeout`: each frame is one whole
    /// message. None on timeout, close or error.
    fn recv_msg(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let ws = &mut self.ws;
            let frame = self
                .rt
                .block_on(async { tokio::time::timeout(left, ws.next()).await })
                .ok()??
                .ok()?;
            let data = match frame {
                Frame::Text(t) => Bytes::from(t),
                Frame::Binary(b) => b,
                Frame::Pong(_) => {
                    self.pongs += 1;
                    continue;
                }
                Frame::Close(_) => return None,
                _ => continue,
            };
            return Some(Message::parse(data).expect("one whole SIP message per frame"));
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

    /// REGISTER this client's `.invalid` Contact; returns the 200.
    fn register(&mut self, router: &Router) -> Message {
        let ruri = router.uri();
        let reg = self
            .request("REGISTER", &ruri)
            .from(&router.aor(&self.user))
            .to(&router.aor(&self.user))
            .expires(3600);
        let fin = self
            .transact(&reg, RECV)
            .unwrap_or_else(|| panic!("no response to REGISTER over {:?}", self.kind));
        assert_eq!(fin.status(), Some(200), "{}", text(&fin));
        fin
    }
}

fn header_values(m: &Message, name: &str) -> Vec<String> {
    m.header_values(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

// ---------------------------------------------------------------- tests

#[test]
fn register_and_options_over_ws_and_wss_with_ping_pong() {
    let ca = Ca::new("Wisp WS test CA");
    let dir = TempDir::new();
    let router = ws_router(&ca, &dir);
    for (kind, user, proto) in [(Kind::Ws, "wsuser", "ws"), (Kind::Wss, "wssuser", "wss")] {
        let mut ua = WsUa::connect(&router, kind, &ca, user);
        assert_eq!(
            ua.protocol.as_deref(),
            Some("sip"),
            "the router answers the sip subprotocol"
        );
        let fin = ua.register(&router);
        assert!(
            header_values(&fin, "Contact")
                .iter()
                .any(|c| c.contains("df7jal23ls0d.invalid")),
            "the 200 lists the .invalid Contact:\n{}",
            text(&fin)
        );
        // The binding is reached over this connection: its source is kept
        // as a WebSocket one.
        let shown = router.ctl_ok(&["ul", "show", user]);
        assert!(
            shown.contains(&format!("received=sip:{};transport={proto}", ua.local)),
            "{kind:?}: {shown}"
        );

        let opt = ua
            .request("OPTIONS", &format!("sip:{}", router.udp_addr()))
            .cseq(2);
        let fin = ua
            .transact(&opt, RECV)
            .unwrap_or_else(|| panic!("no response to OPTIONS over {kind:?}"));
        assert_eq!(fin.status(), Some(200), "{}", text(&fin));
        let v = vias(&fin);
        assert_eq!(v.len(), 1, "{}", text(&fin));
        assert_eq!(v[0].transport, ua.via_transport());
        assert_eq!(v[0].branch(), Some(opt.branch.as_str()));

        // A ping is answered with a pong, and the connection keeps serving.
        assert!(ua.ping());
        let again = ua.request("OPTIONS", &format!("sip:{}", router.udp_addr()));
        assert_eq!(
            ua.transact(&again, RECV).and_then(|m| m.status()),
            Some(200)
        );
        assert_eq!(ua.pongs, 1, "one pong for one ping");
    }
}

#[test]
fn an_upgrade_without_the_sip_subprotocol_is_refused() {
    let ca = Ca::new("Wisp WS test CA");
    let dir = TempDir::new();
    let router = ws_router(&ca, &dir);
    let rt = runtime();
    for kind in [Kind::Ws, Kind::Wss] {
        let addr = match kind {
            Kind::Ws => router.ws_addr(),
            Kind::Wss => router.wss_addr(),
        };
        for offered in [None, Some("chat, xmpp")] {
            match connect(&rt, addr, kind, &ca, offered) {
                Err(WsError::Http(resp)) => assert_eq!(
                    resp.status().as_u16(),
                    400,
                    "{kind:?} {offered:?}: refused with 400"
                ),
                Err(e) => panic!("{kind:?} {offered:?}: refused, but not by HTTP: {e}"),
                Ok(_) => panic!("{kind:?} {offered:?}: upgrade without sip accepted"),
            }
        }
        // Offered among others, sip is chosen.
        let (_, _, protocol) =
            connect(&rt, addr, kind, &ca, Some("chat, sip")).expect("sip among others");
        assert_eq!(protocol.as_deref(), Some("sip"));
    }
}

/// The WebRTC picture: a browser on WSS calls a UDP phone, and the phone
/// hangs up. The router runs the `nat` plugin (Kamailio's `WITH_NAT`
/// config): the browser's Via names a `.invalid` host, so its INVITE's
/// Contact gets an `alias` of its connection, which the BYE's Request-URI
/// carries back (`handle_ruri_alias`), as Kamailio's WebSocket examples do.
#[test]
fn a_call_from_a_wss_client_to_a_udp_phone_and_back() {
    let ca = Ca::new("Wisp WS test CA");
    let dir = TempDir::new();
    let router = ws_router_with(&ca, &dir, |m| m.plugin_file(&plugin_path("nat")));
    let bob = TestUa::new("bob");
    bob.register(&router);
    let mut alice = WsUa::connect(&router, Kind::Wss, &ca, "alice");
    alice.register(&router);

    // alice (WSS) calls bob (UDP).
    let inv = alice
        .request("INVITE", &router.aor("bob"))
        .from(&router.aor("alice"));
    assert!(alice.send(&inv.build()));
    let (req, src) = bob
        .recv_request(RECV)
        .expect("the INVITE from the WSS client reached the UDP phone");
    let v = vias(&req);
    assert_eq!(
        (v.len(), v[0].transport.as_str(), v[1].transport.as_str()),
        (2, "UDP", "WSS"),
        "{}",
        text(&req)
    );
    // WSS in, UDP out: two Record-Routes, the top one facing the callee
    // (UDP), the next one the caller (WSS).
    assert_eq!(
        header_values(&req, "Record-Route"),
        [
            format!("<sip:{};lr>", router.udp_addr()),
            format!("<sip:{};transport=wss;lr>", router.wss_addr()),
        ],
        "{}",
        text(&req)
    );
    bob.reply(&req, src, 200, "OK", "bobtag");
    let ok = loop {
        let m = alice
            .recv_msg(RECV)
            .expect("the 200 came back over the WSS connection");
        if m.status() != Some(100) {
            break m;
        }
    };
    assert_eq!(ok.status(), Some(200), "{}", text(&ok));
    assert_eq!(vias(&ok).len(), 1, "{}", text(&ok));

    // bob hangs up: Request-URI the .invalid Contact, Route set the
    // Record-Routes in order (RFC 3261 §12.1.1). Only alice's connection
    // reaches her.
    let contact = header_values(&req, "Contact")
        .first()
        .map(|c| c.trim_matches(['<', '>']).to_owned())
        .expect("the INVITE has a Contact");
    let rr = header_values(&req, "Record-Route");
    let bye = bob
        .request("BYE", &contact)
        .from(&router.aor("bob"))
        .to(&router.aor("alice"))
        .call_id(&inv.call_id)
        .header("Route", &rr.join(", "));
    bob.send_to(router.udp_addr(), &bye.build());
    let got = alice
        .recv_msg(RECV)
        .unwrap_or_else(|| panic!("the BYE reached the WSS client\n{}", router.log()));
    assert_eq!(got.method(), Some(&wisp_sip::Method::Bye), "{}", text(&got));
    let v = vias(&got);
    assert_eq!(v[0].transport, "WSS", "{}", text(&got));
    assert!(
        got.header_values("Route").next().is_none(),
        "both of our Routes were consumed:\n{}",
        text(&got)
    );
    // alice answers; the 200 reaches bob.
    let resp = wisp_sip::build_reply(&got, 200, "OK", &wisp_sip::ReplyOptions::default())
        .expect("reply to BYE");
    assert!(alice.send(&resp));
    let (fin, _) = bob
        .recv_response_for(&bye.call_id, RECV)
        .expect("alice's 200 to the BYE reached bob");
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
}

#[test]
fn a_udp_phone_calls_a_registered_ws_client_over_its_connection() {
    let ca = Ca::new("Wisp WS test CA");
    let dir = TempDir::new();
    let router = ws_router(&ca, &dir);
    let mut alice = WsUa::connect(&router, Kind::Ws, &ca, "alice");
    alice.register(&router);
    let bob = TestUa::new("bob");
    let inv = bob.request("INVITE", &router.aor("alice"));
    bob.send_to(router.udp_addr(), &inv.build());
    let got = alice
        .recv_msg(RECV)
        .unwrap_or_else(|| panic!("lookup reached the WS client\n{}", router.log()));
    assert_eq!(
        got.method(),
        Some(&wisp_sip::Method::Invite),
        "{}",
        text(&got)
    );
    assert!(
        String::from_utf8_lossy(&got.request_uri_raw()).contains(".invalid"),
        "the Request-URI is the registered Contact:\n{}",
        text(&got)
    );
    assert_eq!(vias(&got)[0].transport, "WS", "{}", text(&got));
    // Its answer goes back to bob.
    let resp = wisp_sip::build_reply(
        &got,
        486,
        "Busy Here",
        &wisp_sip::ReplyOptions {
            to_tag: Some("alicetag"),
            ..Default::default()
        },
    )
    .expect("reply");
    assert!(alice.send(&resp));
    let fin = loop {
        let (m, _) = bob
            .recv_response_for(&inv.call_id, RECV)
            .expect("the WS client's answer reached the UDP phone");
        if m.status() != Some(100) {
            break m;
        }
    };
    assert_eq!(fin.status(), Some(486), "{}", text(&fin));
}

impl WsUa {
    /// Close the connection as a browser tab does.
    fn close(mut self) {
        let ws = &mut self.ws;
        self.rt.block_on(async {
            let _ = ws.close(None).await;
        });
    }
}

/// Whether `ul show` lists a binding of `user` within RECV.
fn bound_within(router: &Router, user: &str, want: bool) -> bool {
    let deadline = Instant::now() + RECV;
    loop {
        let out = router.ctl(&["ul", "show", user]);
        let has = out.stdout.contains(&format!("sip:{user}@"));
        if has == want {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kamailio's `handle_lost_tcp`: a binding only reachable through a
/// connection goes with it; another client's stays.
#[test]
fn a_closed_connection_takes_the_bindings_registered_over_it() {
    let ca = Ca::new("Wisp WS test CA");
    let dir = TempDir::new();
    let router = ws_router(&ca, &dir);
    let mut alice = WsUa::connect(&router, Kind::Wss, &ca, "alice");
    alice.register(&router);
    let mut carol = WsUa::connect(&router, Kind::Ws, &ca, "carol");
    carol.register(&router);
    assert!(bound_within(&router, "alice", true));
    alice.close();
    assert!(
        bound_within(&router, "alice", false),
        "alice's binding went with her connection\n{}",
        router.log()
    );
    assert!(
        bound_within(&router, "carol", true),
        "carol's connection is open: her binding stays"
    );
    drop(carol);
    assert!(bound_within(&router, "carol", false));
}

/// The same for a TCP client behind NAT (`fix_nated_register` in the `nat`
/// plugin stores its connection as `received`).
#[test]
fn a_lost_tcp_connection_takes_its_nated_binding() {
    let router = Router::start_with(|m| m.plugin_file(&plugin_path("nat")));
    let mut ua = TcpUa::connect(router.tcp_addr(), "dave");
    let reg = ua
        .request("REGISTER", &router.uri())
        .from(&router.aor("dave"))
        .to(&router.aor("dave"))
        .via_sent_by("192.168.1.20:5060")
        .contact(Some("sip:dave@192.168.1.20:5060;transport=tcp"))
        .expires(3600);
    ua.send(&reg.build());
    let fin = ua.recv_msg(RECV).expect("a response to REGISTER over TCP");
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
    let shown = router.ctl_ok(&["ul", "show", "dave"]);
    assert!(shown.contains("received="), "{shown}");
    drop(ua);
    assert!(
        bound_within(&router, "dave", false),
        "the binding went with the connection\n{}",
        router.log()
    );
}

/// WebSocket connections are under the `[tcp]` limits: a source over
/// `max_connections_per_ip` has its newcomer closed, an upgrade not
/// finished within `message_timeout_ms` is closed, and the connections
/// already open keep being served.
#[test]
fn websocket_connections_are_under_the_tcp_limits() {
    let ca = Ca::new("Wisp WS test CA");
    let dir = TempDir::new();
    let router = ws_router_with(&ca, &dir, |mut m| {
        m.extra
            .push_str("\n[tcp]\nmax_connections_per_ip = 2\nmessage_timeout_ms = 500\n");
        m
    });
    let mut first = WsUa::connect(&router, Kind::Ws, &ca, "u1");
    // A connection that never sends its upgrade holds the second place
    // until the handshake deadline closes it (same listener: accepted in
    // order, before the third).
    let mut silent = std::net::TcpStream::connect(router.ws_addr()).expect("connect");
    let rt = runtime();
    assert!(
        connect(&rt, router.ws_addr(), Kind::Ws, &ca, Some("sip")).is_err(),
        "a third connection from 127.0.0.1 is refused with max_connections_per_ip = 2"
    );
    router.wait_for_log("the per-address limit", RECV, |log| {
        log.contains("ws: address at max_connections_per_ip (2): newcomer closed")
    });
    silent.set_read_timeout(Some(RECV)).expect("read timeout");
    let mut buf = [0u8; 16];
    let started = Instant::now();
    let n = std::io::Read::read(&mut silent, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the silent connection is closed, not answered");
    assert!(
        started.elapsed() < RECV,
        "closed by the handshake deadline, not by the test's timeout"
    );
    // Its place is free again, and the first connection still serves.
    let mut second = WsUa::connect(&router, Kind::Ws, &ca, "u2");
    for ua in [&mut first, &mut second] {
        let opt = ua.request("OPTIONS", &format!("sip:{}", router.udp_addr()));
        assert_eq!(ua.transact(&opt, RECV).and_then(|m| m.status()), Some(200));
    }
}
