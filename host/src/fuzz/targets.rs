//! The six targets, each a `#[test]`.

use std::path::Path;

use arbitrary::Unstructured;
use serde_json::{Map, Value, json};

use super::fuzz;
use crate::event::Envelope;
use crate::transport::ws::ClientMessage;
use crate::workflow::condition::Condition;
use crate::workflow::{InMemoryCatalog, load_workflow};

/// A JSON value built by `u`: what a confused or hostile client might send.
fn arbitrary_json(u: &mut Unstructured<'_>, depth: u32) -> Value {
    let kind = if depth == 0 {
        u.int_in_range(0..=3)
    } else {
        u.int_in_range(0..=5)
    };
    match kind.unwrap_or(0) {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary().unwrap_or(false)),
        2 => match u.int_in_range(0..=2).unwrap_or(0) {
            0 => json!(u.arbitrary::<i64>().unwrap_or(0)),
            1 => json!(u.arbitrary::<u64>().unwrap_or(0)),
            _ => serde_json::Number::from_f64(u.arbitrary().unwrap_or(0.5))
                .map_or(Value::Null, Value::Number),
        },
        3 => Value::String(u.arbitrary().unwrap_or_default()),
        4 => Value::Array(
            (0..u.int_in_range(0..=4).unwrap_or(0))
                .map(|_| arbitrary_json(u, depth - 1))
                .collect(),
        ),
        _ => {
            let mut object = Map::new();
            for _ in 0..u.int_in_range(0..=4).unwrap_or(0) {
                let key = u
                    .choose(&["type", "text", "request_id", "answer", "agent", "seq", "x"])
                    .copied()
                    .unwrap_or("x");
                object.insert(key.to_owned(), arbitrary_json(u, depth - 1));
            }
            Value::Object(object)
        }
    }
}

/// A context to evaluate conditions against.
type Lookup = dyn Fn(&str) -> Option<Value>;

const CONDITION_TOKENS: &[&str] = &[
    "(",
    ")",
    "${",
    "}",
    "${x}",
    "&&",
    "||",
    "!",
    "not ",
    " and ",
    " or ",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "true",
    "false",
    "null",
    "None",
    "\"",
    "\\",
    "1e308",
    "-0",
    "9999999999999999999",
    " ",
    "é",
    "${a.b}",
];

/// A condition that parses has a canonical form that parses back to the
/// same form and evaluates the same way.
#[test]
fn fuzz_condition_parser() {
    fuzz("condition", CONDITION_TOKENS, |input| {
        let text = String::from_utf8_lossy(input);
        let Ok(condition) = Condition::parse(&text) else {
            return;
        };
        let shown = condition.to_string();
        let again = match Condition::parse(&shown) {
            Ok(again) => again,
            // `!(a == b)` is one level deeper than `!a == b`: at the
            // nesting bound the canonical form may be one too deep.
            Err(e) if e.message.contains("nested") => return,
            Err(e) => panic!("the canonical form `{shown}` does not parse: {e}"),
        };
        assert_eq!(again.to_string(), shown, "the canonical form is not stable");
        let contexts: [&Lookup; 3] = [&|_| None, &|_| Some(json!(1)), &|name| Some(json!(name))];
        for context in contexts {
            assert_eq!(
                condition.evaluate(context),
                again.evaluate(context),
                "`{text}` and its canonical form `{shown}` disagree"
            );
        }
    });
}

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "1e999",
    "-",
    "\"type\"",
    "\"user_message\"",
    "\"ui_response\"",
    "\"select_speaker\"",
    "\"continue\"",
    "\"end_chat\"",
    "\"ping\"",
    "\"text\"",
    "\"answer\"",
    "\"request_id\"",
    "\"seq\"",
];

/// Whatever a client sends, decoding answers (a message or an error);
/// generated JSON objects too.
#[test]
fn fuzz_client_message_decoder() {
    fuzz("client_message", JSON_TOKENS, |input| {
        let text = String::from_utf8_lossy(input);
        let _ = serde_json::from_str::<ClientMessage>(&text);
        let mut u = Unstructured::new(input);
        let mut value = arbitrary_json(&mut u, 3);
        if let Value::Object(object) = &mut value {
            let kind = u
                .choose(&[
                    "user_message",
                    "ui_response",
                    "select_speaker",
                    "continue",
                    "end_chat",
                    "ping",
                ])
                .copied()
                .unwrap_or("ping");
            object.insert("type".into(), json!(kind));
        }
        let _ = serde_json::from_value::<ClientMessage>(value);
    });
}

/// Whatever a MozaiksAI client sends, the compatibility socket's decoder
/// answers (a message or a refusal with a code), never a panic; and any id
/// it is given parses or not.
#[test]
fn fuzz_compat_client_message_decoder() {
    use crate::transport::compat::{client, ids};
    const CHAT: &str = "0123456789abcdef0123456789abcdef";
    fuzz("compat_client_message", JSON_TOKENS, |input| {
        let text = String::from_utf8_lossy(input);
        let _ = client::decode(&text, CHAT);
        let _ = ids::parse_ui_event_id(&text);
        let _ = ids::parse_input_request_id(&text);
        let mut u = Unstructured::new(input);
        let mut value = arbitrary_json(&mut u, 3);
        if let Value::Object(object) = &mut value {
            let kind = u
                .choose(&[
                    "user.input.submit",
                    "ui_tool_response",
                    "client.resume",
                    "chat.switch_workflow",
                ])
                .copied()
                .unwrap_or("client.resume");
            object.insert("type".into(), json!(kind));
            object.insert("chat_id".into(), json!(CHAT));
        }
        if let Err(refusal) = client::decode(&value.to_string(), CHAT) {
            assert!(!refusal.code.is_empty() && !refusal.message.is_empty());
        }
    });
}

/// A stored event decodes or is an error, never a panic; one that
/// decodes encodes back to the same event (the store's round trip), also
/// through the MongoDB document form.
#[test]
fn fuzz_stored_event_decoder() {
    fuzz("stored_event", JSON_TOKENS, |input| {
        let text = String::from_utf8_lossy(input);
        let seq = Unstructured::new(input).arbitrary::<i64>().unwrap_or(1);
        let _ = crate::store::mongo::decode_stored_event(&text, seq, "c");
        let Ok(envelope) = serde_json::from_str::<Envelope>(&text) else {
            return;
        };
        let encoded = serde_json::to_string(&envelope).expect("a decoded event encodes");
        let again: Envelope = serde_json::from_str(&encoded)
            .unwrap_or_else(|e| panic!("`{encoded}` does not decode: {e}"));
        assert_eq!(again, envelope, "the round trip changed the event");
        // Whatever the log holds, the MozaiksAI socket translates it.
        let mut translator = crate::transport::compat::events::Translator::new(
            "c",
            crate::transport::compat::events::WorkflowFacts::default(),
        );
        for frame in translator.translate(&envelope, false) {
            assert!(
                frame["type"].is_string() && frame["data"]["kind"].is_string(),
                "{frame}"
            );
        }
        if let Some(seq) = envelope.seq.and_then(|s| i64::try_from(s).ok()) {
            let from_mongo = crate::store::mongo::decode_stored_event(&encoded, seq, "c")
                .unwrap_or_else(|e| panic!("`{encoded}` with seq {seq}: {e}"));
            assert_eq!(from_mongo, envelope);
        }
    });
}

const TOML_TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'''",
    "\n",
    "id",
    "version",
    "[limits]",
    "[capabilities]",
    "memory_mb",
    "timeout_ms",
    "fuel",
    "env",
    "dirs",
    "network",
    "mode",
    "\"ro\"",
    "\"rw\"",
    "18446744073709551616",
    "-1",
    "1e400",
    "..",
    "/",
    "\\u0000",
    "inf",
    "nan",
];

/// Any manifest text parses or is a [`ManifestError`], never a panic.
///
/// [`ManifestError`]: mozaiks_plugin_host::ManifestError
#[test]
fn fuzz_plugin_manifest() {
    fuzz("manifest", TOML_TOKENS, |input| {
        let text = String::from_utf8_lossy(input);
        let _ = mozaiks_plugin_host::Manifest::parse(&text, Path::new("plugin.toml"));
    });
}

/// The workflow loader and validator report any folder as a workflow or
/// diagnostics, never a panic. An input is the name of the file to
/// replace (first line) and its new text, written as JSON; the other files
/// are those of `valid_all_features` (several of them YAML).
#[test]
fn fuzz_workflow_loader() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/workflows/valid_all_features");
    let scratch =
        std::env::temp_dir().join(format!("mozaiks-fuzz-workflow-{}", std::process::id()));
    let spec = |name: &str| mozaiks_plugin_host::FunctionSpec {
        name: name.to_owned(),
        description: String::new(),
        parameters: json!({"type": "object"}),
    };
    let catalog = InMemoryCatalog::new().plugin(
        "planner",
        [
            "add_task",
            "list_tasks",
            "complete_plan",
            "request_approval",
            "notify",
            "echo",
        ]
        .map(spec)
        .to_vec(),
    );
    let mut tokens = JSON_TOKENS.to_vec();
    tokens.extend(CONDITION_TOKENS);
    tokens.extend([
        "\"agents\"",
        "\"handoff_rules\"",
        "\"condition\"",
        "\"pre\"",
        "\"$ref\"",
        "\"properties\"",
    ]);
    fuzz("workflow", &tokens, |input| {
        let text = String::from_utf8_lossy(input);
        let (file, content) = text.split_once('\n').unwrap_or(("agents.json", &text));
        let file = crate::workflow::load::WORKFLOW_FILES
            .into_iter()
            .find(|f| *f == file.trim())
            .unwrap_or("agents.json");
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).unwrap();
        for name in crate::workflow::load::WORKFLOW_FILES {
            if name == file {
                std::fs::write(scratch.join(name), content).unwrap();
                continue;
            }
            // The base folder writes some files as YAML: copy whichever
            // spelling it has.
            for (spelled, _) in crate::workflow::format::spellings(name) {
                let from = base.join(&spelled);
                if from.is_file() {
                    std::fs::copy(from, scratch.join(&spelled)).unwrap();
                }
            }
        }
        let _ = load_workflow(&scratch, &catalog);
    });
    let _ = std::fs::remove_dir_all(&scratch);
}
