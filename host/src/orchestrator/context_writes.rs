//! The rules a tool's context write must pass: a declared variable keeps
//! its declared JSON type (or `null`), and an undeclared one is written
//! only when orchestrator.json's `undeclared_context_writes` allows it.
//! A refused write changes nothing; the tool reads why.

use std::collections::HashMap;

use serde_json::Value;

use crate::workflow::Workflow;
use crate::workflow::model::{UndeclaredContextWrites, VariableType};
use crate::workflow::validate::context::{has_type, json_type_name, type_name};

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WriteRefused {
    /// The value's JSON type is not the declared one.
    #[error(
        "context variable `{key}` is declared {declared} in context_variables.json; the tool wrote {got}, so nothing was written"
    )]
    WrongType {
        /// The variable.
        key: String,
        /// Its declared type.
        declared: &'static str,
        /// What the tool wrote, e.g. `a string`.
        got: &'static str,
    },
    /// The variable is not declared and the workflow refuses such writes.
    #[error(
        "context variable `{key}` is not declared in context_variables.json, and this workflow sets `undeclared_context_writes: \"refuse\"`; nothing was written"
    )]
    Undeclared {
        /// The variable.
        key: String,
    },
}

/// The declared types and the policy for undeclared names, of one
/// workflow version.
#[derive(Debug, Clone)]
pub(crate) struct WriteRules {
    declared: HashMap<String, VariableType>,
    undeclared: UndeclaredContextWrites,
}

impl WriteRules {
    /// The rules of `workflow`.
    pub(crate) fn of(workflow: &Workflow) -> Self {
        Self {
            declared: workflow
                .context_variables()
                .iter()
                .map(|v| (v.name.clone(), v.var_type))
                .collect(),
            undeclared: workflow.undeclared_context_writes(),
        }
    }

    /// Whether a tool may set `key` to `value`.
    pub(crate) fn check(&self, key: &str, value: &Value) -> Result<(), WriteRefused> {
        match self.declared.get(key) {
            Some(declared) if !value.is_null() && !has_type(value, *declared) => {
                Err(WriteRefused::WrongType {
                    key: key.to_owned(),
                    declared: type_name(*declared),
                    got: json_type_name(value),
                })
            }
            Some(_) => Ok(()),
            None if self.undeclared == UndeclaredContextWrites::Refuse => {
                Err(WriteRefused::Undeclared {
                    key: key.to_owned(),
                })
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules(undeclared: UndeclaredContextWrites) -> WriteRules {
        WriteRules {
            declared: [
                ("count".to_owned(), VariableType::Integer),
                ("ratio".to_owned(), VariableType::Number),
            ]
            .into(),
            undeclared,
        }
    }

    #[test]
    fn a_declared_variable_takes_its_type_or_null_only() {
        let r = rules(UndeclaredContextWrites::Allow);
        assert_eq!(r.check("count", &json!(3)), Ok(()));
        assert_eq!(r.check("count", &Value::Null), Ok(()));
        assert_eq!(
            r.check("ratio", &json!(3)),
            Ok(()),
            "an integer is a number"
        );
        let refused = r.check("count", &json!("3")).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "context variable `count` is declared integer in context_variables.json; the tool wrote a string, so nothing was written"
        );
        assert!(r.check("count", &json!(1.5)).is_err());
    }

    #[test]
    fn undeclared_writes_follow_the_workflow_setting() {
        assert_eq!(
            rules(UndeclaredContextWrites::Allow).check("x", &json!(1)),
            Ok(())
        );
        assert_eq!(
            rules(UndeclaredContextWrites::Refuse).check("x", &json!(1)),
            Err(WriteRefused::Undeclared { key: "x".into() })
        );
    }
}
