//! `wisp ctl acl grant|revoke|show` — group membership, like `serctl acl`
//! (Kamailio's `grp` table): what `is_user_in` checks, such as group
//! `int` for international calls through a PSTN gateway.

use std::fmt::Write as _;
use std::sync::Arc;

use clap::Subcommand;

use super::CtlError;
use super::user::{Aor, blocking, subscriber_aor};
use crate::services::auth::subscribers::Subscribers;

/// `wisp ctl acl ...`.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum AclCommand {
    /// Put a subscriber in a group.
    Grant {
        /// `alice@example.com` or `sip:alice@example.com`.
        #[arg(value_parser = subscriber_aor)]
        aor: Aor,
        group: String,
    },
    /// Take a subscriber out of a group.
    Revoke {
        /// `alice@example.com` or `sip:alice@example.com`.
        #[arg(value_parser = subscriber_aor)]
        aor: Aor,
        group: String,
    },
    /// The groups of a subscriber, one a line.
    Show {
        /// `alice@example.com` or `sip:alice@example.com`.
        #[arg(value_parser = subscriber_aor)]
        aor: Aor,
    },
}

pub async fn execute(dir: &Arc<Subscribers>, command: AclCommand) -> Result<String, CtlError> {
    match command {
        AclCommand::Grant { aor, group } => {
            let (Aor { user, domain }, g) = (aor.clone(), group.clone());
            blocking(dir, move |d| d.grant(&user, &domain, &g)).await?;
            Ok(format!("{aor}: granted {group}\n"))
        }
        AclCommand::Revoke { aor, group } => {
            let (Aor { user, domain }, g) = (aor.clone(), group.clone());
            blocking(dir, move |d| d.revoke(&user, &domain, &g)).await?;
            Ok(format!("{aor}: revoked {group}\n"))
        }
        AclCommand::Show { aor } => {
            let groups = dir
                .groups(&aor.user, &aor.domain)
                .ok_or_else(|| CtlError::Failed(format!("{aor}: no such subscriber")))?;
            let mut out = String::new();
            for g in groups {
                let _ = writeln!(out, "{g}");
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Command, Parsed};
    use super::*;
    use crate::config::SubscriberConfig;
    use crate::services::auth::Directory;

    fn parse(line: &str) -> Result<AclCommand, CtlError> {
        let args: Vec<String> = std::iter::once("acl")
            .chain(line.split_whitespace())
            .map(str::to_owned)
            .collect();
        match Command::parse(&args)? {
            Parsed::Run(Command::Acl(c)) => Ok(c),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[tokio::test]
    async fn grant_show_revoke_and_their_errors() {
        let dir = Arc::new(Subscribers::in_memory(SubscriberConfig::default()));
        dir.add("alice", "example.com", "s3cret").expect("add");
        let run = |line: &str| {
            let c = parse(line).expect("parses");
            let dir = dir.clone();
            async move { execute(&dir, c).await }
        };
        assert_eq!(
            run("grant alice@example.com int").await,
            Ok("alice@example.com: granted int\n".into())
        );
        run("grant sip:alice@EXAMPLE.com local")
            .await
            .expect("grant");
        assert_eq!(
            run("show alice@example.com").await,
            Ok("int\nlocal\n".into())
        );
        assert!(
            dir.in_group("alice", "example.com", "int")
                && dir.in_group("alice", "example.com", "local")
        );
        assert_eq!(
            run("grant alice@example.com int")
                .await
                .unwrap_err()
                .to_string(),
            "alice@example.com: already in group \"int\""
        );
        run("revoke alice@example.com int").await.expect("revoke");
        assert!(!dir.in_group("alice", "example.com", "int"));
        assert_eq!(
            run("revoke alice@example.com int")
                .await
                .unwrap_err()
                .to_string(),
            "alice@example.com: not in group \"int\""
        );
        assert_eq!(
            run("show bob@example.com").await.unwrap_err().to_string(),
            "bob@example.com: no such subscriber"
        );
        assert_eq!(
            run("grant bob@example.com int")
                .await
                .unwrap_err()
                .to_string(),
            "bob@example.com: no such subscriber"
        );
        assert!(matches!(
            parse("grant alice@example.com"),
            Err(CtlError::Usage(_))
        ));
        assert!(matches!(parse("show alice"), Err(CtlError::Usage(_))));
    }
}
