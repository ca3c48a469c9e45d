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
pub(super) mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use serde_json::{Value, json};

    use super::super::LiveChat;
    use crate::event::Event;
    use crate::store::instrumented::Instrumented;
    use crate::store::{ChatRecord, ChatStore};

    fn changed(key: &str, value: Option<Value>) -> Event {
        Event::ContextChanged {
            key: key.into(),
            value,
            by: "tool".into(),
        }
    }

    /// Chat `c1` on an instrumented store in `dir`, and its live side.
    pub(in crate::orchestrator::live) async fn chat_on(
        dir: &std::path::Path,
    ) -> (Arc<Instrumented>, Arc<LiveChat>) {
        let store = Arc::new(Instrumented::open(dir));
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
