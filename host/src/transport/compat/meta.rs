//! What MozaiksAI says about a chat outside its events: `chat_meta` (the
//! first frame on the socket, and `GET /api/chats/meta/…`), the chat's
//! `last_artifact`, its numeric status, and the workflow facts the event
//! translation needs.

use serde_json::{Value, json};

use super::events::{WorkflowFacts, rfc3339};
use super::ids;
use super::visual::VisualAgents;
use crate::event::{Envelope, Event};
use crate::store::{ChatRecord, ChatStatus};
use crate::workflow::model::{ToolKind, Workflow};

/// The facts of `workflow` ([`WorkflowFacts`]); a chat whose workflow is
/// no longer loaded gets only its name (every agent shown).
pub(crate) fn facts(name: &str, workflow: Option<&Workflow>) -> WorkflowFacts {
    let Some(workflow) = workflow else {
        return WorkflowFacts {
            name: name.to_owned(),
            ..WorkflowFacts::default()
        };
    };
    let tool_agents = workflow
        .agents()
        .iter()
        .filter(|agent| {
            agent.tools.iter().any(|tool| {
                workflow
                    .tool(tool)
                    .is_some_and(|t| matches!(t.kind, ToolKind::Ui { .. }))
            })
        })
        .map(|agent| agent.name.clone())
        .collect();
    let structured_agents = workflow
        .agents()
        .iter()
        .filter(|agent| agent.structured_output.is_some())
        .map(|agent| agent.name.clone())
        .collect();
    WorkflowFacts {
        name: workflow.name().to_owned(),
        visual: VisualAgents::new(workflow.visual_agents().iter().map(String::as_str)),
        tool_agents,
        structured_agents,
    }
}

/// MozaiksAI's chat status: 0 in progress, 1 completed; mozaiks adds 2 for
/// a failed chat (MozaiksAI marked failures completed).
pub(crate) fn status_number(status: &ChatStatus) -> u8 {
    match status {
        ChatStatus::InProgress => 0,
        ChatStatus::Completed => 1,
        ChatStatus::Failed => 2,
    }
}

/// The last artifact UI request of the log, as MozaiksAI's `last_artifact`
/// `{ui_tool_id, event_id, display, workflow_name, payload, updated_at}`;
/// `null` when the chat never showed one.
pub(crate) fn last_artifact(chat: &ChatRecord, events: &[Envelope]) -> Value {
    events
        .iter()
        .rev()
        .find_map(|envelope| match &envelope.event {
            Event::UiRequest {
                request_id,
                component,
                payload,
                display,
                ..
            } if display == "artifact" => Some(json!({
                "ui_tool_id": component,
                "event_id": ids::ui_event_id(&chat.chat_id, request_id),
                "display": display,
                "workflow_name": chat.workflow,
                "payload": payload,
                "updated_at": rfc3339(envelope.ts),
            })),
            _ => None,
        })
        .unwrap_or(Value::Null)
}

/// The `chat_meta` fields of `chat` (MozaiksAI §7.2), with the log's last
/// `seq` as `last_sequence`.
pub(crate) fn chat_meta(chat: &ChatRecord, events: &[Envelope]) -> Value {
    json!({
        "chat_id": chat.chat_id,
        "workflow_name": chat.workflow,
        "app_id": chat.app_id,
        "user_id": chat.user_id,
        "has_children": false,
        "cache_seed": chat.cache_seed,
        "chat_exists": true,
        "last_artifact": last_artifact(chat, events),
        "status": status_number(&chat.status),
        "last_sequence": events.last().and_then(|e| e.seq).unwrap_or(chat.last_seq),
        "created_at": rfc3339(chat.created_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_mozaiksai_numbers_and_failed_is_2() {
        assert_eq!(status_number(&ChatStatus::InProgress), 0);
        assert_eq!(status_number(&ChatStatus::Completed), 1);
        assert_eq!(status_number(&ChatStatus::Failed), 2);
    }
}
