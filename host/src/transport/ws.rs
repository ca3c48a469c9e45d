//! The WebSocket of a chat: every event as it happens, what a reconnecting
//! client missed (by sequence number), the UI requests still open, and the
//! client's messages (user text, UI answers, speaker picks, continue, end).
//!
//! The session loop is generic over a `Sink`/`Stream` of text frames so the
//! protocol does not depend on axum.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::auth::Caller;
use super::error::ApiError;
use super::state::WebState;
use crate::event::{Envelope, ErrorCode, Event, PROTOCOL_VERSION};
use crate::orchestrator::{ChatError, Orchestrator, RunInput, RunPosition, closed};

/// The largest message a client may send on a socket
/// (`MOZAIKS_MAX_BODY_BYTES`, the HTTP body cap); see [`limited`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageLimit(pub usize);

/// `upgrade` with the message and frame size capped: a bigger frame is
/// refused from its header, before its payload is read, and the socket is
/// closed with 1009 ([`close_for`]). Without the layer that sets it
/// ([`super::app`]) the default cap applies.
pub(crate) fn limited(
    upgrade: WebSocketUpgrade,
    limit: Option<Extension<MessageLimit>>,
) -> WebSocketUpgrade {
    let max = limit.map_or(super::DEFAULT_MAX_BODY_BYTES, |Extension(l)| l.0);
    upgrade.max_message_size(max).max_frame_size(max)
}

/// Why a client's frames stopped coming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientGone {
    /// It closed the socket or the connection dropped.
    Closed,
    /// It broke a rule: the socket is closed with this code and reason
    /// (RFC 6455 §7.4.1).
    Violation {
        /// 1009 (too big), 1007 (invalid UTF-8) or 1002 (protocol error).
        code: u16,
        /// Said in the close frame.
        reason: String,
    },
}

/// The close a client's read error calls for: 1009 for a message or
/// frame over the cap, 1007 for invalid UTF-8 in a text message, 1002 for
/// any other protocol violation (such as a control frame over 125 bytes);
/// [`ClientGone::Closed`] when the connection itself failed.
pub(crate) fn close_for(error: &axum::Error) -> ClientGone {
    use std::error::Error as _;
    let violation = |code: u16, reason: &str| ClientGone::Violation {
        code,
        // A close reason is at most 123 bytes.
        reason: reason.chars().take(120).collect(),
    };
    match error
        .source()
        .and_then(|s| s.downcast_ref::<tungstenite::Error>())
    {
        Some(tungstenite::Error::Capacity(_)) => {
            violation(1009, "message too big (MOZAIKS_MAX_BODY_BYTES)")
        }
        Some(tungstenite::Error::Utf8(_)) => violation(1007, "invalid UTF-8 in a text message"),
        Some(tungstenite::Error::Protocol(protocol)) => violation(1002, &protocol.to_string()),
        _ => ClientGone::Closed,
    }
}

/// The axum close frame of a violation.
fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code,
        reason: reason.to_owned().into(),
    }))
}

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum ClientMessage {
    /// The user says something.
    UserMessage {
        /// The text.
        text: String,
    },
    /// Answer to a UI request.
    UiResponse {
        /// The request.
        request_id: String,
        /// The component's answer.
        answer: Value,
    },
    /// ManualPattern: the next speaker.
    SelectSpeaker {
        /// An agent, or `user`.
        agent: String,
    },
    /// Retry a run interrupted by an error.
    Continue,
    /// End the chat.
    EndChat,
    /// Keep-alive; answered with `pong`.
    Ping,
}

/// Query of the chat WebSocket.
#[derive(Debug, Deserialize)]
pub(crate) struct WsQuery {
    /// Replay events after this sequence number (0: all).
    #[serde(default)]
    after: u64,
}

fn needs_upgrade() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        ErrorCode::WebsocketRequired,
        "this endpoint is a WebSocket: connect with a WebSocket client (Upgrade: websocket)",
    )
}

/// `GET /api/chats/{id}/ws?after=N`
pub(crate) async fn chat_socket(
    State(web): State<WebState>,
    caller: Caller,
    Path(chat_id): Path<String>,
    query: Result<Query<WsQuery>, QueryRejection>,
    limit: Option<Extension<MessageLimit>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    caller.chat(&web.chats, &chat_id).await?;
    let upgrade = limited(upgrade.map_err(|_| needs_upgrade())?, limit);
    Ok(upgrade
        .on_upgrade(move |socket| serve_socket(socket, web, chat_id, query.after))
        .into_response())
}

/// `GET /ws/{workflow_name}/{app_id}/{chat_id}/{user_id}`: MozaiksAI's
/// socket path. The chat must exist and belong to that workflow, app and
/// user.
pub(crate) async fn mozaiksai_socket(
    State(web): State<WebState>,
    caller: Caller,
    Path((workflow, app_id, chat_id, user_id)): Path<(String, String, String, String)>,
    query: Result<Query<WsQuery>, QueryRejection>,
    limit: Option<Extension<MessageLimit>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let chat = caller.chat(&web.chats, &chat_id).await?;
    if chat.workflow != workflow || chat.app_id != app_id || chat.user_id != user_id {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            ErrorCode::ChatNotFound,
            format!(
                "chat `{chat_id}` is not a `{workflow}` chat of app `{app_id}` and user `{user_id}`"
            ),
        ));
    }
    let upgrade = limited(upgrade.map_err(|_| needs_upgrade())?, limit);
    Ok(upgrade
        .on_upgrade(move |socket| serve_socket(socket, web, chat_id, query.after))
        .into_response())
}

/// `GET /ws/chat?chat_id=…&workflow_name=…&after=N`: MozaiksAI's form. A
/// missing parameter is answered with `WS_SESSION_DETERMINATION_FAILED`
/// (as a WebSocket message then a close, or as JSON without an upgrade).
pub(crate) async fn compat_socket(
    State(web): State<WebState>,
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
    limit: Option<Extension<MessageLimit>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = upgrade.ok().map(|u| limited(u, limit));
    let chat_id = query.get("chat_id").filter(|s| !s.is_empty()).cloned();
    let workflow = query
        .get("workflow_name")
        .filter(|s| !s.is_empty())
        .cloned();
    let after = match query.get("after").map(|a| a.parse::<u64>()) {
        None => 0,
        Some(Ok(after)) => after,
        Some(Err(_)) => {
            return ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                ErrorCode::BadQuery,
                "`after` must be a sequence number (0 or more)",
            )
            .into_response();
        }
    };
    let problem = match (&chat_id, &workflow) {
        (None, None) => Some("both chat_id and workflow_name are missing".to_owned()),
        (None, Some(_)) => Some("chat_id is missing".to_owned()),
        (Some(_), None) => Some("workflow_name is missing".to_owned()),
        (Some(chat), Some(workflow)) => match web.chats.chat(chat).await {
            Ok(record) if !caller.may_see(&record) => {
                Some(ChatError::ChatNotFound(chat.clone()).to_string())
            }
            Ok(record) if record.workflow != *workflow => Some(format!(
                "chat `{chat}` runs workflow `{}`, not `{workflow}`",
                record.workflow
            )),
            Ok(_) => None,
            Err(error) => Some(error.to_string()),
        },
    };
    let message = problem.map(|p| {
        format!(
            "{p}; connect to /ws/chat?chat_id=<id>&workflow_name=<name> (or /api/chats/<id>/ws)"
        )
    });
    let Some(upgrade) = upgrade else {
        return match message {
            Some(message) => ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                ErrorCode::WsSessionDeterminationFailed,
                message,
            ),
            None => needs_upgrade(),
        }
        .into_response();
    };
    match (message, chat_id) {
        (None, Some(chat_id)) => upgrade
            .on_upgrade(move |socket| serve_socket(socket, web, chat_id, after))
            .into_response(),
        (message, _) => {
            let message = message.unwrap_or_default();
            upgrade
                .on_upgrade(move |mut socket| async move {
                    let error = json!({"type": "error", "code": ErrorCode::WsSessionDeterminationFailed, "message": message});
                    let _ = socket.send(Message::Text(error.to_string().into())).await;
                    let _ = socket
                        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                            code: 1008,
                            reason: ErrorCode::WsSessionDeterminationFailed.as_str().into(),
                        })))
                        .await;
                })
                .into_response()
        }
    }
}

async fn serve_socket(socket: WebSocket, web: WebState, chat_id: String, after: u64) {
    let (sink, stream) = socket.split();
    let frames = stream.filter_map(|message| async move {
        match message {
            Ok(Message::Text(text)) => Some(Ok(text.to_string())),
            Ok(Message::Close(_)) => Some(Err(ClientGone::Closed)),
            Err(error) => Some(Err(close_for(&error))),
            Ok(_) => None,
        }
    });
    let sink = sink.with(|text: String| async move {
        Ok::<_, axum::Error>(match parse_close(&text) {
            Some((code, reason)) => close_frame(code, reason),
            None => Message::Text(text.into()),
        })
    });
    let slot = web.sockets.open();
    let span = tracing::info_span!("ws", chat_id = chat_id.as_str());
    let ended = tracing::Instrument::instrument(
        session(
            Box::pin(sink),
            Box::pin(frames),
            web.clone(),
            &chat_id,
            after,
        ),
        span,
    )
    .await;
    drop(slot);
    // The last client of a chat whose run was unloaded takes the chat out
    // of memory.
    web.chats.forget_if_unused(&chat_id);
    if let Err(error) = ended {
        tracing::debug!(chat_id, %error, "websocket closed");
    }
}

/// What [`session`] sends, after the `server_shutdown` message, to close
/// the socket with code 1012 (service restart); never a JSON message.
pub(crate) const CLOSE_FOR_RESTART: &str = "\u{0}close:1012:server shutting down";

/// What [`session`] sends to close the socket with `code`: never a JSON
/// message (it starts with a NUL); the transport turns it into a close
/// frame ([`parse_close`]).
pub(crate) fn close_text(code: u16, reason: &str) -> String {
    format!("\u{0}close:{code}:{reason}")
}

/// The code and reason of a [`close_text`].
pub(crate) fn parse_close(text: &str) -> Option<(u16, &str)> {
    let rest = text.strip_prefix("\u{0}close:")?;
    let (code, reason) = rest.split_once(':')?;
    Some((code.parse().ok()?, reason))
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    /// The client went away or the socket failed.
    #[error("client disconnected")]
    Disconnected,
    /// The store failed while replaying.
    #[error(transparent)]
    Chat(#[from] ChatError),
}

/// Runs one client's session until it disconnects: hello, replay after
/// `after`, open UI requests again, then live events and client messages.
pub(crate) async fn session<O, I>(
    mut out: O,
    mut input: I,
    web: WebState,
    chat_id: &str,
    after: u64,
) -> Result<(), SessionError>
where
    O: Sink<String> + Unpin,
    I: Stream<Item = Result<String, ClientGone>> + Unpin,
{
    let orchestrator = &web.chats;
    let live = orchestrator.live(chat_id);
    // Follow before reading the backlog: nothing falls in between.
    let mut feed = live.follow();
    let mut reloads = web.reloads.subscribe();
    let chat = orchestrator.chat(chat_id).await?;
    let backlog = web
        .store
        .events(chat_id, 0, None)
        .await
        .map_err(ChatError::from)?;
    let position = RunPosition::of(&backlog);
    let hello = json!({
        "type": "hello", "protocol": PROTOCOL_VERSION, "chat_id": chat_id,
        "workflow": chat.workflow, "cache_seed": chat.cache_seed,
        "last_seq": backlog.last().and_then(|e| e.seq).unwrap_or(chat.last_seq), "status": live.status().or_else(|| last_status(&backlog)),
    });
    send(&mut out, hello.to_string()).await?;
    feed.sent(after);
    for envelope in backlog.iter().filter(|e| e.seq.unwrap_or(0) > after) {
        send_envelope(&mut out, envelope).await?;
        feed.sent(envelope.seq.unwrap_or(0));
    }
    // UI requests still open that the client saw before it dropped: ask again.
    for envelope in &backlog {
        if let Event::UiRequest { request_id, .. } = &envelope.event
            && envelope.seq.unwrap_or(0) <= after
            && position.open_ui_requests.contains(request_id)
            && live.is_ui_request_open(request_id)
        {
            send_envelope(&mut out, envelope).await?;
        }
    }
    let mut lifecycle = orchestrator.lifecycle();
    loop {
        tokio::select! {
            () = closed(&mut lifecycle) => {
                // Runs have stopped: whatever is still queued for this
                // client goes first, then the goodbye.
                for envelope in feed.queued() {
                    send_envelope(&mut out, &envelope).await?;
                }
                let goodbye = json!({
                    "type": "server_shutdown", "last_seq": feed.last_sent(),
                    "message": "the server is restarting; reconnect with ?after=<last seq seen> and the chat continues",
                });
                send(&mut out, goodbye.to_string()).await?;
                send(&mut out, CLOSE_FOR_RESTART.to_owned()).await?;
                return Ok(());
            }
            events = feed.next() => match events.map_err(ChatError::from)? {
                Some(events) => {
                    for envelope in &events {
                        send_envelope(&mut out, envelope).await?;
                    }
                }
                None => return Ok(()),
            },
            // Server-wide reload events, without a seq (they are not part of
            // the chat); a client that lags simply misses some.
            reload = reloads.recv() => match reload {
                Ok(event) => send(&mut out, serde_json::to_string(&event).unwrap_or_default()).await?,
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Ok(()),
            },
            frame = input.next() => {
                let text = match frame {
                    Some(Ok(text)) => text,
                    Some(Err(ClientGone::Violation { code, reason })) => {
                        tracing::info!(code, reason, "closing a socket whose client broke the protocol");
                        let _ = out.send(close_text(code, &reason)).await;
                        return Err(SessionError::Disconnected);
                    }
                    Some(Err(ClientGone::Closed)) | None => return Err(SessionError::Disconnected),
                };
                if let Some(reply) = handle_client_message(orchestrator, chat_id, &text).await {
                    send(&mut out, reply.to_string()).await?;
                }
            }
        }
    }
}

/// The last run status in the log (for chats whose run is not in memory).
fn last_status(events: &[Envelope]) -> Option<crate::event::RunStatus> {
    events.iter().rev().find_map(|e| match e.event {
        Event::RunStatus { status, .. } => Some(status),
        _ => None,
    })
}

/// Applies one client message; returns what only this client is told.
async fn handle_client_message(
    orchestrator: &Orchestrator,
    chat_id: &str,
    text: &str,
) -> Option<Value> {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(message) => message,
        Err(error) => {
            return Some(json!({"type": "error", "code": ErrorCode::BadMessage,
                "message": format!("{error}; see docs/protocol.md for the client messages")}));
        }
    };
    let result = match message {
        ClientMessage::Ping => return Some(json!({"type": "pong"})),
        ClientMessage::UserMessage { text } => {
            orchestrator
                .send(chat_id, RunInput::UserMessage(text))
                .await
        }
        ClientMessage::SelectSpeaker { agent } => {
            orchestrator
                .send(chat_id, RunInput::SelectSpeaker(agent))
                .await
        }
        ClientMessage::Continue => orchestrator.send(chat_id, RunInput::Continue).await,
        ClientMessage::UiResponse { request_id, answer } => {
            orchestrator.answer_ui(chat_id, &request_id, answer).await
        }
        ClientMessage::EndChat => orchestrator.end_chat(chat_id).await,
    };
    result.err().map(|error| {
        let message = match &error {
            ChatError::Store(store) => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                tracing::error!(error_id = id, %store, chat_id, "store error on a client message");
                format!("internal error; the server log has it under error_id {id}")
            }
            other => other.to_string(),
        };
        let code = error.code();
        json!({"type": "error", "code": code, "message": message})
    })
}

async fn send_envelope<O: Sink<String> + Unpin>(
    out: &mut O,
    envelope: &Envelope,
) -> Result<(), SessionError> {
    let text = serde_json::to_string(envelope).unwrap_or_default();
    send(out, text).await
}

async fn send<O: Sink<String> + Unpin>(out: &mut O, text: String) -> Result<(), SessionError> {
    out.send(text).await.map_err(|_| SessionError::Disconnected)
}
