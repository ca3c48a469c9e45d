//! Context variables are bounded per value, per call and per chat; a set
//! beyond a bound is refused to the tool as a denial naming the limit.

use mozaiks_plugin_host::harness::Harness;
use mozaiks_plugin_host::{
    MAX_CONTEXT_CHANGES_PER_CALL, MAX_CONTEXT_KEY_BYTES, MAX_CONTEXT_TOTAL_BYTES,
    MAX_CONTEXT_VALUE_BYTES, MAX_CONTEXT_WRITE_BYTES_PER_CALL,
};
use serde_json::json;

use crate::support::{adversary_with, ok};

/// The adversary with room for the host's work on large values in a debug
/// build.
async fn adversary() -> mozaiks_plugin_host::Plugin {
    let mut m = mozaiks_plugin_host::Manifest::new("adversary");
    m.limits.deadline_ms = 30_000;
    m.limits.memory_mib = 128;
    adversary_with(m, &std::env::temp_dir()).await
}

#[tokio::test]
async fn a_chat_holds_at_most_its_total_of_context() {
    // The chat already holds all but half a MiB of its total.
    let held = MAX_CONTEXT_TOTAL_BYTES - 512 * 1024;
    let harness = Harness::new().context(json!({ "big": "x".repeat(held) }));
    let report = harness
        .call(
            &adversary().await,
            "context_fill",
            &json!({"count": 1, "kib": 1000}),
        )
        .await;
    let out = ok(&report);
    assert_eq!(out["set"], 0, "{out}");
    let error = out["last_error"].as_str().unwrap();
    assert!(
        error.contains("Denied") && error.contains(&MAX_CONTEXT_TOTAL_BYTES.to_string()),
        "{error}"
    );
    assert!(report.context_changes.is_empty());

    // Replacing a value counts only the difference: the same key again fits.
    let report = Harness::new()
        .context(json!({ "big": "x".repeat(held) }))
        .call(
            &adversary().await,
            "context_fill",
            &json!({"count": 1, "kib": 1000, "key": "big"}),
        )
        .await;
    assert_eq!(ok(&report)["set"], 1);
}

#[tokio::test]
async fn a_call_makes_a_bounded_number_of_context_changes() {
    let times = MAX_CONTEXT_CHANGES_PER_CALL + 10;
    let report = Harness::new()
        .call(
            &adversary().await,
            "context_fill",
            &json!({"count": times, "kib": 0, "key": "same"}),
        )
        .await;
    let out = ok(&report);
    assert_eq!(out["set"], MAX_CONTEXT_CHANGES_PER_CALL, "{out}");
    assert_eq!(out["refused"], 10);
    assert_eq!(report.context_changes.len(), MAX_CONTEXT_CHANGES_PER_CALL);
}

/// Writing the same key over and over grows the chat's log on disk even
/// though its context stays small.
#[tokio::test]
async fn a_call_writes_a_bounded_number_of_context_bytes() {
    let per_value_kib = 1000;
    let allowed = MAX_CONTEXT_WRITE_BYTES_PER_CALL / (per_value_kib * 1024 + 2);
    let report = Harness::new()
        .call(
            &adversary().await,
            "context_fill",
            &json!({"count": allowed + 5, "kib": per_value_kib, "key": "same"}),
        )
        .await;
    let out = ok(&report);
    assert_eq!(out["set"], allowed, "{out}");
    let error = out["last_error"].as_str().unwrap();
    assert!(
        error.contains(&MAX_CONTEXT_WRITE_BYTES_PER_CALL.to_string()),
        "{error}"
    );
}

#[tokio::test]
async fn a_context_key_over_the_limit_is_refused() {
    let key = "k".repeat(MAX_CONTEXT_KEY_BYTES + 1);
    let report = Harness::new()
        .call(
            &adversary().await,
            "context_fill",
            &json!({"count": 1, "kib": 0, "key": key}),
        )
        .await;
    assert_eq!(ok(&report)["set"], 0);
    let at_limit = "k".repeat(MAX_CONTEXT_KEY_BYTES);
    let report = Harness::new()
        .call(
            &adversary().await,
            "context_fill",
            &json!({"count": 1, "kib": 0, "key": at_limit}),
        )
        .await;
    assert_eq!(ok(&report)["set"], 1);
}

#[tokio::test]
async fn a_context_value_over_the_limit_is_refused() {
    // A string of n bytes is n + 2 bytes of JSON.
    let kib = MAX_CONTEXT_VALUE_BYTES / 1024;
    let report = Harness::new()
        .call(
            &adversary().await,
            "context_fill",
            &json!({"count": 1, "kib": kib}),
        )
        .await;
    let out = ok(&report);
    assert_eq!(out["set"], 0);
    assert!(
        out["last_error"]
            .as_str()
            .unwrap()
            .contains(&MAX_CONTEXT_VALUE_BYTES.to_string()),
        "{out}"
    );
    let report = Harness::new()
        .call(
            &adversary().await,
            "context_fill",
            &json!({"count": 1, "kib": kib - 1}),
        )
        .await;
    assert_eq!(ok(&report)["set"], 1);
}
