//! `wisp new NAME [--template T] [--sdk-path P]`: a ready plugin crate.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// What a new plugin starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// The Hello World script: maxfwd, REGISTER saved, local users looked
    /// up, the rest relayed (params: `max_len`).
    Default,
    /// A registrar with digest authentication (`wisp ctl user add`).
    Registrar,
    /// A redirect server: INVITE gets 302 to the param `target`.
    Redirect,
    /// A route that relays everything, to write your own.
    Empty,
}

impl Template {
    fn source(self) -> &'static str {
        match self {
            Template::Default => include_str!("templates/default.rs"),
            Template::Registrar => include_str!("templates/registrar.rs"),
            Template::Redirect => include_str!("templates/redirect.rs"),
            Template::Empty => include_str!("templates/empty.rs"),
        }
    }

    /// The `[plugin.params]` of the generated manifest.
    fn params(self) -> &'static str {
        match self {
            Template::Default => "[plugin.params]\nmax_len = 8192\n",
            Template::Redirect => "[plugin.params]\ntarget = \"sip:voicemail@192.0.2.20\"\n",
            Template::Registrar | Template::Empty => "",
        }
    }

    /// The case file the crate starts with (`cases/basic.toml`).
    fn case(self) -> &'static str {
        match self {
            Template::Default => include_str!("templates/cases/default.toml"),
            Template::Registrar => include_str!("templates/cases/registrar.toml"),
            Template::Redirect => include_str!("templates/cases/redirect.toml"),
            Template::Empty => include_str!("templates/cases/empty.toml"),
        }
    }
}

/// The plugin SDK of the checkout this binary was built from.
pub fn built_sdk_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk")
}

/// Why a crate was not written.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error("{0:?} is not a crate name: use letters, digits, `-` and `_`, starting with a letter")]
    BadName(String),
    #[error("{} already exists: pick another name or remove it", .0.display())]
    Exists(PathBuf),
    #[error("no wisp-sdk at {}: pass --sdk-path to the plugin-sdk folder of a Wisp checkout", .0.display())]
    NoSdk(PathBuf),
    #[error("{}: {}", .0.display(), .1)]
    Io(PathBuf, std::io::Error),
}

/// Write a plugin crate named after the last component of `dir` into `dir`
/// (which must not exist), depending on the wisp-sdk at `sdk` (default:
/// [`built_sdk_path`]). `wisp` is the binary the crate's test runs.
/// Returns the files written.
pub fn new_plugin(
    dir: &Path,
    template: Template,
    sdk: Option<&Path>,
    wisp: &Path,
) -> Result<Vec<PathBuf>, NewError> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(NewError::BadName(name));
    }
    if dir.exists() {
        return Err(NewError::Exists(dir.to_owned()));
    }
    let sdk = sdk.map(Path::to_owned).unwrap_or_else(built_sdk_path);
    let sdk = fs::canonicalize(&sdk)
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
        .ok_or_else(|| NewError::NoSdk(sdk.clone()))?;
    let lib = name.replace('-', "_");
    let fill = |text: &str| {
        text.replace("{name}", &name)
            .replace("{lib}", &lib)
            .replace("{sdk_path}", &toml_escape(&sdk.to_string_lossy()))
            .replace("{params}", template.params())
            .replace("{wisp_bin:?}", &format!("{:?}", wisp.to_string_lossy()))
    };
    let files: Vec<(&str, String)> = vec![
        ("Cargo.toml", fill(include_str!("templates/Cargo.toml.in"))),
        ("src/lib.rs", fill(template.source())),
        ("wisp.toml", fill(include_str!("templates/wisp.toml.in"))),
        ("cases/basic.toml", fill(template.case())),
        (
            "tests/cases.rs",
            fill(include_str!("templates/cases.rs.in")),
        ),
        (
            ".gitignore",
            include_str!("templates/gitignore.in").to_owned(),
        ),
    ];
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| NewError::Io(parent.to_owned(), e))?;
        }
        fs::write(&path, text).map_err(|e| NewError::Io(path.clone(), e))?;
        written.push(path);
    }
    Ok(written)
}

/// What `wisp new` prints: what was written and the next commands.
pub fn summary(dir: &Path, written: &[PathBuf]) -> String {
    let mut out = format!("created plugin crate {}\n", dir.display());
    for f in written {
        let rel = f.strip_prefix(dir).unwrap_or(f);
        let _ = writeln!(out, "  {}", rel.display());
    }
    let _ = writeln!(
        out,
        "next:\n  cd {}\n  wisp build      # the component, in target/plugins/\n  cargo test      # builds it and runs cases/*.toml (wisp test)\n  wisp run --config wisp.toml",
        dir.display()
    );
    out
}

/// A TOML basic string's content.
fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
