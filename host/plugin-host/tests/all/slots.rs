//! Instance slots: one plugin cannot take them all. Calls parked in
//! `ui.ask` hold a slot, so each plugin may hold only its share.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use mozaiks_plugin_host::harness::{MemoryContext, RecordingLog};
use mozaiks_plugin_host::{
    CallError, CallInfo, Display, EngineConfig, Manifest, Plugin, PluginEngine, Ports, UiBridge,
    UiError, UiRequest,
};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::support::{adversary_dir, call, ok};

/// A person who answers nothing until released; counts who is waiting.
struct Gate {
    waiting: AtomicUsize,
    open: Semaphore,
}

#[async_trait]
impl UiBridge for Gate {
    async fn ask(&self, _call: &CallInfo, request: UiRequest) -> Result<Value, UiError> {
        request.waiting.start();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        match self.open.acquire().await {
            Ok(_) => Ok(json!(true)),
            Err(_) => Err(UiError::Cancelled),
        }
    }
    async fn notify(&self, _call: &CallInfo, _component: &str, _payload: Value, _d: Display) {}
}

fn info() -> CallInfo {
    CallInfo {
        chat_id: "c".into(),
        workflow: "w".into(),
        agent: "a".into(),
        tool_call_id: "t".into(),
        ..CallInfo::default()
    }
}

async fn load(engine: &PluginEngine, id: &str) -> Plugin {
    let mut m = Manifest::new(id);
    m.limits.deadline_ms = 5_000;
    engine
        .load(
            m,
            std::env::temp_dir().join("plugin.toml"),
            &adversary_dir().join("adversary.wasm"),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_parked_in_ui_asks_leaves_slots_for_the_others() {
    const POOL: u32 = 4;
    const SHARE: u32 = 2;
    let engine = PluginEngine::new(EngineConfig {
        max_concurrent_calls: POOL,
        max_calls_per_plugin: SHARE,
        ..EngineConfig::default()
    })
    .unwrap();
    let hog = load(&engine, "hog").await;
    let other = load(&engine, "other").await;
    let gate = Arc::new(Gate {
        waiting: AtomicUsize::new(0),
        open: Semaphore::new(0),
    });
    let ports = Ports {
        context: Arc::new(MemoryContext::new(&json!({}))),
        ui: gate.clone(),
        log: Arc::new(RecordingLog::default()),
        secrets: Arc::new(mozaiks_plugin_host::NoChat),
        data: Arc::new(mozaiks_plugin_host::NoChat),
        chat: Arc::new(mozaiks_plugin_host::NoChat),
    };

    // The hog asks as many times as there are slots, and nobody answers.
    let mut asks = tokio::task::JoinSet::new();
    for _ in 0..POOL {
        let (hog, ports) = (hog.clone(), ports.clone());
        asks.spawn(async move {
            let args = json!({"component": "Confirm", "payload": {}, "timeout_ms": 60_000});
            hog.call("ask", &args.to_string(), info(), ports).await
        });
    }
    // Wait until every ask is either parked or refused.
    let mut refused = Vec::new();
    while gate.waiting.load(Ordering::SeqCst) + refused.len() < POOL as usize {
        tokio::select! {
            Some(done) = asks.join_next() => refused.push(done.unwrap()),
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
    // Another plugin still runs: the hog holds only its share.
    assert_eq!(ok(&call(&other, "counter", json!({})).await)["count"], 1);

    assert_eq!(gate.waiting.load(Ordering::SeqCst), SHARE as usize);
    for result in &refused {
        let Err(CallError::Busy { plugin, cause, .. }) = result else {
            panic!("{result:?}");
        };
        assert_eq!(plugin, "hog");
        assert!(cause.contains("share"), "{cause}");
    }
    assert_eq!(
        engine.slots().in_use.get("hog").copied(),
        Some(SHARE),
        "{:?}",
        engine.slots()
    );

    gate.open.add_permits(POOL as usize);
    while let Some(done) = asks.join_next().await {
        assert!(matches!(done.unwrap(), Ok(Ok(_))));
    }
    assert!(engine.slots().in_use.is_empty(), "{:?}", engine.slots());
}
