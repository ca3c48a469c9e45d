//! Triggers: context variables set without a tool, by an agent's message
//! (`agent_text`) or by the answer to a UI tool's request (`ui_response`),
//! and the derived variables taken from a field of an output or a result.
//!
//! This module decides *what* is set; the run persists each as a
//! `context_changed` event (`by`: `trigger:<agent>` / `trigger:<tool>`),
//! so a resumed run reads them back like any other change.

use std::ops::Range;

use serde_json::Value;

use crate::event::{Envelope, Event};
use crate::workflow::model::{ContextVariable, Producer, TextMatch, Trigger, VariableSource};

/// What an agent's message sets, and the message as it is kept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TextFirings {
    /// `(variable, value)` in declaration order.
    pub set: Vec<(String, Value)>,
    /// The message without the matched text of `ui_hidden` triggers.
    pub shown: String,
}

/// Whether some `agent_text` trigger on `agent` hides what it matched:
/// such an agent's text is not streamed (a delta could show the token
/// before the whole message is known).
pub(crate) fn hides_text(variables: &[ContextVariable], agent: &str) -> bool {
    static_triggers(variables).any(|(_, trigger)| {
        matches!(trigger, Trigger::AgentText { agent: a, ui_hidden: true, .. } if a == agent)
    })
}

/// The `agent_text` triggers of `agent` that `text` fires.
pub(crate) fn agent_text(variables: &[ContextVariable], agent: &str, text: &str) -> TextFirings {
    let mut set = Vec::new();
    let mut hidden: Vec<Range<usize>> = Vec::new();
    for (variable, trigger) in static_triggers(variables) {
        let Trigger::AgentText {
            agent: watched,
            matcher,
            value,
            ui_hidden,
        } = trigger
        else {
            continue;
        };
        if watched != agent {
            continue;
        }
        if let Some(span) = find(matcher, text) {
            set.push((variable.to_owned(), value.clone()));
            if *ui_hidden {
                hidden.push(span);
            }
        }
    }
    TextFirings {
        set,
        shown: without(text, hidden),
    }
}

/// Where `matcher` matches `text`. `equals` compares the trimmed message,
/// then its trimmed last non-empty line (agents often end a reply with a
/// token on a line of its own); `contains` and `regex` match anywhere.
fn find(matcher: &TextMatch, text: &str) -> Option<Range<usize>> {
    match matcher {
        TextMatch::Equals(expected) => {
            let trimmed = text.trim();
            if trimmed == expected {
                let start = text.len() - text.trim_start().len();
                return Some(start..start + trimmed.len());
            }
            let line = text.trim_end().lines().last()?;
            let start = line.as_ptr() as usize - text.as_ptr() as usize;
            let line_trimmed = line.trim();
            (line_trimmed == expected).then(|| {
                let offset = start + (line.len() - line.trim_start().len());
                offset..offset + line_trimmed.len()
            })
        }
        TextMatch::Contains(needle) => text.find(needle.as_str()).map(|at| at..at + needle.len()),
        TextMatch::Regex(regex) => regex.find(text).map(|m| m.range()),
    }
}

/// `text` without the `spans` (which may overlap), trimmed at the end.
fn without(text: &str, mut spans: Vec<Range<usize>>) -> String {
    if spans.is_empty() {
        return text.to_owned();
    }
    spans.sort_by_key(|s| s.start);
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for span in spans {
        if span.start > last {
            out.push_str(&text[last..span.start]);
        }
        last = last.max(span.end);
    }
    out.push_str(&text[last..]);
    out.trim_end().to_owned()
}

/// What the answer to a request of UI tool `tool` sets: the value at each
/// `ui_response` trigger's `response_key`. A key the answer does not have
/// sets nothing.
pub(crate) fn ui_response(
    variables: &[ContextVariable],
    tool: &str,
    answer: &Value,
) -> Vec<(String, Value)> {
    static_triggers(variables)
        .filter_map(|(variable, trigger)| match trigger {
            Trigger::UiResponse {
                tool: watched,
                response_key,
            } if watched == tool => {
                let value = response_key.get(answer);
                if value.is_none() {
                    tracing::warn!(
                        tool,
                        variable,
                        response_key = %response_key,
                        "the UI answer has no `{response_key}`; the trigger of `{variable}` sets nothing"
                    );
                }
                Some((variable.to_owned(), value?.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The variables derived from `tool` with a `field`, and their values in
/// the tool's `result`.
pub(crate) fn tool_result_fields(
    variables: &[ContextVariable],
    tool: &str,
    result: &Value,
) -> Vec<(String, Value)> {
    variables
        .iter()
        .filter_map(|v| match &v.source {
            VariableSource::Derived {
                by: Producer::Tool(t),
                field: Some(field),
                ..
            } if t == tool => Some((v.name.clone(), field.get(result)?.clone())),
            _ => None,
        })
        .collect()
}

/// The variables derived from `agent`'s structured output and their
/// values: the value at `field`; without one, the field of the variable's
/// name, else the whole output. A `field` the output lacks sets nothing.
pub(crate) fn agent_output_fields(
    variables: &[ContextVariable],
    agent: &str,
    output: &Value,
) -> Vec<(String, Value)> {
    variables
        .iter()
        .filter_map(|v| match &v.source {
            VariableSource::Derived {
                by: Producer::Agent(a),
                field,
                ..
            } if a == agent => {
                let value = match (field, output) {
                    (Some(field), _) => field.get(output)?.clone(),
                    (None, Value::Object(fields)) if fields.contains_key(&v.name) => {
                        fields[&v.name].clone()
                    }
                    (None, whole) => whole.clone(),
                };
                Some((v.name.clone(), value))
            }
            _ => None,
        })
        .collect()
}

fn static_triggers(variables: &[ContextVariable]) -> impl Iterator<Item = (&str, &Trigger)> {
    variables.iter().flat_map(|v| {
        let triggers: &[Trigger] = match &v.source {
            VariableSource::Static { triggers, .. } => triggers,
            _ => &[],
        };
        triggers.iter().map(move |t| (v.name.as_str(), t))
    })
}

/// The variables a trigger of `by` (`trigger:<agent>`) already set in the
/// current LLM step: the `context_changed` events at the end of `events`
/// since the last event that moved the run (only changes, usage, statuses,
/// errors and retries may follow a step's start without ending it). After
/// a restart between a trigger's event and its message, the LLM is asked
/// again and these are not fired twice.
pub(crate) fn already_fired<'a>(
    events: impl DoubleEndedIterator<Item = &'a Envelope>,
    by: &str,
) -> Vec<String> {
    events
        .rev()
        .take_while(|e| {
            matches!(
                e.event,
                Event::ContextChanged { .. }
                    | Event::Usage { .. }
                    | Event::RunStatus { .. }
                    | Event::Error { .. }
                    | Event::LlmRetry { .. }
            )
        })
        .filter_map(|e| match &e.event {
            Event::ContextChanged { key, by: b, .. } if b == by => Some(key.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::RunStatus;
    use crate::workflow::model::{FieldPath, VariableType};

    fn variable(name: &str, source: VariableSource) -> ContextVariable {
        ContextVariable {
            name: name.into(),
            var_type: VariableType::Integer,
            description: String::new(),
            source,
        }
    }

    fn derived(name: &str, by: Producer, field: Option<&str>) -> ContextVariable {
        variable(
            name,
            VariableSource::Derived {
                by,
                field: field.and_then(FieldPath::parse),
                default: Value::Null,
            },
        )
    }

    #[test]
    fn derived_fields_read_nested_values_and_a_missing_field_sets_nothing() {
        let vars = [
            derived("score", Producer::Agent("R".into()), Some("review.score")),
            derived("gone", Producer::Agent("R".into()), Some("review.missing")),
            derived("review", Producer::Agent("R".into()), None),
            derived("whole", Producer::Agent("R".into()), None),
            derived("count", Producer::Tool("t".into()), Some("tasks")),
            derived("other", Producer::Agent("X".into()), None),
        ];
        let output = json!({"review": {"score": 7}});
        assert_eq!(
            agent_output_fields(&vars, "R", &output),
            [
                ("score".to_owned(), json!(7)),
                ("review".to_owned(), json!({"score": 7})),
                ("whole".to_owned(), output.clone()),
            ]
        );
        assert_eq!(
            tool_result_fields(&vars, "t", &json!({"tasks": 2})),
            [("count".to_owned(), json!(2))]
        );
        assert!(tool_result_fields(&vars, "t", &json!({"other": 2})).is_empty());
    }

    #[test]
    fn a_ui_answer_without_the_response_key_sets_nothing() {
        let vars = [variable(
            "approved",
            VariableSource::Static {
                default: Value::Null,
                triggers: vec![Trigger::UiResponse {
                    tool: "ask".into(),
                    response_key: FieldPath::parse("form.ok").unwrap(),
                }],
            },
        )];
        assert_eq!(
            ui_response(&vars, "ask", &json!({"form": {"ok": true}})),
            [("approved".to_owned(), json!(true))]
        );
        assert!(ui_response(&vars, "ask", &json!({"form": {}})).is_empty());
        assert!(ui_response(&vars, "other", &json!({"form": {"ok": true}})).is_empty());
    }

    #[test]
    fn a_trigger_recorded_in_this_step_counts_as_fired_and_one_of_an_earlier_step_does_not() {
        let env = |event: Event| Envelope {
            seq: Some(1),
            chat_id: "c".into(),
            ts: 0,
            event,
        };
        let changed = |key: &str, by: &str| {
            env(Event::ContextChanged {
                key: key.into(),
                value: Some(json!(true)),
                by: by.into(),
            })
        };
        let events = [
            changed("old", "trigger:A"),
            env(Event::Speaker {
                agent: "A".into(),
                turn: 2,
            }),
            changed("done", "trigger:A"),
            changed("x", "tool:t"),
            env(Event::RunStatus {
                status: RunStatus::Running,
                reason: Some("resumed".into()),
            }),
        ];
        assert_eq!(already_fired(events.iter(), "trigger:A"), ["done"]);
        assert!(already_fired(events.iter(), "trigger:B").is_empty());
    }

    fn equals(s: &str) -> TextMatch {
        TextMatch::Equals(s.to_owned())
    }

    #[test]
    fn equals_matches_the_trimmed_message_or_its_last_line_only() {
        assert_eq!(find(&equals("DONE"), "  DONE \n"), Some(2..6));
        let text = "The plan is ready.\nDONE\n";
        assert_eq!(&text[find(&equals("DONE"), text).unwrap()], "DONE");
        assert_eq!(find(&equals("DONE"), "DONE, but more to come"), None);
        assert_eq!(find(&equals("DONE"), "DONE\nthen more"), None);
    }

    #[test]
    fn contains_and_regex_match_anywhere() {
        let text = "ok [[APPROVED]] thanks";
        assert_eq!(
            find(&TextMatch::Contains("[[APPROVED]]".into()), text),
            Some(3..15)
        );
        let regex = TextMatch::Regex(regex::Regex::new(r"score: \d+").unwrap());
        assert_eq!(
            &"final score: 42!"[find(&regex, "final score: 42!").unwrap()],
            "score: 42"
        );
        assert_eq!(find(&regex, "no score"), None);
    }

    #[test]
    fn hidden_spans_are_removed_and_the_end_trimmed() {
        let token = 7..11;
        assert_eq!(without("Ready.\nDONE", vec![token]), "Ready.");
        assert_eq!(without("a XX b YY", vec![2..4, 7..9, 3..4]), "a  b");
        assert_eq!(without("same", Vec::new()), "same");
    }
}
