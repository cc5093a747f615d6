//! What routing a message through a Wasm plugin costs over the same logic in
//! native Rust, and which instance strategy is cheaper.
//!
//! Every variant runs the logic of `plugins/minimal` on an OPTIONS request:
//! read the method, set flag 1, append `X-Wisp-Seen: 1`. Nothing is sent, so
//! the numbers are the call, not a socket. Each iteration gets a freshly
//! parsed request (criterion's setup, not timed).
//!
//! - `native`: the logic as Rust calling the message model directly, as a
//!   native module would.
//! - `wasm_route_reused_instance`: `PluginRuntime::route`, the production
//!   path (an instance from the runtime's pool, reused call after call).
//! - `wasm_route_fresh_pooled_instance`: per message, a new instance from a
//!   pre-linked `InstancePre` on an engine with the pooling allocator, `init`,
//!   `route`, drop — the strategy the issue asked to compare.
//!
//! A second group, `route_info`, sends an INFO instead: the route only reads
//! the method, which splits the cost of entering the plugin from that of the
//! two edits.
//!
//! Needs `target/plugins/minimal.wasm` (`make plugins`).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder,
};
use wisp::plugin::PluginRuntime;
use wisp::plugin::bindings::{Plugin, PluginPre};
use wisp::plugin::host::HostContext;
use wisp::plugin::host::PluginState;
use wisp::tm::RouteContext;

mod common;
use common::minimal::{OPTIONS, Template, core, info_ctx, minimal_wasm, native_route, options_ctx};

/// The fresh-instance strategy: a pooling-allocator engine and a pre-linked
/// component, instantiated once per message.
struct FreshInstances {
    engine: Engine,
    pre: PluginPre<PluginState>,
    core: Arc<HostContext>,
    name: Arc<str>,
}

impl FreshInstances {
    fn new(core: Arc<HostContext>) -> Self {
        let mut pooling = PoolingAllocationConfig::default();
        // The production memory cap (`memory_mb` 32), and batched decommits,
        // which halve the cost of dropping an instance.
        pooling.max_memory_size(32 << 20).decommit_batch_size(64);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
        let engine = Engine::new(&config).expect("pooling engine");
        let bytes = std::fs::read(minimal_wasm()).expect("minimal.wasm");
        let component = Component::new(&engine, &bytes).expect("compiles");
        let mut linker: Linker<PluginState> = Linker::new(&engine);
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).expect("links");
        let pre = PluginPre::new(linker.instantiate_pre(&component).expect("pre-links"))
            .expect("fits the world");
        FreshInstances {
            engine,
            pre,
            core,
            name: Arc::from("minimal"),
        }
    }

    /// What `PluginRuntime::route` does, with a new instance for the message.
    fn route(&self, ctx: Box<RouteContext>) -> Box<RouteContext> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(32 << 20)
            .instances(16)
            .tables(16)
            .memories(4)
            .trap_on_grow_failure(true)
            .build();
        let state = PluginState::new(self.core.clone(), self.name.clone(), limits);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1_000);
        let plugin = self.pre.instantiate(&mut store).expect("instantiates");
        plugin
            .call_init(&mut store, &[])
            .expect("init runs")
            .expect("init accepts");
        let borrowed = store.data_mut().lend(ctx);
        plugin
            .call_route(&mut store, borrowed)
            .expect("route runs")
            .expect("route succeeds");
        store.data_mut().take_back().expect("message back")
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (router, manifest) = core(&rt);
    let _guard = rt.enter();
    let runtime = Arc::new(
        PluginRuntime::load(
            router.host().clone(),
            &manifest.plugin[0],
            &manifest.plugin_path(&manifest.plugin[0]),
        )
        .expect("minimal plugin loads"),
    );
    let fresh = FreshInstances::new(router.host().clone());

    // The two sides must do the same work: check once before timing.
    let native = native_route(options_ctx());
    let wasm = runtime.route(options_ctx()).expect("message comes back");
    let pooled = fresh.route(options_ctx());
    for ctx in [&wasm, &pooled] {
        assert_eq!(ctx.flags, native.flags);
        assert_eq!(ctx.msg.serialize(), native.msg.serialize());
    }
    assert_eq!(runtime.failures(), 0);

    let mut group = c.benchmark_group("route_options");
    group.bench_function("native", |b| {
        b.iter_batched(
            options_ctx,
            |ctx| black_box(native_route(ctx)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("wasm_route_reused_instance", |b| {
        b.iter_batched(
            options_ctx,
            |ctx| black_box(runtime.route(ctx)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("wasm_route_fresh_pooled_instance", |b| {
        b.iter_batched(
            options_ctx,
            |ctx| black_box(fresh.route(ctx)),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("route_info");
    group.bench_function("native", |b| {
        b.iter_batched(
            info_ctx,
            |ctx| black_box(native_route(ctx)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("wasm_route_reused_instance", |b| {
        b.iter_batched(
            info_ctx,
            |ctx| black_box(runtime.route(ctx)),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // The same INFO routed again and again (its route changes nothing), so
    // no per-iteration setup, batch vectors or drops are timed: the call
    // itself, native vs Wasm.
    let mut group = c.benchmark_group("route_info_steady");
    group.bench_function("native", |b| {
        b.iter_custom(|iters| {
            let mut ctx = info_ctx();
            let started = std::time::Instant::now();
            for _ in 0..iters {
                ctx = black_box(native_route(black_box(ctx)));
            }
            started.elapsed()
        })
    });
    group.bench_function("wasm_route_reused_instance", |b| {
        b.iter_custom(|iters| {
            let mut ctx = info_ctx();
            let started = std::time::Instant::now();
            for _ in 0..iters {
                ctx = black_box(runtime.route(black_box(ctx)).expect("message comes back"));
            }
            started.elapsed()
        })
    });
    group.finish();

    // OPTIONS again, steady: each iteration routes a fresh copy of one
    // parsed request and drops the result, natively or through the plugin.
    // Copy and drop cost both sides the same, so the difference is what
    // the plugin adds per message: the call and its three host calls.
    let template = Template::of(OPTIONS);
    let mut group = c.benchmark_group("route_options_steady");
    group.bench_function("native", |b| {
        b.iter(|| drop(black_box(native_route(black_box(template.ctx())))))
    });
    group.bench_function("wasm_route_reused_instance", |b| {
        b.iter(|| drop(black_box(runtime.route(black_box(template.ctx())))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
