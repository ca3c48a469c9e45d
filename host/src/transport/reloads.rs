//! What hot reload shows: the plugins served (`GET /api/plugins`), the last
//! reload events (`GET /api/reloads`) and a server-wide WebSocket of reload
//! events (`GET /api/events/ws`) for developer front ends with no chat open.

use axum::Json;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::error::ApiError;
use super::state::WebState;
use crate::event::ErrorCode;
use crate::orchestrator::closed;

/// `GET /api/plugins`: every plugin folder, with the version served, when
/// it loaded, its functions and its last error.
pub(crate) async fn list_plugins(State(web): State<WebState>) -> Json<Value> {
    let snapshot = web.plugins.snapshot();
    let plugins: Vec<Value> = snapshot.slots().map(|slot| slot.to_json()).collect();
    Json(json!({ "plugins": plugins }))
}

/// `GET /api/reloads`: the last reload events, oldest first.
pub(crate) async fn list_reloads(State(web): State<WebState>) -> Json<Value> {
    Json(json!({ "reloads": web.reloads.recent() }))
}

/// `GET /api/events/ws`: reload events as they happen.
pub(crate) async fn events_socket(
    State(web): State<WebState>,
    limit: Option<axum::Extension<super::ws::MessageLimit>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map(|u| super::ws::limited(u, limit)).map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            ErrorCode::WebsocketRequired,
            "this endpoint is a WebSocket: connect with a WebSocket client (Upgrade: websocket)",
        )
    })?;
    Ok(upgrade
        .on_upgrade(move |socket| forward_reloads(socket, web))
        .into_response())
}

async fn forward_reloads(mut socket: WebSocket, web: WebState) {
    let mut reloads = web.reloads.subscribe();
    let hello =
        json!({"type": "hello", "protocol": crate::event::PROTOCOL_VERSION, "stream": "reloads"});
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut lifecycle = web.chats.lifecycle();
    loop {
        tokio::select! {
            // Shutdown: the client reconnects to the next server, as chat
            // sockets do.
            () = closed(&mut lifecycle) => {
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: close_code::RESTART,
                        reason: "the server is restarting".into(),
                    })))
                    .await;
                return;
            }
            reload = reloads.recv() => match reload {
                Ok(event) => {
                    let text = serde_json::to_string(&event).unwrap_or_default();
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            frame = socket.recv() => match frame {
                Some(Err(error)) => {
                    if let super::ws::ClientGone::Violation { code, reason } = super::ws::close_for(&error) {
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame { code, reason: reason.into() })))
                            .await;
                    }
                    return;
                }
                Some(Ok(Message::Close(_))) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
