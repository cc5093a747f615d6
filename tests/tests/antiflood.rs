//! The default plugin's `route[REQINIT]` (issue 16): a source over its pike
//! rate is banned through the `ipban` htable while other sources are
//! served, `wisp ctl htable` shows and lifts the ban, and scanners —
//! SIPVicious' `svmap` among them — get no answer at all.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use wisp_e2e::*;

const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const INNOCENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// Send `n` keepalive OPTIONS to the router at once, then count the
/// answers that arrive within a second.
fn burst(router: &Router, ua: &TestUa, n: usize) -> usize {
    for _ in 0..n {
        ua.send_to(
            router.udp_addr(),
            &ua.request("OPTIONS", &router.uri()).build(),
        );
    }
    let mut answered = 0;
    while ua.recv_response(Duration::from_secs(1)).is_some() {
        answered += 1;
    }
    answered
}

fn keepalive_answered(router: &Router, ua: &TestUa) -> bool {
    let (_, fin) = ua.transact(
        router.udp_addr(),
        &ua.request("OPTIONS", &router.uri()),
        RECV,
    );
    fin.is_some_and(|m| m.status() == Some(200))
}

#[test]
fn a_source_over_its_pike_rate_is_banned_while_others_are_served() {
    // 10 requests at once, then 10 per 10 s: the burst below cannot earn a
    // request back while it is sent, however slow the machine.
    let router = Router::start_with(|mut m| {
        m.extra
            .push_str("[pike]\nsampling_time_unit = 10\nreqs_density_per_unit = 10\n");
        m
    });
    let attacker = TestUa::on(ATTACKER, "mallory");
    let answered = burst(&router, &attacker, 40);
    assert_eq!(answered, 10, "the burst allowance, then silence");
    assert!(
        router.log().contains("pike blocking"),
        "the ban is logged:\n{}",
        router.log()
    );
    // Banned: even a single request is dropped now.
    assert!(
        !keepalive_answered(&router, &attacker),
        "the banned source is dropped"
    );
    // Another source, and the router's own address, are served.
    let innocent = TestUa::on(INNOCENT, "alice");
    assert!(keepalive_answered(&router, &innocent));
    assert!(keepalive_answered(&router, &TestUa::new("local")));

    let dump = router.ctl_ok(&["htable", "dump", "ipban"]);
    assert_eq!(dump, "127.0.0.2 = 1\n", "only the attacker is banned");
    let out = router.ctl_ok(&["htable", "rm", "ipban", "127.0.0.2"]);
    assert!(out.contains("removed 127.0.0.2"), "{out}");
    assert_eq!(router.ctl_ok(&["htable", "dump", "ipban"]), "");
    let again = router.ctl(&["htable", "rm", "ipban", "127.0.0.2"]);
    assert!(!again.success(), "{}", again.describe());
    let unknown = router.ctl(&["htable", "dump", "nope"]);
    assert!(
        !unknown.success() && unknown.describe().contains("no [[htable]] named \"nope\""),
        "{}",
        unknown.describe()
    );
}

#[test]
fn a_lifted_ban_lets_the_source_back_once_its_rate_allows() {
    let router = Router::start_with(|mut m| {
        m.extra
            .push_str("[pike]\nsampling_time_unit = 1\nreqs_density_per_unit = 5\n");
        m
    });
    let attacker = TestUa::on(ATTACKER, "mallory");
    assert!(burst(&router, &attacker, 20) <= 6);
    router.ctl_ok(&["htable", "rm", "ipban", "127.0.0.2"]);
    // A second refills a unit's worth of requests.
    std::thread::sleep(Duration::from_millis(1100));
    assert!(keepalive_answered(&router, &attacker), "served again");
}

#[test]
fn requests_with_a_scanner_user_agent_get_no_answer() {
    let router = Router::start();
    let ua = TestUa::new("alice");
    for agent in [
        "friendly-scanner",
        "sipcli/v1.8",
        "SIPVicious 0.3",
        "VaxSIPUserAgent/3.1",
    ] {
        let req = ua
            .request("OPTIONS", &router.uri())
            .header("User-Agent", agent);
        let (_, fin) = ua.transact(router.udp_addr(), &req, Duration::from_millis(500));
        assert!(fin.is_none(), "{agent}: dropped silently, got {fin:?}");
    }
    let req = ua
        .request("OPTIONS", &router.uri())
        .header("User-Agent", "Linphone/5.2");
    let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
    assert_eq!(
        fin.and_then(|m| m.status()),
        Some(200),
        "a phone is answered"
    );
}

/// `svmap` (SIPVicious, installed by `make test`) finds a SIP server by its
/// answer to an OPTIONS with `User-Agent: friendly-scanner`; the default
/// plugin gives it none. The control run, against the same plugin with
/// `drop_scanners = false`, finds the router. svmap addresses
/// `sip:100@127.0.0.1` without a port, so 127.0.0.1 is an alias (else the
/// router would relay the OPTIONS to port 5060, where svmap itself listens).
#[test]
fn svmap_finds_nothing() {
    let svmap = |router: &Router| {
        let mut cmd = Command::new(installed_tool("sipvicious_svmap", "sipvicious (pip)"));
        cmd.args(["-p", &router.udp_port().to_string()]);
        cmd.arg("127.0.0.1");
        let out = run_with_timeout(cmd, Duration::from_secs(60));
        (format!("{}{}", out.stdout, out.stderr), out)
    };
    let alias = |m: Manifest| m.set("server", "aliases", "[\"localhost\", \"127.0.0.1\"]");
    let (all, out) = svmap(&Router::start_with(alias));
    assert!(all.contains("found nothing"), "{}", out.describe());
    let control = Router::start_with(|m| alias(m).set("params", "drop_scanners", "false"));
    let (all, out) = svmap(&control);
    assert!(
        !all.contains("found nothing")
            && all.contains(&format!("127.0.0.1:{}", control.udp_port())),
        "control: without the filter svmap finds the router\n{}",
        out.describe()
    );
}
