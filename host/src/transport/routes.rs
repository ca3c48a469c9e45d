//! The HTTP routes (docs/protocol.md lists them with their bodies).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::ApiError;
use super::state::WebState;
use crate::event::Event;
use crate::orchestrator::RunInput;
use crate::store::{ChatFilter, ChatRecord, ChatStatus};
use crate::workflow::Diagnostic;
use crate::workflow::model::{ToolKind, Workflow};
use crate::workflow::registry::Entry;

/// A diagnostic as JSON.
pub(crate) fn diagnostic_json(d: &Diagnostic) -> Value {
    json!({
        "file": d.file, "path": d.json_path, "message": d.message, "help": d.help,
        "line": d.position.map(|p| p.0), "column": d.position.map(|p| p.1),
        "text": d.to_string(),
    })
}

fn workflow_json(workflow: &Workflow) -> Value {
    let tools: Vec<Value> = workflow
        .tools()
        .iter()
        .map(|t| {
            let (kind, component, mode) = match &t.kind {
                ToolKind::Agent => ("Agent_Tool", None, None),
                ToolKind::Ui { component, mode } => (
                    "UI_Tool",
                    Some(component.clone()),
                    Some(format!("{mode:?}").to_lowercase()),
                ),
            };
            json!({"name": t.name, "type": kind, "plugin": t.plugin, "function": t.function,
                   "description": t.description, "component": component, "mode": mode})
        })
        .collect();
    let mut components: Vec<String> = workflow
        .tools()
        .iter()
        .filter_map(|t| match &t.kind {
            ToolKind::Ui { component, .. } => Some(component.clone()),
            ToolKind::Agent => None,
        })
        .collect();
    components.sort();
    components.dedup();
    json!({
        "name": workflow.name(),
        "description": workflow.description(),
        "valid": true,
        "version": workflow.version(),
        "cache_seed": workflow.cache_seed(),
        "max_turns": workflow.max_turns().get(),
        "human_in_the_loop": workflow.human_in_the_loop(),
        "startup_mode": format!("{:?}", workflow.startup_mode()),
        "orchestration_pattern": format!("{:?}", workflow.pattern()),
        "initial_agent": workflow.initial_agent(),
        "visual_agents": workflow.visual_agents(),
        "agents": workflow.agents().iter().map(|a| json!({
            "name": a.name, "tools": a.tools, "structured_output": a.structured_output,
        })).collect::<Vec<_>>(),
        "tools": tools,
        "ui_components": components,
        "errors": [],
        "warnings": workflow.warnings().iter().map(diagnostic_json).collect::<Vec<_>>(),
    })
}

/// `GET /api/workflows`
pub(crate) async fn list_workflows(State(web): State<WebState>) -> Json<Value> {
    let snapshot = web.workflows.snapshot();
    let workflows: Vec<Value> = snapshot
        .iter()
        .map(|(name, entry)| match entry {
            Entry::Valid(workflow) => workflow_json(workflow),
            Entry::Invalid {
                dir,
                diagnostics,
                last_good,
            } => json!({
                "name": name, "dir": dir, "valid": false,
                "errors": diagnostics.iter().filter(|d| d.is_error()).map(diagnostic_json).collect::<Vec<_>>(),
                "warnings": diagnostics.iter().filter(|d| !d.is_error()).map(diagnostic_json).collect::<Vec<_>>(),
                // A folder that broke after it loaded keeps serving this version.
                "serving": last_good.as_deref().map(workflow_json),
            }),
        })
        .collect();
    Json(json!({ "workflows": workflows }))
}

/// Body of `POST /api/chats`. With an API key, `app_id` (and `user_id`
/// when the key is a user's) may be left out: the key says them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartChat {
    app_id: Option<String>,
    user_id: Option<String>,
    workflow: String,
}

/// A chat record as the API shows it.
pub fn chat_json(chat: &ChatRecord) -> Value {
    json!({
        "chat_id": chat.chat_id, "app_id": chat.app_id, "user_id": chat.user_id,
        "workflow": chat.workflow, "workflow_version": chat.workflow_version,
        "cache_seed": chat.cache_seed,
        "status": match chat.status {
            ChatStatus::InProgress => "in_progress",
            ChatStatus::Completed => "completed",
            ChatStatus::Failed => "failed",
        },
        "ended_reason": chat.ended_reason, "created_at": chat.created_at,
        "updated_at": chat.updated_at, "last_seq": chat.last_seq,
        "usage": {"prompt_tokens": chat.prompt_tokens, "completion_tokens": chat.completion_tokens},
    })
}

/// `POST /api/chats`
pub(crate) async fn start_chat(
    State(web): State<WebState>,
    caller: Caller,
    body: Result<Json<StartChat>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body?;
    let (app_id, user_id) = caller.owner_of_new_chat(body.app_id, body.user_id)?;
    let chat = web
        .chats
        .create_chat(&app_id, &user_id, &body.workflow)
        .await?;
    let mut value = chat_json(&chat);
    value["ws_path"] = json!(format!("/api/chats/{}/ws", chat.chat_id));
    Ok((StatusCode::CREATED, Json(value)))
}

/// Query of `GET /api/chats`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListChats {
    app_id: Option<String>,
    user_id: Option<String>,
}

/// `GET /api/chats?app_id=&user_id=`
pub(crate) async fn list_chats(
    State(web): State<WebState>,
    caller: Caller,
    query: Result<Query<ListChats>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    let (app_id, user_id) = caller.chat_filter(query.app_id, query.user_id)?;
    let filter = ChatFilter {
        app_id,
        user_id,
        status: None,
    };
    let chats = web.store.chats(&filter).await?;
    Ok(Json(
        json!({"chats": chats.iter().map(chat_json).collect::<Vec<_>>()}),
    ))
}

/// `GET /api/chats/{id}`: the chat and its messages.
pub(crate) async fn get_chat(
    State(web): State<WebState>,
    caller: Caller,
    Path(chat_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let chat = caller.chat(&web.chats, &chat_id).await?;
    let events = web.store.events(&chat_id, 0, None).await?;
    let messages: Vec<_> = events
        .iter()
        .filter(|e| {
            matches!(
                e.event,
                Event::UserMessage { .. } | Event::AgentMessage { .. } | Event::ToolResult { .. }
            )
        })
        .collect();
    let mut value = chat_json(&chat);
    value["messages"] = serde_json::to_value(messages).unwrap_or_default();
    Ok(Json(value))
}

/// Query of `GET /api/chats/{id}/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

/// `GET /api/chats/{id}/events?after=N&limit=M`
pub(crate) async fn get_events(
    State(web): State<WebState>,
    caller: Caller,
    Path(chat_id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query?;
    caller.chat(&web.chats, &chat_id).await?;
    let events = web.store.events(&chat_id, query.after, query.limit).await?;
    Ok(Json(json!({"events": events})))
}

/// `GET /api/chats/{id}/context`
pub(crate) async fn get_context(
    State(web): State<WebState>,
    caller: Caller,
    Path(chat_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.chat(&web.chats, &chat_id).await?;
    let context = web.store.context(&chat_id).await?;
    Ok(Json(json!({"chat_id": chat_id, "context": context})))
}

/// Body of `POST /api/chats/{id}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostMessage {
    text: String,
}

/// `POST /api/chats/{id}/messages`: the user says something.
pub(crate) async fn post_message(
    State(web): State<WebState>,
    caller: Caller,
    Path(chat_id): Path<String>,
    body: Result<Json<PostMessage>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(body) = body?;
    caller.chat(&web.chats, &chat_id).await?;
    web.chats
        .send(&chat_id, RunInput::UserMessage(body.text))
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Body of `POST /api/chats/{id}/ui/{request_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UiAnswer {
    answer: Value,
}

/// `POST /api/chats/{id}/ui/{request_id}`: answers a UI request.
pub(crate) async fn answer_ui(
    State(web): State<WebState>,
    caller: Caller,
    Path((chat_id, request_id)): Path<(String, String)>,
    body: Result<Json<UiAnswer>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(body) = body?;
    caller.chat(&web.chats, &chat_id).await?;
    web.chats
        .answer_ui(&chat_id, &request_id, body.answer)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// `POST /api/chats/{id}/continue`: retries a run interrupted by an error.
pub(crate) async fn continue_chat(
    State(web): State<WebState>,
    caller: Caller,
    Path(chat_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.chat(&web.chats, &chat_id).await?;
    web.chats.send(&chat_id, RunInput::Continue).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `POST /api/chats/{id}/end`
pub(crate) async fn end_chat(
    State(web): State<WebState>,
    caller: Caller,
    Path(chat_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.chat(&web.chats, &chat_id).await?;
    web.chats.end_chat(&chat_id).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /health`
pub(crate) async fn health(State(web): State<WebState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "llm": match web.llm_missing {
            None => json!({"configured": true}),
            Some(var) => json!({"configured": false, "missing": var}),
        },
    }))
}

/// `GET /health/ready`: 200 when the store answers and the first load of
/// plugins and workflows is done; 503 with the reason when the store does
/// not answer (refused, DNS, authentication, timeout), and 503 with reason
/// `loading` and `loading: [plugin folders]` while the server, just
/// started, still loads them (it listens before). `plugins` lists those
/// served and those that are not, with why. A broken plugin does not make
/// the server unready: the workflows that need it are reported invalid,
/// the others serve.
pub(crate) async fn ready(State(web): State<WebState>) -> (StatusCode, Json<Value>) {
    let mut readiness = web.health.readiness();
    let loading = web.plugins.loading();
    if loading.is_some() {
        readiness.ready = false;
        readiness.reason = Some("loading".to_owned());
    }
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let snapshot = web.plugins.snapshot();
    let (served, unavailable): (Vec<_>, Vec<_>) =
        snapshot.slots().partition(|slot| slot.current.is_some());
    let mut body = serde_json::to_value(readiness).unwrap_or_default();
    if let Some(loading) = loading {
        body["loading"] = json!(loading);
    }
    body["plugins"] = json!({
        "served": served.iter().map(|slot| slot.id.as_str()).collect::<Vec<_>>(),
        "unavailable": unavailable.iter().map(|slot| json!({
            "id": slot.id,
            "error": slot.last_error.as_ref().map(|e| e.message.as_str()),
        })).collect::<Vec<_>>(),
    });
    (status, Json(body))
}

/// `GET /health/active-runs`: the runs in this process, of the caller's
/// app (and user) only when the key is restricted: a key never learns the
/// ids, statuses or client counts of another app's chats.
pub(crate) async fn active_runs(
    State(web): State<WebState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let mut runs = web.chats.active_runs();
    if caller.principal().is_some() {
        let mut visible = Vec::with_capacity(runs.len());
        for run in runs {
            match web.chats.chat(&run.chat_id).await {
                Ok(chat) if caller.may_see(&chat) => visible.push(run),
                Ok(_) | Err(crate::orchestrator::ChatError::ChatNotFound(_)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        runs = visible;
    }
    Ok(Json(json!({"count": runs.len(), "runs": runs})))
}
