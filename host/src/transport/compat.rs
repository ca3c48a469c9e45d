//! The MozaiksAI compatibility layer: MozaiksAI's HTTP routes, socket,
//! envelopes and client messages, so a MozaiksAI front end (ChatUI) runs
//! against mozaiks with only its base URL changed to `<server>/mozaiksai`.
//! It sits at the edge, beside the native protocol, which it does not
//! change: everything it serves is under [`PREFIX`] and built on the same
//! chat API, keys and ownership checks as the native routes.
//!
//! `routes.rs` (HTTP), `socket.rs` (the chat socket), `events.rs` (native
//! events → MozaiksAI envelopes), `client.rs` (MozaiksAI client messages),
//! `ids.rs` (the UI tool and input request ids it hands out), `meta.rs`
//! (`chat_meta`, `last_artifact`), `visual.rs` (`visual_agents`: bubbles
//! and traces). docs/protocol.md, "MozaiksAI compatibility", is the
//! mapping, row by row.

pub(crate) mod client;
pub(crate) mod events;
pub(crate) mod ids;
pub(crate) mod meta;
pub(crate) mod routes;
pub(crate) mod socket;
pub(crate) mod visual;

use axum::http::Method;
use axum::routing::{MethodRouter, get, post};

use super::state::WebState;

/// Where the compatibility layer is mounted: ChatUI's
/// `REACT_APP_API_BASE_URL` and `REACT_APP_WS_URL` point here.
pub(crate) const PREFIX: &str = "/mozaiksai";

/// MozaiksAI routes mozaiks has no counterpart for, each answered 501
/// `NOT_SUPPORTED` with the reason.
const UNSUPPORTED: [(&str, &str, &str); 12] = [
    (
        "POST",
        "/mozaiksai/chat/{app_id}/{chat_id}/component_action",
        "a component changes context variables through its UI tool's answer (ui_tool_response)",
    ),
    (
        "POST",
        "/mozaiksai/api/chat/upload",
        "mozaiks has no file uploads",
    ),
    (
        "POST",
        "/mozaiksai/api/chat/upload/{app_id}/{user_id}",
        "mozaiks has no file uploads",
    ),
    (
        "GET",
        "/mozaiksai/api/themes/{app_id}",
        "mozaiks stores no themes: ChatUI uses its own theme_config.json",
    ),
    (
        "GET",
        "/mozaiksai/api/general_chats/transcript/{app_id}/{general_chat_id}",
        "mozaiks has no Ask (general) mode",
    ),
    (
        "GET",
        "/mozaiksai/metrics/perf/aggregate",
        "use GET /metrics (Prometheus)",
    ),
    (
        "GET",
        "/mozaiksai/metrics/perf/chats",
        "use GET /metrics (Prometheus) and GET /health/active-runs",
    ),
    (
        "GET",
        "/mozaiksai/metrics/perf/chats/{chat_id}",
        "use GET /api/chats/{chat_id} (its usage) and GET /metrics",
    ),
    (
        "GET",
        "/mozaiksai/api/events/metrics",
        "use GET /metrics (Prometheus)",
    ),
    (
        "POST",
        "/mozaiksai/api/realtime/oauth/completed",
        "mozaiks has no OAuth callbacks; a tool's secrets come from the plugin secrets store",
    ),
    (
        "GET",
        "/mozaiksai/api/download/workflow-file",
        "workflow files are not served; a workflow's components are at GET /api/workflows/{name}/components/{file}",
    ),
    (
        "GET",
        "/mozaiksai/api/apps/{app_id}/builds/{build_id}/export",
        "mozaiks does not build apps",
    ),
];

/// Every compatibility route, as `(method, path, handler)`; joined to the
/// native list in `transport.rs::routes`.
pub(super) fn routes() -> Vec<(Method, &'static str, MethodRouter<WebState>)> {
    let mut list = vec![
        (
            Method::GET,
            "/mozaiksai/api/workflows",
            get(routes::workflows),
        ),
        (
            Method::GET,
            "/mozaiksai/api/workflows/config",
            get(routes::workflows),
        ),
        (
            Method::GET,
            "/mozaiksai/api/workflows/{name}/transport",
            get(routes::transport),
        ),
        (
            Method::GET,
            "/mozaiksai/api/workflows/{name}/ui-tools",
            get(routes::ui_tools),
        ),
        (
            Method::GET,
            "/mozaiksai/api/workflows/{name}/tools",
            get(routes::ui_tools),
        ),
        (
            Method::GET,
            "/mozaiksai/api/workflows/{name}/available",
            get(routes::available),
        ),
        (
            Method::POST,
            "/mozaiksai/api/chats/{app_id}/{workflow}/start",
            post(routes::start),
        ),
        (
            Method::GET,
            "/mozaiksai/api/chats/{app_id}/{workflow}",
            get(routes::chat_ids),
        ),
        (
            Method::GET,
            "/mozaiksai/api/chats/exists/{app_id}/{workflow}/{chat_id}",
            get(routes::exists),
        ),
        (
            Method::GET,
            "/mozaiksai/api/chats/meta/{app_id}/{workflow}/{chat_id}",
            get(routes::chat_meta),
        ),
        (
            Method::GET,
            "/mozaiksai/api/sessions/list/{app_id}/{user_id}",
            get(routes::sessions),
        ),
        (
            Method::GET,
            "/mozaiksai/api/sessions/recent/{app_id}/{user_id}",
            get(routes::recent_session),
        ),
        (
            Method::GET,
            "/mozaiksai/api/general_chats/list/{app_id}/{user_id}",
            get(routes::general_chats),
        ),
        (
            Method::POST,
            "/mozaiksai/api/user-input/submit",
            post(routes::submit_input),
        ),
        (
            Method::POST,
            "/mozaiksai/api/ui-tool/submit",
            post(routes::submit_ui_tool),
        ),
        (
            Method::POST,
            "/mozaiksai/chat/{app_id}/{chat_id}/{user_id}/input",
            post(routes::chat_input),
        ),
        (Method::GET, "/mozaiksai/api/health", get(routes::health)),
        (
            Method::GET,
            "/mozaiksai/ws/{workflow}/{app_id}/{chat_id}/{user_id}",
            get(socket::chat_socket),
        ),
    ];
    for (method, path, why) in UNSUPPORTED {
        let route = path.strip_prefix(PREFIX).unwrap_or(path);
        let answer = move || async move { routes::unsupported(route, why) };
        let (method, handler) = if method == "POST" {
            (Method::POST, post(answer))
        } else {
            (Method::GET, get(answer))
        };
        list.push((method, path, handler));
    }
    list
}
