//! The `invocation` import through a real component (`effects`): the key
//! and attempt the embedder gives reach the tool, a key is derived when it
//! gives none, and a tool that records its effect under the key makes it
//! once however many times its call runs.

use std::sync::Arc;

use mozaiks_plugin_host::harness::Harness;
use mozaiks_plugin_host::{
    CallInfo, DataScope, IDEMPOTENCY_KEY_HEX_DIGITS, MemoryAppData, Plugin, idempotency_key,
};
use serde_json::{Value, json};

use crate::support::{engine, ok, repo_root};

async fn effects() -> Plugin {
    engine()
        .load_dir(&repo_root().join("tests/components/effects"))
        .await
        .unwrap()
}

fn confirming(data: &Arc<MemoryAppData>) -> Harness {
    Harness::new()
        .data(Arc::clone(data))
        .answer("Confirm", json!({ "confirmed": true }))
}

async fn apply(plugin: &Plugin, harness: Harness, label: &str) -> Value {
    ok(&harness
        .call(plugin, "apply", &json!({ "label": label }))
        .await)
    .clone()
}

#[tokio::test]
async fn a_call_run_again_with_its_key_finds_its_effect_made_once() {
    let plugin = effects().await;
    let data = Arc::new(MemoryAppData::default());
    let first = apply(&plugin, confirming(&data).idempotency_key("k-1"), "ship").await;
    assert_eq!(
        first,
        json!({ "key": "k-1", "label": "ship", "first_time": true, "runs": 1, "attempt": 1 })
    );
    let again = confirming(&data).idempotency_key("k-1").attempt(2);
    assert_eq!(
        apply(&plugin, again, "ship").await,
        json!({ "key": "k-1", "label": "ship", "first_time": false, "runs": 2, "attempt": 2 })
    );
    // Another key is another call: its own effect.
    let other = apply(&plugin, confirming(&data).idempotency_key("k-2"), "ship").await;
    assert_eq!(other["first_time"], true);
    assert_eq!(other["runs"], 1);
    let ledger = ok(&confirming(&data).call(&plugin, "ledger", &json!({})).await).clone();
    assert_eq!(
        ledger,
        json!({ "effects": [
            { "key": "k-1", "label": "ship", "runs": 2 },
            { "key": "k-2", "label": "ship", "runs": 1 }
        ] })
    );
    let effects = data
        .documents()
        .into_iter()
        .filter(|(scope, collection, _)| *scope == DataScope::App && collection == "effects")
        .count();
    assert_eq!(effects, 2);
}

#[tokio::test]
async fn every_harness_call_gets_a_fresh_key_and_the_report_shows_it() {
    let plugin = effects().await;
    let data = Arc::new(MemoryAppData::default());
    let one = confirming(&data)
        .call(&plugin, "apply", &json!({ "label": "a" }))
        .await;
    let two = confirming(&data)
        .call(&plugin, "apply", &json!({ "label": "a" }))
        .await;
    assert_ne!(one.idempotency_key, two.idempotency_key);
    assert_eq!(one.idempotency_key.len(), IDEMPOTENCY_KEY_HEX_DIGITS);
    assert_eq!(ok(&one)["key"], one.idempotency_key.as_str());
    assert_eq!(
        one.to_json()["idempotency_key"],
        one.idempotency_key.as_str()
    );
    assert_eq!(one.to_json()["attempt"], 1);
    assert_eq!(ok(&two)["first_time"], true);
}

#[tokio::test]
async fn without_a_key_from_the_embedder_the_host_derives_one_from_the_chat_and_the_call() {
    let plugin = effects().await;
    let data = Arc::new(MemoryAppData::default());
    let info = CallInfo {
        chat_id: "chat-9".into(),
        tool_call_id: "call_3".into(),
        ..CallInfo::default()
    };
    let out = apply(&plugin, confirming(&data).info(info), "x").await;
    assert_eq!(out["key"], idempotency_key(&["chat-9", "call_3"]).as_str());
    assert_eq!(out["attempt"], 1);
}
