//! Test component with a real side effect, deduplicated by the call's
//! idempotency key (the `invocation` import).
//!
//! `apply` counts in `effect_runs/<key>` how many times its body ran for
//! the key, asks the human to confirm through the UI component `Confirm`
//! (so a test can stop the server while the call waits), then records the
//! effect as `effects/<key>` only if that document does not exist yet. A
//! call run again after a restart (same key) finds its effect either
//! absent (the first run stopped before it: it is made now) or present
//! (made once, never twice). `ledger` lists the effects and run counts.

use std::time::Duration;

use mozaiks_sdk::data::{self, DataError, Query, Scope};
use mozaiks_sdk::{Call, Display, ToolError, Toolbox, UiError, Value, json};
use serde::Deserialize;

/// The documents of the effects, one per idempotency key.
const EFFECTS: &str = "effects";
/// How many times `apply`'s body ran, per idempotency key.
const RUNS: &str = "effect_runs";
/// How long `apply` waits for its confirmation.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(600);

fn failed(what: &str, error: DataError) -> ToolError {
    ToolError::Failed(format!("{what}: {error}"))
}

/// Adds one to the run count of `key` and returns it.
fn count_run(key: &str) -> Result<u64, ToolError> {
    let found = data::get(Scope::App, RUNS, key).map_err(|e| failed("reading the runs", e))?;
    let (runs, version) = match found {
        Some(doc) => (doc.body["runs"].as_u64().unwrap_or(0) + 1, doc.version),
        None => (1, 0),
    };
    data::put(
        Scope::App,
        RUNS,
        key,
        &json!({ "runs": runs }),
        Some(version),
    )
    .map_err(|e| failed("counting the run", e))?;
    Ok(runs)
}

#[derive(Deserialize)]
struct Apply {
    label: String,
}

fn apply(args: Apply, call: &Call) -> Result<Value, ToolError> {
    let key = call.idempotency_key();
    let runs = count_run(&key)?;
    call.ui()
        .ask(
            "Confirm",
            &json!({ "label": args.label, "key": key }),
            Display::Inline,
            CONFIRM_TIMEOUT,
        )
        .map_err(|err| match err {
            UiError::Timeout | UiError::Cancelled => {
                ToolError::Cancelled(format!("`{}` was not confirmed", args.label))
            }
            UiError::Unavailable(msg) | UiError::InvalidRequest(msg) => ToolError::Failed(msg),
        })?;
    let effect = json!({ "label": args.label, "key": key });
    let first_time = match data::put(Scope::App, EFFECTS, &key, &effect, Some(0)) {
        Ok(_) => true,
        Err(DataError::Conflict { .. }) => false,
        Err(e) => return Err(failed("recording the effect", e)),
    };
    Ok(json!({
        "key": key,
        "label": args.label,
        "first_time": first_time,
        "runs": runs,
        "attempt": call.attempt(),
    }))
}

fn ledger(_args: Value, _call: &Call) -> Result<Value, ToolError> {
    let effects = Query::new()
        .run(Scope::App, EFFECTS)
        .map_err(|e| failed("listing the effects", e))?;
    let mut listed = Vec::new();
    for doc in effects {
        let runs = data::get(Scope::App, RUNS, &doc.id)
            .map_err(|e| failed("reading the runs", e))?
            .map(|runs| runs.body["runs"].clone());
        listed.push(json!({ "key": doc.id, "label": doc.body["label"], "runs": runs }));
    }
    Ok(json!({ "effects": listed }))
}

fn toolbox() -> Toolbox {
    Toolbox::new()
        .function(
            "apply",
            "Applies the effect `label` once the user confirms it; exactly once per tool call.",
            || {
                json!({
                    "type": "object",
                    "properties": { "label": { "type": "string", "minLength": 1 } },
                    "required": ["label"]
                })
            },
            apply,
        )
        .function(
            "ledger",
            "Lists every effect applied in this app, with how many times its call ran.",
            || json!({ "type": "object", "properties": {} }),
            ledger,
        )
}

mozaiks_sdk::export_toolbox!(toolbox);
