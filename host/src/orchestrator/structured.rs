//! Structured outputs: an agent bound to a model answers with JSON that
//! must validate against the model's schema. The run asks once more with
//! the validation errors, then fails clearly.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::workflow::model::OutputModel;

/// How many times an agent is asked again after an invalid structured
/// output. One retry fixes most slips (a missing field, prose around the
/// JSON); a model that fails twice is unlikely to succeed a third time and
/// every retry costs a full LLM call.
pub(crate) const STRUCTURED_OUTPUT_RETRIES: u32 = 1;

/// Compiled validators of a workflow's models, by model name.
#[derive(Debug, Default)]
pub(crate) struct Validators {
    compiled: HashMap<String, Arc<jsonschema::Validator>>,
}

impl Validators {
    /// Checks `text` against `model`: returns the parsed value, or every
    /// problem found.
    pub(crate) fn check(&mut self, model: &OutputModel, text: &str) -> Result<Value, Vec<String>> {
        let value = parse_json(text).ok_or_else(|| {
            vec![format!(
                "the reply is not a JSON object (it starts with {:?})",
                text.chars().take(40).collect::<String>()
            )]
        })?;
        let validator = match self.compiled.get(&model.name) {
            Some(v) => Arc::clone(v),
            None => {
                let compiled = jsonschema::validator_for(&model.schema)
                    .map_err(|e| vec![format!("the schema does not compile: {e}")])?;
                let compiled = Arc::new(compiled);
                self.compiled
                    .insert(model.name.clone(), Arc::clone(&compiled));
                compiled
            }
        };
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| {
                let at = e.instance_path().to_string();
                format!("at {}: {e}", if at.is_empty() { "/" } else { &at })
            })
            .collect();
        if errors.is_empty() {
            Ok(value)
        } else {
            Err(errors)
        }
    }
}

/// The JSON object in an LLM reply: the whole text, or inside a Markdown
/// fence, or from the first `{` to the last `}`.
pub(crate) fn parse_json(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .unwrap_or(trimmed)
        .trim();
    if let Ok(value @ Value::Object(_)) = serde_json::from_str(unfenced) {
        return Some(value);
    }
    let start = unfenced.find('{')?;
    let end = unfenced.rfind('}')?;
    match serde_json::from_str(unfenced.get(start..=end)?) {
        Ok(value @ Value::Object(_)) => Some(value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> OutputModel {
        OutputModel {
            name: "Verdict".into(),
            schema: json!({"type": "object", "properties": {"ok": {"type": "boolean"}},
                           "required": ["ok"], "additionalProperties": false}),
            auto_execute: vec![],
        }
    }

    #[test]
    fn accepts_fenced_json_and_reports_schema_errors_with_paths() {
        let mut validators = Validators::default();
        assert_eq!(
            validators
                .check(&model(), "```json\n{\"ok\": true}\n```")
                .unwrap(),
            json!({"ok": true})
        );
        let errors = validators.check(&model(), "{\"ok\": \"yes\"}").unwrap_err();
        assert!(errors[0].contains("at /ok"), "{errors:?}");
        let errors = validators.check(&model(), "sure thing").unwrap_err();
        assert!(errors[0].contains("not a JSON object"), "{errors:?}");
    }
}
