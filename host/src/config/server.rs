//! `[server]`: sockets, names, logging, limits.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Invalid, KeyPath, ListenAddr};

/// The default `Server:` / `User-Agent:` value.
pub const DEFAULT_IDENTITY: &str = concat!("Wisp/", env!("CARGO_PKG_VERSION"));

/// `[server]`: sockets, names, limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `"udp:127.0.0.1:5060"`, `"tcp:[::1]:5060"`; at least one.
    pub listen: Vec<ListenAddr>,
    /// Other names of this router (Kamailio `alias=`), `host` or `host:port`.
    pub aliases: Vec<String>,
    /// Default `info`; `wisp run -v` / `-q` move it a level per flag.
    pub log_level: LogLevel,
    /// `"text"` (default: one human-readable line per event) or `"json"`
    /// (one JSON object per line, for a log shipper).
    pub log_format: LogFormat,
    /// Receive limit in bytes (UDP datagram / TCP message), 1024..=1048576;
    /// default 65535.
    pub max_message_size: usize,
    /// Receive workers; 0 (default) = one per available core.
    pub workers: usize,
    /// Unix socket of the management interface (`wisp ctl`), relative to
    /// the manifest's directory; default `var/wisp.ctl`.
    pub ctl_socket: PathBuf,
    /// Directory of compiled plugins, relative to the manifest's directory,
    /// so a restart loads the plugin instead of compiling it; `""` = off.
    /// Default `var/plugin-cache`.
    pub plugin_cache: PathBuf,
    /// The `Server:` value of every reply (Kamailio `server_header`); `""`
    /// sends none, so scanners (`svmap`) learn nothing. Default `Wisp/<version>`.
    pub server_header: String,
    /// The `User-Agent:` value of requests the router makes itself (the
    /// CANCEL and ACK of its transactions; Kamailio `user_agent_header`);
    /// `""` sends none. Default `Wisp/<version>`.
    pub user_agent_header: String,
    /// Kamailio core `sip_warning`: every reply the router generates (`sl`,
    /// tm's 408/483/500/503, the sanity check's 400) carries `Warning: 392
    /// <listen address> "Noisy feedback tells: pid=... req_src_ip=...
    /// req_src_port=... in_uri=... out_uri=... via_cnt=..."`, to trace
    /// which server in a chain answered and why. It tells the world the
    /// router's addresses and pid: for test beds and debugging, not for a
    /// router on the internet. Default `false`.
    pub sip_warning: bool,
    /// Kamailio core `server_id`: this router's number among the routers
    /// that share one user location database (`usrloc.db_mode = 3`). Each
    /// binding records the router that saved it and the socket it came in
    /// on; a contact reachable only over that router's connection (TCP) is
    /// reached through it. Give each router a number of its own; default 0.
    pub server_id: u32,
}

impl Default for ServerConfig {
    /// No listen address: a manifest must give one.
    fn default() -> Self {
        ServerConfig {
            listen: Vec::new(),
            aliases: Vec::new(),
            log_level: LogLevel::Info,
            log_format: LogFormat::Text,
            max_message_size: 65535,
            workers: 0,
            ctl_socket: PathBuf::from("var/wisp.ctl"),
            plugin_cache: PathBuf::from("var/plugin-cache"),
            server_header: DEFAULT_IDENTITY.to_string(),
            user_agent_header: DEFAULT_IDENTITY.to_string(),
            sip_warning: false,
            server_id: 0,
        }
    }
}

impl ServerConfig {
    /// Rules serde does not check: a listen address, a sane receive limit.
    pub(super) fn check(&self) -> Result<(), Invalid> {
        let key = |k| KeyPath::new(&["server", k]);
        if self.listen.is_empty() {
            return Err(Invalid::new(
                key("listen"),
                "at least one listen address is required",
            ));
        }
        for (k, v) in [
            ("server_header", &self.server_header),
            ("user_agent_header", &self.user_agent_header),
        ] {
            if v.len() > 256 || v.chars().any(|c| c.is_control()) || v.trim() != v {
                return Err(Invalid::new(
                    key(k),
                    "expected a header value: at most 256 characters, no control \
                     characters (CR, LF, ...) and no leading or trailing blanks; \
                     \"\" sends no header",
                ));
            }
        }
        if !(1024..=1 << 20).contains(&self.max_message_size) {
            return Err(Invalid::new(
                key("max_message_size"),
                "expected a size between 1024 and 1048576 bytes",
            ));
        }
        Ok(())
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

/// `log_format`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogLevel {
    /// `steps` levels more verbose (positive, `-v`) or quieter (negative,
    /// `-q`), stopping at `trace` and `error`.
    pub fn shifted(self, steps: i32) -> LogLevel {
        const ORDER: [LogLevel; 5] = [
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Info,
            LogLevel::Debug,
            LogLevel::Trace,
        ];
        let at = ORDER.iter().position(|l| *l == self).unwrap_or(2) as i32;
        ORDER[(at + steps).clamp(0, 4) as usize]
    }

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

#[cfg(test)]
mod tests {
    use crate::config::tests::{GOOD, refused, refused_at};
    use crate::config::*;
    use std::path::Path;

    #[test]
    fn server_defaults_and_port_zero() {
        let text = GOOD.replace("udp:127.0.0.1:5060\"", "udp:127.0.0.1:0\"");
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("port 0 is valid");
        assert_eq!(m.server.listen[0].addr.port(), 0);
        assert_eq!(m.server.log_level, LogLevel::Info);
        assert_eq!(m.server.max_message_size, 65535);
        assert_eq!(m.server.workers, 0);
        assert!(!m.server.sip_warning);
        assert_eq!(m.server.log_format, LogFormat::Text);
    }

    #[test]
    fn log_format_is_text_or_json_named_at_its_line() {
        let text = GOOD.replace("[server]\n", "[server]\nlog_format = \"json\"\n");
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
        assert_eq!(m.server.log_format, LogFormat::Json);
        let text = GOOD.replace("[server]\n", "[server]\nlog_format = \"xml\"\n");
        let e = refused_at(&text, 3, "server.log_format");
        assert!(e.contains("`json`"), "{e}");
    }

    #[test]
    fn verbosity_flags_move_the_level_and_stop_at_the_ends() {
        assert_eq!(LogLevel::Info.shifted(1), LogLevel::Debug);
        assert_eq!(LogLevel::Info.shifted(-1), LogLevel::Warn);
        assert_eq!(LogLevel::Warn.shifted(5), LogLevel::Trace);
        assert_eq!(LogLevel::Debug.shifted(-9), LogLevel::Error);
        assert_eq!(LogLevel::Error.shifted(0), LogLevel::Error);
    }

    #[test]
    fn sip_warning_is_a_switch_named_at_its_line() {
        let text = GOOD.replace("[server]\n", "[server]\nsip_warning = true\n");
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("valid");
        assert!(m.server.sip_warning);
        let text = GOOD.replace("[server]\n", "[server]\nsip_warning = \"yes\"\n");
        let e = refused_at(&text, 3, "server.sip_warning");
        assert!(e.contains("bool"), "{e}");
    }

    #[test]
    fn bad_log_level_names_line_key_and_the_levels() {
        let text = GOOD.replace("[server]\n", "[server]\nlog_level = \"verbose\"\n");
        let e = refused(&text);
        assert!(e.starts_with("w.toml:3: key `server.log_level`"), "{e}");
        assert!(e.contains("verbose") && e.contains("`trace`"), "{e}");
    }

    #[test]
    fn missing_or_empty_listen_is_refused_at_its_line() {
        let text = GOOD.replace(
            "listen = [\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"]",
            "listen = []",
        );
        let e = refused(&text);
        assert!(e.starts_with("w.toml:3: key `server.listen`"), "{e}");
        assert!(e.contains("at least one listen address"), "{e}");
        // Left out: reported at the `[server]` header.
        let text = GOOD.replace(
            "listen = [\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"]\n",
            "",
        );
        let e = refused(&text);
        assert!(e.starts_with("w.toml:2: key `server.listen`"), "{e}");
    }

    #[test]
    fn out_of_range_message_size_names_its_line() {
        let text = GOOD.replace("[server]\n", "[server]\nmax_message_size = 100\n");
        let e = refused(&text);
        assert!(
            e.starts_with("w.toml:3: key `server.max_message_size`"),
            "{e}"
        );
        assert!(e.contains("1024"), "{e}");
    }

    #[test]
    fn server_and_user_agent_headers_default_to_wisp_and_may_be_hidden_but_not_forged() {
        let m = Manifest::parse(GOOD, Path::new("w.toml")).expect("valid");
        assert!(m.server.server_header.starts_with("Wisp/"));
        assert_eq!(m.server.user_agent_header, m.server.server_header);
        let text = GOOD.replace("[server]\n", "[server]\nserver_header = \"\"\n");
        let m = Manifest::parse(&text, Path::new("w.toml")).expect("empty hides it");
        assert_eq!(m.server.server_header, "");
        // A CR LF would start a header of the attacker's choosing.
        let text = GOOD.replace(
            "[server]\n",
            "[server]\nuser_agent_header = \"x\\r\\nVia: evil\"\n",
        );
        let e = refused_at(&text, 3, "server.user_agent_header");
        assert!(e.contains("control characters"), "{e}");
    }
}
