//! `wisp ctl user|acl` against the running router: subscribers and groups
//! are added, listed without secrets, removed, and reloaded from the
//! database after a crash and restart.

use wisp_e2e::*;

#[test]
fn user_and_acl_changes_are_listed_without_secrets_and_survive_a_restart() {
    let mut router = Router::start_with(|m| m.set("usrloc", "db_mode", "1"));
    let out = router.ctl_ok(&["user", "add", "alice@Example.com", "s3cret"]);
    assert_eq!(out, "alice@example.com added\n");
    router.ctl_ok(&["user", "add", "sip:bob@example.com", "hunter2"]);
    router.ctl_ok(&["user", "add", "carol@example.org", "c4rol"]);
    let out = router.ctl_ok(&["acl", "grant", "alice@example.com", "int"]);
    assert_eq!(out, "alice@example.com: granted int\n");
    router.ctl_ok(&["acl", "grant", "alice@example.com", "local"]);
    assert_eq!(
        router.ctl_ok(&["acl", "show", "alice@example.com"]),
        "int\nlocal\n"
    );
    router.ctl_ok(&["user", "passwd", "bob@example.com", "n3w-pass"]);
    let out = router.ctl_ok(&["user", "rm", "carol@example.org"]);
    assert_eq!(out, "carol@example.org removed\n");

    let shown = router.ctl_ok(&["user", "show"]);
    assert_eq!(
        shown,
        "alice@example.com groups=int,local\nbob@example.com groups=(none)\n"
    );
    let log = router.log();
    for secret in ["s3cret", "hunter2", "c4rol", "n3w-pass"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    assert!(
        log.contains("\"********\""),
        "the command is logged, hidden:\n{log}"
    );

    router.kill_hard();
    router.restart();
    assert_eq!(
        router.ctl_ok(&["user", "show"]),
        shown,
        "reloaded from the database"
    );
    assert_eq!(
        router.ctl_ok(&["user", "show", "alice@example.com"]),
        "alice@example.com groups=int,local\n"
    );
    router.ctl_ok(&["acl", "revoke", "alice@example.com", "int"]);
    router.kill_hard();
    router.restart();
    assert_eq!(
        router.ctl_ok(&["acl", "show", "alice@example.com"]),
        "local\n",
        "the revoke was stored"
    );
    let log = router.log();
    assert!(log.contains("subscribers: 2 loaded"), "{log}");
}

#[test]
fn user_and_acl_errors_say_what_is_wrong() {
    let router = Router::start_with(|m| {
        let mut m = m.set("usrloc", "db_mode", "1");
        m.extra.push_str("[subscriber]\nmax_entries = 1\n");
        m
    });
    router.ctl_ok(&["user", "add", "alice@example.com", "s3cret"]);
    let failed = |args: &[&str], expected: &str| {
        let out = router.ctl(args);
        assert!(!out.success(), "{args:?} succeeded:\n{}", out.describe());
        assert!(
            out.stderr.contains(expected),
            "{args:?}: expected {expected:?}\n{}",
            out.describe()
        );
    };
    failed(
        &["user", "add", "alice@example.com", "other"],
        "alice@example.com: already a subscriber",
    );
    failed(
        &["user", "add", "bob@example.com", "x"],
        "the directory is full: 1 subscribers ([subscriber] max_entries)",
    );
    failed(
        &["user", "add", "alice", "x"],
        "invalid value 'alice' for '<AOR>': names no domain (expected user@domain)",
    );
    failed(
        &["user", "rm", "bob@example.com"],
        "bob@example.com: no such subscriber",
    );
    failed(
        &["user", "passwd", "bob@example.com", "x"],
        "bob@example.com: no such subscriber",
    );
    failed(
        &["acl", "grant", "bob@example.com", "int"],
        "bob@example.com: no such subscriber",
    );
    failed(
        &["acl", "revoke", "alice@example.com", "int"],
        "alice@example.com: not in group \"int\"",
    );
    failed(&["user", "frob"], "wisp ctl user <add|passwd|rm|show>");
}

/// `wisp ctl user passwd <aor> -` with `stdin` on standard input.
fn passwd_from_stdin(router: &Router, stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(wisp_bin())
        .arg("ctl")
        .arg("--config")
        .arg(router.manifest_path())
        .args(["user", "passwd", "alice@example.com", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wisp ctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write the password");
    child.wait_with_output().expect("wisp ctl ends")
}

#[test]
fn a_password_of_dash_is_read_from_standard_input() {
    let router = Router::start();
    router.ctl_ok(&["user", "add", "alice@example.com", "s3cret"]);
    let out = passwd_from_stdin(&router, "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("password \"\": must not be empty"),
        "an empty line is no password, and \"-\" was not taken as one: {stderr}"
    );
    let out = passwd_from_stdin(&router, "n3w secret\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "alice@example.com: password changed (in memory only: usrloc.db_mode = 0)\n"
    );
    assert!(!router.log().contains("n3w secret"));
}
