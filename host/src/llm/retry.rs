//! The server's retry policy for LLM calls, and the HTTP service that
//! sends each attempt exactly once.
//!
//! async-openai's own client retries 429, 5xx and connection failures
//! silently (three times, with its own backoff). We install
//! `SingleAttempt` instead, so every attempt is ours to see: a retry is
//! decided by [`RetryPolicy`], reported to the caller (the run turns it into
//! an `llm_retry` event), counted in `mozaiks_llm_retries_total`, and a
//! server's `Retry-After` is honoured.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::middleware::{HttpRequestFactory, ReqwestService};

use super::LlmError;

/// Retries after the first attempt when `MOZAIKS_LLM_MAX_RETRIES` is unset.
pub(crate) const DEFAULT_MAX_RETRIES: u32 = 2;

/// The first backoff when `MOZAIKS_LLM_RETRY_BACKOFF_MS` is unset; each
/// retry doubles it.
pub(crate) const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);

/// The longest wait before one retry, `Retry-After` included: a server
/// asking for more is not waited for (the error is reported at once).
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(60);

/// When an LLM call is tried again.
///
/// Retried: HTTP 429 (after `Retry-After` when the server sends it), HTTP
/// 5xx, and a server that could not be reached, all before the stream
/// starts. Never retried: other statuses (a wrong key or model stays
/// wrong), a stream that broke off after text was shown, a timeout. Every
/// wait counts against the call's timeout; a wait that would outlive it is
/// not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (`MOZAIKS_LLM_MAX_RETRIES`); 0: none.
    pub max_retries: u32,
    /// The wait before the first retry (`MOZAIKS_LLM_RETRY_BACKOFF_MS`),
    /// doubled for each next one, unless the server says `Retry-After`.
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: DEFAULT_MAX_RETRIES,
            backoff: DEFAULT_BACKOFF,
        }
    }
}

impl RetryPolicy {
    /// Whether `error` is worth another attempt.
    pub fn retryable(error: &LlmError) -> bool {
        match error {
            LlmError::RateLimited { .. } | LlmError::Connect { .. } => true,
            LlmError::Status { status, .. } => (500..=599).contains(status),
            _ => false,
        }
    }

    /// The wait before retry number `retry` (1-based) after `error`: the
    /// server's `Retry-After`, else the backoff doubled per retry; capped
    /// at `MAX_DELAY` (`None`: a `Retry-After` over it, not waited for).
    pub fn delay(&self, retry: u32, error: &LlmError) -> Option<Duration> {
        if let LlmError::RateLimited {
            retry_after: Some(after),
            ..
        } = error
        {
            return (*after <= MAX_DELAY).then_some(*after);
        }
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        Some(self.backoff.saturating_mul(factor).min(MAX_DELAY))
    }
}

/// One retry, as the caller is told of it before the wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmRetry {
    /// 1 for the first retry.
    pub attempt: u32,
    /// The policy's [`RetryPolicy::max_retries`].
    pub max_retries: u32,
    /// The wait before it.
    pub delay: Duration,
    /// The failure that is retried.
    pub error: LlmError,
}

tokio::task_local! {
    /// The `Retry-After` of the last response of the call running in this
    /// task, set by `SingleAttempt`.
    pub(super) static RETRY_AFTER: std::cell::Cell<Option<Duration>>;
}

/// async-openai's plain reqwest service, one attempt per request, noting
/// the `Retry-After` header (in seconds) for the call in progress.
#[derive(Debug, Clone)]
pub(super) struct SingleAttempt(pub(super) ReqwestService);

impl tower::Service<HttpRequestFactory> for SingleAttempt {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequestFactory) -> Self::Future {
        let attempt = self.0.call(request);
        Box::pin(async move {
            let response = attempt.await?;
            let after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let _ = RETRY_AFTER.try_with(|slot| slot.set(after));
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> LlmError {
        LlmError::Status {
            model: "m".into(),
            status,
            message: String::new(),
        }
    }

    #[test]
    fn only_rate_limits_server_errors_and_unreachable_servers_are_retried() {
        let limited = LlmError::RateLimited {
            model: "m".into(),
            retry_after: None,
            message: String::new(),
        };
        for retried in [status(500), status(503), limited] {
            assert!(RetryPolicy::retryable(&retried), "{retried}");
        }
        for kept in [
            status(400),
            status(401),
            status(404),
            LlmError::Timeout {
                model: "m".into(),
                after: Duration::from_secs(1),
            },
            LlmError::Stream {
                model: "m".into(),
                message: String::new(),
            },
        ] {
            assert!(!RetryPolicy::retryable(&kept), "{kept}");
        }
    }

    #[test]
    fn the_backoff_doubles_and_retry_after_wins_up_to_the_cap() {
        let policy = RetryPolicy {
            max_retries: 3,
            backoff: Duration::from_millis(100),
        };
        let delays: Vec<_> = (1..=3).map(|n| policy.delay(n, &status(502))).collect();
        assert_eq!(
            delays,
            [100, 200, 400].map(|ms| Some(Duration::from_millis(ms)))
        );
        let after = |secs| LlmError::RateLimited {
            model: "m".into(),
            retry_after: Some(Duration::from_secs(secs)),
            message: String::new(),
        };
        assert_eq!(policy.delay(1, &after(7)), Some(Duration::from_secs(7)));
        assert_eq!(policy.delay(1, &after(3600)), None);
    }
}
