//! `wisp check --config FILE`: validation errors name file, line and key.

use std::ffi::OsStr;
use std::fs;
use std::time::Duration;

use wisp_e2e::*;

const T: Duration = Duration::from_secs(20);

fn check(path: &std::path::Path) -> RunOutput {
    run_wisp(
        &[
            OsStr::new("check"),
            OsStr::new("--config"),
            path.as_os_str(),
        ],
        T,
    )
}

#[test]
fn check_accepts_good_manifest() {
    let dir = TempDir::new();
    let p = dir.path().join("good.toml");
    fs::write(&p, Manifest::new(0).render()).unwrap();
    let out = check(&p);
    assert!(
        out.success(),
        "wisp check must accept the default manifest\n{}",
        out.describe()
    );
}

#[test]
fn check_accepts_shipped_configs() {
    for name in [
        "wisp.toml",
        "hello-world.toml",
        "registrar-auth.toml",
        "pstn-gateway.toml",
    ] {
        let p = repo_root().join("config").join(name);
        let out = check(&p);
        assert!(
            out.success(),
            "wisp check must accept config/{name}\n{}",
            out.describe()
        );
    }
}

/// Line of `needle` (1-based) in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle in manifest")
        + 1
}

fn names_line(stderr: &str, line: usize) -> bool {
    [
        format!("line {line}"),
        format!(":{line}:"),
        format!("line: {line}"),
        format!(":{line} "),
        format!(":{line}\n"),
    ]
    .iter()
    .any(|p| stderr.contains(p.as_str()))
}

#[test]
fn check_rejects_bad_listen_naming_file_line_and_key() {
    let dir = TempDir::new();
    let p = dir.path().join("bad-listen.toml");
    let m = Manifest::new(0)
        .set("server", "listen", "[\"udp:127.0.0.1:notaport\"]")
        .render();
    let line = line_of(&m, "notaport");
    fs::write(&p, &m).unwrap();
    let out = check(&p);
    assert!(out.status.is_some(), "wisp check hung\n{}", out.describe());
    assert!(
        !out.success(),
        "wisp check must reject listen = notaport\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("bad-listen.toml"),
        "stderr must name the file\n{}",
        out.describe()
    );
    assert!(
        names_line(&out.stderr, line),
        "stderr must name line {line}\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("listen"),
        "stderr must name the key `listen`\n{}",
        out.describe()
    );
}

#[test]
fn check_rejects_unknown_key_naming_it() {
    let dir = TempDir::new();
    let p = dir.path().join("unknown-key.toml");
    let mut m = Manifest::new(0);
    m.server.push(("frobnicate_level".into(), "3".into()));
    let m = m.render();
    let line = line_of(&m, "frobnicate_level");
    fs::write(&p, &m).unwrap();
    let out = check(&p);
    assert!(
        !out.success(),
        "wisp check must reject an unknown key\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("frobnicate_level"),
        "stderr must name the unknown key\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("unknown-key.toml"),
        "stderr must name the file\n{}",
        out.describe()
    );
    assert!(
        names_line(&out.stderr, line),
        "stderr should name line {line}\n{}",
        out.describe()
    );
}

#[test]
fn check_rejects_missing_plugin() {
    let dir = TempDir::new();
    let p = dir.path().join("missing-plugin.toml");
    let m = Manifest::new(0)
        .plugin_file(&dir.path().join("nope.wasm"))
        .render();
    fs::write(&p, &m).unwrap();
    let out = check(&p);
    assert!(
        !out.success(),
        "wisp check must fail when the plugin file is missing\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains("nope.wasm"),
        "stderr must name the missing plugin file\n{}",
        out.describe()
    );
}

/// `wisp run` on a bad manifest fails at start (does not serve, does not hang).
#[test]
fn run_refuses_bad_manifest() {
    let dir = TempDir::new();
    let p = dir.path().join("bad-run.toml");
    let m = Manifest::new(0)
        .set("usrloc", "min_expires", "\"sixty\"")
        .render();
    let line = line_of(&m, "sixty");
    fs::write(&p, &m).unwrap();
    let out = run_wisp(
        &[OsStr::new("run"), OsStr::new("--config"), p.as_os_str()],
        Duration::from_secs(10),
    );
    assert!(
        out.status.is_some(),
        "wisp run kept running on a bad manifest\n{}",
        out.describe()
    );
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr.contains("min_expires"),
        "stderr must name the key\n{}",
        out.describe()
    );
    assert!(
        names_line(&out.stderr, line),
        "stderr must name line {line}\n{}",
        out.describe()
    );
}
