//! Hot reload (issue 5): a new build of the routing plugin is swapped in
//! while traffic flows, without losing a request; transactions armed by the
//! old build finish in it; a broken build is refused. Also the plugin chain.
//!
//! Uses the `reload-probe` fixture (plugins/reload-probe), built twice:
//! `reload_probe.wasm` answers OPTIONS "OK v1" and fails INVITEs with
//! "Failed in v1", `reload_probe_v2.wasm` says "v2".

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use wisp_e2e::*;
use wisp_sip::Method;

const V1: &str = "reload_probe";
const V2: &str = "reload_probe_v2";

/// Deploy a build the way an operator should: copy beside, rename over.
fn deploy(build: &str, to: &Path) {
    let tmp = to.with_extension("wasm.tmp");
    std::fs::copy(plugin_path(build), &tmp).expect("copy the build");
    std::fs::rename(&tmp, to).expect("rename over the plugin");
}

/// A router whose plugin `probe` is a copy of `build` in its own directory.
fn start_probe(build: &str, watch: bool, extra: &str) -> (Router, TempDir, PathBuf) {
    let dir = TempDir::new();
    let file = dir.path().join("probe.wasm");
    deploy(build, &file);
    let extra = extra.to_owned();
    let router = Router::start_with(|m| {
        let mut m = m.set("plugin", "name", "\"probe\"").plugin_file(&file).set(
            "plugin",
            "watch",
            if watch { "true" } else { "false" },
        );
        m.extra = extra.clone();
        m
    });
    (router, dir, file)
}

/// The reason phrase of the answer to an OPTIONS to `user`.
fn options_reason(router: &Router, ua: &TestUa, user: &str) -> String {
    let req = ua.request("OPTIONS", &router.aor(user));
    let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
    let fin = fin.unwrap_or_else(|| panic!("no answer to OPTIONS; log:\n{}", router.log()));
    assert_eq!(fin.status(), Some(200), "{}", text(&fin));
    reason(&fin)
}

fn reason(m: &wisp_sip::Message) -> String {
    let t = text(m);
    let first = t.lines().next().unwrap_or_default();
    first.splitn(3, ' ').nth(2).unwrap_or_default().to_owned()
}

#[test]
fn twenty_reloads_under_load_lose_no_request_and_switch_behaviour() {
    let (router, _dir, file) = start_probe(V1, false, "");
    let ua = TestUa::new("checker");
    assert_eq!(options_reason(&router, &ua, "x"), "OK v1");

    // Steady open-loop load, bounded in count and time, from a generator
    // that tells answered from lost.
    let bench = |args: &[&str]| {
        let mut cmd = Command::new(wisp_bench_bin());
        cmd.arg("--target")
            .arg(router.udp_addr().to_string())
            .args(["--json", "--timeout-ms", "3000", "--duration", "40"])
            .args(args);
        thread::spawn(move || run_with_timeout(cmd, Duration::from_secs(60)))
    };
    let options = bench(&["--method", "options", "--rate", "400", "--count", "6000"]);
    let registers = bench(&[
        "--method", "register", "--rate", "200", "--count", "3000", "--users", "200",
    ]);
    // The reloads start once the load reaches the router: its first
    // REGISTERs show up as bindings.
    let deadline = Instant::now() + Duration::from_secs(10);
    while router.ctl_ok(&["ul", "show"]).trim().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the REGISTER load never reached the router:\n{}",
            router.log()
        );
        thread::sleep(Duration::from_millis(20));
    }

    for i in 0..20 {
        let (build, answer) = if i % 2 == 0 {
            (V2, "OK v2")
        } else {
            (V1, "OK v1")
        };
        deploy(build, &file);
        let out = router.ctl_ok(&["plugin", "reload", "probe"]);
        assert!(out.contains("->"), "reload {i} swapped nothing: {out}");
        assert_eq!(
            options_reason(&router, &ua, "x"),
            answer,
            "after reload {i} the new build answers"
        );
    }
    assert!(
        !options.is_finished() && !registers.is_finished(),
        "the load must outlast the reloads"
    );

    for (what, load) in [("OPTIONS", options), ("REGISTER", registers)] {
        let out = load.join().expect("bench thread");
        assert!(out.success(), "{what} load:\n{}", out.describe());
        let sent = bench_field(&out.stdout, "sent");
        assert!(sent > 1000, "{what}: only {sent} sent");
        assert_eq!(
            bench_field(&out.stdout, "answered"),
            sent,
            "{what}: {}",
            out.stdout
        );
        assert_eq!(
            bench_field(&out.stdout, "failed"),
            0,
            "{what}: {}",
            out.stdout
        );
        assert_eq!(
            bench_field(&out.stdout, "lost"),
            0,
            "{what}: {}",
            out.stdout
        );
    }
    let list = router.ctl_ok(&["plugin", "list"]);
    assert!(list.contains("reloads=20"), "{list}");
}

#[test]
fn a_failure_route_armed_before_a_reload_runs_in_the_build_that_armed_it() {
    // A short timer I, so the finished transaction lets go of the old build soon.
    let (router, _dir, file) = start_probe(V1, false, "[tm]\nt4_ms = 300\n");
    let caller = TestUa::new("alice");
    let callee = TestUa::new("bob");

    let call = || {
        let inv = caller.request("INVITE", &callee.contact());
        caller.send_to(router.udp_addr(), &inv.build());
        let (req, src) = callee.expect_request(Method::Invite);
        (inv, req, src)
    };

    let (inv, req, src) = call();
    let list = router.ctl_ok(&["plugin", "list"]);
    assert!(
        list.contains("serving") && list.contains("live_transactions=1"),
        "{list}"
    );

    deploy(V2, &file);
    router.ctl_ok(&["plugin", "reload", "probe"]);
    let list = router.ctl_ok(&["plugin", "list"]);
    assert!(
        list.contains("retired") && list.contains("live_transactions=1"),
        "the old build stays while its transaction lives:\n{list}"
    );
    assert_eq!(options_reason(&router, &caller, "x"), "OK v2");

    // The branch fails now: the failure route of v1 answers.
    callee.reply(&req, src, 486, "Busy Here", "t1");
    let (fin, _) = caller
        .recv_answer_for(&inv.call_id, RECV)
        .expect("the caller gets an answer");
    assert_eq!(fin.status(), Some(480), "{}", text(&fin));
    assert_eq!(reason(&fin), "Failed in v1", "{}", text(&fin));
    let ack = caller
        .request("ACK", &callee.contact())
        .call_id(&inv.call_id)
        .branch(&inv.branch);
    caller.send_to(router.udp_addr(), &ack.build());

    // The transaction ends, and with it the old build.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = router.ctl_ok(&["plugin", "list"]);
        if !list.contains("retired") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old build was never dropped:\n{list}"
        );
        thread::sleep(Duration::from_millis(100));
    }

    // A new call runs entirely in v2.
    let (inv, req, src) = call();
    callee.reply(&req, src, 486, "Busy Here", "t2");
    let (fin, _) = caller.recv_answer_for(&inv.call_id, RECV).expect("answer");
    assert_eq!(reason(&fin), "Failed in v2", "{}", text(&fin));
}

#[test]
fn a_changed_file_is_reloaded_and_a_broken_build_is_refused() {
    let (router, _dir, file) = start_probe(V1, true, "");
    let ua = TestUa::new("alice");
    assert_eq!(options_reason(&router, &ua, "x"), "OK v1");

    deploy(V2, &file);
    let deadline = Instant::now() + Duration::from_secs(10);
    while options_reason(&router, &ua, "x") != "OK v2" {
        assert!(
            Instant::now() < deadline,
            "the new file was not loaded:\n{}",
            router.log()
        );
        thread::sleep(Duration::from_millis(100));
    }

    // Half a component, written in place: refused, v2 keeps serving.
    let bytes = std::fs::read(plugin_path(V1)).expect("read v1");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("truncated write");
    router.wait_for_log(
        "the refusal of the truncated build",
        Duration::from_secs(10),
        |log| log.contains("new build refused"),
    );
    assert_eq!(options_reason(&router, &ua, "x"), "OK v2");
    let out = router.ctl(&["plugin", "reload", "probe"]);
    assert!(!out.success(), "a refused reload fails the command");
    assert!(out.stderr.contains("refused"), "{}", out.describe());
    assert!(router.ctl_ok(&["plugin", "list"]).contains("refused="));
}

#[test]
fn plugins_run_in_order_until_one_answers_or_drops() {
    // probe first: it answers OPTIONS itself, passes user "pass" on and
    // drops user "drop"; faulty second answers what it is given 200 "OK".
    let second = format!(
        "[[plugin]]\nname = \"second\"\npath = \"{}\"\ndeadline_ms = 50\nmemory_mb = 8\n",
        plugin_path("faulty").display()
    );
    let (router, _dir, _file) = start_probe(V1, false, &second);
    let ua = TestUa::new("alice");
    assert_eq!(
        options_reason(&router, &ua, "x"),
        "OK v1",
        "the first plugin answers"
    );
    assert_eq!(
        options_reason(&router, &ua, "pass"),
        "OK",
        "the second plugin answers"
    );

    let dropped = ua.request("OPTIONS", &router.aor("drop"));
    ua.send_to(router.udp_addr(), &dropped.build());
    assert!(
        ua.recv_response_for(&dropped.call_id, Duration::from_millis(500))
            .is_none(),
        "a dropped request gets no answer"
    );
    let list = router.ctl_ok(&["plugin", "list"]);
    let probe = list.find("probe ").expect("probe listed");
    let second = list.find("second ").expect("second listed");
    assert!(probe < second, "listed in chain order:\n{list}");
}
