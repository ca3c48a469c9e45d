//! Per-app data on a running server, on both stores: a tool writes and
//! reads its app's documents; a chat of another app sees none of them
//! (reads, queries, conditional writes); a `database` context source sees
//! its app's document and not another app's; a tool reads an earlier
//! agent's structured output through the `chat` import.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::*;

/// A plugins folder holding the `records` test component.
fn records_plugins(scratch: &Scratch) -> PathBuf {
    let source = repo_root().join("tests/components/records");
    assert!(
        source.join("records.wasm").is_file(),
        "tests/components/records/records.wasm is missing: run scripts/build-plugins (scripts/test does)"
    );
    let plugins = scratch.0.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::os::unix::fs::symlink(&source, plugins.join("records")).unwrap();
    plugins
}

fn write_workflow(workflows: &std::path::Path, name: &str, files: &[(&str, Value)]) {
    let dir = workflows.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, value) in files {
        std::fs::write(dir.join(file), value.to_string()).unwrap();
    }
}

fn records_tools(agent: &str, functions: &[&str]) -> Value {
    json!({ "tools": functions.iter().map(|f| json!({
        "plugin": "records", "function": f, "tool_type": "Agent_Tool", "agent": agent
    })).collect::<Vec<_>>() })
}

/// `Notes` (the Clerk writes, reads and queries `notes/n1`, writes alice's
/// profile, then stops),
/// `Peek` (the Clerk reads and queries `notes/n1`, then tries to overwrite
/// it at version 1),
/// `Profile` (waits for the user; its `owner` variable reads `notes/n1`'s
/// `secret` and `tier` the user's profile), and `Relay` (the Planner
/// answers with a `Plan`, then the Clerk reads it back).
fn workflows(scratch: &Scratch) -> PathBuf {
    let workflows = scratch.0.join("workflows");
    write_workflow(
        &workflows,
        "Notes",
        &[
            (
                "orchestrator.json",
                json!({"workflow_name": "Notes", "max_turns": 6,
                "startup_mode": "AgentDriven", "orchestration_pattern": "DefaultPattern",
                "initial_agent": "Clerk", "initial_message": "Keep notes."}),
            ),
            (
                "agents.json",
                json!({"agents": [{"name": "Clerk", "system_message": "You are Clerk.",
                "tools": ["put", "get", "query"]}]}),
            ),
            (
                "tools.json",
                records_tools("Clerk", &["put", "get", "query"]),
            ),
        ],
    );
    write_workflow(
        &workflows,
        "Peek",
        &[
            (
                "orchestrator.json",
                json!({"workflow_name": "Peek", "max_turns": 6,
                "startup_mode": "AgentDriven", "orchestration_pattern": "DefaultPattern",
                "initial_agent": "Clerk", "initial_message": "Peek at the notes."}),
            ),
            (
                "agents.json",
                json!({"agents": [{"name": "Clerk", "system_message": "You are Clerk.",
                "tools": ["put", "get", "query"]}]}),
            ),
            (
                "tools.json",
                records_tools("Clerk", &["put", "get", "query"]),
            ),
        ],
    );
    write_workflow(
        &workflows,
        "Profile",
        &[
            (
                "orchestrator.json",
                json!({"workflow_name": "Profile", "max_turns": 2,
                "startup_mode": "UserDriven", "orchestration_pattern": "DefaultPattern",
                "initial_agent": "Clerk"}),
            ),
            (
                "agents.json",
                json!({"agents": [{"name": "Clerk", "system_message": "You are Clerk."}]}),
            ),
            (
                "context_variables.json",
                json!({"definitions": [
                    {"name": "owner", "type": "string", "source": {"type": "database",
                        "collection": "notes", "query": {"_id": "n1"}, "field": "secret",
                        "default": "nobody"}},
                    {"name": "tier", "type": "string", "source": {"type": "database",
                        "collection": "profiles", "query": {"user": "{{runtime.user_id}}"},
                        "field": "plan.tier", "default": "free"}},
                    {"name": "wrong_type", "type": "integer", "source": {"type": "database",
                        "collection": "notes", "query": {"_id": "n1"}, "field": "secret",
                        "default": 0}}
                ]}),
            ),
        ],
    );
    write_workflow(
        &workflows,
        "Relay",
        &[
            (
                "orchestrator.json",
                json!({"workflow_name": "Relay", "max_turns": 2,
                "startup_mode": "AgentDriven", "orchestration_pattern": "RoundRobinPattern",
                "initial_agent": "Planner", "initial_message": "Plan a trip."}),
            ),
            (
                "agents.json",
                json!({"agents": [
                    {"name": "Planner", "system_message": "You are Planner.", "structured_output": "Plan"},
                    {"name": "Clerk", "system_message": "You are Clerk.", "tools": ["structured_output", "recent_messages"]}
                ]}),
            ),
            (
                "structured_outputs.json",
                json!({"models": {"Plan": {"type": "object",
                "properties": {"city": {"type": "string"}}, "required": ["city"],
                "additionalProperties": false}}, "registry": {"Planner": "Plan"}}),
            ),
            (
                "tools.json",
                records_tools("Clerk", &["structured_output", "recent_messages"]),
            ),
        ],
    );
    workflows
}

/// Each chat's script, from what the agent has seen so far.
fn script(call: &ChatCall) -> Reply {
    let done = call.tool_results().len();
    match agent_of(call).as_str() {
        "Planner" => Reply::text(r#"{"city": "Oslo"}"#),
        "Clerk" if call.tool_names().contains(&"structured_output".to_owned()) => match done {
            0 => Reply::tool_call("structured_output", json!({"agent": "Planner"})),
            1 => Reply::tool_call("recent_messages", json!({"limit": 5})),
            _ => Reply::text("Relayed."),
        },
        // Notes or Peek: the first message says which.
        _ => {
            let writes = call
                .messages()
                .iter()
                .any(|m| m.to_string().contains("Keep notes"));
            match (writes, done) {
                (true, 0) => Reply::tool_call(
                    "put",
                    json!({"collection": "notes", "id": "n1", "body": {"secret": "A"}, "expected_version": 0}),
                ),
                (_, 0) | (true, 1) => {
                    Reply::tool_call("get", json!({"collection": "notes", "id": "n1"}))
                }
                (_, 1) | (true, 2) => Reply::tool_call("query", json!({"collection": "notes"})),
                (true, 3) => Reply::tool_call(
                    "put",
                    json!({"collection": "profiles", "id": "p1",
                           "body": {"user": "alice", "plan": {"tier": "pro"}}}),
                ),
                (false, 2) => Reply::tool_call(
                    "put",
                    json!({"collection": "notes", "id": "n1", "body": {"secret": "B"}, "expected_version": 1}),
                ),
                _ => Reply::text("Done."),
            }
        }
    }
}

async fn chat_in(server: &Server, app: &str, workflow: &str) -> String {
    let (status, body) = server
        .post(
            "/api/chats",
            json!({"app_id": app, "user_id": "alice", "workflow": workflow}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["chat_id"].as_str().unwrap().to_owned()
}

/// The tool results of a finished chat, parsed.
async fn results_of(server: &Server, chat: &str) -> Vec<Value> {
    let mut ws = server.ws(chat, 0).await;
    ws.until_status("completed").await;
    let events = server.events(chat).await;
    of_type(&events, "tool_result")
        .iter()
        .map(|r| {
            assert_eq!(r["ok"], true, "{r}");
            serde_json::from_str(r["content"].as_str().unwrap()).unwrap()
        })
        .collect()
}

/// The value a chat's context started with for `key`.
async fn initial(server: &Server, chat: &str, key: &str) -> Value {
    let events = server.events(chat).await;
    of_type(&events, "context_changed")
        .into_iter()
        .find(|e| e["key"] == key && e["by"] == "init")
        .map(|e| e["value"].clone())
        .unwrap_or_else(|| panic!("no initial `{key}`: {}", summary(&events)))
}

async fn a_tool_keeps_its_apps_data_and_another_app_sees_none(store: Store) {
    let scratch = Scratch::new("app-data");
    let llm = FakeLlm::start(script).await;
    let mut setup = Setup::on(store, &scratch, &llm);
    setup.workflows = workflows(&scratch);
    setup.plugins = records_plugins(&scratch);
    let server = Server::start(&setup).await;

    // App A's tool writes, reads and queries its note.
    let a = chat_in(&server, "app-a", "Notes").await;
    let results = results_of(&server, &a).await;
    assert_eq!(results.len(), 4, "{results:?}");
    assert_eq!(results[0], json!({"version": 1}));
    assert_eq!(
        results[1],
        json!({"document": {"id": "n1", "version": 1, "body": {"secret": "A"}}})
    );
    assert_eq!(results[2]["documents"].as_array().unwrap().len(), 1);

    // App B's tool, same collection and id: nothing, and no way to write
    // over A's document by its version.
    let b = chat_in(&server, "app-b", "Peek").await;
    let results = results_of(&server, &b).await;
    assert_eq!(results[0], json!({"document": null}), "{results:?}");
    assert_eq!(results[1], json!({"documents": []}), "{results:?}");
    assert_eq!(results[2]["error"], "conflict", "{results:?}");
    assert_eq!(results[2]["found"], Value::Null, "{results:?}");

    // The `database` source: A's chat starts with A's note, B's with the default.
    let profile_a = chat_in(&server, "app-a", "Profile").await;
    assert_eq!(initial(&server, &profile_a, "owner").await, "A");
    assert_eq!(initial(&server, &profile_a, "tier").await, "pro");
    // A value of another type than declared: the default.
    assert_eq!(initial(&server, &profile_a, "wrong_type").await, 0);
    let profile_b = chat_in(&server, "app-b", "Profile").await;
    assert_eq!(initial(&server, &profile_b, "owner").await, "nobody");
    assert_eq!(initial(&server, &profile_b, "tier").await, "free");
    server.kill().await;
}

on_both_stores!(a_tool_keeps_its_apps_data_and_another_app_sees_none);

#[tokio::test]
async fn a_tool_reads_an_earlier_agents_structured_output_and_the_recent_messages() {
    let scratch = Scratch::new("chat-reads");
    let llm = FakeLlm::start(script).await;
    let mut setup = Setup::new(&scratch, &llm);
    setup.workflows = workflows(&scratch);
    setup.plugins = records_plugins(&scratch);
    let server = Server::start(&setup).await;
    let chat = chat_in(&server, "app-a", "Relay").await;
    let results = results_of(&server, &chat).await;
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(results[0], json!({"output": {"city": "Oslo"}}));
    let messages = results[1]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(
        (&messages[0]["role"], &messages[0]["content"]),
        (&json!("user"), &json!("Plan a trip."))
    );
    assert_eq!(
        (&messages[1]["role"], &messages[1]["agent"]),
        (&json!("agent"), &json!("Planner"))
    );
    let plan: Value = serde_json::from_str(messages[1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(plan, json!({"city": "Oslo"}));
    server.kill().await;
}

/// docs/tool-authors.md's offline example: `tool call --data-file
/// --transcript-file` with the files as the page shows them.
#[test]
fn tool_call_seeds_app_data_and_a_transcript_from_files_and_prints_the_documents_after() {
    use crate::cli::{assert_exit, mozaiks, stdout_json};
    let scratch = Scratch::new("tool-call-data");
    let data = scratch.0.join("data.json");
    std::fs::write(
        &data,
        r#"{"app": {"orders": {"o-1": {"status": "open"}}}, "user": {"notes": {"n-1": {"text": "mine"}}}}"#,
    )
    .unwrap();
    let chat = scratch.0.join("chat.json");
    std::fs::write(
        &chat,
        r#"{"messages": [{"seq": 1, "role": "user", "content": "plan a trip"},
                         {"seq": 3, "role": "agent", "agent": "Planner", "content": "{\"city\": \"Oslo\"}"}],
            "structured_outputs": {"Planner": {"city": "Oslo"}}}"#,
    )
    .unwrap();
    let records = repo_root().join("tests/components/records");
    let call = |function: &str, args: Value| {
        mozaiks(&[
            "tool",
            "call",
            records.to_str().unwrap(),
            function,
            "--args",
            &args.to_string(),
            "--data-file",
            data.to_str().unwrap(),
            "--transcript-file",
            chat.to_str().unwrap(),
        ])
    };

    let out = call(
        "put",
        json!({"collection": "orders", "id": "o-1", "body": {"status": "paid"}, "expected_version": 1}),
    );
    assert_exit(&out, 0);
    let report = stdout_json(&out);
    assert_eq!(report["result"]["ok"], json!({"version": 2}), "{report}");
    assert_eq!(
        report["data"],
        json!({
            "app": {"orders": {"o-1": {"version": 2, "body": {"status": "paid"}}}},
            "user": {"notes": {"n-1": {"version": 1, "body": {"text": "mine"}}}}
        }),
        "{report}"
    );

    let out = call("structured_output", json!({"agent": "Planner"}));
    assert_exit(&out, 0);
    assert_eq!(
        stdout_json(&out)["result"]["ok"],
        json!({"output": {"city": "Oslo"}})
    );
    let out = call("recent_messages", json!({"limit": 1}));
    assert_exit(&out, 0);
    assert_eq!(
        stdout_json(&out)["result"]["ok"]["messages"],
        json!([{"seq": 3, "role": "agent", "agent": "Planner", "content": "{\"city\": \"Oslo\"}"}])
    );

    // A data file of the wrong shape is refused, naming the file and where.
    std::fs::write(&data, r#"{"app": {"orders": {"o-1": 5}}}"#).unwrap();
    let out = call("get", json!({"collection": "orders", "id": "o-1"}));
    assert_exit(&out, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("app.orders.o-1: a document is a JSON object"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_servers_quota_of_documents_per_app_is_a_typed_error_the_tool_reads() {
    let scratch = Scratch::new("app-data-quota");
    let llm = FakeLlm::start(script).await;
    let mut setup = Setup::new(&scratch, &llm);
    setup.workflows = workflows(&scratch);
    setup.plugins = records_plugins(&scratch);
    setup.extra_env.push((
        "MOZAIKS_DATA_MAX_DOCUMENTS_PER_APP".to_owned(),
        "1".to_owned(),
    ));
    let server = Server::start(&setup).await;
    // Notes writes `notes/n1`, then alice's profile: one document too many.
    let a = chat_in(&server, "app-a", "Notes").await;
    let results = results_of(&server, &a).await;
    assert_eq!(results[0], json!({"version": 1}), "{results:?}");
    assert_eq!(results[3]["error"], "quota_exceeded", "{results:?}");
    let message = results[3]["message"].as_str().unwrap();
    assert!(
        message.contains("app `app-a` already holds 1 documents")
            && message.contains("MOZAIKS_DATA_MAX_DOCUMENTS_PER_APP"),
        "{message}"
    );
    server.kill().await;
}
