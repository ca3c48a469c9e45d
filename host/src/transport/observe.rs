//! What the transport tells operators: `GET /metrics`, `GET /health/live`,
//! and [`track`], the middleware that counts every request and runs it in
//! an `http` span (method, route and, on chat routes, `chat_id`) so its
//! logs can be found by chat.

use axum::Json;
use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tracing::Instrument as _;

use crate::telemetry::metrics;

/// `GET /metrics`: every metric in the Prometheus text format.
pub(crate) async fn metrics_text() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics().render(),
    )
}

/// `GET /health/live`: the process serves HTTP. Says nothing of the store
/// or the LLM (that is `/health/ready`), so an orchestrator restarts the
/// process only when it is wedged, not when the database is down.
pub(crate) async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The chat id in `/api/chats/{id}/...` or `/ws/{workflow}/{app}/{id}/{user}`.
fn chat_id_of(path: &str) -> Option<&str> {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next()) {
        (Some("api"), Some("chats")) => parts.next().filter(|id| !id.is_empty()),
        (Some("ws"), Some(workflow)) if workflow != "chat" => parts.nth(1),
        _ => None,
    }
}

/// Counts the request in `mozaiks_http_requests_total`, runs it in an
/// `http` span (`method`, `route`, `key_id` once [`super::auth::require`]
/// knows the key, `chat_id` on chat routes) and logs it when it is
/// answered: `request` with `status` and `duration_ms`, at `info` (probes
/// and `/metrics` at `debug`). A WebSocket's line comes at the upgrade.
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let span = tracing::info_span!(
        "http",
        method = %method,
        route = route.as_str(),
        chat_id = tracing::field::Empty,
        key_id = tracing::field::Empty,
    );
    if let Some(chat_id) = chat_id_of(request.uri().path()) {
        span.record("chat_id", chat_id);
    }
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    metrics().http_request(method.as_str(), &route, status);
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    span.in_scope(|| {
        // Probes and scrapes come every few seconds: at debug only.
        if is_probe(&path) {
            tracing::debug!(status, duration_ms, "request");
        } else {
            tracing::info!(status, duration_ms, "request");
        }
    });
    response
}

/// Paths polled by monitoring.
fn is_probe(path: &str) -> bool {
    matches!(
        path,
        "/health" | "/health/live" | "/health/ready" | "/metrics"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chat_id_is_read_from_chat_routes_only() {
        assert_eq!(chat_id_of("/api/chats/abc/events"), Some("abc"));
        assert_eq!(chat_id_of("/api/chats/abc"), Some("abc"));
        assert_eq!(chat_id_of("/api/chats"), None);
        assert_eq!(chat_id_of("/ws/PlanReview/app/abc/alice"), Some("abc"));
        assert_eq!(chat_id_of("/ws/chat"), None);
        assert_eq!(chat_id_of("/metrics"), None);
    }
}
