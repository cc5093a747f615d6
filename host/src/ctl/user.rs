//! `wisp ctl user add|passwd|rm|show` — subscribers, like `serctl add`,
//! `passwd`, `rm`. A subscriber is `user@domain`; its password becomes
//! HA1s for the realm equal to the domain. Nothing here ever prints an HA1
//! or a password (and the management log hides the password argument).

use std::fmt::Write as _;
use std::sync::Arc;

use clap::Subcommand;
use wisp_sip::Uri;

use super::CtlError;
use crate::services::auth::subscribers::{DirectoryError, Subscribers};

/// `wisp ctl user ...`.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum UserCommand {
    /// Add a subscriber.
    Add {
        /// `alice@example.com` or `sip:alice@example.com`.
        #[arg(value_parser = subscriber_aor)]
        aor: Aor,
        /// `-` reads it from standard input (kept out of `ps` and shell history).
        password: String,
    },
    /// Change a subscriber's password.
    Passwd {
        /// `alice@example.com` or `sip:alice@example.com`.
        #[arg(value_parser = subscriber_aor)]
        aor: Aor,
        /// `-` reads it from standard input (kept out of `ps` and shell history).
        password: String,
    },
    /// Remove a subscriber and its group memberships.
    Rm {
        /// `alice@example.com` or `sip:alice@example.com`.
        #[arg(value_parser = subscriber_aor)]
        aor: Aor,
    },
    /// List the subscribers (or one) with their groups; never secrets.
    Show {
        /// `alice@example.com` or `sip:alice@example.com`.
        #[arg(value_parser = subscriber_aor)]
        aor: Option<Aor>,
    },
}

/// A subscriber as an operator names it: a user and a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aor {
    pub user: String,
    /// Lower case.
    pub domain: String,
}

impl std::fmt::Display for Aor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.user, self.domain)
    }
}

/// A clap value parser: `user@domain`, `sip:user@domain` or
/// `sips:user@domain` (a port or parameters of a URI are ignored).
pub(super) fn subscriber_aor(arg: &str) -> Result<Aor, String> {
    let lower = arg.to_ascii_lowercase();
    let (user, domain) = if lower.starts_with("sip:") || lower.starts_with("sips:") {
        let uri = Uri::parse(arg.as_bytes()).map_err(|e| e.reason())?;
        let user = uri
            .user_unescaped()
            .filter(|u| !u.is_empty())
            .ok_or("names no user (expected user@domain)")?;
        (user, uri.host.to_string())
    } else {
        match arg.split_once('@') {
            Some((user, domain)) if !user.is_empty() && !domain.is_empty() => {
                (user.to_owned(), domain.to_owned())
            }
            Some((_, domain)) if !domain.is_empty() => {
                return Err("names no user (expected user@domain)".into());
            }
            _ => return Err("names no domain (expected user@domain)".into()),
        }
    };
    if domain.contains('@') {
        return Err("has more than one '@' (expected user@domain)".into());
    }
    Ok(Aor {
        user,
        domain: domain.to_ascii_lowercase(),
    })
}

/// Run `f` on the directory off the runtime's workers: it writes the
/// database.
pub(super) async fn blocking<T: Send + 'static>(
    dir: &Arc<Subscribers>,
    f: impl FnOnce(&Subscribers) -> Result<T, DirectoryError> + Send + 'static,
) -> Result<T, CtlError> {
    let dir = dir.clone();
    match tokio::task::spawn_blocking(move || f(&dir)).await {
        Ok(r) => r.map_err(|e| CtlError::Failed(e.to_string())),
        Err(e) => Err(CtlError::Failed(format!("the change did not finish: {e}"))),
    }
}

/// What a change's answer adds when nothing is stored.
fn memory_only(dir: &Subscribers) -> &'static str {
    if dir.persistent() {
        ""
    } else {
        " (in memory only: usrloc.db_mode = 0)"
    }
}

pub async fn execute(dir: &Arc<Subscribers>, command: UserCommand) -> Result<String, CtlError> {
    match command {
        UserCommand::Add { aor, password } => {
            let Aor { user, domain } = aor.clone();
            blocking(dir, move |d| d.add(&user, &domain, &password)).await?;
            Ok(format!("{aor} added{}\n", memory_only(dir)))
        }
        UserCommand::Passwd { aor, password } => {
            let Aor { user, domain } = aor.clone();
            blocking(dir, move |d| d.set_password(&user, &domain, &password)).await?;
            Ok(format!("{aor}: password changed{}\n", memory_only(dir)))
        }
        UserCommand::Rm { aor } => {
            let Aor { user, domain } = aor.clone();
            blocking(dir, move |d| d.remove(&user, &domain)).await?;
            Ok(format!("{aor} removed{}\n", memory_only(dir)))
        }
        UserCommand::Show { aor } => {
            let all = dir.list(aor.as_ref().map(|a| (a.user.as_str(), a.domain.as_str())));
            if let (Some(a), true) = (&aor, all.is_empty()) {
                return Err(CtlError::Failed(format!("{a}: no such subscriber")));
            }
            let mut out = String::new();
            for s in all {
                let groups = if s.groups.is_empty() {
                    "(none)".to_owned()
                } else {
                    s.groups.join(",")
                };
                let _ = writeln!(out, "{}@{} groups={groups}", s.user, s.domain);
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

    fn parse(line: &str) -> Result<UserCommand, CtlError> {
        let args: Vec<String> = std::iter::once("user")
            .chain(line.split_whitespace())
            .map(str::to_owned)
            .collect();
        match Command::parse(&args)? {
            Parsed::Run(Command::User(c)) => Ok(c),
            other => panic!("{line}: {other:?}"),
        }
    }

    fn aor(user: &str, domain: &str) -> Aor {
        Aor {
            user: user.into(),
            domain: domain.into(),
        }
    }

    #[test]
    fn an_aor_is_user_at_domain_or_a_sip_uri() {
        assert_eq!(
            subscriber_aor("alice@Example.COM"),
            Ok(aor("alice", "example.com"))
        );
        assert_eq!(
            subscriber_aor("sip:Alice@example.com:5060;transport=tcp"),
            Ok(aor("Alice", "example.com"))
        );
        assert_eq!(
            subscriber_aor("sips:al%69ce@example.com"),
            Ok(aor("alice", "example.com"))
        );
        for (bad, why) in [
            ("alice", "names no domain"),
            ("alice@", "names no domain"),
            ("@example.com", "names no user"),
            ("sip:example.com", "names no user"),
            ("a@b@c", "more than one '@'"),
        ] {
            let e = subscriber_aor(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn each_user_command_parses_and_bad_ones_say_why() {
        assert_eq!(
            parse("add alice@example.com s3cret"),
            Ok(UserCommand::Add {
                aor: aor("alice", "example.com"),
                password: "s3cret".into()
            })
        );
        assert_eq!(
            parse("passwd sip:alice@example.com n3w"),
            Ok(UserCommand::Passwd {
                aor: aor("alice", "example.com"),
                password: "n3w".into()
            })
        );
        assert_eq!(
            parse("rm alice@example.com"),
            Ok(UserCommand::Rm {
                aor: aor("alice", "example.com")
            })
        );
        assert_eq!(parse("show"), Ok(UserCommand::Show { aor: None }));
        let e = parse("add alice s3cret").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid value 'alice' for '<AOR>': names no domain"),
            "{e}"
        );
        assert!(matches!(
            parse("add alice@example.com"),
            Err(CtlError::Usage(_))
        ));
        let e = parse("frob").unwrap_err().to_string();
        assert!(
            e.contains("Usage: wisp ctl user <add|passwd|rm|show>"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn show_lists_users_and_groups_and_never_a_secret() {
        let dir = Arc::new(Subscribers::in_memory(SubscriberConfig::default()));
        let run = |line: &str| {
            let c = parse(line).expect("parses");
            let dir = dir.clone();
            async move { execute(&dir, c).await }
        };
        let out = run("add alice@example.com s3cret").await.expect("add");
        assert_eq!(
            out,
            "alice@example.com added (in memory only: usrloc.db_mode = 0)\n"
        );
        run("add bob@example.com hunter2").await.expect("add");
        dir.grant("alice", "example.com", "int").expect("grant");
        let e = run("add alice@example.com other").await.unwrap_err();
        assert_eq!(e.to_string(), "alice@example.com: already a subscriber");
        let shown = run("show").await.expect("show");
        assert_eq!(
            shown,
            "alice@example.com groups=int\nbob@example.com groups=(none)\n"
        );
        let ha1 =
            crate::services::auth::digest::Algorithm::Md5.ha1("alice", "example.com", "s3cret");
        for secret in ["s3cret", "hunter2", ha1.as_str()] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert_eq!(
            run("show alice@example.com").await.expect("show"),
            "alice@example.com groups=int\n"
        );
        run("passwd bob@example.com n3w").await.expect("passwd");
        run("rm bob@example.com").await.expect("rm");
        let e = run("rm bob@example.com").await.unwrap_err();
        assert_eq!(e.to_string(), "bob@example.com: no such subscriber");
        let e = run("show bob@example.com").await.unwrap_err();
        assert_eq!(e.to_string(), "bob@example.com: no such subscriber");
    }
}
