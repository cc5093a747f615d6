//! Capabilities (issue 5): a plugin runs external programs only when its
//! manifest grants them (`[plugin.capabilities] exec`). Without the grant
//! the host function refuses at once, the request is answered, and the
//! router answers the next request within its normal latency. With it,
//! SER's "Executing External Script" redirect server works: `exec_msg`
//! logs the source, `exec_dset` sets the destination set, and the 300
//! lists it in Contact. Fixture programs are in tests/fixtures.

use std::time::{Duration, Instant};

use wisp_e2e::*;

fn fixture(name: &str) -> String {
    repo_root()
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn toml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

fn ask(router: &Router, ua: &TestUa, user: &str) -> (wisp_sip::Message, Duration) {
    let req = ua.request("OPTIONS", &router.aor(user));
    let started = Instant::now();
    let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
    let fin =
        fin.unwrap_or_else(|| panic!("no final answer for user {user:?}; log:\n{}", router.log()));
    (fin, started.elapsed())
}

#[test]
fn ungranted_exec_is_refused_and_the_next_request_is_answered_promptly() {
    let mut router = Router::start_with(|m| {
        m.set("plugin", "name", "\"faulty\"")
            .plugin_file(&plugin_path("faulty"))
    });
    let ua = TestUa::new("alice");
    let (fin, _) = ask(&router, &ua, "ungranted");
    assert_eq!(fin.status(), Some(500), "{}", text(&fin));
    let (fin, took) = ask(&router, &ua, "ok");
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
    assert!(
        took < Duration::from_millis(500),
        "next answer took {took:?}"
    );
    router.assert_alive();
    let log = router.log();
    assert!(
        log.contains("NotPermitted") && log.contains("not granted to plugin \\\"faulty\\\""),
        "the refusal names the plugin:\n{log}"
    );
}

fn start_redirect(ports: Ports, grant: &[&str], log_file: &str) -> Router {
    start_redirect_with(ports, grant, "log-src.sh", log_file, false)
}

/// The exec-redirect plugin: `exec_msg(<log_script> <log_file>)`, then
/// `exec_dset(lcr.sh ...)` and a 300.
fn start_redirect_with(
    ports: Ports,
    grant: &[&str],
    log_script: &str,
    log_file: &str,
    stateful: bool,
) -> Router {
    let dset = format!("{} gw1.example.net gw2.example.net", fixture("lcr.sh"));
    let log_cmd = format!("{} {log_file}", fixture(log_script));
    let extra = if grant.is_empty() {
        String::new()
    } else {
        format!("[plugin.capabilities]\nexec = {}\n", toml_list(grant))
    };
    Router::start_on(ports, move |mut m| {
        m.extra = extra.clone();
        m.set("plugin", "name", "\"exec-redirect\"")
            .plugin_file(&plugin_path("exec_redirect"))
            .set("plugin", "deadline_ms", "2000")
            .set("params", "dset_command", &format!("{dset:?}"))
            .set("params", "log_command", &format!("{log_cmd:?}"))
            .set("params", "stateful", &stateful.to_string())
    })
}

fn contact_of(reply: &wisp_sip::Message) -> String {
    reply
        .header("Contact")
        .map(|c| String::from_utf8_lossy(&c.value).into_owned())
        .unwrap_or_default()
}

/// The same redirect with `t_newtran` + `t_reply`: the 300 from the
/// transaction lists the destination set too, and a retransmission is
/// answered from the transaction without running either program again.
#[test]
fn stateful_redirect_lists_the_destination_set_and_absorbs_retransmissions() {
    let dir = TempDir::new();
    let log_file = dir.path().join("src.log").to_string_lossy().into_owned();
    let router = start_redirect_with(
        Ports::Any,
        &[&fixture("lcr.sh"), &fixture("log-src.sh")],
        "log-src.sh",
        &log_file,
        true,
    );
    let ua = TestUa::new("alice");
    let req = ua.request("OPTIONS", &router.aor("4931"));
    let mut contacts = Vec::new();
    for _ in 0..2 {
        let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
        let fin = fin.unwrap_or_else(|| panic!("no final answer; log:\n{}", router.log()));
        assert_eq!(fin.status(), Some(300), "{}\n{}", text(&fin), router.log());
        contacts.push(contact_of(&fin));
    }
    assert_eq!(
        contacts,
        ["<sip:4931@gw1.example.net>, <sip:4931@gw2.example.net>"; 2]
    );
    let logged = std::fs::read_to_string(&log_file).expect("exec_msg wrote the log");
    let runs = logged
        .lines()
        .filter(|l| l.contains(&router.aor("4931")))
        .count();
    assert_eq!(runs, 1, "the retransmission ran exec_msg again:\n{logged}");
}

#[test]
fn granted_exec_redirects_to_the_programs_destination_set() {
    let dir = TempDir::new();
    let log_file = dir.path().join("src.log").to_string_lossy().into_owned();
    let router = start_redirect(
        Ports::Any,
        &[&fixture("lcr.sh"), &fixture("log-src.sh")],
        &log_file,
    );
    let ua = TestUa::new("alice");
    let (fin, _) = ask(&router, &ua, "4930");
    assert_eq!(fin.status(), Some(300), "{}\n{}", text(&fin), router.log());
    assert_eq!(
        contact_of(&fin),
        "<sip:4930@gw1.example.net>, <sip:4930@gw2.example.net>",
        "{}",
        text(&fin)
    );
    let logged = std::fs::read_to_string(&log_file).expect("exec_msg wrote the log");
    // The last line: the router's readiness probe came through the plugin first.
    assert_eq!(
        logged.lines().last().unwrap_or_default(),
        format!("127.0.0.1 OPTIONS {} SIP/2.0", router.aor("4930")),
        "{logged}"
    );
}

#[test]
fn redirect_without_the_grant_is_refused_with_500() {
    let dir = TempDir::new();
    let log_file = dir.path().join("src.log");
    // Only the log program is granted: exec_msg runs, exec_dset is refused.
    let router = start_redirect(
        Ports::Any,
        &[&fixture("log-src.sh")],
        &log_file.to_string_lossy(),
    );
    let ua = TestUa::new("alice");
    let (fin, _) = ask(&router, &ua, "4930");
    assert_eq!(fin.status(), Some(500), "{}", text(&fin));
    assert!(fin.header("Contact").is_none(), "{}", text(&fin));
    assert!(log_file.exists(), "the granted exec_msg ran");
    let log = router.log();
    assert!(
        log.contains("lcr.sh") && log.contains("not granted"),
        "{log}"
    );
    // The refusal names the message it was for (issue 18).
    let call_id = fin
        .call_id()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .expect("Call-ID");
    assert!(
        log.lines().any(|l| l.contains("exec refused")
            && l.contains(&format!("call_id={call_id}"))
            && l.contains("method=OPTIONS")),
        "{log}"
    );
}

#[test]
fn redirect_with_no_capabilities_at_all_is_refused_and_runs_nothing() {
    let dir = TempDir::new();
    let log_file = dir.path().join("src.log");
    // sipsak cuts 5-digit ports from the URI it sends (see sipsak.rs).
    let router = start_redirect(Ports::Below10000, &[], &log_file.to_string_lossy());
    // sipsak, a real client, gets the refusal too.
    let out = {
        let mut cmd = std::process::Command::new(sipsak());
        cmd.args(["-vv", "-H", "127.0.0.1", "-s", &router.aor("4930")]);
        run_with_timeout(cmd, Duration::from_secs(15))
    };
    assert!(
        out.stdout.contains("500"),
        "sipsak must see the 500\n{}",
        out.describe()
    );
    assert!(!log_file.exists(), "no program ran without a grant");
}

#[test]
fn a_program_past_the_deadline_is_killed_and_other_requests_are_served() {
    let slow = fixture("slow-lcr.sh");
    let router = Router::start_with(|mut m| {
        m.extra = format!("[plugin.capabilities]\nexec = {}\n", toml_list(&[&slow]));
        m.set("plugin", "name", "\"exec-redirect\"")
            .plugin_file(&plugin_path("exec_redirect"))
            .set("plugin", "deadline_ms", "300")
            .set("params", "dset_command", &format!("{slow:?}"))
    });
    let a = TestUa::new("alice");
    let b = TestUa::new("bob");
    let hanging = a.request("OPTIONS", &router.aor("slow"));
    let started = Instant::now();
    a.send_to(router.udp_addr(), &hanging.build());
    // While one worker waits for the hanging program, another request is answered.
    let (fin, took) = ask(&router, &b, "fast");
    assert_eq!(fin.status(), Some(300), "{}", text(&fin));
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let (fin, _) = a
        .recv_response_for(&hanging.call_id, RECV)
        .expect("the hanging request is answered");
    assert_eq!(fin.status(), Some(500), "{}", text(&fin));
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "killed at the 300 ms deadline, answered after {waited:?}"
    );
    let log = router.log();
    assert!(log.contains("killed"), "{log}");
}

/// Kamailio's `setvars`: the program sees the transaction (top Via branch),
/// the dialog (To-tag) and every header field as `SIP_HF_<NAME>`.
#[test]
fn exec_msg_gets_the_header_fields_and_ids_kamailio_gives() {
    let dir = TempDir::new();
    let log_file = dir.path().join("env.log").to_string_lossy().into_owned();
    let router = start_redirect_with(
        Ports::Any,
        &[&fixture("lcr.sh"), &fixture("log-env.sh")],
        "log-env.sh",
        &log_file,
        false,
    );
    let ua = TestUa::new("alice");
    let req = ua
        .request("OPTIONS", &router.aor("4930"))
        .call_id("env-test-1@e2e.wisp")
        .branch("z9hG4bK-env-1");
    let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
    let fin = fin.unwrap_or_else(|| panic!("no answer; log:\n{}", router.log()));
    assert_eq!(fin.status(), Some(300), "{}", text(&fin));
    let logged = std::fs::read_to_string(&log_file).expect("exec_msg wrote the log");
    // The last five lines: the router's readiness probe came through first.
    let last: Vec<&str> = logged.lines().rev().take(5).collect();
    let sent = wisp_sip::Message::parse(req.build()).expect("our request parses");
    let want = [
        "TID=z9hG4bK-env-1".to_owned(),
        "DID=".to_owned(),
        "CALL_ID=env-test-1@e2e.wisp".to_owned(),
        format!("CSEQ={}", sent.cseq().expect("cseq")),
        // As received: Max-Forwards is decremented on the way out only.
        format!(
            "MAX_FORWARDS={}",
            sent.max_forwards().expect("mf").expect("mf")
        ),
    ];
    let got: Vec<&str> = last.into_iter().rev().collect();
    assert_eq!(
        got,
        want.iter().map(String::as_str).collect::<Vec<_>>(),
        "{logged}"
    );
}
