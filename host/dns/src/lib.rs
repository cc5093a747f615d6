//! `wisp-dns`: where to send a SIP request — RFC 3263 next-hop resolution.
//!
//! Given the host part of a SIP or SIPS URI (a [`SipTarget`]) and the
//! transports this router can send on, [`Resolver::resolve`] returns an
//! ordered list of [`Destination`]s (transport + socket address). The
//! transaction layer tries the first one and fails over to the next on a
//! timeout or transport error (RFC 3263 §4.3). DNS goes through
//! [hickory-resolver](https://docs.rs/hickory-resolver/0.26); resolution is
//! async and never blocks a thread.
//!
//! # The RFC 3263 §4 steps, as implemented
//!
//! 1. **Numeric IP** (IPv4, or IPv6 with or without brackets): no DNS. The
//!    transport is the `;transport=` parameter, else UDP (TLS for `sips:`);
//!    the port is the given one, else 5060 (5061 for TLS).
//! 2. **A name in `/etc/hosts`** is treated like a numeric IP: its addresses,
//!    with the transport and port of step 1. The hosts file cannot hold
//!    NAPTR or SRV records, and this keeps `localhost` and friends working
//!    when no DNS server is reachable. (An extension of RFC 3263, which only
//!    knows DNS.)
//! 3. **Port given**: A/AAAA lookup only, every address with that port; the
//!    transport as in step 1.
//! 4. **Transport given, no port**: SRV for that transport (`_sip._udp.`,
//!    `_sip._tcp.`, `_sips._tcp.`); no SRV records → A/AAAA with the
//!    transport's default port.
//! 5. **Neither**: NAPTR on the name. Records with flag `s` and service
//!    `SIP+D2U`, `SIP+D2T` or `SIPS+D2T` (only the last for `sips:`) whose
//!    transport is in `supported` are taken in order of (order, preference)
//!    and their replacement is looked up as SRV. No usable NAPTR (or none
//!    whose SRV leads anywhere) → SRV queries for each transport in
//!    `supported`, in that order (`_sips._tcp` for `sips:`; `_sip._udp` and
//!    `_sip._tcp` for `sip:`). No SRV → A/AAAA with UDP (TLS for `sips:`; TCP
//!    if UDP is not supported) and the default port.
//!
//! SRV records are sorted by priority, and inside a priority by RFC 2782's
//! weighted random selection. Each SRV target is expanded to its addresses
//! (A before AAAA); an SRV target of `.` ("service not available") is
//! skipped. All destinations are flattened in that order and duplicates are
//! removed, the first occurrence kept.
//!
//! A name with no records at all (NXDOMAIN, or nothing usable anywhere)
//! gives [`DnsError::NotFound`]. When some query failed for another reason
//! (timeout, SERVFAIL, no server configured) and nothing was found, the
//! result is [`DnsError::Lookup`] instead: the name may well exist. A failed
//! NAPTR or SRV query is logged and resolution continues with the next step,
//! because some DNS servers and middleboxes mishandle NAPTR.
//!
//! # Cache
//!
//! hickory's response cache is used: one entry per (name, record type)
//! answer, positive or negative, at most [`CACHE_ENTRIES`] entries (evicted
//! least-recently/least-frequently used, moka's TinyLFU). An entry lives as
//! long as the smallest TTL in its answer, capped at one day; a negative
//! answer (NXDOMAIN / no data) lives for the SOA's negative TTL (RFC 2308),
//! capped at [`NEGATIVE_TTL_CAP`]; without an SOA it is not cached. Failures
//! (timeouts, SERVFAIL) are not cached. Memory is thus bounded by the entry
//! count times the size of a DNS answer (a UDP answer is at most a few KiB).
//! The cache is shared by all clones of a [`Resolver`].

mod srv;

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::Hosts;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::op::Query;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tracing::{debug, warn};

use crate::srv::SrvTarget;

/// Maximum number of DNS answers (positive or negative) kept in the cache.
pub const CACHE_ENTRIES: u64 = 8_192;

/// Longest time a negative answer is cached, whatever its SOA says
/// (RFC 2308 §5 suggests one to three hours).
pub const NEGATIVE_TTL_CAP: Duration = Duration::from_secs(3_600);

/// A SIP transport a [`Destination`] is reached over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// 5061 for TLS, 5060 otherwise (RFC 3261 §19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            Transport::Udp | Transport::Tcp => 5060,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        })
    }
}

/// The parts of a SIP/SIPS URI that decide where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipTarget {
    /// A domain name, an IPv4 address, or an IPv6 address (brackets allowed
    /// but not needed).
    pub host: String,
    /// The URI's port, if it has one.
    pub port: Option<u16>,
    /// The URI's `;transport=` parameter, if any. For a `sips:` URI,
    /// `Tcp` and `Tls` both mean TLS.
    pub transport: Option<Transport>,
    /// `sips:` URI: only TLS may be used.
    pub secure: bool,
}

/// One place to send the request to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Destination {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// Why [`Resolver::resolve`] found no destination.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The name does not exist, or has no NAPTR/SRV/A/AAAA records that lead
    /// to a destination. Answer the request with 404/604-style finality.
    #[error("{0}: no such host, or no usable NAPTR/SRV/A/AAAA records")]
    NotFound(String),
    /// The URI needs a transport that `supported` does not list (e.g. a
    /// `sips:` URI without TLS support, or `;transport=tcp` without TCP).
    #[error("{host}: no usable transport (wanted {wanted}, supported {supported:?})")]
    NoTransport {
        host: String,
        wanted: String,
        supported: Vec<Transport>,
    },
    /// The host is neither an IP address nor a valid domain name.
    #[error("{host}: not a valid host name: {reason}")]
    InvalidHost { host: String, reason: String },
    /// DNS did not answer usefully (timeout, SERVFAIL, no server
    /// configured, ...) and nothing else was found. May succeed later.
    #[error("{host}: DNS lookup failed: {source}")]
    Lookup {
        host: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The resolver could not be set up.
    #[error("DNS resolver setup failed: {0}")]
    Setup(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// RFC 3263 resolver. Cheap to clone; clones share one cache.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    dns: TokioResolver,
    hosts: Arc<Hosts>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver").finish_non_exhaustive()
    }
}

impl Resolver {
    /// Servers, search list and options from `/etc/resolv.conf`, names from
    /// `/etc/hosts`. If `resolv.conf` is missing or names no server, a
    /// warning is logged and the resolver still answers numeric IPs and
    /// hosts-file names; other names then fail with [`DnsError::Lookup`].
    pub fn from_system_conf() -> Result<Resolver, DnsError> {
        let mut builder = match TokioResolver::builder_tokio() {
            Ok(builder) => builder,
            Err(err) => {
                warn!(error = %err, "no usable /etc/resolv.conf; only IP addresses and /etc/hosts names will resolve");
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(Vec::new()),
                    TokioRuntimeProvider::default(),
                )
            }
        };
        set_options(builder.options_mut());
        Self::build(builder)
    }

    /// Queries only `addr` (UDP, with TCP for truncated answers), no search
    /// list; `/etc/hosts` still applies. For tests and for manifests that
    /// name their DNS server.
    pub fn with_nameserver(addr: SocketAddr) -> Result<Resolver, DnsError> {
        let mut udp = ConnectionConfig::udp();
        udp.port = addr.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = addr.port();
        let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![server]),
            TokioRuntimeProvider::default(),
        );
        set_options(builder.options_mut());
        Self::build(builder)
    }

    fn build(
        builder: hickory_resolver::ResolverBuilder<TokioRuntimeProvider>,
    ) -> Result<Resolver, DnsError> {
        let mut dns = builder.build().map_err(|e| DnsError::Setup(Box::new(e)))?;
        let hosts = Arc::new(Hosts::from_system().unwrap_or_else(|err| {
            debug!(error = %err, "no /etc/hosts");
            Hosts::default()
        }));
        dns.set_hosts(hosts.clone());
        Ok(Resolver {
            inner: Arc::new(Inner { dns, hosts }),
        })
    }

    /// Resolves `target` to destinations in the order to try them, using
    /// only transports in `supported`; see the crate docs for the steps.
    /// For NAPTR-less names, the order of `supported` is the order of
    /// preference between transports.
    pub async fn resolve(
        &self,
        target: &SipTarget,
        supported: &[Transport],
    ) -> Result<Vec<Destination>, DnsError> {
        let host = target.host.as_str();
        let unbracketed = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let wanted = requested_transport(target, supported)?;

        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return address_destinations(target, wanted, supported, &[ip]);
        }

        if host.is_empty() {
            return Err(DnsError::InvalidHost {
                host: String::new(),
                reason: "empty".into(),
            });
        }
        let name = Name::from_utf8(host).map_err(|e| DnsError::InvalidHost {
            host: host.to_owned(),
            reason: e.to_string(),
        })?;

        let from_hosts = self.hosts_file_addresses(&name);
        if !from_hosts.is_empty() {
            debug!(%host, "found in /etc/hosts");
            return address_destinations(target, wanted, supported, &from_hosts);
        }

        let mut step = Step::new(host);
        let found = if target.port.is_some() {
            self.addresses(&mut step, &name).await
        } else if let Some(transport) = wanted {
            self.transport_srv_then_a(&mut step, &name, transport).await
        } else {
            self.naptr_srv_a(&mut step, &name, target.secure, supported)
                .await
        };
        match found {
            Found::Addresses(ips) => address_destinations(target, wanted, supported, &ips),
            Found::Destinations(list) => Ok(dedup(list)),
            Found::Nothing => Err(step.into_error()),
        }
    }

    fn hosts_file_addresses(&self, name: &Name) -> Vec<IpAddr> {
        [RecordType::A, RecordType::AAAA]
            .into_iter()
            .filter_map(|rtype| {
                self.inner
                    .hosts
                    .lookup_static_host(&Query::query(name.clone(), rtype))
            })
            .flat_map(|lookup| {
                lookup
                    .answers()
                    .iter()
                    .filter_map(|r| r.data.ip_addr())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Step 4: SRV for the given transport, else A/AAAA.
    async fn transport_srv_then_a(
        &self,
        step: &mut Step,
        name: &Name,
        transport: Transport,
    ) -> Found {
        if let Some(srv_name) = srv_name(name, transport, transport == Transport::Tls)
            && let Some(found) = self.srv_destinations(step, &srv_name, transport).await
        {
            return found;
        }
        self.addresses(step, name).await
    }

    /// Step 5: NAPTR → SRV → A/AAAA.
    async fn naptr_srv_a(
        &self,
        step: &mut Step,
        name: &Name,
        secure: bool,
        supported: &[Transport],
    ) -> Found {
        let mut naptrs = Vec::new();
        match self.inner.dns.lookup(name.clone(), RecordType::NAPTR).await {
            Ok(lookup) => {
                for record in lookup.answers() {
                    let RData::NAPTR(naptr) = &record.data else {
                        continue;
                    };
                    if !naptr.flags.eq_ignore_ascii_case(b"s") {
                        debug!(%name, ?naptr, "NAPTR without the s flag skipped");
                        continue;
                    }
                    let Some(transport) = naptr_transport(&naptr.services, secure) else {
                        debug!(%name, ?naptr, "NAPTR service not for SIP or not allowed here");
                        continue;
                    };
                    if !supported.contains(&transport) {
                        debug!(%name, %transport, "NAPTR transport not supported");
                        continue;
                    }
                    naptrs.push((
                        naptr.order,
                        naptr.preference,
                        transport,
                        naptr.replacement.clone(),
                    ));
                }
            }
            Err(err) if err.is_nx_domain() => {
                // Nothing at all exists at this name (RFC 8020): neither the
                // SRV names below it nor A/AAAA records.
                step.not_found = true;
                return Found::Nothing;
            }
            Err(err) => step.failed(name, RecordType::NAPTR, err),
        }
        naptrs.sort_by_key(|&(order, preference, ..)| (order, preference));

        let mut list = Vec::new();
        for (_, _, transport, replacement) in naptrs {
            if let Some(Found::Destinations(found)) =
                self.srv_destinations(step, &replacement, transport).await
            {
                list.extend(found);
            }
        }
        if !list.is_empty() {
            return Found::Destinations(list);
        }

        let mut any_srv = false;
        for &transport in supported {
            let srv_transport_ok = if secure {
                transport == Transport::Tls
            } else {
                transport != Transport::Tls
            };
            if !srv_transport_ok {
                continue;
            }
            let Some(srv_name) = srv_name(name, transport, secure) else {
                continue;
            };
            if let Some(found) = self.srv_destinations(step, &srv_name, transport).await {
                any_srv = true;
                if let Found::Destinations(found) = found {
                    list.extend(found);
                }
            }
        }
        if !list.is_empty() {
            Found::Destinations(list)
        } else if any_srv {
            // SRV records exist but lead nowhere: the service is there on
            // paper only; do not fall back to A/AAAA (RFC 2782).
            step.not_found = true;
            Found::Nothing
        } else {
            self.addresses(step, name).await
        }
    }

    /// SRV lookup of `srv_name`, each target expanded to its addresses.
    /// `None` when there are no SRV records (the caller falls back);
    /// `Some(Nothing)` when there are some but none leads to an address.
    async fn srv_destinations(
        &self,
        step: &mut Step,
        srv_name: &Name,
        transport: Transport,
    ) -> Option<Found> {
        let records = match self.inner.dns.srv_lookup(srv_name.clone()).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::SRV(srv) => Some(SrvTarget {
                        priority: srv.priority,
                        weight: srv.weight,
                        port: srv.port,
                        target: srv.target.clone(),
                    }),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            Err(err) if err.is_no_records_found() => Vec::new(),
            Err(err) => {
                step.failed(srv_name, RecordType::SRV, err);
                Vec::new()
            }
        };
        if records.is_empty() {
            return None;
        }
        let ordered = srv::order(records, &mut rand::rng());
        debug!(%srv_name, ?ordered, "SRV");
        let mut list = Vec::new();
        for srv in ordered {
            if srv.target.is_root() {
                debug!(%srv_name, "SRV target \".\": service not available");
                continue;
            }
            if let Found::Addresses(ips) = self.addresses(step, &srv.target).await {
                list.extend(ips.into_iter().map(|ip| Destination {
                    transport,
                    addr: SocketAddr::new(ip, srv.port),
                }));
            }
        }
        Some(if list.is_empty() {
            Found::Nothing
        } else {
            Found::Destinations(list)
        })
    }

    /// A and AAAA of `name` (A first).
    async fn addresses(&self, step: &mut Step, name: &Name) -> Found {
        match self.inner.dns.lookup_ip(name.clone()).await {
            Ok(lookup) => {
                let ips: Vec<IpAddr> = lookup.iter().collect();
                if ips.is_empty() {
                    step.not_found = true;
                    Found::Nothing
                } else {
                    Found::Addresses(ips)
                }
            }
            Err(err) if err.is_no_records_found() => {
                step.not_found = true;
                Found::Nothing
            }
            Err(err) => {
                step.failed(name, RecordType::A, err);
                Found::Nothing
            }
        }
    }
}

/// Resolver options shared by both constructors, on top of resolv.conf's.
fn set_options(options: &mut ResolverOpts) {
    options.cache_size = CACHE_ENTRIES;
    options.negative_max_ttl = Some(NEGATIVE_TTL_CAP);
    // Both families are asked for in parallel; IPv4 is tried first, as most
    // SIP deployments are reached more reliably over it.
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    options.use_hosts_file = ResolveHosts::Always;
}

/// What one resolution path produced.
enum Found {
    /// Addresses of the name itself: the port and transport come from the
    /// URI or the defaults.
    Addresses(Vec<IpAddr>),
    /// Complete destinations from NAPTR/SRV.
    Destinations(Vec<Destination>),
    Nothing,
}

/// What went wrong along the way, to choose the error when nothing is found.
struct Step {
    host: String,
    not_found: bool,
    failure: Option<NetError>,
}

impl Step {
    fn new(host: &str) -> Step {
        Step {
            host: host.to_owned(),
            not_found: false,
            failure: None,
        }
    }

    fn failed(&mut self, name: &Name, rtype: RecordType, err: NetError) {
        warn!(host = %self.host, %name, %rtype, error = %err, "DNS query failed; trying the next step");
        self.failure = Some(err);
    }

    /// A failed query means the name may exist: report the failure rather
    /// than a NotFound the caller would treat as final.
    fn into_error(self) -> DnsError {
        match self.failure {
            Some(err) => DnsError::Lookup {
                host: self.host,
                source: Box::new(err),
            },
            None => DnsError::NotFound(self.host),
        }
    }
}

/// The transport the URI asks for, checked against `supported`; `None` when
/// it leaves the choice to DNS. A `sips:` URI always asks for TLS.
fn requested_transport(
    target: &SipTarget,
    supported: &[Transport],
) -> Result<Option<Transport>, DnsError> {
    let no_transport = |wanted: String| DnsError::NoTransport {
        host: target.host.clone(),
        wanted,
        supported: supported.to_vec(),
    };
    let wanted = match (target.secure, target.transport) {
        (true, Some(Transport::Udp)) => return Err(no_transport("sips over UDP".into())),
        (true, Some(_)) => Some(Transport::Tls),
        (true, None) => None,
        (false, transport) => transport,
    };
    match wanted {
        Some(t) if !supported.contains(&t) => Err(no_transport(t.to_string())),
        _ if target.secure && !supported.contains(&Transport::Tls) => {
            Err(no_transport("TLS (sips)".into()))
        }
        _ if supported.is_empty() => Err(no_transport("any".into())),
        _ => Ok(wanted),
    }
}

/// The transport when neither the URI nor DNS chose one: TLS for `sips:`,
/// else UDP, or TCP when UDP is not supported (RFC 3263 §4.1).
fn default_transport(target: &SipTarget, supported: &[Transport]) -> Result<Transport, DnsError> {
    let candidates: &[Transport] = if target.secure {
        &[Transport::Tls]
    } else {
        &[Transport::Udp, Transport::Tcp]
    };
    candidates
        .iter()
        .copied()
        .find(|t| supported.contains(t))
        .ok_or_else(|| DnsError::NoTransport {
            host: target.host.clone(),
            wanted: if target.secure {
                "TLS (sips)"
            } else {
                "UDP or TCP"
            }
            .into(),
            supported: supported.to_vec(),
        })
}

/// Destinations for the addresses of the target itself (numeric IP, hosts
/// file, A/AAAA): the URI's port and transport, else the defaults.
fn address_destinations(
    target: &SipTarget,
    wanted: Option<Transport>,
    supported: &[Transport],
    ips: &[IpAddr],
) -> Result<Vec<Destination>, DnsError> {
    let transport = match wanted {
        Some(t) => t,
        None => default_transport(target, supported)?,
    };
    let port = target.port.unwrap_or(transport.default_port());
    Ok(dedup(
        ips.iter()
            .map(|&ip| Destination {
                transport,
                addr: SocketAddr::new(ip, port),
            })
            .collect(),
    ))
}

/// `_sip._udp.`, `_sip._tcp.` or `_sips._tcp.` + `name`; `None` when that
/// is too long for DNS.
fn srv_name(name: &Name, transport: Transport, secure: bool) -> Option<Name> {
    let (service, proto) = match (secure, transport) {
        (true, _) | (false, Transport::Tls) => ("_sips", "_tcp"),
        (false, Transport::Udp) => ("_sip", "_udp"),
        (false, Transport::Tcp) => ("_sip", "_tcp"),
    };
    name.prepend_label(proto)
        .and_then(|n| n.prepend_label(service))
        .ok()
}

/// The transport of a NAPTR service field RFC 3263 knows; `None` for other
/// services (SCTP, non-SIP) and, for `sips:`, for non-TLS ones.
fn naptr_transport(services: &[u8], secure: bool) -> Option<Transport> {
    let transport = if services.eq_ignore_ascii_case(b"SIP+D2U") {
        Transport::Udp
    } else if services.eq_ignore_ascii_case(b"SIP+D2T") {
        Transport::Tcp
    } else if services.eq_ignore_ascii_case(b"SIPS+D2T") {
        Transport::Tls
    } else {
        return None;
    };
    (!secure || transport == Transport::Tls).then_some(transport)
}

/// Drops repeated destinations, keeping the first of each.
fn dedup(list: Vec<Destination>) -> Vec<Destination> {
    let mut seen = HashSet::with_capacity(list.len());
    list.into_iter().filter(|d| seen.insert(*d)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, secure: bool, transport: Option<Transport>) -> SipTarget {
        SipTarget {
            host: host.into(),
            port: None,
            transport,
            secure,
        }
    }

    #[test]
    fn naptr_services() {
        assert_eq!(naptr_transport(b"SIP+D2U", false), Some(Transport::Udp));
        assert_eq!(naptr_transport(b"sip+d2t", false), Some(Transport::Tcp));
        assert_eq!(naptr_transport(b"SIPS+D2T", false), Some(Transport::Tls));
        assert_eq!(naptr_transport(b"SIP+D2S", false), None);
        assert_eq!(naptr_transport(b"E2U+sip", false), None);
        assert_eq!(naptr_transport(b"SIP+D2U", true), None);
        assert_eq!(naptr_transport(b"SIPS+D2T", true), Some(Transport::Tls));
    }

    #[test]
    fn srv_names() {
        let name = Name::from_ascii("example.com.").unwrap();
        let n = |t, s| srv_name(&name, t, s).map(|n| n.to_ascii());
        assert_eq!(
            n(Transport::Udp, false).as_deref(),
            Some("_sip._udp.example.com.")
        );
        assert_eq!(
            n(Transport::Tcp, false).as_deref(),
            Some("_sip._tcp.example.com.")
        );
        assert_eq!(
            n(Transport::Tls, false).as_deref(),
            Some("_sips._tcp.example.com.")
        );
        assert_eq!(
            n(Transport::Tls, true).as_deref(),
            Some("_sips._tcp.example.com.")
        );
    }

    #[test]
    fn transport_choice() {
        let all = [Transport::Udp, Transport::Tcp, Transport::Tls];
        let tcp = [Transport::Tcp];
        let t = target("h", false, None);
        assert_eq!(requested_transport(&t, &all).unwrap(), None);
        assert_eq!(default_transport(&t, &all).unwrap(), Transport::Udp);
        assert_eq!(default_transport(&t, &tcp).unwrap(), Transport::Tcp);
        assert!(matches!(
            requested_transport(&target("h", false, Some(Transport::Udp)), &tcp),
            Err(DnsError::NoTransport { .. })
        ));
        let s = target("h", true, Some(Transport::Tcp));
        assert_eq!(requested_transport(&s, &all).unwrap(), Some(Transport::Tls));
        assert!(requested_transport(&target("h", true, None), &tcp).is_err());
        assert!(requested_transport(&target("h", true, Some(Transport::Udp)), &all).is_err());
        assert!(requested_transport(&t, &[]).is_err());
    }
}
