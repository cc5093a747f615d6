//! NAT keepalives through a real NAT (issue 20): a phone in a network
//! namespace behind an nftables masquerade ([`NatNet`]) whose UDP mappings
//! close after 5 s of silence registers through `plugins/nat`. With
//! keepalives every 2 s its pinhole stays open, and a call to it three
//! timeouts later still arrives; without them the same call does not
//! (which shows the test can fail). Needs root, `ip` and `nft`.

use std::time::{Duration, Instant};

use wisp_e2e::netns::NatNet;
use wisp_e2e::*;

/// The NAT forgets a UDP mapping silent this long.
const NAT_UDP_TIMEOUT_S: u32 = 5;

/// Whether, `3 x NAT_UDP_TIMEOUT_S` after the phone registered, an INVITE
/// to it reaches it; keepalives every 2 s when `keepalives`.
fn call_arrives_after_three_nat_timeouts(keepalives: bool) -> bool {
    let net = NatNet::new();
    net.set_udp_timeout(NAT_UDP_TIMEOUT_S);
    // A mapping that saw traffic both ways for 2 s counts as a stream,
    // with a timeout of its own (120 s by default): that one too, so that
    // only the keepalives hold the pinhole open.
    let stream = format!("net.netfilter.nf_conntrack_udp_timeout_stream={NAT_UDP_TIMEOUT_S}");
    let set = std::process::Command::new("ip")
        .args(["netns", "exec", &net.nat, "sysctl", "-qw", &stream])
        .status()
        .expect("run sysctl in the NAT's namespace");
    assert!(set.success(), "{stream} in {}", net.nat);
    let public = net.public_ip;
    let interval = if keepalives { 2 } else { 0 };
    let router = Router::start_with(move |mut m| {
        m.extra
            .push_str(&format!("\n[nat]\nkeepalive_interval_s = {interval}\n"));
        m.set(
            "server",
            "listen",
            &format!("[\"udp:{public}:0\", \"tcp:{public}:0\"]"),
        )
        .plugin_file(&plugin_path("nat"))
        .set("plugin", "name", "\"nat\"")
    });

    // The phone's Via and Contact name 192.168.X.2, which the router
    // cannot reach; it sees the NAT's 10.X.0.2 and a port the NAT picked.
    let phone = net.home_ua("alice");
    let register = phone
        .request("REGISTER", &router.uri())
        .from(&router.aor("alice"))
        .to(&router.aor("alice"))
        .expires(3600);
    let (_, fin) = phone.transact(router.udp_addr(), &register, RECV);
    assert_eq!(
        fin.as_ref().and_then(Message::status),
        Some(200),
        "{:?}\n{}",
        fin.as_ref().map(text),
        router.log()
    );
    let shown = router.ctl_ok(&["ul", "show", "alice"]);
    assert!(
        shown.contains(&format!("received=sip:{}:", net.nat_public_ip)) && shown.contains(" nat"),
        "registered behind the NAT:\n{shown}"
    );

    // The phone stays silent but for answering what it gets (the pings).
    let quiet_until = Instant::now() + Duration::from_secs(3 * u64::from(NAT_UDP_TIMEOUT_S));
    let mut pings = 0;
    while let Some((m, src)) =
        phone.recv_request(quiet_until.saturating_duration_since(Instant::now()))
    {
        assert_eq!(m.method(), Some(&Method::Options), "{}", text(&m));
        phone.reply(&m, src, 200, "OK", "alice-tag");
        pings += 1;
    }
    if keepalives {
        assert!(pings >= 5, "a ping every 2 s over 15 s, got {pings}");
    } else {
        assert_eq!(pings, 0, "no keepalives when they are off");
    }

    // Bob, on the public side, calls her.
    let bob = TestUa::on(public, "bob");
    let invite = bob
        .request("INVITE", &router.aor("alice"))
        .from(&router.aor("bob"))
        .to(&router.aor("alice"));
    bob.send_to(router.udp_addr(), &invite.build());
    let deadline = Instant::now() + RECV;
    while let Some((m, src)) =
        phone.recv_request(deadline.saturating_duration_since(Instant::now()))
    {
        match m.method() {
            Some(Method::Invite) => return true,
            Some(Method::Options) => {
                phone.reply(&m, src, 200, "OK", "alice-tag");
            }
            _ => panic!("unexpected request:\n{}", text(&m)),
        }
    }
    false
}

#[test]
fn keepalives_hold_a_nat_pinhole_open_past_its_udp_timeout() {
    assert!(
        call_arrives_after_three_nat_timeouts(true),
        "with keepalives the call reaches the phone behind the NAT"
    );
}

#[test]
fn without_keepalives_the_pinhole_closes_and_the_call_is_lost() {
    assert!(
        !call_arrives_after_three_nat_timeouts(false),
        "without keepalives the NAT has forgotten the phone"
    );
}
