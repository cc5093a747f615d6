//! `[plugin.capabilities] wasi = true`: WASI with nothing behind it. The
//! fixture `plugins/wasi-probe-py` (Python, built where componentize-py is,
//! like the Python Hello World) tries files, sockets, name lookup, the
//! environment, stdout and a sleep past the deadline, and answers with what
//! WASI gave it. Without the grant the same component does not load.

use std::ffi::OsStr;
use std::time::Duration;

use wisp_e2e::*;

const RECV: Duration = Duration::from_secs(5);

/// The probe's build, or `None` (test skipped) where this machine has no
/// Python plugin toolchain; missing where it has one, the test fails.
fn probe() -> Option<std::path::PathBuf> {
    let path = plugin_path("wasi_probe_py");
    if path.is_file() {
        return Some(path);
    }
    assert!(
        !plugin_languages().iter().any(|l| l == "py"),
        "{} is missing although this machine has componentize-py: run `make plugins`",
        path.display()
    );
    eprintln!("skipped: no Python plugin toolchain here (scripts/setup.sh installs it)");
    None
}

fn start(probe: &std::path::Path) -> Router {
    Router::start_with(|mut m| {
        m.extra.push_str("[plugin.capabilities]\nwasi = true\n");
        m.plugin_file(probe)
            .set("plugin", "name", "\"wasi-probe\"")
            .set("plugin", "memory_mb", "64")
            .set("plugin", "deadline_ms", "100")
    })
}

/// Status and reason phrase of the answer to an OPTIONS for `user`.
fn ask(router: &Router, ua: &TestUa, user: &str) -> (u16, String) {
    let req = ua.request("OPTIONS", &router.aor(user));
    let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
    let fin = fin.unwrap_or_else(|| panic!("no answer to the {user} probe"));
    let first = text(&fin).lines().next().unwrap_or_default().to_owned();
    let reason = first.splitn(3, ' ').nth(2).unwrap_or_default().to_owned();
    (fin.status().unwrap_or(0), reason)
}

#[test]
fn wasi_grants_nothing_behind_it() {
    let Some(probe) = probe() else { return };
    let router = start(&probe);
    let ua = TestUa::new("alice");
    for user in ["file", "listdir", "socket", "dns"] {
        let (status, reason) = ask(&router, &ua, user);
        assert_eq!(status, 200, "{user}: {reason}\n{}", router.log());
        assert!(
            reason.starts_with("refused "),
            "{user} must be refused, got {reason:?}"
        );
    }
    let (status, reason) = ask(&router, &ua, "env");
    assert_eq!((status, reason.as_str()), (200, "env 0 args 0"));
    // Reading the clocks is allowed; only waiting on them is refused.
    assert_eq!(ask(&router, &ua, "clock"), (200, "clock ok".to_owned()));
}

/// `time.sleep(1)` with a 100 ms deadline: the wait traps at once instead of
/// blocking the worker past the deadline; the request gets 500 and the
/// router goes on serving.
#[test]
fn a_sleep_past_the_deadline_traps() {
    let Some(probe) = probe() else { return };
    let router = start(&probe);
    let ua = TestUa::new("alice");
    let (status, _) = ask(&router, &ua, "sleep");
    assert_eq!(status, 500, "{}", router.log());
    router.wait_for_log("the refused wait", RECV, |log| {
        log.contains("blocking waits are refused")
    });
    assert_eq!(ask(&router, &ua, "clock"), (200, "clock ok".to_owned()));
}

/// stdout and stderr reach the router's log, tagged with the plugin. A
/// `print` ends in `blocking-write-and-flush`, which wasmtime-wasi's sync
/// bindings run with tokio's `block_on`: on the router's worker that
/// panicked ("Cannot start a runtime from within a runtime") and the
/// request got no answer. Printed twice: the worker goes on serving.
#[test]
fn stdout_and_stderr_go_to_the_log_tagged_with_the_plugin() {
    let Some(probe) = probe() else { return };
    let router = start(&probe);
    let ua = TestUa::new("alice");
    assert_eq!(ask(&router, &ua, "print"), (200, "printed".to_owned()));
    assert_eq!(ask(&router, &ua, "print"), (200, "printed".to_owned()));
    assert!(
        !router.log().contains("panicked"),
        "printing must not panic a worker:\n{}",
        router.log()
    );
    let log = router.wait_for_log("the probe's output", RECV, |log| {
        log.contains("probe says hello on stdout") && log.contains("probe says hello on stderr")
    });
    let line = log
        .lines()
        .find(|l| l.contains("probe says hello on stdout"))
        .unwrap_or_default();
    assert!(
        line.contains("wasi-probe"),
        "tagged with the plugin: {line}"
    );
    assert!(line.contains("stdout"), "and the stream: {line}");
}

/// Without the grant, a component that imports `wasi:*` is refused at load
/// with the reason and the way out.
#[test]
fn a_component_importing_wasi_without_the_grant_is_refused() {
    let Some(probe) = probe() else { return };
    let dir = TempDir::new();
    let manifest = dir.path().join("wisp.toml");
    let text = Manifest::new(0)
        .plugin_file(&probe)
        .set("plugin", "memory_mb", "64")
        .render();
    std::fs::write(&manifest, text).expect("write manifest");
    let out = run_wisp(
        &[
            OsStr::new("check"),
            OsStr::new("--config"),
            manifest.as_os_str(),
        ],
        Duration::from_secs(60),
    );
    assert!(!out.success(), "must be refused\n{}", out.describe());
    let all = out.describe();
    assert!(
        all.contains("imports wasi:") && all.contains("wasi = true"),
        "the refusal names the WASI import and the grant:\n{all}"
    );
}
