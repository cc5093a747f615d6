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
