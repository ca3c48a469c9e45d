//! Graceful shutdown: SIGTERM lets the step in flight reach the store,
//! tells the clients, exits; the next process continues without redoing
//! or losing anything.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn sigterm_mid_turn_stores_the_answer_tells_clients_and_the_next_start_redoes_nothing() {
    let scratch = Scratch::new("sigterm-turn");
    // The answer is on its way when the signal arrives.
    let llm = FakeLlm::start(|_| {
        Reply::text(r#"{"score": 7, "reason": "slow but sure"}"#).after(Duration::from_millis(1500))
    })
    .await;
    let setup = Setup::new(&scratch, &llm);
    let server = Server::start(&setup).await;
    let chat = server.start_chat("Structured").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_type("speaker").await;
    until_calls(&llm, 1).await;
    server.sigterm().await;

    let answer = ws.until_type("agent_message").await;
    assert_eq!(
        answer["structured"]["score"], 7,
        "the answer in flight was kept"
    );
    let goodbye = ws.until_type("server_shutdown").await;
    assert!(goodbye["last_seq"].as_u64().unwrap() >= answer["seq"].as_u64().unwrap());
    assert!(
        ws.next().await.is_none(),
        "the socket is closed after the goodbye"
    );
    assert_eq!(server.exit_code().await, Some(0));

    let server = Server::start(&setup).await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
    let events = server.events(&chat).await;
    assert_eq!(
        seqs(&events),
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    assert_eq!(
        of_type(&events, "agent_message").len(),
        1,
        "{}",
        summary(&events)
    );
    assert_eq!(llm.calls().len(), 1, "nothing was asked twice");
}

#[tokio::test]
async fn sigterm_while_a_tool_waits_for_the_user_stops_at_once_and_the_tool_asks_again_after() {
    let scratch = Scratch::new("sigterm-ui");
    let llm = FakeLlm::start(confirm_asker(600_000, "Thanks.")).await;
    let mut setup = Setup::new(&scratch, &llm);
    // Were the waiting tool to hold the shutdown, the test would time out
    // long before this bound.
    setup
        .extra_env
        .push(("MOZAIKS_SHUTDOWN_GRACE_SECS".into(), "600".into()));
    let server = Server::start(&setup).await;
    let chat = server.start_chat("UiTimeout").await;
    let mut ws = server.ws(&chat, 0).await;
    let first = ws.until_type("ui_request").await;
    server.sigterm().await;
    ws.until_type("server_shutdown").await;
    assert_eq!(server.exit_code().await, Some(0));

    let server = Server::start(&setup).await;
    let mut ws = server.ws(&chat, 0).await;
    let again = ws
        .until("a new ui_request", |e| {
            e["type"] == "ui_request" && e["request_id"] != first["request_id"]
        })
        .await;
    server
        .post(
            &format!(
                "/api/chats/{chat}/ui/{}",
                again["request_id"].as_str().unwrap()
            ),
            json!({"answer": {"ok": true}}),
        )
        .await;
    ws.until_status("completed").await;
    let events = server.events(&chat).await;
    let closed: Vec<&Value> = of_type(&events, "ui_response")
        .into_iter()
        .filter(|e| e["request_id"] == first["request_id"])
        .collect();
    assert_eq!(closed.len(), 1, "{}", summary(&events));
    assert_eq!(
        closed[0]["status"], "cancelled",
        "not a timeout: {}",
        closed[0]
    );
    assert_eq!(
        of_type(&events, "tool_result").len(),
        1,
        "one result for the one call"
    );
}

/// An LLM call that outlives `MOZAIKS_SHUTDOWN_GRACE_SECS` does not keep
/// the clients in the dark: every socket of every chat gets
/// `server_shutdown` and close 1012 within the bound, and a new request
/// while the server stops is answered 503 `SHUTTING_DOWN`, not refused.
#[tokio::test]
async fn sigterm_during_a_slow_llm_call_still_tells_every_socket_and_answers_503() {
    let scratch = Scratch::new("sigterm-slow");
    let llm = FakeLlm::start(|_| Reply::text("late").after(Duration::from_secs(120))).await;
    let mut setup = Setup::new(&scratch, &llm);
    setup
        .extra_env
        .push(("MOZAIKS_SHUTDOWN_GRACE_SECS".into(), "4".into()));
    let server = Server::start(&setup).await;
    let busy = server.start_chat("Structured").await;
    let idle = server.start_chat("Handoffs").await;
    let mut sockets = vec![
        server.ws(&busy, 0).await,
        server.ws(&busy, 0).await,
        server.ws(&idle, 0).await,
    ];
    sockets[0].until_type("speaker").await;
    sockets[2].until_status("waiting_for_user").await;
    until_calls(&llm, 1).await;
    server.sigterm().await;

    let refused = loop {
        let (status, body) = server.get("/api/workflows").await;
        if status != 200 {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (refused.0, refused.1["error"]["code"].as_str()),
        (503, Some("SHUTTING_DOWN")),
        "{}",
        refused.1
    );
    // The run is still busy for most of the bound: probes are answered.
    let (status, ready) = server.get("/health/ready").await;
    assert_eq!(
        (status, ready["error"]["code"].as_str()),
        (503, Some("SHUTTING_DOWN"))
    );
    assert_eq!(server.get("/health/live").await.0, 200);
    for ws in &mut sockets {
        let goodbye = ws.until_type("server_shutdown").await;
        assert!(goodbye["last_seq"].is_u64(), "{goodbye}");
        assert!(ws.next().await.is_none(), "closed after the goodbye");
        assert_eq!(ws.close_code, Some(1012), "{}", summary(&ws.seen));
    }
    assert_eq!(server.exit_code().await, Some(0));
}
