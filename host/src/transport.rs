//! HTTP and WebSocket transport (axum). [`router`] builds every route;
//! docs/protocol.md describes them and the event protocol.

pub mod error;
pub mod routes;
pub mod ws;

use axum::Router;
use axum::routing::{get, post};

use crate::orchestrator::Orchestrator;

/// The API's routes over `orchestrator`.
pub fn router(orchestrator: Orchestrator) -> Router {
    Router::new()
        .route("/health", get(routes::health))
        .route("/health/ready", get(routes::ready))
        .route("/health/active-runs", get(routes::active_runs))
        .route("/api/workflows", get(routes::list_workflows))
        .route(
            "/api/chats",
            post(routes::start_chat).get(routes::list_chats),
        )
        .route("/api/chats/{chat_id}", get(routes::get_chat))
        .route("/api/chats/{chat_id}/events", get(routes::get_events))
        .route("/api/chats/{chat_id}/context", get(routes::get_context))
        .route("/api/chats/{chat_id}/messages", post(routes::post_message))
        .route(
            "/api/chats/{chat_id}/ui/{request_id}",
            post(routes::answer_ui),
        )
        .route("/api/chats/{chat_id}/continue", post(routes::continue_chat))
        .route("/api/chats/{chat_id}/end", post(routes::end_chat))
        .route("/api/chats/{chat_id}/ws", get(ws::chat_socket))
        .route("/ws/chat", get(ws::compat_socket))
        .route(
            "/ws/{workflow}/{app_id}/{chat_id}/{user_id}",
            get(ws::mozaiksai_socket),
        )
        .with_state(orchestrator)
}
