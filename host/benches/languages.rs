//! The Hello World plugin in each language (plugins/hello-world and
//! plugins/hello-world-{c,zig,js,py}, built by `make plugins`): what each
//! costs the router. `scripts/bench-languages.sh` runs it; it prints a
//! Markdown table:
//!
//! - size: the component file;
//! - cold compile: `Component::new` (what a load without the plugin cache pays);
//! - cached load: `Component::deserialize` of the serialized build (a load
//!   with `server.plugin_cache`);
//! - instantiate: a new instance and its `init` (after a trap, or for one
//!   more concurrent call), median;
//! - route call: `PluginRuntime::route` of an INFO for an unknown local
//!   user, the Hello World's longest path without a relay: Max-Forwards,
//!   length, method, record-route, loose-route, myself, lookup (not found),
//!   a 404 sent over UDP. Median per call; the Rust row is the baseline;
//! - memory: the instance's linear memory after `init` and the calls
//!   (the `memory_mb` cap it needs).
//!
//! Languages whose build is missing are listed as such. Not a test: no
//! number here is asserted.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, ResourceLimiter, Store, StoreLimitsBuilder};
use wisp::config::Manifest;
use wisp::plugin::PluginRuntime;
use wisp::plugin::bindings::{Plugin, PluginPre};
use wisp::plugin::host::PluginState;

mod common;
use common::minimal::{Template, core};

const INFO_UNKNOWN: &[u8] = b"INFO sip:nobody@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-lang-1;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:bench@127.0.0.1:5070>;tag=bench-from\r\n\
To: <sip:nobody@127.0.0.1:5060>\r\n\
Call-ID: languages-bench@127.0.0.1\r\n\
CSeq: 1 INFO\r\n\
Content-Length: 0\r\n\r\n";

struct Lang {
    name: &'static str,
    file: &'static str,
    memory_mb: u64,
    wasi: bool,
}

const LANGS: &[Lang] = &[
    Lang {
        name: "Rust",
        file: "hello_world",
        memory_mb: 32,
        wasi: false,
    },
    Lang {
        name: "C",
        file: "hello_world_c",
        memory_mb: 32,
        wasi: false,
    },
    Lang {
        name: "Zig",
        file: "hello_world_zig",
        memory_mb: 32,
        wasi: false,
    },
    Lang {
        name: "JavaScript",
        file: "hello_world_js",
        memory_mb: 64,
        wasi: false,
    },
    Lang {
        name: "Python",
        file: "hello_world_py",
        memory_mb: 64,
        wasi: true,
    },
];

fn plugin_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/plugins/{name}.wasm"))
}

/// The production engine's settings (`plugin::engine`).
fn engine() -> Engine {
    let mut config = Config::new();
    config.wasm_component_model(true).epoch_interruption(true);
    Engine::new(&config).expect("engine")
}

/// Records the largest linear memory the instance asked for.
struct Peak {
    bytes: usize,
}

impl ResourceLimiter for Peak {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.bytes = self.bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn fmt_dur(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.0} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 10.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.2} µs")
    }
}

fn fmt_bytes(b: usize) -> String {
    if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20))
    } else {
        format!("{} KiB", b.div_ceil(1024))
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (router, _) = core(&rt);
    let _guard = rt.enter();
    let host = router.host().clone();
    let engine = engine();
    let template = Template::of(INFO_UNKNOWN);

    println!(
        "| language | component | cold compile | cached load | instantiate + init | route call | memory |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut baseline = None;
    for lang in LANGS {
        let path = plugin_file(lang.file);
        let Ok(bytes) = std::fs::read(&path) else {
            println!("| {} | not built | | | | | |", lang.name);
            continue;
        };
        let heavy = bytes.len() > 1 << 20;

        // Cold compile, and the cached load of the same build.
        let runs = if heavy { 1 } else { 5 };
        let mut compiles = Vec::new();
        let mut component = None;
        for _ in 0..runs {
            let started = Instant::now();
            let c = Component::new(&engine, &bytes).expect("compiles");
            compiles.push(started.elapsed());
            component = Some(c);
        }
        let component = component.expect("compiled");
        let serialized = component.serialize().expect("serializes");
        let loads = (0..20)
            .map(|_| {
                let started = Instant::now();
                // SAFETY: bytes this process serialized a moment ago with
                // the same engine.
                let c =
                    unsafe { Component::deserialize(&engine, &serialized) }.expect("deserializes");
                let took = started.elapsed();
                black_box(c);
                took
            })
            .collect();

        // Instantiate + init, and the memory one instance takes.
        let mut linker: Linker<PluginState> = Linker::new(&engine);
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).expect("links");
        if lang.wasi {
            wisp::plugin::wasi::add_to_linker(&mut linker).expect("links WASI");
        }
        let pre = PluginPre::new(linker.instantiate_pre(&component).expect("pre-links"))
            .expect("fits the world");
        let params = vec![("max_len".to_owned(), "8192".to_owned())];
        let name: Arc<str> = Arc::from(lang.file);
        let n = if heavy { 20 } else { 500 };
        let instantiate = median(
            (0..n)
                .map(|_| {
                    let state = PluginState::new(
                        host.clone(),
                        name.clone(),
                        StoreLimitsBuilder::new().build(),
                    );
                    let mut store = Store::new(&engine, state);
                    store.set_epoch_deadline(1_000_000);
                    let started = Instant::now();
                    let plugin = pre.instantiate(&mut store).expect("instantiates");
                    plugin
                        .call_init(&mut store, &params)
                        .expect("init runs")
                        .expect("init accepts");
                    started.elapsed()
                })
                .collect(),
        );

        // Route calls through the production path, with this plugin's limits.
        let text = format!(
            "[server]\nlisten = [\"udp:127.0.0.1:0\"]\nplugin_cache = \"\"\n\
             [[plugin]]\nname = \"{}\"\npath = {:?}\nmemory_mb = {}\ndeadline_ms = 10000\n\
             [plugin.params]\nmax_len = 8192\n{}",
            lang.file.replace('_', "-"),
            path.display().to_string(),
            lang.memory_mb,
            if lang.wasi {
                "[plugin.capabilities]\nwasi = true\n"
            } else {
                ""
            },
        );
        let manifest = Manifest::parse(&text, Path::new("bench.toml")).expect("manifest");
        let runtime = Arc::new(
            PluginRuntime::from_component(host.clone(), &manifest.plugin[0], &bytes)
                .expect("loads"),
        );
        let per_batch = if heavy { 200 } else { 2000 };
        for _ in 0..per_batch {
            black_box(runtime.route(template.ctx()));
        }
        let batches = (0..15)
            .map(|_| {
                let started = Instant::now();
                for _ in 0..per_batch {
                    black_box(runtime.route(template.ctx()));
                }
                started.elapsed() / per_batch
            })
            .collect();
        let call = median(batches);
        assert_eq!(runtime.failures(), 0, "{} trapped", lang.name);
        let memory = memory_of(&engine, &pre, &host, &name, &params, &template);
        let call_text = match baseline {
            None => {
                baseline = Some(call);
                fmt_dur(call)
            }
            Some(base) => format!(
                "{} (+{})",
                fmt_dur(call),
                fmt_dur(call.saturating_sub(base))
            ),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            lang.name,
            fmt_bytes(bytes.len()),
            fmt_dur(median(compiles)),
            fmt_dur(median(loads)),
            fmt_dur(instantiate),
            call_text,
            fmt_bytes(memory),
        );
    }
}

/// The peak recorder of one store, reachable from its limiter closure.
struct PeakCell(*mut Peak);
// SAFETY: the store using it stays on this thread, and the `Peak` is leaked
// (it outlives the store); nothing else touches it while the store runs.
unsafe impl Send for PeakCell {}
unsafe impl Sync for PeakCell {}

impl PeakCell {
    /// A method, so the limiter closure captures the whole (Send) cell and
    /// not just its raw pointer field (closures capture disjoint fields).
    #[allow(clippy::mut_from_ref)]
    fn peak(&self) -> &'static mut Peak {
        // SAFETY: see the type.
        unsafe { &mut *self.0 }
    }
}

/// Linear memory of one instance after `init` and 100 route calls.
fn memory_of(
    engine: &Engine,
    pre: &PluginPre<PluginState>,
    host: &Arc<wisp::plugin::host::HostContext>,
    name: &Arc<str>,
    params: &[(String, String)],
    template: &Template,
) -> usize {
    let peak: &'static mut Peak = Box::leak(Box::new(Peak { bytes: 0 }));
    let ptr: *mut Peak = peak;
    let cell = PeakCell(ptr);
    let state = PluginState::new(
        host.clone(),
        name.clone(),
        StoreLimitsBuilder::new().build(),
    );
    let mut store = Store::new(engine, state);
    store.limiter(move |_| cell.peak());
    store.set_epoch_deadline(1_000_000);
    let plugin = pre.instantiate(&mut store).expect("instantiates");
    plugin
        .call_init(&mut store, params)
        .expect("init runs")
        .expect("init accepts");
    for _ in 0..100 {
        let borrowed = store.data_mut().lend(template.ctx());
        let _ = plugin.call_route(&mut store, borrowed).expect("route runs");
        store.data_mut().take_back().expect("message back");
    }
    drop(store);
    // SAFETY: the store, and with it the limiter closure, is gone.
    unsafe { (*ptr).bytes }
}
