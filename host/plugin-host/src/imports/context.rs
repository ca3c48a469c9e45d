//! `mozaiks:plugin/context`: the calling chat's variables, via [`ContextStore`].

use serde_json::Value;

use super::HostFailure;
use crate::bindings::context::{ContextError, Host};
use crate::ports::ContextSetError;
use crate::state::CallState;

use crate::limits::{
    MAX_CONTEXT_CHANGES_PER_CALL, MAX_CONTEXT_KEY_BYTES, MAX_CONTEXT_TOTAL_BYTES,
    MAX_CONTEXT_VALUE_BYTES, MAX_CONTEXT_WRITE_BYTES_PER_CALL,
};

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
        let rejected = |why: String| Ok(Err(ContextError::Rejected(why)));
        if key.len() > MAX_CONTEXT_KEY_BYTES {
            return rejected(format!(
                "the name is {} bytes, more than the {MAX_CONTEXT_KEY_BYTES} allowed",
                key.len()
            ));
        }
        if value.len() > MAX_CONTEXT_VALUE_BYTES {
            return rejected(format!(
                "value of `{key}` is {} bytes, more than the {MAX_CONTEXT_VALUE_BYTES} allowed",
                value.len()
            ));
        }
        if self.context.changes >= MAX_CONTEXT_CHANGES_PER_CALL {
            return rejected(format!(
                "this call already made {MAX_CONTEXT_CHANGES_PER_CALL} context changes, the most \
                 one call may make"
            ));
        }
        if self.context.written + value.len() > MAX_CONTEXT_WRITE_BYTES_PER_CALL {
            return rejected(format!(
                "this call already set {} bytes of context; with these {} it would pass the \
                 {MAX_CONTEXT_WRITE_BYTES_PER_CALL} bytes one call may set",
                self.context.written,
                value.len()
            ));
        }
        let parsed: Value = match serde_json::from_str(&value) {
            Ok(v) => v,
            Err(e) => return Ok(Err(ContextError::InvalidJson(e.to_string()))),
        };
        let size = key.len() + parsed.to_string().len();
        let others: usize = self
            .ports
            .context
            .list()
            .await
            .map_err(|e| fail("set", e))?
            .iter()
            .filter(|(k, _)| *k != key)
            .map(|(k, v)| k.len() + v.to_string().len())
            .sum();
        if others + size > MAX_CONTEXT_TOTAL_BYTES {
            return rejected(format!(
                "the chat's context would hold {} bytes, more than its total of \
                 {MAX_CONTEXT_TOTAL_BYTES} (names and values of all variables); remove some first",
                others + size
            ));
        }
        self.context.changes += 1;
        self.context.written += value.len();
        match self.ports.context.set(&key, parsed).await {
            Ok(()) => Ok(Ok(())),
            Err(ContextSetError::Rejected(why)) => Ok(Err(ContextError::Rejected(why))),
            Err(ContextSetError::Failed(e)) => Err(fail("set", e)),
        }
    }

    async fn remove(&mut self, key: String) -> wasmtime::Result<bool> {
        // A remove the call may no longer make is reported as nothing removed.
        if self.context.changes >= MAX_CONTEXT_CHANGES_PER_CALL {
            return Ok(false);
        }
        self.context.changes += 1;
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
