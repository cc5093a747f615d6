//! `wisp ctl acc show [N]` — the latest accounting records (Kamailio's
//! `acc` table, or its log as `serctl` users read it from syslog), oldest
//! first, one a line: time, `answered`/`missed`, method, status, Call-ID,
//! CSeq, reason, From, To, R-URI, source, a BYE's call duration. With a
//! user-location database they come from its `acc` table (they outlive a
//! restart), else from the router's memory.

use clap::Subcommand;

use super::CtlError;
use std::sync::Arc;

use crate::services::Services;
use crate::services::acc::line;

/// Most records one `acc show` lists.
const MAX_SHOWN: usize = 100_000;

/// `wisp ctl acc ...`.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum AccCommand {
    /// The latest records (from the database's `acc` table, or the last
    /// 1000 the router kept in memory).
    Show {
        /// How many.
        #[arg(default_value_t = 20)]
        n: usize,
    },
}

pub async fn execute(services: &Arc<Services>, command: AccCommand) -> Result<String, CtlError> {
    let Some(log) = services.acc().cloned() else {
        return Err(CtlError::Failed(
            "accounting is off: set [acc] log_flag or log_missed_flag".into(),
        ));
    };
    match command {
        AccCommand::Show { n } => {
            // It may read the database: off the runtime's workers.
            let (rows, note) = tokio::task::spawn_blocking(move || log.latest(n.min(MAX_SHOWN)))
                .await
                .map_err(|e| CtlError::Failed(format!("acc show: {e}")))?;
            let mut out: String = note.map(|n| format!("# {n}\n")).unwrap_or_default();
            out.extend(rows.iter().map(|r| line(r) + "\n"));
            Ok(out)
        }
    }
}
