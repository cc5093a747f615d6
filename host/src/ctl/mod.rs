//! The management interface (`wisp ctl`, like `serctl` / `kamctl`): a Unix
//! socket (`server.ctl_socket`) that takes one JSON request per line and
//! answers one JSON response per line.
//!
//! ```text
//! -> {"args":["ul","show","alice"]}
//! <- {"ok":true,"output":"alice\n  sip:alice@10.0.0.1:5060 expires=3599 q=1\n"}
//! <- {"ok":false,"error":"unrecognized subcommand 'frob'\n\nUsage: wisp ctl ul <show|add|rm>\n..."}
//! ```
//!
//! The client sends its argv untouched and the router parses it with the
//! clap types below, so a new command needs no new client, and the one
//! usage text of `wisp ctl` is clap's (`wisp ctl help`, `wisp ctl ul add
//! --help`). To add a command: a variant of [`Command`] (its arguments as
//! clap derive types, like [`ul::UlCommand`]) and its arm in [`execute`].
//!
//! Commands: `ul show|add|rm` ([`ul`]), `alias show|add|rm` ([`alias`]),
//! `user add|passwd|rm|show` ([`user`]), `acl grant|revoke|show` ([`acl`]),
//! `htable dump|set|rm` ([`htable`]), `plugin list|reload` ([`plugin`]),
//! `listen`, `acc show` ([`acc`]), `tls show|reload` ([`tls`]), `ps` ([`ps`]), `stats` ([`stats`]; the Prometheus
//! endpoint of [`metrics`] serves the same numbers).

pub mod acc;
pub mod acl;
pub mod alias;
pub mod client;
pub mod htable;
pub mod metrics;
pub mod plugin;
pub mod ps;
pub mod server;
pub mod stats;
pub mod tls;
pub mod ul;
pub mod user;

use std::net::SocketAddr;
use std::sync::Arc;

use clap::error::ErrorKind;
use clap::{ColorChoice, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::config::Proto;
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

/// `wisp ctl <command>`: what the router parses from a request's `args`.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(
    name = "wisp ctl",
    bin_name = "wisp ctl",
    no_binary_name = true,
    disable_version_flag = true,
    color = ColorChoice::Never,
    about = "Manage the running router (like serctl)"
)]
pub struct CtlArgs {
    #[command(subcommand)]
    pub command: Command,
}

/// Every management command.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum Command {
    /// User location (serctl `ul`).
    #[command(subcommand)]
    Ul(ul::UlCommand),
    /// User aliases (serctl `alias`).
    #[command(subcommand)]
    Alias(alias::AliasCommand),
    /// Subscribers: who may authenticate (serctl `add`, `passwd`, `rm`).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Group membership of subscribers (serctl `acl`).
    #[command(subcommand)]
    Acl(acl::AclCommand),
    /// The manifest's shared tables (Kamailio `htable.*`): ban lists, counters.
    #[command(subcommand)]
    Htable(htable::HtableCommand),
    /// The plugin chain: the builds that serve, reload.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// The addresses the router bound, one `proto:ip:port` a line.
    Listen,
    /// Counters and gauges (kamcmd `stats.get_statistics`, serctl `moni`).
    Stats(stats::StatsArgs),
    /// Accounting records (`[acc]`).
    #[command(subcommand)]
    Acc(acc::AccCommand),
    /// Workers, listeners, timers, background threads and plugin builds
    /// (kamcmd `core.psx`, serctl `ps`).
    Ps(ps::PsArgs),
    /// The TLS certificate: show it, reload it from disk (Kamailio `tls.reload`).
    #[command(subcommand)]
    Tls(tls::TlsCommand),
}

/// What a request's arguments ask for.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    Run(Command),
    /// `help`, `--help`: this text is the answer, and not an error.
    Help(String),
}

impl Command {
    /// Parse a request's `args` (no program name). A usage error is clap's
    /// rendered message; its usage line names the valid subcommands.
    pub fn parse(args: &[String]) -> Result<Parsed, CtlError> {
        let mut cli = cli();
        let matches = match cli.try_get_matches_from_mut(args) {
            Ok(m) => m,
            Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp) => {
                return Ok(Parsed::Help(e.render().to_string()));
            }
            Err(e) => return Err(usage(&e)),
        };
        CtlArgs::from_arg_matches(&matches)
            .map(|a| Parsed::Run(a.command))
            .map_err(|e| usage(&e.format(&mut cli)))
    }
}

/// The clap command of `wisp ctl`. Each level's subcommand placeholder is
/// the list of its subcommands (`Usage: wisp ctl ul <show|add|rm>`), so an
/// unknown one is answered with the valid ones, not just "try --help".
pub fn cli() -> clap::Command {
    name_subcommands(CtlArgs::command())
}

fn name_subcommands(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    if names.is_empty() {
        return cmd;
    }
    let mut cmd = cmd.subcommand_value_name(names.join("|"));
    for name in names {
        cmd = cmd.mut_subcommand(name, name_subcommands);
    }
    cmd
}

/// A clap error as the operator reads it, after `wisp: `.
fn usage(e: &clap::Error) -> CtlError {
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    CtlError::Usage(text.trim_end().to_owned())
}

/// One bound address as `wisp ctl listen` and the startup log name it:
/// `udp:127.0.0.1:5060`, the form of a `listen` entry.
pub fn listen_name(proto: Proto, addr: SocketAddr) -> String {
    format!("{}:{addr}", proto.to_string().to_ascii_lowercase())
}

fn listen(router: &Router) -> String {
    router
        .transports()
        .listen_addrs()
        .into_iter()
        .map(|(proto, addr)| listen_name(proto, addr) + "\n")
        .collect()
}

/// Carry out `command` on the running router; the text is for the operator.
pub async fn execute(router: &Arc<Router>, command: Command) -> Result<String, CtlError> {
    match command {
        Command::Ul(c) => ul::execute(router.services(), c).await,
        Command::Alias(c) => alias::execute(router.services(), c).await,
        Command::User(c) => user::execute(router.subscribers(), c).await,
        Command::Acl(c) => acl::execute(router.subscribers(), c).await,
        Command::Htable(c) => htable::execute(router.services(), c),
        Command::Plugin(c) => plugin::execute(router, c).await,
        Command::Listen => Ok(listen(router)),
        Command::Tls(c) => tls::execute(router, c).await,
        Command::Stats(a) => {
            // It walks the user location tables: off the runtime's workers.
            let router = router.clone();
            tokio::task::spawn_blocking(move || stats::execute(&router, &a))
                .await
                .map_err(|e| CtlError::Failed(format!("stats: {e}")))?
        }
        Command::Acc(c) => acc::execute(router.services(), c).await,
        Command::Ps(a) => ps::execute(router, &a),
    }
}

/// Whether `args` is `user add|passwd ...`, whose fourth argument is a password.
fn sets_password(args: &[String]) -> bool {
    args.first().is_some_and(|a| a == "user")
        && args.get(1).is_some_and(|a| a == "add" || a == "passwd")
}

/// The client side of `user add|passwd <aor> -`: the password is the first
/// line `read` gives (standard input), so it shows in no process list or
/// shell history.
pub fn password_from_stdin(
    args: &mut [String],
    read: impl FnOnce() -> std::io::Result<String>,
) -> std::io::Result<()> {
    if sets_password(args)
        && let Some(arg) = args.get_mut(3).filter(|a| *a == "-")
    {
        *arg = read()?.trim_end_matches(['\r', '\n']).to_owned();
    }
    Ok(())
}

/// A request's `args` as the log may show them: the password of `user
/// add|passwd` is hidden.
pub fn loggable(args: &[String]) -> Vec<String> {
    let secret = sets_password(args);
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            if secret && i >= 3 {
                "********".to_owned()
            } else {
                a.clone()
            }
        })
        .collect()
}

/// Parse and carry out one request.
pub async fn handle(router: &Arc<Router>, request: Request) -> Response {
    let result = match Command::parse(&request.args) {
        Ok(Parsed::Run(c)) => execute(router, c).await,
        Ok(Parsed::Help(text)) => Ok(text),
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

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn parse(line: &str) -> Result<Parsed, CtlError> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        Command::parse(&args)
    }

    #[test]
    fn the_clap_definition_is_consistent() {
        cli().debug_assert();
    }

    #[test]
    fn each_group_routes_to_its_command() {
        assert!(matches!(
            parse("ul show"),
            Ok(Parsed::Run(Command::Ul(ul::UlCommand::Show { .. })))
        ));
        assert!(matches!(
            parse("alias rm 1234"),
            Ok(Parsed::Run(Command::Alias(alias::AliasCommand::Rm { .. })))
        ));
        assert_eq!(
            parse("plugin list"),
            Ok(Parsed::Run(Command::Plugin(plugin::PluginCommand::List)))
        );
        assert_eq!(parse("listen"), Ok(Parsed::Run(Command::Listen)));
        assert_eq!(
            parse("stats --json --watch 2"),
            Ok(Parsed::Run(Command::Stats(stats::StatsArgs {
                json: true,
                watch: Some(2)
            })))
        );
        assert!(parse("stats --watch 0").is_err());
        assert!(parse("listen udp").is_err());
    }

    #[test]
    fn an_unknown_command_gets_one_usage_text_naming_the_valid_ones() {
        let Err(CtlError::Usage(e)) = parse("dlg list") else {
            panic!("dlg list parsed");
        };
        assert!(e.starts_with("unrecognized subcommand 'dlg'"), "{e}");
        assert!(
            e.contains("Usage: wisp ctl <ul|alias|user|acl|htable|plugin|listen|stats|acc|ps|tls>"),
            "{e}"
        );
        assert_eq!(e.matches("Usage:").count(), 1, "{e}");
        assert!(
            !e.contains('\x1b'),
            "no terminal colours over the socket: {e:?}"
        );
    }

    #[test]
    fn no_command_is_a_usage_error_that_lists_the_commands() {
        let Err(CtlError::Usage(e)) = parse("") else {
            panic!("empty args parsed");
        };
        for name in [
            "ul", "alias", "user", "acl", "htable", "plugin", "listen", "stats", "acc", "tls",
        ] {
            assert!(e.contains(&format!("\n  {name} ")), "{name}: {e}");
        }
    }

    #[test]
    fn help_is_an_answer_not_an_error() {
        let Ok(Parsed::Help(top)) = parse("help") else {
            panic!("{:?}", parse("help"));
        };
        assert!(top.contains("listen"), "{top}");
        assert_eq!(parse("--help"), Ok(Parsed::Help(top)));
        let Ok(Parsed::Help(add)) = parse("ul add --help") else {
            panic!("{:?}", parse("ul add --help"));
        };
        for flag in ["--expires <N>", "--table <T>", "[permanent]"] {
            assert!(add.contains(flag), "{flag}: {add}");
        }
    }

    #[test]
    fn the_log_never_shows_a_password() {
        let args =
            |line: &str| -> Vec<String> { line.split_whitespace().map(str::to_owned).collect() };
        assert_eq!(
            loggable(&args("user add alice@example.com s3cret")),
            args("user add alice@example.com ********")
        );
        assert_eq!(
            loggable(&args("user passwd alice@example.com n3w extra")),
            args("user passwd alice@example.com ******** ********")
        );
        assert_eq!(
            loggable(&args("acl grant alice@example.com int")),
            args("acl grant alice@example.com int")
        );
    }

    #[test]
    fn a_password_given_as_dash_is_read_from_stdin() {
        let args =
            |line: &str| -> Vec<String> { line.split_whitespace().map(str::to_owned).collect() };
        let mut a = args("user passwd alice@example.com -");
        password_from_stdin(&mut a, || Ok("s3cret word\r\n".into())).expect("read");
        assert_eq!(a[3], "s3cret word");
        // Only a password argument is read; nothing else is touched.
        for line in [
            "user add alice@example.com s3cret",
            "ul rm alice -",
            "user show -",
        ] {
            let mut a = args(line);
            password_from_stdin(&mut a, || panic!("{line}: nothing to read")).expect("no read");
            assert_eq!(a, args(line));
        }
    }

    #[test]
    fn a_bound_address_is_named_like_a_listen_entry() {
        let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, 40123));
        assert_eq!(listen_name(Proto::Udp, v4), "udp:127.0.0.1:40123");
        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 5060));
        assert_eq!(listen_name(Proto::Tcp, v6), "tcp:[::1]:5060");
    }
}
