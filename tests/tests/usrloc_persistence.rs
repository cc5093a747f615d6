//! User location on SQLite survives a crash: users register, the router is
//! killed with SIGKILL (no shutdown code runs) and started again on the same
//! manifest and database. Every binding must be back — requests to each AOR
//! reach its contact, and a REGISTER query (RFC 3261 §10.2.3) lists it with
//! the remaining expiry it had.

use std::time::{Duration, Instant};

use wisp_e2e::*;
use wisp_sip::Contacts;

const USERS: usize = 50;
const EXPIRES: u32 = 3600;
/// How far a remaining expiry may be from the expected one (seconds are
/// truncated on both sides, and the machine is shared).
const SLACK: i64 = 2;

fn persistent(db_mode: u8, timer_interval: u64) -> impl Fn(Manifest) -> Manifest {
    move |m| {
        m.set("usrloc", "db_mode", &db_mode.to_string()).set(
            "usrloc",
            "timer_interval",
            &timer_interval.to_string(),
        )
    }
}

/// REGISTERs every UA's contact for `EXPIRES` seconds.
fn register_all(router: &Router, uas: &[TestUa]) {
    for ua in uas {
        let reply = ua.register(router);
        assert!(
            header_str(&reply, "Contact").is_some(),
            "200 lists the binding:\n{}",
            text(&reply)
        );
    }
}

/// The bindings of `ua`'s AOR, by a REGISTER without Contact (§10.2.3):
/// (contact, remaining expires).
fn query(router: &Router, ua: &TestUa) -> Vec<(String, u32)> {
    let req = ua
        .request("REGISTER", &router.uri())
        .from(&router.aor(&ua.user))
        .to(&router.aor(&ua.user))
        .contact(None);
    let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
    let fin = fin.unwrap_or_else(|| panic!("no answer to the query of {}", ua.user));
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
    match fin.contacts().expect("Contact parses") {
        Contacts::List(list) => list
            .iter()
            .map(|c| (c.uri.to_string(), c.expires().unwrap_or(0)))
            .collect(),
        Contacts::Star => Vec::new(),
    }
}

/// A request to `ua`'s AOR from `caller` reaches `ua` (through `lookup`).
fn reaches(router: &Router, caller: &TestUa, ua: &TestUa) -> bool {
    let req = caller.request("OPTIONS", &router.aor(&ua.user));
    caller.send_to(router.udp_addr(), &req.build());
    let got = ua.answer_next(200, "OK", RECV).is_some();
    // The caller's 200 (or 404) is not what this test is about; drain it.
    let _ = caller.recv_response_for(&req.call_id, RECV);
    got
}

/// Checks `ua`'s binding after the restart: its contact, with the expiry it
/// had `elapsed` after registering.
fn assert_restored(router: &Router, caller: &TestUa, ua: &TestUa, elapsed: Duration) {
    let bindings = query(router, ua);
    assert_eq!(bindings.len(), 1, "{}: {bindings:?}", ua.user);
    assert_eq!(bindings[0].0, ua.contact(), "{}", ua.user);
    let expected = i64::from(EXPIRES) - elapsed.as_secs() as i64;
    let got = i64::from(bindings[0].1);
    assert!(
        (got - expected).abs() <= SLACK,
        "{}: remaining expiry {got}, expected {expected} ± {SLACK}",
        ua.user
    );
    assert!(
        reaches(router, caller, ua),
        "a request to {} is forwarded to its contact after the restart",
        ua.user
    );
}

/// The changes the usrloc writer reports committed in `log` (trace lines
/// `usrloc: committed changes=N`).
fn committed_changes(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("usrloc: committed"))
        .filter_map(|l| l.split("changes=").nth(1))
        .filter_map(|n| n.split_whitespace().next()?.parse::<usize>().ok())
        .sum()
}

#[test]
fn write_through_loses_no_binding_when_the_router_is_killed() {
    let mut router = Router::start_with(persistent(1, 60));
    let uas: Vec<TestUa> = (0..USERS).map(|i| TestUa::new(&format!("wt{i}"))).collect();
    let registered = Instant::now();
    register_all(&router, &uas);
    // Let the remaining expiry visibly differ from the original.
    std::thread::sleep(Duration::from_secs(2));

    router.kill_hard();
    router.restart();

    let caller = TestUa::new("caller");
    for ua in &uas {
        assert_restored(&router, &caller, ua, registered.elapsed());
    }
    assert!(
        router.log().contains(&format!("{USERS} bindings loaded")),
        "{}",
        router.log()
    );
}

/// Write-back commits every `timer_interval` (here 2 s). The bound this
/// test checks: every binding committed before the kill (at most one
/// interval after its REGISTER) is back after the restart. Bindings of the
/// last interval may be lost; how many were is printed.
#[test]
fn write_back_loses_at_most_the_last_interval() {
    const INTERVAL: u64 = 2;
    // Trace: the writer logs each commit with its number of changes.
    let mut router =
        Router::start_with(|m| persistent(2, INTERVAL)(m).set("server", "log_level", "\"trace\""));
    let early: Vec<TestUa> = (0..USERS / 2)
        .map(|i| TestUa::new(&format!("early{i}")))
        .collect();
    let late: Vec<TestUa> = (0..USERS / 2)
        .map(|i| TestUa::new(&format!("late{i}")))
        .collect();
    let registered = Instant::now();
    register_all(&router, &early);
    // Write-back keeps one change per binding: once commits add up to the
    // early bindings, every one of them is in the database.
    router.wait_for_log(
        "the write-back commit of the early bindings",
        Duration::from_secs(INTERVAL * 5),
        |log| committed_changes(log) >= early.len(),
    );
    register_all(&router, &late);

    router.kill_hard();
    router.restart();

    let caller = TestUa::new("caller");
    for ua in &early {
        assert_restored(&router, &caller, ua, registered.elapsed());
    }
    let survived = late
        .iter()
        .filter(|ua| !query(&router, ua).is_empty())
        .count();
    eprintln!(
        "write-back: {survived} of {} bindings of the last interval survived the kill",
        late.len()
    );
}

#[test]
fn memory_only_forgets_bindings_on_restart() {
    let mut router = Router::start_with(persistent(0, 60));
    let ua = TestUa::new("mem");
    ua.register(&router);
    router.kill_hard();
    router.restart();
    assert!(query(&router, &ua).is_empty());
    assert!(
        !router.dir().join("var/wisp.db").exists(),
        "db_mode 0 creates no database"
    );
}

/// RFC 5626 §6: the registrar returns the Contact's `+sip.instance` and
/// `reg-id` with the binding, in the 200 and in every later one, also after
/// the router restarted on its database.
#[test]
fn outbound_contact_params_come_back_in_the_200_and_after_a_restart() {
    const INSTANCE: &str = "+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\"";
    let mut router = Router::start_with(persistent(1, 60));
    let ua = TestUa::new("outbound");
    let contact = format!("<{}>;{INSTANCE};reg-id=1", ua.contact());
    let req = ua
        .request("REGISTER", &router.uri())
        .from(&router.aor(&ua.user))
        .to(&router.aor(&ua.user))
        .contact(None)
        .header("Contact", &contact)
        .expires(600);
    let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
    let fin = fin.expect("an answer to the REGISTER");
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
    let expected = format!("{contact};expires=600");
    assert_eq!(
        header_str(&fin, "Contact").as_deref(),
        Some(expected.as_str())
    );

    router.kill_hard();
    router.restart();

    let query = ua
        .request("REGISTER", &router.uri())
        .from(&router.aor(&ua.user))
        .to(&router.aor(&ua.user))
        .contact(None);
    let (_, fin) = ua.transact(router.udp_addr(), &query, RECV);
    let fin = fin.expect("an answer to the query");
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
    let got = header_str(&fin, "Contact").unwrap_or_default();
    assert!(
        got.starts_with(&format!("{contact};expires=")),
        "the restarted router lost the Contact parameters: {got}"
    );
    let caller = TestUa::new("caller");
    assert!(reaches(&router, &caller, &ua));
}
