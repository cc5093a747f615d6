//! Seed 003 (SER "Server Operation"): the operational practices, the
//! authentication-policy HOWTO and a troubleshooting entry, each as a plugin
//! in the running router, checked on the wire and in the router's log.

use std::time::Duration;

use wisp_e2e::*;
use wisp_sip::Message;

/// Send `req` from `ua` to the router; its final answer (100 skipped).
fn final_answer(router: &Router, ua: &TestUa, req: &RequestBuilder) -> Message {
    ua.send_to(router.udp_addr(), &req.build());
    ua.recv_answer_for(&req.call_id, RECV)
        .unwrap_or_else(|| panic!("no final answer to {}\n{}", req.method, router.log()))
        .0
}

/// No second final answer for `call_id` comes to `ua` (retransmissions of
/// the same answer are not sent over this short wait on loopback either).
fn assert_no_second_answer(ua: &TestUa, call_id: &str) {
    if let Some((m, _)) = ua.recv_answer_for(call_id, Duration::from_millis(500)) {
        panic!("a second final answer:\n{}", text(&m));
    }
}

/// The router's log lines that carry `call_id`.
fn log_lines_of(router: &Router, call_id: &str) -> Vec<String> {
    router
        .log()
        .lines()
        .filter(|l| l.contains(&format!("call_id={call_id}")))
        .map(str::to_owned)
        .collect()
}

// ------------------------------------------------ authentication policy

fn start_auth_policy() -> Router {
    Router::start_with(|m| {
        m.set("plugin", "name", "\"auth-policy\"")
            .plugin_file(&plugin_path("auth_policy"))
            .set("params", "domain", "\"foo.bar\"")
    })
}

/// "Authentication Policy: Prevention of Unauthorized Domain Name Use in
/// From and More": `search("^(f|From):.*foo.bar")` + `proxy_authorize`
/// (`plugins/auth-policy`). A request claiming foo.bar in From is
/// challenged and never relayed until its credentials are right; then it
/// is relayed without them. A caller from another domain is relayed
/// without any challenge.
#[test]
fn authentication_policy_prevention_of_unauthorized_domain_name_use_in_from() {
    let router = start_auth_policy();
    router.ctl_ok(&["user", "add", "alice@foo.bar", "s3cret"]);
    let bob = TestUa::new("bob");
    let target = bob.contact();
    let caller = TestUa::new("caller");

    // Spoofed: claims foo.bar, no credentials. Challenged for foo.bar.
    let spoofed = caller.request("INVITE", &target).from("sip:alice@foo.bar");
    let resp = final_answer(&router, &caller, &spoofed);
    assert_eq!(resp.status(), Some(407), "{}", text(&resp));
    let challenge = md5_challenge(&resp, "Proxy-Authenticate");
    assert_eq!(challenge.param("realm"), Some("foo.bar"));
    // The compact form `f:` is searched too (the seed's `(f|From)`).
    let compact = caller.request("MESSAGE", &target).from("sip:mallory@foo.bar");
    let raw = String::from_utf8_lossy(&compact.build()).replacen("\r\nFrom: ", "\r\nf: ", 1);
    caller.send_to(router.udp_addr(), raw.as_bytes());
    let (resp, _) = caller
        .recv_answer_for(&compact.call_id, RECV)
        .expect("an answer to the compact From");
    assert_eq!(resp.status(), Some(407), "{}", text(&resp));
    // A wrong password: challenged again.
    let wrong = caller.request("INVITE", &target).from("sip:alice@foo.bar").header(
        "Proxy-Authorization",
        &md5_credentials(&challenge, "INVITE", &target, "alice", "guess", 1),
    );
    assert_eq!(final_answer(&router, &caller, &wrong).status(), Some(407));
    assert!(
        bob.recv_request(Duration::from_millis(300)).is_none(),
        "nothing claiming foo.bar was relayed without the right credentials"
    );

    // The real alice: relayed, credentials consumed, bob's answer comes back.
    let honest = caller.request("INVITE", &target).from("sip:alice@foo.bar").header(
        "Proxy-Authorization",
        &md5_credentials(&challenge, "INVITE", &target, "alice", "s3cret", 1),
    );
    caller.send_to(router.udp_addr(), &honest.build());
    let (inv, src) = bob.recv_request(RECV).expect("alice's INVITE reaches bob");
    assert_eq!(call_id_of(&inv).as_deref(), Some(honest.call_id.as_str()));
    assert!(inv.header("Proxy-Authorization").is_none(), "{}", text(&inv));
    bob.reply(&inv, src, 200, "OK", "b1");
    let (answer, _) = caller
        .recv_answer_for(&honest.call_id, RECV)
        .expect("bob's answer");
    assert_eq!(answer.status(), Some(200));

    // Another domain in From: no credentials asked, relayed as it is.
    let foreign = caller
        .request("INVITE", &target)
        .from("sip:carol@elsewhere.example");
    caller.send_to(router.udp_addr(), &foreign.build());
    let (inv, src) = bob.recv_request(RECV).expect("carol's INVITE reaches bob");
    assert_eq!(call_id_of(&inv).as_deref(), Some(foreign.call_id.as_str()));
    bob.reply(&inv, src, 200, "OK", "b2");
    let (answer, _) = caller
        .recv_answer_for(&foreign.call_id, RECV)
        .expect("bob's answer to carol");
    assert_eq!(answer.status(), Some(200), "{}", text(&answer));
}
