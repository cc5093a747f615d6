//! Registrar + stateless proxy through the default plugin: REGISTER, then
//! requests to the AOR reach the registered contact with Wisp's Via on
//! top, and the responses come back to the caller with it removed.

use std::time::Duration;

use wisp_e2e::*;

/// Asserts the request B got is the forwarded copy of A's request.
fn check_forwarded(
    router: &Router,
    a: &TestUa,
    b: &TestUa,
    a_branch: &str,
    req: &Message,
    src: std::net::SocketAddr,
) {
    let vs = vias(req);
    assert!(
        vs.len() >= 2,
        "forwarded request must carry Wisp's Via above A's:\n{}",
        text(req)
    );
    let top = &vs[0];
    assert_eq!(
        top.host.to_string(),
        "127.0.0.1",
        "Wisp Via host:\n{}",
        text(req)
    );
    assert_eq!(
        top.port,
        Some(router.udp_port()),
        "Wisp Via port must be the router port:\n{}",
        text(req)
    );
    assert_eq!(top.transport, "UDP", "Wisp Via transport:\n{}", text(req));
    let br = top
        .branch()
        .unwrap_or_else(|| panic!("Wisp Via has no branch:\n{}", text(req)));
    assert!(
        br.starts_with("z9hG4bK"),
        "Wisp branch {br:?} must start with the RFC 3261 magic cookie"
    );
    assert_ne!(br, a_branch, "Wisp must use its own branch");
    let second = &vs[1];
    assert_eq!(
        second.branch(),
        Some(a_branch),
        "A's Via must be second:\n{}",
        text(req)
    );
    assert_eq!(second.port, Some(a.port()), "A's Via port:\n{}", text(req));
    assert_eq!(vs.len(), 2, "exactly two Vias expected:\n{}", text(req));
    assert_eq!(
        req.max_forwards().expect("Max-Forwards parses"),
        Some(69),
        "Max-Forwards must be decremented 70 -> 69:\n{}",
        text(req)
    );
    let ruri = String::from_utf8_lossy(&req.request_uri_raw()).into_owned();
    assert_eq!(
        ruri,
        b.contact(),
        "R-URI must be rewritten to the registered contact"
    );
    assert_eq!(
        src,
        router.udp_addr(),
        "Wisp should send from its listening socket (the port in its Via)"
    );
}

/// Asserts a response A got has only A's Via left.
fn check_returned(resp: &Message, a: &TestUa, a_branch: &str) {
    let vs = vias(resp);
    assert_eq!(
        vs.len(),
        1,
        "Wisp must strip its own Via from the response:\n{}",
        text(resp)
    );
    assert_eq!(
        vs[0].branch(),
        Some(a_branch),
        "A's Via must be on top:\n{}",
        text(resp)
    );
    assert_eq!(vs[0].port, Some(a.port()));
}

#[test]
fn invite_to_registered_user_is_forwarded_and_responses_return() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let b = TestUa::new("bob");
    let reg = b.register(&router);
    let contacts = reg
        .header_values("Contact")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect::<Vec<_>>();
    assert!(
        contacts.iter().any(|c| c.contains(&b.contact())),
        "200 to REGISTER must list the binding {}:\n{}",
        b.contact(),
        text(&reg)
    );

    let inv = a
        .request("INVITE", &router.aor("bob"))
        .max_forwards(Some(70))
        .body("application/sdp", b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n");
    a.send_to(router.udp_addr(), &inv.build());

    let (req, src) = b
        .recv_request(RECV)
        .expect("INVITE did not reach the registered contact");
    assert_eq!(req.method(), Some(&Method::Invite), "{}", text(&req));
    check_forwarded(&router, &a, &b, &inv.branch, &req, src);
    // t_relay answers an INVITE with 100 Trying at once (RFC 3261 §16.2).
    let (trying, from0) = a
        .recv_response_for(&inv.call_id, RECV)
        .expect("no 100 Trying for the INVITE");
    assert_eq!(trying.status(), Some(100), "{}", text(&trying));
    assert_eq!(from0, router.udp_addr());
    assert!(
        req.body().starts_with(b"v=0"),
        "body must be forwarded intact:\n{}",
        text(&req)
    );

    // Ringing, then (once A has seen it) the answer: back-to-back datagrams
    // may be handled by two receive workers and overtake each other, as
    // UDP allows, so the test orders them the way a call does.
    b.reply(&req, src, 180, "Ringing", "bobtag");
    let (r1, from1) = a
        .recv_response_for(&inv.call_id, RECV)
        .expect("180 did not come back to A");
    assert_eq!(r1.status(), Some(180), "{}", text(&r1));
    assert_eq!(from1, router.udp_addr());
    check_returned(&r1, &a, &inv.branch);
    b.reply(&req, src, 200, "OK", "bobtag");
    let (r2, _) = a
        .recv_response_for(&inv.call_id, RECV)
        .expect("200 did not come back to A");
    assert_eq!(r2.status(), Some(200), "{}", text(&r2));
    check_returned(&r2, &a, &inv.branch);
    assert_eq!(to_tag(&r2).as_deref(), Some("bobtag"));
}

#[test]
fn options_to_registered_aor_is_forwarded() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let b = TestUa::new("bob");
    b.register(&router);

    let opt = a
        .request("OPTIONS", &router.aor("bob"))
        .max_forwards(Some(70));
    a.send_to(router.udp_addr(), &opt.build());
    let (req, src) = b
        .recv_request(RECV)
        .expect("OPTIONS did not reach the registered contact");
    assert_eq!(req.method(), Some(&Method::Options));
    check_forwarded(&router, &a, &b, &opt.branch, &req, src);
    b.reply(&req, src, 200, "OK", "bobtag");
    let (resp, _) = a
        .recv_response_for(&opt.call_id, RECV)
        .expect("200 did not come back to A");
    assert_eq!(resp.status(), Some(200), "{}", text(&resp));
    check_returned(&resp, &a, &opt.branch);
}

/// RFC 3581: A's Via names port 9 but has `rport`; everything must go to
/// the port A really sends from, with `received`/`rport` filled in.
#[test]
fn rport_response_routing_through_proxy() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let b = TestUa::new("bob");
    b.register(&router);

    let inv = a
        .request("INVITE", &router.aor("bob"))
        .via_sent_by("127.0.0.1:9")
        .rport(true);
    a.send_to(router.udp_addr(), &inv.build());
    let (req, src) = b
        .recv_request(RECV)
        .expect("INVITE did not reach the registered contact");
    // End-to-end outcome first: does the 200 reach A's real port?
    b.reply(&req, src, 200, "OK", "bobtag");
    let got = a.recv_answer_for(&inv.call_id, RECV);
    let vs = vias(&req);
    assert!(vs.len() >= 2, "{}", text(&req));
    let (resp, _) = got.unwrap_or_else(|| {
        panic!(
            "200 did not come back to A's real port {} (rport ignored, sent to port 9?); B received:\n{}",
            a.port(),
            text(&req)
        )
    });
    assert_eq!(resp.status(), Some(200));
    let rv = vias(&resp);
    assert_eq!(rv.len(), 1, "{}", text(&resp));
    assert_eq!(rv[0].rport(), Some(Some(a.port())), "{}", text(&resp));
    assert_eq!(
        rv[0].received(),
        Some("127.0.0.1"),
        "RFC 3581 §4: received MUST be added when rport is:\n{}",
        text(&resp)
    );
    // And the forwarded copy carried what a stateless proxy needs to route it.
    assert_eq!(
        vs[1].rport(),
        Some(Some(a.port())),
        "Wisp must fill rport={} in A's Via when forwarding (RFC 3581 §4):\n{}",
        a.port(),
        text(&req)
    );
    assert_eq!(
        vs[1].received(),
        Some("127.0.0.1"),
        "RFC 3581 §4: received MUST be added when rport is:\n{}",
        text(&req)
    );
}

/// Same for a request the router answers itself.
#[test]
fn rport_on_locally_answered_request() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let opt = a
        .request("OPTIONS", &router.uri())
        .via_sent_by("127.0.0.1:9")
        .rport(true);
    a.send_to(router.udp_addr(), &opt.build());
    let (resp, _) = a
        .recv_response_for(&opt.call_id, RECV)
        .expect("reply to OPTIONS did not come to A's real port (rport ignored?)");
    let v = &vias(&resp)[0];
    assert_eq!(v.rport(), Some(Some(a.port())), "{}", text(&resp));
    assert_eq!(
        v.received(),
        Some("127.0.0.1"),
        "RFC 3581 §4: received MUST be added when rport is:\n{}",
        text(&resp)
    );
    assert_eq!(resp.status(), Some(200), "{}", text(&resp));
}

/// A request whose R-URI is not the router is forwarded statelessly to the R-URI.
#[test]
fn foreign_request_uri_is_forwarded_to_ruri() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let b = TestUa::new("bob");
    let opt = a.request("OPTIONS", &b.contact());
    a.send_to(router.udp_addr(), &opt.build());
    let (req, src) = b
        .recv_request(RECV)
        .expect("request for a foreign R-URI was not forwarded to it");
    let vs = vias(&req);
    assert_eq!(vs.len(), 2, "{}", text(&req));
    assert_eq!(vs[0].port, Some(router.udp_port()));
    assert_eq!(req.max_forwards().unwrap(), Some(69));
    b.reply(&req, src, 200, "OK", "b");
    let (resp, _) = a
        .recv_response_for(&opt.call_id, Duration::from_secs(3))
        .expect("200 did not come back");
    assert_eq!(resp.status(), Some(200));
    assert_eq!(vias(&resp).len(), 1);
}

/// `Expires: 0` removes the binding: the AOR is unknown again (404).
#[test]
fn unregister_removes_binding() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let b = TestUa::new("bob");
    b.register(&router);
    let unreg = b
        .request("REGISTER", &router.uri())
        .from(&router.aor("bob"))
        .to(&router.aor("bob"))
        .cseq(2)
        .expires(0);
    let (_, fin) = b.transact(router.udp_addr(), &unreg, RECV);
    let fin = fin.expect("no answer to REGISTER with Expires: 0");
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
    let inv = a.request("INVITE", &router.aor("bob"));
    let (_, fin) = a.transact(router.udp_addr(), &inv, RECV);
    let fin = fin.expect("no answer to INVITE after unregister");
    assert_eq!(
        fin.status(),
        Some(404),
        "binding must be gone after Expires: 0:\n{}",
        text(&fin)
    );
}

/// The hello_world plugin component (same script) routes the same way.
#[test]
fn hello_world_plugin_registers_and_forwards() {
    hello_world_routes(&plugin_path("hello_world"), |m| m);
}

/// The Hello World ports to other languages (plugins/hello-world-{c,zig,js,py})
/// pass the same test as the Rust one. A language whose toolchain this
/// machine has (`scripts/build-languages.sh --list`) must have its build:
/// missing, the test fails; without the toolchain it is skipped.
fn hello_world_in(lang: &str, f: impl Fn(Manifest) -> Manifest) {
    let path = plugin_path(&format!("hello_world_{lang}"));
    if !path.is_file() {
        assert!(
            !wisp_e2e::plugin_languages().iter().any(|l| l == lang),
            "{} is missing although this machine has the {lang} toolchain: run `make plugins`",
            path.display()
        );
        eprintln!("skipped: no {lang} plugin toolchain here (scripts/setup.sh installs it)");
        return;
    }
    hello_world_routes(&path, f);
}

#[test]
fn hello_world_in_c_registers_and_forwards() {
    hello_world_in("c", |m| m);
}

#[test]
fn hello_world_in_zig_registers_and_forwards() {
    hello_world_in("zig", |m| m);
}

/// SpiderMonkey needs more than the default 32 MiB: the manifest raises the
/// cap for this plugin only.
#[test]
fn hello_world_in_js_registers_and_forwards() {
    hello_world_in("js", |m| m.set("plugin", "memory_mb", "64"));
}

/// Python's runtime imports WASI: granted, with nothing behind it.
#[test]
fn hello_world_in_py_registers_and_forwards() {
    hello_world_in("py", |mut m| {
        m.extra.push_str("[plugin.capabilities]\nwasi = true\n");
        m.set("plugin", "memory_mb", "64")
    });
}

/// REGISTER saved, a request for the registered user forwarded to its
/// contact (Record-Route, Via, the 200 back), a request for an unknown
/// user answered 404, and a message past `max_len` 513.
fn hello_world_routes(plugin: &std::path::Path, f: impl Fn(Manifest) -> Manifest) {
    let router = Router::start_with(|m| {
        f(m.plugin_file(plugin)
            .set("plugin", "name", "\"hello-world\"")
            .set("params", "max_len", "2000"))
    });
    let a = TestUa::new("alice");
    let b = TestUa::new("bob");
    b.register(&router);
    let opt = a.request("OPTIONS", &router.aor("bob"));
    a.send_to(router.udp_addr(), &opt.build());
    let (req, src) = b
        .recv_request(RECV)
        .expect("OPTIONS did not reach the registered contact");
    check_forwarded(&router, &a, &b, &opt.branch, &req, src);
    b.reply(&req, src, 200, "OK", "t");
    let (resp, _) = a
        .recv_response_for(&opt.call_id, RECV)
        .expect("200 did not come back to A");
    check_returned(&resp, &a, &opt.branch);
    let inv = a.request("INVITE", &router.aor("nobody"));
    let (_, fin) = a.transact(router.udp_addr(), &inv, RECV);
    assert_eq!(fin.expect("no 404").status(), Some(404));
    let big = a
        .request("MESSAGE", &router.aor("bob"))
        .body("text/plain", &[b'x'; 2100]);
    let (_, fin) = a.transact(router.udp_addr(), &big, RECV);
    assert_eq!(
        fin.expect("no 513").status(),
        Some(513),
        "params reach init"
    );
}
