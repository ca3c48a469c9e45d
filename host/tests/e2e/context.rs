//! What agents see of the context and what sets it without a tool: a
//! prompt showing a variable a tool changed in the previous turn, `file`
//! sources (and one edited while the server runs), `derived` values from a
//! nested field, each trigger kind firing a handoff, and a tool's write of
//! the wrong type refused.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::*;

/// The system messages of the requests made for `agent`, in order.
fn prompts_of(llm: &FakeLlm, agent: &str) -> Vec<String> {
    llm.calls()
        .iter()
        .filter(|c| agent_of(c) == agent)
        .map(|c| c.system().to_owned())
        .collect()
}

/// The `context_changed` events that set `key`, as (value, by).
fn changes_of(events: &[Value], key: &str) -> Vec<(Value, String)> {
    of_type(events, "context_changed")
        .into_iter()
        .filter(|e| e["key"] == key)
        .map(|e| (e["value"].clone(), e["by"].as_str().unwrap().to_owned()))
        .collect()
}

/// ContextPrompt's script: the Planner calls `complete_plan` and answers,
/// the Reviewer scores the plan 7 (nested field), the Closer says goodbye.
fn prompt_llm(call: &ChatCall) -> Reply {
    match agent_of(call).as_str() {
        "Planner" if call.tool_results().is_empty() => {
            Reply::tool_call("complete_plan", json!({"summary": "Ship v2 on Monday."}))
        }
        "Planner" => Reply::text("The plan is complete."),
        "Reviewer" => Reply::text(r#"{"review": {"score": 7, "notes": "fine"}}"#),
        "Closer" => Reply::text("Bye."),
        other => Reply::Status(500, format!("unexpected agent {other}")),
    }
}

async fn the_next_llm_call_shows_what_a_tool_set_and_a_nested_field_hands_off(store: Store) {
    let scratch = Scratch::new("context-prompt");
    let llm = FakeLlm::start(prompt_llm).await;
    let server = Server::start(&Setup::on(store, &scratch, &llm)).await;
    let chat = server.start_chat("ContextPrompt").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
    let events = server.events(&chat).await;
    assert_eq!(
        speakers(&events),
        ["Planner", "Reviewer", "Closer"],
        "{}",
        summary(&events)
    );

    // The Planner's first call: the file source in the template, the
    // visible variables before any tool ran.
    let planner = prompts_of(&llm, "Planner");
    assert_eq!(planner.len(), 2, "{planner:?}");
    assert_eq!(
        planner[0],
        "You are Planner. Limits: {\"max_tasks\":5}.\n\n[CONTEXT]\nCurrent values of the chat's context variables:\n- plan_summary: null\n- task_count: null"
    );
    // Its next call, after `complete_plan` set plan_summary (through the
    // context port) and task_count (from the result's `tasks` field).
    assert!(
        planner[1].ends_with("- plan_summary: Ship v2 on Monday.\n- task_count: 0"),
        "{}",
        planner[1]
    );
    // The Reviewer's turn renders the variable in its prompt section.
    let reviewer = prompts_of(&llm, "Reviewer");
    assert_eq!(
        reviewer[0],
        "You are Reviewer.\n\n[PLAN]\nThe plan to review: Ship v2 on Monday."
    );
    // `score` came from review.score of the structured output, and its
    // condition handed off to the Closer, whose prompt shows it.
    assert_eq!(
        changes_of(&events, "score").last().unwrap(),
        &(json!(7), "agent:Reviewer".to_owned())
    );
    assert_eq!(
        changes_of(&events, "task_count").last().unwrap(),
        &(json!(0), "tool:complete_plan".to_owned())
    );
    assert_eq!(
        prompts_of(&llm, "Closer")[0],
        "You are Closer. The review scored 7."
    );
    // A result field of the wrong type is not written.
    assert_eq!(
        changes_of(&events, "ready_text"),
        [(Value::Null, "init".to_owned())]
    );
}

/// ContextTriggers' script: each agent says what fires its trigger; the
/// Closer asks for approval. The Planner answers once `planner_may_answer`
/// is open.
fn triggers_llm(planner_may_answer: Gate) -> impl Fn(&ChatCall) -> Reply + Send + Sync + 'static {
    move |call| match agent_of(call).as_str() {
        "Planner" => Reply::text("Here is the plan.\nPLAN_DONE").after_gate(&planner_may_answer),
        "Reviewer" => Reply::text("Not yet [[REJECT]] please rework."),
        "Scorer" => Reply::text("My final score: 42"),
        "Closer" if call.tool_results().is_empty() => {
            Reply::tool_call("request_approval", json!({"question": "Approve?"}))
        }
        other => Reply::Status(500, format!("unexpected call for {other}")),
    }
}

/// [`triggers_llm`] with the Planner answering at once.
fn triggers_llm_now() -> impl Fn(&ChatCall) -> Reply + Send + Sync + 'static {
    let gate = Gate::new();
    gate.open();
    triggers_llm(gate)
}

async fn each_trigger_kind_sets_its_variable_and_fires_a_handoff(store: Store) {
    let scratch = Scratch::new("context-triggers");
    let planner_may_answer = Gate::new();
    let llm = FakeLlm::start(triggers_llm(planner_may_answer.clone())).await;
    let server = Server::start(&Setup::on(store, &scratch, &llm)).await;
    let chat = server.start_chat("ContextTriggers").await;
    let mut ws = server.ws(&chat, 0).await;
    // The socket follows the chat once it has an event: from then on no
    // agent's text deltas can be missed (they are not replayed to a late
    // socket, and the test checks that the Reviewer's were sent).
    ws.until("the Planner's turn", |e| {
        e["type"] == "speaker" && e["agent"] == "Planner"
    })
    .await;
    planner_may_answer.open();
    let request = ws.until_type("ui_request").await;
    // `approved` (top level) is what the planner tool reads and stores
    // itself; the trigger reads `decision.approved`.
    ws.send(json!({
        "type": "ui_response",
        "request_id": request["request_id"],
        "answer": {"approved": false, "decision": {"approved": true}}
    }))
    .await;
    ws.until_status("completed").await;
    let events = server.events(&chat).await;
    assert_eq!(
        speakers(&events),
        ["Planner", "Reviewer", "Scorer", "Closer"],
        "{}",
        summary(&events)
    );
    assert_eq!(
        changes_of(&events, "planner_done").last().unwrap(),
        &(json!(true), "trigger:Planner".to_owned())
    );
    assert_eq!(
        changes_of(&events, "verdict").last().unwrap(),
        &(json!("rejected"), "trigger:Reviewer".to_owned())
    );
    assert_eq!(
        changes_of(&events, "scored").last().unwrap(),
        &(json!(true), "trigger:Scorer".to_owned())
    );
    assert_eq!(
        changes_of(&events, "closer_approved"),
        [
            (Value::Null, "init".to_owned()),
            (json!(true), "trigger:request_approval".to_owned())
        ]
    );
    let handoffs: Vec<(String, String, String)> = of_type(&events, "handoff")
        .iter()
        .map(|h| {
            (
                h["from"].as_str().unwrap().to_owned(),
                h["to"].as_str().unwrap().to_owned(),
                h["reason"]["condition"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .skip(1)
        .collect();
    assert_eq!(
        handoffs,
        [
            (
                "Planner".into(),
                "Reviewer".into(),
                "${planner_done} == true".into()
            ),
            (
                "Reviewer".into(),
                "Scorer".into(),
                "${verdict} == \"rejected\"".into()
            ),
            ("Scorer".into(), "Closer".into(), "${scored} == true".into()),
            (
                "Closer".into(),
                "terminate".into(),
                "${closer_approved} == true".into()
            ),
        ]
    );
    // The ui_response trigger handed off straight after the tool (a `pre`
    // rule): the Closer's LLM was asked once.
    assert_eq!(prompts_of(&llm, "Closer").len(), 1);

    // ui_hidden: clients and the log keep the message without the token,
    // and the Planner's text was not streamed in pieces that showed it.
    let planner_message = of_type(&events, "agent_message")
        .into_iter()
        .find(|m| m["agent"] == "Planner")
        .unwrap();
    assert_eq!(planner_message["text"], "Here is the plan.");
    assert!(
        !ws.seen.iter().any(|e| e.to_string().contains("PLAN_DONE")),
        "the token reached a client: {}",
        summary(&ws.seen)
    );
    assert!(
        !ws.seen
            .iter()
            .any(|e| e["type"] == "text_delta" && e["agent"] == "Planner"),
        "the hidden agent was streamed"
    );
    assert!(
        ws.seen
            .iter()
            .any(|e| e["type"] == "text_delta" && e["agent"] == "Reviewer"),
        "other agents still stream"
    );
    // The trigger's event comes before the message it fired on.
    let seq_of = |pred: &dyn Fn(&Value) -> bool| {
        events.iter().find(|e| pred(e)).unwrap()["seq"]
            .as_u64()
            .unwrap()
    };
    assert!(
        seq_of(&|e| e["type"] == "context_changed"
            && e["key"] == "planner_done"
            && e["by"] == "trigger:Planner")
            < seq_of(&|e| e["type"] == "agent_message" && e["agent"] == "Planner")
    );
    // Triggers without ui_hidden keep the text as the agent wrote it.
    assert!(
        of_type(&events, "agent_message")
            .iter()
            .any(|m| m["text"] == "Not yet [[REJECT]] please rework.")
    );
}

on_both_stores!(
    the_next_llm_call_shows_what_a_tool_set_and_a_nested_field_hands_off,
    each_trigger_kind_sets_its_variable_and_fires_a_handoff,
);

#[tokio::test]
async fn a_tool_writing_the_wrong_type_or_an_undeclared_variable_gets_a_tool_error_and_nothing_is_written()
 {
    let scratch = Scratch::new("context-wrong-type");
    let llm = FakeLlm::start(|call| {
        if call.tool_results().is_empty() {
            Reply::ToolCalls(vec![
                ("complete_plan".into(), json!({"summary": "not a number"})),
                ("add_task".into(), json!({"title": "t"})),
            ])
        } else {
            Reply::text("I could not store it.")
        }
    })
    .await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("ContextWrongType").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
    let events = server.events(&chat).await;
    let results = of_type(&events, "tool_result");
    assert_eq!(results.len(), 2, "{}", summary(&events));
    assert_eq!(results[0]["ok"], false);
    let message = results[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("context variable `plan_summary` is declared integer")
            && message.contains("wrote a string, so nothing was written"),
        "{message}"
    );
    assert_eq!(results[1]["ok"], false);
    let message = results[1]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`tasks` is not declared")
            && message.contains("undeclared_context_writes: \"refuse\""),
        "{message}"
    );
    // Only the initial null: the refused writes left no trace.
    assert_eq!(
        changes_of(&events, "plan_summary"),
        [(Value::Null, "init".to_owned())]
    );
    assert!(changes_of(&events, "tasks").is_empty());
    assert!(changes_of(&events, "plan_ready").is_empty());
    // The agent read the refusal as its tool result.
    let next = llm.calls().last().unwrap().tool_results();
    assert!(next[0].1.contains("plan_summary"), "{next:?}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

async fn version_of(server: &Server, name: &str) -> String {
    let (_, body) = server.get("/api/workflows").await;
    body["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name)
        .map(|w| w["version"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_file_source_edited_while_the_server_runs_is_seen_by_the_next_chat() {
    let scratch = Scratch::new("context-file");
    let llm = FakeLlm::start(prompt_llm).await;
    let mut setup = Setup::new(&scratch, &llm);
    setup.workflows = scratch.0.join("workflows");
    let folder = setup.workflows.join("ContextPrompt");
    copy_dir(&test_workflows().join("ContextPrompt"), &folder);
    let server = Server::start(&setup).await;

    let first = server.start_chat("ContextPrompt").await;
    server.ws(&first, 0).await.until_status("completed").await;
    assert!(
        prompts_of(&llm, "Planner")[0].starts_with("You are Planner. Limits: {\"max_tasks\":5}.")
    );

    let before = version_of(&server, "ContextPrompt").await;
    std::fs::write(folder.join("data/limits.json"), r#"{"max_tasks": 9}"#).unwrap();
    server
        .eventually("/api/workflows", |_, body| {
            body["workflows"].as_array().unwrap().iter().any(|w| {
                w["name"] == "ContextPrompt" && w["version"].as_str() != Some(before.as_str())
            })
        })
        .await;

    let calls_before = llm.calls().len();
    let second = server.start_chat("ContextPrompt").await;
    server.ws(&second, 0).await.until_status("completed").await;
    let new_prompt = llm.calls()[calls_before..]
        .iter()
        .find(|c| agent_of(c) == "Planner")
        .map(|c| c.system().to_owned())
        .unwrap();
    assert!(
        new_prompt.starts_with("You are Planner. Limits: {\"max_tasks\":9}."),
        "{new_prompt}"
    );
    // The first chat's context keeps the value it started with.
    let first_events = server.events(&first).await;
    assert_eq!(
        changes_of(&first_events, "limits"),
        [(json!({"max_tasks": 5}), "init".to_owned())]
    );

    // Deleting the required file is a load error naming it; the last good
    // version keeps serving.
    std::fs::remove_file(folder.join("data/limits.json")).unwrap();
    let listing = server
        .eventually("/api/workflows", |_, body| {
            body["workflows"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w["name"] == "ContextPrompt" && w["valid"] == false)
        })
        .await;
    let text = listing.to_string();
    assert!(
        text.contains("required file data/limits.json is missing"),
        "{text}"
    );
}

#[tokio::test]
async fn triggers_fired_before_a_restart_are_neither_fired_again_nor_lost() {
    let scratch = Scratch::new("context-triggers-restart");
    let llm = FakeLlm::start(triggers_llm_now()).await;
    let setup = Setup::new(&scratch, &llm);
    let server = Server::start(&setup).await;
    let chat = server.start_chat("ContextTriggers").await;
    let mut ws = server.ws(&chat, 0).await;
    // Three triggers have fired and handed off; the Closer waits for a person.
    ws.until_type("ui_request").await;
    let before = server.events(&chat).await;
    server.kill().await;

    let server = Server::start(&setup).await;
    let last_seq = before.last().unwrap()["seq"].as_u64().unwrap();
    let mut ws = server.ws(&chat, last_seq).await;
    // The tool asks again after the restart; the answer fires the last one.
    let request = ws.until_type("ui_request").await;
    ws.send(json!({
        "type": "ui_response",
        "request_id": request["request_id"],
        "answer": {"approved": false, "decision": {"approved": true}}
    }))
    .await;
    ws.until_status("completed").await;
    let events = server.events(&chat).await;
    assert_eq!(
        speakers(&events),
        ["Planner", "Reviewer", "Scorer", "Closer"],
        "{}",
        summary(&events)
    );
    for (key, by) in [
        ("planner_done", "trigger:Planner"),
        ("verdict", "trigger:Reviewer"),
        ("scored", "trigger:Scorer"),
        ("closer_approved", "trigger:request_approval"),
    ] {
        let fired: Vec<_> = changes_of(&events, key)
            .into_iter()
            .filter(|(_, b)| b == by)
            .collect();
        assert_eq!(fired.len(), 1, "{key}: {fired:?}");
    }
    // The resumed run still knew the earlier firings: the context the
    // handoffs read came from the log.
    let (_, context) = server.get(&format!("/api/chats/{chat}/context")).await;
    let text = context.to_string();
    assert!(text.contains("\"verdict\":\"rejected\""), "{text}");
}

#[tokio::test]
async fn a_ui_answer_whose_value_has_the_wrong_type_sets_nothing_and_fires_no_handoff() {
    let scratch = Scratch::new("context-ui-wrong-type");
    let llm = FakeLlm::start(triggers_llm_now()).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let chat = server.start_chat("ContextTriggers").await;
    let mut ws = server.ws(&chat, 0).await;
    let request = ws.until_type("ui_request").await;
    ws.send(json!({
        "type": "ui_response",
        "request_id": request["request_id"],
        "answer": {"approved": false, "decision": {"approved": "yes"}}
    }))
    .await;
    // No handoff: the Closer's LLM is asked again, which this script
    // answers with an error, so the run stops there.
    ws.until_status("interrupted").await;
    let events = server.events(&chat).await;
    assert_eq!(
        changes_of(&events, "closer_approved"),
        [(Value::Null, "init".to_owned())]
    );
    assert!(
        !of_type(&events, "handoff")
            .iter()
            .any(|h| h["from"] == "Closer"),
        "{}",
        summary(&events)
    );
}
