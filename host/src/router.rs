//! The router: binds the sockets of the manifest, loads the plugin, and runs
//! each incoming message through sanity checks, the plugin's route and the
//! stateless core.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use tokio::net::{TcpListener, UdpSocket};
use wisp_sip::Message;

use crate::config::{Manifest, Proto};
use crate::msg_context::MsgContext;
use crate::plugin::PluginRuntime;
use crate::plugin::chain::PluginChain;
use crate::services::usrloc::Usrloc;
use crate::stateless::myself::Myself;
use crate::stateless::{forward, reply, sanity};
use crate::tm::timer::SystemClock;
use crate::tm::{FailureWork, RequestMatch, ResponseMatch, Tm};
use crate::transport::{self, Source, Transports};

/// What plugins act on: sockets, `myself`, user location. Everything but the
/// plugin itself, so plugin instances can hold it without a cycle.
pub struct RouterCore {
    manifest: Manifest,
    transports: Arc<Transports>,
    myself: Myself,
    usrloc: Usrloc,
    tm: Tm,
    /// RFC 3263 next-hop resolution; none when the system resolver
    /// configuration is unusable (then only IP literals are reachable).
    resolver: Option<wisp_dns::Resolver>,
}

impl RouterCore {
    /// A core with memory-only user location (tests, and whatever needs no database).
    pub fn new(manifest: Manifest, transports: Arc<Transports>) -> Self {
        let usrloc = Usrloc::new(manifest.usrloc.clone());
        RouterCore::with_usrloc(manifest, transports, usrloc)
    }

    /// A core over an already opened user location ([`Usrloc::open`]).
    pub fn with_usrloc(manifest: Manifest, transports: Arc<Transports>, usrloc: Usrloc) -> Self {
        let listen: Vec<SocketAddr> = transports
            .listen_addrs()
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        let myself = Myself::new(listen, &manifest.server.aliases);
        let tm = Tm::new(&manifest.tm, Arc::new(SystemClock));
        let resolver = match wisp_dns::Resolver::from_system_conf() {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("DNS resolver unavailable, names will not resolve: {e}");
                None
            }
        };
        RouterCore {
            resolver,
            manifest,
            transports,
            myself,
            usrloc,
            tm,
        }
    }
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    pub fn transports(&self) -> &Arc<Transports> {
        &self.transports
    }
    pub fn transports_arc(&self) -> &Arc<Transports> {
        &self.transports
    }
    pub fn myself(&self) -> &Myself {
        &self.myself
    }
    pub fn usrloc(&self) -> &Usrloc {
        &self.usrloc
    }
    pub fn tm(&self) -> &Tm {
        &self.tm
    }
    pub fn resolver(&self) -> Option<&wisp_dns::Resolver> {
        self.resolver.as_ref()
    }
}

/// The running router.
pub struct Router {
    core: Arc<RouterCore>,
    plugins: Arc<PluginChain>,
    udp: Vec<Arc<UdpSocket>>,
    tcp: std::sync::Mutex<Vec<TcpListener>>,
}

impl Router {
    /// Bind every listen address and load the plugin. Fails (naming what) when
    /// a socket cannot be bound or the plugin does not load.
    pub async fn bind(manifest: Manifest) -> anyhow::Result<Arc<Router>> {
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        let mut tcp_addrs = Vec::new();
        for l in &manifest.server.listen {
            match l.proto {
                Proto::Udp => {
                    let s = bind_udp(l.addr)
                        .with_context(|| format!("cannot listen on udp:{}", l.addr))?;
                    udp.push(Arc::new(s));
                }
                Proto::Tcp => {
                    let s = TcpListener::bind(l.addr)
                        .await
                        .with_context(|| format!("cannot listen on tcp:{}", l.addr))?;
                    tcp_addrs.push(s.local_addr()?);
                    tcp.push(s);
                }
            }
        }
        let transports = Arc::new(Transports::new(
            udp.clone(),
            tcp_addrs,
            manifest.server.max_message_size,
        ));
        let db_path = manifest.resolve(&manifest.usrloc.db_path);
        // Deferred replies (write-through) are sent from the writer thread
        // inside this runtime, so they may use its sockets and spawn.
        let usrloc = Usrloc::open(
            manifest.usrloc.clone(),
            &db_path,
            tokio::runtime::Handle::try_current().ok(),
        )
        .with_context(|| format!("user location database {}", db_path.display()))?;
        let chain = {
            let core = Arc::new(RouterCore::with_usrloc(
                manifest,
                transports.clone(),
                usrloc,
            ));
            (PluginChain::load(&core, core.manifest())?, core)
        };
        let (plugins, core) = chain;
        let router = Arc::new(Router {
            core,
            plugins: Arc::new(plugins),
            udp,
            tcp: std::sync::Mutex::new(tcp),
        });
        transports.set_router(Arc::downgrade(&router));
        Ok(router)
    }

    pub fn core(&self) -> &Arc<RouterCore> {
        &self.core
    }

    pub fn transports(&self) -> &Arc<Transports> {
        self.core.transports()
    }

    /// The plugin chain (reload, listing).
    pub fn plugins(&self) -> &Arc<PluginChain> {
        &self.plugins
    }

    /// Start receive loops (`workers` per UDP socket) and the housekeeping timer.
    pub fn serve(self: &Arc<Self>, workers: usize) {
        for sock in &self.udp {
            for _ in 0..workers.max(1) {
                tokio::spawn(transport::udp::receive_loop(self.clone(), sock.clone()));
            }
        }
        let listeners = std::mem::take(&mut *self.tcp.lock().unwrap_or_else(|p| p.into_inner()));
        for l in listeners {
            tokio::spawn(transport::tcp::accept_loop(self.clone(), l));
        }
        tokio::spawn(timer_driver(self.clone()));
        let core = self.core.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                let n = core.usrloc().purge_expired(Instant::now());
                if n > 0 {
                    tracing::debug!("usrloc: purged {n} expired bindings");
                }
            }
        });
    }

    /// One message from the network, from any transport.
    pub fn handle_incoming(&self, data: Bytes, source: Source) {
        // CRLF keepalives (RFC 5626 §3.5.1) carry no message.
        if data
            .iter()
            .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
        {
            return;
        }
        let msg = match Message::parse(data.clone()) {
            Ok(m) => m,
            Err(e) => return reply::answer_unparsable(&self.core, &data, source, &e.reason()),
        };
        if !msg.is_request() {
            return self.handle_response(msg, source);
        }
        let summary = match sanity::check_request(&msg) {
            Ok(summary) => summary,
            Err(reason) => return self.refuse(msg, source, &reason),
        };
        let ctx = Box::new(MsgContext::new(msg, source, summary));
        if self.core.tm().on_request(&self.core, &ctx) == RequestMatch::Absorbed {
            return;
        }
        let Some(ctx) = self.plugins.route(ctx) else {
            return;
        };
        if let Some(work) = self.core.tm().route_finished(&self.core, &ctx) {
            self.run_failure_route(work);
        }
    }

    /// A response: to its transaction's branch (through the reply route
    /// when one is armed), else statelessly back along Via.
    fn handle_response(&self, msg: Message, source: Source) {
        let tm = self.core.tm();
        match tm.match_response(&msg) {
            ResponseMatch::NotOurs => forward::forward_response(&self.core, msg, source),
            ResponseMatch::Ended => {
                tracing::debug!(remote = %source.remote, "response for an ended transaction dropped");
            }
            ResponseMatch::Branch {
                txn,
                branch,
                on_reply,
            } => {
                let msg = match on_reply.and_then(|r| Some((self.armed_by(r.plugin)?, r.name))) {
                    Some((plugin, name)) if msg.status().is_some_and(|c| c > 100) => {
                        let summary = crate::tm::lock_summary(&txn);
                        let mut ctx = Box::new(MsgContext::new(msg, source, summary));
                        ctx.route = crate::msg_context::RouteKind::Reply;
                        match plugin.onreply_route(&name, ctx) {
                            Some(ctx) => ctx.msg,
                            None => return,
                        }
                    }
                    _ => msg,
                };
                if let Some(work) = tm.on_response(&self.core, &txn, branch, msg) {
                    self.run_failure_route(work);
                }
            }
        }
    }

    /// Run a failure route, and the next one it arms when its new branches
    /// fail at once (bounded by the branch limit of a transaction).
    pub(crate) fn run_failure_route(&self, mut work: FailureWork) {
        loop {
            let Some(plugin) = self.armed_by(work.route.plugin) else {
                return;
            };
            let Some(ctx) = plugin.failure_route(&work.route.name, work.ctx) else {
                return;
            };
            match self.core.tm().failure_route_finished(&self.core, &ctx) {
                Some(next) => work = next,
                None => return,
            }
        }
    }

    /// The build a failure or reply route runs in: the one that armed it.
    fn armed_by(&self, plugin: Option<Arc<PluginRuntime>>) -> Option<Arc<PluginRuntime>> {
        plugin.or_else(|| self.plugins.fallback())
    }

    /// A request that failed the sanity check: 400 with the reason (never to an ACK).
    fn refuse(&self, msg: Message, source: Source, reason: &str) {
        tracing::info!(remote = %source.remote, "400 {reason}");
        if msg.method() != Some(&wisp_sip::Method::Ack)
            && let Err(e) = reply::send_reply_unchecked(&self.core, &msg, source, 400, reason)
        {
            tracing::info!(remote = %source.remote, "no 400 possible: {e}");
        }
    }
}

/// Fires the transaction layer's timers: sleeps until the earliest is due,
/// or until an earlier one is scheduled.
async fn timer_driver(router: Arc<Router>) {
    let tm = router.core.tm();
    loop {
        let wake = tm.timer_wake().notified();
        let sleep = match tm.next_deadline() {
            Some(at) => at.saturating_duration_since(tm.clock().now()),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = wake => {}
            _ = tokio::time::sleep(sleep) => {}
        }
        for work in tm.fire_due(&router.core) {
            router.run_failure_route(work);
        }
    }
}

/// A UDP socket with large kernel buffers, so bursts are not dropped.
/// Kernel buffers larger than Kamailio's `maxbuffer` probing reaches for: a
/// burst of requests waits in the socket, not on the floor.
const UDP_BUFFER: usize = 4 << 20;

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // The kernel caps these at net.core.{r,w}mem_max; a smaller buffer than
    // asked for is not an error, only a note in the log.
    for (what, result) in [
        ("receive", sock.set_recv_buffer_size(UDP_BUFFER)),
        ("send", sock.set_send_buffer_size(UDP_BUFFER)),
    ] {
        if let Err(e) = result {
            tracing::info!(%addr, "udp {what} buffer not enlarged: {e}");
        }
    }
    sock.bind(&addr.into())?;
    sock.set_nonblocking(true)?;
    UdpSocket::from_std(sock.into())
}
