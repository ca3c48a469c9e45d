//! What operators rely on: readiness, the retention job, exporting a chat.

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn the_server_is_ready_once_its_store_answers() {
    let scratch = Scratch::new("ready");
    let llm = FakeLlm::start(|_| Reply::text("unused")).await;
    let server = Server::start(&Setup::new(&scratch, &llm)).await;
    let ready = server
        .eventually("/health/ready", |status, _| status == 200)
        .await;
    assert_eq!(ready["ready"], true);
    assert!(ready.get("reason").is_none());
}

#[tokio::test]
async fn the_retention_job_deletes_chats_that_ended_and_keeps_the_rest() {
    let scratch = Scratch::new("retention");
    let llm = FakeLlm::start(|_| Reply::text(r#"{"score": 1, "reason": "x"}"#)).await;
    let setup = Setup {
        extra_env: vec![
            ("MOZAIKS_RETENTION_DAYS".into(), "0".into()),
            ("MOZAIKS_RETENTION_INTERVAL_SECS".into(), "1".into()),
        ],
        ..Setup::new(&scratch, &llm)
    };
    let server = Server::start(&setup).await;
    let ended = server.start_chat("Structured").await;
    let mut ws = server.ws(&ended, 0).await;
    ws.until_status("completed").await;
    let waiting = server.start_chat("Handoffs").await;
    let gone = server
        .eventually(&format!("/api/chats/{ended}"), |status, _| status == 404)
        .await;
    assert_eq!(gone["error"]["code"], "CHAT_NOT_FOUND");
    // The chat in progress is kept however old it is.
    let (status, body) = server.get(&format!("/api/chats/{waiting}")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("in_progress"))
    );
}

#[tokio::test]
async fn a_chat_exports_as_json_from_a_running_server_and_from_the_store() {
    let scratch = Scratch::new("export");
    let llm = FakeLlm::start(|_| Reply::text(r#"{"score": 4, "reason": "ok"}"#)).await;
    let setup = Setup::new(&scratch, &llm);
    let server = Server::start(&setup).await;
    let chat = server.start_chat("Structured").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
    let live = mozaiks(&["chats", "export", &chat, "--server", &server.base]).await;
    assert_eq!(live["chat"]["chat_id"], chat);
    assert_eq!(live["context"]["score"], 4);
    let events = live["events"].as_array().unwrap();
    assert_eq!(events.last().unwrap()["status"], "completed");

    // The embedded store is locked while the server runs: the error says
    // what to do.
    let data_dir = setup.data.to_str().unwrap().to_owned();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mozaiks"))
        .args(["chats", "export", &chat, "--data-dir", &data_dir])
        .env_remove("MONGO_URI")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--server"), "{stderr}");

    server.kill().await;
    let offline = mozaiks(&["chats", "export", &chat, "--data-dir", &data_dir]).await;
    assert_eq!(offline, live, "the same document either way");
    let missing = tokio::process::Command::new(env!("CARGO_BIN_EXE_mozaiks"))
        .args(["chats", "export", "nope", "--data-dir", &data_dir])
        .env_remove("MONGO_URI")
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no chat `nope`"));
}

/// Runs `mozaiks <args>` and parses its stdout as JSON.
async fn mozaiks(args: &[&str]) -> Value {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mozaiks"))
        .args(args)
        .env_remove("MONGO_URI")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "mozaiks {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A plugin slow to load (its `describe()` loops until the host's loading
/// budget ends it) does not keep the server from listening: `/health/live`
/// answers while `/health/ready` says `loading` and names it; a chat
/// started meanwhile waits for the first load, then starts; the plugin
/// ends unavailable with its error while the others serve.
#[tokio::test]
async fn the_server_listens_before_a_slow_plugin_has_loaded() {
    let scratch = Scratch::new("slow-load");
    let llm = FakeLlm::start(|_| Reply::text("hello")).await;
    let setup = Setup::new(&scratch, &llm);
    std::os::unix::fs::symlink(
        repo_root().join("tests/components/slow-describe"),
        setup.plugins.join("slow-describe"),
    )
    .unwrap();
    let server = Server::start_listening(&setup).await;
    let (live, _) = server.get("/health/live").await;
    assert_eq!(live, 200);
    let (status, ready) = server.get("/health/ready").await;
    assert_eq!(
        (status, &ready["reason"]),
        (503, &json!("loading")),
        "{ready}"
    );
    assert!(
        ready["loading"]
            .as_array()
            .is_some_and(|loading| loading.contains(&json!("slow-describe"))),
        "{ready}"
    );

    server.start_chat("UiTimeout").await;
    let (_, ready) = server.get("/health/ready").await;
    assert!(ready.get("loading").is_none(), "the chat waited: {ready}");
    let ready = server
        .eventually("/health/ready", |status, _| status == 200)
        .await;
    assert_eq!(ready["plugins"]["served"], json!(["adversary", "planner"]));
    let unavailable = &ready["plugins"]["unavailable"][0];
    assert_eq!(unavailable["id"], "slow-describe", "{ready}");
    assert!(
        unavailable["error"]
            .as_str()
            .is_some_and(|e| e.contains("describe")),
        "{ready}"
    );
}
