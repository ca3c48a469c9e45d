//! The request side: [`ChatRequest`] and its parts, and their translation
//! into async-openai's `CreateChatCompletionRequest`.

use std::time::Duration;

use async_openai::types::chat::{
    ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls,
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestToolMessage,
    ChatCompletionRequestToolMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionStreamOptions, ChatCompletionTool,
    ChatCompletionTools, CreateChatCompletionRequest, FunctionCall, FunctionObject, ResponseFormat,
    ResponseFormatJsonSchema,
};

/// The longest author or schema name OpenAI accepts
/// (`^[a-zA-Z0-9_-]{1,64}$`).
pub(crate) const MAX_NAME_LEN: usize = 64;

/// The schema name sent when a [`ResponseSchema`] name sanitises to nothing.
const FALLBACK_SCHEMA_NAME: &str = "response";

/// One chat completion call.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The model, e.g. `gpt-4o-mini`.
    pub model: String,
    /// The transcript, oldest first.
    pub messages: Vec<ChatMessage>,
    /// The function tools offered; empty offers none.
    pub tools: Vec<ToolDefinition>,
    /// Ask for JSON matching a schema (structured output).
    pub response_format: Option<ResponseSchema>,
    /// Sampling temperature; `None` leaves the server default.
    pub temperature: Option<f64>,
    /// Upper bound on generated tokens, sent as `max_completion_tokens`.
    pub max_tokens: Option<u32>,
    /// Bound on the whole call: connecting, waiting and streaming.
    pub timeout: Duration,
    /// Best-effort determinism, where the server supports it.
    pub seed: Option<i64>,
}

/// One message of a transcript.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatMessage {
    /// Instructions for the model.
    System {
        /// The instructions.
        content: String,
    },
    /// A user turn.
    User {
        /// Who spoke, when several users share a chat. Sanitised to
        /// OpenAI's name pattern when sent (see [`sanitize_name`]).
        name: Option<String>,
        /// What they said.
        content: String,
    },
    /// An earlier model turn: text, tool calls, or both.
    Assistant {
        /// Which agent spoke. Sanitised like [`ChatMessage::User`]'s name.
        name: Option<String>,
        /// The text, if any.
        content: Option<String>,
        /// The tool calls it made; each must be answered by a
        /// [`ChatMessage::Tool`] before the next non-tool message.
        tool_calls: Vec<ToolCallRequest>,
    },
    /// The result of one tool call.
    Tool {
        /// The [`ToolCallRequest::id`] this answers.
        tool_call_id: String,
        /// The result, usually JSON text.
        content: String,
    },
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallRequest {
    /// The server's id for the call, echoed in the [`ChatMessage::Tool`]
    /// answer.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as JSON text, exactly as the model wrote them (may
    /// be invalid JSON: validate before use).
    pub arguments: String,
}

/// A function tool offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDefinition {
    /// The name the model calls it by (`^[a-zA-Z0-9_-]{1,64}$`; not
    /// rewritten, since the answer must map back to the tool).
    pub name: String,
    /// What it does, for the model; empty sends none.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// A structured-output schema, sent as `response_format` of type
/// `json_schema` with `strict: false` (strict mode rejects many ordinary
/// schemas, e.g. ones with optional properties).
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseSchema {
    /// The schema's name (sanitised to OpenAI's name pattern when sent).
    pub name: String,
    /// The JSON Schema the answer must match.
    pub schema: serde_json::Value,
}

/// `name` rewritten to OpenAI's pattern `^[a-zA-Z0-9_-]{1,64}$`: surrounding
/// whitespace trimmed, every other character outside the pattern replaced
/// by `_`, cut to [`MAX_NAME_LEN`] characters. `None` when nothing is left:
/// `" Research Agent "` is sent as `Research_Agent`, `"   "` not at all
/// (`llm/tests.rs` holds these examples; the function is private to the
/// crate, so they are no doctest).
pub(crate) fn sanitize_name(name: &str) -> Option<String> {
    let cleaned: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME_LEN)
        .collect();
    (!cleaned.is_empty()).then_some(cleaned)
}

impl ChatRequest {
    /// The request as async-openai sends it: streamed, with a final usage
    /// chunk.
    #[allow(
        deprecated,
        reason = "`seed` is deprecated in OpenAI's spec but still honoured, and compatible servers support it"
    )]
    pub(super) fn to_openai(&self) -> CreateChatCompletionRequest {
        let tools = (!self.tools.is_empty()).then(|| self.tools.iter().map(tool).collect());
        let response_format =
            self.response_format
                .as_ref()
                .map(|format| ResponseFormat::JsonSchema {
                    json_schema: ResponseFormatJsonSchema {
                        description: None,
                        name: sanitize_name(&format.name)
                            .unwrap_or_else(|| FALLBACK_SCHEMA_NAME.to_owned()),
                        schema: format.schema.clone(),
                        strict: Some(false),
                    },
                });
        CreateChatCompletionRequest {
            model: self.model.clone(),
            messages: self.messages.iter().map(message).collect(),
            tools,
            response_format,
            // f64 -> f32 only rounds: temperatures live in 0..=2.
            temperature: self.temperature.map(|t| t as f32),
            max_completion_tokens: self.max_tokens,
            seed: self.seed,
            stream: Some(true),
            stream_options: Some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            }),
            ..Default::default()
        }
    }
}

fn message(message: &ChatMessage) -> ChatCompletionRequestMessage {
    match message {
        ChatMessage::System { content } => {
            ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
                content: ChatCompletionRequestSystemMessageContent::Text(content.clone()),
                name: None,
            })
        }
        ChatMessage::User { name, content } => {
            ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
                content: ChatCompletionRequestUserMessageContent::Text(content.clone()),
                name: name.as_deref().and_then(sanitize_name),
            })
        }
        ChatMessage::Assistant {
            name,
            content,
            tool_calls,
        } => {
            let tool_calls: Vec<ChatCompletionMessageToolCalls> = tool_calls
                .iter()
                .map(|call| {
                    ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
                        id: call.id.clone(),
                        function: FunctionCall {
                            name: call.name.clone(),
                            arguments: call.arguments.clone(),
                        },
                    })
                })
                .collect();
            // The API wants content unless there are tool calls; an empty
            // turn is sent as empty text rather than rejected.
            let content = match content {
                Some(text) => Some(text.clone()),
                None if tool_calls.is_empty() => Some(String::new()),
                None => None,
            };
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                content: content.map(ChatCompletionRequestAssistantMessageContent::Text),
                name: name.as_deref().and_then(sanitize_name),
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                ..Default::default()
            })
        }
        ChatMessage::Tool {
            tool_call_id,
            content,
        } => ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
            content: ChatCompletionRequestToolMessageContent::Text(content.clone()),
            tool_call_id: tool_call_id.clone(),
        }),
    }
}

fn tool(tool: &ToolDefinition) -> ChatCompletionTools {
    ChatCompletionTools::Function(ChatCompletionTool {
        function: FunctionObject {
            name: tool.name.clone(),
            description: (!tool.description.is_empty()).then(|| tool.description.clone()),
            parameters: Some(tool.parameters.clone()),
            strict: None,
        },
    })
}
