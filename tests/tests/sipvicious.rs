//! SIPVicious (PyPI `sipvicious`, installed by `make test`) against
//! `plugins/registrar-auth`: `svwar` finds no extension, because an unknown
//! user gets exactly the challenge a known one gets, and `svcrack` with a
//! wordlist that lacks the password finds nothing. A control run of
//! `svcrack` whose range holds the password finds it, so these scans do
//! reach the router's digest check.
//!
//! SIPVicious 0.3 answers only MD5 and reads only the first challenge, so
//! the router offers MD5 first; it addresses `sip:<ext>@127.0.0.1` without
//! a port, so 127.0.0.1 is an alias.

use std::process::Command;
use std::time::Duration;

use wisp_e2e::*;

const T: Duration = Duration::from_secs(120);

fn start() -> Router {
    let router = Router::start_with(|m| {
        let mut m = m.plugin_file(&plugin_path("registrar_auth")).set(
            "server",
            "aliases",
            "[\"localhost\", \"127.0.0.1\"]",
        );
        m.extra
            .push_str("[auth]\nalgorithms = [\"MD5\", \"SHA-256\"]\n");
        m
    });
    for user in ["100", "101", "alice"] {
        router.ctl_ok(&["user", "add", &format!("{user}@127.0.0.1"), "1050"]);
    }
    router
}

fn run(tool: &str, router: &Router, args: &[&str]) -> (String, RunOutput) {
    let mut cmd = Command::new(installed_tool(tool, "sipvicious (pip)"));
    cmd.args(["-p", &router.udp_port().to_string()]);
    cmd.args(args);
    cmd.arg("127.0.0.1");
    let out = run_with_timeout(cmd, T);
    (format!("{}{}", out.stdout, out.stderr), out)
}

#[test]
fn svwar_finds_no_extension_by_register_or_invite() {
    let router = start();
    for method in ["REGISTER", "INVITE"] {
        let (all, out) = run(
            "sipvicious_svwar",
            &router,
            &["-e", "95-110", "-m", method, "--force"],
        );
        assert!(
            all.contains("found nothing"),
            "{method}\n{}",
            out.describe()
        );
        assert!(!all.contains("| Extension"), "{method}\n{}", out.describe());
    }
}

#[test]
fn svcrack_without_the_password_in_its_list_finds_nothing() {
    let router = start();
    let (all, out) = run(
        "sipvicious_svcrack",
        &router,
        &["-u", "100", "-r", "1000-1040"],
    );
    assert!(all.contains("found nothing"), "{}", out.describe());
    assert!(!all.contains("1050"), "{}", out.describe());
    // Control: with the password in range, the same scan finds it.
    let (all, out) = run(
        "sipvicious_svcrack",
        &router,
        &["-u", "100", "-r", "1045-1055"],
    );
    assert!(
        all.contains("| 100 ") && all.contains("1050"),
        "{}",
        out.describe()
    );
}
