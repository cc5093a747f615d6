//! Seed 001 (the SER admin guide), "Domain Matching", as
//! `plugins/domain-matching` in the running router: `uri==myself` with the
//! served domains as aliases, and the guide's regular expression, which
//! must not match longer host names.

use wisp_e2e::*;

/// The domain-matching plugin in `mode`, outbound requests answered 403
/// (the seed's outbound hosts are not on this machine).
fn domain_matching(mode: &str) -> Router {
    let mode = format!("{mode:?}");
    Router::start_with(|m| {
        m.set("server", "aliases", "[\"foo.bar\", \"sales.foo.bar\"]")
            .set("plugin", "name", "\"domain-matching\"")
            .plugin_file(&plugin_path("domain_matching"))
            .set("params", "match", &mode)
            .set("params", "relay_outbound", "false")
    })
}

/// The status and reason an OPTIONS to `uri` is answered with.
fn answer(router: &Router, ua: &TestUa, uri: &str) -> (u16, String) {
    let req = ua.request("OPTIONS", uri);
    ua.send_to(router.udp_addr(), &req.build());
    let (m, _) = ua
        .recv_answer_for(&req.call_id, RECV)
        .unwrap_or_else(|| panic!("OPTIONS {uri} is answered"));
    let line = text(&m);
    let reason = line
        .lines()
        .next()
        .and_then(|l| l.splitn(3, ' ').nth(2))
        .unwrap_or_default()
        .to_owned();
    (m.status().unwrap_or(0), reason)
}

fn served(router: &Router, ua: &TestUa, uri: &str) -> bool {
    match answer(router, ua, uri) {
        (200, reason) if reason == "Served Domain" => true,
        (403, reason) if reason == "Outbound Domain" => false,
        other => panic!("OPTIONS {uri}: unexpected answer {other:?}"),
    }
}

#[test]
fn domain_matching_uri_is_myself_with_aliases() {
    let router = domain_matching("myself");
    let ua = TestUa::new("alice");
    // An alias without a port stands for every port the router listens on;
    // the seed's server is on 5060, which a URI without a port means. This
    // router is on another port, so the URIs name it.
    let port = router.udp_port();
    // The served domain, another alias, and the server's own address.
    assert!(served(
        &router,
        &ua,
        &format!("sip:john.doe@foo.bar:{port}")
    ));
    assert!(served(&router, &ua, &format!("sip:a@sales.foo.bar:{port}")));
    assert!(served(&router, &ua, &router.aor("a")));
    // "that happens for example with the following URIs".
    assert!(!served(
        &router,
        &ua,
        &format!("sip:a@marketing.foo.bar:{port}")
    ));
    assert!(!served(&router, &ua, "sip:a@otherdomain.bar"));
}

#[test]
fn domain_matching_using_regular_expressions() {
    let router = domain_matching("regex");
    let ua = TestUa::new("alice");
    for uri in [
        "sip:foo.bar",
        "sip:john@foo.bar",
        "sip:john@sip.foo.bar:5060",
        "sip:john@192.168.0.10;transport=udp",
        "sip:john@FoO.bAr",
        "sip:john@FOO.BAR?subject=hi",
    ] {
        assert!(served(&router, &ua, uri), "{uri} is ours");
    }
    // "Otherwise, longer hostnames such as 192.168.0.101 or
    // foo.bar.otherdomain.com would mistakenly match."
    for uri in [
        "sip:john@192.168.0.101",
        "sip:john@foo.bar.otherdomain.com",
        "sip:john@marketing.foo.bar",
    ] {
        assert!(!served(&router, &ua, uri), "{uri} is not ours");
    }
}
