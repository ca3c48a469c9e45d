//! Executing an agent's tool call through the plugin host, with the chat's
//! real context variables and UI attached as the plugin's imports.
//!
//! Every outcome becomes a [`ToolResult`](crate::event::Event::ToolResult)
//! the agent reads: a tool's own error, a trap, a deadline, a denied
//! capability. None of them stops the run; the plugin, function and cause
//! are logged.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mozaiks_plugin_host::{
    CallError, CallInfo, ContextSetError, ContextStore, Display, Plugin, PortError, Ports,
    TracingLogSink, UiBridge, UiError, UiRequest,
};
use serde_json::Value;

use super::context_writes::WriteRules;
use super::live::LiveChat;
use crate::event::{Event, ToolFailure, ToolFailureKind, UiOutcome};
use crate::workflow::Workflow;
use crate::workflow::model::{Tool, ToolKind};

/// How a tool call ended, as the agent will read it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolReport {
    /// Whether it succeeded.
    pub ok: bool,
    /// The text the agent reads.
    pub content: String,
    /// Why it failed.
    pub error: Option<ToolFailure>,
}

impl ToolReport {
    /// A failure with `kind` and `message`.
    pub(crate) fn failed(kind: ToolFailureKind, message: String) -> Self {
        Self {
            ok: false,
            content: format!("error ({kind}): {message}"),
            error: Some(ToolFailure { kind, message }),
        }
    }
}

/// The imports of a tool call that come from the server rather than the
/// run: the plugin's secrets, the app's data, the chat's log.
pub(crate) struct ChatPorts {
    /// The plugin's secrets.
    pub(crate) secrets: Arc<dyn mozaiks_plugin_host::SecretStore>,
    /// The chat's app's documents.
    pub(crate) data: Arc<dyn mozaiks_plugin_host::AppData>,
    /// The chat's messages and outputs.
    pub(crate) chat: Arc<dyn mozaiks_plugin_host::ChatReader>,
    /// The calling run's write failures when it started: the tool's own
    /// writes (context, UI) are refused once one of the run's writes
    /// failed, so nothing lands after an event that was lost
    /// (`live/writer.rs`). `None` outside a run's call.
    pub(crate) writes_seen: Option<u64>,
}

/// What a run's plugin call (a tool, a lifecycle tool, a hook) waits for
/// before the plugin acts (`live/writer.rs`): a plugin granted a way out
/// (network, HTTP, a writable directory) is called only once everything the
/// run queued is durable; any other plugin at once, with the returned
/// barrier waited for before each of its `data` writes and reads of the
/// chat's log. Fails when one of the run's writes failed.
pub(crate) async fn before_plugin_call(
    plugin: &Plugin,
    live: &Arc<LiveChat>,
    writes_seen: u64,
) -> Result<Option<super::live::WriteBarrier>, super::live::EmitError> {
    if plugin.manifest().capabilities.reach_outside() {
        live.flush(writes_seen).await?;
        Ok(None)
    } else {
        Ok(Some(live.barrier(writes_seen)))
    }
}

/// Calls `function` of `plugin` for the chat behind `live`, under the
/// context rules and UI triggers of `workflow`.
#[expect(
    clippy::too_many_arguments,
    reason = "one call's parts, each from a different owner"
)]
pub(crate) async fn execute(
    plugin: &Plugin,
    function: &str,
    arguments: &str,
    info: CallInfo,
    live: &Arc<LiveChat>,
    tool: &Tool,
    workflow: &Arc<Workflow>,
    chat_ports: ChatPorts,
) -> ToolReport {
    let rules = Arc::new(WriteRules::of(workflow));
    let ports = Ports {
        context: Arc::new(ChatContext {
            live: Arc::clone(live),
            since: chat_ports.writes_seen,
            writer: format!("tool:{}", tool.name),
            rules: Arc::clone(&rules),
        }),
        ui: Arc::new(ChatUi {
            live: Arc::clone(live),
            since: chat_ports.writes_seen,
            workflow: Arc::clone(workflow),
            rules,
            tool: tool.name.clone(),
            declared: match &tool.kind {
                ToolKind::Ui { component, .. } => Some(component.clone()),
                ToolKind::Agent => None,
            },
        }),
        log: Arc::new(TracingLogSink),
        secrets: chat_ports.secrets,
        data: chat_ports.data,
        chat: chat_ports.chat,
    };
    match plugin.call(function, arguments, info, ports).await {
        Ok(Ok(value)) => ToolReport {
            ok: true,
            content: value.to_string(),
            error: None,
        },
        Ok(Err(tool_error)) => ToolReport::failed((&tool_error).into(), tool_error.to_string()),
        Err(error) => {
            tracing::warn!(
                plugin = plugin.id(),
                function,
                kind = error.kind(),
                error = %error,
                "tool call failed"
            );
            ToolReport::failed((&error).into(), describe_call_error(&error))
        }
    }
}

/// The message an agent reads for a failed call: the error without the
/// backtrace (that one goes to the log).
fn describe_call_error(error: &CallError) -> String {
    let text = error.to_string();
    text.lines().next().unwrap_or_default().to_owned()
}

/// The chat's context variables as a plugin import: reads see the store,
/// writes are persisted and broadcast before the tool goes on.
#[derive(Debug)]
struct ChatContext {
    live: Arc<LiveChat>,
    /// The run's write failures when it started ([`ChatPorts::writes_seen`]).
    since: Option<u64>,
    writer: String,
    /// Declared types and the undeclared-writes policy.
    rules: Arc<WriteRules>,
}

fn port_error(error: impl std::fmt::Display) -> PortError {
    PortError::new(error.to_string())
}

#[async_trait]
impl ContextStore for ChatContext {
    async fn get(&self, key: &str) -> Result<Option<Value>, PortError> {
        Ok(self.live.context().await.map_err(port_error)?.remove(key))
    }

    async fn set(&self, key: &str, value: Value) -> Result<(), ContextSetError> {
        self.rules
            .check(key, &value)
            .map_err(|refused| ContextSetError::Rejected(refused.to_string()))?;
        self.live
            .emit_for(
                Event::ContextChanged {
                    key: key.to_owned(),
                    value: Some(value),
                    by: self.writer.clone(),
                },
                self.since,
            )
            .await
            .map_err(|e| ContextSetError::Failed(port_error(e)))?;
        Ok(())
    }

    async fn remove(&self, key: &str) -> Result<bool, PortError> {
        let present = self
            .live
            .context()
            .await
            .map_err(port_error)?
            .contains_key(key);
        if present {
            self.live
                .emit_for(
                    Event::ContextChanged {
                        key: key.to_owned(),
                        value: None,
                        by: self.writer.clone(),
                    },
                    self.since,
                )
                .await
                .map_err(port_error)?;
        }
        Ok(present)
    }

    async fn list(&self) -> Result<Vec<(String, Value)>, PortError> {
        let mut entries: Vec<_> = self
            .live
            .context()
            .await
            .map_err(port_error)?
            .into_iter()
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }
}

/// The chat's clients as a plugin import: a request is persisted, sent to
/// every client, and answered by the first client that responds.
#[derive(Debug)]
struct ChatUi {
    live: Arc<LiveChat>,
    /// The run's write failures when it started ([`ChatPorts::writes_seen`]).
    since: Option<u64>,
    /// The workflow whose `ui_response` triggers an answer fires.
    workflow: Arc<Workflow>,
    /// What a trigger may write.
    rules: Arc<WriteRules>,
    tool: String,
    /// The component `tools.json` declares for this tool (UI tools).
    declared: Option<String>,
}

impl ChatUi {
    /// Warns when the plugin shows another component than `tools.json`
    /// declares: a front end that prepared the declared one (or `doctor`,
    /// which checks the declared one) would not match what is shown.
    fn check_component(&self, asked: &str) {
        if let Some(declared) = &self.declared
            && declared != asked
        {
            tracing::warn!(
                tool = %self.tool,
                declared = %declared,
                asked,
                "the plugin shows component `{asked}`, but tools.json declares `{declared}` for this tool; correct `ui.component` or the plugin"
            );
        }
    }
}

impl ChatUi {
    /// Sets the variables whose `ui_response` triggers watch this tool,
    /// before the tool reads the answer (so a crash before this point asks
    /// again: the tool call has no result and is called again on resume).
    async fn fire_ui_triggers(&self, answer: &Value) -> Result<(), super::live::EmitError> {
        for (key, value) in
            super::triggers::ui_response(self.workflow.context_variables(), &self.tool, answer)
        {
            if let Err(refused) = self.rules.check(&key, &value) {
                tracing::warn!(tool = %self.tool, %refused, "ui_response trigger not applied");
                continue;
            }
            self.live
                .emit_for(
                    Event::ContextChanged {
                        key,
                        value: Some(value),
                        by: format!("trigger:{}", self.tool),
                    },
                    self.since,
                )
                .await?;
        }
        Ok(())
    }
}

fn display_name(display: Display) -> String {
    match display {
        Display::Inline => "inline".to_owned(),
        Display::Artifact => "artifact".to_owned(),
    }
}

#[async_trait]
impl UiBridge for ChatUi {
    async fn ask(&self, call: &CallInfo, request: UiRequest) -> Result<Value, UiError> {
        self.check_component(&request.component);
        let request_id = uuid::Uuid::new_v4().to_string();
        let waiting = request.waiting.clone();
        let answer = self.live.open_ui_request(&request_id);
        // If the host's timeout drops this future, the guard records the
        // timeout so clients stop showing the request.
        let guard = OpenRequest {
            live: Arc::clone(&self.live),
            since: self.since,
            request_id: request_id.clone(),
            armed: true,
        };
        self.live
            .emit_for(
                Event::UiRequest {
                    request_id: request_id.clone(),
                    call_id: call.tool_call_id.clone(),
                    tool: self.tool.clone(),
                    component: request.component,
                    payload: request.payload,
                    display: display_name(request.display),
                    timeout_ms: duration_ms(request.timeout),
                },
                self.since,
            )
            .await
            .map_err(|e| UiError::Unavailable(e.to_string()))?;
        // Stored and sent: from here on the call waits for a person.
        waiting.start();
        let mut guard = guard;
        match tokio::time::timeout(request.timeout, answer).await {
            Ok(Ok(value)) => {
                guard.armed = false;
                self.fire_ui_triggers(&value)
                    .await
                    .map_err(|e| UiError::Unavailable(e.to_string()))?;
                Ok(value)
            }
            // The sender went away: the run ended and records the
            // cancellation itself.
            Ok(Err(_)) => {
                guard.armed = false;
                Err(UiError::Cancelled)
            }
            Err(_) => {
                guard.armed = false;
                if !self.live.close_ui_request(&request_id) {
                    // An answer took the request first; it is recorded as
                    // answered, but this tool has stopped waiting.
                    return Err(UiError::Timeout);
                }
                let _ = self
                    .live
                    .emit_for(
                        Event::UiResponse {
                            request_id,
                            outcome: UiOutcome::Timeout,
                        },
                        self.since,
                    )
                    .await;
                Err(UiError::Timeout)
            }
        }
    }

    async fn notify(&self, _call: &CallInfo, component: &str, payload: Value, display: Display) {
        self.check_component(component);
        let result = self
            .live
            .emit_for(
                Event::UiNotify {
                    tool: self.tool.clone(),
                    component: component.to_owned(),
                    payload,
                    display: display_name(display),
                },
                self.since,
            )
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, component, "could not persist a UI notification");
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Records a timeout for a UI request whose waiting future was dropped.
#[derive(Debug)]
struct OpenRequest {
    live: Arc<LiveChat>,
    since: Option<u64>,
    request_id: String,
    armed: bool,
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        // When the chat was ended, the run records the cancellation of its
        // open requests itself, in order, before it completes.
        if !self.armed || self.live.is_cancelled() || !self.live.close_ui_request(&self.request_id)
        {
            return;
        }
        let live = Arc::clone(&self.live);
        let since = self.since;
        let request_id = std::mem::take(&mut self.request_id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = live
                    .emit_for(
                        Event::UiResponse {
                            request_id,
                            outcome: UiOutcome::Timeout,
                        },
                        since,
                    )
                    .await;
            });
        }
    }
}
