//! `orchestrator.yaml` to `orchestrator.json`.

use serde_yaml_ng::{Mapping, Value};

use super::normalise::{agent, loose_bool, non_empty};
use super::read::SourceFile;
use super::report::ImportReport;
use crate::workflow::diagnostic::JsonPath;

const PATTERNS: [&str; 4] = [
    "DefaultPattern",
    "AutoPattern",
    "RoundRobinPattern",
    "RandomPattern",
];

/// The converted orchestrator and what the rest of the import needs of it.
#[derive(Debug)]
pub(crate) struct Orchestrator {
    /// `orchestrator.json`.
    pub file: Mapping,
    /// The pattern written (MozaiksAI wired handoffs only for `DefaultPattern`).
    pub pattern: String,
}

/// Converts `orchestrator.yaml`; `name` is the imported workflow's name
/// (its folder's), `agents` the agents' names.
pub(crate) fn convert(
    file: &SourceFile,
    name: &str,
    agents: &[String],
    report: &mut ImportReport,
) -> Orchestrator {
    let f = file.name.as_str();
    let root = JsonPath::root();
    let empty = Mapping::new();
    let raw = file.value.as_mapping().unwrap_or(&empty);
    let mut out = Mapping::new();
    if let Some(n) = non_empty(raw.get("workflow_name")).filter(|n| *n != name) {
        report.note(
            f,
            root.key("workflow_name"),
            format!("\"{n}\" became \"{name}\": mozaiks requires the folder's name (MozaiksAI took the folder's name and showed this one)"),
        );
    }
    out.insert("workflow_name".into(), name.into());
    if let Some(d) = non_empty(raw.get("description")) {
        out.insert("description".into(), d.into());
    }
    match raw.get("max_turns") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_i64().filter(|n| *n >= 1) {
            Some(n) => {
                out.insert("max_turns".into(), n.into());
            }
            None => report.note(
                f,
                root.key("max_turns"),
                "not a positive integer; the default (50) applies",
            ),
        },
    }
    let initial_message = non_empty(raw.get("initial_message")).or_else(|| {
        let fallback = non_empty(raw.get("initial_message_to_user"));
        if fallback.is_some() {
            report.note(
                f,
                root.key("initial_message_to_user"),
                "became initial_message: MozaiksAI seeded the chat with it because initial_message is empty",
            );
        }
        fallback
    });
    if non_empty(raw.get("initial_message")).is_some()
        && non_empty(raw.get("initial_message_to_user")).is_some()
    {
        report.note(
            f,
            root.key("initial_message_to_user"),
            "not imported: MozaiksAI used it only when initial_message is empty",
        );
    }
    let mut human = match raw.get("human_in_the_loop") {
        None | Some(Value::Null) => false,
        Some(v) => loose_bool(v).unwrap_or_else(|| {
            report.note(
                f,
                root.key("human_in_the_loop"),
                "not a boolean MozaiksAI understands; false",
            );
            false
        }),
    };
    if !human && initial_message.is_some() {
        report.note(
            f,
            root.key("human_in_the_loop"),
            "set to true: MozaiksAI forced it on whenever initial_message seeds the chat",
        );
        human = true;
    }
    out.insert("human_in_the_loop".into(), human.into());
    let startup = match non_empty(raw.get("startup_mode")) {
        None | Some("AgentDriven") => "AgentDriven",
        Some("UserDriven") => "UserDriven",
        Some("BackendOnly") => {
            report.note(
                f,
                root.key("startup_mode"),
                "BackendOnly became UserDriven: it only differed in what MozaiksAI did not implement",
            );
            "UserDriven"
        }
        Some(other) => {
            report.note(
                f,
                root.key("startup_mode"),
                format!("unknown \"{other}\"; AgentDriven (MozaiksAI's default)"),
            );
            "AgentDriven"
        }
    };
    out.insert("startup_mode".into(), startup.into());
    let pattern = match non_empty(raw.get("orchestration_pattern")) {
        None => "AutoPattern".to_owned(),
        Some(p) if PATTERNS.contains(&p) => p.to_owned(),
        Some(other) => {
            report.note(
                f,
                root.key("orchestration_pattern"),
                format!("\"{other}\" became DefaultPattern: MozaiksAI fails every run of an unknown pattern"),
            );
            "DefaultPattern".to_owned()
        }
    };
    out.insert("orchestration_pattern".into(), pattern.clone().into());
    if let Some(initial) = non_empty(raw.get("initial_agent")) {
        match agent(initial, agents) {
            Some(a) => {
                out.insert("initial_agent".into(), a.into());
            }
            None => report.note(
                f,
                root.key("initial_agent"),
                format!("unknown agent \"{initial}\" dropped; the first agent starts"),
            ),
        }
    }
    if let Some(m) = initial_message {
        out.insert("initial_message".into(), m.into());
    }
    for (key, value) in raw {
        let key = key.as_str().unwrap_or_default();
        let handled = [
            "workflow_name",
            "description",
            "max_turns",
            "human_in_the_loop",
            "startup_mode",
            "orchestration_pattern",
            "initial_agent",
            "initial_message",
            "initial_message_to_user",
        ];
        if handled.contains(&key) || is_empty(value) {
            continue;
        }
        let reason = if key == "runtime_extensions" {
            "not supported: mozaiks loads no Python extensions (api_router, startup_service, lifecycle_hooks); lifecycle tools and hooks are plugin functions"
        } else {
            "not read by MozaiksAI's runtime (carried along to the front end only); not imported"
        };
        report.note(f, root.key(key), reason);
    }
    Orchestrator { file: out, pattern }
}

/// Whether a value carries nothing (null, empty string, list or map).
pub(crate) fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Sequence(s) => s.is_empty(),
        Value::Mapping(m) => m.is_empty(),
        _ => false,
    }
}
