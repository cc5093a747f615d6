//! The router, the composition root: binds the sockets of the manifest,
//! builds every layer over them, loads the plugins, and runs each incoming
//! message (it is the transports' [`Inbound`]): sanity checks, the plugins'
//! `route`, responses to their transaction or along Via. It also runs the
//! failure routes the transaction layer hands it on a channel; nothing
//! below calls up.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use wisp_sip::Message;

use crate::config::{Manifest, Proto};
use crate::plugin::chain::PluginChain;
use crate::plugin::host::HostContext;
use crate::plugin::{PluginRuntime, owner_build};
use crate::services::Services;
use crate::services::acc::{AccDb, AccLog};
use crate::services::auth::subscribers::Subscribers;
use crate::services::auth::{AuthService, Directory};
use crate::services::keepalive::Keepalive;
use crate::services::usrloc::Usrloc;
use crate::stateless::{RouteKind, Stateless, forward, reply, sanity};
use crate::stats::{self, Counter};
use crate::tm::acc::Accounting;
use crate::tm::timer::{Clock, SystemClock};
use crate::tm::{FailureWork, RequestMatch, ResponseMatch, RouteContext, RouteOwner, Tm};
use crate::transport::tls::TlsContext;
use crate::transport::{self, Inbound, Source, Transports, VirtualNet};
use crate::util::lock;

/// How often expired user location bindings are dropped from memory.
pub const USRLOC_PURGE: Duration = Duration::from_secs(10);

/// The running router.
pub struct Router {
    /// Every layer below the plugins (what plugins act on).
    host: Arc<HostContext>,
    plugins: Arc<PluginChain>,
    /// Subscribers and groups (`wisp ctl user|acl`, digest authentication).
    subscribers: Arc<Subscribers>,
    udp: Vec<Arc<UdpSocket>>,
    /// Taken by [`serve`](Self::serve).
    tcp: Mutex<Vec<TcpListener>>,
    /// Taken by [`serve`](Self::serve).
    tls: Mutex<Vec<TcpListener>>,
    /// WebSocket listeners (`Ws` or `Wss`); taken by [`serve`](Self::serve).
    ws: Mutex<Vec<(Proto, TcpListener)>>,
    failure_routes: Mutex<Option<mpsc::UnboundedReceiver<FailureWork>>>,
    /// Receive workers per UDP socket, once [`serve`](Self::serve) ran.
    workers: std::sync::atomic::AtomicUsize,
    started: std::time::SystemTime,
    /// Keepalives of contacts behind NAT (`[nat]`); `None` when off.
    keepalive: Option<Arc<Keepalive>>,
}

impl Router {
    /// Bind every listen address, build the layers and load the plugins.
    /// Fails (naming what) when a socket cannot be bound, the user location
    /// database cannot be opened or a plugin does not load.
    pub async fn bind(manifest: Manifest) -> anyhow::Result<Arc<Router>> {
        Router::bind_inner(manifest, None, None).await
    }

    /// [`bind`](Self::bind) on a network that is not there: no socket is
    /// bound, the listen addresses are claimed as they are written, and
    /// what the router sends goes to `net`. Transaction timers read
    /// `clock` and fire only by [`fire_timers`](Self::fire_timers);
    /// messages come in by [`Inbound::receive`]. What `wisp test` and
    /// `wisp replay` run plugins in.
    pub async fn bind_virtual(
        manifest: Manifest,
        net: Arc<dyn VirtualNet>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Arc<Router>> {
        Router::bind_inner(manifest, None, Some((net, clock))).await
    }

    /// [`bind`](Self::bind), with `directory` instead of the subscriber
    /// store as what the auth host functions read (tests that need
    /// subscribers without a database).
    pub async fn bind_with_directory(
        manifest: Manifest,
        directory: Arc<dyn Directory>,
    ) -> anyhow::Result<Arc<Router>> {
        Router::bind_inner(manifest, Some(directory), None).await
    }

    async fn bind_inner(
        manifest: Manifest,
        directory: Option<Arc<dyn Directory>>,
        virtual_net: Option<(Arc<dyn VirtualNet>, Arc<dyn Clock>)>,
    ) -> anyhow::Result<Arc<Router>> {
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        let mut tcp_addrs = Vec::new();
        let (mut tls, mut tls_addrs) = (Vec::new(), Vec::new());
        let (mut ws, mut ws_addrs, mut wss_addrs) = (Vec::new(), Vec::new(), Vec::new());
        let mut virtual_udp = Vec::new();
        for l in &manifest.server.listen {
            if virtual_net.is_some() {
                match l.proto {
                    Proto::Udp => virtual_udp.push(l.addr),
                    Proto::Tcp => tcp_addrs.push(l.addr),
                    Proto::Tls => tls_addrs.push(l.addr),
                    Proto::Ws => ws_addrs.push(l.addr),
                    Proto::Wss => wss_addrs.push(l.addr),
                }
                continue;
            }
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
                Proto::Tls => {
                    let s = TcpListener::bind(l.addr)
                        .await
                        .with_context(|| format!("cannot listen on tls:{}", l.addr))?;
                    tls_addrs.push(s.local_addr()?);
                    tls.push(s);
                }
                Proto::Ws | Proto::Wss => {
                    let s = TcpListener::bind(l.addr)
                        .await
                        .with_context(|| format!("cannot listen on {}:{}", l.proto, l.addr))?;
                    match l.proto {
                        Proto::Ws => ws_addrs.push(s.local_addr()?),
                        _ => wss_addrs.push(s.local_addr()?),
                    }
                    ws.push((l.proto, s));
                }
            }
        }
        let mut transports =
            Transports::new(udp.clone(), tcp_addrs, manifest.server.max_message_size)
                .with_tcp(manifest.tcp.clone());
        transports = transports.with_ws(ws_addrs, wss_addrs.clone());
        let clock: Arc<dyn Clock> = match virtual_net {
            Some((net, clock)) => {
                // Never written to: the virtual network takes every send.
                let unused = bind_udp(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .context("a placeholder UDP socket")?;
                transports = transports.with_virtual_net(virtual_udp, Arc::new(unused), net);
                clock
            }
            None => Arc::new(SystemClock),
        };
        if !tls.is_empty() || !wss_addrs.is_empty() {
            let ctx = TlsContext::new(&manifest.tls, &manifest.base_dir).context("[tls]")?;
            transports = transports.with_tls(tls_addrs, ctx);
        }
        let transports = Arc::new(transports);
        let db_path = manifest.resolve(&manifest.usrloc.db_path);
        let db_name = match &manifest.usrloc.db_url {
            Some(url) => crate::store::postgres::redact(url),
            None => db_path.display().to_string(),
        };
        // Deferred replies (write-through) are sent from the writer thread
        // inside this runtime, so they may use its sockets and spawn.
        let usrloc = Usrloc::open(
            manifest.usrloc.clone(),
            &db_path,
            tokio::runtime::Handle::try_current().ok(),
        )
        .with_context(|| format!("user location database {db_name}"))?;
        // The subscribers share that database, and its memory-only mode. On
        // PostgreSQL they follow other routers' changes and wait for a
        // database that is away, whatever the db_mode.
        let subscribers = match &manifest.usrloc.db_url {
            Some(url) if usrloc.persistent() => {
                Subscribers::open_shared(manifest.subscriber.clone(), url)
            }
            _ => Subscribers::open(
                manifest.subscriber.clone(),
                usrloc.persistent().then_some(db_path.as_path()),
            )
            .map(Arc::new),
        };
        let subscribers = subscribers.with_context(|| format!("subscriber database {db_name}"))?;
        let usrloc_persistent = usrloc.persistent();
        let resolver = match wisp_dns::Resolver::from_system_conf() {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("DNS resolver unavailable, names will not resolve: {e}");
                None
            }
        };
        // The layers, bottom up; plugins act on all of them.
        let sl = Arc::new(
            Stateless::new(
                transports.clone(),
                &manifest.server.aliases,
                manifest.rr.clone(),
            )
            .with_identity(
                &manifest.server.server_header,
                &manifest.server.user_agent_header,
            )
            .with_sip_warning(manifest.server.sip_warning),
        );
        let (tm, failure_routes) = Tm::new(&manifest.tm, clock, sl.clone(), resolver);
        if manifest.auth.secret().is_none() {
            tracing::info!(
                "auth: no [auth] secret configured, using a random one: nonces will not survive a restart or be accepted by another router"
            );
        }
        let directory = directory.unwrap_or_else(|| subscribers.clone());
        let auth = AuthService::new(&manifest.auth, directory);
        let mut services = Services::new(usrloc, tm.clone())
            .with_auth(auth)
            .with_limits(&manifest.pike, &manifest.htable);
        if manifest.acc.enabled() {
            // The records' table is in the user-location database, if any.
            let db =
                (manifest.acc.db && usrloc_persistent).then(|| match &manifest.usrloc.db_url {
                    Some(url) => AccDb::Postgres(url.clone()),
                    None => AccDb::Sqlite(db_path.clone()),
                });
            let log = AccLog::spawn(&manifest.acc, db).context("accounting log thread")?;
            tm.set_accounting(Accounting::new(&manifest.acc, log.clone()));
            services = services.with_acc(log);
        }
        if !manifest.rtpengine.sockets.is_empty() {
            let relay = crate::services::rtpengine::Rtpengine::start(&manifest.rtpengine)
                .await
                .context("rtpengine control socket")?;
            tm.set_media_relay(relay);
        }
        let keepalive = Keepalive::new(&manifest.nat, services.usrloc());
        let services = Arc::new(services);
        let host = Arc::new(HostContext {
            sl,
            tm,
            services,
            base_dir: manifest.base_dir.clone(),
            cache_dir: manifest.plugin_cache_dir(),
        });
        let plugins = PluginChain::load(&host, &manifest)?;
        let router = Arc::new(Router {
            host,
            plugins: Arc::new(plugins),
            subscribers,
            udp,
            tcp: Mutex::new(tcp),
            tls: Mutex::new(tls),
            ws: Mutex::new(ws),
            failure_routes: Mutex::new(Some(failure_routes)),
            workers: std::sync::atomic::AtomicUsize::new(0),
            started: std::time::SystemTime::now(),
            keepalive,
        });
        let inbound: Arc<dyn Inbound> = router.clone();
        transports.set_inbound(Arc::downgrade(&inbound));
        Ok(router)
    }

    pub fn transports(&self) -> &Arc<Transports> {
        self.host.sl.transports()
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.host.services
    }

    /// The subscriber directory (what digest authentication checks).
    pub fn subscribers(&self) -> &Arc<Subscribers> {
        &self.subscribers
    }

    /// The layers plugins act on (benchmarks drive plugin instances with it).
    pub fn host(&self) -> &Arc<HostContext> {
        &self.host
    }

    /// Receive workers per UDP socket (0 before [`serve`](Self::serve)).
    pub fn workers(&self) -> usize {
        self.workers.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// When the router was built.
    pub fn started(&self) -> std::time::SystemTime {
        self.started
    }

    /// The plugin chain (reload, listing).
    pub fn plugins(&self) -> &Arc<PluginChain> {
        &self.plugins
    }

    /// Start the receive loops (`workers` per UDP socket), the transaction
    /// timers, the failure-route runner and the user location purge.
    pub fn serve(self: &Arc<Self>, workers: usize) {
        self.workers
            .store(workers, std::sync::atomic::Ordering::Relaxed);
        let limit = self.transports().max_message_size();
        for sock in &self.udp {
            transport::udp::serve(self.clone(), sock.clone(), workers, limit);
        }
        let tcp = std::mem::take(&mut *lock(&self.tcp));
        let tls = std::mem::take(&mut *lock(&self.tls));
        let ws = std::mem::take(&mut *lock(&self.ws));
        if !tcp.is_empty() || !tls.is_empty() || !ws.is_empty() {
            transport::tcp::fit_descriptor_limit(
                self.transports().tcp_table().config.max_connections,
            );
        }
        for l in tcp {
            let inbound: Arc<dyn Inbound> = self.clone();
            tokio::spawn(transport::tcp::accept_loop(
                self.transports().clone(),
                inbound,
                l,
            ));
        }
        if let Some(ctx) = self.transports().tls() {
            for l in tls {
                let inbound: Arc<dyn Inbound> = self.clone();
                tokio::spawn(transport::tls::accept_loop(
                    self.transports().clone(),
                    inbound,
                    l,
                    ctx.clone(),
                ));
            }
        }
        for (proto, l) in ws {
            let inbound: Arc<dyn Inbound> = self.clone();
            let tls = match proto {
                Proto::Wss => match self.transports().tls() {
                    Some(ctx) => Some(ctx.clone()),
                    None => continue,
                },
                _ => None,
            };
            tokio::spawn(transport::ws::accept_loop(
                self.transports().clone(),
                inbound,
                l,
                proto,
                tls,
            ));
        }
        tokio::spawn(self.host.tm.clone().run_timers());
        if let Some(mut work) = lock(&self.failure_routes).take() {
            let router = self.clone();
            tokio::spawn(async move {
                while let Some(w) = work.recv().await {
                    router.run_failure_route(w);
                }
            });
        }
        let services = self.host.services.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(USRLOC_PURGE);
            loop {
                tick.tick().await;
                let n = services.usrloc().purge_expired(Instant::now());
                if n > 0 {
                    tracing::debug!("usrloc: purged {n} expired bindings");
                }
            }
        });
        if let Some(keepalive) = &self.keepalive {
            tokio::spawn(
                keepalive
                    .clone()
                    .run(self.host.services.clone(), self.transports().clone()),
            );
        }
        // Pike forgets sources whose bucket refilled, once per unit.
        let services = self.host.services.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(services.pike().unit());
            loop {
                tick.tick().await;
                services.pike().sweep();
            }
        });
    }

    /// Fire the transaction timers due by the clock, and run the failure
    /// routes that makes due, at once (a router on a virtual network, whose
    /// timers do not run by themselves: see [`bind_virtual`](Self::bind_virtual)).
    pub fn fire_timers(&self) {
        self.host.tm.fire_due();
        self.run_pending_failure_routes();
    }

    /// Run the failure routes waiting on the channel, without waiting for
    /// more (a router on a virtual network, not [`serve`](Self::serve)d).
    pub fn run_pending_failure_routes(&self) {
        loop {
            let work = match lock(&self.failure_routes).as_mut() {
                Some(rx) => rx.try_recv().ok(),
                None => None,
            };
            match work {
                Some(w) => self.run_failure_route(w),
                None => return,
            }
        }
    }

    /// A request: sanity checks, retransmissions to their transaction, then
    /// the plugin chain.
    fn handle_request(&self, msg: Message, source: Source) {
        if let Some(m) = msg.method() {
            stats::request_received(m);
        }
        let summary = match sanity::check_request(&msg) {
            Ok(summary) => summary,
            Err(reason) => return self.refuse(msg, source, &reason),
        };
        if source.proto.is_stream() && summary.top_via.param("alias").is_some() {
            let port = summary.top_via.port.unwrap_or(source.proto.default_port());
            self.host
                .sl
                .transports()
                .accept_alias((source.proto, source.remote), port);
        }
        let mut ctx = Box::new(RouteContext::new(msg, source, summary, RouteKind::Request));
        if self.host.tm.on_request(&ctx) == RequestMatch::Absorbed {
            return;
        }
        ctx = match self.plugins.route(ctx) {
            Some(ctx) => ctx,
            None => return,
        };
        self.host.tm.route_finished(&mut ctx);
    }

    /// A response: to its transaction's branch (through the reply route
    /// when one is armed), else statelessly back along Via.
    fn handle_response(&self, msg: Message, source: Source) {
        if let Some(code) = msg.status() {
            stats::reply_received(code);
        }
        // An answer to a keepalive stops here.
        if self.keepalive.as_ref().is_some_and(|k| k.absorb(&msg)) {
            return;
        }
        match self.host.tm.match_response(&msg) {
            ResponseMatch::NotOurs => forward::forward_response(&self.host.sl, msg, source),
            ResponseMatch::Ended => {
                tracing::debug!(remote = %source.remote, "response for an ended transaction dropped");
            }
            ResponseMatch::Branch {
                txn,
                branch,
                on_reply,
            } => {
                let (msg, media) =
                    match on_reply.and_then(|r| Some((self.armed_by(r.owner)?, r.name))) {
                        Some((plugin, name)) if msg.status().is_some_and(|c| c > 100) => {
                            let summary = crate::tm::lock_summary(&txn);
                            let ctx = RouteContext::new(msg, source, summary, RouteKind::Reply);
                            match plugin.onreply_route(&name, Box::new(ctx)) {
                                Some(mut ctx) => {
                                    let media = ctx.media_reply.take();
                                    (ctx.base.msg, media)
                                }
                                None => return,
                            }
                        }
                        _ => (msg, None),
                    };
                // `rtpengine_answer`/`_manage`: the SDP goes through the relay first.
                self.host
                    .tm
                    .on_response_with_media(&txn, branch, msg, media);
            }
        }
    }

    /// Run a failure route. When its new branches fail at once, the
    /// transaction layer hands over the next one (bounded by the branch
    /// limit of a transaction).
    fn run_failure_route(&self, work: FailureWork) {
        let Some(plugin) = self.armed_by(work.route.owner) else {
            return;
        };
        if let Some(ctx) = plugin.failure_route(&work.route.name, work.ctx) {
            self.host.tm.failure_route_finished(&ctx);
        }
    }

    /// The build a failure or reply route runs in: the one that armed it.
    fn armed_by(&self, owner: Option<Arc<dyn RouteOwner>>) -> Option<Arc<PluginRuntime>> {
        owner
            .and_then(owner_build)
            .or_else(|| self.plugins.fallback())
    }

    /// A request that failed the sanity check: 400 with the reason (never to an ACK).
    fn refuse(&self, msg: Message, source: Source, reason: &str) {
        stats::inc(Counter::BadMessages);
        crate::log_limited!(info, remote = %source.remote, call_id = %crate::util::CallId(&msg), "400 {reason}");
        if msg.method() != Some(&wisp_sip::Method::Ack)
            && let Err(e) = reply::send_reply_unchecked(&self.host.sl, &msg, source, 400, reason)
        {
            crate::log_limited!(info, remote = %source.remote, call_id = %crate::util::CallId(&msg), "no 400 possible: {e}");
        }
    }
}

impl Inbound for Router {
    /// The bindings registered over the connection go with it: their
    /// `received` is that connection, and nothing else reaches them.
    fn connection_closed(&self, source: Source) {
        let received = crate::services::registrar::source_uri(source);
        let n = self.host.services.usrloc().remove_received(&received);
        if n > 0 {
            tracing::info!(
                "{n} binding(s) registered over {received} removed: the connection is gone"
            );
        }
    }

    /// One message from the network, from any transport.
    fn receive(&self, data: Bytes, source: Source) {
        // CRLF keepalives (RFC 5626 §3.5.1) carry no message.
        if data
            .iter()
            .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
        {
            return;
        }
        let msg = match Message::parse(data.clone()) {
            Ok(m) => m,
            Err(e) => {
                stats::inc(Counter::BadMessages);
                return reply::answer_unparsable(&self.host.sl, &data, source, &e.reason());
            }
        };
        if msg.is_request() {
            self.handle_request(msg, source)
        } else {
            self.handle_response(msg, source)
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
