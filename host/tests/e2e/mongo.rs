//! The server on MongoDB when MongoDB misbehaves: down at start, killed
//! mid-chat, wrong credentials. Each test owns its nx-27017 server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mozaiks_test_mongo::{NxServer, free_port, uri_for};
use serde_json::Value;

use crate::support::*;

fn on(uri: &str, scratch: &Scratch, llm: &FakeLlm) -> Setup {
    let mut setup = Setup::new(scratch, llm);
    setup.extra_env.extend(mongo_env(uri));
    setup
}

#[tokio::test]
async fn with_mongodb_down_at_start_the_server_waits_not_ready_then_becomes_ready() {
    let scratch = Scratch::new("mongo-down");
    let llm = FakeLlm::start(|_| Reply::text(r#"{"score": 2, "reason": "up"}"#)).await;
    let port = free_port();
    let server = Server::start(&on(&uri_for(port), &scratch, &llm)).await;
    let not_ready = server
        .eventually("/health/ready", |status, body| {
            status == 503
                && body["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("refused"))
        })
        .await;
    assert_eq!(not_ready["ready"], false);
    let (status, body) = server
        .post(
            "/api/chats",
            serde_json::json!({"app_id": "a", "user_id": "u", "workflow": "Structured"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("STORE_UNAVAILABLE"))
    );

    let _mongo = NxServer::start(port, &scratch.0.join("mongo"));
    server
        .eventually("/health/ready", |status, _| status == 200)
        .await;
    let chat = server.start_chat("Structured").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
}

#[tokio::test]
async fn mongodb_killed_mid_turn_loses_nothing_stored_and_the_chat_resumes_when_it_is_back() {
    let scratch = Scratch::new("mongo-killed");
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let llm = FakeLlm::start(move |_| {
        let reply = Reply::text(r#"{"score": 8, "reason": "after the outage"}"#);
        if counter.fetch_add(1, Ordering::SeqCst) == 0 {
            // MongoDB is killed while the first answer is on its way.
            reply.after(Duration::from_secs(2))
        } else {
            reply
        }
    })
    .await;
    let port = free_port();
    let mongo_dir = scratch.0.join("mongo");
    let mongo = NxServer::start(port, &mongo_dir);
    let server = Server::start(&on(&mongo.uri(), &scratch, &llm)).await;
    server
        .eventually("/health/ready", |status, _| status == 200)
        .await;
    let chat = server.start_chat("Structured").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_type("speaker").await;
    let before = server.events(&chat).await;
    mongo.stop();

    let outage = ws.until_type("error").await;
    assert_eq!(outage["code"], "STORE_UNAVAILABLE");
    assert!(outage.get("seq").is_none(), "nothing could be stored");
    server
        .eventually("/health/ready", |status, _| status == 503)
        .await;

    let _mongo = NxServer::start(port, &mongo_dir);
    ws.until_status("completed").await;
    let after = server.events(&chat).await;
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "what was stored survived"
    );
    let seqs: Vec<u64> = after.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    let messages = after
        .iter()
        .filter(|e| e["type"] == "agent_message")
        .count();
    assert_eq!(
        messages, 1,
        "the interrupted turn was redone once, not doubled"
    );
    assert_eq!(speakers(&after), ["Judge"]);
}

#[tokio::test]
async fn wrong_mongodb_credentials_are_reported_as_an_authentication_problem() {
    let scratch = Scratch::new("mongo-auth");
    let llm = FakeLlm::start(|_| Reply::text("unused")).await;
    let port = free_port();
    let _mongo = NxServer::start(port, &scratch.0.join("mongo"));
    let uri =
        format!("mongodb://mozaiks:wrong@127.0.0.1:{port}/?authSource=admin&directConnection=true");
    let server = Server::start(&on(&uri, &scratch, &llm)).await;
    let not_ready = server
        .eventually("/health/ready", |status, _| status == 503)
        .await;
    let reason = not_ready["reason"].as_str().unwrap();
    assert!(reason.contains("auth"), "{reason}");
    assert!(
        !reason.contains("wrong"),
        "the password is never shown: {reason}"
    );
}

/// `chats export` reads the configuration as the server does: a
/// `MONGO_URI` given only as a file in the secrets directory still names
/// the database (it used to read the process environment alone, and opened
/// the embedded store instead).
#[tokio::test]
async fn chats_export_finds_mongo_uri_given_only_in_the_secrets_directory() {
    let scratch = Scratch::new("mongo-export-secrets");
    let llm = FakeLlm::start(|_| Reply::text(r#"{"score": 2, "reason": "ok"}"#)).await;
    let env = mongo_env(mozaiks_test_mongo::shared_uri());
    let mut setup = Setup::new(&scratch, &llm);
    setup.extra_env.extend(env.clone());
    let server = Server::start(&setup).await;
    let chat = server.start_chat("Structured").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
    let events = server.events(&chat).await;
    server.kill().await;

    let secrets = scratch.0.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let mut uri = None;
    let mut rest = Vec::new();
    for (name, value) in env {
        if name == "MONGO_URI" {
            uri = Some(value);
        } else {
            rest.push((name, value));
        }
    }
    std::fs::write(secrets.join("MONGO_URI"), format!("{}\n", uri.unwrap())).unwrap();
    // An empty data dir: the embedded store there has no such chat.
    let data_dir = scratch.0.join("export-data");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mozaiks"))
        .args(["chats", "export", &chat, "--data-dir"])
        .arg(&data_dir)
        .current_dir(&scratch.0)
        .env_remove("MONGO_URI")
        .env_remove("MOZAIKS_ENV_FILE")
        .env("MOZAIKS_SECRETS_DIR", &secrets)
        .envs(rest.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let export: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(export["chat"]["chat_id"], chat);
    assert_eq!(export["context"]["score"], 2);
    assert_eq!(export["events"], Value::Array(events));
}

#[tokio::test]
async fn a_chat_on_mongodb_exports_as_json_and_retention_deletes_it_once_ended() {
    let scratch = Scratch::new("mongo-ops");
    let llm = FakeLlm::start(|_| Reply::text(r#"{"score": 6, "reason": "ok"}"#)).await;
    let env = mongo_env(mozaiks_test_mongo::shared_uri());
    let mut setup = Setup::new(&scratch, &llm);
    setup.extra_env.extend(env.clone());
    let server = Server::start(&setup).await;
    let chat = server.start_chat("Structured").await;
    let mut ws = server.ws(&chat, 0).await;
    ws.until_status("completed").await;
    // Export straight from MongoDB (no lock, unlike the embedded store).
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mozaiks"))
        .args(["chats", "export", &chat])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let export: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(export["chat"]["chat_id"], chat);
    assert_eq!(export["context"]["score"], 6);
    assert_eq!(export["events"], Value::Array(server.events(&chat).await));
    server.kill().await;

    // The same database, now with a retention of zero days.
    setup.extra_env.extend([
        ("MOZAIKS_RETENTION_DAYS".to_owned(), "0".to_owned()),
        ("MOZAIKS_RETENTION_INTERVAL_SECS".to_owned(), "1".to_owned()),
    ]);
    let server = Server::start(&setup).await;
    server
        .eventually(&format!("/api/chats/{chat}"), |status, _| status == 404)
        .await;
}
