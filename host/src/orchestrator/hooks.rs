//! Hooks (`hooks.json`): plugin functions that change what an agent is
//! told (`update_agent_state`) or what it says (`process_message_before_send`).
//!
//! A hook is a plugin call like any other (same sandbox, same deadline,
//! the chat's context as its `context` import). What it may never do is
//! stop the run: a hook that fails, times out or returns something other
//! than a string or `null` leaves the text unchanged, is logged, and is
//! reported as a [`HookFailure`], which the run emits as a `warning` event.
//! The run stops a hook as it stops a tool call: at the user's end of the
//! chat, at a shutdown that finds it waiting for the user, and when the
//! chat moves to another server (`Run::until_interrupted`).

use std::sync::Arc;

use serde_json::Value;

use super::Shared;
use super::live::LiveChat;
use super::tools;
use crate::store::ChatRecord;
use crate::workflow::Workflow;
use crate::workflow::model::{Hook, HookType, hook_arguments};

/// What a hook call needs of the run: the plugins, the chat, its workflow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HookSite<'a> {
    /// The plugins and their secrets.
    pub shared: &'a Arc<Shared>,
    /// The chat (the hook's context import).
    pub live: &'a Arc<LiveChat>,
    /// The workflow the hooks come from.
    pub workflow: &'a Arc<Workflow>,
    /// The chat: its id for the call's log fields, its app for the
    /// hook's data import.
    pub chat: &'a ChatRecord,
    /// The run's write failures when it started (`live/writer.rs`).
    pub writes_seen: u64,
}

/// A hook that did not change the text, and why (the `warning` event's
/// message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HookFailure(pub String);

/// The text `agent`'s `update_agent_state` hooks add to its system message
/// for one LLM call: each hook's string, in file order, joined by a blank
/// line; `None` when no hook added anything.
pub(crate) async fn agent_state(
    site: HookSite<'_>,
    agent: &str,
    system_message: &str,
) -> (Option<String>, Vec<HookFailure>) {
    let mut added = Vec::new();
    let mut failures = Vec::new();
    for hook in site.workflow.hooks(HookType::UpdateAgentState, agent) {
        let arguments = hook_arguments(hook.hook_type, agent, system_message);
        match call(site, hook, agent, &arguments).await {
            Ok(Some(text)) if !text.trim().is_empty() => added.push(text),
            Ok(_) => {}
            Err(failure) => failures.push(failure),
        }
    }
    ((!added.is_empty()).then(|| added.join("\n\n")), failures)
}

/// `agent`'s reply after its `process_message_before_send` hooks, each
/// given the text the one before returned; a hook that returns `null` or
/// fails leaves the text as it was.
pub(crate) async fn process_message(
    site: HookSite<'_>,
    agent: &str,
    message: String,
) -> (String, Vec<HookFailure>) {
    let mut text = message;
    let mut failures = Vec::new();
    for hook in site
        .workflow
        .hooks(HookType::ProcessMessageBeforeSend, agent)
    {
        let arguments = hook_arguments(hook.hook_type, agent, &text);
        match call(site, hook, agent, &arguments).await {
            Ok(Some(new)) => text = new,
            Ok(None) => {}
            Err(failure) => failures.push(failure),
        }
    }
    (text, failures)
}

/// Whether `agent` has a `process_message_before_send` hook: its reply is
/// then not streamed (the deltas would show what the hook removes).
pub(crate) fn rewrites_messages(workflow: &Workflow, agent: &str) -> bool {
    workflow
        .hooks(HookType::ProcessMessageBeforeSend, agent)
        .next()
        .is_some()
}

/// Calls one hook: `Ok(Some(text))` for a string, `Ok(None)` for `null`.
async fn call(
    site: HookSite<'_>,
    hook: &Hook,
    agent: &str,
    arguments: &Value,
) -> Result<Option<String>, HookFailure> {
    let failed = |why: String| {
        let message = format!(
            "{} hook {}.{} for agent `{agent}` failed ({why}); the {} is unchanged",
            hook.hook_type.as_str(),
            hook.plugin,
            hook.function,
            match hook.hook_type {
                HookType::UpdateAgentState => "system message",
                HookType::ProcessMessageBeforeSend => "message",
            }
        );
        tracing::warn!(
            chat_id = %site.chat.chat_id,
            plugin = %hook.plugin,
            function = %hook.function,
            agent,
            "{message}"
        );
        HookFailure(message)
    };
    let plugin = site
        .shared
        .plugin(&hook.plugin)
        .map_err(|e| failed(e.to_string()))?;
    let info = mozaiks_plugin_host::CallInfo {
        chat_id: site.chat.chat_id.clone(),
        workflow: site.workflow.name().to_owned(),
        agent: agent.to_owned(),
        tool_call_id: format!("hook-{}-{}", hook.hook_type.as_str(), uuid::Uuid::new_v4()),
        // A hook is not journalled: each call is its own, with a key the
        // plugin host derives from this fresh id.
        ..mozaiks_plugin_host::CallInfo::default()
    };
    // The run's events before the hook are durable before the hook can
    // act outside the chat, as for a tool.
    let barrier = super::tools::before_plugin_call(&plugin, site.live, site.writes_seen)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let tool = hook.as_tool();
    let arguments = arguments.to_string();
    let call = tools::execute(
        &plugin,
        &hook.function,
        &arguments,
        info,
        site.live,
        &tool,
        site.workflow,
        super::tools::ChatPorts {
            writes_seen: Some(site.writes_seen),
            ..super::Orchestrator::chat_ports(site.shared, site.chat, barrier)
        },
    );
    let report = super::instrument::tool_call(&hook.plugin, &hook.function, call).await;
    if !report.ok {
        let why = report
            .error
            .map_or(report.content, |e| format!("{}: {}", e.kind, e.message));
        return Err(failed(why));
    }
    match serde_json::from_str::<Value>(&report.content) {
        Ok(Value::String(text)) => Ok(Some(text)),
        Ok(Value::Null) => Ok(None),
        Ok(other) => Err(failed(format!(
            "it returned {}, not a string or null",
            kind_of(&other)
        ))),
        Err(error) => Err(failed(format!("its result is not JSON: {error}"))),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
