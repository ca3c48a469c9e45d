//! [`Reply`]: what the fake model answers, and how an answer is rendered
//! as OpenAI's streamed chunks or as one `chat.completion` object.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

/// How many pieces [`Reply::Text`] and tool-call arguments are streamed in:
/// enough that a client which only handles a single chunk is caught.
const STREAM_PIECES: usize = 3;

/// Characters per token in the usage estimate (OpenAI's rule of thumb).
const CHARS_PER_TOKEN: usize = 4;

/// What the fake model answers to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Assistant text, streamed in about three chunks.
    Text(String),
    /// Tool calls as `(name, arguments)`. Ids are `call_<n>`, unique per
    /// server; the arguments are serialised and streamed in pieces.
    ToolCalls(Vec<(String, Value)>),
    /// Text first, then tool calls, in one answer.
    TextAndToolCalls(String, Vec<(String, Value)>),
    /// An HTTP error with OpenAI's error body
    /// `{"error": {"message", "type", "param", "code"}}`.
    Status(u16, String),
    /// HTTP 429 with OpenAI's error body and `Retry-After: <secs>`.
    RateLimited {
        /// The `Retry-After` header, in seconds.
        retry_after_secs: u64,
        /// The error message.
        message: String,
    },
    /// Waits before answering (headers included), then answers the inner
    /// reply: for timeouts and slow first bytes.
    Delayed(Duration, Box<Reply>),
    /// Waits until the test opens the [`Gate`], then answers the inner
    /// reply: for a test that must be ready (a socket subscribed) before
    /// the model answers, without guessing a delay.
    AfterGate(Gate, Box<Reply>),
    /// Text sent as exactly these chunks, with `gap` between consecutive
    /// ones: for slow streams and for watching deltas arrive.
    SlowStream {
        /// The chunks' text, in order.
        pieces: Vec<String>,
        /// The pause between two chunks.
        gap: Duration,
    },
}

impl Reply {
    /// [`Reply::Text`] from anything string-like.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply::Text(text.into())
    }

    /// One tool call.
    pub fn tool_call(name: impl Into<String>, arguments: Value) -> Reply {
        Reply::ToolCalls(vec![(name.into(), arguments)])
    }

    /// This reply, answered after `delay`.
    pub fn after(self, delay: Duration) -> Reply {
        Reply::Delayed(delay, Box::new(self))
    }

    /// This reply, answered once `gate` is open.
    pub fn after_gate(self, gate: &Gate) -> Reply {
        Reply::AfterGate(gate.clone(), Box::new(self))
    }

    /// The gates this reply waits for, outermost first.
    pub(crate) fn gates(&self) -> Vec<Gate> {
        match self {
            Reply::AfterGate(gate, inner) => {
                let mut gates = vec![gate.clone()];
                gates.extend(inner.gates());
                gates
            }
            Reply::Delayed(_, inner) => inner.gates(),
            _ => Vec::new(),
        }
    }

    /// Flattens delays into one initial wait and what follows it (gates
    /// are waited for first, see [`gates`](Self::gates)).
    pub(crate) fn resolve(self) -> (Duration, Outcome) {
        match self {
            Reply::AfterGate(_, inner) => inner.resolve(),
            Reply::Delayed(delay, inner) => {
                let (more, outcome) = inner.resolve();
                (delay.saturating_add(more), outcome)
            }
            Reply::Status(status, message) => (
                Duration::ZERO,
                Outcome::Error {
                    status,
                    message,
                    retry_after: None,
                },
            ),
            Reply::RateLimited {
                retry_after_secs,
                message,
            } => (
                Duration::ZERO,
                Outcome::Error {
                    status: 429,
                    message,
                    retry_after: Some(retry_after_secs),
                },
            ),
            Reply::Text(text) => (
                Duration::ZERO,
                Outcome::Answer(Answer::new(&text, Vec::new())),
            ),
            Reply::ToolCalls(calls) => (Duration::ZERO, Outcome::Answer(Answer::new("", calls))),
            Reply::TextAndToolCalls(text, calls) => {
                (Duration::ZERO, Outcome::Answer(Answer::new(&text, calls)))
            }
            Reply::SlowStream { pieces, gap } => {
                let pieces = pieces
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| (if i == 0 { Duration::ZERO } else { gap }, p))
                    .collect();
                (
                    Duration::ZERO,
                    Outcome::Answer(Answer {
                        pieces,
                        tool_calls: Vec::new(),
                    }),
                )
            }
        }
    }
}

/// A gate a test opens once it is ready; replies made with
/// [`Reply::after_gate`] wait for it. Clones share one gate; once open, it
/// stays open.
#[derive(Clone, Default)]
pub struct Gate(Arc<tokio::sync::watch::Sender<bool>>);

impl Gate {
    /// A closed gate.
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Opens the gate: replies waiting for it are answered, later ones at
    /// once.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    /// Returns once the gate is open.
    pub(crate) async fn opened(&self) {
        let mut open = self.0.subscribe();
        // The sender lives in `self`, so the wait cannot fail.
        let _ = open.wait_for(|open| *open).await;
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Gate").field(&*self.0.borrow()).finish()
    }
}

impl PartialEq for Gate {
    fn eq(&self, other: &Gate) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A reply once its delays are taken out.
#[derive(Debug)]
pub(crate) enum Outcome {
    Error {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    Answer(Answer),
}

/// A successful answer: text pieces (each with the pause before it) and
/// tool calls as `(name, serialised arguments)`.
#[derive(Debug)]
pub(crate) struct Answer {
    pieces: Vec<(Duration, String)>,
    tool_calls: Vec<(String, String)>,
}

impl Answer {
    fn new(text: &str, calls: Vec<(String, Value)>) -> Answer {
        Answer {
            pieces: split(text)
                .into_iter()
                .map(|p| (Duration::ZERO, p))
                .collect(),
            tool_calls: calls
                .into_iter()
                .map(|(name, args)| (name, args.to_string()))
                .collect(),
        }
    }

    fn text(&self) -> String {
        self.pieces.iter().map(|(_, p)| p.as_str()).collect()
    }

    fn finish_reason(&self) -> &'static str {
        if self.tool_calls.is_empty() {
            "stop"
        } else {
            "tool_calls"
        }
    }

    /// Number of tool calls, so the caller can reserve their ids.
    pub(crate) fn tool_call_count(&self) -> usize {
        self.tool_calls.len()
    }

    fn completion_tokens(&self) -> u64 {
        let chars = self.text().chars().count()
            + self
                .tool_calls
                .iter()
                .map(|(n, a)| n.chars().count() + a.chars().count())
                .sum::<usize>();
        estimate_tokens(chars)
    }
}

/// Fields every rendered response shares.
#[derive(Debug)]
pub(crate) struct Frame {
    /// `chatcmpl-...` id.
    pub(crate) id: String,
    /// Unix seconds.
    pub(crate) created: u64,
    /// The requested model, echoed.
    pub(crate) model: String,
    /// Ids for the answer's tool calls, in order.
    pub(crate) call_ids: Vec<String>,
    /// Prompt token estimate.
    pub(crate) prompt_tokens: u64,
}

impl Frame {
    fn usage(&self, answer: &Answer) -> Value {
        let completion = answer.completion_tokens();
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        })
    }

    fn call_id(&self, index: usize) -> String {
        self.call_ids
            .get(index)
            .cloned()
            .unwrap_or_else(|| format!("call_x{index}"))
    }

    fn chunk(&self, delta: Value, finish_reason: Option<&str>, with_usage: bool) -> Value {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if with_usage && let Some(object) = chunk.as_object_mut() {
            object.insert("usage".into(), Value::Null);
        }
        chunk
    }

    /// The answer as server-sent events, each with the pause before it;
    /// the last is `data: [DONE]`.
    pub(crate) fn stream_events(
        &self,
        answer: &Answer,
        include_usage: bool,
    ) -> Vec<(Duration, String)> {
        let mut chunks: Vec<(Duration, Value)> = Vec::new();
        let has_text = !answer.pieces.is_empty();
        let first_content = if has_text { json!("") } else { Value::Null };
        chunks.push((
            Duration::ZERO,
            self.chunk(
                json!({"role": "assistant", "content": first_content, "refusal": null}),
                None,
                include_usage,
            ),
        ));
        for (gap, piece) in &answer.pieces {
            chunks.push((
                *gap,
                self.chunk(json!({"content": piece}), None, include_usage),
            ));
        }
        for (index, (name, arguments)) in answer.tool_calls.iter().enumerate() {
            chunks.push((
                Duration::ZERO,
                self.chunk(
                    json!({"tool_calls": [{
                        "index": index,
                        "id": self.call_id(index),
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }]}),
                    None,
                    include_usage,
                ),
            ));
            for piece in split(arguments) {
                chunks.push((
                    Duration::ZERO,
                    self.chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                        None,
                        include_usage,
                    ),
                ));
            }
        }
        chunks.push((
            Duration::ZERO,
            self.chunk(json!({}), Some(answer.finish_reason()), include_usage),
        ));
        if include_usage {
            chunks.push((
                Duration::ZERO,
                json!({
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "system_fingerprint": "fp_fake",
                    "choices": [],
                    "usage": self.usage(answer),
                }),
            ));
        }
        let mut events: Vec<(Duration, String)> = chunks
            .into_iter()
            .map(|(gap, chunk)| (gap, format!("data: {chunk}\n\n")))
            .collect();
        events.push((Duration::ZERO, "data: [DONE]\n\n".to_owned()));
        events
    }

    /// The answer as one `chat.completion` object, and the total of the
    /// pauses a stream would have had.
    pub(crate) fn completion(&self, answer: &Answer) -> (Duration, Value) {
        let text = answer.text();
        let mut message = json!({
            "role": "assistant",
            "content": if text.is_empty() && !answer.tool_calls.is_empty() { Value::Null } else { json!(text) },
            "refusal": null,
        });
        if !answer.tool_calls.is_empty()
            && let Some(object) = message.as_object_mut()
        {
            let calls: Vec<Value> = answer
                .tool_calls
                .iter()
                .enumerate()
                .map(|(index, (name, arguments))| {
                    json!({
                        "id": self.call_id(index),
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    })
                })
                .collect();
            object.insert("tool_calls".into(), Value::Array(calls));
        }
        let wait = answer
            .pieces
            .iter()
            .fold(Duration::ZERO, |total, (gap, _)| total.saturating_add(*gap));
        let body = json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": answer.finish_reason(),
            }],
            "usage": self.usage(answer),
        });
        (wait, body)
    }
}

/// OpenAI's error body for an HTTP status, with the `type` and `code` the
/// real API uses for the common statuses.
pub(crate) fn error_body(status: u16, message: &str) -> Value {
    let (kind, code) = match status {
        401 => ("invalid_request_error", json!("invalid_api_key")),
        404 => ("invalid_request_error", json!("model_not_found")),
        429 => ("requests", json!("rate_limit_exceeded")),
        400..=499 => ("invalid_request_error", Value::Null),
        _ => ("server_error", Value::Null),
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// The usage estimate for `chars` characters: a quarter, at least 1.
pub(crate) fn estimate_tokens(chars: usize) -> u64 {
    u64::try_from((chars / CHARS_PER_TOKEN).max(1)).unwrap_or(u64::MAX)
}

/// Splits `text` into at most [`STREAM_PIECES`] non-empty pieces on
/// character boundaries.
fn split(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = chars.len().div_ceil(STREAM_PIECES);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(calls: usize) -> Frame {
        Frame {
            id: "chatcmpl-fake-1".into(),
            created: 1,
            model: "m".into(),
            call_ids: (1..=calls).map(|n| format!("call_{n}")).collect(),
            prompt_tokens: 7,
        }
    }

    fn answer(reply: Reply) -> Answer {
        match reply.resolve().1 {
            Outcome::Answer(a) => a,
            Outcome::Error { .. } => panic!("not an answer"),
        }
    }

    #[test]
    fn text_is_split_into_three_pieces_that_join_back() {
        assert_eq!(split("abcdefgh"), vec!["abc", "def", "gh"]);
        assert_eq!(split("é!"), vec!["é", "!"]);
        assert!(split("").is_empty());
    }

    #[tokio::test]
    async fn a_gated_reply_waits_until_the_gate_opens() {
        let gate = Gate::new();
        let reply = Reply::text("x")
            .after(Duration::from_millis(3))
            .after_gate(&gate);
        let gates = reply.gates();
        assert_eq!(gates, std::slice::from_ref(&gate));
        let waiting = tokio::spawn(async move { gates[0].opened().await });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "answered before the gate opened");
        gate.open();
        waiting.await.unwrap();
        gate.opened().await;
        assert_eq!(reply.resolve().0, Duration::from_millis(3));
    }

    #[test]
    fn nested_delays_add_up() {
        let reply = Reply::text("x")
            .after(Duration::from_millis(5))
            .after(Duration::from_millis(7));
        assert_eq!(reply.resolve().0, Duration::from_millis(12));
    }

    #[test]
    fn stream_ends_with_usage_and_done() {
        let a = answer(Reply::tool_call("f", json!({"a": 1})));
        let events = frame(1).stream_events(&a, true);
        assert_eq!(
            events.last().map(|e| e.1.as_str()),
            Some("data: [DONE]\n\n")
        );
        let usage = &events[events.len() - 2].1;
        assert!(usage.contains("\"choices\":[]"), "{usage}");
        assert!(usage.contains("\"prompt_tokens\":7"), "{usage}");
        assert!(events.iter().any(|e| e.1.contains("\"id\":\"call_1\"")));
    }

    #[test]
    fn completion_carries_tool_calls_and_null_content() {
        let a = answer(Reply::tool_call("f", json!({})));
        let (_, body) = frame(1).completion(&a);
        assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
        assert!(body["choices"][0]["message"]["content"].is_null());
        assert_eq!(
            body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            "{}"
        );
    }

    #[test]
    fn unauthorised_errors_carry_openai_codes() {
        assert_eq!(
            error_body(401, "bad key")["error"]["code"],
            "invalid_api_key"
        );
        assert_eq!(error_body(500, "boom")["error"]["type"], "server_error");
    }
}
