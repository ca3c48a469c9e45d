//! [`LlmError`] and the mapping from async-openai's errors to it.
//!
//! async-openai reports failures at two stages, and the same error type
//! means different things at each: before the stream starts (connecting,
//! HTTP status) and while it runs (broken transport, unparsable chunks).
//! The two `from_*` functions below keep that distinction.

use std::time::Duration;

use async_openai::error::OpenAIError;
use serde_json::Value;

use crate::event::ErrorCode;

/// The most characters of a server's error text kept in a message: enough
/// for any real API error, short enough that an HTML error page does not
/// flood the logs and the chat.
const MAX_SERVER_TEXT: usize = 500;

/// Why an LLM call failed. Every variant names the model or the server, so
/// the message alone tells an operator what to fix; [`LlmError::code`] gives
/// a stable code for clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// No credentials and no server to talk to.
    #[error(
        "the LLM is not configured: set {var} (or OPENAI_BASE_URL for a local OpenAI-compatible server)"
    )]
    MissingConfiguration {
        /// The environment variable to set.
        var: &'static str,
    },
    /// The call (connect, wait and stream together) outlived its timeout.
    #[error("the LLM call to model `{model}` timed out after {after:?}")]
    Timeout {
        /// The requested model.
        model: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The server answered with an HTTP error status.
    #[error("the LLM call to model `{model}` failed with HTTP {status}: {message}")]
    Status {
        /// The requested model.
        model: String,
        /// The HTTP status.
        status: u16,
        /// The server's error message, with a hint for the common statuses
        /// (401 names `OPENAI_API_KEY`).
        message: String,
    },
    /// The server answered HTTP 429 (rate limit or quota), after the
    /// retries the policy allows.
    #[error("the LLM call to model `{model}` was rate limited (HTTP 429): {message}")]
    RateLimited {
        /// The requested model.
        model: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        /// The server's error message.
        message: String,
    },
    /// The server could not be reached (refused, DNS, TLS, bad URL).
    #[error("could not reach the LLM server at {base_url}: {message}")]
    Connect {
        /// The base URL in use.
        base_url: String,
        /// The transport's explanation, innermost cause last.
        message: String,
    },
    /// The stream started but broke off, or the server sent an error in it.
    #[error("the LLM stream from model `{model}` broke off: {message}")]
    Stream {
        /// The requested model.
        model: String,
        /// What went wrong.
        message: String,
    },
    /// The server sent something that is not an OpenAI chat completion.
    #[error("the LLM server sent an unusable response for model `{model}`: {message}")]
    BadResponse {
        /// The requested model.
        model: String,
        /// What was wrong with it.
        message: String,
    },
}

impl LlmError {
    /// The HTTP status the server answered, if it answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            LlmError::Status { status, .. } => Some(*status),
            LlmError::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// A stable, machine-readable code for the failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            LlmError::MissingConfiguration { .. } => ErrorCode::LlmNotConfigured,
            LlmError::Timeout { .. } => ErrorCode::LlmTimeout,
            LlmError::Status { .. } => ErrorCode::LlmHttpError,
            LlmError::RateLimited { .. } => ErrorCode::LlmRateLimited,
            LlmError::Connect { .. } => ErrorCode::LlmUnreachable,
            LlmError::Stream { .. } => ErrorCode::LlmStreamError,
            LlmError::BadResponse { .. } => ErrorCode::LlmBadResponse,
        }
    }
}

/// Where a call went, for error messages.
#[derive(Debug, Clone, Copy)]
pub(super) struct Endpoint<'a> {
    pub(super) model: &'a str,
    pub(super) base_url: &'a str,
    pub(super) has_api_key: bool,
}

/// Maps a failure to open the stream: connecting, or an HTTP error status.
pub(super) fn from_request(error: OpenAIError, target: Endpoint<'_>) -> LlmError {
    let model = target.model.to_owned();
    match error {
        OpenAIError::ApiError(response) => {
            let status = response.status_code.as_u16();
            // async-openai parses OpenAI's error JSON for 4xx but hands over
            // the raw body for 5xx; the message is inside either way.
            let raw = response.api_error.message;
            let mut message = server_message(&raw).unwrap_or_else(|| clip(raw.trim()));
            if message.is_empty() {
                message = response
                    .status_code
                    .canonical_reason()
                    .unwrap_or("no error message")
                    .to_owned();
            }
            if status == 429 {
                let retry_after = super::retry::RETRY_AFTER
                    .try_with(std::cell::Cell::get)
                    .ok()
                    .flatten();
                return LlmError::RateLimited {
                    model,
                    retry_after,
                    message,
                };
            }
            message.push_str(&status_hint(status, target));
            LlmError::Status {
                model,
                status,
                message,
            }
        }
        OpenAIError::Reqwest(error) => LlmError::Connect {
            base_url: target.base_url.to_owned(),
            message: error_chain(&error),
        },
        // An error status whose body is not OpenAI's error JSON (async-openai
        // drops the status then): typically a wrong base URL hitting some
        // other web server.
        OpenAIError::JSONDeserialize(_, body) => LlmError::BadResponse {
            model,
            message: format!(
                "the server at {} answered with an error that is not OpenAI's JSON: {} \
                 (check OPENAI_BASE_URL; it usually ends in /v1)",
                target.base_url,
                server_message(&body).unwrap_or_else(|| clip(body.trim()))
            ),
        },
        OpenAIError::StreamError(error) => LlmError::Stream {
            model,
            message: error.to_string(),
        },
        OpenAIError::InvalidArgument(reason) => LlmError::BadResponse {
            model,
            message: format!("the request could not be built: {reason}"),
        },
        other => LlmError::BadResponse {
            model,
            message: other.to_string(),
        },
    }
}

/// Maps a failure while reading the stream.
pub(super) fn from_stream(error: OpenAIError, model: &str) -> LlmError {
    let model = model.to_owned();
    match error {
        // OpenAI reports failures after the headers as a data event holding
        // its error JSON, which does not parse as a chunk.
        OpenAIError::JSONDeserialize(parse_error, data) => match server_message(&data) {
            Some(message) => LlmError::Stream { model, message },
            None => LlmError::BadResponse {
                model,
                message: format!(
                    "a stream event is not a chat completion chunk ({parse_error}): {}",
                    clip(&data)
                ),
            },
        },
        OpenAIError::StreamError(error) => LlmError::Stream {
            model,
            message: error.to_string(),
        },
        OpenAIError::Reqwest(error) => LlmError::Stream {
            model,
            message: error_chain(&error),
        },
        other => LlmError::Stream {
            model,
            message: other.to_string(),
        },
    }
}

/// What to check for the statuses a configuration mistake produces.
fn status_hint(status: u16, target: Endpoint<'_>) -> String {
    match status {
        401 if target.has_api_key => " (check OPENAI_API_KEY)".to_owned(),
        401 => " (check OPENAI_API_KEY: none is set)".to_owned(),
        404 => format!(
            " (check the model name `{}` and OPENAI_BASE_URL {})",
            target.model, target.base_url
        ),
        _ => String::new(),
    }
}

/// The error message inside a server's JSON body, in the shapes servers
/// use: `{"error": {"message": ..}}` (OpenAI), `{"error": ".."}` (Ollama
/// and others) or `{"message": ..}`.
fn server_message(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let message = value
        .pointer("/error/message")
        .or_else(|| value.get("error").filter(|e| e.is_string()))
        .or_else(|| value.get("message"))?
        .as_str()?;
    Some(clip(message))
}

/// `text` cut to [`MAX_SERVER_TEXT`] characters.
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_SERVER_TEXT) {
        Some((cut, _)) => format!("{}...", text.get(..cut).unwrap_or(text)),
        None => text.to_owned(),
    }
}

/// An error and its sources joined with `: `, skipping a source whose text
/// the previous level already includes (reqwest repeats itself).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_message_reads_openai_and_ollama_error_shapes() {
        assert_eq!(
            server_message(r#"{"error":{"message":"bad key","type":"x"}}"#),
            Some("bad key".to_owned())
        );
        assert_eq!(
            server_message(r#"{"error":"model not found"}"#),
            Some("model not found".to_owned())
        );
        assert_eq!(server_message("<html>oops</html>"), None);
    }

    #[test]
    fn long_server_text_is_clipped_on_a_character_boundary() {
        let long = "é".repeat(MAX_SERVER_TEXT + 10);
        let clipped = clip(&long);
        assert!(clipped.ends_with("..."));
        assert_eq!(clipped.chars().count(), MAX_SERVER_TEXT + 3);
    }

    #[test]
    fn every_error_has_its_stable_code() {
        let model = || "m".to_owned();
        let cases = [
            (
                LlmError::MissingConfiguration {
                    var: "OPENAI_API_KEY",
                },
                "LLM_NOT_CONFIGURED",
            ),
            (
                LlmError::Timeout {
                    model: model(),
                    after: Duration::from_secs(1),
                },
                "LLM_TIMEOUT",
            ),
            (
                LlmError::Status {
                    model: model(),
                    status: 500,
                    message: String::new(),
                },
                "LLM_HTTP_ERROR",
            ),
            (
                LlmError::RateLimited {
                    model: model(),
                    retry_after: None,
                    message: String::new(),
                },
                "LLM_RATE_LIMITED",
            ),
            (
                LlmError::Connect {
                    base_url: "u".into(),
                    message: String::new(),
                },
                "LLM_UNREACHABLE",
            ),
            (
                LlmError::Stream {
                    model: model(),
                    message: String::new(),
                },
                "LLM_STREAM_ERROR",
            ),
            (
                LlmError::BadResponse {
                    model: model(),
                    message: String::new(),
                },
                "LLM_BAD_RESPONSE",
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code().as_str(), code, "{error}");
        }
    }
}
