//! `describe()`: the functions a plugin offers, checked once at load time so
//! every later call can trust names and schemas.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::bindings::PluginPre;
use crate::call::Invocation;
use crate::engine::PluginEngine;
use crate::error::{CallError, LoadError};
use crate::limits::{
    DESCRIBE_DEADLINE, MAX_DESCRIPTION_BYTES, MAX_FUNCTIONS_PER_PLUGIN, MAX_PARAMETERS_BYTES, clip,
};
use crate::manifest::{Limits, Manifest};
use crate::policy::SandboxPolicy;
use crate::ports::{CallInfo, Ports};
use crate::start_cost::StartCost;
use crate::state::CallState;

/// Longest function name: the limit OpenAI-compatible APIs put on tool names.
const MAX_FUNCTION_NAME_LEN: usize = 64;

/// One function a plugin offers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FunctionSpec {
    /// Name the agent calls it by.
    pub name: String,
    /// What it does, for the LLM.
    pub description: String,
    /// JSON Schema of its arguments (always an object schema).
    pub parameters: Value,
}

/// A function spec with its compiled argument validator.
pub(crate) struct Function {
    pub(crate) spec: FunctionSpec,
    pub(crate) validator: jsonschema::Validator,
}

/// Calls `describe()` in a fresh instance and checks what it returns; also
/// what starting that instance cost.
pub(crate) async fn describe(
    engine: &PluginEngine,
    id: &Arc<str>,
    manifest: &Manifest,
    policy: &SandboxPolicy,
    pre: &PluginPre<CallState>,
) -> Result<(Vec<Function>, StartCost), LoadError> {
    let fail = |cause: String| LoadError::Describe {
        plugin: id.to_string(),
        cause,
    };
    // The host's budget, not the manifest's deadline (up to 600 s).
    let limits = Limits {
        deadline_ms: u32::try_from(DESCRIBE_DEADLINE.as_millis()).unwrap_or(u32::MAX),
        ..manifest.limits
    };
    let invocation = Invocation {
        engine,
        plugin: id,
        function: "describe",
        limits: &limits,
        manifest_path: None,
        policy,
        pre,
        info: CallInfo::default(),
        ports: Ports::no_chat(),
    };
    let fail_call = |e: CallError| match e {
        CallError::DeadlineExceeded { .. } => fail(format!(
            "instantiating it and running describe() took more than the {} ms the host allows \
             for loading a plugin",
            DESCRIBE_DEADLINE.as_millis()
        )),
        other => fail(other.to_string()),
    };
    let started = Instant::now();
    let mut prepared = invocation.prepare().await.map_err(fail_call)?;
    let result = prepared
        .bindings
        .mozaiks_plugin_tool()
        .call_describe(&mut prepared.store)
        .await;
    let specs = invocation
        .finish(&mut prepared, result)
        .map_err(fail_call)?;
    let start_cost = StartCost {
        memory_bytes: prepared.store.data().limiter.peak,
        time: started.elapsed(),
    };
    drop(prepared);

    if specs.len() > MAX_FUNCTIONS_PER_PLUGIN {
        return Err(fail(format!(
            "it offers {} functions, more than the {MAX_FUNCTIONS_PER_PLUGIN} a plugin may",
            specs.len()
        )));
    }
    let mut seen = HashSet::new();
    let mut functions = Vec::with_capacity(specs.len());
    for spec in specs {
        let name = spec.name;
        if spec.description.len() > MAX_DESCRIPTION_BYTES {
            let mut name = name;
            clip(&mut name, MAX_FUNCTION_NAME_LEN);
            return Err(fail(format!(
                "function `{name}`: the description is {} bytes, more than the \
                 {MAX_DESCRIPTION_BYTES} allowed",
                spec.description.len()
            )));
        }
        if spec.parameters.len() > MAX_PARAMETERS_BYTES {
            let mut name = name;
            clip(&mut name, MAX_FUNCTION_NAME_LEN);
            return Err(fail(format!(
                "function `{name}`: the parameter schema is {} bytes, more than the \
                 {MAX_PARAMETERS_BYTES} allowed",
                spec.parameters.len()
            )));
        }
        if !valid_name(&name) {
            return Err(fail(format!(
                "function name `{name}` must be 1 to {MAX_FUNCTION_NAME_LEN} ASCII letters, digits, `_` or `-`"
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(fail(format!("function `{name}` is described twice")));
        }
        let parameters: Value = serde_json::from_str(&spec.parameters)
            .map_err(|e| fail(format!("function `{name}`: parameters are not JSON: {e}")))?;
        if parameters.get("type").and_then(Value::as_str) != Some("object") {
            return Err(fail(format!(
                "function `{name}`: the parameter schema must have \"type\": \"object\" (LLM tools take a JSON object)"
            )));
        }
        let validator = jsonschema::validator_for(&parameters)
            .map_err(|e| fail(format!("function `{name}`: invalid JSON Schema: {e}")))?;
        functions.push(Function {
            spec: FunctionSpec {
                name,
                description: spec.description,
                parameters,
            },
            validator,
        });
    }
    if functions.is_empty() {
        return Err(fail("it offers no functions".to_owned()));
    }
    Ok((functions, start_cost))
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_FUNCTION_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn function_names_follow_the_llm_tool_name_rules() {
        assert!(valid_name("add_task"));
        assert!(valid_name("a-b-9"));
        assert!(!valid_name(""));
        assert!(!valid_name("has space"));
        assert!(!valid_name(&"x".repeat(65)));
    }
}
