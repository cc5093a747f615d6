//! Routes the benchmark requests through `plugins/minimal` in a loop, for
//! instruction counts under callgrind, which unlike criterion's timings do
//! not move with the load of a shared machine:
//!
//! `route_profile [options|info|native-options] [iterations]`
//!
//! Each iteration parses a fresh request (as the bench's setup does), so
//! subtract `native-options` from `options` for the plugin's share.
//! Needs `target/plugins/minimal.wasm` (`make plugins`).

use std::hint::black_box;
use std::sync::Arc;

use wisp::plugin::PluginRuntime;

#[path = "../benches/common/minimal.rs"]
mod minimal;
use minimal::{core, info_ctx, native_route, options_ctx};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "options".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (router, manifest) = core(&rt);
    let _guard = rt.enter();
    let runtime = Arc::new(PluginRuntime::load(
        router.host().clone(),
        &manifest.plugin[0],
        &manifest.plugin_path(&manifest.plugin[0]),
    )?);
    for _ in 0..n {
        match mode.as_str() {
            "native-options" => drop(black_box(native_route(options_ctx()))),
            "info" => drop(black_box(runtime.route(info_ctx()))),
            _ => drop(black_box(runtime.route(options_ctx()))),
        }
    }
    Ok(())
}
