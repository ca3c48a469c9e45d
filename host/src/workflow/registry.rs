//! The set of workflows under a directory, each either valid or invalid
//! with its problems, replaced atomically one folder at a time.
//!
//! Readers take a snapshot (an `Arc` of the whole map) and never see a
//! half-replaced state: a reload builds the new map beside the old one and
//! swaps the pointer. An invalid folder is listed with its diagnostics and
//! is never half-loaded. A folder that was valid and then broke keeps its
//! last good version ([`Entry::Invalid::last_good`]), which new chats use
//! until the folder is fixed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use super::catalog::ToolCatalog;
use super::diagnostic::Diagnostic;
use super::load::ORCHESTRATOR_FILE;
use super::load_workflow;
use super::model::Workflow;

/// One folder of the registry.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    /// It loaded.
    Valid(Arc<Workflow>),
    /// It did not; every problem found.
    Invalid {
        /// The folder.
        dir: PathBuf,
        /// What is wrong with it.
        diagnostics: Arc<[Diagnostic]>,
        /// The version that loaded before the folder broke, still served.
        last_good: Option<Arc<Workflow>>,
    },
}

impl Entry {
    /// The version to serve: the valid one, or the last good one.
    pub(crate) fn serving(&self) -> Option<&Arc<Workflow>> {
        match self {
            Entry::Valid(workflow) => Some(workflow),
            Entry::Invalid { last_good, .. } => last_good.as_ref(),
        }
    }

    /// True if `other` is the same outcome: the same version served and
    /// the same problems.
    fn same_as(&self, other: &Entry) -> bool {
        let version = |e: &Entry| e.serving().map(|w| w.version().to_owned());
        let problems = |e: &Entry| match e {
            Entry::Valid(_) => Vec::new(),
            Entry::Invalid { diagnostics, .. } => {
                diagnostics.iter().map(ToString::to_string).collect()
            }
        };
        matches!(self, Entry::Valid(_)) == matches!(other, Entry::Valid(_))
            && version(self) == version(other)
            && problems(self) == problems(other)
    }
}

/// What a [`WorkflowRegistry::reload`] did.
#[derive(Debug, Clone)]
pub(crate) struct Reloaded {
    /// The folder's entry now.
    pub entry: Entry,
    /// False if the outcome is what it was before (same version, same
    /// problems): nothing to announce.
    pub changed: bool,
}

/// Folder name → entry.
pub(crate) type Snapshot = Arc<BTreeMap<String, Entry>>;

/// The workflows under one directory.
#[derive(Debug, Default)]
pub(crate) struct WorkflowRegistry {
    entries: RwLock<Snapshot>,
}

impl WorkflowRegistry {
    /// Loads every folder of `root` that holds an `orchestrator.json` (or
    /// `.yaml`/`.yml`).
    #[cfg(test)]
    pub(crate) fn load_dir(root: &Path, catalog: &dyn ToolCatalog) -> std::io::Result<Self> {
        let registry = Self::default();
        registry.load_all(root, catalog)?;
        Ok(registry)
    }

    /// Loads every folder of `root` that holds an `orchestrator` file into
    /// this registry (the server's start fills an empty one once its
    /// plugins have loaded).
    pub(crate) fn load_all(&self, root: &Path, catalog: &dyn ToolCatalog) -> std::io::Result<()> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| super::format::holds(path, ORCHESTRATOR_FILE))
            .collect();
        dirs.sort();
        for dir in dirs {
            self.reload(&dir, catalog);
        }
        Ok(())
    }

    /// The current workflows; later reloads do not change it.
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The workflow in folder `name` to serve: its valid version, or the
    /// last good one while the folder is broken.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Workflow>> {
        self.snapshot().get(name)?.serving().cloned()
    }

    /// Loads `dir` again and replaces its entry (keyed by folder name). An
    /// invalid folder keeps serving its last good version. In a registry
    /// the folder name is the workflow's name, so `workflow_name` must
    /// equal it.
    pub(crate) fn reload(&self, dir: &Path, catalog: &dyn ToolCatalog) -> Reloaded {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let entry = match load_workflow(dir, catalog) {
            Ok(workflow) if workflow.name() == name => Entry::Valid(Arc::new(workflow)),
            Ok(workflow) => {
                let diagnostic = Diagnostic::new(
                    super::format::present_or_json(dir, ORCHESTRATOR_FILE),
                    "$.workflow_name",
                    format!(
                        "workflow_name \"{}\" differs from the folder name \"{name}\"",
                        workflow.name()
                    ),
                )
                .with_help("rename one of them");
                Entry::Invalid {
                    dir: dir.to_owned(),
                    diagnostics: Arc::from(vec![diagnostic]),
                    last_good: None,
                }
            }
            Err(diagnostics) => Entry::Invalid {
                dir: dir.to_owned(),
                diagnostics: Arc::from(diagnostics),
                last_good: None,
            },
        };
        let mut guard = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let previous = guard.get(&name);
        let entry = match entry {
            Entry::Invalid {
                dir, diagnostics, ..
            } => Entry::Invalid {
                dir,
                diagnostics,
                last_good: previous.and_then(Entry::serving).cloned(),
            },
            valid => valid,
        };
        let changed = previous.is_none_or(|p| !p.same_as(&entry));
        let mut next = BTreeMap::clone(&guard);
        next.insert(name, entry.clone());
        *guard = Arc::new(next);
        Reloaded { entry, changed }
    }

    /// Removes the folder `name` (it was deleted). Returns false if it was
    /// not known. Chats already running keep the version they have.
    pub(crate) fn remove(&self, name: &str) -> bool {
        let mut guard = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if !guard.contains_key(name) {
            return false;
        }
        let mut next = BTreeMap::clone(&guard);
        next.remove(name);
        *guard = Arc::new(next);
        true
    }
}
