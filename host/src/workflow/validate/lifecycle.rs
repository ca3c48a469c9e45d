//! Checks of tools.json `lifecycle_tools` and of `hooks.json`: each names a
//! plugin function that exists and accepts the arguments the runtime will
//! send it (docs/workflows.md lists them), and the agents it names exist.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{HOOKS_FILE, TOOLS_FILE, Validator};
use crate::workflow::catalog::{LookupError, ToolCatalog};
use crate::workflow::diagnostic::{JsonPath, list};
use crate::workflow::model::{Hook, LifecycleTool, hook_arguments, lifecycle_arguments};
use crate::workflow::spec::{AgentList, HooksFile, LifecycleToolSpec, ToolSpec};

/// The `hook_agent` that applies a hook to every agent.
const ALL_AGENTS: &str = "all";

/// Checks `lifecycle_tools`; returns the valid ones.
pub(super) fn lifecycle_tools(
    v: &mut Validator<'_>,
    specs: &[LifecycleToolSpec],
    agents: &[&str],
    catalog: &dyn ToolCatalog,
) -> Vec<LifecycleTool> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let path = JsonPath::root().key("lifecycle_tools").index(i);
        let before = v.diagnostics.len();
        let as_tool = ToolSpec {
            name: spec.name.clone(),
            plugin: spec.plugin.clone(),
            function: spec.function.clone(),
            description: spec.description.clone(),
            tool_type: spec.tool_type,
            agent: None,
            ui: spec.ui.clone(),
        };
        // The same checks as a tool (function exists, UI tools name their
        // component), with names unique among lifecycle tools: the name
        // is part of the id of each call's events.
        let tool = v.tool(&as_tool, &path, &mut seen, agents, catalog);
        let mut named = Vec::new();
        if let Some(list) = &spec.agent {
            if !spec.trigger.is_per_agent() {
                v.error(
                    TOOLS_FILE,
                    path.key("agent"),
                    format!(
                        "a `{}` lifecycle tool runs once per chat and takes no `agent`",
                        spec.trigger.as_str()
                    ),
                    Some("remove `agent`, or use `before_agent`/`after_agent`".to_owned()),
                );
            }
            for (j, agent) in list.names().iter().enumerate() {
                let p = match list {
                    AgentList::One(_) => path.key("agent"),
                    AgentList::Many(_) => path.key("agent").index(j),
                };
                v.agent_exists(TOOLS_FILE, p, agent, agents, false);
                named.push(agent.clone());
            }
        }
        let Some(tool) = tool else { continue };
        let sample_agent = spec
            .trigger
            .is_per_agent()
            .then(|| {
                named
                    .first()
                    .map(String::as_str)
                    .or(agents.first().copied())
            })
            .flatten();
        let sample = lifecycle_arguments(spec.trigger, sample_agent);
        check_accepts(
            v,
            TOOLS_FILE,
            path.key("function"),
            &spec.function,
            &tool.parameters,
            &sample,
        );
        if v.diagnostics.len() == before {
            out.push(LifecycleTool {
                trigger: spec.trigger,
                agents: named,
                tool,
            });
        }
    }
    out
}

/// Checks `hooks.json`; returns the valid hooks.
pub(super) fn hooks(
    v: &mut Validator<'_>,
    file: &HooksFile,
    agents: &[&str],
    catalog: &dyn ToolCatalog,
) -> Vec<Hook> {
    let mut out = Vec::new();
    for (i, spec) in file.hooks.iter().enumerate() {
        let path = JsonPath::root().key("hooks").index(i);
        let before = v.diagnostics.len();
        let agent = if spec.hook_agent == ALL_AGENTS {
            None
        } else {
            if !agents.contains(&spec.hook_agent.as_str()) {
                v.error(
                    HOOKS_FILE,
                    path.key("hook_agent"),
                    format!("unknown agent \"{}\"", spec.hook_agent),
                    Some(format!("agents are {}; or `{ALL_AGENTS}`", list(agents))),
                );
            }
            Some(spec.hook_agent.clone())
        };
        let mut parameters = Value::Null;
        match catalog.function(&spec.plugin, &spec.function) {
            Ok(function) => {
                parameters = function.parameters.clone();
                let sample_agent = agent
                    .as_deref()
                    .or(agents.first().copied())
                    .unwrap_or("Agent");
                let sample = hook_arguments(spec.hook_type, sample_agent, "...");
                check_accepts(
                    v,
                    HOOKS_FILE,
                    path.key("function"),
                    &spec.function,
                    &function.parameters,
                    &sample,
                );
            }
            Err(err) => {
                let field = if matches!(err, LookupError::UnknownPlugin { .. }) {
                    "plugin"
                } else {
                    "function"
                };
                v.error(
                    HOOKS_FILE,
                    path.key(field),
                    err.to_string(),
                    Some(err.help()),
                );
            }
        }
        if v.diagnostics.len() == before {
            out.push(Hook {
                hook_type: spec.hook_type,
                agent,
                plugin: spec.plugin.clone(),
                function: spec.function.clone(),
                parameters,
            });
        }
    }
    out
}

/// Reports `function` when its parameter schema refuses `sample`, the shape
/// of the arguments the runtime sends it: the call would fail every time.
fn check_accepts(
    v: &mut Validator<'_>,
    file: &str,
    path: JsonPath,
    function: &str,
    parameters: &Value,
    sample: &Value,
) {
    let Ok(validator) = jsonschema::validator_for(parameters) else {
        // The plugin host already refused a function with an invalid schema.
        return;
    };
    if let Some(error) = validator.iter_errors(sample).next() {
        v.error(
            file,
            path,
            format!(
                "function \"{function}\" does not accept the arguments the runtime sends ({sample}): {error}"
            ),
            Some(format!(
                "its parameters must accept an object with {}",
                list(
                    sample
                        .as_object()
                        .into_iter()
                        .flat_map(|o| o.keys().map(|k| format!("`{k}`")))
                )
            )),
        );
    }
}
