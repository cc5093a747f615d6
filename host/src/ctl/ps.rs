//! `wisp ctl ps [--json]` — what the running router is made of (like
//! `kamcmd core.psx` / `serctl ps`, which list Kamailio's processes): Wisp
//! is one process, so this lists its receive workers, the sockets they
//! serve, the timers, the background threads and the plugin builds with
//! their pooled instances.
//!
//! ```text
//! $ wisp ctl ps
//! process   pid=4242 version=0.1.0 uptime=3605s
//! workers   2 per UDP socket (runtime threads: 2)
//! listener  udp:127.0.0.1:5060  receive loops=2
//! listener  tcp:127.0.0.1:5060  accept loop, connections=3
//! timer     tm                  pending=12
//! timer     usrloc purge        every=10000ms
//! timer     pike sweep          every=2000ms
//! thread    failure routes      queued by tm, run on a runtime worker
//! thread    plugin epoch        every=5ms
//! thread    store writer        write-back queue=0
//! thread    acc writer          off
//! store     postgres host=/run/postgresql port=5432 dbname=wisp  up since=1765000000 queue=0 last_commit=3s ago
//! plugin    default 3f9a1c0b77e2 serving instances=2 live_transactions=0 path=../target/plugins/default.wasm
//! ```

use std::fmt::Write as _;
use std::time::SystemTime;

use clap::Args;
use serde::Serialize;

use crate::router::Router;
use crate::transport::Proto;

/// `wisp ctl ps`.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct PsArgs {
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// The router's parts, read now.
#[derive(Debug, Clone, Serialize)]
pub struct Ps {
    pub pid: u32,
    pub version: &'static str,
    pub uptime_seconds: u64,
    /// Receive loops per UDP socket (`server.workers`, 0 = one per core).
    pub workers: usize,
    /// Threads of the async runtime the receive loops and timers run on.
    pub runtime_threads: usize,
    pub listeners: Vec<Listener>,
    pub timers: Vec<Timer>,
    pub threads: Vec<Thread>,
    /// The user location database; `None` in memory-only mode.
    pub store: Option<Store>,
    pub plugins: Vec<Plugin>,
}

/// The user location database and its state.
#[derive(Debug, Clone, Serialize)]
pub struct Store {
    #[serde(flatten)]
    pub health: crate::store::health::HealthReport,
    /// `write-through` (`db_mode` 1 and 3) or `write-back` (2).
    pub mode: &'static str,
    /// Changes waiting for the writer.
    pub queue: usize,
}

/// A bound socket and what serves it.
#[derive(Debug, Clone, Serialize)]
pub struct Listener {
    /// `udp:127.0.0.1:5060`, as `wisp ctl listen` names it.
    pub address: String,
    /// UDP: receive loops on the socket; TCP: 1 (the accept loop).
    pub tasks: usize,
    /// TCP: accepted connections open now (the table is shared by every
    /// TCP listener); UDP: none.
    pub connections: Option<usize>,
}

/// A periodic task or a queue of timers.
#[derive(Debug, Clone, Serialize)]
pub struct Timer {
    pub name: &'static str,
    /// Timers waiting to fire (tm's queue).
    pub pending: Option<usize>,
    /// The period of a periodic task.
    pub every_ms: Option<u64>,
}

/// A background thread or task beside the receive loops.
#[derive(Debug, Clone, Serialize)]
pub struct Thread {
    pub name: &'static str,
    pub running: bool,
    /// What it does now, in a few words (mode, queue length).
    pub detail: String,
}

/// A plugin of the chain and its builds.
#[derive(Debug, Clone, Serialize)]
pub struct Plugin {
    pub name: String,
    pub path: String,
    pub builds: Vec<Build>,
}

/// One build: the serving one, then retired ones transactions still hold.
#[derive(Debug, Clone, Serialize)]
pub struct Build {
    pub build: String,
    pub serving: bool,
    /// Idle instances in its pool (busy ones are in a call).
    pub instances: usize,
    pub live_transactions: usize,
}

/// Read the parts of `router`.
pub fn ps(router: &Router) -> Ps {
    let workers = router.workers();
    let transports = router.transports();
    let tcp_connections = transports.tcp_table().len();
    let listeners = transports
        .listen_addrs()
        .into_iter()
        .map(|(proto, addr)| Listener {
            address: super::listen_name(proto, addr),
            tasks: if proto == Proto::Udp { workers } else { 1 },
            // TCP and TLS share one table of accepted connections.
            connections: proto.is_stream().then_some(tcp_connections),
        })
        .collect();
    let services = router.services();
    let timers = vec![
        Timer {
            name: "tm",
            pending: Some(router.host().tm.pending_timers()),
            every_ms: None,
        },
        Timer {
            name: "usrloc purge",
            pending: None,
            every_ms: Some(millis(crate::router::USRLOC_PURGE)),
        },
        Timer {
            name: "pike sweep",
            pending: None,
            every_ms: Some(millis(services.pike().unit())),
        },
    ];
    let usrloc = services.usrloc();
    let mode = if usrloc.write_through() {
        "write-through"
    } else {
        "write-back"
    };
    let store = if !usrloc.persistent() {
        "memory only".to_owned()
    } else {
        format!("{mode} queue={}", usrloc.writer_queue_len())
    };
    let database = usrloc.store_health().map(|health| Store {
        health,
        mode,
        queue: usrloc.writer_queue_len(),
    });
    let threads = vec![
        Thread {
            name: "failure routes",
            running: workers > 0,
            detail: "queued by tm, run on a runtime worker".into(),
        },
        Thread {
            name: "plugin epoch",
            running: true,
            detail: format!("every={}ms", millis(crate::plugin::EPOCH_TICK)),
        },
        Thread {
            name: "store writer",
            running: usrloc.persistent(),
            detail: store,
        },
        Thread {
            name: "acc writer",
            running: services.acc().is_some(),
            detail: if services.acc().is_some() {
                "on".into()
            } else {
                "off".into()
            },
        },
    ];
    let plugins = router
        .plugins()
        .slots()
        .iter()
        .map(|slot| Plugin {
            name: slot.name().to_owned(),
            path: slot.path().display().to_string(),
            builds: slot
                .versions()
                .into_iter()
                .map(|v| Build {
                    build: v.hash,
                    serving: v.serving,
                    instances: v.instances,
                    live_transactions: v.live_transactions,
                })
                .collect(),
        })
        .collect();
    Ps {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: SystemTime::now()
            .duration_since(router.started())
            .map_or(0, |d| d.as_secs()),
        workers,
        runtime_threads: tokio::runtime::Handle::try_current()
            .map_or(0, |h| h.metrics().num_workers()),
        listeners,
        timers,
        threads,
        store: database,
        plugins,
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The operator's table: one part a line, its kind first.
pub fn table(p: &Ps) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "process   pid={} version={} uptime={}s",
        p.pid, p.version, p.uptime_seconds
    );
    let _ = writeln!(
        out,
        "workers   {} per UDP socket (runtime threads: {})",
        p.workers, p.runtime_threads
    );
    for l in &p.listeners {
        let _ = match l.connections {
            Some(n) => writeln!(
                out,
                "listener  {:<20}  accept loop, connections={n}",
                l.address
            ),
            None => writeln!(
                out,
                "listener  {:<20}  receive loops={}",
                l.address, l.tasks
            ),
        };
    }
    for t in &p.timers {
        let what = match (t.pending, t.every_ms) {
            (Some(n), _) => format!("pending={n}"),
            (None, Some(ms)) => format!("every={ms}ms"),
            (None, None) => String::new(),
        };
        let _ = writeln!(out, "timer     {:<18}  {what}", t.name);
    }
    for t in &p.threads {
        let detail = if t.running { &t.detail } else { "off" };
        let _ = writeln!(out, "thread    {:<18}  {detail}", t.name);
    }
    if let Some(s) = &p.store {
        let h = &s.health;
        let _ = write!(
            out,
            "store     {} {}  {} since={} queue={}",
            h.backend, h.location, h.state, h.since, s.queue
        );
        let _ = match h.last_commit_age_seconds {
            Some(age) => write!(out, " last_commit={age}s ago"),
            None => write!(out, " last_commit=never"),
        };
        if let Some(e) = &h.last_error {
            let _ = write!(out, " last_error={e:?}");
        }
        out.push('\n');
    }
    for plugin in &p.plugins {
        for b in &plugin.builds {
            let _ = writeln!(
                out,
                "plugin    {} {} {} instances={} live_transactions={} path={}",
                plugin.name,
                b.build,
                if b.serving { "serving" } else { "retired" },
                b.instances,
                b.live_transactions,
                plugin.path
            );
        }
    }
    out
}

pub fn execute(router: &Router, args: &PsArgs) -> Result<String, super::CtlError> {
    let p = ps(router);
    if args.json {
        serde_json::to_string_pretty(&p)
            .map(|s| s + "\n")
            .map_err(|e| super::CtlError::Failed(format!("ps: {e}")))
    } else {
        Ok(table(&p))
    }
}
