//! `agents.yaml` (list or map form) to `agents.json`.

use std::collections::BTreeMap;

use serde_yaml_ng::{Mapping, Value};

use super::normalise::{SECTION_ORDER, list_or_map, loose_bool, non_empty};
use super::orchestrator::is_empty;
use super::read::SourceFile;
use super::report::ImportReport;
use crate::workflow::diagnostic::JsonPath;

/// MozaiksAI's last-resort system message.
const DEFAULT_SYSTEM_MESSAGE: &str = "You are a helpful AI assistant.";

/// The `max_consecutive_auto_reply` MozaiksAI gave an agent that declared
/// none. mozaiks' own default is no limit, so the import writes it.
const DEFAULT_MAX_CONSECUTIVE_AUTO_REPLY: u32 = 2;

/// One agent as MozaiksAI declared it.
#[derive(Debug, Clone)]
pub(crate) struct AgentIn {
    /// Its name.
    pub name: String,
    /// Where it is in agents.yaml.
    pub path: JsonPath,
    /// Its keys.
    pub raw: Mapping,
}

impl AgentIn {
    /// Whether MozaiksAI ran it in auto-tool mode.
    pub(crate) fn auto_tool_mode(&self) -> bool {
        self.raw
            .get("auto_tool_mode")
            .and_then(loose_bool)
            .unwrap_or(false)
    }
}

/// Reads the agents, in file order; entries without a name are reported
/// and skipped.
pub(crate) fn read(file: &SourceFile, report: &mut ImportReport) -> Vec<AgentIn> {
    let root = JsonPath::root();
    let Some(agents) = file.value.get("agents") else {
        report.note(&file.name, root, "no `agents` key: no agents imported");
        return Vec::new();
    };
    let mut out: Vec<AgentIn> = Vec::new();
    for item in list_or_map(agents, &root.key("agents"), "name") {
        match item {
            Ok((path, raw)) => match non_empty(raw.get("name")) {
                Some(name) if out.iter().any(|a| a.name == name) => {
                    report.note(
                        &file.name,
                        path,
                        format!("a second agent \"{name}\": skipped"),
                    );
                }
                Some(name) => out.push(AgentIn {
                    name: name.to_owned(),
                    path,
                    raw,
                }),
                None => report.note(&file.name, path, "an agent without a name: skipped"),
            },
            Err(path) => report.note(&file.name, path, "not an agent object: skipped"),
        }
    }
    out
}

/// Writes `agents.json`; `visible` maps an agent to the context variables
/// it sees.
pub(crate) fn write(
    file: &SourceFile,
    agents: &[AgentIn],
    visible: &BTreeMap<String, Vec<String>>,
    report: &mut ImportReport,
) -> Value {
    let f = file.name.as_str();
    let mut list = Vec::new();
    for agent in agents {
        let mut out = Mapping::new();
        out.insert("name".into(), agent.name.clone().into());
        let p = &agent.path;
        let sections = [
            ("prompt_sections", p.key("prompt_sections")),
            ("prompt_sections_custom", p.key("prompt_sections_custom")),
        ]
        .into_iter()
        .find_map(|(key, path)| {
            let value = agent.raw.get(key).filter(|v| !is_empty(v))?;
            let sections = prompt_sections(value, &path, f, report);
            (!sections.is_empty()).then_some((key, sections))
        });
        let system_message = non_empty(agent.raw.get("system_message"));
        match (sections, system_message) {
            (Some((key, sections)), message) => {
                if key == "prompt_sections_custom" && agent.raw.get("prompt_sections").is_some() {
                    report.note(
                        f,
                        p.key("prompt_sections"),
                        "empty: prompt_sections_custom used, as MozaiksAI does",
                    );
                }
                if message.is_some() {
                    report.note(
                        f,
                        p.key("system_message"),
                        format!("not imported: MozaiksAI used {key} and this only as a fallback"),
                    );
                }
                out.insert("prompt_sections".into(), Value::Sequence(sections));
            }
            (None, Some(message)) => {
                out.insert("system_message".into(), message.into());
            }
            (None, None) => {
                report.note(
                    f,
                    p.clone(),
                    format!("no prompt: MozaiksAI's default system message \"{DEFAULT_SYSTEM_MESSAGE}\" written"),
                );
                out.insert("system_message".into(), DEFAULT_SYSTEM_MESSAGE.into());
            }
        }
        match agent.raw.get("max_consecutive_auto_reply") {
            None | Some(Value::Null) => {
                report.note(
                    f,
                    p.key("max_consecutive_auto_reply"),
                    format!(
                        "absent: MozaiksAI's default {DEFAULT_MAX_CONSECUTIVE_AUTO_REPLY} written (without it mozaiks sets no limit)"
                    ),
                );
                out.insert(
                    "max_consecutive_auto_reply".into(),
                    DEFAULT_MAX_CONSECUTIVE_AUTO_REPLY.into(),
                );
            }
            Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) => {
                    out.insert("max_consecutive_auto_reply".into(), n.into());
                }
                None => report.note(
                    f,
                    p.key("max_consecutive_auto_reply"),
                    "not a non-negative integer: not imported",
                ),
            },
        }
        if let Some(vars) = visible.get(&agent.name).filter(|v| !v.is_empty()) {
            out.insert(
                "context_variables".into(),
                Value::Sequence(vars.iter().map(|v| v.clone().into()).collect()),
            );
        }
        for (key, value) in &agent.raw {
            let key = key.as_str().unwrap_or_default();
            let reason = match key {
                "name"
                | "prompt_sections"
                | "prompt_sections_custom"
                | "system_message"
                | "max_consecutive_auto_reply"
                | "auto_tool_mode" => continue,
                "human_input_mode" => {
                    "not imported: MozaiksAI ignored it (every agent ran as NEVER, never asking the user), which is what mozaiks does without it"
                }
                "structured_outputs_required" => {
                    "not imported: informational in MozaiksAI; structured_outputs.json's registry decides"
                }
                "image_generation_enabled" if value.as_bool() == Some(false) => continue,
                "image_generation_enabled" => {
                    "not supported: mozaiks has no image-generation capability (MozaiksAI attached DALL-E 3)"
                }
                _ if is_empty(value) => continue,
                _ => "not a key MozaiksAI's agents read: not imported",
            };
            report.note(f, p.key(key), reason);
        }
        list.push(Value::Mapping(out));
    }
    let mut file_out = Mapping::new();
    file_out.insert("agents".into(), Value::Sequence(list));
    Value::Mapping(file_out)
}

/// Prompt sections in list form, or in object form (keyed by section id,
/// rendered in MozaiksAI's fixed order; ids outside it follow, in file
/// order).
fn prompt_sections(
    value: &Value,
    path: &JsonPath,
    f: &str,
    report: &mut ImportReport,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut push = |id: &str, section: &Value, path: JsonPath, report: &mut ImportReport| {
        let (heading, content) = match section {
            Value::String(s) => (None, Some(s.as_str())),
            Value::Mapping(m) => (
                non_empty(m.get("heading")),
                m.get("content").and_then(Value::as_str),
            ),
            _ => (None, None),
        };
        let Some(content) = content else {
            report.note(f, path, "a section without text content: skipped");
            return;
        };
        let mut s = Mapping::new();
        s.insert("id".into(), id.into());
        if let Some(h) = heading {
            s.insert("heading".into(), h.into());
        }
        s.insert("content".into(), content.into());
        out.push(Value::Mapping(s));
    };
    match value {
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                let id = item
                    .get("id")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("section_{}", i + 1), str::to_owned);
                push(&id, item, path.index(i), report);
            }
        }
        Value::Mapping(map) => {
            let ids: Vec<&str> = map.keys().filter_map(Value::as_str).collect();
            for id in SECTION_ORDER.iter().copied().filter(|id| ids.contains(id)) {
                if let Some(section) = map.get(id) {
                    push(id, section, path.key(id), report);
                }
            }
            for id in ids.iter().copied().filter(|id| !SECTION_ORDER.contains(id)) {
                report.note(
                    f,
                    path.key(id),
                    format!(
                        "section id outside MozaiksAI's fixed order ({}): placed after them",
                        SECTION_ORDER.join(", ")
                    ),
                );
                if let Some(section) = map.get(id) {
                    push(id, section, path.key(id), report);
                }
            }
        }
        _ => report.note(
            f,
            path.clone(),
            "neither a list nor an object of sections: not imported",
        ),
    }
    out
}
