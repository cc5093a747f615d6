//! The `auth` host functions called by a real plugin (`plugins/auth-probe`)
//! in a router on loopback, with subscribers in memory: challenges on the
//! wire, answers a client computes from them, and what the plugin saw.
//!
//! Needs `target/plugins/auth_probe.wasm` (`make plugins`).

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wisp::config::Manifest;
use wisp::router::Router;
use wisp::services::auth::Directory;
use wisp::services::auth::digest::{Algorithm, Challenge, Qop};
use wisp_sip::Message;

const SECRET: &str = "a shared secret of two routers";

/// alice@example.com (password s3cret, group int) and bob@example.com
/// (hunter2, no group).
struct Subscribers;

impl Directory for Subscribers {
    fn ha1(&self, user: &str, realm: &str, algorithm: Algorithm) -> Option<String> {
        let password = match (user, realm) {
            ("alice", "example.com") => "s3cret",
            ("bob", "example.com") => "hunter2",
            _ => return None,
        };
        Some(algorithm.ha1(user, realm, password))
    }

    fn in_group(&self, user: &str, domain: &str, group: &str) -> bool {
        (user, domain, group) == ("alice", "example.com", "int")
    }
}

fn probe_wasm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins/auth_probe.wasm")
}

struct Bench {
    _rt: tokio::runtime::Runtime,
    router: SocketAddr,
    ua: UdpSocket,
    seq: std::cell::Cell<u32>,
}

fn bench(auth: &str) -> Bench {
    let text = format!(
        "[server]\nlisten = [\"udp:127.0.0.1:0\"]\nplugin_cache = \"\"\n\
         [auth]\nsecret = {SECRET:?}\n{auth}\n\
         [[plugin]]\nname = \"auth-probe\"\npath = {:?}\n",
        probe_wasm().display().to_string()
    );
    let manifest = Manifest::parse(&text, Path::new("auth.toml")).expect("manifest");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let router = rt
        .block_on(Router::bind_with_directory(manifest, Arc::new(Subscribers)))
        .expect("router binds (is target/plugins/auth_probe.wasm built? `make plugins`)");
    rt.block_on(async { router.serve(1) });
    let addr = router.transports().listen_addrs()[0].1;
    let ua = UdpSocket::bind("127.0.0.1:0").expect("ua");
    ua.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    Bench {
        _rt: rt,
        router: addr,
        ua,
        seq: std::cell::Cell::new(0),
    }
}

impl Bench {
    /// Send a request and return the answer.
    fn ask(&self, method: &str, ruri: &str, from: &str, to: &str, extra: &[String]) -> Message {
        self.ask_at(self.router, method, ruri, from, to, extra)
    }

    fn ask_at(
        &self,
        router: SocketAddr,
        method: &str,
        ruri: &str,
        from: &str,
        to: &str,
        extra: &[String],
    ) -> Message {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        let local = self.ua.local_addr().expect("ua");
        let mut raw = format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-auth-{n};rport\r\n\
             From: <sip:{from}>;tag=f{n}\r\nTo: <sip:{to}>\r\nCall-ID: auth-{n}@test\r\n\
             CSeq: {n} {method}\r\nMax-Forwards: 70\r\n"
        );
        for line in extra {
            raw.push_str(line);
            raw.push_str("\r\n");
        }
        raw.push_str("Content-Length: 0\r\n\r\n");
        self.ua.send_to(raw.as_bytes(), router).expect("send");
        let mut buf = vec![0u8; 65535];
        let len = self.ua.recv(&mut buf).expect("an answer");
        buf.truncate(len);
        Message::parse(Bytes::from(buf)).expect("answer parses")
    }
}

fn reason(m: &Message) -> String {
    match m.start_line() {
        wisp_sip::StartLine::Response { reason, .. } => String::from_utf8_lossy(reason).into(),
        _ => panic!("not a response"),
    }
}

fn challenges(m: &Message, name: &str) -> Vec<wisp_sip::Challenge> {
    m.header_values(name)
        .map(|v| wisp_sip::Challenge::parse(v).expect("challenge parses"))
        .collect()
}

/// The credentials line a client with `password` sends for `c`.
fn answer(
    c: &wisp_sip::Challenge,
    header: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
) -> String {
    let realm = c.param("realm").expect("realm");
    let nonce = c.param("nonce").expect("nonce");
    let (alg, _) = Algorithm::parse(c.param("algorithm")).expect("algorithm");
    let response = Challenge {
        algorithm: alg,
        sess: false,
        nonce,
        method,
        uri,
        qop: Qop::Auth {
            nc: "00000001",
            cnonce: "c0ffee",
        },
    }
    .expected_response(&alg.ha1(user, realm, password));
    format!(
        "{header}: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"c0ffee\"",
        alg.name()
    )
}

const REG_URI: &str = "sip:example.com";

#[test]
fn register_is_challenged_then_authorized_and_check_to_tells_whose_aor() {
    let b = bench("");
    let alice = "alice@example.com";
    let first = b.ask("REGISTER", REG_URI, alice, alice, &[]);
    assert_eq!(first.status(), Some(401));
    let offered = challenges(&first, "WWW-Authenticate");
    let algs: Vec<_> = offered.iter().map(|c| c.param("algorithm")).collect();
    assert_eq!(algs, [Some("SHA-256"), Some("MD5")]);
    assert_eq!(offered[0].param("nonce"), offered[1].param("nonce"));
    assert_eq!(offered[0].param("realm"), Some("example.com"));
    assert_eq!(offered[0].param("qop"), Some("auth"));

    let creds = answer(
        &offered[0],
        "Authorization",
        "REGISTER",
        REG_URI,
        "alice",
        "s3cret",
    );
    let ok = b.ask(
        "REGISTER",
        REG_URI,
        alice,
        alice,
        std::slice::from_ref(&creds),
    );
    assert_eq!(ok.status(), Some(200));
    assert_eq!(reason(&ok), "OK to=true from=true");

    // The same Authorization again: replayed, challenged afresh (not stale).
    let replay = b.ask("REGISTER", REG_URI, alice, alice, &[creds]);
    assert_eq!(replay.status(), Some(401));
    assert_eq!(
        challenges(&replay, "WWW-Authenticate")[0].param("stale"),
        None
    );

    // The nonce's count 1 is used: with the MD5 offer of the same nonce
    // too, whoever sends it.
    let md5 = answer(
        &offered[1],
        "Authorization",
        "REGISTER",
        REG_URI,
        "bob",
        "hunter2",
    );
    let reused = b.ask("REGISTER", REG_URI, "bob@example.com", alice, &[md5]);
    assert_eq!(reused.status(), Some(401));

    // Bob's own password for alice's AOR: authorized, but not for To.
    let fresh = challenges(&reused, "WWW-Authenticate");
    let bobs = answer(
        &fresh[1],
        "Authorization",
        "REGISTER",
        REG_URI,
        "bob",
        "hunter2",
    );
    let hijack = b.ask("REGISTER", REG_URI, "bob@example.com", alice, &[bobs]);
    assert_eq!(reason(&hijack), "OK to=false from=true");
}

#[test]
fn a_wrong_password_and_an_unknown_user_get_the_same_challenge() {
    let b = bench("");
    let alice = "alice@example.com";
    let offered = challenges(
        &b.ask("REGISTER", REG_URI, alice, alice, &[]),
        "WWW-Authenticate",
    );
    let wrong = answer(
        &offered[0],
        "Authorization",
        "REGISTER",
        REG_URI,
        "alice",
        "guess",
    );
    let nobody = answer(
        &offered[0],
        "Authorization",
        "REGISTER",
        REG_URI,
        "mallory",
        "guess",
    );
    let a = b.ask("REGISTER", REG_URI, alice, alice, &[wrong]);
    let m = b.ask("REGISTER", REG_URI, alice, alice, &[nobody]);
    // Everything but the nonce is the same.
    let shape = |r: &Message| {
        let cs = challenges(r, "WWW-Authenticate");
        let nonces: HashSet<_> = cs
            .iter()
            .map(|c| c.param("nonce").map(str::to_owned))
            .collect();
        assert_eq!(nonces.len(), 1, "one nonce per challenge");
        let params: Vec<Vec<(String, String)>> = cs
            .iter()
            .map(|c| {
                c.params
                    .iter()
                    .filter(|(k, _)| k != "nonce")
                    .cloned()
                    .collect()
            })
            .collect();
        (r.status(), reason(r), params)
    };
    assert_eq!(shape(&a), shape(&m));
    assert_eq!(a.status(), Some(401));
    // The typed results still tell them apart for a plugin that asks.
    let raw = |user: &str, pass: &str| {
        let line = answer(
            &offered[0],
            "Authorization",
            "OPTIONS",
            "sip:www@example.com",
            user,
            pass,
        );
        reason(&b.ask(
            "OPTIONS",
            "sip:www@example.com",
            alice,
            alice,
            &[line, "X-Realm: example.com".into()],
        ))
    };
    assert_eq!(raw("alice", "guess"), "result=wrong-response");
    assert_eq!(raw("mallory", "guess"), "result=unknown-user");
    assert_eq!(
        reason(&b.ask("OPTIONS", "sip:www@example.com", alice, alice, &[])),
        "result=no-credentials"
    );
}

#[test]
fn proxy_auth_checks_from_groups_and_consumes_the_credentials() {
    let b = bench("");
    let alice = "alice@example.com";
    let callee = "carol@far.net";
    let first = b.ask("INVITE", "sip:carol@far.net", alice, callee, &[]);
    assert_eq!(first.status(), Some(407));
    let offered = challenges(&first, "Proxy-Authenticate");
    assert_eq!(
        offered[0].param("realm"),
        Some("example.com"),
        "the From domain"
    );
    let creds = answer(
        &offered[0],
        "Proxy-Authorization",
        "INVITE",
        "sip:carol@far.net",
        "alice",
        "s3cret",
    );
    let ok = b.ask("INVITE", "sip:carol@far.net", alice, callee, &[creds]);
    assert_eq!(
        reason(&ok),
        "OK from=true int=true consumed=ok again=not-found"
    );
    // Bob is authenticated but not in "int", and From is not his.
    let offered = challenges(
        &b.ask("MESSAGE", "sip:carol@far.net", alice, callee, &[]),
        "Proxy-Authenticate",
    );
    let bobs = answer(
        &offered[0],
        "Proxy-Authorization",
        "MESSAGE",
        "sip:carol@far.net",
        "bob",
        "hunter2",
    );
    let ok = b.ask("MESSAGE", "sip:carol@far.net", alice, callee, &[bobs]);
    assert_eq!(
        reason(&ok),
        "OK from=false int=false consumed=ok again=not-found"
    );
    // is_user_in on each URI.
    let groups = b.ask(
        "OPTIONS",
        "sip:groups@example.com",
        "bob@example.com",
        alice,
        &[],
    );
    assert_eq!(
        reason(&groups),
        "ruri=false to=true from=false credentials=false"
    );
}

#[test]
fn an_expired_nonce_is_answered_stale_and_the_retry_succeeds() {
    let b = bench("nonce_expires = 1");
    let alice = "alice@example.com";
    let offered = challenges(
        &b.ask("REGISTER", REG_URI, alice, alice, &[]),
        "WWW-Authenticate",
    );
    std::thread::sleep(Duration::from_millis(2100));
    let late = answer(
        &offered[0],
        "Authorization",
        "REGISTER",
        REG_URI,
        "alice",
        "s3cret",
    );
    let stale = b.ask("REGISTER", REG_URI, alice, alice, &[late]);
    assert_eq!(stale.status(), Some(401));
    let renewed = challenges(&stale, "WWW-Authenticate");
    assert!(renewed.iter().all(|c| c.param("stale") == Some("true")));
    let retry = answer(
        &renewed[0],
        "Authorization",
        "REGISTER",
        REG_URI,
        "alice",
        "s3cret",
    );
    assert_eq!(
        b.ask("REGISTER", REG_URI, alice, alice, &[retry]).status(),
        Some(200)
    );
}

#[test]
fn two_routers_with_one_secret_accept_each_others_nonces() {
    let a = bench("");
    let other = bench("");
    let alice = "alice@example.com";
    let offered = challenges(
        &a.ask("REGISTER", REG_URI, alice, alice, &[]),
        "WWW-Authenticate",
    );
    let creds = answer(
        &offered[0],
        "Authorization",
        "REGISTER",
        REG_URI,
        "alice",
        "s3cret",
    );
    let ok = a.ask_at(other.router, "REGISTER", REG_URI, alice, alice, &[creds]);
    assert_eq!(ok.status(), Some(200));
}

#[test]
fn challenge_flags_offer_auth_int_and_unknown_ones_fail_the_route() {
    let b = bench("algorithms = [\"SHA-512-256\"]");
    let alice = "alice@example.com";
    let r = b.ask(
        "OPTIONS",
        "sip:www-challenge@example.com",
        alice,
        alice,
        &["X-Flags: 2".into()],
    );
    assert_eq!(r.status(), Some(401));
    let cs = challenges(&r, "WWW-Authenticate");
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].param("algorithm"), Some("SHA-512-256"));
    assert_eq!(cs[0].param("qop"), Some("auth,auth-int"));
    let r = b.ask(
        "OPTIONS",
        "sip:proxy-challenge@example.com",
        alice,
        alice,
        &["X-Flags: 16".into()],
    );
    assert_eq!(r.status(), Some(407));
    assert_eq!(
        challenges(&r, "Proxy-Authenticate")[0].param("stale"),
        Some("true")
    );
    // Flag 4 is not supported: invalid-argument, the route fails, 500.
    let r = b.ask(
        "OPTIONS",
        "sip:www-challenge@example.com",
        alice,
        alice,
        &["X-Flags: 4".into()],
    );
    assert_eq!(r.status(), Some(500));
    assert!(r.header("WWW-Authenticate").is_none());
}
