//! `wisp` — the router binary: `wisp run` serves, `wisp check` validates;
//! `wisp new|build|test|replay` are the plugin developer's kit.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use wisp::config::{LogFormat, Manifest};
use wisp::router::Router;

/// Many small, short-lived allocations per message: mimalloc's thread-local
/// free lists are cheaper than glibc malloc for them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wisp",
    version,
    about = "SIP router with WebAssembly routing plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the router.
    Run {
        /// The manifest.
        #[arg(long, short, default_value = "config/wisp.toml")]
        config: PathBuf,
        /// More verbose than the manifest's `server.log_level`, a level per
        /// flag (`-vv`: two).
        #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
        verbose: u8,
        /// Quieter than the manifest's `server.log_level`, a level per flag.
        #[arg(short, long, action = clap::ArgAction::Count)]
        quiet: u8,
    },
    /// Validate the manifest and load the plugin without serving (like `kamailio -c`).
    Check {
        #[arg(long, short, default_value = "config/wisp.toml")]
        config: PathBuf,
    },
    /// Manage the running router (like `serctl`); `wisp ctl help` lists the commands.
    Ctl {
        /// The manifest of the running router (names its `server.ctl_socket`).
        #[arg(long, short, default_value = "config/wisp.toml")]
        config: PathBuf,
        /// The management socket itself, instead of reading the manifest.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// The command and its arguments, parsed by the router (`wisp ctl help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Write a new plugin crate (a folder NAME) that builds and tests as it is.
    New {
        /// The crate's folder (its last part is the crate's name).
        name: PathBuf,
        #[arg(long, short, value_enum, default_value = "default")]
        template: wisp::kit::new::Template,
        /// The plugin-sdk folder of a Wisp checkout (default: this binary's).
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
    /// Build a plugin crate into a component (the recipe of `make plugins`).
    Build {
        /// The crate's folder.
        #[arg(default_value = ".")]
        path: PathBuf,
    },
    /// Run a plugin on case files: the real host, a virtual network and clock.
    #[command(after_long_help = wisp::kit::case::CASE_FORMAT)]
    Test {
        /// The plugin component.
        #[arg(long)]
        plugin: PathBuf,
        /// Case files, or folders of them (`*.toml`).
        #[arg(required = true)]
        cases: Vec<PathBuf>,
    },
    /// Feed captured requests (pcap, or the kit's text format) through a
    /// plugin, sending nothing; print each decision, or with --against the
    /// requests two builds route differently.
    Replay {
        #[arg(long)]
        plugin: PathBuf,
        /// Another build: list only the requests it decides differently.
        #[arg(long)]
        against: Option<PathBuf>,
        /// A case file whose params, manifest excerpt and store to use.
        #[arg(long)]
        setup: Option<PathBuf>,
        /// The router's address in the capture (`udp:IP:PORT`, repeatable;
        /// default: where most requests went).
        #[arg(long)]
        listen: Vec<String>,
        capture: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            config,
            verbose,
            quiet,
        } => run(config, i32::from(verbose) - i32::from(quiet)),
        Command::Check { config } => check(config),
        Command::Ctl {
            config,
            socket,
            args,
        } => ctl(config, socket, args),
        Command::New {
            name,
            template,
            sdk_path,
        } => new_plugin(name, template, sdk_path),
        Command::Build { path } => build_plugin(path),
        Command::Test { plugin, cases } => test_plugin(plugin, cases),
        Command::Replay {
            plugin,
            against,
            setup,
            listen,
            capture,
        } => replay(plugin, against, setup, listen, capture),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wisp: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The log on standard error: `server.log_level` moved `verbosity` levels
/// (`-v` / `-q`), unless `RUST_LOG` says otherwise; text or JSON lines
/// (`server.log_format`).
fn init_logging(manifest: &Manifest, verbosity: i32) {
    let level = manifest.server.log_level.shifted(verbosity);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("wisp={0},wisp_sip={0},warn", level.as_filter()))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match manifest.server.log_format {
        // One object a line: the event's fields (Call-ID, plugin, ...) as
        // keys, and the message spans it happened in.
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
        // Colours only on a terminal: logs that go to files stay greppable.
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

/// Transparent huge pages off for this process. The allocator asks for
/// them (`madvise`), and each first touch of a 2 MiB page zeroes all of it
/// on the receive path: with transactions growing memory at 40 MB/s that
/// was a fifth of the router's CPU and a p99 of 5 ms instead of 1.3 ms in
/// the relay benchmark (docs/performance.md). Failing only costs that.
fn no_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments and touches no
    // memory of ours.
    let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if r != 0 {
        tracing::debug!(
            "transparent huge pages stay on: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn workers(manifest: &Manifest) -> usize {
    match manifest.server.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    }
}

fn run(config: PathBuf, verbosity: i32) -> anyhow::Result<()> {
    let manifest = Manifest::load(&config)?;
    init_logging(&manifest, verbosity);
    no_transparent_huge_pages();
    let workers = workers(&manifest);
    let runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
    .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let ctl_path = manifest.resolve(&manifest.server.ctl_socket);
        let metrics = manifest.metrics.listen;
        let router = Router::bind(manifest).await?;
        // Management and the plugin watch first: once the router answers,
        // `wisp ctl` and a new build on disk are heard too.
        let _ctl =
            wisp::ctl::server::serve(router.clone(), &ctl_path).context("management socket")?;
        let _watch = wisp::plugin::watch::watch(router.plugins().clone())
            .context("watching plugin files")?;
        let _tls_watch = match router.transports().tls() {
            Some(tls) => Some(
                wisp::transport::tls::watch(tls.clone())
                    .context("watching TLS certificate files")?,
            ),
            None => None,
        };
        if let Some(addr) = metrics {
            let bound = wisp::ctl::metrics::serve(router.clone(), addr)
                .await
                .with_context(|| format!("cannot serve metrics on {addr}"))?;
            tracing::info!("metrics on http://{bound}/metrics");
        }
        router.serve(workers);
        // The bound addresses, not the configured ones: port 0 becomes the
        // port the system picked (`wisp ctl listen` says the same). Logged
        // once the router serves, so whoever reads a port here can use it,
        // and `wisp ctl`, at once.
        for (proto, addr) in router.transports().listen_addrs() {
            tracing::info!("listening on {}", wisp::ctl::listen_name(proto, addr));
        }
        tracing::info!(workers, "wisp ready");
        // SIGINT from a terminal, SIGTERM from a service manager: both
        // end with the last commit below.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("signal handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("signal handler")?,
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        // Write-back holds up to an interval of changes: commit them.
        let (tx, rx) = tokio::sync::oneshot::channel();
        router.services().usrloc().flush(Box::new(move |r| {
            let _ = tx.send(r.map_err(|e| e.to_string()));
        }));
        match tokio::time::timeout(std::time::Duration::from_secs(10), rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!("usrloc: last commit failed: {e}"),
            _ => tracing::error!("usrloc: last commit did not finish"),
        }
        Ok(())
    })
}

/// `wisp ctl ...`: one request to the running router's management socket.
fn ctl(config: PathBuf, socket: Option<PathBuf>, mut args: Vec<String>) -> anyhow::Result<()> {
    // Help needs no router: this binary has the router's parser. The rest
    // goes to the router as typed, which parses it (and may know commands
    // an older client does not).
    match wisp::ctl::Command::parse(&args) {
        Ok(wisp::ctl::Parsed::Help(text)) => {
            print!("{text}");
            return Ok(());
        }
        Err(e) if args.is_empty() => anyhow::bail!("{e}"),
        _ => {}
    }
    let socket = match socket {
        Some(s) => s,
        None => {
            let manifest = Manifest::load(&config)?;
            manifest.resolve(&manifest.server.ctl_socket)
        }
    };
    // `user add <aor> -`: the password comes from standard input.
    wisp::ctl::password_from_stdin(&mut args, || {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line)
    })
    .context("reading the password from standard input")?;
    // `stats --watch N`: ask again every N seconds, until interrupted.
    let watch = match wisp::ctl::Command::parse(&args) {
        Ok(wisp::ctl::Parsed::Run(wisp::ctl::Command::Stats(a))) => a.watch,
        _ => None,
    };
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        let response = wisp::ctl::client::call(&socket, args.clone())?;
        if !response.ok {
            anyhow::bail!("{}", response.error)
        }
        let Some(every) = watch else {
            print!("{}", response.output);
            return Ok(());
        };
        if terminal {
            // Home and clear: the table stays in place.
            print!("\x1b[H\x1b[2J");
        }
        print!("{}", response.output);
        std::io::Write::flush(&mut std::io::stdout())?;
        std::thread::sleep(std::time::Duration::from_secs(every));
    }
}

/// `wisp new`.
fn new_plugin(
    name: PathBuf,
    template: wisp::kit::new::Template,
    sdk: Option<PathBuf>,
) -> anyhow::Result<()> {
    let wisp = std::env::current_exe().context("where this binary is")?;
    let written = wisp::kit::new::new_plugin(&name, template, sdk.as_deref(), &wisp)?;
    print!("{}", wisp::kit::new::summary(&name, &written));
    Ok(())
}

/// `wisp build`.
fn build_plugin(path: PathBuf) -> anyhow::Result<()> {
    let built = wisp::kit::build::build(&path)?;
    println!(
        "built {} ({} bytes)",
        built.component.display(),
        built.bytes
    );
    Ok(())
}

/// Logs of `wisp test` and `wisp replay`: warnings (a plugin's error, a
/// refused host call) on standard error; `RUST_LOG` for more.
fn init_kit_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .try_init();
}

/// `wisp test`: fails when a case does.
fn test_plugin(plugin: PathBuf, cases: Vec<PathBuf>) -> anyhow::Result<()> {
    init_kit_logging();
    if !plugin.is_file() {
        anyhow::bail!(
            "{}: no such plugin component (build it with `wisp build`)",
            plugin.display()
        );
    }
    let reports = wisp::kit::run_cases(&plugin, &cases)?;
    print!("{}", wisp::kit::case::render(&reports));
    if reports.is_empty() {
        anyhow::bail!("no case files in {cases:?}");
    }
    let failed = reports.iter().filter(|r| !r.passed()).count();
    if failed > 0 {
        anyhow::bail!("{failed} case(s) failed");
    }
    Ok(())
}

/// `wisp replay`: with --against, fails when the builds differ (like diff).
fn replay(
    plugin: PathBuf,
    against: Option<PathBuf>,
    setup: Option<PathBuf>,
    listen: Vec<String>,
    capture: PathBuf,
) -> anyhow::Result<()> {
    init_kit_logging();
    let (text, differ) = wisp::kit::replay::run(
        &plugin,
        against.as_deref(),
        &capture,
        setup.as_deref(),
        &listen,
    )?;
    print!("{text}");
    if differ {
        std::process::exit(1);
    }
    Ok(())
}

fn check(config: PathBuf) -> anyhow::Result<()> {
    let manifest = Manifest::load(&config)?;
    init_logging(&manifest, 0);
    // Load the plugin exactly as `run` would, on ephemeral ports so a running
    // router on the same manifest does not make the check fail.
    let mut probe = manifest.clone();
    for l in &mut probe.server.listen {
        l.addr.set_port(0);
    }
    // Nor touch its database: a check never writes (or migrates) anything.
    probe.usrloc.db_mode = wisp::config::DbMode::MemoryOnly;
    // Nor the plugin cache: a check run by another user would leave files
    // the router cannot replace; and it compiles, proving the component does.
    probe.server.plugin_cache = PathBuf::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(Router::bind(probe))?;
    let names: Vec<&str> = manifest.plugin.iter().map(|p| p.name.as_str()).collect();
    println!(
        "{}: OK (plugins loaded: {})",
        config.display(),
        names.join(", ")
    );
    Ok(())
}
