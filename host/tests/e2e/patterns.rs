//! Each orchestration pattern, and max_turns.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn round_robin_takes_agents_in_file_order_and_stops_at_max_turns() {
    let scratch = Scratch::new("round-robin");
    let llm = FakeLlm::start(|call| Reply::text(format!("{} speaking", agent_of(call)))).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("RoundRobin").await;
    let mut ws = server.ws(&chat, 0).await;
    let done = ws.until_status("completed").await;
    assert_eq!(done["reason"], "max_turns (5) reached");
    assert_eq!(
        speakers(&ws.seen),
        ["Alpha", "Beta", "Gamma", "Alpha", "Beta"]
    );
    // Every agent saw the others' messages as named user messages.
    let calls = llm.calls();
    assert_eq!(calls.len(), 5);
    let last = calls.last().unwrap();
    assert!(last.messages().iter().any(|m| m["name"] == "Gamma"));
    let (_, chat_body) = server.get(&format!("/api/chats/{chat}")).await;
    assert_eq!(chat_body["status"], "completed");
    assert!(chat_body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn random_pattern_picks_a_different_agent_each_turn() {
    let scratch = Scratch::new("random");
    let llm = FakeLlm::start(|call| Reply::text(format!("{} here", agent_of(call)))).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("Random").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
    let order = speakers(&ws.seen);
    assert_eq!(order.len(), 6);
    assert_eq!(order[0], "Alpha");
    for pair in order.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "random never repeats the speaker: {order:?}"
        );
    }
}

#[tokio::test]
async fn auto_pattern_lets_the_llm_pick_the_next_speaker() {
    let scratch = Scratch::new("auto");
    let llm = FakeLlm::start(|call| {
        if call.system().starts_with("You choose who speaks next") {
            // Always the other one.
            if call.last_text().contains("Writer:") && !call.last_text().contains("Editor:") {
                Reply::text("Editor")
            } else {
                Reply::text("Writer")
            }
        } else {
            Reply::text(format!("draft by {}", agent_of(call)))
        }
    })
    .await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("Auto").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
    assert_eq!(speakers(&ws.seen), ["Writer", "Editor", "Writer"]);
    let handoffs = of_type(&ws.seen, "handoff");
    assert!(
        handoffs
            .iter()
            .any(|h| h["reason"]["kind"] == "pattern" && h["reason"]["pattern"] == "AutoPattern")
    );
    let selection_usage = of_type(&ws.seen, "usage")
        .into_iter()
        .filter(|u| u["agent"] == "speaker_selection")
        .count();
    assert_eq!(selection_usage, 2, "one selection call per pick");
}

#[tokio::test]
async fn manual_pattern_waits_for_the_user_to_pick_the_speaker() {
    let scratch = Scratch::new("manual");
    let llm = FakeLlm::start(|call| Reply::text(format!("{} answers", agent_of(call)))).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("Manual").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("waiting_for_user").await;
    // Input the run does not wait for is refused, not queued.
    ws.send(json!({"type": "select_speaker", "agent": "Alpha"}))
        .await;
    let refused = ws.until_type("error").await;
    assert_eq!(refused["code"], "NOT_YOUR_TURN");
    assert!(refused.get("seq").is_none());
    ws.send(json!({"type": "user_message", "text": "hello"}))
        .await;
    let request = ws.until_type("speaker_request").await;
    assert_eq!(request["candidates"], json!(["Alpha", "Beta", "user"]));
    ws.send(json!({"type": "select_speaker", "agent": "Nobody"}))
        .await;
    let error = ws.until_type("error").await;
    assert_eq!(error["code"], "UNKNOWN_SPEAKER");
    ws.send(json!({"type": "select_speaker", "agent": "Beta"}))
        .await;
    let handoff = ws.until_type("handoff").await;
    assert_eq!(
        (
            handoff["from"].as_str(),
            handoff["to"].as_str(),
            handoff["reason"]["kind"].as_str()
        ),
        (Some("user"), Some("Beta"), Some("user"))
    );
    let speaker = ws.until_type("speaker").await;
    assert_eq!(speaker["agent"], "Beta");
    let message = ws.until_type("agent_message").await;
    assert_eq!(message["text"], "Beta answers");
    ws.until_type("speaker_request").await;
    ws.send(json!({"type": "select_speaker", "agent": "user"}))
        .await;
    ws.until_status("waiting_for_user").await;
}
