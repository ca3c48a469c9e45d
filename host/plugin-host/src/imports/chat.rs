//! `mozaiks:plugin/chat`: read-only views of the calling chat, via
//! [`crate::ChatReader`]; counts and sizes bounded here.

use super::HostFailure;
use crate::bindings::chat::{Host, Message};
use crate::limits::{MAX_CHAT_MESSAGE_BYTES, MAX_CHAT_MESSAGES};
use crate::ports::MessageRole;
use crate::state::CallState;

fn fail(op: &str, err: impl std::fmt::Display) -> wasmtime::Error {
    wasmtime::Error::new(HostFailure(format!("chat.{op} failed: {err}")))
}

/// `text` cut at `max` bytes (on a character boundary), with a note.
fn cut(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let total = text.len();
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!("… [cut: {total} bytes, {max} passed to tools]"));
    text
}

impl Host for CallState {
    async fn recent_messages(&mut self, limit: u32) -> wasmtime::Result<Vec<Message>> {
        let limit = (limit as usize).min(MAX_CHAT_MESSAGES);
        let messages = self
            .ports
            .chat
            .recent_messages(limit)
            .await
            .map_err(|e| fail("recent-messages", e))?;
        let skip = messages.len().saturating_sub(limit);
        Ok(messages
            .into_iter()
            .skip(skip)
            .map(|m| Message {
                seq: m.seq,
                role: match m.role {
                    MessageRole::User => "user",
                    MessageRole::Agent => "agent",
                }
                .to_owned(),
                agent: m.agent,
                content: cut(m.content, MAX_CHAT_MESSAGE_BYTES),
            })
            .collect())
    }

    async fn structured_output(&mut self, agent: String) -> wasmtime::Result<Option<String>> {
        let output = self
            .ports
            .chat
            .structured_output(&agent)
            .await
            .map_err(|e| fail("structured-output", e))?;
        Ok(output.map(|v| v.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_text_is_cut_on_a_character_boundary_with_a_note() {
        let text = "é".repeat(10);
        let out = cut(text, 5);
        assert!(out.starts_with("éé…"), "{out}");
        assert!(out.contains("20 bytes"), "{out}");
        assert_eq!(cut("short".to_owned(), 5), "short");
    }
}
