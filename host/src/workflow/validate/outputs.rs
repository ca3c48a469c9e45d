//! Checks of `structured_outputs.json`: schemas are valid JSON Schema for
//! an object that some answer can satisfy ([`output_schema`]), the agents
//! and tools they name exist, and each `auto_execute` tool accepts its
//! model's outputs as arguments.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{STRUCTURED_OUTPUTS_FILE, Validator, auto_execute, output_schema, tool_name};
use crate::workflow::catalog::ToolCatalog;
use crate::workflow::diagnostic::{JsonPath, list};
use crate::workflow::model::OutputModel;
use crate::workflow::spec::{StructuredOutputsFile, ToolSpec};

/// Checks the file; returns the valid models and the agent → model
/// registry.
pub(super) fn check(
    v: &mut Validator<'_>,
    file: &StructuredOutputsFile,
    agents: &[&str],
    tools: &[ToolSpec],
    catalog: &dyn ToolCatalog,
) -> (Vec<OutputModel>, BTreeMap<String, String>) {
    let root = JsonPath::root();
    let mut models = Vec::new();
    for (name, schema) in &file.models {
        let path = root.key("models").key(name);
        if let Some(problem) = schema_problem(schema) {
            v.error(
                STRUCTURED_OUTPUTS_FILE,
                path,
                format!("invalid JSON Schema for \"{name}\": {problem}"),
                None,
            );
            continue;
        }
        let mut satisfiable = true;
        for finding in output_schema::check(schema, &path) {
            if finding.unsatisfiable {
                satisfiable = false;
                let help =
                    "fix the schema: every answer would fail validation, after two LLM calls";
                v.error(
                    STRUCTURED_OUTPUTS_FILE,
                    finding.path,
                    finding.message,
                    Some(help.to_owned()),
                );
            } else {
                v.warn(STRUCTURED_OUTPUTS_FILE, finding.path, finding.message, None);
            }
        }
        if !satisfiable {
            continue;
        }
        let auto_execute = file
            .auto_execute
            .iter()
            .filter(|a| &a.model == name)
            .map(|a| a.tool.clone())
            .collect();
        models.push(OutputModel {
            name: name.clone(),
            schema: schema.clone(),
            auto_execute,
        });
    }
    let model_help = || format!("models are {}", list(file.models.keys()));
    for (agent, model) in &file.registry {
        let path = root.key("registry").key(agent);
        v.agent_exists(STRUCTURED_OUTPUTS_FILE, path.clone(), agent, agents, false);
        if !file.models.contains_key(model) {
            v.error(
                STRUCTURED_OUTPUTS_FILE,
                path,
                format!("unknown model \"{model}\""),
                Some(model_help()),
            );
        }
    }
    for (i, binding) in file.auto_execute.iter().enumerate() {
        let path = root.key("auto_execute").index(i);
        if !file.models.contains_key(&binding.model) {
            v.error(
                STRUCTURED_OUTPUTS_FILE,
                path.key("model"),
                format!("unknown model \"{}\"", binding.model),
                Some(model_help()),
            );
        }
        let Some(tool) = tools.iter().find(|t| tool_name(t) == binding.tool) else {
            let help = format!("tools are {}", list(tools.iter().map(tool_name)));
            v.error(
                STRUCTURED_OUTPUTS_FILE,
                path.key("tool"),
                format!("unknown tool \"{}\"", binding.tool),
                Some(help),
            );
            continue;
        };
        // An unknown function is reported at the tool in tools.json.
        let (Some(schema), Ok(function)) = (
            file.models.get(&binding.model),
            catalog.function(&tool.plugin, &tool.function),
        ) else {
            continue;
        };
        for problem in auto_execute::mapping_problems(schema, &function.parameters) {
            v.error(
                STRUCTURED_OUTPUTS_FILE,
                path.key("tool"),
                format!(
                    "outputs of \"{}\" cannot be the arguments of \"{}\" ({}.{}): {problem}",
                    binding.model, binding.tool, tool.plugin, tool.function
                ),
                Some(
                    "each top-level field of the output is the parameter of the same name; \
                     change the model or the function so they match"
                        .to_owned(),
                ),
            );
        }
    }
    let registry = file
        .registry
        .iter()
        .map(|(agent, model)| (agent.clone(), model.clone()))
        .collect();
    (models, registry)
}

/// What is wrong with `schema` as a structured-output schema, if anything.
fn schema_problem(schema: &Value) -> Option<String> {
    if let Err(err) = jsonschema::meta::validate(schema) {
        let at = err.instance_path().to_string();
        let at = if at.is_empty() {
            String::new()
        } else {
            format!(" at {at}")
        };
        return Some(format!("{err}{at}"));
    }
    if let Err(err) = jsonschema::validator_for(schema) {
        return Some(err.to_string());
    }
    let is_object = schema.get("type").and_then(Value::as_str) == Some("object");
    (!is_object).then(|| {
        "the top level must be {\"type\": \"object\", ...}: LLM APIs only return objects".to_owned()
    })
}
