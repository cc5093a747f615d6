//! wisp-bench: a small, fast UDP SIP load generator (OPTIONS / REGISTER / calls), bounded in
//! count and time, loopback targets only. See `wisp-bench --help`.

mod calls;
mod dialog;
mod digest;
mod engine;
mod request;
mod response;
mod stream;
mod uas;

use std::fmt::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

use engine::{Config, Summary, is_loopback};
use request::Method;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TransportArg {
    Udp,
    /// Over TCP connections (see --connections, --handshakes).
    Tcp,
    /// Over TLS connections (see --connections, --handshakes, --ca).
    Tls,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum MethodArg {
    Options,
    Register,
    /// INVITE -> 200 -> ACK -> BYE -> 200 per call (counts are calls).
    Call,
}

/// UDP SIP load generator (sipp-lite). Sends OPTIONS or REGISTER to a loopback target,
/// matches final responses by Call-ID (or Via branch) and reports throughput and latency.
/// `--method call` makes calls instead: INVITE, then ACK and BYE within the dialog
/// (Route = the 200's Record-Route set); a call succeeds when the BYE is answered
/// `--expect`, and `--count`, `--window`, `--rate` and `--timeout-ms` (per step) apply to calls.
#[derive(Parser, Debug)]
#[command(name = "wisp-bench", version, about, long_about = None)]
struct Args {
    /// Target host:port; must be a loopback address (127.0.0.0/8 or ::1).
    #[arg(long)]
    target: String,
    /// Local address to bind (default 127.0.0.1:0, or [::1]:0 for an IPv6 target).
    #[arg(long)]
    bind: Option<SocketAddr>,
    #[arg(long, value_enum, default_value = "options")]
    method: MethodArg,
    /// Requests/s, open loop (paced by time). 0 or absent = closed loop.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Closed loop: requests outstanding at any time.
    #[arg(long, default_value_t = 64)]
    window: u64,
    /// Total requests to send.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Stop sending after this many seconds (whichever of count/duration comes first).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// A request without final answer after this is counted lost; also the longest
    /// wait for stragglers at the end.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Request-URI (default sip:<target>). REGISTER AORs are sip:user<N>@<host of this URI>;
    /// `{user}` in it becomes the user index (e.g. `sip:user{user}@127.0.0.1 --users 1000`:
    /// lookups of the AORs a REGISTER run made).
    #[arg(long)]
    uri: Option<String>,
    /// REGISTER: number of distinct AORs cycled (default = count, i.e. all unique).
    #[arg(long)]
    users: Option<u64>,
    /// Final status code counted as success; other final codes count as failed.
    #[arg(long, default_value_t = 200)]
    expect: u16,
    /// Retransmit unanswered requests per RFC 3261 timer E (T1=500 ms, doubling to T2=4 s).
    #[arg(long)]
    retransmit: bool,
    /// REGISTER: answer each 401/407 once with digest credentials (MD5,
    /// SHA-256 or SHA-512-256, qop=auth when offered) of `user<N>` and this
    /// password; the retry's final answer ends the registration.
    #[arg(long)]
    password: Option<String>,
    /// Also run a stateless UAS on this loopback address that answers every
    /// request but ACK 200 (an INVITE's with Contact and Record-Route), for relay benchmarks: point `--uri` at it and the router
    /// under test relays to it (e.g. `--uas 127.0.0.1:5090 --uri sip:uas@127.0.0.1:5090`).
    #[arg(long)]
    uas: Option<String>,
    /// Print one JSON object with the summary on stdout instead of the human report.
    #[arg(long)]
    json: bool,
    /// `tcp` / `tls`: OPTIONS or REGISTER over connections instead of UDP
    /// datagrams (closed loop; no --rate, --retransmit, --password or calls).
    #[arg(long, value_enum, default_value = "udp")]
    transport: TransportArg,
    /// TCP/TLS: long-lived connections sharing the window (each holds
    /// window / connections requests outstanding, at least one).
    #[arg(long, default_value_t = 100)]
    connections: u64,
    /// TCP/TLS: a new connection (TCP connect, TLS handshake, request, answer,
    /// close) for every request, --window of them at a time: measures
    /// handshakes per second.
    #[arg(long)]
    handshakes: bool,
    /// TLS: PEM file of the CA that issued the server's certificate (its
    /// name is checked against the target's IP address).
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
}

/// The load over connections, or an error naming the option that does not fit.
fn stream_load(a: &Args) -> Result<Option<stream::StreamLoad>> {
    if a.transport == TransportArg::Udp {
        if a.handshakes || a.ca.is_some() {
            bail!("--handshakes and --ca need --transport tcp or tls");
        }
        return Ok(None);
    }
    if matches!(a.method, MethodArg::Call)
        || a.password.is_some()
        || a.retransmit
        || a.uas.is_some()
    {
        bail!(
            "--transport tcp|tls sends OPTIONS or REGISTER only (no calls, --password, --retransmit or --uas)"
        );
    }
    let ca = match (a.transport, a.ca.clone()) {
        (TransportArg::Tls, None) => {
            bail!("--transport tls needs --ca FILE (the CA of the server's certificate)")
        }
        (TransportArg::Tls, ca) => ca,
        (_, Some(_)) => bail!("--ca needs --transport tls"),
        (_, None) => None,
    };
    Ok(Some(stream::StreamLoad {
        connections: a.connections,
        handshakes: a.handshakes,
        ca,
    }))
}

fn resolve_target(s: &str) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .with_context(|| format!("invalid --target {s:?} (expected host:port)"))?
        .collect();
    let Some(first) = addrs.first().copied() else {
        bail!("--target {s:?} resolves to no address");
    };
    if let Some(bad) = addrs.iter().find(|a| !is_loopback(a.ip())) {
        bail!(
            "refusing target {s} ({bad}): wisp-bench only sends to loopback addresses (127.0.0.0/8, ::1)"
        );
    }
    Ok(first)
}

fn config(a: &Args) -> Result<Config> {
    let target = resolve_target(&a.target)?;
    if !(a.duration.is_finite() && a.duration >= 0.0) {
        bail!("--duration must be a non-negative number of seconds");
    }
    if a.expect < 100 || a.expect > 699 {
        bail!("--expect must be a SIP status code (100..=699)");
    }
    let bind = a.bind.unwrap_or_else(|| {
        if target.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        }
        .parse()
        .unwrap()
    });
    Ok(Config {
        target,
        bind,
        method: match a.method {
            MethodArg::Options => Method::Options,
            MethodArg::Register => Method::Register,
            MethodArg::Call => Method::Invite,
        },
        rate: a.rate,
        window: a.window,
        count: a.count,
        duration: Duration::from_secs_f64(a.duration),
        timeout: Duration::from_millis(a.timeout_ms),
        uri: a.uri.clone().unwrap_or_else(|| format!("sip:{target}")),
        users: a.users.unwrap_or(a.count.max(1)),
        expect: a.expect,
        retransmit: a.retransmit,
        password: a.password.clone(),
    })
}

fn pct(s: &Summary, q: f64) -> u64 {
    if s.hist.is_empty() {
        0
    } else {
        s.hist.value_at_quantile(q)
    }
}

fn is_call(s: &Summary) -> bool {
    s.method == Method::Invite
}

fn mode(s: &Summary) -> String {
    if s.rate > 0 {
        format!("open loop, {} req/s", s.rate)
    } else {
        format!("closed loop, window {}", s.window)
    }
}

fn human(s: &Summary) -> String {
    let mut o = String::new();
    let codes: Vec<String> = s
        .failed_by_code
        .iter()
        .map(|(c, n)| format!("{c}: {n}"))
        .collect();
    let _ = writeln!(
        o,
        "wisp-bench: {} {} -> {} ({})",
        if is_call(s) {
            "calls (INVITE, ACK, BYE)"
        } else {
            s.method.as_str()
        },
        s.local,
        s.target,
        mode(s)
    );
    let _ = writeln!(
        o,
        "  sent        {:>10}   (retransmissions {}, send errors {})",
        s.sent, s.retransmissions, s.send_errors
    );
    let _ = writeln!(
        o,
        "  answered    {:>10}   (final responses; 1xx ignored: {})",
        s.answered, s.provisional
    );
    let _ = writeln!(
        o,
        "  succeeded   {:>10}   (status {})",
        s.succeeded, s.expect
    );
    let _ = writeln!(
        o,
        "  failed      {:>10}   {}",
        s.failed,
        if codes.is_empty() {
            String::new()
        } else {
            format!("[{}]", codes.join(", "))
        }
    );
    let _ = writeln!(
        o,
        "  lost        {:>10}   (no final response within {} ms)",
        s.lost,
        s.timeout.as_millis()
    );
    let _ = writeln!(
        o,
        "  unmatched   {:>10}   (stale/duplicate responses: {})",
        s.unmatched, s.stale
    );
    let _ = writeln!(
        o,
        "  elapsed     {:>10.3} s (wall {:.3} s)",
        s.elapsed.as_secs_f64(),
        s.wall.as_secs_f64()
    );
    if is_call(s) {
        let _ = writeln!(
            o,
            "  in dialog   {:>10}   ACKs, {} BYEs sent; 2xx without dialog: {}",
            s.acks, s.byes, s.unusable_2xx
        );
        let _ = writeln!(
            o,
            "  throughput  {:>10.0} calls/s ({:.0} transactions/s: INVITE + BYE, ACKs aside)",
            s.throughput(),
            s.transactions_per_s()
        );
    } else {
        let _ = writeln!(o, "  throughput  {:>10.0} answered/s", s.throughput());
    }
    let _ = writeln!(
        o,
        "  {} µs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        if is_call(s) {
            "call latency"
        } else {
            "latency"
        },
        pct(s, 0.5),
        pct(s, 0.9),
        pct(s, 0.99),
        pct(s, 0.999),
        s.hist.max()
    );
    o
}

fn json(s: &Summary) -> String {
    let codes: Vec<String> = s
        .failed_by_code
        .iter()
        .map(|(c, n)| format!("\"{c}\":{n}"))
        .collect();
    format!(
        concat!(
            "{{\"method\":\"{}\",\"target\":\"{}\",\"local\":\"{}\",\"mode\":\"{}\",\"rate\":{},\"window\":{},",
            "\"expect\":{},\"timeout_ms\":{},\"sent\":{},\"retransmissions\":{},\"send_errors\":{},",
            "\"answered\":{},\"succeeded\":{},\"failed\":{},\"failed_by_code\":{{{}}},\"lost\":{},",
            "\"unmatched\":{},\"stale\":{},\"provisional\":{},\"elapsed_s\":{:.6},\"wall_s\":{:.6},",
            "\"throughput\":{:.1},\"transactions\":{},\"transactions_per_s\":{:.1},",
            "\"acks\":{},\"byes\":{},\"unusable_2xx\":{},\"latency_us\":{{\"min\":{},\"mean\":{:.1},\"p50\":{},\"p90\":{},\"p99\":{},",
            "\"p999\":{},\"max\":{}}},\"rcvbuf\":{},\"sndbuf\":{}}}"
        ),
        if is_call(s) {
            "CALL"
        } else {
            s.method.as_str()
        },
        s.target,
        s.local,
        if s.rate > 0 { "open" } else { "closed" },
        s.rate,
        s.window,
        s.expect,
        s.timeout.as_millis(),
        s.sent,
        s.retransmissions,
        s.send_errors,
        s.answered,
        s.succeeded,
        s.failed,
        codes.join(","),
        s.lost,
        s.unmatched,
        s.stale,
        s.provisional,
        s.elapsed.as_secs_f64(),
        s.wall.as_secs_f64(),
        s.throughput(),
        s.transactions,
        s.transactions_per_s(),
        s.acks,
        s.byes,
        s.unusable_2xx,
        if s.hist.is_empty() { 0 } else { s.hist.min() },
        if s.hist.is_empty() {
            0.0
        } else {
            s.hist.mean()
        },
        pct(s, 0.5),
        pct(s, 0.9),
        pct(s, 0.99),
        pct(s, 0.999),
        s.hist.max(),
        s.rcvbuf,
        s.sndbuf,
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    // The UAS lives until the load run ends.
    let uas = match args.uas.as_deref().map(resolve_target).transpose() {
        Ok(addr) => match addr.map(uas::Uas::start).transpose() {
            Ok(u) => u,
            Err(e) => {
                eprintln!("wisp-bench: error: {e:#}");
                return ExitCode::from(2);
            }
        },
        Err(e) => {
            eprintln!("wisp-bench: error: --uas: {e:#}");
            return ExitCode::from(2);
        }
    };
    let result = config(&args).and_then(|c| match stream_load(&args)? {
        Some(load) => stream::run(&c, &load),
        None => engine::run(&c),
    });
    if let Some(u) = &uas {
        eprintln!("wisp-bench: UAS answered {}", u.answered());
    }
    match result {
        Ok(s) => {
            if args.json {
                println!("{}", json(&s));
            } else {
                print!("{}", human(&s));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wisp-bench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tests::{Responder, cfg};

    #[test]
    fn target_must_be_loopback() {
        assert!(resolve_target("127.0.0.1:5060").is_ok());
        assert!(resolve_target("[::1]:5060").is_ok());
        assert!(resolve_target("localhost:5060").is_ok());
        let e = resolve_target("10.1.2.3:5060").unwrap_err().to_string();
        assert!(e.contains("loopback"), "{e}");
        assert!(resolve_target("127.0.0.1").is_err());
    }

    #[test]
    fn cli_defaults() {
        let a = Args::parse_from([
            "wisp-bench",
            "--target",
            "127.0.0.1:5070",
            "--method",
            "register",
        ]);
        let c = config(&a).unwrap();
        assert_eq!(c.uri, "sip:127.0.0.1:5070");
        assert_eq!(c.users, 10_000);
        assert_eq!(c.window, 64);
        assert_eq!(c.rate, 0);
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.duration, Duration::from_secs(30));
        assert_eq!(c.bind, "127.0.0.1:0".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn json_summary_shape() {
        let r = Responder::start(|n| if n == 3 { vec![503] } else { vec![200] });
        let s = engine::run(&cfg(r.addr, 10)).unwrap();
        r.stop();
        let j = json(&s);
        assert!(j.starts_with('{') && j.ends_with('}'));
        assert!(j.contains("\"sent\":10,"), "{j}");
        assert!(j.contains("\"answered\":10,"), "{j}");
        assert!(j.contains("\"succeeded\":9,"), "{j}");
        assert!(j.contains("\"failed_by_code\":{\"503\":1}"), "{j}");
        assert!(j.contains("\"lost\":0,"), "{j}");
        assert!(human(&s).contains("[503: 1]"));
    }
}
