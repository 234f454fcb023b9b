//! Hot deploy from the deploy folder: a changed `NAME.wasm` or `NAME.toml` is
//! redeployed, a removed `NAME.wasm` undeployed, within a fraction of a second.
//!
//! File events are debounced, then each affected name is synced by one task,
//! in order, so two changes to one Element never race. A file is read only
//! once its size and modification time have stopped changing, so a slow copy
//! is not loaded half-written; write-then-rename is always safe.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use tokio::sync::mpsc;

use super::Deployer;

/// Quiet time after the last file event before acting on a batch.
const DEBOUNCE: Duration = Duration::from_millis(75);

/// Keeps the folder watched; dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<notify::RecommendedWatcher>,
}

/// Starts watching `dir` and syncing changed Elements through `deployer`.
pub fn watch(deployer: Arc<Deployer>, dir: PathBuf) -> notify::Result<Watcher> {
    let (sender, mut receiver) = mpsc::unbounded_channel::<BTreeSet<String>>();
    let mut debouncer = new_debouncer(DEBOUNCE, move |result: DebounceEventResult| match result {
        Ok(events) => {
            let names: BTreeSet<String> = events.iter().filter_map(|e| element_name(&e.path)).collect();
            if !names.is_empty() {
                let _ = sender.send(names);
            }
        }
        Err(error) => tracing::warn!(%error, "deploy folder watch error"),
    })?;
    debouncer.watcher().watch(&dir, RecursiveMode::NonRecursive)?;
    tracing::info!("watching {} for Element changes", dir.display());
    tokio::spawn(async move {
        while let Some(mut names) = receiver.recv().await {
            // Fold in whatever else arrived meanwhile.
            while let Ok(more) = receiver.try_recv() {
                names.extend(more);
            }
            for name in names {
                deployer.sync(&dir, &name).await;
            }
        }
    });
    Ok(Watcher {
        _debouncer: debouncer,
    })
}

/// The Element a file in the deploy folder belongs to: `NAME` for
/// `NAME.wasm` and `NAME.toml`; nothing for hidden or temporary files.
pub fn element_name(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?;
    let stem = path.file_stem()?.to_str()?;
    if (ext == "wasm" || ext == "toml") && !stem.starts_with('.') {
        Some(stem.to_owned())
    } else {
        None
    }
}
