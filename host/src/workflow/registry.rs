//! The set of workflows under a directory, each either valid or invalid
//! with its problems, replaced atomically one folder at a time.
//!
//! Readers take a snapshot (an `Arc` of the whole map) and never see a
//! half-replaced state: a reload builds the new map beside the old one and
//! swaps the pointer. An invalid folder is listed with its diagnostics and
//! is never half-loaded.

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
pub enum Entry {
    /// It loaded.
    Valid(Arc<Workflow>),
    /// It did not; every problem found.
    Invalid {
        /// The folder.
        dir: PathBuf,
        /// What is wrong with it.
        diagnostics: Arc<[Diagnostic]>,
    },
}

/// Folder name → entry.
pub type Snapshot = Arc<BTreeMap<String, Entry>>;

/// The workflows under one directory.
#[derive(Debug, Default)]
pub struct WorkflowRegistry {
    entries: RwLock<Snapshot>,
}

impl WorkflowRegistry {
    /// Loads every folder of `root` that holds an `orchestrator.json`.
    pub fn load_dir(root: &Path, catalog: &dyn ToolCatalog) -> std::io::Result<Self> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.join(ORCHESTRATOR_FILE).is_file())
            .collect();
        dirs.sort();
        let registry = Self::default();
        for dir in dirs {
            registry.reload(&dir, catalog);
        }
        Ok(registry)
    }

    /// The current workflows; later reloads do not change it.
    pub fn snapshot(&self) -> Snapshot {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The valid workflow in folder `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Workflow>> {
        match self.snapshot().get(name)? {
            Entry::Valid(workflow) => Some(Arc::clone(workflow)),
            Entry::Invalid { .. } => None,
        }
    }

    /// Loads `dir` again and replaces its entry (keyed by folder name).
    /// Returns the new entry. In a registry the folder name is the
    /// workflow's name, so `workflow_name` must equal it.
    pub fn reload(&self, dir: &Path, catalog: &dyn ToolCatalog) -> Entry {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let entry = match load_workflow(dir, catalog) {
            Ok(workflow) if workflow.name() == name => Entry::Valid(Arc::new(workflow)),
            Ok(workflow) => {
                let diagnostic = Diagnostic::new(
                    dir.join(ORCHESTRATOR_FILE),
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
                }
            }
            Err(diagnostics) => Entry::Invalid {
                dir: dir.to_owned(),
                diagnostics: Arc::from(diagnostics),
            },
        };
        let mut guard = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = BTreeMap::clone(&guard);
        next.insert(name, entry.clone());
        *guard = Arc::new(next);
        entry
    }

    /// Removes the folder `name` (it was deleted).
    pub fn remove(&self, name: &str) {
        let mut guard = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if guard.contains_key(name) {
            let mut next = BTreeMap::clone(&guard);
            next.remove(name);
            *guard = Arc::new(next);
        }
    }
}
