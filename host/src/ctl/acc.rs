//! `wisp ctl acc show [N]` — the latest accounting records (Kamailio's
//! `acc` log, as `serctl` users read it from syslog), oldest first, one a
//! line: time, `answered`/`missed`, method, status, Call-ID, CSeq, From,
//! To, R-URI, source.

use clap::Subcommand;

use super::CtlError;
use crate::services::Services;
use crate::services::acc::{KEPT, line};

/// `wisp ctl acc ...`.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum AccCommand {
    /// The latest records (the router keeps the last 1000).
    Show {
        /// How many.
        #[arg(default_value_t = 20)]
        n: usize,
    },
}

pub fn execute(services: &Services, command: AccCommand) -> Result<String, CtlError> {
    let Some(log) = services.acc() else {
        return Err(CtlError::Failed(
            "accounting is off: set [acc] log_flag or log_missed_flag".into(),
        ));
    };
    match command {
        AccCommand::Show { n } => Ok(log
            .latest(n.min(KEPT))
            .iter()
            .map(|r| line(r) + "\n")
            .collect()),
    }
}
