//! The UI tool bridge: ask the human in the chat through a UI component.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::__private::bindings::mozaiks::plugin::ui as wit;
use crate::Call;

/// Where a client shows a UI component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Display {
    /// Inside the conversation, like a message.
    Inline,
    /// In a side panel beside the conversation.
    Artifact,
}

impl From<Display> for wit::Display {
    fn from(display: Display) -> Self {
        match display {
            Display::Inline => Self::Inline,
            Display::Artifact => Self::Artifact,
        }
    }
}

/// Why [`Ui::ask`] returned without an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiError {
    /// Nobody answered within the timeout.
    Timeout,
    /// The user or the host cancelled the request (for example the chat ended).
    Cancelled,
    /// The chat has no UI (for example a headless run); the message says why.
    Unavailable(String),
    /// The payload could not be encoded, the component is unknown, or the
    /// answer was not JSON; the message says which.
    InvalidRequest(String),
}

impl fmt::Display for UiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("nobody answered the UI request in time"),
            Self::Cancelled => f.write_str("the UI request was cancelled"),
            Self::Unavailable(msg) => write!(f, "no UI is available: {msg}"),
            Self::InvalidRequest(msg) => write!(f, "invalid UI request: {msg}"),
        }
    }
}

impl std::error::Error for UiError {}

/// Timeout and cancellation become [`crate::ToolError::Cancelled`], the rest
/// [`crate::ToolError::Failed`].
impl From<UiError> for crate::ToolError {
    fn from(err: UiError) -> Self {
        match err {
            UiError::Timeout | UiError::Cancelled => Self::Cancelled(err.to_string()),
            UiError::Unavailable(_) | UiError::InvalidRequest(_) => Self::Failed(err.to_string()),
        }
    }
}

/// The UI of the chat that made the call. Get it from [`Call::ui`].
#[derive(Debug, Clone, Copy)]
pub struct Ui<'a> {
    // Ties the handle to a call: the host offers the UI only during one.
    _call: &'a Call,
}

impl<'a> Ui<'a> {
    pub(crate) fn new(call: &'a Call) -> Self {
        Self { _call: call }
    }

    /// Shows `component` with `payload` as its input and waits for the
    /// user's answer, at most `timeout` (the host may cap it).
    ///
    /// Waiting does not count against the call's deadline.
    pub fn ask(
        &self,
        component: &str,
        payload: &impl Serialize,
        display: Display,
        timeout: Duration,
    ) -> Result<Value, UiError> {
        let payload = serde_json::to_string(payload).map_err(|err| {
            UiError::InvalidRequest(format!("cannot encode the payload of `{component}`: {err}"))
        })?;
        let request = wit::UiRequest {
            component: component.to_owned(),
            payload,
            display: display.into(),
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        };
        let answer = wit::ask(&request).map_err(|err| match err {
            wit::UiError::Timeout => UiError::Timeout,
            wit::UiError::Cancelled => UiError::Cancelled,
            wit::UiError::Unavailable(msg) => UiError::Unavailable(msg),
            wit::UiError::InvalidRequest(msg) => UiError::InvalidRequest(msg),
        })?;
        serde_json::from_str(&answer).map_err(|err| {
            UiError::InvalidRequest(format!("the answer from `{component}` is not JSON: {err}"))
        })
    }

    /// Shows `component` with `payload` without waiting for an answer (a
    /// progress note, a preview). Failures are ignored by design; a payload
    /// that cannot be encoded is logged as a warning and not sent.
    pub fn notify(&self, component: &str, payload: &impl Serialize, display: Display) {
        match serde_json::to_string(payload) {
            Ok(payload) => wit::notify(component, &payload, display.into()),
            Err(err) => crate::log::warn(
                "UI notification not sent: cannot encode its payload",
                &[("component", component), ("error", &err.to_string())],
            ),
        }
    }
}
