//! Floods an attacker can send (issue 16), at a bounded scale: what they
//! cost must stay bounded, and others must still be served.

use std::process::Command;
use std::time::Duration;

use wisp_e2e::*;

/// A REGISTER flood, a new AOR each (the table in the issue: 650,000 AORs
/// stored, nothing bounding them): with `usrloc.memory_mb = 1` (1,024
/// AORs) the router keeps 1,024 and answers the rest 503, and an AOR it
/// already holds still refreshes.
#[test]
fn a_registration_flood_is_bounded_by_the_usrloc_budget() {
    let router = Router::start_with(|m| m.set("usrloc", "memory_mb", "1"));
    let mut cmd = Command::new(wisp_bench_bin());
    cmd.arg("--target")
        .arg(router.udp_addr().to_string())
        .args([
            "--json", "--method", "register", "--count", "3000", "--window", "32",
        ])
        .args(["--timeout-ms", "3000", "--duration", "30"]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(out.success(), "{}", out.describe());
    assert_eq!(bench_field(&out.stdout, "lost"), 0, "{}", out.stdout);
    assert_eq!(
        bench_field(&out.stdout, "succeeded"),
        1024,
        "{}",
        out.stdout
    );
    assert_eq!(
        bench_field(&out.stdout, "failed"),
        3000 - 1024,
        "{}",
        out.stdout
    );
    let held = router.ctl_ok(&["ul", "show"]);
    assert_eq!(
        held.lines().filter(|l| l.contains("sip:user")).count(),
        1024,
        "{held}"
    );
    // Full for new AORs, not for the ones it holds.
    let ua = TestUa::new("user5");
    let again = ua
        .request("REGISTER", &router.uri())
        .from(&router.aor("user5"))
        .to(&router.aor("user5"))
        .expires(600);
    let (_, fin) = ua.transact(router.udp_addr(), &again, RECV);
    assert_eq!(fin.expect("an answer").status(), Some(200));
    let newcomer = TestUa::new("newcomer");
    let req = newcomer
        .request("REGISTER", &router.uri())
        .from(&router.aor("newcomer"))
        .to(&router.aor("newcomer"))
        .expires(600);
    let (_, fin) = newcomer.transact(router.udp_addr(), &req, RECV);
    let fin = fin.expect("an answer");
    assert_eq!(fin.status(), Some(503), "{}", text(&fin));
    assert_eq!(header_str(&fin, "Retry-After").as_deref(), Some("60"));
}

/// An INVITE burst from one source to a contact that never answers (the
/// table in the issue: the global transaction limit filled and every new
/// INVITE got 503 for 62 s): with `tm.memory_mb = 1` the attacker's
/// transactions fill its half (`source_share_percent = 50`) and the rest
/// of its INVITEs get 503, while a call from another source still
/// completes, and the burst writes a bounded log. The default plugin's
/// flood ban is off here, so this tests the transaction budget alone.
#[test]
fn an_invite_burst_from_one_source_does_not_stop_another_sources_calls() {
    let router = Router::start_with(|mut m| {
        m.extra.push_str("[tm]\nmemory_mb = 1\n");
        m.set("params", "antiflood", "false")
    });
    let sink = TestUa::new("sink");
    sink.register(&router);
    let attacker = TestUa::on(std::net::Ipv4Addr::new(127, 0, 0, 2), "mallory");
    let before = router.log().lines().count();
    let burst = 1200;
    for i in 0..burst {
        let invite = attacker.request("INVITE", &router.aor("sink")).build();
        attacker.send_to(router.udp_addr(), &invite);
        if i % 100 == 99 {
            // Paced a little, so the socket drops none of the burst.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let (mut trying, mut refused) = (0, 0);
    while let Some((m, _)) = attacker.recv_response(Duration::from_secs(2)) {
        match m.status() {
            Some(100) => trying += 1,
            Some(503) => {
                assert!(header_str(&m, "Retry-After").is_some(), "{}", text(&m));
                refused += 1
            }
            other => panic!("unexpected answer {other:?}: {}", text(&m)),
        }
    }
    assert!(
        trying > 100 && refused > 100 && trying + refused == burst,
        "{trying} INVITEs got a transaction, {refused} a 503, of {burst}"
    );
    // Another source's call goes through while the burst's transactions live.
    let bob = TestUa::new("bob");
    bob.register(&router);
    let alice = TestUa::on(std::net::Ipv4Addr::new(127, 0, 0, 3), "alice");
    let invite = alice.request("INVITE", &router.aor("bob"));
    alice.send_to(router.udp_addr(), &invite.build());
    bob.answer_next(200, "OK", RECV)
        .expect("bob gets alice's INVITE");
    let (answer, _) = alice
        .recv_answer_for(&invite.call_id, RECV)
        .expect("alice gets an answer");
    assert_eq!(answer.status(), Some(200), "{}", text(&answer));
    let flood_lines = router.log().lines().count() - before;
    assert!(
        flood_lines <= 30,
        "{flood_lines} log lines for a burst of {burst} INVITEs:\n{}",
        router.log()
    );
}
