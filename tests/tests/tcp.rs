//! TCP transport: requests and responses on the same connection.

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
