//! Checks of the `triggers` of `static` context variables: the agent or UI
//! tool they watch exists, the matcher compiles, the value has the
//! variable's type.

use serde_json::Value;

use super::{CONTEXT_VARIABLES_FILE, Validator};
use crate::workflow::diagnostic::{JsonPath, list};
use crate::workflow::model::{FieldPath, TextMatch, Trigger};
use crate::workflow::spec::{TextMatchSpec, TriggerSpec, VariableType};

/// Longest compiled form of a trigger's regular expression: a pattern
/// that compiles bigger than this is refused at load instead of slowing
/// every agent message (the `regex` crate's default is 10 MiB).
const MAX_TRIGGER_REGEX_BYTES: usize = 1024 * 1024;

/// What a trigger may name.
pub(super) struct TriggerScope<'a> {
    pub agents: &'a [&'a str],
    pub ui_tools: &'a [String],
    pub var_type: VariableType,
}

impl Validator<'_> {
    /// Checks one trigger at `at`; returns it when it has no problem.
    pub(super) fn trigger(
        &mut self,
        spec: &TriggerSpec,
        at: &JsonPath,
        scope: &TriggerScope<'_>,
    ) -> Option<Trigger> {
        let before = self.diagnostics.len();
        let trigger = match spec {
            TriggerSpec::AgentText {
                agent,
                matcher,
                value,
                ui_hidden,
            } => {
                self.agent_exists(
                    CONTEXT_VARIABLES_FILE,
                    at.key("agent"),
                    agent,
                    scope.agents,
                    false,
                );
                let matcher = self.text_match(matcher, &at.key("match"));
                let value = value.clone().unwrap_or(Value::Bool(true));
                if !value.is_null() && !super::context::has_type(&value, scope.var_type) {
                    self.error(
                        CONTEXT_VARIABLES_FILE,
                        at.key("value"),
                        format!(
                            "value {value} is not of type {}",
                            super::context::type_name(scope.var_type)
                        ),
                        Some("without `value` a trigger sets `true`".to_owned()),
                    );
                }
                Trigger::AgentText {
                    agent: agent.clone(),
                    matcher: matcher?,
                    value,
                    ui_hidden: *ui_hidden,
                }
            }
            TriggerSpec::UiResponse { tool, response_key } => {
                if !scope.ui_tools.contains(tool) {
                    self.error(
                        CONTEXT_VARIABLES_FILE,
                        at.key("tool"),
                        format!("\"{tool}\" is not a UI tool of tools.json"),
                        Some(format!("UI tools are {}", list(scope.ui_tools))),
                    );
                }
                let Some(response_key) = FieldPath::parse(response_key) else {
                    self.error(
                        CONTEXT_VARIABLES_FILE,
                        at.key("response_key"),
                        format!("\"{response_key}\" is not a dotted path such as `approved` or `form.choice`"),
                        None,
                    );
                    return None;
                };
                Trigger::UiResponse {
                    tool: tool.clone(),
                    response_key,
                }
            }
        };
        (self.diagnostics.len() == before).then_some(trigger)
    }

    fn text_match(&mut self, spec: &TextMatchSpec, at: &JsonPath) -> Option<TextMatch> {
        let (key, text) = match spec {
            TextMatchSpec::Equals(text) => ("equals", text),
            TextMatchSpec::Contains(text) => ("contains", text),
            TextMatchSpec::Regex(text) => ("regex", text),
        };
        if text.trim().is_empty() {
            self.error(
                CONTEXT_VARIABLES_FILE,
                at.key(key),
                format!("`{key}` is empty: it would match every message"),
                None,
            );
            return None;
        }
        match spec {
            TextMatchSpec::Equals(text) => Some(TextMatch::Equals(text.trim().to_owned())),
            TextMatchSpec::Contains(text) => Some(TextMatch::Contains(text.clone())),
            TextMatchSpec::Regex(pattern) => {
                match regex::RegexBuilder::new(pattern)
                    .size_limit(MAX_TRIGGER_REGEX_BYTES)
                    .build()
                {
                    Ok(regex) => Some(TextMatch::Regex(regex)),
                    Err(err) => {
                        let first = err.to_string();
                        let first = first.lines().last().unwrap_or_default().trim().to_owned();
                        self.error(
                            CONTEXT_VARIABLES_FILE,
                            at.key("regex"),
                            format!("invalid regular expression: {first}"),
                            Some("the syntax is the Rust `regex` crate's (no look-around, no back-references)".to_owned()),
                        );
                        None
                    }
                }
            }
        }
    }
}
