//! The `chat` import of a tool call on the server: the calling chat's
//! messages and structured outputs, read from its event log in the store.

use std::sync::Arc;

use async_trait::async_trait;
use mozaiks_plugin_host::{ChatMessage, ChatReader, MessageRole, PortError};
use serde_json::Value;

use super::live::WriteBarrier;
use crate::event::{Envelope, Event};
use crate::store::ChatStore;

/// One chat's log, read when a tool asks.
#[derive(Debug)]
pub(crate) struct ChatTranscript {
    store: Arc<dyn ChatStore>,
    chat_id: String,
    /// Waited for before a read, so the tool sees every event the run
    /// emitted before the call (`live/writer.rs`).
    before_reads: Option<WriteBarrier>,
}

impl ChatTranscript {
    /// The chat `chat_id` of `store`.
    pub(crate) fn new(
        store: Arc<dyn ChatStore>,
        chat_id: &str,
        before_reads: Option<WriteBarrier>,
    ) -> Self {
        Self {
            store,
            chat_id: chat_id.to_owned(),
            before_reads,
        }
    }

    async fn events(&self) -> Result<Vec<Envelope>, PortError> {
        if let Some(barrier) = &self.before_reads {
            barrier
                .wait()
                .await
                .map_err(|e| PortError::new(e.to_string()))?;
        }
        self.store
            .events(&self.chat_id, 0, None)
            .await
            .map_err(|e| PortError::new(e.to_string()))
    }
}

/// `envelope` as a message, if it is one: a person's message, or an agent's
/// with text (an agent's step that only called tools is not a message).
fn message(envelope: &Envelope) -> Option<ChatMessage> {
    let seq = envelope.seq?;
    match &envelope.event {
        Event::UserMessage { text } => Some(ChatMessage {
            seq,
            role: MessageRole::User,
            agent: None,
            content: text.clone(),
        }),
        Event::AgentMessage { agent, text, .. } if !text.is_empty() => Some(ChatMessage {
            seq,
            role: MessageRole::Agent,
            agent: Some(agent.clone()),
            content: text.clone(),
        }),
        _ => None,
    }
}

#[async_trait]
impl ChatReader for ChatTranscript {
    async fn recent_messages(&self, limit: usize) -> Result<Vec<ChatMessage>, PortError> {
        let mut messages: Vec<ChatMessage> =
            self.events().await?.iter().filter_map(message).collect();
        let skip = messages.len().saturating_sub(limit);
        Ok(messages.split_off(skip))
    }

    async fn structured_output(&self, agent: &str) -> Result<Option<Value>, PortError> {
        Ok(self
            .events()
            .await?
            .into_iter()
            .rev()
            .find_map(|envelope| match envelope.event {
                Event::AgentMessage {
                    agent: from,
                    structured: Some(output),
                    ..
                } if from == agent => Some(output),
                _ => None,
            }))
    }
}
