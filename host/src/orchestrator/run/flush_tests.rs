//! When a run waits for its queued writes (`live/writer.rs`): the chat's
//! lasting status is written only once every event before it is durable.

use std::sync::Arc;
use std::time::Duration;

use mozaiks_fake_llm::{FakeLlm, Reply};

use crate::event::{Event, RunStatus};
use crate::llm::{LlmClient, LlmConfig};
use crate::orchestrator::Orchestrator;
use crate::plugin_set::PluginSet;
use crate::store::ChatStore;
use crate::store::instrumented::Instrumented;
use crate::workflow::WorkflowRegistry;

/// How long a test waits for the chat to end before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_lasting_status_follows_every_event_of_the_run() {
    let dir = std::env::temp_dir().join(format!("mozaiks-flush-{}", uuid::Uuid::new_v4()));
    let folder = dir.join("workflows/Pair");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("orchestrator.json"),
        r#"{ "workflow_name": "Pair", "max_turns": 4, "startup_mode": "AgentDriven",
  "orchestration_pattern": "RoundRobinPattern", "initial_agent": "Alpha",
  "initial_message": "Talk." }"#,
    )
    .unwrap();
    std::fs::write(
        folder.join("agents.json"),
        r#"{ "agents": [ { "name": "Alpha", "system_message": "You are Alpha." },
  { "name": "Beta", "system_message": "You are Beta." } ] }"#,
    )
    .unwrap();
    let llm = FakeLlm::start(|_| Reply::text("Noted.")).await;
    let plugins = Arc::new(PluginSet::new());
    let workflows =
        Arc::new(WorkflowRegistry::load_dir(&dir.join("workflows"), &plugins.snapshot()).unwrap());
    // Writes of events lag, so a run that did not wait for them would
    // be ahead of its log.
    let store = Arc::new(Instrumented::open(&dir.join("data")));
    store.set_lag(Duration::from_millis(5));
    let orchestrator = Orchestrator::new(
        Arc::clone(&store) as Arc<dyn ChatStore>,
        LlmClient::new(LlmConfig {
            api_key: Some("test".into()),
            base_url: Some(llm.base_url()),
            default_model: "fake-model".into(),
            default_timeout: PATIENCE,
            retry: crate::llm::RetryPolicy::default(),
        }),
        PATIENCE,
        workflows,
        plugins,
    );
    let chat = orchestrator.create_chat("app", "u", "Pair").await.unwrap();
    let live = orchestrator.live(&chat.chat_id);
    let mut events = live.subscribe();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let envelope = events.recv().await.unwrap();
            if let Event::RunStatus {
                status: RunStatus::Completed,
                ..
            } = envelope.event
            {
                return;
            }
        }
    })
    .await
    .expect("the chat ends");

    let writes = store.writes();
    let status_at = writes
        .iter()
        .position(|w| w.starts_with("set_status"))
        .expect("the lasting status is written");
    assert_eq!(
        &writes[status_at..],
        ["set_status Completed", "event run_status"],
        "only the final run_status follows the lasting status: {writes:?}"
    );
    assert_eq!(
        writes
            .iter()
            .filter(|w| *w == "event agent_message")
            .count(),
        4,
        "{writes:?}"
    );
    drop(orchestrator);
    let _ = std::fs::remove_dir_all(&dir);
}
