//! The auth service against a real answer path: challenges reach a UDP
//! "client", which answers them the way a phone would.

use std::collections::{HashMap, HashSet};
use std::net::UdpSocket as StdUdp;

use bytes::Bytes;
use wisp_sip::Message;

use super::*;
use crate::config::{Manifest, Proto};
use crate::services::auth::digest::{Challenge, Qop};
use crate::stateless::sanity;
use crate::transport::{Source, Transports};

/// Subscribers with plain passwords, and group members, in memory.
#[derive(Default)]
struct MemoryDirectory {
    passwords: HashMap<(String, String), String>,
    groups: HashSet<(String, String, String)>,
}

impl Directory for MemoryDirectory {
    fn ha1(&self, user: &str, realm: &str, algorithm: Algorithm) -> Option<String> {
        self.passwords
            .get(&(user.to_owned(), realm.to_owned()))
            .map(|p| algorithm.ha1(user, realm, p))
    }

    fn in_group(&self, user: &str, domain: &str, group: &str) -> bool {
        self.groups
            .contains(&(user.to_owned(), domain.to_owned(), group.to_owned()))
    }
}

struct Bench {
    auth: AuthService,
    tm: Arc<Tm>,
    ua: StdUdp,
    server: std::net::SocketAddr,
}

async fn bench(auth_toml: &str) -> Bench {
    let text = format!(
        "[server]\nlisten = [\"udp:127.0.0.1:0\"]\n[auth]\n{auth_toml}\n[[plugin]]\nname = \"t\"\npath = \"t.wasm\"\n"
    );
    let manifest = Manifest::parse(&text, std::path::Path::new("inline.toml")).expect("manifest");
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let server = sock.local_addr().expect("addr");
    let transports = Arc::new(Transports::new(vec![Arc::new(sock)], vec![], 65535));
    let sl = Arc::new(crate::stateless::Stateless::new(
        transports,
        &manifest.server.aliases,
        manifest.rr.clone(),
    ));
    let clock = Arc::new(crate::tm::timer::SystemClock);
    let (tm, _failure_routes) = Tm::new(&manifest.tm, clock, sl, None);
    let mut dir = MemoryDirectory::default();
    for (user, realm, pass) in [
        ("alice", "example.com", "s3cret"),
        ("bob", "example.com", "hunter2"),
        ("alice", "other.org", "elsewhere"),
    ] {
        dir.passwords
            .insert((user.into(), realm.into()), pass.into());
    }
    dir.groups
        .insert(("alice".into(), "example.com".into(), "int".into()));
    let auth = AuthService::new(&manifest.auth, Arc::new(dir));
    let ua = StdUdp::bind("127.0.0.1:0").expect("ua");
    ua.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .expect("timeout");
    Bench {
        auth,
        tm,
        ua,
        server,
    }
}

impl Bench {
    /// A request from `from` to `to` (user@host each) with extra header lines.
    fn request(&self, method: &str, from: &str, to: &str, extra: &str) -> RouteContext {
        let ua = self.ua.local_addr().expect("ua");
        let ruri = if method == "REGISTER" {
            format!("sip:{}", to.split('@').nth(1).unwrap_or(to))
        } else {
            format!("sip:{to}")
        };
        let raw = format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {ua};branch=z9hG4bK{}{};rport\r\n\
             From: <sip:{from}>;tag=f1\r\nTo: <sip:{to}>\r\nCall-ID: auth-test\r\n\
             CSeq: 1 {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n",
            method.len(),
            extra.len(),
        );
        let msg = Message::parse(Bytes::from(raw)).expect("request parses");
        let summary = sanity::check_request(&msg).expect("sane request");
        let source = Source {
            proto: Proto::Udp,
            remote: ua,
            local: self.server,
        };
        RouteContext::new(msg, source, summary, RouteKind::Request)
    }

    /// The answer the client got.
    fn recv(&self) -> Message {
        let mut buf = vec![0u8; 65535];
        let n = self.ua.recv(&mut buf).expect("an answer");
        buf.truncate(n);
        Message::parse(Bytes::from(buf)).expect("answer parses")
    }

    /// Challenge `ctx` and return the answer the client got.
    fn challenge(&self, ctx: &mut RouteContext, kind: Kind, realm: &str) -> Message {
        self.auth
            .challenge(&self.tm, ctx, kind, realm, 0)
            .expect("challenge sent");
        self.recv()
    }
}

/// The challenges of an answer, parsed.
fn challenges(reply: &Message, name: &str) -> Vec<wisp_sip::Challenge> {
    reply
        .header_values(name)
        .map(|v| wisp_sip::Challenge::parse(v).expect("challenge parses"))
        .collect()
}

/// The credentials header line a client with `password` writes for a
/// challenge, with `algorithm` and nonce count `nc`.
fn answer(
    c: &wisp_sip::Challenge,
    header: &str,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    nc: &str,
) -> String {
    let realm = c.param("realm").expect("realm");
    let nonce = c.param("nonce").expect("nonce");
    let (alg, _) = Algorithm::parse(c.param("algorithm")).expect("known algorithm");
    let computed = Challenge {
        algorithm: alg,
        sess: false,
        nonce,
        method,
        uri,
        qop: Qop::Auth {
            nc,
            cnonce: "0a4f113b",
        },
    }
    .expected_response(&alg.ha1(user, realm, password));
    format!(
        "{header}: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{computed}\", algorithm={}, qop=auth, nc={nc}, cnonce=\"0a4f113b\"\r\n",
        alg.name()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8760_a_401_offers_sha256_then_md5_with_one_nonce_and_the_answer_is_authorized() {
    let b = bench("").await;
    let mut ctx = b.request("REGISTER", "alice@example.com", "alice@example.com", "");
    let found = b.auth.authorize(&mut ctx, Kind::Www, "", SUBSCRIBER_TABLE);
    assert_eq!(found, Ok(Outcome::NoCredentials));
    let reply = b.challenge(&mut ctx, Kind::Www, "");
    assert_eq!(reply.status(), Some(401));
    let offered = challenges(&reply, "WWW-Authenticate");
    let algs: Vec<_> = offered.iter().map(|c| c.param("algorithm")).collect();
    assert_eq!(algs, [Some("SHA-256"), Some("MD5")]);
    assert_eq!(offered[0].param("nonce"), offered[1].param("nonce"));
    for c in &offered {
        assert_eq!(c.param("realm"), Some("example.com"), "the To domain");
        assert_eq!(c.param("qop"), Some("auth"));
        assert_eq!(c.param("stale"), None);
    }
    // The request is answered: a second answer is refused.
    assert_eq!(
        b.auth.challenge(&b.tm, &mut ctx, Kind::Www, "", 0),
        Err(ActionError::AlreadyHandled)
    );
    // Each offered algorithm, answered right, is accepted once.
    for (c, nc) in offered.iter().zip(["00000001", "00000002"]) {
        let line = answer(
            c,
            "Authorization",
            "REGISTER",
            "sip:example.com",
            "alice",
            "s3cret",
            nc,
        );
        let mut retry = b.request("REGISTER", "alice@example.com", "alice@example.com", &line);
        let found = b
            .auth
            .authorize(&mut retry, Kind::Www, "", SUBSCRIBER_TABLE);
        assert_eq!(found, Ok(Outcome::Ok), "{:?}", c.param("algorithm"));
        let marked = retry.auth.authorized.as_ref().expect("marked");
        assert_eq!(
            (marked.user.as_str(), marked.realm.as_str()),
            ("alice", "example.com")
        );
        assert_eq!(check_party(&retry, true), Ok(true));
        assert_eq!(check_party(&retry, false), Ok(true));
        // The same credentials again: a replay.
        let mut again = b.request("REGISTER", "alice@example.com", "alice@example.com", &line);
        let found = b
            .auth
            .authorize(&mut again, Kind::Www, "", SUBSCRIBER_TABLE);
        assert_eq!(found, Ok(Outcome::Replayed));
        assert_eq!(again.auth.authorized, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_and_wrong_password_are_typed_apart_but_mark_nothing() {
    let b = bench("algorithms = [\"MD5\"]").await;
    let mut ctx = b.request("REGISTER", "alice@example.com", "alice@example.com", "");
    let offered = challenges(&b.challenge(&mut ctx, Kind::Www, ""), "WWW-Authenticate");
    assert_eq!(offered.len(), 1);
    let wrong = answer(
        &offered[0],
        "Authorization",
        "REGISTER",
        "sip:example.com",
        "alice",
        "guess",
        "00000001",
    );
    let mut ctx = b.request("REGISTER", "alice@example.com", "alice@example.com", &wrong);
    assert_eq!(
        b.auth.authorize(&mut ctx, Kind::Www, "", SUBSCRIBER_TABLE),
        Ok(Outcome::WrongResponse)
    );
    assert_eq!(ctx.auth, AuthMark::default());
    let nobody = answer(
        &offered[0],
        "Authorization",
        "REGISTER",
        "sip:example.com",
        "mallory",
        "guess",
        "00000001",
    );
    let mut ctx = b.request(
        "REGISTER",
        "mallory@example.com",
        "mallory@example.com",
        &nobody,
    );
    assert_eq!(
        b.auth.authorize(&mut ctx, Kind::Www, "", SUBSCRIBER_TABLE),
        Ok(Outcome::UnknownUser)
    );
    assert_eq!(ctx.auth, AuthMark::default());
    assert_eq!(check_party(&ctx, true), Ok(false));
    assert_eq!(consume_credentials(&mut ctx), Err(ActionError::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_nonce_is_stale_and_the_next_challenge_says_so() {
    let b = bench("nonce_expires = 60").await;
    let mut ctx = b.request("REGISTER", "alice@example.com", "alice@example.com", "");
    let offered = challenges(&b.challenge(&mut ctx, Kind::Www, ""), "WWW-Authenticate");
    let line = answer(
        &offered[0],
        "Authorization",
        "REGISTER",
        "sip:example.com",
        "alice",
        "s3cret",
        "00000001",
    );
    let mut late = b.request("REGISTER", "alice@example.com", "alice@example.com", &line);
    let later = SystemTime::now() + Duration::from_secs(61);
    let found = b
        .auth
        .authorize_at(&mut late, Kind::Www, "", SUBSCRIBER_TABLE, later);
    assert_eq!(found, Ok(Outcome::StaleNonce));
    assert!(late.auth.stale);
    let reply = b.challenge(&mut late, Kind::Www, "");
    for c in challenges(&reply, "WWW-Authenticate") {
        assert_eq!(c.param("stale"), Some("true"));
        assert_ne!(c.param("nonce"), offered[0].param("nonce"), "a fresh nonce");
    }
    // A fresh request is not stale, unless flag 16 asks.
    let mut fresh = b.request("REGISTER", "alice@example.com", "alice@example.com", "");
    let reply = b.challenge(&mut fresh, Kind::Www, "");
    assert_eq!(
        challenges(&reply, "WWW-Authenticate")[0].param("stale"),
        None
    );
    let mut forced = b.request("REGISTER", "alice@example.com", "alice@example.com", "");
    b.auth
        .challenge(&b.tm, &mut forced, Kind::Www, "", challenge::FLAG_STALE)
        .expect("sent");
    assert_eq!(
        challenges(&b.recv(), "WWW-Authenticate")[0].param("stale"),
        Some("true")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_auth_uses_407_the_from_domain_and_check_to_tells_another_user() {
    let b = bench("").await;
    let mut ctx = b.request("INVITE", "alice@example.com", "carol@far.net", "");
    let reply = b.challenge(&mut ctx, Kind::Proxy, "");
    assert_eq!(reply.status(), Some(407));
    assert!(reply.header("WWW-Authenticate").is_none());
    let offered = challenges(&reply, "Proxy-Authenticate");
    assert_eq!(
        offered[0].param("realm"),
        Some("example.com"),
        "the From domain"
    );
    let line = answer(
        &offered[0],
        "Proxy-Authorization",
        "INVITE",
        "sip:carol@far.net",
        "alice",
        "s3cret",
        "00000001",
    );
    // An Authorization (not Proxy-) is no credentials for proxy_authorize.
    let www_line = line.replacen("Proxy-Authorization", "Authorization", 1);
    let mut ctx = b.request("INVITE", "alice@example.com", "carol@far.net", &www_line);
    assert_eq!(
        b.auth
            .authorize(&mut ctx, Kind::Proxy, "", SUBSCRIBER_TABLE),
        Ok(Outcome::NoCredentials)
    );
    let mut ctx = b.request("INVITE", "alice@example.com", "carol@far.net", &line);
    assert_eq!(
        b.auth
            .authorize(&mut ctx, Kind::Proxy, "", SUBSCRIBER_TABLE),
        Ok(Outcome::Ok)
    );
    assert_eq!(
        check_party(&ctx, false),
        Ok(true),
        "From is alice@example.com"
    );
    assert_eq!(check_party(&ctx, true), Ok(false), "To is carol@far.net");

    // Bob's credentials on a REGISTER for alice: check_to refuses.
    let mut reg = b.request("REGISTER", "bob@example.com", "alice@example.com", "");
    let offered = challenges(&b.challenge(&mut reg, Kind::Www, ""), "WWW-Authenticate");
    let bobs = answer(
        &offered[0],
        "Authorization",
        "REGISTER",
        "sip:example.com",
        "bob",
        "hunter2",
        "00000001",
    );
    let mut reg = b.request("REGISTER", "bob@example.com", "alice@example.com", &bobs);
    assert_eq!(
        b.auth.authorize(&mut reg, Kind::Www, "", SUBSCRIBER_TABLE),
        Ok(Outcome::Ok)
    );
    assert_eq!(check_party(&reg, true), Ok(false));
    assert_eq!(check_party(&reg, false), Ok(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_credentials_removes_the_checked_header_only() {
    let b = bench("").await;
    let mut ctx = b.request("INVITE", "alice@example.com", "carol@far.net", "");
    let offered = challenges(
        &b.challenge(&mut ctx, Kind::Proxy, ""),
        "Proxy-Authenticate",
    );
    let ours = answer(
        &offered[0],
        "Proxy-Authorization",
        "INVITE",
        "sip:carol@far.net",
        "alice",
        "s3cret",
        "00000001",
    );
    let theirs = "Proxy-Authorization: Digest username=\"alice\", realm=\"far.net\", nonce=\"x\", uri=\"sip:carol@far.net\", response=\"y\"\r\n";
    let mut ctx = b.request(
        "INVITE",
        "alice@example.com",
        "carol@far.net",
        &format!("{theirs}{ours}"),
    );
    assert_eq!(
        b.auth
            .authorize(&mut ctx, Kind::Proxy, "example.com", SUBSCRIBER_TABLE),
        Ok(Outcome::Ok)
    );
    assert_eq!(consume_credentials(&mut ctx), Ok(()));
    assert_eq!(consume_credentials(&mut ctx), Err(ActionError::NotFound));
    let out = Message::parse(ctx.msg.serialize()).expect("parses");
    let left: Vec<_> = out.header_values("Proxy-Authorization").collect();
    assert_eq!(left.len(), 1);
    assert!(left[0].starts_with(b"Digest username=\"alice\", realm=\"far.net\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_user_in_reads_the_user_each_source_names() {
    let b = bench("").await;
    // No credentials: only the URI sources answer.
    let ctx = b.request("INVITE", "alice@Example.COM", "bob@example.com", "");
    assert_eq!(
        b.auth.is_user_in(&ctx, UserOf::From, "int"),
        Ok(true),
        "domain without case"
    );
    assert_eq!(b.auth.is_user_in(&ctx, UserOf::To, "int"), Ok(false));
    assert_eq!(
        b.auth.is_user_in(&ctx, UserOf::RequestUri, "int"),
        Ok(false)
    );
    assert_eq!(
        b.auth.is_user_in(&ctx, UserOf::Credentials, "int"),
        Ok(false)
    );
    assert_eq!(b.auth.is_user_in(&ctx, UserOf::From, "local"), Ok(false));
    let ctx = b.request("INVITE", "bob@example.com", "alice@example.com", "");
    assert_eq!(b.auth.is_user_in(&ctx, UserOf::RequestUri, "int"), Ok(true));
    assert_eq!(b.auth.is_user_in(&ctx, UserOf::To, "int"), Ok(true));
    // Credentials: the authorized user, whoever From claims to be.
    let mut ch = b.request("INVITE", "bob@example.com", "carol@far.net", "");
    let offered = challenges(
        &b.challenge(&mut ch, Kind::Proxy, "example.com"),
        "Proxy-Authenticate",
    );
    let alices = answer(
        &offered[0],
        "Proxy-Authorization",
        "INVITE",
        "sip:carol@far.net",
        "alice",
        "s3cret",
        "00000001",
    );
    let mut ctx = b.request("INVITE", "bob@example.com", "carol@far.net", &alices);
    assert_eq!(
        b.auth
            .authorize(&mut ctx, Kind::Proxy, "example.com", SUBSCRIBER_TABLE),
        Ok(Outcome::Ok)
    );
    assert_eq!(
        b.auth.is_user_in(&ctx, UserOf::Credentials, "int"),
        Ok(true)
    );
    assert_eq!(b.auth.is_user_in(&ctx, UserOf::From, "int"), Ok(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_and_places_are_refused_before_anything_is_sent() {
    let b = bench("").await;
    let mut ctx = b.request("REGISTER", "alice@example.com", "alice@example.com", "");
    assert!(matches!(
        b.auth.authorize(&mut ctx, Kind::Www, "", "users"),
        Err(ActionError::InvalidArgument(_))
    ));
    assert!(matches!(
        b.auth.challenge(&b.tm, &mut ctx, Kind::Www, "", 4),
        Err(ActionError::InvalidArgument(_))
    ));
    assert!(matches!(
        b.auth.challenge(&b.tm, &mut ctx, Kind::Www, "a\"b", 0),
        Err(ActionError::InvalidArgument(_))
    ));
    // An ACK is never answered, so never challenged.
    let mut ack = b.request("ACK", "alice@example.com", "bob@example.com", "");
    assert!(matches!(
        b.auth.challenge(&b.tm, &mut ack, Kind::Proxy, "", 0),
        Err(ActionError::NotAllowedHere(_))
    ));
    // A bad realm is refused before the place is looked at.
    assert!(matches!(
        b.auth.challenge(&b.tm, &mut ack, Kind::Proxy, "a\r\nb", 0),
        Err(ActionError::InvalidArgument(_))
    ));
    ctx.route = RouteKind::Reply;
    assert!(matches!(
        b.auth.authorize(&mut ctx, Kind::Www, "", SUBSCRIBER_TABLE),
        Err(ActionError::NotAllowedHere(_))
    ));
    assert!(ctx.handled.is_none(), "nothing was answered");
    // ACK and CANCEL cannot be challenged: let through, nobody marked.
    for method in ["ACK", "CANCEL"] {
        let mut ctx = b.request(method, "alice@example.com", "bob@example.com", "");
        assert_eq!(
            b.auth
                .authorize(&mut ctx, Kind::Proxy, "", SUBSCRIBER_TABLE),
            Ok(Outcome::Ok)
        );
        assert_eq!(ctx.auth.authorized, None);
    }
}
