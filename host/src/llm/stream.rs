//! The response side: assembling streamed chunks into one [`ChatResponse`].
//!
//! Text deltas are appended in arrival order. Tool calls arrive as deltas
//! keyed by `index`: the first delta of a call carries its id and name, the
//! later ones pieces of the arguments. Only choice 0 is read (we never ask
//! for `n > 1`). The usage arrives last, in a chunk with no choices.

use std::collections::BTreeMap;

use async_openai::types::chat::{CreateChatCompletionStreamResponse, FinishReason};

use super::ToolCallRequest;

/// What a completed call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The assistant text: every text delta joined (a refusal, if the
    /// model sent one, is text too). Empty when it only called tools.
    pub content: String,
    /// The tool calls, in the order the model numbered them.
    pub tool_calls: Vec<ToolCallRequest>,
    /// Token usage, when the server reported it.
    pub usage: Option<Usage>,
    /// Why generation stopped: `stop`, `length`, `tool_calls`,
    /// `content_filter`, ...; `None` if the server never said.
    pub finish_reason: Option<String>,
    /// The model that answered, as the server named it (falls back to the
    /// requested model).
    pub model: String,
}

/// Token counts of one call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens read.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
}

impl Usage {
    /// Prompt and completion tokens together.
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// A tool call whose deltas are still arriving.
#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Folds stream chunks into a [`ChatResponse`].
#[derive(Debug, Default)]
pub(super) struct Assembler {
    chunks: usize,
    content: String,
    calls: BTreeMap<u32, PartialCall>,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    model: String,
}

impl Assembler {
    /// Takes in one chunk, passing any new text to `on_delta`.
    pub(super) fn push(
        &mut self,
        chunk: CreateChatCompletionStreamResponse,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) {
        self.chunks += 1;
        if self.model.is_empty() && !chunk.model.is_empty() {
            self.model = chunk.model;
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(Usage {
                prompt_tokens: u64::from(usage.prompt_tokens),
                completion_tokens: u64::from(usage.completion_tokens),
            });
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            let delta = choice.delta;
            for text in [delta.content, delta.refusal].into_iter().flatten() {
                if !text.is_empty() {
                    on_delta(&text);
                    self.content.push_str(&text);
                }
            }
            for piece in delta.tool_calls.into_iter().flatten() {
                let call = self.calls.entry(piece.index).or_default();
                if let Some(id) = piece.id.filter(|id| !id.is_empty()) {
                    call.id = id;
                }
                if let Some(function) = piece.function {
                    if let Some(name) = function.name {
                        // OpenAI sends the name once; some compatible
                        // servers repeat it in every delta.
                        if call.name.is_empty() {
                            call.name = name;
                        } else if name != call.name {
                            call.name.push_str(&name);
                        }
                    }
                    if let Some(arguments) = function.arguments {
                        call.arguments.push_str(&arguments);
                    }
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(finish_reason_name(reason).to_owned());
            }
        }
    }

    /// The assembled response, or why the stream was unusable.
    pub(super) fn finish(self, requested_model: &str) -> Result<ChatResponse, String> {
        if self.chunks == 0 {
            return Err(
                "the server sent a successful response with no completion chunks \
                 (is OPENAI_BASE_URL an OpenAI-compatible endpoint ending in /v1?)"
                    .to_owned(),
            );
        }
        let mut tool_calls = Vec::with_capacity(self.calls.len());
        for (index, call) in self.calls {
            if call.name.is_empty() {
                return Err(format!(
                    "tool call #{index} arrived without a function name"
                ));
            }
            let id = if call.id.is_empty() {
                // Some compatible servers omit ids; the transcript still
                // needs one to pair the tool result with the call.
                tracing::warn!(index, name = %call.name, "tool call without an id; using a synthetic one");
                format!("call_{index}")
            } else {
                call.id
            };
            let arguments = if call.arguments.trim().is_empty() {
                "{}".to_owned()
            } else {
                call.arguments
            };
            tool_calls.push(ToolCallRequest {
                id,
                name: call.name,
                arguments,
            });
        }
        Ok(ChatResponse {
            content: self.content,
            tool_calls,
            usage: self.usage,
            finish_reason: self.finish_reason,
            model: if self.model.is_empty() {
                requested_model.to_owned()
            } else {
                self.model
            },
        })
    }
}

/// The wire name of a finish reason.
fn finish_reason_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
        FinishReason::FunctionCall => "function_call",
    }
}
