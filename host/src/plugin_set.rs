//! The plugins the server serves: for each plugin folder, the version in
//! use (the last one that loaded and passed the reload gate), and what
//! happened to the folder last.
//!
//! Readers take a [`PluginSnapshot`]; a reload builds the next map beside
//! the current one and swaps the pointer. A call holds its own clone of the
//! [`Plugin`], so a call in flight finishes on the version it started with
//! while the next call gets the new one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use mozaiks_plugin_host::{FunctionSpec, Plugin};
use serde::Serialize;

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
