//! Per-app data: the documents tools keep through the `data` import and
//! `database` context sources read ([`AppDataStore`]), kept by the chat
//! store in use (`embedded/app_data.rs`, `mongo/app_data.rs`).
//!
//! Every operation names its [`DataOwner`]: an app, and for user-scoped
//! documents one user of it. The owner is always built by the server from
//! the chat that asks (its `app_id` and `user_id`), so no caller chooses
//! whose documents it reads. An app's documents and its users' documents
//! count together against [`DataLimits::max_documents_per_app`].

use std::fmt::Debug;

use async_trait::async_trait;
use mozaiks_plugin_host::{DataDocument, DataLimits, DataQuery};
use serde_json::Value;

use super::StoreError;

/// Whose documents: an app's, or one of its users'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataOwner {
    /// The app (tenant).
    pub app_id: String,
    /// `Some`: only this user's documents inside the app.
    pub user_id: Option<String>,
}

impl DataOwner {
    /// The documents shared by the app's users.
    pub fn app(app_id: &str) -> Self {
        Self {
            app_id: app_id.to_owned(),
            user_id: None,
        }
    }

    /// The documents of one user of the app.
    pub fn user(app_id: &str, user_id: &str) -> Self {
        Self {
            app_id: app_id.to_owned(),
            user_id: Some(user_id.to_owned()),
        }
    }

    /// The owner as one stored key part: empty for the app, `u:<user>` for
    /// a user, so the two can never be confused.
    pub(crate) fn partition(&self) -> String {
        self.user_id
            .as_deref()
            .map_or_else(String::new, |user| format!("u:{user}"))
    }
}

/// Why a data operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DataStoreError {
    /// The document is not at the version the write expected.
    #[error("version conflict: the document is at {found:?}")]
    Conflict {
        /// Its version now (`None`: absent).
        found: Option<u64>,
    },
    /// The document is larger than the limit.
    #[error("the document is {size} bytes, more than the {max} allowed")]
    TooLarge {
        /// Its size (bytes of JSON text).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The app already holds the most documents allowed.
    #[error("app `{app}` already holds {max} documents, the most allowed")]
    QuotaExceeded {
        /// The app.
        app: String,
        /// The limit.
        max: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where per-app documents live. Implementations are shared by every chat
/// and must be safe to call concurrently.
#[async_trait]
pub trait AppDataStore: Send + Sync + Debug {
    /// The document `id` of `collection` of `owner`, if any.
    async fn get_document(
        &self,
        owner: &DataOwner,
        collection: &str,
        id: &str,
    ) -> Result<Option<DataDocument>, DataStoreError>;

    /// Writes `body` as the document and returns its new version (1 for a
    /// new one). With `expected`, only if the document is at that version
    /// now (0: absent), else [`DataStoreError::Conflict`]. A new document
    /// is refused once the app holds `limits.max_documents_per_app`; a body
    /// over `limits.max_document_bytes` always.
    async fn put_document(
        &self,
        owner: &DataOwner,
        collection: &str,
        id: &str,
        body: &Value,
        expected: Option<u64>,
        limits: &DataLimits,
    ) -> Result<u64, DataStoreError>;

    /// Removes the document; true if it existed. With `expected`, only if
    /// it is at that version now.
    async fn remove_document(
        &self,
        owner: &DataOwner,
        collection: &str,
        id: &str,
        expected: Option<u64>,
    ) -> Result<bool, DataStoreError>;

    /// The documents of `collection` of `owner` that `query` selects, in id
    /// order, at most `query.limit`.
    async fn query_documents(
        &self,
        owner: &DataOwner,
        collection: &str,
        query: &DataQuery,
    ) -> Result<Vec<DataDocument>, DataStoreError>;
}

/// The size check every store makes first: the body's JSON text.
pub(crate) fn check_size(body: &Value, limits: &DataLimits) -> Result<String, DataStoreError> {
    let text = body.to_string();
    if text.len() > limits.max_document_bytes {
        return Err(DataStoreError::TooLarge {
            size: text.len(),
            max: limits.max_document_bytes,
        });
    }
    Ok(text)
}

/// A document as the embedded store keeps it: its version and its body.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredDocument {
    pub(crate) version: u64,
    pub(crate) body: Value,
}
