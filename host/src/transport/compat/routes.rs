//! MozaiksAI's HTTP routes, in MozaiksAI's shapes, over the native chat API
//! (docs/protocol.md, "MozaiksAI compatibility", lists each one and what it
//! answers where mozaiks has no counterpart).

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::events::rfc3339;
use super::{ids, meta};
use crate::event::{ErrorCode, Event};
use crate::orchestrator::RunInput;
use crate::store::{ChatFilter, ChatRecord, ChatStatus};
use crate::transport::auth::Caller;
use crate::transport::error::ApiError;
use crate::transport::state::WebState;
use crate::workflow::model::{DisplayMode, ToolKind, Workflow};
use crate::workflow::registry::Entry;

/// How long a start is answered with the chat an earlier start of the
/// same app, user and workflow made (MozaiksAI's
/// `CHAT_START_IDEMPOTENCY_SEC`).
pub(crate) const START_REUSE_WINDOW: Duration = Duration::from_secs(15);

/// Chats started through `POST …/start` in the last [`START_REUSE_WINDOW`].
#[derive(Debug, Default)]
pub(crate) struct RecentStarts(std::sync::Mutex<Vec<RecentStart>>);

#[derive(Debug, Clone)]
struct RecentStart {
    owner: (String, String, String),
    client_request_id: Option<String>,
    chat_id: String,
    at: Instant,
}

impl RecentStarts {
    /// The chats of `owner` (app, user, workflow) started in the window,
    /// one with `client_request_id` first, newest first otherwise.
    fn candidates(
        &self,
        owner: &(String, String, String),
        client_request_id: Option<&str>,
    ) -> Vec<String> {
        let mut starts = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        starts.retain(|s| s.at.elapsed() < START_REUSE_WINDOW);
        let mut mine: Vec<&RecentStart> = starts.iter().filter(|s| &s.owner == owner).collect();
        mine.sort_by_key(|s| {
            (
                client_request_id.is_none() || s.client_request_id.as_deref() != client_request_id,
                std::cmp::Reverse(s.at),
            )
        });
        mine.iter().map(|s| s.chat_id.clone()).collect()
    }

    fn remember(&self, start: RecentStart) {
        let mut starts = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        starts.retain(|s| s.at.elapsed() < START_REUSE_WINDOW);
        starts.push(start);
    }
}

fn workflow_config(workflow: &Workflow) -> Value {
    let tools: Vec<Value> = workflow
        .tools()
        .iter()
        .map(|tool| {
            let agents: Vec<&str> = workflow
                .agents()
                .iter()
                .filter(|a| a.tools.contains(&tool.name))
                .map(|a| a.name.as_str())
                .collect();
            let mut record = json!({
                "name": tool.name, "plugin": tool.plugin, "function": tool.function,
                "description": tool.description, "agent": agents.first(), "agents": agents,
                "tool_type": "Agent_Tool",
            });
            if let ToolKind::Ui { component, mode } = &tool.kind {
                record["tool_type"] = json!("UI_Tool");
                record["ui"] = json!({"component": component, "mode": mode_name(*mode)});
            }
            record
        })
        .collect();
    json!({
        "workflow_name": workflow.name(),
        "description": workflow.description(),
        "max_turns": workflow.max_turns().get(),
        "human_in_the_loop": workflow.human_in_the_loop(),
        "startup_mode": format!("{:?}", workflow.startup_mode()),
        "orchestration_pattern": format!("{:?}", workflow.pattern()),
        "initial_agent": workflow.initial_agent(),
        "initial_message": workflow.initial_message(),
        "visual_agents": workflow.visual_agents(),
        "agents": {"agents": workflow.agents().iter().map(|a| json!({
            "name": a.name, "tools": a.tools, "structured_output": a.structured_output,
        })).collect::<Vec<_>>()},
        "tools": tools,
        "cache_seed": workflow.cache_seed(),
        "version": workflow.version(),
    })
}

fn mode_name(mode: DisplayMode) -> &'static str {
    match mode {
        DisplayMode::Inline => "inline",
        DisplayMode::Artifact => "artifact",
    }
}

/// `GET /mozaiksai/api/workflows` (and `…/config`): workflow name → config,
/// alphabetically. Workflows that do not validate are left out (the native
/// `GET /api/workflows` reports their problems).
pub(crate) async fn workflows(State(web): State<WebState>) -> Json<Value> {
    let snapshot = web.workflows.snapshot();
    let map: Map<String, Value> = snapshot
        .iter()
        .filter_map(|(name, entry)| match entry {
            Entry::Valid(workflow) => Some((name.clone(), workflow_config(workflow))),
            Entry::Invalid { .. } => None,
        })
        .collect();
    Json(Value::Object(map))
}

fn workflow(web: &WebState, name: &str) -> Result<std::sync::Arc<Workflow>, ApiError> {
    web.workflows.get(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownWorkflow,
            format!("no workflow `{name}` is loaded"),
        )
    })
}

/// `GET /mozaiksai/api/workflows/{workflow}/transport`
pub(crate) async fn transport(
    State(web): State<WebState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let workflow = workflow(&web, &name)?;
    Ok(Json(json!({
        "workflow_name": workflow.name(), "transport": "websocket",
        "endpoints": {
            "websocket": format!("/ws/{}/{{app_id}}/{{chat_id}}/{{user_id}}", workflow.name()),
            "input": "/api/user-input/submit",
        },
    })))
}

/// `GET /mozaiksai/api/workflows/{workflow}/ui-tools` (and `…/tools`).
pub(crate) async fn ui_tools(
    State(web): State<WebState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let workflow = workflow(&web, &name)?;
    let tools: Vec<Value> = workflow
        .tools()
        .iter()
        .filter_map(|tool| match &tool.kind {
            ToolKind::Ui { component, mode } => Some(json!({
                "ui_tool_id": component, "component": component, "mode": mode_name(*mode),
                "tool_name": tool.name, "workflow": workflow.name(),
                "agent": workflow.agents().iter().find(|a| a.tools.contains(&tool.name)).map(|a| a.name.as_str()),
            })),
            ToolKind::Agent => None,
        })
        .collect();
    Ok(Json(json!({
        "workflow_name": workflow.name(), "ui_tools_count": tools.len(), "ui_tools": tools,
    })))
}

/// `GET /mozaiksai/api/workflows/{app_id}/available`: mozaiks has no packs
/// or gates, so every workflow that validates is available.
pub(crate) async fn available(State(web): State<WebState>) -> Json<Value> {
    let snapshot = web.workflows.snapshot();
    let workflows: Vec<Value> = snapshot
        .values()
        .filter_map(|entry| match entry {
            Entry::Valid(w) => Some(json!({
                "workflow_name": w.name(), "available": true, "reason": null,
                "type": "workflow", "description": w.description(), "required_gates": [],
            })),
            Entry::Invalid { .. } => None,
        })
        .collect();
    Json(json!({ "workflows": workflows }))
}

/// Body of `POST /mozaiksai/api/chats/{app_id}/{workflow}/start`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartBody {
    user_id: String,
    client_request_id: Option<String>,
    #[serde(default)]
    force_new: bool,
}

fn ws_url(chat: &ChatRecord) -> String {
    format!(
        "/ws/{}/{}/{}/{}",
        chat.workflow, chat.app_id, chat.chat_id, chat.user_id
    )
}

/// `POST /mozaiksai/api/chats/{app_id}/{workflow}/start`: a chat, or,
/// unless `force_new`, the in-progress chat an earlier start of the same
/// app, user and workflow made within 15 s (one with the same
/// `client_request_id` first).
pub(crate) async fn start(
    State(web): State<WebState>,
    caller: Caller,
    Path((app_id, workflow)): Path<(String, String)>,
    body: Result<Json<StartBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    let (app_id, user_id) = caller.owner_of_new_chat(Some(app_id), Some(body.user_id))?;
    let owner = (app_id.clone(), user_id.clone(), workflow.clone());
    if !body.force_new {
        for chat_id in web
            .compat_starts
            .candidates(&owner, body.client_request_id.as_deref())
        {
            if let Ok(chat) = web.chats.chat(&chat_id).await
                && chat.status == ChatStatus::InProgress
            {
                return Ok(Json(start_answer(&chat, true)));
            }
        }
    }
    let chat = web.chats.create_chat(&app_id, &user_id, &workflow).await?;
    web.compat_starts.remember(RecentStart {
        owner,
        client_request_id: body.client_request_id,
        chat_id: chat.chat_id.clone(),
        at: Instant::now(),
    });
    Ok(Json(start_answer(&chat, false)))
}

fn start_answer(chat: &ChatRecord, reused: bool) -> Value {
    json!({
        "success": true, "chat_id": chat.chat_id, "workflow_name": chat.workflow,
        "app_id": chat.app_id, "user_id": chat.user_id, "websocket_url": ws_url(chat),
        "message": if reused { "reusing the chat started moments ago" } else { "chat started" },
        "reused": reused, "cache_seed": chat.cache_seed,
    })
}

/// The caller's chats of `app_id` (and `user_id`), newest update first.
async fn own_chats(
    web: &WebState,
    caller: &Caller,
    app_id: String,
    user_id: Option<String>,
) -> Result<Vec<ChatRecord>, ApiError> {
    let (app_id, user_id) = caller.chat_filter(Some(app_id), user_id)?;
    let mut chats = web
        .store
        .chats(&ChatFilter {
            app_id,
            user_id,
            status: None,
        })
        .await?;
    chats.retain(|c| caller.may_see(c));
    chats.sort_by_key(|c| std::cmp::Reverse(c.updated_at));
    Ok(chats)
}

/// `GET /mozaiksai/api/chats/{app_id}/{workflow}`: up to 20 chat ids.
pub(crate) async fn chat_ids(
    State(web): State<WebState>,
    caller: Caller,
    Path((app_id, workflow)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let chats = own_chats(&web, &caller, app_id, None).await?;
    let ids: Vec<&str> = chats
        .iter()
        .filter(|c| c.workflow == workflow)
        .take(20)
        .map(|c| c.chat_id.as_str())
        .collect();
    Ok(Json(json!({ "chat_ids": ids })))
}

/// The chat, if it exists, is the caller's and is `workflow`'s chat of
/// `app_id`.
async fn chat_of(
    web: &WebState,
    caller: &Caller,
    app_id: &str,
    workflow: &str,
    chat_id: &str,
) -> Option<ChatRecord> {
    caller
        .chat(&web.chats, chat_id)
        .await
        .ok()
        .filter(|c| c.app_id == app_id && c.workflow == workflow)
}

/// `GET /mozaiksai/api/chats/exists/{app_id}/{workflow}/{chat_id}`
pub(crate) async fn exists(
    State(web): State<WebState>,
    caller: Caller,
    Path((app_id, workflow, chat_id)): Path<(String, String, String)>,
) -> Json<Value> {
    let found = chat_of(&web, &caller, &app_id, &workflow, &chat_id).await;
    Json(json!({ "exists": found.is_some() }))
}

/// `GET /mozaiksai/api/chats/meta/{app_id}/{workflow}/{chat_id}`
pub(crate) async fn chat_meta(
    State(web): State<WebState>,
    caller: Caller,
    Path((app_id, workflow, chat_id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let Some(chat) = chat_of(&web, &caller, &app_id, &workflow, &chat_id).await else {
        return Ok(Json(json!({
            "exists": false, "chat_id": chat_id, "workflow_name": workflow, "app_id": app_id,
            "chat_exists": false, "last_artifact": null,
        })));
    };
    let events = web.store.events(&chat_id, 0, None).await?;
    let mut meta = meta::chat_meta(&chat, &events);
    meta["exists"] = json!(true);
    meta["artifact_instance_id"] = Value::Null;
    meta["artifact_state"] = Value::Null;
    Ok(Json(meta))
}

async fn session_json(web: &WebState, chat: &ChatRecord) -> Result<Value, ApiError> {
    let events = web.store.events(&chat.chat_id, 0, None).await?;
    Ok(json!({
        "chat_id": chat.chat_id, "workflow_name": chat.workflow,
        "created_at": rfc3339(chat.created_at), "last_updated_at": rfc3339(chat.updated_at),
        "last_artifact": meta::last_artifact(chat, &events),
    }))
}

/// `GET /mozaiksai/api/sessions/list/{app_id}/{user_id}`: in-progress
/// chats, newest update first, at most 100.
pub(crate) async fn sessions(
    State(web): State<WebState>,
    caller: Caller,
    Path((app_id, user_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let chats = own_chats(&web, &caller, app_id, Some(user_id)).await?;
    let mut sessions = Vec::new();
    for chat in chats
        .iter()
        .filter(|c| c.status == ChatStatus::InProgress)
        .take(100)
    {
        sessions.push(session_json(&web, chat).await?);
    }
    Ok(Json(json!({"count": sessions.len(), "sessions": sessions})))
}

/// `GET /mozaiksai/api/sessions/recent/{app_id}/{user_id}`
pub(crate) async fn recent_session(
    State(web): State<WebState>,
    caller: Caller,
    Path((app_id, user_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let chats = own_chats(&web, &caller, app_id, Some(user_id)).await?;
    match chats.iter().find(|c| c.status == ChatStatus::InProgress) {
        Some(chat) => {
            let mut session = session_json(&web, chat).await?;
            session["found"] = json!(true);
            Ok(Json(session))
        }
        None => Ok(Json(json!({ "found": false }))),
    }
}

/// `GET /mozaiksai/api/general_chats/list/{app_id}/{user_id}`: mozaiks has
/// no Ask (general) mode, so there are never any (a fixed, documented
/// answer that lets ChatUI go on).
pub(crate) async fn general_chats(
    caller: Caller,
    Path((app_id, user_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.chat_filter(Some(app_id), Some(user_id))?;
    Ok(Json(json!({
        "sessions": [], "count": 0,
        "note": "mozaiks has no Ask (general) mode: there are no general chats",
    })))
}

/// Body of `POST /mozaiksai/api/user-input/submit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserInput {
    input_request_id: String,
    user_input: String,
}

fn not_pending(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotYourTurn,
        format!("input request `{id}` is not pending (unknown, answered, or not this caller's)"),
    )
}

/// `POST /mozaiksai/api/user-input/submit`: answers the input request the
/// run waits on; 404 when it is not that one.
pub(crate) async fn submit_input(
    State(web): State<WebState>,
    caller: Caller,
    body: Result<Json<UserInput>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    let id = body.input_request_id;
    let (chat_id, seq) = ids::parse_input_request_id(&id).ok_or_else(|| not_pending(&id))?;
    caller
        .chat(&web.chats, chat_id)
        .await
        .map_err(|_| not_pending(&id))?;
    let events = web.store.events(chat_id, 0, None).await?;
    let waiting_at = events.iter().rev().find_map(|e| match e.event {
        Event::RunStatus { status, .. } => Some((status, e.seq)),
        _ => None,
    });
    let pending = matches!(waiting_at, Some((crate::event::RunStatus::WaitingForUser | crate::event::RunStatus::WaitingForSpeaker, Some(at))) if at.to_string() == seq);
    if !pending {
        return Err(not_pending(&id));
    }
    web.chats
        .send(chat_id, RunInput::UserMessage(body.user_input))
        .await
        .map_err(|error| match error {
            // Answered a moment ago: the run has taken an input already.
            crate::orchestrator::ChatError::NotYourTurn { .. } => not_pending(&id),
            other => other.into(),
        })?;
    Ok(Json(json!({"status": "accepted", "input_request_id": id})))
}

/// Body of `POST /mozaiksai/api/ui-tool/submit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UiToolSubmit {
    event_id: String,
    response_data: Value,
}

/// `POST /mozaiksai/api/ui-tool/submit`: answers a UI tool; 404 when it is
/// unknown or already done.
pub(crate) async fn submit_ui_tool(
    State(web): State<WebState>,
    caller: Caller,
    body: Result<Json<UiToolSubmit>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    let not_open = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UiRequestNotOpen,
            format!(
                "UI tool `{}` is not waiting (unknown, already answered, timed out or cancelled)",
                body.event_id
            ),
        )
    };
    let (chat_id, request_id) = ids::parse_ui_event_id(&body.event_id).ok_or_else(not_open)?;
    caller
        .chat(&web.chats, chat_id)
        .await
        .map_err(|_| not_open())?;
    web.chats
        .answer_ui(chat_id, request_id, body.response_data.clone())
        .await
        .map_err(|error| match error {
            crate::orchestrator::ChatError::UiRequestNotOpen(_) => not_open(),
            other => other.into(),
        })?;
    Ok(Json(
        json!({"status": "success", "event_id": body.event_id}),
    ))
}

/// Body of `POST /mozaiksai/chat/{app_id}/{chat_id}/{user_id}/input`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChatInput {
    message: String,
    workflow_name: Option<String>,
}

/// `POST /mozaiksai/chat/{app_id}/{chat_id}/{user_id}/input`: the user's
/// text for a run that waits for it. Unlike MozaiksAI the call does not
/// block until the run ends: the run's events arrive on the socket.
pub(crate) async fn chat_input(
    State(web): State<WebState>,
    caller: Caller,
    Path((app_id, chat_id, user_id)): Path<(String, String, String)>,
    body: Result<Json<ChatInput>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(body) = body?;
    let chat = caller.chat(&web.chats, &chat_id).await?;
    let matches = chat.app_id == app_id
        && chat.user_id == user_id
        && body
            .workflow_name
            .as_ref()
            .is_none_or(|w| *w == chat.workflow);
    if !matches {
        return Err(crate::orchestrator::ChatError::ChatNotFound(chat_id).into());
    }
    web.chats
        .send(&chat_id, RunInput::UserMessage(body.message))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "accepted", "transport": "websocket"})),
    ))
}

/// `GET /mozaiksai/api/health`: the store's health, as `/health/ready`
/// sees it.
pub(crate) async fn health(State(web): State<WebState>) -> (StatusCode, Json<Value>) {
    let readiness = web.health.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let body = json!({
        "status": if readiness.ready { "healthy" } else { "unhealthy" },
        "store": serde_json::to_value(&readiness).unwrap_or_default(),
        "workflows": web.workflows.snapshot().len(),
    });
    (status, Json(body))
}

/// A MozaiksAI route mozaiks has no counterpart for: 501 `NOT_SUPPORTED`
/// saying why (docs/protocol.md lists them).
pub(crate) fn unsupported(route: &'static str, why: &'static str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        ErrorCode::NotSupported,
        format!("MozaiksAI's `{route}` is not supported by mozaiks: {why}"),
    )
}
