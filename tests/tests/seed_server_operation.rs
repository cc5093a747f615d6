//! Seed 003 (SER "Server Operation"): the operational practices, the
//! authentication-policy HOWTO and a troubleshooting entry, each as a plugin
//! in the running router, checked on the wire and in the router's log.

use std::time::Duration;

use wisp_e2e::*;
use wisp_sip::Message;

/// Send `req` from `ua` to the router; its final answer (100 skipped).
fn final_answer(router: &Router, ua: &TestUa, req: &RequestBuilder) -> Message {
    ua.send_to(router.udp_addr(), &req.build());
    ua.recv_answer_for(&req.call_id, RECV)
        .unwrap_or_else(|| panic!("no final answer to {}\n{}", req.method, router.log()))
        .0
}

/// No second final answer for `call_id` comes to `ua` (retransmissions of
/// the same answer are not sent over this short wait on loopback either).
fn assert_no_second_answer(ua: &TestUa, call_id: &str) {
    if let Some((m, _)) = ua.recv_answer_for(call_id, Duration::from_millis(500)) {
        panic!("a second final answer:\n{}", text(&m));
    }
}

/// The router's log lines that carry `call_id`.
fn log_lines_of(router: &Router, call_id: &str) -> Vec<String> {
    router
        .log()
        .lines()
        .filter(|l| l.contains(&format!("call_id={call_id}")))
        .map(str::to_owned)
        .collect()
}

// ------------------------------------------------ authentication policy

fn start_auth_policy() -> Router {
    Router::start_with(|m| {
        m.set("plugin", "name", "\"auth-policy\"")
            .plugin_file(&plugin_path("auth_policy"))
            .set("params", "domain", "\"foo.bar\"")
    })
}

/// "Authentication Policy: Prevention of Unauthorized Domain Name Use in
/// From and More": `search("^(f|From):.*foo.bar")` + `proxy_authorize`
/// (`plugins/auth-policy`). A request claiming foo.bar in From is
/// challenged and never relayed until its credentials are right; then it
/// is relayed without them. A caller from another domain is relayed
/// without any challenge.
#[test]
fn authentication_policy_prevention_of_unauthorized_domain_name_use_in_from() {
    let router = start_auth_policy();
    router.ctl_ok(&["user", "add", "alice@foo.bar", "s3cret"]);
    let bob = TestUa::new("bob");
    let target = bob.contact();
    let caller = TestUa::new("caller");

    // Spoofed: claims foo.bar, no credentials. Challenged for foo.bar.
    let spoofed = caller.request("INVITE", &target).from("sip:alice@foo.bar");
    let resp = final_answer(&router, &caller, &spoofed);
    assert_eq!(resp.status(), Some(407), "{}", text(&resp));
    let challenge = md5_challenge(&resp, "Proxy-Authenticate");
    assert_eq!(challenge.param("realm"), Some("foo.bar"));
    // The compact form `f:` is searched too (the seed's `(f|From)`).
    let compact = caller
        .request("MESSAGE", &target)
        .from("sip:mallory@foo.bar");
    let raw = String::from_utf8_lossy(&compact.build()).replacen("\r\nFrom: ", "\r\nf: ", 1);
    caller.send_to(router.udp_addr(), raw.as_bytes());
    let (resp, _) = caller
        .recv_answer_for(&compact.call_id, RECV)
        .expect("an answer to the compact From");
    assert_eq!(resp.status(), Some(407), "{}", text(&resp));
    // A wrong password: challenged again.
    let wrong = caller
        .request("INVITE", &target)
        .from("sip:alice@foo.bar")
        .header(
            "Proxy-Authorization",
            &md5_credentials(&challenge, "INVITE", &target, "alice", "guess", 1),
        );
    assert_eq!(final_answer(&router, &caller, &wrong).status(), Some(407));
    assert!(
        bob.recv_request(Duration::from_millis(300)).is_none(),
        "nothing claiming foo.bar was relayed without the right credentials"
    );

    // The real alice: relayed, credentials consumed, bob's answer comes back.
    let honest = caller
        .request("INVITE", &target)
        .from("sip:alice@foo.bar")
        .header(
            "Proxy-Authorization",
            &md5_credentials(&challenge, "INVITE", &target, "alice", "s3cret", 1),
        );
    caller.send_to(router.udp_addr(), &honest.build());
    let (inv, src) = bob.recv_request(RECV).expect("alice's INVITE reaches bob");
    assert_eq!(call_id_of(&inv).as_deref(), Some(honest.call_id.as_str()));
    assert!(
        inv.header("Proxy-Authorization").is_none(),
        "{}",
        text(&inv)
    );
    bob.reply(&inv, src, 200, "OK", "b1");
    let (answer, _) = caller
        .recv_answer_for(&honest.call_id, RECV)
        .expect("bob's answer");
    assert_eq!(answer.status(), Some(200));

    // Another domain in From: no credentials asked, relayed as it is.
    let foreign = caller
        .request("INVITE", &target)
        .from("sip:carol@elsewhere.example");
    caller.send_to(router.udp_addr(), &foreign.build());
    let (inv, src) = bob.recv_request(RECV).expect("carol's INVITE reaches bob");
    assert_eq!(call_id_of(&inv).as_deref(), Some(foreign.call_id.as_str()));
    bob.reply(&inv, src, 200, "OK", "b2");
    let (answer, _) = caller
        .recv_answer_for(&foreign.call_id, RECV)
        .expect("bob's answer to carol");
    assert_eq!(answer.status(), Some(200), "{}", text(&answer));
}

// ------------------------------------------------ operational practices

/// "Labeling Outbound Requests" ("Routing-history" labels): the Hello
/// World script (`plugins/hello-world`) appends a `P-hint` to each request
/// it relays saying which part of the script sent it: `usrloc applied`
/// after a lookup, `outbound` for a foreign domain, `rr-enforced` within a
/// dialog. The labels are on the relayed requests, not on the responses.
#[test]
fn labeling_outbound_requests_routing_history_labels() {
    let router = Router::start_with(|m| {
        m.plugin_file(&plugin_path("hello_world"))
            .set("plugin", "name", "\"hello-world\"")
    });
    let alice = TestUa::new("alice");
    let bob = TestUa::new("bob");
    bob.register(&router);

    // To a registered user of ours: looked up.
    let invite = alice.request("INVITE", &router.aor("bob"));
    alice.send_to(router.udp_addr(), &invite.build());
    let (inv, src) = bob.recv_request(RECV).expect("the INVITE reaches bob");
    assert_eq!(
        inv.header_values("P-hint").collect::<Vec<_>>(),
        ["usrloc applied"],
        "{}",
        text(&inv)
    );
    bob.reply(&inv, src, 200, "OK", "b1");
    let (ok, _) = alice
        .recv_answer_for(&invite.call_id, RECV)
        .expect("bob's 200");
    assert_eq!(ok.status(), Some(200));
    assert!(ok.header("P-hint").is_none(), "{}", text(&ok));

    // Within the dialog: the ACK follows the route the INVITE recorded.
    let route = header_str(&inv, "Record-Route").expect("the dialog is record-routed");
    let ack = invite
        .ack_for(&ok)
        .branch(&format!("z9hG4bK-ack-{}", random_token()));
    let mut ack = ack.header("Route", &route);
    ack.ruri = bob.contact();
    alice.send_to(router.udp_addr(), &ack.build());
    let ack_in = bob.expect_request(wisp_sip::Method::Ack);
    assert_eq!(
        ack_in.0.header_values("P-hint").collect::<Vec<_>>(),
        ["rr-enforced"],
        "{}",
        text(&ack_in.0)
    );

    // To a foreign domain: outbound.
    let carol = TestUa::new("carol");
    let options = alice.request("OPTIONS", &carol.contact());
    alice.send_to(router.udp_addr(), &options.build());
    let (opt, _) = carol.recv_request(RECV).expect("the OPTIONS reaches carol");
    assert_eq!(
        opt.header_values("P-hint").collect::<Vec<_>>(),
        ["outbound"],
        "{}",
        text(&opt)
    );
}

/// "Logging" ("Logging Script", `plugins/logging`): the seed's REGISTER to
/// the server's own address logs `REGISTER received` and `request for
/// other domain received`; a request for the served domain logs that
/// instead. Each line is in the router's log with the plugin's name and
/// the request's Call-ID.
#[test]
fn logging_script() {
    let served = TestUa::on(std::net::Ipv4Addr::new(127, 0, 0, 2), "113311");
    let router = Router::start_with(|m| {
        m.set("plugin", "name", "\"logging\"")
            .plugin_file(&plugin_path("logging"))
            .set("params", "domain", "\"127.0.0.2\"")
    });
    let phone = TestUa::new("113311");
    let register = phone
        .request("REGISTER", &router.uri())
        .from(&router.aor("113311"))
        .to(&router.aor("113311"))
        .header("User-Agent", "CSCO/4")
        .expires(600);
    assert_eq!(final_answer(&router, &phone, &register).status(), Some(200));
    let lines = log_lines_of(&router, &register.call_id);
    let logged = |what: &str| {
        lines
            .iter()
            .any(|l| l.contains(what) && l.contains("plugin=\"logging\""))
    };
    assert!(logged("REGISTER received"), "{lines:#?}");
    assert!(logged("request for other domain received"), "{lines:#?}");
    assert!(!logged("request for my domain received"), "{lines:#?}");

    // A request for the served domain: the other line, and no REGISTER one.
    let message = phone.request("MESSAGE", &served.contact());
    phone.send_to(router.udp_addr(), &message.build());
    let (req, src) = served.recv_request(RECV).expect("the MESSAGE is relayed");
    served.reply(&req, src, 200, "OK", "s1");
    assert_eq!(
        phone
            .recv_answer_for(&message.call_id, RECV)
            .and_then(|(m, _)| m.status()),
        Some(200)
    );
    let lines = log_lines_of(&router, &message.call_id);
    let logged = |what: &str| lines.iter().any(|l| l.contains(what));
    assert!(logged("request for my domain received"), "{lines:#?}");
    assert!(!logged("REGISTER received"), "{lines:#?}");
    assert!(!logged("request for other domain received"), "{lines:#?}");
}

// ------------------------------------------------ troubleshooting

/// "Troubleshooting": `ERROR: t_newtran: transaction already in process`
/// (`plugins/transaction-in-process`). A route that calls `t_newtran`
/// after `t_relay`, or `t_relay` twice, gets `already-handled` back for
/// the second call: the request is relayed once, the router's log names
/// the error with the request's Call-ID, and the caller gets exactly one
/// final answer, the callee's.
#[test]
fn troubleshooting_transaction_already_in_process() {
    let router = Router::start_with(|m| {
        m.set("plugin", "name", "\"transaction-in-process\"")
            .plugin_file(&plugin_path("transaction_in_process"))
    });
    let caller = TestUa::new("caller");
    for mistake in ["newtran-after-relay", "relay-twice"] {
        let callee = TestUa::new(mistake);
        let invite = caller.request("INVITE", &callee.contact());
        caller.send_to(router.udp_addr(), &invite.build());
        let (inv, src) = callee.recv_request(RECV).expect("the INVITE is relayed");
        assert!(
            callee.recv_request(Duration::from_millis(300)).is_none(),
            "{mistake}: relayed once only"
        );
        callee.reply(&inv, src, 200, "OK", "c1");
        let (answer, _) = caller
            .recv_answer_for(&invite.call_id, RECV)
            .unwrap_or_else(|| panic!("{mistake}: no answer\n{}", router.log()));
        assert_eq!(answer.status(), Some(200), "{mistake}: {}", text(&answer));
        assert_no_second_answer(&caller, &invite.call_id);
        let lines = log_lines_of(&router, &invite.call_id);
        assert!(
            lines
                .iter()
                .any(|l| l.contains("route returned error") && l.contains("already in process")),
            "{mistake}: no log line names the error: {lines:#?}"
        );
    }
}

// ------------------------------------------------ HOWTOs

/// "Reliability" ("Script for Replication of User Contacts",
/// `plugins/replicate`, SER's replicate.cfg): the REGISTER is saved and
/// answered here, and a stateful copy goes to the backup registrar.
#[test]
fn reliability_replication_of_user_contacts() {
    let backup = TestUa::new("backup");
    let backup_uri = format!("sip:127.0.0.1:{}", backup.port());
    let router = Router::start_with(move |m| {
        m.plugin_file(&plugin_path("replicate"))
            .set("plugin", "name", "\"replicate\"")
            .set("params", "backup", &format!("\"{backup_uri}\""))
            .set("params", "backup_ip", "\"192.0.2.1\"")
    });
    let alice = TestUa::new("alice");
    let ok = alice.register(&router);
    assert_eq!(ok.status(), Some(200));
    let (copy, src) = backup.expect_request(wisp_sip::Method::Register);
    assert_eq!(
        &copy.request_uri_raw()[..],
        format!("sip:127.0.0.1:{}", backup.port()).as_bytes()
    );
    assert_eq!(
        copy.vias().expect("Via").len(),
        2,
        "Wisp's Via on the copy:\n{}",
        text(&copy)
    );
    assert!(
        copy.header("Contact")
            .is_some_and(|c| String::from_utf8_lossy(&c.value).contains(&alice.contact())),
        "{}",
        text(&copy)
    );
    backup.reply(&copy, src, 200, "OK", "bk");
    // The backup's 200 stays in the proxy: alice got exactly one answer.
    let extra = alice.recv_msg(Duration::from_millis(500));
    assert!(
        extra.is_none(),
        "{}",
        extra.map(|(m, _)| text(&m)).unwrap_or_default()
    );
}

/// "User Aliases" (`lookup("aliases")` in `plugins/default`, `serctl
/// alias` as `wisp ctl alias`): a call to the alias reaches the user it
/// names, at his registered contact.
#[test]
fn user_aliases() {
    let router = Router::start();
    let john = TestUa::new("john.doe");
    john.register(&router);
    router.ctl_ok(&["alias", "add", "7007", &router.aor("john.doe")]);
    let caller = TestUa::new("caller");
    let call = caller.request("INVITE", &router.aor("7007"));
    caller.send_to(router.udp_addr(), &call.build());
    let (inv, src) = john.expect_request(wisp_sip::Method::Invite);
    assert_eq!(
        String::from_utf8_lossy(&inv.request_uri_raw()),
        john.contact()
    );
    john.reply(&inv, src, 200, "OK", "j1");
    let (ok, _) = caller
        .recv_answer_for(&call.call_id, RECV)
        .expect("john's answer");
    assert_eq!(ok.status(), Some(200));
    // No alias, no user.
    let other = caller.request("INVITE", &router.aor("7008"));
    assert_eq!(final_answer(&router, &caller, &other).status(), Some(404));
}

/// "Access Control (PSTN Gateway)" (`plugins/pstn-gateway`): free numbers
/// reach the gateway without credentials; international ones need
/// credentials of a member of group "int", and nobody else's call reaches
/// the gateway.
#[test]
fn access_control_pstn_gateway() {
    let gateway = TestUa::on(std::net::Ipv4Addr::new(127, 0, 0, 2), "gw");
    let hostport = gateway.addr().to_string();
    let router = Router::start_with(|m| {
        m.plugin_file(&plugin_path("pstn_gateway")).set(
            "params",
            "gateway",
            &format!("{hostport:?}"),
        )
    });
    router.ctl_ok(&["user", "add", "alice@example.com", "s3cret"]);
    router.ctl_ok(&["acl", "grant", "alice@example.com", "int"]);
    router.ctl_ok(&["user", "add", "bob@example.com", "hunter2"]);
    let phone = TestUa::new("phone");
    let number = |n: &str| format!("sip:{n}@{}", router.udp_addr());

    // A free number: straight to the gateway.
    let free = phone
        .request("INVITE", &number("7123"))
        .from("sip:alice@example.com");
    phone.send_to(router.udp_addr(), &free.build());
    let (inv, _) = gateway.expect_request(wisp_sip::Method::Invite);
    assert_eq!(
        String::from_utf8_lossy(&inv.request_uri_raw()),
        format!("sip:7123@{hostport}")
    );

    // International, as bob (not in "int") and as alice.
    let intl = number("00049301234");
    let mut relayed = Vec::new();
    for (user, password, expect) in [("bob", "hunter2", 403), ("alice", "s3cret", 0)] {
        let from = format!("sip:{user}@example.com");
        let first = phone.request("INVITE", &intl).from(&from);
        let challenge = final_answer(&router, &phone, &first);
        assert_eq!(challenge.status(), Some(407), "{}", text(&challenge));
        let c = md5_challenge(&challenge, "Proxy-Authenticate");
        let second = phone.request("INVITE", &intl).from(&from).header(
            "Proxy-Authorization",
            &md5_credentials(&c, "INVITE", &intl, user, password, 1),
        );
        phone.send_to(router.udp_addr(), &second.build());
        if expect != 0 {
            let (resp, _) = phone
                .recv_answer_for(&second.call_id, RECV)
                .expect("an answer");
            assert_eq!(resp.status(), Some(expect), "{user}: {}", text(&resp));
        } else {
            relayed.push(second.call_id.clone());
        }
    }
    let (inv, _) = gateway.expect_request(wisp_sip::Method::Invite);
    assert_eq!(
        call_id_of(&inv),
        relayed.first().cloned(),
        "alice's call only"
    );
    assert!(
        inv.header("Proxy-Authorization").is_none(),
        "{}",
        text(&inv)
    );
}

fn start_acc() -> Router {
    Router::start_with(|m| {
        let mut m = m
            .set("plugin", "name", "\"acc\"")
            .plugin_file(&plugin_path("acc"));
        m.extra
            .push_str("\n[acc]\nlog_flag = 1\nlog_missed_flag = 3\n");
        m
    })
}

/// The accounting records of `call_id` among `lines`.
fn records_of<'a>(lines: &'a [String], call_id: &str) -> Vec<&'a String> {
    lines
        .iter()
        .filter(|l| l.contains(&format!("call_id={call_id:?}")))
        .collect()
}

/// "Accounting" ("Configuration with Enabled Accounting", `plugins/acc`):
/// a call relayed with the accounting flag set is reported once it
/// completes, with its final status.
#[test]
fn accounting() {
    let router = start_acc();
    let alice = TestUa::new("alice");
    alice.register(&router);
    let carol = TestUa::new("carol");
    let call = carol.request("INVITE", &router.aor("alice"));
    carol.send_to(router.udp_addr(), &call.build());
    let (inv, src) = alice.expect_request(wisp_sip::Method::Invite);
    alice.reply(&inv, src, 200, "OK", "a1");
    let (ok, _) = carol
        .recv_answer_for(&call.call_id, RECV)
        .expect("alice's 200");
    assert_eq!(ok.status(), Some(200));
    let lines = router.acc_records(1);
    let recs = records_of(&lines, &call.call_id);
    assert_eq!(recs.len(), 1, "{lines:#?}");
    assert!(recs[0].contains(" answered INVITE 200 "), "{lines:#?}");
}

/// "Reporting Missed Calls" (`plugins/acc`): both cases of the seed, a
/// callee who is off-line (`acc_request` before the 404) and one who is
/// on-line but does not take the call (the 486 completes the transaction
/// with a negative status), are reported as missed calls.
#[test]
fn reporting_missed_calls() {
    let router = start_acc();
    let bob = TestUa::new("bob");
    bob.register(&router);
    let carol = TestUa::new("carol");

    let offline = carol.request("INVITE", &router.aor("dave"));
    assert_eq!(final_answer(&router, &carol, &offline).status(), Some(404));

    let busy = carol.request("INVITE", &router.aor("bob"));
    carol.send_to(router.udp_addr(), &busy.build());
    let (inv, src) = bob.expect_request(wisp_sip::Method::Invite);
    bob.reply(&inv, src, 486, "Busy Here", "b1");
    let (resp, _) = carol
        .recv_answer_for(&busy.call_id, RECV)
        .expect("bob's 486");
    assert_eq!(resp.status(), Some(486));

    let lines = router.acc_records(4);
    for (call_id, code) in [(&offline.call_id, 404), (&busy.call_id, 486)] {
        let recs = records_of(&lines, call_id);
        assert!(
            recs.iter()
                .any(|l| l.contains(&format!(" missed INVITE {code} "))),
            "no missed call for {code}: {lines:#?}"
        );
    }
}
