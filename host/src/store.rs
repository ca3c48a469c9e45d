//! Persistence of chats: the [`ChatStore`] trait, the records it keeps,
//! and its implementations ([`embedded`], the zero-setup default; MongoDB
//! comes with its own issue).
//!
//! A chat is a [`ChatRecord`] plus its ordered event log
//! ([`crate::event::Envelope`]). The store assigns sequence numbers, and
//! folds two kinds of events into materialised views *in the same atomic
//! write* as the event itself: `context_changed` into the chat's context
//! variables and `usage` into the chat's token totals. Everything else
//! (transcript, pending UI requests) is read back from the log.
//!
//! The orchestrator appends an event and only then emits it, so whatever a
//! client has seen survives a crash.

pub(crate) mod cluster;
pub(crate) mod data;
pub(crate) mod embedded;
pub(crate) mod format;
pub(crate) mod metered;
pub(crate) mod mongo;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod data_conformance;
#[cfg(test)]
pub(crate) mod golden;
#[cfg(test)]
pub(crate) mod instrumented;

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::{Envelope, Event};

pub use embedded::EmbeddedStore;
pub use mongo::MongoConfig;
pub use mongo::MongoStore;

/// Which store keeps the chats.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// One file in this directory (the zero-setup default).
    Embedded {
        /// The directory.
        data_dir: PathBuf,
    },
    /// A MongoDB database (`MONGO_URI`).
    Mongo(MongoConfig),
}

impl StoreConfig {
    /// Opens the store. A database server that does not answer yet is not
    /// an error here: the store monitor reports it and retries.
    pub async fn open(&self) -> Result<Arc<dyn ChatStore>, StoreError> {
        let store: Arc<dyn ChatStore> = match self {
            StoreConfig::Embedded { data_dir } => Arc::new(EmbeddedStore::open(data_dir)?),
            StoreConfig::Mongo(config) => Arc::new(MongoStore::connect(config).await?),
        };
        Ok(Arc::new(metered::Metered(store)))
    }

    /// Where the chats are, for logs.
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Embedded { data_dir } => {
                format!("embedded store in {}", data_dir.display())
            }
            StoreConfig::Mongo(config) => format!(
                "MongoDB database `{}` at {}",
                config.database,
                config.redacted_uri()
            ),
        }
    }
}

/// A chat's lasting state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChatStatus {
    /// The run is active, waiting for the user, or was interrupted: it can
    /// continue.
    InProgress,
    /// The run ended normally.
    Completed,
    /// The run ended with an error.
    Failed,
}

/// One chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRecord {
    /// Unique id.
    pub chat_id: String,
    /// The application (tenant) it belongs to.
    pub app_id: String,
    /// The user who started it.
    pub user_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The workflow's version when the chat started.
    pub workflow_version: String,
    /// The workflow's cache seed when the chat started.
    pub cache_seed: u32,
    /// Lasting state.
    pub status: ChatStatus,
    /// Why it ended, once it has.
    pub ended_reason: Option<String>,
    /// Created, in ms since the Unix epoch.
    pub created_at: u64,
    /// Last event or status change, in ms since the Unix epoch.
    pub updated_at: u64,
    /// Sequence number of the last event (0 when none).
    pub last_seq: u64,
    /// Prompt tokens used so far (sum of `usage` events).
    pub prompt_tokens: u64,
    /// Completion tokens used so far (sum of `usage` events).
    pub completion_tokens: u64,
}

impl ChatRecord {
    /// A new, empty, in-progress chat.
    pub fn new(
        chat_id: String,
        app_id: String,
        user_id: String,
        workflow: String,
        workflow_version: String,
        cache_seed: u32,
        now: u64,
    ) -> Self {
        Self {
            chat_id,
            app_id,
            user_id,
            workflow,
            workflow_version,
            cache_seed,
            status: ChatStatus::InProgress,
            ended_reason: None,
            created_at: now,
            updated_at: now,
            last_seq: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
        }
    }
}

/// Which chats to list. `None` fields match everything.
#[derive(Debug, Clone, Default)]
pub struct ChatFilter {
    /// Only this application's.
    pub app_id: Option<String>,
    /// Only this user's.
    pub user_id: Option<String>,
    /// Only chats in this state.
    pub status: Option<ChatStatus>,
}

impl ChatFilter {
    /// Whether `chat` passes.
    pub fn matches(&self, chat: &ChatRecord) -> bool {
        self.app_id.as_ref().is_none_or(|a| *a == chat.app_id)
            && self.user_id.as_ref().is_none_or(|u| *u == chat.user_id)
            && self.status.as_ref().is_none_or(|s| *s == chat.status)
    }
}

/// What went wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No chat has this id.
    #[error("chat `{0}` not found")]
    ChatNotFound(String),
    /// A chat with this id exists already.
    #[error("chat `{0}` already exists")]
    ChatExists(String),
    /// Ephemeral events are never persisted.
    #[error("`{0}` events are ephemeral and cannot be stored")]
    Ephemeral(&'static str),
    /// A stored record does not decode: the file was written by something
    /// else or damaged.
    #[error("stored {what} of chat `{chat_id}` is corrupt: {source}")]
    Corrupt {
        /// Which record.
        what: String,
        /// The chat.
        chat_id: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The storage backend failed (disk, database, network).
    #[error("store backend: {0}")]
    Backend(String),
    /// This server no longer holds the chat's lease (another server took
    /// the chat over, or it never held it): the append was refused
    /// (`store::cluster`, "Fencing").
    #[error("chat `{chat_id}` is run by another server now{}; this server stores nothing more for it", .owner.as_deref().map(|o| format!(" (`{o}`)")).unwrap_or_default())]
    LeaseLost {
        /// The chat.
        chat_id: String,
        /// The server that holds it now, when known.
        owner: Option<String>,
    },
}

/// What [`ChatStore::append_many`] stored.
#[derive(Debug)]
pub struct Appended {
    /// The events stored, as stored, in order: a prefix of those given.
    pub stored: Vec<Envelope>,
    /// Why the next event (and every one after it) was not stored.
    pub error: Option<StoreError>,
}

impl Appended {
    /// What was stored of events whose answers are `answers` (one per
    /// event, in order): the envelopes up to the first error, and that
    /// error; `after` when every answer is an envelope.
    pub(crate) fn prefix(
        answers: impl IntoIterator<Item = Result<Envelope, StoreError>>,
        after: Option<StoreError>,
    ) -> Self {
        let mut stored = Vec::new();
        for answer in answers {
            match answer {
                Ok(envelope) => stored.push(envelope),
                Err(error) => {
                    return Self {
                        stored,
                        error: Some(error),
                    };
                }
            }
        }
        Self {
            stored,
            error: after,
        }
    }
}

/// Where chats live. Implementations are shared by every run of the
/// process and must be safe to call concurrently.
#[async_trait]
pub trait ChatStore: Send + Sync + Debug {
    /// Stores a new chat. Fails with [`StoreError::ChatExists`] if the id
    /// is taken.
    async fn create_chat(&self, chat: &ChatRecord) -> Result<(), StoreError>;

    /// The chat, if it exists.
    async fn chat(&self, chat_id: &str) -> Result<Option<ChatRecord>, StoreError>;

    /// The chats that pass `filter`, newest first.
    async fn chats(&self, filter: &ChatFilter) -> Result<Vec<ChatRecord>, StoreError>;

    /// Sets the chat's lasting state (and why it ended).
    async fn set_status(
        &self,
        chat_id: &str,
        status: ChatStatus,
        ended_reason: Option<String>,
    ) -> Result<(), StoreError>;

    /// Appends `event` to the chat's log with the next sequence number and
    /// returns it as stored. In the same atomic write, a `context_changed`
    /// updates the context variables and a `usage` the token totals; the
    /// chat's `last_seq` and `updated_at` follow. The write is durable when
    /// this returns.
    async fn append(&self, chat_id: &str, ts: u64, event: Event) -> Result<Envelope, StoreError>;

    /// Appends `events` (each with its `ts`) to the chat's log in order, as
    /// [`append`](Self::append) called for each one after the other would,
    /// in as few durable writes as the store can (the embedded store: one
    /// transaction). It stops at the first event that fails: what is
    /// stored is always a prefix of `events`, every envelope returned is
    /// durable, and [`Appended::error`] says why the rest was not written.
    async fn append_many(&self, chat_id: &str, events: Vec<(u64, Event)>) -> Appended {
        let mut stored = Vec::with_capacity(events.len());
        for (ts, event) in events {
            match self.append(chat_id, ts, event).await {
                Ok(envelope) => stored.push(envelope),
                Err(error) => {
                    return Appended {
                        stored,
                        error: Some(error),
                    };
                }
            }
        }
        Appended {
            stored,
            error: None,
        }
    }

    /// The chat's events with `seq > after_seq`, in order, at most `limit`.
    async fn events(
        &self,
        chat_id: &str,
        after_seq: u64,
        limit: Option<usize>,
    ) -> Result<Vec<Envelope>, StoreError>;

    /// The chat's context variables as they are now.
    async fn context(&self, chat_id: &str) -> Result<Map<String, Value>, StoreError>;

    /// Deletes every chat that ended (completed or failed) before
    /// `before` (ms since the Unix epoch, compared with `updated_at`), with
    /// its events and context. Returns the deleted chat ids. Chats in
    /// progress are never deleted, however old.
    async fn delete_ended_before(&self, before: u64) -> Result<Vec<String>, StoreError>;

    /// Checks that the store can serve requests now.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Makes the store ready for use once it is reachable (creates indexes,
    /// for instance). Idempotent; the server calls it after the first
    /// successful [`ping`](Self::ping).
    async fn prepare(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The per-app documents this store keeps beside the chats
    /// (`store::data`); `None` for a store that keeps none.
    fn app_data(&self) -> Option<Arc<dyn data::AppDataStore>> {
        None
    }

    /// What several servers on this database share (`store::cluster`);
    /// `None` for a store only one process opens.
    fn cluster(&self) -> Option<Arc<dyn cluster::ClusterStore>> {
        None
    }
}
