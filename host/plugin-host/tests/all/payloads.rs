//! Every byte a tool sends across the boundary has a limit: results (see
//! `adversary.rs`), its own error messages, UI payloads, log records.

use mozaiks_plugin_host::harness::Harness;
use mozaiks_plugin_host::{
    LogSource, MAX_LOG_FIELD_BYTES, MAX_LOG_FIELD_KEY_BYTES, MAX_LOG_FIELDS, MAX_LOG_MESSAGE_BYTES,
    MAX_LOG_RECORDS_PER_CALL, MAX_TOOL_ERROR_BYTES, MAX_UI_PAYLOAD_BYTES, ToolError,
};
use serde_json::json;

use crate::support::{adversary, call, ok};

/// A marker appended to a cut text is allowed on top of the limit.
const MARKER: usize = 64;

#[tokio::test]
async fn a_huge_tool_error_message_is_cut_to_the_limit() {
    let report = call(&adversary(), "huge_error", json!({"kib": 8 * 1024})).await;
    let Ok(Err(ToolError::Failed(message))) = &report.result else {
        panic!("{:?}", report.result.as_ref().map(|_| ()));
    };
    assert!(
        message.len() <= MAX_TOOL_ERROR_BYTES + MARKER,
        "{} bytes",
        message.len()
    );
    assert!(
        message.contains("cut"),
        "{}",
        &message[message.len() - 60..]
    );
}

#[tokio::test]
async fn a_tool_error_message_at_the_limit_is_kept_whole() {
    let kib = MAX_TOOL_ERROR_BYTES / 1024;
    let report = call(&adversary(), "huge_error", json!({"kib": kib})).await;
    let Ok(Err(ToolError::Failed(message))) = &report.result else {
        panic!("{:?}", report.result.as_ref().map(|_| ()));
    };
    assert_eq!(message.len(), MAX_TOOL_ERROR_BYTES);
}

#[tokio::test]
async fn a_ui_payload_over_the_limit_is_refused_and_one_at_it_is_sent() {
    let over = MAX_UI_PAYLOAD_BYTES / 1024 + 1;
    let asked = Harness::new()
        .call(
            &adversary(),
            "ui_payload",
            &json!({"kib": over, "ask": true}),
        )
        .await;
    let outcome = ok(&asked)["outcome"].as_str().unwrap().to_owned();
    assert!(
        outcome.contains("InvalidRequest") && outcome.contains(&MAX_UI_PAYLOAD_BYTES.to_string()),
        "{outcome}"
    );
    assert!(asked.ui.is_empty(), "nothing reached the user");

    let notified = Harness::new()
        .call(
            &adversary(),
            "ui_payload",
            &json!({"kib": over, "ask": false}),
        )
        .await;
    ok(&notified);
    assert!(notified.ui.is_empty(), "the notification was dropped");
    assert!(
        notified
            .logs
            .iter()
            .any(|r| r.message.contains("dropped") && r.message.contains("bytes")),
        "{:?}",
        notified.logs
    );

    // Just under: the payload (with its JSON wrapping) fits and is sent.
    let under = MAX_UI_PAYLOAD_BYTES / 1024 - 1;
    let sent = Harness::new()
        .call(
            &adversary(),
            "ui_payload",
            &json!({"kib": under, "ask": false}),
        )
        .await;
    ok(&sent);
    assert_eq!(sent.ui.len(), 1);
}

#[tokio::test]
async fn log_fields_are_cut_in_number_and_size() {
    let report = call(
        &adversary(),
        "log_fields",
        json!({"count": MAX_LOG_FIELDS + 10, "kib": 1024}),
    )
    .await;
    ok(&report);
    let record = report
        .logs
        .iter()
        .find(|r| r.source == LogSource::Log && r.message == "fields")
        .expect("the record");
    assert!(
        record.fields.len() <= MAX_LOG_FIELDS + 1,
        "{}",
        record.fields.len()
    );
    for (key, value) in &record.fields {
        assert!(key.len() <= MAX_LOG_FIELD_KEY_BYTES, "{key}");
        assert!(
            value.len() <= MAX_LOG_FIELD_BYTES + MARKER,
            "{} bytes",
            value.len()
        );
    }
    let total: usize = record.fields.iter().map(|(k, v)| k.len() + v.len()).sum();
    assert!(
        total + record.message.len() < MAX_LOG_MESSAGE_BYTES * 4,
        "{total}"
    );
}

#[tokio::test]
async fn a_call_logs_at_most_the_allowed_number_of_records() {
    let report = call(
        &adversary(),
        "log_loop",
        json!({"times": MAX_LOG_RECORDS_PER_CALL * 3}),
    )
    .await;
    ok(&report);
    let records: Vec<_> = report
        .logs
        .iter()
        .filter(|r| r.source == LogSource::Log)
        .collect();
    // The records allowed, and one warning that the rest was dropped.
    assert_eq!(records.len(), MAX_LOG_RECORDS_PER_CALL + 1);
    assert!(
        records[MAX_LOG_RECORDS_PER_CALL]
            .message
            .contains("dropped")
    );
}

#[tokio::test]
async fn arguments_over_the_limit_are_refused_before_any_guest_code() {
    let text = "x".repeat(mozaiks_plugin_host::MAX_ARGUMENTS_BYTES);
    let report = call(&adversary(), "echo", json!({ "value": text })).await;
    assert!(
        matches!(
            report.result,
            Err(mozaiks_plugin_host::CallError::InvalidArguments { .. })
        ),
        "{:?}",
        report.result.as_ref().map(|_| ())
    );
}

#[tokio::test]
async fn a_ui_timeout_is_capped_at_the_hosts_longest() {
    let report = Harness::new()
        .answer("Picker", json!(1))
        .call(
            &adversary(),
            "ask",
            &json!({"component": "Picker", "payload": {}, "timeout_ms": u32::MAX}),
        )
        .await;
    ok(&report);
    assert_eq!(
        report.ui[0].timeout_ms,
        Some(mozaiks_plugin_host::MAX_UI_TIMEOUT.as_millis())
    );
}
