//! The axum router: routes, handlers and the server-sent event body.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::reply::{Frame, Outcome, error_body};
use crate::{ChatCall, MODEL_ID, Shared, validate};

/// The fake's routes, sharing `shared`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .fallback(not_found)
        .with_state(shared)
}

async fn chat_completions(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let call = ChatCall::new(body);
    shared.record(call.clone());
    if let Err(message) = validate::check(&call.body) {
        return error_response(400, &message);
    }

    let reply = shared.respond(&call);
    for gate in reply.gates() {
        gate.opened().await;
    }
    let (delay, outcome) = reply.resolve();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let answer = match outcome {
        Outcome::Error {
            status,
            message,
            retry_after,
        } => {
            let mut response = error_response(status, &message);
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from(secs));
            }
            return response;
        }
        Outcome::Answer(answer) => answer,
    };

    let frame = Frame {
        id: format!("chatcmpl-fake-{}", shared.next_id()),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: call.model().to_owned(),
        call_ids: (0..answer.tool_call_count())
            .map(|_| format!("call_{}", shared.next_id()))
            .collect(),
        prompt_tokens: call.prompt_tokens(),
    };

    if call.is_stream() {
        let events = frame.stream_events(&answer, call.wants_usage());
        sse_response(events)
    } else {
        let (wait, body) = frame.completion(&answer);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        axum::Json(body).into_response()
    }
}

/// A `text/event-stream` response that writes each event after its pause,
/// one body frame per event (as a real server flushes each chunk).
fn sse_response(events: Vec<(Duration, String)>) -> Response {
    let queue: VecDeque<(Duration, String)> = events.into();
    let stream = futures_util::stream::unfold(queue, |mut queue| async move {
        let (gap, event) = queue.pop_front()?;
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(event)), queue))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn models() -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "mozaiks-fake-llm"}],
    }))
    .into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error_response(404, &format!("Invalid URL ({method} {uri})"))
}

/// An error status with OpenAI's error body. A status outside 100..=999
/// becomes 500, so a typo in a test still yields an error.
fn error_response(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(error_body(code.as_u16(), message))).into_response()
}
