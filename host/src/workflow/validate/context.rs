//! Checks of `context_variables.json`, and of how conditions use the
//! variables it declares.

use std::collections::BTreeSet;

use serde_json::Value;

use super::file_source::FileSourceSpec;
use super::triggers::TriggerScope;
use super::{CONTEXT_VARIABLES_FILE, Validator};
use crate::workflow::condition::CompareOp;
use crate::workflow::diagnostic::{JsonPath, list};
use crate::workflow::model::{ContextVariable, FieldPath, Producer, VariableSource};
use crate::workflow::spec::{ContextVariablesFile, VariableSourceSpec, VariableType};

/// Checks every definition; returns those without problems.
pub(super) fn check(
    v: &mut Validator<'_>,
    file: &ContextVariablesFile,
    agents: &[&str],
    tools: &[String],
    ui_tools: &[String],
) -> Vec<ContextVariable> {
    let mut seen = BTreeSet::new();
    let mut declared = Vec::new();
    for (i, spec) in file.definitions.iter().enumerate() {
        let path = JsonPath::root().key("definitions").index(i);
        let before = v.diagnostics.len();
        let identifier = !spec.name.is_empty()
            && spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier {
            v.error(
                CONTEXT_VARIABLES_FILE,
                path.key("name"),
                format!("\"{}\" is not a variable name", spec.name),
                Some(
                    "use letters, digits and `_`, so that conditions can write ${name}".to_owned(),
                ),
            );
        } else if !seen.insert(spec.name.clone()) {
            v.error(
                CONTEXT_VARIABLES_FILE,
                path.key("name"),
                format!("duplicate variable \"{}\"", spec.name),
                None,
            );
        }
        let source_path = path.key("source");
        let check_default = |v: &mut Validator<'_>, default: &Option<Value>| {
            if let Some(value) = default
                .as_ref()
                .filter(|d| !d.is_null() && !has_type(d, spec.var_type))
            {
                v.error(
                    CONTEXT_VARIABLES_FILE,
                    source_path.key("default"),
                    format!(
                        "default {value} is not of type {}",
                        type_name(spec.var_type)
                    ),
                    None,
                );
            }
        };
        let source = match &spec.source {
            VariableSourceSpec::Static { default, triggers } => {
                check_default(v, default);
                let scope = TriggerScope {
                    agents,
                    ui_tools,
                    var_type: spec.var_type,
                };
                let triggers = triggers
                    .iter()
                    .enumerate()
                    .filter_map(|(t, trigger)| {
                        v.trigger(trigger, &source_path.key("triggers").index(t), &scope)
                    })
                    .collect();
                VariableSource::Static {
                    default: default.clone().unwrap_or(Value::Null),
                    triggers,
                }
            }
            VariableSourceSpec::File {
                path: file,
                format,
                default,
                required,
            } => {
                check_default(v, default);
                let file_spec = FileSourceSpec {
                    path: file,
                    format: *format,
                    default,
                    required: *required,
                    var_type: spec.var_type,
                };
                let value = v.file_source(&file_spec, &source_path);
                VariableSource::File {
                    path: file.clone(),
                    value,
                }
            }
            VariableSourceSpec::Environment {
                env_var,
                default,
                required,
            } => {
                check_default(v, default);
                if env_var.trim().is_empty() {
                    v.error(
                        CONTEXT_VARIABLES_FILE,
                        source_path.key("env_var"),
                        "env_var is empty",
                        None,
                    );
                }
                VariableSource::Environment {
                    env_var: env_var.clone(),
                    default: default.clone(),
                    required: *required,
                }
            }
            VariableSourceSpec::Derived {
                tool,
                agent,
                default,
                field,
            } => {
                check_default(v, default);
                let field = field.as_ref().and_then(|text| {
                    let parsed = FieldPath::parse(text);
                    if parsed.is_none() {
                        v.error(
                            CONTEXT_VARIABLES_FILE,
                            source_path.key("field"),
                            format!("\"{text}\" is not a dotted path such as `review.score`"),
                            None,
                        );
                    }
                    parsed
                });
                let by = match (tool, agent) {
                    (Some(tool), None) => {
                        if !tools.contains(tool) {
                            let help = format!("tools.json declares {}", list(tools));
                            v.error(
                                CONTEXT_VARIABLES_FILE,
                                source_path.key("tool"),
                                format!("unknown tool \"{tool}\""),
                                Some(help),
                            );
                        }
                        Producer::Tool(tool.clone())
                    }
                    (None, Some(agent)) => {
                        v.agent_exists(
                            CONTEXT_VARIABLES_FILE,
                            source_path.key("agent"),
                            agent,
                            agents,
                            false,
                        );
                        Producer::Agent(agent.clone())
                    }
                    _ => {
                        v.error(
                            CONTEXT_VARIABLES_FILE,
                            source_path.clone(),
                            "a derived variable names exactly one of `tool` and `agent`",
                            None,
                        );
                        Producer::Agent(String::new())
                    }
                };
                VariableSource::Derived {
                    by,
                    field,
                    default: default.clone().unwrap_or(Value::Null),
                }
            }
            VariableSourceSpec::Database {
                collection,
                query,
                field,
                default,
            } => {
                check_default(v, default);
                let spec = super::database_source::DatabaseSpec {
                    collection,
                    query,
                    field: field.as_deref(),
                    default,
                };
                VariableSource::Database(super::database_source::check(v, &source_path, spec))
            }
        };
        if v.diagnostics.len() == before {
            declared.push(ContextVariable {
                name: spec.name.clone(),
                var_type: spec.var_type,
                description: spec.description.clone().unwrap_or_default(),
                source,
            });
        }
    }
    declared
}

/// Whether `value` is a value of `var_type` (null is not).
pub(crate) fn has_type(value: &Value, var_type: VariableType) -> bool {
    match var_type {
        VariableType::String => value.is_string(),
        VariableType::Boolean => value.is_boolean(),
        VariableType::Integer => value.is_i64() || value.is_u64(),
        VariableType::Number => value.is_number(),
        VariableType::Object => value.is_object(),
        VariableType::Array => value.is_array(),
    }
}

/// The name context_variables.json uses for `var_type`.
pub(crate) fn type_name(var_type: VariableType) -> &'static str {
    match var_type {
        VariableType::String => "string",
        VariableType::Boolean => "boolean",
        VariableType::Integer => "integer",
        VariableType::Number => "number",
        VariableType::Object => "object",
        VariableType::Array => "array",
    }
}

/// The JSON type of `value`, as a person says it.
pub(crate) fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Why comparing `var` with `literal` by `op` can never be what the author
/// meant, if it cannot.
pub(super) fn type_mismatch(
    var: &ContextVariable,
    op: CompareOp,
    literal: &Value,
) -> Option<String> {
    let numeric = matches!(var.var_type, VariableType::Integer | VariableType::Number);
    if op.is_ordering() {
        let orderable = (numeric && literal.is_number())
            || (var.var_type == VariableType::String && literal.is_string());
        return (!orderable).then(|| {
            format!(
                "cannot order ${{{}}} ({}) against {literal}",
                var.name,
                type_name(var.var_type)
            )
        });
    }
    let comparable =
        literal.is_null() || (numeric && literal.is_number()) || has_type(literal, var.var_type);
    (!comparable).then(|| {
        format!(
            "${{{}}} is declared {} but compared with {literal}",
            var.name,
            type_name(var.var_type)
        )
    })
}
