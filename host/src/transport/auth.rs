//! Authentication and ownership on every route.
//!
//! [`require`] runs before every handler: public paths (health, metrics,
//! the console page and its static files) pass; with auth off every
//! request passes as an unrestricted [`Caller`]; with auth on a request
//! needs `Authorization: Bearer <key>` (a WebSocket upgrade may put the key
//! in `?access_token=` instead, since browsers cannot set headers on
//! one), else it gets 401. Handlers take the [`Caller`] and ask it about
//! the chat they touch: a chat of another app (or user) is answered as if
//! it did not exist (404), so ids cannot be probed; acting for another app
//! is 403.
//!
//! A handler that forgets the middleware fails closed: extracting a
//! [`Caller`] that the middleware did not insert is a 500.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::ApiError;
use crate::access::{Access, Principal};
use crate::event::ErrorCode;
use crate::orchestrator::{ChatError, Orchestrator};
use crate::store::ChatRecord;

/// How long a browser may cache a CORS preflight answer.
const CORS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Paths anyone may read: probes, metrics (no tenant data in them), and
/// the console page with its static files (the page sends the key itself).
pub(crate) fn is_public(path: &str) -> bool {
    // `/health/active-runs` is not public: it names chats.
    path == "/"
        || path == "/health"
        || path == "/health/live"
        || path == "/health/ready"
        || path == "/metrics"
        || path.starts_with("/console/")
        || path == "/favicon.ico"
        || is_component_file(path)
}

/// `/api/workflows/{name}/components[/{file}]`: a workflow's UI components,
/// front-end code like the console's own files, loaded by the browser
/// without headers.
fn is_component_file(path: &str) -> bool {
    let mut parts = path.trim_start_matches('/').split('/');
    parts.next() == Some("api")
        && parts.next() == Some("workflows")
        && parts.next().is_some_and(|name| !name.is_empty())
        && parts.next() == Some("components")
}

/// Who is calling.
#[derive(Debug, Clone)]
pub(crate) struct Caller(Option<Principal>);

impl Caller {
    /// A caller with no restriction (auth off).
    pub(crate) fn unrestricted() -> Self {
        Self(None)
    }

    /// The key's owner; `None` when auth is off.
    pub(crate) fn principal(&self) -> Option<&Principal> {
        self.0.as_ref()
    }

    /// Whether this caller may see `chat`.
    pub(crate) fn may_see(&self, chat: &ChatRecord) -> bool {
        self.0
            .as_ref()
            .is_none_or(|p| p.owns(&chat.app_id, &chat.user_id))
    }

    /// The chat, if it exists and this caller may see it; otherwise the
    /// same 404 either way.
    pub(crate) async fn chat(
        &self,
        orchestrator: &Orchestrator,
        chat_id: &str,
    ) -> Result<ChatRecord, ApiError> {
        let chat = orchestrator.chat(chat_id).await?;
        if self.may_see(&chat) {
            Ok(chat)
        } else {
            Err(ChatError::ChatNotFound(chat_id.to_owned()).into())
        }
    }

    /// The app and user a new chat belongs to: as given, else from the
    /// key; giving another app (or user) than the key's is 403.
    pub(crate) fn owner_of_new_chat(
        &self,
        app_id: Option<String>,
        user_id: Option<String>,
    ) -> Result<(String, String), ApiError> {
        let app_id = self.narrow("app_id", app_id, self.0.as_ref().map(|p| &p.app_id))?;
        let user_id = self.narrow(
            "user_id",
            user_id,
            self.0.as_ref().and_then(|p| p.user_id.as_ref()),
        )?;
        match (app_id, user_id) {
            (Some(app), Some(user)) => Ok((app, user)),
            (app, _) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::BadRequestBody,
                format!(
                    "`{}` is required{}",
                    if app.is_none() { "app_id" } else { "user_id" },
                    if self.0.is_some() {
                        " (this API key does not fix it)"
                    } else {
                        ""
                    }
                ),
            )),
        }
    }

    /// The app and user a chat listing is limited to.
    pub(crate) fn chat_filter(
        &self,
        app_id: Option<String>,
        user_id: Option<String>,
    ) -> Result<(Option<String>, Option<String>), ApiError> {
        let app_id = self.narrow("app_id", app_id, self.0.as_ref().map(|p| &p.app_id))?;
        let user_id = self.narrow(
            "user_id",
            user_id,
            self.0.as_ref().and_then(|p| p.user_id.as_ref()),
        )?;
        Ok((app_id, user_id))
    }

    /// `asked`, which must equal `fixed` when the key fixes it.
    fn narrow(
        &self,
        what: &str,
        asked: Option<String>,
        fixed: Option<&String>,
    ) -> Result<Option<String>, ApiError> {
        match (asked, fixed) {
            (Some(asked), Some(fixed)) if asked != *fixed => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                format!("this API key is for {what} `{fixed}`, not `{asked}`"),
            )),
            (asked, fixed) => Ok(asked.or_else(|| fixed.cloned())),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            tracing::error!(
                path = parts.uri.path(),
                "a route needs a caller but the auth middleware did not run"
            );
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "this route is not wired to authentication",
            )
        })
    }
}

/// The middleware; see the module docs.
pub(crate) async fn require(
    State(access): State<Arc<Access>>,
    mut request: Request,
    next: Next,
) -> Response {
    if is_public(request.uri().path()) || request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    if !access.enabled {
        request.extensions_mut().insert(Caller::unrestricted());
        return next.run(request).await;
    }
    let key = bearer(&request).or_else(|| {
        is_upgrade(&request)
            .then(|| query_token(request.uri().query()))
            .flatten()
    });
    let Some(key) = key else {
        return unauthenticated(
            "this server needs an API key: send `Authorization: Bearer <key>` (WebSocket: `?access_token=<key>`)",
        );
    };
    let Some(principal) = access.keys.lookup(&key).cloned() else {
        tracing::warn!(
            path = request.uri().path(),
            "request with an unknown API key"
        );
        return unauthenticated("the API key is not valid");
    };
    tracing::Span::current().record("key_id", principal.key_id.as_str());
    request.extensions_mut().insert(Caller(Some(principal)));
    next.run(request).await
}

fn unauthenticated(message: &str) -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::Unauthenticated,
        message,
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"mozaiks\""),
    );
    response
}

fn bearer(request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, key) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim().to_owned())
        .filter(|k| !k.is_empty())
}

fn is_upgrade(request: &Request) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == "access_token").then(|| percent_decode(value))
    })
}

/// Decodes `%XX` escapes (and `+` as space) of a query value.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(decoded) = hex {
                    out.push(decoded);
                    i += 3;
                    continue;
                }
                out.push(b);
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Which browser pages may open a WebSocket ([`check_origin`]).
#[derive(Debug, Clone)]
pub(crate) struct WsOrigins {
    /// `MOZAIKS_CORS_ORIGINS` (`*`: any).
    pub listed: Vec<String>,
    /// Development mode: loopback pages too when none is listed.
    pub development: bool,
}

impl WsOrigins {
    /// Whether a page of `origin` may open a socket on a server reached
    /// as `host` (the `Host` header).
    pub(crate) fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        let same_origin = origin
            .split_once("://")
            .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && Some(rest) == host);
        if same_origin || self.listed.iter().any(|o| o == "*" || o == origin) {
            return true;
        }
        self.listed.is_empty() && self.development && is_loopback_origin(origin)
    }
}

/// `http(s)://localhost`, `127.0.0.1` or `[::1]`, any port.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(h, _)| h),
        None => rest.split(':').next().unwrap_or(rest),
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// Refuses a WebSocket upgrade whose `Origin` is not allowed (403
/// `ORIGIN_NOT_ALLOWED`): a browser page may open a socket only from the
/// console (same origin), `MOZAIKS_CORS_ORIGINS`, or, in development with
/// none listed, a loopback origin. Browsers do not apply CORS to
/// WebSockets, so without this any page the user visits could read and
/// drive chats. A client that sends no `Origin` (not a browser) passes.
pub(crate) async fn check_origin(
    State(origins): State<Arc<WsOrigins>>,
    request: Request,
    next: Next,
) -> Response {
    if is_upgrade(&request)
        && let Some(origin) = request.headers().get(header::ORIGIN)
    {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        let origin = origin.to_str().unwrap_or("");
        if !origins.allows(origin, host) {
            tracing::warn!(origin, "WebSocket upgrade from an origin not allowed");
            return ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::OriginNotAllowed,
                format!(
                    "a page of `{origin}` may not open a WebSocket here; add it to MOZAIKS_CORS_ORIGINS"
                ),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// The CORS layer for `origins`: none listed means same-origin only
/// (no layer), except in development where any origin may call.
pub(crate) fn cors(origins: &[String], development: bool) -> Option<CorsLayer> {
    let allow = if origins.iter().any(|o| o == "*") || (origins.is_empty() && development) {
        AllowOrigin::any()
    } else if origins.is_empty() {
        return None;
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .max_age(CORS_MAX_AGE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_origins_are_the_console_the_list_or_loopback_in_development() {
        let development = WsOrigins {
            listed: Vec::new(),
            development: true,
        };
        let host = Some("127.0.0.1:8080");
        for origin in [
            "http://127.0.0.1:8080",
            "http://localhost:3000",
            "https://localhost",
            "http://[::1]:9000",
        ] {
            assert!(development.allows(origin, host), "{origin}");
        }
        for origin in [
            "https://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "null",
            "file://",
        ] {
            assert!(!development.allows(origin, host), "{origin}");
        }
        let listed = WsOrigins {
            listed: vec!["https://app.example".into()],
            development: true,
        };
        assert!(listed.allows("https://app.example", host));
        assert!(!listed.allows("http://localhost:3000", host));
        assert!(listed.allows("http://127.0.0.1:8080", host), "the console");
    }

    #[test]
    fn a_query_token_is_found_and_decoded() {
        assert_eq!(
            query_token(Some("after=3&access_token=a%2Bb%3Dc")),
            Some("a+b=c".to_owned())
        );
        assert_eq!(query_token(Some("after=3")), None);
        assert_eq!(query_token(None), None);
    }

    #[test]
    fn only_probes_metrics_and_the_console_are_public() {
        for path in [
            "/",
            "/health",
            "/health/ready",
            "/metrics",
            "/console/app.js",
            "/api/workflows/W/components/Form.js",
        ] {
            assert!(is_public(path), "{path}");
        }
        for path in [
            "/api/chats",
            "/api/workflows",
            "/api/workflows/W",
            "/ws/chat",
            "/consoles",
            "/healthz",
            "/health/active-runs",
        ] {
            assert!(!is_public(path), "{path}");
        }
    }
}
