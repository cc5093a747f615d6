//! `plugins/pstn-gateway` (seed 003, "Access Control (PSTN Gateway)") in the
//! running router, with a fake gateway on 127.0.0.2 (so the test's own
//! requests, from 127.0.0.1, are not the gateway's). Without a subscriber
//! store nobody authenticates: what shows here is who is let through
//! without credentials and who is challenged or refused.

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
