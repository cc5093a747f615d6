//! Calls through the router with SIPp (Debian's `sip-tester`), a real
//! third-party load tool: its built-in `uac` scenario (INVITE, 180, 200, ACK,
//! BYE, 200) calls `bob` through the default plugin, which looks bob up (a
//! permanent contact added with `wisp ctl ul add`) and relays with `t_relay`
//! to SIPp's built-in `uas` scenario. With two receive workers every message
//! of a call must still reach the other side in the order it was sent: a 180
//! forwarded after the 200, or an ACK after the BYE, fails the call in SIPp.
//!
//! The checks are SIPp's own counts (its `-trace_stat` and `-trace_counts`
//! files), never timings. `scripts/sipp-calls.sh` is the long form (60 s at
//! 1,000 calls/s on `make run`'s manifest).
//! These tests FAIL if SIPp is missing: `make test` installs it.

use std::collections::HashMap;
use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wisp_e2e::*;

/// Calls per second and seconds of calls: enough calls in flight that two
/// workers race on one call's messages, short enough for the suite.
const RATE: u32 = 500;
const SECONDS: u32 = 6;
const CALLS: u64 = (RATE * SECONDS) as u64;
/// SIPp's own global timeout: it gives up (and says so) well before ours.
const SIPP_TIMEOUT: Duration = Duration::from_secs(30);
const UAC_DEADLINE: Duration = Duration::from_secs(45);
/// The uas ends 4 s (its timewait) after the last BYE it answers.
const UAS_DEADLINE: Duration = Duration::from_secs(15);

/// `/usr/bin/sipp`, else `sipp` on the PATH; FAILS the test when missing.
fn sipp() -> PathBuf {
    wisp_e2e::installed_tool("sipp", "sip-tester")
}

/// One SIPp side's counters at its exit.
struct Side {
    name: &'static str,
    dir: PathBuf,
    /// The last row of `-trace_stat`'s CSV, by column.
    stat: HashMap<String, String>,
    /// The last row of `-trace_counts`' CSV, by column (`4_200_Unexp`…).
    counts: HashMap<String, String>,
}

/// The last row of a `;`-separated SIPp CSV, by header column.
fn last_row(path: &Path) -> HashMap<String, String> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return HashMap::new();
    };
    let Some(last) = lines.next_back() else {
        return HashMap::new();
    };
    header
        .split(';')
        .zip(last.split(';'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

impl Side {
    fn read(name: &'static str, dir: &Path) -> Side {
        let counts_file = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("_counts.csv"));
        Side {
            name,
            dir: dir.to_path_buf(),
            stat: last_row(&dir.join("stat.csv")),
            counts: counts_file.map(|p| last_row(&p)).unwrap_or_default(),
        }
    }

    /// A cumulative counter of `-trace_stat`; `None` if SIPp wrote none.
    fn stat(&self, column: &str) -> Option<u64> {
        self.stat.get(column).and_then(|v| v.parse().ok())
    }

    /// Messages of the scenario received where it expected another one:
    /// the `_Unexp` columns, or the calls failed on one if more (a message
    /// arriving while SIPp sends has no `_Unexp` column).
    fn unexpected(&self) -> Option<u64> {
        if self.counts.is_empty() {
            return None;
        }
        let in_steps: Option<u64> = self
            .counts
            .iter()
            .filter(|(k, _)| k.ends_with("_Unexp"))
            .map(|(_, v)| v.parse::<u64>().ok())
            .sum();
        Some(in_steps?.max(self.stat("FailedUnexpectedMessage(C)")?))
    }

    fn summary(&self) -> String {
        let s = |c: &str| match self.stat(c) {
            Some(n) => n.to_string(),
            None => "?".into(),
        };
        format!(
            "{}: calls in {} out {}, successful {}, failed {} (unexpected message {}, max UDP retransmissions {}, receive timeout {}); unexpected messages {}, out-of-call {}, dead-call {}; retransmissions {}",
            self.name,
            s("IncomingCall(C)"),
            s("OutgoingCall(C)"),
            s("SuccessfulCall(C)"),
            s("FailedCall(C)"),
            s("FailedUnexpectedMessage(C)"),
            s("FailedMaxUDPRetrans(C)"),
            s("FailedTimeoutOnRecv(C)"),
            self.unexpected().map_or("?".into(), |n: u64| n.to_string()),
            s("OutOfCallMsgs(C)"),
            s("DeadCallMsgs(C)"),
            s("Retransmissions(C)"),
        )
    }

    /// SIPp's `-trace_err` events, one line each (the first 10).
    fn errors(&self) -> String {
        let text = fs::read_to_string(self.dir.join("errors.log")).unwrap_or_default();
        let events: Vec<&str> = text
            .lines()
            .map(|l| l.trim_start_matches('\'').trim_end())
            .filter(|l| l.starts_with("20") && l.contains(": "))
            .collect();
        let mut out = format!("{} errors ({} events):\n", self.name, events.len());
        for e in events.iter().take(10) {
            out.push_str("  ");
            out.push_str(e);
            out.push('\n');
        }
        out
    }
}

/// The SIPp flags both sides share: counters and errors written to `dir`.
fn sipp_command(dir: &Path, scenario: &str) -> Command {
    let mut cmd = Command::new(sipp());
    cmd.current_dir(dir).args([
        "-sn",
        scenario,
        "-i",
        "127.0.0.1",
        "-nostdin",
        "-m",
        &CALLS.to_string(),
        "-timeout",
        &format!("{}s", SIPP_TIMEOUT.as_secs()),
        "-trace_stat",
        "-stf",
        "stat.csv",
        "-trace_counts",
        "-trace_err",
        "-error_file",
        "errors.log",
    ]);
    cmd
}

/// Waits for `child` to exit within `timeout`; asks it to end (SIGUSR1,
/// SIPp's `q`: counters still written) past that, then kills it.
fn finish(child: &mut Child, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-USR1", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Kills the uas if the test ends early.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

#[test]
fn sipp_calls_through_two_workers_all_succeed_in_order() {
    let mut router = Router::start_with(|m| m.set("server", "workers", "2"));
    let uac_dir = router.dir().join("uac");
    let uas_dir = router.dir().join("uas");
    fs::create_dir_all(&uac_dir).expect("uac dir");
    fs::create_dir_all(&uas_dir).expect("uas dir");

    let uas_port = free_port_below_10000();
    let uas_log = fs::File::create(uas_dir.join("out.log")).expect("uas log");
    let mut uas_cmd = sipp_command(&uas_dir, "uas");
    uas_cmd
        .args(["-p", &uas_port.to_string()])
        .stdin(Stdio::null())
        .stdout(uas_log.try_clone().expect("uas log"))
        .stderr(uas_log);
    let mut uas = Reap(uas_cmd.spawn().expect("spawn sipp uas"));
    // The uas listens once its port can no longer be bound.
    let deadline = Instant::now() + Duration::from_secs(10);
    while UdpSocket::bind(("127.0.0.1", uas_port)).is_ok() {
        if let Ok(Some(st)) = uas.0.try_wait() {
            panic!(
                "sipp uas exited with {st}:\n{}",
                fs::read_to_string(uas_dir.join("out.log")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "sipp uas did not bind {uas_port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    router.ctl_ok(&["ul", "add", "bob", &format!("sip:bob@127.0.0.1:{uas_port}")]);

    // SIPp's uac binds 5060 unless told otherwise.
    let uac_port = free_port_below_10000();
    let mut uac_cmd = sipp_command(&uac_dir, "uac");
    uac_cmd.args([
        "-p",
        &uac_port.to_string(),
        "-s",
        "bob",
        &router.udp_addr().to_string(),
        "-r",
        &RATE.to_string(),
        "-timeout_error",
    ]);
    let uac_out = run_with_timeout(uac_cmd, UAC_DEADLINE);
    finish(&mut uas.0, UAS_DEADLINE);
    router.assert_alive();

    let uac = Side::read("uac", &uac_dir);
    let uas = Side::read("uas", &uas_dir);
    let report = format!(
        "{}\n{}\n{}{}uac: {} (status {:?})\n--- uac stderr ---\n{}\n--- uac stdout (end) ---\n{}",
        uac.summary(),
        uas.summary(),
        uac.errors(),
        uas.errors(),
        uac_out.cmdline,
        uac_out.status,
        uac_out.stderr,
        tail(&uac_out.stdout, 3000),
    );
    eprintln!("{}\n{}", uac.summary(), uas.summary());

    let all = Some(CALLS);
    assert_eq!(
        uac.stat("OutgoingCall(C)"),
        all,
        "the uac placed every call\n{report}"
    );
    assert_eq!(
        uas.stat("IncomingCall(C)"),
        all,
        "every call reached the uas\n{report}"
    );
    for side in [&uac, &uas] {
        assert_eq!(
            side.stat("FailedCall(C)"),
            Some(0),
            "{}: no call failed\n{report}",
            side.name
        );
        assert_eq!(
            side.stat("SuccessfulCall(C)"),
            all,
            "{}: every call succeeded\n{report}",
            side.name
        );
        assert_eq!(
            side.unexpected(),
            Some(0),
            "{}: no message came out of order (180 after 200, ACK after BYE)\n{report}",
            side.name
        );
        for c in ["OutOfCallMsgs(C)", "DeadCallMsgs(C)"] {
            assert_eq!(
                side.stat(c),
                Some(0),
                "{}: no message outside its call ({c})\n{report}",
                side.name
            );
        }
    }
    assert!(uac_out.success(), "sipp uac failed\n{report}");
}
