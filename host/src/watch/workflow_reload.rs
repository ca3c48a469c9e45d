//! Reloading workflow folders: re-validate, swap when valid, keep the last
//! good version and list every problem when not.

use std::path::Path;
use std::time::Instant;

use super::hub::{ReloadEvent, ReloadKind, ReloadOutcome};
use super::plugin_reload::short;
use super::{Reloader, Step};
use crate::workflow::format;
use crate::workflow::load::ORCHESTRATOR_FILE;
use crate::workflow::registry::Entry;

impl Reloader {
    /// Brings workflow folder `dir` up to date with the disk.
    pub(super) fn reload_workflow(&self, dir: &Path) -> Step {
        let started = Instant::now();
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !format::holds(dir, ORCHESTRATOR_FILE) {
            let previous = self.workflows.get(&name);
            if self.workflows.remove(&name) {
                self.hub.publish(
                    ReloadEvent::new(ReloadKind::Workflow, &name, ReloadOutcome::Removed)
                        .versions(previous.map(|w| w.version().to_owned()), None)
                        .message(
                            format!(
                                "{} is gone; new chats cannot use `{name}`, chats already running keep their version",
                                dir.join(ORCHESTRATOR_FILE).display()
                            ),
                            Vec::new(),
                        ),
                );
            }
            return Step::Done;
        }
        self.load_workflow(dir, &name, started);
        Step::Done
    }

    fn load_workflow(&self, dir: &Path, name: &str, started: Instant) {
        let previous = self.workflows.get(name);
        let catalog = self.plugins.snapshot();
        let reloaded = self.workflows.reload(dir, &catalog);
        if !reloaded.changed {
            return;
        }
        let before = previous.as_ref().map(|w| w.version().to_owned());
        if let Entry::Valid(workflow) = &reloaded.entry {
            for warning in workflow.warnings() {
                tracing::warn!(workflow = name, "{warning}");
            }
        }
        let event = match &reloaded.entry {
            Entry::Valid(workflow) => {
                ReloadEvent::new(ReloadKind::Workflow, name, ReloadOutcome::Loaded)
                    .versions(before, Some(workflow.version().to_owned()))
                    .message(
                        format!(
                            "`{name}` version {} (cache_seed {}) is used by new chats, and by running chats from their next turn",
                            short(workflow.version()),
                            workflow.cache_seed()
                        ),
                        Vec::new(),
                    )
            }
            Entry::Invalid {
                diagnostics,
                last_good,
                ..
            } => {
                let keeping = match last_good {
                    Some(w) => format!("still serving version {}", short(w.version())),
                    None => "it cannot be used until it is fixed".to_owned(),
                };
                ReloadEvent::new(ReloadKind::Workflow, name, ReloadOutcome::Rejected)
                    .versions(before, last_good.as_ref().map(|w| w.version().to_owned()))
                    .message(
                        format!(
                            "`{name}` has {} problem(s); {keeping}",
                            diagnostics.iter().filter(|d| d.is_error()).count()
                        ),
                        diagnostics
                            .iter()
                            .filter(|d| d.is_error())
                            .map(ToString::to_string)
                            .collect(),
                    )
            }
        };
        self.hub.publish(event.took(started.elapsed()));
    }

    /// Validates again the workflows that may depend on plugin `id` (those
    /// that use it, and every invalid one, which may have been waiting for
    /// it), or every workflow when `id` is `None`.
    pub(super) fn revalidate_workflows(&self, id: Option<&str>) {
        let snapshot = self.workflows.snapshot();
        for (name, entry) in snapshot.iter() {
            let affected = match (id, entry) {
                (None, _) | (_, Entry::Invalid { .. }) => true,
                (Some(id), Entry::Valid(workflow)) => {
                    workflow.plugin_functions().any(|tool| tool.plugin == id)
                }
            };
            if affected {
                let dir = match entry {
                    Entry::Valid(workflow) => workflow.dir().to_owned(),
                    Entry::Invalid { dir, .. } => dir.clone(),
                };
                self.load_workflow(&dir, name, Instant::now());
            }
        }
    }
}
