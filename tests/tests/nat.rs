//! Phones behind NAT through `plugins/nat` (nathelper host functions): each
//! phone puts a private address in its Via and Contact, as a phone behind a
//! home router does, and is really reachable only at the socket its packets
//! come from. The call only completes if the router registers the source
//! (`fix_nated_register`), aliases the Contacts of the INVITE and of the 200
//! (`add_contact_alias`) and sends the in-dialog BYE back through the alias
//! (`handle_ruri_alias`): 192.168.1.x is not reachable from here.

use wisp_e2e::*;
use wisp_sip::Contacts;

const ALICE_PRIVATE: &str = "192.168.1.10:5062";
const BOB_PRIVATE: &str = "192.168.1.20:5064";

fn contact_uri(m: &Message) -> String {
    match m.contacts().expect("Contact parses") {
        Contacts::List(list) => list[0].uri.to_string(),
        Contacts::Star => panic!("Contact: *"),
    }
}

#[test]
fn a_call_between_two_natted_phones_completes_through_contact_aliases() {
    let router = Router::start_with(|m| {
        m.plugin_file(&plugin_path("nat"))
            .set("plugin", "name", "\"nat\"")
    });
    let alice = TestUa::new("alice");
    let bob = TestUa::new("bob");

    // Alice registers her private Contact; the router keeps where it came from.
    let register = alice
        .request("REGISTER", &router.uri())
        .from(&router.aor("alice"))
        .to(&router.aor("alice"))
        .via_sent_by(ALICE_PRIVATE)
        .contact(Some(&format!("sip:alice@{ALICE_PRIVATE}")))
        .expires(3600);
    let (_, fin) = alice.transact(router.udp_addr(), &register, RECV);
    let fin = fin.expect("REGISTER answered at the NATed source");
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));

    // Bob calls her: the INVITE reaches her real socket, and Bob's Contact
    // carries the alias of his.
    let sdp = "v=0\r\no=bob 1 1 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let invite = bob
        .request("INVITE", &router.aor("alice"))
        .from(&router.aor("bob"))
        .to(&router.aor("alice"))
        .via_sent_by(BOB_PRIVATE)
        .contact(Some(&format!("sip:bob@{BOB_PRIVATE}")))
        .body("application/sdp", sdp.as_bytes());
    bob.send_to(router.udp_addr(), &invite.build());
    let (inv, _) = alice.expect_request(Method::Invite);
    let bob_contact = contact_uri(&inv);
    assert_eq!(
        bob_contact,
        format!("sip:bob@{BOB_PRIVATE};alias=127.0.0.1~{}~1", bob.port()),
        "{}",
        text(&inv)
    );
    let record_route = inv
        .header_value("Record-Route")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("the router record-routes the INVITE");

    // Alice answers from behind her NAT: Bob gets her Contact aliased too.
    let alice_contact = format!("<sip:alice@{ALICE_PRIVATE}>");
    let opts = wisp_sip::ReplyOptions {
        to_tag: Some("alice-tag"),
        extra_headers: &[
            ("Contact", alice_contact.as_str()),
            ("Record-Route", record_route.as_str()),
        ],
        ..Default::default()
    };
    let ok = wisp_sip::build_reply(&inv, 200, "OK", &opts).expect("200");
    alice.send_to(response_destination(&inv).expect("Via"), &ok);
    let fin = loop {
        let (m, _) = bob
            .recv_response_for(&invite.call_id, RECV)
            .expect("Bob gets Alice's 200");
        if m.status() >= Some(200) {
            break m;
        }
    };
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
    assert_eq!(
        contact_uri(&fin),
        format!(
            "sip:alice@{ALICE_PRIVATE};alias=127.0.0.1~{}~1",
            alice.port()
        ),
        "{}",
        text(&fin)
    );

    // Alice hangs up: the BYE goes to Bob's Contact (private, aliased)
    // through the router, which sends it to Bob's real socket.
    let bye = alice
        .request("BYE", &bob_contact)
        .from(&router.aor("alice"))
        .to(&router.aor("bob"))
        .to_tag(Some(&invite.from_tag))
        .call_id(&invite.call_id)
        .via_sent_by(ALICE_PRIVATE)
        .contact(Some(&format!("sip:alice@{ALICE_PRIVATE}")))
        .header("Route", &record_route);
    alice.send_to(router.udp_addr(), &bye.build());
    let (got, _) = bob.expect_request(Method::Bye);
    assert_eq!(
        got.request_uri().expect("R-URI").to_string(),
        format!("sip:bob@{BOB_PRIVATE}"),
        "the alias is taken off the Request-URI:\n{}",
        text(&got)
    );
}

/// The SDP's connection address and first media port.
fn media_of(m: &Message) -> (String, u16) {
    let body = String::from_utf8_lossy(m.body()).into_owned();
    let c = body
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .unwrap_or_else(|| panic!("no c= line:\n{body}"));
    let port = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio port:\n{body}"));
    (c.to_owned(), port)
}

#[test]
fn a_natted_callers_media_goes_through_rtpengine_until_the_bye() {
    let relay = wisp_e2e::rtpengine::Rtpengine::start();
    let socket = relay.socket();
    let router = Router::start_with(|mut m| {
        m.extra
            .push_str(&format!("\n[rtpengine]\nsockets = [\"{socket}\"]\n"));
        m.plugin_file(&plugin_path("nat"))
            .set("plugin", "name", "\"nat\"")
            .set("params", "rtpengine", "true")
    });
    let alice = TestUa::new("alice");
    let bob = TestUa::new("bob");
    let register = alice
        .request("REGISTER", &router.uri())
        .from(&router.aor("alice"))
        .to(&router.aor("alice"))
        .contact(Some(&format!("sip:alice@{ALICE_PRIVATE}")))
        .expires(3600);
    let (_, fin) = alice.transact(router.udp_addr(), &register, RECV);
    assert_eq!(fin.and_then(|f| f.status()), Some(200));

    // Bob's offer names his private address; Alice gets the relay's.
    let sdp = "v=0\r\no=bob 1 1 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let invite = bob
        .request("INVITE", &router.aor("alice"))
        .from(&router.aor("bob"))
        .to(&router.aor("alice"))
        .via_sent_by(BOB_PRIVATE)
        .contact(Some(&format!("sip:bob@{BOB_PRIVATE}")))
        .body("application/sdp", sdp.as_bytes());
    bob.send_to(router.udp_addr(), &invite.build());
    let (inv, _) = alice.expect_request(Method::Invite);
    let (addr, port) = media_of(&inv);
    assert_eq!(addr, "127.0.0.1", "{}", text(&inv));
    assert!(
        (wisp_e2e::rtpengine::PORT_MIN..=wisp_e2e::rtpengine::PORT_MAX).contains(&port),
        "a port of the relay's range:\n{}",
        text(&inv)
    );
    assert!(
        relay.knows_call(&invite.call_id),
        "the relay holds the call: {:?}",
        relay.command(&format!(
            "d7:command5:query7:call-id{}:{}e",
            invite.call_id.len(),
            invite.call_id
        ))
    );

    // Alice answers and hangs up: the BYE ends the relay's session.
    let record_route = inv
        .header_value("Record-Route")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("record-routed");
    let opts = wisp_sip::ReplyOptions {
        to_tag: Some("alice-tag"),
        extra_headers: &[("Record-Route", record_route.as_str())],
        ..Default::default()
    };
    let ok = wisp_sip::build_reply(&inv, 200, "OK", &opts).expect("200");
    alice.send_to(response_destination(&inv).expect("Via"), &ok);
    let bob_contact = contact_uri(&inv);
    let bye = alice
        .request("BYE", &bob_contact)
        .from(&router.aor("alice"))
        .to(&router.aor("bob"))
        .to_tag(Some(&invite.from_tag))
        .call_id(&invite.call_id)
        .header("Route", &record_route);
    let mut bye = bye;
    bye.from_tag = "alice-tag".into();
    alice.send_to(router.udp_addr(), &bye.build());
    bob.expect_request(Method::Bye);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while relay.knows_call(&invite.call_id) {
        assert!(
            std::time::Instant::now() < deadline,
            "the BYE did not end the relay's session"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_relay_that_does_not_answer_gives_the_caller_503_and_nothing_reaches_the_callee() {
    // A port nobody answers on.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").expect("port");
    let socket = format!("udp:{}", dead.local_addr().expect("addr"));
    let router = Router::start_with(|mut m| {
        m.extra.push_str(&format!(
            "\n[rtpengine]\nsockets = [\"{socket}\"]\ntimeout_ms = 100\n"
        ));
        m.plugin_file(&plugin_path("nat"))
            .set("plugin", "name", "\"nat\"")
            .set("params", "rtpengine", "true")
    });
    let alice = TestUa::new("alice");
    alice.register(&router);
    let bob = TestUa::new("bob");
    let sdp = "v=0\r\no=bob 1 1 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let invite = bob
        .request("INVITE", &router.aor("alice"))
        .from(&router.aor("bob"))
        .to(&router.aor("alice"))
        .body("application/sdp", sdp.as_bytes());
    let (_, fin) = bob.transact(router.udp_addr(), &invite, RECV);
    let fin = fin.expect("a final answer");
    assert_eq!(fin.status(), Some(503), "{}", text(&fin));
    assert!(
        alice
            .recv_request(std::time::Duration::from_millis(300))
            .is_none(),
        "no INVITE without the relay's SDP"
    );
}
