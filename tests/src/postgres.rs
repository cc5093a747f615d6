//! A throwaway PostgreSQL server for tests: `initdb` into a fresh temporary
//! directory, `pg_ctl start` on a Unix socket in that directory only (no
//! TCP listener, so tests running side by side never collide on a port),
//! stopped and deleted when the [`Postgres`] is dropped.
//!
//! The binaries are Debian's (`postgresql`, which `make test` installs):
//! `$WISP_PG_BIN`, else the newest `/usr/lib/postgresql/<version>/bin`, else
//! `initdb` on the PATH. A test that needs PostgreSQL FAILS when they are
//! missing; it never skips. `initdb` refuses to run as root, so as root the
//! server runs as the `postgres` user (`runuser`), which then owns the
//! directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{RunOutput, run_with_timeout};

/// The port in the socket's name (`.s.PGSQL.5432`): only the socket
/// directory is ours, so every instance can use the default.
const PORT: u16 = 5432;
/// The superuser `initdb` creates, and the database the tests use.
pub const USER: &str = "wisp";
pub const DATABASE: &str = "wisp";

const TIMEOUT: Duration = Duration::from_secs(60);

/// A running throwaway server.
pub struct Postgres {
    bin: PathBuf,
    /// Holds `data/`, the socket and `server.log`; removed on drop.
    dir: Option<tempfile::TempDir>,
    /// Run the binaries as the `postgres` user (we are root).
    as_postgres: bool,
    running: bool,
}

/// Where the PostgreSQL server binaries are; FAILS the test, naming the
/// package to install, when there are none.
pub fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("WISP_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    if let Some(dir) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    }) {
        return dir;
    }
    panic!(
        "PostgreSQL is not installed (no /usr/lib/postgresql/<version>/bin/initdb, none on the \
         PATH, WISP_PG_BIN unset); `make test` installs it (apt-get install postgresql)"
    );
}

fn is_root() -> bool {
    // The tests' own uid, without a libc dependency: /proc/self is owned by it.
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

impl Postgres {
    /// `initdb` + `pg_ctl start`, and a database [`DATABASE`] owned by
    /// [`USER`]. FAILS the test, with the server's log, if any step fails.
    pub fn start() -> Postgres {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("wisp-pg-")
            .tempdir()
            .expect("create temp dir");
        let as_postgres = is_root();
        if as_postgres {
            chown_postgres(dir.path());
        }
        let mut pg = Postgres {
            bin,
            dir: Some(dir),
            as_postgres,
            running: false,
        };
        let data = pg.data_dir();
        let out = pg.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-A",
                "trust",
                "-U",
                USER,
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(out.success(), "initdb failed:\n{}", out.describe());
        pg.start_again();
        let out = pg.psql_in("postgres", &format!("CREATE DATABASE {DATABASE}"));
        assert!(out.success(), "CREATE DATABASE failed:\n{}", out.describe());
        pg
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().expect("live").path()
    }

    fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.path()
    }

    /// A libpq URL of the test database, for `usrloc.db_url`:
    /// `postgres://wisp@/wisp?host=<socket dir>&port=5432` (no host in the
    /// authority, or clients would try `localhost` first).
    pub fn url(&self) -> String {
        format!(
            "postgres://{USER}@/{DATABASE}?host={}&port={PORT}",
            self.socket_dir().display()
        )
    }

    /// `pg_ctl start`, waiting until it accepts connections (also after
    /// [`Postgres::stop`]: the database-down tests).
    pub fn start_again(&mut self) {
        let data = self.data_dir();
        let log = self.path().join("server.log");
        let opts = format!(
            "-p {PORT} -k {} -c listen_addresses= -c fsync=off",
            self.socket_dir().display()
        );
        let out = self.run(
            "pg_ctl",
            &[
                "-D",
                &data.to_string_lossy(),
                "-o",
                &opts,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        assert!(
            out.success(),
            "pg_ctl start failed:\n{}\n--- server.log ---\n{}",
            out.describe(),
            self.log()
        );
        self.running = true;
    }

    /// `pg_ctl stop -m fast`: connections are closed, the data stays.
    pub fn stop(&mut self) {
        self.pg_ctl_stop("fast");
    }

    fn pg_ctl_stop(&mut self, mode: &str) {
        if !self.running {
            return;
        }
        let data = self.data_dir();
        let out = self.run(
            "pg_ctl",
            &["-D", &data.to_string_lossy(), "-m", mode, "-w", "stop"],
        );
        if !out.success() {
            eprintln!("[e2e] pg_ctl stop failed:\n{}", out.describe());
        }
        self.running = false;
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.path().join("server.log")).unwrap_or_default()
    }

    /// `psql` on the test database: runs `sql`, returns the rows unaligned
    /// (`a|b` a line, no header); FAILS the test on an error.
    pub fn psql(&self, sql: &str) -> String {
        let out = self.psql_in(DATABASE, sql);
        assert!(out.success(), "psql failed:\n{}", out.describe());
        out.stdout
    }

    fn psql_in(&self, database: &str, sql: &str) -> RunOutput {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .args([
                "-p",
                &PORT.to_string(),
                "-U",
                USER,
                "-d",
                database,
                "-c",
                sql,
            ]);
        run_with_timeout(cmd, TIMEOUT)
    }

    /// One of the server binaries, as the `postgres` user when we are root.
    fn run(&self, program: &str, args: &[&str]) -> RunOutput {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args);
        // The server inherits the directory's locale settings; C is always there.
        cmd.env("LC_ALL", "C").env("LANG", "C");
        run_with_timeout(cmd, TIMEOUT)
    }
}

/// `chown postgres:` so the server (run as `postgres`) may write there.
fn chown_postgres(dir: &Path) {
    let out = run_with_timeout(
        {
            let mut c = Command::new("chown");
            c.arg("postgres:").arg(dir);
            c
        },
        TIMEOUT,
    );
    assert!(
        out.success(),
        "cannot hand {} to the postgres user (initdb refuses root):\n{}",
        dir.display(),
        out.describe()
    );
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if std::thread::panicking() && self.running {
            eprintln!(
                "--- postgres server.log ---\n{}--- end of server.log ---",
                self.log()
            );
        }
        // Immediate: nothing to keep, and no wait for clients to leave.
        self.pg_ctl_stop("immediate");
        // The TempDir removes the directory (root may; as ourselves we own it).
        drop(self.dir.take());
    }
}
