//! Triggers: context variables set without a tool, by an agent's message
//! (`agent_text`) or by the answer to a UI tool's request (`ui_response`),
//! and the derived variables taken from a field of an output or a result.
//!
//! This module decides *what* is set; the run persists each as a
//! `context_changed` event (`by`: `trigger:<agent>` / `trigger:<tool>`),
//! so a resumed run reads them back like any other change.

use std::ops::Range;

use serde_json::Value;

use crate::workflow::Workflow;
use crate::workflow::model::{Producer, TextMatch, Trigger, VariableSource};

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
pub(crate) fn hides_text(workflow: &Workflow, agent: &str) -> bool {
    static_triggers(workflow).any(|(_, trigger)| {
        matches!(trigger, Trigger::AgentText { agent: a, ui_hidden: true, .. } if a == agent)
    })
}

/// The `agent_text` triggers of `agent` that `text` fires.
pub(crate) fn agent_text(workflow: &Workflow, agent: &str, text: &str) -> TextFirings {
    let mut set = Vec::new();
    let mut hidden: Vec<Range<usize>> = Vec::new();
    for (variable, trigger) in static_triggers(workflow) {
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
pub(crate) fn ui_response(workflow: &Workflow, tool: &str, answer: &Value) -> Vec<(String, Value)> {
    static_triggers(workflow)
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
    workflow: &Workflow,
    tool: &str,
    result: &Value,
) -> Vec<(String, Value)> {
    workflow
        .context_variables()
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
    workflow: &Workflow,
    agent: &str,
    output: &Value,
) -> Vec<(String, Value)> {
    workflow
        .context_variables()
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

fn static_triggers(workflow: &Workflow) -> impl Iterator<Item = (&str, &Trigger)> {
    workflow.context_variables().iter().flat_map(|v| {
        let triggers: &[Trigger] = match &v.source {
            VariableSource::Static { triggers, .. } => triggers,
            _ => &[],
        };
        triggers.iter().map(move |t| (v.name.as_str(), t))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
