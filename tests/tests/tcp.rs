//! TCP transport: requests and responses on the same connection, and the
//! `[tcp]` limits: a slow or idle client costs a connection slot only for
//! as long as the manifest allows.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use wisp_e2e::*;

#[test]
fn options_over_tcp_gets_200_on_same_connection() {
    let router = Router::start();
    let mut ua = TcpUa::connect(router.tcp_addr(), "alice");
    let opt = ua.request("OPTIONS", &router.tcp_uri());
    let fin = ua
        .transact(&opt, RECV)
        .expect("no response on the TCP connection");
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
    let v = vias(&fin);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].branch(), Some(opt.branch.as_str()));
    assert_eq!(v[0].transport, "TCP");
    // The connection stays usable for a second request.
    let opt2 = ua.request("OPTIONS", &router.tcp_uri()).cseq(2);
    let fin2 = ua
        .transact(&opt2, RECV)
        .expect("no response to a second request on the same TCP connection");
    assert_eq!(fin2.status(), Some(200), "{}", text(&fin2));
}

#[test]
fn register_over_tcp() {
    let router = Router::start();
    let mut ua = TcpUa::connect(router.tcp_addr(), "carol");
    let reg = ua
        .request("REGISTER", &router.tcp_uri())
        .from(&router.aor("carol"))
        .to(&router.aor("carol"))
        .expires(3600);
    let fin = ua
        .transact(&reg, RECV)
        .expect("no response to REGISTER over TCP");
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
    let contacts: Vec<String> = fin
        .header_values("Contact")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let local = ua.local_addr().to_string();
    assert!(
        contacts.iter().any(|c| c.contains(&local)),
        "200 must list the binding with {local}:\n{}",
        text(&fin)
    );
}

/// Two messages written in one TCP segment are both answered.
#[test]
fn two_requests_in_one_tcp_write() {
    let router = Router::start();
    let mut ua = TcpUa::connect(router.tcp_addr(), "alice");
    let o1 = ua.request("OPTIONS", &router.tcp_uri());
    let o2 = ua.request("OPTIONS", &router.tcp_uri()).cseq(2);
    let mut both = o1.build().to_vec();
    both.extend_from_slice(&o2.build());
    ua.send(&both);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let m = ua
            .recv_msg(RECV)
            .expect("missing response to a pipelined TCP request");
        assert_eq!(m.status(), Some(200), "{}", text(&m));
        seen.push(call_id_of(&m).unwrap());
    }
    seen.sort();
    let mut want = vec![o1.call_id.clone(), o2.call_id.clone()];
    want.sort();
    assert_eq!(seen, want);
}

/// A TCP caller reaches a UDP-registered callee; the responses come back
/// on the caller's TCP connection.
#[test]
fn tcp_caller_to_udp_callee() {
    let router = Router::start();
    let b = TestUa::new("bob");
    b.register(&router);
    let mut a = TcpUa::connect(router.tcp_addr(), "alice");
    let inv = a.request("INVITE", &router.aor("bob"));
    a.send(&inv.build());
    let (req, src) = b
        .recv_request(RECV)
        .expect("INVITE from the TCP caller did not reach the UDP callee");
    let vs = vias(&req);
    assert_eq!(vs.len(), 2, "{}", text(&req));
    assert_eq!(
        vs[0].transport,
        "UDP",
        "Wisp's Via must name the outgoing transport:\n{}",
        text(&req)
    );
    assert_eq!(vs[0].port, Some(router.udp_port()));
    assert_eq!(vs[1].transport, "TCP");
    assert_eq!(vs[1].branch(), Some(inv.branch.as_str()));
    // B answers over UDP, where back-to-back datagrams may be handled by two
    // receive workers and overtake each other: ring first, then answer.
    let trying = a
        .recv_msg(RECV)
        .expect("no 100 Trying on the caller's TCP connection");
    assert_eq!(trying.status(), Some(100), "{}", text(&trying));
    b.reply(&req, src, 180, "Ringing", "bobtag");
    let r1 = a
        .recv_msg(RECV)
        .expect("180 did not come back on the caller's TCP connection");
    assert_eq!(r1.status(), Some(180), "{}", text(&r1));
    b.reply(&req, src, 200, "OK", "bobtag");
    let r2 = a
        .recv_msg(RECV)
        .expect("200 did not come back on the caller's TCP connection");
    assert_eq!(r2.status(), Some(200), "{}", text(&r2));
    let v = vias(&r2);
    assert_eq!(v.len(), 1, "{}", text(&r2));
    assert_eq!(v[0].branch(), Some(inv.branch.as_str()));
}

#[test]
fn crlf_keepalive_ping_gets_a_pong_and_the_connection_keeps_serving() {
    use std::io::Read;
    let router = Router::start();
    let mut ua = TcpUa::connect(router.tcp_addr(), "alice");
    // RFC 5626 §3.5.1: CRLFCRLF is a ping, CRLF the pong.
    ua.send(b"\r\n\r\n");
    ua.stream.set_read_timeout(Some(RECV)).expect("timeout");
    let mut pong = [0u8; 2];
    ua.stream
        .read_exact(&mut pong)
        .expect("a pong within the receive timeout");
    assert_eq!(&pong, b"\r\n");
    let opt = ua.request("OPTIONS", &router.tcp_uri());
    ua.send(&opt.build());
    let resp = ua.recv_msg(RECV).expect("OPTIONS after a ping is answered");
    assert_eq!(resp.status(), Some(200), "{}", text(&resp));
}

/// A router whose `[tcp]` section is `tcp` (TOML lines).
fn router_with_tcp(tcp: &str) -> Router {
    let tcp = tcp.to_owned();
    Router::start_with(move |mut m| {
        m.extra.push_str(&format!("[tcp]\n{tcp}\n"));
        m
    })
}

/// Whether the router has closed `stream`, without waiting: EOF or a reset
/// is closed, no data yet is open. Bytes it sent are discarded.
fn closed_now(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 1024];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    stream.set_nonblocking(false).expect("blocking");
    closed
}

/// Whether the router closes `stream` within `timeout`.
fn closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1024];
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// OPTIONS on `ua` is answered 200 (the connection serves).
fn served(ua: &mut TcpUa, router: &Router, what: &str) {
    let opt = ua.request("OPTIONS", &router.tcp_uri());
    let fin = ua
        .transact(&opt, RECV)
        .unwrap_or_else(|| panic!("{what}: no answer to OPTIONS over TCP\n{}", router.log()));
    assert_eq!(fin.status(), Some(200), "{what}: {}", text(&fin));
}

/// Issue 16: a client trickling a message a byte at a time used to hold
/// its connection forever (every byte restarted the idle timer). Now the
/// whole message is due `message_timeout_ms` after its first byte; a
/// merely idle connection is not affected, and new clients are served.
#[test]
fn slowloris_is_closed_by_the_message_deadline_while_others_are_served() {
    let router = router_with_tcp("message_timeout_ms = 1000");
    let mut idle = TcpUa::connect(router.tcp_addr(), "idle");
    let mut slow = TcpStream::connect(router.tcp_addr()).expect("connect");
    let local = slow.local_addr().expect("local address");
    let request = RequestBuilder::new("OPTIONS", &router.tcp_uri(), local, "slow")
        .transport("TCP")
        .build();
    // One byte every 200 ms: each arrives well within any idle timeout,
    // the message never completes. Bounded at 25 bytes (5 s).
    let start = Instant::now();
    let mut closed_after = None;
    for byte in request.iter().take(25) {
        if slow.write_all(&[*byte]).is_err() || closed_now(&mut slow) {
            closed_after = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let closed_after = closed_after.unwrap_or_else(|| {
        panic!(
            "a client trickling a byte every 200 ms was not closed in 5 s (message_timeout_ms = 1000)\n{}",
            router.log()
        )
    });
    assert!(
        closed_after >= Duration::from_millis(900),
        "closed after {closed_after:?}, before its message was due"
    );
    // A new client is served, and so is the connection that was only idle
    // all along (no message begun, no message deadline).
    let mut fresh = TcpUa::connect(router.tcp_addr(), "fresh");
    served(&mut fresh, &router, "a new client after the slowloris");
    served(
        &mut idle,
        &router,
        "an idle connection as old as the slowloris",
    );
}

/// A CRLFCRLF keepalive on `stream`, its CRLF pong read back.
fn ping(stream: &mut TcpStream) {
    stream.write_all(b"\r\n\r\n").expect("write");
    stream.set_read_timeout(Some(RECV)).expect("timeout");
    let mut pong = [0u8; 2];
    stream.read_exact(&mut pong).expect("a pong to a keepalive");
    assert_eq!(&pong, b"\r\n");
}

/// Issue 16: with `max_connections` idle connections open, every new
/// client used to be refused until they timed out. Now the newcomer is
/// accepted and the least recently active idle connection is closed.
#[test]
fn at_max_connections_the_oldest_idle_connection_makes_room() {
    const MAX: usize = 20;
    let router = router_with_tcp(&format!("max_connections = {MAX}"));
    // Fill the table with idle connections, each active once in turn (a
    // keepalive answered: it is accepted, and its last activity ordered),
    // then the first made to talk last so that the second is the least
    // recently active.
    let mut first = TcpUa::connect(router.tcp_addr(), "first");
    let mut idle: Vec<TcpStream> = (1..MAX)
        .map(|_| {
            let mut s = TcpStream::connect(router.tcp_addr()).expect("connect");
            ping(&mut s);
            s
        })
        .collect();
    served(&mut first, &router, "the first connection");
    let mut newcomer = TcpUa::connect(router.tcp_addr(), "newcomer");
    served(&mut newcomer, &router, "a newcomer at max_connections");
    assert!(
        closed_within(&mut idle[0], RECV),
        "the least recently active idle connection must be closed for the newcomer"
    );
    // One made room, not more: the others, and the first, stay open.
    for (i, s) in idle.iter_mut().enumerate().skip(1) {
        assert!(!closed_now(s), "idle connection {i} was closed too");
    }
    served(&mut first, &router, "the recently active first connection");
    router.wait_for_log("a limit line", RECV, |log| {
        log.contains("least recently active idle connection closed for a newcomer")
    });
}

/// A connection with a message in progress is not evicted: at the limit
/// with every connection busy, the newcomer is the one closed.
#[test]
fn at_max_connections_with_every_connection_busy_the_newcomer_is_closed() {
    let router = router_with_tcp("max_connections = 2");
    let mut busy: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(router.tcp_addr()).expect("connect");
            // A keepalive and the start of a message in one write: the pong
            // says the router has read the partial message too.
            s.write_all(b"\r\n\r\nOPTIONS sip:x SIP/2.0\r\n")
                .expect("write");
            s.set_read_timeout(Some(RECV)).expect("timeout");
            let mut pong = [0u8; 2];
            s.read_exact(&mut pong).expect("a pong to the keepalive");
            s
        })
        .collect();
    let mut newcomer = TcpStream::connect(router.tcp_addr()).expect("connect");
    assert!(
        closed_within(&mut newcomer, RECV),
        "the newcomer must be closed when no connection is idle"
    );
    for (i, s) in busy.iter_mut().enumerate() {
        assert!(!closed_now(s), "busy connection {i} was closed");
    }
}

/// `max_connections_per_ip`: the extra connection from an address at its
/// share is closed at once; the address's other connections keep working.
#[test]
fn over_max_connections_per_ip_the_extra_connection_is_closed() {
    let router = router_with_tcp("max_connections_per_ip = 3");
    let mut uas: Vec<TcpUa> = (0..3)
        .map(|i| TcpUa::connect(router.tcp_addr(), &format!("u{i}")))
        .collect();
    let mut extra = TcpStream::connect(router.tcp_addr()).expect("connect");
    assert!(
        closed_within(&mut extra, RECV),
        "a 4th connection from 127.0.0.1 must be closed with max_connections_per_ip = 3"
    );
    for (i, ua) in uas.iter_mut().enumerate() {
        served(ua, &router, &format!("connection {i} of the address"));
    }
    router.wait_for_log("a limit line", RECV, |log| {
        log.contains("at max_connections_per_ip (3): newcomer closed")
    });
}

/// RFC 5923 connection reuse: a client whose Via says `;alias` is reached
/// over its own connection at the Via's port when the manifest sets
/// `[tcp] accept_aliases` (Kamailio `tcp_accept_aliases`). Without it the
/// router opens a connection of its own to that port, which nobody
/// listens on here (as a NAT would not let it in): the call fails.
#[test]
fn via_alias_makes_the_connection_the_way_to_the_clients_port() {
    for accept in [true, false] {
        let router = router_with_tcp(&format!("accept_aliases = {accept}"));
        let mut alice = TcpUa::connect(router.tcp_addr(), "alice");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let sent_by = format!("127.0.0.1:{port}");
        let reg = alice
            .request("REGISTER", &router.tcp_uri())
            .from(&router.aor("alice"))
            .to(&router.aor("alice"))
            .expires(3600)
            .via_sent_by(&format!("{sent_by};alias"))
            .contact(Some(&format!("sip:alice@{sent_by};transport=tcp")));
        let fin = alice.transact(&reg, RECV).expect("REGISTER answered");
        assert_eq!(fin.status(), Some(200), "{}", text(&fin));

        let bob = TestUa::new("bob");
        let inv = bob.request("INVITE", &router.aor("alice"));
        bob.send_to(router.udp_addr(), &inv.build());
        let reached = alice.recv_msg(RECV);
        if accept {
            let req = reached.expect("the INVITE came over alice's connection");
            assert_eq!(
                req.method(),
                Some(&wisp_sip::Method::Invite),
                "{}",
                text(&req)
            );
            assert_eq!(
                String::from_utf8_lossy(&req.request_uri_raw()),
                format!("sip:alice@{sent_by};transport=tcp")
            );
        } else {
            assert!(
                reached.is_none(),
                "without accept_aliases nothing uses the connection"
            );
            let status = bob
                .recv_answer_for(&inv.call_id, RECV)
                .and_then(|(m, _)| m.status());
            assert!(
                status.is_some_and(|s| s >= 400),
                "bob's call fails, got {status:?}"
            );
        }
    }
}
