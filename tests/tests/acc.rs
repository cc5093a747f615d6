//! Accounting (issue 18, Kamailio `acc`): a relayed transaction whose
//! request carries `[acc] log_flag` gives one record when its final reply
//! goes up, retransmissions included; with `log_missed_flag`, a final reply
//! of 300 or more gives a missed-call record too. The chain is the
//! `minimal` fixture (sets flag 1 on every OPTIONS) then the default plugin
//! (which relays to registered contacts).

use std::time::{Duration, Instant};

use wisp_e2e::*;

fn start_accounting() -> Router {
    start_accounting_with(|m| m)
}

/// [`start_accounting`], the manifest changed by `f` too (a database).
fn start_accounting_with(f: impl Fn(Manifest) -> Manifest) -> Router {
    let default = plugin_path("default");
    Router::start_with(|m| {
        let mut m = f(m)
            .set("plugin", "name", "\"minimal\"")
            .plugin_file(&plugin_path("minimal"));
        m.extra.push_str(&format!(
            "\n[acc]\nlog_flag = 1\nlog_missed_flag = 1\n\n[[plugin]]\nname = \"default\"\npath = {:?}\n\n[plugin.params]\nmax_len = 8192\n",
            default.to_string_lossy()
        ));
        m
    })
}

/// Alice and bob registered, carol calls: alice (OPTIONS sent twice)
/// answers 200, bob 486. Returns the two Call-IDs and carol's address.
fn answered_and_busy(router: &Router) -> (String, String, std::net::SocketAddr) {
    let alice = TestUa::new("alice");
    let bob = TestUa::new("bob");
    alice.register(router);
    bob.register(router);
    let carol = TestUa::new("carol");
    let req = carol.request("OPTIONS", &router.aor("alice"));
    let bytes = req.build();
    carol.send_to(router.udp_addr(), &bytes);
    let (got, src) = alice.recv_request(RECV).expect("the OPTIONS reaches alice");
    carol.send_to(router.udp_addr(), &bytes);
    std::thread::sleep(Duration::from_millis(200));
    alice.reply(&got, src, 200, "OK", "a1");
    let (fin, _) = carol
        .recv_response_for(&req.call_id, RECV)
        .expect("alice's 200");
    assert_eq!(fin.status(), Some(200));
    let busy = carol.request("OPTIONS", &router.aor("bob"));
    carol.send_to(router.udp_addr(), &busy.build());
    bob.answer_next(486, "Busy Here", RECV)
        .expect("the OPTIONS reaches bob");
    let (fin, _) = carol
        .recv_response_for(&busy.call_id, RECV)
        .expect("bob's 486");
    assert_eq!(fin.status(), Some(486));
    (req.call_id.clone(), busy.call_id.clone(), carol.addr())
}

/// The three records of [`answered_and_busy`], exactly.
fn assert_answered_and_busy(lines: &[String], ok: &str, busy: &str) {
    let of = |call_id: &str| -> Vec<&String> {
        lines
            .iter()
            .filter(|l| l.contains(&format!("call_id={call_id:?}")))
            .collect()
    };
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let to_alice = of(ok);
    assert_eq!(to_alice.len(), 1, "one record per transaction: {lines:#?}");
    assert!(
        to_alice[0].contains(" answered OPTIONS 200 ") && to_alice[0].contains("reason=\"OK\""),
        "{}",
        to_alice[0]
    );
    let to_bob = of(busy);
    assert_eq!(to_bob.len(), 2, "{lines:#?}");
    assert!(to_bob.iter().any(|l| l.contains(" answered OPTIONS 486 ")));
    assert!(
        to_bob
            .iter()
            .any(|l| l.contains(" missed OPTIONS 486 ") && l.contains("reason=\"Busy Here\"")),
        "{to_bob:#?}"
    );
}

#[test]
fn a_flagged_transaction_gives_one_record_and_a_failed_one_a_missed_record() {
    let router = start_accounting();
    let (ok, busy, carol) = answered_and_busy(&router);
    let lines = router.acc_records(3);
    let log = router.log();
    assert_answered_and_busy(&lines, &ok, &busy);
    for l in &lines {
        assert!(
            l.contains(&format!("src=udp:{carol}")),
            "the caller is the source: {l}"
        );
    }
    // The log has them too, naming the Call-ID.
    assert!(
        log.lines()
            .any(|l| l.contains("transaction answered") && l.contains(&ok)),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("call missed") && l.contains(&busy)),
        "{log}"
    );
    // REGISTERs carried no flag: no records for them.
    assert!(!lines.iter().any(|l| l.contains("REGISTER")), "{lines:#?}");
    let j: serde_json::Value =
        serde_json::from_str(&router.ctl_ok(&["stats", "--json"])).expect("json");
    assert_eq!(j["acc_records"], 3, "{j}");
    assert_eq!(j["acc_dropped"], 0, "{j}");
}

#[test]
fn acc_show_says_when_accounting_is_off() {
    let router = Router::start();
    let out = router.ctl(&["acc", "show"]);
    assert!(!out.success());
    assert!(
        out.describe().contains("accounting is off"),
        "{}",
        out.describe()
    );
}

/// Seed 003's "Accounting" and "Reporting Missed Calls" scripts
/// (plugins/acc): INVITEs are accounted, and those that fail are missed
/// calls; a retransmitted INVITE is still one call.
#[test]
fn the_seed_accounting_script_records_calls_and_missed_calls() {
    let router = Router::start_with(|m| {
        let mut m = m
            .set("plugin", "name", "\"acc\"")
            .plugin_file(&plugin_path("acc"));
        m.extra
            .push_str("\n[acc]\nlog_flag = 1\nlog_missed_flag = 3\n");
        m
    });
    let alice = TestUa::new("alice");
    let bob = TestUa::new("bob");
    alice.register(&router);
    bob.register(&router);
    let carol = TestUa::new("carol");

    // Bob is busy; carol's INVITE goes out twice.
    let call = carol.request("INVITE", &router.aor("bob"));
    let bytes = call.build();
    carol.send_to(router.udp_addr(), &bytes);
    let (inv, src) = bob.recv_request(RECV).expect("the INVITE reaches bob");
    carol.send_to(router.udp_addr(), &bytes);
    std::thread::sleep(Duration::from_millis(200));
    bob.reply(&inv, src, 486, "Busy Here", "b1");
    let (busy, _) = carol
        .recv_answer_for(&call.call_id, RECV)
        .expect("bob's 486 is relayed");
    assert_eq!(busy.status(), Some(486));
    carol.send_to(router.udp_addr(), &call.ack_for(&busy).build());

    // Alice answers.
    let answered = carol.request("INVITE", &router.aor("alice"));
    carol.send_to(router.udp_addr(), &answered.build());
    let (inv, src) = alice.recv_request(RECV).expect("the INVITE reaches alice");
    alice.reply(&inv, src, 200, "OK", "a1");
    let (ok, _) = carol
        .recv_answer_for(&answered.call_id, RECV)
        .expect("alice's 200 is relayed");
    assert_eq!(ok.status(), Some(200));

    // Carol hangs up through the router (its Record-Route): the BYE's
    // record carries the call's duration.
    std::thread::sleep(Duration::from_millis(300));
    let route = header_str(&inv, "Record-Route").expect("the router record-routes");
    let mut bye = answered.clone();
    bye.method = "BYE".into();
    bye.ruri = alice.contact();
    bye.to_tag = Some("a1".into());
    bye.cseq = 2;
    bye.branch = format!("z9hG4bK-e2e-{}", random_token());
    bye.headers = vec![("Route".into(), route)];
    carol.send_to(router.udp_addr(), &bye.build());
    let (got, src) = alice.recv_request(RECV).expect("the BYE reaches alice");
    assert_eq!(got.method(), Some(&wisp_sip::Method::Bye));
    alice.reply(&got, src, 200, "OK", "a1");
    let (ok, _) = carol
        .recv_answer_for(&answered.call_id, RECV)
        .expect("the BYE's 200");
    assert_eq!(ok.status(), Some(200));

    let lines = router.acc_records(4);
    let of = |call_id: &str| -> Vec<&String> {
        lines
            .iter()
            .filter(|l| l.contains(&format!("call_id={call_id:?}")))
            .collect()
    };
    let missed = of(&call.call_id);
    assert_eq!(missed.len(), 2, "{lines:#?}\n{}", router.log());
    assert!(missed.iter().any(|l| l.contains(" answered INVITE 486 ")));
    assert!(missed.iter().any(|l| l.contains(" missed INVITE 486 ")));
    let to_alice = of(&answered.call_id);
    assert_eq!(to_alice.len(), 2, "{lines:#?}");
    assert!(to_alice[0].contains(" answered INVITE 200 "), "{lines:#?}");
    assert!(to_alice[1].contains(" answered BYE 200 "), "{lines:#?}");
    let duration: f64 = to_alice[1]
        .rsplit_once(" duration=")
        .and_then(|(_, d)| d.parse().ok())
        .unwrap_or_else(|| panic!("the BYE's record has no duration: {}", to_alice[1]));
    assert!(
        (0.3..60.0).contains(&duration),
        "the call lasted at least the 300 ms we waited: {duration}"
    );
    assert_eq!(lines.len(), 4, "nothing else: {lines:#?}");
}

/// With a user-location database (SQLite, write-through) the records go to
/// its `acc` table too, and `wisp ctl acc show` reads them back from there:
/// they survive a restart of the router.
#[test]
fn records_go_to_the_acc_table_and_survive_a_restart() {
    let mut router = start_accounting_with(|m| m.set("usrloc", "db_mode", "1"));
    let (ok, busy, _) = answered_and_busy(&router);
    let lines = router.acc_records(3);
    assert_answered_and_busy(&lines, &ok, &busy);
    // Written to the table, not only queued: one transaction per batch,
    // whatever the batches were, every record.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let j: serde_json::Value =
            serde_json::from_str(&router.ctl_ok(&["stats", "--json"])).expect("json");
        if j["acc_stored"] == 3 || Instant::now() > deadline {
            assert_eq!(j["acc_stored"], 3, "{j}");
            assert_eq!(j["acc_db_failures"], 0, "{j}");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    router.kill_hard();
    router.restart();
    let again = router.acc_records(3);
    assert_eq!(again, lines, "the same records, read from the table");
    let j: serde_json::Value =
        serde_json::from_str(&router.ctl_ok(&["stats", "--json"])).expect("json");
    assert_eq!(j["acc_records"], 0, "nothing new was accounted: {j}");
}

/// The same on PostgreSQL (`usrloc.db_url`); and with the database down,
/// calls are still routed, the records that could not be stored are
/// counted and the outage is logged once, its end once.
#[test]
fn records_go_to_the_acc_table_on_postgres_and_a_database_down_never_blocks_routing() {
    let mut pg = Postgres::start();
    let url = format!("\"{}\"", pg.url());
    let mut router = start_accounting_with(|m| {
        m.set("usrloc", "db_mode", "1")
            .set("usrloc", "db_url", &url)
    });
    let (ok, busy, _) = answered_and_busy(&router);
    let lines = router.acc_records(3);
    assert_answered_and_busy(&lines, &ok, &busy);
    let stored = pg.psql("SELECT method, sip_code, sip_reason, missed FROM acc ORDER BY id");
    assert_eq!(
        stored.trim(),
        "OPTIONS|200|OK|f\nOPTIONS|486|Busy Here|f\nOPTIONS|486|Busy Here|t",
        "{stored}"
    );

    // The database goes away: routing goes on, records are counted.
    let caller = TestUa::new("dan");
    let callee = TestUa::new("erin");
    callee.register(&router);
    pg.stop();
    for _ in 0..2 {
        let req = caller.request("OPTIONS", &router.aor("erin"));
        caller.send_to(router.udp_addr(), &req.build());
        callee
            .answer_next(200, "OK", RECV)
            .expect("routed with the database down");
        let (fin, _) = caller
            .recv_response_for(&req.call_id, RECV)
            .expect("the 200 is relayed");
        assert_eq!(fin.status(), Some(200));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let j: serde_json::Value =
            serde_json::from_str(&router.ctl_ok(&["stats", "--json"])).expect("json");
        if j["acc_db_failures"] == 2 || Instant::now() > deadline {
            assert_eq!(j["acc_db_failures"], 2, "{j}\n{}", router.log());
            assert_eq!(j["acc_stored"], 3, "{j}");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // `acc show` says why it lists the memory's records.
    let out = router.ctl_ok(&["acc", "show", "100"]);
    assert!(out.starts_with("# the acc table cannot be read"), "{out}");
    let refused = |log: &str| log.matches("acc: the database refused").count();
    assert_eq!(refused(&router.log()), 1, "logged once: {}", router.log());

    // Back: the next record is stored, and that is logged once.
    pg.start_again();
    let req = caller.request("OPTIONS", &router.aor("erin"));
    caller.send_to(router.udp_addr(), &req.build());
    callee.answer_next(200, "OK", RECV).expect("routed");
    caller.recv_response_for(&req.call_id, RECV).expect("200");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !router
        .log()
        .contains("acc: the database takes records again")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        router
            .log()
            .matches("acc: the database takes records again")
            .count(),
        1,
        "{}",
        router.log()
    );
    assert_eq!(refused(&router.log()), 1);

    router.kill_hard();
    router.restart();
    let again = router.acc_records(4);
    assert_eq!(again.len(), 4, "{again:#?}");
    assert_eq!(again[..3], lines[..], "the first three, from the table");
    assert!(
        again[3].contains(&format!("call_id={:?}", req.call_id)),
        "{again:#?}"
    );
}

/// `acc_request` (seed 003's "Reporting Missed Calls": a call to a user who
/// is not registered is answered 404 by the route, and recorded by hand):
/// the status and reason come from its argument, and an INVITE with the
/// missed-call flag gives a missed-call record too.
#[test]
fn acc_request_records_a_request_the_route_answered_itself() {
    let router = Router::start_with(|m| {
        let mut m = m
            .set("plugin", "name", "\"acc\"")
            .plugin_file(&plugin_path("acc"));
        m.extra
            .push_str("\n[acc]\nlog_flag = 1\nlog_missed_flag = 3\n");
        m
    });
    let carol = TestUa::new("carol");
    let call = carol.request("INVITE", &router.aor("nobody"));
    carol.send_to(router.udp_addr(), &call.build());
    let (fin, _) = carol
        .recv_response_for(&call.call_id, RECV)
        .expect("the 404");
    assert_eq!(fin.status(), Some(404));
    // A MESSAGE carries no flag: one plain record.
    let msg = carol.request("MESSAGE", &router.aor("nobody"));
    carol.send_to(router.udp_addr(), &msg.build());
    let (fin, _) = carol
        .recv_response_for(&msg.call_id, RECV)
        .expect("the 404");
    assert_eq!(fin.status(), Some(404));

    let lines = router.acc_records(3);
    assert_eq!(lines.len(), 3, "{lines:#?}\n{}", router.log());
    let invite: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(&format!("call_id={:?}", call.call_id)))
        .collect();
    assert_eq!(invite.len(), 2, "{lines:#?}");
    for (l, kind) in invite.iter().zip([" answered ", " missed "]) {
        assert!(
            l.contains(&format!("{kind}INVITE 404 ")) && l.contains("reason=\"Not Found\""),
            "{l}"
        );
        assert!(l.contains(&format!("src=udp:{}", carol.addr())), "{l}");
    }
    let message: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(&format!("call_id={:?}", msg.call_id)))
        .collect();
    assert_eq!(message.len(), 1, "{lines:#?}");
    assert!(
        message[0].contains(" answered MESSAGE 404 "),
        "{}",
        message[0]
    );
    let j: serde_json::Value =
        serde_json::from_str(&router.ctl_ok(&["stats", "--json"])).expect("json");
    assert_eq!(j["acc_records"], 3, "{j}");
}
