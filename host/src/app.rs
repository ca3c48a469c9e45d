//! Wiring: builds the server's parts from a [`ServeConfig`] and serves the
//! API on a listener until a shutdown future resolves (the mini-redis
//! shape: the caller owns the listener, so tests bind port 0).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mozaiks_plugin_host::{Compiler, EngineConfig, Plugin, PluginEngine};
use tokio::net::TcpListener;

use crate::llm::{LlmClient, LlmConfig};
use crate::maintenance::{self, MaintenanceConfig, StoreHealth};
use crate::orchestrator::{ClusterError, ClusterSettings, Orchestrator};
use crate::plugin_dir;
use crate::plugin_set::{PluginSet, Unavailable};
use crate::store::{ChatStore, StoreConfig, StoreError};
use crate::transport;
use crate::transport::cluster::ClusterView;
use crate::transport::sockets::OpenSockets;
use crate::transport::state::WebState;
use crate::watch::{self, GateSettings, ReloadHub, Reloader, WatchSettings};
use crate::workflow::registry::Entry;
use crate::workflow::{Workflow, WorkflowRegistry};

/// What `mozaiks serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Folder of workflow folders.
    pub workflows_dir: PathBuf,
    /// Folder of plugin folders.
    pub plugins_dir: PathBuf,
    /// Where chats are kept.
    pub store: StoreConfig,
    /// The LLM endpoint.
    pub llm: LlmConfig,
    /// Where compiled components are kept between runs (`None`: compile
    /// at every start).
    pub component_cache: Option<PathBuf>,
    /// Hot reload.
    pub reload: ReloadConfig,
    /// Instance slots for tool calls: in all and per plugin.
    pub plugin_slots: PluginSlots,
    /// Where plugins are compiled: `mozaiks serve` runs itself as a
    /// compiler process under the compile limits.
    pub compiler: Compiler,
    /// Outbound HTTP of tools: the extra CA files `https` trusts.
    pub outbound: mozaiks_plugin_host::OutboundConfig,
    /// The secrets directory: plugin `<id>`'s secrets are the files of
    /// `<dir>/plugins/<id>/`. `None`: tools get no secrets.
    pub secrets_dir: Option<PathBuf>,
}

/// How many tool calls may run at once (each holds one instance slot, also
/// while it waits for the user).
#[derive(Debug, Clone, Copy)]
pub struct PluginSlots {
    /// Across all plugins.
    pub total: u32,
    /// Of one plugin.
    pub per_plugin: u32,
}

impl Default for PluginSlots {
    fn default() -> Self {
        Self {
            total: mozaiks_plugin_host::DEFAULT_MAX_CONCURRENT_CALLS,
            per_plugin: mozaiks_plugin_host::DEFAULT_MAX_CALLS_PER_PLUGIN,
        }
    }
}

/// Hot reload of plugins and workflows.
#[derive(Debug, Clone)]
pub struct ReloadConfig {
    /// Watch the directories (on by default).
    pub watch: bool,
    /// What the reload gate allows.
    pub gate: GateSettings,
    /// Rebuild plugins whose Rust sources change with this script
    /// (`mozaiks dev`).
    pub build_script: Option<PathBuf>,
    /// With `build_script`: the command (program, then arguments) that
    /// rebuilds a plugin folder of another language when its sources
    /// change; the folder is appended. `mozaiks dev` gives its own
    /// `tool build`. Empty: only Rust plugins are rebuilt.
    pub tool_build_command: Vec<std::ffi::OsString>,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            watch: true,
            gate: GateSettings::default(),
            build_script: None,
            tool_build_command: Vec::new(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The WebAssembly engine could not be created.
    #[error("creating the plugin engine: {0}")]
    Engine(String),
    /// A directory could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(#[source] std::io::Error),
    /// The directories could not be watched.
    #[error(transparent)]
    Watch(#[from] watch::WatchError),
    /// This server cannot join the others on its database.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The first load of plugins and workflows stopped abnormally.
    #[error("loading plugins and workflows: {0}")]
    FirstLoad(String),
}

/// A built server, not yet serving: the chat API and the parts the web
/// layer and the background jobs use beside it ([`serve`] hands them out).
#[derive(Debug, Clone)]
pub struct Server {
    orchestrator: Orchestrator,
    store: Arc<dyn ChatStore>,
    llm: LlmClient,
    workflows: Arc<WorkflowRegistry>,
    plugins: Arc<PluginSet>,
    reloads: Arc<ReloadHub>,
}

impl Server {
    /// The chat API: create chats, send input, answer UI requests, end.
    pub fn orchestrator(&self) -> &Orchestrator {
        &self.orchestrator
    }

    /// The store the chats are kept in.
    pub fn store(&self) -> &Arc<dyn ChatStore> {
        &self.store
    }

    /// The LLM client the runs use.
    pub fn llm(&self) -> &LlmClient {
        &self.llm
    }

    /// The version of workflow `name` a new chat would use.
    pub fn workflow(&self, name: &str) -> Option<Arc<Workflow>> {
        self.workflows.get(name)
    }

    /// The version of plugin `id` a call would use now.
    pub fn plugin(&self, id: &str) -> Result<Plugin, Unavailable> {
        self.plugins.plugin(id)
    }

    /// Unloads a run that has waited `limit` for its user (or for a
    /// speaker pick): its task and transcript leave memory, and its chat too
    /// once no client holds it; the next input starts the run again from the
    /// chat's log. `None` (the default) keeps runs.
    pub fn set_idle_unload(&self, limit: Option<Duration>) {
        self.orchestrator.set_idle_unload(limit);
    }

    /// The quotas of the per-app data tools keep (`MOZAIKS_DATA_*`); the
    /// defaults of [`mozaiks_plugin_host::DataLimits`] until set.
    pub fn set_data_limits(&self, limits: mozaiks_plugin_host::DataLimits) {
        self.orchestrator.set_data_limits(limits);
    }
}

/// Loads plugins and workflows, opens the store and returns the server's
/// parts. Unless turned off, starts watching the plugin and workflow
/// directories for changes. Interrupted chats resume once [`serve`]'s store
/// monitor finds the store answering. [`start`], then waiting for its
/// first load.
pub async fn build(config: &ServeConfig) -> Result<Server, StartupError> {
    let (server, first_load) = start(config).await?;
    first_load.finish().await?;
    Ok(server)
}

/// The server's first load of its plugins and workflows, running in the
/// background (see [`start`]).
#[derive(Debug)]
pub struct FirstLoad(tokio::task::JoinHandle<Result<(), StartupError>>);

impl FirstLoad {
    /// Waits for it to finish: the plugins loaded (or failed, each
    /// recorded), the workflows checked against them, the watcher started.
    pub async fn finish(self) -> Result<(), StartupError> {
        self.0
            .await
            .map_err(|e| StartupError::FirstLoad(e.to_string()))?
    }
}

/// Opens the store and returns the server's parts at once, with the plugins
/// and workflows loading in the background ([`FirstLoad`]), so that the
/// caller can listen before a slow plugin has compiled. Until the first
/// load finishes, `PluginSet::loading` lists the plugins not loaded
/// yet, the registry has no workflows, and `/health/ready` says
/// `loading` (the transport makes chat requests wait for it).
/// What can fail at once (the engine, the directories, the store) fails
/// here, before anything listens.
pub async fn start(config: &ServeConfig) -> Result<(Server, FirstLoad), StartupError> {
    let engine = PluginEngine::new(EngineConfig {
        cache_dir: config.component_cache.clone(),
        max_concurrent_calls: config.plugin_slots.total,
        max_calls_per_plugin: config.plugin_slots.per_plugin,
        compiler: config.compiler.clone(),
        outbound: config.outbound.clone(),
    })
    .map_err(|e| StartupError::Engine(e.to_string()))?;
    let slots = engine.slots();
    crate::telemetry::metrics().plugin_slots(slots.total, slots.per_plugin);
    let plugins_dir = watch::absolute(&config.plugins_dir);
    let workflows_dir = watch::absolute(&config.workflows_dir);
    let folders = plugin_dir::folders(&plugins_dir).map_err(|source| StartupError::Read {
        path: plugins_dir.clone(),
        source,
    })?;
    std::fs::read_dir(&workflows_dir).map_err(|source| StartupError::Read {
        path: config.workflows_dir.clone(),
        source,
    })?;
    let plugins = Arc::new(PluginSet::new());
    plugins.begin_first_load(folders.iter().map(|dir| folder_name(dir)));
    let workflows = Arc::new(WorkflowRegistry::default());
    let store = config.store.open().await?;
    let llm = LlmClient::new(config.llm.clone());
    if let Some(missing) = llm.missing_configuration() {
        tracing::warn!(
            "no LLM configured: set {missing} (or OPENAI_BASE_URL for a local server); chats will report LLM_NOT_CONFIGURED"
        );
    }
    let reloads = Arc::new(ReloadHub::new());
    let orchestrator = Orchestrator::new(
        Arc::clone(&store),
        llm.clone(),
        config.llm.default_timeout,
        Arc::clone(&workflows),
        Arc::clone(&plugins),
    );
    if let Some(dir) = &config.secrets_dir {
        orchestrator.set_plugin_secrets(Arc::new(crate::plugin_secrets::DirSecrets::new(dir)));
    }
    let server = Server {
        orchestrator,
        store,
        llm,
        workflows: Arc::clone(&workflows),
        plugins: Arc::clone(&plugins),
        reloads: Arc::clone(&reloads),
    };
    let first_load = FirstLoad(tokio::spawn(load_first(
        engine,
        folders,
        plugins,
        workflows,
        reloads,
        WatchSettings {
            plugins_dir,
            workflows_dir,
            quiet: watch::DEFAULT_QUIET,
            gate: config.reload.gate,
            build_script: config.reload.build_script.clone(),
            tool_build_command: config.reload.tool_build_command.clone(),
        },
        config.reload.watch,
    )));
    Ok((server, first_load))
}

/// The first load: every plugin folder at once (each recorded as it
/// finishes), then the workflows against them, then the watcher.
async fn load_first(
    engine: PluginEngine,
    folders: Vec<PathBuf>,
    plugins: Arc<PluginSet>,
    workflows: Arc<WorkflowRegistry>,
    reloads: Arc<ReloadHub>,
    settings: WatchSettings,
    watch: bool,
) -> Result<(), StartupError> {
    load_plugins(&engine, &settings.plugins_dir, folders, &plugins).await;
    workflows
        .load_all(&settings.workflows_dir, &plugins.snapshot())
        .map_err(|source| StartupError::Read {
            path: settings.workflows_dir.clone(),
            source,
        })?;
    log_workflows(&workflows);
    if watch {
        Reloader::new(
            engine.clone(),
            Arc::clone(&plugins),
            workflows,
            reloads,
            settings,
        )
        .spawn()?;
    }
    plugins.finish_first_load();
    tracing::info!("plugins and workflows loaded");
    crate::plugin_set::prune_component_cache(engine, plugins).await;
    Ok(())
}

/// A plugin folder's name: what [`PluginSet::loading`] lists.
fn folder_name(dir: &std::path::Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Loads every plugin folder at once, recording each in `set` as it
/// finishes; one that fails is listed with its error.
async fn load_plugins(
    engine: &PluginEngine,
    plugins_dir: &std::path::Path,
    folders: Vec<PathBuf>,
    set: &PluginSet,
) {
    let loads = folders.into_iter().map(|dir| async move {
        match plugin_dir::load_folder(engine, &dir, plugins_dir).await {
            Ok(plugin) => {
                tracing::info!(
                    plugin = plugin.id(),
                    hash = &plugin.hash()[..12],
                    compile_ms = plugin.compile_time().as_millis(),
                    cache = ?plugin.cache_outcome(),
                    "plugin loaded"
                );
                crate::telemetry::metrics().instantiation(plugin.id(), plugin.compile_time());
                set.install(&dir, plugin);
            }
            Err(error) => {
                tracing::error!(plugin = %dir.display(), %error, "plugin not loaded; workflows using it are invalid");
                set.record_failure(&dir, &folder_name(&dir), error.to_string());
            }
        }
        set.first_load_done(&folder_name(&dir));
    });
    futures_util::future::join_all(loads).await;
}

fn log_workflows(workflows: &WorkflowRegistry) {
    for (name, entry) in workflows.snapshot().iter() {
        match entry {
            Entry::Valid(workflow) => {
                tracing::info!(
                    workflow = name,
                    agents = workflow.agents().len(),
                    "workflow loaded"
                );
                for warning in workflow.warnings() {
                    tracing::warn!(workflow = name, "{warning}");
                }
            }
            Entry::Invalid { diagnostics, .. } => {
                for diagnostic in diagnostics.iter() {
                    if diagnostic.is_error() {
                        tracing::error!(workflow = name, "{diagnostic}");
                    } else {
                        tracing::warn!(workflow = name, "{diagnostic}");
                    }
                }
            }
        }
    }
}

/// How [`serve`] exposes the API, runs its jobs and stops.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Authentication, CORS, body limit.
    pub http: transport::HttpOptions,
    /// The background jobs.
    pub maintenance: MaintenanceConfig,
    /// Bound on a graceful shutdown.
    pub shutdown_grace: Duration,
    /// Several servers on one database (`MOZAIKS_CLUSTER`, …).
    pub cluster: ClusterSettings,
}

/// The part of the shutdown bound kept for telling the sockets and
/// finishing requests, whatever the runs are doing: half the bound, at
/// most this.
const NOTICE_RESERVE: Duration = Duration::from_secs(2);

/// This server as `GET /api/cluster` describes it: its id, address and
/// start, and the store's shared state when cluster mode is on.
fn cluster_view(
    listener: &TcpListener,
    store: &Arc<dyn ChatStore>,
    settings: &ClusterSettings,
) -> ClusterView {
    let address = listener
        .local_addr()
        .map_or_else(|_| String::new(), |addr| addr.to_string());
    ClusterView {
        // As `Orchestrator::join_cluster` names it.
        server_id: settings.server_id.clone().unwrap_or_else(|| {
            let port = listener.local_addr().map_or(0, |addr| addr.port());
            format!("{}:{port}", crate::orchestrator::hostname())
        }),
        address,
        started_at: crate::plugin_set::ms(std::time::SystemTime::now()),
        lease_ttl_ms: u64::try_from(settings.lease.as_millis()).unwrap_or(u64::MAX),
        shared: if settings.enabled {
            store.cluster()
        } else {
            None
        },
    }
}

/// Serves the API of `parts` on `listener` until `shutdown`, with
/// the background jobs (`maintenance`): the store monitor, which also
/// resumes the chats that were running when the server last stopped, and
/// the retention job.
///
/// When `shutdown` resolves, within `options.shutdown_grace` in all: new
/// requests are answered 503 `SHUTTING_DOWN` (the listener stays open so
/// clients are told, not refused); every run stops at its next stored
/// point, for at most the bound less a reserve (`NOTICE_RESERVE`); then
/// every chat socket is told and closed (code 1012) even if a run is still
/// busy; requests in flight finish; the listener closes
/// (`orchestrator/drain.rs`).
pub async fn serve(
    listener: TcpListener,
    parts: Server,
    options: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let health = StoreHealth::default();
    let orchestrator = parts.orchestrator.clone();
    let address = listener.local_addr().map_err(StartupError::Serve)?;
    // In cluster mode, before the store monitor resumes runs: a run starts
    // only under its chat's lease. A single server starts its monitor
    // first, as it always has, so that a store that does not answer is
    // reported at once; the guard then refuses it all the same.
    if options.cluster.enabled {
        orchestrator.join_cluster(&options.cluster, address).await?;
    }
    let jobs = maintenance::spawn(
        &orchestrator,
        &parts.store,
        &parts.plugins,
        &health,
        &options.maintenance,
    );
    if !options.cluster.enabled
        && let Err(error) = orchestrator.join_cluster(&options.cluster, address).await
    {
        for job in jobs {
            job.abort();
        }
        return Err(error.into());
    }
    let cluster_jobs = orchestrator.cluster_jobs();
    let (stop_accepting, stop) = tokio::sync::oneshot::channel::<()>();
    let sockets = OpenSockets::default();
    let cluster = cluster_view(&listener, &parts.store, &options.cluster);
    let web = WebState {
        chats: parts.orchestrator,
        store: parts.store,
        workflows: parts.workflows,
        plugins: parts.plugins,
        reloads: parts.reloads,
        health,
        llm_missing: parts.llm.missing_configuration(),
        sockets: sockets.clone(),
        compat_starts: Arc::default(),
        cluster: Arc::new(cluster),
    };
    let server = axum::serve(listener, transport::app(web, &options.http)).with_graceful_shutdown(
        async move {
            let _ = stop.await;
        },
    );
    let mut server = tokio::spawn(std::future::IntoFuture::into_future(server));
    let served = tokio::select! {
        biased;
        () = shutdown => None,
        served = &mut server => Some(served),
    };
    if let Some(served) = served {
        for job in jobs.into_iter().chain(cluster_jobs) {
            job.abort();
        }
        return served
            .map_err(|e| StartupError::Serve(std::io::Error::other(e)))?
            .map_err(StartupError::Serve);
    }
    let grace = options.shutdown_grace;
    let deadline = tokio::time::Instant::now() + grace;
    let reserve = (grace / 2).min(NOTICE_RESERVE);
    tracing::info!(
        ?grace,
        "shutting down: new requests get 503; runs stop at their next stored point"
    );
    let drained = orchestrator.drain(grace.saturating_sub(reserve)).await;
    if drained.abandoned.is_empty() {
        tracing::info!("every run stopped at a stored point");
    } else {
        tracing::warn!(chats = ?drained.abandoned, "runs still busy at the shutdown bound; their step is redone on the next start");
    }
    // Several servers: the others take the active chats over at once.
    for job in cluster_jobs {
        job.abort();
    }
    orchestrator.leave_cluster().await;
    orchestrator.close_clients();
    let closed = tokio::time::timeout_at(deadline, async {
        sockets.all_closed().await;
        let _ = stop_accepting.send(());
        let _ = (&mut server).await;
    })
    .await;
    if closed.is_err() {
        tracing::warn!("connections still open at the shutdown bound; closing them");
        server.abort();
    }
    for job in jobs {
        job.abort();
    }
    tracing::info!("stopped");
    Ok(())
}
