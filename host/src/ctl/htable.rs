//! `wisp ctl htable dump|set|rm` — the manifest's `[[htable]]`s, like
//! Kamailio's `htable.dump`, `htable.seti` / `htable.sets` and
//! `htable.delete` RPCs: see a ban list, lift a ban, set a counter.

use std::fmt::Write as _;

use clap::Subcommand;

use super::CtlError;
use crate::services::Services;
use crate::services::htable::ShtValue;

/// `wisp ctl htable ...`.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum HtableCommand {
    /// Every live item of a table, `key = value` a line, sorted by key
    /// (strings quoted).
    Dump { table: String },
    /// Set an item: an integer when VALUE is one, else a string.
    Set {
        table: String,
        key: String,
        value: String,
    },
    /// Remove an item, e.g. `wisp ctl htable rm ipban 192.0.2.7` to lift a ban.
    Rm { table: String, key: String },
}

pub fn execute(services: &Services, command: HtableCommand) -> Result<String, CtlError> {
    let tables = services.htables();
    let failed = |e: crate::services::htable::HtableError| CtlError::Failed(e.to_string());
    match command {
        HtableCommand::Dump { table } => {
            let mut out = String::new();
            for (key, value) in tables.dump(&table).map_err(failed)? {
                let _ = match value {
                    ShtValue::Int(n) => writeln!(out, "{key} = {n}"),
                    ShtValue::Str(s) => writeln!(out, "{key} = {s:?}"),
                };
            }
            Ok(out)
        }
        HtableCommand::Set { table, key, value } => {
            let value = match value.parse::<i64>() {
                Ok(n) => ShtValue::Int(n),
                Err(_) => ShtValue::Str(value.into()),
            };
            tables.set(&table, &key, value).map_err(failed)?;
            Ok(format!("{table}: set {key}\n"))
        }
        HtableCommand::Rm { table, key } => {
            if tables.remove(&table, &key).map_err(failed)? {
                Ok(format!("{table}: removed {key}\n"))
            } else {
                Err(CtlError::Failed(format!("{table}: no item {key:?}")))
            }
        }
    }
}
