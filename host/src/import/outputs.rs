//! `structured_outputs.yaml` (nested or flat) to `structured_outputs.json`,
//! and MozaiksAI's auto-tool mode to `auto_execute`.

use serde_yaml_ng::{Mapping, Value};

use super::agents::AgentIn;
use super::fields::{ConvertedModels, convert_models};
use super::normalise::{agent, structured_outputs_body};
use super::read::SourceFile;
use super::report::ImportReport;
use super::tools::ToolOut;

/// The converted models and the agent → model registry.
#[derive(Debug, Default)]
pub(crate) struct Outputs {
    /// The models.
    pub models: ConvertedModels,
    /// Agent → model, for models that were converted.
    pub registry: Vec<(String, String)>,
}

impl Outputs {
    /// The model of `agent`, if it has one.
    pub(crate) fn model_of(&self, agent: &str) -> Option<&str> {
        self.registry
            .iter()
            .find(|(a, _)| a == agent)
            .map(|(_, m)| m.as_str())
    }
}

/// Reads the models and the registry.
pub(crate) fn read(file: &SourceFile, agents: &[String], report: &mut ImportReport) -> Outputs {
    let f = file.name.as_str();
    let (body, root) = structured_outputs_body(&file.value);
    let empty = Mapping::new();
    let models = body
        .get("models")
        .and_then(Value::as_mapping)
        .unwrap_or(&empty);
    let converted = convert_models(models, &root.key("models"));
    for (path, reason) in &converted.notes {
        report.note(f, path, reason.clone());
    }
    let mut registry = Vec::new();
    if let Some(map) = body.get("registry").and_then(Value::as_mapping) {
        for (name, model) in map {
            let name = name.as_str().unwrap_or_default();
            let path = root.key("registry").key(name);
            let Some(model) = model.as_str() else {
                continue;
            };
            let Some(resolved) = agent(name, agents) else {
                report.note(f, path, format!("unknown agent \"{name}\": skipped"));
                continue;
            };
            if !converted.has(model) {
                let reason = if models.contains_key(model) {
                    format!(
                        "model \"{model}\" was not imported (above): {resolved} answers in free text"
                    )
                } else {
                    format!(
                        "unknown model \"{model}\" (MozaiksAI failed the workflow's structured outputs): skipped"
                    )
                };
                report.note(f, path, reason);
                continue;
            }
            registry.push((resolved, model.to_owned()));
        }
    }
    // A flat file's other keys are reported with the file's top level.
    let nested = root != crate::workflow::diagnostic::JsonPath::root();
    for (key, value) in body.as_mapping().filter(|_| nested).unwrap_or(&empty) {
        let key = key.as_str().unwrap_or_default();
        if !["models", "registry"].contains(&key) && !super::orchestrator::is_empty(value) {
            report.note(
                f,
                root.key(key),
                "not a key MozaiksAI's structured outputs read: not imported",
            );
        }
    }
    Outputs {
        models: converted,
        registry,
    }
}

/// The `auto_execute` bindings of agents in auto-tool mode: their model
/// goes to each of their tools with `auto_invoke`.
pub(crate) fn auto_execute(
    agents_file: &str,
    tools_file: Option<&str>,
    agents: &[AgentIn],
    outputs: &Outputs,
    tools: &[ToolOut],
    report: &mut ImportReport,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for a in agents.iter().filter(|a| a.auto_tool_mode()) {
        let path = a.path.key("auto_tool_mode");
        let Some(model) = outputs.model_of(&a.name) else {
            report.note(
                agents_file,
                path,
                "dropped: auto_tool_mode needs a structured-output model, and this agent has none (MozaiksAI failed to create it)",
            );
            continue;
        };
        let targets: Vec<&ToolOut> = tools
            .iter()
            .filter(|t| t.auto_invoke && t.agents.contains(&a.name))
            .collect();
        if targets.is_empty() {
            report.note(
                agents_file,
                path,
                "no tool of this agent has auto_invoke: its structured output goes to no tool, as in MozaiksAI",
            );
            continue;
        }
        for t in targets {
            let binding = (model.to_owned(), t.name.clone());
            if out.contains(&binding) {
                continue;
            }
            if let Some(tf) = tools_file.filter(|tf| !tf.ends_with(".json")) {
                report.note(
                    tf,
                    t.path.key("auto_invoke"),
                    format!("auto_execute {{model: {model}, tool: {}}}: MozaiksAI never ran this binding for YAML workflows (it read tools.json); mozaiks runs it inside the turn", t.name),
                );
            }
            out.push(binding);
        }
    }
    for t in tools {
        let all_auto = !t.agents.is_empty()
            && t.agents
                .iter()
                .all(|n| agents.iter().any(|a| &a.name == n && a.auto_tool_mode()));
        if all_auto
            && !t.auto_invoke
            && let Some(tf) = tools_file
        {
            report.note(
                tf,
                t.path.key("agent"),
                "declared but used by no agent: its agents are in auto_tool_mode (MozaiksAI gave them no callable tools) and it has no auto_invoke",
            );
        }
        let auto_agent = t
            .agents
            .iter()
            .any(|n| agents.iter().any(|a| &a.name == n && a.auto_tool_mode()));
        if t.auto_invoke
            && !auto_agent
            && t.entry.get("tool_type") == Some(&Value::from("Agent_Tool"))
            && let Some(tf) = tools_file
        {
            report.note(
                tf,
                t.path.key("auto_invoke"),
                "dropped: auto_invoke only acts for agents in auto_tool_mode, and none of this tool's agents is",
            );
        }
    }
    out
}

/// `structured_outputs.json`, or `None` when there is nothing to write.
pub(crate) fn write(outputs: &Outputs, auto_execute: &[(String, String)]) -> Option<Value> {
    if outputs.models.schemas.is_empty() {
        return None;
    }
    let mut models = Mapping::new();
    for (name, schema) in &outputs.models.schemas {
        models.insert(name.clone().into(), schema.clone());
    }
    let mut file = Mapping::new();
    file.insert("models".into(), Value::Mapping(models));
    if !outputs.registry.is_empty() {
        let registry: Mapping = outputs
            .registry
            .iter()
            .map(|(a, m)| (a.clone().into(), m.clone().into()))
            .collect();
        file.insert("registry".into(), Value::Mapping(registry));
    }
    if !auto_execute.is_empty() {
        let list = auto_execute
            .iter()
            .map(|(model, tool)| {
                let mut m = Mapping::new();
                m.insert("model".into(), model.clone().into());
                m.insert("tool".into(), tool.clone().into());
                Value::Mapping(m)
            })
            .collect();
        file.insert("auto_execute".into(), Value::Sequence(list));
    }
    Some(Value::Mapping(file))
}

/// Where in an output schema (top level, or one level down) a field named
/// `name` is: `name` or `Parent.name`. `None` when it is nowhere or twice.
pub(crate) fn field_path(schema: &Value, name: &str) -> Option<String> {
    let props = schema.get("properties").and_then(Value::as_mapping)?;
    if props.contains_key(name) {
        return Some(name.to_owned());
    }
    let mut found = props.iter().filter_map(|(k, v)| {
        let inner = v.get("properties").and_then(Value::as_mapping)?;
        inner
            .contains_key(name)
            .then(|| format!("{}.{name}", k.as_str().unwrap_or_default()))
    });
    let first = found.next()?;
    found.next().is_none().then_some(first)
}
