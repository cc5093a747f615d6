//! The ng client against a real rtpengine (Debian's `rtpengine-daemon`,
//! which `make test` installs), started by the test in userspace mode on
//! loopback: an offer and its answer come back rewritten to the relay's
//! address and ports, and a delete ends the session (the answer to a
//! deleted call is refused).

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wisp::config::RtpengineConfig;
use wisp::services::rtpengine::{Rtpengine, RtpengineError};

const PORT_MIN: u16 = 31000;
const PORT_MAX: u16 = 31099;

struct Relay {
    child: Child,
    ng_port: u16,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// rtpengine on a free loopback port; FAILS (never skips) when it is not
/// installed.
fn start_relay() -> Relay {
    let ng_port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    let bin = ["/usr/bin/rtpengine", "/usr/sbin/rtpengine"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("rtpengine is not installed; `make test` installs it (apt-get install rtpengine-daemon)");
    let child = Command::new(bin)
        .args([
            "--foreground",
            "--interface=127.0.0.1",
            &format!("--listen-ng=127.0.0.1:{ng_port}"),
            "--table=-1",
            "--no-fallback",
            &format!("--port-min={PORT_MIN}"),
            &format!("--port-max={PORT_MAX}"),
            "--log-stderr",
            "--log-level=4",
            "--delete-delay=0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rtpengine starts");
    // Ready when it answers a ping (a client that got no answer would
    // leave the relay out for `disable_s`).
    let probe = UdpSocket::bind("127.0.0.1:0").expect("probe socket");
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 256];
    loop {
        let _ = probe.send_to(b"probe d7:command4:pinge", ("127.0.0.1", ng_port));
        if let Ok((n, _)) = probe.recv_from(&mut buf)
            && buf[..n].starts_with(b"probe d6:result4:pong")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rtpengine did not answer a ping in 10 s"
        );
    }
    Relay { child, ng_port }
}

const OFFER: &str = "v=0\r\no=alice 1 1 IN IP4 192.168.1.10\r\ns=-\r\nc=IN IP4 192.168.1.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
const ANSWER: &str = "v=0\r\no=bob 1 1 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

/// The media port of an SDP's first `m=` line.
fn media_port(sdp: &str) -> u16 {
    let m = sdp.lines().find(|l| l.starts_with("m=")).expect("m= line");
    m.split(' ')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("port")
}

#[tokio::test]
async fn offer_answer_and_delete_go_through_a_real_rtpengine() {
    let relay = start_relay();
    let config = RtpengineConfig {
        sockets: vec![format!("udp:127.0.0.1:{}", relay.ng_port)],
        timeout_ms: 500,
        ..Default::default()
    };
    let client = Rtpengine::start(&config).await.expect("client");
    let offered = client
        .offer(
            "call-1@test",
            "ft",
            OFFER.as_bytes(),
            "replace-origin replace-session-connection ICE=remove RTP/AVP",
        )
        .await
        .expect("offer");
    let offered = String::from_utf8(offered.to_vec()).expect("utf-8");
    assert!(offered.contains("c=IN IP4 127.0.0.1"), "{offered}");
    assert!(!offered.contains("192.168.1.10"), "{offered}");
    assert!(
        (PORT_MIN..=PORT_MAX).contains(&media_port(&offered)),
        "{offered}"
    );

    let answered = client
        .answer(
            "call-1@test",
            "ft",
            "tt",
            ANSWER.as_bytes(),
            "replace-origin replace-session-connection",
        )
        .await
        .expect("answer");
    let answered = String::from_utf8(answered.to_vec()).expect("utf-8");
    assert!(answered.contains("c=IN IP4 127.0.0.1"), "{answered}");
    assert!(
        (PORT_MIN..=PORT_MAX).contains(&media_port(&answered)),
        "{answered}"
    );
    assert_ne!(media_port(&answered), media_port(&offered));

    client
        .delete("call-1@test", "ft", None)
        .await
        .expect("delete");
    match client
        .answer("call-1@test", "ft", "tt", ANSWER.as_bytes(), "")
        .await
    {
        Err(RtpengineError::Refused(reason)) => assert!(!reason.is_empty()),
        other => panic!("an answer after delete must be refused, got {other:?}"),
    }
}
