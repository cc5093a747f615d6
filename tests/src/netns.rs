//! A real NAT for tests: network namespaces, veth pairs and an nftables
//! masquerade, created by the test and always removed again (on drop, so
//! also when the test panics).
//!
//! ```text
//!   "home" namespace          "nat" namespace                 root namespace
//!   phone 192.168.X.2 --veth-- 192.168.X.1 | 10.X.0.2 --veth-- 10.X.0.1
//!                              (masquerade out of 10.X.0.2)    router, rtpengine
//! ```
//!
//! The phone's packets reach the root namespace from 10.X.0.2 (a port the
//! NAT picked), and 192.168.X.2 is not reachable from there: exactly what a
//! registrar sees of a phone behind a home router. X is picked per [`NatNet`]
//! (the home namespace's name is the lock: `ip netns add` fails when it
//! exists), so tests in one process or in several can run in parallel.
//!
//! Sockets in "home" are opened from the test process itself:
//! [`NatNet::in_home`] runs a closure on a thread that has joined the
//! namespace (`setns`); a socket it binds stays in that namespace when the
//! thread ends. [`NatNet::home_command`] runs a real program there instead
//! (`ip netns exec`).
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables), as `make test` has;
//! where one is missing [`NatNet::new`] panics saying what is missing.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use crate::TestUa;

/// One home network behind a masquerading NAT, attached to the root
/// namespace. Dropping it removes both namespaces and their veths.
pub struct NatNet {
    /// The X of the addresses (1..=250).
    pub index: u8,
    /// Namespace holding the phone.
    pub home: String,
    /// Namespace doing the NAT.
    pub nat: String,
    /// The veth end in the root namespace (holds [`NatNet::public_ip`]).
    pub root_if: String,
    /// `nat`'s outside interface (the masquerade's `oifname`).
    pub nat_outside_if: String,
    /// 192.168.X.2: the phone, in `home`.
    pub phone_ip: Ipv4Addr,
    /// 192.168.X.1: the NAT's inside address (the phone's gateway).
    pub nat_inside_ip: Ipv4Addr,
    /// 10.X.0.2: the NAT's outside address, the source the root namespace sees.
    pub nat_public_ip: Ipv4Addr,
    /// 10.X.0.1: the root namespace's address on the link, where the router
    /// and rtpengine listen for the phone.
    pub public_ip: Ipv4Addr,
    /// Whether `nat` was created (removed on drop).
    nat_created: bool,
}

/// Runs `ip`/`nft`/... and returns its stderr as the error.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("`{program}` stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("`{program}`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn tool(name: &str, package: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = format!("{dir}/{name}");
        if std::path::Path::new(&p).exists() {
            return p;
        }
    }
    panic!(
        "the NAT test harness needs `{name}` (Debian package `{package}`), which is not \
         installed; `make test` installs it"
    );
}

impl NatNet {
    /// Creates a fresh home network and NAT. Panics with what is missing
    /// (root, `ip`, `nft`, namespace or nftables support) when it cannot.
    pub fn new() -> NatNet {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert!(
            euid == 0,
            "the NAT test harness needs root (network namespaces, veth pairs, nftables); \
             `make test` runs as root here, this test runs as uid {euid}"
        );
        let ip = tool("ip", "iproute2");
        let nft = tool("nft", "nftables");
        let _ = tool("sysctl", "procps");

        // Claim an index: creating the home namespace is the lock.
        let start = (std::process::id() as usize).wrapping_add(rand::random_range(0..250usize));
        let mut claimed = None;
        let mut last_err = String::new();
        for i in 0..250usize {
            let index = ((start + i) % 250 + 1) as u8;
            let home = format!("wisp-h{index}");
            match run(&ip, &["netns", "add", &home], None) {
                Ok(()) => {
                    claimed = Some(index);
                    break;
                }
                Err(e) => last_err = e,
            }
            if !last_err.contains("exists") {
                break;
            }
        }
        let Some(index) = claimed else {
            panic!(
                "the NAT test harness cannot create a network namespace (`ip netns add`): \
                 {last_err}"
            );
        };
        let mut net = NatNet {
            index,
            home: format!("wisp-h{index}"),
            nat: format!("wisp-n{index}"),
            root_if: format!("wisp{index}r"),
            nat_outside_if: format!("wisp{index}o"),
            phone_ip: Ipv4Addr::new(192, 168, index, 2),
            nat_inside_ip: Ipv4Addr::new(192, 168, index, 1),
            nat_public_ip: Ipv4Addr::new(10, index, 0, 2),
            public_ip: Ipv4Addr::new(10, index, 0, 1),
            nat_created: false,
        };
        if let Err(e) = net.build(&ip, &nft) {
            // `net` is dropped here: whatever was created is removed.
            panic!("the NAT test harness could not set up its namespaces: {e}");
        }
        net
    }

    fn build(&mut self, ip: &str, nft: &str) -> Result<(), String> {
        let x = self.index;
        let (home, nat) = (self.home.clone(), self.nat.clone());
        let inside_nat = format!("wisp{x}i");
        let inside_home = format!("wisp{x}p");
        // A veth left by a killed run with this index would clash.
        let _ = run(ip, &["link", "del", &self.root_if], None);
        let _ = run(ip, &["link", "del", &inside_nat], None);
        // The nat namespace may be a leftover of a killed run: replace it.
        let _ = run(ip, &["netns", "del", &nat], None);
        run(ip, &["netns", "add", &nat], None)?;
        self.nat_created = true;

        // root <-> nat (outside)
        run(
            ip,
            &[
                "link",
                "add",
                &self.root_if,
                "type",
                "veth",
                "peer",
                "name",
                &self.nat_outside_if,
                "netns",
                &nat,
            ],
            None,
        )?;
        // nat (inside) <-> home
        run(
            ip,
            &[
                "link",
                "add",
                &inside_nat,
                "netns",
                &nat,
                "type",
                "veth",
                "peer",
                "name",
                &inside_home,
                "netns",
                &home,
            ],
            None,
        )?;
        let public = format!("{}/24", self.public_ip);
        let nat_public = format!("{}/24", self.nat_public_ip);
        let nat_inside = format!("{}/24", self.nat_inside_ip);
        let phone = format!("{}/24", self.phone_ip);
        let nat_gw = self.nat_inside_ip.to_string();
        let root_gw = self.public_ip.to_string();
        let steps: Vec<Vec<&str>> = vec![
            vec!["addr", "add", &public, "dev", &self.root_if],
            vec!["link", "set", &self.root_if, "up"],
            vec!["-n", &nat, "link", "set", "lo", "up"],
            vec![
                "-n",
                &nat,
                "addr",
                "add",
                &nat_public,
                "dev",
                &self.nat_outside_if,
            ],
            vec!["-n", &nat, "link", "set", &self.nat_outside_if, "up"],
            vec!["-n", &nat, "addr", "add", &nat_inside, "dev", &inside_nat],
            vec!["-n", &nat, "link", "set", &inside_nat, "up"],
            vec!["-n", &nat, "route", "add", "default", "via", &root_gw],
            vec!["-n", &home, "link", "set", "lo", "up"],
            vec!["-n", &home, "addr", "add", &phone, "dev", &inside_home],
            vec!["-n", &home, "link", "set", &inside_home, "up"],
            vec!["-n", &home, "route", "add", "default", "via", &nat_gw],
        ];
        for args in &steps {
            run(ip, args, None)?;
        }
        run(
            ip,
            &[
                "netns",
                "exec",
                &nat,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ],
            None,
        )?;
        let ruleset = format!(
            "table ip wisp_nat {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"{}\" masquerade\n  }}\n}}\n",
            self.nat_outside_if
        );
        run(ip, &["netns", "exec", &nat, nft, "-f", "-"], Some(&ruleset))
            .map_err(|e| format!("nftables masquerade in {nat}: {e}"))?;
        Ok(())
    }

    /// The NAT's UDP mapping timeout (`net.netfilter.nf_conntrack_udp_timeout`
    /// in the nat namespace): a pinhole silent this long closes.
    pub fn set_udp_timeout(&self, secs: u32) {
        let arg = format!("net.netfilter.nf_conntrack_udp_timeout={secs}");
        if let Err(e) = run(
            "ip",
            &["netns", "exec", &self.nat, "sysctl", "-qw", &arg],
            None,
        ) {
            panic!("setting the NAT's UDP timeout: {e}");
        }
    }

    /// Runs `f` on a thread inside the home namespace and returns its
    /// result. Sockets it opens belong to that namespace for their lifetime.
    pub fn in_home<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_namespace(&self.home, f)
    }

    /// Runs `f` on a thread inside the nat namespace.
    pub fn in_nat<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_namespace(&self.nat, f)
    }

    /// A UDP socket bound to the phone's address, port `port` (0: any).
    pub fn home_udp(&self, port: u16) -> UdpSocket {
        let addr = SocketAddr::from((self.phone_ip, port));
        self.in_home(|| UdpSocket::bind(addr))
            .unwrap_or_else(|e| panic!("bind {addr} in namespace {}: {e}", self.home))
    }

    /// A test user agent on the phone's address (its Contact and Via carry
    /// 192.168.X.2, which the root namespace cannot reach).
    pub fn home_ua(&self, user: &str) -> TestUa {
        let sock = self.home_udp(0);
        let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(4 << 20);
        TestUa {
            sock,
            user: user.to_string(),
        }
    }

    /// `ip netns exec <home> <program>`: a real client run behind the NAT.
    pub fn home_command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.home, program]);
        cmd
    }
}

fn in_namespace<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{name}");
    let ns =
        std::fs::File::open(&path).unwrap_or_else(|e| panic!("open network namespace {path}: {e}"));
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a valid namespace fd changes only this
            // thread's network namespace; the thread ends after `f`.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert!(
                rc == 0,
                "setns into {path}: {}",
                std::io::Error::last_os_error()
            );
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

impl Default for NatNet {
    fn default() -> Self {
        NatNet::new()
    }
}

impl Drop for NatNet {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veths, and with them their peers
        // (the root end too) and the nftables table inside it.
        if self.nat_created
            && let Err(e) = run("ip", &["netns", "del", &self.nat], None)
        {
            eprintln!("[netns] {e}");
        }
        if let Err(e) = run("ip", &["netns", "del", &self.home], None) {
            eprintln!("[netns] {e}");
        }
        let _ = run("ip", &["link", "del", &self.root_if], None);
    }
}
