//! Plugin secrets on a running server: a tool reads its secret from
//! `$MOZAIKS_SECRETS_DIR/plugins/<id>/<NAME>` and leaks it every way it can
//! (log record, stdout, stderr, result); the value reaches the tool and
//! nothing the server stores, shows or logs. A required secret without a
//! value fails the call with an error naming it.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::*;

/// The secret the operator gives; no part of it may leave the tool.
const TOKEN: &str = "tok-e2e-9d41c7b2";
/// A part of [`TOKEN`] that nothing else in a chat or a log would hold.
const TOKEN_CORE: &str = "9d41c7b2";

/// A plugins folder holding the `fetcher` test component under a manifest
/// that declares two required secrets, `API_TOKEN` and `MISSING_TOKEN`.
fn fetcher_plugins(scratch: &Scratch) -> PathBuf {
    let wasm = repo_root().join("tests/components/fetcher/fetcher.wasm");
    assert!(
        wasm.is_file(),
        "{} is missing: run scripts/build-plugins (scripts/test does)",
        wasm.display()
    );
    let plugins = scratch.0.join("plugins");
    let fetcher = plugins.join("fetcher");
    std::fs::create_dir_all(&fetcher).unwrap();
    std::fs::copy(&wasm, fetcher.join("fetcher.wasm")).unwrap();
    std::fs::write(
        fetcher.join("plugin.toml"),
        "id = \"fetcher\"\nversion = \"0.1.0\"\n\
         [secrets.API_TOKEN]\nrequired = true\n\
         [secrets.MISSING_TOKEN]\nrequired = true\n",
    )
    .unwrap();
    plugins
}

/// A workflows folder with `Secrets`: one agent whose tool is the fetcher's
/// `leak_secret`.
fn secrets_workflow(scratch: &Scratch) -> PathBuf {
    let workflows = scratch.0.join("workflows");
    let dir = workflows.join("Secrets");
    std::fs::create_dir_all(&dir).unwrap();
    let files = [
        (
            "orchestrator.json",
            json!({"workflow_name": "Secrets", "max_turns": 10, "startup_mode": "AgentDriven",
                   "orchestration_pattern": "DefaultPattern", "initial_agent": "Leaker",
                   "initial_message": "Read your secrets."}),
        ),
        (
            "agents.json",
            json!({"agents": [{"name": "Leaker", "system_message": "You are Leaker.",
                               "tools": ["leak_secret"]}]}),
        ),
        (
            "tools.json",
            json!({"tools": [{"plugin": "fetcher", "function": "leak_secret",
                              "tool_type": "Agent_Tool", "agent": "Leaker"}]}),
        ),
    ];
    for (file, value) in files {
        std::fs::write(dir.join(file), value.to_string()).unwrap();
    }
    workflows
}

/// The agent reads `API_TOKEN`, then `MISSING_TOKEN`, then stops.
fn leaker(call: &ChatCall) -> Reply {
    match call.tool_results().len() {
        0 => Reply::tool_call("leak_secret", json!({"name": "API_TOKEN"})),
        1 => Reply::tool_call("leak_secret", json!({"name": "MISSING_TOKEN"})),
        _ => Reply::text("Done."),
    }
}

#[tokio::test]
async fn a_served_tool_gets_its_secret_from_the_secrets_dir_and_it_is_masked_everywhere() {
    let scratch = Scratch::new("plugin-secrets");
    let secrets = scratch.0.join("secrets");
    let own = secrets.join("plugins/fetcher");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(own.join("API_TOKEN"), format!("{TOKEN}\n")).unwrap();
    let llm = FakeLlm::start(leaker).await;
    let stderr = scratch.0.join("stderr.log");
    let setup = Setup {
        workflows: secrets_workflow(&scratch),
        plugins: fetcher_plugins(&scratch),
        data: scratch.0.join("data"),
        llm_url: Some(llm.base_url()),
        extra_env: vec![
            (
                "MOZAIKS_SECRETS_DIR".to_owned(),
                secrets.to_str().unwrap().to_owned(),
            ),
            // The tool's log records and output reach standard error.
            ("LOG_LEVEL".to_owned(), "info".to_owned()),
            ("MOZAIKS_LOG_FORMAT".to_owned(), "text".to_owned()),
        ],
        share_component_cache: true,
        stderr: Some(stderr.clone()),
    };
    let server = Server::start(&setup).await;

    let chat = server.start_chat("Secrets").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
    let events = server.events(&chat).await;
    let results = of_type(&events, "tool_result");
    assert_eq!(results.len(), 2, "{}", summary(&events));

    // The tool got the value (its length), and its result shows the mask.
    let read = results[0];
    assert_eq!(read["ok"], true, "{read}");
    let content: Value = serde_json::from_str(read["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["length"], TOKEN.len(), "{content}");
    assert_eq!(content["value"], "[redacted secret API_TOKEN]", "{content}");

    // A required secret without a value: a tool error naming it.
    let missing = results[1];
    assert_eq!(missing["ok"], false, "{missing}");
    let error = missing["error"]["message"].as_str().unwrap_or_default();
    assert!(
        error.contains("the required secret `MISSING_TOKEN` of plugin `fetcher` has no value"),
        "{missing}"
    );
    // The agent was told the same.
    let told = &llm.calls()[2].tool_results()[1].1;
    assert!(told.contains("MISSING_TOKEN"), "{told}");

    // The raw value is nowhere: stored events, what the LLM saw, the
    // server's standard error and log files, though the tool logged and
    // printed it.
    let stored = serde_json::to_string(&events).unwrap();
    assert!(!stored.contains(TOKEN_CORE), "stored events leak: {stored}");
    for call in llm.calls() {
        let sent = serde_json::to_string(call.messages()).unwrap();
        assert!(!sent.contains(TOKEN_CORE), "the LLM saw it: {sent}");
    }
    drop(ws);
    server.kill().await;
    let logged = std::fs::read_to_string(&stderr).unwrap();
    assert!(!logged.contains(TOKEN_CORE), "stderr leaks: {logged}");
    for line in [
        "the secret is [redacted secret API_TOKEN]",
        "stdout: [redacted secret API_TOKEN]",
        "stderr: [redacted secret API_TOKEN]",
    ] {
        assert!(logged.contains(line), "no `{line}` in stderr: {logged}");
    }
    let files = all_files(&setup.logs_dir());
    assert!(!files.contains(TOKEN_CORE), "log files leak: {files}");
}
