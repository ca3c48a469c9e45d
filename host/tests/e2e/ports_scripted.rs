//! Python, JavaScript and TypeScript tools read their secrets, the app's
//! data and the chat through their helpers (`mozaiks_tool.py`,
//! `mozaiks_tool.js`, `mozaiks_tool.ts`), called through `mozaiks tool
//! call` with the harness's `--secret`, `--data-file` and
//! `--transcript-file`.
//!
//! One tool per language, with the same four functions: `secret` and
//! `require` read the secret `name`; `data` runs a list of data operations
//! in order and reports each one's result, or the `DataError` it raised
//! (rethrown when the operation says `uncaught`); `chat` reads the recent
//! messages and an agent's structured output. One driver checks the three.

use std::path::Path;

use serde_json::{Value, json};

use crate::cli::{assert_exit, stdout_json};
use crate::languages::{JS, PYTHON, Sample, TS, built_variant, call, skipped, tool_error};
use crate::support::Scratch;

/// The secrets the tools' manifest declares (docs/tool-authors.md,
/// "Secrets").
const SECRETS: &str = r#"
[secrets.TOKEN]
required = true
description = "A token the tool needs"

[secrets.REGION]
required = false
description = "A region, when the operator sets one"
"#;

/// The app's documents the data calls start from, each at version 1.
const DATA: &str = r#"{"app": {"orders": {
    "o-1": {"status": "open", "customer": {"id": 7}},
    "o-2": {"status": "open", "customer": {"id": 8}},
    "o-3": {"status": "paid", "customer": {"id": 7}}}},
  "user": {"notes": {"n-1": {"text": "mine"}}}}"#;

/// The chat the chat calls read (docs/tool-authors.md's `chat.json`).
const CHAT: &str = r#"{"messages": [{"seq": 1, "role": "user", "content": "plan a trip"},
                 {"seq": 3, "role": "agent", "agent": "Planner", "content": "{\"city\": \"Oslo\"}"}],
    "structured_outputs": {"Planner": {"city": "Oslo"}}}"#;

/// The report of a call that exited with `code`.
fn report(output: &std::process::Output, code: i32) -> Value {
    assert_exit(output, code);
    stdout_json(output)
}

fn secrets(dir: &Path) {
    let token = ["--secret", "TOKEN=tok-123"];
    // A declared secret's value reaches the tool; the host redacts it from
    // the result, which shows that the result held it.
    let read = report(&call(dir, "secret", json!({"name": "TOKEN"}), &token), 0);
    assert_eq!(
        read["result"]["ok"],
        json!({"value": "[redacted secret TOKEN]"}),
        "{read}"
    );
    let read = report(&call(dir, "require", json!({"name": "TOKEN"}), &token), 0);
    assert_eq!(
        read["result"]["ok"],
        json!({"value": "[redacted secret TOKEN]"}),
        "{read}"
    );
    // An optional secret without a value is none; `require` fails on it.
    let read = report(&call(dir, "secret", json!({"name": "REGION"}), &token), 0);
    assert_eq!(read["result"]["ok"], json!({"value": null}), "{read}");
    let (kind, message) = tool_error(&call(dir, "require", json!({"name": "REGION"}), &token));
    assert_eq!(
        (kind.as_str(), message.as_str()),
        ("failed", "the secret `REGION` has no value")
    );
    // The host's refusals are failed tool errors with its reason: an
    // undeclared secret (even with a value), a required one without.
    let (kind, message) = tool_error(&call(
        dir,
        "secret",
        json!({"name": "UNDECLARED"}),
        &["--secret", "TOKEN=tok-123", "--secret", "UNDECLARED=x"],
    ));
    assert_eq!(kind, "failed");
    assert_eq!(
        message,
        "`UNDECLARED` is not a secret of plugin `ports`: declare it as [secrets.UNDECLARED] in \
         its plugin.toml"
    );
    let (kind, message) = tool_error(&call(dir, "secret", json!({"name": "TOKEN"}), &[]));
    assert_eq!(kind, "failed");
    assert!(
        message.starts_with("the required secret `TOKEN` of plugin `ports` has no value"),
        "{message}"
    );
}

/// The tool's results of its data operations, each `{"ok": ...}` or
/// `{"error": {kind, found, message}}`, the kinds spelled as in the WIT
/// (Python's helper spells them `too_large`, as its ToolError kinds).
fn results(report: &Value) -> Value {
    let mut results = report["result"]["ok"].clone();
    for result in results.as_array_mut().unwrap_or_else(|| panic!("{report}")) {
        if let Some(kind) = result["error"]["kind"].as_str() {
            result["error"]["kind"] = json!(kind.replace('_', "-"));
        }
    }
    results
}

fn data(dir: &Path, scratch: &Scratch) {
    let seed = scratch.0.join("data.json");
    std::fs::write(&seed, DATA).unwrap();
    let run = |ops: Value| {
        call(
            dir,
            "data",
            json!({ "ops": ops }),
            &["--data-file", seed.to_str().unwrap()],
        )
    };
    let doc =
        |id: &str, version: u64, body: Value| json!({"id": id, "version": version, "body": body});
    let open7 = json!({"status": "open", "customer": {"id": 7}});
    let paid7 = json!({"status": "paid", "customer": {"id": 7}});

    // Every operation of the helper, in one call so that each sees the
    // writes before it; the DataErrors caught and reported.
    let ran = report(
        &run(json!([
            {"op": "get", "collection": "orders", "id": "o-1"},
            {"op": "get", "collection": "orders", "id": "o-9"},
            {"op": "get", "scope": "user", "collection": "notes", "id": "n-1"},
            {"op": "put", "collection": "orders", "id": "o-1", "body": paid7, "expected_version": 1},
            {"op": "put", "collection": "orders", "id": "o-1", "body": {"status": "lost"}, "expected_version": 1},
            {"op": "put", "collection": "orders", "id": "o-4", "body": open7, "expected_version": 0},
            {"op": "put", "collection": "orders", "id": "o-9", "body": {"status": "lost"}, "expected_version": 3},
            {"op": "put", "scope": "user", "collection": "notes", "id": "n-1", "body": {"text": "edited"}},
            {"op": "query", "collection": "orders", "filters": {"customer.id": 7}},
            {"op": "query", "collection": "orders", "filters": {"customer.id": 7, "status": "open"}},
            {"op": "query", "collection": "orders", "filters": {"status": "open"}, "after": "o-2", "limit": 5},
            {"op": "query", "collection": "orders", "limit": 1},
            {"op": "remove", "collection": "orders", "id": "o-2", "expected_version": 2},
            {"op": "remove", "collection": "orders", "id": "o-2"},
            {"op": "remove", "collection": "orders", "id": "o-2"},
            {"op": "put", "collection": "orders", "id": "o-5", "pad": 300_000},
            {"op": "put", "collection": "orders", "id": "o-5", "body": [1]},
        ])),
        0,
    );
    let conflict = |found: Value, message: &str| json!({"error": {"kind": "conflict", "found": found, "message": message}});
    assert_eq!(
        results(&ran),
        json!([
            // get: a document, none, a user-scoped one
            {"ok": doc("o-1", 1, open7.clone())},
            {"ok": null},
            {"ok": doc("n-1", 1, json!({"text": "mine"}))},
            // put: new versions, conflicts with the version found or none
            {"ok": 2},
            conflict(json!(2), "version conflict: the document is at version 2"),
            {"ok": 1},
            conflict(json!(null), "version conflict: the document does not exist"),
            {"ok": 2},
            // query: by a dotted path, by all of two filters, after an id, limited
            {"ok": [doc("o-1", 2, paid7.clone()), doc("o-3", 1, paid7.clone()), doc("o-4", 1, open7.clone())]},
            {"ok": [doc("o-4", 1, open7.clone())]},
            {"ok": [doc("o-4", 1, open7.clone())]},
            {"ok": [doc("o-1", 2, paid7.clone())]},
            // remove: a conflict, then removed, then gone
            conflict(json!(1), "version conflict: the document is at version 1"),
            {"ok": true},
            {"ok": false},
            // the host's other refusals
            {"error": {"kind": "too-large", "found": null, "message":
                "the document is 300010 bytes, more than the 262144 allowed (MOZAIKS_DATA_MAX_DOCUMENT_BYTES)"}},
            {"error": {"kind": "invalid", "found": null, "message": "a document body is a JSON object"}},
        ]),
        "{ran}"
    );
    assert_eq!(
        ran["data"],
        json!({
            "app": {"orders": {
                "o-1": {"version": 2, "body": paid7},
                "o-3": {"version": 1, "body": paid7},
                "o-4": {"version": 1, "body": open7},
            }},
            "user": {"notes": {"n-1": {"version": 2, "body": {"text": "edited"}}}}
        }),
        "{ran}"
    );

    // A DataError the function does not catch is the call's tool error:
    // `invalid` an invalid-arguments one, any other a failed one, with the
    // message of the DataError.
    let (kind, message) = tool_error(&run(json!([
        {"op": "put", "collection": "orders", "id": "o-1", "body": {"status": "lost"},
         "expected_version": 5, "uncaught": true},
    ])));
    assert_eq!(
        (kind.as_str(), message.as_str()),
        ("failed", "version conflict: the document is at version 1")
    );
    let (kind, message) = tool_error(&run(json!([
        {"op": "put", "collection": "orders", "id": "o-1", "body": [1], "uncaught": true},
    ])));
    assert_eq!(kind, "invalid_arguments");
    assert!(
        message.ends_with("a document body is a JSON object"),
        "{message}"
    );
    let (kind, message) = tool_error(&run(json!([
        {"op": "put", "collection": "orders", "id": "o-5", "pad": 300_000, "uncaught": true},
    ])));
    assert_eq!(kind, "failed");
    assert!(
        message.contains("MOZAIKS_DATA_MAX_DOCUMENT_BYTES"),
        "{message}"
    );

    // An app at its quota of documents (10,000): a new document is refused
    // with `quota-exceeded`. A query without a limit returns 100.
    let bulk: serde_json::Map<String, Value> = (0..10_000)
        .map(|i| (format!("b-{i:05}"), json!({ "n": i })))
        .collect();
    std::fs::write(&seed, json!({"app": {"bulk": bulk}}).to_string()).unwrap();
    let ran = report(
        &run(json!([
            {"op": "query", "collection": "bulk"},
            {"op": "put", "collection": "bulk", "id": "b-new", "body": {"n": -1}},
        ])),
        0,
    );
    let results = results(&ran);
    let page = results[0]["ok"].as_array().unwrap();
    assert_eq!(page.len(), 100);
    assert_eq!(page[99], doc("b-00099", 1, json!({"n": 99})));
    let quota = "app `tool call` already holds 10000 documents, the most allowed \
                 (MOZAIKS_DATA_MAX_DOCUMENTS_PER_APP)";
    assert_eq!(
        results[1],
        json!({"error": {"kind": "quota-exceeded", "found": null, "message": quota}})
    );
    let (kind, message) = tool_error(&run(json!([
        {"op": "put", "collection": "bulk", "id": "b-new", "body": {"n": -1}, "uncaught": true},
    ])));
    assert_eq!((kind.as_str(), message.as_str()), ("failed", quota));
}

fn chat(dir: &Path, scratch: &Scratch) {
    let transcript = scratch.0.join("chat.json");
    std::fs::write(&transcript, CHAT).unwrap();
    let read = |args: Value| {
        let output = call(
            dir,
            "chat",
            args,
            &["--transcript-file", transcript.to_str().unwrap()],
        );
        report(&output, 0)["result"]["ok"].clone()
    };
    let user = json!({"seq": 1, "role": "user", "agent": null, "content": "plan a trip"});
    let planner =
        json!({"seq": 3, "role": "agent", "agent": "Planner", "content": "{\"city\": \"Oslo\"}"});
    // Oldest first; the structured output parsed, not its text.
    assert_eq!(
        read(json!({"limit": 10, "agent": "Planner"})),
        json!({"messages": [user, planner], "output": {"city": "Oslo"}})
    );
    // The last `limit` messages; none for an agent without an output.
    assert_eq!(
        read(json!({"limit": 1, "agent": "Nobody"})),
        json!({"messages": [planner], "output": null})
    );
}

fn secrets_data_and_chat(sample: &Sample, file_and_source: &str) {
    let dir = built_variant(sample, "ports", file_and_source, SECRETS);
    let scratch = Scratch::new(&format!("ports-{}", sample.lang));
    secrets(&dir);
    data(&dir, &scratch);
    chat(&dir, &scratch);
}

#[test]
fn a_python_tool_reads_secrets_data_and_the_chat_through_its_helper() {
    if skipped(PYTHON.lang) {
        return;
    }
    secrets_data_and_chat(&PYTHON, PYTHON_SOURCE);
}

#[test]
fn a_js_tool_reads_secrets_data_and_the_chat_through_its_helper() {
    if skipped(JS.lang) {
        return;
    }
    secrets_data_and_chat(&JS, JS_SOURCE);
}

#[test]
fn a_ts_tool_reads_secrets_data_and_the_chat_through_its_helper() {
    if skipped(TS.lang) {
        return;
    }
    secrets_data_and_chat(&TS, TS_SOURCE);
}

const PYTHON_SOURCE: &str = r#"app.py:from mozaiks_tool import DataError, Toolbox

toolbox = Toolbox()
ANY = {"type": "object"}


@toolbox.function("secret", "Reads a secret.", ANY)
def secret(args, call):
    return {"value": call.secrets.get(args["name"])}


@toolbox.function("require", "Reads a secret that must have a value.", ANY)
def require(args, call):
    return {"value": call.secrets.require(args["name"])}


def document(doc):
    return None if doc is None else {"id": doc.id, "version": doc.version, "body": doc.body}


def run(call, op):
    scope, collection = op.get("scope", "app"), op["collection"]
    if op["op"] == "get":
        return document(call.data.get(scope, collection, op["id"]))
    if op["op"] == "put":
        body = {"pad": "x" * op["pad"]} if "pad" in op else op["body"]
        return call.data.put(scope, collection, op["id"], body, op.get("expected_version"))
    if op["op"] == "remove":
        return call.data.remove(scope, collection, op["id"], op.get("expected_version"))
    page = {"limit": op["limit"]} if "limit" in op else {}
    found = call.data.query(scope, collection, op.get("filters"), op.get("after"), **page)
    return [document(doc) for doc in found]


@toolbox.function("data", "Runs data operations in order; each one's result or DataError.", ANY)
def data(args, call):
    results = []
    for op in args["ops"]:
        try:
            results.append({"ok": run(call, op)})
        except DataError as error:
            if op.get("uncaught"):
                raise
            results.append({"error": {"kind": error.kind, "found": error.found, "message": str(error)}})
    return results


@toolbox.function("chat", "Reads the chat.", ANY)
def chat(args, call):
    messages = call.chat.recent_messages(args["limit"])
    return {
        "messages": [{"seq": m.seq, "role": m.role, "agent": m.agent, "content": m.content} for m in messages],
        "output": call.chat.structured_output(args["agent"]),
    }


Tool = toolbox.export()
"#;

const JS_SOURCE: &str = r#"app.js:import { DataError, Toolbox } from './mozaiks_tool.js';

function run(call, op) {
  const scope = op.scope ?? 'app';
  if (op.op === 'get') return call.data.get(scope, op.collection, op.id);
  if (op.op === 'put') {
    const body = op.pad === undefined ? op.body : { pad: 'x'.repeat(op.pad) };
    return call.data.put(scope, op.collection, op.id, body, { expectedVersion: op.expected_version });
  }
  if (op.op === 'remove') return call.data.remove(scope, op.collection, op.id, { expectedVersion: op.expected_version });
  return call.data.query(scope, op.collection, op.filters, { after: op.after, limit: op.limit });
}

export const tool = new Toolbox()
  .function('secret', 'Reads a secret.', { type: 'object' }, (args, call) => ({ value: call.secrets.get(args.name) }))
  .function('require', 'Reads a secret that must have a value.', { type: 'object' },
    (args, call) => ({ value: call.secrets.require(args.name) }))
  .function('data', "Runs data operations in order; each one's result or DataError.", { type: 'object' }, (args, call) =>
    args.ops.map((op) => {
      try {
        return { ok: run(call, op) };
      } catch (error) {
        if (!(error instanceof DataError) || op.uncaught) throw error;
        return { error: { kind: error.kind, found: error.found, message: error.message } };
      }
    }))
  .function('chat', 'Reads the chat.', { type: 'object' }, (args, call) => ({
    messages: call.chat.recentMessages(args.limit),
    output: call.chat.structuredOutput(args.agent),
  }))
  .export();
"#;

const TS_SOURCE: &str = r#"app.ts:import { Call, DataError, Json, JsonObject, Scope, Toolbox } from './mozaiks_tool.js';

interface Op {
  op: 'get' | 'put' | 'remove' | 'query';
  scope?: Scope;
  collection: string;
  id: string;
  body?: JsonObject;
  pad?: number;
  expected_version?: number;
  filters?: JsonObject;
  after?: string;
  limit?: number;
  uncaught?: boolean;
}

function run(call: Call, op: Op): Json {
  const scope = op.scope ?? 'app';
  if (op.op === 'get') return call.data.get(scope, op.collection, op.id);
  if (op.op === 'put') {
    const body = op.pad === undefined ? op.body ?? {} : { pad: 'x'.repeat(op.pad) };
    return call.data.put(scope, op.collection, op.id, body, { expectedVersion: op.expected_version });
  }
  if (op.op === 'remove') return call.data.remove(scope, op.collection, op.id, { expectedVersion: op.expected_version });
  return call.data.query(scope, op.collection, op.filters, { after: op.after, limit: op.limit });
}

export const tool = new Toolbox()
  .function<{ name: string }>('secret', 'Reads a secret.', { type: 'object' },
    (args, call) => ({ value: call.secrets.get(args.name) }))
  .function<{ name: string }>('require', 'Reads a secret that must have a value.', { type: 'object' },
    (args, call) => ({ value: call.secrets.require(args.name) }))
  .function<{ ops: Op[] }>('data', "Runs data operations in order; each one's result or DataError.", { type: 'object' },
    (args, call) => args.ops.map((op): Json => {
      try {
        return { ok: run(call, op) };
      } catch (error) {
        if (!(error instanceof DataError) || op.uncaught) throw error;
        return { error: { kind: error.kind, found: error.found, message: error.message } };
      }
    }))
  .function<{ limit: number; agent: string }>('chat', 'Reads the chat.', { type: 'object' }, (args, call) => ({
    messages: call.chat.recentMessages(args.limit),
    output: call.chat.structuredOutput(args.agent),
  }))
  .export();
"#;
