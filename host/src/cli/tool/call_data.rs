//! `mozaiks tool call --data-file` and `--transcript-file`: the in-memory
//! app data and the scripted chat a call gets, and the documents printed
//! after it.
//!
//! The data file is `{"app": {<collection>: {<id>: <document>}}, "user":
//! {...}}` (both parts optional), every document a JSON object stored at
//! version 1. The transcript file is `{"messages": [{"seq", "role": "user" |
//! "agent", "agent"?, "content"}], "structured_outputs": {<agent>: <json>}}`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use mozaiks_plugin_host::{DataScope, MemoryAppData, ScriptedChat};
use serde_json::{Map, Value, json};

fn read_json(flag: &str, path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {flag} {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{flag} {}: not JSON", path.display()))
}

/// The app's documents for the call, seeded from `file`.
pub(super) fn app_data(file: Option<&Path>) -> anyhow::Result<Arc<MemoryAppData>> {
    let data = Arc::new(MemoryAppData::default());
    let Some(file) = file else {
        return Ok(data);
    };
    let seed = read_json("--data-file", file)?;
    let Some(parts) = seed.as_object() else {
        bail!(
            "--data-file {}: expected {{\"app\": {{...}}, \"user\": {{...}}}}",
            file.display()
        );
    };
    for (part, collections) in parts {
        let scope = match part.as_str() {
            "app" => DataScope::App,
            "user" => DataScope::User,
            other => bail!(
                "--data-file {}: `{other}` is not a scope; the keys are `app` and `user`",
                file.display()
            ),
        };
        let Some(collections) = collections.as_object() else {
            bail!(
                "--data-file {} at {part}: expected an object of collections",
                file.display()
            );
        };
        for (collection, documents) in collections {
            let Some(documents) = documents.as_object() else {
                bail!(
                    "--data-file {} at {part}.{collection}: expected an object of documents by id",
                    file.display()
                );
            };
            for (id, body) in documents {
                if !body.is_object() {
                    bail!(
                        "--data-file {} at {part}.{collection}.{id}: a document is a JSON object",
                        file.display()
                    );
                }
                data.seed(scope, collection, id, body.clone());
            }
        }
    }
    Ok(data)
}

/// The chat the call reads, from `file` (none: an empty chat).
pub(super) fn transcript(file: Option<&Path>) -> anyhow::Result<ScriptedChat> {
    let Some(file) = file else {
        return Ok(ScriptedChat::default());
    };
    serde_json::from_value(read_json("--transcript-file", file)?)
        .with_context(|| format!("--transcript-file {}", file.display()))
}

/// The documents after the call, as `{"app": {collection: {id: {"version",
/// "body"}}}, "user": {...}}`; `None` when there are none.
pub(super) fn documents(data: &MemoryAppData) -> Option<Value> {
    let documents = data.documents();
    if documents.is_empty() {
        return None;
    }
    let mut out = Map::new();
    for (scope, collection, doc) in documents {
        let part = match scope {
            DataScope::App => "app",
            DataScope::User => "user",
        };
        let collections = out.entry(part).or_insert_with(|| json!({}));
        let documents = &mut collections[collection.as_str()];
        documents[doc.id.as_str()] = json!({ "version": doc.version, "body": doc.body });
    }
    Some(Value::Object(out))
}
