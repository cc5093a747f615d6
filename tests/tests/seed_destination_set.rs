//! Seed 001 (the SER admin guide), "Destination Set" and "Redirect Server",
//! as `plugins/redirect` (and `plugins/default` for a user's registered
//! contacts) in the running router: `t_relay` forks to every URI of the
//! destination set, a 3xx lists every URI in Contact, and a stateless
//! `forward` of the same set sends to the first URI only.

use std::time::Duration;

use wisp_e2e::*;

fn redirect(mode: &str, first: &str, second: &str) -> Router {
    let (mode, first, second) = (
        format!("{mode:?}"),
        format!("{first:?}"),
        format!("{second:?}"),
    );
    Router::start_with(|m| {
        m.set("plugin", "name", "\"redirect\"")
            .plugin_file(&plugin_path("redirect"))
            .set("params", "mode", &mode)
            .set("params", "first", &first)
            .set("params", "second", &second)
    })
}

#[test]
fn destination_set_redirect_server() {
    let router = redirect(
        "redirect",
        "sip:parallel@iptel.org:9",
        "sip:redirect@iptel.org:9",
    );
    let caller = TestUa::new("caller");
    let inv = caller.request("INVITE", &router.aor("anyone"));
    caller.send_to(router.udp_addr(), &inv.build());
    let (reply, _) = caller
        .recv_answer_for(&inv.call_id, RECV)
        .expect("the redirect is answered");
    assert_eq!(reply.status(), Some(300), "{}", text(&reply));
    let contacts: Vec<String> = reply
        .header_values("Contact")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    let all = contacts.join(", ");
    for uri in ["sip:parallel@iptel.org:9", "sip:redirect@iptel.org:9"] {
        assert!(all.contains(uri), "Contact lists {uri}: {all}");
    }
}

#[test]
fn destination_set_stateless_forward_uses_the_first_uri_only() {
    let first = TestUa::new("first");
    let second = TestUa::new("second");
    let router = redirect("forward", &first.contact(), &second.contact());
    let caller = TestUa::new("caller");
    let opt = caller.request("OPTIONS", &router.aor("anyone"));
    caller.send_to(router.udp_addr(), &opt.build());
    let (req, _) = first
        .recv_request(RECV)
        .expect("the request reaches the first URI");
    assert_eq!(
        String::from_utf8_lossy(&req.request_uri_raw()),
        first.contact()
    );
    assert!(
        second.recv_request(Duration::from_millis(500)).is_none(),
        "the appended branch is not forwarded statelessly"
    );
}

/// The callees each ring; `winner` answers 200, every other one gets the
/// CANCEL and ends with 487. The caller gets exactly one final answer, the
/// winner's 200.
fn fork_and_answer(
    router: &Router,
    caller: &TestUa,
    ruri: &str,
    callees: &[&TestUa],
    winner: usize,
) {
    let call = caller.request("INVITE", ruri);
    caller.send_to(router.udp_addr(), &call.build());
    let invites: Vec<_> = callees
        .iter()
        .map(|ua| ua.expect_request(wisp_sip::Method::Invite))
        .collect();
    for (i, (ua, (inv, src))) in callees.iter().zip(&invites).enumerate() {
        ua.reply(inv, *src, 180, "Ringing", &format!("t{i}"));
    }
    let (inv, src) = &invites[winner];
    callees[winner].reply(inv, *src, 200, "OK", &format!("t{winner}"));
    for (i, (ua, (inv, src))) in callees.iter().zip(&invites).enumerate() {
        if i == winner {
            continue;
        }
        let (cancel, csrc) = ua.expect_request(wisp_sip::Method::Cancel);
        ua.reply(&cancel, csrc, 200, "OK", &format!("t{i}"));
        ua.reply(inv, *src, 487, "Request Terminated", &format!("t{i}"));
    }
    let mut finals = Vec::new();
    while let Some((r, _)) = caller.recv_answer_for(&call.call_id, Duration::from_millis(800)) {
        if r.status().is_some_and(|s| s >= 200) {
            finals.push(r.status().unwrap_or(0));
        }
    }
    assert_eq!(finals, [200], "one final answer, the winner's");
}

/// "Destination Set": `append_branch(uri)` adds a URI to the set, and
/// `t_relay` forks the request to all of them (`plugins/redirect` with
/// `mode = "relay"`).
#[test]
fn destination_set_append_branch_and_t_relay_fork_to_every_uri() {
    let first = TestUa::new("first");
    let second = TestUa::new("second");
    let router = redirect("relay", &first.contact(), &second.contact());
    let caller = TestUa::new("caller");
    fork_and_answer(
        &router,
        &caller,
        &router.aor("anyone"),
        &[&first, &second],
        1,
    );
}

/// "Destination Set": "If a user previously registered from three
/// locations", `lookup` fills the set with the three contacts and
/// `t_relay` forks to all of them (`plugins/default`).
#[test]
fn destination_set_forking_with_t_relay() {
    let router = Router::start();
    let phones = [
        TestUa::new("john"),
        TestUa::new("john"),
        TestUa::new("john"),
    ];
    for phone in &phones {
        phone.register(&router);
    }
    let caller = TestUa::new("caller");
    let callees: Vec<&TestUa> = phones.iter().collect();
    fork_and_answer(&router, &caller, &router.aor("john"), &callees, 2);
}
