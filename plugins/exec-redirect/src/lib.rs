//! # Redirect server from external programs — SER's "Executing External Script"
//!
//! `shared/seeds/001_*.txt`: a redirect server whose addresses come from an
//! external command instead of the script, and which logs each request's
//! source address with another command. Stateless: a retransmission runs
//! both commands again (put `t_newtran` in front to absorb them).
//!
//! ```text
//! route {
//!     exec_msg("log-src.sh /var/log/ser-src.log");  # request on stdin, $SRCIP
//!     if (!exec_dset("lcr.sh gw1 gw2")) { sl_reply_error(); break; }
//!     sl_send_reply("300", "Redirect");             # destination set -> Contact
//! }
//! ```
//!
//! Params: `dset_command` (required) — the command whose output lines become
//! the destination set; `log_command` (optional) — run with the request on
//! its standard input; `stateful` (optional, `true`) — `t_newtran` first and
//! `t_reply("300", ...)`, so a retransmission is answered from the
//! transaction and runs no command again. Both programs must be granted in the manifest, else
//! the call returns `not-permitted` and the request is answered 500:
//!
//! ```toml
//! [[plugin]]
//! name = "exec-redirect"
//! path = "../target/plugins/exec_redirect.wasm"
//! deadline_ms = 2000                 # the route waits for the commands
//! [plugin.params]
//! dset_command = "scripts/lcr.sh gw1.example.net gw2.example.net"
//! log_command = "scripts/log-src.sh var/src.log"
//! [plugin.capabilities]
//! exec = ["scripts/lcr.sh", "scripts/log-src.sh"]
//! ```
//!
//! Build: `make plugins` (component at `target/plugins/exec_redirect.wasm`).

use wisp_sdk::prelude::*;

/// What the manifest configured.
struct ExecRedirect {
    dset_command: String,
    log_command: Option<String>,
    stateful: bool,
}

impl Configured for ExecRedirect {
    fn init(params: &Params) -> Result<Self, String> {
        let dset = params
            .get("dset_command")
            .ok_or("param `dset_command` (a granted command line) is required")?;
        Ok(ExecRedirect {
            dset_command: dset.to_owned(),
            log_command: params.get("log_command").map(str::to_owned),
            stateful: params.get("stateful") == Some("true"),
        })
    }

    fn route(&self, msg: &Msg) -> Result {
        if msg.is_method("ACK") {
            return Ok(());
        }
        let config = self;
        if config.stateful {
            msg.t_newtran()?;
        }
        if let Some(cmd) = &config.log_command {
            msg.exec_msg(cmd)?;
        }
        // An error (no grant, the program failed) is returned: the router
        // answers it with sl_reply_error, 500.
        msg.exec_dset(&config.dset_command)?;
        if config.stateful {
            msg.t_reply(300, "Redirect")
        } else {
            msg.sl_send_reply(300, "Redirect")
        }
    }
}

wisp_sdk::export!(ExecRedirect);
