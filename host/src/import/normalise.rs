//! MozaiksAI's aliases and alternative shapes, each reduced to the one
//! spelling mozaiks accepts: handoff targets, condition types and scopes,
//! lists that may be maps (agents, context definitions), prompt sections
//! in list or object form, and the key alias `type` of `tool_type`.

use serde_yaml_ng::{Mapping, Value};

use crate::workflow::diagnostic::JsonPath;

/// MozaiksAI's object-form prompt sections are rendered in this order.
pub(crate) const SECTION_ORDER: [&str; 9] = [
    "role",
    "objective",
    "context",
    "runtime_integrations",
    "guidelines",
    "instructions",
    "examples",
    "json_output_compliance",
    "output_format",
];

/// A string value, if `value` is one.
pub(crate) fn text(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str)
}

/// A non-empty string value, trimmed.
pub(crate) fn non_empty(value: Option<&Value>) -> Option<&str> {
    text(value).map(str::trim).filter(|s| !s.is_empty())
}

/// The items of a list that MozaiksAI also accepts as a map `name → item`:
/// each item with its path, the map key copied into `name_key` when the
/// item lacks it. Items that are not objects are returned as `Err` with
/// their path.
pub(crate) fn list_or_map(
    value: &Value,
    path: &JsonPath,
    name_key: &str,
) -> Vec<Result<(JsonPath, Mapping), JsonPath>> {
    match value {
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_mapping()
                    .map(|m| (path.index(i), m.clone()))
                    .ok_or_else(|| path.index(i))
            })
            .collect(),
        Value::Mapping(map) => map
            .iter()
            .map(|(key, item)| {
                let key = key.as_str().unwrap_or_default().to_owned();
                let item_path = path.key(&key);
                match item {
                    Value::Mapping(m) => {
                        let mut m = m.clone();
                        if !m.contains_key(name_key) {
                            let mut named = Mapping::new();
                            named.insert(name_key.into(), key.into());
                            named.extend(m);
                            m = named;
                        }
                        Ok((item_path, m))
                    }
                    Value::Null => {
                        let mut m = Mapping::new();
                        m.insert(name_key.into(), key.into());
                        Ok((item_path, m))
                    }
                    _ => Err(item_path),
                }
            })
            .collect(),
        _ => vec![Err(path.clone())],
    }
}

/// What a handoff `target_agent` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An agent, by its exact name.
    Agent(String),
    /// Revert to the user.
    User,
    /// End the chat.
    Terminate,
}

impl Target {
    /// The spelling mozaiks' handoffs.json uses.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Agent(name) => name,
            Self::User => "user",
            Self::Terminate => "terminate",
        }
    }
}

/// Resolves a target (or source) name: MozaiksAI's aliases of `user`
/// (`User`, `user_proxy`, `UserAgent`, ...) and `terminate` (`end`,
/// `STOP`, ...), else an agent matched case-insensitively.
pub(crate) fn target(raw: &str, agents: &[String]) -> Option<Target> {
    let lower = raw.trim().to_lowercase();
    if matches!(
        lower.as_str(),
        "user" | "user_proxy" | "userproxy" | "user-agent" | "useragent"
    ) {
        return Some(Target::User);
    }
    if matches!(lower.as_str(), "terminate" | "end" | "stop") {
        return Some(Target::Terminate);
    }
    agents
        .iter()
        .find(|a| a.as_str() == raw.trim())
        .or_else(|| agents.iter().find(|a| a.to_lowercase() == lower))
        .map(|a| Target::Agent(a.clone()))
}

/// An agent named case-insensitively, as MozaiksAI matches them.
pub(crate) fn agent(raw: &str, agents: &[String]) -> Option<String> {
    match target(raw, agents) {
        Some(Target::Agent(name)) => Some(name),
        _ => None,
    }
}

/// How a condition is read, after MozaiksAI's aliases and guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConditionKind {
    /// A context expression.
    Expression,
    /// Natural language for the LLM.
    Llm,
}

/// MozaiksAI's reading of `condition_type`: `expression`,
/// `context_expression`, `context` → expression; `llm`, `string_llm` → LLM;
/// absent → expression when the text contains `${`, else LLM; anything
/// else → LLM, and the second value says so.
pub(crate) fn condition_kind(raw: Option<&str>, condition: &str) -> (ConditionKind, bool) {
    match raw.map(|r| r.trim().to_lowercase()) {
        None => (
            if condition.contains("${") {
                ConditionKind::Expression
            } else {
                ConditionKind::Llm
            },
            false,
        ),
        Some(r) if matches!(r.as_str(), "expression" | "context_expression" | "context") => {
            (ConditionKind::Expression, false)
        }
        Some(r) if matches!(r.as_str(), "llm" | "string_llm") => (ConditionKind::Llm, false),
        Some(_) => (ConditionKind::Llm, true),
    }
}

/// Whether a `condition_scope` means "before the agent replies": `pre`,
/// `before_reply`, `immediate`, `context_pre`. Anything else is MozaiksAI's
/// "after the reply".
pub(crate) fn is_pre_scope(raw: &str) -> bool {
    matches!(
        raw.trim().to_lowercase().as_str(),
        "pre" | "before_reply" | "immediate" | "context_pre"
    )
}

/// The kind of a tools.yaml entry: `tool_type` or its alias `type`; a
/// tool with `ui.component` or `ui.mode` set is a UI tool.
pub(crate) fn is_ui_tool(entry: &Mapping) -> bool {
    let declared = text(entry.get("tool_type")).or_else(|| text(entry.get("type")));
    let ui_set = entry
        .get("ui")
        .and_then(Value::as_mapping)
        .is_some_and(|ui| {
            non_empty(ui.get("component")).is_some() || non_empty(ui.get("mode")).is_some()
        });
    match declared {
        Some(t) => t.trim().eq_ignore_ascii_case("ui_tool") || ui_set,
        None => ui_set,
    }
}

/// The body of structured_outputs: `{structured_outputs: {models, registry}}`
/// or, tolerated, `{models, registry}`.
pub(crate) fn structured_outputs_body(file: &Value) -> (&Value, JsonPath) {
    match file.get("structured_outputs") {
        Some(inner) if inner.is_mapping() => (inner, JsonPath::root().key("structured_outputs")),
        _ => (file, JsonPath::root()),
    }
}

/// A boolean as MozaiksAI coerces it: booleans, and the strings
/// `true/yes/1/on/always` and `false/no/0/off/never`.
pub(crate) fn loose_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.trim().to_lowercase().as_str() {
            "true" | "yes" | "1" | "on" | "always" => Some(true),
            "false" | "no" | "0" | "off" | "never" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["Planner".to_owned(), "Reviewer".to_owned()]
    }

    #[test]
    fn targets_resolve_aliases_and_case() {
        for alias in [
            "user",
            "User",
            "USER",
            "user_proxy",
            "UserProxy",
            "user-agent",
            "UserAgent",
        ] {
            assert_eq!(target(alias, &names()), Some(Target::User), "{alias}");
        }
        for alias in ["terminate", "TERMINATE", "end", "End", "STOP", "stop"] {
            assert_eq!(target(alias, &names()), Some(Target::Terminate), "{alias}");
        }
        assert_eq!(
            target("reviewer", &names()),
            Some(Target::Agent("Reviewer".to_owned()))
        );
        assert_eq!(target("Nobody", &names()), None);
    }

    #[test]
    fn condition_types_follow_mozaiksai() {
        use ConditionKind::*;
        assert_eq!(condition_kind(Some("context"), "x"), (Expression, false));
        assert_eq!(
            condition_kind(Some("context_expression"), "x"),
            (Expression, false)
        );
        assert_eq!(condition_kind(Some("string_llm"), "x"), (Llm, false));
        assert_eq!(condition_kind(None, "${a} == True"), (Expression, false));
        assert_eq!(condition_kind(None, "when done"), (Llm, false));
        assert_eq!(condition_kind(Some("fuzzy"), "${a}"), (Llm, true));
        assert!(
            is_pre_scope("before_reply")
                && is_pre_scope("immediate")
                && is_pre_scope("context_pre")
        );
        assert!(!is_pre_scope("post") && !is_pre_scope("after"));
    }

    #[test]
    fn agents_may_be_a_map() {
        let value: Value =
            serde_yaml_ng::from_str("A: {system_message: x}\nB: {name: B2}\n").unwrap();
        let items = list_or_map(&value, &JsonPath::root().key("agents"), "name");
        let names: Vec<_> = items
            .iter()
            .map(|i| {
                i.as_ref()
                    .unwrap()
                    .1
                    .get("name")
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(names, ["A", "B2"]);
    }
}
