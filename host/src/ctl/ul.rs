//! `wisp ctl ul show|add|rm` — user location by hand, like `serctl ul`.
//! A contact added here without `--expires` is permanent (serctl's
//! "permanent usrloc entry"): it never expires, is stored like any binding
//! and `lookup` uses it; only `ul rm` removes it, never a REGISTER.

use std::fmt::Write as _;
use std::time::Instant;

use clap::{Subcommand, ValueEnum};
use tokio::sync::oneshot;
use wisp_sip::Uri;

use super::CtlError;
use crate::services::Services;
use crate::services::registrar::aor_key;
use crate::store::writer::Done;

const DEFAULT_TABLE: &str = "location";

/// `wisp ctl ul ...`. Options may come anywhere after the subcommand.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum UlCommand {
    /// List the bindings of one AOR, or of all.
    Show {
        /// `alice`, `alice@example.com` or `sip:alice@example.com`.
        aor: Option<String>,
        /// The usrloc table.
        #[arg(long, short, value_name = "T", default_value = DEFAULT_TABLE)]
        table: String,
    },
    /// Add a contact to an AOR: permanent unless --expires is given.
    Add {
        /// `alice`, `alice@example.com` or `sip:alice@example.com`.
        aor: String,
        /// The contact's SIP URI.
        #[arg(value_parser = sip_uri)]
        contact: String,
        /// Seconds until it expires; none is permanent.
        #[arg(long, short, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..),
              conflicts_with = "permanent")]
        expires: Option<u32>,
        /// Never expires: what no --expires means, spelled out as serctl does.
        #[arg(value_enum, value_name = "permanent", hide_possible_values = true)]
        permanent: Option<Permanent>,
        /// The usrloc table.
        #[arg(long, short, value_name = "T", default_value = DEFAULT_TABLE)]
        table: String,
    },
    /// Remove one contact of an AOR, or all of them.
    Rm {
        /// `alice`, `alice@example.com` or `sip:alice@example.com`.
        aor: String,
        /// The contact to remove; none removes every binding of the AOR.
        contact: Option<String>,
        /// The usrloc table.
        #[arg(long, short, value_name = "T", default_value = DEFAULT_TABLE)]
        table: String,
    },
}

/// The word `permanent` after `ul add <aor> <contact>`.
#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
pub enum Permanent {
    Permanent,
}

/// A clap value parser: the argument, if it parses as a SIP URI.
pub(super) fn sip_uri(arg: &str) -> Result<String, String> {
    Uri::parse(arg.as_bytes())
        .map(|_| arg.to_owned())
        .map_err(|e| e.reason())
}

/// The usrloc key of an AOR as an operator types it: `alice`,
/// `alice@example.com` or `sip:alice@example.com` — the key `save` and
/// `lookup` use for it under `use_domain`.
pub fn aor_from_arg(arg: &str, use_domain: bool) -> Result<String, CtlError> {
    let lower = arg.to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        let uri = Uri::parse(arg.as_bytes())
            .map_err(|e| CtlError::Usage(format!("AOR {arg:?}: {}", e.reason())))?;
        return aor_key(&uri, use_domain)
            .ok_or_else(|| CtlError::Usage(format!("AOR {arg:?} has no user part")));
    }
    match arg.split_once('@') {
        Some((user, domain)) if !user.is_empty() => Ok(if use_domain {
            format!("{user}@{}", domain.to_ascii_lowercase())
        } else {
            user.to_owned()
        }),
        None if !arg.is_empty() => Ok(arg.to_owned()),
        _ => Err(CtlError::Usage(format!("AOR {arg:?} has no user part"))),
    }
}

pub async fn execute(svc: &Services, command: UlCommand) -> Result<String, CtlError> {
    let usrloc = svc.usrloc();
    let use_domain = usrloc.config.use_domain;
    let failed = |e: &dyn std::fmt::Display| CtlError::Failed(e.to_string());
    match command {
        UlCommand::Show { table, aor } => {
            let aor = aor.map(|a| aor_from_arg(&a, use_domain)).transpose()?;
            let now = Instant::now();
            let all = usrloc
                .snapshot(&table, aor.as_deref(), now)
                .map_err(|e| failed(&e))?;
            if let (Some(a), true) = (&aor, all.is_empty()) {
                return Err(CtlError::Failed(format!("{a}: no bindings in {table}")));
            }
            let mut out = String::new();
            for (aor, bindings) in all {
                let _ = writeln!(out, "{aor}");
                for b in bindings {
                    let expires = match b.remaining(now) {
                        Some(secs) => secs.to_string(),
                        None => "permanent".into(),
                    };
                    let _ = write!(out, "  {} expires={expires} q={}", b.contact, b.q);
                    // Where it is really reached (NAT source, or the
                    // connection of a TCP/TLS/WebSocket client).
                    if let Some(r) = &b.received {
                        let _ = write!(out, " received={r}");
                    }
                    // Flagged NATed (`fix-nated-register`): kept alive.
                    if b.nat {
                        out.push_str(" nat");
                    }
                    out.push('\n');
                }
            }
            Ok(out)
        }
        UlCommand::Add {
            table,
            aor,
            contact,
            expires,
            ..
        } => {
            let aor = aor_from_arg(&aor, use_domain)?;
            let (done, committed) = completion();
            usrloc
                .add(&table, &aor, &contact, expires, Some(done))
                .map_err(|e| failed(&e))?;
            committed.await?;
            Ok(format!("{aor}: {contact} added\n"))
        }
        UlCommand::Rm {
            table,
            aor,
            contact,
        } => {
            let aor = aor_from_arg(&aor, use_domain)?;
            let (done, committed) = completion();
            let n = usrloc
                .remove(&table, &aor, contact.as_deref(), Some(done))
                .map_err(|e| failed(&e))?;
            committed.await?;
            if n == 0 {
                return Err(CtlError::Failed(match contact {
                    Some(c) => format!("{aor}: no binding {c}"),
                    None => format!("{aor}: no bindings"),
                }));
            }
            Ok(format!("{aor}: {n} binding(s) removed\n"))
        }
    }
}

/// A writer completion and the future that resolves once it ran: a
/// management change is acknowledged only once it is on disk.
pub(super) fn completion() -> (
    Done,
    impl std::future::Future<Output = Result<(), CtlError>>,
) {
    let (tx, rx) = oneshot::channel();
    let done: Done = Box::new(move |r| {
        let _ = tx.send(r.map_err(|e| e.to_string()));
    });
    let fut = async move {
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(CtlError::Failed(format!(
                "changed in memory, but not stored: {e}"
            ))),
            Err(_) => Err(CtlError::Failed("the database writer stopped".into())),
        }
    };
    (done, fut)
}

#[cfg(test)]
mod tests {
    use super::super::{Command, Parsed};
    use super::*;

    fn parse(line: &str) -> Result<UlCommand, CtlError> {
        let args: Vec<String> = std::iter::once("ul")
            .chain(line.split_whitespace())
            .map(str::to_owned)
            .collect();
        match Command::parse(&args)? {
            Parsed::Run(Command::Ul(c)) => Ok(c),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn show_with_and_without_aor_and_table() {
        assert_eq!(
            parse("show"),
            Ok(UlCommand::Show {
                table: "location".into(),
                aor: None
            })
        );
        assert_eq!(
            parse("show alice --table aliases"),
            Ok(UlCommand::Show {
                table: "aliases".into(),
                aor: Some("alice".into())
            })
        );
        assert_eq!(
            parse("show -t aliases alice"),
            parse("show alice --table aliases")
        );
        assert!(parse("show a b").is_err());
    }

    #[test]
    fn add_is_permanent_unless_expires_is_given() {
        assert_eq!(
            parse("add alice sip:alice@10.0.0.1:5060"),
            Ok(UlCommand::Add {
                table: "location".into(),
                aor: "alice".into(),
                contact: "sip:alice@10.0.0.1:5060".into(),
                expires: None,
                permanent: None,
            })
        );
        assert!(matches!(
            parse("add alice sip:alice@10.0.0.1 permanent"),
            Ok(UlCommand::Add {
                expires: None,
                permanent: Some(Permanent::Permanent),
                ..
            })
        ));
        assert!(matches!(
            parse("add alice sip:alice@10.0.0.1 --expires 60"),
            Ok(UlCommand::Add {
                expires: Some(60),
                ..
            })
        ));
        assert!(matches!(
            parse("add -e 60 alice sip:alice@10.0.0.1 -t aliases"),
            Ok(UlCommand::Add {
                expires: Some(60),
                ref table,
                ..
            }) if table == "aliases"
        ));
    }

    #[test]
    fn add_refuses_bad_expires_bad_contact_and_missing_arguments() {
        for bad in [
            "add alice sip:a@h --expires 0",
            "add alice sip:a@h --expires soon",
            "add alice sip:a@h --expires",
            "add alice sip:a@h --expires 60 permanent",
            "add alice not-a-uri",
            "add alice",
            "add alice sip:a@h extra",
            "add alice sip:a@h --bogus",
        ] {
            assert!(
                matches!(parse(bad), Err(CtlError::Usage(_))),
                "{bad}: {:?}",
                parse(bad)
            );
        }
        let e = parse("add alice not-a-uri").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid value 'not-a-uri' for '<CONTACT>': bad URI"),
            "{e}"
        );
    }

    #[test]
    fn rm_one_contact_or_all() {
        assert_eq!(
            parse("rm alice"),
            Ok(UlCommand::Rm {
                table: "location".into(),
                aor: "alice".into(),
                contact: None
            })
        );
        assert_eq!(
            parse("rm alice sip:a@h -t aliases"),
            Ok(UlCommand::Rm {
                table: "aliases".into(),
                aor: "alice".into(),
                contact: Some("sip:a@h".into())
            })
        );
        assert!(parse("rm").is_err());
        assert!(parse("rm alice --expires 5").is_err(), "add-only option");
    }

    #[test]
    fn an_unknown_ul_command_is_answered_with_the_valid_ones() {
        let e = parse("frobnicate").unwrap_err().to_string();
        assert!(e.contains("unrecognized subcommand 'frobnicate'"), "{e}");
        assert!(e.contains("Usage: wisp ctl ul <show|add|rm>"), "{e}");
    }

    #[test]
    fn aor_argument_becomes_the_key_save_uses() {
        assert_eq!(aor_from_arg("alice", false), Ok("alice".into()));
        assert_eq!(aor_from_arg("alice@Example.COM", false), Ok("alice".into()));
        assert_eq!(
            aor_from_arg("alice@Example.COM", true),
            Ok("alice@example.com".into())
        );
        assert_eq!(
            aor_from_arg("sip:alice@example.com:5060", true),
            Ok("alice@example.com".into())
        );
        assert_eq!(aor_from_arg("sip:alice@h", false), Ok("alice".into()));
        assert!(aor_from_arg("sip:example.com", false).is_err());
        assert!(aor_from_arg("@example.com", false).is_err());
    }
}
