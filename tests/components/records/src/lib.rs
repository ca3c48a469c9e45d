//! Test component for the `data` and `chat` imports: every function makes
//! one SDK call and returns what came back, errors included, as JSON, so
//! tests see exactly what a tool sees.

use mozaiks_sdk::data::{self, DataError, Query, Scope};
use mozaiks_sdk::{Call, ToolError, Toolbox, Value, json};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ScopeArg {
    App,
    User,
}

fn scope(arg: Option<ScopeArg>) -> Scope {
    match arg {
        Some(ScopeArg::User) => Scope::User,
        _ => Scope::App,
    }
}

/// A data error as a result the test can read.
fn refused(error: DataError) -> Value {
    let kind = match &error {
        DataError::Conflict { .. } => "conflict",
        DataError::TooLarge(_) => "too_large",
        DataError::QuotaExceeded(_) => "quota_exceeded",
        DataError::Invalid(_) => "invalid",
    };
    let found = match &error {
        DataError::Conflict { found } => json!(found),
        _ => Value::Null,
    };
    json!({ "error": kind, "message": error.to_string(), "found": found })
}

fn document(doc: data::Document) -> Value {
    json!({ "id": doc.id, "version": doc.version, "body": doc.body })
}

#[derive(Deserialize)]
struct Key {
    scope: Option<ScopeArg>,
    collection: String,
    id: String,
    expected_version: Option<u64>,
}

fn get(args: Key, _call: &Call) -> Result<Value, ToolError> {
    Ok(
        match data::get(scope(args.scope), &args.collection, &args.id) {
            Ok(found) => json!({ "document": found.map(document) }),
            Err(e) => refused(e),
        },
    )
}

#[derive(Deserialize)]
struct Put {
    #[serde(flatten)]
    key: Key,
    body: Value,
}

fn put(args: Put, _call: &Call) -> Result<Value, ToolError> {
    let k = args.key;
    Ok(
        match data::put(
            scope(k.scope),
            &k.collection,
            &k.id,
            &args.body,
            k.expected_version,
        ) {
            Ok(version) => json!({ "version": version }),
            Err(e) => refused(e),
        },
    )
}

fn remove(args: Key, _call: &Call) -> Result<Value, ToolError> {
    Ok(
        match data::remove(
            scope(args.scope),
            &args.collection,
            &args.id,
            args.expected_version,
        ) {
            Ok(removed) => json!({ "removed": removed }),
            Err(e) => refused(e),
        },
    )
}

#[derive(Deserialize)]
struct Filter {
    path: String,
    value: Value,
}

#[derive(Deserialize)]
struct QueryArgs {
    scope: Option<ScopeArg>,
    collection: String,
    #[serde(default)]
    filters: Vec<Filter>,
    after: Option<String>,
    limit: Option<u32>,
}

fn query(args: QueryArgs, _call: &Call) -> Result<Value, ToolError> {
    let mut q = Query::new();
    for f in args.filters {
        q = q.filter(&f.path, f.value);
    }
    if let Some(after) = &args.after {
        q = q.after(after);
    }
    if let Some(limit) = args.limit {
        q = q.limit(limit);
    }
    Ok(match q.run(scope(args.scope), &args.collection) {
        Ok(docs) => json!({ "documents": docs.into_iter().map(document).collect::<Vec<_>>() }),
        Err(e) => refused(e),
    })
}

#[derive(Deserialize)]
struct Many {
    count: u32,
}

/// Reads `count` documents one by one; says after how many reads the host
/// started refusing (null: never).
fn get_many(args: Many, _call: &Call) -> Result<Value, ToolError> {
    for n in 0..args.count {
        if let Err(DataError::Invalid(message)) = data::get(Scope::App, "c", &format!("d{n}")) {
            return Ok(json!({ "refused_after": n, "message": message }));
        }
    }
    Ok(json!({ "refused_after": null }))
}

#[derive(Deserialize)]
struct Limit {
    limit: u32,
}

fn recent_messages(args: Limit, _call: &Call) -> Result<Value, ToolError> {
    let messages: Vec<Value> = mozaiks_sdk::chat::recent_messages(args.limit)
        .into_iter()
        .map(|m| {
            json!({
                "seq": m.seq,
                "role": match m.role {
                    mozaiks_sdk::chat::Role::User => "user",
                    mozaiks_sdk::chat::Role::Agent => "agent",
                },
                "agent": m.agent,
                "content": m.content,
            })
        })
        .collect();
    Ok(json!({ "messages": messages }))
}

#[derive(Deserialize)]
struct Agent {
    agent: String,
}

fn structured_output(args: Agent, _call: &Call) -> Result<Value, ToolError> {
    Ok(json!({ "output": mozaiks_sdk::chat::structured_output(&args.agent)? }))
}

fn key_schema(extra: Value) -> Value {
    let mut schema = json!({
        "type": "object",
        "properties": {
            "scope": { "enum": ["app", "user"] },
            "collection": { "type": "string" },
            "id": { "type": "string" },
            "expected_version": { "type": "integer", "minimum": 0 }
        },
        "required": ["collection", "id"]
    });
    if let (Some(props), Value::Object(more)) = (schema["properties"].as_object_mut(), extra) {
        props.extend(more);
    }
    schema
}

fn toolbox() -> Toolbox {
    Toolbox::new()
        .function(
            "get",
            "Reads a document of the app.",
            || key_schema(json!({})),
            get,
        )
        .function(
            "put",
            "Writes a document of the app.",
            || {
                // Any JSON, so tests can send what the host must refuse.
                let mut schema = key_schema(json!({ "body": {} }));
                schema["required"] = json!(["collection", "id", "body"]);
                schema
            },
            put,
        )
        .function(
            "remove",
            "Removes a document of the app.",
            || key_schema(json!({})),
            remove,
        )
        .function(
            "query",
            "Lists documents of a collection whose fields equal the filters.",
            || {
                json!({
                    "type": "object",
                    "properties": {
                        "scope": { "enum": ["app", "user"] },
                        "collection": { "type": "string" },
                        "filters": { "type": "array", "items": {
                            "type": "object",
                            "properties": { "path": { "type": "string" }, "value": {} },
                            "required": ["path", "value"]
                        } },
                        "after": { "type": "string" },
                        "limit": { "type": "integer", "minimum": 0 }
                    },
                    "required": ["collection"]
                })
            },
            query,
        )
        .function(
            "get_many",
            "Reads `count` documents one by one.",
            || json!({ "type": "object", "properties": { "count": { "type": "integer", "minimum": 0 } }, "required": ["count"] }),
            get_many,
        )
        .function(
            "recent_messages",
            "The chat's last `limit` messages.",
            || json!({ "type": "object", "properties": { "limit": { "type": "integer", "minimum": 0 } }, "required": ["limit"] }),
            recent_messages,
        )
        .function(
            "structured_output",
            "The latest structured output of `agent`.",
            || json!({ "type": "object", "properties": { "agent": { "type": "string" } }, "required": ["agent"] }),
            structured_output,
        )
}

mozaiks_sdk::export_toolbox!(toolbox);
