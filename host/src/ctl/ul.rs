//! `wisp ctl ul show|add|rm` — user location by hand, like `serctl ul`.
//! A contact added here without `--expires` is permanent (serctl's
//! "permanent usrloc entry"): it never expires, is stored like any binding
//! and `lookup` uses it.

use std::fmt::Write as _;
use std::time::Instant;

use tokio::sync::oneshot;
use wisp_sip::Uri;

use super::CtlError;
use crate::services::Services;
use crate::services::registrar::aor_key;
use crate::store::writer::Done;

const USAGE_SHOW: &str = "usage: ul show [aor] [--table T]";
const USAGE_ADD: &str = "usage: ul add <aor> <contact> [--expires N | permanent] [--table T]";
const USAGE_RM: &str = "usage: ul rm <aor> [contact] [--table T]";
const DEFAULT_TABLE: &str = "location";

#[derive(Debug, Clone, PartialEq)]
pub enum UlCommand {
    Show {
        table: String,
        aor: Option<String>,
    },
    Add {
        table: String,
        aor: String,
        contact: String,
        /// Seconds; `None` is permanent.
        expires: Option<u32>,
    },
    Rm {
        table: String,
        aor: String,
        contact: Option<String>,
    },
}

impl UlCommand {
    pub fn parse(args: &[String]) -> Result<UlCommand, CtlError> {
        let usage = |u: &str| CtlError::Usage(u.to_owned());
        let Some((verb, rest)) = args.split_first() else {
            return Err(usage(&format!("{USAGE_SHOW}\n{USAGE_ADD}\n{USAGE_RM}")));
        };
        let verb_usage = match verb.as_str() {
            "show" => USAGE_SHOW,
            "add" => USAGE_ADD,
            "rm" => USAGE_RM,
            other => {
                return Err(usage(&format!(
                    "unknown ul command {other:?}\n{USAGE_SHOW}\n{USAGE_ADD}\n{USAGE_RM}"
                )));
            }
        };
        // Options anywhere; the rest are positional.
        let mut table = DEFAULT_TABLE.to_owned();
        let mut expires: Option<u32> = None;
        let mut permanent = false;
        let mut positional = Vec::new();
        let mut it = rest.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--table" | "-t" => {
                    table = it.next().ok_or_else(|| usage(verb_usage))?.clone();
                }
                "--expires" | "-e" if verb == "add" => {
                    let v = it.next().ok_or_else(|| usage(verb_usage))?;
                    let secs = v.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(|| {
                        CtlError::Usage(format!(
                            "--expires {v:?}: expected seconds above 0\n{verb_usage}"
                        ))
                    })?;
                    expires = Some(secs);
                }
                "permanent" if verb == "add" => permanent = true,
                s if s.starts_with('-') && s.len() > 1 => {
                    return Err(CtlError::Usage(format!(
                        "unknown option {s:?}\n{verb_usage}"
                    )));
                }
                _ => positional.push(a.clone()),
            }
        }
        if permanent && expires.is_some() {
            return Err(CtlError::Usage(format!(
                "--expires and permanent exclude each other\n{verb_usage}"
            )));
        }
        let mut positional = positional.into_iter();
        let (first, second, extra) = (positional.next(), positional.next(), positional.next());
        if extra.is_some() {
            return Err(usage(verb_usage));
        }
        match verb.as_str() {
            "show" if second.is_none() => Ok(UlCommand::Show { table, aor: first }),
            "add" => match (first, second) {
                (Some(aor), Some(contact)) => {
                    Uri::parse(contact.as_bytes()).map_err(|e| {
                        CtlError::Usage(format!(
                            "contact {contact:?} is not a SIP URI: {}",
                            e.reason()
                        ))
                    })?;
                    Ok(UlCommand::Add {
                        table,
                        aor,
                        contact,
                        expires,
                    })
                }
                _ => Err(usage(verb_usage)),
            },
            "rm" => match first {
                Some(aor) => Ok(UlCommand::Rm {
                    table,
                    aor,
                    contact: second,
                }),
                None => Err(usage(verb_usage)),
            },
            _ => Err(usage(verb_usage)),
        }
    }
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
                    let _ = writeln!(out, "  {} expires={expires} q={}", b.contact, b.q);
                }
            }
            Ok(out)
        }
        UlCommand::Add {
            table,
            aor,
            contact,
            expires,
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
    use super::*;

    fn parse(line: &str) -> Result<UlCommand, CtlError> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        UlCommand::parse(&args)
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
                expires: None
            })
        );
        assert_eq!(
            parse("add alice sip:alice@10.0.0.1 permanent"),
            parse("add alice sip:alice@10.0.0.1")
        );
        assert!(matches!(
            parse("add alice sip:alice@10.0.0.1 --expires 60"),
            Ok(UlCommand::Add {
                expires: Some(60),
                ..
            })
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
        assert!(parse("frobnicate").is_err());
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

    #[test]
    fn top_level_parse_routes_ul_and_names_unknown_commands() {
        let args = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert!(matches!(
            super::super::Command::parse(&args("ul show")),
            Ok(super::super::Command::Ul(UlCommand::Show { .. }))
        ));
        let e = super::super::Command::parse(&args("dlg list")).unwrap_err();
        assert!(e.to_string().contains("unknown command \"dlg\""), "{e}");
        assert!(super::super::Command::parse(&[]).is_err());
    }
}
