//! `wisp ctl alias show|add|rm` — user aliases, like `serctl alias`
//! (seed 003, "User Aliases"). An alias is a permanent binding in the
//! `aliases` usrloc table whose contact is the canonical AOR's URI, so
//! `lookup("aliases")` rewrites the Request-URI to the canonical AOR and a
//! following `lookup("location")` finds its contacts.

use std::fmt::Write as _;
use std::time::Instant;

use clap::Subcommand;
use wisp_sip::Uri;

use super::CtlError;
use super::ul::{aor_from_arg, completion};
use crate::services::Services;

/// The usrloc table aliases live in (Kamailio's name for it).
pub const TABLE: &str = "aliases";

/// `wisp ctl alias ...`.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum AliasCommand {
    /// List the aliases, or what one alias stands for.
    Show { alias: Option<String> },
    /// Make requests to <ALIAS> reach <CANONICAL>'s contacts.
    Add {
        alias: String,
        /// The canonical AOR's SIP URI, with a user part.
        #[arg(value_parser = canonical_uri)]
        canonical: String,
    },
    /// Remove an alias.
    Rm { alias: String },
}

/// A clap value parser: the argument, if it is a SIP URI that names a user.
fn canonical_uri(arg: &str) -> Result<String, String> {
    let uri = Uri::parse(arg.as_bytes()).map_err(|e| e.reason())?;
    if uri.user.is_none() {
        return Err("names no user".into());
    }
    Ok(arg.to_owned())
}

pub async fn execute(svc: &Services, command: AliasCommand) -> Result<String, CtlError> {
    let usrloc = svc.usrloc();
    let use_domain = usrloc.config.use_domain;
    let failed = |e: &dyn std::fmt::Display| {
        CtlError::Failed(format!("{e} (aliases need the table {TABLE:?})"))
    };
    match command {
        AliasCommand::Show { alias } => {
            let alias = alias.map(|a| aor_from_arg(&a, use_domain)).transpose()?;
            let all = usrloc
                .snapshot(TABLE, alias.as_deref(), Instant::now())
                .map_err(|e| failed(&e))?;
            if let (Some(a), true) = (&alias, all.is_empty()) {
                return Err(CtlError::Failed(format!("{a}: no such alias")));
            }
            let mut out = String::new();
            for (alias, targets) in all {
                for t in targets {
                    let _ = writeln!(out, "{alias} -> {}", t.contact);
                }
            }
            Ok(out)
        }
        AliasCommand::Add { alias, canonical } => {
            let alias = aor_from_arg(&alias, use_domain)?;
            let (done, committed) = completion();
            usrloc
                .set_only(TABLE, &alias, &canonical, Some(done))
                .map_err(|e| failed(&e))?;
            committed.await?;
            Ok(format!("{alias} -> {canonical} added\n"))
        }
        AliasCommand::Rm { alias } => {
            let alias = aor_from_arg(&alias, use_domain)?;
            let (done, committed) = completion();
            let n = usrloc
                .remove(TABLE, &alias, None, Some(done))
                .map_err(|e| failed(&e))?;
            committed.await?;
            if n == 0 {
                return Err(CtlError::Failed(format!("{alias}: no such alias")));
            }
            Ok(format!("{alias} removed\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Command, Parsed};
    use super::*;

    fn parse(line: &str) -> Result<AliasCommand, CtlError> {
        let args: Vec<String> = std::iter::once("alias")
            .chain(line.split_whitespace())
            .map(str::to_owned)
            .collect();
        match Command::parse(&args)? {
            Parsed::Run(Command::Alias(c)) => Ok(c),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn show_add_rm_parse_like_serctl_alias() {
        assert_eq!(parse("show"), Ok(AliasCommand::Show { alias: None }));
        assert_eq!(
            parse("show 1234"),
            Ok(AliasCommand::Show {
                alias: Some("1234".into())
            })
        );
        assert_eq!(
            parse("add 1234 sip:john.doe@foo.bar"),
            Ok(AliasCommand::Add {
                alias: "1234".into(),
                canonical: "sip:john.doe@foo.bar".into()
            })
        );
        assert_eq!(
            parse("rm john"),
            Ok(AliasCommand::Rm {
                alias: "john".into()
            })
        );
    }

    #[test]
    fn bad_alias_commands_are_usage_errors() {
        for bad in [
            "",
            "add 1234",
            "add 1234 john.doe",
            "add 1234 sip:foo.bar",
            "rm",
            "rm a b",
            "show a b",
            "list",
        ] {
            assert!(
                matches!(parse(bad), Err(CtlError::Usage(_))),
                "{bad:?}: {:?}",
                parse(bad)
            );
        }
        let e = parse("list").unwrap_err().to_string();
        assert!(e.contains("unrecognized subcommand 'list'"), "{e}");
        assert!(e.contains("<show|add|rm>"), "{e}");
        let e = parse("add 1234 sip:foo.bar").unwrap_err().to_string();
        assert!(e.contains("names no user"), "{e}");
    }
}
