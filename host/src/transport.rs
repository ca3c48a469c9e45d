//! HTTP and WebSocket transport (axum). [`router`] builds every route;
//! docs/protocol.md describes them and the event protocol.

pub mod auth;
pub mod console;
pub mod error;
pub mod observe;
pub mod reloads;
pub mod routes;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};

use crate::access::Access;
use crate::orchestrator::Orchestrator;

/// How the API is exposed: who may call it and from which origins.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Authentication and the API keys.
    pub access: Arc<Access>,
    /// Browser origins allowed (CORS); see [`auth::cors`].
    pub cors_origins: Vec<String>,
    /// Development mode (any origin when none is listed).
    pub development: bool,
    /// Largest request body.
    pub max_body_bytes: usize,
}

/// [`router`] with its middleware: request metrics and spans
/// ([`observe::track`]), authentication ([`auth::require`]), the body
/// limit, and CORS.
pub fn app(orchestrator: Orchestrator, options: &HttpOptions) -> Router {
    let app = router(orchestrator)
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&options.access),
            auth::require,
        ))
        .layer(middleware::from_fn(observe::track));
    match auth::cors(&options.cors_origins, options.development) {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

/// The API's routes over `orchestrator`.
pub fn router(orchestrator: Orchestrator) -> Router {
    Router::new()
        .route("/health", get(routes::health))
        .route("/health/live", get(observe::live))
        .route("/metrics", get(observe::metrics_text))
        .route("/health/ready", get(routes::ready))
        .route("/health/active-runs", get(routes::active_runs))
        .route("/api/workflows", get(routes::list_workflows))
        .route("/api/plugins", get(reloads::list_plugins))
        .route("/api/reloads", get(reloads::list_reloads))
        .route("/api/events/ws", get(reloads::events_socket))
        .route("/", get(console::index))
        .route("/console/{file}", get(console::asset))
        .route(
            "/api/workflows/{name}/components",
            get(console::list_components),
        )
        .route(
            "/api/workflows/{name}/components/{file}",
            get(console::component_file),
        )
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
