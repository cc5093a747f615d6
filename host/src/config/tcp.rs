//! `[tcp]`: connection limits and deadlines (Kamailio's `tcp_*` core
//! parameters).

use serde::Deserialize;

use super::{Invalid, KeyPath};

/// `[tcp]`: how many connections the router keeps and how long it waits
/// on them. A router on the internet meets clients that open connections
/// and send nothing, or trickle a message a byte at a time; these bound
/// what each costs.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TcpConfig {
    /// Most accepted connections open at once (Kamailio
    /// `tcp_max_connections`); default 4096. A newcomer past it is accepted
    /// and the least recently active idle connection (no message in
    /// progress) is closed instead; when none is idle, the newcomer is
    /// closed at once. Connections the router opens itself are not counted.
    pub max_connections: usize,
    /// Most accepted connections from one IP address (Kamailio
    /// `tcp_accept_iplimit`); past it the newcomer is closed at once.
    /// Default 64; raise it for sites with many phones behind one NAT
    /// address.
    pub max_connections_per_ip: usize,
    /// A connection that delivers no complete message (a CRLF keepalive
    /// counts) for this long is closed (Kamailio `tcp_connection_lifetime`);
    /// default 120 s. Bytes of an unfinished message do not restart it.
    pub idle_timeout_s: u64,
    /// Once the first byte of a message has arrived, the whole message must
    /// arrive within this, else the connection is closed (Kamailio
    /// `tcp_msg_read_timeout`); default 5000 ms. This is what ends a client
    /// that trickles a message a byte at a time.
    pub message_timeout_ms: u64,
    /// A connection the router opens (to relay over TCP) that is not
    /// established by then fails (Kamailio `tcp_connect_timeout`); default
    /// 10000 ms.
    pub connect_timeout_ms: u64,
    /// RFC 5923 connection reuse (Kamailio `tcp_accept_aliases`): a request
    /// over TCP or TLS whose top Via has `;alias` makes its connection the
    /// way to the Via's port at the connection's address, so requests to
    /// that `IP:port` (its Contact, a Record-Route) reuse it instead of
    /// opening one the client's NAT or firewall would refuse. Only the port
    /// comes from the Via; the address is the connection's, so a client
    /// cannot claim another host's traffic. At most four such ports per
    /// connection. Default false.
    pub accept_aliases: bool,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            max_connections: 4096,
            max_connections_per_ip: 64,
            idle_timeout_s: 120,
            message_timeout_ms: 5000,
            connect_timeout_ms: 10_000,
            accept_aliases: false,
        }
    }
}

impl TcpConfig {
    /// Rules serde does not check: every limit and time in its range.
    pub(super) fn check(&self) -> Result<(), Invalid> {
        let key = |k| KeyPath::new(&["tcp", k]);
        for (k, v, lo, hi, unit) in [
            (
                "max_connections",
                self.max_connections as u64,
                1,
                1 << 20,
                "",
            ),
            (
                "max_connections_per_ip",
                self.max_connections_per_ip as u64,
                1,
                1 << 20,
                "",
            ),
            ("idle_timeout_s", self.idle_timeout_s, 1, 86_400, " s"),
            (
                "message_timeout_ms",
                self.message_timeout_ms,
                1,
                3_600_000,
                " ms",
            ),
            (
                "connect_timeout_ms",
                self.connect_timeout_ms,
                1,
                3_600_000,
                " ms",
            ),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err(Invalid::new(key(k), format!("expected {lo}..={hi}{unit}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::tests::{GOOD, refused_at};
    use crate::config::*;

    #[test]
    fn tcp_defaults_and_a_section_overrides_them() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert_eq!(m.tcp, TcpConfig::default());
        assert_eq!((m.tcp.max_connections, m.tcp.idle_timeout_s), (4096, 120));
        let text = format!(
            "{GOOD}\n[tcp]\nmax_connections = 20\nmax_connections_per_ip = 3\n\
             idle_timeout_s = 30\nmessage_timeout_ms = 1000\nconnect_timeout_ms = 500\n"
        );
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
        assert_eq!(
            m.tcp,
            TcpConfig {
                max_connections: 20,
                max_connections_per_ip: 3,
                idle_timeout_s: 30,
                message_timeout_ms: 1000,
                connect_timeout_ms: 500,
                accept_aliases: false,
            }
        );
    }

    #[test]
    fn a_zero_limit_or_timeout_is_refused_with_its_line() {
        for k in [
            "max_connections",
            "max_connections_per_ip",
            "idle_timeout_s",
            "message_timeout_ms",
            "connect_timeout_ms",
        ] {
            let text = format!("{GOOD}\n[tcp]\n{k} = 0\n");
            let e = refused_at(&text, text.lines().count(), &format!("tcp.{k}"));
            assert!(e.contains("expected 1..="), "{e}");
        }
        let text = format!("{GOOD}\n[tcp]\nmax_conections = 5\n");
        refused_at(&text, text.lines().count(), "tcp.max_conections");
    }
}
