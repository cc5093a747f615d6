//! What an operator sees of a running router (issue 18): the `Warning`
//! header of `server.sip_warning`, the log's Call-IDs, `wisp ctl ps`.

use wisp_e2e::*;

/// The `Warning` values of `m`.
fn warnings(m: &wisp_sip::Message) -> Vec<String> {
    m.header_values("Warning")
        .map(|v| String::from_utf8_lossy(v).trim().to_string())
        .collect()
}

/// Seed 003 "Tracing Errors in Server Chains": with `sip_warning` on, the
/// 404 the router answers itself says which router (listen address, pid)
/// answered which request (source, Request-URI in and out, Via count).
#[test]
fn sip_warning_names_the_router_and_the_request_in_a_local_404() {
    let router = Router::start_with(|m| m.set("server", "sip_warning", "true"));
    let a = TestUa::new("alice");
    let ruri = router.aor("nobody");
    let inv = a.request("INVITE", &ruri);
    let (_, fin) = a.transact(router.udp_addr(), &inv, RECV);
    let fin = fin.expect("no answer to INVITE for an unknown user");
    assert_eq!(fin.status(), Some(404), "{}", text(&fin));
    let pid = router.pid().expect("router runs");
    let expected = format!(
        "392 {} \"Noisy feedback tells: pid={pid} req_src_ip={} req_src_port={} \
         in_uri={ruri} out_uri={ruri} via_cnt=1\"",
        router.udp_addr(),
        a.addr().ip(),
        a.addr().port(),
    );
    assert_eq!(warnings(&fin), vec![expected], "{}", text(&fin));

    // The sanity check's 400 carries it too: the request never reached a
    // plugin.
    let bad = a.request("OPTIONS", &router.uri()).cseq_raw("x OPTIONS");
    let (_, fin) = a.transact(router.udp_addr(), &bad, RECV);
    let fin = fin.expect("no answer to a broken CSeq");
    assert_eq!(fin.status(), Some(400), "{}", text(&fin));
    let w = warnings(&fin);
    assert_eq!(w.len(), 1, "{}", text(&fin));
    assert!(
        w[0].starts_with(&format!("392 {} ", router.udp_addr())),
        "{w:?}"
    );
    assert!(w[0].contains(&format!("pid={pid} ")), "{w:?}");
}

#[test]
fn no_warning_unless_the_manifest_asks() {
    let router = Router::start();
    let a = TestUa::new("alice");
    let inv = a.request("INVITE", &router.aor("nobody"));
    let (_, fin) = a.transact(router.udp_addr(), &inv, RECV);
    let fin = fin.expect("no answer to INVITE for an unknown user");
    assert_eq!(fin.status(), Some(404), "{}", text(&fin));
    assert!(warnings(&fin).is_empty(), "{}", text(&fin));
}

/// The SER forward-on-unavailable plugin: `first` busy sends the call to
/// `second` from failure route 1, which logs "first redirection".
fn forward_on_unavailable(first: &TestUa, second: &TestUa) -> impl Fn(Manifest) -> Manifest {
    let (f, s) = (first.contact(), second.contact());
    move |m: Manifest| {
        m.plugin_file(&plugin_path("forward_on_unavailable"))
            .set("plugin", "name", "\"forward-on-unavailable\"")
            .set("params", "first", &format!("\"{f}\""))
            .set("params", "second", &format!("\"{s}\""))
            .set("params", "last", &format!("\"{s}\""))
    }
}

/// An INVITE relayed to a busy callee, whose failure route relays it again
/// and logs; the call's Call-ID.
fn relay_through_failure_route(router: &Router, busy: &TestUa, second: &TestUa) -> String {
    let a = TestUa::new("alice");
    let inv = a.request("INVITE", &router.aor("bob"));
    a.send_to(router.udp_addr(), &inv.build());
    let (req, src) = busy.expect_request(wisp_sip::Method::Invite);
    busy.reply(&req, src, 486, "Busy Here", "busytag");
    let (req, src) = second.expect_request(wisp_sip::Method::Invite);
    second.reply(&req, src, 200, "OK", "secondtag");
    let (resp, _) = a.recv_answer_for(&inv.call_id, RECV).expect("no answer");
    assert_eq!(resp.status(), Some(200), "{}", text(&resp));
    inv.call_id
}

/// Issue 18: a log line about a relayed request names its Call-ID (and the
/// plugin's name and build), here the failure route's own log line.
#[test]
fn a_plugin_log_line_about_a_relayed_request_names_its_call_id() {
    let (busy, second) = (TestUa::new("busy"), TestUa::new("second"));
    let router = Router::start_with(forward_on_unavailable(&busy, &second));
    let call_id = relay_through_failure_route(&router, &busy, &second);
    let log = router.log();
    let line = log
        .lines()
        .find(|l| l.contains("first redirection"))
        .unwrap_or_else(|| panic!("no failure route line:\n{log}"));
    assert!(line.contains(&format!("call_id={call_id}")), "{line}");
    assert!(line.contains("plugin=\"forward-on-unavailable\""), "{line}");
    assert!(line.contains("version="), "{line}");
    // The route's own line too, from the request route.
    let route = log
        .lines()
        .find(|l| l.contains("route INVITE"))
        .unwrap_or_else(|| panic!("no route line:\n{log}"));
    assert!(route.contains(&format!("call_id={call_id}")), "{route}");
}

/// `server.log_format = "json"`: one JSON object a line, the Call-ID a
/// field of the plugin's line.
#[test]
fn json_log_lines_carry_the_call_id_as_a_field() {
    let (busy, second) = (TestUa::new("busy"), TestUa::new("second"));
    let router = Router::start_with(|m| {
        forward_on_unavailable(&busy, &second)(m).set("server", "log_format", "\"json\"")
    });
    let call_id = relay_through_failure_route(&router, &busy, &second);
    let log = router.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let line = lines
        .iter()
        .find(|l| l["fields"]["message"] == "first redirection")
        .unwrap_or_else(|| panic!("no failure route line:\n{log}"));
    assert_eq!(line["fields"]["call_id"], call_id.as_str(), "{line}");
    assert_eq!(line["fields"]["plugin"], "forward-on-unavailable", "{line}");
    assert_eq!(line["level"], "INFO", "{line}");
}

/// `wisp ctl ps` (kamcmd `core.psx`): the receive workers and the sockets
/// they serve, the timers, the background threads and the plugin build
/// with the instances its pool holds, as a table and as JSON.
#[test]
fn ctl_ps_lists_workers_listeners_timers_threads_and_plugin_builds() {
    let router = Router::start_with(|m| m.set("server", "workers", "1"));
    // One request, so the plugin's pool holds an instance.
    let a = TestUa::new("alice");
    let opt = a.request("OPTIONS", &router.uri());
    let (_, fin) = a.transact(router.udp_addr(), &opt, RECV);
    assert_eq!(fin.and_then(|m| m.status()), Some(200));

    let ps: serde_json::Value =
        serde_json::from_str(&router.ctl_ok(&["ps", "--json"])).expect("ps --json is JSON");
    assert_eq!(ps["pid"], router.pid().expect("runs"), "{ps}");
    assert_eq!(ps["workers"], 1, "{ps}");
    let listeners: Vec<(String, u64)> = ps["listeners"]
        .as_array()
        .expect("listeners")
        .iter()
        .map(|l| {
            let tasks = l["tasks"].as_u64().expect("tasks");
            (l["address"].as_str().expect("address").to_owned(), tasks)
        })
        .collect();
    assert_eq!(
        listeners,
        vec![
            (format!("udp:{}", router.udp_addr()), 1),
            (format!("tcp:{}", router.tcp_addr()), 1)
        ],
        "{ps}"
    );
    let timers: Vec<&str> = ps["timers"]
        .as_array()
        .expect("timers")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(timers, ["tm", "usrloc purge", "pike sweep"], "{ps}");
    let store = ps["threads"]
        .as_array()
        .expect("threads")
        .iter()
        .find(|t| t["name"] == "store writer")
        .unwrap_or_else(|| panic!("no store writer: {ps}"));
    assert!(store["detail"].is_string(), "{ps}");
    let plugins = ps["plugins"].as_array().expect("plugins");
    assert_eq!(plugins.len(), 1, "{ps}");
    assert_eq!(plugins[0]["name"], "default", "{ps}");
    let build = &plugins[0]["builds"][0];
    assert_eq!(build["serving"], true, "{ps}");
    assert!(build["instances"].as_u64() >= Some(1), "{ps}");
    // The build is the one `plugin list` names.
    let hash = build["build"].as_str().expect("build").to_owned();
    assert!(router.ctl_ok(&["plugin", "list"]).contains(&hash));

    let table = router.ctl_ok(&["ps"]);
    assert!(
        table.contains(&format!("pid={} ", router.pid().expect("runs"))),
        "{table}"
    );
    assert!(
        table.contains(&format!("listener  udp:{}", router.udp_addr())),
        "{table}"
    );
    assert!(
        table.contains(&format!("plugin    default {hash} serving")),
        "{table}"
    );
}

/// `contrib/grafana-wisp.json` graphs only metrics `/metrics` serves: every
/// `wisp_*` name in its queries is a sample name of a scrape taken after a
/// plugin call and a REGISTER (so the histograms and the per-table gauges
/// have series).
#[test]
fn the_grafana_dashboard_queries_only_metrics_the_endpoint_serves() {
    use std::io::{Read, Write};
    let router = Router::start_with(|mut m| {
        m.extra.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
        m
    });
    let a = TestUa::new("alice");
    a.register(&router);
    let log = router.wait_for_log("the metrics address", RECV, |l| {
        l.contains("metrics on http://")
    });
    let addr: std::net::SocketAddr = log
        .lines()
        .find_map(|l| l.split_once("metrics on http://"))
        .and_then(|(_, rest)| rest.split_once('/'))
        .and_then(|(addr, _)| addr.parse().ok())
        .unwrap_or_else(|| panic!("no metrics address in:\n{log}"));
    let mut s = std::net::TcpStream::connect(addr).expect("connect to metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: wisp\r\n\r\n")
        .expect("send");
    let mut scrape = String::new();
    let _ = s.read_to_string(&mut scrape);
    let served: std::collections::BTreeSet<&str> = scrape
        .lines()
        .filter(|l| l.starts_with("wisp_"))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();

    let path = repo_root().join("contrib/grafana-wisp.json");
    let text = std::fs::read_to_string(&path).expect("contrib/grafana-wisp.json");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut queried = std::collections::BTreeSet::new();
    let mut exprs = Vec::new();
    fn walk<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr" | "definition", serde_json::Value::String(s)) => out.push(s),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&dashboard, &mut exprs);
    for e in &exprs {
        let mut rest = *e;
        while let Some(at) = rest.find("wisp_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            queried.insert(name);
        }
    }
    assert!(queried.len() >= 20, "{queried:?}");
    let missing: Vec<&String> = queried
        .iter()
        .filter(|n| !served.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /metrics does not serve: {missing:?}\n--- /metrics ---\n{scrape}"
    );
}

/// Issue 18: the registrar's log lines name the REGISTER they are about
/// (Call-ID and method), like the transaction layer's: here a REGISTER
/// refused with 423 (`brief_expires = "reject"`), at log level debug.
#[test]
fn a_registrar_log_line_names_the_register_it_is_about() {
    let router = Router::start_with(|m| {
        m.set("usrloc", "brief_expires", "\"reject\"")
            .set("server", "log_level", "\"debug\"")
    });
    let ua = TestUa::new("alice");
    let req = ua
        .request("REGISTER", &router.uri())
        .from(&router.aor("alice"))
        .to(&router.aor("alice"))
        .contact(Some(&ua.contact()))
        .expires(10);
    let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
    let fin = fin.unwrap_or_else(|| panic!("no answer; log:\n{}", router.log()));
    assert_eq!(fin.status(), Some(423), "{}", text(&fin));
    let log = router.log();
    let line = log
        .lines()
        .find(|l| l.contains("save: REGISTER refused"))
        .unwrap_or_else(|| panic!("no refusal line:\n{log}"));
    assert!(line.contains(&format!("call_id={}", req.call_id)), "{line}");
    assert!(line.contains("method=REGISTER"), "{line}");
    assert!(line.contains("code=423"), "{line}");
}
