//! Stateful proxying through the real binary (RFC 3261 §16/§17, Kamailio
//! `tm`): retransmission absorption, parallel forking with CANCEL of the
//! losing branch, the caller's CANCEL, failure routes on a busy callee and on
//! `fr_inv_timer`, and hop-by-hop ACKs.

use std::time::{Duration, Instant};

use wisp_e2e::{Manifest, Router, TestUa, plugin_path, text};
use wisp_sip::{Message, Method};

const RECV: Duration = Duration::from_secs(3);

/// The SER forward-on-unavailable plugin with its three destinations.
fn forward_on_unavailable(
    first: &TestUa,
    second: &TestUa,
    last: &TestUa,
) -> impl Fn(Manifest) -> Manifest {
    let (f, s, l) = (first.contact(), second.contact(), last.contact());
    move |m: Manifest| {
        m.plugin_file(&plugin_path("forward_on_unavailable"))
            .set("plugin", "name", "\"forward-on-unavailable\"")
            .set("params", "first", &format!("\"{f}\""))
            .set("params", "second", &format!("\"{s}\""))
            .set("params", "last", &format!("\"{l}\""))
    }
}

/// Requests of `method` that arrive at `ua` within `within`, answering none.
fn collect(ua: &TestUa, method: Method, within: Duration) -> Vec<Message> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while let Some((m, _)) = ua.recv_msg(deadline.saturating_duration_since(Instant::now())) {
        if m.method() == Some(&method) {
            got.push(m);
        }
    }
    got
}

#[test]
fn retransmitted_invites_reach_neither_the_plugin_nor_the_callee_twice() {
    let a = TestUa::new("alice");
    let b = TestUa::new("bob");
    let spare = TestUa::new("spare");
    let router = Router::start_with(forward_on_unavailable(&b, &spare, &spare));
    let inv = a.request("INVITE", &router.aor("bob"));
    let bytes = inv.build();
    a.send_to(router.udp_addr(), &bytes);
    let (req, src) = b.expect_request(Method::Invite);
    b.reply(&req, src, 180, "Ringing", "bobtag");
    // The caller retransmits, as it would over UDP before seeing a reply.
    for _ in 0..3 {
        a.send_to(router.udp_addr(), &bytes);
    }
    // Each retransmission is answered from the transaction (100, then the 180).
    let mut answers = Vec::new();
    while let Some((r, _)) = a.recv_response_for(&inv.call_id, Duration::from_millis(700)) {
        answers.push(r.status().unwrap_or(0));
    }
    assert!(answers.len() >= 4, "one answer per INVITE: {answers:?}");
    assert!(answers.contains(&180), "{answers:?}");
    let extra = collect(&b, Method::Invite, Duration::from_millis(300));
    assert!(
        extra.is_empty(),
        "callee got the INVITE again:\n{}",
        text(&extra[0])
    );
    let runs = router
        .log()
        .matches(&format!("route INVITE {}", inv.call_id))
        .count();
    assert_eq!(runs, 1, "the plugin ran {runs} times:\n{}", router.log());
}

#[test]
fn busy_first_destination_enters_failure_route_which_tries_the_second() {
    let a = TestUa::new("alice");
    let b1 = TestUa::new("busy");
    let b2 = TestUa::new("second");
    let last = TestUa::new("last");
    let router = Router::start_with(forward_on_unavailable(&b1, &b2, &last));
    let inv = a.request("INVITE", &router.aor("bob"));
    a.send_to(router.udp_addr(), &inv.build());

    let (req1, src1) = b1.expect_request(Method::Invite);
    assert_eq!(&req1.request_uri_raw()[..], b1.contact().as_bytes());
    b1.reply(&req1, src1, 486, "Busy Here", "b1tag");
    // The proxy ACKs the 486 itself (hop by hop, RFC 3261 §17.1.1.3).
    let (ack, _) = b1.expect_request(Method::Ack);
    assert_eq!(ack.to().expect("To").tag(), Some("b1tag"), "{}", text(&ack));
    assert_eq!(
        ack.vias().expect("Via")[0].branch(),
        req1.vias().expect("Via")[0].branch(),
        "the ACK of a non-2xx shares the INVITE's branch"
    );

    // failure_route[1]: the second destination, same call.
    let (req2, src2) = b2.expect_request(Method::Invite);
    assert_eq!(&req2.request_uri_raw()[..], b2.contact().as_bytes());
    assert_eq!(
        req2.call_id().expect("Call-ID"),
        req1.call_id().expect("Call-ID")
    );
    assert_ne!(
        req2.vias().expect("Via")[0].branch(),
        req1.vias().expect("Via")[0].branch(),
        "a new branch for the new destination"
    );
    b2.reply(&req2, src2, 200, "OK", "b2tag");
    let (resp, _) = a
        .recv_answer_for(&inv.call_id, RECV)
        .expect("no answer reached the caller");
    assert_eq!(
        resp.status(),
        Some(200),
        "the 486 must not reach the caller:\n{}",
        text(&resp)
    );
    assert!(router.log().contains("first redirection"));
}

#[test]
fn both_failure_routes_then_the_best_response_goes_upstream() {
    let a = TestUa::new("alice");
    let b1 = TestUa::new("one");
    let b2 = TestUa::new("two");
    let b3 = TestUa::new("three");
    let router = Router::start_with(forward_on_unavailable(&b1, &b2, &b3));
    let inv = a.request("INVITE", &router.aor("bob"));
    a.send_to(router.udp_addr(), &inv.build());
    for (ua, code, reason) in [
        (&b1, 503, "Service Unavailable"),
        (&b2, 486, "Busy Here"),
        (&b3, 603, "Decline"),
    ] {
        let (req, src) = ua.expect_request(Method::Invite);
        ua.reply(&req, src, code, reason, "t");
    }
    let (resp, _) = a
        .recv_answer_for(&inv.call_id, RECV)
        .expect("no final response reached the caller");
    // §16.7: a 6xx beats every other class.
    assert_eq!(resp.status(), Some(603), "{}", text(&resp));
    assert!(router.log().contains("second redirection"));
    // The caller's ACK for the 603 is absorbed by the proxy.
    let ack = a
        .request("ACK", &router.aor("bob"))
        .call_id(&inv.call_id)
        .branch(&inv.branch);
    a.send_to(router.udp_addr(), &ack.build());
    for ua in [&b1, &b2, &b3] {
        let acks = collect(ua, Method::Ack, Duration::from_millis(200));
        assert!(
            acks.iter()
                .all(|m| m.to().ok().and_then(|t| t.tag().map(str::to_owned)) == Some("t".into())),
            "only the proxy's own hop-by-hop ACKs reach the callees"
        );
    }
}

#[test]
fn no_answer_triggers_fr_inv_timer_cancel_and_the_failure_route() {
    let a = TestUa::new("alice");
    let b1 = TestUa::new("sleepy");
    let b2 = TestUa::new("second");
    let router = Router::start_with(|m| {
        let mut m = forward_on_unavailable(&b1, &b2, &b2)(m);
        m.extra.push_str("[tm]\nfr_inv_timer_ms = 1000\n");
        m
    });
    let inv = a.request("INVITE", &router.aor("bob"));
    a.send_to(router.udp_addr(), &inv.build());
    let (req1, src1) = b1.expect_request(Method::Invite);
    b1.reply(&req1, src1, 180, "Ringing", "b1tag");
    let rang = Instant::now();
    let (cancel, csrc) = b1.expect_request(Method::Cancel);
    let waited = rang.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500),
        "CANCEL after fr_inv_timer (1 s), came after {waited:?}"
    );
    assert_eq!(
        cancel.vias().expect("Via")[0].branch(),
        req1.vias().expect("Via")[0].branch(),
        "§9.1: the CANCEL matches the INVITE's branch"
    );
    b1.reply(&cancel, csrc, 200, "OK", "b1tag");
    b1.reply(&req1, src1, 487, "Request Terminated", "b1tag");
    let (req2, src2) = b2.expect_request(Method::Invite);
    b2.reply(&req2, src2, 200, "OK", "b2tag");
    let mut statuses = Vec::new();
    while let Some((r, _)) = a.recv_answer_for(&inv.call_id, RECV) {
        statuses.push(r.status().unwrap_or(0));
        if r.status() == Some(200) {
            break;
        }
    }
    assert_eq!(
        statuses,
        vec![180, 200],
        "the 487 of the canceled branch stays in the proxy"
    );
}

#[test]
fn parallel_fork_first_200_wins_and_the_other_branch_is_canceled() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let b1 = TestUa::new("bob");
    let b2 = TestUa::new("bob");
    b1.register(&router);
    b2.register(&router);
    let inv = a.request("INVITE", &router.aor("bob"));
    a.send_to(router.udp_addr(), &inv.build());
    let (r1, s1) = b1.expect_request(Method::Invite);
    let (r2, s2) = b2.expect_request(Method::Invite);
    b1.reply(&r1, s1, 180, "Ringing", "b1");
    b2.reply(&r2, s2, 180, "Ringing", "b2");
    // Both rang; b1 answers first.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let (r, _) = a
            .recv_answer_for(&inv.call_id, RECV)
            .expect("180s reach the caller");
        seen.push(r.status());
    }
    b1.reply(&r1, s1, 200, "OK", "b1");
    let (cancel, cs) = b2.expect_request(Method::Cancel);
    b2.reply(&cancel, cs, 200, "OK", "b2");
    b2.reply(&r2, s2, 487, "Request Terminated", "b2");
    let (ack, _) = b2.expect_request(Method::Ack);
    assert_eq!(ack.to().expect("To").tag(), Some("b2"));
    let (resp, _) = a
        .recv_answer_for(&inv.call_id, RECV)
        .expect("200 reaches the caller");
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.to().expect("To").tag(), Some("b1"));
    // The canceled branch's 487 never reaches the caller.
    let late = a.recv_answer_for(&inv.call_id, Duration::from_millis(500));
    assert!(
        late.is_none(),
        "{}",
        late.map(|(m, _)| text(&m)).unwrap_or_default()
    );
}

#[test]
fn callers_cancel_reaches_every_branch_and_yields_487() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let b1 = TestUa::new("bob");
    let b2 = TestUa::new("bob");
    b1.register(&router);
    b2.register(&router);
    let inv = a.request("INVITE", &router.aor("bob"));
    a.send_to(router.udp_addr(), &inv.build());
    let (r1, s1) = b1.expect_request(Method::Invite);
    let (r2, s2) = b2.expect_request(Method::Invite);
    b1.reply(&r1, s1, 180, "Ringing", "b1");
    b2.reply(&r2, s2, 183, "Session Progress", "b2");
    for _ in 0..2 {
        a.recv_answer_for(&inv.call_id, RECV)
            .expect("provisionals reach the caller");
    }
    let cancel = a
        .request("CANCEL", &router.aor("bob"))
        .call_id(&inv.call_id)
        .branch(&inv.branch);
    a.send_to(router.udp_addr(), &cancel.build());
    let (c1, cs1) = b1.expect_request(Method::Cancel);
    let (c2, cs2) = b2.expect_request(Method::Cancel);
    for (ua, c, cs, r, s, tag) in [
        (&b1, &c1, cs1, &r1, s1, "b1"),
        (&b2, &c2, cs2, &r2, s2, "b2"),
    ] {
        ua.reply(c, cs, 200, "OK", tag);
        ua.reply(r, s, 487, "Request Terminated", tag);
    }
    let mut cancel_ok = false;
    let mut final_code = None;
    let deadline = Instant::now() + RECV;
    while final_code.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let (r, _) = a
            .recv_response_for(&inv.call_id, left)
            .expect("answers to CANCEL and INVITE");
        match (r.cseq().map(|c| c.method).ok(), r.status()) {
            (Some(Method::Cancel), Some(200)) => cancel_ok = true,
            (Some(Method::Invite), Some(code)) if code >= 200 => final_code = Some(code),
            _ => {}
        }
    }
    assert!(cancel_ok, "200 to the CANCEL (§16.10)");
    assert_eq!(final_code, Some(487));
}

/// A whole call through the default plugin: INVITE/100/180/200, the ACK and
/// a BYE from the callee both follow the Record-Route the proxy inserted.
#[test]
fn call_set_up_and_torn_down_through_the_record_route() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let b = TestUa::new("bob");
    b.register(&router);
    let inv = a.request("INVITE", &router.aor("bob"));
    a.send_to(router.udp_addr(), &inv.build());
    let (req, src) = b.expect_request(Method::Invite);
    let rr: Vec<String> = req
        .header_values("Record-Route")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let ours = format!("<sip:127.0.0.1:{};lr>", router.udp_port());
    assert_eq!(rr, vec![ours.clone()], "{}", text(&req));
    b.reply(&req, src, 180, "Ringing", "bobtag");
    // The 180 goes up before the 200 is sent: sent back to back, two
    // receive workers could relay them in either order (UDP promises none),
    // and a 180 after the 200 is rightly not relayed.
    let (ringing, _) = a
        .recv_answer_for(&inv.call_id, RECV)
        .expect("the 180 reaches the caller");
    assert_eq!(ringing.status(), Some(180));
    // The UAS copies Record-Route into its 2xx (RFC 3261 §12.1.1).
    let ok = wisp_sip::build_reply(
        &req,
        200,
        "OK",
        &wisp_sip::ReplyOptions {
            to_tag: Some("bobtag"),
            extra_headers: &[
                ("Record-Route", &ours),
                ("Contact", &format!("<{}>", b.contact())),
            ],
            ..Default::default()
        },
    )
    .expect("200");
    b.send_to(wisp_e2e::response_destination(&req).unwrap_or(src), &ok);
    let mut statuses = Vec::new();
    let answer = loop {
        let (r, _) = a
            .recv_answer_for(&inv.call_id, RECV)
            .expect("180 and 200 reach the caller");
        statuses.push(r.status());
        if r.status() == Some(200) {
            break r;
        }
    };
    assert_eq!(statuses, vec![Some(200)]);
    // Until its ACK arrives a UAS retransmits the 200; each copy goes up.
    b.send_to(wisp_e2e::response_destination(&req).unwrap_or(src), &ok);
    let (again, _) = a
        .recv_answer_for(&inv.call_id, RECV)
        .expect("the retransmitted 200 reaches the caller");
    assert_eq!(again.status(), Some(200));
    let rr_back: Vec<_> = answer.header_values("Record-Route").collect();
    assert_eq!(rr_back.len(), 1, "{}", text(&answer));

    // ACK: to the callee's Contact, via the route set.
    let ack = a
        .request("ACK", &b.contact())
        .call_id(&inv.call_id)
        .header("Route", &ours);
    a.send_to(router.udp_addr(), &ack.build());
    let (got_ack, _) = b.expect_request(Method::Ack);
    assert!(
        got_ack.header("Route").is_none(),
        "the proxy removes its own Route entry:\n{}",
        text(&got_ack)
    );
    assert_eq!(&got_ack.request_uri_raw()[..], b.contact().as_bytes());

    // BYE from the callee, also via the route set.
    let bye = b
        .request("BYE", &a.contact())
        .call_id(&inv.call_id)
        .cseq(1)
        .header("Route", &ours);
    b.send_to(router.udp_addr(), &bye.build());
    let (got_bye, bye_src) = a.expect_request(Method::Bye);
    assert!(got_bye.header("Route").is_none(), "{}", text(&got_bye));
    assert_eq!(&got_bye.request_uri_raw()[..], a.contact().as_bytes());
    a.reply(&got_bye, bye_src, 200, "OK", "alicetag");
    let (bye_ok, _) = b
        .recv_answer_for(&bye.call_id, RECV)
        .expect("200 for BYE reaches the callee");
    assert_eq!(bye_ok.status(), Some(200));
    assert_eq!(bye_ok.cseq().expect("CSeq").method, Method::Bye);
}

/// sipsak (a client nobody here wrote) sends OPTIONS to a registered user;
/// Wisp relays it statefully and sipsak gets the callee's 200.
#[test]
fn sipsak_options_through_t_relay_gets_the_callees_200() {
    let router = Router::start_for_sipsak();
    let b = TestUa::new("bob");
    b.register(&router);
    let target = router.aor("bob");
    let sipsak = std::thread::spawn(move || {
        let mut cmd = std::process::Command::new(wisp_e2e::sipsak());
        cmd.args(["-vv", "-H", "127.0.0.1", "-s", &target]);
        wisp_e2e::run_with_timeout(cmd, Duration::from_secs(15))
    });
    let (req, src) = b.expect_request(Method::Options);
    let vias = req.vias().expect("Via");
    assert_eq!(vias.len(), 2, "Wisp's Via above sipsak's:\n{}", text(&req));
    b.reply(&req, src, 200, "OK", "bobtag");
    let out = sipsak.join().expect("sipsak thread");
    assert!(out.success(), "sipsak failed\n{}", out.describe());
    assert!(out.stdout.contains("200"), "{}", out.describe());
}

/// Next hops by name go through RFC 3263 resolution: `localhost` comes from
/// /etc/hosts without any DNS server; a name that does not resolve is a
/// 478 branch, which the failure route replaces with the next destination.
#[test]
fn names_resolve_from_etc_hosts_and_an_unresolvable_one_fails_over_in_the_failure_route() {
    let a = TestUa::new("alice");
    let b2 = TestUa::new("second");
    let b2_port = b2.port();
    let router = Router::start_with(move |m| {
        m.plugin_file(&plugin_path("forward_on_unavailable"))
            .set("plugin", "name", "\"forward-on-unavailable\"")
            .set("params", "first", "\"sip:nobody@no-such-host.invalid\"")
            .set(
                "params",
                "second",
                &format!("\"sip:second@localhost:{b2_port}\""),
            )
            .set("params", "last", "\"sip:last@no-such-host.invalid\"")
    });
    let inv = a.request("INVITE", &router.aor("bob"));
    a.send_to(router.udp_addr(), &inv.build());
    // Without a reachable DNS server the unresolvable name takes up to the
    // resolution timeout (5 s) to fail.
    let (req, src) = b2
        .recv_request(Duration::from_secs(8))
        .expect("the second destination never received the INVITE");
    assert_eq!(
        &req.request_uri_raw()[..],
        format!("sip:second@localhost:{}", b2.port()).as_bytes()
    );
    b2.reply(&req, src, 200, "OK", "b2");
    let (resp, _) = a
        .recv_answer_for(&inv.call_id, Duration::from_secs(8))
        .expect("200 reaches the caller");
    assert_eq!(resp.status(), Some(200), "{}", text(&resp));
}

/// A destination that never answers at all: `fr_timer` (here 1 s) ends the
/// branch as a 408 and the failure route tries the next one; meanwhile the
/// INVITE was retransmitted to the silent one (timer A).
#[test]
fn silent_destination_hits_fr_timer_and_the_failure_route_takes_over() {
    let a = TestUa::new("alice");
    let silent = TestUa::new("silent");
    let b2 = TestUa::new("second");
    let router = Router::start_with(|m| {
        let mut m = forward_on_unavailable(&silent, &b2, &b2)(m);
        m.extra.push_str("[tm]\nfr_timer_ms = 1000\nt1_ms = 200\n");
        m
    });
    let inv = a.request("INVITE", &router.aor("bob"));
    a.send_to(router.udp_addr(), &inv.build());
    let started = Instant::now();
    let (req2, src2) = b2
        .recv_request(Duration::from_secs(4))
        .expect("the failure route never reached the second destination");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "fr_timer is 1 s, the second destination was tried after {waited:?}"
    );
    let copies = collect(&silent, Method::Invite, Duration::from_millis(100));
    // T1 = 200 ms: sent at 0, retransmitted at 0.2 and 0.6 s before 1 s.
    assert!(
        copies.len() >= 3,
        "timer A retransmissions: {}",
        copies.len()
    );
    b2.reply(&req2, src2, 200, "OK", "b2");
    let (resp, _) = a
        .recv_answer_for(&inv.call_id, RECV)
        .expect("200 reaches the caller");
    assert_eq!(resp.status(), Some(200));
}

/// `tm.max_transactions` bounds transaction memory: past it a request that
/// needs a transaction is answered 503 with Retry-After, not queued.
#[test]
fn past_max_transactions_requests_get_503_with_retry_after() {
    let router = Router::start_with(|m| {
        let mut m =
            m.plugin_file(&plugin_path("stateful_uas"))
                .set("plugin", "name", "\"stateful-uas\"");
        m.extra.push_str("[tm]\nmax_transactions = 1\n");
        m
    });
    let a = TestUa::new("alice");
    // Answered transactions are held for wait_timer (5 s), so the limit is
    // reached after a few (the harness's readiness probe may hold one).
    let mut codes = Vec::new();
    for _ in 0..4 {
        let m = a.request("MESSAGE", &router.aor("sms"));
        a.send_to(router.udp_addr(), &m.build());
        let (r, _) = a
            .recv_response_for(&m.call_id, RECV)
            .expect("every request is answered");
        codes.push(r.status().unwrap_or(0));
        if r.status() == Some(503) {
            assert!(r.header("Retry-After").is_some(), "{}", text(&r));
            break;
        }
    }
    assert_eq!(codes.last(), Some(&503), "{codes:?}");
    assert!(codes.len() <= 2, "with max_transactions = 1: {codes:?}");
}
