//! What the calling chat said so far: its recent messages and the latest
//! structured output of an agent. Read-only.
//!
//! ```no_run
//! # fn run() -> Result<(), mozaiks_sdk::ToolError> {
//! let plan = mozaiks_sdk::chat::structured_output("Planner")?; // Option<Value>
//! for message in mozaiks_sdk::chat::recent_messages(10) {
//!     let _ = (message.role, message.content);
//! }
//! # let _ = plan; Ok(()) }
//! ```

use serde_json::Value;

use crate::__private::bindings::mozaiks::plugin::chat as wit;
use crate::ToolError;

/// Who said a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A person.
    User,
    /// An agent.
    Agent,
}

/// One message of the chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its position in the chat's event log.
    pub seq: u64,
    /// Who said it.
    pub role: Role,
    /// The agent that said it, for an agent's message.
    pub agent: Option<String>,
    /// The text (for a structured output, its JSON text; cut by the host
    /// over 64 KiB, with a note).
    pub content: String,
}

/// The last `limit` messages of the chat (at most 100), oldest first. Tool
/// calls and their results are not messages.
pub fn recent_messages(limit: u32) -> Vec<Message> {
    wit::recent_messages(limit)
        .into_iter()
        .map(|m| Message {
            seq: m.seq,
            role: if m.role == "user" {
                Role::User
            } else {
                Role::Agent
            },
            agent: m.agent,
            content: m.content,
        })
        .collect()
}

/// The latest structured output of `agent` in this chat, validated against
/// its model; `None` if it has produced none.
pub fn structured_output(agent: &str) -> Result<Option<Value>, ToolError> {
    wit::structured_output(agent)
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| ToolError::Failed(format!("the host sent an output that is not JSON: {e}")))
}
