//! The [`ChatReader`] port: what the calling chat said so far, behind the
//! read-only `chat` import.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::PortError;

/// Who said a [`ChatMessage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageRole {
    /// A person.
    User,
    /// An agent.
    Agent,
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    /// Its position in the chat's event log.
    pub seq: u64,
    /// Who said it.
    pub role: MessageRole,
    /// The agent that said it, for an agent's message.
    #[serde(default)]
    pub agent: Option<String>,
    /// The text (for a structured output, its JSON text).
    pub content: String,
}

/// Reads of the calling chat.
#[async_trait]
pub trait ChatReader: Send + Sync {
    /// The last `limit` messages, oldest first.
    async fn recent_messages(&self, limit: usize) -> Result<Vec<ChatMessage>, PortError>;
    /// The latest validated structured output of `agent`, if any.
    async fn structured_output(&self, agent: &str) -> Result<Option<Value>, PortError>;
}

/// A chat given in advance: the harness's and `mozaiks tool call`'s
/// (`--transcript-file`).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedChat {
    /// The messages, oldest first.
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
    /// The latest structured output of each agent.
    #[serde(default)]
    pub structured_outputs: BTreeMap<String, Value>,
}

#[async_trait]
impl ChatReader for ScriptedChat {
    async fn recent_messages(&self, limit: usize) -> Result<Vec<ChatMessage>, PortError> {
        let skip = self.messages.len().saturating_sub(limit);
        Ok(self.messages[skip..].to_vec())
    }

    async fn structured_output(&self, agent: &str) -> Result<Option<Value>, PortError> {
        Ok(self.structured_outputs.get(agent).cloned())
    }
}

/// No chat: no messages, no outputs.
#[async_trait]
impl ChatReader for crate::ports::NoChat {
    async fn recent_messages(&self, _limit: usize) -> Result<Vec<ChatMessage>, PortError> {
        Ok(Vec::new())
    }

    async fn structured_output(&self, _agent: &str) -> Result<Option<Value>, PortError> {
        Ok(None)
    }
}
