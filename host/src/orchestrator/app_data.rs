//! The `data` import of a tool call on the server: the store's per-app
//! documents ([`crate::store::data`]), bound to the calling chat's app and
//! user. The owner comes from the chat record, never from the tool.

use std::sync::Arc;

use async_trait::async_trait;
use mozaiks_plugin_host::{
    AppData, DataDocument, DataError, DataLimits, DataQuery, DataScope, PortError,
};
use serde_json::Value;

use super::live::WriteBarrier;
use crate::store::ChatRecord;
use crate::store::data::{AppDataStore, DataOwner, DataStoreError};

/// One chat's view of its app's documents.
#[derive(Debug)]
pub(crate) struct ChatAppData {
    store: Option<Arc<dyn AppDataStore>>,
    app_id: String,
    /// `None` when the chat has no user (an empty `user_id`).
    user_id: Option<String>,
    limits: DataLimits,
    /// Waited for before a write: the run's events before the call are
    /// durable before the tool changes anything (`live/writer.rs`).
    before_writes: Option<WriteBarrier>,
}

impl ChatAppData {
    /// The documents of `chat`'s app in `store` (`None`: the chat store
    /// keeps no per-app data), under `limits`.
    pub(crate) fn new(
        store: Option<Arc<dyn AppDataStore>>,
        chat: &ChatRecord,
        limits: DataLimits,
    ) -> Self {
        Self {
            store,
            app_id: chat.app_id.clone(),
            user_id: (!chat.user_id.is_empty()).then(|| chat.user_id.clone()),
            limits,
            before_writes: None,
        }
    }

    /// Waits for `barrier` before each write.
    pub(crate) fn with_barrier(mut self, barrier: Option<WriteBarrier>) -> Self {
        self.before_writes = barrier;
        self
    }

    async fn before_write(&self) -> Result<(), DataError> {
        match &self.before_writes {
            Some(barrier) => barrier
                .wait()
                .await
                .map_err(|e| DataError::Failed(PortError::new(e.to_string()))),
            None => Ok(()),
        }
    }

    /// The store and the owner `scope` stands for in this chat.
    fn owner(&self, scope: DataScope) -> Result<(&dyn AppDataStore, DataOwner), DataError> {
        let store = self.store.as_deref().ok_or_else(|| {
            DataError::Invalid("this server's chat store keeps no per-app data".to_owned())
        })?;
        let owner = match scope {
            DataScope::App => DataOwner::app(&self.app_id),
            DataScope::User => match &self.user_id {
                Some(user) => DataOwner::user(&self.app_id, user),
                None => {
                    return Err(DataError::Invalid(
                        "scope `user`: this chat has no user (use scope `app`)".to_owned(),
                    ));
                }
            },
        };
        Ok((store, owner))
    }
}

fn port_error(error: DataStoreError) -> DataError {
    match error {
        DataStoreError::Conflict { found } => DataError::Conflict { found },
        DataStoreError::TooLarge { size, max } => DataError::TooLarge { size, max },
        DataStoreError::QuotaExceeded { app, max } => DataError::QuotaExceeded { app, max },
        DataStoreError::Store(e) => DataError::Failed(PortError::new(e.to_string())),
    }
}

#[async_trait]
impl AppData for ChatAppData {
    async fn get(
        &self,
        scope: DataScope,
        collection: &str,
        id: &str,
    ) -> Result<Option<DataDocument>, DataError> {
        let (store, owner) = self.owner(scope)?;
        store
            .get_document(&owner, collection, id)
            .await
            .map_err(port_error)
    }

    async fn put(
        &self,
        scope: DataScope,
        collection: &str,
        id: &str,
        body: Value,
        expected: Option<u64>,
    ) -> Result<u64, DataError> {
        let (store, owner) = self.owner(scope)?;
        self.before_write().await?;
        store
            .put_document(&owner, collection, id, &body, expected, &self.limits)
            .await
            .map_err(port_error)
    }

    async fn remove(
        &self,
        scope: DataScope,
        collection: &str,
        id: &str,
        expected: Option<u64>,
    ) -> Result<bool, DataError> {
        let (store, owner) = self.owner(scope)?;
        self.before_write().await?;
        store
            .remove_document(&owner, collection, id, expected)
            .await
            .map_err(port_error)
    }

    async fn query(
        &self,
        scope: DataScope,
        collection: &str,
        query: &DataQuery,
    ) -> Result<Vec<DataDocument>, DataError> {
        let (store, owner) = self.owner(scope)?;
        store
            .query_documents(&owner, collection, query)
            .await
            .map_err(port_error)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::{ChatStore, EmbeddedStore};

    fn chat(app: &str, user: &str) -> ChatRecord {
        ChatRecord::new(
            "c".into(),
            app.into(),
            user.into(),
            "wf".into(),
            "1".into(),
            0,
            0,
        )
    }

    #[tokio::test]
    async fn the_chats_app_and_user_decide_whose_documents_a_scope_is() {
        let dir = std::env::temp_dir().join(format!("mozaiks-chat-data-{}", uuid::Uuid::new_v4()));
        let store = EmbeddedStore::open(&dir).unwrap();
        let limits = DataLimits::default();
        let alice = ChatAppData::new(store.app_data(), &chat("a", "alice"), limits);
        let bob = ChatAppData::new(store.app_data(), &chat("a", "bob"), limits);
        let other_app = ChatAppData::new(store.app_data(), &chat("b", "alice"), limits);
        alice
            .put(
                DataScope::User,
                "notes",
                "n",
                json!({ "by": "alice" }),
                None,
            )
            .await
            .unwrap();
        alice
            .put(DataScope::App, "notes", "n", json!({ "by": "app a" }), None)
            .await
            .unwrap();
        let body = |doc: Option<DataDocument>| doc.map(|d| d.body);
        assert_eq!(
            body(alice.get(DataScope::User, "notes", "n").await.unwrap()),
            Some(json!({ "by": "alice" }))
        );
        assert_eq!(bob.get(DataScope::User, "notes", "n").await.unwrap(), None);
        assert_eq!(
            body(bob.get(DataScope::App, "notes", "n").await.unwrap()),
            Some(json!({ "by": "app a" }))
        );
        assert_eq!(
            other_app.get(DataScope::App, "notes", "n").await.unwrap(),
            None
        );
        assert_eq!(
            other_app.get(DataScope::User, "notes", "n").await.unwrap(),
            None
        );

        let nobody = ChatAppData::new(store.app_data(), &chat("a", ""), limits);
        let err = nobody.get(DataScope::User, "notes", "n").await.unwrap_err();
        assert!(
            matches!(&err, DataError::Invalid(m) if m.contains("no user")),
            "{err:?}"
        );
        let none = ChatAppData::new(None, &chat("a", "alice"), limits);
        let err = none.get(DataScope::App, "notes", "n").await.unwrap_err();
        assert!(
            matches!(&err, DataError::Invalid(m) if m.contains("no per-app data")),
            "{err:?}"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
