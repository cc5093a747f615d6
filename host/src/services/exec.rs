//! Running external programs for the `exec` capability (SER / Kamailio
//! module `exec`): which programs a plugin may run, and running one with a
//! time bound and an output cap. Knows nothing of Wasm; the plugin host
//! (`plugin::host::exec`) turns the output into a destination set.
//!
//! No shell: SER ran `command` with `popen`, so any grant of a shell
//! command line would grant every command (`lcr; rm -rf ~`). Here the
//! command line is split into words (POSIX quoting) and its first word must
//! be exactly one granted program, which is started directly with the
//! other words as arguments.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::stateless::context::ActionError;

/// Most output read from a program; more is an error (Kamailio reads into a
/// fixed buffer too). Enough for 16 URIs many times over.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// The programs one plugin may run: each as listed in the manifest (what a
/// command's first word must equal) and the path that is started.
#[derive(Debug, Clone, Default)]
pub struct ExecGrant {
    programs: Vec<(String, PathBuf)>,
    /// The manifest's directory: where programs run, so relative paths in
    /// their arguments mean what they mean in the manifest.
    dir: PathBuf,
}

/// A granted command, split and resolved, ready to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Working directory; empty = the router's.
    pub dir: PathBuf,
}

impl ExecGrant {
    /// The grant from the manifest's `exec` list; relative entries resolve
    /// against `base_dir` (the manifest's directory) now, so a later change
    /// of working directory cannot change what runs.
    pub fn new(listed: &[String], base_dir: &Path) -> Self {
        // Absolute, because the program runs with `base_dir` as its working
        // directory: a relative `config/x.sh` would be looked up from there.
        let base_dir = &std::path::absolute(base_dir).unwrap_or_else(|_| base_dir.to_path_buf());
        let programs = listed
            .iter()
            .map(|p| {
                let path = Path::new(p);
                let resolved = if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    base_dir.join(path)
                };
                (p.clone(), resolved)
            })
            .collect();
        ExecGrant {
            programs,
            dir: base_dir.to_path_buf(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.programs.is_empty()
    }

    /// Split `command` and check its first word against the grant.
    /// `plugin` names the plugin in the refusal.
    pub fn authorize(&self, plugin: &str, command: &str) -> Result<Invocation, ActionError> {
        let words = shlex::split(command).ok_or_else(|| {
            ActionError::InvalidArgument(format!(
                "{command:?}: unclosed quote or trailing backslash"
            ))
        })?;
        let Some((first, args)) = words.split_first() else {
            return Err(ActionError::InvalidArgument("empty command".into()));
        };
        match self.programs.iter().find(|(listed, _)| listed == first) {
            Some((_, program)) => Ok(Invocation {
                program: program.clone(),
                args: args.to_vec(),
                dir: self.dir.clone(),
            }),
            None => Err(ActionError::NotPermitted(format!(
                "exec of {first:?} is not granted to plugin {plugin:?} \
                 (manifest: [plugin.capabilities] exec)"
            ))),
        }
    }
}

/// What the program printed, once it exited with status 0.
pub type Output = Vec<u8>;

/// Run `inv` (with `last_arg` appended) under `env` only, feed it `stdin`,
/// and return its standard output. Blocks the calling thread for at most
/// about `timeout`; past it the program and the processes it started (its
/// process group) are killed.
pub fn run(
    inv: &Invocation,
    last_arg: Option<&str>,
    env: &[(String, String)],
    stdin: Option<bytes::Bytes>,
    timeout: Duration,
) -> Result<Output, ActionError> {
    let shown = inv.program.display().to_string();
    let mut cmd = Command::new(&inv.program);
    cmd.args(&inv.args)
        .args(last_arg)
        .env_clear()
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if !inv.dir.as_os_str().is_empty() {
        cmd.current_dir(&inv.dir);
    }
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Its own process group, so a timeout kills what a script started too.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| ActionError::Internal(format!("exec {shown}: cannot start: {e}")))?;
    let pid = child.id();
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A writer of its own: a program that prints before it reads would
        // otherwise deadlock against us on a message larger than the pipe.
        // A program that does not read its input gets EPIPE here, ignored.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let Some(mut out) = child.stdout.take() else {
        return Err(ActionError::Internal(format!(
            "exec {shown}: no stdout pipe"
        )));
    };
    let (tx, rx) = mpsc::channel::<std::io::Result<(Output, bool, ExitStatus)>>();
    // Reading and reaping happen on a thread so this one can give up at
    // the timeout; the thread always reaps the child, so no zombie stays.
    std::thread::spawn(move || {
        let result = read_capped(&mut out).and_then(|(buf, overflow)| {
            drop(out);
            child.wait().map(|status| (buf, overflow, status))
        });
        let _ = tx.send(result);
    });
    let result = match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(_) => {
            kill_group(pid);
            // Let the reader see EOF and reap; a process that left the
            // group may keep the pipe open, and then the thread ends later.
            let _ = rx.recv_timeout(Duration::from_millis(100));
            return Err(ActionError::Internal(format!(
                "exec {shown}: still running after {} ms, killed",
                timeout.as_millis()
            )));
        }
    };
    let (buf, overflow, status) =
        result.map_err(|e| ActionError::Internal(format!("exec {shown}: {e}")))?;
    if !status.success() {
        return Err(ActionError::Internal(format!("exec {shown}: {status}")));
    }
    if overflow {
        return Err(ActionError::LimitReached(format!(
            "exec {shown}: more than {MAX_OUTPUT} bytes of output"
        )));
    }
    Ok(buf)
}

/// Read to EOF keeping at most [`MAX_OUTPUT`] bytes; the rest is drained
/// (so the program does not block on a full pipe) and flagged.
fn read_capped(r: &mut impl Read) -> std::io::Result<(Output, bool)> {
    let mut buf = Vec::new();
    r.take(MAX_OUTPUT as u64 + 1).read_to_end(&mut buf)?;
    let overflow = buf.len() > MAX_OUTPUT;
    if overflow {
        buf.truncate(MAX_OUTPUT);
        std::io::copy(r, &mut std::io::sink())?;
    }
    Ok((buf, overflow))
}

fn kill_group(pid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers; a negative pid addresses the
    // process group the child leads (process_group(0) above).
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Run blocking work from a plugin call. On a multi-thread runtime the
/// worker hands its other tasks to the rest of the pool first
/// (`block_in_place`), so sockets keep being served; on a current-thread
/// runtime (`workers = 1`) or outside tokio it just runs, and everything
/// else waits — the timeout is what bounds that.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(list: &[&str]) -> ExecGrant {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        ExecGrant::new(&list, Path::new("/etc/wisp"))
    }

    #[test]
    fn first_word_must_equal_a_listed_program() {
        let g = grant(&["/bin/echo", "scripts/lcr.sh"]);
        let inv = g.authorize("p", "/bin/echo 'a b' c").expect("granted");
        assert_eq!(inv.program, PathBuf::from("/bin/echo"));
        assert_eq!(inv.args, ["a b", "c"]);
        let inv = g.authorize("p", "scripts/lcr.sh").expect("granted");
        assert_eq!(inv.program, PathBuf::from("/etc/wisp/scripts/lcr.sh"));
        assert_eq!(inv.dir, PathBuf::from("/etc/wisp"));
        for refused in [
            "echo hi",
            "/bin/echoo",
            "/bin/../bin/echo",
            "./scripts/lcr.sh",
            "/bin/sh -c /bin/echo",
        ] {
            match g.authorize("p", refused) {
                Err(ActionError::NotPermitted(why)) => {
                    assert!(why.contains("plugin \"p\""), "{why}")
                }
                other => panic!("{refused:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn shell_syntax_is_not_interpreted() {
        let g = ExecGrant::new(&["/bin/echo".to_string()], Path::new("/"));
        let inv = g
            .authorize("p", "/bin/echo x; rm -rf / > /dev/null")
            .expect("granted");
        assert_eq!(inv.program, PathBuf::from("/bin/echo"));
        assert_eq!(inv.args, ["x;", "rm", "-rf", "/", ">", "/dev/null"]);
        let out = run(&inv, None, &[], None, Duration::from_secs(5)).expect("ran");
        assert_eq!(out, b"x; rm -rf / > /dev/null\n");
    }

    #[test]
    fn no_grant_refuses_everything_and_bad_lines_are_invalid() {
        let g = ExecGrant::default();
        assert!(matches!(
            g.authorize("p", "/bin/true"),
            Err(ActionError::NotPermitted(_))
        ));
        assert!(matches!(
            g.authorize("p", ""),
            Err(ActionError::InvalidArgument(_))
        ));
        assert!(matches!(
            g.authorize("p", "'open"),
            Err(ActionError::InvalidArgument(_))
        ));
    }

    #[test]
    fn runs_with_only_the_given_environment_and_stdin() {
        let inv = Invocation {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "echo \"$SRCIP ${HOME:-nohome}\"; cat".into()],
            dir: PathBuf::new(),
        };
        let out = run(
            &inv,
            None,
            &[("SRCIP".into(), "192.0.2.1".into())],
            Some(bytes::Bytes::from_static(b"OPTIONS sip:x SIP/2.0\r\n")),
            Duration::from_secs(5),
        )
        .expect("ran");
        assert_eq!(out, b"192.0.2.1 nohome\nOPTIONS sip:x SIP/2.0\r\n");
    }

    #[test]
    fn a_relative_manifest_directory_is_made_absolute() {
        let g = ExecGrant::new(&["x/run.sh".to_string()], Path::new("config"));
        let inv = g.authorize("p", "x/run.sh").expect("granted");
        assert!(inv.program.is_absolute(), "{inv:?}");
        assert!(inv.program.ends_with("config/x/run.sh"), "{inv:?}");
        assert!(
            inv.dir.is_absolute() && inv.dir.ends_with("config"),
            "{inv:?}"
        );
    }

    #[test]
    fn runs_in_the_manifests_directory() {
        let g = ExecGrant::new(&["/bin/pwd".to_string()], Path::new("/tmp"));
        let inv = g.authorize("p", "/bin/pwd").expect("granted");
        let out = run(&inv, None, &[], None, Duration::from_secs(5)).expect("ran");
        assert_eq!(out, b"/tmp\n");
    }

    #[test]
    fn last_argument_is_appended() {
        let inv = Invocation {
            program: "/bin/echo".into(),
            args: vec!["a".into()],
            dir: PathBuf::new(),
        };
        let out = run(&inv, Some("sip:b@c"), &[], None, Duration::from_secs(5)).expect("ran");
        assert_eq!(out, b"a sip:b@c\n");
    }

    #[test]
    fn timeout_kills_the_program_and_what_it_started() {
        let inv = Invocation {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "sleep 30 & sleep 30".into()],
            dir: PathBuf::new(),
        };
        let started = std::time::Instant::now();
        let e = run(&inv, None, &[], None, Duration::from_millis(200)).unwrap_err();
        assert!(
            matches!(&e, ActionError::Internal(s) if s.contains("killed")),
            "{e}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn failure_status_and_too_much_output_are_errors() {
        let fail = Invocation {
            program: "/bin/false".into(),
            args: vec![],
            dir: PathBuf::new(),
        };
        assert!(matches!(
            run(&fail, None, &[], None, Duration::from_secs(5)),
            Err(ActionError::Internal(_))
        ));
        let flood = Invocation {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), "head -c 200000 /dev/zero".into()],
            dir: PathBuf::new(),
        };
        assert!(matches!(
            run(&flood, None, &[], None, Duration::from_secs(5)),
            Err(ActionError::LimitReached(_))
        ));
        let missing = Invocation {
            program: "/nonexistent/prog".into(),
            args: vec![],
            dir: PathBuf::new(),
        };
        assert!(matches!(
            run(&missing, None, &[], None, Duration::from_secs(5)),
            Err(ActionError::Internal(_))
        ));
    }
}
