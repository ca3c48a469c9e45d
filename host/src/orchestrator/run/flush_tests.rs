//! When a run waits for its queued writes (`live/writer.rs`): the chat's
//! lasting status is written only once every event before it is durable.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mozaiks_fake_llm::{FakeLlm, Reply};
use serde_json::{Map, Value};

use crate::event::{Envelope, Event, RunStatus};
use crate::llm::{LlmClient, LlmConfig};
use crate::orchestrator::Orchestrator;
use crate::plugin_set::PluginSet;
use crate::store::{
    Appended, ChatFilter, ChatRecord, ChatStatus, ChatStore, EmbeddedStore, StoreError,
};
use crate::workflow::WorkflowRegistry;

/// How long a test waits for the chat to end before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// The embedded store, whose writes of events lag (so that a run that did
/// not wait for them would be ahead), recording the order of its writes.
#[derive(Debug)]
struct Lagging {
    store: EmbeddedStore,
    writes: Mutex<Vec<String>>,
}

impl Lagging {
    fn record(&self, what: String) {
        self.writes.lock().unwrap().push(what);
    }
}

#[async_trait]
impl ChatStore for Lagging {
    async fn create_chat(&self, chat: &ChatRecord) -> Result<(), StoreError> {
        self.store.create_chat(chat).await
    }
    async fn chat(&self, chat_id: &str) -> Result<Option<ChatRecord>, StoreError> {
        self.store.chat(chat_id).await
    }
    async fn chats(&self, filter: &ChatFilter) -> Result<Vec<ChatRecord>, StoreError> {
        self.store.chats(filter).await
    }
    async fn set_status(
        &self,
        chat_id: &str,
        status: ChatStatus,
        ended_reason: Option<String>,
    ) -> Result<(), StoreError> {
        self.record(format!("set_status {status:?}"));
        self.store.set_status(chat_id, status, ended_reason).await
    }
    async fn append(&self, chat_id: &str, ts: u64, event: Event) -> Result<Envelope, StoreError> {
        self.append_many(chat_id, vec![(ts, event)])
            .await
            .stored
            .pop()
            .ok_or_else(|| StoreError::Backend("not stored".into()))
    }
    async fn append_many(&self, chat_id: &str, events: Vec<(u64, Event)>) -> Appended {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let appended = self.store.append_many(chat_id, events).await;
        for envelope in &appended.stored {
            let kind = serde_json::to_value(&envelope.event).unwrap()["type"].clone();
            self.record(format!("event {}", kind.as_str().unwrap_or("?")));
        }
        appended
    }
    async fn events(
        &self,
        chat_id: &str,
        after_seq: u64,
        limit: Option<usize>,
    ) -> Result<Vec<Envelope>, StoreError> {
        self.store.events(chat_id, after_seq, limit).await
    }
    async fn context(&self, chat_id: &str) -> Result<Map<String, Value>, StoreError> {
        self.store.context(chat_id).await
    }
    async fn delete_ended_before(&self, before: u64) -> Result<Vec<String>, StoreError> {
        self.store.delete_ended_before(before).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}

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
    let store = Arc::new(Lagging {
        store: EmbeddedStore::open(&dir.join("data")).unwrap(),
        writes: Mutex::new(Vec::new()),
    });
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

    let writes = store.writes.lock().unwrap().clone();
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
