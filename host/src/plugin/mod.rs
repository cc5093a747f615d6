//! Plugins: the wasmtime engine, loading and checking a component, a pool of
//! ready instances, and calling `route` with a deadline and a memory cap.
//!
//! A fresh instance costs more than a whole message's budget, so instances
//! are created once and reused; one that trapped (deadline, memory, panic) is
//! thrown away and replaced on demand. Each call gets the message as a
//! resource that is removed after the call, so no message state survives
//! into the next call.
//!
//! One [`PluginRuntime`] is one loaded build (version) of a plugin. The
//! manifest's plugins form a [`chain::PluginChain`]; each of its slots holds
//! the current version and swaps it on reload ([`watch`] for file changes).
//! Transactions keep the version that armed their routes: it is their
//! [`RouteOwner`].

pub mod bindings;
mod breaker;
pub mod cache;
pub mod chain;
pub mod host;
pub mod watch;

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, Store, StoreLimitsBuilder};

use self::bindings::{Plugin, PluginPre};
use self::breaker::{Breaker, Event as BreakerEvent};
use self::host::HostContext;
use self::host::PluginState;
use crate::config::PluginConfig;
use crate::stats::CallEnd;
use crate::tm::{RouteContext, RouteOwner};

/// The WIT package this router implements (`package` in `wit/*.wit`).
pub const WIT_PACKAGE: &str = "wisp:router@0.2.0";

/// A component built against another version of the contract fails to
/// link anyway, with wasmtime's message about a missing instance; this
/// check says what an operator needs to know instead. Versions are
/// compatible as wasmtime's linker matches them: the same major version,
/// and for 0.x the same minor.
fn check_contract_version(
    engine: &Engine,
    component: &wasmtime::component::Component,
) -> Result<(), PluginError> {
    fn compatible(version: &str) -> Option<&str> {
        let mut parts = version.splitn(3, '.');
        let major = parts.next()?;
        let minor = parts.next()?;
        Some(if major == "0" {
            &version[..major.len() + 1 + minor.len()]
        } else {
            major
        })
    }
    let ours = WIT_PACKAGE
        .rsplit_once('@')
        .and_then(|(_, v)| compatible(v));
    for (name, _) in component.component_type().imports(engine) {
        let Some(interface) = name.strip_prefix("wisp:router/") else {
            continue;
        };
        let version = interface.rsplit_once('@').map(|(_, v)| v);
        if version.and_then(compatible) != ours {
            return Err(PluginError::ContractVersion {
                found: format!("wisp:router@{}", version.unwrap_or("(no version)")),
            });
        }
    }
    Ok(())
}

/// How often the engine's epoch advances; deadlines are counted in these.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read component: {0}")]
    Read(std::io::Error),
    #[error("not a valid wisp:router component: {0:#}")]
    Compile(wasmtime::Error),
    #[error("the component does not fit the wisp:router world: {0:#}")]
    Link(wasmtime::Error),
    #[error(
        "the component was built against {found}, this router implements {WIT_PACKAGE}: \
         rebuild it with the current wisp-sdk (`make plugins`)"
    )]
    ContractVersion { found: String },
    #[error("instantiation failed: {0:#}")]
    Instantiate(wasmtime::Error),
    #[error("init refused: {0}")]
    InitRefused(String),
    #[error("init trapped: {0:#}")]
    InitTrapped(wasmtime::Error),
    #[error("held back for {} ms: new instances keep failing", .0.as_millis())]
    HeldBack(Duration),
}

/// A build is the owner of the routes it arms: a transaction holds it
/// ([`crate::tm::OwnerHold`]) until it ends, which keeps the build loaded
/// after a reload and counts the transaction as live.
impl RouteOwner for PluginRuntime {
    fn armed(&self) {
        self.live_txns.fetch_add(1, Ordering::Relaxed);
    }

    fn released(&self) {
        self.live_txns.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The build an owner handed back by the transaction layer is, if it is one.
pub fn owner_build(owner: Arc<dyn RouteOwner>) -> Option<Arc<PluginRuntime>> {
    let any: Arc<dyn std::any::Any + Send + Sync> = owner;
    any.downcast::<PluginRuntime>().ok()
}

/// SHA-256 of a component file, hex: a build's identity.
pub(crate) fn hash_of(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// One engine per process; its epoch ticker runs on a thread of its own.
fn engine() -> Result<&'static Engine, PluginError> {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    if let Some(e) = ENGINE.get() {
        return Ok(e);
    }
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    let engine = Engine::new(&config).map_err(PluginError::Compile)?;
    let engine = ENGINE.get_or_init(|| engine);
    let ticker = engine.clone();
    std::thread::Builder::new()
        .name("wisp-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                ticker.increment_epoch();
            }
        })
        .map_err(PluginError::Read)?;
    Ok(engine)
}

struct Instance {
    store: Store<PluginState>,
    plugin: Plugin,
}

/// One loaded build of a plugin: compiled, linked, checked, with a pool of
/// instances.
pub struct PluginRuntime {
    name: Arc<str>,
    /// SHA-256 of the component file, hex: what `plugin list` shows and
    /// what a reload compares to tell a new build from the same one.
    hash: String,
    loaded_at: SystemTime,
    pre: PluginPre<PluginState>,
    host: Arc<HostContext>,
    params: Vec<(String, String)>,
    deadline_ticks: u64,
    memory_bytes: usize,
    table_elements: usize,
    caps: Arc<host::Capabilities>,
    pool: Mutex<Vec<Instance>>,
    /// Calls that trapped or overran their deadline, and instances that
    /// could not be made.
    failures: AtomicU64,
    /// Transactions whose failure or reply route this build armed.
    live_txns: AtomicUsize,
    /// Calls, traps and call latency of this build (the metrics).
    stats: crate::stats::PluginStats,
    /// Holds back new instances while none can be made.
    breaker: Breaker,
}

impl PluginRuntime {
    /// Compile and link the component at `path`, and make one instance (which
    /// runs `init`) to prove it works before any traffic reaches it.
    pub fn load(
        host: Arc<HostContext>,
        cfg: &PluginConfig,
        path: &Path,
    ) -> Result<Self, PluginError> {
        let bytes = std::fs::read(path).map_err(PluginError::Read)?;
        PluginRuntime::from_component(host, cfg, &bytes)
    }

    /// [`load`](Self::load) from the component's bytes already read.
    pub fn from_component(
        host: Arc<HostContext>,
        cfg: &PluginConfig,
        bytes: &[u8],
    ) -> Result<Self, PluginError> {
        let engine = engine()?;
        let hash = hash_of(bytes);
        let cache = host.cache_dir.clone().map(cache::ComponentCache::new);
        let component = cache::load_component(engine, bytes, cache.as_ref(), &cfg.name)
            .map_err(PluginError::Compile)?;
        check_contract_version(engine, &component)?;
        let mut linker: Linker<PluginState> = Linker::new(engine);
        Plugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(PluginError::Link)?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(PluginError::Link)?;
        let pre = PluginPre::new(pre).map_err(PluginError::Link)?;
        let runtime = PluginRuntime {
            caps: host::Capabilities::from_config(cfg, &host.base_dir),
            name: Arc::from(cfg.name.as_str()),
            hash,
            loaded_at: SystemTime::now(),
            pre,
            host,
            params: cfg.params_as_strings(),
            deadline_ticks: cfg
                .deadline_ms
                .div_ceil(EPOCH_TICK.as_millis() as u64)
                .max(1),
            memory_bytes: (cfg.memory_mb as usize) << 20,
            table_elements: cfg.max_table_elements,
            pool: Mutex::new(Vec::new()),
            failures: AtomicU64::new(0),
            live_txns: AtomicUsize::new(0),
            stats: crate::stats::PluginStats::new(),
            breaker: Breaker::default(),
        };
        let first = runtime.instantiate()?;
        runtime.checkin(first);
        Ok(runtime)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls that trapped or overran their deadline, and instances that
    /// could not be made, since load.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// SHA-256 of the component, hex.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The first 12 hex digits of [`hash`](Self::hash), as logs and
    /// `plugin list` show it.
    pub fn short_hash(&self) -> &str {
        &self.hash[..12]
    }

    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// Calls, traps and latency of this build.
    pub fn stats(&self) -> &crate::stats::PluginStats {
        &self.stats
    }

    /// Idle instances in this build's pool (one per worker that called it,
    /// more after a burst); in use ones are not counted.
    pub fn pooled_instances(&self) -> usize {
        crate::util::lock(&self.pool).len()
    }

    /// Transactions that will still run a failure or reply route of this build.
    pub fn live_transactions(&self) -> usize {
        self.live_txns.load(Ordering::Relaxed)
    }

    fn instantiate(&self) -> Result<Instance, PluginError> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.memory_bytes)
            .table_elements(self.table_elements)
            .instances(16)
            .tables(16)
            .memories(4)
            .trap_on_grow_failure(true)
            .build();
        let state = PluginState::new(self.host.clone(), self.name.clone(), limits)
            .with_capabilities(self.caps.clone())
            .with_version(self.short_hash());
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(self.deadline_ticks);
        let plugin = self
            .pre
            .instantiate(&mut store)
            .map_err(PluginError::Instantiate)?;
        store.set_epoch_deadline(self.deadline_ticks);
        plugin
            .call_init(&mut store, &self.params)
            .map_err(PluginError::InitTrapped)?
            .map_err(PluginError::InitRefused)?;
        Ok(Instance { store, plugin })
    }

    /// A pooled instance, or a new one. Making one (tens of microseconds
    /// plus `init`) happens on the caller's thread, so a request that
    /// finds the pool empty after a trap pays for its replacement.
    fn checkout(&self) -> Result<Instance, PluginError> {
        let pooled = crate::util::lock(&self.pool).pop();
        if let Some(i) = pooled {
            return Ok(i);
        }
        if let Some(left) = self.breaker.held_back(Instant::now()) {
            return Err(PluginError::HeldBack(left));
        }
        match self.instantiate() {
            Ok(i) => {
                self.breaker.record(BreakerEvent::Created, Instant::now);
                Ok(i)
            }
            Err(e) => {
                self.note_failure(BreakerEvent::CreateFailed);
                Err(e)
            }
        }
    }

    /// A call trapped or an instance could not be made: count it, and hold
    /// back new instances when none can be made.
    fn note_failure(&self, event: BreakerEvent) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if let Some(pause) = self.breaker.record(event, Instant::now) {
            tracing::warn!(
                plugin = &*self.name,
                version = self.short_hash(),
                "no instance of the plugin can be made: none tried for {} ms; requests meanwhile are answered 500",
                pause.as_millis()
            );
        }
    }

    fn checkin(&self, instance: Instance) {
        crate::util::lock(&self.pool).push(instance);
    }

    /// Run the plugin's `route` on a request. Whatever happens inside, the
    /// request is answered, relayed or deliberately dropped when this
    /// returns; the message comes back for the transaction layer.
    pub fn route(self: &Arc<Self>, ctx: Box<RouteContext>) -> Option<Box<RouteContext>> {
        self.call(Export::Route, ctx)
    }

    /// Run `failure-route(name)` on a transaction's request.
    pub fn failure_route(
        self: &Arc<Self>,
        name: &str,
        ctx: Box<RouteContext>,
    ) -> Option<Box<RouteContext>> {
        self.call(Export::Failure(name), ctx)
    }

    /// Run `onreply-route(name)` on a response; the (possibly edited)
    /// response comes back to be relayed.
    pub fn onreply_route(
        self: &Arc<Self>,
        name: &str,
        ctx: Box<RouteContext>,
    ) -> Option<Box<RouteContext>> {
        self.call(Export::Reply(name), ctx)
    }

    /// The message travels boxed: it is over a kilobyte, and a call moves it
    /// into the store and back out, which for the bare struct cost more
    /// than the route call's own bookkeeping.
    fn call(
        self: &Arc<Self>,
        export: Export<'_>,
        mut ctx: Box<RouteContext>,
    ) -> Option<Box<RouteContext>> {
        // Routes armed in this call run in this build, whatever is loaded then.
        ctx.owner = Some(self.clone() as Arc<dyn RouteOwner>);
        let started = Instant::now();
        let mut instance = match self.checkout() {
            Ok(i) => i,
            Err(e) => {
                crate::log_limited!(error, plugin = &*self.name, version = self.short_hash(), export = export.name(), call_id = %call_id(&ctx), "no plugin instance: {e}");
                self.answer_500(&mut ctx, "plugin unavailable");
                return Some(ctx);
            }
        };
        let state = instance.store.data_mut();
        state.route_error = None;
        let borrowed = state.lend(ctx);
        instance.store.set_epoch_deadline(self.deadline_ticks);
        let result = match export {
            Export::Route => instance.plugin.call_route(&mut instance.store, borrowed),
            Export::Failure(name) => {
                instance
                    .plugin
                    .call_failure_route(&mut instance.store, name, borrowed)
            }
            Export::Reply(name) => {
                instance
                    .plugin
                    .call_onreply_route(&mut instance.store, name, borrowed)
            }
        };
        let Some(mut ctx) = instance.store.data_mut().take_back() else {
            // Only `lend` fills the slot and nothing else empties it.
            tracing::error!(plugin = &*self.name, "message lost during the call");
            return None;
        };
        let replying = !matches!(export, Export::Reply(_));
        match result {
            Ok(Ok(())) => {
                self.stats.call(started.elapsed(), CallEnd::Returned);
                self.breaker.record(BreakerEvent::Completed, Instant::now);
                self.checkin(instance);
                if ctx.handled.is_none() && matches!(export, Export::Route) {
                    tracing::debug!(
                        plugin = &*self.name,
                        call_id = %crate::util::CallId(&ctx.msg),
                        "route ended without reply or relay: request dropped"
                    );
                }
            }
            Ok(Err(())) => {
                self.stats.call(started.elapsed(), CallEnd::Returned);
                self.breaker.record(BreakerEvent::Completed, Instant::now);
                let why = instance.store.data_mut().route_error.take();
                self.checkin(instance);
                match why {
                    Some(e) => {
                        crate::log_limited!(info, plugin = &*self.name, export = export.name(), call_id = %call_id(&ctx), "route returned error: {e:?}{}", error_hint(&e))
                    }
                    None => {
                        crate::log_limited!(info, plugin = &*self.name, export = export.name(), call_id = %call_id(&ctx), "route returned error (no reason given)")
                    }
                }
                if replying
                    && ctx.handled.is_none()
                    && ctx.msg.method() != Some(&wisp_sip::Method::Ack)
                    && let Err(e) = self.host.tm.sl_reply_error(&mut ctx)
                {
                    crate::log_limited!(info, "no error reply possible: {e}");
                }
            }
            Err(trap) => {
                // The instance's state is unknown after a trap: drop it, a
                // fresh one is made on the next checkout. Only this request
                // pays: others are served, no hold-back follows.
                self.stats.call(started.elapsed(), trap_kind(&trap));
                crate::log_limited!(warn,
                    plugin = &*self.name,
                    version = self.short_hash(),
                    export = export.name(),
                    call_id = %call_id(&ctx),
                    "plugin trapped: {}",
                    trap_summary(&trap)
                );
                drop(instance);
                self.note_failure(BreakerEvent::Trapped);
                if replying {
                    self.answer_500(&mut ctx, "plugin failure");
                }
            }
        }
        Some(ctx)
    }

    fn answer_500(&self, ctx: &mut RouteContext, why: &str) {
        if ctx.handled.is_some() || ctx.msg.method() == Some(&wisp_sip::Method::Ack) {
            return;
        }
        if let Err(e) = self
            .host
            .tm
            .sl_send_reply(ctx, 500, "Server Internal Error")
        {
            crate::log_limited!(info, "no 500 possible after {why}: {e}");
        }
    }
}

/// Which export a call runs.
#[derive(Clone, Copy)]
enum Export<'a> {
    Route,
    Failure(&'a str),
    Reply(&'a str),
}

impl Export<'_> {
    fn name(&self) -> &'static str {
        match self {
            Export::Route => "route",
            Export::Failure(_) => "failure-route",
            Export::Reply(_) => "onreply-route",
        }
    }
}

/// What ended a trapped call, for the metrics.
fn trap_kind(trap: &wasmtime::Error) -> CallEnd {
    match trap.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => CallEnd::Deadline,
        Some(_) => CallEnd::Trapped,
        // `trap_on_grow_failure`: StoreLimits refuses the growth with
        // "forcing trap when growing memory to N bytes" (wasmtime 48); the
        // e2e test tests/tests/metrics.rs pins it.
        None if trap.root_cause().to_string().contains("growing memory") => CallEnd::Memory,
        None => CallEnd::Trapped,
    }
}

/// One line for the log: the trap code (deadline, memory, unreachable...)
/// rather than the whole Wasm backtrace.
fn trap_summary(trap: &wasmtime::Error) -> String {
    match trap.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => "deadline exceeded (epoch interrupt)".to_owned(),
        Some(code) => code.to_string(),
        None => trap.root_cause().to_string(),
    }
}

fn call_id(ctx: &RouteContext) -> String {
    ctx.msg
        .call_id()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_default()
}

/// What the log line of a route that returned `e` adds to the error's name,
/// where the name alone does not say what went wrong: `already-handled` is
/// SER's "ERROR: t_newtran: transaction already in process", a script that
/// relays, replies or makes a transaction twice for one request.
fn error_hint(e: &bindings::WitError) -> &'static str {
    match e {
        bindings::WitError::AlreadyHandled => {
            " (transaction already in process: the request was already answered or relayed, \
             so a second t_relay, t_newtran or final reply is refused)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component that only imports an empty instance called `name`.
    fn importing(name: &str) -> Vec<u8> {
        use wasm_encoder::{
            Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType,
        };
        let mut types = ComponentTypeSection::new();
        types.instance(&InstanceType::new());
        let mut imports = ComponentImportSection::new();
        imports.import(name, ComponentTypeRef::Instance(0));
        let mut component = Component::new();
        component.section(&types).section(&imports);
        component.finish()
    }

    fn check(name: &str) -> Result<(), PluginError> {
        let engine = engine().expect("engine");
        let component =
            wasmtime::component::Component::new(engine, importing(name)).expect("compiles");
        check_contract_version(engine, &component)
    }

    #[test]
    fn a_plugin_of_another_contract_version_is_named_as_such() {
        let err = check("wisp:router/log@0.1.0").expect_err("0.1 is not 0.2");
        assert_eq!(
            err.to_string(),
            format!(
                "the component was built against wisp:router@0.1.0, this router implements \
                 {WIT_PACKAGE}: rebuild it with the current wisp-sdk (`make plugins`)"
            )
        );
        assert!(check("wisp:router/log").is_err());
        assert!(check("wisp:router/log@1.2.0").is_err());
        // Same contract, or one wasmtime's linker accepts as the same.
        check(&format!(
            "wisp:router/log@{}",
            WIT_PACKAGE.rsplit_once('@').unwrap().1
        ))
        .expect("this router's own version");
        check("wisp:router/log@0.2.7").expect("a 0.2 patch release links");
        check("other:pkg/iface@9.0.0").expect("not ours: left to the linker");
    }

    /// The `faulty` fixture (`make plugins`) loaded with the layers it
    /// needs, none of them serving.
    fn faulty() -> PluginRuntime {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins/faulty.wasm");
        let text = format!(
            "[server]\nlisten = [\"udp:127.0.0.1:0\"]\nplugin_cache = \"\"\n\
             [[plugin]]\nname = \"faulty\"\npath = {:?}\n",
            path.display().to_string()
        );
        let manifest =
            crate::config::Manifest::parse(&text, Path::new("faulty.toml")).expect("manifest");
        let transports = Arc::new(crate::transport::Transports::new(vec![], vec![], 65535));
        let sl = Arc::new(crate::stateless::Stateless::new(
            transports,
            &manifest.server.aliases,
            manifest.rr.clone(),
        ));
        let clock = Arc::new(crate::tm::timer::SystemClock);
        let (tm, _failure_routes) = crate::tm::Tm::new(&manifest.tm, clock, sl.clone(), None);
        let usrloc = crate::services::usrloc::Usrloc::new(manifest.usrloc.clone());
        let host = Arc::new(HostContext {
            sl,
            services: Arc::new(crate::services::Services::new(usrloc, tm.clone())),
            tm,
            base_dir: manifest.base_dir.clone(),
            cache_dir: None,
        });
        PluginRuntime::load(host, &manifest.plugin[0], &path)
            .expect("faulty loads (is target/plugins/faulty.wasm built? `make plugins`)")
    }

    #[test]
    fn a_plugin_that_cannot_make_an_instance_is_held_back_while_pooled_ones_serve() {
        let mut runtime = faulty();
        let pooled = runtime.checkout().expect("the instance made at load");
        // From now on no instance fits: the memory cap is below the
        // component's initial memory, so instantiation itself fails.
        let memory_bytes = std::mem::replace(&mut runtime.memory_bytes, 0);
        for _ in 0..breaker::THRESHOLD {
            assert!(
                matches!(runtime.checkout(), Err(PluginError::Instantiate(_))),
                "each request tries to make one until the threshold"
            );
        }
        assert!(
            matches!(runtime.checkout(), Err(PluginError::HeldBack(_))),
            "then none is tried"
        );
        assert_eq!(runtime.failures(), u64::from(breaker::THRESHOLD));
        // An instance in the pool still serves while new ones are held back.
        runtime.checkin(pooled);
        let pooled = runtime.checkout().expect("a pooled instance serves");
        assert!(matches!(runtime.checkout(), Err(PluginError::HeldBack(_))));
        // Fixed (instances fit again): served after the pause, without a reload.
        runtime.memory_bytes = memory_bytes;
        std::thread::sleep(breaker::FIRST_PAUSE);
        runtime
            .checkout()
            .expect("a new instance once the pause is over");
        runtime.checkin(pooled);
    }

    #[test]
    fn the_contract_version_is_the_wit_package() {
        let world = include_str!("../../../wit/world.wit");
        assert!(
            world.contains(&format!("package {WIT_PACKAGE};")),
            "WIT_PACKAGE must match wit/world.wit"
        );
    }
}
