//! [`ContextCopy`]: a chat's context variables as this process stored them,
//! so the run's handoff checks and tool reads need no store read.
//!
//! Every write of a context variable is a `context_changed` event, and
//! every event of a chat leaves this process through its one
//! [`LiveChat::emit`](super::LiveChat::emit). So after one read of the
//! store, folding each event `emit` stored keeps the copy equal to the
//! store's view. The copy is filled, folded and forgotten under `emit`'s
//! ordering lock; an append whose outcome is unknown (it failed) forgets
//! it, and the next read goes to the store again.

use std::sync::{Mutex, PoisonError};

use serde_json::{Map, Value};

use crate::event::Event;

/// The chat's context variables, once read; `None` until then.
#[derive(Debug, Default)]
pub(super) struct ContextCopy(Mutex<Option<Map<String, Value>>>);

impl ContextCopy {
    /// The variables, if they were read since the copy was last forgotten.
    pub(super) fn get(&self) -> Option<Map<String, Value>> {
        self.lock().clone()
    }

    /// Keeps `context`, just read from the store.
    pub(super) fn fill(&self, context: &Map<String, Value>) {
        *self.lock() = Some(context.clone());
    }

    /// Folds an event the store has just stored.
    pub(super) fn fold(&self, event: &Event) {
        let Event::ContextChanged { key, value, .. } = event else {
            return;
        };
        if let Some(context) = self.lock().as_mut() {
            match value {
                Some(value) => {
                    context.insert(key.clone(), value.clone());
                }
                None => {
                    context.remove(key);
                }
            }
        }
    }

    /// Drops the copy: the next read goes to the store.
    pub(super) fn forget(&self) {
        *self.lock() = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Map<String, Value>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use async_trait::async_trait;
    use serde_json::{Map, Value, json};

    use super::super::LiveChat;
    use crate::event::{Envelope, Event};
    use crate::store::{ChatFilter, ChatRecord, ChatStatus, ChatStore, EmbeddedStore, StoreError};

    /// The embedded store, counting context reads and failing appends on
    /// demand.
    #[derive(Debug)]
    struct Counting {
        store: EmbeddedStore,
        context_reads: AtomicUsize,
        fail_appends: AtomicBool,
    }

    #[async_trait]
    impl ChatStore for Counting {
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
            self.store.set_status(chat_id, status, ended_reason).await
        }
        async fn append(
            &self,
            chat_id: &str,
            ts: u64,
            event: Event,
        ) -> Result<Envelope, StoreError> {
            if self.fail_appends.load(Ordering::SeqCst) {
                return Err(StoreError::Backend("disk on fire".into()));
            }
            self.store.append(chat_id, ts, event).await
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

    fn changed(key: &str, value: Option<Value>) -> Event {
        Event::ContextChanged {
            key: key.into(),
            value,
            by: "tool".into(),
        }
    }

    async fn chat_on(dir: &std::path::Path) -> (Arc<Counting>, Arc<LiveChat>) {
        let store = Arc::new(Counting {
            store: EmbeddedStore::open(dir).unwrap(),
            context_reads: AtomicUsize::new(0),
            fail_appends: AtomicBool::new(false),
        });
        let chat = ChatRecord::new(
            "c1".into(),
            "a".into(),
            "u".into(),
            "W".into(),
            "1".into(),
            0,
            1,
        );
        store.create_chat(&chat).await.unwrap();
        let live = Arc::new(LiveChat::new("c1".into(), store.clone()));
        (store, live)
    }

    #[tokio::test]
    async fn the_context_is_read_from_the_store_once_then_kept_by_emit() {
        let dir = std::env::temp_dir().join(format!("mozaiks-ctx-copy-{}", uuid::Uuid::new_v4()));
        let (store, live) = chat_on(&dir).await;
        live.emit(changed("before", Some(json!(1)))).await.unwrap();
        assert_eq!(
            live.context().await.unwrap(),
            json!({"before": 1}).as_object().unwrap().clone()
        );
        assert_eq!(store.context_reads.load(Ordering::SeqCst), 1);

        live.emit(changed("a", Some(json!({"x": [1, 2]}))))
            .await
            .unwrap();
        live.emit(changed("n", Some(Value::Null))).await.unwrap();
        live.emit(changed("before", None)).await.unwrap();
        live.emit(Event::UserMessage { text: "hi".into() })
            .await
            .unwrap();
        let copy = live.context().await.unwrap();
        assert_eq!(
            Value::Object(copy.clone()),
            json!({"a": {"x": [1, 2]}, "n": null})
        );
        assert_eq!(
            store.context_reads.load(Ordering::SeqCst),
            1,
            "no second read"
        );
        assert_eq!(
            copy,
            store.store.context("c1").await.unwrap(),
            "the copy is the store's view"
        );
        drop((store, live));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_failed_append_makes_the_next_read_go_to_the_store() {
        let dir = std::env::temp_dir().join(format!("mozaiks-ctx-copy-{}", uuid::Uuid::new_v4()));
        let (store, live) = chat_on(&dir).await;
        live.context().await.unwrap();
        store.fail_appends.store(true, Ordering::SeqCst);
        live.emit(changed("k", Some(json!(1)))).await.unwrap_err();
        store.fail_appends.store(false, Ordering::SeqCst);
        assert!(live.context().await.unwrap().is_empty());
        assert_eq!(store.context_reads.load(Ordering::SeqCst), 2);
        drop((store, live));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
