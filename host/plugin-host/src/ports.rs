//! What the embedder supplies to a call: the chat's context variables, the UI
//! bridge and the log sink.
//!
//! The plugin host knows nothing of chats; the server implements these traits
//! against its store and WebSocket transport, the tool harness against
//! in-memory fakes. Every call receives its own [`Ports`], so two chats can
//! never see each other's state.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;

use crate::error::PortError;

mod app_data;
mod chat_reader;

pub use app_data::{
    AppData, DEFAULT_MAX_DOCUMENT_BYTES, DEFAULT_MAX_DOCUMENTS_PER_APP, DataDocument, DataError,
    DataFilter, DataLimits, DataQuery, DataScope, MemoryAppData, field,
};
pub use chat_reader::{ChatMessage, ChatReader, MessageRole, ScriptedChat};

/// Who is calling a tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// The chat the call belongs to.
    pub chat_id: String,
    /// The workflow the chat runs.
    pub workflow: String,
    /// The agent that asked for the call.
    pub agent: String,
    /// The LLM's id for this tool call.
    pub tool_call_id: String,
    /// The key the tool reads from the `invocation` import: the same on
    /// every attempt of one call. Empty (the default): the host derives one
    /// from `chat_id` and `tool_call_id` with [`crate::idempotency_key`].
    pub idempotency_key: String,
    /// Which attempt of the call this is, 1 (the default) the first time.
    pub attempt: u32,
}

impl Default for CallInfo {
    fn default() -> Self {
        Self {
            chat_id: String::new(),
            workflow: String::new(),
            agent: String::new(),
            tool_call_id: String::new(),
            idempotency_key: String::new(),
            attempt: 1,
        }
    }
}

/// The calling chat's context variables.
#[async_trait]
pub trait ContextStore: Send + Sync {
    /// The value of `key`, if set.
    async fn get(&self, key: &str) -> Result<Option<Value>, PortError>;
    /// Sets `key`. `Err(Rejected)` tells the tool why; `Err(Failed)` aborts the call.
    async fn set(&self, key: &str, value: Value) -> Result<(), ContextSetError>;
    /// Removes `key`; true if it was set.
    async fn remove(&self, key: &str) -> Result<bool, PortError>;
    /// Every variable, sorted by key.
    async fn list(&self) -> Result<Vec<(String, Value)>, PortError>;
}

/// Why [`ContextStore::set`] did not set a variable.
#[derive(Debug, thiserror::Error)]
pub enum ContextSetError {
    /// Refused by policy; the tool sees the message and may go on.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The store failed; the call is aborted.
    #[error(transparent)]
    Failed(#[from] PortError),
}

/// Where a client shows a UI component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Display {
    /// Inside the conversation.
    Inline,
    /// In a side panel.
    Artifact,
}

/// A tool asking the user something through a UI component.
#[derive(Debug, Clone, PartialEq)]
pub struct UiRequest {
    /// The component's name.
    pub component: String,
    /// The component's input.
    pub payload: Value,
    /// Where to show it.
    pub display: Display,
    /// How long to wait; already capped by the host at [`crate::MAX_UI_TIMEOUT`].
    pub timeout: Duration,
    /// Start it when a person can answer (the request is stored and sent):
    /// only the time after that is left out of the call's CPU deadline.
    pub waiting: WaitClock,
}

/// Marks when a [`UiRequest`] starts waiting for a person. The host leaves
/// out of the call's CPU deadline only the time from [`start`](Self::start)
/// until the bridge returns, and at most the request's timeout; the host's
/// own work before (storing, sending) counts like the tool's. A bridge that
/// never starts the clock has all of its time counted.
///
/// Clocks take no part in comparing requests: two requests that ask the
/// same thing are equal.
#[derive(Debug, Clone, Default)]
pub struct WaitClock(Arc<std::sync::OnceLock<Instant>>);

impl WaitClock {
    /// A person can answer from now on. Later calls change nothing.
    pub fn start(&self) {
        let _ = self.0.set(Instant::now());
    }

    /// How long since [`start`](Self::start), if it was called.
    pub(crate) fn waited(&self) -> Option<Duration> {
        self.0.get().map(Instant::elapsed)
    }
}

impl PartialEq for WaitClock {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// Why a UI request returned no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UiError {
    /// Nobody answered in time.
    #[error("no answer before the timeout")]
    Timeout,
    /// The user or the host cancelled the request.
    #[error("cancelled")]
    Cancelled,
    /// This call has no UI attached; the message says why.
    #[error("no UI available: {0}")]
    Unavailable(String),
    /// The request cannot be shown (unknown component, bad payload).
    #[error("invalid UI request: {0}")]
    InvalidRequest(String),
}

/// Shows UI components to the user of the calling chat.
#[async_trait]
pub trait UiBridge: Send + Sync {
    /// Shows `request` and waits for the answer. Implementations should
    /// give up after `request.timeout` with [`UiError::Timeout`]; the host
    /// stops waiting [`crate::UI_TIMEOUT_GRACE`] later in any case, so a
    /// bridge that simply waits is still bounded.
    async fn ask(&self, call: &CallInfo, request: UiRequest) -> Result<Value, UiError>;
    /// Shows a component without waiting.
    async fn notify(&self, call: &CallInfo, component: &str, payload: Value, display: Display);
}

/// Severity of a [`LogRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// For the tool's author.
    Debug,
    /// Normal operation.
    Info,
    /// Recovered problems.
    Warn,
    /// Failures.
    Error,
}

/// Where a [`LogRecord`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// The `log` import.
    Log,
    /// A line the guest wrote to stdout.
    Stdout,
    /// A line the guest wrote to stderr.
    Stderr,
}

/// One record from a tool.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogRecord {
    /// Plugin id.
    pub plugin: String,
    /// Function being called.
    pub function: String,
    /// Chat of the call.
    pub chat_id: String,
    /// Severity.
    pub level: LogLevel,
    /// Where it came from.
    pub source: LogSource,
    /// The text.
    pub message: String,
    /// Extra key/value pairs from the tool.
    pub fields: BTreeMap<String, String>,
}

/// Receives a tool's log records and output lines.
pub trait LogSink: Send + Sync {
    /// Records one entry. Must not block for long: it runs inside the call.
    fn log(&self, record: LogRecord);
}

/// Writes tool records into the host's `tracing` logs with `plugin`,
/// `function` and `chat_id` fields.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingLogSink;

impl LogSink for TracingLogSink {
    fn log(&self, r: LogRecord) {
        let fields = FieldsDisplay(&r.fields);
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: "mozaiks::tool",
                    $level,
                    plugin = %r.plugin,
                    function = %r.function,
                    chat_id = %r.chat_id,
                    source = ?r.source,
                    fields = %fields,
                    "{}",
                    r.message
                )
            };
        }
        match r.level {
            LogLevel::Trace => emit!(tracing::Level::TRACE),
            LogLevel::Debug => emit!(tracing::Level::DEBUG),
            LogLevel::Info => emit!(tracing::Level::INFO),
            LogLevel::Warn => emit!(tracing::Level::WARN),
            LogLevel::Error => emit!(tracing::Level::ERROR),
        }
    }
}

/// A tool's fields as `key=value` pairs separated by spaces. A key or
/// value that could be read as more than one pair (a space, an `=`, a
/// quote, a backslash, a control character, or nothing at all) is written
/// quoted and escaped as a Rust string, so `echo="a plugin=x"` stays one
/// pair.
struct FieldsDisplay<'a>(&'a BTreeMap<String, String>);

impl fmt::Display for FieldsDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (k, v) in self.0 {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{}={}", Quoted(k), Quoted(v))?;
        }
        Ok(())
    }
}

/// `text` as is, or quoted and escaped when it is empty or holds a space,
/// `=`, `"`, `\` or a control character.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = !self.0.is_empty()
            && !self
                .0
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '=' | '"' | '\\'));
        if plain {
            f.write_str(self.0)
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

/// Everything a call may reach through its imports.
#[derive(Clone)]
pub struct Ports {
    /// The calling chat's context variables.
    pub context: Arc<dyn ContextStore>,
    /// The calling chat's UI.
    pub ui: Arc<dyn UiBridge>,
    /// Where the tool's logs go.
    pub log: Arc<dyn LogSink>,
    /// The values of the plugin's declared secrets.
    pub secrets: Arc<dyn SecretStore>,
    /// The documents of the calling chat's app (the `data` import).
    pub data: Arc<dyn AppData>,
    /// The calling chat's messages and outputs (the `chat` import).
    pub chat: Arc<dyn ChatReader>,
}

/// The values of plugins' secrets, kept by the embedder (the server reads
/// them from its configuration). Asked only for names the plugin's
/// manifest declares.
pub trait SecretStore: Send + Sync + fmt::Debug {
    /// The value of `plugin`'s secret `name`, if it has one.
    fn secret(&self, plugin: &str, name: &str) -> Option<String>;
}

impl SecretStore for NoChat {
    fn secret(&self, _plugin: &str, _name: &str) -> Option<String> {
        None
    }
}

impl fmt::Debug for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}

/// Ports for calls that have no chat: context reads find nothing and writes
/// are rejected, the UI is unavailable, logs go to `tracing`. Used for
/// `describe()` and by embedders that run tools headless.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoChat;

#[async_trait]
impl ContextStore for NoChat {
    async fn get(&self, _key: &str) -> Result<Option<Value>, PortError> {
        Ok(None)
    }
    async fn set(&self, _key: &str, _value: Value) -> Result<(), ContextSetError> {
        Err(ContextSetError::Rejected(
            "this call has no chat".to_owned(),
        ))
    }
    async fn remove(&self, _key: &str) -> Result<bool, PortError> {
        Ok(false)
    }
    async fn list(&self) -> Result<Vec<(String, Value)>, PortError> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl UiBridge for NoChat {
    async fn ask(&self, _call: &CallInfo, _request: UiRequest) -> Result<Value, UiError> {
        Err(UiError::Unavailable("this call has no chat".to_owned()))
    }
    async fn notify(&self, _call: &CallInfo, _component: &str, _payload: Value, _display: Display) {
    }
}

impl Ports {
    /// Ports of a call without a chat (see [`NoChat`]).
    pub fn no_chat() -> Self {
        Self {
            context: Arc::new(NoChat),
            ui: Arc::new(NoChat),
            log: Arc::new(TracingLogSink),
            secrets: Arc::new(NoChat),
            data: Arc::new(NoChat),
            chat: Arc::new(NoChat),
        }
    }
}
