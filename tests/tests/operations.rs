//! What an operator sees of a running router (issue 18): the `Warning`
//! header of `server.sip_warning`, the log's Call-IDs, `wisp ctl ps`.

use wisp_e2e::*;

/// The `Warning` values of `m`.
fn warnings(m: &wisp_sip::Message) -> Vec<String> {
    m.header_values("Warning")
        .map(|v| String::from_utf8_lossy(v).trim().to_string())
        .collect()
}

/// Seed 003 "Tracing Errors in Server Chains": with `sip_warning` on, the
/// 404 the router answers itself says which router (listen address, pid)
/// answered which request (source, Request-URI in and out, Via count).
#[test]
fn sip_warning_names_the_router_and_the_request_in_a_local_404() {
    let router = Router::start_with(|m| m.set("server", "sip_warning", "true"));
    let a = TestUa::new("alice");
    let ruri = router.aor("nobody");
    let inv = a.request("INVITE", &ruri);
    let (_, fin) = a.transact(router.udp_addr(), &inv, RECV);
    let fin = fin.expect("no answer to INVITE for an unknown user");
    assert_eq!(fin.status(), Some(404), "{}", text(&fin));
    let pid = router.pid().expect("router runs");
    let expected = format!(
        "392 {} \"Noisy feedback tells: pid={pid} req_src_ip={} req_src_port={} \
         in_uri={ruri} out_uri={ruri} via_cnt=1\"",
        router.udp_addr(),
        a.addr().ip(),
        a.addr().port(),
    );
    assert_eq!(warnings(&fin), vec![expected], "{}", text(&fin));

    // The sanity check's 400 carries it too: the request never reached a
    // plugin.
    let bad = a.request("OPTIONS", &router.uri()).cseq_raw("x OPTIONS");
    let (_, fin) = a.transact(router.udp_addr(), &bad, RECV);
    let fin = fin.expect("no answer to a broken CSeq");
    assert_eq!(fin.status(), Some(400), "{}", text(&fin));
    let w = warnings(&fin);
    assert_eq!(w.len(), 1, "{}", text(&fin));
    assert!(
        w[0].starts_with(&format!("392 {} ", router.udp_addr())),
        "{w:?}"
    );
    assert!(w[0].contains(&format!("pid={pid} ")), "{w:?}");
}

#[test]
fn no_warning_unless_the_manifest_asks() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let inv = a.request("INVITE", &router.aor("nobody"));
    let (_, fin) = a.transact(router.udp_addr(), &inv, RECV);
    let fin = fin.expect("no answer to INVITE for an unknown user");
    assert_eq!(fin.status(), Some(404), "{}", text(&fin));
    assert!(warnings(&fin).is_empty(), "{}", text(&fin));
}
