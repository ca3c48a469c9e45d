//! Hot reload: a file watcher over `plugins/` and `workflows/` that swaps a
//! plugin or a workflow the moment it changes on disk, without a restart.
//!
//! ```text
//! notify ──paths──▶ classify ──▶ debounce (quiet period per folder)
//!                                   │
//!                ┌──────────────────┼──────────────────┐
//!                ▼                  ▼                  ▼
//!          plugin folder      workflow folder     plugin sources (dev)
//!   read ▸ compile ▸ gate     validate              build script
//!   ▸ swap | keep last good   ▸ swap | keep last    ▸ writes the .wasm,
//!                               good                  which reloads
//!                └──────────────────┴──────────────────┘
//!                                   ▼
//!                 ReloadHub: log, GET /api/reloads, clients
//! ```
//!
//! Folders are handled one at a time, in the order their changes settle.
//! A component that does not parse to its end and was written in the last
//! few seconds is still being written: the watcher looks again shortly
//! instead of reporting it broken. Compilation runs on the blocking pool.

mod build;
pub(crate) mod debounce;
pub(crate) mod gate;
pub(crate) mod hub;
mod plugin_reload;
mod workflow_reload;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mozaiks_plugin_host::PluginEngine;
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::plugin_set::PluginSet;
use crate::workflow::WorkflowRegistry;
use build::Builder;
use debounce::{ChangedFolder, Debouncer, Roots};
pub use gate::GateSettings;
pub(crate) use hub::ReloadHub;

/// How long a folder must be quiet before it is reloaded.
pub const DEFAULT_QUIET: Duration = Duration::from_millis(200);

/// How the watcher behaves.
#[derive(Debug, Clone)]
pub(crate) struct WatchSettings {
    /// The plugins directory.
    pub plugins_dir: PathBuf,
    /// The workflows directory.
    pub workflows_dir: PathBuf,
    /// Quiet period per folder before a reload.
    pub quiet: Duration,
    /// What the reload gate allows.
    pub gate: GateSettings,
    /// `mozaiks dev`: rebuild plugins whose sources change, with this
    /// script (the SDK's `build-plugin`).
    pub build_script: Option<PathBuf>,
    /// `mozaiks dev`: the command that rebuilds a plugin folder of another
    /// language than Rust (the folder is appended); empty for none.
    pub tool_build_command: Vec<std::ffi::OsString>,
}

/// What handling a folder led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Handled (reloaded, refused or removed).
    Done,
    /// A writer is still busy; look again after this long.
    Wait(Duration),
}

/// Reloads plugins and workflows into the sets the server serves from.
#[derive(Debug)]
pub(crate) struct Reloader {
    engine: PluginEngine,
    plugins: Arc<PluginSet>,
    workflows: Arc<WorkflowRegistry>,
    hub: Arc<ReloadHub>,
    settings: WatchSettings,
}

/// The running watcher; dropping it does not stop it (the server watches
/// until it exits), `stop` does (the tests).
#[derive(Debug)]
pub(crate) struct WatchHandle {
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by `stop`, which only the tests call")
    )]
    task: JoinHandle<()>,
}

impl WatchHandle {
    /// Stops watching.
    #[cfg(test)]
    pub(crate) fn stop(self) {
        self.task.abort();
    }
}

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {path}: {source}")]
pub struct WatchError {
    path: PathBuf,
    #[source]
    source: notify::Error,
}

impl Reloader {
    /// A reloader over these sets.
    pub(crate) fn new(
        engine: PluginEngine,
        plugins: Arc<PluginSet>,
        workflows: Arc<WorkflowRegistry>,
        hub: Arc<ReloadHub>,
        settings: WatchSettings,
    ) -> Self {
        Self {
            engine,
            plugins,
            workflows,
            hub,
            settings,
        }
    }

    /// Handles the changes of one folder now (the watcher calls this after
    /// the quiet period; tests and tools may call it directly).
    pub(crate) async fn reload(&self, target: &ChangedFolder) -> Step {
        match target {
            ChangedFolder::Plugin(dir) => self.reload_plugin(dir).await,
            ChangedFolder::Workflow(dir) => self.reload_workflow(dir),
            ChangedFolder::Source(_) => Step::Done,
        }
    }

    /// Starts watching both directories.
    pub(crate) fn spawn(self) -> Result<WatchHandle, WatchError> {
        let roots = Roots {
            plugins: self.settings.plugins_dir.clone(),
            workflows: self.settings.workflows_dir.clone(),
            sources: self.settings.build_script.is_some(),
        };
        let (sender, mut changes) = mpsc::unbounded_channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) if counts(&event.kind) => {
                    for path in event.paths {
                        let _ = sender.send(path);
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "file watcher error"),
            })
            .map_err(|source| WatchError {
                path: roots.plugins.clone(),
                source,
            })?;
        for dir in [&roots.plugins, &roots.workflows] {
            watcher
                .watch(dir, RecursiveMode::Recursive)
                .map_err(|source| WatchError {
                    path: dir.clone(),
                    source,
                })?;
        }
        let builder = self.settings.build_script.clone().map(|script| {
            Builder::spawn(
                script,
                self.settings.tool_build_command.clone(),
                Arc::clone(&self.hub),
            )
        });
        tracing::info!(
            plugins = %roots.plugins.display(),
            workflows = %roots.workflows.display(),
            rebuild_sources = roots.sources,
            "watching for changes"
        );
        let reloader = Arc::new(self);
        let task = tokio::spawn(async move {
            // The watcher stops when dropped: keep it for the task's life.
            let _watcher = watcher;
            let mut debouncer = Debouncer::new(reloader.settings.quiet);
            // Plugin folders being compiled, each in a task of its own so a
            // slow one holds up no other; a change that comes meanwhile is
            // handled once that folder's reload is done.
            let (prepared_tx, mut prepared) =
                mpsc::unbounded_channel::<(PathBuf, plugin_reload::Prepared)>();
            let mut in_flight: HashSet<PathBuf> = HashSet::new();
            let mut again: HashSet<PathBuf> = HashSet::new();
            loop {
                let next = debouncer.next_due();
                tokio::select! {
                    change = changes.recv() => {
                        let Some(path) = change else { break };
                        // Source targets only come when a builder exists.
                        if let Some(target) = debounce::classify(&path, &roots) {
                            debouncer.touch(target, Instant::now());
                        }
                    }
                    Some((dir, result)) = prepared.recv() => {
                        in_flight.remove(&dir);
                        let step = reloader.commit_plugin(&dir, result);
                        let target = ChangedFolder::Plugin(dir);
                        if let Step::Wait(delay) = step {
                            debouncer.defer(target, Instant::now() + delay);
                        } else if let ChangedFolder::Plugin(dir) = &target
                            && again.remove(dir)
                        {
                            debouncer.touch(target, Instant::now());
                        }
                    }
                    () = sleep_until(next) => {
                        for target in debouncer.take_due(Instant::now()) {
                            match (&target, &builder) {
                                (ChangedFolder::Source(dir), Some(builder)) => {
                                    builder.request(dir.clone());
                                }
                                (ChangedFolder::Plugin(dir), _) => {
                                    if !in_flight.insert(dir.clone()) {
                                        again.insert(dir.clone());
                                        continue;
                                    }
                                    let (reloader, sender, dir) =
                                        (Arc::clone(&reloader), prepared_tx.clone(), dir.clone());
                                    tokio::spawn(async move {
                                        let result = reloader.prepare_plugin(&dir).await;
                                        let _ = sender.send((dir, result));
                                    });
                                }
                                _ => {
                                    if let Step::Wait(delay) = reloader.reload(&target).await {
                                        debouncer.defer(target, Instant::now() + delay);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
        Ok(WatchHandle { task })
    }
}

/// File events that may change what the server reads: not reads, and not
/// a writer's open.
fn counts(kind: &EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Makes `dir` absolute, so watcher paths and the folders the sets know
/// compare equal.
pub(crate) fn absolute(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or_else(|_| dir.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin_dir::tests::rendezvous;
    use hub::ReloadOutcome;

    /// The waiter's folder changes first; while its new version waits in
    /// `describe()` for the signaller, the signaller's folder changes. Only
    /// a watcher that reloads folders independently loads both.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_plugin_reload_holds_up_no_other() {
        let root = std::env::temp_dir().join(format!("mozaiks-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (plugins_dir, workflows_dir, meeting) = (
            root.join("plugins"),
            root.join("workflows"),
            root.join("meeting"),
        );
        for dir in [&plugins_dir, &workflows_dir, &meeting] {
            std::fs::create_dir_all(dir).unwrap();
        }
        // The component is compiled once, before the race: a compile that
        // a loaded machine makes slow must not eat the waiter's describe
        // deadline (2 s) while it spins, which is not what this tests.
        let engine = PluginEngine::new(mozaiks_plugin_host::EngineConfig {
            cache_dir: Some(root.join("cache")),
            ..Default::default()
        })
        .unwrap();
        let (warm, warm_meeting) = (root.join("warm"), root.join("warm-meeting"));
        std::fs::create_dir_all(&warm_meeting).unwrap();
        rendezvous(&warm, "warm", "signal", &warm_meeting);
        let (loaded, failed) = crate::plugin_dir::load_all(&engine, &warm).await.unwrap();
        assert!(failed.is_empty() && loaded.len() == 1);
        let plugins = Arc::new(PluginSet::new());
        let workflows =
            Arc::new(WorkflowRegistry::load_dir(&workflows_dir, &plugins.snapshot()).unwrap());
        let hub = Arc::new(ReloadHub::new());
        let mut reloads = hub.subscribe();
        let settings = WatchSettings {
            plugins_dir: plugins_dir.clone(),
            workflows_dir,
            quiet: Duration::from_millis(100),
            gate: GateSettings::default(),
            build_script: None,
            tool_build_command: Vec::new(),
        };
        let watch = Reloader::new(engine, plugins, workflows, Arc::clone(&hub), settings)
            .spawn()
            .unwrap();

        rendezvous(&plugins_dir, "waiter", "wait", &meeting);
        // Let the waiter's reload start first (ordering, not a time limit).
        tokio::time::sleep(Duration::from_millis(300)).await;
        rendezvous(&plugins_dir, "signaller", "signal", &meeting);

        let mut outcomes = std::collections::BTreeMap::new();
        while outcomes.len() < 2 {
            let event = tokio::time::timeout(Duration::from_secs(60), reloads.recv())
                .await
                .expect("both reloads end")
                .unwrap();
            if event.outcome != ReloadOutcome::Removed {
                outcomes.insert(event.name.clone(), (event.outcome, event.message.clone()));
            }
        }
        watch.stop();
        let _ = std::fs::remove_dir_all(&root);
        for (name, (outcome, message)) in &outcomes {
            assert_eq!(*outcome, ReloadOutcome::Loaded, "{name}: {message}");
        }
    }
}
