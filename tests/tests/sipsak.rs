//! Interop with sipsak, a real third-party SIP client.
//!
//! sipsak 0.9.8.1 quirks handled here: it truncates 5-digit ports in the
//! URI it sends (hence routers on 4-digit ports), it puts its hostname in
//! Via/Contact unless `-H 127.0.0.1`, and it sends from another socket than
//! the port in its Via (`rport` is set, so replies go to the real source).
//! These tests FAIL if sipsak is missing: `make test` installs it.

use std::process::Command;
use std::time::Duration;

use wisp_e2e::*;

const T: Duration = Duration::from_secs(15);

fn run_sipsak(args: &[String]) -> RunOutput {
    let mut cmd = Command::new(sipsak());
    cmd.args(args);
    run_with_timeout(cmd, T)
}

#[test]
fn sipsak_options_ping_gets_200() {
    let router = Router::start_for_sipsak();
    let out = run_sipsak(&[
        "-vv".into(),
        "-H".into(),
        "127.0.0.1".into(),
        "-s".into(),
        router.uri(),
    ]);
    assert!(
        out.success(),
        "sipsak OPTIONS ping failed\n{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("200"),
        "sipsak output must show a 200\n{}",
        out.describe()
    );
}

#[test]
fn sipsak_usrloc_registers_contact() {
    let router = Router::start_for_sipsak();
    let ua = TestUa::new("alice");
    let contact = format!("sip:alice@127.0.0.1:{}", ua.port());
    let out = run_sipsak(&[
        "-vv".into(),
        "-U".into(),
        "-C".into(),
        contact.clone(),
        "-x".into(),
        "3600".into(),
        "-H".into(),
        "127.0.0.1".into(),
        "-s".into(),
        router.aor("alice"),
    ]);
    assert!(
        out.success(),
        "sipsak usrloc REGISTER failed\n{}",
        out.describe()
    );

    // The binding is really there: a request to the AOR reaches `ua`.
    let caller = TestUa::new("carol");
    let opt = caller.request("OPTIONS", &router.aor("alice"));
    caller.send_to(router.udp_addr(), &opt.build());
    let (req, src) = ua
        .recv_request(RECV)
        .expect("request to the AOR registered by sipsak did not reach its contact");
    let ruri = String::from_utf8_lossy(&req.request_uri_raw()).into_owned();
    assert_eq!(ruri, contact);
    ua.reply(&req, src, 200, "OK", "t");
    let (resp, _) = caller
        .recv_response_for(&opt.call_id, RECV)
        .expect("200 did not come back");
    assert_eq!(resp.status(), Some(200));
}

/// Full usrloc cycle: sipsak registers itself, sends a MESSAGE to its own
/// AOR through the router (which it answers itself), then unregisters.
#[test]
fn sipsak_usrloc_full_cycle() {
    let router = Router::start_for_sipsak();
    let lport = free_port_below_10000();
    let out = run_sipsak(&[
        "-vv".into(),
        "-U".into(),
        "-H".into(),
        "127.0.0.1".into(),
        "-l".into(),
        lport.to_string(),
        "-x".into(),
        "3600".into(),
        "-s".into(),
        router.aor("sipsaker"),
    ]);
    assert!(
        out.success(),
        "sipsak usrloc cycle failed\n{}",
        out.describe()
    );
}

/// The issue's own command, without `-x`: sipsak asks for a 15 s expiry,
/// which the default manifest raises to `min_expires` (Kamailio's behaviour)
/// instead of refusing it with 423.
#[test]
fn sipsak_usrloc_with_its_default_expiry_registers() {
    let router = Router::start_for_sipsak();
    let ua = TestUa::new("alice");
    let contact = format!("sip:alice@127.0.0.1:{}", ua.port());
    let out = run_sipsak(&[
        "-U".into(),
        "-C".into(),
        contact,
        "-s".into(),
        router.aor("alice"),
    ]);
    assert!(
        out.success(),
        "sipsak -U -C ... -s ... failed\n{}",
        out.describe()
    );
}
