//! What a client cannot do to a socket or the HTTP API: send more than
//! `MOZAIKS_MAX_BODY_BYTES` (413, close 1009), or break RFC 6455 (invalid
//! UTF-8: close 1007; a control frame over 125 bytes: close 1002).

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::support::*;

/// The cap the tests set: small, so a message over it fits in the socket
/// buffers and the client finishes sending before it reads the close.
const CAP: usize = 64 * 1024;

type Raw =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn raw(server: &Server, chat: &str) -> Raw {
    let url = format!(
        "{}/api/chats/{chat}/ws",
        server.base.replacen("http", "ws", 1)
    );
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The close code the server ends the socket with; `None` when the
/// connection ends without a close frame.
async fn close_code(socket: &mut Raw) -> Option<u16> {
    loop {
        let message = tokio::time::timeout(EVENT_WAIT, socket.next())
            .await
            .expect("the server neither closed nor dropped the socket in time");
        match message {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

async fn capped_server(scratch: &Scratch, llm: &FakeLlm) -> Server {
    let mut setup = Setup::new(scratch, llm);
    setup
        .extra_env
        .push(("MOZAIKS_MAX_BODY_BYTES".into(), CAP.to_string()));
    Server::start(&setup).await
}

#[tokio::test]
async fn a_message_over_the_cap_is_refused_with_413_over_http_and_1009_over_the_socket() {
    let scratch = Scratch::new("size-cap");
    let llm = FakeLlm::start(|_| Reply::text("Hello.")).await;
    let server = capped_server(&scratch, &llm).await;
    let chat = server.start_chat("Handoffs").await;

    let big = "x".repeat(CAP + 1);
    let (status, answer) = server
        .post(&format!("/api/chats/{chat}/messages"), json!({"text": big}))
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE")),
        "{answer}"
    );

    // Just under the cap is a message like any other.
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("waiting_for_user").await;
    let fits = "y".repeat(CAP - 100);
    ws.send(json!({"type": "user_message", "text": fits})).await;
    let stored = ws.until_type("user_message").await;
    assert_eq!(stored["text"].as_str().map(str::len), Some(CAP - 100));

    let mut socket = raw(&server, &chat).await;
    let message = json!({"type": "user_message", "text": big}).to_string();
    socket.send(Message::Text(message.into())).await.unwrap();
    assert_eq!(close_code(&mut socket).await, Some(1009));
    let events = server.events(&chat).await;
    assert_eq!(
        of_type(&events, "user_message").len(),
        1,
        "the message over the cap was not stored: {}",
        summary(&events)
    );
}

#[tokio::test]
async fn invalid_utf8_closes_1007_and_an_oversized_control_frame_closes_1002() {
    let scratch = Scratch::new("rfc6455");
    let llm = FakeLlm::start(|_| Reply::text("Hello.")).await;
    let server = capped_server(&scratch, &llm).await;
    let chat = server.start_chat("Handoffs").await;

    let mut socket = raw(&server, &chat).await;
    let invalid = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    socket.send(Message::Frame(invalid)).await.unwrap();
    assert_eq!(close_code(&mut socket).await, Some(1007));

    let mut socket = raw(&server, &chat).await;
    socket
        .send(Message::Frame(Frame::ping(vec![0u8; 200])))
        .await
        .unwrap();
    assert_eq!(close_code(&mut socket).await, Some(1002));

    // The server is fine.
    let (status, _) = server.get("/health/live").await;
    assert_eq!(status, 200);
}
