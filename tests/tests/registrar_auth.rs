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
