//! `mozaiks:plugin/ui`: ask the user through the [`UiBridge`], with the
//! timeout enforced here and the wait excluded from the CPU deadline.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bindings::ui::{self, Host};
use crate::limits::{MAX_UI_TIMEOUT, UI_TIMEOUT_GRACE};
use crate::ports::{Display, UiError, UiRequest};
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

impl Host for CallState {
    async fn ask(
        &mut self,
        request: ui::UiRequest,
    ) -> wasmtime::Result<Result<String, ui::UiError>> {
        let payload: Value = match serde_json::from_str(&request.payload) {
            Ok(v) => v,
            Err(e) => {
                return Ok(Err(ui::UiError::InvalidRequest(format!(
                    "payload is not JSON: {e}"
                ))));
            }
        };
        let timeout = Duration::from_millis(u64::from(request.timeout_ms)).min(MAX_UI_TIMEOUT);
        let request = UiRequest {
            component: request.component,
            payload,
            display: display(request.display),
            timeout,
        };
        let started = Instant::now();
        let answer = tokio::time::timeout(
            timeout + UI_TIMEOUT_GRACE,
            self.ports.ui.ask(&self.scope.info, request),
        )
        .await;
        self.budget.add_wait(started.elapsed());
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
        // Fire and forget by contract: a payload that is not JSON is sent as a string.
        let payload = serde_json::from_str(&payload).unwrap_or(Value::String(payload));
        self.ports
            .ui
            .notify(&self.scope.info, &component, payload, display(display_mode))
            .await;
        Ok(())
    }
}
