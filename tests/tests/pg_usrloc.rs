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
