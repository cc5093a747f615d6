//! The TOML manifest: one file configures listeners, aliases, logging, the
//! registrar and the plugin. Types here are the manifest reference; a wrong
//! manifest fails at start with the file, line, key and what was expected.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

/// Why a manifest was refused. Always names the file; `line` and `key` when known.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: key `{key}`: {message}")]
    Invalid {
        file: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

/// The whole manifest (`config/wisp.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub server: ServerConfig,
    #[serde(default)]
    pub usrloc: UsrlocConfig,
    #[serde(default)]
    pub tm: TmConfig,
    #[serde(default)]
    pub rr: RrConfig,
    /// Plugins, run in this order as a chain: each request goes through
    /// them until one replies, relays or drops it.
    #[serde(default)]
    pub plugin: Vec<PluginConfig>,
    /// Directory of the manifest file; relative paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[server]`: sockets, names, limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `"udp:127.0.0.1:5060"`, `"tcp:[::1]:5060"`.
    pub listen: Vec<ListenAddr>,
    /// Other names of this router (Kamailio `alias=`), `host` or `host:port`.
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default = "default_log_level")]
    pub log_level: LogLevel,
    /// Receive limit in bytes (UDP datagram / TCP message).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: usize,
    /// Receive workers; 0 = one per available core.
    #[serde(default)]
    pub workers: usize,
    /// Unix socket of the management interface (`wisp ctl`), relative to
    /// the manifest's directory.
    #[serde(default = "default_ctl_socket")]
    pub ctl_socket: PathBuf,
    /// Directory of compiled plugins, relative to the manifest's directory,
    /// so a restart loads the plugin instead of compiling it; `""` = off.
    #[serde(default = "default_plugin_cache")]
    pub plugin_cache: PathBuf,
}

/// `[usrloc]`: registrar tables and expiry bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsrlocConfig {
    #[serde(default = "default_tables")]
    pub tables: Vec<String>,
    #[serde(default)]
    pub use_domain: bool,
    #[serde(default = "default_expires")]
    pub default_expires: u32,
    #[serde(default = "default_min_expires")]
    pub min_expires: u32,
    #[serde(default = "default_max_expires")]
    pub max_expires: u32,
    /// A Contact asking for less than `min_expires`: `raise` it to the
    /// minimum (Kamailio's default) or `reject` the REGISTER with 423.
    #[serde(default)]
    pub brief_expires: BriefExpires,
    /// `lookup` adds the AOR's other bindings as branches (Kamailio
    /// registrar `append_branches`); false keeps only the best one (seed
    /// 003, "Using Only Latest User's Contact", with `desc_time_order`).
    #[serde(default = "default_true")]
    pub append_branches: bool,
    /// Order an AOR's bindings newest first, whatever their q (Kamailio
    /// usrloc `desc_time_order`); by default highest q first, newest first
    /// among equal q.
    #[serde(default)]
    pub desc_time_order: bool,
    /// Persistence (Kamailio usrloc `db_mode`): 0 memory only, 1
    /// write-through (a REGISTER is answered after its binding is
    /// committed), 2 write-back every `timer_interval` seconds.
    #[serde(default)]
    pub db_mode: u8,
    /// Most bindings one AOR may have; a REGISTER that would exceed it is
    /// refused with 503 (Kamailio registrar `max_contacts`). 0 = no limit.
    #[serde(default)]
    pub max_contacts: usize,
    /// The SQLite database, relative to the manifest's directory.
    #[serde(default = "default_db_path")]
    pub db_path: PathBuf,
    /// Seconds between write-back commits (`db_mode = 2`).
    #[serde(default = "default_timer_interval")]
    pub timer_interval: u64,
}

/// What `db_mode` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbMode {
    MemoryOnly,
    WriteThrough,
    WriteBack,
}

impl UsrlocConfig {
    /// `db_mode` as a type; validation has refused values above 2.
    pub fn db_mode(&self) -> DbMode {
        match self.db_mode {
            0 => DbMode::MemoryOnly,
            1 => DbMode::WriteThrough,
            _ => DbMode::WriteBack,
        }
    }
}

/// What `save` does with an expiry below `min_expires`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BriefExpires {
    /// Store the binding with `min_expires` (Kamailio registrar).
    #[default]
    Raise,
    /// Answer 423 Interval Too Brief with Min-Expires (RFC 3261 §10.3 step 7).
    Reject,
}

impl Default for UsrlocConfig {
    fn default() -> Self {
        UsrlocConfig {
            tables: default_tables(),
            use_domain: false,
            default_expires: default_expires(),
            min_expires: default_min_expires(),
            max_expires: default_max_expires(),
            brief_expires: BriefExpires::default(),
            append_branches: true,
            desc_time_order: false,
            db_mode: 0,
            max_contacts: 0,
            db_path: default_db_path(),
            timer_interval: default_timer_interval(),
        }
    }
}

/// `[tm]`: transaction timers (RFC 3261 §17, Kamailio `tm` parameters) and
/// the bound on transaction memory. Times in milliseconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TmConfig {
    /// RTT estimate: first retransmission interval (timers A, E, G).
    #[serde(default = "default_t1")]
    pub t1_ms: u64,
    /// Cap of the retransmission interval of non-INVITE requests and INVITE responses.
    #[serde(default = "default_t2")]
    pub t2_ms: u64,
    /// How long the network may still hold a message (timers I, K).
    #[serde(default = "default_t4")]
    pub t4_ms: u64,
    /// Wait for a final response when no provisional came (Kamailio `fr_timer`).
    #[serde(default = "default_fr")]
    pub fr_timer_ms: u64,
    /// Wait for the final response to an INVITE after a provisional
    /// (Kamailio `fr_inv_timer`, RFC 3261 timer C).
    #[serde(default = "default_fr_inv")]
    pub fr_inv_timer_ms: u64,
    /// How long a completed transaction stays to absorb retransmissions
    /// (Kamailio `wait_timer`; RFC 3261 timers J and L are 64*T1 = 32 s,
    /// which holds ~6x more transactions under load for copies that, after
    /// the final response, rarely come).
    #[serde(default = "default_wait")]
    pub wait_timer_ms: u64,
    /// Most transactions held at once; past it new requests that need one
    /// are answered 503 with Retry-After.
    #[serde(default = "default_max_transactions")]
    pub max_transactions: usize,
}

impl Default for TmConfig {
    fn default() -> Self {
        TmConfig {
            t1_ms: default_t1(),
            t2_ms: default_t2(),
            t4_ms: default_t4(),
            fr_timer_ms: default_fr(),
            fr_inv_timer_ms: default_fr_inv(),
            wait_timer_ms: default_wait(),
            max_transactions: default_max_transactions(),
        }
    }
}

/// `[rr]`: Record-Route (Kamailio `rr` module parameters).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RrConfig {
    /// `record_route` writes `;lr=on` instead of `;lr`, for old parsers that
    /// need a value on every parameter (Kamailio `enable_full_lr`).
    #[serde(default)]
    pub enable_full_lr: bool,
}

/// `[[plugin]]`: one routing component and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    /// The component (.wasm), relative to the manifest's directory.
    pub path: PathBuf,
    /// Budget of one route call in milliseconds.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Linear memory cap in MiB.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// Most elements a table of the instance may grow to (function
    /// references; a runaway `Vec<Box<dyn Fn>>` hits this).
    #[serde(default = "default_max_table_elements")]
    pub max_table_elements: usize,
    /// Reload when the component file changes (`wisp ctl plugin reload`
    /// works either way).
    #[serde(default = "default_true")]
    pub watch: bool,
    /// Handed to the plugin's `init` as strings.
    #[serde(default)]
    pub params: toml::Table,
    /// What the plugin may use beyond the router's own functions; nothing
    /// unless granted here.
    #[serde(default)]
    pub capabilities: CapabilitiesConfig,
}

/// `[plugin.capabilities]`: named grants. A host function that needs one
/// refuses with `not-permitted` when it is missing. An unknown name is a
/// manifest error, so a misspelt grant cannot silently grant nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilitiesConfig {
    /// Programs `exec-dset` / `exec-msg` may run: an absolute path, or a
    /// path relative to the manifest's directory (`scripts/lcr.sh`). A
    /// command is run only when its first word is exactly one of these.
    #[serde(default)]
    pub exec: Vec<String>,
    /// Reserved for outbound HTTP to listed hosts. Not built: naming it
    /// refuses the manifest rather than pretending to grant something.
    #[serde(default)]
    pub http: Option<toml::Value>,
}

impl PluginConfig {
    /// `params` as the `(key, value)` strings the WIT `init` takes.
    pub fn params_as_strings(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect()
    }
}

/// Transport of a listen address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Udp,
    Tcp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
        })
    }
}

/// One `listen` entry: `proto:ip:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    pub proto: Proto,
    pub addr: SocketAddr,
}

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected \"udp:IP:PORT\" or \"tcp:IP:PORT\" (IPv6 as [::1])";
        let (proto, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: {expected}"))?;
        let proto = match proto.to_ascii_lowercase().as_str() {
            "udp" => Proto::Udp,
            "tcp" => Proto::Tcp,
            other => return Err(format!("unknown transport {other:?}: {expected}")),
        };
        let addr = rest
            .parse::<SocketAddr>()
            .map_err(|_| format!("{rest:?} is not IP:PORT: {expected}"))?;
        Ok(ListenAddr { proto, addr })
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `log_level`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_filter(&self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

fn default_log_level() -> LogLevel {
    LogLevel::Info
}
fn default_max_message_size() -> usize {
    65535
}
fn default_ctl_socket() -> PathBuf {
    PathBuf::from("var/wisp.ctl")
}
fn default_plugin_cache() -> PathBuf {
    PathBuf::from("var/plugin-cache")
}
fn default_db_path() -> PathBuf {
    PathBuf::from("var/wisp.db")
}
fn default_timer_interval() -> u64 {
    60
}
fn default_tables() -> Vec<String> {
    vec!["location".into(), "aliases".into()]
}
fn default_expires() -> u32 {
    3600
}
fn default_min_expires() -> u32 {
    60
}
fn default_max_expires() -> u32 {
    86400
}
fn default_true() -> bool {
    true
}
fn default_t1() -> u64 {
    500
}
fn default_t2() -> u64 {
    4000
}
fn default_t4() -> u64 {
    5000
}
fn default_fr() -> u64 {
    30_000
}
fn default_fr_inv() -> u64 {
    120_000
}
fn default_wait() -> u64 {
    5000
}
fn default_max_transactions() -> usize {
    100_000
}
fn default_deadline_ms() -> u64 {
    100
}
fn default_memory_mb() -> u64 {
    32
}
fn default_max_table_elements() -> usize {
    20_000
}

impl Manifest {
    /// Read and validate the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_owned(),
            source,
        })?;
        let mut manifest = Manifest::parse(&text, path)?;
        manifest.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(manifest)
    }

    /// Parse manifest text; `file` is only used in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Manifest, ConfigError> {
        let invalid = |line: usize, key: String, message: String| ConfigError::Invalid {
            file: file.to_owned(),
            line,
            key,
            message,
        };
        let deserializer = toml::Deserializer::parse(text).map_err(|e| {
            invalid(
                line_of(text, e.span()),
                String::from("(syntax)"),
                e.message().to_owned(),
            )
        })?;
        let manifest: Manifest = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.inner();
            invalid(line_of(text, inner.span()), key, inner.message().to_owned())
        })?;
        manifest
            .validate(text)
            .map_err(|(key, message)| invalid(line_of_key(text, &key), key, message))?;
        Ok(manifest)
    }

    /// Checks that span several fields, after types are known.
    fn validate(&self, _text: &str) -> Result<(), (String, String)> {
        if self.server.listen.is_empty() {
            return Err((
                "server.listen".into(),
                "at least one listen address is required".into(),
            ));
        }
        if self.server.max_message_size < 1024 || self.server.max_message_size > 1 << 20 {
            return Err((
                "server.max_message_size".into(),
                "expected a size between 1024 and 1048576 bytes".into(),
            ));
        }
        let u = &self.usrloc;
        if u.min_expires > u.max_expires {
            return Err((
                "usrloc.min_expires".into(),
                "must not exceed usrloc.max_expires".into(),
            ));
        }
        if u.db_mode > 2 {
            return Err((
                "usrloc.db_mode".into(),
                "expected 0 (memory only), 1 (write-through) or 2 (write-back)".into(),
            ));
        }
        if u.timer_interval == 0 || u.timer_interval > 86_400 {
            return Err((
                "usrloc.timer_interval".into(),
                "expected 1..=86400 seconds".into(),
            ));
        }
        if u.tables.is_empty() {
            return Err((
                "usrloc.tables".into(),
                "at least one table is required".into(),
            ));
        }
        let tm = &self.tm;
        for (key, v, lo, hi) in [
            ("tm.t1_ms", tm.t1_ms, 1, 60_000),
            ("tm.t2_ms", tm.t2_ms, 1, 600_000),
            ("tm.t4_ms", tm.t4_ms, 0, 600_000),
            ("tm.fr_timer_ms", tm.fr_timer_ms, 1, 3_600_000),
            ("tm.fr_inv_timer_ms", tm.fr_inv_timer_ms, 1, 3_600_000),
            ("tm.wait_timer_ms", tm.wait_timer_ms, 0, 600_000),
        ] {
            if !(lo..=hi).contains(&v) {
                return Err((key.into(), format!("expected {lo}..={hi} ms")));
            }
        }
        if tm.t2_ms < tm.t1_ms {
            return Err(("tm.t2_ms".into(), "must not be less than tm.t1_ms".into()));
        }
        if tm.max_transactions == 0 {
            return Err(("tm.max_transactions".into(), "expected at least 1".into()));
        }
        if self.plugin.is_empty() {
            return Err((
                "plugin".into(),
                "at least one [[plugin]] table is required".into(),
            ));
        }
        for (i, p) in self.plugin.iter().enumerate() {
            if p.name.is_empty()
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err((
                    format!("plugin[{i}].name"),
                    "expected a non-empty name of letters, digits, '-' and '_'".into(),
                ));
            }
            if self.plugin[..i].iter().any(|q| q.name == p.name) {
                return Err((
                    format!("plugin[{i}].name"),
                    format!(
                        "{:?} names an earlier plugin too; names must be unique",
                        p.name
                    ),
                ));
            }
            if p.max_table_elements == 0 {
                return Err((
                    format!("plugin[{i}].max_table_elements"),
                    "expected at least 1".into(),
                ));
            }
            if p.deadline_ms == 0 || p.deadline_ms > 10_000 {
                return Err((
                    format!("plugin[{i}].deadline_ms"),
                    "expected 1..=10000 ms".into(),
                ));
            }
            if p.memory_mb == 0 || p.memory_mb > 4096 {
                return Err((
                    format!("plugin[{i}].memory_mb"),
                    "expected 1..=4096 MiB".into(),
                ));
            }
            if p.capabilities.http.is_some() {
                return Err((
                    format!("plugin[{i}].capabilities.http"),
                    "the `http` capability is reserved and not built yet".into(),
                ));
            }
            for program in &p.capabilities.exec {
                if let Err(why) = check_exec_grant(program) {
                    return Err((
                        format!("plugin[{i}].capabilities.exec"),
                        format!("{program:?}: {why}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A manifest path: absolute as written, else relative to the manifest's directory.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// The compiled-plugin cache directory, none when `plugin_cache = ""`.
    pub fn plugin_cache_dir(&self) -> Option<PathBuf> {
        let dir = &self.server.plugin_cache;
        (!dir.as_os_str().is_empty()).then(|| self.resolve(dir))
    }

    /// Absolute-or-manifest-relative path of a plugin component.
    pub fn plugin_path(&self, plugin: &PluginConfig) -> PathBuf {
        if plugin.path.is_absolute() {
            plugin.path.clone()
        } else {
            self.base_dir.join(&plugin.path)
        }
    }
}

/// An `exec` grant names one program by path. A bare name would be looked
/// up in `PATH` at each call (what runs could change under the grant), and
/// an entry with blanks could never equal a command's first word.
fn check_exec_grant(program: &str) -> Result<(), &'static str> {
    if program.is_empty() {
        return Err("empty program");
    }
    if program.chars().any(char::is_whitespace) {
        return Err("list one program, without arguments or blanks");
    }
    if !program.contains('/') {
        return Err(
            "give a path (absolute, or relative to the manifest's directory), not a bare name",
        );
    }
    Ok(())
}

/// 1-based line of a byte offset span (1 when unknown).
fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> usize {
    match span {
        Some(r) => text[..r.start.min(text.len())].matches('\n').count() + 1,
        None => 1,
    }
}

/// Best-effort line of a dotted key (`usrloc.min_expires`): the line where its
/// last segment is assigned, else 1.
fn line_of_key(text: &str, key: &str) -> usize {
    let last = key.rsplit('.').next().unwrap_or(key);
    let last = last.split('[').next().unwrap_or(last);
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(last)
                .is_some_and(|rest| rest.trim_start().starts_with('=') || rest.starts_with(']'))
                || l.trim_start_matches('[').starts_with(last)
        })
        .map(|i| i + 1)
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
listen = ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]
aliases = ["example.com"]

[[plugin]]
name = "default"
path = "p.wasm"
[plugin.params]
max_len = 8192
mode = "strict"
"#;

    #[test]
    fn good_manifest_has_defaults() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert_eq!(m.server.listen.len(), 2);
        assert_eq!(m.server.listen[1].proto, Proto::Tcp);
        assert_eq!(m.usrloc.default_expires, 3600);
        assert_eq!(m.plugin[0].deadline_ms, 100);
        let params = m.plugin[0].params_as_strings();
        assert!(params.contains(&("max_len".into(), "8192".into())));
        assert!(params.contains(&("mode".into(), "strict".into())));
    }

    #[test]
    fn persistence_keys_default_to_memory_only_and_db_mode_is_bounded() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert_eq!(m.usrloc.db_mode(), DbMode::MemoryOnly);
        assert_eq!(m.usrloc.db_path, PathBuf::from("var/wisp.db"));
        assert_eq!(m.server.ctl_socket, PathBuf::from("var/wisp.ctl"));
        let text = format!("{GOOD}\n[usrloc]\ndb_mode = 3\n");
        let e = Manifest::parse(&text, Path::new("w.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `usrloc.db_mode`"), "{e}");
        assert!(e.contains(&format!(":{}:", text.lines().count())), "{e}");
    }

    #[test]
    fn plugin_cache_is_on_by_default_and_empty_turns_it_off() {
        let mut m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        m.base_dir = PathBuf::from("/etc/wisp");
        assert_eq!(
            m.plugin_cache_dir(),
            Some(PathBuf::from("/etc/wisp/var/plugin-cache"))
        );
        let text = GOOD.replace("[server]\n", "[server]\nplugin_cache = \"\"\n");
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
        assert_eq!(m.plugin_cache_dir(), None);
    }

    #[test]
    fn bad_listen_names_file_line_and_key() {
        let text = GOOD.replace("udp:127.0.0.1:5060\"", "udp:127.0.0.1:notaport\"");
        let e = Manifest::parse(&text, Path::new("w.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("w.toml:3: key `server.listen"), "{e}");
        assert!(e.contains("IP:PORT"), "{e}");
    }

    #[test]
    fn unknown_key_is_named() {
        let text = GOOD.replace("aliases", "alias");
        let e = Manifest::parse(&text, Path::new("w.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("w.toml:4"), "{e}");
        assert!(e.contains("alias"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let text = format!("{GOOD}\n[usrloc]\nmin_expires = \"soon\"\n");
        let e = Manifest::parse(&text, Path::new("w.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `usrloc.min_expires`"), "{e}");
        assert!(e.contains(&format!(":{}:", text.lines().count())), "{e}");
    }

    #[test]
    fn cross_field_rule_names_key_and_line() {
        let text = format!("{GOOD}\n[usrloc]\nmin_expires = 100\nmax_expires = 10\n");
        let e = Manifest::parse(&text, Path::new("w.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `usrloc.min_expires`"), "{e}");
        assert!(
            e.contains(&format!(":{}:", text.lines().count() - 1)),
            "{e}"
        );
    }

    #[test]
    fn rr_section_defaults_and_names_wrong_keys() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert!(!m.rr.enable_full_lr);
        let text = format!("{GOOD}\n[rr]\nenable_full_lr = true\n");
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
        assert!(m.rr.enable_full_lr);
        let text = format!("{GOOD}\n[rr]\nenable_full_lr = \"yes\"\n");
        let e = Manifest::parse(&text, Path::new("w.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `rr.enable_full_lr`"), "{e}");
        assert!(e.contains(&format!(":{}:", text.lines().count())), "{e}");
        let text = format!("{GOOD}\n[rr]\nappend_fromtag = true\n");
        let e = Manifest::parse(&text, Path::new("w.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("append_fromtag"), "{e}");
        assert!(e.contains(&format!(":{}:", text.lines().count())), "{e}");
    }

    #[test]
    fn a_chain_of_plugins_needs_distinct_names() {
        let two = |a: &str, b: &str| {
            format!(
                "[server]\nlisten = [\"udp:127.0.0.1:5060\"]\n\
                 [[plugin]]\nname = \"{a}\"\npath = \"a.wasm\"\n\
                 [[plugin]]\nname = \"{b}\"\npath = \"b.wasm\"\nwatch = false\n"
            )
        };
        let m = Manifest::parse(&two("sanity", "routing"), Path::new("w.toml")).expect("chain");
        assert_eq!(m.plugin.len(), 2);
        assert!(m.plugin[0].watch, "watched by default");
        assert!(!m.plugin[1].watch);
        let e = Manifest::parse(&two("x", "x"), Path::new("w.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("plugin[1].name") && e.contains("unique"), "{e}");
    }

    #[test]
    fn capabilities_default_to_none_and_exec_lists_programs() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert!(m.plugin[0].capabilities.exec.is_empty());
        let text =
            format!("{GOOD}\n[plugin.capabilities]\nexec = [\"/bin/echo\", \"scripts/lcr.sh\"]\n");
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
        assert_eq!(
            m.plugin[0].capabilities.exec,
            ["/bin/echo", "scripts/lcr.sh"]
        );
    }

    #[test]
    fn unknown_capability_names_file_line_and_key() {
        let text = format!("{GOOD}\n[plugin.capabilities]\nexec = []\nsockets = true\n");
        let e = Manifest::parse(&text, Path::new("w.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("w.toml:{}:", text.lines().count())),
            "{e}"
        );
        assert!(e.contains("capabilities"), "{e}");
        assert!(e.contains("sockets"), "{e}");
    }

    #[test]
    fn http_capability_is_reserved_not_granted() {
        let text = format!("{GOOD}\n[plugin.capabilities]\nhttp = [\"example.com\"]\n");
        let e = Manifest::parse(&text, Path::new("w.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `plugin[0].capabilities.http`"), "{e}");
        assert!(e.contains("not built"), "{e}");
        assert!(e.contains(&format!(":{}:", text.lines().count())), "{e}");
    }

    #[test]
    fn exec_grant_must_be_one_program_path() {
        for bad in ["echo", "/bin/echo hi", ""] {
            let text = format!("{GOOD}\n[plugin.capabilities]\nexec = [{bad:?}]\n");
            let e = Manifest::parse(&text, Path::new("w.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("key `plugin[0].capabilities.exec`"),
                "{bad:?}: {e}"
            );
            assert!(e.contains(&format!(":{}:", text.lines().count())), "{e}");
        }
    }

    #[test]
    fn missing_plugin_is_refused() {
        let text = "[server]\nlisten = [\"udp:127.0.0.1:5060\"]\n";
        let e = Manifest::parse(text, Path::new("w.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[[plugin]]"), "{e}");
    }
}
