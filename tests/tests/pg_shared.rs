//! Several routers, one user database (`usrloc.db_mode = 3` on a
//! throwaway PostgreSQL): a user registered through one router is reached
//! through another, an unregistration through one is seen by the other,
//! and a router that was killed loses nothing the database holds.

use std::time::{Duration, Instant};

use wisp_e2e::*;

/// How long a change may take to reach the other router's memory (a
/// notification and one query; milliseconds when the machine is idle).
const PROPAGATION: Duration = Duration::from_secs(5);

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
    let deadline = Instant::now() + PROPAGATION;
    loop {
        if options_reaches(router, caller, ua) == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {PROPAGATION:?} {} still {}\n--- wisp log ---\n{}",
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
