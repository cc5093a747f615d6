//! Defects found in review, each proved by a test that fails until the
//! router is fixed: a request to a `tel:` URI through the default plugin
//! must get exactly one final answer, and the router's Via branches must
//! not repeat after a restart.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use wisp_e2e::*;

const TEL: &str = "tel:+1-201-555-0123";
/// How long after a final response a second, different one is waited for.
const AFTER_FINAL: Duration = Duration::from_millis(1500);

/// Every response for `req`'s Call-ID until `AFTER_FINAL` after the first
/// final one (or `RECV` without any). Each final to an INVITE is ACKed
/// (RFC 3261 §17.1.1.3) so the router stops retransmitting it.
fn responses(ua: &TestUa, req: &RequestBuilder, router: &Router) -> Vec<Message> {
    ua.send_to(router.udp_addr(), &req.build());
    let mut got = Vec::new();
    let mut deadline = Instant::now() + RECV;
    let mut final_seen = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some((m, _)) = ua.recv_response_for(&req.call_id, left) else {
            return got;
        };
        let status = m.status().expect("a response");
        if status >= 200 {
            if req.method == "INVITE" {
                ua.send_to(router.udp_addr(), &req.ack_for(&m).build());
            }
            if !final_seen {
                final_seen = true;
                deadline = Instant::now() + AFTER_FINAL;
            }
        }
        got.push(m);
    }
}

/// The distinct final answers among `responses`: (status, To tag). A
/// retransmission of the same final counts once.
fn finals(responses: &[Message]) -> BTreeSet<(u16, Option<String>)> {
    responses
        .iter()
        .filter_map(|m| Some((m.status().filter(|s| *s >= 200)?, to_tag(m))))
        .collect()
}

fn describe(responses: &[Message]) -> String {
    if responses.is_empty() {
        return "(no response at all)".into();
    }
    responses.iter().map(text).collect::<Vec<_>>().join("\n")
}

/// A tel: URI is not this router and names no host to relay to: the
/// default plugin's `t_relay` cannot send it anywhere, and the request must
/// still be answered, once, with an error (RFC 3261 §16.3/§16.7: a proxy
/// answers every request it takes statefully with exactly one final
/// response). Today an OPTIONS gets no answer at all.
#[test]
fn an_options_to_a_tel_uri_gets_exactly_one_final_answer() {
    let router = Router::start();
    let ua = TestUa::new("alice");
    let options = ua.request("OPTIONS", TEL);
    let got = responses(&ua, &options, &router);
    let fin = finals(&got);
    assert_eq!(
        fin.len(),
        1,
        "OPTIONS {TEL}: exactly one final answer expected, got:\n{}\n--- wisp log ---\n{}",
        describe(&got),
        router.log()
    );
    let (status, _) = fin.first().cloned().expect("one final");
    assert!(status >= 400, "OPTIONS {TEL} answered {status}");
    assert!(
        got.iter().all(|m| m.status() >= Some(200)),
        "no provisional response to a non-INVITE:\n{}",
        describe(&got)
    );
}

/// As above, for an INVITE: today a `100 Trying` and then nothing.
#[test]
fn an_invite_to_a_tel_uri_gets_exactly_one_final_answer() {
    let router = Router::start();
    let ua = TestUa::new("alice");
    let invite = ua.request("INVITE", TEL);
    let got = responses(&ua, &invite, &router);
    let fin = finals(&got);
    assert_eq!(
        fin.len(),
        1,
        "INVITE {TEL}: exactly one final answer expected, got:\n{}\n--- wisp log ---\n{}",
        describe(&got),
        router.log()
    );
    let (status, _) = fin.first().cloned().expect("one final");
    assert!(status >= 400, "INVITE {TEL} answered {status}");
    assert!(
        got.iter()
            .all(|m| m.status() == Some(100) || m.status() == Some(status)),
        "only a 100 may come before the final:\n{}",
        describe(&got)
    );
}

/// Issue 23: requests the default plugin cannot route each get exactly one
/// final answer, an error, whatever the method: a URN names no host, and a
/// host name that does not resolve (`.invalid` never does, RFC 2606) leaves
/// `t_relay` nowhere to send.
#[test]
fn unroutable_request_uris_get_exactly_one_final_answer() {
    let router = Router::start();
    let ua = TestUa::new("alice");
    for uri in [
        "urn:service:sos",
        "sip:bob@nonexistent.invalid",
        "sips:bob@nonexistent.invalid",
    ] {
        for method in ["OPTIONS", "INVITE"] {
            let req = ua.request(method, uri);
            let got = responses(&ua, &req, &router);
            let fin = finals(&got);
            assert_eq!(
                fin.len(),
                1,
                "{method} {uri}: exactly one final answer expected, got:\n{}\n--- wisp log ---\n{}",
                describe(&got),
                router.log()
            );
            let (status, _) = fin.first().cloned().expect("one final");
            assert!(status >= 400, "{method} {uri} answered {status}");
        }
    }
}

/// Relays an INVITE from `caller` to the registered `callee`, who answers
/// 486; the caller ACKs it. Returns the branch of the router's Via on the
/// INVITE the callee received.
fn relayed_branch(router: &Router, caller: &TestUa, callee: &TestUa) -> String {
    let invite = caller.request("INVITE", &router.aor(&callee.user));
    caller.send_to(router.udp_addr(), &invite.build());
    let (req, src) = callee.expect_request(Method::Invite);
    let branch = vias(&req)[0]
        .branch()
        .unwrap_or_else(|| panic!("the router's Via has no branch:\n{}", text(&req)))
        .to_string();
    callee.reply(&req, src, 486, "Busy Here", "callee");
    let (fin, _) = caller
        .recv_answer_for(&invite.call_id, RECV)
        .unwrap_or_else(|| panic!("no final response relayed\n{}", router.log()));
    assert_eq!(fin.status(), Some(486), "{}", text(&fin));
    caller.send_to(router.udp_addr(), &invite.ack_for(&fin).build());
    // The router's own ACK for the 486 (hop by hop) ends the client transaction.
    callee.expect_request(Method::Ack);
    branch
}

/// RFC 3261 §8.1.1.7 and §16.6 step 8: a branch must be unique across
/// space and time for all requests sent by the router. A restarted router
/// must not reuse the branches of the run before (today they restart at
/// `z9hG4bKwspT1.0`), or a downstream element still holding the earlier
/// transaction takes the new request for a retransmission.
#[test]
fn branch_ids_are_unique_across_a_restart() {
    let mut router = Router::start();
    let caller = TestUa::new("alice");
    let callee = TestUa::new("bob");
    callee.register(&router);
    let before: Vec<String> = (0..3)
        .map(|_| relayed_branch(&router, &caller, &callee))
        .collect();

    router.kill_hard();
    router.restart();
    // The default manifest keeps user location in memory only.
    callee.register(&router);
    let after = relayed_branch(&router, &caller, &callee);
    assert!(
        !before.contains(&after),
        "the restarted router reused branch {after:?} (before the restart: {before:?})"
    );
}
