//! On-disk cache of compiled components, so a restart does not compile the
//! plugin again: compiling a component takes milliseconds to seconds, loading
//! its serialized form tens of microseconds.
//!
//! A cached artifact is named by the SHA-256 of the component's bytes and of
//! the engine's compatibility hash (wasmtime version, target, compiler flags,
//! tunables, features). A new build of the plugin, or a new Wisp with another
//! engine configuration, gets another name; old files are never read again.
//! So that a plugin rebuilt and reloaded all day does not fill the disk, a
//! hit marks its file as used and every store keeps only the [`KEEP`] most
//! recently used artifacts. Deleting a file a running build still maps is
//! safe: the mapping outlives the directory entry.

use std::fs::DirBuilder;
use std::hash::Hasher;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Artifacts kept in the cache directory: enough for every plugin of a
/// chain and the builds an operator switches between.
pub const KEEP: usize = 32;

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Compiled from the component's bytes (no cache, a miss, or an unusable
    /// cached file).
    Compiled,
    /// Deserialized from the cache.
    Cached,
}

/// Why a compiled component could not be stored. Never fatal: the component
/// is in memory already, the next start compiles again.
#[derive(Debug, thiserror::Error)]
pub enum CacheWriteError {
    #[error("cannot create cache directory {dir}: {source}")]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialize the compiled component: {0:#}")]
    Serialize(wasmtime::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A directory of compiled components (`server.plugin_cache`).
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    /// A cache in `dir`; the directory is created on the first write.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ComponentCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds (or will hold) `bytes` compiled by `engine`.
    pub fn path_for(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        self.dir.join(format!("{}.cwasm", cache_key(engine, bytes)))
    }

    /// The component for `bytes`: from the cache when a usable artifact is
    /// there, else compiled and stored. Only a compile error is an error; a
    /// cache that cannot be read or written is logged and bypassed.
    pub fn load(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> Result<(Component, Outcome), wasmtime::Error> {
        let path = self.path_for(engine, bytes);
        if path.is_file() {
            // SAFETY: `deserialize_file` runs the machine code in the file, so
            // the file must be what `Component::serialize` wrote for this
            // engine, and must not change while mapped. Both hold for files in
            // this directory: only `store` below writes them, and it names each
            // by the hash of the component bytes and of the engine's
            // compatibility hash, so a file is only ever read back for the
            // same component and an engine that compiles identically. It
            // writes to a temporary file, syncs it and renames it into place,
            // so a crash never leaves a partial file under a cache name and a
            // replacement is a new inode, never an in-place write to a mapped
            // file. The directory is the operator's (`server.plugin_cache`,
            // created mode 0700, like the binary's own location it must not be
            // writable by others). Wasmtime still checks the artifact's header
            // and engine settings and refuses a damaged or foreign file, which
            // then falls through to compiling.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => {
                    mark_used(&path);
                    return Ok((component, Outcome::Cached));
                }
                Err(e) => tracing::warn!(
                    "plugin cache: {} unusable, compiling again: {e:#}",
                    path.display()
                ),
            }
        }
        let component = Component::new(engine, bytes)?;
        match self.store(&component, &path) {
            Ok(()) => self.prune(KEEP, &path),
            Err(e) => tracing::warn!("plugin cache: not stored: {e}"),
        }
        Ok((component, Outcome::Compiled))
    }

    /// Delete all but the `keep` most recently used artifacts; `current`
    /// (just stored) always stays. Failures are logged, never fatal.
    fn prune(&self, keep: usize, current: &Path) {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!("plugin cache: cannot list {}: {e}", self.dir.display());
                return;
            }
        };
        let mut artifacts: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm") && p != current)
            .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
            .collect();
        // `current` takes one of the `keep` places.
        let room = keep.saturating_sub(1);
        if artifacts.len() <= room {
            return;
        }
        artifacts.sort_by_key(|(used, _)| std::cmp::Reverse(*used));
        for (_, old) in &artifacts[room..] {
            match std::fs::remove_file(old) {
                Ok(()) => tracing::debug!("plugin cache: removed {}", old.display()),
                Err(e) => tracing::warn!("plugin cache: cannot remove {}: {e}", old.display()),
            }
        }
    }

    fn store(&self, component: &Component, path: &Path) -> Result<(), CacheWriteError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| CacheWriteError::CreateDir {
                dir: self.dir.clone(),
                source,
            })?;
        let serialized = component.serialize().map_err(CacheWriteError::Serialize)?;
        let write_error = |source| CacheWriteError::Write {
            path: path.to_owned(),
            source,
        };
        let mut tmp = NamedTempFile::new_in(&self.dir).map_err(write_error)?;
        tmp.write_all(&serialized).map_err(write_error)?;
        tmp.as_file().sync_all().map_err(write_error)?;
        tmp.persist(path).map_err(|e| write_error(e.error))?;
        Ok(())
    }
}

/// Note that a cached artifact was used, for [`ComponentCache::prune`].
fn mark_used(path: &Path) {
    let touched = std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    if let Err(e) = touched {
        tracing::debug!("plugin cache: cannot mark {} used: {e}", path.display());
    }
}

/// The component for `bytes`, through `cache` when there is one; logs where
/// it came from and how long that took.
pub fn load_component(
    engine: &Engine,
    bytes: &[u8],
    cache: Option<&ComponentCache>,
    plugin: &str,
) -> Result<Component, wasmtime::Error> {
    let started = Instant::now();
    let (component, outcome) = match cache {
        Some(cache) => cache.load(engine, bytes)?,
        None => (Component::new(engine, bytes)?, Outcome::Compiled),
    };
    let elapsed = started.elapsed();
    match outcome {
        Outcome::Cached => tracing::info!(plugin, ?elapsed, "plugin loaded from cache"),
        Outcome::Compiled => tracing::info!(
            plugin,
            ?elapsed,
            cached = cache.is_some(),
            "plugin compiled"
        ),
    }
    Ok(component)
}

/// Hex SHA-256 over the engine's compatibility hash and the component bytes.
fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    let mut digest = hasher.0;
    digest.update(bytes);
    super::hex(&digest.finalize())
}

/// Feeds what a `Hash` impl writes into SHA-256: the compatibility hash is
/// only exposed as `impl Hash`, and a 64-bit `Hasher` would be too weak (and
/// not stable across Rust releases) for a name that guards `unsafe` loading.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Only the SHA-256 digest is used; `Hash` impls never call this.
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component embedding a core module with one function returning
    /// `value`: small enough to compile in a test, and different bytes for
    /// different values.
    fn component_bytes(value: i32) -> Vec<u8> {
        use wasm_encoder::{
            CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction, Module,
            ModuleSection, TypeSection, ValType,
        };
        let mut types = TypeSection::new();
        types.ty().function([], [ValType::I32]);
        let mut functions = FunctionSection::new();
        functions.function(0);
        let mut exports = ExportSection::new();
        exports.export("f", ExportKind::Func, 0);
        let mut body = Function::new([]);
        body.instruction(&Instruction::I32Const(value));
        body.instruction(&Instruction::End);
        let mut code = CodeSection::new();
        code.function(&body);
        let mut module = Module::new();
        module
            .section(&types)
            .section(&functions)
            .section(&exports)
            .section(&code);
        let mut component = wasm_encoder::Component::new();
        component.section(&ModuleSection(&module));
        component.finish()
    }

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).expect("engine")
    }

    #[test]
    fn miss_compiles_and_stores_then_hit_deserializes() {
        let engine = engine();
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = ComponentCache::new(dir.path().join("cache"));
        let bytes = component_bytes(7);
        let (_, first) = cache.load(&engine, &bytes).expect("compiles");
        assert_eq!(first, Outcome::Compiled);
        assert!(cache.path_for(&engine, &bytes).is_file());
        let (_, second) = cache.load(&engine, &bytes).expect("loads");
        assert_eq!(second, Outcome::Cached);
    }

    #[test]
    fn corrupt_cached_file_is_compiled_again_and_replaced() {
        let engine = engine();
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = ComponentCache::new(dir.path());
        let bytes = component_bytes(7);
        cache.load(&engine, &bytes).expect("compiles");
        let path = cache.path_for(&engine, &bytes);
        std::fs::write(&path, b"\x7fELF not really").expect("corrupt it");
        let (_, outcome) = cache.load(&engine, &bytes).expect("falls back");
        assert_eq!(outcome, Outcome::Compiled);
        let (_, outcome) = cache.load(&engine, &bytes).expect("repaired");
        assert_eq!(outcome, Outcome::Cached);
    }

    #[test]
    fn different_bytes_have_different_keys() {
        let engine = engine();
        let cache = ComponentCache::new("unused");
        let a = component_bytes(7);
        let b = component_bytes(8);
        assert_ne!(cache.path_for(&engine, &a), cache.path_for(&engine, &b));
        assert_eq!(cache.path_for(&engine, &a), cache.path_for(&engine, &a));
    }

    #[test]
    fn engine_configuration_is_part_of_the_key() {
        let bytes = component_bytes(7);
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let other = Engine::new(&config).expect("engine");
        let cache = ComponentCache::new("unused");
        assert_ne!(
            cache.path_for(&engine(), &bytes),
            cache.path_for(&other, &bytes)
        );
    }

    #[test]
    fn only_the_most_recently_used_artifacts_are_kept() {
        let engine = engine();
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = ComponentCache::new(dir.path());
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let set_age = |path: &Path, age_s: u64| {
            std::fs::File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(old - std::time::Duration::from_secs(age_s)))
                .expect("set mtime");
        };
        // A used artifact, made old, then read again: a hit marks it used.
        let used = component_bytes(1000);
        cache.load(&engine, &used).expect("compiles");
        set_age(&cache.path_for(&engine, &used), 10_000);
        assert_eq!(cache.load(&engine, &used).expect("hit").1, Outcome::Cached);
        // KEEP + 3 stale artifacts, each older than the last.
        let stale: Vec<PathBuf> = (0..KEEP as u64 + 3)
            .map(|i| {
                let p = dir.path().join(format!("stale-{i}.cwasm"));
                std::fs::write(&p, b"stale").expect("write");
                set_age(&p, i);
                p
            })
            .collect();
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, b"not an artifact").expect("write");
        // A store prunes down to KEEP: the new one, the used one, and the
        // KEEP - 2 youngest stale ones.
        let fresh = component_bytes(2000);
        cache.load(&engine, &fresh).expect("compiles");
        assert!(cache.path_for(&engine, &fresh).is_file());
        assert!(
            cache.path_for(&engine, &used).is_file(),
            "the used one was pruned"
        );
        let kept: Vec<bool> = stale.iter().map(|p| p.is_file()).collect();
        assert!(kept[..KEEP - 2].iter().all(|k| *k), "{kept:?}");
        assert!(kept[KEEP - 2..].iter().all(|k| !*k), "{kept:?}");
        assert!(other.is_file(), "only .cwasm files are the cache's");
    }

    #[test]
    fn unwritable_cache_still_compiles() {
        let engine = engine();
        let dir = tempfile::tempdir().expect("tempdir");
        // A file where the directory should be: every write fails.
        let blocker = dir.path().join("not-a-dir");
        std::fs::write(&blocker, b"").expect("file");
        let cache = ComponentCache::new(&blocker);
        let (_, outcome) = cache
            .load(&engine, &component_bytes(7))
            .expect("compiles without a cache");
        assert_eq!(outcome, Outcome::Compiled);
    }
}
