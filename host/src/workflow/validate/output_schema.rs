//! What an LLM API makes of a structured-output schema, checked at load.
//!
//! The runtime sends each model as OpenAI's `response_format` of type
//! `json_schema` with `strict: false` (see `llm/request.rs`), so a schema
//! need not be in strict form (every property required, every object
//! `additionalProperties: false`) and is sent as written, not rewritten.
//! Two things are still worth knowing before a run:
//!
//! - a part of the schema that **no value can satisfy** (an empty `enum`,
//!   `minimum` above `maximum`, a required property that
//!   `additionalProperties: false` forbids, ...): every answer would fail
//!   validation, twice, after two LLM calls. That is a load error.
//! - a keyword outside the subset the API's structured outputs understand
//!   (`minLength`, `uniqueItems`, `oneOf`, `if`/`then`, ...): the model is
//!   not held to it, while the runtime's own check of the answer is, so an
//!   answer may fail for a reason the model never saw. That is a warning.

use serde_json::{Map, Value};

use crate::workflow::diagnostic::JsonPath;

/// Keywords OpenAI's structured outputs do not support (documented in its
/// "Supported schemas" list): the model does not see them as constraints.
pub(crate) const KEYWORDS_THE_API_IGNORES: [&str; 18] = [
    "minLength",
    "maxLength",
    "patternProperties",
    "unevaluatedProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "unevaluatedItems",
    "contains",
    "minContains",
    "maxContains",
    "uniqueItems",
    "allOf",
    "oneOf",
    "not",
    "if",
    "dependentRequired",
    "dependentSchemas",
];

/// One finding in a schema, at a JSON path inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaFinding {
    /// Where in the schema (under the model's own path).
    pub path: JsonPath,
    /// What it is.
    pub message: String,
    /// True when no answer can satisfy the schema there (an error); false
    /// for a keyword the API ignores (a warning).
    pub unsatisfiable: bool,
}

/// Every finding in `schema`, a model written at `path`.
pub(crate) fn check(schema: &Value, path: &JsonPath) -> Vec<SchemaFinding> {
    let mut out = Findings {
        list: Vec::new(),
        must: true,
    };
    out.walk(schema, path);
    out.list
}

/// The findings so far, and whether the part being walked must hold for
/// an answer to be valid (the top, required properties, `allOf`, the
/// items of an array that needs some). Under an optional property, an
/// `anyOf` branch or `$defs`, an unsatisfiable part only removes a choice:
/// a warning, not an error.
struct Findings {
    list: Vec<SchemaFinding>,
    must: bool,
}

impl Findings {
    fn unsatisfiable(&mut self, path: &JsonPath, why: &str) {
        let (message, unsatisfiable) = if self.must {
            (format!("no value can satisfy this schema: {why}"), true)
        } else {
            (
                format!("no value can satisfy this optional part of the schema: {why}"),
                false,
            )
        };
        self.list.push(SchemaFinding {
            path: path.clone(),
            message,
            unsatisfiable,
        });
    }

    /// Walks `child` with `must` narrowed by `needed`.
    fn walk_part(&mut self, child: &Value, path: &JsonPath, needed: bool) {
        let outer = self.must;
        self.must = outer && needed;
        self.walk(child, path);
        self.must = outer;
    }

    fn walk(&mut self, schema: &Value, path: &JsonPath) {
        let object = match schema {
            Value::Bool(false) => {
                self.unsatisfiable(path, "the schema `false` accepts no value");
                return;
            }
            Value::Object(object) => object,
            _ => return,
        };
        for keyword in KEYWORDS_THE_API_IGNORES {
            if object.contains_key(keyword) {
                self.list.push(SchemaFinding {
                    path: path.key(keyword),
                    message: format!(
                        "`{keyword}` is not part of what the LLM API's structured outputs support: the model is not told, but its answer is still checked against it (an answer can fail for a rule the model never saw)"
                    ),
                    unsatisfiable: false,
                });
            }
        }
        bounds(object, path, self);
        enumerations(object, path, self);
        required(object, path, self);
        let required: Vec<&str> = object
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let needs_items = object
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|n| n > 0);
        for (keyword, child) in object {
            let at = path.key(keyword);
            match (keyword.as_str(), child) {
                ("properties", Value::Object(children)) => {
                    for (name, child) in children {
                        self.walk_part(child, &at.key(name), required.contains(&name.as_str()));
                    }
                }
                ("$defs" | "definitions", Value::Object(children)) => {
                    for (name, child) in children {
                        self.walk_part(child, &at.key(name), false);
                    }
                }
                ("items", Value::Object(_)) => self.walk_part(child, &at, needs_items),
                ("additionalProperties", Value::Object(_)) => self.walk_part(child, &at, false),
                ("anyOf" | "oneOf" | "allOf", Value::Array(items)) => {
                    if items.is_empty() {
                        self.unsatisfiable(&at, "an empty list of schemas");
                    }
                    let each_needed = keyword == "allOf";
                    for (i, item) in items.iter().enumerate() {
                        self.walk_part(item, &at.index(i), each_needed);
                    }
                }
                _ => {}
            }
        }
    }
}

/// `minimum` above `maximum` and the like.
fn bounds(object: &Map<String, Value>, path: &JsonPath, out: &mut Findings) {
    let number = |k: &str| object.get(k).and_then(Value::as_f64);
    for (low, high) in [
        ("minimum", "maximum"),
        ("minLength", "maxLength"),
        ("minItems", "maxItems"),
        ("minProperties", "maxProperties"),
        ("minContains", "maxContains"),
    ] {
        if let (Some(l), Some(h)) = (number(low), number(high))
            && l > h
        {
            out.unsatisfiable(
                &path.key(low),
                &format!("`{low}` {l} is above `{high}` {h}"),
            );
        }
    }
    let low = number("exclusiveMinimum").or(number("minimum"));
    let high = number("exclusiveMaximum").or(number("maximum"));
    let exclusive =
        object.contains_key("exclusiveMinimum") || object.contains_key("exclusiveMaximum");
    if exclusive
        && let (Some(l), Some(h)) = (low, high)
        && l >= h
    {
        out.unsatisfiable(path, &format!("no number is above {l} and below {h}"));
    }
}

/// An empty `type` list or `enum`, and `enum`/`const` values of none of the
/// allowed types.
fn enumerations(object: &Map<String, Value>, path: &JsonPath, out: &mut Findings) {
    let types: Option<Vec<&str>> = match object.get("type") {
        Some(Value::String(t)) => Some(vec![t.as_str()]),
        Some(Value::Array(list)) => Some(list.iter().filter_map(Value::as_str).collect()),
        _ => None,
    };
    if let Some(types) = &types
        && types.is_empty()
    {
        out.unsatisfiable(&path.key("type"), "an empty list of types");
        return;
    }
    if let Some(Value::Array(values)) = object.get("enum") {
        if values.is_empty() {
            out.unsatisfiable(&path.key("enum"), "an empty `enum`");
        } else if let Some(types) = &types
            && !values.iter().any(|v| has_type(v, types))
        {
            out.unsatisfiable(
                &path.key("enum"),
                &format!("no `enum` value is of type {}", types.join(" or ")),
            );
        }
    }
    if let (Some(value), Some(types)) = (object.get("const"), &types)
        && !has_type(value, types)
    {
        out.unsatisfiable(
            &path.key("const"),
            &format!("the `const` value is not of type {}", types.join(" or ")),
        );
    }
}

/// A required property that the object's own schema forbids.
fn required(object: &Map<String, Value>, path: &JsonPath, out: &mut Findings) {
    let Some(Value::Array(required)) = object.get("required") else {
        return;
    };
    let properties = object.get("properties").and_then(Value::as_object);
    let closed = object.get("additionalProperties") == Some(&Value::Bool(false));
    for (i, name) in required.iter().enumerate() {
        let Some(name) = name.as_str() else {
            continue;
        };
        match properties.and_then(|p| p.get(name)) {
            Some(Value::Bool(false)) => out.unsatisfiable(&path.key("required").index(i), &format!("\"{name}\" is required but its schema is `false`")),
            None if closed => out.unsatisfiable(&path.key("required").index(i), &format!(
                    "\"{name}\" is required but not in `properties`, and `additionalProperties: false` forbids it"
                )),
            _ => {}
        }
    }
}

fn has_type(value: &Value, types: &[&str]) -> bool {
    types.iter().any(|t| match *t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn findings(schema: Value) -> Vec<String> {
        check(&schema, &JsonPath::root().key("models").key("M"))
            .into_iter()
            .map(|f| {
                let kind = if f.unsatisfiable { "error" } else { "warning" };
                format!("{kind} {}: {}", f.path, f.message)
            })
            .collect()
    }

    #[test]
    fn an_ordinary_schema_has_no_findings() {
        let schema = json!({
            "type": "object",
            "properties": {
                "verdict": {"type": "string", "enum": ["approve", "revise"]},
                "score": {"type": "integer", "minimum": 0, "maximum": 10},
                "notes": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
                "extra": {"anyOf": [{"type": "string"}, {"type": "null"}]}
            },
            "required": ["verdict", "score"],
            "additionalProperties": false
        });
        assert_eq!(findings(schema), Vec::<String>::new());
    }

    #[test]
    fn unsatisfiable_parts_are_errors_at_their_path() {
        let found = findings(json!({
            "type": "object",
            "properties": {
                "a": {"type": "integer", "minimum": 5, "maximum": 1},
                "b": {"type": "string", "enum": []},
                "c": {"type": "string", "enum": [1, 2]},
                "d": {"type": "array", "items": {"type": []}, "minItems": 1},
                "e": false
            },
            "required": ["a", "b", "c", "d", "e", "missing"],
            "additionalProperties": false
        }));
        let paths: Vec<&str> = found
            .iter()
            .map(|f| f.split(": ").next().unwrap_or_default())
            .collect();
        assert_eq!(
            paths,
            [
                "error $.models.M.required[4]",
                "error $.models.M.required[5]",
                "error $.models.M.properties.a.minimum",
                "error $.models.M.properties.b.enum",
                "error $.models.M.properties.c.enum",
                "error $.models.M.properties.d.items.type",
                "error $.models.M.properties.e",
            ],
            "{found:#?}"
        );
    }

    #[test]
    fn an_unsatisfiable_optional_part_is_only_a_warning() {
        let found = findings(json!({
            "type": "object",
            "properties": {
                "note": {"type": "string", "enum": []},
                "tags": {"type": "array", "items": {"type": []}},
                "either": {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 3, "maximum": 1}]}
            },
            "required": ["either"]
        }));
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found
                .iter()
                .all(|f| f.starts_with("warning") && f.contains("optional part")),
            "{found:#?}"
        );
    }

    #[test]
    fn keywords_the_api_ignores_are_warnings() {
        let found = findings(json!({
            "type": "object",
            "properties": {"name": {"type": "string", "minLength": 3}, "tags": {"type": "array", "uniqueItems": true}},
            "oneOf": [{"required": ["name"]}, {"required": ["tags"]}]
        }));
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found.iter().all(|f| f.starts_with("warning")), "{found:#?}");
        assert!(
            found
                .iter()
                .any(|f| f.contains("$.models.M.properties.name.minLength"))
        );
    }
}
