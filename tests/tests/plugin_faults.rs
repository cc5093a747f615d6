//! A plugin that traps, overruns its deadline, exhausts its memory or fails
//! gets its request answered 500, and the router keeps serving (issue 2,
//! "a plugin that traps or runs past its deadline"). Uses the `faulty`
//! fixture plugin (plugins/faulty), whose Request-URI user picks the failure.

use std::time::{Duration, Instant};

use wisp_e2e::*;

fn start_faulty() -> Router {
    Router::start_with(|m| {
        m.set("plugin", "name", "\"faulty\"")
            .plugin_file(&plugin_path("faulty"))
            .set("plugin", "deadline_ms", "50")
            .set("plugin", "memory_mb", "8")
    })
}

fn ask(router: &Router, ua: &TestUa, user: &str) -> (u16, Duration) {
    let req = ua.request("OPTIONS", &router.aor(user));
    let started = Instant::now();
    let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
    let fin =
        fin.unwrap_or_else(|| panic!("no final answer for user {user:?}; log:\n{}", router.log()));
    (fin.status().unwrap_or(0), started.elapsed())
}

#[test]
fn every_failure_kind_answers_500_and_the_router_keeps_serving() {
    let mut router = start_faulty();
    let ua = TestUa::new("alice");
    assert_eq!(
        ask(&router, &ua, "ok").0,
        200,
        "healthy request before any failure"
    );
    for failure in ["panic", "loop", "alloc", "error"] {
        let (code, _) = ask(&router, &ua, failure);
        assert_eq!(code, 500, "a plugin {failure} must be answered 500");
        // The next request is served by a healthy instance right away: a
        // stuck or crashed router would not answer within a second.
        let (code, took) = ask(&router, &ua, "ok");
        assert_eq!(code, 200, "request after a plugin {failure}");
        assert!(
            took < Duration::from_secs(1),
            "answer after a plugin {failure} took {took:?}"
        );
        router.assert_alive();
    }
    let log = router.log();
    assert!(
        log.contains("deadline exceeded"),
        "deadline overrun is logged:\n{log}"
    );
    assert!(
        log.contains("export=\"route\""),
        "the export is logged:\n{log}"
    );
    // The route's `Err` reaches the log through `log.route-error`, since
    // the export itself returns a bare `err`.
    assert!(
        log.contains("route returned error: Error::Internal(\"asked to fail\")"),
        "the reason of a failed route is logged:\n{log}"
    );
}

#[test]
fn a_second_final_reply_is_refused_not_sent() {
    let router = start_faulty();
    let ua = TestUa::new("alice");
    let req = ua.request("OPTIONS", &router.aor("stale"));
    let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
    assert_eq!(fin.expect("answer").status(), Some(200));
    // The plugin's second sl_send_reply got `already-handled`: nothing more arrives.
    assert!(
        ua.recv(Duration::from_millis(300)).is_none(),
        "a second reply was sent"
    );
}

#[test]
fn a_deadline_overrun_does_not_block_other_requests_for_long() {
    let router = start_faulty();
    let a = TestUa::new("alice");
    let b = TestUa::new("bob");
    let looping = a.request("OPTIONS", &router.aor("loop"));
    a.send_to(router.udp_addr(), &looping.build());
    // While (or right after) one instance burns its 50 ms budget, another request is answered.
    let (code, took) = ask(&router, &b, "ok");
    assert_eq!(code, 200);
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let (fin, _) = a
        .recv_response_for(&looping.call_id, RECV)
        .expect("the looping request is answered");
    assert_eq!(fin.status(), Some(500));
}

#[test]
fn a_plugin_failing_every_call_is_held_back_not_restarted_in_a_loop() {
    let router = start_faulty();
    let ua = TestUa::new("alice");
    for _ in 0..12 {
        assert_eq!(ask(&router, &ua, "panic").0, 500);
    }
    let log = router.log();
    assert!(
        log.contains("plugin fails every call: no new instance for"),
        "repeated failures hold back new instances:\n{log}"
    );
    let held = log.matches("no plugin instance: held back").count();
    assert!(
        held > 0,
        "requests meanwhile are answered without an instance:\n{log}"
    );
    // The pause ends: a healthy request is served again.
    let deadline = Instant::now() + Duration::from_secs(15);
    while ask(&router, &ua, "ok").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "never served again:\n{}",
            router.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
