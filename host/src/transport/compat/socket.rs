//! MozaiksAI's chat socket, `/mozaiksai/ws/{workflow}/{app_id}/{chat_id}/{user_id}`:
//! `chat_meta` first, the transcript replayed (`replay: true`) with the
//! requests still waiting for the user and a `chat.resume_boundary`, then
//! the chat's events live as MozaiksAI envelopes ([`super::events`]), and
//! MozaiksAI's client messages ([`super::client`]) applied to the run.
//! `client.resume {lastClientIndex}` replays every event after that `seq`.

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde_json::{Value, json};

use super::client::{self, ClientMessage};
use super::events::{Translator, WorkflowFacts, rfc3339};
use super::{ids, meta};
use crate::event::{Envelope, ErrorCode, Event};
use crate::orchestrator::{ChatError, LiveChat, RunInput, RunPosition, closed};
use crate::transport::auth::Caller;
use crate::transport::error::ApiError;
use crate::transport::state::WebState;
use crate::transport::ws::{ClientGone, MessageLimit, close_for, limited};

/// `GET /mozaiksai/ws/{workflow}/{app_id}/{chat_id}/{user_id}`. A chat that
/// does not exist, is not the caller's, or is not that workflow's, app's and
/// user's is refused as MozaiksAI refuses it: the socket is accepted, gets
/// one `chat.error` and is closed with 1008. Without an upgrade: 400
/// `WEBSOCKET_REQUIRED`.
pub(crate) async fn chat_socket(
    State(web): State<WebState>,
    caller: Caller,
    Path((workflow, app_id, chat_id, user_id)): Path<(String, String, String, String)>,
    limit: Option<Extension<MessageLimit>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Ok(upgrade) = upgrade else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::WebsocketRequired,
            "this endpoint is a WebSocket: connect with a WebSocket client (Upgrade: websocket)",
        ));
    };
    let upgrade = limited(upgrade, limit);
    let refusal = match caller.chat(&web.chats, &chat_id).await {
        Ok(chat)
            if chat.workflow == workflow && chat.app_id == app_id && chat.user_id == user_id =>
        {
            None
        }
        Ok(_) | Err(_) => Some(format!(
            "Chat not found: no `{workflow}` chat `{chat_id}` of app `{app_id}` and user `{user_id}`; start one with POST /api/chats/{app_id}/{workflow}/start"
        )),
    };
    if let Some(message) = refusal {
        return Ok(upgrade
            .on_upgrade(move |mut socket| async move {
                let error = json!({"type": "chat.error", "timestamp": rfc3339(now_ms()),
                    "data": {"kind": "error", "message": message, "error_code": "CHAT_NOT_FOUND"}});
                let _ = socket.send(Message::Text(error.to_string().into())).await;
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: 1008,
                        reason: "Chat not found".into(),
                    })))
                    .await;
            })
            .into_response());
    }
    Ok(upgrade
        .on_upgrade(move |socket| serve(socket, web, chat_id))
        .into_response())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a session sends: a JSON frame, or a close.
#[derive(Debug)]
enum Out {
    Frame(Value),
    Close(u16, &'static str),
}

async fn serve(socket: WebSocket, web: WebState, chat_id: String) {
    let (sink, stream) = socket.split();
    let frames = stream.filter_map(|message| async move {
        match message {
            Ok(Message::Text(text)) => Some(Ok(text.to_string())),
            Ok(Message::Close(_)) => Some(Err(ClientGone::Closed)),
            Err(error) => Some(Err(close_for(&error))),
            Ok(_) => None,
        }
    });
    let sink = sink.with(|out: Out| async move {
        Ok::<_, axum::Error>(match out {
            Out::Frame(value) => Message::Text(value.to_string().into()),
            Out::Close(code, reason) => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        })
    });
    let slot = web.sockets.open();
    let ended = session(Box::pin(sink), Box::pin(frames), &web, &chat_id).await;
    drop(slot);
    web.chats.forget_if_unused(&chat_id);
    if let Err(error) = ended {
        tracing::debug!(chat_id, %error, "MozaiksAI socket closed");
    }
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("client disconnected")]
    Disconnected,
    #[error(transparent)]
    Chat(#[from] ChatError),
}

async fn send<O: Sink<Out> + Unpin>(out: &mut O, frame: Value) -> Result<(), SessionError> {
    out.send(Out::Frame(frame))
        .await
        .map_err(|_| SessionError::Disconnected)
}

/// A reply to this client only (no `seq`).
fn reply(kind: &str, data: Value) -> Value {
    let mut data = data;
    if let Some(fields) = data.as_object_mut() {
        let bare = kind.strip_prefix("chat.").unwrap_or(kind);
        fields.insert("kind".to_owned(), json!(bare));
    }
    json!({"type": kind, "data": data, "timestamp": rfc3339(now_ms())})
}

async fn session<O, I>(
    mut out: O,
    mut input: I,
    web: &WebState,
    chat_id: &str,
) -> Result<(), SessionError>
where
    O: Sink<Out> + Unpin,
    I: Stream<Item = Result<String, ClientGone>> + Unpin,
{
    let orchestrator = &web.chats;
    let live = orchestrator.live(chat_id);
    // Follow before reading the log: nothing falls in between.
    let mut feed = live.follow();
    let chat = orchestrator.chat(chat_id).await?;
    let backlog = web
        .store
        .events(chat_id, 0, None)
        .await
        .map_err(ChatError::from)?;
    let workflow = web.workflows.get(&chat.workflow);
    let facts = meta::facts(&chat.workflow, workflow.as_deref());
    let mut meta = meta::chat_meta(&chat, &backlog);
    meta["kind"] = json!("chat_meta");
    send(
        &mut out,
        json!({"type": "chat_meta", "data": meta, "timestamp": rfc3339(now_ms())}),
    )
    .await?;
    // Auto resume: the transcript, then what still waits for the user.
    let mut translator = Translator::new(chat_id, facts.clone());
    let mut messages = Vec::new();
    for envelope in &backlog {
        for frame in translator.translate(envelope, true) {
            if frame["type"] == "chat.text" {
                messages.push(frame);
            }
        }
    }
    let count = messages.len();
    for frame in messages {
        send(&mut out, frame).await?;
    }
    let waiting = waiting_frames(&facts, chat_id, &backlog, &live, None);
    for frame in waiting {
        send(&mut out, frame).await?;
    }
    feed.sent(backlog.last().and_then(|e| e.seq).unwrap_or(0));
    send(
        &mut out,
        boundary(
            &chat.chat_id,
            count,
            feed.last_sent(),
            "auto",
            json!({"reason": "connect"}),
        ),
    )
    .await?;
    let mut lifecycle = orchestrator.lifecycle();
    loop {
        tokio::select! {
            () = closed(&mut lifecycle) => {
                for envelope in feed.queued() {
                    for frame in translator.translate(&envelope, false) {
                        send(&mut out, frame).await?;
                    }
                }
                send(&mut out, reply("chat.error", json!({
                    "message": "the server is restarting; reconnect and send client.resume with the last seq you saw",
                    "error_code": ErrorCode::ShuttingDown, "last_sequence": feed.last_sent(),
                }))).await?;
                let _ = out.send(Out::Close(1012, "server shutting down")).await;
                return Ok(());
            }
            events = feed.next() => match events.map_err(ChatError::from)? {
                Some(events) => {
                    for envelope in &events {
                        for frame in translator.translate(envelope, false) {
                            send(&mut out, frame).await?;
                        }
                    }
                }
                None => return Ok(()),
            },
            frame = input.next() => {
                let text = match frame {
                    Some(Ok(text)) => text,
                    Some(Err(ClientGone::Violation { code, .. })) => {
                        let _ = out.send(Out::Close(code, "protocol violation")).await;
                        return Err(SessionError::Disconnected);
                    }
                    Some(Err(ClientGone::Closed)) | None => return Err(SessionError::Disconnected),
                };
                let replies = match client::decode(&text, chat_id) {
                    Err(refusal) => vec![reply("chat.error", json!({
                        "message": refusal.message, "error_code": refusal.code,
                    }))],
                    Ok(ClientMessage::Resume { last_index }) => {
                        resume(web, &chat.chat_id, &facts, &live, last_index).await?
                    }
                    Ok(message) => apply(web, chat_id, &translator, message).await,
                };
                for frame in replies {
                    send(&mut out, frame).await?;
                }
            }
        }
    }
}

/// The frames of what waits for the user now: each UI request still open
/// and the pending input request, of those with `seq <= up_to` when given
/// (later ones are in the replay itself).
fn waiting_frames(
    facts: &WorkflowFacts,
    chat_id: &str,
    log: &[Envelope],
    live: &LiveChat,
    up_to: Option<u64>,
) -> Vec<Value> {
    let position = RunPosition::of(log);
    let seen = |envelope: &Envelope| up_to.is_none_or(|up_to| envelope.seq.unwrap_or(0) <= up_to);
    let mut replayer = Translator::new(chat_id, facts.clone());
    let mut frames = Vec::new();
    let mut input = Vec::new();
    for envelope in log {
        let translated = replayer.translate(envelope, true);
        match &envelope.event {
            Event::UiRequest { request_id, .. }
                if seen(envelope)
                    && position.open_ui_requests.contains(request_id)
                    && live.is_ui_request_open(request_id) =>
            {
                frames.extend(translated);
            }
            Event::RunStatus { .. } if seen(envelope) => {
                input = translated
                    .into_iter()
                    .filter(|frame| frame["type"] == "chat.input_request")
                    .collect();
            }
            Event::RunStatus { .. } => input.clear(),
            _ => {}
        }
    }
    if replayer.pending_input().is_some() {
        frames.extend(input);
    }
    frames
}

/// `chat.resume_boundary` after a replay.
fn boundary(chat_id: &str, replayed: usize, last_seq: u64, mode: &str, context: Value) -> Value {
    reply(
        "chat.resume_boundary",
        json!({
            "chat_id": chat_id, "replayed_messages": replayed, "message_count": replayed,
            "last_message_index": last_seq, "last_sequence": last_seq, "resume_mode": mode,
            "resume_context": context,
        }),
    )
}

/// `client.resume`: every event after `last_index` (a `seq`), replayed;
/// the UI requests and the input request seen before it that still wait,
/// sent again; then the boundary.
async fn resume(
    web: &WebState,
    chat_id: &str,
    facts: &WorkflowFacts,
    live: &LiveChat,
    last_index: i64,
) -> Result<Vec<Value>, SessionError> {
    let after = u64::try_from(last_index).unwrap_or(0);
    let log = web
        .store
        .events(chat_id, 0, None)
        .await
        .map_err(ChatError::from)?;
    let mut translator = Translator::new(chat_id, facts.clone());
    let mut frames = Vec::new();
    for envelope in &log {
        let translated = translator.translate(envelope, true);
        if envelope.seq.unwrap_or(0) > after {
            frames.extend(translated);
        }
    }
    let replayed = frames.len();
    frames.extend(waiting_frames(facts, chat_id, &log, live, Some(after)));
    let last_seq = log.last().and_then(|e| e.seq).unwrap_or(0);
    frames.push(boundary(
        chat_id,
        replayed,
        last_seq,
        "client",
        json!({"reason": "client_resume", "last_client_index": last_index}),
    ));
    Ok(frames)
}

/// Applies a user input or a UI tool answer; the replies MozaiksAI gives.
async fn apply(
    web: &WebState,
    chat_id: &str,
    translator: &Translator,
    message: ClientMessage,
) -> Vec<Value> {
    match message {
        ClientMessage::Submit { text, request_id } => {
            let Some(request_id) = request_id else {
                return match web.chats.send(chat_id, RunInput::UserMessage(text)).await {
                    Ok(()) => vec![reply(
                        "chat.input_ack",
                        json!({"chat_id": chat_id, "status": "accepted"}),
                    )],
                    Err(error) => vec![chat_error(&error, "USER_MESSAGE_FAILED")],
                };
            };
            let pending = translator.pending_input() == Some(request_id.as_str());
            let result = if pending {
                web.chats
                    .send(chat_id, RunInput::UserMessage(text))
                    .await
                    .map_err(|e| (e.code().as_str().to_owned(), e.to_string()))
            } else {
                Err((
                    "INPUT_REQUEST_NOT_PENDING".to_owned(),
                    format!("input request `{request_id}` is not the one the run waits on"),
                ))
            };
            match result {
                Ok(()) => vec![
                    reply(
                        "ack.input",
                        json!({"input_request_id": request_id, "status": "accepted"}),
                    ),
                    reply(
                        "chat.input_ack",
                        json!({"request_id": request_id, "corr": request_id, "status": "accepted"}),
                    ),
                ],
                Err((code, message)) => vec![reply(
                    "ack.input",
                    json!({"input_request_id": request_id, "status": "rejected",
                           "error_code": code, "message": message}),
                )],
            }
        }
        ClientMessage::UiToolResponse { event_id, response } => {
            let answered = match ids::parse_ui_event_id(&event_id) {
                Some((chat, request_id)) if chat == chat_id => web
                    .chats
                    .answer_ui(chat_id, request_id, response)
                    .await
                    .map_err(|e| (e.code().as_str().to_owned(), e.to_string())),
                _ => Err((
                    ErrorCode::UiRequestNotOpen.as_str().to_owned(),
                    format!("`{event_id}` is not a UI tool of this chat"),
                )),
            };
            match answered {
                Ok(()) => vec![reply(
                    "ack.ui_tool_response",
                    json!({"eventId": event_id, "status": "accepted"}),
                )],
                Err((code, message)) => vec![reply(
                    "ack.ui_tool_response",
                    json!({"eventId": event_id, "status": "rejected", "error_code": code, "message": message}),
                )],
            }
        }
        ClientMessage::Resume { .. } => Vec::new(),
    }
}

/// A `chat.error` for a refused input, with the native code and message.
fn chat_error(error: &ChatError, fallback: &str) -> Value {
    let code = match error {
        ChatError::Store(_) => fallback.to_owned(),
        other => other.code().as_str().to_owned(),
    };
    reply(
        "chat.error",
        json!({"message": error.to_string(), "error_code": code}),
    )
}
