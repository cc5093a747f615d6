//! Reloading a plugin when its component file changes (`watch = true`).
//!
//! The directory is watched rather than the file, so that deploying by
//! rename (`cp` to a temporary name, then `mv` over the old file: the way to
//! replace a file atomically) is seen like an in-place write. Events are
//! gathered until the file has been quiet for [`QUIET`], so a build tool
//! writing in several steps causes one reload, not one per write; a file
//! caught half-written fails validation and is refused, and the write that
//! completes it triggers the next attempt.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

use super::chain::{PluginChain, ReloadOutcome};

/// How long a file must stay unchanged before it is loaded.
pub const QUIET: Duration = Duration::from_millis(250);

/// Keeps the watch alive; dropping it stops watching.
pub struct PluginWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// Watch the files of the chain's plugins that have `watch = true`, and
/// reload each when it changes. Must run inside the router's runtime.
pub fn watch(chain: Arc<PluginChain>) -> Result<Option<PluginWatcher>, notify::Error> {
    // (slot index, the file as the watcher will report it)
    let mut files: Vec<(usize, PathBuf)> = Vec::new();
    let mut dirs = BTreeSet::new();
    for (i, slot) in chain.slots().iter().enumerate() {
        if !slot.watched() {
            continue;
        }
        let (Some(dir), Some(file)) = (slot.path().parent(), slot.path().file_name()) else {
            continue;
        };
        let dir = if dir.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            dir
        };
        let dir = dir.canonicalize().map_err(notify::Error::io)?;
        files.push((i, dir.join(file)));
        dirs.insert(dir);
    }
    if files.is_empty() {
        return Ok(None);
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("plugin watch: {e}");
                return;
            }
        };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        for (i, file) in &files {
            if event.paths.iter().any(|p| p == file) {
                let _ = tx.send(*i);
            }
        }
    })?;
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        tracing::info!(dir = %dir.display(), "watching plugin files for new builds");
    }
    tokio::spawn(reload_on_change(chain, rx));
    Ok(Some(PluginWatcher { _watcher: watcher }))
}

async fn reload_on_change(
    chain: Arc<PluginChain>,
    mut changes: tokio::sync::mpsc::UnboundedReceiver<usize>,
) {
    while let Some(first) = changes.recv().await {
        let mut changed = BTreeSet::from([first]);
        // Wait for the writes to settle.
        loop {
            match tokio::time::timeout(QUIET, changes.recv()).await {
                Ok(Some(i)) => {
                    changed.insert(i);
                }
                Ok(None) => return,
                Err(_quiet) => break,
            }
        }
        for i in changed {
            let chain = chain.clone();
            let outcome =
                tokio::task::spawn_blocking(move || chain.slots().get(i).map(|s| s.reload())).await;
            if let Ok(Some(ReloadOutcome::Unchanged { version })) = outcome {
                tracing::debug!(version, "plugin file touched, same build: not reloaded");
            }
        }
    }
}
