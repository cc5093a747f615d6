//! `wisp build [PATH]`: a plugin crate into a component, with the recipe
//! `make plugins` uses (`scripts/wasm32.sh`, embedded here: one definition
//! for both), then `wasm-tools component new`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasm32 recipe shared with `scripts/build-plugins.sh`.
const RECIPE: &str = include_str!("../../../scripts/wasm32.sh");

/// Why a build did not produce a component.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{}: no Cargo.toml (wisp build takes a plugin crate's folder)", .0.display())]
    NoCrate(PathBuf),
    #[error("{}: {}", .0.display(), .1)]
    Manifest(PathBuf, String),
    #[error("cannot build plugins on this machine:\n{0}")]
    Missing(String),
    #[error("cannot run {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("cargo failed to build {0} for wasm32 (its output is above)")]
    Cargo(String),
    #[error("cargo built no module at {}: is the crate's [lib] crate-type [\"cdylib\"]?", .0.display())]
    NoModule(PathBuf),
    #[error("wasm-tools component new failed on {}:\n{}", .0.display(), .1)]
    Componentize(PathBuf, String),
}

/// What a build produced.
#[derive(Debug)]
pub struct Built {
    pub component: PathBuf,
    pub bytes: u64,
}

/// What this machine lacks to build plugins, in words; empty when nothing.
pub fn missing() -> Result<String, BuildError> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("{RECIPE}\nwasm32_missing"))
        .output()
        .map_err(|e| BuildError::Spawn("bash".into(), e))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Build the crate at `dir` to `<target>/plugins/<name>.wasm` (the
/// crate's target folder; a crate named `wisp-plugin-x` gives `x.wasm`,
/// as `make plugins` names them). Cargo's output goes to this process's
/// standard error.
pub fn build(dir: &Path) -> Result<Built, BuildError> {
    let manifest = dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(BuildError::NoCrate(dir.to_owned()));
    }
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| BuildError::Manifest(manifest.clone(), e.to_string()))?;
    let lib = lib_name(&text).map_err(|e| BuildError::Manifest(manifest.clone(), e))?;
    let missing = missing()?;
    if !missing.is_empty() {
        return Err(BuildError::Missing(missing));
    }
    let target = target_dir(&manifest)?;
    // `WASM_TARGET_DIR` (as for scripts/build-plugins.sh) puts the wasm32
    // build where another's standard library already is.
    let wasm_dir = std::env::var_os("WASM_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("wasm"));
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{RECIPE}\nset -e\nwasm_build --manifest-path \"$1\" --lib"
        ))
        .arg("wisp-build")
        .arg(&manifest)
        .env("WASM_TARGET_DIR", &wasm_dir)
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .status()
        .map_err(|e| BuildError::Spawn("bash".into(), e))?;
    if !status.success() {
        return Err(BuildError::Cargo(manifest.display().to_string()));
    }
    let module = wasm_dir
        .join("wasm32-unknown-unknown/release")
        .join(format!("{lib}.wasm"));
    if !module.is_file() {
        return Err(BuildError::NoModule(module));
    }
    let out_dir = target.join("plugins");
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| BuildError::Manifest(out_dir.clone(), e.to_string()))?;
    let short = lib.strip_prefix("wisp_plugin_").unwrap_or(&lib);
    let component = out_dir.join(format!("{short}.wasm"));
    let out = Command::new("wasm-tools")
        .args(["component", "new"])
        .arg(&module)
        .arg("-o")
        .arg(&component)
        .output()
        .map_err(|e| BuildError::Spawn("wasm-tools".into(), e))?;
    if !out.status.success() {
        return Err(BuildError::Componentize(
            module,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let bytes = std::fs::metadata(&component).map(|m| m.len()).unwrap_or(0);
    Ok(Built { component, bytes })
}

/// The library's file name: `[lib] name`, else the package name with `_`.
fn lib_name(cargo_toml: &str) -> Result<String, String> {
    let doc: toml::Table = cargo_toml.parse().map_err(|e| format!("{e}"))?;
    let lib = doc
        .get("lib")
        .and_then(|l| l.get("name"))
        .and_then(|n| n.as_str());
    let package = doc
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str());
    lib.or(package)
        .map(|n| n.replace('-', "_"))
        .ok_or_else(|| "no [package] name".to_owned())
}

/// The crate's target folder, as cargo sees it (a workspace member's is
/// the workspace's).
fn target_dir(manifest: &Path) -> Result<PathBuf, BuildError> {
    let out = Command::new("cargo")
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .map_err(|e| BuildError::Spawn("cargo".into(), e))?;
    if !out.status.success() {
        return Err(BuildError::Manifest(
            manifest.to_owned(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| BuildError::Manifest(manifest.to_owned(), e.to_string()))?;
    meta.get("target_directory")
        .and_then(|t| t.as_str())
        .map(PathBuf::from)
        .ok_or_else(|| BuildError::Manifest(manifest.to_owned(), "no target_directory".into()))
}
