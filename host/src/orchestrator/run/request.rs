//! What a turn sends the LLM ([`chat_request`]) and the context a chat
//! starts with ([`initial_context`]).

use serde_json::{Map, Value};

use crate::event::Envelope;
use crate::llm::{ChatRequest, ResponseSchema, ToolDefinition};
use crate::orchestrator::handoff;
use crate::orchestrator::history::transcript;
use crate::store::ChatRecord;
use crate::workflow::Workflow;
use crate::workflow::model::{Agent, VariableSource};

/// The LLM request of `agent`'s turn after `events`: its system message
/// (with the context the log holds after `events`: `orchestrator/prompt.rs`)
/// and transcript, its tools (schemas from the plugins' `describe()`) plus
/// one transfer tool per LLM handoff, its structured-output model as
/// `response_format`, its model settings (or the server's defaults), and
/// the chat's cache seed.
pub fn chat_request<'a>(
    workflow: &Workflow,
    agent: &Agent,
    events: impl IntoIterator<Item = &'a Envelope>,
    default_model: &str,
    default_timeout: std::time::Duration,
    cache_seed: u32,
) -> ChatRequest {
    let events: Vec<&Envelope> = events.into_iter().collect();
    let context = crate::orchestrator::prompt::context_of(events.iter().copied());
    let defaults = RequestDefaults {
        model: default_model,
        timeout: default_timeout,
        cache_seed,
    };
    chat_request_with(workflow, agent, events, &context, &defaults)
}

/// The server's settings a request falls back to.
pub(crate) struct RequestDefaults<'a> {
    /// The model when the agent names none.
    pub model: &'a str,
    /// The timeout when the agent sets none.
    pub timeout: std::time::Duration,
    /// The chat's cache seed.
    pub cache_seed: u32,
}

/// [`chat_request`] with the chat's current `context` (the run's own event
/// list lacks the changes tools made through the context port).
pub(crate) fn chat_request_with<'a>(
    workflow: &Workflow,
    agent: &Agent,
    events: impl IntoIterator<Item = &'a Envelope>,
    context: &Map<String, Value>,
    defaults: &RequestDefaults<'_>,
) -> ChatRequest {
    let system_message = crate::orchestrator::prompt::system_message(agent, context);
    let mut tools: Vec<ToolDefinition> = agent
        .tools
        .iter()
        .filter_map(|name| workflow.tool(name))
        .map(|tool| ToolDefinition {
            name: tool.name.clone(),
            description: tool.description.clone(),
            parameters: tool.parameters.clone(),
        })
        .collect();
    tools.extend(handoff::transfer_tools(&agent.handoffs));
    let response_format = agent
        .structured_output
        .as_deref()
        .and_then(|m| workflow.output_model(m))
        .map(|m| ResponseSchema {
            name: m.name.clone(),
            schema: m.schema.clone(),
        });
    ChatRequest {
        model: agent
            .llm
            .model
            .clone()
            .unwrap_or_else(|| defaults.model.to_owned()),
        messages: transcript(&agent.name, &system_message, events),
        tools,
        response_format,
        temperature: agent.llm.temperature,
        max_tokens: agent.llm.max_tokens,
        timeout: agent.llm.timeout.unwrap_or(defaults.timeout),
        seed: Some(i64::from(defaults.cache_seed)),
    }
}

/// The initial context variables of a new chat, in declaration order, plus
/// the ids every tool may read. Fails with the variable and its env var
/// when a required environment variable is unset.
pub(crate) fn initial_context(
    workflow: &Workflow,
    chat: &ChatRecord,
) -> Result<Map<String, Value>, (String, String)> {
    let mut context = Map::new();
    for (key, value) in [
        ("workflow_name", &chat.workflow),
        ("app_id", &chat.app_id),
        ("chat_id", &chat.chat_id),
        ("user_id", &chat.user_id),
    ] {
        context.insert(key.to_owned(), Value::String(value.clone()));
    }
    for variable in workflow.context_variables() {
        let value = match &variable.source {
            VariableSource::Static { default, .. } | VariableSource::Derived { default, .. } => {
                default.clone()
            }
            VariableSource::File { value, .. } => value.clone(),
            // Read from the store by `database_context::read`; the default
            // until then.
            VariableSource::Database(source) => source.default.clone(),
            VariableSource::Environment {
                env_var,
                default,
                required,
            } => match std::env::var(env_var) {
                Ok(text) => coerce_env(&text, variable.var_type),
                Err(_) => match default {
                    Some(default) => default.clone(),
                    None if *required => {
                        return Err((variable.name.clone(), env_var.clone()));
                    }
                    None => Value::Null,
                },
            },
        };
        context.insert(variable.name.clone(), value);
    }
    Ok(context)
}

/// An environment variable's text as the declared type: JSON when it
/// parses as that type, else the string.
fn coerce_env(text: &str, var_type: crate::workflow::model::VariableType) -> Value {
    use crate::workflow::model::VariableType as T;
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    match (var_type, parsed) {
        (T::Boolean, Some(v @ Value::Bool(_)))
        | (T::Integer | T::Number, Some(v @ Value::Number(_)))
        | (T::Object, Some(v @ Value::Object(_)))
        | (T::Array, Some(v @ Value::Array(_))) => v,
        _ => Value::String(text.to_owned()),
    }
}
