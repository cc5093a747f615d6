//! `uri==myself`: is a host (and port) this router? Built once from the
//! listen addresses and the manifest's `aliases`, like Kamailio's `check_self`.

use std::net::{IpAddr, SocketAddr};

use wisp_sip::{Host, Scheme, Uri};

/// The names and addresses this router answers to.
#[derive(Debug, Clone, Default)]
pub struct Myself {
    /// Listen addresses (any transport).
    addrs: Vec<SocketAddr>,
    /// Aliases: lowercase host, and port when the alias names one.
    aliases: Vec<(String, Option<u16>)>,
}

impl Myself {
    pub fn new(listen: impl IntoIterator<Item = SocketAddr>, aliases: &[String]) -> Self {
        let aliases = aliases
            .iter()
            .map(|a| match a.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.ends_with(']') => match p.parse::<u16>() {
                    Ok(port) => (h.trim_matches(['[', ']']).to_ascii_lowercase(), Some(port)),
                    Err(_) => (a.to_ascii_lowercase(), None),
                },
                _ => (a.trim_matches(['[', ']']).to_ascii_lowercase(), None),
            })
            .collect();
        let mut addrs: Vec<SocketAddr> = listen.into_iter().collect();
        addrs.dedup();
        Myself { addrs, aliases }
    }

    /// Host and port (None = the scheme's default) name this router.
    pub fn is_myself(&self, host: &Host, port: Option<u16>, scheme: &Scheme) -> bool {
        let port = port.unwrap_or(match scheme {
            Scheme::Sips => 5061,
            _ => 5060,
        });
        let ports_match = |p: u16| self.addrs.iter().any(|a| a.port() == p);
        match host {
            Host::Ipv4(ip) => self.addr_matches(IpAddr::V4(*ip), port),
            Host::Ipv6(ip) => self.addr_matches(IpAddr::V6(*ip), port),
            Host::Domain(name) => {
                if let Ok(ip) = name.parse::<IpAddr>() {
                    return self.addr_matches(ip, port);
                }
                self.aliases.iter().any(|(alias, alias_port)| {
                    alias.eq_ignore_ascii_case(name)
                        && match alias_port {
                            Some(p) => *p == port,
                            None => ports_match(port),
                        }
                })
            }
        }
    }

    /// A URI names this router (`uri==myself`); tel URIs never do.
    pub fn uri_is_myself(&self, uri: &Uri) -> bool {
        !matches!(uri.scheme, Scheme::Tel) && self.is_myself(&uri.host, uri.port, &uri.scheme)
    }

    /// An IP address of this router, whatever the port (`src_ip==myself`):
    /// a listen address's IP (loopback ones for a listen address on
    /// `0.0.0.0`/`::`) or an IP alias.
    pub fn ip_is_myself(&self, ip: IpAddr) -> bool {
        self.addrs
            .iter()
            .any(|a| a.ip() == ip || (a.ip().is_unspecified() && ip.is_loopback()))
            || self
                .aliases
                .iter()
                .any(|(alias, _)| alias.parse::<IpAddr>().ok() == Some(ip))
    }

    fn addr_matches(&self, ip: IpAddr, port: u16) -> bool {
        self.addrs.iter().any(|a| {
            a.port() == port && (a.ip() == ip || (a.ip().is_unspecified() && ip.is_loopback()))
        }) || self.aliases.iter().any(|(alias, alias_port)| {
            alias.parse::<IpAddr>().ok() == Some(ip) && alias_port.is_none_or(|p| p == port)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn myself() -> Myself {
        Myself::new(
            [
                "127.0.0.1:5060".parse().unwrap(),
                "[::1]:5070".parse().unwrap(),
            ],
            &["example.com".into(), "sip.example.org:5080".into()],
        )
    }

    fn check(uri: &str) -> bool {
        myself().uri_is_myself(&Uri::parse(uri.as_bytes()).unwrap())
    }

    #[test]
    fn listen_addresses_are_myself() {
        assert!(check("sip:127.0.0.1"));
        assert!(check("sip:alice@127.0.0.1:5060"));
        assert!(check("sip:bob@[::1]:5070"));
        assert!(
            !check("sip:alice@127.0.0.1:5070"),
            "another port is another host"
        );
        assert!(!check("sip:127.0.0.2"));
    }

    #[test]
    fn a_source_ip_is_myself_on_any_port_of_a_listen_address_or_an_ip_alias() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("test address");
        let me = myself();
        assert!(me.ip_is_myself(ip("127.0.0.1")));
        assert!(me.ip_is_myself(ip("::1")));
        assert!(!me.ip_is_myself(ip("127.0.0.2")));
        let wildcard = Myself::new(
            ["0.0.0.0:5060".parse().expect("addr")],
            &["192.0.2.9:5080".into()],
        );
        assert!(
            wildcard.ip_is_myself(ip("127.0.0.5")),
            "loopback on a wildcard listener"
        );
        assert!(
            wildcard.ip_is_myself(ip("192.0.2.9")),
            "an IP alias, whatever its port"
        );
        assert!(!wildcard.ip_is_myself(ip("192.0.2.10")));
    }

    #[test]
    fn aliases_match_case_insensitively_with_their_ports() {
        assert!(
            check("sip:alice@EXAMPLE.com"),
            "alias without port matches any listen port"
        );
        assert!(check("sip:alice@example.com:5070"));
        assert!(!check("sip:alice@example.com:9999"));
        assert!(check("sip:sip.example.org:5080"));
        assert!(
            !check("sip:sip.example.org"),
            "alias with port 5080, URI defaults to 5060"
        );
        assert!(!check("tel:+15551234"));
    }
}
