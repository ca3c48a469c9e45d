//! [`Call`]: who is calling, and the chat's context variables.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::__private::bindings::exports::mozaiks::plugin::tool::CallInfo;
use crate::__private::bindings::mozaiks::plugin::context as wit;
use crate::__private::bindings::mozaiks::plugin::invocation;
use crate::ToolError;
use crate::ui::Ui;

/// One call of a tool function: who made it, and access to the calling chat.
///
/// Every call runs in a fresh instance, so nothing kept in memory survives
/// it; state that must outlive a call goes into [`Call::context`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    chat_id: String,
    workflow: String,
    agent: String,
    tool_call_id: String,
}

impl Call {
    pub(crate) fn new(info: CallInfo) -> Self {
        Self {
            chat_id: info.chat_id,
            workflow: info.workflow,
            agent: info.agent,
            tool_call_id: info.tool_call_id,
        }
    }

    #[cfg(test)]
    pub(crate) fn new_for_tests() -> Self {
        Self::new(CallInfo {
            chat_id: "chat-1".to_owned(),
            workflow: "Demo".to_owned(),
            agent: "planner".to_owned(),
            tool_call_id: "call-1".to_owned(),
        })
    }

    /// The chat this call belongs to.
    pub fn chat_id(&self) -> &str {
        &self.chat_id
    }

    /// The workflow the chat runs.
    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    /// The agent that asked for the call.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The LLM's id for this tool call, as it appears in the chat's events.
    pub fn tool_call_id(&self) -> &str {
        &self.tool_call_id
    }

    /// The idempotency key of this call: the same on every attempt of this
    /// one tool call, different for every other call. A call runs at least
    /// once: when a server stops during a call, the chat runs it again from
    /// the start, with the same key. Record the key with the call's side
    /// effect (a [`crate::data`] document named by it, written only if
    /// absent) and skip an effect already recorded, and the effect happens
    /// exactly once.
    pub fn idempotency_key(&self) -> String {
        invocation::idempotency_key()
    }

    /// Which attempt of its tool call this is: 1 the first time, 2 when it
    /// runs again after a server stopped during the first, and so on.
    pub fn attempt(&self) -> u32 {
        invocation::attempt()
    }

    /// The context variables of the calling chat.
    pub fn context(&self) -> Context<'_> {
        Context { _call: self }
    }

    /// The UI of the calling chat: ask the human, or show them something.
    pub fn ui(&self) -> Ui<'_> {
        Ui::new(self)
    }
}

/// The context variables of the chat that made the call: its shared,
/// persisted state, as JSON values.
///
/// Get it from [`Call::context`]. Every change is persisted by the host before
/// the chat sees it.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    // Ties the handle to a call: the host offers context only during one.
    _call: &'a Call,
}

/// A context value's JSON text as a `T`: absent and `null` are `None`.
fn decode<T: DeserializeOwned>(key: &str, text: Option<&str>) -> Result<Option<T>, ToolError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let value: Value = serde_json::from_str(text).map_err(|err| {
        ToolError::Failed(format!("context variable `{key}` is not valid JSON: {err}"))
    })?;
    if value.is_null() {
        return Ok(None);
    }
    serde_json::from_value(value).map(Some).map_err(|err| {
        ToolError::Failed(format!(
            "context variable `{key}` has an unexpected shape: {err}"
        ))
    })
}

impl Context<'_> {
    /// Returns the variable `key` as a `T`, or `None` if it is not set or
    /// its value is `null` (a declared variable without a default holds
    /// `null` until something sets it).
    ///
    /// Fails with [`ToolError::Failed`] if the value does not fit `T`; use
    /// [`serde_json::Value`] as `T` to take whatever is there.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ToolError> {
        decode(key, wit::get(key).as_deref())
    }

    /// Sets the variable `key` to `value`.
    ///
    /// Fails with [`ToolError::Denied`] if the host refuses the change (for
    /// example the value is too large or the variable is read-only for tools).
    pub fn set(&self, key: &str, value: &impl Serialize) -> Result<(), ToolError> {
        let text = serde_json::to_string(value).map_err(|err| {
            ToolError::Failed(format!(
                "context variable `{key}`: cannot encode the value: {err}"
            ))
        })?;
        wit::set(key, &text).map_err(|err| match err {
            wit::ContextError::InvalidJson(msg) => ToolError::Failed(format!(
                "context variable `{key}`: the host rejected the JSON: {msg}"
            )),
            wit::ContextError::Rejected(msg) => {
                ToolError::Denied(format!("context variable `{key}`: {msg}"))
            }
        })
    }

    /// Removes the variable `key`. Returns true if it was set.
    pub fn remove(&self, key: &str) -> bool {
        wit::remove(key)
    }

    /// Lists every variable of the chat, sorted by key.
    pub fn list(&self) -> Result<Vec<(String, Value)>, ToolError> {
        wit::entries()
            .into_iter()
            .map(|(key, text)| match serde_json::from_str(&text) {
                Ok(value) => Ok((key, value)),
                Err(err) => Err(ToolError::Failed(format!(
                    "context variable `{key}` is not valid JSON: {err}"
                ))),
            })
            .collect()
    }
}

#[cfg(test)]
mod context_tests {
    use super::decode;
    use crate::ToolError;

    #[test]
    fn a_null_value_reads_as_absent() {
        assert_eq!(decode::<String>("plan", Some("null")).unwrap(), None);
        assert_eq!(
            decode::<serde_json::Value>("plan", Some(" null ")).unwrap(),
            None
        );
        assert_eq!(decode::<String>("plan", None).unwrap(), None);
    }

    #[test]
    fn a_value_reads_as_its_type_and_a_wrong_shape_fails_naming_the_variable() {
        assert_eq!(
            decode::<String>("plan", Some("\"ready\"")).unwrap(),
            Some("ready".to_owned())
        );
        assert_eq!(
            decode::<Vec<u32>>("ids", Some("[1,2]")).unwrap(),
            Some(vec![1, 2])
        );
        match decode::<String>("count", Some("3")) {
            Err(ToolError::Failed(message)) => assert!(message.contains("`count`"), "{message}"),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}
