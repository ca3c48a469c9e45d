//! `tools.yaml` (tools and lifecycle tools) to `tools.json`, and
//! `hooks.yaml` to `hooks.json`.
//!
//! Every Python function becomes a function of a plugin still to be
//! written: the plugin of `tools/<module>.py` of workflow `<Workflow>` is
//! `<workflow>-<module>` (lowercase; characters a plugin id cannot hold
//! become `_`), and the function keeps the Python function's name.

use serde_yaml_ng::{Mapping, Value};

use super::agents::AgentIn;
use super::normalise::{agent, is_ui_tool, list_or_map, loose_bool, non_empty};
use super::orchestrator::is_empty;
use super::read::SourceFile;
use super::report::{ImportReport, PortTool};
use crate::workflow::diagnostic::JsonPath;

/// Longest plugin id a manifest accepts.
const MAX_PLUGIN_ID: usize = 64;

/// The plugin id for the Python file `file` of workflow `workflow`.
pub(crate) fn plugin_id(workflow: &str, file: &str) -> String {
    let stem = file
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(file)
        .trim_end_matches(".py");
    let slug = |s: &str| -> String {
        s.chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut id = format!("{}-{}", slug(workflow), slug(stem));
    id.truncate(MAX_PLUGIN_ID);
    id
}

/// One converted tool, and what auto-execution needs to know of it.
#[derive(Debug, Clone)]
pub(crate) struct ToolOut {
    /// The name agents call it by.
    pub name: String,
    /// Agents that were bound to it in MozaiksAI (before auto-tool agents
    /// were taken out).
    pub agents: Vec<String>,
    /// MozaiksAI's `auto_invoke` (default: true for UI tools).
    pub auto_invoke: bool,
    /// The tools.json entry.
    pub entry: Mapping,
    /// Where it came from.
    pub path: JsonPath,
}

/// The tools of `tools.yaml`, converted. Tools of agents in auto-tool mode
/// are not bound to them (MozaiksAI gave those agents no callable tools).
pub(crate) fn convert_tools(
    file: &SourceFile,
    workflow: &str,
    agents: &[AgentIn],
    report: &mut ImportReport,
) -> Vec<ToolOut> {
    let f = file.name.as_str();
    let names: Vec<String> = agents.iter().map(|a| a.name.clone()).collect();
    let mut out: Vec<ToolOut> = Vec::new();
    let Some(list) = file.value.get("tools").filter(|v| !v.is_null()) else {
        return out;
    };
    for item in list_or_map(list, &JsonPath::root().key("tools"), "function") {
        let (path, raw) = match item {
            Ok(item) => item,
            Err(path) => {
                report.note(f, path, "not a tool object: skipped");
                continue;
            }
        };
        let (Some(py), Some(function)) =
            (non_empty(raw.get("file")), non_empty(raw.get("function")))
        else {
            report.note(
                f,
                path,
                "needs `file` and `function`: skipped, as MozaiksAI skips it",
            );
            continue;
        };
        let bound = agent_names(raw.get("agent"), &path.key("agent"), &names, f, report);
        if raw.get("agent").is_none_or(is_empty) {
            report.note(f, path, "needs `agent`: skipped, as MozaiksAI skips it");
            continue;
        }
        let plugin = plugin_id(workflow, py);
        let port = PortTool {
            plugin: plugin.clone(),
            function: function.to_owned(),
            python_file: py.to_owned(),
            used_as: "tool",
        };
        let ui = is_ui_tool(&raw);
        let name = non_empty(raw.get("name")).unwrap_or(function).to_owned();
        let auto_invoke = raw.get("auto_invoke").and_then(loose_bool).unwrap_or(ui);
        let callable: Vec<&String> = bound
            .iter()
            .filter(|a| !agents.iter().any(|x| &x.name == *a && x.auto_tool_mode()))
            .collect();
        if let Some(existing) = out.iter_mut().find(|t| t.name == name) {
            let same = existing.entry.get("plugin") == Some(&Value::from(plugin.clone()))
                && existing.entry.get("function") == Some(&Value::from(function));
            if same {
                report.note(
                    f,
                    path.clone(),
                    format!("a second entry of \"{name}\": its agents were added to the first"),
                );
                for a in &bound {
                    if !existing.agents.contains(a) {
                        existing.agents.push(a.clone());
                    }
                }
                let mut all: Vec<Value> = existing
                    .entry
                    .get("agent")
                    .and_then(Value::as_sequence)
                    .cloned()
                    .unwrap_or_default();
                for a in callable {
                    if !all.contains(&a.clone().into()) {
                        all.push(a.clone().into());
                    }
                }
                if !all.is_empty() {
                    existing.entry.insert("agent".into(), Value::Sequence(all));
                }
                continue;
            }
            report.note(
                f,
                path.clone(),
                format!(
                    "a second tool named \"{name}\": skipped (tool names are unique in mozaiks)"
                ),
            );
            continue;
        }
        report.port(port);
        let mut entry = Mapping::new();
        if name != function {
            entry.insert("name".into(), name.clone().into());
        }
        entry.insert("plugin".into(), plugin.into());
        entry.insert("function".into(), function.into());
        if let Some(d) = non_empty(raw.get("description")) {
            entry.insert("description".into(), d.into());
        }
        if !callable.is_empty() {
            entry.insert(
                "agent".into(),
                Value::Sequence(callable.iter().map(|a| (*a).clone().into()).collect()),
            );
        }
        if ui {
            entry.insert("tool_type".into(), "UI_Tool".into());
            entry.insert(
                "ui".into(),
                ui_spec(&raw, function, &path, f, report).into(),
            );
        } else {
            entry.insert("tool_type".into(), "Agent_Tool".into());
        }
        if raw.get("orchestrator_managed").and_then(loose_bool) == Some(true) {
            report.note(
                f,
                path.key("orchestrator_managed"),
                "not supported: in mozaiks the tool opens its UI itself (ui.ask); port the function accordingly",
            );
        }
        for (key, value) in &raw {
            let key = key.as_str().unwrap_or_default();
            let known = [
                "agent",
                "file",
                "function",
                "description",
                "tool_type",
                "type",
                "auto_invoke",
                "ui",
                "name",
                "orchestrator_managed",
            ];
            if !known.contains(&key) && !is_empty(value) {
                report.note(
                    f,
                    path.key(key),
                    "not a key MozaiksAI's tools read: not imported",
                );
            }
        }
        out.push(ToolOut {
            name,
            agents: bound,
            auto_invoke,
            entry,
            path,
        });
    }
    out
}

/// A UI tool's `ui`: the component (MozaiksAI's fallback: the function's
/// name) and the mode (`inline` unless `artifact`).
fn ui_spec(
    raw: &Mapping,
    function: &str,
    path: &JsonPath,
    f: &str,
    report: &mut ImportReport,
) -> Mapping {
    let ui = raw.get("ui").and_then(Value::as_mapping);
    let component = ui.and_then(|u| non_empty(u.get("component")));
    let component = component.unwrap_or_else(|| {
        report.note(
            f,
            path.key("ui").key("component"),
            format!("none given: \"{function}\", the function's name, under which MozaiksAI registered it"),
        );
        function
    });
    let mode = match ui.and_then(|u| non_empty(u.get("mode"))) {
        None | Some("inline") => "inline",
        Some("artifact") => "artifact",
        Some(other) => {
            report.note(
                f,
                path.key("ui").key("mode"),
                format!("unknown mode \"{other}\": inline"),
            );
            "inline"
        }
    };
    let mut out = Mapping::new();
    out.insert("component".into(), component.into());
    out.insert("mode".into(), mode.into());
    out
}

/// The agents a string or list names, resolved as MozaiksAI does
/// (case-insensitively); unknown ones are reported and left out.
fn agent_names(
    value: Option<&Value>,
    path: &JsonPath,
    names: &[String],
    f: &str,
    report: &mut ImportReport,
) -> Vec<String> {
    let raw: Vec<(JsonPath, &str)> = match value {
        Some(Value::String(s)) => vec![(path.clone(), s.as_str())],
        Some(Value::Sequence(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.as_str().map(|s| (path.index(i), s)))
            .collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for (p, name) in raw {
        match agent(name, names) {
            Some(a) if !out.contains(&a) => out.push(a),
            Some(_) => {}
            None => report.note(f, p, format!("unknown agent \"{name}\": left out")),
        }
    }
    out
}

/// `tools.yaml`'s `lifecycle_tools`, converted to the tools.json entries
/// of the same name.
pub(crate) fn convert_lifecycle(
    file: &SourceFile,
    workflow: &str,
    agents: &[AgentIn],
    report: &mut ImportReport,
) -> Vec<Value> {
    let f = file.name.as_str();
    let names: Vec<String> = agents.iter().map(|a| a.name.clone()).collect();
    let mut out = Vec::new();
    let Some(list) = file.value.get("lifecycle_tools").filter(|v| !v.is_null()) else {
        return out;
    };
    for item in list_or_map(list, &JsonPath::root().key("lifecycle_tools"), "function") {
        let (path, raw) = match item {
            Ok(item) => item,
            Err(path) => {
                report.note(f, path, "not a lifecycle tool object: skipped");
                continue;
            }
        };
        let trigger = non_empty(raw.get("trigger")).unwrap_or_default();
        let agent_level = matches!(trigger, "before_agent" | "after_agent");
        if !agent_level && !matches!(trigger, "before_chat" | "after_chat") {
            report.note(
                f,
                path.key("trigger"),
                format!("trigger \"{trigger}\" skipped: MozaiksAI fires only before_chat, after_chat, before_agent and after_agent"),
            );
            continue;
        }
        let (Some(py), Some(function)) =
            (non_empty(raw.get("file")), non_empty(raw.get("function")))
        else {
            report.note(f, path, "needs `file` and `function`: skipped");
            continue;
        };
        let plugin = plugin_id(workflow, py);
        report.port(PortTool {
            plugin: plugin.clone(),
            function: function.to_owned(),
            python_file: py.to_owned(),
            used_as: "lifecycle tool",
        });
        let mut entry = Mapping::new();
        entry.insert("trigger".into(), trigger.into());
        let bound = agent_names(raw.get("agent"), &path.key("agent"), &names, f, report);
        if !bound.is_empty() {
            if agent_level {
                let value: Value = if bound.len() == 1 {
                    bound[0].clone().into()
                } else {
                    Value::Sequence(bound.into_iter().map(Value::from).collect())
                };
                entry.insert("agent".into(), value);
            } else {
                report.note(
                    f,
                    path.key("agent"),
                    format!("dropped: {trigger} tools run once per chat, not per agent"),
                );
            }
        }
        entry.insert("plugin".into(), plugin.into());
        entry.insert("function".into(), function.into());
        if let Some(n) = non_empty(raw.get("name")).filter(|n| *n != function) {
            entry.insert("name".into(), n.into());
        }
        if let Some(d) = non_empty(raw.get("description")) {
            entry.insert("description".into(), d.into());
        }
        if is_ui_tool(&raw) {
            entry.insert("tool_type".into(), "UI_Tool".into());
            entry.insert(
                "ui".into(),
                ui_spec(&raw, function, &path, f, report).into(),
            );
        }
        for (key, value) in &raw {
            let key = key.as_str().unwrap_or_default();
            let known = [
                "trigger",
                "agent",
                "file",
                "function",
                "name",
                "description",
                "tool_type",
                "type",
                "ui",
            ];
            if !known.contains(&key) && !is_empty(value) {
                report.note(
                    f,
                    path.key(key),
                    "not a key MozaiksAI's lifecycle tools read: not imported",
                );
            }
        }
        out.push(Value::Mapping(entry));
    }
    out
}

/// `hooks.yaml` to the entries of `hooks.json`.
pub(crate) fn convert_hooks(
    file: &SourceFile,
    workflow: &str,
    agents: &[AgentIn],
    report: &mut ImportReport,
) -> Vec<Value> {
    let f = file.name.as_str();
    let names: Vec<String> = agents.iter().map(|a| a.name.clone()).collect();
    let mut out = Vec::new();
    let Some(list) = file.value.get("hooks").filter(|v| !v.is_null()) else {
        return out;
    };
    let yaml = !file.name.ends_with(".json");
    for item in list_or_map(list, &JsonPath::root().key("hooks"), "function") {
        let (path, raw) = match item {
            Ok(item) => item,
            Err(path) => {
                report.note(f, path, "not a hook object: skipped");
                continue;
            }
        };
        let hook_type = non_empty(raw.get("hook_type")).unwrap_or_default();
        if !matches!(
            hook_type,
            "update_agent_state" | "process_message_before_send"
        ) {
            report.note(
                f,
                path.key("hook_type"),
                format!("\"{hook_type}\" not supported: mozaiks runs update_agent_state and process_message_before_send hooks"),
            );
            continue;
        }
        let hook_agent = match non_empty(raw.get("hook_agent")) {
            None => "all".to_owned(),
            Some(a) if a.eq_ignore_ascii_case("all") => "all".to_owned(),
            Some(a) => match agent(a, &names) {
                Some(a) => a,
                None => {
                    report.note(
                        f,
                        path.key("hook_agent"),
                        format!("unknown agent \"{a}\": hook skipped"),
                    );
                    continue;
                }
            },
        };
        let py = non_empty(raw.get("filename")).or_else(|| non_empty(raw.get("file")));
        let (Some(py), Some(function)) = (py, non_empty(raw.get("function"))) else {
            report.note(f, path, "needs `filename` and `function`: skipped");
            continue;
        };
        let plugin = plugin_id(workflow, py);
        report.port(PortTool {
            plugin: plugin.clone(),
            function: function.to_owned(),
            python_file: py.to_owned(),
            used_as: "hook",
        });
        if yaml {
            report.note(
                f,
                path.clone(),
                "imported, and now runs: MozaiksAI never registered hooks declared in hooks.yaml (it read hooks.json)",
            );
        }
        let mut entry = Mapping::new();
        entry.insert("hook_type".into(), hook_type.into());
        entry.insert("hook_agent".into(), hook_agent.into());
        entry.insert("plugin".into(), plugin.into());
        entry.insert("function".into(), function.into());
        for (key, value) in &raw {
            let key = key.as_str().unwrap_or_default();
            if !["hook_type", "hook_agent", "filename", "file", "function"].contains(&key)
                && !is_empty(value)
            {
                report.note(
                    f,
                    path.key(key),
                    "not a key MozaiksAI's hooks read: not imported",
                );
            }
        }
        out.push(Value::Mapping(entry));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::plugin_id;

    #[test]
    fn plugin_ids_name_the_workflow_and_the_python_module() {
        assert_eq!(
            plugin_id("ValueEngine", "concept_blueprint.py"),
            "valueengine-concept_blueprint"
        );
        assert_eq!(
            plugin_id("My Flow", "tools/Hook.Tokens.py"),
            "my_flow-hook_tokens"
        );
        assert_eq!(plugin_id(&"W".repeat(70), "x.py").len(), 64);
    }
}
