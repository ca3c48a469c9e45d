//! The server over real loopback HTTP, with a blocking std client so the
//! crate needs no HTTP client dependency.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::{Value, json};

use super::*;

/// Sends one HTTP/1.1 request and returns the status code and body.
async fn send(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    })
    .await
    .unwrap()
}

fn chat_body(stream: bool) -> String {
    json!({
        "model": "m-1",
        "stream": stream,
        "messages": [{"role": "user", "content": "hello there"}],
    })
    .to_string()
}

#[tokio::test]
async fn answers_a_non_streamed_request_with_one_completion_object() {
    let llm = FakeLlm::start(|call| Reply::text(format!("echo {}", call.last_text()))).await;

    let (status, body) = send(
        llm.addr(),
        "POST",
        "/v1/chat/completions",
        &chat_body(false),
    )
    .await;

    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "m-1");
    assert_eq!(body["choices"][0]["message"]["content"], "echo hello there");
    assert_eq!(body["usage"]["prompt_tokens"], 2);
    assert_eq!(llm.calls().len(), 1);
}

#[tokio::test]
async fn streams_server_sent_events_ending_in_done() {
    let llm = FakeLlm::start(|_| Reply::text("abcdef")).await;

    let (status, body) = send(llm.addr(), "POST", "/v1/chat/completions", &chat_body(true)).await;

    assert_eq!(status, 200);
    // Chunked transfer encoding interleaves size lines; the events are intact.
    assert!(
        body.contains("\"object\":\"chat.completion.chunk\""),
        "{body}"
    );
    assert!(body.contains("\"content\":\"ab\""), "{body}");
    assert!(body.contains("data: [DONE]"), "{body}");
    assert!(!body.contains("\"usage\""), "no usage unless asked: {body}");
}

#[tokio::test]
async fn rejects_invalid_json_with_openais_error_shape_and_still_records_it() {
    let llm = FakeLlm::start(|_| Reply::text("never")).await;

    let (status, body) = send(llm.addr(), "POST", "/v1/chat/completions", "{not json").await;

    assert_eq!(status, 400);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("JSON"));
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(llm.calls(), vec![ChatCall::new(Value::Null)]);
}

#[tokio::test]
async fn lists_one_model_and_answers_unknown_paths_with_404() {
    let llm = FakeLlm::start(|_| Reply::text("never")).await;

    let (status, body) = send(llm.addr(), "GET", "/v1/models", "").await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["data"][0]["id"], MODEL_ID);

    let (status, body) = send(llm.addr(), "POST", "/v1/embeddings", "{}").await;
    assert_eq!(status, 404);
    assert!(body.contains("Invalid URL (POST /v1/embeddings)"), "{body}");
}

#[tokio::test]
async fn scripted_replies_come_in_order_then_fail_loudly() {
    let llm = FakeLlm::scripted([Reply::text("one"), Reply::Status(429, "slow down".into())]).await;

    let (_, first) = send(
        llm.addr(),
        "POST",
        "/v1/chat/completions",
        &chat_body(false),
    )
    .await;
    let (second, _) = send(
        llm.addr(),
        "POST",
        "/v1/chat/completions",
        &chat_body(false),
    )
    .await;
    let (third, body) = send(
        llm.addr(),
        "POST",
        "/v1/chat/completions",
        &chat_body(false),
    )
    .await;

    assert!(first.contains("\"one\""), "{first}");
    assert_eq!(second, 429);
    assert_eq!(third, 500);
    assert!(body.contains("script exhausted after 2 replies"), "{body}");
}

#[tokio::test]
async fn tool_call_ids_are_unique_across_requests() {
    let llm = FakeLlm::start(|_| Reply::tool_call("f", json!({}))).await;

    let (_, a) = send(
        llm.addr(),
        "POST",
        "/v1/chat/completions",
        &chat_body(false),
    )
    .await;
    let (_, b) = send(
        llm.addr(),
        "POST",
        "/v1/chat/completions",
        &chat_body(false),
    )
    .await;

    let id = |body: &str| {
        let v: Value = serde_json::from_str(body).unwrap();
        v["choices"][0]["message"]["tool_calls"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(id(&a).starts_with("call_"));
    assert_ne!(id(&a), id(&b));
}
