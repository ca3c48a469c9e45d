//! HTTP routes and the WebSocket protocol: several clients, reconnecting
//! by sequence number, open UI requests asked again, the MozaiksAI socket
//! form, invalid workflows, and the error shape.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::*;

fn handoffs_llm(call: &ChatCall) -> Reply {
    match agent_of(call).as_str() {
        "Triage" => Reply::tool_call("transfer_to_Billing", json!({})),
        "Billing" => Reply::tool_call("complete_plan", json!({"summary": "done"})),
        _ => Reply::text("Bye!"),
    }
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().filter_map(|e| e["seq"].as_u64()).collect()
}

async fn every_client_gets_every_event_and_a_reconnecting_client_gets_what_it_missed(store: Store) {
    let scratch = Scratch::new("reconnect");
    let llm = FakeLlm::start(handoffs_llm).await;
    let server = Server::start(&Setup::on(store, &scratch, &llm)).await;
    let chat = server.start_chat("Handoffs").await;
    let mut first = server.ws(&chat, 0).await;
    let mut second = server.ws(&chat, 0).await;
    first.until_status("waiting_for_user").await;
    let waiting = second.until_status("waiting_for_user").await;
    // The second client drops while the run waits, and misses the rest.
    let dropped_at = waiting["seq"].as_u64().unwrap();
    second.close().await;
    first
        .send(json!({"type": "user_message", "text": "refund"}))
        .await;
    first.until_status("completed").await;

    let mut again = server.ws(&chat, dropped_at).await;
    let hello = again.next().await.unwrap();
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["protocol"], 1);
    again.until_status("completed").await;
    let missed = seqs(&again.seen);
    let expected: Vec<u64> = seqs(&first.seen)
        .into_iter()
        .filter(|s| *s > dropped_at)
        .collect();
    assert_eq!(missed, expected, "exactly the missed events, in order");
    // And the first client saw every persisted event once, without gaps.
    let all = seqs(&first.seen);
    assert_eq!(all, (1..=all.len() as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_reconnecting_client_is_asked_the_open_ui_request_again() {
    let scratch = Scratch::new("ui-again");
    let llm = FakeLlm::start(confirm_asker(60_000, "Thanks.")).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("UiTimeout").await;
    let mut ws = server.ws(&chat, 0).await;
    let request = ws.until_type("ui_request").await;
    let seen_up_to = request["seq"].as_u64().unwrap();
    ws.close().await;

    let mut ws = server.ws(&chat, seen_up_to).await;
    let again = ws.until_type("ui_request").await;
    assert_eq!(again["request_id"], request["request_id"]);
    let (_, runs) = server.get("/health/active-runs").await;
    assert_eq!(runs["count"], 1);
    assert_eq!(runs["runs"][0]["chat_id"], chat);
    // Answer over HTTP this time.
    let (status, _) = server
        .post(
            &format!(
                "/api/chats/{chat}/ui/{}",
                request["request_id"].as_str().unwrap()
            ),
            json!({"answer": {"ok": true}}),
        )
        .await;
    assert_eq!(status, 202);
    ws.until_status("completed").await;
    assert_eq!(
        llm.calls()[1].tool_results()[0].1,
        json!({"answer": {"ok": true}}).to_string()
    );
}

#[tokio::test]
async fn the_mozaiksai_socket_form_works_and_missing_parameters_get_a_clear_error() {
    let scratch = Scratch::new("compat");
    let llm = FakeLlm::start(handoffs_llm).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("Handoffs").await;

    for path in [
        "/ws/chat".to_owned(),
        format!("/ws/chat?chat_id={chat}"),
        "/ws/chat?workflow_name=Handoffs".to_owned(),
        format!("/ws/chat?chat_id={chat}&workflow_name=Manual"),
    ] {
        let mut ws = server.ws_path(&path).await;
        let error = ws.next().await.unwrap();
        assert_eq!(error["code"], "WS_SESSION_DETERMINATION_FAILED", "{path}");
        assert!(ws.next().await.is_none(), "{path}: then the socket closes");
    }
    let (status, body) = server.get("/ws/chat").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "WS_SESSION_DETERMINATION_FAILED");
    let (status, body) = server.get(&format!("/api/chats/{chat}/ws")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("WEBSOCKET_REQUIRED"))
    );
    // A valid `/ws/chat` request without an upgrade: the socket is what is
    // missing (docs/protocol.md, Connecting).
    let (status, body) = server
        .get(&format!("/ws/chat?chat_id={chat}&workflow_name=Handoffs"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("WEBSOCKET_REQUIRED")),
        "{body}"
    );

    // MozaiksAI's path form, checked against the chat's owner.
    let mut ws = server
        .ws_path(&format!("/ws/Handoffs/app/{chat}/alice"))
        .await;
    assert_eq!(ws.next().await.unwrap()["type"], "hello");
    let (status, body) = server
        .get(&format!("/ws/Handoffs/app/{chat}/mallory"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("CHAT_NOT_FOUND"))
    );

    let mut ws = server
        .ws_path(&format!("/ws/chat?chat_id={chat}&workflow_name=Handoffs"))
        .await;
    let hello = ws.next().await.unwrap();
    assert_eq!(hello["type"], "hello");
    ws.send(json!({"type": "ping"})).await;
    ws.until_type("pong").await;
    ws.send(json!({"type": "shout", "text": "x"})).await;
    let error = ws.until_type("error").await;
    assert_eq!(error["code"], "BAD_MESSAGE");
    assert!(
        error.get("seq").is_none(),
        "per-client replies are not persisted"
    );
}

#[tokio::test]
async fn invalid_workflows_are_listed_with_every_error_and_its_path() {
    let scratch = Scratch::new("invalid");
    let llm = FakeLlm::start(|_| Reply::text("unused")).await;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/workflows");
    let setup = Setup {
        workflows: fixtures.clone(),
        ..Setup::new(&scratch, &llm)
    };
    let server = Server::start(&setup).await;
    let (status, body) = server.get("/api/workflows").await;
    assert_eq!(status, 200);
    let listed = body["workflows"].as_array().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(expected) = std::fs::read_to_string(dir.join("expected_error.txt")) else {
            continue;
        };
        let name = dir.file_name().unwrap().to_str().unwrap();
        let workflow = listed
            .iter()
            .find(|w| w["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed"));
        assert_eq!(workflow["valid"], false, "{name}");
        let errors = workflow["errors"].as_array().unwrap();
        // Warnings are listed apart from the errors (`warnings`).
        let lines: Vec<&str> = expected
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("warning: "))
            .collect();
        assert_eq!(errors.len(), lines.len(), "{name}: {errors:?}");
        for line in lines {
            // The help may name other plugins than the fixture's run had.
            let line = line.split(" (help: ").next().unwrap();
            assert!(
                errors
                    .iter()
                    .any(|e| e["text"].as_str().unwrap().contains(line)),
                "{name}: no error reads {line:?} in {errors:?}"
            );
        }
        for error in errors {
            assert!(error["file"].as_str().unwrap().contains(name));
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} fixtures checked");
    // A chat of an invalid workflow is refused with the problems.
    let (status, body) = server
        .post(
            "/api/chats",
            json!({"app_id": "a", "user_id": "u", "workflow": "many_errors"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "INVALID_WORKFLOW");
    assert!(body["error"]["details"].as_array().unwrap().len() >= 3);
}

#[tokio::test]
async fn the_http_api_lists_and_shows_chats_and_reports_errors_in_one_shape() {
    let scratch = Scratch::new("http");
    let llm = FakeLlm::start(handoffs_llm).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let (_, workflows) = server.get("/api/workflows").await;
    let handoffs = workflows["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "Handoffs")
        .unwrap()
        .clone();
    assert_eq!(handoffs["valid"], true);
    assert_eq!(handoffs["agents"].as_array().unwrap().len(), 3);
    assert!(handoffs["cache_seed"].as_u64().is_some());
    let ui = workflows["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "UiTimeout")
        .unwrap();
    assert_eq!(ui["ui_components"], json!(["Confirm"]));

    let chat = server.start_chat("Handoffs").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("waiting_for_user").await;
    let (status, _) = server
        .post(
            &format!("/api/chats/{chat}/messages"),
            json!({"text": "refund"}),
        )
        .await;
    assert_eq!(status, 202);
    ws.until_status("completed").await;

    let (_, list) = server.get("/api/chats?app_id=app&user_id=alice").await;
    assert_eq!(list["chats"][0]["chat_id"], chat);
    let (_, none) = server.get("/api/chats?user_id=bob").await;
    assert_eq!(none["chats"], json!([]));
    let (_, body) = server.get(&format!("/api/chats/{chat}")).await;
    assert_eq!(body["status"], "completed");
    let kinds: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"user_message"));
    assert!(kinds.contains(&"tool_result") && kinds.contains(&"agent_message"));

    // Input to an ended chat, unknown chats and malformed bodies all answer
    // {"error": {"code", "message"}}.
    let (status, body) = server
        .post(
            &format!("/api/chats/{chat}/messages"),
            json!({"text": "hi"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("CHAT_ENDED"))
    );
    let (status, body) = server.get("/api/chats/nope/context").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("CHAT_NOT_FOUND"))
    );
    let (status, body) = server
        .post(
            "/api/chats",
            json!({"app_id": "a", "workflow": "Structured"}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "BAD_REQUEST_BODY");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("user_id")
    );
    let (status, body) = server
        .post(
            "/api/chats",
            json!({"app_id": "a", "user_id": "u", "workflow": "Nope"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("UNKNOWN_WORKFLOW"))
    );
}

#[tokio::test]
async fn ending_a_chat_stops_its_run_and_cancels_its_ui_request() {
    let scratch = Scratch::new("end");
    let llm = FakeLlm::start(|_| {
        Reply::tool_call(
            "ask",
            json!({"component": "Confirm", "payload": {}, "timeout_ms": 60000}),
        )
    })
    .await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("UiTimeout").await;
    let mut ws = server.ws(&chat, 0).await;
    let request = ws.until_type("ui_request").await;
    ws.send(json!({"type": "end_chat"})).await;
    let cancelled = ws.until_type("ui_response").await;
    assert_eq!(cancelled["request_id"], request["request_id"]);
    assert_eq!(cancelled["status"], "cancelled");
    let done = ws.until_status("completed").await;
    assert_eq!(done["reason"], "ended by the user");
    // Every persisted event reached the client, in order, without gaps.
    let live = seqs(&ws.seen);
    assert_eq!(live, (1..=live.len() as u64).collect::<Vec<_>>());
    assert_eq!(live.len(), server.events(&chat).await.len());
    let (_, body) = server.get(&format!("/api/chats/{chat}")).await;
    assert_eq!(body["status"], "completed");
    let (_, runs) = server.get("/health/active-runs").await;
    assert_eq!(runs["count"], 0);
}

on_both_stores!(every_client_gets_every_event_and_a_reconnecting_client_gets_what_it_missed,);
