//! Seed 001 (the SER admin guide), "URI Matching" and "URI-rewriting", as
//! plugins in the running router: `plugins/numbering-plan` ("A simple
//! Numbering Plan") and `plugins/uri-rewriting` (the table of built-in
//! rewriting actions on `sip:12345@foo.bar:6060`, and the exercise whose
//! answer is `sip:134@foo.bar`). The gateways and next hops are test user
//! agents; what they receive is what the router sent.

use wisp_e2e::*;

fn quoted(ua: &TestUa) -> String {
    format!("{:?}", ua.addr().to_string())
}

/// The numbering plan with its two gateways.
fn numbering_plan(us: &TestUa, other: &TestUa) -> Router {
    let (us, other) = (quoted(us), quoted(other));
    Router::start_with(|m| {
        m.set("plugin", "name", "\"numbering-plan\"")
            .plugin_file(&plugin_path("numbering_plan"))
            .set("params", "us_gateway", &us)
            .set("params", "gateway", &other)
    })
}

/// The Request-URI of the next request `ua` receives.
fn ruri_received(ua: &TestUa) -> Option<String> {
    let (req, _) = ua.recv_request(RECV)?;
    Some(String::from_utf8_lossy(&req.request_uri_raw()).into_owned())
}

#[test]
fn uri_matching_a_simple_numbering_plan() {
    let us_gateway = TestUa::new("us-gw");
    let gateway = TestUa::new("gw");
    let router = numbering_plan(&us_gateway, &gateway);
    let host = router.udp_addr();
    let caller = TestUa::new("caller");

    // US numbers (prefix "1"): the "1" stripped, to the US gateway.
    let us = caller.request("INVITE", &format!("sip:12125550100@{host}"));
    caller.send_to(host, &us.build());
    assert_eq!(
        ruri_received(&us_gateway).as_deref(),
        Some(format!("sip:2125550100@{host}").as_str())
    );

    // Other numbers: unchanged, to the other gateway.
    let intl = caller.request("INVITE", &format!("sip:004930123@{host}"));
    caller.send_to(host, &intl.build());
    assert_eq!(
        ruri_received(&gateway).as_deref(),
        Some(format!("sip:004930123@{host}").as_str())
    );

    // Prefix "8" and names are IP users: looked up, else 404.
    let ip_user = TestUa::new("8100");
    ip_user.register(&router);
    let call = caller.request("INVITE", &router.aor("8100"));
    caller.send_to(host, &call.build());
    let (req, _) = ip_user
        .recv_request(RECV)
        .expect("the call to 8100 reaches its registered phone");
    assert_eq!(
        String::from_utf8_lossy(&req.request_uri_raw()),
        ip_user.contact()
    );
    let nobody = caller.request("INVITE", &router.aor("bob"));
    caller.send_to(host, &nobody.build());
    let status = caller
        .recv_answer_for(&nobody.call_id, RECV)
        .and_then(|(m, _)| m.status());
    assert_eq!(status, Some(404));

    // No gateway saw the IP users' calls.
    assert!(
        us_gateway
            .recv_request(std::time::Duration::from_millis(300))
            .is_none()
    );
    assert!(
        gateway
            .recv_request(std::time::Duration::from_millis(300))
            .is_none()
    );
}

/// The uri-rewriting plugin, forwarding to `next_hop`, with
/// `tests/fixtures/echo-first.sh` as its granted `echo`.
fn uri_rewriting(next_hop: &TestUa) -> Router {
    let hop = quoted(next_hop);
    let echo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/echo-first.sh")
        .display()
        .to_string();
    Router::start_with(|mut m| {
        m.extra = format!("[plugin.capabilities]\nexec = [{echo:?}]\n");
        m.set("plugin", "name", "\"uri-rewriting\"")
            .plugin_file(&plugin_path("uri_rewriting"))
            .set("params", "next_hop", &hop)
            .set("params", "echo", &format!("{echo:?}"))
    })
}

#[test]
fn uri_rewriting_using_built_in_actions() {
    let next_hop = TestUa::new("next");
    let router = uri_rewriting(&next_hop);
    let caller = TestUa::new("caller");
    for (action, want) in [
        ("rewritehost", "sip:12345@192.168.0.10:6060"),
        ("rewriteuri", "sip:alice@foo.bar"),
        ("rewritehostport", "sip:12345@192.168.0.10:3040"),
        ("rewriteuser", "sip:alice@foo.bar:6060"),
        ("rewriteuserpass", "sip:alice:pw@foo.bar:6060"),
        ("rewriteport", "sip:12345@foo.bar:1234"),
        ("prefix", "sip:912345@foo.bar:6060"),
        ("strip", "sip:345@foo.bar:6060"),
    ] {
        let req = caller
            .request("OPTIONS", "sip:12345@foo.bar:6060")
            .header("X-Rewrite", action);
        caller.send_to(router.udp_addr(), &req.build());
        assert_eq!(ruri_received(&next_hop).as_deref(), Some(want), "{action}");
    }
}

#[test]
fn uri_rewriting_exercise() {
    let next_hop = TestUa::new("next");
    let router = uri_rewriting(&next_hop);
    let caller = TestUa::new("caller");
    let req = caller
        .request("OPTIONS", "sip:12345@foo.bar:6060")
        .header("X-Rewrite", "exercise");
    caller.send_to(router.udp_addr(), &req.build());
    // "The correct answer is the resulting URI will be sip:134@foo.bar."
    assert_eq!(ruri_received(&next_hop).as_deref(), Some("sip:134@foo.bar"));
}

/// Seed 003, Troubleshooting: "SIP requests are replied by ser with 483
/// Too Many Hops ... an error in request routing script which caused an
/// infinite loop", typically a server that forwards requests for itself to
/// itself. Here the numbering plan's gateway is the router's own address,
/// and the plugin never calls `mf_process_maxfwd_header`: the host
/// decrements Max-Forwards on each forward, and the loop ends with one 483.
#[test]
fn troubleshooting_a_routing_loop_ends_with_483_too_many_hops() {
    let router = Router::start_on(Ports::Below10000, |m| {
        let listen = m
            .server
            .iter()
            .find(|(k, _)| k == "listen")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let port = listen
            .split("udp:127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let itself = format!("\"127.0.0.1:{port}\"");
        m.set("plugin", "name", "\"numbering-plan\"")
            .plugin_file(&plugin_path("numbering_plan"))
            .set("params", "us_gateway", &itself)
            .set("params", "gateway", &itself)
    });
    let caller = TestUa::new("caller");
    let req = caller.request("OPTIONS", "sip:004930123@pstn.example");
    caller.send_to(router.udp_addr(), &req.build());
    let (answer, _) = caller
        .recv_answer_for(&req.call_id, RECV)
        .expect("the loop ends with an answer");
    assert_eq!(answer.status(), Some(483), "{}", text(&answer));
    assert!(
        caller
            .recv_answer_for(&req.call_id, std::time::Duration::from_millis(300))
            .is_none(),
        "one final answer"
    );
}

/// "Static Forwarding" (001, "Request Routing and SER Scripts"): a numeric
/// Request-URI starting with zero goes statelessly, "as is", to a gateway
/// whose address is fixed in the script (`forward(192.168.99.3, 5080)`).
/// `plugins/numbering-plan` does that for every non-US number: the
/// gateway gets the request with the Request-URI untouched, no `100
/// Trying` comes from the router, and the gateway's answer is passed back.
#[test]
fn static_forwarding() {
    let us_gateway = TestUa::new("us-gw");
    let gateway = TestUa::new("gw");
    let router = numbering_plan(&us_gateway, &gateway);
    let caller = TestUa::new("caller");
    let call = caller.request("INVITE", "sip:0049301234@iptel.org");
    caller.send_to(router.udp_addr(), &call.build());
    let (inv, src) = gateway
        .recv_request(RECV)
        .expect("the call reaches the static gateway");
    assert_eq!(
        String::from_utf8_lossy(&inv.request_uri_raw()),
        "sip:0049301234@iptel.org"
    );
    assert_eq!(call_id_of(&inv).as_deref(), Some(call.call_id.as_str()));
    gateway.reply(&inv, src, 200, "OK", "g1");
    let (first, _) = caller
        .recv_response_for(&call.call_id, RECV)
        .expect("the gateway's answer");
    assert_eq!(
        first.status(),
        Some(200),
        "stateless: no 100 Trying of the router's own first: {}",
        text(&first)
    );
}
