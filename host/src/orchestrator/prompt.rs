//! The system message an agent's LLM gets on each call: the workflow's
//! text with its `{{context.name}}` references filled in, and, for an
//! agent that lists `context_variables`, a section with their current
//! values. Both are rendered from the context the chat's log holds at that
//! moment, so a change takes effect on the agent's next LLM call.

use serde_json::{Map, Value};

use crate::event::{Envelope, Event};
use crate::workflow::model::Agent;
use crate::workflow::template;

/// Most characters of one variable's value shown in a system message. A
/// longer value is cut and ends with [`CUT_MARKER`]: a 1 MiB variable in
/// every call would crowd out the conversation and cost tokens on each turn.
pub(crate) const MAX_PROMPT_VALUE_CHARS: usize = 2000;

/// What ends a cut value, followed by how many characters were left out.
pub(crate) const CUT_MARKER: &str = "… [cut: ";

/// The heading of the section that lists an agent's `context_variables`.
pub(crate) const CONTEXT_SECTION_HEADING: &str = "[CONTEXT]";

/// The context variables after `events`: each `context_changed` folded in
/// order (the same fold the stores keep as the chat's context).
pub(crate) fn context_of<'a>(events: impl IntoIterator<Item = &'a Envelope>) -> Map<String, Value> {
    let mut context = Map::new();
    for envelope in events {
        if let Event::ContextChanged { key, value, .. } = &envelope.event {
            match value {
                Some(value) => {
                    context.insert(key.clone(), value.clone());
                }
                None => {
                    context.remove(key);
                }
            }
        }
    }
    context
}

/// `agent`'s system message with `context`'s current values.
pub(crate) fn system_message(agent: &Agent, context: &Map<String, Value>) -> String {
    let body = template::render(&agent.system_message, |name| show(context.get(name)));
    if agent.context_variables.is_empty() {
        return body;
    }
    let mut section =
        format!("{CONTEXT_SECTION_HEADING}\nCurrent values of the chat's context variables:");
    for name in &agent.context_variables {
        section.push_str(&format!("\n- {name}: {}", show(context.get(name))));
    }
    if body.trim().is_empty() {
        section
    } else {
        format!("{}\n\n{section}", body.trim_end())
    }
}

/// A value as a prompt shows it: a string as its text, anything else as
/// compact JSON (`null` when unset), cut at [`MAX_PROMPT_VALUE_CHARS`].
fn show(value: Option<&Value>) -> String {
    let text = match value {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => "null".to_owned(),
    };
    let total = text.chars().count();
    if total <= MAX_PROMPT_VALUE_CHARS {
        return text;
    }
    let kept: String = text.chars().take(MAX_PROMPT_VALUE_CHARS).collect();
    format!(
        "{kept}{CUT_MARKER}{} more characters]",
        total - MAX_PROMPT_VALUE_CHARS
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::workflow::model::{Handoffs, LlmSettings};

    fn agent(system_message: &str, visible: &[&str]) -> Agent {
        Agent {
            name: "A".into(),
            system_message: system_message.into(),
            context_variables: visible.iter().map(|s| (*s).to_owned()).collect(),
            llm: LlmSettings::default(),
            tools: Vec::new(),
            structured_output: None,
            max_consecutive_auto_reply: None,
            human_input_mode: None,
            handoffs: Handoffs::default(),
        }
    }

    fn context(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn fills_references_and_lists_visible_variables_with_their_values() {
        let ctx = context(json!({"plan": "ship it", "count": 3, "flags": {"a": true}}));
        let text = system_message(
            &agent(
                "You are A. Plan: {{context.plan}}.",
                &["count", "flags", "missing"],
            ),
            &ctx,
        );
        assert_eq!(
            text,
            "You are A. Plan: ship it.\n\n[CONTEXT]\nCurrent values of the chat's context variables:\n- count: 3\n- flags: {\"a\":true}\n- missing: null"
        );
        assert_eq!(system_message(&agent("Plain.", &[]), &ctx), "Plain.");
    }

    #[test]
    fn a_long_value_is_cut_with_a_marker_saying_how_much_is_left_out() {
        let long = "x".repeat(MAX_PROMPT_VALUE_CHARS + 5);
        let ctx = context(json!({ "big": long }));
        let text = system_message(&agent("{{context.big}}", &[]), &ctx);
        assert_eq!(
            text,
            format!(
                "{}… [cut: 5 more characters]",
                "x".repeat(MAX_PROMPT_VALUE_CHARS)
            )
        );
    }

    #[test]
    fn the_context_is_the_fold_of_the_log() {
        let changed = |key: &str, value: Option<Value>| Envelope {
            seq: Some(1),
            chat_id: "c".into(),
            ts: 0,
            event: Event::ContextChanged {
                key: key.into(),
                value,
                by: "t".into(),
            },
        };
        let events = [
            changed("a", Some(json!(1))),
            changed("b", Some(json!(2))),
            changed("a", Some(json!(3))),
            changed("b", None),
        ];
        assert_eq!(context_of(&events), context(json!({"a": 3})));
    }
}
