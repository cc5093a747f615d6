//! Metrics (issue 18): after known traffic, `GET /metrics` and `wisp ctl
//! stats --json` show exactly the expected counts, and the endpoint answers
//! nothing but `GET /metrics`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use wisp_e2e::*;

/// A router with `[metrics]` on an ephemeral port, adjusted by `f`.
fn start_with_metrics(f: impl Fn(Manifest) -> Manifest) -> (Router, SocketAddr) {
    let router = Router::start_with(|m| {
        let mut m = f(m);
        m.extra.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
        m
    });
    let addr = metrics_addr(&router);
    (router, addr)
}

/// The address of `metrics on http://127.0.0.1:PORT/metrics` in the log.
fn metrics_addr(router: &Router) -> SocketAddr {
    let log = router.wait_for_log("the metrics address", RECV, |l| {
        l.contains("metrics on http://")
    });
    log.lines()
        .find_map(|l| l.split_once("metrics on http://"))
        .and_then(|(_, rest)| rest.split_once('/'))
        .and_then(|(addr, _)| addr.parse().ok())
        .unwrap_or_else(|| panic!("no metrics address in:\n{log}"))
}

/// One raw HTTP exchange: status code and body.
fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("send");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http(addr, b"GET /metrics HTTP/1.1\r\nHost: wisp\r\n\r\n");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample named exactly `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Scrape until every `(series, value)` holds (a reply may reach us a
/// moment before its counter is read), then check them exactly.
fn expect_metrics(addr: SocketAddr, expected: &[(&str, f64)]) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = scrape(addr);
        let wrong: Vec<String> = expected
            .iter()
            .filter(|(s, v)| sample(&text, s) != Some(*v))
            .map(|(s, v)| format!("{s}: expected {v}, got {:?}", sample(&text, s)))
            .collect();
        if wrong.is_empty() {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics differ:\n{}\n--- /metrics ---\n{text}",
            wrong.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stats_json(router: &Router) -> serde_json::Value {
    let out = router.ctl_ok(&["stats", "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("stats --json: {e}:\n{out}"))
}

fn options_ping(router: &Router, ua: &TestUa) {
    let req = ua.request("OPTIONS", &router.uri());
    let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
    let fin = fin.unwrap_or_else(|| panic!("no answer to OPTIONS; log:\n{}", router.log()));
    assert_eq!(fin.status(), Some(200));
}

#[test]
fn known_traffic_gives_exact_counts_on_the_endpoint_and_in_ctl_stats() {
    const PINGS: usize = 5;
    // The relayed transaction waits out its (long) wait timer while we look.
    let (router, metrics) = start_with_metrics(|mut m| {
        m.extra.push_str("\n[tm]\nwait_timer_ms = 60000\n");
        m
    });
    let caller = TestUa::new("carol");
    for _ in 0..PINGS {
        options_ping(&router, &caller);
    }
    let users = ["alice", "bob", "dave"];
    let uas: Vec<TestUa> = users.iter().map(|u| TestUa::new(u)).collect();
    for ua in &uas {
        ua.register(&router);
    }
    // One relayed request: an OPTIONS to alice goes to her contact through
    // a transaction, and her 200 comes back through the router.
    let req = caller.request("OPTIONS", &router.aor("alice"));
    caller.send_to(router.udp_addr(), &req.build());
    uas[0]
        .answer_next(200, "OK", RECV)
        .expect("the OPTIONS reaches alice");
    let (fin, _) = caller
        .recv_response_for(&req.call_id, RECV)
        .expect("alice's 200 is relayed");
    assert_eq!(fin.status(), Some(200));

    let n = |x: usize| x as f64;
    let text = expect_metrics(
        metrics,
        &[
            (
                "wisp_requests_received_total{method=\"OPTIONS\"}",
                n(PINGS + 1),
            ),
            ("wisp_requests_received_total{method=\"REGISTER\"}", 3.0),
            ("wisp_requests_received_total{method=\"INVITE\"}", 0.0),
            // Keepalive 200s and the REGISTERs' 200s, all made here.
            ("wisp_replies_sent_total{class=\"2xx\"}", n(PINGS + 3)),
            ("wisp_replies_sent_total{class=\"4xx\"}", 0.0),
            ("wisp_replies_relayed_total{class=\"2xx\"}", 1.0),
            ("wisp_replies_received_total{class=\"2xx\"}", 1.0),
            ("wisp_registers_accepted_total", 3.0),
            ("wisp_registers_refused_total", 0.0),
            ("wisp_usrloc_aors{table=\"location\"}", 3.0),
            ("wisp_usrloc_contacts{table=\"location\"}", 3.0),
            ("wisp_usrloc_contacts{table=\"aliases\"}", 0.0),
            ("wisp_transactions_created_total", 1.0),
            ("wisp_transactions_active", 1.0),
            ("wisp_transactions_waiting", 1.0),
            ("wisp_bad_messages_total", 0.0),
            ("wisp_requests_dropped_total", 0.0),
            ("wisp_retransmissions_absorbed_total", 0.0),
        ],
    );
    // One plugin build, called once per request.
    let calls: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("wisp_plugin_calls_total{plugin=\"default\""))
        .collect();
    assert_eq!(calls.len(), 1, "{text}");
    assert!(calls[0].ends_with(&format!(" {}", PINGS + 4)), "{text}");
    let histogram_count = text
        .lines()
        .find(|l| l.starts_with("wisp_plugin_call_duration_seconds_count{plugin=\"default\""))
        .unwrap_or_else(|| panic!("no call latency histogram:\n{text}"));
    assert!(
        histogram_count.ends_with(&format!(" {}", PINGS + 4)),
        "{text}"
    );

    // `wisp ctl stats --json` reads the same counters.
    let j = stats_json(&router);
    assert_eq!(j["requests_received"]["OPTIONS"], PINGS + 1, "{j}");
    assert_eq!(j["requests_received"]["REGISTER"], 3, "{j}");
    assert_eq!(j["replies_sent"]["2xx"], PINGS + 3, "{j}");
    assert_eq!(j["replies_relayed"]["2xx"], 1, "{j}");
    assert_eq!(j["registers_accepted"], 3, "{j}");
    assert_eq!(j["transactions_created"], 1, "{j}");
    assert_eq!(j["transactions_waiting"], 1, "{j}");
    let location = j["usrloc"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["table"] == "location"))
        .unwrap_or_else(|| panic!("no location table: {j}"));
    assert_eq!(location["contacts"], 3, "{j}");
    assert_eq!(j["plugins"][0]["plugin"], "default", "{j}");
    assert_eq!(j["plugins"][0]["calls"], PINGS + 4, "{j}");
    // And the table names them too.
    let table = router.ctl_ok(&["stats"]);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    assert_eq!(
        row("requests_received.OPTIONS"),
        Some((PINGS + 1).to_string()),
        "{table}"
    );
    assert_eq!(row("registers_accepted"), Some("3".into()), "{table}");
}

#[test]
fn a_failing_plugin_counts_its_traps_by_kind() {
    let (mut router, metrics) = start_with_metrics(|m| {
        m.set("plugin", "name", "\"faulty\"")
            .plugin_file(&plugin_path("faulty"))
            .set("plugin", "deadline_ms", "50")
            .set("plugin", "memory_mb", "8")
    });
    let ua = TestUa::new("alice");
    let kinds = ["ok", "panic", "loop", "alloc", "error", "ok"];
    for user in kinds {
        let req = ua.request("OPTIONS", &router.aor(user));
        let (_, fin) = ua.transact(router.udp_addr(), &req, RECV);
        let code = fin.and_then(|f| f.status());
        let want = if user == "ok" { 200 } else { 500 };
        assert_eq!(code, Some(want), "{user}; log:\n{}", router.log());
    }
    router.assert_alive();
    let text = expect_metrics(
        metrics,
        &[
            ("wisp_requests_received_total{method=\"OPTIONS\"}", 6.0),
            ("wisp_replies_sent_total{class=\"2xx\"}", 2.0),
            ("wisp_replies_sent_total{class=\"5xx\"}", 4.0),
        ],
    );
    let plugin = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{plugin=\"faulty\"")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name}:\n{text}"))
    };
    assert_eq!(plugin("wisp_plugin_calls_total"), 6, "{text}");
    // panic, loop (deadline) and alloc (memory) trap; `error` returns.
    assert_eq!(plugin("wisp_plugin_traps_total"), 3, "{text}");
    assert_eq!(plugin("wisp_plugin_deadline_exceeded_total"), 1, "{text}");
    assert_eq!(plugin("wisp_plugin_memory_exceeded_total"), 1, "{text}");
    let j = stats_json(&router);
    assert_eq!(j["plugins"][0]["traps"], 3, "{j}");
    assert_eq!(j["plugins"][0]["deadline_exceeded"], 1, "{j}");
    assert_eq!(j["plugins"][0]["memory_exceeded"], 1, "{j}");
}

#[test]
fn a_bad_message_is_counted() {
    let (router, metrics) = start_with_metrics(|m| m);
    let ua = TestUa::new("alice");
    // No CSeq: parses, fails the sanity check, answered 400.
    let req = ua.request("OPTIONS", &router.uri()).build();
    let text = String::from_utf8_lossy(&req)
        .lines()
        .filter(|l| !l.starts_with("CSeq"))
        .collect::<Vec<_>>()
        .join("\r\n");
    ua.send_to(router.udp_addr(), text.as_bytes());
    // Garbage that is no SIP at all.
    ua.send_to(router.udp_addr(), b"\x00\x01 not sip\r\n\r\n");
    expect_metrics(metrics, &[("wisp_bad_messages_total", 2.0)]);
}

#[test]
fn the_endpoint_answers_only_get_metrics() {
    let (router, metrics) = start_with_metrics(|m| m);
    assert_eq!(http(metrics, b"GET / HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(http(metrics, b"GET /metricsx HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(http(metrics, b"POST /metrics HTTP/1.1\r\n\r\n").0, 405);
    assert_eq!(http(metrics, b"hello\r\n\r\n").0, 400);
    // A head past the size limit is refused, not buffered without end.
    let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 64 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(http(metrics, &big).0, 400);
    // A client that sends nothing is cut off at the read deadline.
    let mut idle = TcpStream::connect(metrics).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = idle.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "an idle connection gets no answer");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "an idle connection is closed at the read deadline"
    );
    // And it still serves.
    assert!(scrape(metrics).contains("wisp_requests_received_total"));
    drop(router);
}

#[test]
fn ctl_stats_watch_asks_again() {
    let router = Router::start();
    let mut child = std::process::Command::new(wisp_bin())
        .args(["ctl", "--config"])
        .arg(router.manifest_path())
        .args(["stats", "--json", "--watch", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("wisp ctl stats --watch");
    std::thread::sleep(Duration::from_millis(3500));
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&out.stdout);
    let reports = text
        .lines()
        .filter(|l| l.starts_with("{\"requests_received\""))
        .count();
    assert!(
        reports >= 2,
        "--watch 1 for 3.5 s printed {reports}:\n{text}"
    );
}

#[test]
fn write_through_commits_and_their_latency_are_counted() {
    let (router, metrics) = start_with_metrics(|m| m.set("usrloc", "db_mode", "1"));
    let uas: Vec<TestUa> = ["alice", "bob", "dave"]
        .iter()
        .map(|u| TestUa::new(u))
        .collect();
    // Write-through: each 200 waits for the commit that holds its binding,
    // so three REGISTERs one after another are three commits.
    for ua in &uas {
        ua.register(&router);
    }
    let text = expect_metrics(
        metrics,
        &[
            ("wisp_store_commits_total", 3.0),
            ("wisp_store_commit_failures_total", 0.0),
            ("wisp_store_commit_duration_seconds_count", 3.0),
            ("wisp_store_writer_queue", 0.0),
            ("wisp_registers_accepted_total", 3.0),
        ],
    );
    let sum = sample(&text, "wisp_store_commit_duration_seconds_sum").unwrap_or(0.0);
    assert!(sum > 0.0, "commits take time:\n{text}");
}

#[test]
fn reloads_done_and_refused_are_counted() {
    let dir = TempDir::new();
    let file = dir.path().join("probe.wasm");
    std::fs::copy(plugin_path("reload_probe"), &file).expect("copy v1");
    let (router, metrics) = start_with_metrics(|m| {
        m.set("plugin", "name", "\"probe\"")
            .plugin_file(&file)
            .set("plugin", "watch", "false")
    });
    std::fs::copy(plugin_path("reload_probe_v2"), &file).expect("copy v2");
    router.ctl_ok(&["plugin", "reload", "probe"]);
    std::fs::write(&file, b"not a component").expect("write garbage");
    let _ = router.ctl(&["plugin", "reload", "probe"]);
    expect_metrics(
        metrics,
        &[
            ("wisp_plugin_reloads_total", 1.0),
            ("wisp_plugin_reloads_refused_total", 1.0),
        ],
    );
}

/// A TCP stream that cannot be framed (here: a request without
/// Content-Length, mandatory on a stream) is a bad message, like a datagram
/// that does not parse; the connection is closed.
#[test]
fn a_tcp_framing_error_is_a_bad_message() {
    let (router, metrics) = start_with_metrics(|m| m);
    let mut s = TcpStream::connect(router.tcp_addr()).expect("connect");
    s.set_read_timeout(Some(RECV)).expect("timeout");
    let local = s.local_addr().expect("local");
    let text = format!(
        "OPTIONS {} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-frame\r\n\
         From: <sip:a@{local}>;tag=1\r\nTo: <sip:b@{local}>\r\nCall-ID: frame@{local}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\r\n",
        router.uri()
    );
    s.write_all(text.as_bytes()).expect("send");
    let mut buf = [0u8; 512];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "closed, unanswered");
    expect_metrics(metrics, &[("wisp_bad_messages_total", 1.0)]);
    assert_eq!(stats_json(&router)["bad_messages"], 1);
}

/// DNS lookups are counted wherever a name is resolved: here by the
/// stateless `forward` of the pstn-gateway plugin (a non-INVITE to a user
/// that is not a number goes to the Request-URI's host), once for a name
/// that resolves and once for one that does not (answered 478).
#[test]
fn dns_lookups_of_a_stateless_forward_are_counted() {
    let (router, metrics) = start_with_metrics(|m| {
        m.plugin_file(&plugin_path("pstn_gateway"))
            .set("params", "gateway", "\"127.0.0.1:9\"")
    });
    let ua = TestUa::new("alice");
    let bob = TestUa::new("bob");
    let gone = ua.request("MESSAGE", "sip:bob@no-such-host.invalid");
    ua.send_to(router.udp_addr(), &gone.build());
    let (fin, _) = ua
        .recv_response_for(&gone.call_id, Duration::from_secs(30))
        .expect("a 478 for a name that does not resolve");
    assert_eq!(fin.status(), Some(478));
    let found = ua.request("MESSAGE", &format!("sip:bob@localhost:{}", bob.port()));
    ua.send_to(router.udp_addr(), &found.build());
    expect_metrics(
        metrics,
        &[
            ("wisp_dns_lookups_total", 2.0),
            ("wisp_dns_failures_total", 1.0),
        ],
    );
    let j = stats_json(&router);
    assert_eq!(
        (j["dns_lookups"].clone(), j["dns_failures"].clone()),
        (2.into(), 1.into()),
        "{j}"
    );
}
