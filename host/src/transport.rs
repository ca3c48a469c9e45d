//! HTTP and WebSocket transport (axum). [`router`] builds every route;
//! docs/protocol.md describes them and the event protocol.

pub(crate) mod auth;
pub(crate) mod cluster;
pub(crate) mod compat;
pub(crate) mod console;
pub(crate) mod error;
pub(crate) mod observe;
pub(crate) mod reloads;
pub(crate) mod routes;
pub(crate) mod sockets;
pub(crate) mod state;
pub(crate) mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Extension, Router};

use crate::access::Access;
use crate::orchestrator::Orchestrator;
use crate::plugin_set::PluginSet;
use state::WebState;

/// Largest request body accepted: UI answers and messages are small; 2 MiB
/// is axum's own default, kept explicit so operators can see and change it.
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// How the API is exposed: who may call it and from which origins.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Authentication and the API keys.
    pub access: Arc<Access>,
    /// Browser origins allowed (CORS); see `auth::cors`.
    pub cors_origins: Vec<String>,
    /// Development mode (any origin when none is listed).
    pub development: bool,
    /// Largest HTTP request body and WebSocket message
    /// (`MOZAIKS_MAX_BODY_BYTES`): 413 over HTTP, close 1009 on a socket.
    pub max_body_bytes: usize,
}

/// [`router`] with its middleware: request metrics and spans
/// ([`observe::track`]), the `Origin` of WebSocket upgrades
/// ([`auth::check_origin`]), authentication ([`auth::require`]), the size
/// cap of bodies and socket messages, and CORS.
pub(crate) fn app(web: WebState, options: &HttpOptions) -> Router {
    let orchestrator = web.chats.clone();
    // Innermost: a request waits for the first load only once it passed
    // authentication.
    let app = router(web.clone())
        .layer(middleware::from_fn_with_state(
            Arc::clone(&web.plugins),
            wait_for_first_load,
        ))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(Extension(ws::MessageLimit(options.max_body_bytes)))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&options.access),
            auth::require,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::new(auth::WsOrigins {
                listed: options.cors_origins.clone(),
                development: options.development,
            }),
            auth::check_origin,
        ))
        .layer(middleware::from_fn_with_state(
            orchestrator.clone(),
            refuse_when_stopping,
        ))
        .layer(middleware::from_fn(observe::track));
    match auth::cors(&options.cors_origins, options.development) {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

/// While the server stops, every new request but `/health/live` and
/// `/metrics` is answered 503 `SHUTTING_DOWN`: clients learn why, and a
/// readiness probe takes the process out of rotation.
async fn refuse_when_stopping(
    State(orchestrator): State<Orchestrator>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if !orchestrator.serving() && path != "/health/live" && path != "/metrics" {
        return error::ApiError::from(crate::orchestrator::ChatError::ShuttingDown).into_response();
    }
    next.run(request).await
}

/// How long a chat request made while the server's first load runs waits
/// for it before it is answered 503 `PLUGINS_LOADING`.
pub(crate) const FIRST_LOAD_WAIT: Duration = Duration::from_secs(10);

/// While the server's first load of plugins and workflows runs
/// ([`crate::app::start`]), a request about workflows or chats (`/api/workflows…`,
/// `/api/chats…`, `/ws/…`, and the MozaiksAI routes under `/mozaiksai/`) waits for it, at most [`FIRST_LOAD_WAIT`], then
/// is answered 503 `PLUGINS_LOADING` naming the plugins still loading.
/// Health, metrics, the console and the plugin and reload lists answer at
/// once.
async fn wait_for_first_load(
    State(plugins): State<Arc<PluginSet>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let about_chats = ["/api/workflows", "/api/chats", "/ws/", "/mozaiksai/"]
        .iter()
        .any(|prefix| path.starts_with(prefix));
    if about_chats && let Err(plugins) = plugins.wait_first_load(FIRST_LOAD_WAIT).await {
        return error::ApiError::from(crate::orchestrator::ChatError::PluginsLoading { plugins })
            .into_response();
    }
    next.run(request).await
}

/// The API's routes over `web`, built from [`routes`].
fn router(web: WebState) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (_, path, handler)| {
            router.route(path, handler)
        })
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(web)
}

/// Every route the server answers, as `(method, path template)`: the
/// route × caller test (`host/tests/e2e/access.rs`) walks this list, so a
/// route added here without a row in its table fails it.
pub fn route_table() -> Vec<(Method, &'static str)> {
    routes()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// The one list [`router`] and [`route_table`] are made of.
fn routes() -> Vec<(Method, &'static str, MethodRouter<WebState>)> {
    vec![
        (Method::GET, "/health", get(routes::health)),
        (Method::GET, "/health/live", get(observe::live)),
        (Method::GET, "/metrics", get(observe::metrics_text)),
        (Method::GET, "/health/ready", get(routes::ready)),
        (Method::GET, "/health/active-runs", get(routes::active_runs)),
        (Method::GET, "/api/workflows", get(routes::list_workflows)),
        (Method::GET, "/api/plugins", get(reloads::list_plugins)),
        (Method::GET, "/api/reloads", get(reloads::list_reloads)),
        (Method::GET, "/api/events/ws", get(reloads::events_socket)),
        (Method::GET, "/api/cluster", get(cluster::cluster)),
        (Method::GET, "/", get(console::index)),
        (Method::GET, "/console/{file}", get(console::asset)),
        (
            Method::GET,
            "/api/workflows/{name}/components",
            get(console::list_components),
        ),
        (
            Method::GET,
            "/api/workflows/{name}/components/{file}",
            get(console::component_file),
        ),
        (Method::POST, "/api/chats", post(routes::start_chat)),
        (Method::GET, "/api/chats", get(routes::list_chats)),
        (Method::GET, "/api/chats/{chat_id}", get(routes::get_chat)),
        (
            Method::GET,
            "/api/chats/{chat_id}/events",
            get(routes::get_events),
        ),
        (
            Method::GET,
            "/api/chats/{chat_id}/context",
            get(routes::get_context),
        ),
        (
            Method::POST,
            "/api/chats/{chat_id}/messages",
            post(routes::post_message),
        ),
        (
            Method::POST,
            "/api/chats/{chat_id}/ui/{request_id}",
            post(routes::answer_ui),
        ),
        (
            Method::POST,
            "/api/chats/{chat_id}/continue",
            post(routes::continue_chat),
        ),
        (
            Method::POST,
            "/api/chats/{chat_id}/end",
            post(routes::end_chat),
        ),
        (Method::GET, "/api/chats/{chat_id}/ws", get(ws::chat_socket)),
        (Method::GET, "/ws/chat", get(ws::compat_socket)),
        (
            Method::GET,
            "/ws/{workflow}/{app_id}/{chat_id}/{user_id}",
            get(ws::mozaiksai_socket),
        ),
    ]
    .into_iter()
    .chain(compat::routes())
    .collect()
}
