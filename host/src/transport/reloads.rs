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
use crate::event::ErrorCode;
use crate::orchestrator::Orchestrator;
use crate::orchestrator::drain::closed;

/// `GET /api/plugins`: every plugin folder, with the version served, when
/// it loaded, its functions and its last error.
pub(crate) async fn list_plugins(State(orchestrator): State<Orchestrator>) -> Json<Value> {
    let snapshot = orchestrator.plugins().snapshot();
    let plugins: Vec<Value> = snapshot.slots().map(|slot| slot.to_json()).collect();
    Json(json!({ "plugins": plugins }))
}

/// `GET /api/reloads`: the last reload events, oldest first.
pub(crate) async fn list_reloads(State(orchestrator): State<Orchestrator>) -> Json<Value> {
    Json(json!({ "reloads": orchestrator.reloads().recent() }))
}

/// `GET /api/events/ws`: reload events as they happen.
pub(crate) async fn events_socket(
    State(orchestrator): State<Orchestrator>,
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
        .on_upgrade(move |socket| forward_reloads(socket, orchestrator))
        .into_response())
}

async fn forward_reloads(mut socket: WebSocket, orchestrator: Orchestrator) {
    let mut reloads = orchestrator.reloads().subscribe();
    let hello =
        json!({"type": "hello", "protocol": crate::event::PROTOCOL_VERSION, "stream": "reloads"});
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut lifecycle = orchestrator.lifecycle();
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
