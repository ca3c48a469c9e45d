//! A client of the documented protocol (docs/protocol.md): starts a chat
//! with `POST /api/chats` and follows it over its WebSocket.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// The longest a chat may go without a frame before the client gives up.
const FRAME_WAIT: Duration = Duration::from_secs(120);

/// What the client saw of one chat.
#[derive(Debug, Clone)]
pub(crate) struct ChatSeen {
    pub(crate) chat_id: String,
    /// From sending `POST /api/chats` to the first `agent_message` frame.
    pub(crate) first_answer: Duration,
    /// From sending `POST /api/chats` to the end the client waited for.
    pub(crate) elapsed: Duration,
    /// `speaker` events seen: the chat's agent turns.
    pub(crate) turns: u32,
    /// Successful `tool_result` events seen.
    pub(crate) tool_results: u32,
    /// For each stored event the socket delivered live (stored after the
    /// socket connected), from its `ts` (the server's clock as it stored
    /// it) to its arrival here (this machine's clock: the same one on
    /// loopback), in ms.
    pub(crate) delivery_ms: Vec<u64>,
}

/// This machine's clock, in ms since the Unix epoch (as events' `ts`).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How far to follow a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    /// Its run completes.
    Completed,
    /// Its run waits for the user (the chat then stays open, idle).
    WaitingForUser,
}

/// A chat's open WebSocket.
pub(crate) type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Starts a chat of `workflow`, follows its socket until `until`, and
/// closes the socket. Fails on a failed or interrupted run and on any
/// `error` event.
pub(crate) async fn run_chat(
    http: &reqwest::Client,
    base: &str,
    ws_base: &str,
    workflow: &str,
    until: Until,
) -> anyhow::Result<ChatSeen> {
    let (seen, mut socket) = open_chat(http, base, ws_base, workflow, until).await?;
    // A client that is done says goodbye; the server keeps the chat.
    let _ = socket.close(None).await;
    Ok(seen)
}

/// [`run_chat`], leaving the socket open (a user still looking at the
/// chat).
pub(crate) async fn open_chat(
    http: &reqwest::Client,
    base: &str,
    ws_base: &str,
    workflow: &str,
    until: Until,
) -> anyhow::Result<(ChatSeen, Socket)> {
    let started = Instant::now();
    let response = http
        .post(format!("{base}/api/chats"))
        .json(&json!({"app_id": "bench", "user_id": "bench", "workflow": workflow}))
        .send()
        .await?;
    let status = response.status();
    let chat: Value = response.json().await?;
    if status.as_u16() != 201 {
        bail!("POST /api/chats answered {status}: {chat}");
    }
    let chat_id = chat
        .get("chat_id")
        .and_then(Value::as_str)
        .context("no chat_id in the answer")?
        .to_owned();
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("{ws_base}/api/chats/{chat_id}/ws?after=0"))
            .await
            .with_context(|| format!("connecting to chat {chat_id}'s socket"))?;
    let mut seen = ChatSeen {
        chat_id,
        first_answer: Duration::ZERO,
        elapsed: Duration::ZERO,
        turns: 0,
        tool_results: 0,
        delivery_ms: Vec::new(),
    };
    let connected_at = now_ms();
    loop {
        let frame = tokio::time::timeout(FRAME_WAIT, socket.next())
            .await
            .with_context(|| format!("chat {}: no frame for {FRAME_WAIT:?}", seen.chat_id))?
            .with_context(|| format!("chat {}: the socket closed", seen.chat_id))??;
        let Message::Text(text) = frame else { continue };
        let event: Value = serde_json::from_str(&text)?;
        if let (Some(_), Some(ts)) = (
            event.get("seq").and_then(Value::as_u64),
            event.get("ts").and_then(Value::as_u64),
        ) && ts >= connected_at
        {
            seen.delivery_ms.push(now_ms().saturating_sub(ts));
        }
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "speaker" => seen.turns += 1,
            "agent_message" if seen.first_answer.is_zero() => {
                seen.first_answer = started.elapsed();
            }
            "tool_result" => {
                if event.get("ok") != Some(&Value::Bool(true)) {
                    bail!("chat {}: a tool call failed: {event}", seen.chat_id);
                }
                seen.tool_results += 1;
            }
            "error" => bail!("chat {}: {event}", seen.chat_id),
            "run_status" => match event.get("status").and_then(Value::as_str) {
                Some("completed") if until == Until::Completed => break,
                Some("waiting_for_user") if until == Until::WaitingForUser => break,
                Some(status @ ("failed" | "interrupted" | "completed")) => {
                    bail!("chat {}: run {status}: {event}", seen.chat_id)
                }
                _ => {}
            },
            _ => {}
        }
    }
    seen.elapsed = started.elapsed();
    Ok((seen, socket))
}
