//! `llm` conditions on the user's handoff rules: after a user message, one
//! small LLM call classifies the message against them.
//!
//! The classifier sees the conditions numbered in file order, the recent
//! conversation and the user's latest message, and answers with a JSON
//! object `{"holds": n}` (sent as the call's `response_format`): `n` is the
//! number of the first condition that holds, or 0 when none does. The first
//! condition that holds wins, as for every rule list. An answer that cannot
//! be read (not JSON, no `holds`, out of range) counts as "none holds", as
//! an unreadable speaker pick falls back to the next agent; the persisted
//! event keeps the raw answer, so it is visible. A failed call (the LLM
//! unreachable, an HTTP error, a timeout) interrupts the run like any LLM
//! failure, and `continue` asks again.

use serde_json::{Value, json};

use super::structured::parse_json;
use crate::event::Event;
use crate::llm::{ChatMessage, ChatRequest, ResponseSchema};

/// The `agent` the classification call's usage and retries are reported
/// under.
pub(crate) const CLASSIFIER: &str = "user_conditions";

/// How many of the last messages the classifier sees besides the user's
/// latest one: enough for "yes, that is fine" to be read against the
/// question it answers, few enough to keep the call small.
pub(crate) const RECENT_MESSAGES: usize = 12;

/// Most tokens the classifier may answer with: `{"holds": 12}` needs fewer
/// than ten.
pub(crate) const MAX_ANSWER_TOKENS: u32 = 20;

/// The first line of the classifier's system message (tests recognise the
/// call by it).
pub(crate) const SYSTEM_PREAMBLE: &str =
    "You classify the user's latest message in a conversation against numbered conditions.";

/// The classification request for `conditions` (in file order), given the
/// chat's events so far (the last user message is the one classified).
pub(crate) fn request(
    model: &str,
    conditions: &[String],
    events: &[&Event],
    seed: Option<i64>,
    timeout: std::time::Duration,
) -> ChatRequest {
    let numbered: Vec<String> = conditions
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{}. {c}", i + 1))
        .collect();
    let mut messages: Vec<String> = events
        .iter()
        .filter_map(|event| match event {
            Event::UserMessage { text } => Some(format!("user: {text}")),
            Event::AgentMessage { agent, text, .. } if !text.is_empty() => {
                Some(format!("{agent}: {text}"))
            }
            _ => None,
        })
        .collect();
    let latest = messages.pop().unwrap_or_default();
    let recent = messages.split_off(messages.len().saturating_sub(RECENT_MESSAGES));
    let system = format!(
        "{SYSTEM_PREAMBLE}\nConditions:\n{}\n\
         Answer with a JSON object {{\"holds\": n}}: n is the number of the first condition that the user's latest message satisfies, or 0 if it satisfies none.",
        numbered.join("\n")
    );
    let user = format!(
        "Conversation before it:\n{}\n\nThe user's latest message:\n{}",
        if recent.is_empty() {
            "(none)".to_owned()
        } else {
            recent.join("\n")
        },
        latest.strip_prefix("user: ").unwrap_or(&latest)
    );
    ChatRequest {
        model: model.to_owned(),
        messages: vec![
            ChatMessage::System { content: system },
            ChatMessage::User {
                name: None,
                content: user,
            },
        ],
        tools: Vec::new(),
        response_format: Some(ResponseSchema {
            name: "user_condition".to_owned(),
            schema: answer_schema(conditions.len()),
        }),
        temperature: Some(0.0),
        max_tokens: Some(MAX_ANSWER_TOKENS),
        timeout,
        seed,
    }
}

/// The schema of the answer: `{"holds": 0..=count}`.
fn answer_schema(count: usize) -> Value {
    json!({
        "type": "object",
        "properties": {"holds": {"type": "integer", "minimum": 0, "maximum": count}},
        "required": ["holds"],
        "additionalProperties": false
    })
}

/// The condition the answer names: `Some(i)` (0-based) for the first that
/// holds, `None` for none, or for an answer that cannot be read.
pub(crate) fn read_answer(answer: &str, count: usize) -> Option<usize> {
    let value = parse_json(answer)?;
    let n = value.get("holds")?.as_u64()?;
    let n = usize::try_from(n).ok()?;
    (1..=count).contains(&n).then(|| n - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_the_number_of_the_first_condition_that_holds() {
        assert_eq!(read_answer(r#"{"holds": 2}"#, 3), Some(1));
        assert_eq!(read_answer("```json\n{\"holds\": 1}\n```", 3), Some(0));
        assert_eq!(read_answer(r#"{"holds": 0}"#, 3), None);
        assert_eq!(read_answer(r#"{"holds": 4}"#, 3), None);
        assert_eq!(read_answer("the second one", 3), None);
        assert_eq!(read_answer(r#"{"holds": -1}"#, 3), None);
    }

    #[test]
    fn the_request_numbers_the_conditions_and_ends_with_the_latest_message() {
        let events = [
            Event::UserMessage {
                text: "Plan a trip".into(),
            },
            Event::UserMessage {
                text: "Looks great, thanks".into(),
            },
        ];
        let refs: Vec<&Event> = events.iter().collect();
        let conditions = vec![
            "The user wants changes.".to_owned(),
            "The user is satisfied.".to_owned(),
        ];
        let request = request(
            "m",
            &conditions,
            &refs,
            None,
            std::time::Duration::from_secs(5),
        );
        let [
            ChatMessage::System { content: system },
            ChatMessage::User { content: user, .. },
        ] = request.messages.as_slice()
        else {
            panic!("{:?}", request.messages);
        };
        assert!(system.starts_with(SYSTEM_PREAMBLE));
        assert!(system.contains("1. The user wants changes.\n2. The user is satisfied."));
        assert!(user.contains("user: Plan a trip"));
        assert!(user.ends_with("The user's latest message:\nLooks great, thanks"));
        assert_eq!(
            request
                .response_format
                .map(|f| f.schema["properties"]["holds"]["maximum"].clone()),
            Some(json!(2))
        );
    }
}
