//! The plugins in other languages (plugins/hello-world-{c,zig,js,py}): what
//! their builds depend on stays in step with `wit/`. (Their routing is tested
//! with the Rust one's, in proxy.rs; WASI in wasi.rs.)

use std::process::Command;

use wisp_e2e::*;

/// The wit-bindgen the committed C bindings were generated with.
const WIT_BINDGEN: &str = "wit-bindgen-cli 0.61.1";

/// plugins/hello-world-c/bindings is wit-bindgen's output for `wit/`,
/// committed so builds need no generator. Wherever that wit-bindgen is
/// installed, regenerate and compare: a WIT change without new bindings
/// fails here. Elsewhere skipped (installing it takes ~12 minutes).
#[test]
fn c_bindings_match_the_wit() {
    let version = Command::new("wit-bindgen").arg("--version").output();
    let version = match version {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => {
            eprintln!("skipped: wit-bindgen is not installed");
            return;
        }
    };
    if version != WIT_BINDGEN {
        eprintln!("skipped: {version} installed, the bindings are from {WIT_BINDGEN}");
        return;
    }
    let root = repo_root();
    let dir = TempDir::new();
    let out = Command::new("wit-bindgen")
        .args([
            "c",
            "wit",
            "--world",
            "plugin",
            "--autodrop-borrows",
            "yes",
            "--out-dir",
        ])
        .arg(dir.path())
        .current_dir(&root)
        .output()
        .expect("run wit-bindgen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in ["plugin.h", "plugin.c", "plugin_component_type.o"] {
        let fresh = std::fs::read(dir.path().join(file)).expect("generated");
        let committed = std::fs::read(root.join("plugins/hello-world-c/bindings").join(file))
            .expect("committed bindings");
        assert!(
            fresh == committed,
            "plugins/hello-world-c/bindings/{file} is stale: regenerate it \
             (plugins/hello-world-c/README.md)"
        );
    }
}

/// A hot reload from the Rust Hello World to the Python one, the same route,
/// under a steady REGISTER load: every request is answered, none fails or
/// is lost, and the Python build then serves. The slot grants WASI (the
/// Rust build does not use it) and 64 MiB, which the Python build needs.
#[test]
fn a_reload_from_rust_to_python_under_load_loses_nothing() {
    use std::thread;
    use std::time::{Duration, Instant};

    let py = plugin_path("hello_world_py");
    if !py.is_file() {
        assert!(
            !plugin_languages().iter().any(|l| l == "py"),
            "{} is missing although this machine has componentize-py: run `make plugins`",
            py.display()
        );
        eprintln!("skipped: no Python plugin toolchain here");
        return;
    }
    let dir = TempDir::new();
    let file = dir.path().join("hello.wasm");
    let deploy = |build: &std::path::Path| {
        let tmp = file.with_extension("wasm.tmp");
        std::fs::copy(build, &tmp).expect("copy the build");
        std::fs::rename(&tmp, &file).expect("rename over the plugin");
    };
    deploy(&plugin_path("hello_world"));
    let router = Router::start_with(|mut m| {
        m.extra.push_str("[plugin.capabilities]\nwasi = true\n");
        m.plugin_file(&file)
            .set("plugin", "name", "\"hello\"")
            .set("plugin", "watch", "false")
            .set("plugin", "memory_mb", "64")
    });

    let mut cmd = Command::new(wisp_bench_bin());
    cmd.arg("--target")
        .arg(router.udp_addr().to_string())
        // A generous answer deadline: the Python build compiles for ~10 s of
        // CPU on a 2-core machine meanwhile; a lost request is never answered.
        .args(["--json", "--timeout-ms", "10000", "--duration", "60"])
        .args([
            "--method", "register", "--rate", "200", "--count", "10000", "--users", "200",
        ]);
    let load = thread::spawn(move || run_with_timeout(cmd, Duration::from_secs(90)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while router.ctl_ok(&["ul", "show"]).trim().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the REGISTER load never reached the router:\n{}",
            router.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
    // Some load on the Rust build, then the swap, then some on Python.
    thread::sleep(Duration::from_secs(3));
    deploy(&py);
    let out = router.ctl_ok(&["plugin", "reload", "hello"]);
    assert!(out.contains("->"), "the reload swapped nothing: {out}");
    thread::sleep(Duration::from_secs(3));
    assert!(!load.is_finished(), "the load must outlast the reload");
    let b = TestUa::new("bob");
    b.register(&router);

    let out = load.join().expect("bench thread");
    assert!(out.success(), "REGISTER load:\n{}", out.describe());
    let sent = bench_field(&out.stdout, "sent");
    assert!(sent > 1000, "only {sent} sent");
    assert_eq!(bench_field(&out.stdout, "answered"), sent, "{}", out.stdout);
    assert_eq!(bench_field(&out.stdout, "failed"), 0, "{}", out.stdout);
    assert_eq!(bench_field(&out.stdout, "lost"), 0, "{}", out.stdout);
    let list = router.ctl_ok(&["plugin", "list"]);
    assert!(list.contains("reloads=1"), "{list}");
    assert!(
        !router.log().contains("plugin trapped"),
        "no call trapped:\n{}",
        router.log()
    );
}
