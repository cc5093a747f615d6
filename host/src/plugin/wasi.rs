//! WASI 0.2 for the plugins whose manifest grants it
//! (`[plugin.capabilities] wasi = true`): the runtimes of some languages
//! (Python's) import `wasi:*` whether the script uses it or not. What they
//! get is WASI with nothing behind it:
//!
//! - no preopened directories (every path fails), no environment, no
//!   arguments, stdin closed;
//! - sockets and name lookup refused (no address is ever allowed);
//! - stdout and stderr go to the router's log, one line per line, tagged
//!   with the plugin, at most [`OUTPUT_BUDGET`] bytes per instance;
//! - the instance's resource table is capped at [`MAX_RESOURCES`];
//! - a clock subscription that would block (`time.sleep`, a timer) traps at
//!   once: the epoch deadline interrupts Wasm code, not a host call that
//!   waits, so a blocking wait would outlive the call's deadline.
//!
//! Without the grant no `wasi:*` import is linked and a component that has
//! one is refused at load ([`first_wasi_import`]).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::clocks::WasiClocksView;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::host::PluginState;

/// Most resources (streams, pollables, ...) one instance may hold at once.
pub const MAX_RESOURCES: usize = 1024;
/// Bytes of stdout and stderr one instance may write to the log; past it
/// the rest is dropped (and that is logged once).
pub const OUTPUT_BUDGET: usize = 64 * 1024;
/// Longest line logged; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 1024;

/// The WASI context and resource table of one instance.
pub struct WasiState {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl WasiState {
    /// Nothing granted: see the module docs.
    pub fn new(plugin: Arc<str>) -> Self {
        let output = Arc::new(Mutex::new(Output::default()));
        let stream = |name| LogOutput {
            plugin: plugin.clone(),
            stream: name,
            output: output.clone(),
        };
        let mut builder = WasiCtx::builder();
        builder
            .stdout(stream(Stream::Stdout))
            .stderr(stream(Stream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        WasiState {
            ctx: builder.build(),
            table,
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let plugin = &self.plugin_name;
        let wasi = self
            .wasi
            .get_or_insert_with(|| Box::new(WasiState::new(plugin.clone())));
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut wasi.table,
        }
    }
}

/// Link WASI 0.2 (sync) for a plugin granted it, with the clock waits that
/// would block replaced by traps.
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    monotonic_clock::add_to_linker::<PluginState, NoSleep>(linker, |s| NoSleepClock(s))?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The first `wasi:*` interface the component imports, if any: a plugin
/// not granted WASI is refused at load with its name.
pub fn first_wasi_import(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> Option<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name)
        .find(|name| name.starts_with("wasi:"))
        .map(str::to_owned)
}

/// `wasi:clocks/monotonic-clock` whose subscriptions never wait.
struct NoSleep;

impl HasData for NoSleep {
    type Data<'a> = NoSleepClock<'a>;
}

/// The plugin's clocks, as `wasi:clocks/monotonic-clock` sees them.
struct NoSleepClock<'a>(&'a mut PluginState);

/// A wait refused: the call traps with this.
fn refused_wait(nanos: u64) -> wasmtime::Error {
    wasmtime::format_err!(
        "plugin tried to wait {} ms on a clock: blocking waits are refused \
         (a wait in the host cannot be cut at the call's deadline)",
        nanos / 1_000_000
    )
}

impl monotonic_clock::Host for NoSleepClock<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        monotonic_clock::Host::now(&mut self.0.clocks())
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        monotonic_clock::Host::resolution(&mut self.0.clocks())
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let now = monotonic_clock::Host::now(&mut self.0.clocks())?;
        if when > now {
            return Err(refused_wait(when - now));
        }
        monotonic_clock::Host::subscribe_instant(&mut self.0.clocks(), when)
    }

    fn subscribe_duration(
        &mut self,
        duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        if duration > 0 {
            return Err(refused_wait(duration));
        }
        monotonic_clock::Host::subscribe_duration(&mut self.0.clocks(), 0)
    }
}

#[derive(Clone, Copy, Debug)]
enum Stream {
    Stdout,
    Stderr,
}

/// What an instance has written to stdout and stderr so far.
#[derive(Default)]
struct Output {
    /// The line being written (up to [`MAX_LINE`] bytes of it).
    line: Vec<u8>,
    /// Bytes logged so far, against [`OUTPUT_BUDGET`].
    logged: usize,
}

/// stdout or stderr of one instance, into the router's log.
#[derive(Clone)]
struct LogOutput {
    plugin: Arc<str>,
    stream: Stream,
    output: Arc<Mutex<Output>>,
}

impl LogOutput {
    fn write_bytes(&self, bytes: &[u8]) {
        let mut out = crate::util::lock(&self.output);
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            let (text, ends) = match chunk.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (chunk, false),
            };
            let room = MAX_LINE.saturating_sub(out.line.len());
            out.line.extend_from_slice(&text[..text.len().min(room)]);
            if ends {
                let line = std::mem::take(&mut out.line);
                self.log_line(&mut out, &line);
            }
        }
    }

    fn log_line(&self, out: &mut Output, line: &[u8]) {
        if out.logged >= OUTPUT_BUDGET {
            return;
        }
        out.logged += line.len() + 1;
        let plugin = &*self.plugin;
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        match self.stream {
            Stream::Stdout => tracing::info!(plugin, stream = "stdout", "{text}"),
            Stream::Stderr => tracing::warn!(plugin, stream = "stderr", "{text}"),
        }
        if out.logged >= OUTPUT_BUDGET {
            tracing::warn!(
                plugin,
                "plugin wrote {OUTPUT_BUDGET} bytes to stdout/stderr: the rest of this instance's output is dropped"
            );
        }
    }
}

impl IsTerminal for LogOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for LogOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LogOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
