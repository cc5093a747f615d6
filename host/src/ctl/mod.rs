//! The management interface (`wisp ctl`, like `serctl` / `kamctl`): a Unix
//! socket (`server.ctl_socket`) that takes one JSON request per line and
//! answers one JSON response per line.
//!
//! ```text
//! -> {"args":["ul","show","alice"]}
//! <- {"ok":true,"output":"alice\n  sip:alice@10.0.0.1:5060 expires=3599 q=1\n"}
//! <- {"ok":false,"error":"usage: ul rm <aor> [contact] [--table T]"}
//! ```
//!
//! The client sends its argv untouched and the router parses it, so a new
//! command needs no new client. To add one: a variant of [`Command`], a
//! module with its parser and handler (like [`ul`]), and a line in
//! [`Command::parse`] and [`execute`].
//!
//! Commands: `ul show|add|rm` ([`ul`]), `alias show|add|rm` ([`alias`]),
//! `plugin list|reload` ([`plugin`]).

pub mod alias;
pub mod client;
pub mod plugin;
pub mod server;
pub mod ul;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::router::Router;

/// One request on the socket.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub args: Vec<String>,
}

/// The answer to one request.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// Why a command was not carried out: the message goes back to the operator.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CtlError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

/// Every management command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `ul ...`: user location (serctl `ul`).
    Ul(ul::UlCommand),
    /// `alias ...`: user aliases (serctl `alias`).
    Alias(alias::AliasCommand),
    /// `plugin ...`: the plugin chain, reload.
    Plugin(plugin::PluginCommand),
}

const USAGE: &str = "commands: ul show [aor] | ul add <aor> <contact> [--expires N | permanent] | ul rm <aor> [contact]  (each takes --table T, default location) | alias show [alias] | alias add <alias> <canonical uri> | alias rm <alias> | plugin list | plugin reload [name]";

impl Command {
    pub fn parse(args: &[String]) -> Result<Command, CtlError> {
        match args.split_first() {
            Some((group, rest)) if group == "ul" => Ok(Command::Ul(ul::UlCommand::parse(rest)?)),
            Some((group, rest)) if group == "alias" => {
                Ok(Command::Alias(alias::AliasCommand::parse(rest)?))
            }
            Some((group, rest)) if group == "plugin" => {
                Ok(Command::Plugin(plugin::PluginCommand::parse(rest)?))
            }
            Some((other, _)) => Err(CtlError::Usage(format!(
                "unknown command {other:?}; {USAGE}"
            ))),
            None => Err(CtlError::Usage(USAGE.into())),
        }
    }
}

/// Carry out `command` on the running router; the text is for the operator.
pub async fn execute(router: &Arc<Router>, command: Command) -> Result<String, CtlError> {
    match command {
        Command::Ul(c) => ul::execute(router.services(), c).await,
        Command::Alias(c) => alias::execute(router.services(), c).await,
        Command::Plugin(c) => plugin::execute(router, c).await,
    }
}

/// Parse and carry out one request.
pub async fn handle(router: &Arc<Router>, request: Request) -> Response {
    let result = match Command::parse(&request.args) {
        Ok(c) => execute(router, c).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(output) => Response {
            ok: true,
            output,
            error: String::new(),
        },
        Err(e) => Response {
            ok: false,
            output: String::new(),
            error: e.to_string(),
        },
    }
}
