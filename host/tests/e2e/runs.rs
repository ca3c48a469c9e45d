//! Handoffs, WASM tools changing context, UI tools, structured outputs,
//! LLM failures, and a chat that survives the server being killed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// Billing's scripted behaviour: plan the refund with two WASM tool calls.
fn handoffs_llm(call: &ChatCall) -> Reply {
    match agent_of(call).as_str() {
        "Triage" if call.last_text().contains("refund") => {
            Reply::tool_call("transfer_to_Billing", json!({}))
        }
        "Triage" => Reply::text("How can I help?"),
        "Billing" => Reply::ToolCalls(vec![
            (
                "add_task".into(),
                json!({"title": "Refund invoice 42", "priority": "high"}),
            ),
            (
                "complete_plan".into(),
                json!({"summary": "Refund invoice 42."}),
            ),
        ]),
        "Closer" => Reply::text("Your refund is on its way. Bye!"),
        other => Reply::Status(500, format!("unexpected agent {other}")),
    }
}

async fn llm_handoff_then_a_wasm_tool_changes_context_which_hands_off_without_an_llm_call(
    store: Store,
) {
    let scratch = Scratch::new("handoffs");
    let llm = FakeLlm::start(handoffs_llm).await;
    let server = Server::start(&Setup::on(store, &scratch, &llm)).await;
    let chat = server.start_chat("Handoffs").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("waiting_for_user").await;
    ws.send(json!({"type": "user_message", "text": "What are your hours?"}))
        .await;
    // Triage answers in text: its after_work hands back to the user.
    let handoff = ws.until_type("handoff").await;
    assert_eq!(handoff["to"], "Triage");
    let handoff = ws.until_type("handoff").await;
    assert_eq!(
        (handoff["from"].as_str(), handoff["to"].as_str()),
        (Some("Triage"), Some("user"))
    );
    assert_eq!(handoff["reason"]["kind"], "after_work");
    ws.until_status("waiting_for_user").await;

    ws.send(json!({"type": "user_message", "text": "I want a refund"}))
        .await;
    ws.until_status("completed").await;
    let handoffs: Vec<(String, String, String)> = of_type(&ws.seen, "handoff")
        .iter()
        .map(|h| {
            (
                h["from"].as_str().unwrap().to_owned(),
                h["to"].as_str().unwrap().to_owned(),
                h["reason"]["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let tail: Vec<_> = handoffs.iter().rev().take(4).rev().cloned().collect();
    let expect = |f: &str, t: &str, k: &str| (f.to_owned(), t.to_owned(), k.to_owned());
    assert_eq!(
        tail,
        [
            expect("user", "Triage", "after_work"),
            expect("Triage", "Billing", "llm"),
            expect("Billing", "Closer", "context"),
            expect("Closer", "terminate", "after_work"),
        ]
    );
    // Billing was asked once: the context condition decided after its tools.
    let billing_calls = llm
        .calls()
        .iter()
        .filter(|c| agent_of(c) == "Billing")
        .count();
    assert_eq!(billing_calls, 1);
    // The tools ran in WASM and changed the chat's context.
    let results = of_type(&ws.seen, "tool_result");
    assert!(results.iter().all(|r| r["ok"] == true), "{results:?}");
    let (_, context) = server.get(&format!("/api/chats/{chat}/context")).await;
    assert_eq!(context["context"]["plan_ready"], true);
    assert_eq!(context["context"]["tasks"][0]["title"], "Refund invoice 42");
    let changes = of_type(&ws.seen, "context_changed");
    assert!(
        changes
            .iter()
            .any(|c| c["key"] == "plan_ready" && c["by"] == "tool:complete_plan")
    );
    // The LLM was offered the tools with the plugin's schemas.
    let billing = llm
        .calls()
        .into_iter()
        .find(|c| agent_of(c) == "Billing")
        .unwrap();
    let offered = &billing.body["tools"];
    let add_task = offered
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "add_task")
        .unwrap();
    assert_eq!(
        add_task["function"]["parameters"]["required"],
        json!(["title"])
    );
}

/// The demo: Planner plans with WASM tools, a context condition hands off to
/// the Reviewer, who asks the user through ApprovalForm and answers with a
/// structured verdict.
fn plan_review_llm(call: &ChatCall) -> Reply {
    let results = call.tool_results();
    match agent_of(call).as_str() {
        "Planner" if results.is_empty() => Reply::ToolCalls(vec![
            (
                "add_task".into(),
                json!({"title": "Book venue", "priority": "high"}),
            ),
            ("add_task".into(), json!({"title": "Send invites"})),
            (
                "complete_plan".into(),
                json!({"summary": "Venue, then invites."}),
            ),
        ]),
        "Planner" => Reply::text("The plan is ready for review."),
        "Reviewer"
            if !results
                .iter()
                .any(|(_, content)| content.contains("approved")) =>
        {
            Reply::tool_call(
                "request_approval",
                json!({"question": "Approve this plan?", "details": "2 tasks"}),
            )
        }
        "Reviewer" => Reply::text(
            json!({"verdict": "approved", "concerns": [], "message": "Approved, go ahead."})
                .to_string(),
        ),
        other => Reply::Status(500, format!("unexpected agent {other}")),
    }
}

fn demo_setup(store: Store, scratch: &Scratch, llm: &FakeLlm) -> Setup {
    Setup {
        workflows: demo_workflows(),
        ..Setup::on(store, scratch, llm)
    }
}

async fn the_demo_runs_end_to_end_with_a_ui_tool_answered_by_the_client(store: Store) {
    let scratch = Scratch::new("demo");
    let llm = FakeLlm::start(plan_review_llm).await;
    let server = Server::start(&demo_setup(store, &scratch, &llm)).await;
    let chat = server.start_chat("PlanReview").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("waiting_for_user").await;
    ws.send(json!({"type": "user_message", "text": "Plan a party"}))
        .await;
    let request = ws.until_type("ui_request").await;
    assert_eq!(request["component"], "ApprovalForm");
    assert_eq!(request["payload"]["tasks"].as_array().unwrap().len(), 2);
    let request_id = request["request_id"].as_str().unwrap().to_owned();
    ws.send(json!({"type": "ui_response", "request_id": request_id, "answer": {"approved": true}}))
        .await;
    ws.until_status("completed").await;
    assert_eq!(speakers(&ws.seen), ["Planner", "Reviewer"]);
    // complete_plan sets plan_ready, whose rule is a `post` rule (the
    // default scope): the Planner is asked once more after its tools, and
    // hands off after that reply (docs/workflows.md, How a run executes).
    let asked: Vec<String> = llm.calls().iter().map(agent_of).collect();
    assert_eq!(asked, ["Planner", "Planner", "Reviewer", "Reviewer"]);
    // The LLM is always asked for a stream, with usage (docs/operations.md).
    assert!(llm.calls().iter().all(|c| c.is_stream() && c.wants_usage()));
    let response = ws.seen.iter().find(|e| e["type"] == "ui_response").unwrap();
    assert_eq!(response["status"], "answered");
    let verdict = ws
        .seen
        .iter()
        .rev()
        .find(|e| e["type"] == "agent_message")
        .unwrap();
    assert_eq!(verdict["agent"], "Reviewer");
    assert_eq!(verdict["model"], "ReviewVerdict");
    assert_eq!(verdict["structured"]["verdict"], "approved");
    let (_, context) = server.get(&format!("/api/chats/{chat}/context")).await;
    assert_eq!(context["context"]["approved"], true);
    assert_eq!(context["context"]["plan_ready"], true);
    // Text streamed as deltas before the complete message.
    assert!(
        ws.seen
            .iter()
            .any(|e| e["type"] == "text_delta" && e.get("seq").is_none())
    );
    // A second answer to the same request is refused.
    ws.send(
        json!({"type": "ui_response", "request_id": request_id, "answer": {"approved": false}}),
    )
    .await;
    let error = ws.until_type("error").await;
    assert_eq!(error["code"], "UI_REQUEST_NOT_OPEN");
}

#[tokio::test]
async fn a_ui_tool_nobody_answers_times_out_and_the_agent_is_told() {
    let scratch = Scratch::new("ui-timeout");
    let llm = FakeLlm::start(confirm_asker(300, "Nobody answered; I will stop here.")).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("UiTimeout").await;
    let mut ws = server.ws(&chat, 0).await;
    let request = ws.until_type("ui_request").await;
    assert_eq!(request["timeout_ms"], 300);
    let response = ws.until_type("ui_response").await;
    assert_eq!(response["request_id"], request["request_id"]);
    assert_eq!(response["status"], "timeout");
    let result = ws.until_type("tool_result").await;
    assert_eq!(result["ok"], false);
    assert_eq!(result["error"]["kind"], "cancelled");
    ws.until_status("completed").await;
    // The agent read the timeout as its tool result.
    let second = &llm.calls()[1];
    assert!(
        second.tool_results()[0]
            .1
            .contains("no answer within 300 ms")
    );
}

fn judge(replies: Vec<&'static str>) -> impl Fn(&ChatCall) -> Reply + Send + Sync + 'static {
    let next = AtomicUsize::new(0);
    move |_| {
        let i = next.fetch_add(1, Ordering::SeqCst);
        Reply::text(*replies.get(i).unwrap_or(&"{}"))
    }
}

#[tokio::test]
async fn a_valid_structured_output_is_parsed_and_sets_derived_context() {
    let scratch = Scratch::new("structured-valid");
    let llm = FakeLlm::start(judge(vec![r#"{"score": 7, "reason": "solid"}"#])).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("Structured").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
    let message = ws
        .seen
        .iter()
        .find(|e| e["type"] == "agent_message")
        .unwrap();
    assert_eq!(
        message["structured"],
        json!({"score": 7, "reason": "solid"})
    );
    assert!(llm.calls()[0].has_response_format());
    let (_, context) = server.get(&format!("/api/chats/{chat}/context")).await;
    assert_eq!(context["context"]["score"], 7);
}

async fn an_invalid_structured_output_is_retried_once_with_the_errors(store: Store) {
    let scratch = Scratch::new("structured-fixed");
    let llm = FakeLlm::start(judge(vec![
        r#"{"score": 11}"#,
        r#"{"score": 9, "reason": "fixed"}"#,
    ]))
    .await;
    let server = Server::start(&Setup::on(store, &scratch, &llm)).await;
    let chat = server.start_chat("Structured").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
    let retry = ws
        .seen
        .iter()
        .find(|e| e["type"] == "structured_output_retry")
        .unwrap();
    let errors = retry["errors"].to_string();
    assert!(
        errors.contains("/score") && errors.contains("reason"),
        "{errors}"
    );
    // The second call carried the validation errors.
    assert!(
        llm.calls()[1]
            .last_text()
            .contains("does not match the `Verdict` JSON Schema")
    );
    let last = ws
        .seen
        .iter()
        .rev()
        .find(|e| e["type"] == "agent_message")
        .unwrap();
    assert_eq!(last["structured"]["score"], 9);
}

#[tokio::test]
async fn a_structured_output_invalid_twice_fails_the_run_clearly() {
    let scratch = Scratch::new("structured-failed");
    let llm = FakeLlm::start(judge(vec!["not json", r#"{"score": "high"}"#])).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("Structured").await;
    let mut ws = server.ws(&chat, 0).await;
    let failed = ws.until_status("failed").await;
    let error = ws.seen.iter().find(|e| e["type"] == "error").unwrap();
    assert_eq!(error["code"], "STRUCTURED_OUTPUT_INVALID");
    assert!(error["message"].as_str().unwrap().contains("`Judge`"));
    assert!(failed["reason"].as_str().unwrap().contains("Verdict"));
    assert_eq!(llm.calls().len(), 2);
    let (_, chat_body) = server.get(&format!("/api/chats/{chat}")).await;
    assert_eq!(chat_body["status"], "failed");
}

#[tokio::test]
async fn an_llm_error_interrupts_the_run_and_continue_retries_it() {
    let scratch = Scratch::new("llm-error");
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let llm = FakeLlm::start(move |_| {
        // One retry (below): the call and its retry fail.
        if counter.fetch_add(1, Ordering::SeqCst) < 2 {
            Reply::Status(503, "the model is overloaded".into())
        } else {
            Reply::text(r#"{"score": 5, "reason": "ok"}"#)
        }
    })
    .await;
    let mut setup = Setup::new(&scratch, &llm);
    setup.extra_env.extend([
        ("MOZAIKS_LLM_MAX_RETRIES".into(), "1".into()),
        ("MOZAIKS_LLM_RETRY_BACKOFF_MS".into(), "10".into()),
    ]);
    let server = Server::start(&setup).await;
    let chat = server.start_chat("Structured").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("interrupted").await;
    let error = ws.seen.iter().find(|e| e["type"] == "error").unwrap();
    assert_eq!(error["code"], "LLM_HTTP_ERROR");
    assert!(error["message"].as_str().unwrap().contains("overloaded"));
    ws.send(json!({"type": "continue"})).await;
    ws.until_status("completed").await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// The retry policy is the server's own (MOZAIKS_LLM_MAX_RETRIES,
/// MOZAIKS_LLM_RETRY_BACKOFF_MS): each retry is an `llm_retry` event and a
/// `mozaiks_llm_retries_total` count; a 5xx that clears is invisible to the
/// run; a persistent 429 is `LLM_RATE_LIMITED`, waiting what `Retry-After`
/// says, not a timeout.
#[tokio::test]
async fn llm_retries_follow_the_configured_policy_and_a_persistent_429_is_rate_limited() {
    let scratch = Scratch::new("llm-retries");
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    // `llm_retry` is ephemeral: a socket that follows the chat after it
    // never sees it. The chat runs as soon as it is created, so the first
    // answer waits until the test's socket follows the chat.
    let socket_follows = Gate::new();
    let first_answer_waits = socket_follows.clone();
    let llm = FakeLlm::start(move |call| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        if call.system().contains("Judge") && n < 2 {
            return Reply::Status(502, "bad gateway".into()).after_gate(&first_answer_waits);
        }
        if call.system().contains("Judge") {
            return Reply::text(r#"{"score": 5, "reason": "ok"}"#);
        }
        Reply::RateLimited {
            retry_after_secs: 1,
            message: "Rate limit reached for requests".into(),
        }
    })
    .await;
    let mut setup = Setup::new(&scratch, &llm);
    setup.extra_env.extend([
        ("MOZAIKS_LLM_MAX_RETRIES".into(), "2".into()),
        ("MOZAIKS_LLM_RETRY_BACKOFF_MS".into(), "10".into()),
        ("LOG_LEVEL".into(), "warn".into()),
        ("MOZAIKS_LOG_FORMAT".into(), "off".into()),
    ]);
    let server = Server::start(&setup).await;
    let chat = server.start_chat("Structured").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until("the Judge's turn", |e| e["type"] == "speaker")
        .await;
    socket_follows.open();
    ws.until_status("completed").await;
    let retries = of_type(&ws.seen, "llm_retry");
    assert_eq!(retries.len(), 2, "{}", summary(&ws.seen));
    assert_eq!(
        (
            retries[0]["attempt"].as_u64(),
            retries[0]["max_retries"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(retries[1]["code"], "LLM_HTTP_ERROR");
    assert_eq!(retries[1]["status"], 502);
    assert!(retries.iter().all(|r| r["seq"].is_null()), "ephemeral");
    assert!(
        of_type(&server.events(&chat).await, "llm_retry").is_empty(),
        "not stored"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Every call of this chat is rate limited.
    let limited = server.start_chat("Handoffs").await;
    let mut ws = server.ws(&limited, 0).await;
    ws.until_status("waiting_for_user").await;
    ws.send(json!({"type": "user_message", "text": "hi"})).await;
    ws.until_status("interrupted").await;
    let retries = of_type(&ws.seen, "llm_retry");
    assert_eq!(retries.len(), 2, "{}", summary(&ws.seen));
    for retry in &retries {
        assert_eq!(retry["code"], "LLM_RATE_LIMITED", "{retry}");
        assert_eq!(retry["status"], 429, "{retry}");
        assert_eq!(retry["delay_ms"], 1000, "Retry-After is honoured: {retry}");
    }
    let error = ws.seen.iter().rfind(|e| e["type"] == "error").unwrap();
    assert_eq!(error["code"], "LLM_RATE_LIMITED", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("Rate limit reached"),
        "{error}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 6, "the call and two retries");
    let metrics = crate::telemetry::scrape(&server).await;
    assert_eq!(
        crate::telemetry::value(
            &metrics,
            r#"mozaiks_llm_retries_total{model="fake-model",code="LLM_RATE_LIMITED"}"#
        ),
        2.0
    );
    assert_eq!(
        crate::telemetry::value(
            &metrics,
            r#"mozaiks_llm_retries_total{model="fake-model",code="LLM_HTTP_ERROR"}"#
        ),
        2.0
    );
    let log = std::fs::read_to_string(setup.logs_dir().join("mozaiks.log")).unwrap();
    let logged: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["message"] == "LLM call failed; retrying")
        .collect();
    assert_eq!(logged.len(), 4, "{log}");
    assert_eq!(
        (
            logged[3]["level"].as_str(),
            logged[3]["code"].as_str(),
            logged[3]["attempt"].as_u64()
        ),
        (Some("WARN"), Some("LLM_RATE_LIMITED"), Some(2))
    );
}

#[tokio::test]
async fn without_an_llm_configured_the_server_starts_and_says_which_variable_is_missing() {
    let scratch = Scratch::new("no-llm");
    let llm = FakeLlm::start(|_| Reply::text("unused")).await;
    let setup = Setup {
        llm_url: None,
        ..Setup::new(&scratch, &llm)
    };
    let server = Server::start(&setup).await;
    let (_, health) = server.get("/health").await;
    assert_eq!(health["llm"]["missing"], "OPENAI_API_KEY");
    let chat = server.start_chat("Structured").await;
    let mut ws = server.ws(&chat, 0).await;
    let error = ws.until_type("error").await;
    assert_eq!(error["code"], "LLM_NOT_CONFIGURED");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("OPENAI_API_KEY")
    );
    ws.until_status("interrupted").await;
}

async fn a_chat_killed_mid_ui_request_resumes_after_restart_with_nothing_lost(store: Store) {
    let scratch = Scratch::new("resume");
    let llm = FakeLlm::start(plan_review_llm).await;
    let setup = demo_setup(store, &scratch, &llm);
    let server = Server::start(&setup).await;
    let chat = server.start_chat("PlanReview").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("waiting_for_user").await;
    ws.send(json!({"type": "user_message", "text": "Plan a party"}))
        .await;
    let first_request = ws.until_type("ui_request").await;
    let before = server.events(&chat).await;
    server.kill().await;

    let server = Server::start(&setup).await;
    let after = server.events(&chat).await;
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "every persisted event survived"
    );
    let last_seq = before.last().unwrap()["seq"].as_u64().unwrap();
    let mut ws = server.ws(&chat, last_seq).await;
    // The old request is closed, the tool asks again.
    let cancelled = ws.until_type("ui_response").await;
    assert_eq!(cancelled["request_id"], first_request["request_id"]);
    assert_eq!(cancelled["status"], "cancelled");
    let second_request = ws.until_type("ui_request").await;
    assert_ne!(second_request["request_id"], first_request["request_id"]);
    ws.send(json!({"type": "ui_response", "request_id": second_request["request_id"], "answer": {"approved": true}}))
        .await;
    ws.until_status("completed").await;
    // Sequence numbers stayed contiguous across the restart.
    let all = server.events(&chat).await;
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    // The tasks added before the crash were not added twice.
    let (_, context) = server.get(&format!("/api/chats/{chat}/context")).await;
    assert_eq!(context["context"]["tasks"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_chat_killed_mid_llm_call_is_resumed_on_start() {
    let scratch = Scratch::new("resume-llm");
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let llm = FakeLlm::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            // The first process is killed while it waits for this.
            Reply::text("never delivered").after(Duration::from_secs(60))
        } else {
            Reply::text(r#"{"score": 3, "reason": "after restart"}"#)
        }
    })
    .await;
    let setup = Setup::new(&scratch, &llm);
    let server = Server::start(&setup).await;
    let chat = server.start_chat("Structured").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_type("speaker").await;
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill().await;
    let server = Server::start(&setup).await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
    let message = ws
        .seen
        .iter()
        .find(|e| e["type"] == "agent_message")
        .unwrap();
    assert_eq!(message["structured"]["reason"], "after restart");
    let statuses: Vec<&Value> = of_type(&ws.seen, "run_status")
        .into_iter()
        .map(|s| &s["reason"])
        .collect();
    assert!(statuses.iter().any(|r| *r == "resumed"), "{statuses:?}");
    assert_eq!(
        speakers(&ws.seen),
        ["Judge"],
        "the interrupted turn is redone, not doubled"
    );
}

on_both_stores!(
    llm_handoff_then_a_wasm_tool_changes_context_which_hands_off_without_an_llm_call,
    the_demo_runs_end_to_end_with_a_ui_tool_answered_by_the_client,
    an_invalid_structured_output_is_retried_once_with_the_errors,
    a_chat_killed_mid_ui_request_resumes_after_restart_with_nothing_lost,
);

/// A run that waits for its user longer than `MOZAIKS_IDLE_RUN_SECS`
/// leaves memory (no active run, no chat state kept); the next message
/// starts it again from the log and the chat goes on with contiguous seqs.
#[tokio::test]
async fn an_idle_run_is_unloaded_and_the_next_message_resumes_it_from_the_log() {
    let scratch = Scratch::new("idle");
    let llm = FakeLlm::start(handoffs_llm).await;
    let mut setup = Setup::new(&scratch, &llm);
    setup
        .extra_env
        .push(("MOZAIKS_IDLE_RUN_SECS".into(), "1".into()));
    let server = Server::start(&setup).await;
    let chat = server.start_chat("Handoffs").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("waiting_for_user").await;
    // A client is attached: the run unloads, the chat's state stays for it.
    server
        .eventually("/health/active-runs", |_, body| body["count"] == 0)
        .await;
    ws.send(json!({"type": "user_message", "text": "What are your hours?"}))
        .await;
    ws.until("Triage's answer", |v| {
        v["type"] == "agent_message" && v["agent"] == "Triage"
    })
    .await;
    ws.until_status("waiting_for_user").await;
    ws.close().await;

    // Without a client the chat leaves memory altogether; HTTP brings it back.
    server
        .eventually("/health/active-runs", |_, body| body["count"] == 0)
        .await;
    let (status, body) = server
        .post(
            &format!("/api/chats/{chat}/messages"),
            json!({"text": "I want a refund"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let events = server
        .eventually(&format!("/api/chats/{chat}"), |_, body| {
            body["status"] == "completed"
        })
        .await;
    assert_eq!(events["status"], "completed");
    let events = server.events(&chat).await;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(of_type(&events, "user_message").len(), 2);
}

/// The workflows of the exactly-once tests (`effects_workflows/`: `Effects`,
/// whose Clerk calls the `effects` component's `apply` and `ledger`; the
/// other tests' servers do not load that component).
pub(crate) fn effects_setup(store: Store, scratch: &Scratch, llm: &FakeLlm) -> Setup {
    let mut setup = Setup::on(store, scratch, llm);
    setup.workflows =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/effects_workflows");
    let source = repo_root().join("tests/components/effects");
    assert!(
        source.join("effects.wasm").is_file(),
        "tests/components/effects/effects.wasm is missing: run scripts/build-plugins"
    );
    std::os::unix::fs::symlink(&source, setup.plugins.join("effects")).unwrap();
    setup
}

/// `Effects`: the Clerk applies `a` and `b` (two calls of one reply, each
/// confirmed through the `Confirm` UI request), then lists the `ledger`,
/// then answers.
pub(crate) fn effects_llm(call: &ChatCall) -> Reply {
    match call.tool_results().len() {
        0 => Reply::ToolCalls(vec![
            ("apply".into(), json!({"label": "a"})),
            ("apply".into(), json!({"label": "b"})),
        ]),
        2 => Reply::tool_call("ledger", json!({})),
        _ => Reply::text("Done."),
    }
}

/// docs/tool-authors.md, "Side effects": a call that finished before the
/// server was killed is not run again; the one killed while it waited for
/// its UI request runs again with the same idempotency key (attempt 2), and
/// its effect is made once.
async fn a_call_killed_mid_ui_request_runs_again_with_its_key_and_its_effect_is_made_once(
    store: Store,
) {
    let scratch = Scratch::new("effects");
    let llm = FakeLlm::start(effects_llm).await;
    let setup = effects_setup(store, &scratch, &llm);
    let server = Server::start(&setup).await;
    let chat = server.start_chat("Effects").await;
    let mut ws = server.ws(&chat, 0).await;
    let ask_a = ws.until_type("ui_request").await;
    assert_eq!(ask_a["payload"]["label"], "a");
    ws.send(json!({"type": "ui_response", "request_id": ask_a["request_id"], "answer": {"confirmed": true}}))
        .await;
    let ask_b = ws.until_type("ui_request").await;
    assert_eq!(ask_b["payload"]["label"], "b");
    let before = server.events(&chat).await;
    server.kill().await;

    let server = Server::start(&setup).await;
    let last_seq = before.last().unwrap()["seq"].as_u64().unwrap();
    let mut ws = server.ws(&chat, last_seq).await;
    // b's open request is closed, and its call asks again.
    let cancelled = ws.until_type("ui_response").await;
    assert_eq!(cancelled["request_id"], ask_b["request_id"]);
    assert_eq!(cancelled["status"], "cancelled");
    let again = ws.until_type("ui_request").await;
    assert_ne!(again["request_id"], ask_b["request_id"]);
    assert_eq!(again["payload"]["label"], "b", "only b runs again");
    assert_eq!(again["payload"]["key"], ask_b["payload"]["key"]);
    ws.send(json!({"type": "ui_response", "request_id": again["request_id"], "answer": {"confirmed": true}}))
        .await;
    ws.until_status("completed").await;

    let events = server.events(&chat).await;
    let applied = results_of(&events, "apply");
    let key_a = ask_a["payload"]["key"].as_str().unwrap();
    let key_b = ask_b["payload"]["key"].as_str().unwrap();
    assert_ne!(key_a, key_b);
    assert_eq!(
        applied,
        [
            json!({"key": key_a, "label": "a", "first_time": true, "runs": 1, "attempt": 1}),
            json!({"key": key_b, "label": "b", "first_time": true, "runs": 2, "attempt": 2}),
        ]
    );
    // a's call started once, b's twice (once per attempt), each under its id.
    let starts = |label: &str| {
        of_type(&events, "tool_call")
            .into_iter()
            .filter(|c| c["arguments"]["label"] == label)
            .map(|c| c["call_id"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(starts("a").len(), 1);
    assert_eq!(starts("b").len(), 2);
    assert_eq!(starts("b")[0], starts("b")[1]);
    let asked: Vec<&Value> = of_type(&events, "ui_request")
        .into_iter()
        .map(|r| &r["payload"]["label"])
        .collect();
    assert_eq!(asked, ["a", "b", "b"]);
    // One effect per key in the app's data, b's call ran twice.
    assert_eq!(
        ledger_effects(&events),
        [
            json!({"key": key_a, "label": "a", "runs": 1}),
            json!({"key": key_b, "label": "b", "runs": 2}),
        ]
    );
}

on_both_stores!(a_call_killed_mid_ui_request_runs_again_with_its_key_and_its_effect_is_made_once,);

/// docs/tool-authors.md, "Side effects", offline: `tool call` gives each
/// call a fresh key and prints it; `--idempotency-key` and `--attempt`
/// replay an attempt, which finds the effect the earlier attempt recorded
/// (in `--data-file`) and does not make it again.
#[test]
fn tool_call_prints_a_fresh_idempotency_key_and_replays_a_given_one() {
    use crate::cli::{assert_exit, mozaiks, stdout_json};
    let scratch = Scratch::new("tool-call-key");
    let data = scratch.0.join("data.json");
    std::fs::write(
        &data,
        json!({"app": {
            "effects": {"k-1": {"label": "ship", "key": "k-1"}},
            "effect_runs": {"k-1": {"runs": 1}}
        }})
        .to_string(),
    )
    .unwrap();
    let effects = repo_root().join("tests/components/effects");
    let answers = json!({"Confirm": {"confirmed": true}}).to_string();
    let apply = |extra: &[&str]| {
        let mut argv = vec![
            "tool",
            "call",
            effects.to_str().unwrap(),
            "apply",
            "--args",
            r#"{"label": "ship"}"#,
            "--answers",
            &answers,
        ];
        argv.extend_from_slice(extra);
        let out = mozaiks(&argv);
        assert_exit(&out, 0);
        stdout_json(&out)
    };
    let first = apply(&[]);
    let key = first["idempotency_key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 32, "{first}");
    assert_eq!(first["attempt"], 1);
    assert_eq!(
        first["result"]["ok"],
        json!({"key": key, "label": "ship", "first_time": true, "runs": 1, "attempt": 1})
    );
    assert_ne!(apply(&[])["idempotency_key"], key.as_str());

    let replay = apply(&[
        "--idempotency-key",
        "k-1",
        "--attempt",
        "2",
        "--data-file",
        data.to_str().unwrap(),
    ]);
    assert_eq!(replay["idempotency_key"], "k-1");
    assert_eq!(
        replay["result"]["ok"],
        json!({"key": "k-1", "label": "ship", "first_time": false, "runs": 2, "attempt": 2})
    );
    assert_eq!(
        replay["data"]["app"]["effects"]["k-1"]["version"], 1,
        "the effect was not made again: {replay}"
    );
}
