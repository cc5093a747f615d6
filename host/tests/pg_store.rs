//! The PostgreSQL store against a real, throwaway server
//! (`wisp_e2e::Postgres`). A test binary of its own: starting servers
//! loads the machine, which the timing of the library's unit tests (UDP
//! ordering) should not share.

use std::time::Duration;

use wisp::store::postgres::{PgStore, SCHEMA_VERSION, redact};
use wisp::store::subscriber::{StoredGroup, StoredSubscriber, SubscriberRows, SubscriberStore};
use wisp::store::{BindingStore, Change, StoreError, StoredBinding};
use wisp_e2e::Postgres;

/// One server at a time: eight initdb at once on a small machine make
/// every test here slower, not faster.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn binding(aor: &str, contact: &str, call_id: &str, cseq: u32) -> StoredBinding {
    StoredBinding {
        table: "location".into(),
        aor: aor.into(),
        contact: contact.into(),
        q: 0.5,
        expires: Some(4000),
        call_id: call_id.into(),
        cseq,
        received: Some("sip:10.0.0.1:5060".into()),
        path: Some("<sip:edge.example;lr>".into()),
        params: Some(";+sip.instance=\"<urn:uuid:1>\";reg-id=1".into()),
        updated: 1000,
        server_id: 3,
        socket: Some("tcp:192.0.2.3:5060".into()),
        nat: true,
    }
}

fn rows(s: &mut PgStore, now: i64) -> Vec<StoredBinding> {
    let mut rows = s.load(now).expect("load");
    rows.sort_by(|x, y| (&x.aor, &x.contact).cmp(&(&y.aor, &y.contact)));
    rows
}

#[test]
fn redact_hides_only_the_password() {
    assert_eq!(
        redact("postgres://wisp:s3cret@db.example:5432/wisp"),
        "postgres://wisp:***@db.example:5432/wisp"
    );
    assert_eq!(
        redact("postgres://wisp@/wisp?host=/run/pg"),
        "postgres://wisp@/wisp?host=/run/pg"
    );
    assert_eq!(redact("postgresql:///wisp"), "postgresql:///wisp");
}

#[test]
fn schema_is_migrated_once_and_a_newer_one_is_refused() {
    let _serial = one_at_a_time();
    let pg = Postgres::start();
    let mut a = PgStore::connect(&pg.url()).expect("connect");
    assert_eq!(a.schema_version().expect("version"), SCHEMA_VERSION);
    // A second router on the same database finds it done.
    let mut b = PgStore::connect(&pg.url()).expect("connect again");
    assert_eq!(b.schema_version().expect("version"), SCHEMA_VERSION);
    pg.psql("INSERT INTO wisp_schema VALUES (99)");
    let err = PgStore::connect(&pg.url()).err().expect("refused");
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
}

#[test]
fn put_replace_delete_load_and_purge_as_on_sqlite() {
    let _serial = one_at_a_time();
    let pg = Postgres::start();
    let mut s = PgStore::connect(&pg.url()).expect("connect");
    let mut permanent = binding("b", "sip:b@1", "", 0);
    permanent.expires = None;
    permanent.params = None;
    s.commit(&[
        Change::Put(binding("a", "sip:a@1", "c1", 1)),
        Change::Put(StoredBinding {
            expires: Some(1500),
            ..binding("a", "sip:a@2", "c1", 1)
        }),
        Change::Put(permanent.clone()),
        Change::Put(binding("c", "sip:c@1", "c3", 1)),
    ])
    .expect("commit");
    let replaced = binding("a", "sip:a@1", "c1", 2);
    s.commit(&[
        Change::Put(replaced.clone()),
        Change::delete("location", "c", "sip:c@1"),
    ])
    .expect("commit");
    assert_eq!(
        rows(&mut s, 1600),
        vec![replaced.clone(), permanent.clone()]
    );
    assert_eq!(
        s.load_aor("location", "a", 1600).expect("aor"),
        vec![replaced]
    );
    // The grace period: a row expired at 1500 stays until 1560.
    assert_eq!(s.purge_expired(1559).expect("purge"), 0);
    assert_eq!(s.purge_expired(1560).expect("purge"), 1);
    assert_eq!(rows(&mut s, 0).len(), 2);
}

#[test]
fn one_commit_of_many_changes_ends_as_applying_them_in_order() {
    let _serial = one_at_a_time();
    let pg = Postgres::start();
    let mut s = PgStore::connect(&pg.url()).expect("connect");
    let gone = |aor: &str, contact: &str| Change::delete("location", aor, contact);
    s.commit(&[Change::Put(binding("old", "sip:old@1", "c0", 1))])
        .expect("commit");
    let mut batch: Vec<Change> = (0..500)
        .map(|i| Change::Put(binding(&format!("u{i}"), "sip:u@1", "c1", 1)))
        .collect();
    batch.extend([
        // The same row twice: the later one stays.
        Change::Put(binding("u7", "sip:u@1", "c1", 2)),
        // Put then delete, delete then put.
        gone("u8", "sip:u@1"),
        gone("old", "sip:old@1"),
        Change::Put(binding("old", "sip:old@1", "c0", 2)),
    ]);
    s.commit(&batch).expect("commit");
    let rows = rows(&mut s, 0);
    assert_eq!(rows.len(), 500, "u0..u499 but u8, and old");
    let cseq_of = |aor: &str| rows.iter().find(|r| r.aor == aor).map(|r| r.cseq);
    assert_eq!(cseq_of("u7"), Some(2));
    assert_eq!(cseq_of("u8"), None);
    assert_eq!(cseq_of("old"), Some(2));
    assert_eq!(
        rows.iter().find(|r| r.aor == "u3"),
        Some(&binding("u3", "sip:u@1", "c1", 1))
    );
}

#[test]
fn rfc3261_10_3_step7_an_older_cseq_of_the_same_call_id_changes_nothing() {
    let _serial = one_at_a_time();
    let pg = Postgres::start();
    let mut s = PgStore::connect(&pg.url()).expect("connect");
    let newer = binding("a", "sip:a@1", "c1", 5);
    s.commit(&[Change::Put(newer.clone())]).expect("commit");
    // Another node's commit of an earlier REGISTER arrives late.
    let older = StoredBinding {
        expires: Some(9999),
        ..binding("a", "sip:a@1", "c1", 4)
    };
    s.commit(&[Change::Put(older)]).expect("commit");
    let same = StoredBinding {
        expires: Some(9999),
        ..binding("a", "sip:a@1", "c1", 5)
    };
    s.commit(&[Change::Put(same)]).expect("commit");
    assert_eq!(
        rows(&mut s, 0),
        vec![newer],
        "older and equal CSeqs changed nothing"
    );
    // A new Call-ID (the UA rebooted) and a higher CSeq both apply.
    let rebooted = binding("a", "sip:a@1", "c2", 1);
    s.commit(&[Change::Put(rebooted.clone())]).expect("commit");
    assert_eq!(rows(&mut s, 0), vec![rebooted]);
    let higher = binding("a", "sip:a@1", "c2", 2);
    s.commit(&[Change::Put(higher.clone())]).expect("commit");
    assert_eq!(rows(&mut s, 0), vec![higher]);
    // `wisp ctl ul add` (no Call-ID) always replaces.
    let manual = StoredBinding {
        expires: None,
        ..binding("a", "sip:a@1", "", 0)
    };
    s.commit(&[Change::Put(manual.clone())]).expect("commit");
    assert_eq!(rows(&mut s, 0), vec![manual]);
}

/// The removal a REGISTER makes (Call-ID, CSeq, Unix seconds).
fn unregister(aor: &str, contact: &str, call_id: &str, cseq: u32, at: i64) -> Change {
    Change::Delete {
        table: "location".into(),
        aor: aor.into(),
        contact: contact.into(),
        call_id: call_id.into(),
        cseq,
        at,
    }
}

#[test]
fn an_older_unregister_from_another_node_cannot_remove_a_newer_binding() {
    let _serial = one_at_a_time();
    let pg = Postgres::start();
    // Two routers on one database.
    let mut a = PgStore::connect(&pg.url()).expect("connect");
    let mut b = PgStore::connect(&pg.url()).expect("connect");
    // Node A took the REGISTER with CSeq 5 at 1000.
    let newer = binding("alice", "sip:a@1", "c1", 5);
    a.commit(&[Change::Put(newer.clone())]).expect("commit");
    // Node B's commit of an unregister with CSeq 4 of the same Call-ID
    // arrives late: nothing changes (§10.3 step 7), nor does one of an
    // equal CSeq.
    b.commit(&[unregister("alice", "sip:a@1", "c1", 4, 2000)])
        .expect("commit");
    b.commit(&[unregister("alice", "sip:a@1", "c1", 5, 2000)])
        .expect("commit");
    assert_eq!(rows(&mut b, 0), vec![newer.clone()]);
    // Another Call-ID's unregister, from before A saved the binding, stays
    // out too; one from the same second or later removes it.
    b.commit(&[unregister("alice", "sip:a@1", "c9", 1, 999)])
        .expect("commit");
    assert_eq!(rows(&mut b, 0), vec![newer.clone()]);
    b.commit(&[unregister("alice", "sip:a@1", "c9", 1, 1000)])
        .expect("commit");
    assert_eq!(rows(&mut b, 0), vec![]);
    // A higher CSeq of the same Call-ID removes it, in a batch of many.
    a.commit(&[
        Change::Put(newer.clone()),
        Change::Put(binding("bob", "sip:b@1", "c2", 3)),
    ])
    .expect("commit");
    b.commit(&[
        unregister("alice", "sip:a@1", "c1", 6, 0),
        unregister("bob", "sip:b@1", "c2", 2, 5000),
    ])
    .expect("commit");
    assert_eq!(
        rows(&mut b, 0),
        vec![binding("bob", "sip:b@1", "c2", 3)],
        "alice's removed, bob's newer binding kept"
    );
    // A management removal (`wisp ctl ul rm`) always applies.
    b.commit(&[Change::delete("location", "bob", "sip:b@1")])
        .expect("commit");
    assert_eq!(rows(&mut b, 0), vec![]);
}

#[test]
fn a_connection_lost_with_the_server_is_made_again_at_the_next_call() {
    let _serial = one_at_a_time();
    let mut pg = Postgres::start();
    let mut s = PgStore::connect(&pg.url()).expect("connect");
    pg.stop();
    let err = s
        .commit(&[Change::Put(binding("a", "sip:a@1", "c1", 1))])
        .expect_err("the server is down");
    assert!(!err.to_string().is_empty());
    pg.start_again();
    s.commit(&[Change::Put(binding("a", "sip:a@1", "c1", 1))])
        .expect("reconnected");
    assert_eq!(rows(&mut s, 0).len(), 1);
}

#[test]
fn a_listener_hears_each_changed_aor_once_and_notices_a_lost_connection() {
    let _serial = one_at_a_time();
    let mut pg = Postgres::start();
    let mut writer = PgStore::connect(&pg.url()).expect("connect");
    let mut listener = PgStore::connect(&pg.url()).expect("connect");
    listener.listen().expect("listen");
    let first = listener.connections();
    assert_eq!(
        listener
            .wait_changes(Duration::from_millis(50))
            .expect("wait"),
        vec![]
    );
    writer
        .commit(&[
            Change::Put(binding("a", "sip:a@1", "c1", 1)),
            Change::Put(binding("a", "sip:a@2", "c1", 1)),
            Change::Put(binding("b", "sip:b@1", "c2", 1)),
        ])
        .expect("commit");
    writer
        .commit(&[Change::delete("location", "b", "sip:b@1")])
        .expect("commit");
    let mut heard = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while heard.len() < 2 && std::time::Instant::now() < deadline {
        heard.extend(
            listener
                .wait_changes(Duration::from_millis(200))
                .expect("wait"),
        );
        heard.sort();
        heard.dedup();
    }
    assert_eq!(
        heard,
        vec![
            ("location".to_owned(), "a".to_owned()),
            ("location".to_owned(), "b".to_owned())
        ]
    );
    // The delete's notification may come after the puts' ones.
    while !listener
        .wait_changes(Duration::from_millis(300))
        .expect("wait")
        .is_empty()
    {}
    // A change named with the listener's own node is left out.
    writer.set_node("n1").expect("node");
    listener.set_node("n1").expect("node");
    writer
        .commit(&[Change::Put(binding("mine", "sip:m@1", "c3", 1))])
        .expect("commit");
    let mut other = PgStore::connect(&pg.url()).expect("connect");
    other.set_node("n2").expect("node");
    other
        .commit(&[Change::Put(binding("theirs", "sip:t@1", "c4", 1))])
        .expect("commit");
    let mut heard = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while heard.is_empty() && std::time::Instant::now() < deadline {
        heard.extend(
            listener
                .wait_changes(Duration::from_millis(200))
                .expect("wait"),
        );
    }
    assert_eq!(heard, vec![("location".to_owned(), "theirs".to_owned())]);
    drop(other);
    pg.stop();
    let lost = (0..50).find_map(|_| listener.wait_changes(Duration::from_millis(100)).err());
    assert!(
        matches!(
            lost,
            Some(StoreError::Disconnected | StoreError::Postgres(_))
        ),
        "{lost:?}"
    );
    pg.start_again();
    listener
        .listen()
        .expect("listens again on a new connection");
    assert_eq!(listener.connections(), first + 1);
}

#[test]
fn subscribers_and_groups_as_on_sqlite() {
    let _serial = one_at_a_time();
    let pg = Postgres::start();
    let mut s = PgStore::connect(&pg.url()).expect("connect");
    let alice = StoredSubscriber {
        username: "alice".into(),
        domain: "example.com".into(),
        ha1: "md5".into(),
        ha1_sha256: "sha256".into(),
        ha1_sha512_256: String::new(),
        password: None,
    };
    assert!(s.insert_subscriber(&alice).expect("insert"));
    assert!(
        !s.insert_subscriber(&alice).expect("insert"),
        "not replaced"
    );
    let changed = StoredSubscriber {
        ha1: "new".into(),
        password: Some("pw".into()),
        ..alice.clone()
    };
    assert!(s.set_credentials(&changed).expect("update"));
    let g = |grp: &str| StoredGroup {
        username: "alice".into(),
        domain: "example.com".into(),
        group: grp.into(),
    };
    assert!(s.grant(&g("int")).expect("grant"));
    assert!(!s.grant(&g("int")).expect("grant"));
    assert!(s.grant(&g("local")).expect("grant"));
    assert!(s.revoke(&g("local")).expect("revoke"));
    let loaded = s.load_all(10).expect("load");
    assert_eq!(loaded.subscribers, vec![changed]);
    assert_eq!(loaded.groups, vec![g("int")]);
    assert!(s.remove_subscriber("alice", "example.com").expect("rm"));
    assert!(!s.remove_subscriber("alice", "example.com").expect("rm"));
    assert_eq!(s.load_all(10).expect("load"), SubscriberRows::default());
}
