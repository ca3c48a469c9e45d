//! Whether a structured-output model can be passed to a tool as its
//! arguments (structured_outputs.json `auto_execute`).
//!
//! The output object *is* the arguments object: each top-level field is
//! the parameter of the same name. These checks find, at load, the
//! mappings that would fail the plugin host's schema check on some or
//! every output; they read the two schemas' top levels only (a nested
//! mismatch still fails the call, as a tool result the run goes on after).

use serde_json::{Map, Value};

/// Every reason why outputs of `model` (a JSON Schema of an object) may
/// not be accepted by a function with `parameters`, one sentence each.
pub(super) fn mapping_problems(model: &Value, parameters: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let empty = Map::new();
    let model_properties = properties(model).unwrap_or(&empty);
    let parameter_properties = properties(parameters).unwrap_or(&empty);
    let model_required = required(model);
    for parameter in required(parameters) {
        if !model_properties.contains_key(parameter) {
            problems.push(format!(
                "the function requires parameter `{parameter}`, which the model has no field for"
            ));
        } else if !model_required.contains(&parameter) {
            problems.push(format!(
                "the function requires parameter `{parameter}`, which the model does not require"
            ));
        }
    }
    let closed = parameters.get("additionalProperties") == Some(&Value::Bool(false));
    for (field, field_schema) in model_properties {
        match parameter_properties.get(field) {
            None if closed => problems.push(format!(
                "the model's field `{field}` is not a parameter of the function, which accepts no others"
            )),
            None => {}
            Some(parameter_schema) => {
                if let (Some(from), Some(to)) = (type_of(field_schema), type_of(parameter_schema))
                    && !compatible(from, to)
                {
                    problems.push(format!(
                        "the model's field `{field}` is of type `{from}`, the function's parameter of type `{to}`"
                    ));
                }
            }
        }
    }
    problems
}

fn properties(schema: &Value) -> Option<&Map<String, Value>> {
    schema.get("properties")?.as_object()
}

fn required(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A schema's `type` when it is one word.
fn type_of(schema: &Value) -> Option<&str> {
    schema.get("type")?.as_str()
}

/// Whether every value of JSON Schema type `from` is of type `to`.
fn compatible(from: &str, to: &str) -> bool {
    from == to || (from == "integer" && to == "number")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn model() -> Value {
        json!({"type": "object",
               "properties": {"score": {"type": "integer"}, "reason": {"type": "string"}},
               "required": ["score"]})
    }

    #[test]
    fn a_function_that_takes_the_fields_accepts_the_model() {
        let parameters = json!({"type": "object",
            "properties": {"score": {"type": "number"}, "reason": {"type": "string"}},
            "required": ["score"], "additionalProperties": false});
        assert_eq!(
            mapping_problems(&model(), &parameters),
            Vec::<String>::new()
        );
    }

    #[test]
    fn missing_optional_extra_and_mistyped_fields_are_named() {
        let parameters = json!({"type": "object",
            "properties": {"score": {"type": "string"}, "reason": {"type": "string"}, "id": {}},
            "required": ["id", "reason"], "additionalProperties": false});
        assert_eq!(
            mapping_problems(&model(), &parameters),
            [
                "the function requires parameter `id`, which the model has no field for",
                "the function requires parameter `reason`, which the model does not require",
                "the model's field `score` is of type `integer`, the function's parameter of type `string`",
            ]
        );
        let closed = json!({"type": "object", "properties": {}, "additionalProperties": false});
        assert_eq!(mapping_problems(&model(), &closed).len(), 2);
    }
}
