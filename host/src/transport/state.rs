//! What the web layer serves: the chat API ([`Orchestrator`]) and, beside
//! it, the parts it reads directly (the store for listings and logs, the
//! workflows, the plugins, the reload history, the store's health), the
//! count of its open sockets and this server's place in a cluster. Built
//! once per server by `app::serve`; every route gets a clone.

use std::sync::Arc;

use super::sockets::OpenSockets;
use crate::maintenance::StoreHealth;
use crate::orchestrator::Orchestrator;
use crate::plugin_set::PluginSet;
use crate::store::ChatStore;
use crate::watch::ReloadHub;
use crate::workflow::WorkflowRegistry;

/// The state of every route. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct WebState {
    /// Creating chats and feeding their runs.
    pub(crate) chats: Orchestrator,
    /// Reading chats: lists, event logs, context variables.
    pub(crate) store: Arc<dyn ChatStore>,
    /// The workflows served (and their problems).
    pub(crate) workflows: Arc<WorkflowRegistry>,
    /// The plugins served (and their status).
    pub(crate) plugins: Arc<PluginSet>,
    /// Reloads: recent history and the live feed.
    pub(crate) reloads: Arc<ReloadHub>,
    /// Whether the store answers (`/health/ready`).
    pub(crate) health: StoreHealth,
    /// What the LLM configuration lacks, if anything (`/health`).
    pub(crate) llm_missing: Option<&'static str>,
    /// The chat sockets open on this server.
    pub(crate) sockets: OpenSockets,
    /// Chats started through MozaiksAI's start route lately (it answers a
    /// repeated start with the same chat).
    pub(crate) compat_starts: Arc<super::compat::routes::RecentStarts>,
    /// This server and, in cluster mode, the state it shares with the
    /// others (`GET /api/cluster`).
    pub(crate) cluster: Arc<super::cluster::ClusterView>,
}
