//! In-memory ports for running a tool outside the server: a context that
//! starts from a JSON object and records every change, a UI that answers from
//! a script and records every request, and a log that keeps every record.
//!
//! The `mozaiks tool call` command and the tests use these with the real
//! engine, limits and sandbox, so a tool that works here works in a chat.
//!
//! ```no_run
//! use mozaiks_plugin_host::harness::Harness;
//! use mozaiks_plugin_host::{EngineConfig, PluginEngine};
//! use serde_json::json;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = PluginEngine::new(EngineConfig::default())?;
//! let plugin = engine.load_dir("plugins/planner".as_ref()).await?;
//! let report = Harness::new()
//!     .context(json!({"tasks": []}))
//!     .answer("ApprovalForm", json!({"approved": true}))
//!     .call(&plugin, "request_approval", &json!({"question": "Ship it?"}))
//!     .await;
//! println!("{}", serde_json::to_string_pretty(&report.to_json())?);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::ToolOutcome;
use crate::component::Plugin;
use crate::error::{CallError, PortError};
use crate::idempotency::idempotency_key;
use crate::ports::{
    CallInfo, ContextSetError, ContextStore, Display, LogRecord, LogSink, Ports, UiBridge, UiError,
    UiRequest,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One change a call made to the context.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum ContextChange {
    /// `key` was set to `value`.
    Set {
        /// Variable name.
        key: String,
        /// New value.
        value: Value,
    },
    /// `key` was removed.
    Remove {
        /// Variable name.
        key: String,
    },
}

/// A context held in memory that records every change.
#[derive(Debug, Default)]
pub struct MemoryContext {
    values: Mutex<BTreeMap<String, Value>>,
    changes: Mutex<Vec<ContextChange>>,
}

impl MemoryContext {
    /// A context holding the members of `initial` (a JSON object; anything
    /// else gives an empty context).
    pub fn new(initial: &Value) -> Self {
        let values = initial
            .as_object()
            .map(|o| o.clone().into_iter().collect())
            .unwrap_or_default();
        Self {
            values: Mutex::new(values),
            changes: Mutex::default(),
        }
    }
    /// The current values as a JSON object.
    pub fn snapshot(&self) -> Value {
        Value::Object(
            lock(&self.values)
                .clone()
                .into_iter()
                .collect::<Map<_, _>>(),
        )
    }
    /// Every change so far, in order.
    pub fn changes(&self) -> Vec<ContextChange> {
        lock(&self.changes).clone()
    }
}

#[async_trait]
impl ContextStore for MemoryContext {
    async fn get(&self, key: &str) -> Result<Option<Value>, PortError> {
        Ok(lock(&self.values).get(key).cloned())
    }
    async fn set(&self, key: &str, value: Value) -> Result<(), ContextSetError> {
        lock(&self.values).insert(key.to_owned(), value.clone());
        lock(&self.changes).push(ContextChange::Set {
            key: key.to_owned(),
            value,
        });
        Ok(())
    }
    async fn remove(&self, key: &str) -> Result<bool, PortError> {
        let had = lock(&self.values).remove(key).is_some();
        if had {
            lock(&self.changes).push(ContextChange::Remove {
                key: key.to_owned(),
            });
        }
        Ok(had)
    }
    async fn list(&self) -> Result<Vec<(String, Value)>, PortError> {
        Ok(lock(&self.values)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// How the scripted UI answers one request.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptedAnswer {
    /// Answer with this JSON.
    Reply(Value),
    /// Answer with this JSON after a delay (to test waits and timeouts).
    Delayed(Duration, Value),
    /// Never answer: the host's timeout decides.
    Silent,
    /// Cancel the request.
    Cancel,
}

/// A UI request or notification as the tool sent it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UiEvent {
    /// `ask` or `notify`.
    pub kind: &'static str,
    /// Component name.
    pub component: String,
    /// Payload.
    pub payload: Value,
    /// Where it would be shown.
    pub display: Display,
    /// The timeout asked for, in milliseconds (`ask` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u128>,
}

/// A UI that answers from a per-component queue of scripted answers and
/// records every request. A request with nothing scripted is cancelled.
#[derive(Debug, Default)]
pub struct ScriptedUi {
    answers: Mutex<BTreeMap<String, VecDeque<ScriptedAnswer>>>,
    events: Mutex<Vec<UiEvent>>,
}

impl ScriptedUi {
    /// Queues `answer` for the next `ask` of `component`.
    pub fn script(&self, component: &str, answer: ScriptedAnswer) {
        lock(&self.answers)
            .entry(component.to_owned())
            .or_default()
            .push_back(answer);
    }
    /// Every request and notification so far.
    pub fn events(&self) -> Vec<UiEvent> {
        lock(&self.events).clone()
    }
}

#[async_trait]
impl UiBridge for ScriptedUi {
    async fn ask(&self, _call: &CallInfo, request: UiRequest) -> Result<Value, UiError> {
        // Every scripted answer stands for a person: the wait starts at once.
        request.waiting.start();
        lock(&self.events).push(UiEvent {
            kind: "ask",
            component: request.component.clone(),
            payload: request.payload,
            display: request.display,
            timeout_ms: Some(request.timeout.as_millis()),
        });
        let next = lock(&self.answers)
            .get_mut(&request.component)
            .and_then(VecDeque::pop_front);
        match next {
            Some(ScriptedAnswer::Reply(v)) => Ok(v),
            Some(ScriptedAnswer::Delayed(delay, v)) => {
                tokio::time::sleep(delay).await;
                Ok(v)
            }
            Some(ScriptedAnswer::Silent) => std::future::pending().await,
            Some(ScriptedAnswer::Cancel) | None => Err(UiError::Cancelled),
        }
    }
    async fn notify(&self, _call: &CallInfo, component: &str, payload: Value, display: Display) {
        lock(&self.events).push(UiEvent {
            kind: "notify",
            component: component.to_owned(),
            payload,
            display,
            timeout_ms: None,
        });
    }
}

/// A log sink that keeps every record (and also forwards it to `tracing`).
#[derive(Debug, Default)]
pub struct RecordingLog {
    records: Mutex<Vec<LogRecord>>,
}

impl RecordingLog {
    /// Every record so far.
    pub fn records(&self) -> Vec<LogRecord> {
        lock(&self.records).clone()
    }
}

impl LogSink for RecordingLog {
    fn log(&self, record: LogRecord) {
        crate::ports::TracingLogSink.log(record.clone());
        lock(&self.records).push(record);
    }
}

/// Secret values by name, for the harness.
#[derive(Debug, Default)]
struct MemorySecrets(std::collections::BTreeMap<String, String>);

impl crate::ports::SecretStore for MemorySecrets {
    fn secret(&self, _plugin: &str, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// Sets up the in-memory ports and calls a tool.
#[derive(Debug, Default)]
pub struct Harness {
    context: Arc<MemoryContext>,
    ui: Arc<ScriptedUi>,
    log: Arc<RecordingLog>,
    secrets: Arc<MemorySecrets>,
    data: Arc<crate::ports::MemoryAppData>,
    chat: Arc<crate::ports::ScriptedChat>,
    info: CallInfo,
}

impl Harness {
    /// An empty context, no scripted answers, chat id `harness`, a fresh
    /// idempotency key (see [`fresh_idempotency_key`]), attempt 1.
    pub fn new() -> Self {
        Self {
            info: CallInfo {
                chat_id: "harness".to_owned(),
                workflow: "harness".to_owned(),
                agent: "harness".to_owned(),
                tool_call_id: "call_1".to_owned(),
                idempotency_key: fresh_idempotency_key(),
                attempt: 1,
            },
            ..Self::default()
        }
    }
    /// Gives the call this idempotency key (to replay an attempt of a call
    /// that had it) instead of a fresh one.
    pub fn idempotency_key(mut self, key: &str) -> Self {
        self.info.idempotency_key = key.to_owned();
        self
    }
    /// Makes the call attempt `attempt` (1 the first time) of its call.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.info.attempt = attempt;
        self
    }
    /// Starts from these context variables (a JSON object).
    pub fn context(mut self, initial: Value) -> Self {
        self.context = Arc::new(MemoryContext::new(&initial));
        self
    }
    /// Answers the next `ask` of `component` with `answer`.
    pub fn answer(self, component: &str, answer: Value) -> Self {
        self.ui.script(component, ScriptedAnswer::Reply(answer));
        self
    }
    /// Scripts any kind of answer for the next `ask` of `component`.
    pub fn script(self, component: &str, answer: ScriptedAnswer) -> Self {
        self.ui.script(component, answer);
        self
    }
    /// Answers from a JSON object `{component: answer | [answers...]}`.
    pub fn answers(self, answers: &Value) -> Self {
        if let Some(map) = answers.as_object() {
            for (component, value) in map {
                match value {
                    Value::Array(list) => list
                        .iter()
                        .for_each(|v| self.ui.script(component, ScriptedAnswer::Reply(v.clone()))),
                    other => self
                        .ui
                        .script(component, ScriptedAnswer::Reply(other.clone())),
                }
            }
        }
        self
    }
    /// Uses this call info instead of the default.
    pub fn info(mut self, info: CallInfo) -> Self {
        self.info = info;
        self
    }
    /// The ports a call made through this harness receives.
    pub fn ports(&self) -> Ports {
        Ports {
            context: self.context.clone(),
            ui: self.ui.clone(),
            log: self.log.clone(),
            secrets: self.secrets.clone(),
            data: self.data.clone(),
            chat: self.chat.clone(),
        }
    }

    /// Uses `data` as the calling app's documents (shared: the caller can
    /// read what the call wrote).
    pub fn data(mut self, data: Arc<crate::ports::MemoryAppData>) -> Self {
        self.data = data;
        self
    }

    /// Uses `chat` as the calling chat's messages and structured outputs.
    pub fn chat(mut self, chat: crate::ports::ScriptedChat) -> Self {
        self.chat = Arc::new(chat);
        self
    }

    /// Gives the called plugin's secret `name` the value `value` (whatever
    /// the plugin: the harness calls one plugin at a time).
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        let mut values = self.secrets.0.clone();
        values.insert(name.to_owned(), value.to_owned());
        self.secrets = Arc::new(MemorySecrets(values));
        self
    }

    /// Calls `function` with `arguments` and reports everything that happened.
    pub async fn call(&self, plugin: &Plugin, function: &str, arguments: &Value) -> CallReport {
        let result = plugin
            .call(
                function,
                &arguments.to_string(),
                self.info.clone(),
                self.ports(),
            )
            .await;
        CallReport {
            idempotency_key: self.info.idempotency_key.clone(),
            attempt: self.info.attempt,
            result,
            context: self.context.snapshot(),
            context_changes: self.context.changes(),
            ui: self.ui.events(),
            logs: self.log.records(),
        }
    }
}

/// What one harness call did.
#[derive(Debug)]
pub struct CallReport {
    /// The idempotency key the call had (empty: derived by the host from
    /// the chat and the tool call id).
    pub idempotency_key: String,
    /// The attempt the call was.
    pub attempt: u32,
    /// The call's outcome.
    pub result: Result<ToolOutcome, CallError>,
    /// Context variables after the call.
    pub context: Value,
    /// Context changes, in order.
    pub context_changes: Vec<ContextChange>,
    /// UI requests and notifications, in order.
    pub ui: Vec<UiEvent>,
    /// Log records and output lines, in order.
    pub logs: Vec<LogRecord>,
}

impl CallReport {
    /// The report as JSON, as `mozaiks tool call` prints it.
    pub fn to_json(&self) -> Value {
        let result = match &self.result {
            Ok(Ok(value)) => json!({"ok": value}),
            Ok(Err(tool_error)) => {
                json!({"tool_error": {"kind": tool_error.kind(), "message": tool_error.to_string()}})
            }
            Err(e) => json!({"call_error": {"kind": e.kind(), "message": e.to_string()}}),
        };
        json!({
            "idempotency_key": self.idempotency_key,
            "attempt": self.attempt,
            "result": result,
            "context": self.context,
            "context_changes": self.context_changes,
            "ui": self.ui,
            "logs": self.logs,
        })
    }
}

/// A key no other harness call has had: the time, the process and a
/// counter, hashed like every key ([`idempotency_key`]).
pub fn fresh_idempotency_key() -> String {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    idempotency_key(&[
        "harness",
        &nanos.to_string(),
        &std::process::id().to_string(),
        &CALLS.fetch_add(1, Ordering::Relaxed).to_string(),
    ])
}
