//! A fake OpenAI-compatible chat completions server that runs in-process on
//! loopback, for end-to-end tests and benchmarks.
//!
//! Tests start it on `127.0.0.1:0`, point `OPENAI_BASE_URL` at
//! [`FakeLlm::base_url`], and decide what "the model" says with a responder
//! closure that sees each request ([`ChatCall`]) and returns a [`Reply`]:
//!
//! ```no_run
//! # async fn demo() {
//! use mozaiks_fake_llm::{FakeLlm, Reply};
//! use serde_json::json;
//!
//! let llm = FakeLlm::start(|call| {
//!     if call.tool_results().is_empty() {
//!         Reply::ToolCalls(vec![("lookup".into(), json!({"city": "Oslo"}))])
//!     } else {
//!         Reply::Text(format!("The tool said {}", call.last_text()))
//!     }
//! })
//! .await;
//! // OPENAI_BASE_URL=llm.base_url() ... then assert on llm.calls().
//! # }
//! ```
//!
//! # What it speaks
//!
//! - `POST /v1/chat/completions`: with `"stream": true`, server-sent events in
//!   OpenAI's `chat.completion.chunk` format, ending in `data: [DONE]`, with a
//!   final usage chunk (`choices: []`) when `stream_options.include_usage` is
//!   set; otherwise one `chat.completion` object.
//! - `GET /v1/models`: a list with the one model [`MODEL_ID`].
//! - Anything else: 404 in OpenAI's error shape.
//!
//! # Strictness
//!
//! Requests that the real API rejects are rejected here too, with HTTP 400
//! and OpenAI's wording, *before* the responder runs: malformed JSON, no
//! model, no messages, a message `name` or tool name outside
//! `^[a-zA-Z0-9_-]{1,64}$`, a `tool` message that answers no preceding tool
//! call, an assistant tool call left unanswered, `stream_options` without
//! `stream`. Such requests still appear in [`FakeLlm::calls`]. This is what
//! lets a test against the fake catch a transcript the real API would
//! refuse.
//!
//! Token usage is a deterministic estimate: characters / 4, at least 1.
//!
//! # Layout
//!
//! - [`call`]: [`ChatCall`], one recorded request and its accessors.
//! - [`reply`]: [`Reply`] and how it is rendered as chunks or one object.
//! - `validate`: the checks above.
//! - `server`: the axum router and handlers.

mod server;
mod validate;

pub mod call;
pub mod reply;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

pub use call::ChatCall;
pub use reply::{Gate, Reply};

/// The one model `GET /v1/models` lists. Chat requests may name any model;
/// the answer echoes the requested one.
pub const MODEL_ID: &str = "gpt-4o-mini";

/// What decides each answer.
type Responder = dyn Fn(&ChatCall) -> Reply + Send + Sync + 'static;

/// State shared by every request of one server.
pub(crate) struct Shared {
    responder: Box<Responder>,
    calls: Mutex<Vec<ChatCall>>,
    /// Source of `call_<n>` tool call ids and `chatcmpl-fake-<n>` response
    /// ids, unique per server.
    next_id: AtomicU64,
}

impl Shared {
    pub(crate) fn record(&self, call: ChatCall) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(call);
    }

    pub(crate) fn respond(&self, call: &ChatCall) -> Reply {
        (self.responder)(call)
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

/// A running fake server. It stops accepting connections when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for FakeLlm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeLlm")
            .field("addr", &self.addr)
            .field("calls", &self.calls().len())
            .finish_non_exhaustive()
    }
}

impl FakeLlm {
    /// Starts a server on `127.0.0.1` at a free port. `responder` is called
    /// once per valid chat completion request, in the server's tasks, and
    /// must not block.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound (test support: there is nothing
    /// sensible to do but fail the test).
    pub async fn start(responder: impl Fn(&ChatCall) -> Reply + Send + Sync + 'static) -> FakeLlm {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap_or_else(|e| panic!("fake-llm: cannot bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake-llm: bound socket has no address: {e}"));
        let shared = Arc::new(Shared {
            responder: Box::new(responder),
            calls: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        });
        let app = server::router(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("fake-llm: server on {addr} stopped: {e}");
            }
        });
        FakeLlm { addr, shared, task }
    }

    /// Starts a server that gives `replies` in order, one per request, and
    /// answers HTTP 500 once they are used up (so an unexpected extra call
    /// fails loudly instead of hanging).
    pub async fn scripted(replies: impl IntoIterator<Item = Reply>) -> FakeLlm {
        let script: Vec<Reply> = replies.into_iter().collect();
        let total = script.len();
        let queue = Mutex::new(std::collections::VecDeque::from(script));
        FakeLlm::start(move |_| {
            queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front()
                .unwrap_or_else(|| {
                    Reply::Status(
                        500,
                        format!("fake-llm: script exhausted after {total} replies"),
                    )
                })
        })
        .await
    }

    /// The base URL to give an OpenAI client: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every chat completion request received so far, in arrival order,
    /// including the ones rejected as invalid.
    pub fn calls(&self) -> Vec<ChatCall> {
        self.shared
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}
