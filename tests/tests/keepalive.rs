//! NAT keepalives (`[nat]`, issue 20) through `plugins/nat`: a phone whose
//! Via and Contact name a private address is registered after
//! `fix_nated_register`, which flags its binding NATed; the router then
//! sends it an OPTIONS every `keepalive_interval_s` at the address its
//! REGISTER came from, absorbs the answers, and, with
//! `keepalive_max_failures`, removes a binding that stopped answering. A
//! phone registered at its own address is not pinged.

use std::time::{Duration, Instant};

use wisp_e2e::*;

const ALICE_PRIVATE: &str = "192.168.1.10:5062";

/// A router running `plugins/nat` with keepalives every second.
fn router(max_failures: u32) -> Router {
    Router::start_with(move |mut m| {
        m.extra.push_str(&format!(
            "\n[nat]\nkeepalive_interval_s = 1\nfrom = \"sip:pinger@example.com\"\n\
             keepalive_max_failures = {max_failures}\n"
        ));
        m.plugin_file(&plugin_path("nat"))
            .set("plugin", "name", "\"nat\"")
    })
}

/// REGISTER `ua` as a phone behind NAT: its Via and Contact name a private
/// address; it is really reachable at its socket only.
fn register_natted(router: &Router, ua: &TestUa) {
    let register = ua
        .request("REGISTER", &router.uri())
        .from(&router.aor(&ua.user))
        .to(&router.aor(&ua.user))
        .via_sent_by(ALICE_PRIVATE)
        .contact(Some(&format!("sip:{}@{ALICE_PRIVATE}", ua.user)))
        .expires(3600);
    let (_, fin) = ua.transact(router.udp_addr(), &register, RECV);
    assert_eq!(
        fin.as_ref().and_then(Message::status),
        Some(200),
        "{:?}",
        fin.as_ref().map(text)
    );
}

/// `wisp ctl stats --json`'s counter `key`.
fn stat(router: &Router, key: &str) -> u64 {
    let j: serde_json::Value =
        serde_json::from_str(&router.ctl_ok(&["stats", "--json"])).expect("json");
    j[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in the stats: {j}"))
}

/// The next OPTIONS `ua` receives within `timeout`, with where it came from.
fn next_options(ua: &TestUa, timeout: Duration) -> Option<(Message, std::net::SocketAddr)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (m, from) = ua.recv_request(left)?;
        if m.method() == Some(&Method::Options) {
            return Some((m, from));
        }
    }
}

#[test]
fn a_natted_phone_is_pinged_at_the_interval_and_a_public_one_is_not() {
    let router = router(0);
    let alice = TestUa::new("alice");
    let bob = TestUa::new("bob");
    register_natted(&router, &alice);
    bob.register(&router);
    let shown = router.ctl_ok(&["ul", "show"]);
    let line = |user: &str| {
        shown
            .lines()
            .find(|l| l.contains(&format!("sip:{user}@")))
            .unwrap_or_else(|| panic!("no binding of {user}:\n{shown}"))
            .to_owned()
    };
    assert!(line("alice").ends_with(" nat"), "{shown}");
    assert!(!line("bob").contains(" nat"), "{shown}");

    // Alice gets an OPTIONS at her real socket, from the router's, to her
    // Contact; she answers 200 and gets the next one about a second later.
    let (ping, from) = next_options(&alice, RECV).expect("Alice is pinged");
    assert_eq!(from, router.udp_addr());
    assert_eq!(
        ping.request_uri().expect("R-URI").to_string(),
        format!("sip:alice@{ALICE_PRIVATE}")
    );
    assert!(
        header_str(&ping, "From").is_some_and(|f| f.contains("sip:pinger@example.com")),
        "{}",
        text(&ping)
    );
    alice.reply(&ping, from, 200, "OK", "alice-tag");
    let first = Instant::now();
    let (ping, from) = next_options(&alice, RECV).expect("pinged again");
    let gap = first.elapsed();
    assert!(
        gap >= Duration::from_millis(500),
        "one ping per interval, not a burst: the next came after {gap:?}"
    );
    // Any answer counts, even 405.
    alice.reply(&ping, from, 405, "Method Not Allowed", "alice-tag");
    let deadline = Instant::now() + RECV;
    while stat(&router, "keepalive_answered") < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(stat(&router, "keepalive_answered"), 2, "{}", router.log());

    // Bob, registered at his own address, is never pinged.
    assert!(
        next_options(&bob, Duration::from_millis(2500)).is_none(),
        "a binding not flagged NATed is not pinged"
    );
}

/// Wait until `cond` or `timeout`; whether it held.
fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_phone_that_stops_answering_is_removed_only_when_the_manifest_says_so() {
    // keepalive_max_failures = 2: removed after two unanswered rounds.
    let strict = router(2);
    let lenient = router(0);
    let alice = TestUa::new("alice");
    let carol = TestUa::new("carol");
    register_natted(&strict, &alice);
    register_natted(&lenient, &carol);
    // Neither answers. Alice's binding goes; a call to her finds no one.
    assert!(
        eventually(Duration::from_secs(10), || {
            !strict.ctl(&["ul", "show", "alice"]).success()
        }),
        "Alice's binding is removed:\n{}",
        strict.log()
    );
    assert!(stat(&strict, "keepalive_removed") >= 1);
    let bob = TestUa::new("bob");
    let invite = bob
        .request("INVITE", &strict.aor("alice"))
        .from(&strict.aor("bob"))
        .to(&strict.aor("alice"));
    let (_, fin) = bob.transact(strict.udp_addr(), &invite, RECV);
    assert_eq!(fin.and_then(|f| f.status()), Some(404));

    // Carol misses as many rounds and more, and stays registered.
    assert!(
        eventually(Duration::from_secs(10), || {
            stat(&lenient, "keepalive_missed") >= 3
        }),
        "Carol's pings go unanswered:\n{}",
        lenient.log()
    );
    let shown = lenient.ctl_ok(&["ul", "show", "carol"]);
    assert!(shown.contains("sip:carol@"), "{shown}");
    assert_eq!(stat(&lenient, "keepalive_removed"), 0);
}
