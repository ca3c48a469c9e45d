//! Reading a file's JSON value into its [`spec`](super::spec) type so that
//! *every* unknown key is reported, not only the first.
//!
//! serde's `deny_unknown_fields` stops at the first unknown key. Rather than
//! keeping a second list of each object's keys beside the serde types (which
//! would drift from them), the value is deserialized, the unknown key it
//! names is reported and removed, and the value is deserialized again, until
//! it reads or fails for another reason. The serde types stay the one
//! source of the known keys.

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use super::diagnostic::JsonPath;

/// At most this many unknown keys are reported per file: a file that is
/// not a workflow file at all would otherwise list every key it has.
pub(crate) const MAX_UNKNOWN_KEYS_PER_FILE: usize = 100;

/// One problem found while reading a value into its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeProblem {
    /// JSON path of the offending value (`$.agents[0].nam`).
    pub json_path: String,
    /// serde's message.
    pub message: String,
}

/// Reads `value` into `T`. On failure, returns every unknown key (each with
/// its path) and the first other problem (a wrong type, a missing field),
/// in the order serde met them (keys in sorted order).
pub(crate) fn deserialize_reporting_every_unknown_key<T: DeserializeOwned>(
    mut value: Value,
) -> Result<T, Vec<TypeProblem>> {
    let mut problems = Vec::new();
    let mut seen_other = false;
    loop {
        let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(typed) if problems.is_empty() && !seen_other => return Ok(typed),
            Ok(_) => return Err(problems),
            Err(err) => err,
        };
        let message = err.inner().to_string();
        let mut json_path = to_json_path(err.path());
        if let Some(field) = unknown_field(&message)
            && !matches!(err.path().iter().next_back(), Some(Segment::Map { key }) if key == field)
        {
            // Buffered by serde (see `remove`): name the field too.
            let member = JsonPath::root().key(field).to_string();
            json_path.push_str(member.strip_prefix('$').unwrap_or(&member));
        }
        let problem = TypeProblem {
            json_path,
            message: message.clone(),
        };
        let unknown = unknown_field(&message);
        // Past the first other problem (a wrong type, a missing field), only
        // unknown keys are still reported: what follows from removing the
        // offending value is not the author's problem.
        if unknown.is_some() || !seen_other {
            problems.push(problem);
        }
        if problems.len() >= MAX_UNKNOWN_KEYS_PER_FILE {
            return Err(problems);
        }
        let removed = match unknown {
            Some(field) => remove(&mut value, err.path(), field),
            None => {
                seen_other = true;
                // Drop the offending member and keep looking for unknown
                // keys elsewhere in the file.
                remove_member(&mut value, err.path())
            }
        };
        if !removed {
            return Err(problems);
        }
    }
}

/// Removes the object member the path ends with (`$.a.b` removes `b` from
/// `a`). False when the path does not end with a member or cannot be
/// followed.
fn remove_member(value: &mut Value, path: &serde_path_to_error::Path) -> bool {
    match path.iter().next_back() {
        Some(Segment::Map { key }) => {
            let key = key.clone();
            remove(value, path, &key)
        }
        _ => false,
    }
}

/// The key an "unknown field" message names.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(field, _)| field)
}

/// Removes the unknown `field` the error's `path` points at. The path ends
/// with the field itself, except where serde buffers a value first (an
/// internally tagged enum such as a context variable's `source`): there it
/// ends at the object that holds the field. False when the path cannot be
/// followed, so the caller stops.
fn remove(value: &mut Value, path: &serde_path_to_error::Path, field: &str) -> bool {
    let segments: Vec<&Segment> = path.iter().collect();
    let parents = match segments.split_last() {
        Some((Segment::Map { key }, parents)) if key == field => parents,
        _ => segments.as_slice(),
    };
    let mut current = value;
    for segment in parents {
        let next = match (segment, current) {
            (Segment::Map { key }, Value::Object(map)) => map.get_mut(key.as_str()),
            (Segment::Seq { index }, Value::Array(items)) => items.get_mut(*index),
            // An enum variant written as a key (`{"Variant": {...}}`).
            (Segment::Enum { variant }, Value::Object(map)) => map.get_mut(variant.as_str()),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        current = next;
    }
    match current {
        Value::Object(map) => map.remove(field).is_some(),
        _ => false,
    }
}

/// A serde_path_to_error path as a JSON path (`$.agents[1].name`).
pub(crate) fn to_json_path(path: &serde_path_to_error::Path) -> String {
    let mut out = JsonPath::root();
    for segment in path.iter() {
        out = match segment {
            Segment::Seq { index } => out.index(*index),
            Segment::Map { key } => out.key(key),
            Segment::Enum { variant } => out.key(variant),
            Segment::Unknown => out.key("?"),
        };
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::workflow::spec::{AgentsFile, ContextVariablesFile, OrchestratorFile};

    fn paths<T: DeserializeOwned + std::fmt::Debug>(value: Value) -> Vec<String> {
        deserialize_reporting_every_unknown_key::<T>(value)
            .unwrap_err()
            .into_iter()
            .map(|p| format!("{}: {}", p.json_path, p.message))
            .collect()
    }

    #[test]
    fn reports_every_unknown_key_of_every_object_in_one_pass() {
        let found = paths::<AgentsFile>(json!({
            "agents": [
                {"name": "A", "system_message": "x", "auto_tool_mode": true, "image_generation_enabled": false},
                {"name": "B", "system_message": "y", "llm_config": {"model": "m", "seed": 1}}
            ],
            "metadata": {}
        }));
        let keys: Vec<&str> = found
            .iter()
            .map(|f| f.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            keys,
            [
                "$.agents[0].auto_tool_mode",
                "$.agents[0].image_generation_enabled",
                "$.agents[1].llm_config.seed",
                "$.metadata"
            ],
            "{found:#?}"
        );
    }

    #[test]
    fn reports_unknown_keys_inside_tagged_sources_too() {
        let found = paths::<ContextVariablesFile>(json!({
            "definitions": [
                {"name": "a", "type": "string", "source": {"type": "static", "defualt": "x"}},
                {"name": "b", "type": "string", "source": {"type": "static"}, "agents": []}
            ]
        }));
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].contains("`defualt`"), "{found:#?}");
        assert!(
            found[1].starts_with("$.definitions[1].agents"),
            "{found:#?}"
        );
    }

    #[test]
    fn reports_the_unknown_keys_past_a_type_error() {
        let found = paths::<OrchestratorFile>(json!({
            "workflow_name": "W", "max_turn": 3, "metadata": {}, "human_in_the_loop": "yes"
        }));
        // Keys in sorted order: the type error comes first, and the unknown
        // keys after it are still found.
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].starts_with("$.human_in_the_loop: invalid type"),
            "{found:#?}"
        );
        assert!(
            found[1].starts_with("$.max_turn: unknown field"),
            "{found:#?}"
        );
        assert!(
            found[2].starts_with("$.metadata: unknown field"),
            "{found:#?}"
        );
    }

    #[test]
    fn a_valid_value_reads() {
        let read = deserialize_reporting_every_unknown_key::<OrchestratorFile>(
            json!({"workflow_name": "W"}),
        )
        .unwrap();
        assert_eq!(read.workflow_name, "W");
    }
}
