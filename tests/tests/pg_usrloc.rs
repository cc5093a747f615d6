//! User location on a shared PostgreSQL (issue 17), against a real,
//! throwaway server ([`Postgres`]) started by each test.

use wisp_e2e::*;

#[test]
fn the_throwaway_server_answers_on_its_own_socket_and_is_removed_on_drop() {
    let pg = Postgres::start();
    let dir = pg.socket_dir().to_path_buf();
    assert_eq!(
        pg.psql("SELECT current_database(), current_user").trim(),
        "wisp|wisp"
    );
    assert!(
        pg.url().contains(&format!("host={}", dir.display())),
        "{}",
        pg.url()
    );
    drop(pg);
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

#[test]
fn a_stopped_server_starts_again_with_its_data() {
    let mut pg = Postgres::start();
    pg.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (7)");
    pg.stop();
    pg.start_again();
    assert_eq!(pg.psql("SELECT x FROM t").trim(), "7");
}

/// `usrloc.db_url` and `db_mode`, as TOML.
fn on_postgres(pg: &Postgres, db_mode: u8) -> impl Fn(Manifest) -> Manifest + use<> {
    let url = format!("\"{}\"", pg.url());
    move |m| {
        m.set("usrloc", "db_mode", &db_mode.to_string())
            .set("usrloc", "db_url", &url)
    }
}

/// (contact with its parameters, remaining expires) of `ua`'s AOR, by a
/// REGISTER without Contact (RFC 3261 §10.2.3).
fn query(router: &Router, ua: &TestUa) -> Vec<String> {
    let req = ua
        .request("REGISTER", &router.uri())
        .from(&router.aor(&ua.user))
        .to(&router.aor(&ua.user))
        .contact(None);
    let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
    let fin = fin.unwrap_or_else(|| panic!("no answer to the query of {}", ua.user));
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
    fin.header_values("Contact")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// A request to `ua`'s AOR sent to `router` by `caller` reaches `ua`.
fn reaches(router: &Router, caller: &TestUa, ua: &TestUa) -> bool {
    let req = caller.request("OPTIONS", &router.aor(&ua.user));
    caller.send_to(router.udp_addr(), &req.build());
    let got = ua.answer_next(200, "OK", RECV).is_some();
    let _ = caller.recv_response_for(&req.call_id, RECV);
    got
}

#[test]
fn write_through_on_postgres_keeps_bindings_and_subscribers_across_a_kill() {
    let pg = Postgres::start();
    let mut router = Router::start_with(on_postgres(&pg, 1));
    let uas: Vec<TestUa> = (0..5).map(|i| TestUa::new(&format!("pg{i}"))).collect();
    for ua in &uas {
        ua.register(&router);
    }
    // The 200 is sent after the commit: the rows are there.
    assert_eq!(
        pg.psql("SELECT count(*) FROM bindings WHERE usrloc_table = 'location'")
            .trim(),
        "5"
    );
    router.ctl_ok(&["user", "add", "alice@example.com", "s3cret"]);
    router.ctl_ok(&["acl", "grant", "alice@example.com", "int"]);
    assert_eq!(
        pg.psql("SELECT s.username || '@' || s.domain, g.grp FROM subscriber s JOIN grp g USING (username, domain)")
            .trim(),
        "alice@example.com|int"
    );

    router.kill_hard();
    router.restart();

    let caller = TestUa::new("caller");
    for ua in &uas {
        let bindings = query(&router, ua);
        assert_eq!(bindings.len(), 1, "{}: {bindings:?}", ua.user);
        assert!(
            bindings[0].starts_with(&format!("<{}>", ua.contact())),
            "{bindings:?}"
        );
        assert!(
            reaches(&router, &caller, ua),
            "{} after the restart",
            ua.user
        );
    }
    let users = router.ctl_ok(&["user", "show"]);
    assert!(users.contains("alice@example.com"), "{users}");
}

#[test]
fn an_unreachable_database_names_its_url_without_the_password() {
    let pg = Postgres::start();
    let url = format!(
        "\"postgres://wisp:pw-secret@/nosuchdb?host={}&port=5432\"",
        pg.socket_dir().display()
    );
    let dir = TempDir::new();
    let manifest_path = dir.path().join("wisp.toml");
    let manifest = Manifest::new(0)
        .set("usrloc", "db_mode", "1")
        .set("usrloc", "db_url", &url);
    std::fs::write(&manifest_path, manifest.render()).expect("write manifest");
    let out = run_wisp(
        &[
            "run".as_ref(),
            "--config".as_ref(),
            manifest_path.as_os_str(),
        ],
        std::time::Duration::from_secs(30),
    );
    assert!(!out.success(), "{}", out.describe());
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("postgres://wisp:***@/nosuchdb"),
        "{}",
        out.describe()
    );
    assert!(all.contains("nosuchdb"), "{}", out.describe());
    assert!(!all.contains("pw-secret"), "{}", out.describe());
}

/// `wisp ctl ps --json`'s `store` object.
fn store_state(router: &Router) -> serde_json::Value {
    let ps: serde_json::Value =
        serde_json::from_str(&router.ctl_ok(&["ps", "--json"])).expect("ps --json is JSON");
    ps["store"].clone()
}

/// Polls `wisp ctl ps --json` until the store's state is `want`.
fn store_becomes(router: &Router, want: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let store = store_state(router);
        if store["state"] == want {
            return store;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the store is not {want}: {store}\n--- wisp log ---\n{}",
            router.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn ctl_ps_shows_the_database_going_down_and_coming_back() {
    let mut pg = Postgres::start();
    let router = Router::start_with(on_postgres(&pg, 1));
    TestUa::new("alice").register(&router);
    let store = store_becomes(&router, "up");
    assert_eq!(store["backend"], "postgres", "{store}");
    let location = store["location"].as_str().unwrap_or_default();
    assert!(
        location.contains(&format!("host={}", pg.socket_dir().display()))
            && location.contains("dbname=wisp"),
        "{store}"
    );
    assert_eq!(store["mode"], "write-through", "{store}");
    assert_eq!(store["queue"], 0, "{store}");
    assert!(store["last_commit_age_seconds"].is_u64(), "{store}");
    assert!(store["last_error"].is_null(), "{store}");

    pg.stop();
    // Noticed without a REGISTER: the writer asks the database.
    let store = store_becomes(&router, "down");
    assert!(
        store["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{store}"
    );
    let table = router.ctl_ok(&["ps"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("store ") && l.contains(" down since=")),
        "{table}"
    );
    pg.start_again();
    let store = store_becomes(&router, "up");
    assert!(
        store["last_error"].is_string(),
        "the last error stays: {store}"
    );
    let log = router.log();
    assert_eq!(log.matches(" is down (").count(), 1, "{log}");
    assert_eq!(log.matches(" is up again").count(), 1, "{log}");
    // No password anywhere.
    assert!(!router.ctl_ok(&["ps", "--json"]).contains("password"));
}

/// The final answer to a REGISTER of `ua` through `router`.
fn try_register(router: &Router, ua: &TestUa) -> Message {
    let req = ua
        .request("REGISTER", &router.uri())
        .from(&router.aor(&ua.user))
        .to(&router.aor(&ua.user))
        .expires(3600);
    let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
    fin.unwrap_or_else(|| panic!("no answer to the REGISTER of {}", ua.user))
}

#[test]
fn with_db_mode_1_or_2_the_router_starts_while_the_database_is_down_and_loads_it_when_back() {
    for db_mode in [1, 2] {
        let mut pg = Postgres::start();
        let on_pg = on_postgres(&pg, db_mode);
        let mut router = Router::start_with(|m| on_pg(m).set("usrloc", "timer_interval", "1"));
        let caller = TestUa::new("caller");
        let alice = TestUa::new("alice");
        let bob = TestUa::new("bob");
        alice.register(&router);
        if db_mode == 2 {
            // Write-back: the binding reaches the database at the interval.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while pg.psql("SELECT count(*) FROM bindings").trim() != "1" {
                assert!(std::time::Instant::now() < deadline, "never written back");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
        router.kill_hard();
        pg.stop();
        router.restart();
        // Up without its database: REGISTERs are refused with a Retry-After,
        // lookups answer from memory (empty until the load).
        for _ in 0..3 {
            let fin = try_register(&router, &bob);
            assert_eq!(fin.status(), Some(503), "db_mode {db_mode}: {}", text(&fin));
            assert_eq!(
                header_str(&fin, "Retry-After").as_deref(),
                Some("5"),
                "{}",
                text(&fin)
            );
        }
        assert!(!reaches_or_404(&router, &caller, &alice));
        assert_eq!(store_state(&router)["state"], "down");

        pg.start_again();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while try_register(&router, &bob).status() != Some(200) {
            assert!(
                std::time::Instant::now() < deadline,
                "db_mode {db_mode}: REGISTER still refused\n{}",
                router.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        // The bindings registered before the stop were loaded.
        assert!(reaches(&router, &caller, &alice), "db_mode {db_mode}");
        assert!(reaches(&router, &caller, &bob), "db_mode {db_mode}");
        let log = router.log();
        assert_eq!(
            log.matches(" is down (").count(),
            1,
            "db_mode {db_mode}: logged once:\n{log}"
        );
        assert_eq!(
            log.matches(" is up again").count(),
            1,
            "db_mode {db_mode}:\n{log}"
        );
        assert_eq!(
            log.matches("usrloc: 1 bindings loaded from the database")
                .count(),
            1,
            "db_mode {db_mode}:\n{log}"
        );
    }
}

/// An OPTIONS to `ua`'s AOR through `router`: `true` when `ua` got it,
/// `false` when the router answered 404 itself.
fn reaches_or_404(router: &Router, caller: &TestUa, ua: &TestUa) -> bool {
    let req = caller.request("OPTIONS", &router.aor(&ua.user));
    caller.send_to(router.udp_addr(), &req.build());
    if ua
        .answer_next(200, "OK", std::time::Duration::from_millis(500))
        .is_some()
    {
        let _ = caller.recv_response_for(&req.call_id, RECV);
        return true;
    }
    let (resp, _) = caller
        .recv_response_for(&req.call_id, RECV)
        .expect("an answer to the OPTIONS");
    assert_eq!(resp.status(), Some(404), "{}", text(&resp));
    false
}
