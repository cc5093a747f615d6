//! `plugins/registrar-auth` (`config/registrar-auth.toml`) in the running
//! router: what it refuses or challenges without credentials, and sipsak
//! registering with a subscriber's password (`wisp ctl user add`).

use std::process::Command;
use std::time::Duration;

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

/// sipsak 0.9.8.1 reads only the first challenge and knows only MD5, and
/// without `-u` it sends `alice@` as the digest user: MD5 first, `-u`.
fn sipsak_register(router: &Router, aor_user: &str, auth_user: &str, password: &str) -> RunOutput {
    let mut cmd = Command::new(sipsak());
    cmd.args([
        "-vv",
        "-U",
        "-a",
        password,
        "-u",
        auth_user,
        "-H",
        "127.0.0.1",
        "-s",
        &router.aor(aor_user),
    ]);
    run_with_timeout(cmd, Duration::from_secs(15))
}

#[test]
fn sipsak_registers_with_the_password_and_never_with_a_wrong_one_or_as_another_user() {
    let router = Router::start_on(Ports::Below10000, |m| {
        let mut m = m.plugin_file(&plugin_path("registrar_auth"));
        m.extra
            .push_str("[auth]\nalgorithms = [\"MD5\", \"SHA-256\"]\n");
        m
    });
    router.ctl_ok(&["user", "add", "alice@127.0.0.1", "secret"]);
    router.ctl_ok(&["user", "add", "bob@127.0.0.1", "bobpass"]);

    let wrong = sipsak_register(&router, "alice", "alice", "guess");
    let all = format!("{}{}", wrong.stdout, wrong.stderr);
    assert!(!wrong.success(), "{}", wrong.describe());
    assert!(all.contains("401 Unauthorized"), "{}", wrong.describe());
    assert!(!all.contains("SIP/2.0 200"), "{}", wrong.describe());

    // Bob's own password for alice's AOR: authenticated, refused by check_to.
    let hijack = sipsak_register(&router, "alice", "bob", "bobpass");
    let all = format!("{}{}", hijack.stdout, hijack.stderr);
    assert!(
        all.contains("403 Forbidden auth ID"),
        "{}",
        hijack.describe()
    );
    assert!(!all.contains("SIP/2.0 200"), "{}", hijack.describe());
    assert!(
        !router.ctl_ok(&["ul", "show"]).contains("alice"),
        "nobody registered alice yet"
    );

    let ok = sipsak_register(&router, "alice", "alice", "secret");
    assert!(
        ok.success(),
        "sipsak -U -a secret registers\n{}",
        ok.describe()
    );
    assert!(
        router
            .ctl_ok(&["ul", "show"])
            .contains("sip:alice@127.0.0.1"),
        "the binding is stored"
    );
}

/// A router running registrar-auth with `auth` as its `[auth]` table and
/// alice@127.0.0.1 (password s3cret) as a subscriber.
fn start_with_alice(auth: &str) -> Router {
    let router = Router::start_with(|m| {
        let mut m = m.plugin_file(&plugin_path("registrar_auth"));
        m.extra.push_str(&format!("[auth]\n{auth}\n"));
        m
    });
    router.ctl_ok(&["user", "add", "alice@127.0.0.1", "s3cret"]);
    router
}

/// REGISTER alice's AOR at `router` (R-URI `sip:127.0.0.1:<port>`) with
/// `authorization`, if any; the answer.
fn register(router: &Router, ua: &TestUa, authorization: Option<&str>) -> wisp_sip::Message {
    let mut reg = ua
        .request("REGISTER", &router.uri())
        .to(&router.aor("alice"))
        .from(&router.aor("alice"));
    if let Some(a) = authorization {
        reg = reg.header("Authorization", a);
    }
    answer(router, ua, &reg).1
}

#[test]
fn a_replayed_authorization_is_refused_and_the_next_nonce_count_accepted() {
    let router = start_with_alice("");
    let ua = TestUa::new("alice");
    let c = md5_challenge(&register(&router, &ua, None), "WWW-Authenticate");
    let uri = router.uri();
    let first = md5_credentials(&c, "REGISTER", &uri, "alice", "s3cret", 1);
    assert_eq!(register(&router, &ua, Some(&first)).status(), Some(200));
    let replay = register(&router, &ua, Some(&first));
    assert_eq!(replay.status(), Some(401), "the same credentials again");
    let again = md5_challenge(&replay, "WWW-Authenticate");
    assert_eq!(again.param("stale"), None);
    assert_ne!(again.param("nonce"), c.param("nonce"), "a fresh nonce");
    let next = md5_credentials(&c, "REGISTER", &uri, "alice", "s3cret", 2);
    assert_eq!(register(&router, &ua, Some(&next)).status(), Some(200));
    let wrong = md5_credentials(&c, "REGISTER", &uri, "alice", "guess", 3);
    assert_eq!(register(&router, &ua, Some(&wrong)).status(), Some(401));
}

#[test]
fn an_expired_nonce_gets_stale_true_and_the_retry_succeeds() {
    let router = start_with_alice("nonce_expires = 1");
    let ua = TestUa::new("alice");
    let c = md5_challenge(&register(&router, &ua, None), "WWW-Authenticate");
    std::thread::sleep(Duration::from_millis(2100));
    let uri = router.uri();
    let late = md5_credentials(&c, "REGISTER", &uri, "alice", "s3cret", 1);
    let stale = register(&router, &ua, Some(&late));
    assert_eq!(stale.status(), Some(401));
    let renewed = md5_challenge(&stale, "WWW-Authenticate");
    assert_eq!(renewed.param("stale"), Some("true"));
    let retry = md5_credentials(&renewed, "REGISTER", &uri, "alice", "s3cret", 1);
    assert_eq!(register(&router, &ua, Some(&retry)).status(), Some(200));
}

#[test]
fn two_routers_with_one_secret_accept_each_others_nonces() {
    let shared = "secret = \"one secret for both routers\"";
    let a = start_with_alice(shared);
    let b = start_with_alice(shared);
    let other = start_with_alice("secret = \"another secret entirely\"");
    let ua = TestUa::new("alice");
    let c = md5_challenge(&register(&a, &ua, None), "WWW-Authenticate");
    // The digest URI is a's, as the client wrote it; the realm is the same.
    let creds = md5_credentials(&c, "REGISTER", &a.uri(), "alice", "s3cret", 1);
    assert_eq!(register(&b, &ua, Some(&creds)).status(), Some(200));
    let refused = register(&other, &ua, Some(&creds));
    assert_eq!(refused.status(), Some(401));
    assert_eq!(
        md5_challenge(&refused, "WWW-Authenticate").param("stale"),
        None,
        "a nonce of another secret is not stale, just not ours"
    );
}
