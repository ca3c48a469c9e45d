//! Reading a chat's event log back: where its run stands (so a restarted
//! server resumes exactly there) and the transcript each agent's LLM sees.

use std::collections::HashSet;

use crate::event::{CallOrigin, Envelope, Event, RunStatus, ToolCallRecord};
use crate::llm::{ChatMessage, ToolCallRequest};

/// Where a run stands after the events so far.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Position {
    /// Nothing happened yet.
    Start,
    /// A handoff chose the next participant.
    HandedOff(String),
    /// The run waits for the user to speak.
    WaitingForUser,
    /// ManualPattern: the run waits for the user to pick a speaker.
    WaitingForSpeaker,
    /// The user spoke; their handoffs decide who is next.
    UserSpoke,
    /// An agent's turn is under way.
    InTurn {
        /// The agent.
        agent: String,
        /// Its progress.
        step: TurnStep,
    },
    /// The run ended.
    Ended(RunStatus),
}

/// Progress inside one agent turn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TurnStep {
    /// The LLM is (to be) asked.
    CallLlm,
    /// Tool calls the agent asked for that have no result yet (empty: all
    /// done, the LLM is asked again unless a handoff applies).
    RunTools(Vec<ToolCallRecord>),
    /// The agent replied without tool calls; handoffs decide what follows.
    Replied,
}

/// What the log says about the run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunPosition {
    /// Agent turns so far.
    pub turns: u32,
    /// The agent that spoke last.
    pub last_agent: Option<String>,
    /// Where the run stands.
    pub position: Position,
    /// Structured-output retries in the current turn.
    pub retries: u32,
    /// UI requests with no response.
    pub open_ui_requests: Vec<String>,
    /// Whether the last run status was `interrupted` (waiting for `continue`).
    pub interrupted: bool,
    /// Who handed over to the last speaker pick (ManualPattern): `user`
    /// or the agent that had the turn.
    pub pick_from: String,
    /// The classification of the user's `llm` conditions after the last
    /// user message, once made: `Some(None)` when none held.
    pub user_conditions: Option<Option<String>>,
}

impl RunPosition {
    /// Folds the events of a chat, in order.
    pub(crate) fn of<'a>(events: impl IntoIterator<Item = &'a Envelope>) -> Self {
        let mut state = Self {
            turns: 0,
            last_agent: None,
            position: Position::Start,
            retries: 0,
            open_ui_requests: Vec::new(),
            interrupted: false,
            pick_from: "user".to_owned(),
            user_conditions: None,
        };
        for envelope in events {
            state.apply(&envelope.event);
        }
        state
    }

    /// Applies one more event.
    pub(crate) fn apply(&mut self, event: &Event) {
        match event {
            Event::RunStatus { status, .. } => {
                self.interrupted = *status == RunStatus::Interrupted;
                match status {
                    RunStatus::WaitingForUser => self.position = Position::WaitingForUser,
                    RunStatus::WaitingForSpeaker => self.position = Position::WaitingForSpeaker,
                    RunStatus::Completed | RunStatus::Failed => {
                        self.position = Position::Ended(*status);
                    }
                    RunStatus::Running | RunStatus::Interrupted => {}
                }
            }
            Event::UserMessage { .. } => {
                self.position = Position::UserSpoke;
                self.user_conditions = None;
            }
            Event::UserConditionsChecked { holds, .. } => {
                self.user_conditions = Some(holds.clone());
            }
            Event::Speaker { agent, turn } => {
                self.turns = *turn;
                self.retries = 0;
                self.last_agent = Some(agent.clone());
                self.position = Position::InTurn {
                    agent: agent.clone(),
                    step: TurnStep::CallLlm,
                };
            }
            Event::AgentMessage {
                agent, tool_calls, ..
            } => {
                let step = if tool_calls.is_empty() {
                    TurnStep::Replied
                } else {
                    TurnStep::RunTools(tool_calls.clone())
                };
                self.position = Position::InTurn {
                    agent: agent.clone(),
                    step,
                };
            }
            Event::ToolResult { call_id, .. } => {
                if let Position::InTurn {
                    step: TurnStep::RunTools(calls),
                    ..
                } = &mut self.position
                {
                    calls.retain(|c| c.id != *call_id);
                }
            }
            Event::StructuredOutputRetry { agent, .. } => {
                self.retries += 1;
                self.position = Position::InTurn {
                    agent: agent.clone(),
                    step: TurnStep::CallLlm,
                };
            }
            Event::Handoff { to, .. } => self.position = Position::HandedOff(to.clone()),
            Event::UiRequest { request_id, .. } => self.open_ui_requests.push(request_id.clone()),
            Event::UiResponse { request_id, .. } => {
                self.open_ui_requests.retain(|r| r != request_id);
            }
            Event::SpeakerRequest { .. } => {
                self.pick_from = match &self.position {
                    Position::InTurn { agent, .. } => agent.clone(),
                    _ => "user".to_owned(),
                };
            }
            Event::TextDelta { .. }
            | Event::LlmRetry { .. }
            | Event::ToolCall { .. }
            | Event::UiNotify { .. }
            | Event::ContextChanged { .. }
            | Event::Usage { .. }
            | Event::WorkflowUpdated { .. }
            | Event::RunMoved { .. }
            | Event::Warning { .. }
            | Event::Error { .. } => {}
        }
    }
}

/// The conversation as `agent`'s LLM sees it: its own messages as the
/// assistant, everyone else's as named users (AG2's group-chat convention),
/// tool calls with their results, and the retry requests addressed to it.
pub(crate) fn transcript<'a>(
    agent: &str,
    system_message: &str,
    events: impl IntoIterator<Item = &'a Envelope>,
) -> Vec<ChatMessage> {
    let mut messages = vec![ChatMessage::System {
        content: system_message.to_owned(),
    }];
    // Tool results are only valid right after the assistant message that
    // asked for them; results of calls nobody asked for (lifecycle tools)
    // stay out of the LLM's view.
    let mut asked: HashSet<String> = HashSet::new();
    for envelope in events {
        match &envelope.event {
            Event::UserMessage { text } => messages.push(ChatMessage::User {
                name: Some("user".to_owned()),
                content: text.clone(),
            }),
            Event::AgentMessage {
                agent: speaker,
                text,
                tool_calls,
                ..
            } => {
                if tool_calls.is_empty() && speaker != agent {
                    messages.push(ChatMessage::User {
                        name: Some(speaker.clone()),
                        content: text.clone(),
                    });
                    continue;
                }
                asked.extend(tool_calls.iter().map(|c| c.id.clone()));
                messages.push(ChatMessage::Assistant {
                    name: Some(speaker.clone()),
                    content: (!text.is_empty()).then(|| text.clone()),
                    tool_calls: tool_calls
                        .iter()
                        .map(|c| ToolCallRequest {
                            id: c.id.clone(),
                            name: c.name.clone(),
                            arguments: c.arguments.clone(),
                        })
                        .collect(),
                });
            }
            // A structured output sent to a tool (`auto_execute`) reads as
            // the agent's own call of that tool, so that the next speaker
            // sees its result. (A call run again after a restart has its
            // `tool_call` twice: it is shown once.)
            Event::ToolCall {
                call_id,
                agent: caller,
                tool,
                arguments,
                origin: Some(CallOrigin::AutoExecute),
            } if !asked.contains(call_id) => {
                asked.insert(call_id.clone());
                messages.push(ChatMessage::Assistant {
                    name: Some(caller.clone()),
                    content: None,
                    tool_calls: vec![ToolCallRequest {
                        id: call_id.clone(),
                        name: tool.clone(),
                        arguments: arguments.to_string(),
                    }],
                });
            }
            Event::ToolResult {
                call_id, content, ..
            } if asked.remove(call_id) => messages.push(ChatMessage::Tool {
                tool_call_id: call_id.clone(),
                content: content.clone(),
            }),
            Event::StructuredOutputRetry {
                agent: retrying,
                model,
                errors,
            } if retrying == agent => messages.push(ChatMessage::User {
                name: Some("mozaiks".to_owned()),
                content: format!(
                    "Your last reply does not match the `{model}` JSON Schema: {}. \
                     Reply again with only a JSON object that matches the schema.",
                    errors.join("; ")
                ),
            }),
            _ => {}
        }
    }
    messages
}

/// Which attempt of a tool call is starting, read from the log: every
/// attempt starts with a `tool_call` event of the call's id (a resumed run
/// emits it again for a call that has no result), and a call with a result
/// is never run again. So the `tool_call` events of the id since its last
/// `tool_result` are this call's attempts, the latest (just emitted) one
/// included. No event is written for this beyond those `tool_call`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallAttempt {
    /// 1 the first time the call runs.
    pub number: u32,
    /// The `seq` of the call's first `tool_call` event: with the chat and
    /// the call id it names the call, even if an LLM uses the same id for
    /// two calls of one chat.
    pub first_seq: u64,
}

impl CallAttempt {
    /// The attempt of the call `call_id` that the last `tool_call` of the
    /// log started.
    pub(crate) fn of(events: &[std::sync::Arc<Envelope>], call_id: &str) -> Self {
        let mut attempt = Self {
            number: 0,
            first_seq: 0,
        };
        for envelope in events.iter().rev() {
            match &envelope.event {
                Event::ToolCall { call_id: id, .. } if id == call_id => {
                    attempt.number += 1;
                    attempt.first_seq = envelope.seq.unwrap_or(0);
                }
                Event::ToolResult { call_id: id, .. } if id == call_id => break,
                _ => {}
            }
        }
        attempt.number = attempt.number.max(1);
        attempt
    }

    /// The call's idempotency key in the chat `chat_id`: the same on every
    /// attempt, on whichever server runs it.
    pub(crate) fn key(&self, chat_id: &str, call_id: &str) -> String {
        mozaiks_plugin_host::idempotency_key(&[chat_id, &self.first_seq.to_string(), call_id])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(seq: u64, event: Event) -> Envelope {
        Envelope {
            seq: Some(seq),
            chat_id: "c".into(),
            ts: 0,
            event,
        }
    }

    fn call(id: &str) -> ToolCallRecord {
        ToolCallRecord {
            id: id.into(),
            name: "t".into(),
            arguments: "{}".into(),
        }
    }

    fn tool_call(seq: u64, id: &str) -> std::sync::Arc<Envelope> {
        std::sync::Arc::new(env(
            seq,
            Event::ToolCall {
                call_id: id.into(),
                agent: "A".into(),
                tool: "t".into(),
                arguments: serde_json::json!({}),
                origin: None,
            },
        ))
    }

    fn tool_result(seq: u64, id: &str) -> std::sync::Arc<Envelope> {
        std::sync::Arc::new(env(
            seq,
            Event::ToolResult {
                call_id: id.into(),
                agent: "A".into(),
                tool: "t".into(),
                ok: true,
                content: String::new(),
                error: None,
            },
        ))
    }

    #[test]
    fn a_call_started_again_after_a_restart_is_its_next_attempt_with_the_same_key() {
        let first = [tool_call(3, "call_1")];
        let attempt = CallAttempt::of(&first, "call_1");
        assert_eq!(
            attempt,
            CallAttempt {
                number: 1,
                first_seq: 3
            }
        );
        // The server stopped; the resumed run emitted `tool_call` again,
        // after other events (a UI request closed, a status).
        let resumed = [
            tool_call(3, "call_1"),
            tool_result(4, "other"),
            tool_call(7, "call_1"),
        ];
        let again = CallAttempt::of(&resumed, "call_1");
        assert_eq!(
            again,
            CallAttempt {
                number: 2,
                first_seq: 3
            }
        );
        assert_eq!(again.key("c1", "call_1"), attempt.key("c1", "call_1"));
        assert_ne!(again.key("c2", "call_1"), attempt.key("c1", "call_1"));
    }

    #[test]
    fn a_call_id_used_again_after_a_finished_call_is_another_call_with_another_key() {
        let events = [
            tool_call(3, "call_1"),
            tool_result(4, "call_1"),
            tool_call(9, "call_1"),
        ];
        let later = CallAttempt::of(&events, "call_1");
        assert_eq!(
            later,
            CallAttempt {
                number: 1,
                first_seq: 9
            }
        );
        let earlier = CallAttempt::of(&events[..1], "call_1");
        assert_ne!(later.key("c1", "call_1"), earlier.key("c1", "call_1"));
    }

    #[test]
    fn position_resumes_with_the_tool_calls_that_have_no_result() {
        let events = [
            env(
                1,
                Event::Speaker {
                    agent: "A".into(),
                    turn: 1,
                },
            ),
            env(
                2,
                Event::AgentMessage {
                    agent: "A".into(),
                    text: String::new(),
                    tool_calls: vec![call("1"), call("2")],
                    structured: None,
                    model: None,
                },
            ),
            env(
                3,
                Event::ToolResult {
                    call_id: "1".into(),
                    agent: "A".into(),
                    tool: "t".into(),
                    ok: true,
                    content: "{}".into(),
                    error: None,
                },
            ),
        ];
        let state = RunPosition::of(&events);
        assert_eq!(state.turns, 1);
        assert_eq!(
            state.position,
            Position::InTurn {
                agent: "A".into(),
                step: TurnStep::RunTools(vec![call("2")])
            }
        );
    }

    #[test]
    fn transcript_shows_other_agents_as_named_users_and_skips_unasked_results() {
        let events = [
            env(1, Event::UserMessage { text: "hi".into() }),
            env(
                2,
                Event::AgentMessage {
                    agent: "B".into(),
                    text: "from B".into(),
                    tool_calls: vec![],
                    structured: None,
                    model: None,
                },
            ),
            env(
                3,
                Event::ToolResult {
                    call_id: "auto-1".into(),
                    agent: "B".into(),
                    tool: "t".into(),
                    ok: true,
                    content: "{}".into(),
                    error: None,
                },
            ),
        ];
        let messages = transcript("A", "sys", &events);
        assert_eq!(messages.len(), 3);
        assert!(matches!(&messages[2], ChatMessage::User { name: Some(n), .. } if n == "B"));
    }

    #[test]
    fn a_user_conditions_outcome_holds_until_the_next_user_message() {
        let mut events = vec![
            env(1, Event::UserMessage { text: "ok".into() }),
            env(
                2,
                Event::UserConditionsChecked {
                    conditions: vec!["satisfied".into()],
                    holds: Some("satisfied".into()),
                    answer: "{\"holds\": 1}".into(),
                },
            ),
        ];
        // A run resumed here takes the stored outcome, with no new call.
        let state = RunPosition::of(&events);
        assert_eq!(state.position, Position::UserSpoke);
        assert_eq!(state.user_conditions, Some(Some("satisfied".into())));
        events.push(env(
            3,
            Event::UserMessage {
                text: "again".into(),
            },
        ));
        assert_eq!(RunPosition::of(&events).user_conditions, None);
    }
}
