//! The TOML manifest: one file configures listeners, aliases, logging, the
//! registrar, transactions and the plugin chain. Types here are the manifest
//! reference; a wrong manifest fails at start with the file, line, key and
//! what was expected.
//!
//! Layout: one file per section, each with its type, defaults (its `Default`
//! impl, used through `#[serde(default)]`) and the rules serde cannot check:
//! `server` (with `listen` addresses and the log level), `usrloc`, `tm`,
//! `rr`, `auth`, `subscriber`, `tcp`, `tls`, `pike` (with `[[htable]]`), `metrics`, `acc`,
//! `rtpengine`, `nat`,
//! `plugin`. Here: the [`Manifest`], loading, and [`ConfigError`].
//! `locate` finds an error's line from the TOML parser's spans: serde's
//! errors carry the span of the value they failed on; a rule checked after
//! deserialization names its [`KeyPath`], looked up in the parsed document.

mod acc;
mod auth;
mod listen;
mod locate;
mod metrics;
mod nat;
mod pike;
mod plugin;
mod rr;
mod rtpengine;
mod server;
mod subscriber;
mod tcp;
mod tls;
mod tm;
mod usrloc;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::DeTable;

pub use acc::AccConfig;
pub use auth::{AuthConfig, DigestAlgorithm, MIN_SECRET_LEN};
pub use listen::{ListenAddr, Proto};
use locate::{KeyPath, line_of};
pub use metrics::MetricsConfig;
pub use nat::NatConfig;
pub use pike::{HtableConfig, PikeConfig};
pub use plugin::{CapabilitiesConfig, PluginConfig};
pub use rr::RrConfig;
pub use rtpengine::{RtpengineConfig, RtpengineSocket};
pub use server::{LogFormat, LogLevel, ServerConfig};
pub use subscriber::SubscriberConfig;
pub use tcp::TcpConfig;
pub use tls::{TlsConfig, TlsFileError, TlsMaterial};
pub use tm::TmConfig;
pub use usrloc::{BriefExpires, DbMode, UsrlocConfig, parse_db_url};

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

/// A rule a deserialized manifest breaks: the key it is about, and why.
#[derive(Debug)]
struct Invalid {
    key: KeyPath,
    message: String,
}

impl Invalid {
    fn new(key: KeyPath, message: impl Into<String>) -> Invalid {
        Invalid {
            key,
            message: message.into(),
        }
    }
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
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub subscriber: SubscriberConfig,
    #[serde(default)]
    pub tcp: TcpConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub pike: PikeConfig,
    /// Named tables plugins share (`[[htable]]`), in manifest order.
    #[serde(default)]
    pub htable: Vec<HtableConfig>,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub acc: AccConfig,
    #[serde(default)]
    pub rtpengine: RtpengineConfig,
    /// Keepalives of contacts behind NAT.
    #[serde(default)]
    pub nat: NatConfig,
    /// Plugins, run in this order as a chain: each request goes through
    /// them until one replies, relays or drops it.
    #[serde(default)]
    pub plugin: Vec<PluginConfig>,
    /// Directory of the manifest file; relative paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
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
        let invalid = |at: usize, key: String, message: &str| ConfigError::Invalid {
            file: file.to_owned(),
            line: line_of(text, at),
            key,
            message: message.to_owned(),
        };
        let doc = DeTable::parse(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            invalid(at, "(syntax)".into(), e.message())
        })?;
        let deserializer = toml::de::Deserializer::from(doc.clone());
        let mut manifest: Manifest =
            serde_path_to_error::deserialize(deserializer).map_err(|e| {
                let mut key = KeyPath::from_serde(e.path());
                let span = e.inner().span().unwrap_or_else(|| key.span_in(&doc));
                // An unknown key fails at the key, inside the table serde was at.
                if let Some(unknown) = key.key_at(&doc, &span) {
                    key = key.key(&unknown);
                }
                invalid(span.start, key.to_string(), e.inner().message())
            })?;
        manifest.usrloc.server_id = manifest.server.server_id;
        let base_dir = file.parent().unwrap_or_else(|| Path::new(""));
        manifest
            .validate()
            .and_then(|()| manifest.auth.load_secret(base_dir))
            // The files are read once here so that a bad one names its key
            // and line; the transport reads them again when it binds.
            .and_then(|()| manifest.tls.load(base_dir).map(drop).map_err(Invalid::from))
            .map_err(|Invalid { key, message }| {
                invalid(key.span_in(&doc).start, key.to_string(), &message)
            })?;
        Ok(manifest)
    }

    /// The rules serde does not check, section by section.
    fn validate(&self) -> Result<(), Invalid> {
        self.server.check()?;
        self.usrloc.check()?;
        self.subscriber.check()?;
        self.tm.check()?;
        self.auth.check()?;
        self.tcp.check()?;
        self.tls
            .check(self.server.listen.iter().any(|l| l.proto.is_secure()))?;
        self.pike.check()?;
        pike::check_htables(&self.htable)?;
        self.acc.check()?;
        self.rtpengine.check()?;
        self.nat.check()?;
        plugin::check_chain(&self.plugin)
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const GOOD: &str = r#"
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

    /// The error `text` is refused with, as shown to the operator.
    pub(crate) fn refused(text: &str) -> String {
        Manifest::parse(text, Path::new("w.toml"))
            .expect_err("the manifest must be refused")
            .to_string()
    }

    /// The error of refused `text`, which must name `w.toml`, `line` and
    /// the key `key` first.
    pub(crate) fn refused_at(text: &str, line: usize, key: &str) -> String {
        let e = refused(text);
        assert!(e.starts_with(&format!("w.toml:{line}: key `{key}`")), "{e}");
        e
    }

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
        let e = refused(&text);
        assert!(e.starts_with("w.toml:3: key `server.listen[0]`"), "{e}");
        assert!(e.contains("IP:PORT"), "{e}");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = GOOD.replace("aliases", "alias");
        let e = refused(&text);
        assert!(e.starts_with("w.toml:4: key `server.alias`"), "{e}");
        assert!(e.contains("unknown field"), "{e}");
        // An unknown section, too.
        let text = format!("{GOOD}\n[registrar]\nmax_contacts = 1\n");
        refused_at(&text, text.lines().count() - 1, "registrar");
    }

    #[test]
    fn syntax_error_names_its_line() {
        let text = format!("{GOOD}\n[tm]\nt1_ms = = 5\n");
        refused_at(&text, text.lines().count(), "(syntax)");
    }

    #[test]
    fn missing_server_section_is_named() {
        let e = refused("[[plugin]]\nname = \"a\"\npath = \"a.wasm\"\n");
        assert!(e.starts_with("w.toml:1:"), "{e}");
        assert!(e.contains("server"), "{e}");
    }
}
