//! One chat's run: a task that moves the chat from one position to the next
//! ([`Position`]), persisting every step as an event before the next one.
//!
//! The loop reads where the chat stands from its own event log, so a run
//! started on a fresh chat and a run resumed after a crash are the same
//! code: the resumed one simply starts further along.

use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};

use super::Shared;
use super::handoff::{self, Decision, Scope};
use super::history::{Position, RunPosition, TurnStep, transcript};
use super::live::{LiveChat, RunInput};
use super::pattern::{self, Choice};
use super::structured::{STRUCTURED_OUTPUT_RETRIES, Validators};
use super::tools::{self, ToolReport};
use crate::event::{Envelope, Event, HandoffReason, RunStatus, ToolCallRecord};
use crate::llm::{ChatMessage, ChatRequest, LlmError, ResponseSchema, ToolDefinition};
use crate::store::{ChatRecord, ChatStatus, StoreError};
use crate::workflow::Workflow;
use crate::workflow::model::{Agent, Producer, StartupMode, Target, VariableSource};

/// Most LLM rounds with tool calls in one agent turn. A model that keeps
/// calling tools without ever answering would otherwise loop until
/// `max_turns` never comes (tool rounds are not turns).
const MAX_TOOL_ROUNDS_PER_TURN: u32 = 16;

/// Most handoffs in a row without an agent speaking: `pre` conditions that
/// point at each other would otherwise spin without an LLM call to stop them.
const MAX_HANDOFFS_WITHOUT_A_TURN: u32 = 32;

/// Why a run stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed; the chat resumes when the store works again.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The LLM could not answer; `continue` retries.
    #[error("agent `{agent}`: {error}")]
    Llm {
        /// The agent whose call failed.
        agent: String,
        /// Why.
        #[source]
        error: LlmError,
    },
    /// The user ended the chat.
    #[error("ended by the user")]
    Cancelled,
}

/// A running chat.
pub(super) struct Run {
    shared: Arc<Shared>,
    live: Arc<LiveChat>,
    chat: ChatRecord,
    workflow: Arc<Workflow>,
    events: Vec<Arc<Envelope>>,
    state: RunPosition,
    inbox: mpsc::UnboundedReceiver<RunInput>,
    cancel: watch::Receiver<bool>,
    validators: Validators,
    rng: StdRng,
    tool_rounds: u32,
    handoffs_in_a_row: u32,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("chat_id", &self.chat.chat_id)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Run {
    pub(super) fn new(
        shared: Arc<Shared>,
        live: Arc<LiveChat>,
        chat: ChatRecord,
        workflow: Arc<Workflow>,
        events: Vec<Envelope>,
        inbox: mpsc::UnboundedReceiver<RunInput>,
    ) -> Self {
        let events: Vec<Arc<Envelope>> = events.into_iter().map(Arc::new).collect();
        let state = RunPosition::of(events.iter().map(|e| &**e));
        let cancel = live.cancelled();
        Self {
            shared,
            live,
            chat,
            workflow,
            events,
            state,
            inbox,
            cancel,
            validators: Validators::default(),
            rng: StdRng::from_os_rng(),
            tool_rounds: 0,
            handoffs_in_a_row: 0,
        }
    }

    /// Runs until the chat ends, waits for an input that a later run will
    /// take, or fails; records how it stopped.
    pub(super) async fn run(mut self) {
        let chat_id = self.chat.chat_id.clone();
        let outcome = self.drive().await;
        let recorded = match outcome {
            Ok(()) => Ok(()),
            Err(RunError::Cancelled) => {
                self.finish(RunStatus::Completed, "ended by the user".to_owned())
                    .await
            }
            Err(RunError::Llm { agent, error }) => {
                tracing::warn!(chat_id, agent, %error, "LLM call failed; run interrupted");
                self.interrupt(error.code(), format!("agent `{agent}`: {error}"))
                    .await
            }
            Err(RunError::Store(error)) => Err(error),
        };
        if let Err(error) = recorded {
            tracing::error!(chat_id, %error, "run stopped: the store failed; the chat resumes when the store is back");
            // Nothing can be persisted now, so this one event is sent
            // without a seq; the run resumes from what the store has.
            self.live.send_ephemeral(Event::Error {
                code: "STORE_UNAVAILABLE".to_owned(),
                message: format!(
                    "the chat store failed ({error}); nothing after the last stored event was kept, and the chat resumes from there when the store is back"
                ),
            });
            self.shared.mark_for_resume(&chat_id);
        }
        self.live.detach_run();
        // An input accepted for this run but never taken must not block the
        // next one.
        self.live.release_input();
    }

    async fn drive(&mut self) -> Result<(), RunError> {
        self.close_stale_ui_requests().await?;
        loop {
            if *self.cancel.borrow() {
                return Err(RunError::Cancelled);
            }
            match self.state.position.clone() {
                Position::Start => self.start().await?,
                Position::HandedOff(to) => self.go_to(handoff::parse_target(&to)).await?,
                Position::WaitingForUser => {
                    if !self.wait_for_user().await? {
                        return Ok(());
                    }
                }
                Position::WaitingForSpeaker => {
                    if !self.wait_for_speaker().await? {
                        return Ok(());
                    }
                }
                Position::UserSpoke => self.route_from_user().await?,
                Position::InTurn { agent, step } => {
                    let Some(agent) = self.workflow.agent(&agent).cloned() else {
                        let reason = format!(
                            "agent `{agent}` is no longer in workflow `{}`",
                            self.workflow.name()
                        );
                        self.fail("AGENT_GONE", reason).await?;
                        continue;
                    };
                    match step {
                        TurnStep::CallLlm => self.call_llm(&agent).await?,
                        TurnStep::RunTools(calls) if calls.is_empty() => {
                            self.after_tools(&agent).await?;
                        }
                        TurnStep::RunTools(calls) => self.run_tools(&agent, calls).await?,
                        TurnStep::Replied => self.after_reply(&agent).await?,
                    }
                }
                Position::Ended(_) => return Ok(()),
            }
        }
    }

    /// Persists `event`, sends it to clients, and moves the position.
    async fn emit(&mut self, event: Event) -> Result<(), RunError> {
        let envelope = self.live.emit(event).await?;
        self.state.apply(&envelope.event);
        self.events.push(envelope);
        Ok(())
    }

    async fn set_status(
        &mut self,
        status: RunStatus,
        reason: Option<String>,
    ) -> Result<(), RunError> {
        if self.live.status() == Some(status) && reason.is_none() {
            return Ok(());
        }
        self.emit(Event::RunStatus { status, reason }).await
    }

    async fn finish(&mut self, status: RunStatus, reason: String) -> Result<(), StoreError> {
        for request_id in self.live.take_open_ui_requests() {
            let envelope = self
                .live
                .emit(Event::UiResponse {
                    request_id,
                    outcome: crate::event::UiOutcome::Cancelled {
                        reason: format!("the run ended: {reason}"),
                    },
                })
                .await?;
            self.state.apply(&envelope.event);
        }
        let lasting = if status == RunStatus::Failed {
            ChatStatus::Failed
        } else {
            ChatStatus::Completed
        };
        self.shared
            .store
            .set_status(&self.chat.chat_id, lasting, Some(reason.clone()))
            .await?;
        let envelope = self
            .live
            .emit(Event::RunStatus {
                status,
                reason: Some(reason),
            })
            .await?;
        self.state.apply(&envelope.event);
        Ok(())
    }

    async fn fail(&mut self, code: &str, message: String) -> Result<(), RunError> {
        self.emit(Event::Error {
            code: code.to_owned(),
            message: message.clone(),
        })
        .await?;
        self.finish(RunStatus::Failed, message).await?;
        Ok(())
    }

    async fn interrupt(&mut self, code: &str, message: String) -> Result<(), StoreError> {
        for event in [
            Event::Error {
                code: code.to_owned(),
                message: message.clone(),
            },
            Event::RunStatus {
                status: RunStatus::Interrupted,
                reason: Some(format!("{message}; send `continue` to retry")),
            },
        ] {
            let envelope = self.live.emit(event).await?;
            self.state.apply(&envelope.event);
        }
        Ok(())
    }

    /// UI requests opened by an earlier process cannot be answered any more
    /// (the tool that waited is gone); their tool calls run again.
    async fn close_stale_ui_requests(&mut self) -> Result<(), RunError> {
        for request_id in self.state.open_ui_requests.clone() {
            if self.live.is_ui_request_open(&request_id) {
                continue;
            }
            self.emit(Event::UiResponse {
                request_id,
                outcome: crate::event::UiOutcome::Cancelled {
                    reason: "the server restarted; the tool asks again".to_owned(),
                },
            })
            .await?;
        }
        if self.state.interrupted {
            self.set_status(RunStatus::Running, Some("continued".to_owned()))
                .await?;
        } else if matches!(
            self.state.position,
            Position::InTurn { .. } | Position::HandedOff(_) | Position::UserSpoke
        ) {
            self.set_status(RunStatus::Running, Some("resumed".to_owned()))
                .await?;
        }
        Ok(())
    }

    async fn start(&mut self) -> Result<(), RunError> {
        match self.workflow.startup_mode() {
            StartupMode::AgentDriven => {
                self.set_status(RunStatus::Running, None).await?;
                if let Some(text) = self.workflow.initial_message() {
                    self.emit(Event::UserMessage {
                        text: text.to_owned(),
                    })
                    .await?;
                }
                let initial = self.workflow.initial_agent().to_owned();
                self.handoff(
                    "user",
                    Decision {
                        target: Target::Agent(initial),
                        reason: HandoffReason::Pattern {
                            pattern: "initial_agent".to_owned(),
                        },
                    },
                )
                .await
            }
            _ => self.set_status(RunStatus::WaitingForUser, None).await,
        }
    }

    async fn handoff(&mut self, from: &str, decision: Decision) -> Result<(), RunError> {
        self.handoffs_in_a_row += 1;
        if self.handoffs_in_a_row > MAX_HANDOFFS_WITHOUT_A_TURN {
            return self
                .fail(
                    "HANDOFF_LOOP",
                    format!(
                        "{MAX_HANDOFFS_WITHOUT_A_TURN} handoffs in a row without an agent speaking; \
                         check the `pre` conditions in handoffs.json"
                    ),
                )
                .await;
        }
        self.emit(Event::Handoff {
            from: from.to_owned(),
            to: handoff::target_name(&decision.target),
            reason: decision.reason,
        })
        .await
    }

    async fn go_to(&mut self, target: Target) -> Result<(), RunError> {
        match target {
            Target::Terminate => {
                self.finish(RunStatus::Completed, "terminated by a handoff".to_owned())
                    .await?;
                Ok(())
            }
            Target::User => {
                let context = self.live.context().await?;
                let user = self.workflow.user_handoffs().clone();
                if let Some(decision) = handoff::by_context(&user, Scope::Pre, &context) {
                    return self.handoff("user", decision).await;
                }
                self.set_status(RunStatus::WaitingForUser, None).await
            }
            Target::Agent(name) => self.start_turn(&name).await,
        }
    }

    /// Ends the run if the agents used all their turns; true if it did.
    async fn end_at_max_turns(&mut self) -> Result<bool, RunError> {
        let max_turns = self.workflow.max_turns().get();
        if self.state.turns < max_turns {
            return Ok(false);
        }
        let from = self.state.last_agent.clone().unwrap_or_default();
        self.emit(Event::Handoff {
            from,
            to: "terminate".to_owned(),
            reason: HandoffReason::MaxTurns,
        })
        .await?;
        self.finish(
            RunStatus::Completed,
            format!("max_turns ({max_turns}) reached"),
        )
        .await?;
        Ok(true)
    }

    async fn start_turn(&mut self, name: &str) -> Result<(), RunError> {
        if self.end_at_max_turns().await? {
            return Ok(());
        }
        let Some(agent) = self.workflow.agent(name).cloned() else {
            return self
                .fail("AGENT_GONE", format!("no agent `{name}` in this workflow"))
                .await;
        };
        let context = self.live.context().await?;
        if let Some(decision) = handoff::by_context(&agent.handoffs, Scope::Pre, &context) {
            return self.handoff(name, decision).await;
        }
        self.set_status(RunStatus::Running, None).await?;
        self.tool_rounds = 0;
        self.handoffs_in_a_row = 0;
        self.emit(Event::Speaker {
            agent: name.to_owned(),
            turn: self.state.turns + 1,
        })
        .await
    }

    /// Waits for the user's message. Returns false when the inbox closed
    /// (the server is shutting down).
    async fn wait_for_user(&mut self) -> Result<bool, RunError> {
        loop {
            match self.next_input().await? {
                None => return Ok(false),
                Some(RunInput::UserMessage(text)) => {
                    self.set_status(RunStatus::Running, None).await?;
                    self.emit(Event::UserMessage { text }).await?;
                    return Ok(true);
                }
                Some(RunInput::SelectSpeaker(_) | RunInput::Continue) => {}
            }
        }
    }

    /// Waits for the user to pick the next speaker. Returns false when the
    /// inbox closed (the server is shutting down).
    async fn wait_for_speaker(&mut self) -> Result<bool, RunError> {
        let candidates = pattern::candidates(&self.workflow);
        loop {
            match self.next_input().await? {
                None => return Ok(false),
                Some(RunInput::SelectSpeaker(name)) if candidates.contains(&name) => {
                    let from = self.state.pick_from.clone();
                    let target = handoff::parse_target(&name);
                    self.handoff(
                        &from,
                        Decision {
                            target,
                            reason: HandoffReason::User,
                        },
                    )
                    .await?;
                    return Ok(true);
                }
                Some(RunInput::SelectSpeaker(name)) => {
                    self.emit(Event::Error {
                        code: "UNKNOWN_SPEAKER".to_owned(),
                        message: format!(
                            "`{name}` is not a participant; choose one of: {}",
                            candidates.join(", ")
                        ),
                    })
                    .await?;
                }
                Some(RunInput::UserMessage(text)) => {
                    self.emit(Event::UserMessage { text }).await?;
                    return Ok(true);
                }
                Some(RunInput::Continue) => {}
            }
        }
    }

    async fn next_input(&mut self) -> Result<Option<RunInput>, RunError> {
        let input = tokio::select! {
            input = self.inbox.recv() => input,
            _ = self.cancel.wait_for(|c| *c) => return Err(RunError::Cancelled),
        };
        self.live.release_input();
        Ok(input)
    }

    async fn route_from_user(&mut self) -> Result<(), RunError> {
        let user = self.workflow.user_handoffs().clone();
        let context = self.live.context().await?;
        if let Some(decision) =
            handoff::by_context(&user, Scope::Post, &context).or_else(|| handoff::after_work(&user))
        {
            return self.handoff("user", decision).await;
        }
        let last = self.state.last_agent.clone();
        let choice = pattern::after_user(&self.workflow, last.as_deref(), &mut self.rng);
        self.follow(choice, "user").await
    }

    async fn follow(&mut self, choice: Choice, from: &str) -> Result<(), RunError> {
        match choice {
            Choice::Decided(decision) => self.handoff(from, decision).await,
            Choice::AskLlm => {
                let decision = self.select_by_llm().await?;
                self.handoff(from, decision).await
            }
            Choice::AskUser => {
                self.emit(Event::SpeakerRequest {
                    candidates: pattern::candidates(&self.workflow),
                })
                .await?;
                self.set_status(RunStatus::WaitingForSpeaker, None).await
            }
        }
    }

    async fn call_llm(&mut self, agent: &Agent) -> Result<(), RunError> {
        let request = self.request_for(agent);
        let model = request.model.clone();
        let live = Arc::clone(&self.live);
        let name = agent.name.clone();
        let mut on_delta = |delta: &str| {
            live.send_ephemeral(Event::TextDelta {
                agent: name.clone(),
                delta: delta.to_owned(),
            });
        };
        let llm = self.shared.llm.clone();
        let mut cancel = self.cancel.clone();
        let response = tokio::select! {
            response = llm.complete(request, &mut on_delta) => response,
            _ = cancel.wait_for(|c| *c) => return Err(RunError::Cancelled),
        }
        .map_err(|error| RunError::Llm {
            agent: agent.name.clone(),
            error,
        })?;
        if let Some(usage) = response.usage {
            self.emit(Event::Usage {
                agent: agent.name.clone(),
                model: if response.model.is_empty() {
                    model
                } else {
                    response.model.clone()
                },
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
            })
            .await?;
        }
        if !response.tool_calls.is_empty() {
            self.tool_rounds += 1;
            let tool_calls = response
                .tool_calls
                .into_iter()
                .map(|c| ToolCallRecord {
                    id: c.id,
                    name: c.name,
                    arguments: c.arguments,
                })
                .collect();
            return self
                .emit(Event::AgentMessage {
                    agent: agent.name.clone(),
                    text: response.content,
                    tool_calls,
                    structured: None,
                    model: None,
                })
                .await;
        }
        let Some(model) = agent
            .structured_output
            .as_deref()
            .and_then(|m| self.workflow.output_model(m))
            .cloned()
        else {
            return self
                .emit(Event::AgentMessage {
                    agent: agent.name.clone(),
                    text: response.content,
                    tool_calls: Vec::new(),
                    structured: None,
                    model: None,
                })
                .await;
        };
        match self.validators.check(&model, &response.content) {
            Ok(value) => {
                self.emit(Event::AgentMessage {
                    agent: agent.name.clone(),
                    text: response.content,
                    tool_calls: Vec::new(),
                    structured: Some(value.clone()),
                    model: Some(model.name.clone()),
                })
                .await?;
                self.set_agent_derived(agent, &value).await?;
                self.auto_execute(agent, &model.auto_execute, &value).await
            }
            Err(errors) => {
                let retries = self.state.retries;
                self.emit(Event::AgentMessage {
                    agent: agent.name.clone(),
                    text: response.content,
                    tool_calls: Vec::new(),
                    structured: None,
                    model: Some(model.name.clone()),
                })
                .await?;
                if retries < STRUCTURED_OUTPUT_RETRIES {
                    self.emit(Event::StructuredOutputRetry {
                        agent: agent.name.clone(),
                        model: model.name.clone(),
                        errors,
                    })
                    .await
                } else {
                    self.fail(
                        "STRUCTURED_OUTPUT_INVALID",
                        format!(
                            "agent `{}` answered twice without matching the `{}` schema: {}",
                            agent.name,
                            model.name,
                            errors.join("; ")
                        ),
                    )
                    .await
                }
            }
        }
    }

    fn request_for(&self, agent: &Agent) -> ChatRequest {
        chat_request(
            &self.workflow,
            agent,
            self.events.iter().map(|e| &**e),
            self.shared.llm.default_model(),
            self.shared.llm_timeout,
            self.chat.cache_seed,
        )
    }

    async fn run_tools(
        &mut self,
        agent: &Agent,
        calls: Vec<ToolCallRecord>,
    ) -> Result<(), RunError> {
        for call in calls {
            let arguments = serde_json::from_str(&call.arguments)
                .unwrap_or_else(|_| Value::String(call.arguments.clone()));
            self.emit(Event::ToolCall {
                call_id: call.id.clone(),
                agent: agent.name.clone(),
                tool: call.name.clone(),
                arguments,
            })
            .await?;
            let report = match handoff::transfer_target(&agent.handoffs, &call.name) {
                Some(target) => ToolReport {
                    ok: true,
                    content: format!("transferring to {}", handoff::target_name(&target)),
                    error: None,
                },
                None => {
                    self.execute(agent, &call.name, &call.id, &call.arguments)
                        .await?
                }
            };
            self.emit(Event::ToolResult {
                call_id: call.id,
                agent: agent.name.clone(),
                tool: call.name,
                ok: report.ok,
                content: report.content,
                error: report.error,
            })
            .await?;
        }
        Ok(())
    }

    async fn execute(
        &mut self,
        agent: &Agent,
        tool_name: &str,
        call_id: &str,
        arguments: &str,
    ) -> Result<ToolReport, RunError> {
        if !agent.tools.iter().any(|t| t == tool_name) {
            return Ok(ToolReport::failed(
                "unknown_tool",
                format!(
                    "agent `{}` has no tool `{tool_name}`; its tools are: {}",
                    agent.name,
                    agent.tools.join(", ")
                ),
            ));
        }
        let Some(tool) = self.workflow.tool(tool_name).cloned() else {
            return Ok(ToolReport::failed(
                "unknown_tool",
                format!("no tool `{tool_name}` in this workflow"),
            ));
        };
        let Some(plugin) = self.shared.plugin(&tool.plugin) else {
            return Ok(ToolReport::failed(
                "plugin_unavailable",
                format!("plugin `{}` is not loaded", tool.plugin),
            ));
        };
        let info = mozaiks_plugin_host::CallInfo {
            chat_id: self.chat.chat_id.clone(),
            workflow: self.workflow.name().to_owned(),
            agent: agent.name.clone(),
            tool_call_id: call_id.to_owned(),
        };
        let live = Arc::clone(&self.live);
        let mut cancel = self.cancel.clone();
        tokio::select! {
            report = tools::execute(&plugin, &tool.function, arguments, info, &live, &tool.name) => Ok(report),
            _ = cancel.wait_for(|c| *c) => Err(RunError::Cancelled),
        }
    }

    async fn after_tools(&mut self, agent: &Agent) -> Result<(), RunError> {
        let transfer = self.last_transfer(agent);
        if let Some(target) = transfer {
            let tool = handoff::transfer_tool_name(&target);
            return self
                .handoff(
                    &agent.name,
                    Decision {
                        target,
                        reason: HandoffReason::Llm { tool },
                    },
                )
                .await;
        }
        // Control comes back to the agent as in AG2: its `pre` conditions
        // are checked before it is asked again, so a tool that changes the
        // context hands off without another LLM call.
        let context = self.live.context().await?;
        if let Some(decision) = handoff::by_context(&agent.handoffs, Scope::Pre, &context) {
            return self.handoff(&agent.name, decision).await;
        }
        if self.tool_rounds >= MAX_TOOL_ROUNDS_PER_TURN {
            self.emit(Event::Error {
                code: "TOOL_ROUND_LIMIT".to_owned(),
                message: format!(
                    "agent `{}` called tools {MAX_TOOL_ROUNDS_PER_TURN} times in one turn without answering; its turn ends",
                    agent.name
                ),
            })
            .await?;
            return self.after_reply(agent).await;
        }
        let Position::InTurn { .. } = self.state.position else {
            return Ok(());
        };
        self.state.position = Position::InTurn {
            agent: agent.name.clone(),
            step: TurnStep::CallLlm,
        };
        Ok(())
    }

    fn last_transfer(&self, agent: &Agent) -> Option<Target> {
        self.events.iter().rev().find_map(|e| match &e.event {
            Event::AgentMessage { tool_calls, .. } => Some(
                tool_calls
                    .iter()
                    .find_map(|c| handoff::transfer_target(&agent.handoffs, &c.name)),
            ),
            _ => None,
        })?
    }

    async fn after_reply(&mut self, agent: &Agent) -> Result<(), RunError> {
        let context = self.live.context().await?;
        let decision = handoff::by_context(&agent.handoffs, Scope::Post, &context)
            .or_else(|| handoff::after_work(&agent.handoffs));
        // After the last turn only a terminate handoff still applies (it
        // says why the run ended); no LLM call is spent choosing a speaker
        // who would not get a turn.
        let terminates = decision
            .as_ref()
            .is_some_and(|d| d.target == Target::Terminate);
        if !terminates && self.end_at_max_turns().await? {
            return Ok(());
        }
        if let Some(decision) = decision {
            return self.handoff(&agent.name, decision).await;
        }
        let choice = pattern::after_agent(&self.workflow, &agent.name, &mut self.rng);
        self.follow(choice, &agent.name).await
    }

    async fn select_by_llm(&mut self) -> Result<Decision, RunError> {
        let candidates = pattern::candidates(&self.workflow);
        let roster: Vec<String> = self
            .workflow
            .agents()
            .iter()
            .map(|a| {
                let summary = a
                    .system_message
                    .lines()
                    .find(|l| !l.trim().is_empty() && !l.starts_with('['));
                format!("- {}: {}", a.name, summary.unwrap_or_default().trim())
            })
            .collect();
        let mut conversation = String::new();
        for envelope in self.events.iter().rev().take(40).rev() {
            match &envelope.event {
                Event::UserMessage { text } => conversation.push_str(&format!("user: {text}\n")),
                Event::AgentMessage { agent, text, .. } if !text.is_empty() => {
                    conversation.push_str(&format!("{agent}: {text}\n"));
                }
                _ => {}
            }
        }
        let user_note = if self.workflow.human_in_the_loop() {
            " or `user` when the human should answer"
        } else {
            ""
        };
        let request = ChatRequest {
            model: self.shared.llm.default_model().to_owned(),
            messages: vec![
                ChatMessage::System {
                    content: format!(
                        "You choose who speaks next in a group chat. The participants:\n{}\n\
                         Reply with only the name of the next speaker{user_note}.",
                        roster.join("\n")
                    ),
                },
                ChatMessage::User {
                    name: None,
                    content: format!("The conversation so far:\n{conversation}\nWho speaks next?"),
                },
            ],
            tools: Vec::new(),
            response_format: None,
            temperature: Some(0.0),
            max_tokens: Some(20),
            timeout: self.shared.llm_timeout,
            seed: Some(i64::from(self.chat.cache_seed)),
        };
        let llm = self.shared.llm.clone();
        let response = llm
            .complete(request, &mut |_| {})
            .await
            .map_err(|error| RunError::Llm {
                agent: "speaker_selection".to_owned(),
                error,
            })?;
        if let Some(usage) = response.usage {
            self.emit(Event::Usage {
                agent: "speaker_selection".to_owned(),
                model: response.model.clone(),
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
            })
            .await?;
        }
        let pick = pattern::parse_pick(&response.content, &candidates).unwrap_or_else(|| {
            // An unusable answer falls back to the next agent in order.
            let agents = self.workflow.agents();
            let index = self
                .state
                .last_agent
                .as_deref()
                .and_then(|l| agents.iter().position(|a| a.name == l))
                .map_or(0, |i| (i + 1) % agents.len());
            agents[index].name.clone()
        });
        Ok(Decision {
            target: handoff::parse_target(&pick),
            reason: HandoffReason::Pattern {
                pattern: "AutoPattern".to_owned(),
            },
        })
    }

    /// Context variables derived from this agent's structured output: the
    /// field of the same name, else the whole output.
    async fn set_agent_derived(
        &mut self,
        agent: &Agent,
        structured: &Value,
    ) -> Result<(), RunError> {
        let derived: Vec<String> = self
            .workflow
            .context_variables()
            .iter()
            .filter(|v| {
                matches!(&v.source, VariableSource::Derived { by: Producer::Agent(a), .. } if *a == agent.name)
            })
            .map(|v| v.name.clone())
            .collect();
        for name in derived {
            let value = match structured {
                Value::Object(fields) if fields.contains_key(&name) => fields[&name].clone(),
                whole => whole.clone(),
            };
            self.emit(Event::ContextChanged {
                key: name,
                value: Some(value),
                by: format!("agent:{}", agent.name),
            })
            .await?;
        }
        Ok(())
    }

    /// Sends a structured output to the UI tools bound to its model, as part
    /// of the agent's turn (not in the background, unlike MozaiksAI).
    async fn auto_execute(
        &mut self,
        agent: &Agent,
        tools: &[String],
        value: &Value,
    ) -> Result<(), RunError> {
        for tool_name in tools {
            let Some(tool) = self.workflow.tool(tool_name).cloned() else {
                continue;
            };
            let call_id = format!("auto-{}", uuid::Uuid::new_v4());
            self.emit(Event::ToolCall {
                call_id: call_id.clone(),
                agent: agent.name.clone(),
                tool: tool.name.clone(),
                arguments: value.clone(),
            })
            .await?;
            let report = match self.shared.plugin(&tool.plugin) {
                Some(plugin) => {
                    let info = mozaiks_plugin_host::CallInfo {
                        chat_id: self.chat.chat_id.clone(),
                        workflow: self.workflow.name().to_owned(),
                        agent: agent.name.clone(),
                        tool_call_id: call_id.clone(),
                    };
                    let live = Arc::clone(&self.live);
                    tools::execute(
                        &plugin,
                        &tool.function,
                        &value.to_string(),
                        info,
                        &live,
                        &tool.name,
                    )
                    .await
                }
                None => ToolReport::failed(
                    "plugin_unavailable",
                    format!("plugin `{}` is not loaded", tool.plugin),
                ),
            };
            self.emit(Event::ToolResult {
                call_id,
                agent: agent.name.clone(),
                tool: tool.name.clone(),
                ok: report.ok,
                content: report.content,
                error: report.error,
            })
            .await?;
        }
        Ok(())
    }
}

/// The LLM request of `agent`'s turn after `events`: its system message
/// and transcript, its tools (schemas from the plugins' `describe()`) plus
/// one transfer tool per LLM handoff, its structured-output model as
/// `response_format`, its model settings (or the server's defaults), and
/// the chat's cache seed.
pub fn chat_request<'a>(
    workflow: &Workflow,
    agent: &Agent,
    events: impl IntoIterator<Item = &'a Envelope>,
    default_model: &str,
    default_timeout: std::time::Duration,
    cache_seed: u32,
) -> ChatRequest {
    let mut tools: Vec<ToolDefinition> = agent
        .tools
        .iter()
        .filter_map(|name| workflow.tool(name))
        .map(|tool| ToolDefinition {
            name: tool.name.clone(),
            description: tool.description.clone(),
            parameters: tool.parameters.clone(),
        })
        .collect();
    tools.extend(handoff::transfer_tools(&agent.handoffs));
    let response_format = agent
        .structured_output
        .as_deref()
        .and_then(|m| workflow.output_model(m))
        .map(|m| ResponseSchema {
            name: m.name.clone(),
            schema: m.schema.clone(),
        });
    ChatRequest {
        model: agent
            .llm
            .model
            .clone()
            .unwrap_or_else(|| default_model.to_owned()),
        messages: transcript(&agent.name, &agent.system_message, events),
        tools,
        response_format,
        temperature: agent.llm.temperature,
        max_tokens: agent.llm.max_tokens,
        timeout: agent.llm.timeout.unwrap_or(default_timeout),
        seed: Some(i64::from(cache_seed)),
    }
}

/// The initial context variables of a new chat, in declaration order, plus
/// the ids every tool may read. Fails with the variable and its env var
/// when a required environment variable is unset.
pub(super) fn initial_context(
    workflow: &Workflow,
    chat: &ChatRecord,
) -> Result<Map<String, Value>, (String, String)> {
    let mut context = Map::new();
    for (key, value) in [
        ("workflow_name", &chat.workflow),
        ("app_id", &chat.app_id),
        ("chat_id", &chat.chat_id),
        ("user_id", &chat.user_id),
    ] {
        context.insert(key.to_owned(), Value::String(value.clone()));
    }
    for variable in workflow.context_variables() {
        let value = match &variable.source {
            VariableSource::Static { default } | VariableSource::Derived { default, .. } => {
                default.clone()
            }
            VariableSource::Environment {
                env_var,
                default,
                required,
            } => match std::env::var(env_var) {
                Ok(text) => coerce_env(&text, variable.var_type),
                Err(_) => match default {
                    Some(default) => default.clone(),
                    None if *required => {
                        return Err((variable.name.clone(), env_var.clone()));
                    }
                    None => Value::Null,
                },
            },
        };
        context.insert(variable.name.clone(), value);
    }
    Ok(context)
}

/// An environment variable's text as the declared type: JSON when it
/// parses as that type, else the string.
fn coerce_env(text: &str, var_type: crate::workflow::model::VariableType) -> Value {
    use crate::workflow::model::VariableType as T;
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    match (var_type, parsed) {
        (T::Boolean, Some(v @ Value::Bool(_)))
        | (T::Integer | T::Number, Some(v @ Value::Number(_)))
        | (T::Object, Some(v @ Value::Object(_)))
        | (T::Array, Some(v @ Value::Array(_))) => v,
        _ => Value::String(text.to_owned()),
    }
}
