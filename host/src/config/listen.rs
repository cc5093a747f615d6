//! `server.listen` entries: `proto:ip:port` (`udp`, `tcp`, `tls`, `ws`, `wss`).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::Deserialize;

/// Transport of a listen address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
    /// TCP with TLS on it (RFC 3261 §26.2, `sips:` and `;transport=tls`).
    Tls,
    /// SIP over WebSocket (RFC 7118): one message per frame, on a
    /// connection only the client opens.
    Ws,
    /// SIP over secure WebSocket (WebSocket over TLS, RFC 7118).
    Wss,
}

impl Proto {
    /// A WebSocket transport: its connections are opened by the client
    /// only, and carry one message per frame.
    pub fn is_websocket(self) -> bool {
        matches!(self, Proto::Ws | Proto::Wss)
    }

    /// Carried over TLS (`tls`, `wss`).
    pub fn is_secure(self) -> bool {
        matches!(self, Proto::Tls | Proto::Wss)
    }

    /// A stream transport: messages are framed by Content-Length, requests
    /// are not retransmitted (RFC 3261 §17.1.1.2 timer A, §17.2.1), and
    /// responses go back on the connection the request came in on.
    pub fn is_stream(self) -> bool {
        !matches!(self, Proto::Udp)
    }

    /// The port a URI without one means (RFC 3261 §19.1.2).
    pub fn default_port(self) -> u16 {
        match self {
            Proto::Tls => 5061,
            Proto::Udp | Proto::Tcp => 5060,
            // RFC 6455 §3: the ports of ws: and wss: URIs.
            Proto::Ws => 80,
            Proto::Wss => 443,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
            Proto::Tls => "TLS",
            Proto::Ws => "WS",
            Proto::Wss => "WSS",
        })
    }
}

/// One `listen` entry: `proto:ip:port`. Port 0 takes an ephemeral port
/// (tests, `wisp check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    pub proto: Proto,
    pub addr: SocketAddr,
}

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected \"udp:IP:PORT\", \"tcp:IP:PORT\", \"tls:IP:PORT\", \"ws:IP:PORT\" or \"wss:IP:PORT\" (IPv6 as [::1])";
        let (proto, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: {expected}"))?;
        let proto = match proto.to_ascii_lowercase().as_str() {
            "udp" => Proto::Udp,
            "tcp" => Proto::Tcp,
            "tls" => Proto::Tls,
            "ws" => Proto::Ws,
            "wss" => Proto::Wss,
            other => return Err(format!("unknown transport {other:?}: {expected}")),
        };
        let addr = rest
            .parse::<SocketAddr>()
            .map_err(|_| format!("{rest:?} is not IP:PORT: {expected}"))?;
        Ok(ListenAddr { proto, addr })
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse_with_either_transport_and_port_zero() {
        let udp: ListenAddr = "udp:127.0.0.1:0".parse().expect("port 0 is allowed");
        assert_eq!(udp.proto, Proto::Udp);
        assert_eq!(udp.addr.port(), 0);
        let tcp: ListenAddr = "TCP:[::1]:5060".parse().expect("IPv6, any case");
        assert_eq!(tcp.proto, Proto::Tcp);
        assert_eq!(tcp.addr, "[::1]:5060".parse().unwrap());
        let tls: ListenAddr = "tls:0.0.0.0:5061".parse().expect("tls");
        assert_eq!((tls.proto, tls.addr.port()), (Proto::Tls, 5061));
        let ws: ListenAddr = "ws:127.0.0.1:8080".parse().expect("ws");
        assert_eq!((ws.proto, ws.addr.port()), (Proto::Ws, 8080));
        let wss: ListenAddr = "WSS:[::1]:8443".parse().expect("wss");
        assert_eq!(wss.proto, Proto::Wss);
        for bad in ["127.0.0.1:5060", "sctp:127.0.0.1:5060", "udp:127.0.0.1"] {
            assert!(bad.parse::<ListenAddr>().is_err(), "{bad}");
        }
    }
}
