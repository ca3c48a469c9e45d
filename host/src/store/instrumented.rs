//! [`Instrumented`]: the embedded store with the knobs the orchestrator's
//! tests turn: appends held behind a gate, slowed, or failed on demand,
//! context reads counted, and the order of writes recorded.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::watch;

use super::{Appended, ChatFilter, ChatRecord, ChatStatus, ChatStore, EmbeddedStore, StoreError};
use crate::event::{Envelope, Event};

/// The embedded store in `dir`, instrumented.
#[derive(Debug)]
pub(crate) struct Instrumented {
    /// The store behind it.
    pub store: EmbeddedStore,
    /// Appends wait while this is false.
    open: watch::Sender<bool>,
    /// Appends fail with "disk on fire" (after the gate and the lag).
    pub fail_appends: AtomicBool,
    /// How long each append waits before it is written.
    lag: Mutex<Duration>,
    /// Context reads so far.
    pub context_reads: AtomicUsize,
    /// The writes in the order they were made: `event <type>` for each
    /// stored event, `set_status <status>`.
    pub writes: Mutex<Vec<String>>,
}

impl Instrumented {
    /// The embedded store opened in `dir`, gate open, no lag.
    pub(crate) fn open(dir: &std::path::Path) -> Self {
        Self {
            store: EmbeddedStore::open(dir).unwrap_or_else(|e| panic!("opening {dir:?}: {e}")),
            open: watch::Sender::new(true),
            fail_appends: AtomicBool::new(false),
            lag: Mutex::new(Duration::ZERO),
            context_reads: AtomicUsize::new(0),
            writes: Mutex::new(Vec::new()),
        }
    }

    /// Opens (`true`) or closes the gate appends wait behind.
    pub(crate) fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }

    /// Makes every append wait `lag` before it is written.
    pub(crate) fn set_lag(&self, lag: Duration) {
        *self
            .lag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = lag;
    }

    /// The writes so far, in order.
    pub(crate) fn writes(&self) -> Vec<String> {
        self.lock_writes().clone()
    }

    fn lock_writes(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ChatStore for Instrumented {
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
        self.lock_writes().push(format!("set_status {status:?}"));
        self.store.set_status(chat_id, status, ended_reason).await
    }
    async fn append(&self, chat_id: &str, ts: u64, event: Event) -> Result<Envelope, StoreError> {
        let mut appended = self.append_many(chat_id, vec![(ts, event)]).await;
        match appended.error {
            Some(error) => Err(error),
            None => appended
                .stored
                .pop()
                .ok_or_else(|| StoreError::Backend("nothing stored".into())),
        }
    }
    async fn append_many(&self, chat_id: &str, events: Vec<(u64, Event)>) -> Appended {
        let _ = self.open.subscribe().wait_for(|open| *open).await;
        let lag = *self
            .lag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !lag.is_zero() {
            tokio::time::sleep(lag).await;
        }
        if self.fail_appends.load(Ordering::SeqCst) {
            return Appended {
                stored: Vec::new(),
                error: Some(StoreError::Backend("disk on fire".into())),
            };
        }
        let appended = self.store.append_many(chat_id, events).await;
        let mut writes = self.lock_writes();
        for envelope in &appended.stored {
            let kind = serde_json::to_value(&envelope.event)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_owned))
                .unwrap_or_default();
            writes.push(format!("event {kind}"));
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
        self.context_reads.fetch_add(1, Ordering::SeqCst);
        self.store.context(chat_id).await
    }
    async fn delete_ended_before(&self, before: u64) -> Result<Vec<String>, StoreError> {
        self.store.delete_ended_before(before).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}
