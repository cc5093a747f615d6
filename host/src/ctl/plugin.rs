//! `wisp ctl plugin list|reload [name]` — the plugin chain: which build of
//! each plugin serves, which older builds still finish transactions, and
//! loading a new build without a restart.
//!
//! ```text
//! $ wisp ctl plugin list
//! default  ../target/plugins/default.wasm  reloads=3 refused=1
//!   3f9a1c0b77e2  serving  loaded=2026-11-25T21:40:12Z  live_transactions=12  failures=0
//!   81c04d5e9a10  retired  loaded=2026-11-25T21:02:40Z  live_transactions=2  failures=0
//! $ wisp ctl plugin reload default
//! default: 3f9a1c0b77e2 -> 5d0e2b9c41aa (14 ms)
//! ```

use std::fmt::Write as _;
use std::sync::Arc;

use clap::Subcommand;

use super::CtlError;
use crate::plugin::chain::{PluginSlot, ReloadOutcome};
use crate::router::Router;

/// `wisp ctl plugin ...`.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum PluginCommand {
    /// Each plugin and its builds: which serves, which still finish transactions.
    List,
    /// Load a plugin's new build from disk without a restart.
    Reload {
        /// The plugin's name in the manifest; none reloads every plugin.
        name: Option<String>,
    },
}

pub async fn execute(router: &Arc<Router>, command: PluginCommand) -> Result<String, CtlError> {
    match command {
        PluginCommand::List => Ok(list(router)),
        PluginCommand::Reload { name } => reload(router, name).await,
    }
}

fn list(router: &Router) -> String {
    let mut out = String::new();
    for slot in router.plugins().slots() {
        let _ = writeln!(
            out,
            "{}  {}  reloads={} refused={}{}",
            slot.name(),
            slot.path().display(),
            slot.reloads(),
            slot.refused(),
            if slot.watched() { " watched" } else { "" }
        );
        for v in slot.versions() {
            let _ = writeln!(
                out,
                "  {}  {}  loaded={}  live_transactions={}  failures={}",
                v.hash,
                if v.serving { "serving" } else { "retired" },
                humantime::format_rfc3339_seconds(v.loaded_at),
                v.live_transactions,
                v.failures
            );
        }
    }
    out
}

async fn reload(router: &Arc<Router>, name: Option<String>) -> Result<String, CtlError> {
    let chain = router.plugins();
    let picked: Vec<usize> = match &name {
        None => (0..chain.slots().len()).collect(),
        Some(n) => match chain.slots().iter().position(|s| s.name() == n) {
            Some(i) => vec![i],
            None => {
                let known: Vec<&str> = chain.slots().iter().map(PluginSlot::name).collect();
                return Err(CtlError::Usage(format!(
                    "no plugin {n:?}; the manifest has: {}",
                    known.join(", ")
                )));
            }
        },
    };
    let mut out = String::new();
    let mut refused = false;
    for i in picked {
        let chain = chain.clone();
        // Compiling blocks: keep it off the runtime's workers.
        let (name, outcome) = tokio::task::spawn_blocking(move || {
            let slot = &chain.slots()[i];
            (slot.name().to_owned(), slot.reload())
        })
        .await
        .map_err(|e| CtlError::Failed(format!("reload did not finish: {e}")))?;
        match outcome {
            ReloadOutcome::Unchanged { version } => {
                let _ = writeln!(out, "{name}: {version} unchanged (same build)");
            }
            ReloadOutcome::Swapped { from, to, took } => {
                let _ = writeln!(out, "{name}: {from} -> {to} ({} ms)", took.as_millis());
            }
            ReloadOutcome::Refused { serving, error } => {
                refused = true;
                let _ = writeln!(
                    out,
                    "{name}: new build refused, {serving} keeps serving: {}",
                    error.reason()
                );
            }
        }
    }
    if refused {
        Err(CtlError::Failed(out.trim_end().to_owned()))
    } else {
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<PluginCommand, CtlError> {
        let args: Vec<String> = std::iter::once("plugin")
            .chain(line.split_whitespace())
            .map(str::to_owned)
            .collect();
        match super::super::Command::parse(&args)? {
            super::super::Parsed::Run(super::super::Command::Plugin(c)) => Ok(c),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn parses_list_and_reload() {
        assert_eq!(parse("list"), Ok(PluginCommand::List));
        assert_eq!(parse("reload"), Ok(PluginCommand::Reload { name: None }));
        assert_eq!(
            parse("reload default"),
            Ok(PluginCommand::Reload {
                name: Some("default".into())
            })
        );
        assert!(parse("reload a b").is_err());
        assert!(parse("list all").is_err());
        assert!(parse("").is_err());
    }
}
