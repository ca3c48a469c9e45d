//! The one error shape of the HTTP API: `{"error": {"code", "message"}}`
//! with a 4xx for the caller's mistakes and a 500 (generic message, full
//! error in the log) for ours.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::event::ErrorCode;
use crate::orchestrator::ChatError;
use crate::store::StoreError;

/// An API error.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    /// An error with this status, stable code and message.
    pub(crate) fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Adds machine-readable details.
    pub(crate) fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        tracing::error!(error_id = id, error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            format!("internal error; the server log has it under error_id {id}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(details) = self.details {
            error["details"] = details;
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

impl From<ChatError> for ApiError {
    fn from(error: ChatError) -> Self {
        let status = match &error {
            ChatError::UnknownWorkflow { .. } | ChatError::ChatNotFound(_) => StatusCode::NOT_FOUND,
            ChatError::InvalidWorkflow { .. } | ChatError::MissingEnvironment { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ChatError::ChatEnded(_)
            | ChatError::UiRequestNotOpen(_)
            | ChatError::NotYourTurn { .. } => StatusCode::CONFLICT,
            ChatError::ShuttingDown
            | ChatError::PluginsLoading { .. }
            | ChatError::Moved { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ChatError::Store(store) => return Self::from_store(store),
        };
        let details = match &error {
            ChatError::InvalidWorkflow { diagnostics, .. } => Some(Value::Array(
                diagnostics
                    .iter()
                    .map(super::routes::diagnostic_json)
                    .collect(),
            )),
            ChatError::PluginsLoading { plugins } => {
                Some(serde_json::json!({ "loading": plugins }))
            }
            _ => None,
        };
        let api = Self::new(status, error.code(), error.to_string());
        match details {
            Some(details) => api.with_details(details),
            None => api,
        }
    }
}

impl ApiError {
    /// A store failure: 503 when the backend does not answer (the operator
    /// looks at `/health/ready`), 500 otherwise.
    fn from_store(error: &StoreError) -> Self {
        match error {
            StoreError::Backend(_) => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                tracing::warn!(
                    error_id = id,
                    error = error as &dyn std::error::Error,
                    "store unavailable"
                );
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::StoreUnavailable,
                    format!(
                        "the chat store is unavailable (GET /health/ready says why); error_id {id}"
                    ),
                )
            }
            other => Self::internal(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::ChatNotFound(id) => ChatError::ChatNotFound(id).into(),
            other => Self::from_store(&other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                "the request body is larger than this server accepts (MOZAIKS_MAX_BODY_BYTES)",
            );
        }
        Self::new(
            rejection.status(),
            ErrorCode::BadRequestBody,
            rejection.body_text(),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(
            rejection.status(),
            ErrorCode::BadQuery,
            rejection.body_text(),
        )
    }
}

/// What a path no route serves answers: 404 `NOT_FOUND` naming it, as
/// JSON like every other error (not an empty body).
pub(crate) async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!(
            "no route serves `{method} {}`; docs/protocol.md lists the routes",
            uri.path()
        ),
    )
}

/// What a served path asked with another method answers: 405
/// `METHOD_NOT_ALLOWED` (axum adds the `Allow` header).
pub(crate) async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!(
            "`{}` does not take {method}; docs/protocol.md lists the routes",
            uri.path()
        ),
    )
}
