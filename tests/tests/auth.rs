//! Digest authentication in the running router, through `plugins/auth-probe`
//! (REGISTER: `auth::require_www`): challenges on the wire and a real
//! client (sipsak) answering them for a user who is not a subscriber.
//! The host test `auth_plugin` covers known users (subscribers in memory),
//! `registrar_auth` sipsak registering a subscriber.

use std::process::Command;
use std::time::Duration;

use wisp_e2e::*;
use wisp_sip::Challenge;

fn probe(m: Manifest, auth: &str) -> Manifest {
    let mut m = m.plugin_file(&plugin_path("auth_probe"));
    m.extra.push_str(&format!("[auth]\n{auth}\n"));
    m
}

fn challenges(m: &wisp_sip::Message) -> Vec<Challenge> {
    m.header_values("WWW-Authenticate")
        .map(|v| Challenge::parse(v).expect("challenge parses"))
        .collect()
}

#[test]
fn register_without_credentials_gets_401_offering_sha256_then_md5_with_one_nonce() {
    let keys = TempDir::new();
    let key = keys.path().join("nonce.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").expect("write key");
    let router =
        Router::start_with(|m| probe(m, &format!("secret_file = {:?}", key.display().to_string())));
    assert!(
        !router.log().contains("no [auth] secret configured"),
        "the secret file is used\n{}",
        router.log()
    );
    let ua = TestUa::new("alice");
    let reg = ua
        .request("REGISTER", &router.uri())
        .to(&router.aor("alice"));
    ua.send_to(router.udp_addr(), &reg.build());
    let (resp, _) = ua
        .recv_response_for(&reg.call_id, RECV)
        .expect("an answer to the REGISTER");
    assert_eq!(resp.status(), Some(401));
    let offered = challenges(&resp);
    let algs: Vec<_> = offered.iter().map(|c| c.param("algorithm")).collect();
    assert_eq!(algs, [Some("SHA-256"), Some("MD5")]);
    assert_eq!(offered[0].param("nonce"), offered[1].param("nonce"));
    assert_eq!(offered[0].param("realm"), Some("127.0.0.1"), "the To host");
    assert_eq!(offered[0].param("qop"), Some("auth"));
}

/// sipsak 0.9.8.1 reads only the first challenge header and knows only
/// MD5 ("unsupported authentication algorithm" for SHA-256 first), so this
/// router offers MD5 first.
#[test]
fn sipsak_answers_the_challenge_and_an_unknown_user_never_gets_200() {
    let router = Router::start_on(Ports::Below10000, |m| {
        probe(m, "algorithms = [\"MD5\", \"SHA-256\"]")
    });
    let mut cmd = Command::new(sipsak());
    cmd.args([
        "-vv",
        "-U",
        "-a",
        "secret",
        "-H",
        "127.0.0.1",
        "-s",
        &router.aor("alice"),
    ]);
    let out = run_with_timeout(cmd, Duration::from_secs(15));
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("Authorization: Digest") && all.contains("algorithm=MD5"),
        "sipsak answered the challenge with MD5 credentials\n{}",
        out.describe()
    );
    assert!(
        !all.contains("SIP/2.0 200"),
        "an unknown user is never registered\n{}",
        out.describe()
    );
    assert!(!out.success(), "{}", out.describe());
}
