//! # URI rewriting — seed 001, "URI-rewriting Using Built-In Actions" and
//! # the "URI-rewriting Exercise", as a Wisp plugin
//!
//! The SER admin guide shows each URI-rewriting action on
//! `sip:12345@foo.bar:6060`, then asks which URI an exercise script forwards
//! to (`shared/seeds/001_*.txt`). Here a request's `X-Rewrite` header names
//! the row of the table (or `exercise`), the plugin applies it, and the
//! request is forwarded statelessly to the `next_hop` param (`host:port`)
//! with the rewritten Request-URI, so a test can read the result on the
//! wire. The exercise runs the program of param `echo`, which must print
//! its first argument only and be granted under `[plugin.capabilities]
//! exec`: `exec_dset` passes the Request-URI as the last argument, which the
//! seed's `echo ...; echo > /dev/null` sends into /dev/null through a shell,
//! and Wisp runs no shell (`tests/fixtures/echo-first.sh` is such a program).
//!
//! Build: `make plugins` (component at `target/plugins/uri_rewriting.wasm`).

use std::sync::OnceLock;
use wisp_sdk::prelude::*;

struct Config {
    next_hop: (String, u16),
    echo: String,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

struct UriRewriting;

impl Plugin for UriRewriting {
    fn init(params: &Params) -> Result<(), String> {
        let hop = params
            .get("next_hop")
            .ok_or("param next_hop (host:port) is required")?;
        let (host, port) = hop
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse().ok()?)))
            .ok_or_else(|| format!("param next_hop: {hop:?} is not host:port"))?;
        let echo = params
            .get("echo")
            .ok_or("param echo (a program printing its first argument) is required")?
            .to_owned();
        let _ = CONFIG.set(Config {
            next_hop: (host, port),
            echo,
        });
        Ok(())
    }

    fn route(msg: &Msg) -> Result {
        let Some(cfg) = CONFIG.get() else {
            return msg.sl_send_reply(500, "Not Initialized");
        };
        let row = msg.header("X-Rewrite").unwrap_or_default();
        match row.trim() {
            // rewritehost("192.168.0.10")        -> sip:12345@192.168.0.10:6060
            "rewritehost" => msg.rewrite_host("192.168.0.10")?,
            // rewriteuri("sip:alice@foo.bar")    -> sip:alice@foo.bar
            "rewriteuri" => msg.set_ruri("sip:alice@foo.bar")?,
            // rewritehostport("192.168.0.10:3040") -> sip:12345@192.168.0.10:3040
            "rewritehostport" => msg.rewrite_hostport("192.168.0.10:3040")?,
            // rewriteuser("alice")               -> sip:alice@foo.bar:6060
            "rewriteuser" => msg.rewrite_user("alice")?,
            // rewriteuserpass("alice:pw")        -> sip:alice:pw@foo.bar:6060
            "rewriteuserpass" => msg.rewrite_userpass("alice:pw")?,
            // rewriteport("1234")                -> sip:12345@foo.bar:1234
            "rewriteport" => msg.rewrite_port(1234)?,
            // prefix("9")                        -> sip:912345@foo.bar:6060
            "prefix" => msg.prefix("9")?,
            // strip(2)                           -> sip:345@foo.bar:6060
            "strip" => msg.strip(2)?,
            "exercise" => exercise(msg, &cfg.echo)?,
            other => {
                log(LogLevel::Info, &format!("no rewriting row {other:?}"));
                return msg.sl_send_reply(400, "Unknown X-Rewrite");
            }
        }
        msg.forward_to_host(&cfg.next_hop.0, Some(cfg.next_hop.1))
    }
}

/// The exercise; its answer is `sip:134@foo.bar`.
fn exercise(msg: &Msg, echo: &str) -> Result {
    // exec_dset("echo sip:2234@foo.bar; echo > /dev/null");
    // (no shell here: `echo` prints its first argument, not the Request-URI
    // exec_dset appends)
    msg.exec_dset(&format!("{echo} sip:2234@foo.bar"))?;
    // strip(2);
    msg.strip(2)?;
    // if (uri=~"^sip:2") { prefix("0"); } else { prefix("1"); };
    if msg.ruri().starts_with("sip:2") {
        msg.prefix("0")
    } else {
        msg.prefix("1")
    }
    // forward(uri:host, uri:port) — here to next_hop, which the test reads.
}

wisp_sdk::export!(UriRewriting);
