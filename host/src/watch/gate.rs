//! The reload gate: may a new version of a plugin replace the one served?
//!
//! A new version has already compiled, instantiated and answered
//! `describe()` when it reaches the gate. The gate then checks what the
//! server depends on:
//!
//! - every function a workflow's `tools.json` binds to the plugin is still
//!   offered, with a parameter schema that accepts every call the old one
//!   accepted ([`schema_compatible`]);
//! - the manifest asks for no capability (environment variable, network
//!   destination, outbound HTTP host, directory, write access) beyond what the served version
//!   had, unless the operator allows that ([`GateSettings`]).
//!
//! The checks are pure functions over plain data, so they are tested here
//! without compiling anything.

use mozaiks_plugin_host::{Capabilities, DirMode, FunctionSpec};
use serde_json::Value;

/// What the operator allows a reload to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GateSettings {
    /// Let a new version ask for more capabilities than the one served
    /// (`MOZAIKS_RELOAD_ALLOW_NEW_CAPABILITIES`). Off by default: a grant
    /// is a decision an operator makes, not a side effect of a rebuild.
    pub allow_new_capabilities: bool,
}

/// A plugin function some workflow relies on.
#[derive(Debug, Clone)]
pub(crate) struct Needed {
    /// The workflow.
    pub workflow: String,
    /// The tool name in its `tools.json`.
    pub tool: String,
    /// The plugin function.
    pub function: String,
    /// The parameter schema the workflow was validated against.
    pub parameters: Value,
}

/// Checks that `offered` (the new version's functions) covers `needed`.
pub(crate) fn check_functions(needed: &[Needed], offered: &[&FunctionSpec]) -> Vec<String> {
    let mut problems = Vec::new();
    for need in needed {
        let Some(spec) = offered.iter().find(|f| f.name == need.function) else {
            problems.push(format!(
                "workflow `{}` uses function `{}` (tool `{}`), which the new version no longer offers",
                need.workflow, need.function, need.tool
            ));
            continue;
        };
        for problem in schema_compatible(&need.parameters, &spec.parameters, "$") {
            problems.push(format!(
                "workflow `{}`, tool `{}`: the parameters of `{}` changed incompatibly: {problem}",
                need.workflow, need.tool, need.function
            ));
        }
    }
    problems
}

/// Checks that `new` grants nothing `old` did not.
pub(crate) fn check_capabilities(old: &Capabilities, new: &Capabilities) -> Vec<String> {
    let mut problems = Vec::new();
    for var in new.env.iter().filter(|v| !old.env.contains(v)) {
        problems.push(format!("asks for the new environment variable `{var}`"));
    }
    for addr in new.net.iter().filter(|a| !old.net.contains(a)) {
        problems.push(format!("asks for the new network destination `{addr}`"));
    }
    for host in new
        .allowed_outbound_hosts
        .iter()
        .filter(|h| !old.allowed_outbound_hosts.contains(h))
    {
        problems.push(format!(
            "asks for the new outbound host `{host}` (allowed_outbound_hosts)"
        ));
    }
    for grant in &new.fs {
        let before = old
            .fs
            .iter()
            .find(|g| g.host == grant.host && g.guest == grant.guest);
        match before {
            None => problems.push(format!(
                "asks for the new directory {} (as {})",
                grant.host.display(),
                grant.guest
            )),
            Some(before)
                if before.mode == DirMode::ReadOnly && grant.mode == DirMode::ReadWrite =>
            {
                problems.push(format!(
                    "asks to write to {} (as {}), which it could only read",
                    grant.host.display(),
                    grant.guest
                ));
            }
            Some(_) => {}
        }
    }
    problems
}

/// Why `new` may refuse a call that `old` accepted, one line per reason;
/// empty when every argument valid under `old` is valid under `new`, as
/// far as a structural comparison can tell.
///
/// The comparison is conservative where it matters and simple elsewhere:
/// it follows `type`, `properties`, `required`, `additionalProperties`,
/// `enum` and `items`, which is what tool parameter schemas use. A new
/// optional property, a dropped requirement or a widened type pass; a new
/// required property, a removed property that is now forbidden, a changed
/// type or a narrowed `enum` do not.
pub(crate) fn schema_compatible(old: &Value, new: &Value, path: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if old == new {
        return problems;
    }
    let types = |schema: &Value| -> Option<Vec<String>> {
        match schema.get("type")? {
            Value::String(t) => Some(vec![t.clone()]),
            Value::Array(ts) => Some(
                ts.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        }
    };
    if let (Some(old_types), Some(new_types)) = (types(old), types(new)) {
        // An integer is also a number: widening integer to number is fine.
        let kept = |t: &String| {
            new_types.contains(t) || (t == "integer" && new_types.iter().any(|n| n == "number"))
        };
        let lost: Vec<&String> = old_types.iter().filter(|t| !kept(t)).collect();
        if !lost.is_empty() {
            problems.push(format!(
                "{path}: type {} became {}",
                old_types.join("|"),
                new_types.join("|")
            ));
            return problems;
        }
    }
    if let Some(new_enum) = new.get("enum").and_then(Value::as_array) {
        match old.get("enum").and_then(Value::as_array) {
            Some(old_enum) => {
                for value in old_enum.iter().filter(|v| !new_enum.contains(v)) {
                    problems.push(format!("{path}: {value} is no longer allowed"));
                }
            }
            None => problems.push(format!("{path}: values are now limited to an enum")),
        }
    }
    let strings = |schema: &Value, key: &str| -> Vec<String> {
        schema
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let old_required = strings(old, "required");
    for name in strings(new, "required") {
        if !old_required.contains(&name) {
            problems.push(format!("{path}: `{name}` is now required"));
        }
    }
    let empty = serde_json::Map::new();
    let properties = |schema: &Value| {
        schema
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(|| empty.clone())
    };
    let (old_properties, new_properties) = (properties(old), properties(new));
    let closed = new.get("additionalProperties") == Some(&Value::Bool(false));
    for (name, old_schema) in &old_properties {
        match new_properties.get(name) {
            Some(new_schema) => problems.extend(schema_compatible(
                old_schema,
                new_schema,
                &format!("{path}.{name}"),
            )),
            None if closed => problems.push(format!(
                "{path}: property `{name}` was removed and others are not allowed"
            )),
            None => {}
        }
    }
    if closed && old.get("additionalProperties") != Some(&Value::Bool(false)) {
        problems.push(format!(
            "{path}: properties not listed are no longer allowed"
        ));
    }
    if let (Some(old_items), Some(new_items)) = (old.get("items"), new.get("items")) {
        problems.extend(schema_compatible(
            old_items,
            new_items,
            &format!("{path}[]"),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use mozaiks_plugin_host::DirGrant;
    use serde_json::json;

    use super::*;

    fn spec(name: &str, parameters: Value) -> FunctionSpec {
        FunctionSpec {
            name: name.to_owned(),
            description: String::new(),
            parameters,
        }
    }

    fn need(function: &str, parameters: Value) -> Needed {
        Needed {
            workflow: "Demo".to_owned(),
            tool: function.to_owned(),
            function: function.to_owned(),
            parameters,
        }
    }

    fn task_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "priority": {"type": "string", "enum": ["low", "high"]},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["title"]
        })
    }

    #[test]
    fn the_same_functions_pass_and_a_dropped_one_is_named() {
        let needed = [
            need("add_task", task_schema()),
            need("list_tasks", json!({})),
        ];
        let add = spec("add_task", task_schema());
        let list = spec("list_tasks", json!({}));
        assert!(check_functions(&needed, &[&add, &list]).is_empty());
        let problems = check_functions(&needed, &[&add]);
        assert_eq!(
            problems,
            [
                "workflow `Demo` uses function `list_tasks` (tool `list_tasks`), which the new version no longer offers"
            ]
        );
    }

    #[test]
    fn widening_a_schema_passes() {
        let mut wider = task_schema();
        wider["properties"]["due"] = json!({"type": "string"});
        wider["properties"]["priority"]["enum"] = json!(["low", "medium", "high"]);
        wider["required"] = json!([]);
        wider["properties"]["tags"]["items"]["type"] = json!(["string", "null"]);
        assert_eq!(
            schema_compatible(&task_schema(), &wider, "$"),
            Vec::<String>::new()
        );
        let mut number = json!({"type": "integer"});
        assert!(schema_compatible(&number, &json!({"type": "number"}), "$").is_empty());
        number["type"] = json!("number");
        assert!(!schema_compatible(&number, &json!({"type": "integer"}), "$").is_empty());
    }

    #[test]
    fn narrowing_a_schema_is_refused_with_the_path() {
        let mut narrower = task_schema();
        narrower["required"] = json!(["title", "priority"]);
        narrower["properties"]["priority"]["enum"] = json!(["high"]);
        narrower["properties"]["tags"]["items"]["type"] = json!("integer");
        let problems = schema_compatible(&task_schema(), &narrower, "$");
        assert_eq!(
            problems,
            [
                "$: `priority` is now required",
                "$.priority: \"low\" is no longer allowed",
                "$.tags[]: type string became integer",
            ]
        );
        let mut closed = task_schema();
        closed["properties"].as_object_mut().unwrap().remove("tags");
        closed["additionalProperties"] = json!(false);
        let problems = schema_compatible(&task_schema(), &closed, "$");
        assert!(
            problems
                .contains(&"$: property `tags` was removed and others are not allowed".to_owned()),
            "{problems:?}"
        );
    }

    #[test]
    fn a_new_grant_is_refused_and_the_same_or_fewer_pass() {
        let grant = |mode| DirGrant {
            host: PathBuf::from("data"),
            guest: "/data".to_owned(),
            mode,
        };
        let old = Capabilities {
            env: vec!["REGION".to_owned()],
            net: vec![],
            fs: vec![grant(DirMode::ReadOnly)],
            allowed_outbound_hosts: vec!["https://api.example.com".to_owned()],
        };
        assert!(check_capabilities(&old, &old).is_empty());
        assert!(check_capabilities(&old, &Capabilities::default()).is_empty());
        let more = Capabilities {
            env: vec!["REGION".to_owned(), "API_TOKEN".to_owned()],
            net: vec!["127.0.0.1:9".to_owned()],
            fs: vec![grant(DirMode::ReadWrite)],
            allowed_outbound_hosts: vec![
                "https://api.example.com".to_owned(),
                "http://127.0.0.1:8080".to_owned(),
            ],
        };
        assert_eq!(
            check_capabilities(&old, &more),
            [
                "asks for the new environment variable `API_TOKEN`",
                "asks for the new network destination `127.0.0.1:9`",
                "asks for the new outbound host `http://127.0.0.1:8080` (allowed_outbound_hosts)",
                "asks to write to data (as /data), which it could only read",
            ]
        );
    }
}
