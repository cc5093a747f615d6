//! Seed 002 (SER "Hello World ser.cfg Analysis") and seed 004 (the OpenSER
//! Getting Started guide): the "Hello World" and "MySQL and Authentication"
//! scripts, each as its plugin in the running router.

use wisp_e2e::*;
use wisp_sip::{Message, Method};

/// Send `req` from `ua` to the router; its final answer (100 skipped).
fn final_answer(router: &Router, ua: &TestUa, req: &RequestBuilder) -> Message {
    ua.send_to(router.udp_addr(), &req.build());
    ua.recv_answer_for(&req.call_id, RECV)
        .unwrap_or_else(|| panic!("no final answer to {}\n{}", req.method, router.log()))
        .0
}

/// "Hello World" (`plugins/hello-world`, the SER and OpenSER guides' first
/// script): Max-Forwards checked (483), REGISTER saved, a call to a
/// registered user looked up and relayed with the route recorded, 404 for
/// a user who is not registered.
#[test]
fn openser_hello_world() {
    let router = Router::start_with(|m| {
        m.plugin_file(&plugin_path("hello_world"))
            .set("plugin", "name", "\"hello-world\"")
    });
    let alice = TestUa::new("alice");
    let bob = TestUa::new("bob");
    bob.register(&router);

    let call = alice.request("INVITE", &router.aor("bob"));
    alice.send_to(router.udp_addr(), &call.build());
    let (inv, src) = bob.expect_request(Method::Invite);
    assert_eq!(
        String::from_utf8_lossy(&inv.request_uri_raw()),
        bob.contact()
    );
    let rr = header_str(&inv, "Record-Route").unwrap_or_default();
    assert!(
        rr.contains(&router.udp_port().to_string()) && rr.contains(";lr"),
        "record_route(): {}",
        text(&inv)
    );
    assert_eq!(inv.max_forwards().expect("Max-Forwards"), Some(69));
    bob.reply(&inv, src, 200, "OK", "b1");
    let (ok, _) = alice
        .recv_answer_for(&call.call_id, RECV)
        .expect("bob's 200");
    assert_eq!(ok.status(), Some(200));

    let nobody = alice.request("INVITE", &router.aor("nobody"));
    assert_eq!(final_answer(&router, &alice, &nobody).status(), Some(404));
    let looped = alice
        .request("OPTIONS", &router.aor("bob"))
        .max_forwards(Some(0));
    assert_eq!(final_answer(&router, &alice, &looped).status(), Some(483));
}

/// "MySQL and Authentication" (`plugins/registrar-auth`, on the SQLite
/// subscriber table): a REGISTER is challenged (`www_authorize` /
/// `www_challenge`) and saved only with the subscriber's password; then
/// calls to the user reach the registered contact, and unknown users get
/// 404.
#[test]
fn mysql_and_authentication() {
    let router = Router::start_with(|m| m.plugin_file(&plugin_path("registrar_auth")));
    router.ctl_ok(&["user", "add", "alice@localhost", "s3cret"]);
    let port = router.udp_port();
    let registrar = format!("sip:localhost:{port}");
    let aor = format!("sip:alice@localhost:{port}");
    let alice = TestUa::new("alice");
    let register = || {
        alice
            .request("REGISTER", &registrar)
            .from(&aor)
            .to(&aor)
            .expires(600)
    };

    let first = final_answer(&router, &alice, &register());
    assert_eq!(first.status(), Some(401), "{}", text(&first));
    let c = md5_challenge(&first, "WWW-Authenticate");
    assert_eq!(c.param("realm"), Some("localhost"));
    for (password, expect) in [("guess", 401), ("s3cret", 200)] {
        let creds = md5_credentials(&c, "REGISTER", &registrar, "alice", password, 1);
        let attempt = register().header("Authorization", &creds);
        let resp = final_answer(&router, &alice, &attempt);
        assert_eq!(resp.status(), Some(expect), "{password}: {}", text(&resp));
    }

    // A caller from elsewhere reaches alice at her contact.
    let carol = TestUa::new("carol");
    let call = carol
        .request("INVITE", &aor)
        .from("sip:carol@elsewhere.example");
    carol.send_to(router.udp_addr(), &call.build());
    let (inv, src) = alice.expect_request(Method::Invite);
    assert_eq!(
        String::from_utf8_lossy(&inv.request_uri_raw()),
        alice.contact()
    );
    alice.reply(&inv, src, 200, "OK", "a1");
    let (ok, _) = carol
        .recv_answer_for(&call.call_id, RECV)
        .expect("alice's 200");
    assert_eq!(ok.status(), Some(200));
    let nobody = carol
        .request("INVITE", &format!("sip:nobody@localhost:{port}"))
        .from("sip:carol@elsewhere.example");
    assert_eq!(final_answer(&router, &carol, &nobody).status(), Some(404));
}
