//! The plugin developer's kit: `wisp new` + `wisp build` + `wisp check` on
//! every template, the case files of every plugin in `plugins/` (`wisp
//! test`), a broken decision named by the diff, and `wisp replay` of a pcap
//! written during a call through a real router, plus `--against` on two
//! builds that differ in one rule.

use std::ffi::OsStr;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use wisp_e2e::*;

const T: Duration = Duration::from_secs(60);
/// A plugin build compiles the wasm32 standard library the first time.
const BUILD: Duration = Duration::from_secs(900);

/// The target folder of the crates these tests generate: kept between
/// runs (under the checkout's `target/`), so the SDK is built once, not per
/// test.
fn kit_target() -> PathBuf {
    repo_root().join("target/kit-tests")
}

/// Where their wasm32 builds go: beside the repository's plugins (`make
/// plugins` ran first), whose wasm32 standard library they reuse instead
/// of compiling their own for minutes.
fn wasm_target() -> PathBuf {
    repo_root().join("target/wasm")
}

fn wisp(args: &[&OsStr], timeout: Duration) -> RunOutput {
    run_wisp(args, timeout)
}

fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

/// `built PATH (N bytes)` -> PATH.
fn built_path(stdout: &str) -> PathBuf {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("built "))
        .and_then(|l| l.rsplit_once(" ("))
        .map(|(p, _)| PathBuf::from(p))
        .unwrap_or_else(|| panic!("wisp build printed no component:\n{stdout}"))
}

#[test]
fn new_build_check_and_test_every_template() {
    let dir = TempDir::new();
    // One target folder for the four crates: the wasm32 standard library
    // is built once.
    let target = kit_target();
    for template in ["default", "registrar", "redirect", "empty"] {
        let name = format!("t-{template}");
        // `wisp new` writes relative to the current folder: give it one.
        let crate_dir = dir.path().join(&name);
        let out = {
            let mut cmd = std::process::Command::new(wisp_bin());
            cmd.args(["new", &name, "--template", template])
                .current_dir(dir.path());
            let o = cmd.output().expect("run wisp new");
            assert!(
                o.status.success(),
                "wisp new {name} --template {template}:\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        assert!(
            out.contains("cargo test"),
            "wisp new names the next steps:\n{out}"
        );
        assert!(crate_dir.join("Cargo.toml").is_file());
        let mut cmd = std::process::Command::new(wisp_bin());
        cmd.args(["build", "."])
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target)
            .env("WASM_TARGET_DIR", wasm_target());
        let o = run_with_timeout(cmd, BUILD);
        assert!(
            o.success(),
            "wisp build of the {template} template:\n{}",
            o.describe()
        );
        let component = built_path(&o.stdout);
        assert!(component.is_file(), "{} missing", component.display());
        // `wisp check` loads it as `wisp run` would, with the crate's manifest.
        let manifest = fs::read_to_string(crate_dir.join("wisp.toml")).unwrap();
        let lib = name.replace('-', "_");
        let manifest = manifest.replace(
            &format!("path = \"target/plugins/{lib}.wasm\""),
            &format!("path = {:?}", component.to_string_lossy()),
        );
        // Ports of its own: a router on 5060 must not fail the check.
        let manifest = manifest.replace("127.0.0.1:5060", "127.0.0.1:0");
        fs::write(crate_dir.join("wisp-test.toml"), manifest).unwrap();
        let out = wisp(
            &[
                os("check"),
                os("--config"),
                crate_dir.join("wisp-test.toml").as_os_str(),
            ],
            T,
        );
        assert!(out.success(), "wisp check, {template}:\n{}", out.describe());
        // And its own case file passes.
        let out = wisp(
            &[
                os("test"),
                os("--plugin"),
                component.as_os_str(),
                crate_dir.join("cases").as_os_str(),
            ],
            T,
        );
        assert!(out.success(), "wisp test, {template}:\n{}", out.describe());
    }
}

#[test]
fn a_new_crate_passes_its_own_cargo_test() {
    let dir = TempDir::new();
    let o = std::process::Command::new(wisp_bin())
        .args(["new", "my-router"])
        .current_dir(dir.path())
        .output()
        .expect("run wisp new");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut cmd = std::process::Command::new("cargo");
    cmd.args(["test", "--release", "--offline"])
        .current_dir(dir.path().join("my-router"))
        .env("WISP", wisp_bin())
        .env("CARGO_TARGET_DIR", kit_target())
        .env("WASM_TARGET_DIR", wasm_target());
    let o = run_with_timeout(cmd, BUILD);
    assert!(o.success(), "cargo test in a new crate:\n{}", o.describe());
    assert!(
        o.stdout.contains("test cases_pass ... ok"),
        "the crate's test ran its cases:\n{}",
        o.describe()
    );
}

#[test]
fn wisp_build_names_what_is_missing() {
    let dir = TempDir::new();
    let out = wisp(&[os("build"), dir.path().as_os_str()], T);
    assert!(!out.success());
    assert!(
        out.stderr.contains("no Cargo.toml"),
        "names the missing crate:\n{}",
        out.describe()
    );

    // A machine without wasm-tools: a crate, and a PATH without it.
    let o = std::process::Command::new(wisp_bin())
        .args(["new", "lacks"])
        .current_dir(dir.path())
        .output()
        .expect("run wisp new");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let without: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| !d.join("wasm-tools").exists())
        .collect();
    let mut cmd = std::process::Command::new(wisp_bin());
    cmd.args(["build", "."])
        .current_dir(dir.path().join("lacks"))
        .env("PATH", std::env::join_paths(without).unwrap());
    let out = run_with_timeout(cmd, T);
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr.contains("no wasm-tools on PATH") && out.stderr.contains("scripts/setup.sh"),
        "names what is missing and how to get it:\n{}",
        out.describe()
    );
}

/// Every plugin's cases (`plugins/<name>/cases/*.toml`) pass on its build.
#[test]
fn every_plugin_case_file_passes() {
    let mut ran = 0;
    let mut failures = Vec::new();
    let mut dirs: Vec<PathBuf> = fs::read_dir(repo_root().join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let cases = dir.join("cases");
        let name = dir.file_name().unwrap().to_string_lossy().replace('-', "_");
        assert!(
            cases.is_dir(),
            "plugins/{}: no cases/ folder (every plugin has case files)",
            dir.file_name().unwrap().to_string_lossy()
        );
        let plugin = plugin_path(&name);
        let out = wisp(
            &[
                os("test"),
                os("--plugin"),
                plugin.as_os_str(),
                cases.as_os_str(),
            ],
            T,
        );
        ran += 1;
        if !out.success() {
            failures.push(out.describe());
        }
    }
    assert!(ran > 10, "only {ran} plugins with cases");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A decision changed on purpose: the v2 build of reload-probe answers
/// OPTIONS "OK v2". The diff names the step, the field and both values.
#[test]
fn a_changed_decision_fails_with_a_diff_that_names_it() {
    let cases = repo_root().join("plugins/reload-probe/cases");
    let ok = wisp(
        &[
            os("test"),
            os("--plugin"),
            plugin_path("reload_probe").as_os_str(),
            cases.as_os_str(),
        ],
        T,
    );
    assert!(ok.success(), "{}", ok.describe());
    let broken = wisp(
        &[
            os("test"),
            os("--plugin"),
            plugin_path("reload_probe_v2").as_os_str(),
            cases.as_os_str(),
        ],
        T,
    );
    assert!(!broken.success(), "v2 must fail v1's cases");
    assert!(
        broken.stdout.contains("FAIL")
            && broken
                .stdout
                .contains("step 1 (OPTIONS sip:example.com SIP/2.0")
            && broken
                .stdout
                .contains("reason \"OK v2\", expected \"OK v1\""),
        "the diff names the step and the decision:\n{}",
        broken.describe()
    );
}

// ------------------------------------------------------------------ replay

/// The lines of `wisp replay`'s output that name a request (`   2 OPTIONS
/// sip:... from ...`), not its decision under it.
fn request_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            l.trim_start()
                .split(' ')
                .next()
                .is_some_and(|n| n.parse::<usize>().is_ok())
        })
        .filter(|l| !l.contains("routed differently"))
        .collect()
}

/// A pcap of raw IPv4 packets (link type 101), one per datagram.
struct Pcap(Vec<u8>);

impl Pcap {
    fn new() -> Pcap {
        let mut b = Vec::new();
        b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&0i32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&101u32.to_le_bytes());
        Pcap(b)
    }

    fn udp(&mut self, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) else {
            panic!("IPv4 only")
        };
        let total = 20 + 8 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
        ];
        p.extend_from_slice(&s.ip().octets());
        p.extend_from_slice(&d.ip().octets());
        p.extend_from_slice(&s.port().to_be_bytes());
        p.extend_from_slice(&d.port().to_be_bytes());
        p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        for v in [0u32, 0, p.len() as u32, p.len() as u32] {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        self.0.extend_from_slice(&p);
    }
}

/// A UA that writes what it sends and receives into the capture.
fn send(pcap: &mut Pcap, ua: &TestUa, to: SocketAddr, bytes: &[u8]) {
    pcap.udp(ua.addr(), to, bytes);
    ua.send_to(to, bytes);
}

fn recv(pcap: &mut Pcap, ua: &TestUa) -> (wisp_sip::Message, SocketAddr) {
    let (data, from) = ua.recv(Duration::from_secs(5)).expect("a datagram");
    pcap.udp(from, ua.addr(), &data);
    (wisp_sip::Message::parse(data).expect("SIP"), from)
}

#[test]
fn replay_of_a_pcap_written_during_a_call_prints_the_decisions() {
    let router = Router::start_with(|m| m.plugin_file(&plugin_path("hello_world")));
    let mut pcap = Pcap::new();
    let callee = TestUa::new("bob");
    let caller = TestUa::new("alice");
    // bob registers.
    let reg = callee
        .request("REGISTER", &router.uri())
        .from(&router.aor("bob"))
        .to(&router.aor("bob"))
        .expires(3600)
        .build();
    send(&mut pcap, &callee, router.udp_addr(), &reg);
    let (ok, _) = recv(&mut pcap, &callee);
    assert_eq!(ok.status(), Some(200));
    // alice calls bob: 100 from the router, the INVITE at bob, bob's 486.
    let invite = caller
        .request("INVITE", &router.aor("bob"))
        .from(&router.aor("alice"))
        .to(&router.aor("bob"))
        .build();
    send(&mut pcap, &caller, router.udp_addr(), &invite);
    let (relayed, from) = recv(&mut pcap, &callee);
    assert_eq!(relayed.method().map(|m| m.as_str()), Some("INVITE"));
    let busy = reply_text(&relayed, 486, "Busy Here");
    send(&mut pcap, &callee, from, busy.as_bytes());
    // A call to nobody: 404.
    let nobody = caller
        .request("INVITE", &router.aor("carol"))
        .from(&router.aor("alice"))
        .to(&router.aor("carol"))
        .build();
    send(&mut pcap, &caller, router.udp_addr(), &nobody);
    for _ in 0..4 {
        if let Some((data, from)) = caller.recv(Duration::from_millis(500)) {
            pcap.udp(from, caller.addr(), &data);
        }
    }
    let dir = TempDir::new();
    let file = dir.path().join("call.pcap");
    fs::write(&file, &pcap.0).unwrap();

    let out = wisp(
        &[
            os("replay"),
            os("--plugin"),
            plugin_path("hello_world").as_os_str(),
            file.as_os_str(),
        ],
        T,
    );
    assert!(out.success(), "{}", out.describe());
    let text = &out.stdout;
    // Exactly the three requests the router received, in order.
    let lines = request_lines(text);
    assert_eq!(lines.len(), 3, "three requests to the router:\n{text}");
    assert!(lines[0].contains("REGISTER"), "{text}");
    assert!(text.contains("reply 200"), "REGISTER answered 200:\n{text}");
    assert!(
        text.contains(&format!(
            "relay to udp:{} R-URI sip:bob@{}",
            callee.addr(),
            callee.addr()
        )),
        "the INVITE relayed to bob's contact:\n{text}"
    );
    assert!(
        text.contains("+p-hint: usrloc applied"),
        "the changed headers of the relay:\n{text}"
    );
    assert!(text.contains("reply 404 Not Found"), "{text}");
}

/// The reply a UAS sends to `req`.
fn reply_text(req: &wisp_sip::Message, code: u16, reason: &str) -> String {
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        for v in req.header_values(name) {
            out.push_str(&format!("{name}: {}\r\n", String::from_utf8_lossy(v)));
        }
    }
    let to = req
        .header_value("To")
        .map(|v| String::from_utf8_lossy(v).into_owned());
    out.push_str(&format!(
        "To: {};tag=uas\r\nContent-Length: 0\r\n\r\n",
        to.unwrap_or_default()
    ));
    out
}

#[test]
fn replay_against_lists_exactly_the_requests_two_builds_route_differently() {
    let dir = TempDir::new();
    let capture = dir.path().join("capture.txt");
    let msg = |n: u32, method: &str, uri: &str| {
        format!(
            "--- udp:192.0.2.10:5060 -> udp:192.0.2.1:5060\n\
             {method} {uri} SIP/2.0\n\
             Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{n}\n\
             Max-Forwards: 70\n\
             From: <sip:alice@example.com>;tag=a{n}\n\
             To: <sip:alice@example.com>\n\
             Call-ID: c{n}@192.0.2.10\n\
             CSeq: 1 {method}\n\
             Contact: <sip:alice@192.0.2.10:5060>\n\n"
        )
    };
    let text = [
        msg(1, "REGISTER", "sip:example.com"),
        msg(2, "OPTIONS", "sip:example.com"),
        msg(3, "OPTIONS", "sip:drop@example.com"),
        msg(4, "MESSAGE", "sip:bob@192.0.2.20:5060"),
        msg(5, "OPTIONS", "sip:alice@example.com"),
    ]
    .concat();
    fs::write(&capture, text).unwrap();
    let out = wisp(
        &[
            os("replay"),
            os("--plugin"),
            plugin_path("reload_probe").as_os_str(),
            os("--against"),
            plugin_path("reload_probe_v2").as_os_str(),
            capture.as_os_str(),
        ],
        T,
    );
    // Like diff: differences exit 1.
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        out.describe()
    );
    let listed = request_lines(&out.stdout);
    assert_eq!(
        listed.len(),
        2,
        "the two OPTIONS answered by the route:\n{}",
        out.stdout
    );
    assert!(
        listed[0].contains("2 OPTIONS sip:example.com"),
        "{}",
        out.stdout
    );
    assert!(
        listed[1].contains("5 OPTIONS sip:alice@example.com"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("- reply 200 OK v1") && out.stdout.contains("+ reply 200 OK v2"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("2 of 5 request(s) routed differently"),
        "{}",
        out.stdout
    );

    // The same build against itself: nothing differs, exit 0.
    let same = wisp(
        &[
            os("replay"),
            os("--plugin"),
            plugin_path("reload_probe").as_os_str(),
            os("--against"),
            plugin_path("reload_probe").as_os_str(),
            capture.as_os_str(),
        ],
        T,
    );
    assert!(same.success(), "{}", same.describe());
    assert!(
        same.stdout.contains("0 of 5 request(s) routed differently"),
        "{}",
        same.stdout
    );
}
