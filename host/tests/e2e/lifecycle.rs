//! Lifecycle tools, hooks and `auto_execute` into an agent tool, with the
//! real binary, the `lifecycle` test component and the fake LLM
//! (docs/workflows.md: "Lifecycle tools", "hooks.json", `auto_execute`).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::support::*;

/// The workflows of these tests (they need the `lifecycle` component,
/// which the other tests' servers do not load).
fn workflows() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/lifecycle_workflows")
}

/// A setup serving [`workflows`] with the `lifecycle` component beside the
/// usual plugins.
fn lifecycle_setup(store: Store, scratch: &Scratch, llm: &FakeLlm) -> Setup {
    let mut setup = Setup::on(store, scratch, llm);
    setup.workflows = workflows();
    let source = repo_root().join("tests/components/lifecycle");
    assert!(
        source.join("lifecycle.wasm").is_file(),
        "tests/components/lifecycle/lifecycle.wasm is missing: run scripts/build-plugins"
    );
    std::os::unix::fs::symlink(&source, setup.plugins.join("lifecycle")).unwrap();
    setup
}

/// Replies by agent: `replies` maps "You are X." prompts to a reply text.
fn by_agent(
    replies: &'static [(&'static str, &'static str)],
) -> impl Fn(&ChatCall) -> Reply + Send + Sync + 'static {
    move |call| {
        let agent = agent_of(call);
        let text = replies
            .iter()
            .find(|(name, _)| *name == agent)
            .map_or("unexpected agent", |(_, text)| text);
        Reply::text(text)
    }
}

fn position(events: &[Value], matches: impl Fn(&Value) -> bool) -> usize {
    events
        .iter()
        .position(matches)
        .unwrap_or_else(|| panic!("no such event in {}", summary(events)))
}

async fn a_ui_lifecycle_tool_collects_a_key_before_the_first_agent_speaks_across_a_kill_and_restart(
    store: Store,
) {
    let scratch = Scratch::new("lifecycle-ui");
    let llm = FakeLlm::start(by_agent(&[
        ("Planner", "Plan: one step."),
        ("Reviewer", "Looks good."),
    ]))
    .await;
    let setup = lifecycle_setup(store, &scratch, &llm);
    let server = Server::start(&setup).await;
    let chat = server.start_chat("Lifecycle").await;
    let mut ws = server.ws(&chat, 0).await;
    let first_request = ws.until_type("ui_request").await;
    assert_eq!(first_request["component"], "ApiKeys");
    assert_eq!(
        first_request["call_id"],
        "lifecycle-before_chat-collect_keys"
    );
    assert!(speakers(&ws.seen).is_empty(), "{}", summary(&ws.seen));
    let before = server.events(&chat).await;
    server.kill().await;

    let server = Server::start(&setup).await;
    let last_seq = before.last().unwrap()["seq"].as_u64().unwrap();
    let mut ws = server.ws(&chat, last_seq).await;
    let cancelled = ws.until_type("ui_response").await;
    assert_eq!(cancelled["request_id"], first_request["request_id"]);
    assert_eq!(cancelled["status"], "cancelled");
    let second_request = ws.until_type("ui_request").await;
    assert_eq!(second_request["component"], "ApiKeys");
    assert!(
        speakers(&ws.seen).is_empty(),
        "nobody speaks before the key is there: {}",
        summary(&ws.seen)
    );
    ws.send(
        json!({"type": "ui_response", "request_id": second_request["request_id"],
                   "answer": {"api_key": "k-123"}}),
    )
    .await;
    ws.until_status("completed").await;
    // Without a `process_message_before_send` hook, replies are streamed
    // (the hooks test checks that they are not with one).
    assert!(
        ws.seen
            .iter()
            .any(|e| e["type"] == "text_delta" && e["agent"] == "Planner"),
        "{}",
        summary(&ws.seen)
    );

    let events = server.events(&chat).await;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    // The UI tool's result comes before the first agent's turn.
    let collected = position(&events, |e| {
        e["type"] == "tool_result" && e["call_id"] == "lifecycle-before_chat-collect_keys"
    });
    assert_eq!(events[collected]["ok"], true, "{}", events[collected]);
    assert!(collected < position(&events, |e| e["type"] == "speaker"));
    // Every occasion has exactly one result, the restart included.
    let results: Vec<&str> = of_type(&events, "tool_result")
        .iter()
        .map(|e| e["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        results,
        [
            "lifecycle-before_chat-collect_keys",
            "lifecycle-before_chat-record",
            "lifecycle-before_agent-record_before_agent-turn-1",
            "lifecycle-after_agent-explode-turn-1",
            "lifecycle-before_agent-record_before_agent-turn-2",
            "lifecycle-after_agent-record_after_reviewer-turn-2",
            "lifecycle-after_agent-explode-turn-2",
            "lifecycle-after_chat-record_after_chat",
        ]
    );
    // Calls carry their trigger as `origin`, and chat triggers the `chat` caller.
    let first_call = of_type(&events, "tool_call")[0];
    assert_eq!(first_call["origin"], "before_chat");
    assert_eq!(first_call["agent"], "chat");
    assert_eq!(first_call["arguments"], json!({"trigger": "before_chat"}));
    // The failing lifecycle tool is a failed result; the run went on.
    for failed in of_type(&events, "tool_result")
        .into_iter()
        .filter(|e| e["tool"] == "explode")
    {
        assert_eq!(failed["ok"], false);
        assert_eq!(failed["error"]["kind"], "failed");
    }
    assert_eq!(speakers(&events), ["Planner", "Reviewer"]);
    let (_, context) = server.get(&format!("/api/chats/{chat}/context")).await;
    assert_eq!(context["context"]["api_key"], "k-123");
    assert_eq!(
        context["context"]["lifecycle_log"],
        json!([
            "before_chat",
            "before_agent:Planner",
            "before_agent:Reviewer",
            "after_agent:Reviewer",
            "after_chat"
        ])
    );
    // Lifecycle results stay out of what the agents' LLM sees.
    for call in llm.calls() {
        assert!(call.tool_results().is_empty(), "{:?}", call.messages());
    }
}

on_both_stores!(
    a_ui_lifecycle_tool_collects_a_key_before_the_first_agent_speaks_across_a_kill_and_restart
);

/// A chat of the Hooks workflow on the embedded store, its socket open:
/// the Planner's reply holds a password its hook redacts, and the Reviewer
/// has the slow, broken and wrong-shaped hooks.
async fn hooks_chat(scratch: &Scratch) -> (FakeLlm, Server, String, Ws) {
    let llm = FakeLlm::start(by_agent(&[
        ("Planner", "The password is hunter2."),
        ("Reviewer", "Reviewed hunter2."),
    ]))
    .await;
    let setup = lifecycle_setup(Store::Embedded, scratch, &llm);
    let server = Server::start(&setup).await;
    let chat = server.start_chat("Hooks").await;
    let ws = server.ws(&chat, 0).await;
    (llm, server, chat, ws)
}

#[tokio::test]
async fn hooks_add_state_to_the_system_message_and_redact_replies_and_a_failing_or_slow_hook_only_warns()
 {
    let scratch = Scratch::new("hooks");
    let (llm, server, chat, mut ws) = hooks_chat(&scratch).await;
    ws.until_status("completed").await;

    let calls = llm.calls();
    let call_of = |agent: &str| {
        calls
            .iter()
            .find(|c| agent_of(c) == agent)
            .unwrap_or_else(|| panic!("no LLM call for {agent}"))
    };
    // update_agent_state: the hook's text follows the system message.
    let planner = call_of("Planner");
    assert!(
        planner.system().starts_with("You are Planner. Plan.\n\nState for Planner: api_key is unknown (system message of 22 bytes)."),
        "{}",
        planner.system()
    );
    // The slow hook ran out of time: the Reviewer got the other hook's text only.
    let reviewer = call_of("Reviewer");
    assert!(
        reviewer
            .system()
            .ends_with("\n\nState for Reviewer: api_key is unknown (system message of 25 bytes)."),
        "{}",
        reviewer.system()
    );
    // process_message_before_send: the Planner's reply is stored, sent
    // and shown to the next agent redacted, and was never streamed.
    let events = server.events(&chat).await;
    let texts: Vec<(&str, &str)> = of_type(&events, "agent_message")
        .iter()
        .map(|e| (e["agent"].as_str().unwrap(), e["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        texts,
        [
            ("Planner", "The password is [redacted]."),
            // The Reviewer's hooks failed: its reply is unchanged.
            ("Reviewer", "Reviewed hunter2."),
        ]
    );
    assert!(
        !ws.seen
            .iter()
            .any(|e| e["type"] == "text_delta" && e["agent"] == "Planner"),
        "{}",
        summary(&ws.seen)
    );
    assert!(
        reviewer
            .messages()
            .iter()
            .any(|m| m["content"] == "The password is [redacted]."),
        "{:?}",
        reviewer.messages()
    );
    assert!(
        !reviewer
            .messages()
            .iter()
            .any(|m| m.to_string().contains("hunter2")),
        "{:?}",
        reviewer.messages()
    );
    // One warning per failed hook, and the run completed.
    let warnings: Vec<&str> = of_type(&events, "warning")
        .iter()
        .map(|w| {
            assert_eq!(w["code"], "HOOK_FAILED", "{w}");
            w["message"].as_str().unwrap()
        })
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings[0].contains("lifecycle.slow_hook") && warnings[0].contains("deadline_exceeded"),
        "{warnings:?}"
    );
    assert!(
        warnings[1].contains("lifecycle.broken_hook")
            && warnings[1].contains("hook broke on purpose")
            && warnings[1].ends_with("the message is unchanged"),
        "{warnings:?}"
    );
    assert!(
        warnings[2].contains("lifecycle.wrong_shape")
            && warnings[2].contains("returned an object, not a string or null"),
        "{warnings:?}"
    );
    assert_eq!(speakers(&events), ["Planner", "Reviewer"]);
}

/// Ends `chat` as its user does (`POST /api/chats/{id}/end`) and waits on
/// `ws` until it completes, "ended by the user".
async fn end_by_the_user(server: &Server, chat: &str, ws: &mut Ws) {
    let (status, _) = server
        .post(&format!("/api/chats/{chat}/end"), json!({}))
        .await;
    assert_eq!(status, 202);
    let completed = ws.until_status("completed").await;
    assert_eq!(completed["reason"], "ended by the user");
}

/// The Reviewer's `slow_hook` never returns. Ending the chat while it runs
/// completes the chat without waiting for the hook's deadline: no warning
/// says the hook ran out of time, and the Reviewer's LLM is never called.
#[tokio::test]
async fn ending_the_chat_stops_a_running_hook_without_waiting_for_its_deadline() {
    let scratch = Scratch::new("hooks-end");
    let (llm, server, chat, mut ws) = hooks_chat(&scratch).await;
    ws.until("the Reviewer's turn", |e| {
        e["type"] == "speaker" && e["agent"] == "Reviewer"
    })
    .await;
    end_by_the_user(&server, &chat, &mut ws).await;

    let events = server.events(&chat).await;
    assert!(
        !of_type(&events, "warning")
            .iter()
            .any(|w| w["message"].as_str().unwrap().contains("slow_hook")),
        "the hook ran to its deadline: {}",
        summary(&events)
    );
    assert!(
        llm.calls().iter().all(|c| agent_of(c) != "Reviewer"),
        "the Reviewer's LLM call was made after the end"
    );
}

#[tokio::test]
async fn a_structured_output_goes_to_an_agent_tool_inside_the_turn_and_the_next_speaker_reads_its_result()
 {
    let scratch = Scratch::new("auto-execute");
    let llm = FakeLlm::start(by_agent(&[
        ("Judge", r#"{"score": 7, "reason": "clear"}"#),
        ("Clerk", "Receipt noted."),
    ]))
    .await;
    let setup = lifecycle_setup(Store::Embedded, &scratch, &llm);
    let server = Server::start(&setup).await;
    let chat = server.start_chat("AutoExecute").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;

    let events = server.events(&chat).await;
    let verdict = position(&events, |e| {
        e["type"] == "agent_message" && e["agent"] == "Judge"
    });
    let verdict_seq = events[verdict]["seq"].as_u64().unwrap();
    let call_id = format!("auto-{verdict_seq}-save_verdict");
    let call = &events[position(&events, |e| e["type"] == "tool_call")];
    assert_eq!(call["call_id"], call_id.as_str());
    assert_eq!(call["origin"], "auto_execute");
    assert_eq!(call["agent"], "Judge");
    assert_eq!(call["arguments"], json!({"score": 7, "reason": "clear"}));
    let result_at = position(&events, |e| e["type"] == "tool_result");
    let result = &events[result_at];
    assert_eq!(result["ok"], true, "{result}");
    assert!(
        result["content"].as_str().unwrap().contains("R-7"),
        "{result}"
    );
    // Inside the turn: before the Judge's turn ends with its handoff.
    assert!(result_at < position(&events, |e| e["type"] == "handoff" && e["from"] == "Judge"));
    let (_, context) = server.get(&format!("/api/chats/{chat}/context")).await;
    assert_eq!(context["context"]["saved_score"], 7);
    // The next speaker's LLM sees the Judge's call of the tool and its result.
    let clerk = llm
        .calls()
        .into_iter()
        .find(|c| agent_of(c) == "Clerk")
        .unwrap();
    let results = clerk.tool_results();
    assert_eq!(results.len(), 1, "{:?}", clerk.messages());
    assert_eq!(results[0].0, call_id);
    assert!(results[0].1.contains("R-7"));
    let asked = clerk
        .messages()
        .iter()
        .find(|m| m["role"] == "assistant" && m.get("tool_calls").is_some())
        .unwrap();
    assert_eq!(asked["tool_calls"][0]["function"]["name"], "save_verdict");
}

#[tokio::test]
async fn in_a_user_driven_chat_before_chat_runs_at_creation_and_a_transfer_tool_still_runs_after_agent_and_after_chat()
 {
    let scratch = Scratch::new("lifecycle-user");
    let llm = FakeLlm::start(|call| {
        if call.last_text() == "bye" {
            Reply::tool_call("terminate_chat", json!({}))
        } else {
            Reply::text("The password is hunter2.")
        }
    })
    .await;
    let setup = lifecycle_setup(Store::Embedded, &scratch, &llm);
    let server = Server::start(&setup).await;
    let chat = server.start_chat("UserLifecycle").await;
    let mut ws = server.ws(&chat, 0).await;
    // The chat is created waiting for its user; before_chat runs at once.
    ws.until("before_chat's result", |e| {
        e["type"] == "tool_result" && e["call_id"] == "lifecycle-before_chat-record"
    })
    .await;
    ws.send(json!({"type": "user_message", "text": "hello"}))
        .await;
    ws.until_type("agent_message").await;
    ws.until_status("waiting_for_user").await;
    ws.send(json!({"type": "user_message", "text": "bye"}))
        .await;
    ws.until_status("completed").await;

    let events = server.events(&chat).await;
    // Both process_message_before_send hooks ran, the second on the first's text.
    let replies = of_type(&events, "agent_message");
    assert_eq!(replies[0]["text"], "The password is [redacted]. -- signed");
    // Both update_agent_state hooks' texts, joined by a blank line.
    let system = llm.calls()[0].system().to_owned();
    let line = "State for Planner: api_key is unknown (system message of 22 bytes).";
    assert_eq!(
        system,
        format!("You are Planner. Plan.\n\n{line}\n\n{line}"),
        "{system}"
    );
    // They run for every LLM call, not once per chat or turn.
    assert_eq!(llm.calls().len(), 2);
    assert_eq!(llm.calls()[1].system(), system);
    // The turn that ended with the transfer tool ran after_agent before
    // its handoff, and the terminate ran after_chat.
    let after_agent = position(&events, |e| {
        e["type"] == "tool_result"
            && e["call_id"] == "lifecycle-after_agent-record_after_agent-turn-2"
    });
    let handoff = position(&events, |e| {
        e["type"] == "handoff" && e["to"] == "terminate"
    });
    assert!(after_agent < handoff, "{}", summary(&events));
    assert_eq!(events[handoff]["reason"]["kind"], "llm");
    let (_, context) = server.get(&format!("/api/chats/{chat}/context")).await;
    assert_eq!(
        context["context"]["lifecycle_log"],
        json!([
            "before_chat",
            "after_agent:Planner",
            "after_agent:Planner",
            "after_chat"
        ])
    );
}

async fn auto_executed_tools_resume_after_a_kill_and_only_the_call_without_a_result_runs_again(
    store: Store,
) {
    let scratch = Scratch::new("auto-execute-resume");
    let llm = FakeLlm::start(by_agent(&[
        ("Judge", r#"{"score": 4, "reason": "thin"}"#),
        ("Clerk", "Both noted."),
    ]))
    .await;
    let setup = lifecycle_setup(store, &scratch, &llm);
    let server = Server::start(&setup).await;
    let chat = server.start_chat("AutoExecuteUi").await;
    let mut ws = server.ws(&chat, 0).await;
    let first_request = ws.until_type("ui_request").await;
    assert_eq!(first_request["component"], "ConfirmVerdict");
    assert_eq!(
        first_request["payload"],
        json!({"score": 4, "reason": "thin"})
    );
    let before = server.events(&chat).await;
    server.kill().await;

    let server = Server::start(&setup).await;
    let last_seq = before.last().unwrap()["seq"].as_u64().unwrap();
    let mut ws = server.ws(&chat, last_seq).await;
    assert_eq!(ws.until_type("ui_response").await["status"], "cancelled");
    let second_request = ws.until_type("ui_request").await;
    ws.send(
        json!({"type": "ui_response", "request_id": second_request["request_id"],
                   "answer": {"ok": true}}),
    )
    .await;
    ws.until_status("completed").await;

    let events = server.events(&chat).await;
    let count = |kind: &str, tool: &str| {
        of_type(&events, kind)
            .iter()
            .filter(|e| e["tool"] == tool)
            .count()
    };
    // The agent tool ran once; the UI tool was asked again and answered once.
    assert_eq!(
        count("tool_call", "save_verdict"),
        1,
        "{}",
        summary(&events)
    );
    assert_eq!(count("tool_result", "save_verdict"), 1);
    assert_eq!(count("tool_call", "confirm_verdict"), 2);
    assert_eq!(count("tool_result", "confirm_verdict"), 1);
    let confirmed = of_type(&events, "tool_result")
        .into_iter()
        .find(|e| e["tool"] == "confirm_verdict")
        .unwrap();
    assert_eq!(confirmed["ok"], true, "{confirmed}");
    assert_eq!(speakers(&events), ["Judge", "Clerk"]);
    // The Clerk sees each call once, each followed by its result.
    let clerk = llm
        .calls()
        .into_iter()
        .find(|c| agent_of(c) == "Clerk")
        .unwrap();
    let asked: Vec<&Value> = clerk
        .messages()
        .iter()
        .filter(|m| m["role"] == "assistant" && m.get("tool_calls").is_some())
        .collect();
    assert_eq!(asked.len(), 2, "{:?}", clerk.messages());
    let results = clerk.tool_results();
    assert_eq!(results.len(), 2, "{:?}", clerk.messages());
    assert!(results[1].1.contains("confirmed"), "{results:?}");
}

on_both_stores!(
    auto_executed_tools_resume_after_a_kill_and_only_the_call_without_a_result_runs_again
);

#[tokio::test]
async fn after_chat_runs_when_max_turns_ends_the_run_but_not_when_the_user_ends_the_chat() {
    let scratch = Scratch::new("lifecycle-end");
    let llm = FakeLlm::start(|_| Reply::text("Done.")).await;
    let setup = lifecycle_setup(Store::Embedded, &scratch, &llm);
    let server = Server::start(&setup).await;

    // max_turns: the handoff to terminate, then after_chat, then completed.
    let chat = server.start_chat("MaxTurns").await;
    let mut ws = server.ws(&chat, 0).await;
    let completed = ws.until_status("completed").await;
    assert_eq!(completed["reason"], "max_turns (1) reached");
    let events = server.events(&chat).await;
    let handoff = position(&events, |e| {
        e["type"] == "handoff" && e["reason"]["kind"] == "max_turns"
    });
    let after_chat = position(&events, |e| {
        e["type"] == "tool_result" && e["call_id"] == "lifecycle-after_chat-record"
    });
    assert!(
        handoff < after_chat && after_chat < events.len() - 1,
        "{}",
        summary(&events)
    );
    let (_, context) = server.get(&format!("/api/chats/{chat}/context")).await;
    assert_eq!(context["context"]["lifecycle_log"], json!(["after_chat"]));

    // Ended by the user: no after_chat.
    let chat = server.start_chat("UserLifecycle").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until("before_chat's result", |e| e["type"] == "tool_result")
        .await;
    end_by_the_user(&server, &chat, &mut ws).await;
    let events = server.events(&chat).await;
    assert!(
        !of_type(&events, "tool_call")
            .iter()
            .any(|e| e["origin"] == "after_chat"),
        "{}",
        summary(&events)
    );
}

#[tokio::test]
async fn a_structured_reply_is_rewritten_by_its_hook_before_it_is_validated_and_stored() {
    let scratch = Scratch::new("structured-hook");
    let llm = FakeLlm::start(|_| Reply::text(r#"{"score": 3, "reason": "hunter2 leaked"}"#)).await;
    let setup = lifecycle_setup(Store::Embedded, &scratch, &llm);
    let server = Server::start(&setup).await;
    let chat = server.start_chat("StructuredHook").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
    let events = server.events(&chat).await;
    let reply = of_type(&events, "agent_message")[0];
    assert_eq!(
        reply["text"],
        r#"{"score": 3, "reason": "[redacted] leaked"}"#
    );
    assert_eq!(
        reply["structured"],
        json!({"score": 3, "reason": "[redacted] leaked"})
    );
}
