//! Several routers, one user database (`usrloc.db_mode = 3` on a
//! throwaway PostgreSQL): a user registered through one router is reached
//! through another, an unregistration through one is seen by the other,
//! and a router that was killed loses nothing the database holds.

use std::time::{Duration, Instant};

use wisp_e2e::*;

/// How long a change may take to reach the other router's memory (a
/// notification and one query; milliseconds when the machine is idle).
const PROPAGATION: Duration = Duration::from_secs(5);
/// How long a router may take to notice the database is back (it tries
/// every second) and reload it.
const RECOVERY: Duration = Duration::from_secs(15);

fn shared(pg: &Postgres) -> impl Fn(Manifest) -> Manifest + use<> {
    let url = format!("\"{}\"", pg.url());
    move |m| {
        m.set("usrloc", "db_mode", "3")
            .set("usrloc", "db_url", &url)
    }
}

/// An OPTIONS to `ua`'s AOR sent through `router`: `true` when `ua` got it
/// (and answered), `false` when the router answered the caller itself (404:
/// it knows no binding).
fn options_reaches(router: &Router, caller: &TestUa, ua: &TestUa) -> bool {
    let req = caller.request("OPTIONS", &router.aor(&ua.user));
    caller.send_to(router.udp_addr(), &req.build());
    let deadline = Instant::now() + RECV;
    while Instant::now() < deadline {
        if ua
            .answer_next(200, "OK", Duration::from_millis(20))
            .is_some()
        {
            let _ = caller.recv_response_for(&req.call_id, RECV);
            return true;
        }
        if let Some((resp, _)) = caller.recv_response_for(&req.call_id, Duration::from_millis(20)) {
            assert_eq!(resp.status(), Some(404), "{}", text(&resp));
            return false;
        }
    }
    panic!("neither {} nor the caller heard of the OPTIONS", ua.user);
}

/// Polls until `router` routes to `ua` (`want` true) or answers 404 (false).
fn eventually(router: &Router, caller: &TestUa, ua: &TestUa, want: bool) {
    eventually_within(router, caller, ua, want, PROPAGATION)
}

fn eventually_within(router: &Router, caller: &TestUa, ua: &TestUa, want: bool, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        if options_reaches(router, caller, ua) == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {within:?} {} still {}\n--- wisp log ---\n{}",
            router.uri(),
            if want {
                "does not route to the user"
            } else {
                "routes to the user"
            },
            router.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn unregister(router: &Router, ua: &TestUa) {
    let req = ua
        .request("REGISTER", &router.uri())
        .from(&router.aor(&ua.user))
        .to(&router.aor(&ua.user))
        .expires(0);
    let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
    let fin = fin.expect("an answer to the unregistration");
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
}

#[test]
fn a_user_registered_through_one_router_is_reached_through_the_other() {
    let pg = Postgres::start();
    let mut a = Router::start_with(shared(&pg));
    let b = Router::start_with(shared(&pg));
    let caller = TestUa::new("caller");
    let alice = TestUa::new("alice");
    let bob = TestUa::new("bob");

    alice.register(&a);
    eventually(&b, &caller, &alice, true);
    assert!(options_reaches(&a, &caller, &alice));

    // An unregistration through B removes the binding A holds.
    unregister(&b, &alice);
    eventually(&a, &caller, &alice, false);

    // A dies; B keeps routing, also to a user registered through B meanwhile.
    alice.register(&a);
    eventually(&b, &caller, &alice, true);
    a.kill_hard();
    bob.register(&b);
    assert!(options_reaches(&b, &caller, &alice));
    assert!(options_reaches(&b, &caller, &bob));
    // Back, A loads both from the database.
    a.restart();
    assert!(options_reaches(&a, &caller, &alice));
    assert!(options_reaches(&a, &caller, &bob));
    assert!(a.log().contains("2 bindings loaded"), "{}", a.log());
}

/// The final answer to a REGISTER of `ua`'s contact through `router`.
fn try_register(router: &Router, ua: &TestUa) -> Message {
    let req = ua
        .request("REGISTER", &router.uri())
        .from(&router.aor(&ua.user))
        .to(&router.aor(&ua.user))
        .expires(3600);
    let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
    fin.unwrap_or_else(|| panic!("no answer to the REGISTER of {}", ua.user))
}

fn count(log: &str, what: &str) -> usize {
    log.lines().filter(|l| l.contains(what)).count()
}

#[test]
fn with_the_database_down_registers_get_503_lookups_keep_working_and_everything_recovers() {
    let mut pg = Postgres::start();
    let a = Router::start_with(shared(&pg));
    let b = Router::start_with(shared(&pg));
    let caller = TestUa::new("caller");
    let alice = TestUa::new("alice");
    let bob = TestUa::new("bob");
    alice.register(&a);
    eventually(&b, &caller, &alice, true);

    pg.stop();
    for router in [&a, &b] {
        for _ in 0..3 {
            let fin = try_register(router, &bob);
            assert_eq!(
                fin.status(),
                Some(503),
                "never a 200 without a commit: {}",
                text(&fin)
            );
            assert_eq!(
                header_str(&fin, "Retry-After").as_deref(),
                Some("5"),
                "{}",
                text(&fin)
            );
        }
    }
    // Lookups answer from memory.
    assert!(options_reaches(&a, &caller, &alice));
    assert!(options_reaches(&b, &caller, &alice));
    // A router started now starts, and knows nobody yet.
    let c = Router::start_with(shared(&pg));
    assert!(!options_reaches(&c, &caller, &alice));

    pg.start_again();
    let deadline = Instant::now() + RECOVERY;
    while try_register(&a, &bob).status() != Some(200) {
        assert!(
            Instant::now() < deadline,
            "REGISTER still refused\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // B listens again (it heard nothing meanwhile, so it reloaded), C loaded
    // what was registered before the stop.
    eventually_within(&b, &caller, &bob, true, RECOVERY);
    eventually_within(&c, &caller, &alice, true, RECOVERY);
    eventually_within(&c, &caller, &bob, true, RECOVERY);
    // Nothing registered before the stop was lost.
    assert!(options_reaches(&a, &caller, &alice));

    // Each change of state is logged once, not once per REGISTER.
    for (name, router) in [("A", &a), ("B", &b)] {
        // The writer finds the database back at its next probe (or commit).
        let log = router.wait_for_log("the store's recovery", RECOVERY, |l| {
            count(l, "is up again") >= 1
        });
        assert_eq!(count(&log, " is down ("), 1, "{name}:\n{log}");
        assert_eq!(count(&log, "is up again"), 1, "{name}:\n{log}");
        assert_eq!(
            count(&log, "usrloc: lost the database's change notifications"),
            1,
            "{name}:\n{log}"
        );
        assert_eq!(
            count(&log, "usrloc: the database is back"),
            1,
            "{name}:\n{log}"
        );
    }
    for (name, router) in [("A", &a), ("B", &b)] {
        let log = router.wait_for_log("the subscriber directory's recovery", RECOVERY, |l| {
            count(l, "subscribers: the database is back") >= 1
        });
        assert_eq!(
            count(&log, "subscribers: lost the database"),
            1,
            "{name}:\n{log}"
        );
        assert_eq!(
            count(&log, "subscribers: the database is back"),
            1,
            "{name}:\n{log}"
        );
    }
    let log = c.wait_for_log("the store's recovery", RECOVERY, |l| {
        count(l, "is up again") >= 1
    });
    for what in [" is down (", "is up again", "usrloc: the database is back"] {
        assert_eq!(count(&log, what), 1, "{what:?} once:\n{log}");
    }
}

/// Polls `wisp ctl user show` on `router` until `aor` is listed (`want`)
/// or not.
fn eventually_listed(router: &Router, aor: &str, want: bool) {
    let deadline = Instant::now() + PROPAGATION;
    loop {
        let shown = router.ctl_ok(&["user", "show"]);
        if shown.contains(aor) == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {PROPAGATION:?} {aor} is {}listed:\n{shown}",
            if want { "not " } else { "still " }
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_subscriber_added_through_one_router_is_known_to_the_other() {
    let pg = Postgres::start();
    let a = Router::start_with(shared(&pg));
    let b = Router::start_with(shared(&pg));
    a.ctl_ok(&["user", "add", "alice@example.com", "s3cret"]);
    eventually_listed(&b, "alice@example.com", true);
    b.ctl_ok(&["acl", "grant", "alice@example.com", "int"]);
    let deadline = Instant::now() + PROPAGATION;
    while !a
        .ctl_ok(&["user", "show", "alice@example.com"])
        .contains("int")
    {
        assert!(
            Instant::now() < deadline,
            "the group granted through B never reached A"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    b.ctl_ok(&["user", "rm", "alice@example.com"]);
    eventually_listed(&a, "alice@example.com", false);
}

/// A REGISTER whose commit fails is answered 503, and the router that took
/// it does not route to the refused contact either: its memory is read
/// again from the database.
#[test]
fn a_binding_the_database_refused_is_not_kept_in_memory() {
    let pg = Postgres::start();
    let a = Router::start_with(shared(&pg));
    let caller = TestUa::new("caller");
    let mallory = TestUa::new("mallory");
    let alice = TestUa::new("alice");
    alice.register(&a);
    pg.psql("ALTER TABLE bindings ADD CONSTRAINT no_mallory CHECK (aor <> 'mallory')");
    let fin = try_register(&a, &mallory);
    assert_eq!(fin.status(), Some(503), "{}", text(&fin));
    eventually(&a, &caller, &mallory, false);
    assert!(options_reaches(&a, &caller, &alice), "the others stay");
    a.wait_for_log("the reload after the failed commit", PROPAGATION, |l| {
        l.contains("usrloc: a commit failed: 1 bindings reloaded")
    });
}

/// Ownership (Kamailio `server_id`): a contact registered over TCP is
/// reachable only over its connection, which one router holds. Another
/// router reaches it through that one: its lookup gives the branch a Route
/// to the owner's socket, and the owner (loose_route) relays the request
/// over the registered connection.
#[test]
fn a_tcp_contact_is_reached_through_the_router_that_holds_its_connection() {
    let pg = Postgres::start();
    let on_pg = shared(&pg);
    let a = Router::start_with(|m| on_pg(m).set("server", "server_id", "1"));
    let b = Router::start_with(|m| on_pg(m).set("server", "server_id", "2"));
    let mut alice = TcpUa::connect(a.tcp_addr(), "alice");
    let reg = alice
        .request("REGISTER", &a.tcp_uri())
        .from(&a.aor("alice"))
        .to(&a.aor("alice"))
        .expires(3600);
    let fin = alice
        .transact(&reg, RECV)
        .expect("an answer to the REGISTER");
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
    // The row names its owner and the socket the REGISTER came in on.
    assert_eq!(
        pg.psql("SELECT server_id, socket FROM bindings WHERE aor = 'alice'")
            .trim(),
        format!("1|tcp:{}", a.tcp_addr())
    );

    // Bob calls alice through B, over UDP.
    let bob = TestUa::new("bob");
    let deadline = Instant::now() + PROPAGATION;
    let (invite, req) = loop {
        let invite = bob.request("INVITE", &b.aor("alice"));
        bob.send_to(b.udp_addr(), &invite.build());
        if let Some(req) = alice.recv_msg(RECV) {
            break (invite, req);
        }
        // B did not know alice yet (404): try again once it does.
        let answer = bob.recv_response_for(&invite.call_id, RECV);
        assert!(
            Instant::now() < deadline,
            "the INVITE never reached alice's TCP connection: {:?}\n--- B ---\n{}\n--- A ---\n{}",
            answer.map(|(m, _)| text(&m)),
            b.log(),
            a.log()
        );
    };
    assert_eq!(req.method(), Some(&Method::Invite), "{}", text(&req));
    assert_eq!(call_id_of(&req).as_deref(), Some(invite.call_id.as_str()));
    // Through B, then A: A's Via on top (sent over TCP), B's under it.
    let v = vias(&req);
    assert_eq!(v.len(), 3, "{}", text(&req));
    assert_eq!(v[0].transport, "TCP", "{}", text(&req));
    assert_eq!(v[0].port, Some(a.tcp_port()), "{}", text(&req));
    assert_eq!(
        v[1].transport,
        "TCP",
        "B reached A over TCP:\n{}",
        text(&req)
    );
    // A consumed the Route B gave the branch.
    assert!(
        req.header_values("Route").next().is_none(),
        "{}",
        text(&req)
    );
    // Alice answers on her connection; the 200 goes back to bob through A and B.
    let opts = wisp_sip::ReplyOptions {
        to_tag: Some("alicetag"),
        ..Default::default()
    };
    let ok = wisp_sip::build_reply(&req, 200, "OK", &opts).expect("reply");
    alice.send(&ok);
    let deadline = Instant::now() + RECV;
    loop {
        let (resp, _) = bob
            .recv_response_for(&invite.call_id, RECV)
            .expect("bob hears the answer");
        if resp.status() == Some(200) {
            break;
        }
        assert!(Instant::now() < deadline, "no 200 for bob");
    }
}
