//! [`ChatCall`]: one chat completion request as the server received it.

use serde_json::Value;

/// Returned by reference when a request has no such message.
static NULL: Value = Value::Null;

/// One `POST /v1/chat/completions` request: the raw JSON body, plus
/// accessors for what tests usually assert on. Accessors never panic; a
/// missing or oddly shaped field reads as empty.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatCall {
    /// The request body as sent (`Value::Null` if it was not JSON).
    pub body: Value,
}

impl ChatCall {
    /// Wraps a request body.
    pub fn new(body: Value) -> Self {
        ChatCall { body }
    }

    /// The requested model (`""` if none).
    pub fn model(&self) -> &str {
        self.body.get("model").and_then(Value::as_str).unwrap_or("")
    }

    /// Whether the client asked for a server-sent event stream.
    pub fn is_stream(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }

    /// Whether the client asked for a final usage chunk.
    pub fn wants_usage(&self) -> bool {
        self.body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            == Some(true)
    }

    /// The messages (empty if there are none).
    pub fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The content of the first `system` message (`""` if none).
    pub fn system(&self) -> &str {
        self.messages()
            .iter()
            .find(|m| role(m) == "system")
            .map_or("", text_of)
    }

    /// The last message (`Value::Null` if there are none).
    pub fn last_message(&self) -> &Value {
        self.messages().last().unwrap_or(&NULL)
    }

    /// The content of the last message when it is a string (`""` otherwise,
    /// e.g. for an assistant message carrying only tool calls).
    pub fn last_text(&self) -> &str {
        text_of(self.last_message())
    }

    /// The names of the offered function tools, in order.
    pub fn tool_names(&self) -> Vec<String> {
        self.body
            .get("tools")
            .and_then(Value::as_array)
            .map(|tools| {
                tools
                    .iter()
                    .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the request carries a `response_format` (structured output).
    pub fn has_response_format(&self) -> bool {
        self.body
            .get("response_format")
            .is_some_and(|f| !f.is_null())
    }

    /// The JSON schema of a `json_schema` response format, if any.
    pub fn response_schema(&self) -> Option<&Value> {
        self.body.pointer("/response_format/json_schema/schema")
    }

    /// Every `tool` message as `(tool_call_id, content)`, in order.
    pub fn tool_results(&self) -> Vec<(String, String)> {
        self.messages()
            .iter()
            .filter(|m| role(m) == "tool")
            .map(|m| {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                (id.to_owned(), text_of(m).to_owned())
            })
            .collect()
    }

    /// A deterministic token estimate for the prompt: the characters of
    /// every message's text and tool-call arguments, divided by 4, at least 1.
    pub fn prompt_tokens(&self) -> u64 {
        let chars: usize = self
            .messages()
            .iter()
            .map(|m| {
                let calls: usize = m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .map(|calls| {
                        calls
                            .iter()
                            .filter_map(|c| {
                                c.pointer("/function/arguments").and_then(Value::as_str)
                            })
                            .map(|a| a.chars().count())
                            .sum()
                    })
                    .unwrap_or(0);
                text_of(m).chars().count() + calls
            })
            .sum();
        crate::reply::estimate_tokens(chars)
    }
}

/// The `role` of a message (`""` if none).
pub(crate) fn role(message: &Value) -> &str {
    message.get("role").and_then(Value::as_str).unwrap_or("")
}

/// The `content` of a message when it is a string.
fn text_of(message: &Value) -> &str {
    message.get("content").and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call() -> ChatCall {
        ChatCall::new(json!({
            "model": "m1",
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
        }))
    }

    #[test]
    fn accessors_read_the_common_fields() {
        let c = call();
        assert_eq!(c.model(), "m1");
        assert!(c.is_stream());
        assert!(c.wants_usage());
        assert_eq!(c.system(), "be brief");
        assert_eq!(c.messages().len(), 4);
        assert_eq!(c.last_text(), "42");
        assert_eq!(c.tool_names(), vec!["f".to_owned()]);
        assert!(c.has_response_format());
        assert_eq!(c.response_schema(), Some(&json!({"type": "object"})));
        assert_eq!(c.tool_results(), vec![("call_1".into(), "42".into())]);
    }

    #[test]
    fn accessors_read_empty_for_a_body_that_is_not_an_object() {
        let c = ChatCall::new(Value::Null);
        assert_eq!(c.model(), "");
        assert_eq!(c.system(), "");
        assert!(c.messages().is_empty());
        assert!(c.last_message().is_null());
        assert_eq!(c.last_text(), "");
        assert!(c.tool_names().is_empty());
        assert!(!c.has_response_format());
        assert!(c.tool_results().is_empty());
        assert_eq!(c.prompt_tokens(), 1);
    }
}
