//! Reloading one plugin folder: read, compile, gate, swap, or keep the last
//! good version and say why.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use mozaiks_plugin_host::{MANIFEST_FILE, Manifest, Plugin, content_hash, is_truncated};

use super::gate::{self, Needed};
use super::hub::{ReloadEvent, ReloadKind, ReloadOutcome};
use super::{Reloader, Step};
use crate::workflow::model::Tool;

/// A component modified this recently that does not parse to its end is
/// taken to be still being written.
const STILL_WRITING: Duration = Duration::from_secs(5);
/// How long to wait before looking at a half-written component again.
const RECHECK: Duration = Duration::from_millis(250);

/// The slow half of a plugin reload, done: what is left to decide.
pub(crate) enum Prepared {
    /// Nothing left to do (unchanged, removed, or refused already).
    Finished(Step),
    /// A new version compiled, or failed to: gate it and swap it in, or
    /// refuse it.
    Loaded {
        id: String,
        served: Option<Plugin>,
        candidate: Result<Plugin, mozaiks_plugin_host::LoadError>,
        started: Instant,
    },
}

impl Reloader {
    /// Brings plugin folder `dir` up to date with the disk.
    pub(super) async fn reload_plugin(&self, dir: &Path) -> Step {
        let prepared = self.prepare_plugin(dir).await;
        self.commit_plugin(dir, prepared)
    }

    /// Reads, compiles and describes the new version of plugin folder
    /// `dir`: the part that takes time and touches no other folder, so the
    /// watcher runs it for several folders at once.
    pub(super) async fn prepare_plugin(&self, dir: &Path) -> Prepared {
        let started = Instant::now();
        let folder = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let previous = self.plugins.snapshot().slot_of_dir(dir).cloned();
        let served = previous.as_ref().and_then(|slot| slot.current.clone());
        let manifest_path = dir.join(MANIFEST_FILE);
        if !manifest_path.is_file() {
            let what = if dir.is_dir() {
                format!("{} was deleted", manifest_path.display())
            } else {
                format!("the folder {} was deleted", dir.display())
            };
            self.remove_plugin(dir, &folder, served.as_ref(), what);
            return Prepared::Finished(Step::Done);
        }
        let manifest = match Manifest::read(&manifest_path) {
            Ok(manifest) => manifest,
            Err(error) => {
                self.refuse(
                    dir,
                    &folder,
                    served.as_ref(),
                    error.to_string(),
                    Vec::new(),
                    started,
                );
                return Prepared::Finished(Step::Done);
            }
        };
        let id = manifest.id.clone();
        let wasm_path = dir.join(format!("{id}.wasm"));
        let read = {
            let wasm_path = wasm_path.clone();
            tokio::task::spawn_blocking(move || read_component(&wasm_path)).await
        };
        let component = match read {
            Ok(Ok(component)) => component,
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => {
                let what = format!("{} was deleted", wasm_path.display());
                if served.is_some() {
                    self.remove_plugin(dir, &id, served.as_ref(), what);
                } else {
                    let message = format!(
                        "{} does not exist; build the plugin first: sdk/build-plugin {}",
                        wasm_path.display(),
                        dir.display()
                    );
                    self.refuse(dir, &id, None, message, Vec::new(), started);
                }
                return Prepared::Finished(Step::Done);
            }
            Ok(Err(error)) => {
                let message = format!("cannot read {}: {error}", wasm_path.display());
                self.refuse(dir, &id, served.as_ref(), message, Vec::new(), started);
                return Prepared::Finished(Step::Done);
            }
            Err(join) => {
                let message = format!("reading {} failed: {join}", wasm_path.display());
                self.refuse(dir, &id, served.as_ref(), message, Vec::new(), started);
                return Prepared::Finished(Step::Done);
            }
        };
        if component.still_being_written {
            tracing::debug!(plugin = %id, bytes = component.bytes.len(), "component still being written; waiting");
            return Prepared::Finished(Step::Wait(RECHECK));
        }
        let bytes = component.bytes;
        if let Some(old) = &served {
            let unchanged = old.hash() == component.hash && *old.manifest() == manifest;
            let status_ok = previous
                .as_ref()
                .is_some_and(|s| s.status == crate::plugin_set::PluginStatus::Loaded);
            if unchanged && status_ok {
                return Prepared::Finished(Step::Done);
            }
        }
        let candidate = self
            .engine
            .load_bytes(manifest, manifest_path, wasm_path, bytes)
            .await;
        Prepared::Loaded {
            id,
            served,
            candidate,
            started,
        }
    }

    /// Decides on a prepared reload of `dir`: gate it, swap it in and
    /// revalidate the workflows, or refuse it. Runs on the watcher's task,
    /// one folder at a time.
    pub(super) fn commit_plugin(&self, dir: &Path, prepared: Prepared) -> Step {
        let (id, served, candidate, started) = match prepared {
            Prepared::Finished(step) => return step,
            Prepared::Loaded {
                id,
                served,
                candidate,
                started,
            } => (id, served, candidate, started),
        };
        let plugin = match candidate {
            Ok(plugin) => plugin,
            Err(error) => {
                self.refuse(
                    dir,
                    &id,
                    served.as_ref(),
                    error.to_string(),
                    Vec::new(),
                    started,
                );
                return Step::Done;
            }
        };
        let problems = self.gate(served.as_ref(), &plugin);
        if !problems.is_empty() {
            let message = format!(
                "the new version of `{id}` was refused by the reload gate ({} problem(s))",
                problems.len()
            );
            self.refuse(dir, &id, served.as_ref(), message, problems, started);
            return Step::Done;
        }
        crate::telemetry::metrics().instantiation(&id, plugin.compile_time());
        self.plugins.install(dir, plugin.clone());
        // The version replaced is no longer used: its compiled code may go.
        tokio::spawn(crate::plugin_set::prune_component_cache(
            self.engine.clone(),
            std::sync::Arc::clone(&self.plugins),
        ));
        let message = format!(
            "`{id}` {} ({}) serves {} function(s); compiled in {:.0} ms{}",
            plugin.manifest().version,
            short(plugin.hash()),
            plugin.functions().count(),
            plugin.compile_time().as_secs_f64() * 1000.0,
            if plugin.cache_outcome() == mozaiks_plugin_host::CacheOutcome::Hit {
                " (from the cache)"
            } else {
                ""
            }
        );
        self.hub.publish(
            ReloadEvent::new(ReloadKind::Plugin, &id, ReloadOutcome::Loaded)
                .versions(
                    served.map(|p| p.hash().to_owned()),
                    Some(plugin.hash().to_owned()),
                )
                .message(message, Vec::new())
                .took(started.elapsed()),
        );
        self.revalidate_workflows(Some(&id));
        Step::Done
    }

    /// Why `candidate` may not replace `served`.
    fn gate(&self, served: Option<&Plugin>, candidate: &Plugin) -> Vec<String> {
        let needed = self.needed(candidate.id());
        let offered: Vec<_> = candidate.functions().collect();
        let mut problems = gate::check_functions(&needed, &offered);
        if let Some(old) = served
            && !self.settings.gate.allow_new_capabilities
        {
            problems.extend(
                gate::check_capabilities(
                    &old.manifest().capabilities,
                    &candidate.manifest().capabilities,
                )
                .into_iter()
                .map(|p| {
                    format!("{MANIFEST_FILE} {p}; an operator allows that with MOZAIKS_RELOAD_ALLOW_NEW_CAPABILITIES=true")
                }),
            );
        }
        problems
    }

    /// The functions of plugin `id` that the served workflows use (as
    /// tools, lifecycle tools or hooks).
    fn needed(&self, id: &str) -> Vec<Needed> {
        let snapshot = self.workflows.snapshot();
        let mut needed = Vec::new();
        for workflow in snapshot.values().filter_map(|entry| entry.serving()) {
            for tool in workflow
                .plugin_functions()
                .filter(|t: &Tool| t.plugin == id)
            {
                needed.push(Needed {
                    workflow: workflow.name().to_owned(),
                    tool: tool.name.clone(),
                    function: tool.function.clone(),
                    parameters: tool.parameters.clone(),
                });
            }
        }
        needed
    }

    fn refuse(
        &self,
        dir: &Path,
        id: &str,
        served: Option<&Plugin>,
        message: String,
        errors: Vec<String>,
        started: Instant,
    ) {
        let mut full = message.clone();
        for error in &errors {
            full.push_str("; ");
            full.push_str(error);
        }
        self.plugins.record_failure(dir, id, full);
        let keeping = match served {
            Some(plugin) => format!("; still serving {}", short(plugin.hash())),
            None => "; nothing is served for it".to_owned(),
        };
        let errors = if errors.is_empty() {
            vec![message.clone()]
        } else {
            errors
        };
        self.hub.publish(
            ReloadEvent::new(ReloadKind::Plugin, id, ReloadOutcome::Rejected)
                .versions(
                    served.map(|p| p.hash().to_owned()),
                    served.map(|p| p.hash().to_owned()),
                )
                .message(format!("{message}{keeping}"), errors)
                .took(started.elapsed()),
        );
    }

    fn remove_plugin(&self, dir: &Path, id: &str, served: Option<&Plugin>, what: String) {
        if !self.plugins.mark_removed(dir) {
            return;
        }
        self.hub.publish(
            ReloadEvent::new(ReloadKind::Plugin, id, ReloadOutcome::Removed)
                .versions(served.map(|p| p.hash().to_owned()), None)
                .message(
                    format!("{what}; the tools of `{id}` are unavailable until it is back"),
                    Vec::new(),
                ),
        );
        self.revalidate_workflows(Some(id));
    }
}

/// A component file as read from disk.
struct ReadComponent {
    bytes: Vec<u8>,
    hash: String,
    /// It does not parse to its end and was written a moment ago.
    still_being_written: bool,
}

/// Reads, checks and hashes a component: file I/O and a pass over a few
/// MiB, so it runs on the blocking pool.
fn read_component(path: &Path) -> std::io::Result<ReadComponent> {
    let bytes = std::fs::read(path)?;
    let still_being_written = is_truncated(&bytes) && modified_within(path, STILL_WRITING);
    let hash = content_hash(&bytes);
    Ok(ReadComponent {
        bytes,
        hash,
        still_being_written,
    })
}

fn modified_within(path: &Path, window: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|at| SystemTime::now().duration_since(at).ok())
        .is_none_or(|age| age < window)
}

/// The first 12 hex digits of a hash, for messages.
pub(super) fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
