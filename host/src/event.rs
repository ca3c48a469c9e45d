//! The events of a chat: what the orchestrator emits, what the store
//! persists (in order, each with its sequence number) and what the
//! transport sends to clients. docs/protocol.md describes every one.
//!
//! A chat *is* its event log: the transcript the LLM sees, the context
//! variables, the pending UI requests and the usage are all folds over it.
//! That is what makes reconnect-by-sequence and resume-after-restart exact:
//! nothing a client or a resumed run needs lives anywhere else.
//!
//! Only [`Event::TextDelta`] and [`Event::LlmRetry`] are ephemeral (never
//! persisted, no `seq`): the [`Event::AgentMessage`] that follows carries
//! the whole text, and the `error` event a failure that stayed.

mod codes;
#[cfg(test)]
pub(crate) mod golden;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use codes::ErrorCode;
pub use codes::ToolFailureKind;

/// The version of the event format, sent in `hello` so clients can refuse
/// what they do not understand.
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// One event of one chat, as persisted and as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Position in the chat's log, from 1; absent for ephemeral events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The chat.
    pub chat_id: String,
    /// When it happened, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// What happened in a chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The run's state changed.
    RunStatus {
        /// The new state.
        status: RunStatus,
        /// Why, for `completed`, `failed` and `interrupted`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The user said something.
    UserMessage {
        /// The text.
        text: String,
    },
    /// An agent takes its turn.
    Speaker {
        /// The agent.
        agent: String,
        /// Agent turns so far in this chat, this one included.
        turn: u32,
    },
    /// Part of an agent's reply, as the LLM streams it. Ephemeral.
    TextDelta {
        /// The agent.
        agent: String,
        /// The new text.
        delta: String,
    },
    /// An LLM call failed and is tried again (the LLM client's `RetryPolicy`).
    /// Ephemeral: the run's `error` event (or its answer) follows.
    LlmRetry {
        /// The agent whose call it is (`speaker_selection` for AutoPattern's
        /// pick).
        agent: String,
        /// 1 for the first retry.
        attempt: u32,
        /// Retries the policy allows (`MOZAIKS_LLM_MAX_RETRIES`).
        max_retries: u32,
        /// The failure's code (`LLM_RATE_LIMITED`, `LLM_HTTP_ERROR`,
        /// `LLM_UNREACHABLE`).
        code: ErrorCode,
        /// The HTTP status, when the server answered one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// The wait before the retry (the server's `Retry-After` on a 429).
        delay_ms: u64,
        /// The failure.
        message: String,
    },
    /// An agent's complete reply.
    AgentMessage {
        /// The agent.
        agent: String,
        /// The text (for a structured output, the JSON text).
        text: String,
        /// Tools the agent asked to call, in order.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCallRecord>,
        /// The parsed and validated structured output, if the agent has a model.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        structured: Option<Value>,
        /// The structured-output model's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// A tool call starts.
    ToolCall {
        /// The LLM's id of the call; for calls the runtime makes by itself
        /// (`origin` present), an id derived from the occasion.
        call_id: String,
        /// The calling agent (`chat` for the chat's lifecycle tools).
        agent: String,
        /// The tool.
        tool: String,
        /// The arguments (the LLM's JSON text, parsed when it parses).
        arguments: Value,
        /// Who made the call when the agent's LLM did not: a structured
        /// output (`auto_execute`) or a lifecycle trigger. Absent: the LLM
        /// asked for it in the `agent_message` before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<CallOrigin>,
    },
    /// A tool call ended.
    ToolResult {
        /// The call it answers.
        call_id: String,
        /// The calling agent.
        agent: String,
        /// The tool.
        tool: String,
        /// Whether the tool succeeded.
        ok: bool,
        /// What the agent is shown: the result's JSON text, or the error.
        content: String,
        /// Why it failed, when it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ToolFailure>,
    },
    /// A tool asks the user through a UI component and waits.
    UiRequest {
        /// Answer with this id.
        request_id: String,
        /// The tool call that asks.
        call_id: String,
        /// The tool.
        tool: String,
        /// The front-end component to show.
        component: String,
        /// What the component shows.
        payload: Value,
        /// `inline` or `artifact`.
        display: String,
        /// How long the tool waits.
        timeout_ms: u64,
    },
    /// A UI request was answered, timed out or was cancelled.
    UiResponse {
        /// The request.
        request_id: String,
        /// How it ended.
        #[serde(flatten)]
        outcome: UiOutcome,
    },
    /// A tool shows something without waiting.
    UiNotify {
        /// The tool.
        tool: String,
        /// The component.
        component: String,
        /// What it shows.
        payload: Value,
        /// `inline` or `artifact`.
        display: String,
    },
    /// A context variable changed (set, or removed when `value` is absent).
    ContextChanged {
        /// The variable.
        key: String,
        /// Its new value (which may be `null`); absent when removed.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        value: Option<Value>,
        /// Who changed it: `init`, `tool:<name>`, `agent:<name>`.
        by: String,
    },
    /// Control passes to another participant.
    Handoff {
        /// Who had the turn (`user` for the user).
        from: String,
        /// Who gets it: an agent, `user` or `terminate`.
        to: String,
        /// Why.
        reason: HandoffReason,
    },
    /// After a user message, one LLM call classified the message against
    /// the `llm` conditions of the user's handoff rules. Persisted so that a
    /// resumed run takes the same decision without asking again.
    UserConditionsChecked {
        /// The conditions asked about, in file order.
        conditions: Vec<String>,
        /// The first condition that holds, or `null` when none does (or the
        /// answer could not be read: then `answer` says what came back).
        holds: Option<String>,
        /// The classifier's raw answer.
        answer: String,
    },
    /// The agent's structured output did not validate; it is asked once more.
    StructuredOutputRetry {
        /// The agent.
        agent: String,
        /// The model.
        model: String,
        /// The validation errors it is shown.
        errors: Vec<String>,
    },
    /// Token usage of one LLM call.
    Usage {
        /// The agent (or `speaker_selection`).
        agent: String,
        /// The model that answered.
        model: String,
        /// Prompt tokens.
        prompt_tokens: u64,
        /// Completion tokens.
        completion_tokens: u64,
    },
    /// The chat's workflow was reloaded and the run uses the new version
    /// from here on (at a turn boundary: a new speaker or a user message).
    WorkflowUpdated {
        /// The workflow.
        workflow: String,
        /// The version used before.
        previous: String,
        /// The version used from now on.
        version: String,
    },
    /// Another server took the chat's run over (several servers on one
    /// database: docs/operations.md, "Running several servers"). Written
    /// by the new owner before anything else; from this event on, the old
    /// owner cannot write to the chat.
    RunMoved {
        /// The server that ran the chat before.
        from: String,
        /// The server that runs it from here on.
        to: String,
    },
    /// ManualPattern: the user is asked who speaks next.
    SpeakerRequest {
        /// Agents to choose from.
        candidates: Vec<String>,
    },
    /// Something failed that the run goes on after unchanged (a hook that
    /// failed or timed out); `code` is stable, `message` is for humans.
    Warning {
        /// A stable code, e.g. `HOOK_FAILED`.
        code: ErrorCode,
        /// What happened and what was done instead.
        message: String,
    },
    /// Something went wrong; `code` is stable, `message` is for humans.
    Error {
        /// A stable code, e.g. `LLM_HTTP_ERROR`.
        code: ErrorCode,
        /// What happened and what to do.
        message: String,
    },
}

/// A field that is present is `Some`, even when it is `null` (serde's
/// default reads `null` as `None`, which would turn "set to null" into
/// "removed" on the way back from the store).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

impl Event {
    /// Whether this event is persisted and numbered.
    pub fn is_persisted(&self) -> bool {
        !matches!(self, Event::TextDelta { .. } | Event::LlmRetry { .. })
    }
}

/// A run's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Agents are working.
    Running,
    /// The user's turn: a `user_message` continues the run.
    WaitingForUser,
    /// ManualPattern: a `select_speaker` continues the run.
    WaitingForSpeaker,
    /// The run ended normally (terminate handoff, max_turns, user ended it).
    Completed,
    /// The run ended because of an error it cannot get past.
    Failed,
    /// An error a retry may fix stopped the run (the LLM was unreachable,
    /// answered an HTTP error, timed out or is not configured); `continue`
    /// retries the step that failed. (A server that stops while a run is
    /// active leaves it `running`; it resumes on start.)
    Interrupted,
}

/// Who made a tool call the agent's LLM did not ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOrigin {
    /// A structured output sent to a tool of structured_outputs.json
    /// `auto_execute`.
    AutoExecute,
    /// A `before_chat` lifecycle tool.
    BeforeChat,
    /// An `after_chat` lifecycle tool.
    AfterChat,
    /// A `before_agent` lifecycle tool.
    BeforeAgent,
    /// An `after_agent` lifecycle tool.
    AfterAgent,
}

/// One tool call an agent asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// The LLM's id of the call.
    pub id: String,
    /// The tool (or transfer function) name.
    pub name: String,
    /// The arguments as the LLM wrote them (JSON text).
    pub arguments: String,
}

/// Why a tool call failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolFailure {
    /// A stable word. The tool's own errors: `unknown_function`,
    /// `invalid_arguments`, `cancelled`, `failed`. Failures the host saw:
    /// `trap`, `deadline_exceeded`, `memory_limit`, `capability_denied`,
    /// `bad_output`, `output_too_large`, `busy`, `host` (and
    /// `invalid_arguments` when the schema check refused the call).
    /// The orchestrator's: `unknown_tool`, `plugin_unavailable`.
    pub kind: ToolFailureKind,
    /// What happened.
    pub message: String,
}

/// How a UI request ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum UiOutcome {
    /// The user answered.
    Answered {
        /// The answer.
        answer: Value,
    },
    /// Nobody answered in time.
    Timeout,
    /// The run ended or the request was superseded.
    Cancelled {
        /// Why.
        reason: String,
    },
}

/// Why a handoff happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HandoffReason {
    /// A context expression held (no LLM call was made for it).
    Context {
        /// The expression.
        condition: String,
        /// `pre` or `post`.
        scope: String,
    },
    /// The agent called a transfer tool.
    Llm {
        /// The transfer tool.
        tool: String,
    },
    /// The source's after-work fallback.
    AfterWork,
    /// The orchestration pattern chose (round robin, random, auto, default).
    Pattern {
        /// The pattern.
        pattern: String,
    },
    /// The user chose (ManualPattern).
    User,
    /// The turn limit was reached.
    MaxTurns,
    /// An `llm` condition of the user's handoff rules held (after a user
    /// message; see [`Event::UserConditionsChecked`]).
    UserCondition {
        /// The condition's text.
        condition: String,
    },
    /// The agent reached its `max_consecutive_auto_reply`: it has had that
    /// many turns since the user last spoke, so it does not start another.
    MaxConsecutiveAutoReply {
        /// The agent's limit.
        limit: u32,
    },
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelopes_serialize_flat_with_a_type_tag() {
        let envelope = Envelope {
            seq: Some(3),
            chat_id: "c1".into(),
            ts: 5,
            event: Event::UiResponse {
                request_id: "r".into(),
                outcome: UiOutcome::Answered {
                    answer: json!({"approved": true}),
                },
            },
        };
        let text = serde_json::to_value(&envelope).unwrap();
        assert_eq!(
            text,
            json!({"seq": 3, "chat_id": "c1", "ts": 5, "type": "ui_response",
                   "request_id": "r", "status": "answered", "answer": {"approved": true}})
        );
        let back: Envelope = serde_json::from_value(text).unwrap();
        assert_eq!(back, envelope);
    }

    #[test]
    fn a_context_value_set_to_null_stays_set_after_a_round_trip() {
        let set_null = Event::ContextChanged {
            key: "k".into(),
            value: Some(Value::Null),
            by: "init".into(),
        };
        let text = serde_json::to_string(&set_null).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), set_null);
        let removed: Event =
            serde_json::from_str(r#"{"type":"context_changed","key":"k","by":"x"}"#).unwrap();
        assert!(matches!(removed, Event::ContextChanged { value: None, .. }));
    }

    #[test]
    fn text_deltas_are_the_only_ephemeral_events() {
        assert!(
            !Event::TextDelta {
                agent: "a".into(),
                delta: "x".into()
            }
            .is_persisted()
        );
        assert!(Event::UserMessage { text: "x".into() }.is_persisted());
    }
}
