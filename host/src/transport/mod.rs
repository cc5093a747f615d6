//! Sockets: UDP, TCP and TLS listeners from the manifest, and the send path
//! every other layer uses. Sending never blocks the caller: a UDP datagram
//! is written with `try_send_to`, or with the other responses of its receive
//! burst in one `sendmmsg` ([`udp`]); a full socket buffer falls back to a
//! spawned send. A message over a stream (TCP, TLS) is queued to its
//! connection's writer task; a new connection is registered at once and
//! opened in a spawned task, so what is sent meanwhile waits in its queue.
//!
//! Stream transports share one connection table (keyed by transport and
//! peer address: replies and forwards reuse the connection the peer opened)
//! and one accept-time table of limits (`[tcp]`, [`tcp::ConnTable`]). A
//! connection is a byte stream handed to [`tcp::serve_stream`] (TCP as is,
//! TLS once its handshake is done, [`tls`]); a transport with its own
//! framing (WebSocket, [`ws`]) registers its writer the same way and hands
//! each message to [`Inbound`]; the router never opens one of those.

mod sendsock;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod ws;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::util::lock;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

pub use crate::config::Proto;
use crate::config::TcpConfig;

/// Where a message came from and which local socket took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub proto: Proto,
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

/// Why a send was refused before it reached a socket.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no {0} listener to send from")]
    NoSocket(Proto),
    /// A WebSocket peer is only reached over the connection it opened.
    #[error(
        "no {0} connection from {1}: a WebSocket client is only reached over its own connection"
    )]
    NotConnected(Proto, SocketAddr),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where the transports hand what they receive (the router implements it).
/// The transports do not know what a SIP message means; this is their one
/// way up.
pub trait Inbound: Send + Sync + 'static {
    /// One message from the network: a datagram, or one message framed
    /// from a stream.
    fn receive(&self, data: Bytes, source: Source);

    /// An accepted stream connection (TCP, TLS, WebSocket) from
    /// `source.remote` ended: what was only reachable through it is not
    /// any more (Kamailio's `handle_lost_tcp`). Called from the
    /// connection's task; must not block.
    fn connection_closed(&self, _source: Source) {}
}

/// A network that is not there (`wisp test`, `wisp replay`): what the
/// router would send goes here instead of to a socket.
pub trait VirtualNet: Send + Sync + 'static {
    /// `data` would leave from `local` over `proto` to `dest`.
    fn send(&self, proto: Proto, local: Option<SocketAddr>, dest: SocketAddr, data: Bytes);
}

/// Handle to one stream connection's writer (open, or being opened: what
/// is sent meanwhile waits in the queue).
#[derive(Clone)]
pub(crate) struct ConnectionHandle {
    pub(crate) tx: mpsc::UnboundedSender<Bytes>,
}

/// A stream connection's key in the table: its transport and peer.
type ConnKey = (Proto, SocketAddr);

/// Most RFC 5923 aliases one connection may hold (Kamailio allows a few).
const MAX_ALIASES_PER_CONNECTION: usize = 4;

/// RFC 5923 aliases (`[tcp] accept_aliases`): other `IP:port`s of a peer
/// that its open connection serves, both ways so that a closing
/// connection takes its aliases along.
#[derive(Default)]
struct Aliases {
    /// An alias and the connection it stands for.
    to_conn: HashMap<ConnKey, ConnKey>,
    /// A connection's aliases.
    of_conn: HashMap<ConnKey, Vec<ConnKey>>,
}

/// All sockets of the router and the send path.
pub struct Transports {
    /// UDP sockets with their local addresses (asked once: `getsockname` on
    /// every send showed up in profiles).
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    tcp_listen: Vec<SocketAddr>,
    tls_listen: Vec<SocketAddr>,
    ws_listen: Vec<SocketAddr>,
    wss_listen: Vec<SocketAddr>,
    /// Open stream connections by transport and remote address: replies
    /// and forwards to a peer reuse the connection it opened (RFC 3261
    /// §18.2.2).
    connections: Mutex<HashMap<ConnKey, ConnectionHandle>>,
    /// Locked after `connections` when both are.
    aliases: Mutex<Aliases>,
    max_message_size: usize,
    /// Accepted TCP and TLS connections and their limits (`[tcp]`).
    tcp: Arc<tcp::ConnTable>,
    /// Certificates and trust of TLS, when a `tls:` listener exists.
    tls: Option<Arc<tls::TlsContext>>,
    /// Where messages go: a connection this side opens must hand what the
    /// peer sends on it to the same place as the receive loops.
    inbound: OnceLock<Weak<dyn Inbound>>,
    /// Set: nothing is sent, everything goes here ([`VirtualNet`]).
    virtual_net: Option<Arc<dyn VirtualNet>>,
}

impl Transports {
    pub fn new(
        udp: Vec<Arc<UdpSocket>>,
        tcp_listen: Vec<SocketAddr>,
        max_message_size: usize,
    ) -> Self {
        let udp = udp
            .into_iter()
            .filter_map(|s| Some((s.local_addr().ok()?, s)))
            .collect();
        Transports {
            udp,
            tcp_listen,
            tls_listen: Vec::new(),
            ws_listen: Vec::new(),
            wss_listen: Vec::new(),
            connections: Mutex::new(HashMap::new()),
            aliases: Mutex::new(Aliases::default()),
            max_message_size,
            tcp: tcp::ConnTable::new(TcpConfig::default()),
            tls: None,
            inbound: OnceLock::new(),
            virtual_net: None,
        }
    }

    /// Send nothing: every message goes to `net`. `udp` are the UDP
    /// listen addresses to claim (no socket is bound to them; `socket`,
    /// never written to, stands for each).
    pub fn with_virtual_net(
        mut self,
        udp: Vec<SocketAddr>,
        socket: Arc<UdpSocket>,
        net: Arc<dyn VirtualNet>,
    ) -> Self {
        self.udp = udp.into_iter().map(|a| (a, socket.clone())).collect();
        self.virtual_net = Some(net);
        self
    }

    /// Hand `data` to the virtual network instead of a socket.
    fn send_virtual(
        &self,
        net: &dyn VirtualNet,
        proto: Proto,
        dest: SocketAddr,
        from: Option<SocketAddr>,
        data: Bytes,
    ) {
        net.send(proto, self.local_for(proto, &dest, from), dest, data);
    }

    /// Use `config`'s TCP limits instead of the defaults.
    pub fn with_tcp(mut self, config: TcpConfig) -> Self {
        self.tcp = tcp::ConnTable::new(config);
        self
    }

    /// TLS listeners on `listen`, with the certificates and trust of `tls`
    /// (also what connections the router opens verify their peer with).
    pub fn with_tls(mut self, listen: Vec<SocketAddr>, tls: Arc<tls::TlsContext>) -> Self {
        self.tls_listen = listen;
        self.tls = Some(tls);
        self
    }

    /// WebSocket listeners: `ws` plain, `wss` over TLS (with the context
    /// of [`with_tls`](Self::with_tls), which must be given for them).
    pub fn with_ws(mut self, ws: Vec<SocketAddr>, wss: Vec<SocketAddr>) -> Self {
        self.ws_listen = ws;
        self.wss_listen = wss;
        self
    }

    /// The TLS certificates and trust (none without a `tls:` listener).
    pub fn tls(&self) -> Option<&Arc<tls::TlsContext>> {
        self.tls.as_ref()
    }

    /// The accepted TCP and TLS connections and their limits.
    pub fn tcp_table(&self) -> &Arc<tcp::ConnTable> {
        &self.tcp
    }

    /// Say where received messages go (once; later calls are ignored).
    pub fn set_inbound(&self, inbound: Weak<dyn Inbound>) {
        let _ = self.inbound.set(inbound);
    }

    pub(crate) fn inbound(&self) -> Option<Arc<dyn Inbound>> {
        self.inbound.get().and_then(Weak::upgrade)
    }

    /// The local address a message to `dest` over `proto` leaves from: the
    /// socket it came in on when given, else the first of the same family.
    pub fn local_for(
        &self,
        proto: Proto,
        dest: &SocketAddr,
        arrived_on: Option<SocketAddr>,
    ) -> Option<SocketAddr> {
        let candidates: Vec<SocketAddr> = match proto {
            Proto::Udp => self.udp.iter().map(|(a, _)| *a).collect(),
            Proto::Tcp => self.tcp_listen.clone(),
            Proto::Tls => self.tls_listen.clone(),
            Proto::Ws => self.ws_listen.clone(),
            Proto::Wss => self.wss_listen.clone(),
        };
        if let Some(a) = arrived_on
            && candidates.contains(&a)
            && a.is_ipv4() == dest.is_ipv4()
        {
            return Some(a);
        }
        candidates
            .iter()
            .find(|a| a.is_ipv4() == dest.is_ipv4())
            .or(candidates.first())
            .copied()
    }

    /// Send `data` to `dest`. `from` picks the local socket (UDP) when several exist.
    pub fn send(
        self: &Arc<Self>,
        proto: Proto,
        dest: SocketAddr,
        from: Option<SocketAddr>,
        data: Bytes,
    ) -> Result<(), SendError> {
        if let Some(net) = &self.virtual_net {
            self.send_virtual(net.as_ref(), proto, dest, from, data);
            return Ok(());
        }
        // Responses queued on this thread go first: what is sent now may
        // be caused by them.
        udp::send_queued_responses();
        match proto {
            Proto::Udp => self.send_udp(dest, from, data),
            _ => self.send_stream(proto, dest, None, data, None),
        }
    }

    /// [`send`](Self::send) to a peer known by name: a TLS connection
    /// opened for this message verifies the peer's certificate against
    /// `peer_name` (RFC 5922 §7: the host of the URI the request goes
    /// to), not against `dest`'s IP address. An open connection to `dest`
    /// is reused as it is.
    pub fn send_to_name(
        self: &Arc<Self>,
        proto: Proto,
        dest: SocketAddr,
        from: Option<SocketAddr>,
        peer_name: &str,
        data: Bytes,
    ) -> Result<(), SendError> {
        if let Some(net) = &self.virtual_net {
            self.send_virtual(net.as_ref(), proto, dest, from, data);
            return Ok(());
        }
        udp::send_queued_responses();
        match proto {
            Proto::Udp => self.send_udp(dest, from, data),
            _ => self.send_stream(proto, dest, Some(peer_name), data, None),
        }
    }

    /// Send a response, as [`send`](Self::send). While a UDP receive burst
    /// is being handled, a UDP response waits for the burst's end and leaves
    /// with the others in one `sendmmsg` (see [`udp`]); an error of that
    /// send is logged, not returned.
    pub fn send_response(
        self: &Arc<Self>,
        proto: Proto,
        dest: SocketAddr,
        from: Option<SocketAddr>,
        data: Bytes,
    ) -> Result<(), SendError> {
        self.send_batched(proto, dest, from, data, None)
    }

    /// Send a request that may wait for the end of the UDP receive burst,
    /// like a response: one `sendmmsg`, and one wake-up of the peer, for
    /// the burst's relayed requests instead of a `sendto` each. An error
    /// known now is returned; one found when the burst is sent goes to
    /// `on_error`, after the burst. Not for requests whose failure the
    /// route must see at once (stateless `forward`). Over a stream, a
    /// connection that cannot be opened (refused, or a TLS peer whose
    /// certificate does not verify as `peer_name`, see
    /// [`send_to_name`](Self::send_to_name)) goes to `on_error` too.
    pub fn send_request_batched(
        self: &Arc<Self>,
        proto: Proto,
        dest: SocketAddr,
        from: Option<SocketAddr>,
        peer_name: Option<&str>,
        data: Bytes,
        on_error: udp::OnSendError,
    ) -> Result<(), SendError> {
        if let Some(net) = &self.virtual_net {
            self.send_virtual(net.as_ref(), proto, dest, from, data);
            return Ok(());
        }
        if proto.is_stream() {
            udp::send_queued_responses();
            return self.send_stream(proto, dest, peer_name, data, Some(on_error));
        }
        self.send_batched(proto, dest, from, data, Some(on_error))
    }

    fn send_batched(
        self: &Arc<Self>,
        proto: Proto,
        dest: SocketAddr,
        from: Option<SocketAddr>,
        data: Bytes,
        on_error: Option<udp::OnSendError>,
    ) -> Result<(), SendError> {
        if let Some(net) = &self.virtual_net {
            self.send_virtual(net.as_ref(), proto, dest, from, data);
            return Ok(());
        }
        if proto == Proto::Udp {
            let sock = self.udp_socket(dest, from)?;
            return match udp::queue_datagram(sock, dest, data, on_error) {
                Ok(()) => Ok(()),
                Err((data, on_error)) => {
                    udp::send_datagram(sock, dest, data, on_error).map_err(|(e, _)| e.into())
                }
            };
        }
        self.send(proto, dest, from, data)
    }

    /// The UDP socket a datagram to `dest` leaves from: `from` when it is
    /// one, else the first of `dest`'s family, else any.
    fn udp_socket(
        &self,
        dest: SocketAddr,
        from: Option<SocketAddr>,
    ) -> Result<&Arc<UdpSocket>, SendError> {
        from.and_then(|f| self.udp.iter().find(|(a, _)| *a == f))
            .or_else(|| self.udp.iter().find(|(a, _)| a.is_ipv4() == dest.is_ipv4()))
            .or(self.udp.first())
            .map(|(_, s)| s)
            .ok_or(SendError::NoSocket(Proto::Udp))
    }

    fn send_udp(
        &self,
        dest: SocketAddr,
        from: Option<SocketAddr>,
        data: Bytes,
    ) -> Result<(), SendError> {
        udp::send_datagram(self.udp_socket(dest, from)?, dest, data, None)
            .map_err(|(e, _)| e.into())
    }

    /// Queue `data` on the connection to `dest`, or open one (TLS: its
    /// certificate verified against `peer_name`, else `dest`'s address).
    fn send_stream(
        self: &Arc<Self>,
        proto: Proto,
        dest: SocketAddr,
        peer_name: Option<&str>,
        data: Bytes,
        on_error: Option<udp::OnSendError>,
    ) -> Result<(), SendError> {
        let key = (proto, dest);
        // An answer on the connection this thread is serving.
        let data = match tcp::offer_to_serving(key, data) {
            Ok(()) => return Ok(()),
            Err(data) => data,
        };
        let mut conns = lock(&self.connections);
        if let Some(conn) = conns.get(&key) {
            if conn.tx.send(data.clone()).is_ok() {
                return Ok(());
            }
            conns.remove(&key);
        }
        // RFC 5923: the peer's connection from another port stands for it.
        if let Some(conn) = lock(&self.aliases)
            .to_conn
            .get(&key)
            .and_then(|c| conns.get(c))
            && conn.tx.send(data.clone()).is_ok()
        {
            return Ok(());
        }
        if proto.is_websocket() {
            // RFC 7118 §5.2: a Contact says `transport=ws` over WSS too;
            // the client's connection, whichever it is, is the way.
            let other = if proto == Proto::Ws {
                Proto::Wss
            } else {
                Proto::Ws
            };
            if let Some(conn) = conns.get(&(other, dest))
                && conn.tx.send(data).is_ok()
            {
                return Ok(());
            }
            return Err(SendError::NotConnected(proto, dest));
        }
        let listening = match proto {
            Proto::Tls => !self.tls_listen.is_empty() && self.tls.is_some(),
            _ => !self.tcp_listen.is_empty(),
        };
        if !listening {
            return Err(SendError::NoSocket(proto));
        }
        // No connection to this peer yet: register it now, so that what is
        // sent before it is open waits in its queue instead of opening a
        // second one, and open it without blocking the caller.
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(data);
        conns.insert(key, ConnectionHandle { tx: tx.clone() });
        drop(conns);
        let transports = Arc::clone(self);
        let peer_name = peer_name.map(str::to_owned);
        tokio::spawn(async move {
            let opened = match proto {
                Proto::Tls => {
                    tls::connect(
                        transports.clone(),
                        dest,
                        peer_name.as_deref(),
                        tx.clone(),
                        rx,
                    )
                    .await
                }
                _ => tcp::connect(transports.clone(), dest, tx.clone(), rx).await,
            };
            if let Err(e) = opened {
                crate::log_limited!(warn, %dest, "{proto} connection not opened: {e}");
                transports.forget_connection_of(key, &tx);
                if let Some(on_error) = on_error {
                    on_error(e);
                }
            }
        });
        Ok(())
    }

    /// Queue `data` on the open stream connection to `dest`, opening none:
    /// false when there is none (a keepalive to a client that is gone).
    pub fn send_if_connected(&self, proto: Proto, dest: SocketAddr, data: Bytes) -> bool {
        lock(&self.connections)
            .get(&(proto, dest))
            .is_some_and(|c| c.tx.send(data).is_ok())
    }

    /// The transport a message to `dest` really goes by: a URI says
    /// `transport=ws` for a client on WSS too (RFC 7118 §5.2), so a
    /// WebSocket hop takes the transport of the client's open connection.
    /// Any other transport is returned as it is.
    pub fn connected_proto(&self, proto: Proto, dest: SocketAddr) -> Proto {
        if !proto.is_websocket() {
            return proto;
        }
        let conns = lock(&self.connections);
        if conns.contains_key(&(proto, dest)) {
            return proto;
        }
        let other = if proto == Proto::Ws {
            Proto::Wss
        } else {
            Proto::Ws
        };
        if conns.contains_key(&(other, dest)) {
            other
        } else {
            proto
        }
    }

    pub(crate) fn register_connection(&self, key: ConnKey, handle: ConnectionHandle) {
        lock(&self.connections).insert(key, handle);
    }

    /// Forget the connection `key` if it is still the one writing to `tx`
    /// (a newer one to the same peer stays), and its aliases.
    pub(crate) fn forget_connection_of(&self, key: ConnKey, tx: &mpsc::UnboundedSender<Bytes>) {
        let mut conns = lock(&self.connections);
        if conns.get(&key).is_some_and(|c| c.tx.same_channel(tx)) {
            conns.remove(&key);
            let mut aliases = lock(&self.aliases);
            for alias in aliases.of_conn.remove(&key).unwrap_or_default() {
                if aliases.to_conn.get(&alias) == Some(&key) {
                    aliases.to_conn.remove(&alias);
                }
            }
        }
    }

    /// RFC 5923 `;alias` in the top Via of a request that arrived over
    /// the stream connection `conn` (TCP or TLS): with `[tcp]
    /// accept_aliases`, requests to the connection's address at `via_port`
    /// go over that connection from now on. Only the port is the peer's
    /// word; a connection of its own to that address stays the way to it.
    /// Returns whether the alias is in place.
    pub fn accept_alias(&self, conn: ConnKey, via_port: u16) -> bool {
        let (proto, remote) = conn;
        if !self.tcp.config.accept_aliases || !matches!(proto, Proto::Tcp | Proto::Tls) {
            return false;
        }
        let alias = (proto, SocketAddr::new(remote.ip(), via_port));
        if alias == conn {
            return true;
        }
        let conns = lock(&self.connections);
        if !conns.contains_key(&conn) || conns.contains_key(&alias) {
            return false;
        }
        let mut aliases = lock(&self.aliases);
        if aliases.to_conn.get(&alias) == Some(&conn) {
            return true;
        }
        if aliases.of_conn.get(&conn).map_or(0, Vec::len) >= MAX_ALIASES_PER_CONNECTION {
            return false;
        }
        // The port may have moved from an older connection of the peer.
        if let Some(old) = aliases.to_conn.insert(alias, conn)
            && let Some(list) = aliases.of_conn.get_mut(&old)
        {
            list.retain(|a| *a != alias);
        }
        aliases.of_conn.entry(conn).or_default().push(alias);
        true
    }

    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The transports RFC 3263 resolution may pick, in order of preference.
    pub fn supported_dns_transports(&self) -> Vec<wisp_dns::Transport> {
        let mut v = Vec::new();
        if !self.udp.is_empty() {
            v.push(wisp_dns::Transport::Udp);
        }
        if !self.tcp_listen.is_empty() {
            v.push(wisp_dns::Transport::Tcp);
        }
        if !self.tls_listen.is_empty() {
            v.push(wisp_dns::Transport::Tls);
        }
        v
    }

    /// Every local listen address with its transport.
    pub fn listen_addrs(&self) -> Vec<(Proto, SocketAddr)> {
        let mut v: Vec<_> = self.udp.iter().map(|(a, _)| (Proto::Udp, *a)).collect();
        v.extend(self.tcp_listen.iter().map(|a| (Proto::Tcp, *a)));
        v.extend(self.tls_listen.iter().map(|a| (Proto::Tls, *a)));
        v.extend(self.ws_listen.iter().map(|a| (Proto::Ws, *a)));
        v.extend(self.wss_listen.iter().map(|a| (Proto::Wss, *a)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transports(accept_aliases: bool) -> Transports {
        let mut t = Transports::new(vec![], vec!["127.0.0.1:5060".parse().expect("addr")], 65535);
        t.tcp = tcp::ConnTable::new(TcpConfig {
            accept_aliases,
            ..TcpConfig::default()
        });
        t
    }

    fn open(t: &Transports, remote: &str) -> (ConnKey, mpsc::UnboundedSender<Bytes>) {
        let key = (Proto::Tcp, remote.parse().expect("addr"));
        let (tx, _rx) = mpsc::unbounded_channel();
        t.register_connection(key, ConnectionHandle { tx: tx.clone() });
        (key, tx)
    }

    fn alias_of(t: &Transports, alias: &str) -> Option<ConnKey> {
        let alias = (Proto::Tcp, alias.parse().expect("addr"));
        lock(&t.aliases).to_conn.get(&alias).copied()
    }

    /// RFC 5923 aliases: only with the switch, only the connection's own
    /// address, a few per connection, gone with the connection.
    #[test]
    fn an_alias_names_the_connections_address_and_leaves_with_it() {
        let off = transports(false);
        let (conn, _) = open(&off, "192.0.2.7:40001");
        assert!(!off.accept_alias(conn, 5060));

        let t = transports(true);
        let (conn, tx) = open(&t, "192.0.2.7:40001");
        assert!(t.accept_alias(conn, 5060));
        assert_eq!(alias_of(&t, "192.0.2.7:5060"), Some(conn));
        // A port the peer has a connection from stays that connection's.
        let (other, _) = open(&t, "192.0.2.7:40002");
        assert!(!t.accept_alias(conn, 40002));
        assert_eq!(alias_of(&t, "192.0.2.7:40002"), None);
        // At most MAX_ALIASES_PER_CONNECTION ports per connection.
        for port in 5061..5061 + MAX_ALIASES_PER_CONNECTION as u16 - 1 {
            assert!(t.accept_alias(conn, port));
        }
        assert!(!t.accept_alias(conn, 6000));
        // The closing connection takes its aliases along; others stay.
        assert!(t.accept_alias(other, 7000));
        t.forget_connection_of(conn, &tx);
        assert_eq!(alias_of(&t, "192.0.2.7:5060"), None);
        assert_eq!(alias_of(&t, "192.0.2.7:7000"), Some(other));
    }
}
