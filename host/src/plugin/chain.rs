//! The manifest's plugins in order, each in a slot whose build can be
//! replaced while traffic flows.
//!
//! A request goes through the chain until a plugin replies, relays or drops
//! it (`drop-request`); one that returns without any of these passes it on,
//! and after the last plugin it is dropped (Kamailio's end of `route{}`).
//!
//! Reload: the new build is compiled, linked and given one instance that
//! runs `init` with the plugin's params, all off the receive path. Only then
//! is it swapped in, atomically: a request already inside the old build
//! finishes there, the next one takes the new build. A build that fails any
//! step is refused and logged; the old one keeps serving. Old builds stay
//! loaded while transactions hold leases on them ([`VersionLease`]), and are
//! listed as retired until then.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use super::host::HostContext;
use super::{PluginError, PluginRuntime};
use crate::config::{Manifest, PluginConfig};
use crate::tm::RouteContext;

/// A plugin of the chain could not be loaded or reloaded.
///
/// The message already ends with the reason, so `cause` is deliberately
/// not the error's `source()`: `{:#}` would print the reason twice.
#[derive(Debug, thiserror::Error)]
#[error("plugin {name:?} ({path}): {cause}")]
pub struct LoadError {
    pub name: String,
    pub path: PathBuf,
    pub cause: PluginError,
}

impl LoadError {
    /// Why, on one line: wasmtime's parse errors span several lines, and a
    /// log line or a `wisp ctl` answer should not.
    pub fn reason(&self) -> String {
        self.cause
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What one reload did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// The file holds the build already serving.
    Unchanged { version: String },
    Swapped {
        from: String,
        to: String,
        took: Duration,
    },
    /// The new build failed a check; the old one keeps serving.
    Refused { serving: String, error: LoadError },
}

/// One plugin of the manifest and the build currently serving it.
pub struct PluginSlot {
    cfg: PluginConfig,
    path: PathBuf,
    host: Arc<HostContext>,
    current: ArcSwap<PluginRuntime>,
    /// Builds replaced by a reload; each goes away with its last lease.
    retired: Mutex<Vec<Weak<PluginRuntime>>>,
    /// One reload at a time (a file watcher and `wisp ctl` may race).
    reloading: Mutex<()>,
    reloads: AtomicU64,
    refused: AtomicU64,
}

impl PluginSlot {
    fn load(host: &Arc<HostContext>, cfg: &PluginConfig, path: PathBuf) -> Result<Self, LoadError> {
        let runtime = load_build(host, cfg, &path)?;
        Ok(PluginSlot {
            cfg: cfg.clone(),
            path,
            host: host.clone(),
            current: ArcSwap::from_pointee(runtime),
            retired: Mutex::new(Vec::new()),
            reloading: Mutex::new(()),
            reloads: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn watched(&self) -> bool {
        self.cfg.watch
    }

    /// The build serving new requests.
    pub fn current(&self) -> Arc<PluginRuntime> {
        self.current.load_full()
    }

    /// Load the file again and swap it in if it is a new build that passes
    /// every check. Blocking (it compiles): call it off the receive path.
    pub fn reload(&self) -> ReloadOutcome {
        let _one_at_a_time = crate::util::lock(&self.reloading);
        let serving = self.current();
        let started = Instant::now();
        // Read once: the build checked for "unchanged" is the build loaded.
        let loaded = std::fs::read(&self.path)
            .map_err(PluginError::Read)
            .and_then(|bytes| {
                if super::hash_of(&bytes) == serving.hash() {
                    return Ok(None);
                }
                PluginRuntime::from_component(self.host.clone(), &self.cfg, &bytes).map(Some)
            });
        let loaded = loaded.map_err(|cause| LoadError {
            name: self.cfg.name.clone(),
            path: self.path.clone(),
            cause,
        });
        match loaded {
            Ok(None) => ReloadOutcome::Unchanged {
                version: serving.short_hash().to_owned(),
            },
            Ok(Some(new)) => {
                let new = Arc::new(new);
                let to = new.short_hash().to_owned();
                let old = self.current.swap(new);
                self.reloads.fetch_add(1, Ordering::Relaxed);
                crate::stats::inc(crate::stats::Counter::ReloadsDone);
                let mut retired = crate::util::lock(&self.retired);
                retired.retain(|w| w.strong_count() > 0);
                retired.push(Arc::downgrade(&old));
                let took = started.elapsed();
                tracing::info!(
                    plugin = self.name(),
                    from = old.short_hash(),
                    to = %to,
                    live_transactions = old.live_transactions(),
                    "plugin reloaded in {} ms",
                    took.as_millis()
                );
                ReloadOutcome::Swapped {
                    from: old.short_hash().to_owned(),
                    to,
                    took,
                }
            }
            Err(error) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                crate::stats::inc(crate::stats::Counter::ReloadsRefused);
                tracing::error!(
                    plugin = self.name(),
                    serving = serving.short_hash(),
                    "new build refused, the old one keeps serving: {}",
                    error.reason()
                );
                ReloadOutcome::Refused {
                    serving: serving.short_hash().to_owned(),
                    error,
                }
            }
        }
    }

    /// The serving build, then the retired ones still held by transactions.
    pub fn versions(&self) -> Vec<VersionStatus> {
        let current = self.current();
        let mut out = vec![VersionStatus::of(&current, true)];
        let retired = crate::util::lock(&self.retired);
        out.extend(
            retired
                .iter()
                .filter_map(Weak::upgrade)
                .filter(|r| !Arc::ptr_eq(r, &current))
                .map(|r| VersionStatus::of(&r, false)),
        );
        out
    }

    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// One build of a plugin as `wisp ctl plugin list` shows it.
#[derive(Debug, Clone)]
pub struct VersionStatus {
    pub hash: String,
    pub serving: bool,
    pub loaded_at: SystemTime,
    pub live_transactions: usize,
    /// Idle instances in the build's pool.
    pub instances: usize,
    pub failures: u64,
    /// Calls, traps and call latency (the metrics).
    pub stats: crate::stats::PluginSnapshot,
}

impl VersionStatus {
    fn of(r: &PluginRuntime, serving: bool) -> Self {
        VersionStatus {
            hash: r.short_hash().to_owned(),
            serving,
            loaded_at: r.loaded_at(),
            live_transactions: r.live_transactions(),
            instances: r.pooled_instances(),
            failures: r.failures(),
            stats: r.stats().snapshot(),
        }
    }
}

fn load_build(
    host: &Arc<HostContext>,
    cfg: &PluginConfig,
    path: &Path,
) -> Result<PluginRuntime, LoadError> {
    PluginRuntime::load(host.clone(), cfg, path).map_err(|cause| LoadError {
        name: cfg.name.clone(),
        path: path.to_owned(),
        cause,
    })
}

/// Every plugin of the manifest, in order.
pub struct PluginChain {
    slots: Vec<PluginSlot>,
}

impl PluginChain {
    /// Load every plugin of the manifest; the first that fails stops it.
    pub fn load(host: &Arc<HostContext>, manifest: &Manifest) -> Result<Self, LoadError> {
        let slots = manifest
            .plugin
            .iter()
            .map(|cfg| PluginSlot::load(host, cfg, manifest.plugin_path(cfg)))
            .collect::<Result<_, _>>()?;
        Ok(PluginChain { slots })
    }

    pub fn slots(&self) -> &[PluginSlot] {
        &self.slots
    }

    pub fn slot(&self, name: &str) -> Option<&PluginSlot> {
        self.slots.iter().find(|s| s.name() == name)
    }

    /// Run a request through the chain's `route` exports.
    pub fn route(&self, mut ctx: Box<RouteContext>) -> Option<Box<RouteContext>> {
        for slot in &self.slots {
            let build = slot.current.load();
            ctx = build.route(ctx)?;
            if ctx.handled.is_some() {
                break;
            }
        }
        // Dropped on purpose, or every plugin let it pass unanswered.
        if matches!(ctx.handled, None | Some(crate::stateless::Handled::Dropped)) {
            crate::stats::inc(crate::stats::Counter::RequestsDropped);
        }
        Some(ctx)
    }

    /// The build that runs a route armed without a recorded build: the
    /// last plugin's (the routing plugin of a sanity-then-routing chain).
    pub fn fallback(&self) -> Option<Arc<PluginRuntime>> {
        self.slots.last().map(PluginSlot::current)
    }
}
