//! One chat's run: a task that moves the chat from one position to the next
//! ([`Position`]), persisting every step as an event before the next one.
//!
//! The loop reads where the chat stands from its own event log, so a run
//! started on a fresh chat and a run resumed after a crash are the same
//! code: the resumed one simply starts further along.
//!
//! This file is the loop and the moves between turns (handoffs, waiting,
//! speaker picks); `turn.rs` is one agent's turn (LLM call, tools,
//! structured output) and `request.rs` what the LLM is sent.

use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, watch};

#[cfg(test)]
mod flush_tests;
mod lifecycle;
mod request;
mod turn;
mod user_route;

pub use request::chat_request;
pub(crate) use request::initial_context;
use request::{RequestDefaults, chat_request_with};

use super::Shared;
use super::auto_reply;
use super::handoff::{self, Decision, Scope};
use super::history::{Position, RunPosition, TurnStep};
use super::live::{EmitError, LiveChat, RunInput};
use super::pattern::{self, Choice};
use super::structured::Validators;
use crate::event::{Envelope, ErrorCode, Event, HandoffReason, RunStatus};
use crate::llm::{ChatMessage, ChatRequest, LlmError};
use crate::store::{ChatRecord, ChatStatus, StoreError};
use crate::workflow::Workflow;
use crate::workflow::model::{Agent, LifecycleTrigger, StartupMode, Target};

/// Most LLM rounds with tool calls in one agent turn. A model that keeps
/// calling tools without ever answering would otherwise loop until
/// `max_turns` never comes (tool rounds are not turns).
const MAX_TOOL_ROUNDS_PER_TURN: u32 = 16;

/// Most handoffs in a row without an agent speaking: `pre` conditions that
/// point at each other would otherwise spin without an LLM call to stop them.
const MAX_HANDOFFS_WITHOUT_A_TURN: u32 = 32;

/// Why a run stopped before its end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
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
    /// The server is shutting down; the run stopped at a stored point and
    /// continues on the next start (also when its chat was parked and an
    /// event could not be stored: [`EmitError::ShuttingDown`]).
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The run waited for input longer than the idle limit and was
    /// unloaded; the next input starts it again from the log.
    #[error("unloaded while idle")]
    Unloaded,
    /// Another server took the chat over (cluster mode); this one stores
    /// nothing more for it.
    #[error("the chat moved to another server")]
    Moved {
        /// The new owner, when known.
        owner: Option<String>,
    },
}

impl From<EmitError> for RunError {
    fn from(error: EmitError) -> Self {
        match error {
            EmitError::ShuttingDown => Self::ShuttingDown,
            EmitError::Moved { owner } => Self::Moved { owner },
            EmitError::Store(store) => Self::Store(store),
        }
    }
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
    lifecycle: watch::Receiver<super::drain::Lifecycle>,
    turn: super::instrument::TurnClock,
    /// The chat's span (set when the run starts in it): the parent of every
    /// `turn` span, so turns are siblings, never nested.
    chat_span: tracing::Span,
    /// The chat's write failures when the run started: a later one means
    /// an event the run emitted was not stored, and the run stops
    /// (`live/writer.rs`).
    writes_seen: u64,
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
        let lifecycle = shared.lifecycle.subscribe();
        let writes_seen = live.write_failures();
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
            lifecycle,
            turn: super::instrument::TurnClock::default(),
            chat_span: tracing::Span::none(),
            writes_seen,
        }
    }

    /// Runs until the chat ends, waits for an input that a later run will
    /// take, or fails; records how it stopped.
    pub(super) async fn run(mut self) {
        self.chat_span = tracing::Span::current();
        let chat_id = self.chat.chat_id.clone();
        let outcome = self.drive().await;
        let outcome = self.settle(outcome).await;
        // A run stopped for the shutdown or by the store keeps the chat's
        // lease (cluster mode): the shutdown gives it up knowing whether the
        // run was active, and a run stopped by the store resumes here.
        let keep_lease = matches!(
            outcome,
            Err(RunError::ShuttingDown | RunError::Store(_) | RunError::Moved { .. })
        );
        let recorded = match outcome {
            Ok(()) => Ok(()),
            Err(RunError::Cancelled) => {
                self.finish(RunStatus::Completed, "ended by the user".to_owned())
                    .await
            }
            Err(RunError::Llm { agent, error }) => {
                tracing::warn!(
                    chat_id,
                    agent,
                    error = &error as &dyn std::error::Error,
                    "LLM call failed; run interrupted"
                );
                self.interrupt(error.code(), format!("agent `{agent}`: {error}"))
                    .await
            }
            Err(RunError::ShuttingDown) => {
                tracing::info!(
                    chat_id,
                    "run stopped for the shutdown at a stored point; it continues on the next start"
                );
                Ok(())
            }
            Err(RunError::Store(error)) => Err(EmitError::from(error)),
            Err(RunError::Moved { owner }) => Err(EmitError::Moved { owner }),
            Err(RunError::Unloaded) => {
                // Already detached, with no input pending or claimed (see
                // `LiveChat::detach_if_idle`): nothing else to undo. The
                // chat leaves memory if nobody else holds it.
                tracing::debug!(
                    chat_id,
                    "idle run unloaded; the next input resumes it from the log"
                );
                let shared = Arc::clone(&self.shared);
                let live = Arc::clone(&self.live);
                drop(self);
                shared.release_lease(&live).await;
                drop(live);
                shared.forget_if_unused(&chat_id);
                return;
            }
        };
        let release =
            !keep_lease && !matches!(recorded, Err(EmitError::ShuttingDown | EmitError::Store(_)));
        if let Err(EmitError::Moved { owner }) = &recorded {
            // Quietly: the chat is fine, another server runs it.
            tracing::info!(
                chat_id,
                owner = owner.as_deref().unwrap_or("unknown"),
                "another server took the chat over; this server stopped its run and stores nothing more for it"
            );
            self.live.detach_run();
            self.live.release_input();
            let shared = Arc::clone(&self.shared);
            drop(self);
            shared.lost_lease(&chat_id);
            return;
        }
        if let Err(EmitError::ShuttingDown) = recorded {
            tracing::info!(
                chat_id,
                "run stopped for the shutdown; its chat continues on the next start"
            );
        } else if let Err(EmitError::Store(error)) = recorded {
            tracing::error!(
                chat_id,
                error = &error as &dyn std::error::Error,
                "run stopped: the store failed; the chat resumes when the store is back"
            );
            // Nothing can be persisted now, so this one event is sent
            // without a seq; the run resumes from what the store has.
            self.live.send_ephemeral(Event::Error {
                code: ErrorCode::StoreUnavailable,
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
        if release {
            // Ended, or waiting for its user or a `continue`: nobody needs
            // to run the chat now (cluster mode: its lease is given up).
            let shared = Arc::clone(&self.shared);
            let live = Arc::clone(&self.live);
            drop(self);
            shared.release_lease(&live).await;
        }
    }

    async fn drive(&mut self) -> Result<(), RunError> {
        self.close_stale_ui_requests().await?;
        self.before_chat_of_user_driven().await?;
        loop {
            if *self.cancel.borrow() {
                return Err(RunError::Cancelled);
            }
            if *self.lifecycle.borrow() != super::drain::Lifecycle::Serving {
                return Err(RunError::ShuttingDown);
            }
            if matches!(
                self.state.position,
                Position::HandedOff(_) | Position::UserSpoke
            ) {
                self.adopt_reloaded_workflow().await?;
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
                    // One `turn` span per step, a sibling of the last one
                    // under the chat's span: a line names one agent, however
                    // many turns the chat has had.
                    let span = self.turn_span(&agent);
                    tracing::Instrument::instrument(self.turn_step(&agent, step), span).await?;
                }
                Position::Ended(_) => return Ok(()),
            }
        }
    }

    /// A `turn` span of `agent`, a child of the chat's span.
    fn turn_span(&self, agent: &str) -> tracing::Span {
        tracing::info_span!(parent: &self.chat_span, "turn", agent)
    }

    /// One step of `agent`'s turn.
    async fn turn_step(&mut self, agent: &str, step: TurnStep) -> Result<(), RunError> {
        let Some(agent) = self.workflow.agent(agent).cloned() else {
            let reason = format!(
                "agent `{agent}` is no longer in workflow `{}`",
                self.workflow.name()
            );
            return self.fail(ErrorCode::AgentGone, reason).await;
        };
        match step {
            TurnStep::CallLlm => {
                self.run_lifecycle(LifecycleTrigger::BeforeAgent, Some(&agent.name))
                    .await?;
                self.call_llm(&agent).await
            }
            TurnStep::RunTools(calls) if calls.is_empty() => self.after_tools(&agent).await,
            TurnStep::RunTools(calls) => self.run_tools(&agent, calls).await,
            TurnStep::Replied => {
                self.auto_execute(&agent).await?;
                self.after_reply(&agent).await
            }
        }
    }

    /// At a turn boundary, switches to the workflow's latest version if it
    /// was reloaded since the run took its version. A turn (LLM call, tool
    /// rounds, reply) always runs on one version. A version without the
    /// agent the run is handing to is not taken (the run keeps its version
    /// and says so in the log); a removed workflow leaves the run on its
    /// version.
    async fn adopt_reloaded_workflow(&mut self) -> Result<(), RunError> {
        let Some(latest) = self.shared.workflows.get(self.workflow.name()) else {
            return Ok(());
        };
        if latest.version() == self.workflow.version() {
            return Ok(());
        }
        if let Position::HandedOff(to) = &self.state.position
            && let Target::Agent(agent) = handoff::parse_target(to)
            && latest.agent(&agent).is_none()
        {
            tracing::warn!(
                chat_id = %self.chat.chat_id,
                workflow = self.workflow.name(),
                agent,
                "the reloaded workflow has no agent `{agent}`, whom the run is handing to; keeping the version in use"
            );
            return Ok(());
        }
        let previous = std::mem::replace(&mut self.workflow, latest);
        self.emit(Event::WorkflowUpdated {
            workflow: self.workflow.name().to_owned(),
            previous: previous.version().to_owned(),
            version: self.workflow.version().to_owned(),
        })
        .await
    }

    /// Queues `event` to be persisted and sent to clients, and moves the
    /// position. The run goes on while the event is written
    /// (`live/writer.rs`); it waits for the writes before anything outside
    /// the process sees the chat ([`flush`](Self::flush)).
    async fn emit(&mut self, event: Event) -> Result<(), RunError> {
        let envelope = self.live.emit_queued(event, self.writes_seen).await?;
        self.state.apply(&envelope.event);
        self.events.push(envelope);
        Ok(())
    }

    /// Persists `event`, sends it, and waits until it is durable.
    async fn emit_durable(&mut self, event: Event) -> Result<(), EmitError> {
        let envelope = self.live.emit_durable(event, self.writes_seen).await?;
        self.state.apply(&envelope.event);
        self.events.push(envelope);
        Ok(())
    }

    /// Waits until every event the run emitted is durable and sent: before
    /// a plugin call, a hook, the chat's lasting status. Fails when one of
    /// them was not stored.
    async fn flush(&self) -> Result<(), EmitError> {
        self.live.flush(self.writes_seen).await
    }

    /// Waits for the run's last writes once it stopped. A write that failed
    /// meanwhile decides how the run ended: what the run did after it was
    /// never stored, and the chat resumes from the log.
    async fn settle(&self, outcome: Result<(), RunError>) -> Result<(), RunError> {
        let flushed = self.flush().await;
        match (outcome, flushed) {
            (
                outcome @ Err(RunError::Store(_) | RunError::Moved { .. } | RunError::ShuttingDown),
                _,
            ) => outcome,
            (outcome, Ok(())) => outcome,
            (_, Err(error)) => Err(error.into()),
        }
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

    async fn finish(&mut self, status: RunStatus, reason: String) -> Result<(), EmitError> {
        if self.live.is_moved() {
            // Another server runs the chat: its lasting state is not ours
            // to set.
            return Err(EmitError::Moved { owner: None });
        }
        for request_id in self.live.take_open_ui_requests() {
            self.emit_durable(Event::UiResponse {
                request_id,
                outcome: crate::event::UiOutcome::Cancelled {
                    reason: format!("the run ended: {reason}"),
                },
            })
            .await?;
        }
        // The lasting status says the log is complete: it is.
        self.flush().await?;
        let lasting = if status == RunStatus::Failed {
            ChatStatus::Failed
        } else {
            ChatStatus::Completed
        };
        self.shared
            .store
            .set_status(&self.chat.chat_id, lasting, Some(reason.clone()))
            .await?;
        self.emit_durable(Event::RunStatus {
            status,
            reason: Some(reason),
        })
        .await
    }

    async fn fail(&mut self, code: ErrorCode, message: String) -> Result<(), RunError> {
        self.emit(Event::Error {
            code,
            message: message.clone(),
        })
        .await?;
        self.finish(RunStatus::Failed, message).await?;
        Ok(())
    }

    async fn interrupt(&mut self, code: ErrorCode, message: String) -> Result<(), EmitError> {
        for event in [
            Event::Error {
                code,
                message: message.clone(),
            },
            Event::RunStatus {
                status: RunStatus::Interrupted,
                reason: Some(format!("{message}; send `continue` to retry")),
            },
        ] {
            self.emit_durable(event).await?;
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
                self.run_lifecycle(LifecycleTrigger::BeforeChat, None)
                    .await?;
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
            // `UserDriven` chats start waiting for the user (their
            // `before_chat`: `Run::before_chat_of_user_driven`).
            _ => self.set_status(RunStatus::WaitingForUser, None).await,
        }
    }

    async fn handoff(&mut self, from: &str, decision: Decision) -> Result<(), RunError> {
        self.turn.end(self.workflow.name());
        self.handoffs_in_a_row += 1;
        if self.handoffs_in_a_row > MAX_HANDOFFS_WITHOUT_A_TURN {
            return self
                .fail(
                    ErrorCode::HandoffLoop,
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
                self.run_lifecycle(LifecycleTrigger::AfterChat, None)
                    .await?;
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
        self.run_lifecycle(LifecycleTrigger::AfterChat, None)
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
                .fail(
                    ErrorCode::AgentGone,
                    format!("no agent `{name}` in this workflow"),
                )
                .await;
        };
        let context = self.live.context().await?;
        if let Some(decision) = handoff::by_context(&agent.handoffs, Scope::Pre, &context) {
            return self.handoff(name, decision).await;
        }
        let history = self.events.iter().map(|e| &e.event);
        if let Some(limit) =
            auto_reply::limit_reached(history, name, agent.max_consecutive_auto_reply)
        {
            let target = if self.workflow.human_in_the_loop() {
                Target::User
            } else {
                Target::Terminate
            };
            let reason = HandoffReason::MaxConsecutiveAutoReply { limit };
            return self.handoff(name, Decision { target, reason }).await;
        }
        self.set_status(RunStatus::Running, None).await?;
        self.tool_rounds = 0;
        self.handoffs_in_a_row = 0;
        self.turn_span(name)
            .in_scope(|| self.turn.start(self.workflow.name(), name));
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
                        code: ErrorCode::UnknownSpeaker,
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

    /// The next input. After the idle limit without one, the run
    /// unloads itself ([`RunError::Unloaded`]) unless an input is on its
    /// way: a chat waiting for its user then costs no memory.
    async fn next_input(&mut self) -> Result<Option<RunInput>, RunError> {
        let input = loop {
            tokio::select! {
                input = self.inbox.recv() => break input,
                _ = self.cancel.wait_for(|c| *c) => return Err(RunError::Cancelled),
                _ = super::drain::draining(&mut self.lifecycle) => return Err(RunError::ShuttingDown),
                owner = self.live.moved() => return Err(RunError::Moved { owner }),
                () = idle(self.shared.idle_run()) => {
                    if self.live.detach_if_idle(&self.inbox) {
                        return Err(RunError::Unloaded);
                    }
                }
            }
        };
        self.live.release_input();
        Ok(input)
    }

    /// After a user message: the user's `post` expressions, then its `llm`
    /// conditions (one classification call), then its `after_work`, then
    /// the pattern.
    async fn route_from_user(&mut self) -> Result<(), RunError> {
        let user = self.workflow.user_handoffs().clone();
        let context = self.live.context().await?;
        let mut decision = handoff::by_context(&user, Scope::Post, &context);
        if decision.is_none() {
            decision = self.by_user_llm_condition(&user).await?;
        }
        if let Some(decision) = decision.or_else(|| handoff::after_work(&user)) {
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

    async fn after_reply(&mut self, agent: &Agent) -> Result<(), RunError> {
        self.run_lifecycle(LifecycleTrigger::AfterAgent, Some(&agent.name))
            .await?;
        self.turn.end(self.workflow.name());
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
        let mut on_retry = turn::retry_reporter(&self.live, "speaker_selection");
        let response = llm
            .complete_with_retries(request, &mut |_| {}, &mut on_retry)
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
}

/// Resolves after `limit`, or never without one.
async fn idle(limit: Option<std::time::Duration>) {
    match limit {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending().await,
    }
}
