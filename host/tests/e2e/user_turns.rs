//! What happens around the user's turn, with the real binary and the fake
//! LLM: `llm` conditions on the user's handoff rules (one classification
//! call after each user message, persisted), and an agent's
//! `max_consecutive_auto_reply`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::support::*;

/// The first line of the classifier's system message.
const CLASSIFIER: &str = "You classify the user's latest message";

fn is_classifier(call: &ChatCall) -> bool {
    call.system().starts_with(CLASSIFIER)
}

/// The classifier says the user is satisfied (condition 2) when the latest
/// message says "great", and that nothing holds otherwise; the Planner
/// answers with a plan.
fn trip_llm(call: &ChatCall) -> Reply {
    if is_classifier(call) {
        if call.last_text().ends_with("Looks great, thanks") {
            Reply::text(r#"{"holds": 2}"#)
        } else {
            Reply::text(r#"{"holds": 0}"#)
        }
    } else {
        Reply::text("Day 1: the fjords. Day 2: the museums.")
    }
}

#[tokio::test]
async fn a_user_llm_condition_ends_the_chat_when_the_classifier_says_it_holds() {
    let scratch = Scratch::new("user-conditions");
    let llm = FakeLlm::start(trip_llm).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    // The workflow is written in YAML.
    let chat = server.start_chat("UserConditions").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("waiting_for_user").await;

    ws.send(json!({"type": "user_message", "text": "Plan a trip to Oslo"}))
        .await;
    let checked = ws.until_type("user_conditions_checked").await;
    assert_eq!(
        checked["conditions"],
        json!([
            "The user asks for changes to the plan.",
            "The user is satisfied with the plan."
        ])
    );
    assert_eq!(checked["holds"], Value::Null);
    // None held: the user's after_work gives the Planner the turn.
    let handoff = ws.until_type("handoff").await;
    assert_eq!(
        (handoff["to"].as_str(), handoff["reason"]["kind"].as_str()),
        (Some("Planner"), Some("after_work"))
    );
    ws.until_status("waiting_for_user").await;

    ws.send(json!({"type": "user_message", "text": "Looks great, thanks"}))
        .await;
    let checked = ws.until_type("user_conditions_checked").await;
    assert_eq!(checked["holds"], "The user is satisfied with the plan.");
    assert_eq!(checked["answer"], r#"{"holds": 2}"#);
    let handoff = ws.until_type("handoff").await;
    assert_eq!(
        (
            handoff["from"].as_str(),
            handoff["to"].as_str(),
            handoff["reason"]["kind"].as_str(),
            handoff["reason"]["condition"].as_str()
        ),
        (
            Some("user"),
            Some("terminate"),
            Some("user_condition"),
            Some("The user is satisfied with the plan.")
        )
    );
    let done = ws.until_status("completed").await;
    assert_eq!(done["reason"], "terminated by a handoff");

    // One classification call per user message, with the conditions in
    // file order and the answer's schema; its usage is reported apart.
    let calls = llm.calls();
    let classifications: Vec<&ChatCall> = calls.iter().filter(|c| is_classifier(c)).collect();
    assert_eq!(classifications.len(), 2);
    let system = classifications[1].system();
    assert!(
        system.contains(
            "1. The user asks for changes to the plan.\n2. The user is satisfied with the plan."
        ),
        "{system}"
    );
    assert!(
        classifications[1]
            .last_text()
            .contains("Planner: Day 1: the fjords"),
        "the classifier sees the conversation: {}",
        classifications[1].last_text()
    );
    let schema = classifications[1].response_schema().unwrap();
    assert_eq!(schema["properties"]["holds"]["maximum"], 2, "{schema}");
    assert_eq!(calls.len(), 3, "two classifications and one Planner turn");
    let usage = of_type(&ws.seen, "usage")
        .into_iter()
        .filter(|u| u["agent"] == "user_conditions")
        .count();
    assert_eq!(usage, 2);
    // The decision is in the stored log, as clients replaying it see it.
    let stored = server.events(&chat).await;
    assert_eq!(of_type(&stored, "user_conditions_checked").len(), 2);
}

#[tokio::test]
async fn a_failed_classification_interrupts_the_run_and_continue_asks_again() {
    let scratch = Scratch::new("user-conditions-failure");
    let classifications = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&classifications);
    let llm = FakeLlm::start(move |call| {
        if is_classifier(call) && counter.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::Status(503, "the model is overloaded".into());
        }
        trip_llm(call)
    })
    .await;
    let mut setup = Setup::new(&scratch, &llm);
    setup
        .extra_env
        .push(("MOZAIKS_LLM_MAX_RETRIES".into(), "0".into()));
    let server = Server::start(&setup).await;
    let chat = server.start_chat("UserConditions").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("waiting_for_user").await;
    ws.send(json!({"type": "user_message", "text": "Looks great, thanks"}))
        .await;
    ws.until_status("interrupted").await;
    let error = ws.seen.iter().find(|e| e["type"] == "error").unwrap();
    assert_eq!(error["code"], "LLM_HTTP_ERROR");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("user_conditions"),
        "{error}"
    );
    assert!(of_type(&ws.seen, "user_conditions_checked").is_empty());
    ws.send(json!({"type": "continue"})).await;
    let checked = ws.until_type("user_conditions_checked").await;
    assert_eq!(checked["holds"], "The user is satisfied with the plan.");
    ws.until_status("completed").await;
    assert_eq!(classifications.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_agent_stops_at_its_max_consecutive_auto_reply_until_the_user_speaks() {
    let scratch = Scratch::new("auto-reply-limit");
    let llm = FakeLlm::start(|call| Reply::text(format!("{} draft", agent_of(call)))).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("AutoReplyLimit").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("waiting_for_user").await;

    // Writer hands off to itself after every reply; its limit of 2 stops
    // it after two turns and the user gets the turn.
    for round in 1..=2 {
        ws.send(json!({"type": "user_message", "text": format!("draft {round}")}))
            .await;
        let stop = ws
            .until("the limit's handoff", |e| {
                e["type"] == "handoff" && e["reason"]["kind"] == "max_consecutive_auto_reply"
            })
            .await;
        assert_eq!(
            (
                stop["from"].as_str(),
                stop["to"].as_str(),
                stop["reason"]["limit"].as_u64()
            ),
            (Some("Writer"), Some("user"), Some(2))
        );
        ws.until_status("waiting_for_user").await;
        // A user message resets the count: two more turns each round.
        assert_eq!(speakers(&ws.seen).len(), 2 * round);
    }
    assert_eq!(llm.calls().len(), 4);
}

#[tokio::test]
async fn without_the_user_an_agent_at_its_limit_ends_the_run() {
    let scratch = Scratch::new("auto-reply-alone");
    let llm = FakeLlm::start(|call| Reply::text(format!("{} draft", agent_of(call)))).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("AutoReplyAlone").await;
    let mut ws = server.ws(&chat, 0).await;
    let done = ws.until_status("completed").await;
    assert_eq!(done["reason"], "terminated by a handoff");
    let last = of_type(&ws.seen, "handoff")
        .last()
        .copied()
        .cloned()
        .unwrap();
    assert_eq!(
        (
            last["to"].as_str(),
            last["reason"]["kind"].as_str(),
            last["reason"]["limit"].as_u64()
        ),
        (
            Some("terminate"),
            Some("max_consecutive_auto_reply"),
            Some(3)
        )
    );
    // The initial message counts as the user's: three turns after it.
    assert_eq!(speakers(&ws.seen), ["Writer", "Writer", "Writer"]);
}

#[tokio::test]
async fn the_users_expressions_are_checked_before_its_llm_conditions() {
    let scratch = Scratch::new("user-expression-first");
    let llm = FakeLlm::start(|_| Reply::text(r#"{"holds": 1}"#)).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("UserExpressionFirst").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("waiting_for_user").await;
    ws.send(json!({"type": "user_message", "text": "Plan my week"}))
        .await;
    ws.until_status("completed").await;
    let handoff = of_type(&ws.seen, "handoff")[0].clone();
    assert_eq!(handoff["reason"]["kind"], "context", "{handoff}");
    assert!(of_type(&ws.seen, "user_conditions_checked").is_empty());
    assert!(llm.calls().is_empty(), "no classification call");
}
