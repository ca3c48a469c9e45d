//! What operators observe: `/metrics` moving with a chat, JSON log lines
//! that carry the chat's ids, liveness.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::support::*;

/// `name{labels} value` lines of the Prometheus text, by series.
pub async fn scrape(server: &Server) -> HashMap<String, f64> {
    let response = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {l}"));
            (
                series.to_owned(),
                value.parse().unwrap_or_else(|_| panic!("bad value in {l}")),
            )
        })
        .collect()
}

pub fn value(metrics: &HashMap<String, f64>, series: &str) -> f64 {
    metrics.get(series).copied().unwrap_or(0.0)
}

fn ui_timeout_llm(call: &ChatCall) -> Reply {
    confirm_asker(200, "Nobody answered.")(call)
}

#[tokio::test]
async fn metrics_move_after_a_chat() {
    let scratch = Scratch::new("metrics");
    let llm = FakeLlm::start(ui_timeout_llm).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let ready = server
        .eventually("/health/ready", |status, _| status == 200)
        .await;
    assert_eq!(ready["plugins"]["served"], json!(["adversary", "planner"]));
    let before = scrape(&server).await;
    let chat = server.start_chat("UiTimeout").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
    let during = scrape(&server).await;
    assert_eq!(value(&during, "mozaiks_websocket_connections"), 1.0);
    ws.close().await;
    let after = server
        .eventually("/health/live", |status, _| status == 200)
        .await;
    assert_eq!(after["status"], "ok");
    let after = scrape(&server).await;

    for (series, at_least) in [
        (r#"mozaiks_chats_started_total{workflow="UiTimeout"}"#, 1.0),
        (
            r#"mozaiks_turns_total{workflow="UiTimeout",agent="Asker"}"#,
            1.0,
        ),
        (
            r#"mozaiks_turn_duration_seconds_count{workflow="UiTimeout"}"#,
            1.0,
        ),
        (
            r#"mozaiks_llm_request_duration_seconds_count{model="fake-model",outcome="ok"}"#,
            2.0,
        ),
        (
            r#"mozaiks_tool_calls_total{plugin="adversary",function="ask",outcome="cancelled"}"#,
            1.0,
        ),
        (
            r#"mozaiks_tool_call_duration_seconds_count{plugin="adversary",function="ask"}"#,
            1.0,
        ),
        (
            r#"mozaiks_store_operation_duration_seconds_count{operation="append",outcome="ok"}"#,
            5.0,
        ),
        // Group commit: every append was in some commit's batch.
        (
            r#"mozaiks_store_commit_batch_size_sum{store="embedded"}"#,
            5.0,
        ),
        (
            r#"mozaiks_store_commit_duration_seconds_count{store="embedded"}"#,
            1.0,
        ),
        (
            r#"mozaiks_http_requests_total{method="POST",route="/api/chats",status="201"}"#,
            1.0,
        ),
    ] {
        let moved = value(&after, series) - value(&before, series);
        assert!(
            moved >= at_least,
            "{series} moved by {moved}, expected at least {at_least}"
        );
    }
    assert!(
        value(
            &after,
            r#"mozaiks_llm_tokens_total{model="fake-model",kind="prompt"}"#
        ) > 0.0
    );
    assert_eq!(value(&after, "mozaiks_active_runs"), 0.0, "the run ended");
    assert_eq!(
        value(
            &after,
            r#"mozaiks_plugin_calls_in_flight{plugin="adversary"}"#
        ),
        0.0,
        "the call ended and gave its slot back"
    );
    assert!(
        after.contains_key(r#"mozaiks_plugin_calls_in_flight{plugin="adversary"}"#),
        "slot use is shown per plugin"
    );
    assert_eq!(
        value(&after, r#"mozaiks_plugin_slots{kind="total"}"#),
        256.0
    );
    assert_eq!(
        value(&after, r#"mozaiks_plugin_slots{kind="per_plugin"}"#),
        64.0
    );
}

/// Runs one UiTimeout chat to its end on a server that logs `info` to
/// its log file only; the chat's id and the file's text.
async fn ui_timeout_chat_logged(mut setup: Setup) -> (String, String) {
    setup.extra_env.extend([
        ("LOG_LEVEL".into(), "info".into()),
        ("MOZAIKS_LOG_FORMAT".into(), "off".into()),
    ]);
    let server = Server::start(&setup).await;
    let chat = server.start_chat("UiTimeout").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
    let text = std::fs::read_to_string(setup.logs_dir().join("mozaiks.log")).unwrap();
    (chat, text)
}

/// Every line of a log file, parsed (a line that is not JSON fails).
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test]
async fn log_files_are_json_lines_and_a_chats_lines_carry_its_ids() {
    let scratch = Scratch::new("json-logs");
    let llm = FakeLlm::start(ui_timeout_llm).await;
    let setup = Setup::new(&scratch, &llm);
    let (chat, text) = ui_timeout_chat_logged(setup).await;
    let lines = json_lines(&text);
    assert!(
        lines
            .iter()
            .all(|l| l["ts"].is_string() && l["level"].is_string())
    );
    let of_chat: Vec<&Value> = lines
        .iter()
        .filter(|l| l["chat_id"] == chat.as_str())
        .collect();
    let turn = of_chat
        .iter()
        .find(|l| l["message"] == "turn started")
        .unwrap_or_else(|| panic!("no turn line for the chat in {text}"));
    assert_eq!(
        (turn["workflow"].as_str(), turn["agent"].as_str()),
        (Some("UiTimeout"), Some("Asker"))
    );
    let tool = of_chat
        .iter()
        .find(|l| l["message"] == "tool call")
        .unwrap_or_else(|| panic!("no tool line for the chat in {text}"));
    assert_eq!(
        (
            tool["plugin"].as_str(),
            tool["function"].as_str(),
            tool["agent"].as_str(),
            tool["outcome"].as_str()
        ),
        (
            Some("adversary"),
            Some("ask"),
            Some("Asker"),
            Some("cancelled")
        )
    );
}

/// A plugin that shows another UI component than tools.json declares is
/// named in a warning (front ends and `doctor` go by the declared one).
#[tokio::test]
async fn a_ui_component_other_than_the_declared_one_is_logged_as_a_warning() {
    let scratch = Scratch::new("component-mismatch");
    let workflow = scratch.0.join("workflows/UiTimeout");
    std::fs::create_dir_all(&workflow).unwrap();
    for file in std::fs::read_dir(test_workflows().join("UiTimeout")).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, workflow.join(file.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        workflow.join("tools.json"),
        r#"{ "tools": [ { "plugin": "adversary", "function": "ask", "tool_type": "UI_Tool",
             "agent": "Asker", "ui": { "component": "Declared", "mode": "artifact" } } ] }"#,
    )
    .unwrap();
    let llm = FakeLlm::start(ui_timeout_llm).await;
    let mut setup = Setup::new(&scratch, &llm);
    setup.workflows = scratch.0.join("workflows");
    let (chat, text) = ui_timeout_chat_logged(setup).await;
    let warning = json_lines(&text)
        .into_iter()
        .find(|l| l["declared"] == "Declared")
        .unwrap_or_else(|| panic!("no component warning in {text}"));
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["asked"], "Confirm");
    assert_eq!(warning["chat_id"], chat.as_str());
}

/// Every `MOZAIKS_LOG_FORMAT` × log files on or off: the server answers
/// requests and runs a chat (spans entered, fields recorded), standard
/// error gets what the format says, the file (when on) only JSON lines.
#[tokio::test]
async fn every_log_format_with_and_without_files_serves_and_logs() {
    for format in ["text", "json", "off"] {
        for files in [true, false] {
            let case = format!(
                "MOZAIKS_LOG_FORMAT={format}, files {}",
                if files { "on" } else { "off" }
            );
            eprintln!("case: {case}");
            let scratch = Scratch::new("log-matrix");
            let llm = FakeLlm::start(ui_timeout_llm).await;
            let mut setup = Setup::new(&scratch, &llm);
            let stderr = scratch.0.join("stderr.txt");
            setup.stderr = Some(stderr.clone());
            setup.extra_env.extend([
                ("LOG_LEVEL".into(), "info".into()),
                ("MOZAIKS_LOG_FORMAT".into(), format.into()),
            ]);
            if !files {
                setup
                    .extra_env
                    .push(("MOZAIKS_LOG_DIR".into(), "off".into()));
            }
            let server = Server::start(&setup).await;
            let (status, _) = server.get("/health/live").await;
            assert_eq!(status, 200, "{case}");
            let chat = server.start_chat("UiTimeout").await;
            let mut ws = server.ws(&chat, 0).await;
            ws.until_status("completed").await;
            let (status, _) = server.get(&format!("/api/chats/{chat}/events")).await;
            assert_eq!(status, 200, "{case}");
            ws.close().await;
            server.kill().await;

            let err = std::fs::read_to_string(&stderr).unwrap();
            assert!(!err.contains("panicked"), "{case}: {err}");
            match format {
                "text" => assert!(
                    err.contains(" INFO ") && err.contains("turn started"),
                    "{case}: {err}"
                ),
                "json" => {
                    let lines = json_lines(&err);
                    assert!(
                        lines.iter().any(
                            |l| l["message"] == "turn started" && l["chat_id"] == chat.as_str()
                        ),
                        "{case}: {err}"
                    );
                }
                _ => assert_eq!(err, "", "{case}"),
            }
            let file = setup.logs_dir().join("mozaiks.log");
            if files {
                let lines = json_lines(&std::fs::read_to_string(&file).unwrap());
                assert!(
                    lines
                        .iter()
                        .any(|l| l["message"] == "turn started" && l["chat_id"] == chat.as_str()),
                    "{case}"
                );
            } else {
                assert!(!file.exists(), "{case}");
            }
        }
    }
}

fn handoffs_llm(call: &ChatCall) -> Reply {
    match agent_of(call).as_str() {
        "Triage" => Reply::tool_call("transfer_to_Billing", json!({})),
        "Billing" => Reply::tool_call("complete_plan", json!({"summary": "done"})),
        _ => Reply::text("Bye!"),
    }
}

/// At `LOG_LEVEL=debug`, over a chat of three turns: a line names its
/// agent once (the turn's span replaces the last one instead of piling up
/// on the chat's), every request is logged with its route, status and the
/// key's `key_id`, and dependencies (the WASM compiler, HTTP clients) stay
/// at `warn`.
#[tokio::test]
async fn logs_stay_flat_log_requests_with_their_key_id_and_keep_dependencies_at_warn() {
    let scratch = Scratch::new("log-growth");
    let llm = FakeLlm::start(handoffs_llm).await;
    let mut setup = Setup::new(&scratch, &llm);
    let stderr = scratch.0.join("stderr.txt");
    setup.stderr = Some(stderr.clone());
    let key = "key-of-the-log-test-01";
    setup.extra_env.extend([
        ("LOG_LEVEL".into(), "debug".into()),
        ("MOZAIKS_LOG_FORMAT".into(), "text".into()),
        ("ENVIRONMENT".into(), "production".into()),
        ("MOZAIKS_API_KEYS".into(), format!("{key}=app")),
    ]);
    let server = Server::start(&setup).await;
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{}/api/chats", server.base))
        .bearer_auth(key)
        .json(&json!({"user_id": "alice", "workflow": "Handoffs"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let chat = created["chat_id"].as_str().unwrap().to_owned();
    let mut ws = server
        .ws_path(&format!("/api/chats/{chat}/ws?access_token={key}"))
        .await;
    ws.until_status("waiting_for_user").await;
    ws.send(json!({"type": "user_message", "text": "refund"}))
        .await;
    ws.until_status("completed").await;
    ws.close().await;
    server.kill().await;

    let text = std::fs::read_to_string(&stderr).unwrap();
    let agents: Vec<&str> = ["Triage", "Billing", "Closer"]
        .into_iter()
        .filter(|a| {
            text.contains(&format!("agent=\"{a}\"")) || text.contains(&format!("agent={a}"))
        })
        .collect();
    assert_eq!(agents.len(), 3, "every turn is logged with its agent");
    for line in text.lines() {
        assert!(
            line.matches("agent=").count() <= 1,
            "a line names more than one agent: {line}"
        );
    }

    let lines = json_lines(&std::fs::read_to_string(setup.logs_dir().join("mozaiks.log")).unwrap());
    let request = lines
        .iter()
        .find(|l| l["message"] == "request" && l["route"] == "/api/chats")
        .unwrap_or_else(|| panic!("no request line for POST /api/chats"));
    assert_eq!(request["method"], "POST", "{request}");
    assert_eq!(request["status"], 201, "{request}");
    assert_eq!(request["level"], "INFO", "{request}");
    let key_id = request["key_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no key_id: {request}"));
    assert!(
        key_id.len() == 8 && key_id.chars().all(|c| c.is_ascii_hexdigit()),
        "{request}"
    );
    assert!(
        lines.iter().any(|l| l["message"] == "request"
            && l["chat_id"] == chat.as_str()
            && l["key_id"] == key_id
            && l["status"] == 101),
        "the socket's request line carries the chat and the key"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "DEBUG" && l["target"].as_str().unwrap().starts_with("mozaiks")),
        "our own debug lines are kept"
    );
    for line in &lines {
        let target = line["target"].as_str().unwrap();
        if !target.starts_with("mozaiks") {
            assert!(
                line["level"] == "WARN" || line["level"] == "ERROR",
                "a dependency logs below warn: {line}"
            );
        }
    }
}
