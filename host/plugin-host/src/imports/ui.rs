//! `mozaiks:plugin/ui`: ask the user through the [`UiBridge`], with the
//! timeout enforced here, only the wait for a person excluded from the CPU
//! deadline, and the number of requests per call bounded.

use std::time::Duration;

use serde_json::Value;

use crate::bindings::ui::{self, Host};
use crate::limits::{
    MAX_UI_ASKS_PER_CALL, MAX_UI_COMPONENT_BYTES, MAX_UI_EVENTS_PER_CALL, MAX_UI_PAYLOAD_BYTES,
    MAX_UI_TIMEOUT, UI_TIMEOUT_GRACE, clip,
};
use crate::ports::{Display, LogLevel, LogRecord, LogSource, UiError, UiRequest, WaitClock};
use crate::state::CallState;

fn display(d: ui::Display) -> Display {
    match d {
        ui::Display::Inline => Display::Inline,
        ui::Display::Artifact => Display::Artifact,
    }
}

fn to_wit(e: UiError) -> ui::UiError {
    match e {
        UiError::Timeout => ui::UiError::Timeout,
        UiError::Cancelled => ui::UiError::Cancelled,
        UiError::Unavailable(m) => ui::UiError::Unavailable(m),
        UiError::InvalidRequest(m) => ui::UiError::InvalidRequest(m),
    }
}

/// Why a request cannot be sent at its size, if it cannot.
fn oversized(component: &str, payload: &str) -> Option<String> {
    if component.len() > MAX_UI_COMPONENT_BYTES {
        return Some(format!(
            "the component name is {} bytes, more than the {MAX_UI_COMPONENT_BYTES} allowed",
            component.len()
        ));
    }
    (payload.len() > MAX_UI_PAYLOAD_BYTES).then(|| {
        format!(
            "the payload is {} bytes, more than the {MAX_UI_PAYLOAD_BYTES} allowed",
            payload.len()
        )
    })
}

impl CallState {
    /// A warning from the host about this call, logged as the call's own.
    pub(crate) fn warn(&self, message: String) {
        self.ports.log.log(LogRecord {
            plugin: self.scope.plugin.to_string(),
            function: self.scope.function.clone(),
            chat_id: self.scope.info.chat_id.clone(),
            level: LogLevel::Warn,
            source: LogSource::Log,
            message,
            fields: Default::default(),
        });
    }

    /// Counts one UI event against the per-call limit; false (and one
    /// warning in the tool's log) once the limit is reached.
    fn take_ui_event(&mut self, what: &str) -> bool {
        if self.ui.events < MAX_UI_EVENTS_PER_CALL {
            self.ui.events += 1;
            return true;
        }
        self.ui.dropped += 1;
        if self.ui.dropped == 1 {
            self.warn(format!(
                "{what} dropped: this call already sent {MAX_UI_EVENTS_PER_CALL} UI events, \
                 the most one call may send; later ones are dropped too"
            ));
        }
        false
    }
}

impl Host for CallState {
    async fn ask(
        &mut self,
        request: ui::UiRequest,
    ) -> wasmtime::Result<Result<String, ui::UiError>> {
        if self.ui.asks >= MAX_UI_ASKS_PER_CALL {
            return Ok(Err(ui::UiError::InvalidRequest(format!(
                "this call already made {MAX_UI_ASKS_PER_CALL} ui.ask requests, the most one \
                 call may make; ask several questions in one request"
            ))));
        }
        if let Some(why) = oversized(&request.component, &request.payload) {
            return Ok(Err(ui::UiError::InvalidRequest(why)));
        }
        if !self.take_ui_event("ui.ask") {
            return Ok(Err(ui::UiError::InvalidRequest(format!(
                "this call already sent {MAX_UI_EVENTS_PER_CALL} UI events, the most one call \
                 may send"
            ))));
        }
        self.ui.asks += 1;
        let payload: Value = match serde_json::from_str(&request.payload) {
            Ok(v) => v,
            Err(e) => {
                return Ok(Err(ui::UiError::InvalidRequest(format!(
                    "payload is not JSON: {e}"
                ))));
            }
        };
        let timeout = Duration::from_millis(u64::from(request.timeout_ms)).min(MAX_UI_TIMEOUT);
        let waiting = WaitClock::default();
        let request = UiRequest {
            component: request.component,
            payload,
            display: display(request.display),
            timeout,
            waiting: waiting.clone(),
        };
        let answer = tokio::time::timeout(
            timeout + UI_TIMEOUT_GRACE,
            self.ports.ui.ask(&self.scope.info, request),
        )
        .await;
        // Only the wait for a person, and no more than they were given.
        self.budget
            .add_wait(waiting.waited().unwrap_or_default().min(timeout));
        Ok(match answer {
            Ok(Ok(value)) => Ok(value.to_string()),
            Ok(Err(e)) => Err(to_wit(e)),
            Err(_elapsed) => Err(ui::UiError::Timeout),
        })
    }

    async fn notify(
        &mut self,
        component: String,
        payload: String,
        display_mode: ui::Display,
    ) -> wasmtime::Result<()> {
        if !self.take_ui_event("ui.notify") {
            return Ok(());
        }
        if let Some(why) = oversized(&component, &payload) {
            let mut component = component;
            clip(&mut component, MAX_UI_COMPONENT_BYTES);
            self.warn(format!("ui.notify of `{component}` dropped: {why}"));
            return Ok(());
        }
        // Fire and forget by contract: a payload that is not JSON is sent as a string.
        let payload = serde_json::from_str(&payload).unwrap_or(Value::String(payload));
        self.ports
            .ui
            .notify(&self.scope.info, &component, payload, display(display_mode))
            .await;
        Ok(())
    }
}
