//! Wiring: builds the server's parts from a [`ServeConfig`] and serves the
//! API on a listener until a shutdown future resolves (the mini-redis
//! shape: the caller owns the listener, so tests bind port 0).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use mozaiks_plugin_host::{EngineConfig, PluginEngine};
use tokio::net::TcpListener;

use crate::llm::{LlmClient, LlmConfig};
use crate::maintenance::{self, MaintenanceConfig};
use crate::orchestrator::Orchestrator;
use crate::plugin_dir;
use crate::store::mongo::MongoConfigError;
use crate::store::{ChatStore, EmbeddedStore, MongoConfig, MongoStore, StoreError};
use crate::transport;
use crate::workflow::WorkflowRegistry;
use crate::workflow::registry::Entry;

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
}

/// Which store keeps the chats.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// One file in this directory (the zero-setup default).
    Embedded {
        /// The directory.
        data_dir: PathBuf,
    },
    /// A MongoDB database (`MONGO_URI`).
    Mongo(MongoConfig),
}

impl StoreConfig {
    /// The store the environment selects: MongoDB when `MONGO_URI` is
    /// set, else the embedded store in `data_dir`.
    pub fn from_env(data_dir: PathBuf) -> Result<Self, MongoConfigError> {
        Ok(match MongoConfig::from_env()? {
            Some(mongo) => StoreConfig::Mongo(mongo),
            None => StoreConfig::Embedded { data_dir },
        })
    }

    /// Opens the store. A database server that does not answer yet is not
    /// an error here: the store monitor reports it and retries.
    pub async fn open(&self) -> Result<Arc<dyn ChatStore>, StartupError> {
        Ok(match self {
            StoreConfig::Embedded { data_dir } => Arc::new(EmbeddedStore::open(data_dir)?),
            StoreConfig::Mongo(config) => Arc::new(MongoStore::connect(config).await?),
        })
    }

    /// Where the chats are, for logs.
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Embedded { data_dir } => {
                format!("embedded store in {}", data_dir.display())
            }
            StoreConfig::Mongo(config) => format!(
                "MongoDB database `{}` at {}",
                config.database,
                config.redacted_uri()
            ),
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
}

/// Loads plugins and workflows, opens the store and returns the
/// orchestrator, with interrupted chats resumed.
pub async fn build(config: &ServeConfig) -> Result<Orchestrator, StartupError> {
    let engine = PluginEngine::new(EngineConfig::default())
        .map_err(|e| StartupError::Engine(e.to_string()))?;
    let (plugins, failures) = plugin_dir::load_all(&engine, &config.plugins_dir)
        .await
        .map_err(|source| StartupError::Read {
            path: config.plugins_dir.clone(),
            source,
        })?;
    for (dir, error) in &failures {
        tracing::error!(plugin = %dir.display(), %error, "plugin not loaded; workflows using it are invalid");
    }
    tracing::info!(count = plugins.len(), "plugins loaded");
    let workflows =
        WorkflowRegistry::load_dir(&config.workflows_dir, &plugins).map_err(|source| {
            StartupError::Read {
                path: config.workflows_dir.clone(),
                source,
            }
        })?;
    for (name, entry) in workflows.snapshot().iter() {
        match entry {
            Entry::Valid(workflow) => {
                tracing::info!(
                    workflow = name,
                    agents = workflow.agents().len(),
                    "workflow loaded"
                );
            }
            Entry::Invalid { diagnostics, .. } => {
                for diagnostic in diagnostics.iter() {
                    tracing::error!(workflow = name, "{diagnostic}");
                }
            }
        }
    }
    let store = config.store.open().await?;
    let llm = LlmClient::new(config.llm.clone());
    if let Some(missing) = llm.missing_configuration() {
        tracing::warn!(
            "no LLM configured: set {missing} (or OPENAI_BASE_URL for a local server); chats will report LLM_NOT_CONFIGURED"
        );
    }
    let orchestrator = Orchestrator::new(
        store,
        llm,
        config.llm.default_timeout,
        Arc::new(workflows),
        Arc::new(RwLock::new(plugins.into_iter().collect::<HashMap<_, _>>())),
    );
    Ok(orchestrator)
}

/// Serves the API for `orchestrator` on `listener` until `shutdown`, with
/// the background jobs ([`maintenance`]): the store monitor, which also
/// resumes the chats that were running when the server last stopped, and
/// the retention job.
pub async fn serve(
    listener: TcpListener,
    orchestrator: Orchestrator,
    maintenance: &MaintenanceConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let jobs = maintenance::spawn(&orchestrator, maintenance);
    let served = axum::serve(listener, transport::router(orchestrator))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(StartupError::Serve);
    for job in jobs {
        job.abort();
    }
    served
}
