//! `plugins/registrar-auth` (`config/registrar-auth.toml`) in the running
//! router: what it refuses or challenges without credentials. The router
//! has no subscriber store yet, so nobody can authenticate here; the
//! challenges and refusals are what "not an open relay" rests on.

use wisp_e2e::*;

fn start() -> Router {
    Router::start_with(|m| m.plugin_file(&plugin_path("registrar_auth")))
}

/// `sip:<user>localhost:<port>`: one of ours (the alias on the listen port).
fn ours(router: &Router, user: &str) -> String {
    format!("sip:{user}localhost:{}", router.udp_port())
}

/// Send `req` and return the final answer's status and the answer.
fn answer(router: &Router, ua: &TestUa, req: &RequestBuilder) -> (u16, wisp_sip::Message) {
    ua.send_to(router.udp_addr(), &req.build());
    let (resp, _) = ua
        .recv_answer_for(&req.call_id, RECV)
        .unwrap_or_else(|| panic!("no final answer to {}\n{}", req.method, router.log()));
    (resp.status().unwrap_or(0), resp)
}

#[test]
fn a_register_without_credentials_is_challenged_for_its_domain() {
    let router = start();
    let ua = TestUa::new("alice");
    let reg = ua
        .request("REGISTER", &ours(&router, ""))
        .to(&ours(&router, "alice@"))
        .from(&ours(&router, "alice@"));
    let (code, resp) = answer(&router, &ua, &reg);
    assert_eq!(code, 401);
    let c = wisp_sip::Challenge::parse(
        resp.header("WWW-Authenticate")
            .expect("challenge")
            .value
            .as_ref(),
    )
    .expect("parses");
    assert_eq!(c.param("realm"), Some("localhost"));
    // A REGISTER for a domain that is not ours is not relayed.
    let foreign = ua
        .request("REGISTER", "sip:elsewhere.example")
        .to("sip:alice@elsewhere.example")
        .from("sip:alice@elsewhere.example");
    assert_eq!(answer(&router, &ua, &foreign).0, 403);
}

#[test]
fn it_is_no_open_relay_and_local_callers_must_authenticate() {
    let router = start();
    let ua = TestUa::new("mallory");
    // Neither from nor to us: refused outright.
    let relay = ua
        .request("INVITE", "sip:bob@elsewhere.example")
        .from("sip:mallory@evil.example");
    assert_eq!(
        answer(&router, &ua, &relay).0,
        403,
        "a request neither from nor to a local domain is refused"
    );
    // Claiming to be one of ours: challenged as a proxy.
    let local = ua
        .request("INVITE", "sip:bob@elsewhere.example")
        .from(&ours(&router, "alice@"));
    let (code, resp) = answer(&router, &ua, &local);
    assert_eq!(code, 407);
    assert!(resp.header("Proxy-Authenticate").is_some());
    // To one of ours from outside: no credentials needed (here: not found).
    let incoming = ua
        .request("INVITE", &ours(&router, "bob@"))
        .from("sip:mallory@evil.example");
    assert_eq!(answer(&router, &ua, &incoming).0, 404);
    // Keepalives are answered.
    let ping = ua
        .request("OPTIONS", &ours(&router, ""))
        .from("sip:mallory@evil.example");
    assert_eq!(answer(&router, &ua, &ping).0, 200);
}
