//! The orchestrator: runs each chat's agents turn by turn.
//!
//! The turn loop, in ten lines:
//!
//! 1. A handoff (or the start) names the next participant.
//! 2. For an agent: its `pre` context conditions are checked; one that holds
//!    hands off with no LLM call.
//! 3. Otherwise the agent speaks: the LLM gets the transcript, the agent's
//!    tools (schemas from the plugins' `describe()`) and one transfer tool
//!    per LLM handoff; text is streamed to clients as it arrives.
//! 4. Tool calls run in the plugin host with the chat's context and UI;
//!    results go back to the LLM, unless a transfer or a context condition
//!    decides the handoff first.
//! 5. A structured output is validated (one retry with the errors) and sent
//!    to its `auto_execute` UI tools.
//! 6. Then `post` conditions, the after-work fallback, and finally the
//!    pattern pick who is next; the user's turn waits for their message.
//! 7. `max_turns`, a terminate handoff or the user end the run.
//!
//! Every step is an event persisted before it is sent ([`live::LiveChat`]),
//! and the run reads its position back from those events
//! ([`history::RunPosition`]), which is how a chat resumes after a restart.

mod app_data;
mod auto_reply;
mod cluster;
mod context_writes;
mod database_context;
mod drain;
mod handoff;
mod history;
mod hooks;
mod instrument;
mod live;
mod pattern;
mod prompt;
mod resume;
mod run;
mod structured;
mod tools;
mod transcript;
mod triggers;
mod user_conditions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mozaiks_plugin_host::Plugin;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::event::{ErrorCode, Event, RunStatus, now_ms};
use crate::llm::LlmClient;
use crate::plugin_set::{PluginSet, Unavailable};
use crate::store::{ChatRecord, ChatStatus, ChatStore, StoreError};
use crate::workflow::registry::Entry;
use crate::workflow::{Diagnostic, Workflow, WorkflowRegistry};

pub use cluster::{ClusterError, ClusterSettings};
pub(crate) use cluster::{hostname, limits as cluster_limits};
pub(crate) use drain::closed;
pub(crate) use history::RunPosition;
pub use live::EmitError;
pub use live::LiveChat;
pub(crate) use live::RunInput;
pub use run::chat_request;

/// What the orchestrator shares with every run.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn ChatStore>,
    pub(crate) llm: LlmClient,
    pub(crate) llm_timeout: Duration,
    pub(crate) workflows: Arc<WorkflowRegistry>,
    pub(crate) plugins: Arc<PluginSet>,
    /// Where tool calls get their plugin's secrets
    /// ([`Orchestrator::set_plugin_secrets`]); none until set.
    pub(crate) plugin_secrets: std::sync::RwLock<Arc<dyn mozaiks_plugin_host::SecretStore>>,
    /// The quotas of per-app data ([`Orchestrator::set_data_limits`]).
    pub(crate) data_limits: std::sync::RwLock<mozaiks_plugin_host::DataLimits>,
    live: Mutex<HashMap<String, Arc<LiveChat>>>,
    /// Serving, draining or closed ([`drain`]).
    pub(crate) lifecycle: tokio::sync::watch::Sender<drain::Lifecycle>,
    /// Run tasks alive in this process.
    pub(crate) runs: tokio::sync::watch::Sender<usize>,
    /// Chats whose run stopped because the store failed ([`resume`]).
    to_resume: Mutex<std::collections::BTreeSet<String>>,
    /// How long a run waits for input before it unloads itself, in ms;
    /// 0: never ([`Orchestrator::set_idle_unload`]).
    idle_run_ms: std::sync::atomic::AtomicU64,
    /// This server among the others on its database, once joined
    /// ([`cluster`]); never set on a store only one process opens.
    membership: std::sync::OnceLock<Arc<cluster::Membership>>,
}

impl Shared {
    /// See [`Orchestrator::set_idle_unload`].
    pub(crate) fn idle_run(&self) -> Option<Duration> {
        match self.idle_run_ms.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// See [`Orchestrator::forget_if_unused`]. Under the map's lock, and
    /// only when the map holds the one reference: whoever wants the chat
    /// next makes a fresh entry.
    pub(crate) fn forget_if_unused(&self, chat_id: &str) {
        let mut map = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(live) = map.get(chat_id) else {
            return;
        };
        if Arc::strong_count(live) == 1 && !live.has_run() {
            map.remove(chat_id);
        } else {
            // Still running: keep the chat, but not a broadcast buffer
            // nobody reads.
            live.release_if_unwatched();
        }
    }

    pub(crate) fn mark_for_resume(&self, chat_id: &str) {
        self.to_resume
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(chat_id.to_owned());
    }

    /// The version of plugin `id` to call now (a cheap clone: a call in
    /// flight keeps its version while a reload swaps in the next).
    pub(crate) fn plugin(&self, id: &str) -> Result<Plugin, Unavailable> {
        self.plugins.plugin(id)
    }
}

/// Why a chat operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// No workflow of that name is loaded.
    #[error("no workflow `{name}`; loaded: {available}")]
    UnknownWorkflow {
        /// The name asked for.
        name: String,
        /// The valid workflows.
        available: String,
    },
    /// The workflow exists but does not validate.
    #[error("workflow `{name}` is invalid ({} problem(s)); GET /api/workflows lists them", diagnostics.len())]
    InvalidWorkflow {
        /// The workflow.
        name: String,
        /// Its problems.
        diagnostics: Arc<[Diagnostic]>,
    },
    /// A required environment variable of a context variable is unset.
    #[error(
        "context variable `{variable}` needs the environment variable `{env_var}`, which is not set on the server"
    )]
    MissingEnvironment {
        /// The context variable.
        variable: String,
        /// The environment variable.
        env_var: String,
    },
    /// No chat has this id.
    #[error("chat `{0}` not found")]
    ChatNotFound(String),
    /// The chat ended; it takes no more input.
    #[error("chat `{0}` has ended")]
    ChatEnded(String),
    /// The UI request is not waiting for an answer (unknown, answered,
    /// timed out or cancelled).
    #[error("UI request `{0}` is not open (unknown, already answered, timed out or cancelled)")]
    UiRequestNotOpen(String),
    /// The run does not wait for this input now.
    #[error("{input} is not expected now: the run is {status}{hint}")]
    NotYourTurn {
        /// What was sent.
        input: &'static str,
        /// The run's status.
        status: String,
        /// What to do instead.
        hint: &'static str,
    },
    /// The server is shutting down; the chat continues on the next start.
    #[error("the server is shutting down; try again in a moment (the chat continues where it was)")]
    ShuttingDown,
    /// The server has just started and still loads these plugins (by
    /// folder); chats wait for them for a while, then get this.
    #[error(
        "the server is still loading plugins ({}); try again in a moment (GET /health/ready says when it is done)",
        if .plugins.is_empty() { "its workflows".to_owned() } else { .plugins.join(", ") }
    )]
    PluginsLoading {
        /// The plugin folders not loaded yet.
        plugins: Vec<String>,
    },
    /// Another server took the chat's run over while this one handled the
    /// request (cluster mode); send it again.
    #[error("chat moved to another server{} while this one handled the request; send it again", .owner.as_deref().map(|o| format!(" (`{o}`)")).unwrap_or_default())]
    Moved {
        /// The server that runs it now, when known.
        owner: Option<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ChatError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::LeaseLost { owner, .. } => Self::Moved { owner },
            other => Self::Store(other),
        }
    }
}

impl From<EmitError> for ChatError {
    fn from(error: EmitError) -> Self {
        match error {
            EmitError::ShuttingDown => Self::ShuttingDown,
            EmitError::Moved { owner } => Self::Moved { owner },
            EmitError::Store(store) => Self::Store(store),
        }
    }
}

impl ChatError {
    /// A stable code for clients.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnknownWorkflow { .. } => ErrorCode::UnknownWorkflow,
            Self::InvalidWorkflow { .. } => ErrorCode::InvalidWorkflow,
            Self::MissingEnvironment { .. } => ErrorCode::MissingEnvironment,
            Self::ChatNotFound(_) => ErrorCode::ChatNotFound,
            Self::ChatEnded(_) => ErrorCode::ChatEnded,
            Self::UiRequestNotOpen(_) => ErrorCode::UiRequestNotOpen,
            Self::NotYourTurn { .. } => ErrorCode::NotYourTurn,
            Self::ShuttingDown => ErrorCode::ShuttingDown,
            Self::PluginsLoading { .. } => ErrorCode::PluginsLoading,
            Self::Moved { .. } => ErrorCode::ChatMoved,
            Self::Store(StoreError::Backend(_)) => ErrorCode::StoreUnavailable,
            Self::Store(_) => ErrorCode::Internal,
        }
    }
}

/// Whether the run takes `input` at `status`: `Ok(true)` to deliver it,
/// `Ok(false)` for a harmless no-op (`continue` with nothing to continue),
/// else [`ChatError::NotYourTurn`]. The input is refused rather than
/// queued: the client keeps it and knows.
pub(crate) fn check_turn(input: &RunInput, status: Option<RunStatus>) -> Result<bool, ChatError> {
    let accepted = match (input, status) {
        (
            RunInput::UserMessage(_),
            Some(RunStatus::WaitingForUser | RunStatus::WaitingForSpeaker),
        )
        | (RunInput::SelectSpeaker(_), Some(RunStatus::WaitingForSpeaker))
        | (RunInput::Continue, Some(RunStatus::Interrupted)) => true,
        // Nothing to continue: a harmless no-op.
        (RunInput::Continue, _) => return Ok(false),
        _ => false,
    };
    if accepted {
        return Ok(true);
    }
    let (name, hint) = match input {
        RunInput::UserMessage(_) => (
            "a user message",
            if status == Some(RunStatus::Interrupted) {
                "; send `continue` to retry the step that failed"
            } else {
                "; send it when the run is waiting_for_user"
            },
        ),
        RunInput::SelectSpeaker(_) => (
            "a speaker pick",
            "; only ManualPattern asks for one, with speaker_request",
        ),
        RunInput::Continue => ("continue", ""),
    };
    let status = status.map_or_else(
        || "starting".to_owned(),
        |s| {
            serde_json::to_value(s)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        },
    );
    Err(ChatError::NotYourTurn {
        input: name,
        status,
        hint,
    })
}

/// A run that is active in this process.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ActiveRun {
    /// The chat.
    pub chat_id: String,
    /// Its last status.
    pub status: Option<RunStatus>,
    /// Attached clients.
    pub clients: usize,
}

/// Starts, feeds and resumes chat runs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Orchestrator {
    shared: Arc<Shared>,
}

impl Orchestrator {
    /// An orchestrator over these parts.
    pub(crate) fn new(
        store: Arc<dyn ChatStore>,
        llm: LlmClient,
        llm_timeout: Duration,
        workflows: Arc<WorkflowRegistry>,
        plugins: Arc<PluginSet>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                llm,
                llm_timeout,
                workflows,
                plugins,
                plugin_secrets: std::sync::RwLock::new(Arc::new(mozaiks_plugin_host::NoChat)),
                data_limits: std::sync::RwLock::new(mozaiks_plugin_host::DataLimits::default()),
                live: Mutex::new(HashMap::new()),
                lifecycle: tokio::sync::watch::Sender::new(drain::Lifecycle::Serving),
                runs: tokio::sync::watch::Sender::new(0),
                to_resume: Mutex::new(std::collections::BTreeSet::new()),
                idle_run_ms: std::sync::atomic::AtomicU64::new(0),
                membership: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Where tool calls read their plugin's secrets from now on.
    pub(crate) fn set_plugin_secrets(&self, secrets: Arc<dyn mozaiks_plugin_host::SecretStore>) {
        *self
            .shared
            .plugin_secrets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = secrets;
    }

    /// The quotas of per-app data from now on (docs/operations.md).
    pub(crate) fn set_data_limits(&self, limits: mozaiks_plugin_host::DataLimits) {
        *self
            .shared
            .data_limits
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = limits;
    }

    /// The `data` and `chat` imports of a tool call in `chat`: its app's
    /// documents under the current quotas, and its log.
    /// What a tool call of `chat` sees beside its context and UI.
    /// `barrier`: the run's writes, waited for before a data write or a
    /// read of the chat's log (`None` when the run flushed before the call).
    pub(crate) fn chat_ports(
        shared: &Shared,
        chat: &ChatRecord,
        barrier: Option<live::WriteBarrier>,
    ) -> tools::ChatPorts {
        let limits = *shared
            .data_limits
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tools::ChatPorts {
            secrets: Self::plugin_secrets(shared),
            data: Arc::new(
                app_data::ChatAppData::new(shared.store.app_data(), chat, limits)
                    .with_barrier(barrier.clone()),
            ),
            chat: Arc::new(transcript::ChatTranscript::new(
                Arc::clone(&shared.store),
                &chat.chat_id,
                barrier,
            )),
            writes_seen: None,
        }
    }

    /// The plugin secrets tool calls read now.
    pub(crate) fn plugin_secrets(shared: &Shared) -> Arc<dyn mozaiks_plugin_host::SecretStore> {
        Arc::clone(
            &shared
                .plugin_secrets
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Unloads a run that has waited `limit` for its user (or for a speaker
    /// pick): its task and transcript leave memory, and its chat too once
    /// no client holds it. The next input starts the run again from the
    /// chat's log, as after a restart. `None` (the default) keeps runs.
    pub(crate) fn set_idle_unload(&self, limit: Option<Duration>) {
        let ms = limit.map_or(0, |l| {
            u64::try_from(l.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        self.shared
            .idle_run_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Drops the chat's in-memory state if no run, client or request holds
    /// it (it is made again from the store when needed).
    pub(crate) fn forget_if_unused(&self, chat_id: &str) {
        self.shared.forget_if_unused(chat_id);
    }

    fn workflow(&self, name: &str) -> Result<Arc<Workflow>, ChatError> {
        let snapshot = self.shared.workflows.snapshot();
        match snapshot.get(name) {
            Some(Entry::Valid(workflow))
            | Some(Entry::Invalid {
                last_good: Some(workflow),
                ..
            }) => Ok(Arc::clone(workflow)),
            Some(Entry::Invalid { diagnostics, .. }) => Err(ChatError::InvalidWorkflow {
                name: name.to_owned(),
                diagnostics: Arc::clone(diagnostics),
            }),
            None => Err(ChatError::UnknownWorkflow {
                name: name.to_owned(),
                available: snapshot
                    .iter()
                    .filter(|(_, e)| e.serving().is_some())
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Starts a chat of `workflow`: persists it with its initial context
    /// and starts its run.
    pub async fn create_chat(
        &self,
        app_id: &str,
        user_id: &str,
        workflow: &str,
    ) -> Result<ChatRecord, ChatError> {
        if !self.serving() {
            return Err(ChatError::ShuttingDown);
        }
        let workflow = self.workflow(workflow)?;
        crate::telemetry::metrics().chat_started(workflow.name());
        let chat = ChatRecord::new(
            uuid::Uuid::new_v4().simple().to_string(),
            app_id.to_owned(),
            user_id.to_owned(),
            workflow.name().to_owned(),
            workflow.version().to_owned(),
            workflow.cache_seed(),
            now_ms(),
        );
        let mut context = run::initial_context(&workflow, &chat)
            .map_err(|(variable, env_var)| ChatError::MissingEnvironment { variable, env_var })?;
        database_context::read(&workflow, &chat, self.shared.store.app_data(), &mut context)
            .await?;
        self.shared.store.create_chat(&chat).await?;
        // A new chat's lease is free: this server takes it.
        if let cluster::Owner::Elsewhere(owner) = self.own(&chat.chat_id).await? {
            return Err(ChatError::Moved { owner: Some(owner) });
        }
        let live = self.live(&chat.chat_id);
        live.starts_empty();
        let mut first = Vec::new();
        for (key, value) in context {
            first.push(Event::ContextChanged {
                key,
                value: Some(value),
                by: "init".to_owned(),
            });
        }
        if let Some(missing) = self.shared.llm.missing_configuration() {
            first.push(Event::Error {
                code: ErrorCode::LlmNotConfigured,
                message: format!(
                    "the server has no LLM configured: set {missing} (or OPENAI_BASE_URL for a local OpenAI-compatible server) and restart it"
                ),
            });
        }
        if workflow.startup_mode() == crate::workflow::model::StartupMode::UserDriven {
            // Recorded before the chat id is returned, so a client may send
            // the first message at once.
            first.push(Event::RunStatus {
                status: RunStatus::WaitingForUser,
                reason: None,
            });
        }
        // Written together, durable before the chat id is returned.
        live.emit_all(first).await?;
        self.start_run(&chat, workflow, &live).await?;
        Ok(self.chat(&chat.chat_id).await.unwrap_or(chat))
    }

    /// The live side of a chat (created on first use).
    pub fn live(&self, chat_id: &str) -> Arc<LiveChat> {
        let mut map = self
            .shared
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(chat_id.to_owned()).or_insert_with(|| {
            Arc::new(LiveChat::new(
                chat_id.to_owned(),
                Arc::clone(&self.shared.store),
            ))
        }))
    }

    /// The chat's live side if this process has one.
    pub(crate) fn existing_live(&self, chat_id: &str) -> Option<Arc<LiveChat>> {
        self.shared
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(chat_id)
            .cloned()
    }

    /// The chats some client of this process watches.
    pub(crate) fn watched_chats(&self) -> Vec<Arc<LiveChat>> {
        self.shared
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|live| live.client_count() > 0)
            .cloned()
            .collect()
    }

    /// The chat, or [`ChatError::ChatNotFound`].
    pub async fn chat(&self, chat_id: &str) -> Result<ChatRecord, ChatError> {
        self.shared
            .store
            .chat(chat_id)
            .await?
            .ok_or_else(|| ChatError::ChatNotFound(chat_id.to_owned()))
    }

    async fn start_run(
        &self,
        chat: &ChatRecord,
        workflow: Arc<Workflow>,
        live: &Arc<LiveChat>,
    ) -> Result<mpsc::UnboundedSender<RunInput>, ChatError> {
        if !self.serving() {
            return Err(ChatError::ShuttingDown);
        }
        // Cluster mode: only under the chat's lease, held until the run is
        // attached (a run that ends meanwhile cannot give it up).
        let _lease = match self.shared.leases() {
            Some(membership) => match self.own_with(membership, &chat.chat_id).await? {
                (cluster::Owner::Here, lease) => Some(lease),
                (cluster::Owner::Elsewhere(owner), _) => {
                    return Err(ChatError::Moved { owner: Some(owner) });
                }
            },
            None => None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        if !live.attach_run(tx.clone()) {
            return Ok(tx);
        }
        let events = self.shared.store.events(&chat.chat_id, 0, None).await?;
        let run = run::Run::new(
            Arc::clone(&self.shared),
            Arc::clone(live),
            chat.clone(),
            workflow,
            events,
            rx,
        );
        // A root span: the run outlives the request that started it.
        let span = tracing::info_span!(
            parent: None,
            "chat",
            chat_id = chat.chat_id.as_str(),
            workflow = chat.workflow.as_str(),
        );
        let slot = drain::RunSlot::take(&self.shared);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                run.run().await;
                drop(slot);
            },
            span,
        ));
        Ok(tx)
    }

    /// Makes sure a run is attached to the chat (resuming it from its
    /// events) and returns its live side.
    async fn ensure_run(&self, chat_id: &str) -> Result<Arc<LiveChat>, ChatError> {
        let chat = self.chat(chat_id).await?;
        if chat.status != ChatStatus::InProgress {
            return Err(ChatError::ChatEnded(chat_id.to_owned()));
        }
        let live = self.live(chat_id);
        if !live.has_run() {
            let workflow = self.workflow(&chat.workflow)?;
            self.start_run(&chat, workflow, &live).await?;
        }
        Ok(live)
    }

    /// The run's status: as this process last emitted it, else as the log
    /// last recorded it.
    async fn run_status(&self, chat_id: &str) -> Result<Option<RunStatus>, ChatError> {
        let live = self.live(chat_id);
        if let Some(status) = live.status() {
            return Ok(Some(status));
        }
        let events = self.shared.store.events(chat_id, 0, None).await?;
        let status = events.iter().rev().find_map(|e| match e.event {
            Event::RunStatus { status, .. } => Some(status),
            _ => None,
        });
        live.init_status(status);
        Ok(live.status())
    }

    /// Passes `input` to the chat's run, resuming the run if needed. Input
    /// the run does not wait for is refused ([`ChatError::NotYourTurn`])
    /// rather than queued: the client keeps it and knows.
    pub(crate) async fn send(&self, chat_id: &str, input: RunInput) -> Result<(), ChatError> {
        let chat = self.chat(chat_id).await?;
        if !self.serving() {
            return Err(ChatError::ShuttingDown);
        }
        if chat.status != ChatStatus::InProgress {
            return Err(ChatError::ChatEnded(chat_id.to_owned()));
        }
        if let cluster::Owner::Elsewhere(_) = self.own(chat_id).await? {
            return self.send_elsewhere(chat_id, input.into()).await;
        }
        let live = self.live(chat_id);
        let status = self.run_status(chat_id).await?;
        let delivered = self.deliver_here(chat_id, &live, input, status).await;
        self.shared.release_lease(&live).await;
        delivered
    }

    /// [`send`](Self::send) on the server that writes the chat.
    async fn deliver_here(
        &self,
        chat_id: &str,
        live: &Arc<LiveChat>,
        input: RunInput,
        status: Option<RunStatus>,
    ) -> Result<(), ChatError> {
        if !check_turn(&input, status)? {
            return Ok(());
        }
        if input == RunInput::Continue {
            // Starting the run from its log is the retry.
            self.ensure_run(chat_id).await?;
            return Ok(());
        }
        if !live.claim_input() {
            return Err(ChatError::NotYourTurn {
                input: "another input",
                status: "busy".to_owned(),
                hint: " with the previous input; wait for the next run_status",
            });
        }
        let delivered = async {
            let live = self.ensure_run(chat_id).await?;
            if let Err(input) = live.deliver(input) {
                // The run ended between the check and the send; start it again.
                let live = self.ensure_run(chat_id).await?;
                let _ = live.deliver(input);
            }
            Ok::<_, ChatError>(())
        }
        .await;
        if delivered.is_err() {
            live.release_input();
        }
        delivered
    }

    /// Answers the UI request `request_id` of the chat.
    pub(crate) async fn answer_ui(
        &self,
        chat_id: &str,
        request_id: &str,
        answer: Value,
    ) -> Result<(), ChatError> {
        let chat = self.chat(chat_id).await?;
        if !self.serving() {
            return Err(ChatError::ShuttingDown);
        }
        if chat.status == ChatStatus::InProgress
            && let cluster::Owner::Elsewhere(_) = self.own(chat_id).await?
        {
            let request_id = request_id.to_owned();
            return self
                .send_elsewhere(chat_id, cluster::Input::UiAnswer { request_id, answer })
                .await;
        }
        let live = self.live(chat_id);
        let answered = live.answer_ui_request(request_id, answer).await;
        // A lease just taken for nothing (no tool waits here) is given up.
        self.shared.release_lease(&live).await;
        if answered? {
            Ok(())
        } else {
            Err(ChatError::UiRequestNotOpen(request_id.to_owned()))
        }
    }

    /// Ends the chat: its run stops at the next step, open UI requests are
    /// cancelled.
    pub(crate) async fn end_chat(&self, chat_id: &str) -> Result<(), ChatError> {
        let chat = self.chat(chat_id).await?;
        if chat.status != ChatStatus::InProgress {
            return Ok(());
        }
        if let cluster::Owner::Elsewhere(_) = self.own(chat_id).await? {
            return self.send_elsewhere(chat_id, cluster::Input::End).await;
        }
        let live = self.live(chat_id);
        if live.has_run() {
            live.cancel_run();
        } else {
            self.shared
                .store
                .set_status(
                    chat_id,
                    ChatStatus::Completed,
                    Some("ended by the user".to_owned()),
                )
                .await?;
            live.emit(Event::RunStatus {
                status: RunStatus::Completed,
                reason: Some("ended by the user".to_owned()),
            })
            .await?;
            self.shared.release_lease(&live).await;
        }
        Ok(())
    }

    /// Deletes chats that ended before `before` (ms since the Unix epoch)
    /// and forgets their live state. Returns how many were deleted.
    pub(crate) async fn delete_ended_before(&self, before: u64) -> Result<usize, ChatError> {
        let deleted = self.shared.store.delete_ended_before(before).await?;
        let mut live = self
            .shared
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for chat_id in &deleted {
            if live
                .get(chat_id)
                .is_some_and(|l| !l.has_run() && l.client_count() == 0)
            {
                live.remove(chat_id);
            }
        }
        Ok(deleted.len())
    }

    /// The runs active in this process.
    pub(crate) fn active_runs(&self) -> Vec<ActiveRun> {
        let map = self
            .shared
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut runs: Vec<ActiveRun> = map
            .values()
            .filter(|live| live.has_run())
            .map(|live| ActiveRun {
                chat_id: live.chat_id().to_owned(),
                status: live.status(),
                clients: live.client_count(),
            })
            .collect();
        runs.sort_by(|a, b| a.chat_id.cmp(&b.chat_id));
        runs
    }
}
