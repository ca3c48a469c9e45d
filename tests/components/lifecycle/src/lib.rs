//! Lifecycle tools, hooks and an agent tool for the host's end-to-end
//! tests (docs/workflows.md, "Lifecycle tools", "hooks.json" and
//! `auto_execute`).

use std::hint::black_box;
use std::time::Duration;

use mozaiks_sdk::{Call, Display, ToolError, Toolbox, Value, json};
use serde::Deserialize;

/// How long `collect_keys` waits for the user.
const ASK_TIMEOUT: Duration = Duration::from_secs(600);

/// What a lifecycle function receives.
#[derive(Deserialize)]
struct Occasion {
    trigger: String,
    #[serde(default)]
    agent: Option<String>,
}

/// What a hook receives.
#[derive(Deserialize)]
struct HookArgs {
    agent: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    system_message: Option<String>,
}

#[derive(Deserialize)]
struct Verdict {
    score: i64,
    reason: String,
}

/// Appends `<trigger>` or `<trigger>:<agent>` to the context list
/// `lifecycle_log`.
fn record(args: Occasion, call: &Call) -> Result<Value, ToolError> {
    let entry = match &args.agent {
        Some(agent) => format!("{}:{agent}", args.trigger),
        None => args.trigger.clone(),
    };
    let context = call.context();
    let mut log: Vec<String> = context.get("lifecycle_log")?.unwrap_or_default();
    log.push(entry.clone());
    context.set("lifecycle_log", &log)?;
    Ok(json!({ "recorded": entry }))
}

/// Asks the user for an API key (component `ApiKeys`) and keeps it in the
/// context as `api_key`.
fn collect_keys(args: Occasion, call: &Call) -> Result<Value, ToolError> {
    let answer = call
        .ui()
        .ask(
            "ApiKeys",
            &json!({ "trigger": args.trigger, "fields": ["api_key"] }),
            Display::Inline,
            ASK_TIMEOUT,
        )
        .map_err(|err| ToolError::Cancelled(format!("{err:?}")))?;
    let key = answer.get("api_key").cloned().unwrap_or(Value::Null);
    call.context().set("api_key", &key)?;
    Ok(json!({ "stored": true }))
}

/// Always fails.
fn explode(_args: Occasion, _call: &Call) -> Result<Value, ToolError> {
    Err(ToolError::Failed(
        "lifecycle tool failed on purpose".to_owned(),
    ))
}

/// `update_agent_state`: a line with the context's `api_key`.
fn inject_state(args: HookArgs, call: &Call) -> Result<Value, ToolError> {
    let key: Option<String> = call.context().get("api_key")?;
    let length = args.system_message.map_or(0, |s| s.len());
    Ok(Value::String(format!(
        "State for {}: api_key is {} (system message of {length} bytes).",
        args.agent,
        key.as_deref().unwrap_or("unknown")
    )))
}

/// `process_message_before_send`: replaces every `hunter2` with
/// `[redacted]`.
fn redact(args: HookArgs, _call: &Call) -> Result<Value, ToolError> {
    let message = args.message.unwrap_or_default();
    Ok(Value::String(message.replace("hunter2", "[redacted]")))
}

/// `process_message_before_send`: appends ` -- signed` (chained after
/// `redact`, it shows that each hook gets the text the one before returned).
fn sign(args: HookArgs, _call: &Call) -> Result<Value, ToolError> {
    Ok(Value::String(format!(
        "{} -- signed",
        args.message.unwrap_or_default()
    )))
}

/// A hook that always fails.
fn broken_hook(_args: HookArgs, _call: &Call) -> Result<Value, ToolError> {
    Err(ToolError::Failed("hook broke on purpose".to_owned()))
}

/// A hook that never returns: the deadline ends it.
fn slow_hook(_args: HookArgs, _call: &Call) -> Result<Value, ToolError> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// A hook that returns an object instead of a string.
fn wrong_shape(_args: HookArgs, _call: &Call) -> Result<Value, ToolError> {
    Ok(json!({ "not": "a string" }))
}

/// An agent tool for `auto_execute`: keeps the score in the context as
/// `saved_score` and returns a receipt.
fn save_verdict(args: Verdict, call: &Call) -> Result<Value, ToolError> {
    call.context().set("saved_score", &args.score)?;
    Ok(json!({ "receipt": format!("R-{}", args.score), "reason_length": args.reason.len() }))
}

/// A UI tool for `auto_execute`: asks the user to confirm the verdict
/// (component `ConfirmVerdict`) and returns the answer.
fn confirm_verdict(args: Verdict, call: &Call) -> Result<Value, ToolError> {
    let answer = call
        .ui()
        .ask(
            "ConfirmVerdict",
            &json!({ "score": args.score, "reason": args.reason }),
            Display::Inline,
            ASK_TIMEOUT,
        )
        .map_err(|err| ToolError::Cancelled(format!("{err:?}")))?;
    Ok(json!({ "confirmed": answer }))
}

fn toolbox() -> Toolbox {
    let occasion = json!({
        "type": "object",
        "properties": { "trigger": { "type": "string" }, "agent": { "type": "string" } },
        "required": ["trigger"],
        "additionalProperties": false
    });
    let hook = json!({
        "type": "object",
        "properties": {
            "agent": { "type": "string" },
            "message": { "type": "string" },
            "system_message": { "type": "string" }
        },
        "required": ["agent"],
        "additionalProperties": false
    });
    let verdict = json!({
        "type": "object",
        "properties": { "score": { "type": "integer" }, "reason": { "type": "string" } },
        "required": ["score", "reason"],
        "additionalProperties": false
    });
    Toolbox::new()
        .function(
            "record",
            "Records the occasion in `lifecycle_log`.",
            occasion.clone(),
            record,
        )
        .function(
            "collect_keys",
            "Asks the user for an API key.",
            occasion.clone(),
            collect_keys,
        )
        .function("explode", "Always fails.", occasion, explode)
        .function(
            "inject_state",
            "update_agent_state hook.",
            hook.clone(),
            inject_state,
        )
        .function(
            "redact",
            "process_message_before_send hook.",
            hook.clone(),
            redact,
        )
        .function(
            "sign",
            "process_message_before_send hook.",
            hook.clone(),
            sign,
        )
        .function(
            "broken_hook",
            "A hook that fails.",
            hook.clone(),
            broken_hook,
        )
        .function(
            "slow_hook",
            "A hook that never returns.",
            hook.clone(),
            slow_hook,
        )
        .function(
            "wrong_shape",
            "A hook that returns an object.",
            hook,
            wrong_shape,
        )
        .function(
            "save_verdict",
            "Saves a verdict.",
            verdict.clone(),
            save_verdict,
        )
        .function(
            "confirm_verdict",
            "Asks the user to confirm a verdict.",
            verdict,
            confirm_verdict,
        )
}

mozaiks_sdk::export_toolbox!(toolbox);
