//! [`Metered`]: any [`ChatStore`] with each operation timed into
//! `mozaiks_store_operation_duration_seconds` (by operation and outcome).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::{Appended, ChatFilter, ChatRecord, ChatStatus, ChatStore, StoreError};
use crate::event::{Envelope, Event};
use crate::telemetry::metrics;

/// A store whose operations are timed.
#[derive(Debug)]
pub(crate) struct Metered(pub Arc<dyn ChatStore>);

async fn timed<T>(
    operation: &str,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = call.await;
    // A missing chat is an answer, not a failure of the store.
    let ok = !matches!(result, Err(StoreError::Backend(_)));
    metrics().store_operation(operation, ok, started.elapsed());
    result
}

#[async_trait]
impl ChatStore for Metered {
    async fn create_chat(&self, chat: &ChatRecord) -> Result<(), StoreError> {
        timed("create_chat", self.0.create_chat(chat)).await
    }

    async fn chat(&self, chat_id: &str) -> Result<Option<ChatRecord>, StoreError> {
        timed("chat", self.0.chat(chat_id)).await
    }

    async fn chats(&self, filter: &ChatFilter) -> Result<Vec<ChatRecord>, StoreError> {
        timed("chats", self.0.chats(filter)).await
    }

    async fn set_status(
        &self,
        chat_id: &str,
        status: ChatStatus,
        ended_reason: Option<String>,
    ) -> Result<(), StoreError> {
        timed(
            "set_status",
            self.0.set_status(chat_id, status, ended_reason),
        )
        .await
    }

    async fn append(&self, chat_id: &str, ts: u64, event: Event) -> Result<Envelope, StoreError> {
        timed("append", self.0.append(chat_id, ts, event)).await
    }

    async fn append_many(&self, chat_id: &str, events: Vec<(u64, Event)>) -> Appended {
        let started = Instant::now();
        let appended = self.0.append_many(chat_id, events).await;
        let ok = !matches!(appended.error, Some(StoreError::Backend(_)));
        metrics().store_operation("append", ok, started.elapsed());
        appended
    }

    async fn events(
        &self,
        chat_id: &str,
        after_seq: u64,
        limit: Option<usize>,
    ) -> Result<Vec<Envelope>, StoreError> {
        timed("events", self.0.events(chat_id, after_seq, limit)).await
    }

    async fn context(&self, chat_id: &str) -> Result<Map<String, Value>, StoreError> {
        timed("context", self.0.context(chat_id)).await
    }

    async fn delete_ended_before(&self, before: u64) -> Result<Vec<String>, StoreError> {
        timed("delete_ended_before", self.0.delete_ended_before(before)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed("ping", self.0.ping()).await
    }

    async fn prepare(&self) -> Result<(), StoreError> {
        timed("prepare", self.0.prepare()).await
    }

    fn app_data(&self) -> Option<Arc<dyn super::data::AppDataStore>> {
        self.0.app_data()
    }

    fn cluster(&self) -> Option<Arc<dyn super::cluster::ClusterStore>> {
        self.0.cluster()
    }
}
