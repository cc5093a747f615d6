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
//!   waits, so a blocking wait would outlive the call's deadline;
//! - the "blocking" calls of `wasi:io` (`blocking-write-and-flush`, which
//!   every `print` ends in, `pollable.block`, `poll`, ...) never wait:
//!   wasmtime-wasi's sync bindings run them with `Handle::block_on`, which
//!   panics on the router's tokio workers ("Cannot start a runtime from
//!   within a runtime"). Here they are polled once: what is ready (the log
//!   streams always are) is done, what would wait traps like a sleep.
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
use wasmtime_wasi::p2::bindings::io::poll as async_poll;
use wasmtime_wasi::p2::bindings::io::streams as async_streams;
use wasmtime_wasi::p2::bindings::sockets::network;
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::bindings::sync::sockets::udp_create_socket;
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, DynPollable, OutputStream, Pollable, SocketError,
    SocketResult, StreamError, StreamResult, UdpSocket,
};
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
/// would block replaced by traps, and every call that wasmtime-wasi would
/// run with `Handle::block_on` (a panic on a tokio worker) replaced by one
/// that never waits.
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    monotonic_clock::add_to_linker::<PluginState, NoSleep>(linker, |s| NoSleepClock(s))?;
    poll::add_to_linker::<PluginState, NoBlock>(linker, no_block)?;
    streams::add_to_linker::<PluginState, NoBlock>(linker, no_block)?;
    udp_create_socket::add_to_linker::<PluginState, NoBlock>(linker, no_block)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The instance's resource table, for the `wasi:io` calls that never wait.
fn no_block(state: &mut PluginState) -> NoBlockIo<'_> {
    NoBlockIo(WasiView::ctx(state).table)
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

/// `wasi:io/poll` and `wasi:io/streams` whose blocking calls never block.
struct NoBlock;

impl HasData for NoBlock {
    type Data<'a> = NoBlockIo<'a>;
}

struct NoBlockIo<'a>(&'a mut ResourceTable);

/// A wait refused: the call would have blocked the router's worker.
fn refused_block(what: &str) -> wasmtime::Error {
    wasmtime::format_err!(
        "plugin called {what}, which would wait: blocking waits are refused \
         (a wait in the host cannot be cut at the call's deadline)"
    )
}

/// Polls `fut` once, without a runtime: its value if it is ready, the
/// refusal if it would wait.
fn now_or_refuse<T>(
    what: &str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, wasmtime::Error> {
    let mut fut = std::pin::pin!(fut);
    match fut
        .as_mut()
        .poll(&mut Context::from_waker(std::task::Waker::noop()))
    {
        Poll::Ready(value) => Ok(value),
        Poll::Pending => Err(refused_block(what)),
    }
}

/// [`now_or_refuse`] for a call returning a stream result.
fn stream_now<T>(
    what: &str,
    fut: impl std::future::Future<Output = StreamResult<T>>,
) -> StreamResult<T> {
    now_or_refuse(what, fut).map_err(StreamError::Trap)?
}

impl poll::Host for NoBlockIo<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        now_or_refuse("poll", async_poll::Host::poll(self.0, pollables))?
    }
}

impl poll::HostPollable for NoBlockIo<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        now_or_refuse(
            "pollable.ready",
            async_poll::HostPollable::ready(self.0, pollable),
        )?
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        now_or_refuse(
            "pollable.block",
            async_poll::HostPollable::block(self.0, pollable),
        )?
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        poll::HostPollable::drop(self.0, pollable)
    }
}

impl streams::Host for NoBlockIo<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        streams::Host::convert_stream_error(self.0, err)
    }
}

impl streams::HostOutputStream for NoBlockIo<'_> {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        now_or_refuse(
            "output-stream.drop",
            async_streams::HostOutputStream::drop(self.0, stream),
        )?
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        streams::HostOutputStream::check_write(self.0, stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        streams::HostOutputStream::write(self.0, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        stream_now(
            "blocking-write-and-flush",
            async_streams::HostOutputStream::blocking_write_and_flush(self.0, stream, bytes),
        )
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        stream_now(
            "blocking-write-zeroes-and-flush",
            async_streams::HostOutputStream::blocking_write_zeroes_and_flush(self.0, stream, len),
        )
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostOutputStream::subscribe(self.0, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        streams::HostOutputStream::write_zeroes(self.0, stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::flush(self.0, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        stream_now(
            "blocking-flush",
            async_streams::HostOutputStream::blocking_flush(self.0, stream),
        )
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        streams::HostOutputStream::splice(self.0, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        stream_now(
            "blocking-splice",
            async_streams::HostOutputStream::blocking_splice(self.0, dst, src, len),
        )
    }
}

impl streams::HostInputStream for NoBlockIo<'_> {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        now_or_refuse(
            "input-stream.drop",
            async_streams::HostInputStream::drop(self.0, stream),
        )?
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        streams::HostInputStream::read(self.0, stream, len)
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        stream_now(
            "blocking-read",
            async_streams::HostInputStream::blocking_read(self.0, stream, len),
        )
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        streams::HostInputStream::skip(self.0, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        stream_now(
            "blocking-skip",
            async_streams::HostInputStream::blocking_skip(self.0, stream, len),
        )
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        streams::HostInputStream::subscribe(self.0, stream)
    }
}

/// UDP sockets refused before wasmtime-wasi's `block_on` (the grant allows
/// no address anyway).
impl udp_create_socket::Host for NoBlockIo<'_> {
    fn create_udp_socket(
        &mut self,
        _family: udp_create_socket::IpAddressFamily,
    ) -> SocketResult<Resource<UdpSocket>> {
        Err(network::ErrorCode::AccessDenied.into())
    }
}

/// What `udp-create-socket` needs of `wasi:sockets/network` (its error code).
impl network::Host for NoBlockIo<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<network::ErrorCode> {
        error.downcast()
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<network::ErrorCode>> {
        let err = self.0.get(&err)?;
        Ok(err
            .downcast_ref::<std::io::Error>()
            .map(network::ErrorCode::from))
    }
}

impl network::HostNetwork for NoBlockIo<'_> {
    fn drop(&mut self, this: Resource<network::Network>) -> wasmtime::Result<()> {
        self.0.delete(this)?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_call_is_done_and_one_that_would_wait_is_refused() {
        assert_eq!(now_or_refuse("ready", async { 7 }).ok(), Some(7));
        let err = now_or_refuse("block", std::future::pending::<()>())
            .expect_err("a pending future is refused");
        assert!(
            err.to_string().contains("blocking waits are refused"),
            "{err}"
        );
    }

    /// On a tokio worker (where the router calls plugins), where
    /// wasmtime-wasi's `block_on` panics.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_log_stream_is_written_on_a_tokio_worker() {
        let out = LogOutput {
            plugin: "p".into(),
            stream: Stream::Stdout,
            output: Arc::new(Mutex::new(Output::default())),
        };
        let mut table = ResourceTable::new();
        let stream: Box<dyn OutputStream> = Box::new(out.clone());
        let res = table.push(stream).expect("push");
        let mut io = NoBlockIo(&mut table);
        streams::HostOutputStream::blocking_write_and_flush(
            &mut io,
            Resource::new_borrow(res.rep()),
            b"hello\n".to_vec(),
        )
        .expect("written");
        streams::HostOutputStream::drop(&mut io, res).expect("dropped");
        assert_eq!(crate::util::lock(&out.output).logged, 6);
        out.write_bytes(b"partial");
        assert_eq!(crate::util::lock(&out.output).line, b"partial");
    }
}
