//! `wisp ctl` against the running router: `ul add` makes a contact that
//! `lookup` uses, a permanent one survives a crash and restart, `ul show`
//! lists it, `ul rm` removes it.

use std::ffi::OsStr;
use std::time::Duration;

use wisp_e2e::*;

/// `wisp ctl --config <router's manifest> <args…>`.
fn ctl(router: &Router, args: &[&str]) -> RunOutput {
    let mut all: Vec<&OsStr> = vec![
        OsStr::new("ctl"),
        OsStr::new("--config"),
        router.manifest_path().as_os_str(),
    ];
    all.extend(args.iter().map(OsStr::new));
    run_wisp(&all, Duration::from_secs(20))
}

fn ctl_ok(router: &Router, args: &[&str]) -> String {
    let out = ctl(router, args);
    assert!(
        out.success(),
        "wisp ctl {args:?} failed:\n{}",
        out.describe()
    );
    out.stdout
}

/// A request to `user`'s AOR from `caller`: whether `callee` receives it.
fn reaches(router: &Router, caller: &TestUa, user: &str, callee: &TestUa) -> bool {
    let req = caller.request("OPTIONS", &router.aor(user));
    caller.send_to(router.udp_addr(), &req.build());
    let got = callee.answer_next(200, "OK", RECV).is_some();
    let _ = caller.recv_response_for(&req.call_id, RECV);
    got
}

/// The final status a request to `user`'s AOR gets.
fn status_of_request_to(router: &Router, caller: &TestUa, user: &str) -> Option<u16> {
    let req = caller.request("OPTIONS", &router.aor(user));
    let (_, fin) = caller.transact(router.udp_addr(), &req, RECV);
    fin.and_then(|m| m.status())
}

#[test]
fn ul_add_permanent_contact_is_used_by_lookup_and_survives_a_restart() {
    let mut router = Router::start_with(|m| m.set("usrloc", "db_mode", "1"));
    let callee = TestUa::new("perm");
    let caller = TestUa::new("caller");
    let contact = callee.contact();

    let out = ctl_ok(&router, &["ul", "add", "perm", &contact]);
    assert!(out.contains("added"), "{out}");
    assert!(
        reaches(&router, &caller, "perm", &callee),
        "lookup uses the contact added by ctl"
    );
    let shown = ctl_ok(&router, &["ul", "show", "perm"]);
    assert!(
        shown.contains(&contact) && shown.contains("expires=permanent"),
        "{shown}"
    );

    router.kill_hard();
    router.restart();
    assert!(
        reaches(&router, &caller, "perm", &callee),
        "the permanent contact survived SIGKILL and restart"
    );
    let shown = ctl_ok(&router, &["ul", "show"]);
    assert!(shown.contains(&contact), "{shown}");

    let out = ctl_ok(&router, &["ul", "rm", "perm"]);
    assert!(out.contains("1 binding(s) removed"), "{out}");
    assert_eq!(status_of_request_to(&router, &caller, "perm"), Some(404));
    router.kill_hard();
    router.restart();
    assert_eq!(
        status_of_request_to(&router, &caller, "perm"),
        Some(404),
        "the removal was stored too"
    );
}

#[test]
fn ul_add_with_expires_and_errors_reach_the_operator() {
    let router = Router::start();
    let callee = TestUa::new("temp");
    let contact = callee.contact();
    ctl_ok(
        &router,
        &[
            "ul",
            "add",
            "sip:temp@example.com",
            &contact,
            "--expires",
            "120",
        ],
    );
    let shown = ctl_ok(&router, &["ul", "show", "temp"]);
    let line = shown
        .lines()
        .find(|l| l.contains(&contact))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(
        line.contains("expires=120") || line.contains("expires=119"),
        "{line}"
    );

    // A usage error is the router's clap message, naming the valid commands.
    let out = ctl(&router, &["ul", "frob"]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("unrecognized subcommand 'frob'")
            && out.stderr.contains("wisp ctl ul <show|add|rm>"),
        "{}",
        out.describe()
    );
    let out = ctl(&router, &["ul", "rm", "nobody"]);
    assert!(!out.success());
    assert!(
        out.stderr.contains("nobody: no bindings"),
        "{}",
        out.describe()
    );
    let out = ctl(&router, &["ul", "show", "--table", "nope"]);
    assert!(!out.success());
    assert!(out.stderr.contains("no usrloc table"), "{}", out.describe());
}

#[test]
fn ctl_without_a_running_router_says_so() {
    let dir = TempDir::new();
    let out = run_wisp(
        &[
            OsStr::new("ctl"),
            OsStr::new("--socket"),
            dir.path().join("none.ctl").as_os_str(),
            OsStr::new("ul"),
            OsStr::new("show"),
        ],
        Duration::from_secs(10),
    );
    assert!(!out.success());
    assert!(out.stderr.contains("is it running?"), "{}", out.describe());
}

#[test]
fn alias_add_makes_requests_to_the_alias_reach_the_canonical_user() {
    let mut router = Router::start_with(|m| m.set("usrloc", "db_mode", "1"));
    let john = TestUa::new("john.doe");
    let caller = TestUa::new("caller");
    john.register(&router);
    let canonical = router.aor("john.doe");

    let out = ctl_ok(&router, &["alias", "add", "1234", &canonical]);
    assert!(out.contains("added"), "{out}");
    assert!(
        reaches(&router, &caller, "1234", &john),
        "lookup(\"aliases\") rewrote 1234 to john.doe"
    );
    let shown = ctl_ok(&router, &["alias", "show"]);
    assert_eq!(shown.trim(), format!("1234 -> {canonical}"));

    router.kill_hard();
    router.restart();
    assert!(
        reaches(&router, &caller, "1234", &john),
        "the alias survived the restart"
    );

    ctl_ok(&router, &["alias", "rm", "1234"]);
    assert_eq!(status_of_request_to(&router, &caller, "1234"), Some(404));
    let out = ctl(&router, &["alias", "show", "1234"]);
    assert!(!out.success(), "{}", out.describe());
}

#[test]
fn ctl_listen_names_the_sockets_the_router_bound() {
    let router = Router::start();
    let out = ctl_ok(&router, &["listen"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            format!("tcp:127.0.0.1:{}", router.tcp_port()),
            format!("udp:127.0.0.1:{}", router.udp_port()),
        ],
        "{out}"
    );
    let log = router.log();
    assert!(
        log.contains(&format!("listening on udp:127.0.0.1:{}", router.udp_port())),
        "{log}"
    );
}

#[test]
fn a_permanent_contact_survives_an_unauthenticated_star_register() {
    let router = Router::start();
    let callee = TestUa::new("perm");
    let caller = TestUa::new("caller");
    let stranger = TestUa::new("perm");
    ctl_ok(
        &router,
        &["ul", "add", "perm", &callee.contact(), "permanent"],
    );
    // Anyone may REGISTER this AOR (the default plugin authenticates no
    // one): their own contact comes and goes, the operator's stays.
    stranger.register(&router);
    let register = |req: RequestBuilder| {
        let (_, fin) = stranger.transact(router.udp_addr(), &req, RECV);
        fin.and_then(|m| m.status())
    };
    let base = || {
        stranger
            .request("REGISTER", &router.uri())
            .from(&router.aor("perm"))
            .to(&router.aor("perm"))
    };
    assert_eq!(
        register(base().contact(Some(&callee.contact())).expires(0)),
        Some(200)
    );
    assert_eq!(
        register(base().contact(None).header("Contact", "*").expires(0)),
        Some(200)
    );
    let shown = ctl_ok(&router, &["ul", "show", "perm"]);
    assert!(
        shown.contains(&callee.contact()) && shown.contains("expires=permanent"),
        "{shown}"
    );
    assert!(
        !shown.contains(&stranger.contact()),
        "Contact: * removed the registered contact: {shown}"
    );
    assert!(
        reaches(&router, &caller, "perm", &callee),
        "lookup still finds the permanent contact"
    );
}
