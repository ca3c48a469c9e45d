//! MozaiksAI's structured-output field grammar to JSON Schema, in the
//! strict form LLM APIs accept for structured outputs: model references
//! inlined, every object `additionalProperties: false` with every property
//! required, optional values as a union with `null`.
//!
//! The grammar: `str`/`string`, `int`, `float`, `bool`, `dict`/`Dict` (a
//! free object), `list`/`List`/`optional_list` with `items` (a primitive or
//! a model), `literal` with `values`, `union` with `variants` (`null` or
//! `none` makes it optional), `optional_str`, a model's name, and
//! `list[Model]`. A field without `default` is required; a field whose
//! default is null may be null.

use std::collections::BTreeMap;

use serde_yaml_ng::{Mapping, Value};

use crate::workflow::diagnostic::JsonPath;

/// The converted models, in file order, and what could not be converted.
#[derive(Debug, Default)]
pub(crate) struct ConvertedModels {
    /// Model name → its JSON Schema.
    pub schemas: Vec<(String, Value)>,
    /// Notes: the key path in the MozaiksAI file, and the reason.
    pub notes: Vec<(JsonPath, String)>,
}

impl ConvertedModels {
    /// Whether `name` was converted.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.schemas.iter().any(|(n, _)| n == name)
    }

    /// The schema of `name`, if it was converted.
    pub(crate) fn schema(&self, name: &str) -> Option<&Value> {
        self.schemas.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }
}

/// Converts every `type: model` entry of `models` (at `path`).
pub(crate) fn convert_models(models: &Mapping, path: &JsonPath) -> ConvertedModels {
    let mut raw = Vec::new();
    let mut out = ConvertedModels::default();
    for (name, model) in models {
        let name = name.as_str().unwrap_or_default().to_owned();
        let model_path = path.key(&name);
        match model.as_mapping() {
            Some(m) if m.get("type").and_then(Value::as_str) == Some("model") => {
                raw.push((name, model_path, m));
            }
            _ => out.notes.push((
                model_path,
                "not imported: only entries with `type: model` are models (MozaiksAI builds no others)"
                    .to_owned(),
            )),
        }
    }
    let mut builder = Builder {
        raw: &raw,
        done: BTreeMap::new(),
        stack: Vec::new(),
        notes: Vec::new(),
    };
    for (name, model_path, _) in &raw {
        match builder.model(name) {
            Ok(schema) => out.schemas.push((name.clone(), schema)),
            Err(reason) => out
                .notes
                .push((model_path.clone(), format!("model not imported: {reason}"))),
        }
    }
    let mut notes = builder.notes;
    notes.dedup();
    out.notes.extend(notes);
    out
}

struct Builder<'a> {
    raw: &'a [(String, JsonPath, &'a Mapping)],
    done: BTreeMap<String, Result<Value, String>>,
    stack: Vec<String>,
    notes: Vec<(JsonPath, String)>,
}

impl Builder<'_> {
    fn model(&mut self, name: &str) -> Result<Value, String> {
        if let Some(done) = self.done.get(name) {
            return done.clone();
        }
        if self.stack.iter().any(|s| s == name) {
            return Err(format!(
                "the models refer to each other in a cycle ({} -> {name})",
                self.stack.join(" -> ")
            ));
        }
        let Some((_, path, raw)) = self.raw.iter().find(|(n, _, _)| n == name) else {
            return Err(format!("unknown type or model \"{name}\""));
        };
        self.stack.push(name.to_owned());
        let result = self.object(raw, path);
        self.stack.pop();
        self.done.insert(name.to_owned(), result.clone());
        result
    }

    /// A model used by a field: its failure says which model failed.
    fn used_model(&mut self, name: &str) -> Result<Value, String> {
        let known = self.raw.iter().any(|(n, _, _)| n == name);
        let on_stack = self.stack.iter().any(|s| s == name);
        self.model(name).map_err(|reason| {
            if known && !on_stack {
                format!("uses the model \"{name}\", which could not be converted: {reason}")
            } else {
                reason
            }
        })
    }

    fn object(&mut self, raw: &Mapping, path: &JsonPath) -> Result<Value, String> {
        let mut properties = Mapping::new();
        let mut required = Vec::new();
        let mut dropped_defaults = Vec::new();
        let empty = Mapping::new();
        let fields = match raw.get("fields") {
            None | Some(Value::Null) => &empty,
            Some(Value::Mapping(m)) => m,
            Some(_) => return Err("`fields` is not a map of field name to field".to_owned()),
        };
        for (field, def) in fields {
            let field = field.as_str().unwrap_or_default().to_owned();
            let field_path = path.key("fields").key(&field);
            let def = match def {
                Value::Mapping(m) => m.clone(),
                Value::String(t) => {
                    let mut m = Mapping::new();
                    m.insert("type".into(), t.clone().into());
                    m
                }
                _ => {
                    return Err(format!(
                        "field \"{field}\" is neither a map nor a type name"
                    ));
                }
            };
            let Some(kind) = def.get("type").and_then(Value::as_str) else {
                return Err(format!("field \"{field}\" has no `type`"));
            };
            let mut schema = self
                .field_type(kind, &def, &field_path)
                .map_err(|reason| format!("field \"{field}\": {reason}"))?;
            match def.get("default") {
                None => {}
                Some(d) if is_null(d) => schema = nullable(schema),
                Some(_) => dropped_defaults.push(field.clone()),
            }
            if let (Some(description), Value::Mapping(m)) =
                (def.get("description").and_then(Value::as_str), &mut schema)
            {
                m.insert("description".into(), description.into());
            }
            required.push(Value::from(field.clone()));
            properties.insert(field.into(), schema);
        }
        if !dropped_defaults.is_empty() {
            self.notes.push((
                path.key("fields"),
                format!(
                    "defaults of {} dropped: strict structured outputs require every field, so the LLM gives each value",
                    dropped_defaults.join(", ")
                ),
            ));
        }
        Ok(strict_object(properties, required))
    }

    fn field_type(&mut self, kind: &str, def: &Mapping, path: &JsonPath) -> Result<Value, String> {
        let kind = kind.trim();
        match kind {
            "literal" => {
                let values = def
                    .get("values")
                    .and_then(Value::as_sequence)
                    .filter(|v| !v.is_empty())
                    .ok_or("`literal` needs `values`, a list of strings")?;
                if values.iter().any(|v| !v.is_string()) {
                    return Err("`literal` values must be strings".to_owned());
                }
                Ok(obj([
                    ("type", "string".into()),
                    ("enum", Value::Sequence(values.clone())),
                ]))
            }
            "union" => {
                let variants = def
                    .get("variants")
                    .and_then(Value::as_sequence)
                    .filter(|v| !v.is_empty())
                    .ok_or("`union` needs `variants`, a list of type or model names")?;
                let mut schemas = Vec::new();
                for variant in variants {
                    let name = match variant {
                        Value::Null => "null",
                        Value::String(s) => s.as_str(),
                        _ => return Err("`union` variants must be type or model names".to_owned()),
                    };
                    schemas.push(self.named(name, path)?);
                }
                Ok(union(schemas))
            }
            "list" | "List" | "optional_list" => {
                let items = def
                    .get("items")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("`{kind}` needs `items`, a type or model name"))?;
                let array = obj([
                    ("type", "array".into()),
                    ("items", self.named(items, path)?),
                ]);
                Ok(if kind == "optional_list" {
                    nullable(array)
                } else {
                    array
                })
            }
            "model" => Err("`model` is the type of a model, not of a field".to_owned()),
            _ => match list_of(kind) {
                Some(inner) => Ok(obj([
                    ("type", "array".into()),
                    ("items", self.named(inner, path)?),
                ])),
                None => self.named(kind, path),
            },
        }
    }

    /// A primitive, `null`, or a model, by name.
    fn named(&mut self, name: &str, path: &JsonPath) -> Result<Value, String> {
        let primitive = |t: &str| obj([("type", t.into())]);
        Ok(match name.trim() {
            "str" | "string" => primitive("string"),
            "int" | "integer" => primitive("integer"),
            "float" | "number" => primitive("number"),
            "bool" | "boolean" => primitive("boolean"),
            "null" | "none" | "None" => primitive("null"),
            "optional_str" => obj([(
                "type",
                Value::Sequence(vec!["string".into(), "null".into()]),
            )]),
            "dict" | "Dict" => {
                self.notes.push((
                    path.clone(),
                    "a `dict` is an object without properties; in strict form (additionalProperties: false, as MozaiksAI sent it) only {} satisfies it".to_owned(),
                ));
                strict_object(Mapping::new(), Vec::new())
            }
            other => {
                if let Some(inner) = list_of(other) {
                    obj([
                        ("type", "array".into()),
                        ("items", self.named(inner, path)?),
                    ])
                } else {
                    self.used_model(other)?
                }
            }
        })
    }
}

/// `Model` of `list[Model]` / `List[Model]`.
fn list_of(kind: &str) -> Option<&str> {
    kind.strip_prefix("list[")
        .or_else(|| kind.strip_prefix("List["))
        .and_then(|rest| rest.strip_suffix(']'))
        .map(str::trim)
}

/// Whether a default means "no value": null, or the strings `none`/`null`.
fn is_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => matches!(s.trim().to_lowercase().as_str(), "none" | "null"),
        _ => false,
    }
}

fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Mapping(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

fn strict_object(properties: Mapping, required: Vec<Value>) -> Value {
    obj([
        ("type", "object".into()),
        ("properties", Value::Mapping(properties)),
        ("required", Value::Sequence(required)),
        ("additionalProperties", false.into()),
    ])
}

/// The schema, also admitting `null`.
fn nullable(schema: Value) -> Value {
    union(vec![schema, obj([("type", "null".into())])])
}

/// One schema admitting any of `schemas`: a `type` list when each is a
/// plain primitive type, else `anyOf`.
fn union(schemas: Vec<Value>) -> Value {
    let mut types: Vec<Value> = Vec::new();
    let mut plain = true;
    for schema in &schemas {
        let m = schema.as_mapping();
        let only_type = m.is_some_and(|m| m.len() == 1);
        match m.and_then(|m| m.get("type")) {
            Some(Value::String(t)) if only_type && t != "object" && t != "array" => {
                types.push(t.clone().into());
            }
            Some(Value::Sequence(ts)) if only_type => types.extend(ts.iter().cloned()),
            _ => plain = false,
        }
    }
    if plain {
        let mut unique: Vec<Value> = Vec::new();
        for t in types {
            if !unique.contains(&t) {
                unique.push(t);
            }
        }
        return if unique.len() == 1 {
            obj([("type", unique.remove(0))])
        } else {
            obj([("type", Value::Sequence(unique))])
        };
    }
    // A literal (string enum) that may be null: the type and the values
    // both admit null.
    if let [enum_schema, null] = schemas.as_slice()
        && null == &obj([("type", "null".into())])
        && let Some(values) = enum_schema.get("enum").and_then(Value::as_sequence)
    {
        let mut values = values.clone();
        values.push(Value::Null);
        return obj([
            (
                "type",
                Value::Sequence(vec!["string".into(), "null".into()]),
            ),
            ("enum", Value::Sequence(values)),
        ]);
    }
    let mut any_of = Vec::new();
    for schema in schemas {
        match schema.get("anyOf").and_then(Value::as_sequence) {
            Some(inner) if schema.as_mapping().is_some_and(|m| m.len() == 1) => {
                any_of.extend(inner.iter().cloned());
            }
            _ => any_of.push(schema),
        }
    }
    obj([("anyOf", Value::Sequence(any_of))])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(yaml: &str) -> (serde_json::Value, Vec<String>) {
        let models: Mapping = serde_yaml_ng::from_str(yaml).unwrap();
        let out = convert_models(&models, &JsonPath::root().key("models"));
        let schemas: serde_json::Map<_, _> = out
            .schemas
            .iter()
            .map(|(n, s)| (n.clone(), serde_json::to_value(s).unwrap()))
            .collect();
        let notes = out.notes.iter().map(|(p, r)| format!("{p}: {r}")).collect();
        (serde_json::Value::Object(schemas), notes)
    }

    #[test]
    fn every_field_type_becomes_strict_json_schema() {
        let (schemas, notes) = convert(
            r#"
Out:
  type: model
  fields:
    s: {type: str, description: a string}
    i: int
    f: {type: float}
    b: {type: bool, default: false}
    d: {type: dict}
    l: {type: list, items: int}
    ol: {type: optional_list, items: Inner}
    lit: {type: literal, values: [a, b]}
    u: {type: union, variants: [str, int, "null"]}
    um: {type: union, variants: [Inner, none]}
    os: {type: optional_str}
    m: {type: Inner}
    lm: {type: "list[Inner]"}
    n: {type: str, default: none}
Inner:
  type: model
  fields:
    x: {type: int}
"#,
        );
        let inner = serde_json::json!({"type": "object", "properties": {"x": {"type": "integer"}},
            "required": ["x"], "additionalProperties": false});
        let out = &schemas["Out"];
        assert_eq!(out["additionalProperties"], false);
        assert_eq!(
            out["required"],
            serde_json::json!([
                "s", "i", "f", "b", "d", "l", "ol", "lit", "u", "um", "os", "m", "lm", "n"
            ])
        );
        let p = &out["properties"];
        assert_eq!(
            p["s"],
            serde_json::json!({"type": "string", "description": "a string"})
        );
        assert_eq!(p["i"], serde_json::json!({"type": "integer"}));
        assert_eq!(p["f"], serde_json::json!({"type": "number"}));
        assert_eq!(p["b"], serde_json::json!({"type": "boolean"}));
        assert_eq!(
            p["d"],
            serde_json::json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false})
        );
        assert_eq!(
            p["l"],
            serde_json::json!({"type": "array", "items": {"type": "integer"}})
        );
        assert_eq!(
            p["ol"],
            serde_json::json!({"anyOf": [{"type": "array", "items": inner}, {"type": "null"}]})
        );
        assert_eq!(
            p["lit"],
            serde_json::json!({"type": "string", "enum": ["a", "b"]})
        );
        assert_eq!(
            p["u"],
            serde_json::json!({"type": ["string", "integer", "null"]})
        );
        assert_eq!(
            p["um"],
            serde_json::json!({"anyOf": [inner, {"type": "null"}]})
        );
        assert_eq!(p["os"], serde_json::json!({"type": ["string", "null"]}));
        assert_eq!(p["m"], inner);
        assert_eq!(
            p["lm"],
            serde_json::json!({"type": "array", "items": inner})
        );
        assert_eq!(p["n"], serde_json::json!({"type": ["string", "null"]}));
        assert!(
            notes.iter().any(|n| n.contains("defaults of b dropped")),
            "{notes:?}"
        );
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("$.models.Out.fields.d: a `dict`")),
            "{notes:?}"
        );
        for schema in schemas.as_object().unwrap().values() {
            jsonschema::validator_for(schema).unwrap();
        }
    }

    #[test]
    fn unknown_models_and_cycles_are_reported_not_converted() {
        let (schemas, notes) = convert(
            r#"
A: {type: model, fields: {b: {type: B}}}
B: {type: model, fields: {a: {type: "list[A]"}}}
C: {type: model, fields: {x: {type: Missing}}}
D: {type: model, fields: {ok: {type: str}}}
E: {type: something_else}
"#,
        );
        assert_eq!(
            schemas.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["D"]
        );
        let text = notes.join("\n");
        assert!(text.contains("$.models.A: model not imported: field \"b\": uses the model \"B\", which could not be converted: field \"a\": the models refer to each other in a cycle (A -> B -> A)"), "{text}");
        assert!(
            text.contains(
                "$.models.C: model not imported: field \"x\": unknown type or model \"Missing\""
            ),
            "{text}"
        );
        assert!(
            text.contains("$.models.E: not imported: only entries with `type: model`"),
            "{text}"
        );
    }
}
