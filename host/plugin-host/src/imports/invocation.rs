//! `mozaiks:plugin/invocation`: the call's idempotency key and attempt, as
//! the embedder gave them in [`crate::CallInfo`] (the key derived from the
//! chat and the tool call id when it gave none).

use crate::bindings::invocation::Host;
use crate::idempotency::idempotency_key;
use crate::state::CallState;

impl Host for CallState {
    async fn idempotency_key(&mut self) -> wasmtime::Result<String> {
        let info = &self.scope.info;
        Ok(if info.idempotency_key.is_empty() {
            idempotency_key(&[&info.chat_id, &info.tool_call_id])
        } else {
            info.idempotency_key.clone()
        })
    }

    async fn attempt(&mut self) -> wasmtime::Result<u32> {
        Ok(self.scope.info.attempt)
    }
}
