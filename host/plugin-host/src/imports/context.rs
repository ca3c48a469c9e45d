//! `mozaiks:plugin/context`: the calling chat's variables, via [`ContextStore`].

use serde_json::Value;

use super::HostFailure;
use crate::bindings::context::{ContextError, Host};
use crate::ports::ContextSetError;
use crate::state::CallState;

/// Keeps a single variable from swallowing the chat's storage and prompt.
const MAX_CONTEXT_VALUE_BYTES: usize = 1024 * 1024;

fn fail(op: &str, err: impl std::fmt::Display) -> wasmtime::Error {
    wasmtime::Error::new(HostFailure(format!("context.{op} failed: {err}")))
}

impl Host for CallState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        let value = self
            .ports
            .context
            .get(&key)
            .await
            .map_err(|e| fail("get", e))?;
        Ok(value.map(|v| v.to_string()))
    }

    async fn set(
        &mut self,
        key: String,
        value: String,
    ) -> wasmtime::Result<Result<(), ContextError>> {
        if value.len() > MAX_CONTEXT_VALUE_BYTES {
            return Ok(Err(ContextError::Rejected(format!(
                "value of `{key}` is {} bytes, more than the {MAX_CONTEXT_VALUE_BYTES} allowed",
                value.len()
            ))));
        }
        let parsed: Value = match serde_json::from_str(&value) {
            Ok(v) => v,
            Err(e) => return Ok(Err(ContextError::InvalidJson(e.to_string()))),
        };
        match self.ports.context.set(&key, parsed).await {
            Ok(()) => Ok(Ok(())),
            Err(ContextSetError::Rejected(why)) => Ok(Err(ContextError::Rejected(why))),
            Err(ContextSetError::Failed(e)) => Err(fail("set", e)),
        }
    }

    async fn remove(&mut self, key: String) -> wasmtime::Result<bool> {
        self.ports
            .context
            .remove(&key)
            .await
            .map_err(|e| fail("remove", e))
    }

    async fn entries(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        let all = self
            .ports
            .context
            .list()
            .await
            .map_err(|e| fail("entries", e))?;
        Ok(all.into_iter().map(|(k, v)| (k, v.to_string())).collect())
    }
}
