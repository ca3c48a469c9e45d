//! The plugins the server serves: for each plugin folder, the version in
//! use (the last one that loaded and passed the reload gate), and what
//! happened to the folder last.
//!
//! Readers take a [`PluginSnapshot`]; a reload builds the next map beside
//! the current one and swaps the pointer. A call holds its own clone of the
//! [`Plugin`], so a call in flight finishes on the version it started with
//! while the next call gets the new one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mozaiks_plugin_host::{FunctionSpec, Plugin, PluginEngine};
use serde::Serialize;
use tokio::sync::Notify;

use crate::workflow::catalog::find_function;
use crate::workflow::{LookupError, ToolCatalog};

/// What happened to a plugin folder last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PluginStatus {
    /// The current version loaded and is served.
    Loaded,
    /// The last attempt failed; the previous version (if any) is served.
    Failed,
    /// The component was deleted; its tools are unavailable.
    Removed,
}

/// A failed load or reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LastError {
    /// Why, with the file and the cause.
    pub message: String,
    /// When (ms since the Unix epoch).
    pub at: u64,
}

/// One plugin folder.
#[derive(Debug, Clone)]
pub(crate) struct PluginSlot {
    /// The folder.
    pub dir: PathBuf,
    /// The plugin id (the folder name until a manifest was read).
    pub id: String,
    /// The version being served, if any.
    pub current: Option<Plugin>,
    /// What happened last.
    pub status: PluginStatus,
    /// The last failure, kept until a version loads again.
    pub last_error: Option<LastError>,
}

impl PluginSlot {
    /// The slot's state as `GET /api/plugins` shows it.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let current = self.current.as_ref();
        serde_json::json!({
            "id": self.id,
            "path": self.dir,
            "status": self.status,
            "version": current.map(|p| p.manifest().version.clone()),
            "hash": current.map(|p| p.hash().to_owned()),
            "loaded_at": current.map(|p| ms(p.loaded_at())),
            "compile_ms": current.map(|p| p.compile_time().as_secs_f64() * 1000.0),
            "from_cache": current.map(|p| p.cache_outcome() == mozaiks_plugin_host::CacheOutcome::Hit),
            "functions": current.map(|p| p.function_names()).unwrap_or_default(),
            "last_error": self.last_error,
        })
    }
}

/// The versions this process serves: plugin id → component SHA-256, and
/// workflow name → version (a broken folder's last good version).
pub(crate) fn served_versions(
    plugins: &PluginSet,
    workflows: &crate::workflow::WorkflowRegistry,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let plugins = plugins
        .snapshot()
        .slots()
        .filter_map(|slot| {
            let plugin = slot.current.as_ref()?;
            Some((slot.id.clone(), plugin.hash().to_owned()))
        })
        .collect();
    let workflows = workflows
        .snapshot()
        .iter()
        .filter_map(|(name, entry)| Some((name.clone(), entry.serving()?.version().to_owned())))
        .collect();
    (plugins, workflows)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why a tool's plugin cannot be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// No folder provides this id.
    #[error("plugin `{0}` is not loaded")]
    Unknown(String),
    /// Its component was deleted.
    #[error("plugin `{id}` was removed from {dir}; its tools are unavailable until it is back")]
    Removed {
        /// The plugin.
        id: String,
        /// Its folder.
        dir: String,
    },
    /// It never loaded.
    #[error("plugin `{id}` failed to load: {message}")]
    Failed {
        /// The plugin.
        id: String,
        /// Why.
        message: String,
    },
}

/// Plugin folder → slot, as of one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct PluginSnapshot(Arc<BTreeMap<PathBuf, PluginSlot>>);

impl PluginSnapshot {
    /// Every slot, by folder.
    pub(crate) fn slots(&self) -> impl Iterator<Item = &PluginSlot> {
        self.0.values()
    }

    /// The slot of folder `dir`.
    pub(crate) fn slot_of_dir(&self, dir: &Path) -> Option<&PluginSlot> {
        self.0.get(dir)
    }

    /// The slot serving plugin `id`.
    pub(crate) fn slot(&self, id: &str) -> Option<&PluginSlot> {
        self.0.values().find(|slot| slot.id == id)
    }

    /// The version of plugin `id` to call.
    pub(crate) fn plugin(&self, id: &str) -> Result<Plugin, Unavailable> {
        let slot = self
            .slot(id)
            .ok_or_else(|| Unavailable::Unknown(id.to_owned()))?;
        match (&slot.current, slot.status) {
            (Some(plugin), PluginStatus::Loaded | PluginStatus::Failed) => Ok(plugin.clone()),
            (_, PluginStatus::Removed) => Err(Unavailable::Removed {
                id: id.to_owned(),
                dir: slot.dir.display().to_string(),
            }),
            (None, _) => Err(Unavailable::Failed {
                id: id.to_owned(),
                message: slot
                    .last_error
                    .as_ref()
                    .map_or_else(String::new, |e| e.message.clone()),
            }),
        }
    }

    fn served(&self) -> impl Iterator<Item = &Plugin> {
        self.0
            .values()
            .filter(|slot| slot.status != PluginStatus::Removed)
            .filter_map(|slot| slot.current.as_ref())
    }
}

/// Served plugins by id, for workflow validation.
impl ToolCatalog for PluginSnapshot {
    fn function(&self, plugin: &str, function: &str) -> Result<&FunctionSpec, LookupError> {
        find_function(|| self.served(), plugin, function)
    }
}

/// The plugins of the server, replaced one folder at a time.
#[derive(Debug, Default)]
pub(crate) struct PluginSet {
    slots: RwLock<PluginSnapshot>,
    /// The server's first load, while it runs: the plugin folders (by
    /// name) not loaded yet. `None` once it finished (or if there was none).
    first_load: Mutex<Option<BTreeSet<String>>>,
    /// Woken when the first load finishes.
    first_load_done: Notify,
}

impl PluginSet {
    /// An empty set.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The plugins now; later changes do not affect it.
    pub(crate) fn snapshot(&self) -> PluginSnapshot {
        self.slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The version of plugin `id` to call.
    pub(crate) fn plugin(&self, id: &str) -> Result<Plugin, Unavailable> {
        self.snapshot().plugin(id)
    }

    /// The server's first load started, for these plugin folders (by
    /// folder name): until [`finish_first_load`](Self::finish_first_load),
    /// [`loading`](Self::loading) lists those not loaded yet.
    pub(crate) fn begin_first_load(&self, folders: impl IntoIterator<Item = String>) {
        *self.first_load_state() = Some(folders.into_iter().collect());
    }

    /// Folder `name` of the first load is done (loaded or failed).
    pub(crate) fn first_load_done(&self, name: &str) {
        if let Some(loading) = self.first_load_state().as_mut() {
            loading.remove(name);
        }
    }

    /// The first load finished: the plugins and the workflows are as they
    /// will be served. Wakes whoever waits for it.
    pub(crate) fn finish_first_load(&self) {
        *self.first_load_state() = None;
        self.first_load_done.notify_waiters();
    }

    /// While the first load runs, the plugin folders not loaded yet (empty
    /// while the workflows are checked after them); `None` once it
    /// finished.
    pub(crate) fn loading(&self) -> Option<Vec<String>> {
        self.first_load_state()
            .as_ref()
            .map(|loading| loading.iter().cloned().collect())
    }

    /// Waits for the first load to finish, at most `bound`; the plugin
    /// folders still loading when the bound passed.
    pub(crate) async fn wait_first_load(&self, bound: Duration) -> Result<(), Vec<String>> {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let done = self.first_load_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.loading().is_none() {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                return self.loading().map_or(Ok(()), Err);
            }
        }
    }

    fn first_load_state(&self) -> std::sync::MutexGuard<'_, Option<BTreeSet<String>>> {
        self.first_load
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, dir: &Path, change: impl FnOnce(Option<&PluginSlot>) -> PluginSlot) {
        let mut guard = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = BTreeMap::clone(&guard.0);
        let slot = change(next.get(dir));
        next.insert(dir.to_owned(), slot);
        *guard = PluginSnapshot(Arc::new(next));
    }

    /// Serves `plugin` from folder `dir` from now on.
    pub(crate) fn install(&self, dir: &Path, plugin: Plugin) {
        self.update(dir, |_| PluginSlot {
            dir: dir.to_owned(),
            id: plugin.id().to_owned(),
            current: Some(plugin),
            status: PluginStatus::Loaded,
            last_error: None,
        });
    }

    /// Records that folder `dir` failed to (re)load; its last good
    /// version, if any, keeps being served.
    pub(crate) fn record_failure(&self, dir: &Path, id: &str, message: String) {
        let last_error = LastError {
            message,
            at: ms(SystemTime::now()),
        };
        self.update(dir, |previous| match previous {
            Some(slot) => PluginSlot {
                status: PluginStatus::Failed,
                last_error: Some(last_error),
                ..slot.clone()
            },
            None => PluginSlot {
                dir: dir.to_owned(),
                id: id.to_owned(),
                current: None,
                status: PluginStatus::Failed,
                last_error: Some(last_error),
            },
        });
    }

    /// Records that folder `dir`'s component was deleted: its tools become
    /// unavailable. The slot stays listed, so callers learn why. Returns
    /// false if the folder was not known.
    pub(crate) fn mark_removed(&self, dir: &Path) -> bool {
        let mut guard = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        let Some(slot) = guard.0.get(dir) else {
            return false;
        };
        let removed = PluginSlot {
            status: PluginStatus::Removed,
            current: None,
            ..slot.clone()
        };
        let mut next = BTreeMap::clone(&guard.0);
        next.insert(dir.to_owned(), removed);
        *guard = PluginSnapshot(Arc::new(next));
        true
    }
}

/// Prunes the compiled-component cache down to what `plugins` serve now
/// ([`PluginEngine::prune_component_cache`]), on a blocking thread; logs
/// what it removed. Called after the first load and after each reload.
pub(crate) async fn prune_component_cache(engine: PluginEngine, plugins: Arc<PluginSet>) {
    let in_use: Vec<String> = plugins
        .snapshot()
        .slots()
        .filter_map(|slot| slot.current.as_ref().map(|p| p.hash().to_owned()))
        .collect();
    let pruned = tokio::task::spawn_blocking(move || {
        engine.prune_component_cache(in_use.iter().map(String::as_str))
    })
    .await
    .unwrap_or_default();
    if pruned.files > 0 {
        tracing::info!(
            files = pruned.files,
            mib = pruned.bytes / (1024 * 1024),
            "removed compiled components no loaded plugin uses from the component cache"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_for_the_first_load_ends_when_it_finishes_or_names_what_is_still_loading() {
        let set = Arc::new(PluginSet::new());
        assert_eq!(set.loading(), None);
        assert_eq!(set.wait_first_load(Duration::ZERO).await, Ok(()));

        set.begin_first_load(["fast".to_owned(), "slow".to_owned()]);
        set.first_load_done("fast");
        assert_eq!(set.loading(), Some(vec!["slow".to_owned()]));
        assert_eq!(
            set.wait_first_load(Duration::from_millis(20)).await,
            Err(vec!["slow".to_owned()])
        );

        let waiter = {
            let set = Arc::clone(&set);
            tokio::spawn(async move { set.wait_first_load(Duration::from_secs(60)).await })
        };
        tokio::task::yield_now().await;
        set.first_load_done("slow");
        set.finish_first_load();
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(set.loading(), None);
    }
}
