//! `wisp ctl tls show|reload` — the certificate the TLS listeners present,
//! and reading it again without a restart (Kamailio `tls.reload`).
//!
//! ```text
//! $ wisp ctl tls reload
//! tls: certificate 3f9a1c0b77e2d410 loaded (reload 1); new handshakes use it, open connections stay
//! $ wisp ctl tls show
//! certificate 3f9a1c0b77e2d410 loaded=2026-12-06T13:40:12Z reloads=1
//! ```

use std::fmt::Write as _;
use std::sync::Arc;

use clap::Subcommand;

use super::CtlError;
use crate::router::Router;
use crate::transport::tls::TlsStatus;

/// `wisp ctl tls ...`.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum TlsCommand {
    /// The certificate serving (SHA-256 prefix), when it was loaded, and why
    /// the last reload was refused if it was.
    Show,
    /// Read `[tls]`'s files again: new handshakes use them, open
    /// connections stay up; a bad file keeps the loaded certificate.
    Reload,
}

pub async fn execute(router: &Arc<Router>, command: TlsCommand) -> Result<String, CtlError> {
    let Some(tls) = router.transports().tls().cloned() else {
        return Err(CtlError::Failed(
            "no TLS: the manifest has no tls: listener".into(),
        ));
    };
    match command {
        TlsCommand::Show => Ok(show(&tls.status())),
        TlsCommand::Reload => {
            // File reads: off the runtime's workers.
            let outcome = tokio::task::spawn_blocking(move || tls.reload())
                .await
                .map_err(|e| CtlError::Failed(format!("reload did not finish: {e}")))?;
            match outcome {
                Ok(s) => Ok(format!(
                    "tls: certificate {} loaded (reload {}); new handshakes use it, open connections stay\n",
                    s.fingerprint, s.reloads
                )),
                Err(e) => Err(CtlError::Failed(format!(
                    "tls: reload refused, the loaded certificate stays: {e}"
                ))),
            }
        }
    }
}

fn show(s: &TlsStatus) -> String {
    let mut out = format!(
        "certificate {} loaded={} reloads={}\n",
        s.fingerprint,
        humantime::format_rfc3339_seconds(s.loaded_at),
        s.reloads
    );
    if let Some(e) = &s.last_error {
        let _ = writeln!(out, "last reload refused: {e}");
    }
    out
}
