//! End-to-end harness for Wisp: starts the real `wisp` binary on loopback
//! ports it picks itself (`127.0.0.1:0`, learnt from its log) with a
//! temporary manifest, and talks to it over real UDP/TCP sockets with tiny
//! test user agents (and sipsak).
//!
//! Every wait is bounded and waits for an event (a log line, a packet), not
//! for a fixed time. The router is killed when [`Router`] is dropped;
//! if the test is failing (panicking) at that point its log is printed.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub mod certs;
pub mod netns;
pub mod postgres;
pub mod rtpengine;
use bytes::Bytes;
pub use netns::NatNet;
pub use postgres::Postgres;
pub use wisp_sip::{Message, Method, Via};

/// Default receive timeout of the tests.
pub const RECV: Duration = Duration::from_secs(3);
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

// ---------------------------------------------------------------- paths

/// Repository root (the workspace containing this crate).
pub fn repo_root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    p.canonicalize().unwrap_or(p)
}

/// The router binary: `$WISP_BIN` or `<root>/target/release/wisp`.
pub fn wisp_bin() -> PathBuf {
    match std::env::var_os("WISP_BIN") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join("target/release/wisp"),
    }
}

/// The load generator: `$WISP_BENCH_BIN` or `<root>/target/release/wisp-bench`.
pub fn wisp_bench_bin() -> PathBuf {
    match std::env::var_os("WISP_BENCH_BIN") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join("target/release/wisp-bench"),
    }
}

/// Absolute path of a built plugin component (`default`, `hello_world`).
pub fn plugin_path(name: &str) -> PathBuf {
    repo_root()
        .join("target/plugins")
        .join(format!("{name}.wasm"))
}

fn require_file(p: &Path, hint: &str) {
    assert!(p.is_file(), "{} does not exist; {hint}", p.display());
}

// ---------------------------------------------------------------- temp dir

/// A temporary directory removed on drop, kept if the test panics so its
/// manifest and log can be inspected.
pub struct TempDir {
    dir: Option<tempfile::TempDir>,
}

impl TempDir {
    pub fn new() -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix("wisp-e2e-")
            .tempdir()
            .expect("create temp dir");
        TempDir { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("temp dir is live").path()
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take()
            && std::thread::panicking()
        {
            eprintln!("[e2e] keeping {} for inspection", dir.keep().display());
        }
    }
}

// ---------------------------------------------------------------- ports

/// A loopback port in 2000..10000 free on both UDP and TCP right now (bound,
/// then released; 4 digits, see [`Router::start_for_sipsak`]). Never hands
/// out the same port twice within this process. Everything else lets the
/// router pick its ports (`127.0.0.1:0`).
pub fn free_port_below_10000() -> u16 {
    static USED: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..2000 {
        let port = rand::random_range(2000..10000u16);
        let Ok(udp) = UdpSocket::bind((LOCALHOST, port)) else {
            continue;
        };
        let Ok(tcp) = TcpListener::bind((LOCALHOST, port)) else {
            continue;
        };
        drop(tcp);
        drop(udp);
        let mut used = USED.lock().unwrap();
        if used.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no free loopback port below 10000 found");
}

// ---------------------------------------------------------------- manifest

/// Manifest contents. Each table is a list of `key = <TOML value>` lines;
/// [`Manifest::set`] replaces a key or adds it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub server: Vec<(String, String)>,
    pub usrloc: Vec<(String, String)>,
    pub plugin: Vec<(String, String)>,
    pub params: Vec<(String, String)>,
    /// Appended verbatim at the end.
    pub extra: String,
    /// `[[htable]]` tables, written before `[[plugin]]`: by default the
    /// default plugin's ban list, `ipban`, as in `config/wisp.toml`.
    pub htables: String,
}

fn set_kv(v: &mut Vec<(String, String)>, key: &str, value: &str) {
    match v.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_string(),
        None => v.push((key.to_string(), value.to_string())),
    }
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Manifest {
    /// The documented default manifest, listening on udp+tcp `127.0.0.1:port`
    /// with the default plugin (absolute path).
    pub fn new(port: u16) -> Manifest {
        let kv = |a: &[(&str, String)]| a.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let log_level = std::env::var("WISP_E2E_LOG_LEVEL").unwrap_or_else(|_| "info".into());
        Manifest {
            server: kv(&[
                (
                    "listen",
                    format!("[\"udp:127.0.0.1:{port}\", \"tcp:127.0.0.1:{port}\"]"),
                ),
                ("aliases", "[\"localhost\"]".into()),
                ("log_level", toml_str(&log_level)),
                ("max_message_size", "65535".into()),
                ("workers", "0".into()),
            ]),
            usrloc: kv(&[
                ("tables", "[\"location\", \"aliases\"]".into()),
                ("use_domain", "false".into()),
                ("default_expires", "3600".into()),
                ("min_expires", "60".into()),
                ("max_expires", "86400".into()),
            ]),
            plugin: kv(&[
                ("name", "\"default\"".into()),
                ("path", toml_str(&plugin_path("default").to_string_lossy())),
                ("deadline_ms", "100".into()),
                ("memory_mb", "32".into()),
            ]),
            params: kv(&[("max_len", "8192".into())]),
            extra: String::new(),
            htables: "[[htable]]\nname = \"ipban\"\nautoexpire = 300\n".into(),
        }
    }

    /// `table` is `server`, `usrloc`, `plugin` or `params`; `value` is TOML.
    pub fn set(mut self, table: &str, key: &str, value: &str) -> Manifest {
        let t = match table {
            "server" => &mut self.server,
            "usrloc" => &mut self.usrloc,
            "plugin" => &mut self.plugin,
            "params" | "plugin.params" => &mut self.params,
            other => panic!("unknown manifest table {other}"),
        };
        set_kv(t, key, value);
        self
    }

    pub fn plugin_file(self, path: &Path) -> Manifest {
        self.set("plugin", "path", &toml_str(&path.to_string_lossy()))
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let table = |s: &mut String, name: &str, kv: &[(String, String)]| {
            s.push_str(&format!("[{name}]\n"));
            for (k, v) in kv {
                s.push_str(&format!("{k} = {v}\n"));
            }
        };
        table(&mut s, "server", &self.server);
        table(&mut s, "usrloc", &self.usrloc);
        s.push_str(&self.htables);
        s.push_str("[[plugin]]\n");
        for (k, v) in &self.plugin {
            s.push_str(&format!("{k} = {v}\n"));
        }
        table(&mut s, "plugin.params", &self.params);
        s.push_str(&self.extra);
        s
    }
}

// ---------------------------------------------------------------- router

/// Which ports the router listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// `127.0.0.1:0` on UDP and TCP: the router binds whatever ports the
    /// system gives it (UDP and TCP ports may differ) and logs them.
    Any,
    /// One port in 2000..10000 for both UDP and TCP, picked by the harness
    /// (sipsak; see [`Router::start_for_sipsak`]).
    Below10000,
}

/// A running `wisp run` child process.
pub struct Router {
    child: Option<Child>,
    /// The sockets the router bound (`udp`/`tcp`, address), from its log.
    listening: Vec<(String, SocketAddr)>,
    manifest: Manifest,
    dir: TempDir,
    log_path: PathBuf,
    manifest_path: PathBuf,
}

/// The line `wisp run` logs once it serves (after its per-socket lines).
const READY_LINE: &str = "wisp ready";

/// The sockets in `log`'s lines ending `listening on udp:127.0.0.1:40123`
/// (one a socket; not the ready line's summary of the manifest), in text or
/// JSON lines.
fn listening_in(log: &str) -> Vec<(String, SocketAddr)> {
    let mut found: Vec<(String, SocketAddr)> = Vec::new();
    for line in log.lines().filter(|l| !l.contains(READY_LINE)) {
        let Some((_, rest)) = line.split_once("listening on ") else {
            continue;
        };
        let Some((proto, addr)) = rest.trim_end().split_once(':') else {
            continue;
        };
        // A JSON log (`server.log_format = "json"`) closes the message's
        // string after the address.
        let addr = addr.split('"').next().unwrap_or(addr);
        let Ok(addr) = addr.parse::<SocketAddr>() else {
            continue;
        };
        let socket = (proto.to_string(), addr);
        if matches!(proto, "udp" | "tcp" | "tls" | "ws" | "wss")
            && addr.port() != 0
            && !found.contains(&socket)
        {
            found.push(socket);
        }
    }
    found
}

impl Router {
    /// Starts the router with the default manifest on ports it picks.
    pub fn start() -> Router {
        Router::start_with(|m| m)
    }

    /// Starts the router with a manifest adjusted by `f`, on ports it picks.
    pub fn start_with(f: impl Fn(Manifest) -> Manifest) -> Router {
        Router::start_on(Ports::Any, f)
    }

    /// Starts the router on a port below 10000: sipsak 0.9.8.1 cuts the
    /// last digit of a 5-digit port in the URI it sends (`-s
    /// sip:127.0.0.1:15060` becomes R-URI `sip:127.0.0.1:1506`).
    pub fn start_for_sipsak() -> Router {
        Router::start_on(Ports::Below10000, |m| m)
    }

    /// Starts the router on `ports` with a manifest adjusted by `f`.
    pub fn start_on(ports: Ports, f: impl Fn(Manifest) -> Manifest) -> Router {
        let bin = wisp_bin();
        require_file(
            &bin,
            "build it with `cargo build --release -p wisp` (or set WISP_BIN)",
        );
        let mut last_err = String::new();
        // A port picked by bind-and-release may be taken by someone else
        // before wisp binds it: retry with a new port a few times.
        for _attempt in 0..3 {
            let port = match ports {
                Ports::Any => 0,
                Ports::Below10000 => free_port_below_10000(),
            };
            let manifest = f(Manifest::new(port));
            if manifest
                .plugin
                .iter()
                .any(|(k, v)| k == "path" && v.contains("target/plugins"))
            {
                require_file(
                    &plugin_path("default"),
                    "build plugins with `scripts/build-plugins.sh`",
                );
            }
            match Router::spawn(&bin, manifest) {
                Ok(r) => return r,
                Err(e) => last_err = format!("{e:#}"),
            }
            let in_use =
                last_err.contains("Address already in use") || last_err.contains("address in use");
            if ports == Ports::Any || !in_use {
                break;
            }
        }
        panic!("router did not start: {last_err}");
    }

    fn spawn(bin: &Path, manifest: Manifest) -> Result<Router> {
        let dir = TempDir::new();
        let manifest_path = dir.path().join("wisp.toml");
        fs::write(&manifest_path, manifest.render())?;
        let log_path = dir.path().join("wisp.log");
        let child = Router::spawn_child(bin, &manifest_path, &log_path)?;
        let mut r = Router {
            child: Some(child),
            listening: Vec::new(),
            manifest,
            dir,
            log_path,
            manifest_path,
        };
        match r.wait_ready(0) {
            Ok(listening) => {
                r.listening = listening;
                Ok(r)
            }
            Err(e) => {
                let log = r.log();
                r.kill();
                // The temp dir is removed on drop; the log goes into the error.
                bail!(
                    "{e:#}\n--- manifest ---\n{}\n--- wisp log ---\n{log}",
                    r.manifest.render()
                )
            }
        }
    }

    /// `wisp run --config <manifest>`, its output appended to `log_path`.
    fn spawn_child(bin: &Path, manifest_path: &Path, log_path: &Path) -> Result<Child> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)?;
        Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(manifest_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))
    }

    /// SIGKILL, like a crash: no shutdown code runs in the router.
    pub fn kill_hard(&mut self) {
        self.kill();
    }

    /// Starts `wisp run` again (after [`Router::kill_hard`]) on the same
    /// manifest, addresses and directory — and so on the same database.
    /// The manifest is rewritten to name the ports bound at the start, so
    /// clients of the first run reach the second.
    pub fn restart(&mut self) {
        self.kill();
        let listen: Vec<String> = self
            .listening
            .iter()
            .map(|(proto, addr)| toml_str(&format!("{proto}:{addr}")))
            .collect();
        self.manifest =
            self.manifest
                .clone()
                .set("server", "listen", &format!("[{}]", listen.join(", ")));
        fs::write(&self.manifest_path, self.manifest.render())
            .unwrap_or_else(|e| panic!("restart: writing the manifest: {e}"));
        let from = self.log().len();
        let child = Router::spawn_child(&wisp_bin(), &self.manifest_path, &self.log_path)
            .unwrap_or_else(|e| panic!("restart: {e:#}"));
        self.child = Some(child);
        match self.wait_ready(from) {
            Ok(listening) => assert_eq!(
                listening,
                self.listening,
                "the restarted router listens elsewhere\n--- wisp log ---\n{}",
                self.log()
            ),
            Err(e) => panic!(
                "router did not restart: {e:#}\n--- wisp log ---\n{}",
                self.log()
            ),
        }
    }

    /// Reads the log from byte `from` until the router says it is ready;
    /// returns the sockets it logged as bound meanwhile.
    fn wait_ready(&mut self, from: usize) -> Result<Vec<(String, SocketAddr)>> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let log = self.log();
            let run = log.get(from..).unwrap_or_default();
            if run.contains(READY_LINE) {
                let listening = listening_in(run);
                if listening.is_empty() {
                    bail!("wisp is ready but logged no `listening on <proto>:<addr>` line");
                }
                return Ok(listening);
            }
            if let Some(status) = self
                .child
                .as_mut()
                .map(|c| c.try_wait())
                .transpose()?
                .flatten()
            {
                bail!("wisp exited during startup with {status}");
            }
            if Instant::now() >= deadline {
                bail!("wisp did not log {READY_LINE:?} within {READY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn bound(&self, proto: &str) -> SocketAddr {
        self.listening
            .iter()
            .find(|(p, _)| p == proto)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("the router listens on no {proto} socket"))
    }

    /// The router's TLS socket (a `tls:` listener in its manifest).
    pub fn tls_addr(&self) -> SocketAddr {
        self.bound("tls")
    }

    /// The router's WebSocket socket (a `ws:` listener in its manifest).
    pub fn ws_addr(&self) -> SocketAddr {
        self.bound("ws")
    }

    /// The router's secure WebSocket socket (a `wss:` listener).
    pub fn wss_addr(&self) -> SocketAddr {
        self.bound("wss")
    }

    /// The router's UDP socket.
    pub fn udp_addr(&self) -> SocketAddr {
        self.bound("udp")
    }

    /// The router's TCP listening socket (its port may differ from UDP's).
    pub fn tcp_addr(&self) -> SocketAddr {
        self.bound("tcp")
    }

    pub fn udp_port(&self) -> u16 {
        self.udp_addr().port()
    }

    pub fn tcp_port(&self) -> u16 {
        self.tcp_addr().port()
    }

    /// `sip:127.0.0.1:<udp port>` (the router itself; any of its ports names it).
    pub fn uri(&self) -> String {
        format!("sip:{}", self.udp_addr())
    }

    /// `sip:127.0.0.1:<tcp port>;transport=tcp` (the router itself, over TCP).
    pub fn tcp_uri(&self) -> String {
        format!("sip:{};transport=tcp", self.tcp_addr())
    }

    /// `sip:<user>@127.0.0.1:<udp port>`.
    pub fn aor(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.udp_addr())
    }

    /// Everything the router wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Polls the log until `done` holds for it, within `timeout`; FAILS the
    /// test (naming `what`, with the log) otherwise. Returns the log.
    pub fn wait_for_log(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if done(&log) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "waited {timeout:?} for {what}\n--- wisp log ---\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `wisp ctl --config <manifest> <args…>` against this router.
    pub fn ctl(&self, args: &[&str]) -> RunOutput {
        let mut all: Vec<&std::ffi::OsStr> = vec![
            std::ffi::OsStr::new("ctl"),
            std::ffi::OsStr::new("--config"),
            self.manifest_path.as_os_str(),
        ];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        run_wisp(&all, Duration::from_secs(30))
    }

    /// Like [`Router::ctl`]; fails the test unless the command succeeds.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.success(),
            "wisp ctl {args:?} failed:\n{}\n--- wisp log ---\n{}",
            out.describe(),
            self.log()
        );
        out.stdout
    }

    /// `wisp ctl acc show 100` until it lists `n` accounting records (they
    /// are written off the routing path, a moment after the reply), or 5 s
    /// passed; its lines.
    pub fn acc_records(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = self.ctl_ok(&["acc", "show", "100"]);
            let lines: Vec<String> = out.lines().map(str::to_owned).collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The router's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Panics (with the log) if the router has exited.
    pub fn assert_alive(&mut self) {
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(st)) = c.try_wait()
        {
            panic!("wisp exited with {st}\n--- wisp log ---\n{}", self.log());
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let exited = match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(st))) => Some(st),
            _ => None,
        };
        self.kill();
        if std::thread::panicking() || exited.is_some() {
            if let Some(st) = exited {
                eprintln!("[e2e] wisp had exited by itself with {st}");
            }
            eprintln!(
                "--- wisp log ({}) ---\n{}--- end of wisp log ---",
                self.log_path.display(),
                self.log()
            );
        }
    }
}

// ---------------------------------------------------------------- requests

/// Builder of a SIP request text.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    pub method: String,
    pub ruri: String,
    pub transport: String,
    /// `host:port` of our Via; defaults to the UA's own address.
    pub via_sent_by: String,
    pub branch: String,
    pub rport: bool,
    pub from: String,
    pub from_tag: String,
    pub to: String,
    /// The To tag (`None` outside a dialog).
    pub to_tag: Option<String>,
    pub call_id: String,
    pub cseq: u32,
    /// Overrides the whole CSeq value (for malformed requests).
    pub cseq_raw: Option<String>,
    pub contact: Option<String>,
    pub max_forwards: Option<u32>,
    pub expires: Option<u32>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
}

pub fn random_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl RequestBuilder {
    pub fn new(method: &str, ruri: &str, local: SocketAddr, user: &str) -> RequestBuilder {
        RequestBuilder {
            method: method.to_string(),
            ruri: ruri.to_string(),
            transport: "UDP".into(),
            via_sent_by: local.to_string(),
            branch: format!("z9hG4bK-e2e-{}", random_token()),
            rport: true,
            from: format!("sip:{user}@{local}"),
            from_tag: random_token()[..8].to_string(),
            to: ruri.to_string(),
            to_tag: None,
            call_id: format!("{}@e2e.wisp", random_token()),
            cseq: 1,
            cseq_raw: None,
            contact: Some(format!("sip:{user}@{local}")),
            max_forwards: Some(70),
            expires: None,
            headers: Vec::new(),
            body: Vec::new(),
            content_type: None,
        }
    }

    pub fn to(mut self, to: &str) -> Self {
        self.to = to.to_string();
        self
    }
    pub fn from(mut self, from: &str) -> Self {
        self.from = from.to_string();
        self
    }
    pub fn to_tag(mut self, tag: Option<&str>) -> Self {
        self.to_tag = tag.map(str::to_string);
        self
    }
    /// The ACK for a non-2xx final `response` to this INVITE (RFC 3261
    /// §17.1.1.3): same R-URI, Call-ID, From, branch and CSeq number, the
    /// response's To tag, no body.
    pub fn ack_for(&self, response: &Message) -> Self {
        let mut ack = self.clone();
        ack.method = "ACK".into();
        ack.to_tag = to_tag(response);
        ack.cseq_raw = None;
        ack.contact = None;
        ack.expires = None;
        ack.headers.clear();
        ack.body.clear();
        ack.content_type = None;
        ack
    }
    pub fn call_id(mut self, id: &str) -> Self {
        self.call_id = id.to_string();
        self
    }
    pub fn cseq(mut self, n: u32) -> Self {
        self.cseq = n;
        self
    }
    pub fn cseq_raw(mut self, v: &str) -> Self {
        self.cseq_raw = Some(v.to_string());
        self
    }
    pub fn branch(mut self, b: &str) -> Self {
        self.branch = b.to_string();
        self
    }
    pub fn via_sent_by(mut self, s: &str) -> Self {
        self.via_sent_by = s.to_string();
        self
    }
    pub fn rport(mut self, on: bool) -> Self {
        self.rport = on;
        self
    }
    pub fn transport(mut self, t: &str) -> Self {
        self.transport = t.to_string();
        self
    }
    pub fn contact(mut self, c: Option<&str>) -> Self {
        self.contact = c.map(str::to_string);
        self
    }
    pub fn max_forwards(mut self, n: Option<u32>) -> Self {
        self.max_forwards = n;
        self
    }
    pub fn expires(mut self, n: u32) -> Self {
        self.expires = Some(n);
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    pub fn body(mut self, content_type: &str, body: &[u8]) -> Self {
        self.content_type = Some(content_type.to_string());
        self.body = body.to_vec();
        self
    }

    pub fn build(&self) -> Bytes {
        let mut s = String::new();
        s.push_str(&format!("{} {} SIP/2.0\r\n", self.method, self.ruri));
        s.push_str(&format!(
            "Via: SIP/2.0/{} {};{}branch={}\r\n",
            self.transport,
            self.via_sent_by,
            if self.rport { "rport;" } else { "" },
            self.branch
        ));
        if let Some(mf) = self.max_forwards {
            s.push_str(&format!("Max-Forwards: {mf}\r\n"));
        }
        s.push_str(&format!("From: <{}>;tag={}\r\n", self.from, self.from_tag));
        match &self.to_tag {
            Some(tag) => s.push_str(&format!("To: <{}>;tag={tag}\r\n", self.to)),
            None => s.push_str(&format!("To: <{}>\r\n", self.to)),
        }
        s.push_str(&format!("Call-ID: {}\r\n", self.call_id));
        match &self.cseq_raw {
            Some(raw) => s.push_str(&format!("CSeq: {raw}\r\n")),
            None => s.push_str(&format!("CSeq: {} {}\r\n", self.cseq, self.method)),
        }
        if let Some(c) = &self.contact {
            s.push_str(&format!("Contact: <{c}>\r\n"));
        }
        if let Some(e) = self.expires {
            s.push_str(&format!("Expires: {e}\r\n"));
        }
        // `header("User-Agent", ...)` replaces this one.
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("User-Agent"))
        {
            s.push_str("User-Agent: wisp-e2e\r\n");
        }
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(ct) = &self.content_type {
            s.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        s.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        Bytes::from(out)
    }
}

// ---------------------------------------------------------------- UDP UA

/// A tiny UDP SIP user agent bound to `127.0.0.1:0`.
pub struct TestUa {
    pub sock: UdpSocket,
    pub user: String,
}

impl TestUa {
    pub fn new(user: &str) -> TestUa {
        TestUa::on(LOCALHOST, user)
    }

    /// A UA bound to `ip` (any of loopback's 127.0.0.0/8 here): a source
    /// other than the router's own address.
    pub fn on(ip: std::net::Ipv4Addr, user: &str) -> TestUa {
        let sock = UdpSocket::bind((ip, 0)).expect("bind UA socket");
        // Room for a burst of answers (the router sends a receive burst's
        // answers in one sendmmsg): the default buffer holds ~150 small
        // datagrams, and a test UA does not retransmit what was dropped.
        // The kernel caps it at net.core.rmem_max; less is no error.
        let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(4 << 20);
        TestUa {
            sock,
            user: user.to_string(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// `sip:<user>@127.0.0.1:<port>`: where this UA is reachable.
    pub fn contact(&self) -> String {
        format!("sip:{}@{}", self.user, self.addr())
    }

    pub fn request(&self, method: &str, ruri: &str) -> RequestBuilder {
        RequestBuilder::new(method, ruri, self.addr(), &self.user)
    }

    pub fn send_to(&self, addr: SocketAddr, bytes: &[u8]) {
        self.sock.send_to(bytes, addr).expect("UDP send");
    }

    /// Next datagram within `timeout`, or `None`.
    pub fn recv(&self, timeout: Duration) -> Option<(Bytes, SocketAddr)> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => return Some((Bytes::copy_from_slice(&buf[..n]), from)),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                // ICMP errors from earlier sends (ECONNREFUSED) surface here: ignore.
                Err(_) => continue,
            }
        }
    }

    /// Next parsable SIP message within `timeout` (unparsable datagrams are reported and skipped).
    pub fn recv_msg(&self, timeout: Duration) -> Option<(Message, SocketAddr)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (b, from) = self.recv(left)?;
            match Message::parse(b.clone()) {
                Ok(m) => return Some((m, from)),
                Err(e) => eprintln!(
                    "[e2e] {}: unparsable datagram from {from} ({e:?}): {:?}",
                    self.user, b
                ),
            }
        }
    }

    /// Next response with Call-ID `call_id` within `timeout`; other messages are skipped.
    pub fn recv_response_for(
        &self,
        call_id: &str,
        timeout: Duration,
    ) -> Option<(Message, SocketAddr)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (m, from) = self.recv_msg(left)?;
            if m.status().is_some() && call_id_of(&m).as_deref() == Some(call_id) {
                return Some((m, from));
            }
            eprintln!(
                "[e2e] {}: skipping unexpected message from {from}:\n{}",
                self.user,
                text(&m)
            );
        }
    }

    /// Next response for `call_id` with a status above 100: the `100 Trying`
    /// a stateful proxy sends for an INVITE is hop-by-hop and skipped.
    pub fn recv_answer_for(
        &self,
        call_id: &str,
        timeout: Duration,
    ) -> Option<(Message, SocketAddr)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (m, from) = self.recv_response_for(call_id, left)?;
            if m.status() != Some(100) {
                return Some((m, from));
            }
        }
    }

    /// Next response (any) within `timeout`.
    pub fn recv_response(&self, timeout: Duration) -> Option<(Message, SocketAddr)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (m, from) = self.recv_msg(left)?;
            if m.status().is_some() {
                return Some((m, from));
            }
            eprintln!(
                "[e2e] {}: skipping request from {from}:\n{}",
                self.user,
                text(&m)
            );
        }
    }

    /// Next request within `timeout`; responses are skipped.
    pub fn recv_request(&self, timeout: Duration) -> Option<(Message, SocketAddr)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (m, from) = self.recv_msg(left)?;
            if m.is_request() {
                return Some((m, from));
            }
            eprintln!(
                "[e2e] {}: skipping response from {from}:\n{}",
                self.user,
                text(&m)
            );
        }
    }

    /// The next request with `method` within [`RECV`], skipping others;
    /// FAILS the test when none arrives.
    pub fn expect_request(&self, method: Method) -> (Message, SocketAddr) {
        let deadline = Instant::now() + RECV;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (m, src) = self
                .recv_request(left)
                .unwrap_or_else(|| panic!("{} never received a {}", self.user, method.as_str()));
            if m.method() == Some(&method) {
                return (m, src);
            }
            eprintln!("[e2e] {} skips {}", self.user, text(&m));
        }
    }

    /// Sends `req` to `to` and waits for the final (>= 200) response with
    /// the same Call-ID; provisional responses are returned in the first element.
    pub fn transact(
        &self,
        to: SocketAddr,
        req: &RequestBuilder,
        timeout: Duration,
    ) -> (Vec<Message>, Option<Message>) {
        self.send_to(to, &req.build());
        let deadline = Instant::now() + timeout;
        let mut prov = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_response_for(&req.call_id, left) {
                None => return (prov, None),
                Some((m, _)) if m.status().unwrap() < 200 => prov.push(m),
                Some((m, _)) => return (prov, Some(m)),
            }
        }
    }

    /// Responder mode: answers `req` (received from `src`) with `code`,
    /// copying Via/From/To/Call-ID/CSeq and adding `to_tag` to To.
    /// Sent per the top Via (RFC 3261 §18.2.2 / RFC 3581), falling back to `src`.
    pub fn reply(
        &self,
        req: &Message,
        src: SocketAddr,
        code: u16,
        reason: &str,
        to_tag: &str,
    ) -> Bytes {
        let opts = wisp_sip::ReplyOptions {
            to_tag: Some(to_tag),
            ..Default::default()
        };
        let resp = wisp_sip::build_reply(req, code, reason, &opts).expect("build reply");
        let dest = response_destination(req).unwrap_or(src);
        self.send_to(dest, &resp);
        resp
    }

    /// Waits for a request and answers it with `code`. Returns the request.
    pub fn answer_next(
        &self,
        code: u16,
        reason: &str,
        timeout: Duration,
    ) -> Option<(Message, SocketAddr)> {
        let (req, src) = self.recv_request(timeout)?;
        self.reply(&req, src, code, reason, "uas-tag");
        Some((req, src))
    }

    /// REGISTERs `self.contact()` as `sip:<user>@127.0.0.1:<router port>`; returns the 200.
    pub fn register(&self, router: &Router) -> Message {
        let req = self
            .request("REGISTER", &router.uri())
            .from(&router.aor(&self.user))
            .to(&router.aor(&self.user))
            .expires(3600);
        let (_, fin) = self.transact(router.udp_addr(), &req, RECV);
        let fin = fin.unwrap_or_else(|| panic!("no final response to REGISTER of {}", self.user));
        assert_eq!(
            fin.status(),
            Some(200),
            "REGISTER of {} not accepted:\n{}",
            self.user,
            text(&fin)
        );
        fin
    }
}

/// Where a UAS sends a response to `req` over UDP: the top Via's
/// `received` (or host) and `rport` value (or port, or 5060).
pub fn response_destination(req: &Message) -> Option<SocketAddr> {
    let via = req.top_via().ok()?;
    let host = via
        .received()
        .map(str::to_string)
        .unwrap_or_else(|| via.host.to_string());
    let port = via.rport().flatten().or(via.port).unwrap_or(5060);
    let ip: std::net::IpAddr = host.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

// ---------------------------------------------------------------- TCP UA

/// A SIP client on one TCP connection; responses framed by Content-Length.
pub struct TcpUa {
    pub stream: TcpStream,
    pub user: String,
    buf: Vec<u8>,
}

impl TcpUa {
    /// Connects within a bounded time (retrying refused connections briefly).
    pub fn connect(addr: SocketAddr, user: &str) -> TcpUa {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(stream) => {
                    stream.set_nodelay(true).ok();
                    return TcpUa {
                        stream,
                        user: user.to_string(),
                        buf: Vec::new(),
                    };
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("[e2e] TCP connect to {addr}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("TCP connect to {addr} failed: {e}"),
            }
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    pub fn contact(&self) -> String {
        format!("sip:{}@{};transport=tcp", self.user, self.local_addr())
    }

    pub fn request(&self, method: &str, ruri: &str) -> RequestBuilder {
        RequestBuilder::new(method, ruri, self.local_addr(), &self.user)
            .transport("TCP")
            .contact(Some(&self.contact()))
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("TCP write");
    }

    /// Next message on the stream within `timeout`; `None` on timeout or EOF.
    pub fn recv_msg(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(raw) = take_frame(&mut self.buf) {
                match Message::parse(Bytes::from(raw.clone())) {
                    Ok(m) => return Some(m),
                    Err(e) => panic!(
                        "unparsable message on TCP ({e:?}): {:?}",
                        String::from_utf8_lossy(&raw)
                    ),
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    eprintln!("[e2e] TCP connection closed by peer");
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(e) => {
                    eprintln!("[e2e] TCP read error: {e}");
                    return None;
                }
            }
        }
    }

    /// Sends `req`, waits for the final response with its Call-ID.
    pub fn transact(&mut self, req: &RequestBuilder, timeout: Duration) -> Option<Message> {
        self.send(&req.build());
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self.recv_msg(left)?;
            if m.status().is_some_and(|s| s >= 200)
                && call_id_of(&m).as_deref() == Some(req.call_id.as_str())
            {
                return Some(m);
            }
            eprintln!("[e2e] TCP: skipping\n{}", text(&m));
        }
    }
}

/// Cuts one message (header block + Content-Length body) off the front of `buf`.
pub fn take_frame(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    // Skip keepalive CRLFs between messages.
    let skip = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    buf.drain(..skip);
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut len = 0usize;
    for line in head.split("\r\n") {
        if let Some((name, value)) = line.split_once(':') {
            let n = name.trim().to_ascii_lowercase();
            if n == "content-length" || n == "l" {
                len = value.trim().parse().unwrap_or(0);
            }
        }
    }
    if buf.len() < end + len {
        return None;
    }
    Some(buf.drain(..end + len).collect())
}

// ---------------------------------------------------------------- message helpers

/// The message as (lossy) text, for assertion messages.
pub fn text(m: &Message) -> String {
    String::from_utf8_lossy(m.raw()).into_owned()
}

pub fn call_id_of(m: &Message) -> Option<String> {
    m.call_id()
        .ok()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

/// Value of the first header `name` as a string.
pub fn header_str(m: &Message, name: &str) -> Option<String> {
    m.header(name)
        .map(|h| String::from_utf8_lossy(&h.value).trim().to_string())
}

pub fn to_tag(m: &Message) -> Option<String> {
    m.to().ok().and_then(|t| t.tag().map(str::to_string))
}

/// All Via entries (each header may hold several, comma-separated).
pub fn vias(m: &Message) -> Vec<Via> {
    m.vias()
        .unwrap_or_else(|e| panic!("unparsable Via ({e:?}) in\n{}", text(m)))
}

// ---------------------------------------------------------------- processes

/// Output of a process run with a deadline.
#[derive(Debug)]
pub struct RunOutput {
    /// `None` if it was killed at the deadline.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub cmdline: String,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Everything, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "$ {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            match self.status {
                Some(s) => s.to_string(),
                None => "KILLED at deadline".into(),
            },
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `cmd` with stdout/stderr captured; kills it at `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> RunOutput {
    let cmdline = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmdline}: {e}"));
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("wait on {cmdline}: {e}"),
        }
    };
    RunOutput {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        cmdline,
    }
}

/// `wisp <args…>` with a deadline.
pub fn run_wisp(args: &[&std::ffi::OsStr], timeout: Duration) -> RunOutput {
    let bin = wisp_bin();
    require_file(
        &bin,
        "build it with `cargo build --release -p wisp` (or set WISP_BIN)",
    );
    let mut cmd = Command::new(bin);
    cmd.args(args);
    run_with_timeout(cmd, timeout)
}

/// Path of sipsak; FAILS the test if it is not installed.
pub fn sipsak() -> PathBuf {
    installed_tool("sipsak", "sipsak")
}

/// `/usr/bin/<name>`, else `<name>` on the PATH; FAILS the test when it is
/// missing, naming the Debian `package` that `make test` installs.
/// A number from `wisp-bench --json`'s summary (`answered`, `lost`, ...).
pub fn bench_field(json: &str, key: &str) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {json}"));
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {json}"))
}

pub fn installed_tool(name: &str, package: &str) -> PathBuf {
    let p = PathBuf::from("/usr/bin").join(name);
    if p.is_file() {
        return p;
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    }) {
        return found;
    }
    panic!(
        "{name} is not installed (/usr/bin/{name} missing); `make test` installs it (apt-get install {package})"
    );
}

// ---------------------------------------------------------------- digest

fn md5_hex(parts: &[&str]) -> String {
    use md5::{Digest, Md5};
    let digest = Md5::digest(parts.join(":").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The MD5 `qop=auth` credentials (the value of an Authorization or
/// Proxy-Authorization) a client with `password` sends for `challenge`
/// with nonce count `nc` (RFC 2617 §3.2.2), computed here independently of
/// the router's code.
pub fn md5_credentials(
    challenge: &wisp_sip::Challenge,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    nc: u32,
) -> String {
    let realm = challenge.param("realm").expect("challenge realm");
    let nonce = challenge.param("nonce").expect("challenge nonce");
    let nc = format!("{nc:08x}");
    let ha1 = md5_hex(&[user, realm, password]);
    let ha2 = md5_hex(&[method, uri]);
    let response = md5_hex(&[&ha1, nonce, &nc, "c0ffee", "auth", &ha2]);
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"c0ffee\""
    )
}

/// The challenge of `name` (`WWW-Authenticate`, `Proxy-Authenticate`) in
/// `response` that offers MD5.
pub fn md5_challenge(response: &Message, name: &str) -> wisp_sip::Challenge {
    response
        .header_values(name)
        .map(|v| wisp_sip::Challenge::parse(v).expect("challenge parses"))
        .find(|c| {
            c.param("algorithm")
                .is_some_and(|a| a.eq_ignore_ascii_case("MD5"))
        })
        .unwrap_or_else(|| {
            panic!(
                "no MD5 {name} in\n{}",
                String::from_utf8_lossy(&response.serialize())
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_request_parses_and_replies_route_back() {
        let local: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let r = RequestBuilder::new("INVITE", "sip:bob@127.0.0.1:5060", local, "alice")
            .body("text/plain", b"hi");
        let m = Message::parse(r.build()).unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.max_forwards().unwrap(), Some(70));
        assert_eq!(m.body().as_ref(), b"hi");
        assert_eq!(call_id_of(&m).unwrap(), r.call_id);
        assert_eq!(vias(&m)[0].branch(), Some(r.branch.as_str()));
        assert_eq!(response_destination(&m), Some(local));
        let resp = wisp_sip::build_reply(
            &m,
            200,
            "OK",
            &wisp_sip::ReplyOptions {
                to_tag: Some("t"),
                ..Default::default()
            },
        )
        .unwrap();
        let resp = Message::parse(resp).unwrap();
        assert_eq!(to_tag(&resp).as_deref(), Some("t"));
    }

    #[test]
    fn ack_for_a_final_keeps_the_transaction_and_takes_the_to_tag() {
        let local: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let inv = RequestBuilder::new("INVITE", "tel:+1-201-555-0123", local, "alice")
            .cseq(7)
            .body("text/plain", b"hi");
        let req = Message::parse(inv.build()).unwrap();
        let opts = wisp_sip::ReplyOptions {
            to_tag: Some("rt"),
            ..Default::default()
        };
        let resp =
            Message::parse(wisp_sip::build_reply(&req, 404, "Not Found", &opts).unwrap()).unwrap();
        let ack = Message::parse(inv.ack_for(&resp).build()).unwrap();
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(vias(&ack)[0].branch(), Some(inv.branch.as_str()));
        assert_eq!(to_tag(&ack).as_deref(), Some("rt"));
        assert_eq!(ack.cseq().unwrap().seq, 7);
        assert_eq!(ack.cseq().unwrap().method, Method::Ack);
        assert_eq!(call_id_of(&ack).unwrap(), inv.call_id);
        assert!(ack.body().is_empty());
    }

    #[test]
    fn rport_and_received_pick_destination() {
        let req = "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;rport=4444;received=127.0.0.2;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let m = Message::parse(Bytes::from(req)).unwrap();
        assert_eq!(
            response_destination(&m),
            Some("127.0.0.2:4444".parse().unwrap())
        );
    }

    #[test]
    fn malformed_ruri_used_by_tests_is_malformed() {
        assert!(wisp_sip::Uri::parse(b"sip:bob@[::1").is_err());
    }

    #[test]
    fn bound_sockets_are_read_from_the_log() {
        let log = "2026-12-06T01:00:00Z  INFO wisp: listening on udp:127.0.0.1:40123\n\
                   2026-12-06T01:00:00Z  INFO wisp: listening on tcp:127.0.0.1:40125\n\
                   2026-12-06T01:00:00Z  INFO wisp: wisp ready, listening on udp:127.0.0.1:0 workers=2\n\
                   2026-12-06T01:00:00Z  INFO wisp: wisp ready, listening on tcp:127.0.0.1:7\n";
        assert_eq!(
            listening_in(log),
            [
                ("udp".to_string(), "127.0.0.1:40123".parse().unwrap()),
                ("tcp".to_string(), "127.0.0.1:40125".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn tcp_framing() {
        let mut buf = b"\r\nA\r\nContent-Length: 2\r\n\r\nxyB\r\nl: 0\r\n\r\nC\r\n".to_vec();
        assert_eq!(
            take_frame(&mut buf).unwrap(),
            b"A\r\nContent-Length: 2\r\n\r\nxy"
        );
        assert_eq!(take_frame(&mut buf).unwrap(), b"B\r\nl: 0\r\n\r\n");
        assert!(take_frame(&mut buf).is_none());
    }
}
