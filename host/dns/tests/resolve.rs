//! RFC 3263 resolution against a DNS server running inside the test
//! (tests/support), plus the cases that need no DNS at all. Nothing leaves
//! the machine.

mod support;

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::rr::RecordType;
use support::{TestDns, Zone};
use wisp_dns::{Destination, DnsError, Resolver, SipTarget, Transport};

use Transport::{Tcp, Tls, Udp};

const ALL: &[Transport] = &[Udp, Tcp, Tls];

/// Every test step gets this long; a cache miss against a stopped server
/// would take the resolver's own 5 s timeout, well past it.
async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(3), f)
        .await
        .expect("resolution took too long")
}

fn target(host: &str, port: Option<u16>, transport: Option<Transport>, secure: bool) -> SipTarget {
    SipTarget {
        host: host.into(),
        port,
        transport,
        secure,
    }
}

fn dest(transport: Transport, addr: &str) -> Destination {
    Destination {
        transport,
        addr: addr.parse::<SocketAddr>().expect("test address"),
    }
}

/// A resolver whose only DNS server is a closed port: any DNS query would
/// fail, so these answers prove no DNS was needed.
fn no_dns_resolver() -> Resolver {
    Resolver::with_nameserver("127.0.0.1:9".parse().expect("addr")).expect("resolver")
}

#[tokio::test]
async fn literal_ipv4_needs_no_dns() {
    let r = no_dns_resolver();
    let got = bounded(r.resolve(&target("192.0.2.7", None, None, false), ALL)).await;
    assert_eq!(got.unwrap(), [dest(Udp, "192.0.2.7:5060")]);
    let got = bounded(r.resolve(&target("192.0.2.7", Some(5080), Some(Tcp), false), ALL)).await;
    assert_eq!(got.unwrap(), [dest(Tcp, "192.0.2.7:5080")]);
    let got = bounded(r.resolve(&target("192.0.2.7", None, None, true), ALL)).await;
    assert_eq!(got.unwrap(), [dest(Tls, "192.0.2.7:5061")]);
    // Without UDP support, a plain sip: URI falls back to TCP.
    let got = bounded(r.resolve(&target("192.0.2.7", None, None, false), &[Tcp])).await;
    assert_eq!(got.unwrap(), [dest(Tcp, "192.0.2.7:5060")]);
}

#[tokio::test]
async fn literal_ipv6_needs_no_dns() {
    let r = no_dns_resolver();
    let got = bounded(r.resolve(&target("2001:db8::1", None, None, false), ALL)).await;
    assert_eq!(got.unwrap(), [dest(Udp, "[2001:db8::1]:5060")]);
    let got = bounded(r.resolve(&target("[2001:db8::1]", Some(5070), Some(Tls), false), ALL)).await;
    assert_eq!(got.unwrap(), [dest(Tls, "[2001:db8::1]:5070")]);
}

#[tokio::test]
async fn unsupported_transport_or_bad_host_is_refused() {
    let r = no_dns_resolver();
    let got = bounded(r.resolve(&target("192.0.2.7", None, Some(Tcp), false), &[Udp])).await;
    assert!(matches!(got, Err(DnsError::NoTransport { .. })), "{got:?}");
    let got = bounded(r.resolve(&target("192.0.2.7", None, None, true), &[Udp, Tcp])).await;
    assert!(matches!(got, Err(DnsError::NoTransport { .. })), "{got:?}");
    let got = bounded(r.resolve(&target("", None, None, false), ALL)).await;
    assert!(matches!(got, Err(DnsError::InvalidHost { .. })), "{got:?}");
}

#[tokio::test]
async fn localhost_from_hosts_file() {
    let r = Resolver::from_system_conf().expect("system resolver");
    let got = bounded(r.resolve(&target("localhost", None, None, false), ALL))
        .await
        .expect("localhost resolves");
    assert!(!got.is_empty());
    assert!(got.contains(&dest(Udp, "127.0.0.1:5060")), "{got:?}");
    assert!(
        got.iter()
            .all(|d| d.transport == Udp && d.addr.ip().is_loopback())
    );
    let got = bounded(r.resolve(&target("localhost", Some(5070), None, true), ALL))
        .await
        .expect("localhost resolves");
    assert!(got.contains(&dest(Tls, "127.0.0.1:5070")), "{got:?}");
}

fn naptr_zone() -> Zone {
    Zone::default()
        // Lowest order first: TCP, then UDP; SCTP is not ours; TLS last.
        .naptr(
            "example.test.",
            20,
            10,
            "SIP+D2U",
            "_sip._udp.example.test.",
        )
        .naptr(
            "example.test.",
            10,
            10,
            "SIP+D2T",
            "_sip._tcp.example.test.",
        )
        .naptr(
            "example.test.",
            5,
            10,
            "SIP+D2S",
            "_sip._sctp.example.test.",
        )
        .naptr(
            "example.test.",
            30,
            10,
            "SIPS+D2T",
            "_sips._tcp.example.test.",
        )
        .srv("_sip._tcp.example.test.", 20, 0, 5071, "tcp2.example.test.")
        .srv("_sip._tcp.example.test.", 10, 0, 5070, "tcp1.example.test.")
        .srv("_sip._udp.example.test.", 10, 0, 5080, "udp1.example.test.")
        .srv(
            "_sips._tcp.example.test.",
            10,
            0,
            5061,
            "tls1.example.test.",
        )
        .srv(
            "_sip._sctp.example.test.",
            10,
            0,
            5090,
            "sctp.example.test.",
        )
        .addr("tcp1.example.test.", "10.0.0.1")
        .addr("tcp2.example.test.", "10.0.0.2")
        .addr("udp1.example.test.", "10.0.0.3")
        .addr("udp1.example.test.", "fd00::3")
        .addr("tls1.example.test.", "10.0.0.4")
        .addr("sctp.example.test.", "10.0.0.9")
        .addr("example.test.", "10.0.0.100")
}

#[tokio::test]
async fn naptr_then_srv_then_addresses_in_order() {
    let dns = TestDns::start(naptr_zone()).await;
    let r = Resolver::with_nameserver(dns.addr).expect("resolver");
    let got = bounded(r.resolve(&target("example.test", None, None, false), ALL))
        .await
        .expect("resolves");
    assert_eq!(
        got,
        [
            dest(Tcp, "10.0.0.1:5070"),
            dest(Tcp, "10.0.0.2:5071"),
            dest(Udp, "10.0.0.3:5080"),
            dest(Udp, "[fd00::3]:5080"),
            dest(Tls, "10.0.0.4:5061"),
        ]
    );
    // The NAPTR answer was used: no fallback SRV or A query for the domain.
    let asked = dns.queries();
    assert!(
        asked.contains(&("example.test.".into(), RecordType::NAPTR)),
        "{asked:?}"
    );
    assert!(!asked.iter().any(|(n, _)| n.contains("_sctp")), "{asked:?}");
    assert!(
        !asked.contains(&("example.test.".into(), RecordType::A)),
        "{asked:?}"
    );
    dns.stop().await;
}

#[tokio::test]
async fn sips_uses_only_sips_naptr() {
    let dns = TestDns::start(naptr_zone()).await;
    let r = Resolver::with_nameserver(dns.addr).expect("resolver");
    let got = bounded(r.resolve(&target("example.test", None, None, true), ALL)).await;
    assert_eq!(got.expect("resolves"), [dest(Tls, "10.0.0.4:5061")]);
    dns.stop().await;
}

#[tokio::test]
async fn naptr_filtered_by_supported_transports() {
    let dns = TestDns::start(naptr_zone()).await;
    let r = Resolver::with_nameserver(dns.addr).expect("resolver");
    let got = bounded(r.resolve(&target("example.test", None, None, false), &[Udp])).await;
    assert_eq!(
        got.expect("resolves"),
        [dest(Udp, "10.0.0.3:5080"), dest(Udp, "[fd00::3]:5080")]
    );
    let got = bounded(r.resolve(&target("example.test", None, None, false), &[Tls, Tcp])).await;
    assert_eq!(
        got.expect("resolves"),
        [
            dest(Tcp, "10.0.0.1:5070"),
            dest(Tcp, "10.0.0.2:5071"),
            dest(Tls, "10.0.0.4:5061"),
        ]
    );
    dns.stop().await;
}

fn srv_zone() -> Zone {
    Zone::default()
        .srv("_sip._udp.srv.test.", 20, 50, 5060, "b1.srv.test.")
        .srv("_sip._udp.srv.test.", 20, 50, 5060, "b2.srv.test.")
        .srv("_sip._udp.srv.test.", 10, 10, 5060, "a1.srv.test.")
        .srv("_sip._udp.srv.test.", 10, 0, 5060, "a2.srv.test.")
        .srv("_sip._udp.srv.test.", 10, 90, 5060, "a3.srv.test.")
        .srv("_sip._udp.srv.test.", 30, 0, 5062, "c1.srv.test.")
        // Same target and port as a1 at a worse priority: dropped as duplicate.
        .srv("_sip._udp.srv.test.", 40, 0, 5060, "a1.srv.test.")
        .srv("_sip._tcp.srv.test.", 10, 0, 5065, "t1.srv.test.")
        .addr("a1.srv.test.", "10.1.0.1")
        .addr("a2.srv.test.", "10.1.0.2")
        .addr("a3.srv.test.", "10.1.0.3")
        .addr("b1.srv.test.", "10.2.0.1")
        .addr("b2.srv.test.", "10.2.0.2")
        .addr("c1.srv.test.", "10.3.0.1")
        .addr("t1.srv.test.", "10.4.0.1")
        .addr("srv.test.", "10.9.9.9")
}

fn addr_set(list: &[Destination]) -> HashSet<String> {
    list.iter().map(|d| d.addr.to_string()).collect()
}

#[tokio::test]
async fn srv_priority_order_and_every_target() {
    let dns = TestDns::start(srv_zone()).await;
    let r = Resolver::with_nameserver(dns.addr).expect("resolver");
    let sip = target("srv.test", None, Some(Udp), false);
    let mut firsts = HashSet::new();
    // Weighted random inside a priority: repeat (cached after the first).
    for _ in 0..30 {
        let got = bounded(r.resolve(&sip, ALL)).await.expect("resolves");
        assert_eq!(got.len(), 6, "{got:?}");
        assert!(got.iter().all(|d| d.transport == Udp));
        assert_eq!(
            addr_set(&got[..3]),
            addr_set(&[
                dest(Udp, "10.1.0.1:5060"),
                dest(Udp, "10.1.0.2:5060"),
                dest(Udp, "10.1.0.3:5060")
            ])
        );
        assert_eq!(
            addr_set(&got[3..5]),
            addr_set(&[dest(Udp, "10.2.0.1:5060"), dest(Udp, "10.2.0.2:5060")])
        );
        assert_eq!(got[5], dest(Udp, "10.3.0.1:5062"));
        firsts.insert(got[0].addr);
    }
    // a3 holds 90 of the 100 weight points of priority 10: in 30 runs it
    // comes first at least once (it fails to with probability ~1e-30).
    assert!(
        firsts.contains(&"10.1.0.3:5060".parse().expect("addr")),
        "{firsts:?}"
    );
    // Transport given: only that transport's SRV, no NAPTR.
    let asked = dns.queries();
    assert!(
        !asked.iter().any(|(_, t)| *t == RecordType::NAPTR),
        "{asked:?}"
    );
    dns.stop().await;
}

#[tokio::test]
async fn srv_fallback_follows_supported_order() {
    let dns = TestDns::start(srv_zone()).await;
    let r = Resolver::with_nameserver(dns.addr).expect("resolver");
    // No NAPTR: SRV per supported transport, TCP preferred here.
    let got = bounded(r.resolve(&target("srv.test", None, None, false), &[Tcp, Udp]))
        .await
        .expect("resolves");
    assert_eq!(got.len(), 7, "{got:?}");
    assert_eq!(got[0], dest(Tcp, "10.4.0.1:5065"));
    assert!(got[1..].iter().all(|d| d.transport == Udp));
    dns.stop().await;
}

#[tokio::test]
async fn port_given_means_addresses_only() {
    let dns = TestDns::start(naptr_zone()).await;
    let r = Resolver::with_nameserver(dns.addr).expect("resolver");
    let got = bounded(r.resolve(&target("example.test", Some(5099), None, false), ALL)).await;
    assert_eq!(got.expect("resolves"), [dest(Udp, "10.0.0.100:5099")]);
    let got = bounded(r.resolve(&target("example.test", Some(5099), Some(Tcp), false), ALL)).await;
    assert_eq!(got.expect("resolves"), [dest(Tcp, "10.0.0.100:5099")]);
    let asked = dns.queries();
    assert!(
        asked
            .iter()
            .all(|(_, t)| matches!(t, RecordType::A | RecordType::AAAA)),
        "{asked:?}"
    );
    dns.stop().await;
}

#[tokio::test]
async fn no_naptr_no_srv_means_default_port() {
    let dns = TestDns::start(Zone::default().addr("plain.test.", "10.5.0.1")).await;
    let r = Resolver::with_nameserver(dns.addr).expect("resolver");
    let got = bounded(r.resolve(&target("plain.test", None, None, false), ALL)).await;
    assert_eq!(got.expect("resolves"), [dest(Udp, "10.5.0.1:5060")]);
    let got = bounded(r.resolve(&target("plain.test", None, None, true), ALL)).await;
    assert_eq!(got.expect("resolves"), [dest(Tls, "10.5.0.1:5061")]);
    let got = bounded(r.resolve(&target("plain.test", None, Some(Tcp), false), ALL)).await;
    assert_eq!(got.expect("resolves"), [dest(Tcp, "10.5.0.1:5060")]);
    dns.stop().await;
}

#[tokio::test]
async fn unknown_name_is_not_found() {
    let dns = TestDns::start(naptr_zone()).await;
    let r = Resolver::with_nameserver(dns.addr).expect("resolver");
    for t in [
        target("nope.test", None, None, false),
        target("nope.test", Some(5060), None, false),
        target("nope.test", None, Some(Tcp), false),
    ] {
        let got = bounded(r.resolve(&t, ALL)).await;
        assert!(
            matches!(&got, Err(DnsError::NotFound(h)) if h == "nope.test"),
            "{got:?}"
        );
    }
    dns.stop().await;
}

#[tokio::test]
async fn failing_server_is_a_lookup_error_not_not_found() {
    let zone = Zone::default()
        .servfail("broken.test.")
        .servfail("_sip._udp.broken.test.")
        .servfail("_sip._tcp.broken.test.");
    let dns = TestDns::start(zone).await;
    let r = Resolver::with_nameserver(dns.addr).expect("resolver");
    for t in [
        target("broken.test", None, None, false),
        target("broken.test", Some(5060), None, false),
        target("broken.test", None, Some(Udp), false),
    ] {
        let got = bounded(r.resolve(&t, ALL)).await;
        assert!(matches!(got, Err(DnsError::Lookup { .. })), "{got:?}");
    }
    dns.stop().await;
}

#[tokio::test]
async fn cached_answer_survives_the_server() {
    let dns = TestDns::start(naptr_zone()).await;
    let r = Resolver::with_nameserver(dns.addr).expect("resolver");
    let sip = target("example.test", None, None, false);
    let first = bounded(r.resolve(&sip, ALL)).await.expect("resolves");
    let nope = bounded(r.resolve(&target("nope.test", None, None, false), ALL)).await;
    assert!(matches!(nope, Err(DnsError::NotFound(_))));
    dns.stop().await;
    // Every NAPTR/SRV/A/AAAA answer, and the NXDOMAIN, comes from the cache now.
    let again = bounded(r.clone().resolve(&sip, ALL)).await.expect("cached");
    assert_eq!(first, again);
    let nope = bounded(r.resolve(&target("nope.test", None, None, false), ALL)).await;
    assert!(matches!(nope, Err(DnsError::NotFound(_))), "{nope:?}");
}
