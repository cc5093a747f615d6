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
