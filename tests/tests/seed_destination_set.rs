//! Seed 001 (the SER admin guide), "Destination Set" and "Redirect Server",
//! as `plugins/redirect` in the running router: a 3xx lists every URI of the
//! destination set in Contact, and a stateless `forward` of the same set
//! sends to the first URI only.

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
