//! Error answers of the default plugin and robustness against bad input.

use std::time::Duration;

use wisp_e2e::*;

fn options_ok(router: &Router, ua: &TestUa) {
    let opt = ua.request("OPTIONS", &router.uri());
    let (_, fin) = ua.transact(router.udp_addr(), &opt, RECV);
    let fin = fin.expect("router stopped answering OPTIONS");
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
}

#[test]
fn unknown_user_gets_404() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let inv = a.request("INVITE", &router.aor("nobody"));
    let (_, fin) = a.transact(router.udp_addr(), &inv, RECV);
    let fin = fin.expect("no answer to INVITE for an unknown user");
    assert_eq!(fin.status(), Some(404), "{}", text(&fin));
    assert!(
        to_tag(&fin).is_some(),
        "a final response must carry a To tag:\n{}",
        text(&fin)
    );
    let v = vias(&fin);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].branch(), Some(inv.branch.as_str()));
}

#[test]
fn max_forwards_zero_gets_483() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let inv = a
        .request("INVITE", &router.aor("bob"))
        .max_forwards(Some(0));
    let (_, fin) = a.transact(router.udp_addr(), &inv, RECV);
    let fin = fin.expect("no answer to Max-Forwards: 0");
    assert_eq!(fin.status(), Some(483), "{}", text(&fin));
    let line = String::from_utf8_lossy(fin.raw())
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    assert!(line.contains("Too Many Hops"), "reason phrase: {line}");
}

#[test]
fn message_of_9000_bytes_gets_513() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let base = a.request("INVITE", &router.aor("bob"));
    let len0 = base.clone().header("X-Pad", "").build().len();
    let req = base.header("X-Pad", &"x".repeat(9000 - len0));
    let bytes = req.build();
    assert_eq!(bytes.len(), 9000);
    a.send_to(router.udp_addr(), &bytes);
    let (fin, _) = a
        .recv_response_for(&req.call_id, RECV)
        .expect("no answer to a 9000-byte request");
    assert_eq!(fin.status(), Some(513), "{}", text(&fin));
    options_ok(&router, &a);
}

#[test]
fn garbage_is_dropped_and_router_keeps_answering() {
    let mut router = Router::start();
    let a = TestUa::new("alice");
    let garbage: Vec<&[u8]> = vec![
        b"\x00\x01\x02\x03garbage\r\n\r\n",
        b"hello world",
        b"\r\n\r\n",
        b"INVITE\r\n\r\n",
        b"SIP/2.0 200\r\n\r\n",
        b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nContent-Length: 99999\r\n\r\nx",
        &[0xff; 1500],
    ];
    for g in &garbage {
        a.send_to(router.udp_addr(), g);
    }
    let rnd: Vec<u8> = (0..4000).map(|_| rand::random::<u8>()).collect();
    a.send_to(router.udp_addr(), &rnd);
    // Nothing may come back for the garbage: the first message A gets must be the 200 to this OPTIONS.
    let opt = a.request("OPTIONS", &router.uri());
    a.send_to(router.udp_addr(), &opt.build());
    let (m, _) = a
        .recv_msg(RECV)
        .expect("router stopped answering after garbage");
    assert_eq!(
        call_id_of(&m).as_deref(),
        Some(opt.call_id.as_str()),
        "unexpected message:\n{}",
        text(&m)
    );
    assert_eq!(m.status(), Some(200), "{}", text(&m));
    router.assert_alive();
}

/// Datagrams sent back to back reach the router together and are taken in
/// bursts; every answer of a burst must still go to its own sender, and a
/// datagram dropped inside the burst (garbage, oversize) must not cost the
/// others theirs.
#[test]
fn back_to_back_requests_are_each_answered_to_their_sender() {
    let router = Router::start_with(|m| m.set("server", "max_message_size", "2048"));
    let uas: Vec<TestUa> = (0..4).map(|i| TestUa::new(&format!("ua{i}"))).collect();
    let mut sent: Vec<Vec<String>> = vec![Vec::new(); uas.len()];
    for round in 0..10 {
        for (ua, ids) in uas.iter().zip(&mut sent) {
            let opt = ua.request("OPTIONS", &router.uri());
            ua.send_to(router.udp_addr(), &opt.build());
            ids.push(opt.call_id.clone());
        }
        if round == 4 {
            uas[0].send_to(router.udp_addr(), b"hello world");
            let big = uas[1].request("OPTIONS", &router.uri());
            let pad = "x".repeat(3000);
            uas[1].send_to(router.udp_addr(), &big.header("X-Pad", &pad).build());
        }
    }
    for (ua, ids) in uas.iter().zip(&sent) {
        let mut answered = Vec::new();
        while answered.len() < ids.len() {
            let (m, from) = ua
                .recv_msg(RECV)
                .unwrap_or_else(|| panic!("{}: answers so far {answered:?} of {ids:?}", ua.user));
            assert_eq!(from, router.udp_addr());
            assert_eq!(m.status(), Some(200), "{}", text(&m));
            answered.push(call_id_of(&m).expect("Call-ID"));
        }
        answered.sort();
        let mut expected = ids.clone();
        expected.sort();
        assert_eq!(
            answered, expected,
            "{} got answers meant for others",
            ua.user
        );
        assert!(
            ua.recv(Duration::from_millis(200)).is_none(),
            "{}: an extra datagram",
            ua.user
        );
    }
}

fn expect_400_then_alive(router: &mut Router, a: &TestUa, req: RequestBuilder) {
    let (_, fin) = a.transact(router.udp_addr(), &req, RECV);
    let fin = fin.unwrap_or_else(|| {
        panic!(
            "no 400 to a malformed request:\n{}",
            String::from_utf8_lossy(&req.build())
        )
    });
    assert_eq!(fin.status(), Some(400), "{}", text(&fin));
    router.assert_alive();
    options_ok(router, a);
}

#[test]
fn broken_cseq_gets_400() {
    let mut router = Router::start();
    let a = TestUa::new("alice");
    let req = a
        .request("OPTIONS", &router.aor("bob"))
        .cseq_raw("abc OPTIONS");
    expect_400_then_alive(&mut router, &a, req);
}

#[test]
fn malformed_request_uri_gets_400() {
    let mut router = Router::start();
    let a = TestUa::new("alice");
    let req = a.request("INVITE", "sip:bob@[::1").to(&router.aor("bob"));
    expect_400_then_alive(&mut router, &a, req);
}

#[test]
fn retransmitted_options_gets_same_to_tag() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let opt = a.request("OPTIONS", &router.uri()).build();
    let call_id = String::from_utf8_lossy(&opt)
        .lines()
        .find_map(|l| l.strip_prefix("Call-ID: ").map(str::to_string))
        .unwrap();
    a.send_to(router.udp_addr(), &opt);
    let (r1, _) = a
        .recv_response_for(&call_id, RECV)
        .expect("no answer to OPTIONS");
    a.send_to(router.udp_addr(), &opt);
    let (r2, _) = a
        .recv_response_for(&call_id, RECV)
        .expect("no answer to retransmitted OPTIONS");
    assert_eq!(r1.status(), Some(200), "{}", text(&r1));
    assert_eq!(r2.status(), Some(200), "{}", text(&r2));
    let t1 = to_tag(&r1).unwrap_or_else(|| panic!("200 without To tag:\n{}", text(&r1)));
    let t2 = to_tag(&r2).unwrap_or_else(|| panic!("200 without To tag:\n{}", text(&r2)));
    assert_eq!(t1, t2, "a retransmission must get the same To tag");
}

/// `server.server_header` (Kamailio `server_header`): the default names
/// Wisp, an operator's value replaces it, `""` leaves it out (svmap then
/// learns nothing from a reply).
#[test]
fn the_server_header_is_the_manifests_and_empty_hides_it() {
    let a = TestUa::new("alice");
    let server_of = |router: &Router, method: &str| {
        let req = a.request(method, &router.aor("nobody"));
        let (_, fin) = a.transact(router.udp_addr(), &req, RECV);
        let fin = fin.expect("an answer");
        assert_eq!(fin.status(), Some(404), "{}", text(&fin));
        header_str(&fin, "Server")
    };
    let default = Router::start();
    for method in ["OPTIONS", "INVITE"] {
        let s = server_of(&default, method).expect("a Server header by default");
        assert!(s.starts_with("Wisp/"), "{s}");
    }
    let named = Router::start_with(|m| m.set("server", "server_header", "\"Edge SBC 2\""));
    assert_eq!(server_of(&named, "OPTIONS").as_deref(), Some("Edge SBC 2"));
    let hidden = Router::start_with(|m| m.set("server", "server_header", "\"\""));
    for method in ["OPTIONS", "INVITE"] {
        assert_eq!(server_of(&hidden, method), None, "{method}");
    }
}

/// Issue 16: a flood of bad messages writes a few log lines per 10 s and
/// a count of the rest, not a line per message: 3,000 requests with a
/// broken CSeq (each answered 400) and 3,000 datagrams of garbage.
#[test]
fn a_flood_of_bad_messages_writes_a_bounded_log() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let before = router.log().lines().count();
    for i in 0..3000 {
        let bad = a
            .request("OPTIONS", &router.aor("bob"))
            .cseq_raw("abc OPTIONS")
            .build();
        a.send_to(router.udp_addr(), &bad);
        a.send_to(router.udp_addr(), format!("garbage {i}\r\n\r\n").as_bytes());
        if i % 100 == 99 {
            // Paced a little, so the socket drops none of the flood.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // The router has seen the flood once it answers again.
    options_ok(&router, &a);
    let log = router.log();
    let flood_lines = log.lines().skip(before).count();
    assert!(
        flood_lines <= 20,
        "{flood_lines} log lines for 6,000 bad messages:\n{}",
        log.lines()
            .skip(before)
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(log.contains("400"), "the first of them are still logged");
}
