//! `plugins/pstn-gateway` (seed 003, "Access Control (PSTN Gateway)") in the
//! running router, with a fake gateway on 127.0.0.2 (so the test's own
//! requests, from 127.0.0.1, are not the gateway's): who is let through
//! without credentials, who is challenged, and which authenticated users
//! may call international numbers (group "int").

use std::net::UdpSocket;
use std::time::Duration;

use bytes::Bytes;
use wisp_e2e::*;
use wisp_sip::Message;

struct Gateway {
    sock: UdpSocket,
}

impl Gateway {
    fn new() -> Gateway {
        let sock = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2 (loopback /8)");
        sock.set_read_timeout(Some(Duration::from_millis(1500)))
            .expect("timeout");
        Gateway { sock }
    }

    fn hostport(&self) -> String {
        self.sock.local_addr().expect("addr").to_string()
    }

    /// The next request that reached the gateway, if any.
    fn recv(&self) -> Option<Message> {
        let mut buf = vec![0u8; 65535];
        let n = self.sock.recv(&mut buf).ok()?;
        buf.truncate(n);
        Message::parse(Bytes::from(buf)).ok()
    }
}

fn start(gw: &Gateway) -> Router {
    let gateway = format!("{:?}", gw.hostport());
    Router::start_with(|m| {
        m.plugin_file(&plugin_path("pstn_gateway"))
            .set("params", "gateway", &gateway)
    })
}

fn invite(router: &Router, ua: &TestUa, user: &str) -> (u16, RequestBuilder) {
    let req = ua
        .request("INVITE", &format!("sip:{user}@{}", router.udp_addr()))
        .from("sip:alice@example.com");
    ua.send_to(router.udp_addr(), &req.build());
    let status = ua
        .recv_answer_for(&req.call_id, RECV)
        .and_then(|(m, _)| m.status())
        .unwrap_or(0);
    (status, req)
}

#[test]
fn only_numbers_are_served_and_paid_ones_need_credentials() {
    let gw = Gateway::new();
    let router = start(&gw);
    let ua = TestUa::new("alice");
    // Not a number: not for the gateway.
    assert_eq!(invite(&router, &ua, "bob").0, 403);
    // International, local and odd numbers: challenged first (realm: the
    // caller's domain), never relayed without credentials.
    for number in ["00049301234", "0301234", "+4930123"] {
        let req = ua
            .request("INVITE", &format!("sip:{number}@{}", router.udp_addr()))
            .from("sip:alice@example.com");
        ua.send_to(router.udp_addr(), &req.build());
        let (resp, _) = ua.recv_answer_for(&req.call_id, RECV).expect("an answer");
        assert_eq!(resp.status(), Some(407), "{number}");
        let c = wisp_sip::Challenge::parse(
            resp.header("Proxy-Authenticate")
                .expect("challenge")
                .value
                .as_ref(),
        )
        .expect("parses");
        assert_eq!(c.param("realm"), Some("example.com"));
    }
    assert!(gw.recv().is_none(), "nothing reached the gateway");
}

#[test]
fn free_numbers_go_to_the_gateway_without_credentials() {
    let gw = Gateway::new();
    let router = start(&gw);
    let ua = TestUa::new("alice");
    let req = ua
        .request("INVITE", &format!("sip:7123@{}", router.udp_addr()))
        .from("sip:alice@example.com");
    ua.send_to(router.udp_addr(), &req.build());
    let relayed = gw.recv().expect("the free call reached the gateway");
    assert_eq!(
        String::from_utf8_lossy(&relayed.request_uri_raw()),
        format!("sip:7123@{}", gw.hostport())
    );
    assert!(
        relayed.header("Record-Route").is_some(),
        "INVITEs are record-routed"
    );
}

/// INVITE `number` as `user`: challenged, then answered with `password`.
/// The status of the second answer, if one came (a relayed INVITE gets
/// none from this silent gateway, only 100 Trying).
fn call_as(router: &Router, ua: &TestUa, number: &str, user: &str, password: &str) -> Option<u16> {
    let uri = format!("sip:{number}@{}", router.udp_addr());
    let from = format!("sip:{user}@example.com");
    let first = ua.request("INVITE", &uri).from(&from);
    ua.send_to(router.udp_addr(), &first.build());
    let (resp, _) = ua
        .recv_answer_for(&first.call_id, RECV)
        .expect("a challenge");
    assert_eq!(resp.status(), Some(407));
    let c = md5_challenge(&resp, "Proxy-Authenticate");
    let second = ua.request("INVITE", &uri).from(&from).header(
        "Proxy-Authorization",
        &md5_credentials(&c, "INVITE", &uri, user, password, 1),
    );
    ua.send_to(router.udp_addr(), &second.build());
    ua.recv_answer_for(&second.call_id, Duration::from_millis(1500))
        .and_then(|(m, _)| m.status())
}

#[test]
fn international_calls_need_group_int_and_reach_the_gateway_without_credentials() {
    let gw = Gateway::new();
    let router = start(&gw);
    router.ctl_ok(&["user", "add", "alice@example.com", "s3cret"]);
    router.ctl_ok(&["acl", "grant", "alice@example.com", "int"]);
    router.ctl_ok(&["user", "add", "bob@example.com", "hunter2"]);
    let ua = TestUa::new("caller");
    // Bob is who he says, but not in "int".
    assert_eq!(
        call_as(&router, &ua, "00049301234", "bob", "hunter2"),
        Some(403)
    );
    // A wrong password is challenged again, never relayed.
    assert_eq!(
        call_as(&router, &ua, "00049301234", "alice", "guess"),
        Some(407)
    );
    assert!(gw.recv().is_none(), "nothing reached the gateway yet");
    // Alice is in "int": her call reaches the gateway, credentials consumed.
    assert_ne!(
        call_as(&router, &ua, "00049301234", "alice", "s3cret"),
        Some(403)
    );
    let relayed = gw.recv().expect("alice's call reached the gateway");
    assert_eq!(
        String::from_utf8_lossy(&relayed.request_uri_raw()),
        format!("sip:00049301234@{}", gw.hostport())
    );
    assert!(relayed.header("Proxy-Authorization").is_none(), "consumed");
}
