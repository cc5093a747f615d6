//! Media of a phone behind a real NAT through rtpengine (`plugins/nat` with
//! `rtpengine = true`, its `rtpengine_manage`): the network-namespace harness
//! (`wisp_e2e::NatNet`) puts Alice's phone in "home" behind an nftables
//! masquerade, so her Contact, Via and SDP carry 192.168.X.2, which nothing
//! in the root namespace can reach. The router and rtpengine listen on
//! 10.X.0.1; Bob is a public phone on 127.0.0.1. Real RTP packets cross the
//! relay both ways, and the relay's session ends with the call (BYE) or
//! with the failed INVITE (486).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use wisp_e2e::rtpengine::{PORT_MAX, PORT_MIN, Rtpengine};
use wisp_e2e::*;
use wisp_sip::Contacts;

/// Dropped in this order: the router and the relay before the network
/// they listen on, then the turn.
struct Setup {
    router: Router,
    relay: Rtpengine,
    net: NatNet,
    _turn: std::sync::MutexGuard<'static, ()>,
}

/// One relay of this file at a time: two rtpengines started together here
/// did not both answer their ping (seen when the two tests ran in parallel).
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn setup() -> Setup {
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let net = NatNet::new();
    let relay = Rtpengine::start_on(net.public_ip);
    let socket = relay.socket();
    let public = net.public_ip;
    let router = Router::start_with(|mut m| {
        m.extra
            .push_str(&format!("\n[rtpengine]\nsockets = [\"{socket}\"]\n"));
        m.plugin_file(&plugin_path("nat"))
            .set("plugin", "name", "\"nat\"")
            .set("params", "rtpengine", "true")
            .set("server", "listen", &format!("[\"udp:{public}:0\"]"))
    });
    Setup {
        router,
        relay,
        net,
        _turn: turn,
    }
}

fn contact_uri(m: &Message) -> String {
    match m.contacts().expect("Contact parses") {
        Contacts::List(list) => list[0].uri.to_string(),
        Contacts::Star => panic!("Contact: *"),
    }
}

/// The SDP's connection address and first audio port.
fn media_of(m: &Message) -> (Ipv4Addr, u16) {
    let body = String::from_utf8_lossy(m.body()).into_owned();
    let c = body
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no c= line:\n{}", text(m)));
    let port = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio port:\n{}", text(m)));
    (c, port)
}

fn sdp(user: &str, addr: SocketAddr) -> String {
    let ip = addr.ip();
    format!(
        "v=0\r\no={user} 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n",
        addr.port()
    )
}

/// One PCMU packet: RTP header (version 2, payload type 0) and 160 bytes
/// whose first ones say who sent it.
fn rtp(seq: u16, ssrc: u32, tag: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    let mut payload = tag.to_vec();
    payload.resize(160, 0xff);
    p.extend_from_slice(&payload);
    p
}

/// Send RTP from `from` to `to` every 20 ms until `at` gets a packet
/// carrying `tag` (or 5 s pass); that packet's source.
fn media_flows(from: &UdpSocket, to: SocketAddr, at: &UdpSocket, tag: &[u8]) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(5);
    let ssrc = rand::random::<u32>();
    at.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let mut buf = [0u8; 2048];
    let mut seq = 1u16;
    loop {
        assert!(
            Instant::now() < deadline,
            "no RTP tagged {:?} arrived in 5 s (sent {} packets to {to})",
            String::from_utf8_lossy(tag),
            seq - 1
        );
        from.send_to(&rtp(seq, ssrc, tag), to).expect("send RTP");
        seq += 1;
        while let Ok((n, src)) = at.recv_from(&mut buf) {
            if n >= 12 + tag.len() && &buf[12..12 + tag.len()] == tag {
                return src;
            }
        }
    }
}

fn wait_until_gone(relay: &Rtpengine, call_id: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while relay.knows_call(call_id) {
        assert!(
            Instant::now() < deadline,
            "{what} did not end the relay's session"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Alice (behind the NAT) registers; returns her UA.
fn register_alice(s: &Setup) -> TestUa {
    let alice = s.net.home_ua("alice");
    assert_eq!(alice.addr().ip(), s.net.phone_ip);
    let fin = alice.register(&s.router);
    assert_eq!(fin.status(), Some(200));
    alice
}

#[test]
fn a_call_from_behind_a_nat_carries_rtp_both_ways_through_rtpengine_until_the_bye() {
    let s = setup();
    let (net, router, relay) = (&s.net, &s.router, &s.relay);
    let alice = register_alice(&s);
    let bob = TestUa::new("bob");
    bob.register(router);
    let alice_rtp = net.home_udp(0);
    let bob_rtp = UdpSocket::bind("127.0.0.1:0").expect("bind");

    // Alice's offer names her private address, which Bob could not reach.
    let alice_sdp = sdp("alice", alice_rtp.local_addr().unwrap());
    let invite = alice
        .request("INVITE", &router.aor("bob"))
        .from(&router.aor("alice"))
        .to(&router.aor("bob"))
        .body("application/sdp", alice_sdp.as_bytes());
    alice.send_to(router.udp_addr(), &invite.build());
    let (inv, bob_src) = bob.expect_request(Method::Invite);
    let (offer_ip, offer_port) = media_of(&inv);
    assert_eq!(
        offer_ip,
        net.public_ip,
        "the relay's address:\n{}",
        text(&inv)
    );
    assert!(
        (PORT_MIN..=PORT_MAX).contains(&offer_port),
        "a port of the relay:\n{}",
        text(&inv)
    );
    assert!(
        relay.knows_call(&invite.call_id),
        "the offer made a session"
    );
    let record_route = inv
        .header_value("Record-Route")
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("record-routed");

    // Bob answers with his own address; Alice gets the relay's.
    let bob_sdp = sdp("bob", bob_rtp.local_addr().unwrap());
    let contact = format!("<{}>", bob.contact());
    let opts = wisp_sip::ReplyOptions {
        to_tag: Some("bob-tag"),
        extra_headers: &[
            ("Contact", contact.as_str()),
            ("Record-Route", record_route.as_str()),
        ],
        body: Some(("application/sdp", bob_sdp.as_bytes())),
        ..Default::default()
    };
    let ok = wisp_sip::build_reply(&inv, 200, "OK", &opts).expect("200");
    bob.send_to(response_destination(&inv).unwrap_or(bob_src), &ok);
    let fin = loop {
        let (m, _) = alice
            .recv_response_for(&invite.call_id, RECV)
            .expect("Alice gets Bob's 200 through her NAT");
        if m.status() >= Some(200) {
            break m;
        }
    };
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
    let (answer_ip, answer_port) = media_of(&fin);
    assert_eq!(
        answer_ip,
        net.public_ip,
        "the relay's address:\n{}",
        text(&fin)
    );
    assert!(
        (PORT_MIN..=PORT_MAX).contains(&answer_port) && answer_port != offer_port,
        "the relay's other port:\n{}",
        text(&fin)
    );
    let mut ack = invite.clone();
    ack.method = "ACK".into();
    ack.ruri = contact_uri(&fin);
    ack.to_tag = Some("bob-tag".into());
    ack.branch = format!("z9hG4bK-e2e-{}", random_token());
    ack.body.clear();
    ack.content_type = None;
    ack.headers = vec![("Route".into(), record_route.clone())];
    alice.send_to(router.udp_addr(), &ack.build());
    bob.expect_request(Method::Ack);

    // RTP: Alice -> relay -> Bob, and back through her NAT.
    let relay_for_alice = SocketAddr::from((answer_ip, answer_port));
    let relay_for_bob = SocketAddr::from((offer_ip, offer_port));
    let src = media_flows(&alice_rtp, relay_for_alice, &bob_rtp, b"from-alice");
    assert_eq!(src, relay_for_bob, "Bob gets Alice's media from the relay");
    let src = media_flows(&bob_rtp, relay_for_bob, &alice_rtp, b"from-bob");
    assert_eq!(
        src, relay_for_alice,
        "Alice gets Bob's media from the relay"
    );

    // Alice hangs up: the BYE ends the relay's session.
    let mut bye = ack.clone();
    bye.method = "BYE".into();
    bye.cseq = 2;
    bye.branch = format!("z9hG4bK-e2e-{}", random_token());
    alice.send_to(router.udp_addr(), &bye.build());
    let (got, src) = bob.expect_request(Method::Bye);
    bob.reply(&got, src, 200, "OK", "bob-tag");
    wait_until_gone(relay, &invite.call_id, "the BYE");
}

#[test]
fn a_failed_invite_from_behind_a_nat_frees_the_relays_session() {
    let s = setup();
    let (net, router, relay) = (&s.net, &s.router, &s.relay);
    let alice = register_alice(&s);
    let bob = TestUa::new("bob");
    bob.register(router);
    let alice_rtp = net.home_udp(0);
    let alice_sdp = sdp("alice", alice_rtp.local_addr().unwrap());
    let invite = alice
        .request("INVITE", &router.aor("bob"))
        .from(&router.aor("alice"))
        .to(&router.aor("bob"))
        .body("application/sdp", alice_sdp.as_bytes());
    alice.send_to(router.udp_addr(), &invite.build());
    let (inv, src) = bob.expect_request(Method::Invite);
    assert_eq!(media_of(&inv).0, net.public_ip, "{}", text(&inv));
    assert!(
        relay.knows_call(&invite.call_id),
        "the offer made a session"
    );

    bob.reply(&inv, src, 486, "Busy Here", "bob-tag");
    let fin = loop {
        let (m, _) = alice
            .recv_response_for(&invite.call_id, RECV)
            .expect("Alice gets the 486");
        if m.status() >= Some(200) {
            break m;
        }
    };
    assert_eq!(fin.status(), Some(486), "{}", text(&fin));
    wait_until_gone(relay, &invite.call_id, "the 486");
}
