//! The LLM client: one streamed chat completion per call, against OpenAI or
//! any OpenAI-compatible server (Ollama, vLLM, LiteLLM, the test fake).
//!
//! ```text
//! ChatRequest ──to_openai──▶ async-openai create_stream ──SSE──▶ Assembler ──▶ ChatResponse
//!                                                  │ text deltas
//!                                                  └────────────▶ on_delta(&str)
//! ```
//!
//! - [`LlmConfig`] is read once, with the rest of the configuration
//!   (`Config`, in `config.rs`), and turned into an
//!   [`LlmClient`], which is cheap to clone and shared by every run.
//! - [`LlmClient::complete`] sends one request with `stream: true` and
//!   `stream_options.include_usage`, calls `on_delta` with each piece of
//!   assistant text as it arrives, assembles tool calls from their deltas,
//!   and returns the whole [`ChatResponse`]. The whole call (connect, wait,
//!   stream) is bounded by [`ChatRequest::timeout`].
//! - Failures are [`LlmError`]s that name the model or the server, with a
//!   stable [`LlmError::code`].
//!
//! # Retries
//!
//! async-openai's built-in retries are replaced by one plain attempt per
//! request ([`retry`]); [`RetryPolicy`] (`MOZAIKS_LLM_MAX_RETRIES`,
//! `MOZAIKS_LLM_RETRY_BACKOFF_MS`) decides what is tried again, each retry
//! is reported through [`LlmClient::complete_with_retries`]'s `on_retry`
//! and counted in `mozaiks_llm_retries_total`. The retries and their waits
//! count against the call's timeout, so a dead server still fails within
//! it.
//!
//! # Layout
//!
//! - `request`: [`ChatRequest`] and its parts, and the translation to
//!   async-openai's request type (message names sanitised here).
//! - `stream`: [`ChatResponse`], [`Usage`], and assembling chunks.
//! - `error`: [`LlmError`] and the mapping from async-openai's errors.

mod error;
mod request;
pub(crate) mod retry;
mod stream;
#[cfg(test)]
mod tests;

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Once;
use std::time::{Duration, Instant};

use async_openai::Client;
use async_openai::config::{OPENAI_API_BASE, OpenAIConfig};
use futures_util::StreamExt;

pub use error::LlmError;
pub(crate) use request::ChatMessage;
pub use request::ChatRequest;
pub(crate) use request::ResponseSchema;
pub(crate) use request::ToolCallRequest;
pub(crate) use request::ToolDefinition;
pub(crate) use retry::LlmRetry;
pub use retry::RetryPolicy;
pub(crate) use stream::ChatResponse;

use error::Endpoint;
use stream::Assembler;

/// The model used when `MOZAIKS_DEFAULT_MODEL` is unset: small, cheap and
/// good at tool calls.
pub(crate) const DEFAULT_MODEL: &str = "gpt-4o-mini";

/// The per-call timeout when `MOZAIKS_LLM_TIMEOUT_SECS` is unset. Long
/// generations with large outputs take a minute or more; two minutes
/// leaves room without letting a hung server hold a run forever.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How the LLM is reached. Built once at startup by
/// `Config`, in `config.rs` and handed to [`LlmClient::new`].
#[derive(Clone)]
pub struct LlmConfig {
    /// The API key (`OPENAI_API_KEY`); optional for local servers.
    pub api_key: Option<String>,
    /// The server's base URL including `/v1` (`OPENAI_BASE_URL`); `None`
    /// means OpenAI itself.
    pub base_url: Option<String>,
    /// The model for agents that name none (`MOZAIKS_DEFAULT_MODEL`).
    pub default_model: String,
    /// The timeout for calls that set none (`MOZAIKS_LLM_TIMEOUT_SECS`).
    pub default_timeout: Duration,
    /// What is tried again (`MOZAIKS_LLM_MAX_RETRIES`,
    /// `MOZAIKS_LLM_RETRY_BACKOFF_MS`).
    pub retry: RetryPolicy,
}

impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("base_url", &self.base_url)
            .field("default_model", &self.default_model)
            .field("default_timeout", &self.default_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl LlmConfig {
    /// Reads `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `MOZAIKS_DEFAULT_MODEL`
    /// (default `DEFAULT_MODEL`), `MOZAIKS_LLM_TIMEOUT_SECS` (whole
    /// seconds, default `DEFAULT_TIMEOUT`) and the retry settings through
    /// `lookup`. Empty values count as unset. The server's configuration
    /// (`Config`, in `config.rs`) is the one caller outside tests: it
    /// passes its sources and has checked the values already.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |var: &str| {
            lookup(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let default_timeout = match get("MOZAIKS_LLM_TIMEOUT_SECS") {
            None => DEFAULT_TIMEOUT,
            Some(text) => match text.parse::<u64>() {
                Ok(secs) if secs > 0 => Duration::from_secs(secs),
                _ => {
                    tracing::warn!(
                        value = %text,
                        default = ?DEFAULT_TIMEOUT,
                        "MOZAIKS_LLM_TIMEOUT_SECS is not a positive whole number of seconds; using the default"
                    );
                    DEFAULT_TIMEOUT
                }
            },
        };
        let defaults = RetryPolicy::default();
        let retry = RetryPolicy {
            max_retries: get("MOZAIKS_LLM_MAX_RETRIES")
                .and_then(|v| v.parse().ok())
                .unwrap_or(defaults.max_retries),
            backoff: get("MOZAIKS_LLM_RETRY_BACKOFF_MS")
                .and_then(|v| v.parse().ok())
                .map_or(defaults.backoff, Duration::from_millis),
        };
        LlmConfig {
            api_key: get("OPENAI_API_KEY"),
            base_url: get("OPENAI_BASE_URL"),
            default_model: get("MOZAIKS_DEFAULT_MODEL").unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
            default_timeout,
            retry,
        }
    }
}

/// Installs rustls' `ring` crypto provider as the process default, once.
/// async-openai is built with `rustls-no-provider`, and its HTTP client
/// panics on construction without a provider. If another provider is
/// already installed, that one stays; it serves as well.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err only means a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The client for every LLM call of the process. Cheap to clone: clones
/// share one connection pool.
#[derive(Clone, Debug)]
pub struct LlmClient {
    /// The HTTP client, or why it could not be built.
    http: Result<Client<OpenAIConfig>, String>,
    base_url: String,
    has_api_key: bool,
    missing: Option<&'static str>,
    default_model: String,
    default_timeout: Duration,
    retry: RetryPolicy,
}

impl LlmClient {
    /// Builds the client. Never fails: a missing key is reported by
    /// [`LlmClient::missing_configuration`] and by every call, so the
    /// server can start and say what to set.
    ///
    /// Only the values in `config` are used: async-openai's own reading of
    /// `OPENAI_*` variables (including `OPENAI_ORG_ID` and
    /// `OPENAI_PROJECT_ID`) is overridden.
    pub fn new(config: LlmConfig) -> Self {
        install_crypto_provider();
        let api_key = config.api_key.filter(|k| !k.is_empty());
        let explicit_base = config
            .base_url
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty());
        let missing = (api_key.is_none() && explicit_base.is_none()).then_some("OPENAI_API_KEY");
        let base_url = explicit_base.unwrap_or_else(|| OPENAI_API_BASE.to_owned());
        let openai_config = OpenAIConfig::new()
            .with_api_base(base_url.clone())
            // Local servers need no key and ignore the empty bearer token.
            .with_api_key(api_key.clone().unwrap_or_default())
            .with_org_id("")
            .with_project_id("");
        LlmClient {
            http: build_http_client(openai_config),
            base_url,
            has_api_key: api_key.is_some(),
            missing,
            default_model: config.default_model,
            default_timeout: config.default_timeout,
            retry: config.retry,
        }
    }

    /// Which environment variable is missing, if the client cannot make
    /// calls: `Some("OPENAI_API_KEY")` when there is no key and no base
    /// URL. A base URL without a key is allowed (local servers such as
    /// Ollama need none).
    pub fn missing_configuration(&self) -> Option<&'static str> {
        self.missing
    }

    /// The model for agents that name none.
    pub fn default_model(&self) -> &str {
        &self.default_model
    }

    /// The timeout for calls that set none.
    pub fn default_timeout(&self) -> Duration {
        self.default_timeout
    }

    /// The base URL calls go to, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A request for the default model and timeout, with no tools,
    /// schema or sampling settings.
    pub fn request(&self, messages: Vec<ChatMessage>) -> ChatRequest {
        ChatRequest {
            model: self.default_model.clone(),
            messages,
            tools: Vec::new(),
            response_format: None,
            temperature: None,
            max_tokens: None,
            timeout: self.default_timeout,
            seed: None,
        }
    }

    /// One streamed chat completion. Calls `on_delta` with each piece of
    /// assistant text as it arrives; returns the assembled response. An
    /// empty [`ChatRequest::model`] means [`LlmClient::default_model`].
    ///
    /// The whole call is bounded by [`ChatRequest::timeout`]; on expiry the
    /// connection is dropped and [`LlmError::Timeout`] returned, and deltas
    /// already passed to `on_delta` stay delivered. Failures are retried
    /// as the [`RetryPolicy`] says, silently; see
    /// [`LlmClient::complete_with_retries`].
    pub async fn complete(
        &self,
        request: ChatRequest,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ChatResponse, LlmError> {
        self.complete_with_retries(request, on_delta, &mut |_| {})
            .await
    }

    /// [`LlmClient::complete`], calling `on_retry` before each retry (with
    /// the failure, the attempt and the wait).
    pub async fn complete_with_retries(
        &self,
        mut request: ChatRequest,
        on_delta: &mut (dyn FnMut(&str) + Send),
        on_retry: &mut (dyn FnMut(&LlmRetry) + Send),
    ) -> Result<ChatResponse, LlmError> {
        if let Some(var) = self.missing {
            return Err(LlmError::MissingConfiguration { var });
        }
        let client = self.http.as_ref().map_err(|message| LlmError::Connect {
            base_url: self.base_url.clone(),
            message: message.clone(),
        })?;
        if request.model.is_empty() {
            request.model.clone_from(&self.default_model);
        }
        let deadline = tokio::time::Instant::now() + request.timeout;
        let mut retries = 0;
        loop {
            let started = Instant::now();
            let mut streamed = false;
            let mut on_piece = |piece: &str| {
                streamed = true;
                on_delta(piece);
            };
            let outcome = tokio::time::timeout_at(
                deadline,
                retry::RETRY_AFTER.scope(
                    std::cell::Cell::new(None),
                    self.stream_completion(client, &request, &mut on_piece),
                ),
            )
            .await;
            let result = outcome.unwrap_or_else(|_| {
                Err(LlmError::Timeout {
                    model: request.model.clone(),
                    after: request.timeout,
                })
            });
            self.observe(&request, &result, started);
            let error = match result {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            let next = retries + 1;
            let delay =
                (next <= self.retry.max_retries && !streamed && RetryPolicy::retryable(&error))
                    .then(|| self.retry.delay(next, &error))
                    .flatten()
                    .filter(|delay| tokio::time::Instant::now() + *delay < deadline);
            let Some(delay) = delay else {
                return Err(error);
            };
            retries = next;
            crate::telemetry::metrics().llm_retry(&request.model, error.code().as_str());
            tracing::warn!(
                model = %request.model,
                attempt = retries,
                max_retries = self.retry.max_retries,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                code = error.code().as_str(),
                %error,
                "LLM call failed; retrying"
            );
            on_retry(&LlmRetry {
                attempt: retries,
                max_retries: self.retry.max_retries,
                delay,
                error,
            });
            tokio::time::sleep(delay).await;
        }
    }

    /// Metrics and the debug line of one attempt.
    fn observe(
        &self,
        request: &ChatRequest,
        result: &Result<ChatResponse, LlmError>,
        started: Instant,
    ) {
        let metrics = crate::telemetry::metrics();
        match result {
            Ok(response) => {
                metrics.llm_request(&request.model, "ok", started.elapsed());
                if let Some(usage) = response.usage {
                    metrics.llm_tokens(
                        &request.model,
                        usage.prompt_tokens,
                        usage.completion_tokens,
                    );
                }
            }
            Err(error) => {
                metrics.llm_request(&request.model, error.code().as_str(), started.elapsed())
            }
        }
        match result {
            Ok(response) => tracing::debug!(
                model = %response.model,
                elapsed = ?started.elapsed(),
                prompt_tokens = response.usage.map(|u| u.prompt_tokens),
                completion_tokens = response.usage.map(|u| u.completion_tokens),
                tool_calls = response.tool_calls.len(),
                finish_reason = response.finish_reason.as_deref(),
                "LLM call completed"
            ),
            Err(error) => tracing::debug!(
                model = %request.model,
                elapsed = ?started.elapsed(),
                code = error.code().as_str(),
                %error,
                "LLM call failed"
            ),
        }
    }

    async fn stream_completion(
        &self,
        client: &Client<OpenAIConfig>,
        request: &ChatRequest,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ChatResponse, LlmError> {
        let target = Endpoint {
            model: &request.model,
            base_url: &self.base_url,
            has_api_key: self.has_api_key,
        };
        let mut stream = client
            .chat()
            .create_stream(request.to_openai())
            .await
            .map_err(|e| error::from_request(e, target))?;
        let mut assembler = Assembler::default();
        while let Some(item) = stream.next().await {
            let chunk = item.map_err(|e| error::from_stream(e, &request.model))?;
            assembler.push(chunk, on_delta);
        }
        assembler
            .finish(&request.model)
            .map_err(|message| LlmError::BadResponse {
                model: request.model.clone(),
                message,
            })
    }
}

/// Builds async-openai's client. Its reqwest client panics (`expect`) when
/// TLS cannot be set up, most often because the system has no CA
/// certificates; catching that keeps the server up to report the cause on
/// each call, rather than dying at startup over a client that may only
/// ever talk plain HTTP to a local server.
fn build_http_client(config: OpenAIConfig) -> Result<Client<OpenAIConfig>, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        // One attempt per request: the retries are ours (`retry`).
        let single = retry::SingleAttempt(async_openai::middleware::ReqwestService::new(
            reqwest::Client::new(),
        ));
        Client::with_config(config).with_http_service(single)
    }))
    .map_err(|payload| {
        let detail = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown cause");
        let message = format!(
            "the HTTP client could not be set up ({detail}); install the system CA certificates \
             (e.g. the ca-certificates package) or point SSL_CERT_FILE at a PEM bundle"
        );
        tracing::error!("{message}");
        message
    })
}
