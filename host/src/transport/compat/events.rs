//! Native events → MozaiksAI's envelopes (`{type, data, timestamp, agent,
//! seq}`), one chat at a time. The translator keeps what a translation needs
//! from earlier events (the component and display of each UI request, the
//! agent of each tool call, the pending input request, the usage so far),
//! so it is fed the chat's log in order, from the start.
//!
//! docs/protocol.md ("MozaiksAI compatibility") lists the mapping row by
//! row; every native event without a MozaiksAI counterpart is passed
//! through unprefixed with its native fields in `data`, as MozaiksAI passes
//! its own unmapped kinds.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::ids;
use super::visual::{Visibility, VisualAgents};
use crate::event::{CallOrigin, Envelope, Event, RunStatus, UiOutcome};

/// What the translator knows of the chat's workflow.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkflowFacts {
    /// The workflow's name (`payload.workflow_name` of UI tools).
    pub(crate) name: String,
    /// `ui_config` `visual_agents`.
    pub(crate) visual: VisualAgents,
    /// Agents that own a UI tool (`is_tool_agent`).
    pub(crate) tool_agents: Vec<String>,
    /// Agents with a structured output (`is_structured_capable`).
    pub(crate) structured_agents: Vec<String>,
}

/// A UI request as the translator remembers it.
#[derive(Debug, Clone)]
struct OpenUi {
    component: String,
    display: String,
}

/// Translates one chat's events; see the module docs.
#[derive(Debug)]
pub(crate) struct Translator {
    chat_id: String,
    facts: WorkflowFacts,
    ui: HashMap<String, OpenUi>,
    call_agents: HashMap<String, String>,
    last_agent: Option<String>,
    pending_input: Option<String>,
    text_sequence: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl Translator {
    /// A translator for `chat_id`, before its first event.
    pub(crate) fn new(chat_id: &str, facts: WorkflowFacts) -> Self {
        Self {
            chat_id: chat_id.to_owned(),
            facts,
            ui: HashMap::new(),
            call_agents: HashMap::new(),
            last_agent: None,
            pending_input: None,
            text_sequence: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
        }
    }

    /// The input request the run waits on now (its id), if any.
    pub(crate) fn pending_input(&self) -> Option<&str> {
        self.pending_input.as_deref()
    }

    /// The MozaiksAI envelopes of `envelope` (none, one or two), marked
    /// `replay: true` when it is sent again from the log.
    pub(crate) fn translate(&mut self, envelope: &Envelope, replay: bool) -> Vec<Value> {
        let frames = self.frames(envelope);
        frames
            .into_iter()
            .map(|(kind, data)| self.wrap(envelope, kind, data, replay))
            .collect()
    }

    /// `(type, data)` of each envelope `envelope` becomes.
    fn frames(&mut self, envelope: &Envelope) -> Vec<(String, Map<String, Value>)> {
        let seq = envelope.seq.unwrap_or(0);
        match &envelope.event {
            Event::RunStatus { status, reason } => self.run_status(envelope, *status, reason, seq),
            Event::UserMessage { text } => {
                self.text_sequence += 1;
                let mut data = object(json!({
                    "agent": "user", "content": text, "role": "user", "source": "user",
                    "sequence": self.text_sequence,
                }));
                self.visibility("user", &mut data);
                vec![("chat.text".to_owned(), data)]
            }
            Event::Speaker { agent, .. } => {
                self.last_agent = Some(agent.clone());
                vec![(
                    "chat.select_speaker".to_owned(),
                    object(json!({"agent": agent, "selected_speaker": agent})),
                )]
            }
            Event::TextDelta { agent, delta } => {
                if self.facts.visual.visibility(agent) == Visibility::Trace {
                    return Vec::new();
                }
                vec![(
                    "chat.print".to_owned(),
                    object(json!({"agent": agent, "content": delta, "streaming": true})),
                )]
            }
            Event::AgentMessage {
                agent,
                text,
                structured,
                model,
                ..
            } => {
                if text.is_empty() {
                    return Vec::new();
                }
                self.text_sequence += 1;
                let mut data = object(json!({
                    "agent": agent, "content": text, "role": "assistant", "source": "agent_message",
                    "sequence": self.text_sequence,
                    "is_structured_capable": self.facts.structured_agents.contains(agent),
                    "is_tool_agent": self.facts.tool_agents.contains(agent),
                }));
                if let Some(structured) = structured {
                    data.insert("structured_output".to_owned(), structured.clone());
                }
                if let Some(model) = model {
                    data.insert("structured_schema".to_owned(), json!(model));
                }
                self.visibility(agent, &mut data);
                vec![("chat.text".to_owned(), data)]
            }
            Event::ToolCall {
                call_id,
                agent,
                tool,
                arguments,
                origin,
            } => {
                self.call_agents.insert(call_id.clone(), agent.clone());
                if self.facts.visual.visibility(agent) == Visibility::Trace {
                    return Vec::new();
                }
                let mut data = object(json!({
                    "call_id": call_id, "tool_call_id": call_id, "name": tool, "tool_name": tool,
                    "agent": agent, "arguments": arguments, "awaiting_response": false,
                }));
                match origin {
                    Some(CallOrigin::AutoExecute) => {
                        data.insert("interaction_type".to_owned(), json!("auto_tool"));
                        data.insert("corr".to_owned(), json!(call_id));
                    }
                    Some(trigger) => {
                        data.insert("interaction_type".to_owned(), json!("lifecycle"));
                        data.insert("origin".to_owned(), json!(trigger));
                    }
                    None => {}
                }
                vec![("chat.tool_call".to_owned(), data)]
            }
            Event::ToolResult {
                call_id,
                agent,
                tool,
                ok,
                content,
                error,
            } => {
                if self.facts.visual.visibility(agent) == Visibility::Trace {
                    return Vec::new();
                }
                let mut data = object(json!({
                    "call_id": call_id, "tool_call_id": call_id, "name": tool, "tool_name": tool,
                    "agent": agent, "result": content, "content": content, "success": ok,
                    "status": if *ok { "ok" } else { "error" },
                }));
                if let Some(error) = error {
                    data.insert("error".to_owned(), json!(error));
                }
                vec![("chat.tool_response".to_owned(), data)]
            }
            Event::UiRequest {
                request_id,
                call_id,
                tool,
                component,
                payload,
                display,
                ..
            } => {
                self.ui.insert(
                    request_id.clone(),
                    OpenUi {
                        component: component.clone(),
                        display: display.clone(),
                    },
                );
                let agent = self.call_agents.get(call_id).cloned().unwrap_or_default();
                let event_id = ids::ui_event_id(&self.chat_id, request_id);
                let data = object(json!({
                    "tool_name": tool, "component_type": component, "ui_tool_id": component,
                    "awaiting_response": true, "payload": self.ui_payload(payload, display),
                    "corr": event_id, "eventId": event_id, "call_id": call_id,
                    "display": display, "display_type": display, "mode": display, "agent": agent,
                }));
                vec![("chat.tool_call".to_owned(), data)]
            }
            Event::UiResponse {
                request_id,
                outcome,
            } => self.ui_response(request_id, outcome),
            Event::UiNotify {
                tool,
                component,
                payload,
                display,
            } => {
                let agent = self.last_agent.clone().unwrap_or_default();
                let corr = format!("notify-{}-{seq}", self.chat_id);
                vec![(
                    "chat.tool_call".to_owned(),
                    object(json!({
                        "tool_name": tool, "component_type": component, "ui_tool_id": component,
                        "awaiting_response": false, "payload": self.ui_payload(payload, display),
                        "corr": corr, "display": display, "display_type": display, "mode": display,
                        "agent": agent,
                    })),
                )]
            }
            Event::ContextChanged { key, value, by } => {
                let mut data = object(json!({"variable": key, "value": value, "by": by}));
                if value.is_none() {
                    data.insert("removed".to_owned(), json!(true));
                }
                vec![("context_update".to_owned(), data)]
            }
            Event::Usage {
                agent,
                model,
                prompt_tokens,
                completion_tokens,
            } => {
                self.prompt_tokens += prompt_tokens;
                self.completion_tokens += completion_tokens;
                vec![(
                    "chat.usage_delta".to_owned(),
                    object(json!({
                        "agent": agent, "model": model, "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    })),
                )]
            }
            Event::Error { code, message } => vec![(
                "chat.error".to_owned(),
                object(json!({"message": message, "error_code": code, "code": code})),
            )],
            // No MozaiksAI counterpart: passed through unprefixed.
            Event::LlmRetry { .. }
            | Event::Handoff { .. }
            | Event::UserConditionsChecked { .. }
            | Event::StructuredOutputRetry { .. }
            | Event::WorkflowUpdated { .. }
            | Event::SpeakerRequest { .. }
            | Event::Warning { .. } => vec![pass_through(envelope)],
            // Which server runs the chat is none of ChatUI's business: the
            // events simply keep coming (docs/protocol.md).
            Event::RunMoved { .. } => Vec::new(),
        }
    }

    fn run_status(
        &mut self,
        envelope: &Envelope,
        status: RunStatus,
        reason: &Option<String>,
        seq: u64,
    ) -> Vec<(String, Map<String, Value>)> {
        let agent = self.last_agent.clone().unwrap_or_default();
        match status {
            RunStatus::Running => {
                self.pending_input = None;
                vec![(
                    "chat.run_start".to_owned(),
                    object(
                        json!({"agent": agent, "message": reason.clone().unwrap_or_else(|| "running".to_owned())}),
                    ),
                )]
            }
            RunStatus::WaitingForUser | RunStatus::WaitingForSpeaker => {
                let request_id = ids::input_request_id(&self.chat_id, seq);
                self.pending_input = Some(request_id.clone());
                vec![(
                    "chat.input_request".to_owned(),
                    object(json!({
                        "agent": agent, "request_id": request_id, "input_request_id": request_id,
                        "prompt": "Your reply", "password": false,
                    })),
                )]
            }
            RunStatus::Completed | RunStatus::Failed => {
                self.pending_input = None;
                let completed = status == RunStatus::Completed;
                let mut frames = Vec::new();
                if !completed {
                    frames.push((
                        "chat.error".to_owned(),
                        object(json!({
                            "agent": agent, "message": reason.clone().unwrap_or_default(),
                            "error_code": "WORKFLOW_EXECUTION_FAILED",
                        })),
                    ));
                }
                let usage = json!({
                    "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                    "total_tokens": self.prompt_tokens + self.completion_tokens,
                });
                let mut summary = object(usage.clone());
                summary.insert("agent".to_owned(), json!(agent));
                summary.insert("usage".to_owned(), usage);
                frames.push(("chat.usage_summary".to_owned(), summary));
                frames.push((
                    "chat.run_complete".to_owned(),
                    object(json!({
                        "agent": agent, "status": if completed { 1 } else { 2 },
                        "success": completed, "summary": reason,
                        "total_tokens": self.prompt_tokens + self.completion_tokens,
                    })),
                ));
                frames
            }
            RunStatus::Interrupted => {
                self.pending_input = None;
                vec![pass_through(envelope)]
            }
        }
    }

    fn ui_response(
        &mut self,
        request_id: &str,
        outcome: &UiOutcome,
    ) -> Vec<(String, Map<String, Value>)> {
        let Some(ui) = self.ui.get(request_id) else {
            return Vec::new();
        };
        let event_id = ids::ui_event_id(&self.chat_id, request_id);
        let (status, summary) = match outcome {
            UiOutcome::Answered { .. } => ("completed", "answered".to_owned()),
            UiOutcome::Timeout => ("timeout", "no answer in time".to_owned()),
            UiOutcome::Cancelled { reason } => ("cancelled", reason.clone()),
        };
        if ui.display == "artifact" {
            vec![(
                "chat.ui_tool_dismiss".to_owned(),
                object(json!({
                    "event_id": event_id, "eventId": event_id, "ui_tool_id": ui.component,
                    "status": status,
                })),
            )]
        } else {
            vec![(
                "chat.ui_tool_complete".to_owned(),
                object(json!({
                    "eventId": event_id, "event_id": event_id, "ui_tool_id": ui.component,
                    "display": ui.display, "status": status, "summary": summary,
                })),
            )]
        }
    }

    /// A UI tool's props: the payload with `workflow_name`, `display` and
    /// `mode` added (when it is an object; otherwise as it is).
    fn ui_payload(&self, payload: &Value, display: &str) -> Value {
        match payload {
            Value::Object(fields) => {
                let mut fields = fields.clone();
                fields.insert("workflow_name".to_owned(), json!(self.facts.name));
                fields.insert("display".to_owned(), json!(display));
                fields.insert("mode".to_owned(), json!(display));
                Value::Object(fields)
            }
            other => other.clone(),
        }
    }

    /// `is_visual`, and the trace downgrade of a text from an agent not in
    /// `visual_agents` (§ visual agents in docs/protocol.md).
    fn visibility(&self, agent: &str, data: &mut Map<String, Value>) {
        let visibility = self.facts.visual.visibility(agent);
        data.insert(
            "is_visual".to_owned(),
            json!(visibility == Visibility::Bubble),
        );
        if visibility == Visibility::Trace {
            let content = data
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let trace = super::visual::trace(content);
            data.insert("content".to_owned(), json!(trace.content));
            data.insert("ui_visibility".to_owned(), json!("trace"));
            data.insert("trace_reason".to_owned(), json!("not_a_visual_agent"));
            data.insert("trace_agent".to_owned(), json!(agent));
            data.insert("trace_original_len".to_owned(), json!(trace.original_len));
            data.insert("trace_redacted".to_owned(), json!(trace.redacted));
            data.insert("trace_truncated".to_owned(), json!(trace.truncated));
        }
    }

    /// The envelope around one `(type, data)`.
    fn wrap(
        &self,
        envelope: &Envelope,
        kind: String,
        mut data: Map<String, Value>,
        replay: bool,
    ) -> Value {
        let bare = kind.strip_prefix("chat.").unwrap_or(&kind).to_owned();
        data.insert("kind".to_owned(), json!(bare));
        if let Some(seq) = envelope.seq {
            data.insert("index".to_owned(), json!(seq));
        }
        if replay {
            data.insert("replay".to_owned(), json!(true));
        }
        let agent = data
            .get("agent")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
            .unwrap_or("Agent")
            .to_owned();
        let mut frame = json!({
            "type": kind, "data": data, "timestamp": rfc3339(envelope.ts), "agent": agent,
        });
        if let Some(seq) = envelope.seq {
            frame["seq"] = json!(seq);
        }
        frame
    }
}

/// An event without a MozaiksAI counterpart: its native `type`, its fields
/// in `data`.
fn pass_through(envelope: &Envelope) -> (String, Map<String, Value>) {
    let mut fields = match serde_json::to_value(&envelope.event) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    };
    let kind = fields
        .remove("type")
        .and_then(|t| t.as_str().map(str::to_owned))
        .unwrap_or_default();
    (kind, fields)
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(fields) => fields,
        _ => Map::new(),
    }
}

/// `ms` since the Unix epoch as an RFC 3339 UTC time with milliseconds
/// (`2026-01-17T10:00:00.000+00:00`), MozaiksAI's `timestamp` form.
pub(crate) fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-from-civil, inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(seq: Option<u64>, event: Event) -> Envelope {
        Envelope {
            seq,
            chat_id: "c".repeat(32),
            ts: 1_768_644_000_000,
            event,
        }
    }

    #[test]
    fn run_moved_is_never_sent_to_chatui() {
        let mut translator = Translator::new(&"c".repeat(32), WorkflowFacts::default());
        let moved = envelope(
            Some(9),
            Event::RunMoved {
                from: "a".into(),
                to: "b".into(),
            },
        );
        assert!(translator.translate(&moved, false).is_empty());
        assert!(translator.translate(&moved, true).is_empty());
        // The events around it still are.
        let next = envelope(Some(10), Event::UserMessage { text: "hi".into() });
        assert!(!translator.translate(&next, false).is_empty());
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(rfc3339(1_768_644_000_123), "2026-01-17T10:00:00.123+00:00");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000+00:00");
    }

    #[test]
    fn an_agent_message_is_a_chat_text_with_seq_at_the_top() {
        let mut translator = Translator::new(&"c".repeat(32), WorkflowFacts::default());
        let frames = translator.translate(
            &envelope(
                Some(7),
                Event::AgentMessage {
                    agent: "Planner".into(),
                    text: "Hi".into(),
                    tool_calls: Vec::new(),
                    structured: None,
                    model: None,
                },
            ),
            false,
        );
        assert_eq!(frames.len(), 1);
        let frame = &frames[0];
        assert_eq!(frame["type"], "chat.text");
        assert_eq!(frame["seq"], 7);
        assert_eq!(frame["agent"], "Planner");
        assert_eq!(frame["timestamp"], "2026-01-17T10:00:00.000+00:00");
        assert_eq!(frame["data"]["kind"], "text");
        assert_eq!(frame["data"]["content"], "Hi");
        assert_eq!(frame["data"]["is_visual"], true);
        assert_eq!(frame["data"]["index"], 7);
    }

    #[test]
    fn errors_and_failed_runs_are_chat_errors_and_a_failed_run_completes_with_status_2() {
        let mut translator = Translator::new(&"c".repeat(32), WorkflowFacts::default());
        let error = translator.translate(
            &envelope(
                Some(3),
                Event::Error {
                    code: crate::event::ErrorCode::LlmTimeout,
                    message: "slow".into(),
                },
            ),
            false,
        );
        assert_eq!(error[0]["type"], "chat.error");
        assert_eq!(error[0]["data"]["error_code"], "LLM_TIMEOUT");
        let failed = translator.translate(
            &envelope(
                Some(4),
                Event::RunStatus {
                    status: RunStatus::Failed,
                    reason: Some("broken".into()),
                },
            ),
            false,
        );
        let kinds: Vec<&str> = failed.iter().map(|f| f["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            ["chat.error", "chat.usage_summary", "chat.run_complete"]
        );
        assert_eq!(failed[0]["data"]["error_code"], "WORKFLOW_EXECUTION_FAILED");
        assert_eq!(failed[2]["data"]["status"], 2);
        let interrupted = translator.translate(
            &envelope(
                Some(5),
                Event::RunStatus {
                    status: RunStatus::Interrupted,
                    reason: None,
                },
            ),
            false,
        );
        assert_eq!(interrupted[0]["type"], "run_status");
        assert_eq!(interrupted[0]["data"]["status"], "interrupted");
    }

    #[test]
    fn tool_calls_say_who_made_them_and_removed_variables_say_so() {
        let mut translator = Translator::new(&"c".repeat(32), WorkflowFacts::default());
        let call = |origin| Event::ToolCall {
            call_id: "x".into(),
            agent: "A".into(),
            tool: "t".into(),
            arguments: json!({}),
            origin,
        };
        let kinds: Vec<Value> = [
            None,
            Some(CallOrigin::AutoExecute),
            Some(CallOrigin::BeforeAgent),
        ]
        .into_iter()
        .map(|origin| translator.translate(&envelope(Some(1), call(origin)), false)[0]["data"]["interaction_type"].clone())
        .collect();
        assert_eq!(kinds, [Value::Null, json!("auto_tool"), json!("lifecycle")]);
        let removed = translator.translate(
            &envelope(
                Some(2),
                Event::ContextChanged {
                    key: "k".into(),
                    value: None,
                    by: "tool:t".into(),
                },
            ),
            false,
        );
        assert_eq!(removed[0]["type"], "context_update");
        assert_eq!(removed[0]["data"]["removed"], true);
    }

    #[test]
    fn an_inline_request_that_timed_out_or_was_cancelled_completes_with_that_status() {
        let mut translator = Translator::new(&"c".repeat(32), WorkflowFacts::default());
        for (id, outcome, status) in [
            ("r1", UiOutcome::Timeout, "timeout"),
            (
                "r2",
                UiOutcome::Cancelled {
                    reason: "ended".into(),
                },
                "cancelled",
            ),
        ] {
            translator.translate(
                &envelope(
                    Some(1),
                    Event::UiRequest {
                        request_id: id.into(),
                        call_id: "call".into(),
                        tool: "t".into(),
                        component: "Form".into(),
                        payload: json!({}),
                        display: "inline".into(),
                        timeout_ms: 1,
                    },
                ),
                false,
            );
            let done = translator.translate(
                &envelope(
                    Some(2),
                    Event::UiResponse {
                        request_id: id.into(),
                        outcome,
                    },
                ),
                false,
            );
            assert_eq!(done[0]["type"], "chat.ui_tool_complete");
            assert_eq!(done[0]["data"]["status"], status);
        }
    }

    #[test]
    fn an_answered_ui_request_completes_inline_and_dismisses_artifacts() {
        let chat = "c".repeat(32);
        let mut translator = Translator::new(&chat, WorkflowFacts::default());
        for (id, display) in [("r1", "inline"), ("r2", "artifact")] {
            let asked = translator.translate(
                &envelope(
                    Some(1),
                    Event::UiRequest {
                        request_id: id.into(),
                        call_id: "call".into(),
                        tool: "t".into(),
                        component: "Form".into(),
                        payload: json!({"q": 1}),
                        display: display.into(),
                        timeout_ms: 1,
                    },
                ),
                false,
            );
            assert_eq!(asked[0]["data"]["awaiting_response"], true);
            assert_eq!(asked[0]["data"]["payload"]["display"], display);
            let done = translator.translate(
                &envelope(
                    Some(2),
                    Event::UiResponse {
                        request_id: id.into(),
                        outcome: UiOutcome::Answered { answer: json!(1) },
                    },
                ),
                false,
            );
            let expected = if display == "inline" {
                "chat.ui_tool_complete"
            } else {
                "chat.ui_tool_dismiss"
            };
            assert_eq!(done[0]["type"], expected);
        }
    }
}
