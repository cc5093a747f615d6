//! Seed 001 (the SER admin guide), "Writing Scripts": the default
//! configuration script, the stateful user agent server and forward on
//! unavailable, each with its plugin in the running router and checked on
//! the wire.

use std::time::Duration;

use wisp_e2e::*;
use wisp_sip::Method;

/// "Default Configuration Script" (`plugins/default`): a registrar for the
/// served domain, user location for requests to it (404 when the user has
/// no contact), and stateful forwarding of everything for other domains:
/// the router answers an INVITE `100 Trying` itself and ACKs the callee's
/// negative answer hop by hop, which a stateless proxy does not.
#[test]
fn default_configuration_script() {
    let router = Router::start();
    let alice = TestUa::new("alice");
    let bob = TestUa::new("bob");
    bob.register(&router);

    // A served user with a contact: looked up and relayed there.
    let call = alice.request("INVITE", &router.aor("bob"));
    alice.send_to(router.udp_addr(), &call.build());
    let (inv, src) = bob.expect_request(Method::Invite);
    assert_eq!(
        String::from_utf8_lossy(&inv.request_uri_raw()),
        bob.contact()
    );
    bob.reply(&inv, src, 200, "OK", "b1");
    let (ok, _) = alice
        .recv_answer_for(&call.call_id, RECV)
        .expect("bob's 200");
    assert_eq!(ok.status(), Some(200), "{}", text(&ok));

    // A served user without one: 404.
    let nobody = alice.request("INVITE", &router.aor("nobody"));
    alice.send_to(router.udp_addr(), &nobody.build());
    let (nf, _) = alice
        .recv_answer_for(&nobody.call_id, RECV)
        .expect("an answer for nobody");
    assert_eq!(nf.status(), Some(404), "{}", text(&nf));

    // Another domain: forwarded statefully.
    let carol = TestUa::new("carol");
    let foreign = alice.request("INVITE", &carol.contact());
    alice.send_to(router.udp_addr(), &foreign.build());
    let (inv, src) = carol.expect_request(Method::Invite);
    let (trying, _) = alice
        .recv_response_for(&foreign.call_id, RECV)
        .expect("the router's 100 Trying");
    assert_eq!(trying.status(), Some(100), "{}", text(&trying));
    carol.reply(&inv, src, 486, "Busy Here", "c1");
    let (ack, _) = carol.expect_request(Method::Ack);
    assert_eq!(ack.to().expect("To").tag(), Some("c1"), "{}", text(&ack));
    let (busy, _) = alice
        .recv_answer_for(&foreign.call_id, RECV)
        .expect("carol's 486 goes upstream");
    assert_eq!(busy.status(), Some(486), "{}", text(&busy));
}

/// "Stateful User Agent Server" (`plugins/stateful-uas`): `t_newtran` +
/// `t_reply`; the retransmissions get the same reply from the transaction
/// and the plugin logs the request once.
#[test]
fn stateful_user_agent_server() {
    let router = Router::start_with(|m| {
        m.plugin_file(&plugin_path("stateful_uas"))
            .set("plugin", "name", "\"stateful-uas\"")
    });
    let a = TestUa::new("alice");
    let msg = a.request("MESSAGE", &router.aor("sms"));
    let bytes = msg.build();
    let mut tags = Vec::new();
    for _ in 0..3 {
        a.send_to(router.udp_addr(), &bytes);
        let (r, _) = a
            .recv_response_for(&msg.call_id, RECV)
            .expect("a reply for each copy");
        assert_eq!(r.status(), Some(200), "{}", text(&r));
        tags.push(r.to().expect("To").tag().map(str::to_owned));
    }
    assert!(
        tags[0].is_some() && tags.iter().all(|t| *t == tags[0]),
        "{tags:?}"
    );
    let logged = router
        .log()
        .matches(&format!("New Transaction Arrived: MESSAGE {}", msg.call_id))
        .count();
    assert_eq!(logged, 1, "{}", router.log());
}

/// "On-Reply Processing (Forward on Unavailable)"
/// (`plugins/forward-on-unavailable`): the first destination is busy, so
/// `failure_route[1]` tries the second; that one is unavailable too, so
/// `failure_route[2]` tries the last resort, which answers. The caller sees
/// only that answer.
#[test]
fn on_reply_processing_forward_on_unavailable() {
    let first = TestUa::new("first");
    let second = TestUa::new("second");
    let last = TestUa::new("last");
    let targets = [first.contact(), second.contact(), last.contact()];
    let router = Router::start_with(|m| {
        m.plugin_file(&plugin_path("forward_on_unavailable"))
            .set("plugin", "name", "\"forward-on-unavailable\"")
            .set("params", "first", &format!("{:?}", targets[0]))
            .set("params", "second", &format!("{:?}", targets[1]))
            .set("params", "last", &format!("{:?}", targets[2]))
    });
    let alice = TestUa::new("alice");
    let call = alice.request("INVITE", &router.aor("john.doe"));
    alice.send_to(router.udp_addr(), &call.build());
    for (ua, code, reason) in [
        (&first, 486, "Busy Here"),
        (&second, 480, "Temporarily Unavailable"),
    ] {
        let (inv, src) = ua.expect_request(Method::Invite);
        ua.reply(&inv, src, code, reason, "t");
        ua.expect_request(Method::Ack);
    }
    let (inv, src) = last.expect_request(Method::Invite);
    assert_eq!(String::from_utf8_lossy(&inv.request_uri_raw()), targets[2]);
    last.reply(&inv, src, 200, "OK", "l1");
    let mut answers = Vec::new();
    while let Some((r, _)) = alice.recv_answer_for(&call.call_id, Duration::from_millis(800)) {
        answers.push(r.status().unwrap_or(0));
    }
    assert_eq!(
        answers,
        [200],
        "only the last resort's answer goes upstream"
    );
    let log = router.log();
    assert!(
        log.contains("first redirection") && log.contains("second redirection"),
        "{log}"
    );
}
