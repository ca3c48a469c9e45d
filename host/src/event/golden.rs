//! The golden events: one example per [`Event`] variant (and per variant of
//! the enums inside one), serialised as clients receive it, compared with
//! `tests/golden/events/<name>.json`. A variant without an example fails
//! [`every_event_variant_has_a_golden_example`].

use serde_json::json;

use super::*;
use crate::golden;

const CHAT: &str = "f15dbebbc8b44d7abd2d8583219702b6";
const TS: u64 = 1_795_936_178_543;

fn stored(seq: u64, event: Event) -> Envelope {
    Envelope {
        seq: Some(seq),
        chat_id: CHAT.to_owned(),
        ts: TS,
        event,
    }
}

fn ephemeral(event: Event) -> Envelope {
    Envelope {
        seq: None,
        chat_id: CHAT.to_owned(),
        ts: TS,
        event,
    }
}

/// Every example, by its golden file's name.
pub(crate) fn examples() -> Vec<(&'static str, Envelope)> {
    vec![
        (
            "run_status",
            stored(
                9,
                Event::RunStatus {
                    status: RunStatus::Interrupted,
                    reason: Some("agent `Assistant`: timed out; send `continue` to retry".into()),
                },
            ),
        ),
        (
            "run_status_without_reason",
            stored(
                2,
                Event::RunStatus {
                    status: RunStatus::Running,
                    reason: None,
                },
            ),
        ),
        (
            "user_message",
            stored(
                7,
                Event::UserMessage {
                    text: "Plan a trip to Lisbon".into(),
                },
            ),
        ),
        (
            "speaker",
            stored(
                8,
                Event::Speaker {
                    agent: "Assistant".into(),
                    turn: 1,
                },
            ),
        ),
        (
            "text_delta",
            ephemeral(Event::TextDelta {
                agent: "Assistant".into(),
                delta: "Lis".into(),
            }),
        ),
        (
            "llm_retry",
            ephemeral(Event::LlmRetry {
                agent: "Assistant".into(),
                attempt: 1,
                max_retries: 3,
                code: ErrorCode::LlmRateLimited,
                status: Some(429),
                delay_ms: 1000,
                message: "the LLM server answered 429".into(),
            }),
        ),
        (
            "agent_message",
            stored(
                10,
                Event::AgentMessage {
                    agent: "Planner".into(),
                    text: "{\"days\":3}".into(),
                    tool_calls: vec![ToolCallRecord {
                        id: "call_1".into(),
                        name: "echo".into(),
                        arguments: "{\"text\":\"hi\"}".into(),
                    }],
                    structured: Some(json!({"days": 3})),
                    model: Some("TripPlan".into()),
                },
            ),
        ),
        (
            "agent_message_plain",
            stored(
                11,
                Event::AgentMessage {
                    agent: "Assistant".into(),
                    text: "Done.".into(),
                    tool_calls: Vec::new(),
                    structured: None,
                    model: None,
                },
            ),
        ),
        (
            "tool_call",
            stored(
                12,
                Event::ToolCall {
                    call_id: "call_1".into(),
                    agent: "Planner".into(),
                    tool: "echo".into(),
                    arguments: json!({"text": "hi"}),
                    origin: None,
                },
            ),
        ),
        (
            "tool_call_auto_execute",
            stored(
                14,
                Event::ToolCall {
                    call_id: "auto-13-save_verdict".into(),
                    agent: "Judge".into(),
                    tool: "save_verdict".into(),
                    arguments: json!({"score": 7, "reason": "clear"}),
                    origin: Some(CallOrigin::AutoExecute),
                },
            ),
        ),
        (
            "tool_call_lifecycle",
            stored(
                3,
                Event::ToolCall {
                    call_id: "lifecycle-before_agent-collect_keys-turn-1".into(),
                    agent: "Planner".into(),
                    tool: "collect_keys".into(),
                    arguments: json!({"trigger": "before_agent", "agent": "Planner"}),
                    origin: Some(CallOrigin::BeforeAgent),
                },
            ),
        ),
        (
            "tool_result",
            stored(
                13,
                Event::ToolResult {
                    call_id: "call_1".into(),
                    agent: "Planner".into(),
                    tool: "echo".into(),
                    ok: true,
                    content: "{\"text\":\"hi\"}".into(),
                    error: None,
                },
            ),
        ),
        (
            "tool_result_failed",
            stored(
                14,
                Event::ToolResult {
                    call_id: "call_2".into(),
                    agent: "Planner".into(),
                    tool: "spin".into(),
                    ok: false,
                    content: "error (deadline_exceeded): out of CPU time".into(),
                    error: Some(ToolFailure {
                        kind: ToolFailureKind::DeadlineExceeded,
                        message: "out of CPU time".into(),
                    }),
                },
            ),
        ),
        (
            "ui_request",
            stored(
                15,
                Event::UiRequest {
                    request_id: "r1".into(),
                    call_id: "call_3".into(),
                    tool: "request_approval".into(),
                    component: "ApprovalForm".into(),
                    payload: json!({"title": "Approve?"}),
                    display: "inline".into(),
                    timeout_ms: 300_000,
                },
            ),
        ),
        (
            "ui_response_answered",
            stored(
                16,
                Event::UiResponse {
                    request_id: "r1".into(),
                    outcome: UiOutcome::Answered {
                        answer: json!({"approved": true}),
                    },
                },
            ),
        ),
        (
            "ui_response_timeout",
            stored(
                17,
                Event::UiResponse {
                    request_id: "r2".into(),
                    outcome: UiOutcome::Timeout,
                },
            ),
        ),
        (
            "ui_response_cancelled",
            stored(
                18,
                Event::UiResponse {
                    request_id: "r3".into(),
                    outcome: UiOutcome::Cancelled {
                        reason: "the server restarted; the tool asks again".into(),
                    },
                },
            ),
        ),
        (
            "ui_notify",
            stored(
                19,
                Event::UiNotify {
                    tool: "show_plan".into(),
                    component: "PlanCard".into(),
                    payload: json!({"days": 3}),
                    display: "artifact".into(),
                },
            ),
        ),
        (
            "context_changed",
            stored(
                20,
                Event::ContextChanged {
                    key: "approved".into(),
                    value: Some(json!(true)),
                    by: "tool:request_approval".into(),
                },
            ),
        ),
        (
            "context_changed_to_null",
            stored(
                21,
                Event::ContextChanged {
                    key: "note".into(),
                    value: Some(serde_json::Value::Null),
                    by: "agent:Assistant".into(),
                },
            ),
        ),
        (
            "context_changed_removed",
            stored(
                22,
                Event::ContextChanged {
                    key: "note".into(),
                    value: None,
                    by: "tool:clear".into(),
                },
            ),
        ),
        (
            "handoff_context",
            stored(
                23,
                Event::Handoff {
                    from: "Assistant".into(),
                    to: "terminate".into(),
                    reason: HandoffReason::Context {
                        condition: "${approved} == true".into(),
                        scope: "post".into(),
                    },
                },
            ),
        ),
        (
            "handoff_llm",
            stored(
                24,
                Event::Handoff {
                    from: "Triage".into(),
                    to: "Billing".into(),
                    reason: HandoffReason::Llm {
                        tool: "transfer_to_Billing".into(),
                    },
                },
            ),
        ),
        (
            "handoff_after_work",
            stored(
                25,
                Event::Handoff {
                    from: "Assistant".into(),
                    to: "user".into(),
                    reason: HandoffReason::AfterWork,
                },
            ),
        ),
        (
            "handoff_pattern",
            stored(
                26,
                Event::Handoff {
                    from: "A".into(),
                    to: "B".into(),
                    reason: HandoffReason::Pattern {
                        pattern: "RoundRobinPattern".into(),
                    },
                },
            ),
        ),
        (
            "handoff_user",
            stored(
                27,
                Event::Handoff {
                    from: "user".into(),
                    to: "B".into(),
                    reason: HandoffReason::User,
                },
            ),
        ),
        (
            "handoff_max_turns",
            stored(
                28,
                Event::Handoff {
                    from: "B".into(),
                    to: "terminate".into(),
                    reason: HandoffReason::MaxTurns,
                },
            ),
        ),
        (
            "handoff_user_condition",
            stored(
                28,
                Event::Handoff {
                    from: "user".into(),
                    to: "terminate".into(),
                    reason: HandoffReason::UserCondition {
                        condition: "The user is satisfied with the plan.".into(),
                    },
                },
            ),
        ),
        (
            "handoff_max_consecutive_auto_reply",
            stored(
                28,
                Event::Handoff {
                    from: "Writer".into(),
                    to: "user".into(),
                    reason: HandoffReason::MaxConsecutiveAutoReply { limit: 2 },
                },
            ),
        ),
        (
            "user_conditions_checked",
            stored(
                28,
                Event::UserConditionsChecked {
                    conditions: vec![
                        "The user asks for changes.".into(),
                        "The user is satisfied with the plan.".into(),
                    ],
                    holds: Some("The user is satisfied with the plan.".into()),
                    answer: "{\"holds\": 2}".into(),
                },
            ),
        ),
        (
            "user_conditions_checked_none",
            stored(
                28,
                Event::UserConditionsChecked {
                    conditions: vec!["The user is satisfied with the plan.".into()],
                    holds: None,
                    answer: "{\"holds\": 0}".into(),
                },
            ),
        ),
        (
            "structured_output_retry",
            stored(
                29,
                Event::StructuredOutputRetry {
                    agent: "Planner".into(),
                    model: "TripPlan".into(),
                    errors: vec!["/days: \"three\" is not of type \"integer\"".into()],
                },
            ),
        ),
        (
            "usage",
            stored(
                30,
                Event::Usage {
                    agent: "Planner".into(),
                    model: "gpt-4o-mini".into(),
                    prompt_tokens: 120,
                    completion_tokens: 45,
                },
            ),
        ),
        (
            "workflow_updated",
            stored(
                31,
                Event::WorkflowUpdated {
                    workflow: "Approval".into(),
                    previous: "3f2a9c1d".into(),
                    version: "77b0e4aa".into(),
                },
            ),
        ),
        (
            "run_moved",
            stored(
                34,
                Event::RunMoved {
                    from: "server-a".into(),
                    to: "server-b".into(),
                },
            ),
        ),
        (
            "speaker_request",
            stored(
                32,
                Event::SpeakerRequest {
                    candidates: vec!["Alice".into(), "Bob".into()],
                },
            ),
        ),
        (
            "warning",
            stored(
                21,
                Event::Warning {
                    code: ErrorCode::HookFailed,
                    message: "process_message_before_send hook hooks.redact for agent `Planner` failed (deadline_exceeded: the call ran out of CPU time); the message is unchanged".into(),
                },
            ),
        ),
        (
            "error",
            stored(
                33,
                Event::Error {
                    code: ErrorCode::HandoffLoop,
                    message: "32 handoffs in a row without an agent speaking".into(),
                },
            ),
        ),
    ]
}

/// What a client receives, byte for byte (field order included).
#[test]
fn events_serialise_as_their_golden_files() {
    let cases: Vec<(String, String)> = examples()
        .into_iter()
        .map(|(name, envelope)| {
            (
                name.to_owned(),
                serde_json::to_string_pretty(&envelope).unwrap(),
            )
        })
        .collect();
    golden::check(&golden::dir("events"), &cases);
}

/// And what a client (or the store) sends back in that form reads as the
/// same event.
#[test]
fn golden_events_read_back_as_their_examples() {
    if std::env::var_os("MOZAIKS_BLESS").is_some() {
        return;
    }
    for (name, envelope) in examples() {
        let path = golden::dir("events").join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap();
        let back: Envelope =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(back, envelope, "{}", path.display());
    }
}

/// Each variant of `Event`, as written in event.rs, has at least one
/// example whose `type` is its snake_case name.
#[test]
fn every_event_variant_has_a_golden_example() {
    let source = include_str!("../event.rs");
    let body = source
        .split("pub enum Event {")
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .expect("event.rs declares `pub enum Event`");
    let variants: std::collections::BTreeSet<String> = body
        .lines()
        .filter_map(|line| line.strip_prefix("    "))
        .filter(|line| line.starts_with(|c: char| c.is_ascii_uppercase()))
        .filter_map(|line| line.split([' ', ',', '{']).next())
        .map(snake_case)
        .collect();
    assert!(variants.len() >= 18, "parsed only {variants:?}");
    let covered: std::collections::BTreeSet<String> = examples()
        .iter()
        .map(|(_, envelope)| {
            serde_json::to_value(envelope).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let missing: Vec<_> = variants.difference(&covered).collect();
    assert!(missing.is_empty(), "no golden example for {missing:?}");
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
