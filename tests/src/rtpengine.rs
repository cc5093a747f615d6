//! A throwaway rtpengine for tests: Debian's `rtpengine` (package
//! `rtpengine-daemon`, which `make test` installs) in userspace mode on
//! loopback, with its `ng` control socket on a free port; killed when the
//! [`Rtpengine`] is dropped. A test that needs it FAILS when it is missing.

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The media ports the relay hands out.
pub const PORT_MIN: u16 = 32000;
pub const PORT_MAX: u16 = 32199;

pub struct Rtpengine {
    child: Child,
    /// Its `ng` control port on 127.0.0.1.
    pub ng_port: u16,
}

impl Rtpengine {
    /// Start it on loopback and wait until it answers a ping.
    pub fn start() -> Rtpengine {
        Rtpengine::start_on(std::net::Ipv4Addr::LOCALHOST)
    }

    /// Start it with its media ports on `interface` (e.g. the root end of a
    /// [`NatNet`](crate::NatNet), where a phone behind the NAT reaches it);
    /// its control socket stays on loopback.
    pub fn start_on(interface: std::net::Ipv4Addr) -> Rtpengine {
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
                &format!("--interface={interface}"),
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
        let relay = Rtpengine { child, ng_port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while relay.command("d7:command4:pinge").as_deref() != Some("d6:result4:ponge") {
            assert!(
                Instant::now() < deadline,
                "rtpengine did not answer a ping in 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        relay
    }

    /// `"udp:127.0.0.1:PORT"`, for `[rtpengine] sockets`.
    pub fn socket(&self) -> String {
        format!("udp:127.0.0.1:{}", self.ng_port)
    }

    /// Send one bencoded command; its answer (without the cookie), if one
    /// comes within 200 ms. Each command has its own cookie, so a late
    /// answer to an earlier one is never taken for this one's.
    pub fn command(&self, bencoded: &str) -> Option<String> {
        let cookie = format!("{:016x}", rand::random::<u64>());
        let s = UdpSocket::bind("127.0.0.1:0").ok()?;
        s.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
        s.send_to(
            format!("{cookie} {bencoded}").as_bytes(),
            ("127.0.0.1", self.ng_port),
        )
        .ok()?;
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, _) = s.recv_from(&mut buf).ok()?;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if let Some(answer) = text.strip_prefix(&format!("{cookie} ")) {
                return Some(answer.to_owned());
            }
        }
    }

    /// Whether the relay has a session for `call_id` (its `query` command).
    pub fn knows_call(&self, call_id: &str) -> bool {
        let q = format!("d7:command5:query7:call-id{}:{call_id}e", call_id.len());
        self.command(&q)
            .is_some_and(|a| a.starts_with("d") && a.contains("6:result2:ok"))
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
