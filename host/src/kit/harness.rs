//! The real router, with its plugins, on a virtual network and clock: what
//! it would send is recorded, nothing leaves the process, and transaction
//! timers move only when told to.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;

use crate::config::{Manifest, Proto};
use crate::router::Router;
use crate::tm::timer::ManualClock;
use crate::transport::{Inbound, Source, VirtualNet};
use crate::util::lock;

/// One message the router would have sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub proto: Proto,
    /// The listen address it would leave from.
    pub local: Option<SocketAddr>,
    pub dest: SocketAddr,
    pub data: Bytes,
}

impl Sent {
    /// `udp:192.0.2.10:5060`.
    pub fn to(&self) -> String {
        format!("{}:{}", self.proto.to_string().to_lowercase(), self.dest)
    }

    /// The start line: `SIP/2.0 200 OK` or `INVITE sip:bob@h SIP/2.0`.
    pub fn start_line(&self) -> String {
        let text = String::from_utf8_lossy(&self.data);
        text.lines()
            .next()
            .unwrap_or_default()
            .trim_end()
            .to_owned()
    }
}

/// The network that records.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<Sent>>,
}

impl VirtualNet for Recorder {
    fn send(&self, proto: Proto, local: Option<SocketAddr>, dest: SocketAddr, data: Bytes) {
        lock(&self.sent).push(Sent {
            proto,
            local,
            dest,
            data,
        });
    }
}

/// A router on a virtual network (see [`Router::bind_virtual`]).
pub struct Harness {
    router: Arc<Router>,
    net: Arc<Recorder>,
    clock: Arc<ManualClock>,
}

impl Harness {
    /// Build the router of `manifest` (its plugins loaded as `wisp run`
    /// loads them); no socket is bound.
    pub async fn start(manifest: Manifest) -> anyhow::Result<Harness> {
        let net = Arc::new(Recorder::default());
        let clock = Arc::new(ManualClock::new());
        let router = Router::bind_virtual(manifest, net.clone(), clock.clone()).await?;
        Ok(Harness { router, net, clock })
    }

    /// The router (its services: user location, subscribers, ...).
    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    /// The listen address a message over `proto` arrives on: the first
    /// of that transport.
    pub fn listener(&self, proto: Proto) -> Option<SocketAddr> {
        self.router
            .transports()
            .listen_addrs()
            .into_iter()
            .find(|(p, _)| *p == proto)
            .map(|(_, a)| a)
    }

    /// `data` arrives from `from` over `proto` (on `local`, else the first
    /// listener of `proto`); returns what the router sent because of it.
    pub async fn receive(
        &self,
        proto: Proto,
        from: SocketAddr,
        local: Option<SocketAddr>,
        data: Bytes,
    ) -> anyhow::Result<Vec<Sent>> {
        let local = match local.or_else(|| self.listener(proto)) {
            Some(l) => l,
            None => anyhow::bail!("the manifest has no {proto} listener to receive on"),
        };
        self.take();
        self.router.receive(
            data,
            Source {
                proto,
                remote: from,
                local,
            },
        );
        Ok(self.settle().await)
    }

    /// Move the clock by `d`, fire the timers now due (and the failure
    /// routes they make due); returns what that sent.
    pub async fn advance(&self, d: Duration) -> Vec<Sent> {
        self.take();
        // In steps of 100 ms, so timers fire in their order, each seeing
        // the clock near its own deadline.
        let step = Duration::from_millis(100);
        let mut left = d;
        while !left.is_zero() {
            let s = left.min(step);
            self.clock.advance(s);
            left -= s;
            self.router.fire_timers();
        }
        self.settle().await
    }

    /// Let spawned work (replies sent after a commit, failure routes) run,
    /// then take what was sent.
    async fn settle(&self) -> Vec<Sent> {
        for _ in 0..8 {
            tokio::task::yield_now().await;
            self.router.run_pending_failure_routes();
        }
        self.take()
    }

    fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut *lock(&self.net.sent))
    }
}

/// The manifest `wisp test` and `wisp replay` run `plugin` in: `base`
/// (a TOML table: `[server]`, `[usrloc]`, ...) over the defaults below,
/// the plugin with `params` and `capabilities`. Compiled plugins are
/// cached in `cache`.
///
/// Defaults: listen on `udp:192.0.2.1:5060` and `tcp:192.0.2.1:5060`
/// (virtual: nothing is bound), aliases `example.com`, tables `location`
/// and `aliases`, memory-only user location, log level `warn`.
pub fn manifest_for(
    plugin: &Path,
    params: &toml::Table,
    capabilities: &toml::Table,
    base: &toml::Table,
    cache: &Path,
    file: &Path,
) -> anyhow::Result<Manifest> {
    let mut doc: toml::Table = toml::from_str(DEFAULTS).context("the kit's default manifest")?;
    merge(&mut doc, base);
    let server = doc
        .entry("server")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(server) = server.as_table_mut() {
        server.insert(
            "plugin_cache".into(),
            toml::Value::String(cache.to_string_lossy().into_owned()),
        );
        // No database, no socket of its own: a virtual router stays in memory.
        server.insert(
            "ctl_socket".into(),
            toml::Value::String(cache.join("unused.ctl").to_string_lossy().into_owned()),
        );
    }
    let plugin_abs = std::path::absolute(plugin).unwrap_or_else(|_| plugin.to_owned());
    let mut entry = toml::Table::new();
    entry.insert("name".into(), toml::Value::String(plugin_name(plugin)));
    entry.insert(
        "path".into(),
        toml::Value::String(plugin_abs.to_string_lossy().into_owned()),
    );
    // A debugger-free test machine may be slow: the deadline is not what
    // a case checks.
    entry.insert("deadline_ms".into(), toml::Value::Integer(2000));
    if !params.is_empty() {
        entry.insert("params".into(), toml::Value::Table(params.clone()));
    }
    if !capabilities.is_empty() {
        entry.insert(
            "capabilities".into(),
            toml::Value::Table(capabilities.clone()),
        );
    }
    doc.insert(
        "plugin".into(),
        toml::Value::Array(vec![toml::Value::Table(entry)]),
    );
    let text = toml::to_string(&doc).context("rendering the case's manifest")?;
    let mut manifest = Manifest::parse(&text, file).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Relative paths (exec grants, TLS files) mean what they mean beside
    // the case file, as a manifest's do beside it.
    manifest.base_dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| Path::new(".").to_owned(), Path::to_owned);
    Ok(manifest)
}

const DEFAULTS: &str = r#"
[server]
listen = ["udp:192.0.2.1:5060", "tcp:192.0.2.1:5060"]
aliases = ["example.com"]
log_level = "warn"

[usrloc]
tables = ["location", "aliases"]
"#;

/// `plugins/x/.../x.wasm` -> `x`.
fn plugin_name(plugin: &Path) -> String {
    plugin
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin")
        .to_owned()
}

/// `over`'s keys into `into`: tables merge, anything else replaces.
pub fn merge(into: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (into.get_mut(k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            _ => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Where `wisp test` and `wisp replay` keep compiled plugins between runs
/// (the cache is named by each component's hash, so a new build is never
/// mistaken for an old one): `$XDG_CACHE_HOME/wisp/kit`, else
/// `~/.cache/wisp/kit`; a temporary folder, removed with the returned
/// guard, when neither can be made.
pub fn compile_cache() -> anyhow::Result<(std::path::PathBuf, Option<tempfile::TempDir>)> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")));
    if let Some(dir) = base.map(|b| b.join("wisp/kit"))
        && std::fs::create_dir_all(&dir).is_ok()
    {
        return Ok((dir, None));
    }
    let tmp = tempfile::tempdir().context("a folder for compiled plugins")?;
    Ok((tmp.path().to_owned(), Some(tmp)))
}
