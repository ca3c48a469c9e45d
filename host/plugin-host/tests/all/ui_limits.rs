//! `ui.ask` and `ui.notify` cannot stretch a call: only the time a person
//! could be answering is left out of the CPU deadline, and one call makes a
//! bounded number of requests.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mozaiks_plugin_host::harness::{Harness, MemoryContext, RecordingLog, ScriptedAnswer};
use mozaiks_plugin_host::{
    CallError, CallInfo, Display, MAX_UI_ASKS_PER_CALL, MAX_UI_EVENTS_PER_CALL, Manifest, Plugin,
    Ports, UiBridge, UiError, UiRequest,
};
use serde_json::{Value, json};

use crate::support::{adversary_with, call_error, ok};

/// The adversary with a short deadline, so the tests are quick.
async fn adversary_with_deadline(deadline_ms: u32) -> Plugin {
    let mut m = Manifest::new("adversary");
    m.limits.deadline_ms = deadline_ms;
    adversary_with(m, &std::env::temp_dir()).await
}

/// A bridge that spends `work` of the host's own time on every request (as
/// a server does storing and sending it) and answers at once: nobody is
/// ever waited for.
struct BusyHost {
    work: Duration,
}

#[async_trait]
impl UiBridge for BusyHost {
    async fn ask(&self, _call: &CallInfo, _request: UiRequest) -> Result<Value, UiError> {
        tokio::time::sleep(self.work).await;
        Ok(json!(true))
    }
    async fn notify(&self, _call: &CallInfo, _component: &str, _payload: Value, _d: Display) {}
}

#[tokio::test]
async fn the_hosts_own_work_on_a_ui_request_counts_against_the_deadline() {
    let plugin = adversary_with_deadline(100).await;
    let ports = Ports {
        context: Arc::new(MemoryContext::new(&json!({}))),
        ui: Arc::new(BusyHost {
            work: Duration::from_millis(10),
        }),
        log: Arc::new(RecordingLog::default()),
        secrets: Arc::new(mozaiks_plugin_host::NoChat),
        data: Arc::new(mozaiks_plugin_host::NoChat),
        chat: Arc::new(mozaiks_plugin_host::NoChat),
    };
    // 15 requests take at least 150 ms of the host's time, none of it waiting
    // for a person: more than the 100 ms deadline.
    let result = plugin
        .call(
            "ask_loop",
            &json!({"times": 15, "timeout_ms": 60_000}).to_string(),
            CallInfo {
                chat_id: "c".into(),
                workflow: "w".into(),
                agent: "a".into(),
                tool_call_id: "t".into(),
                ..CallInfo::default()
            },
            ports,
        )
        .await;
    assert!(
        matches!(call_error(&result), CallError::DeadlineExceeded { .. }),
        "{result:?}"
    );
}

/// The reported case: `ui.ask` in a loop with a 1 ms timeout. Each request
/// waits at most 1 ms for a person; the rest of its time is the host's.
#[tokio::test]
async fn asking_in_a_loop_with_a_tiny_timeout_hits_the_deadline() {
    let plugin = adversary_with_deadline(500).await;
    // Nobody answers: each ask ends by the host's timeout, 1 ms plus its grace.
    let harness = (0..10).fold(Harness::new(), |h, _| {
        h.script("Confirm", ScriptedAnswer::Silent)
    });
    let report = harness
        .call(&plugin, "ask_loop", &json!({"times": 10, "timeout_ms": 1}))
        .await;
    assert!(
        matches!(
            call_error(&report.result),
            CallError::DeadlineExceeded { .. }
        ),
        "{:?}",
        report.result
    );
}

#[tokio::test]
async fn a_call_makes_at_most_the_allowed_number_of_asks() {
    let plugin = adversary_with_deadline(5_000).await;
    let times = MAX_UI_ASKS_PER_CALL + 5;
    // Nothing scripted: every ask is cancelled at once.
    let report = Harness::new()
        .call(
            &plugin,
            "ask_loop",
            &json!({"times": times, "timeout_ms": 1_000}),
        )
        .await;
    let out = ok(&report);
    assert_eq!(out["failed"], times);
    let asks = report.ui.iter().filter(|e| e.kind == "ask").count();
    assert_eq!(asks, MAX_UI_ASKS_PER_CALL as usize);
    let last = out["last_error"].as_str().unwrap();
    assert!(
        last.contains(&MAX_UI_ASKS_PER_CALL.to_string()),
        "the tool is told the limit: {last}"
    );
}

#[tokio::test]
async fn a_call_sends_at_most_the_allowed_number_of_ui_events() {
    let plugin = adversary_with_deadline(5_000).await;
    let report = Harness::new()
        .call(
            &plugin,
            "notify_loop",
            &json!({"times": MAX_UI_EVENTS_PER_CALL * 3}),
        )
        .await;
    ok(&report);
    assert_eq!(report.ui.len(), MAX_UI_EVENTS_PER_CALL as usize);
    let dropped: Vec<_> = report
        .logs
        .iter()
        .filter(|r| r.message.contains("dropped"))
        .collect();
    assert_eq!(
        dropped.len(),
        1,
        "one warning, not one per event: {dropped:?}"
    );
}
