//! The embedded store: every chat in one [redb] file, `mozaiks.redb` in
//! the data directory, so a server needs no database to run.
//!
//! # Layout
//!
//! Three tables, each value a JSON text, so records stay readable with any
//! redb tool and a field added later (with a serde default) needs no
//! migration:
//!
//! - `chats`: `chat_id` → [`ChatRecord`];
//! - `events`: `(chat_id, seq)` → the [`Envelope`] in its stored form
//!   ([`super::format`], with a `format_version`), so a chat's log is one
//!   ordered range of keys;
//! - `context`: `(chat_id, key)` → the variable's JSON value.
//!
//! # Durability and concurrency
//!
//! Every write is committed in a redb write transaction with redb's default
//! (immediate) durability: when a call returns, its write is on disk and
//! survives a crash. redb admits one write transaction at a time. Appends
//! are grouped ([`group_commit`]): one thread writes the appends of every
//! chat that arrived while the previous commit was in flight in one
//! transaction, with one `fdatasync`. The chat's `last_seq` is read and
//! advanced inside that transaction, in the order the appends arrived, so
//! concurrent appends to one chat get consecutive sequence numbers with
//! neither gaps nor duplicates. Reads run on snapshots and never wait for
//! writes.
//!
//! redb blocks, so every other call runs on tokio's blocking pool. A call
//! whose future is dropped still completes (or fails) as a whole: a write
//! is never half-applied.
//!
//! The file is locked while open: a second process (or a second store in
//! this one) opening the same data directory is refused with
//! [`StoreError::Backend`].
//!
//! [redb]: https://docs.rs/redb

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redb::{
    Database, DatabaseError, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{Appended, ChatFilter, ChatRecord, ChatStatus, ChatStore, StoreError};

mod app_data;
mod group_commit;
use crate::event::{Envelope, Event};
use group_commit::Committer;

/// The database file's name inside the data directory.
pub(crate) const FILE_NAME: &str = "mozaiks.redb";

const CHATS: TableDefinition<'_, &str, &str> = TableDefinition::new("chats");
const EVENTS: TableDefinition<'_, (&str, u64), &str> = TableDefinition::new("events");
const CONTEXT: TableDefinition<'_, (&str, &str), &str> = TableDefinition::new("context");

/// A [`ChatStore`] in one redb file. Cheap to clone: clones share the
/// open database.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    committer: Arc<Committer>,
}

struct Inner {
    db: Database,
    path: PathBuf,
    /// Makes the next group commit fail before it commits (tests of the
    /// failure path).
    #[cfg(test)]
    fail_next_commit: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens `data_dir/mozaiks.redb`, creating the directory and the file
    /// if needed. Blocks while redb opens the file (and, after a crash,
    /// repairs it): call it at startup, not on a busy runtime.
    ///
    /// Fails with [`StoreError::Backend`] when another process has the
    /// file open, or when it cannot be created or read.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Backend(format!(
                "cannot create the data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen => StoreError::Backend(format!(
                "{} is locked: another mozaiks process is using the data directory {}; \
                 stop it or choose another data directory",
                path.display(),
                data_dir.display()
            )),
            other => StoreError::Backend(format!("cannot open {}: {other}", path.display())),
        })?;
        let inner = Inner {
            db,
            path,
            #[cfg(test)]
            fail_next_commit: std::sync::atomic::AtomicBool::new(false),
        };
        inner.create_tables()?;
        let inner = Arc::new(inner);
        let committer = Arc::new(Committer::start(Arc::clone(&inner))?);
        Ok(Self { inner, committer })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `work` on the blocking pool, since redb blocks.
    async fn run<T, F>(&self, op: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| {
                self.inner
                    .backend(op, format!("the blocking task failed: {e}"))
            })?
    }
}

impl Inner {
    /// A backend error naming the operation and the file.
    fn backend(&self, op: &str, err: impl fmt::Display) -> StoreError {
        StoreError::Backend(format!("{op} in {}: {err}", self.path.display()))
    }

    /// Read transactions open tables rather than create them, so every
    /// table must exist before the first read.
    fn create_tables(&self) -> Result<(), StoreError> {
        let op = "creating the tables";
        self.write(op, |txn| {
            txn.open_table(CHATS).map_err(|e| self.backend(op, e))?;
            txn.open_table(EVENTS).map_err(|e| self.backend(op, e))?;
            txn.open_table(CONTEXT).map_err(|e| self.backend(op, e))?;
            Ok(())
        })
    }

    /// Runs `work` in one write transaction and commits it, durably, if
    /// `work` succeeds; aborts it otherwise.
    fn write<T>(
        &self,
        op: &str,
        work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.backend(op, e))?;
        match work(&txn) {
            Ok(value) => {
                txn.commit().map_err(|e| self.backend(op, e))?;
                Ok(value)
            }
            Err(err) => {
                // The caller's error says more than a failed abort would.
                let _ = txn.abort();
                Err(err)
            }
        }
    }

    fn create_chat(&self, chat: &ChatRecord) -> Result<(), StoreError> {
        let op = "creating a chat";
        let json = self.encode(op, chat)?;
        self.write(op, |txn| {
            let mut chats = txn.open_table(CHATS).map_err(|e| self.backend(op, e))?;
            let taken = chats
                .get(chat.chat_id.as_str())
                .map_err(|e| self.backend(op, e))?
                .is_some();
            if taken {
                return Err(StoreError::ChatExists(chat.chat_id.clone()));
            }
            chats
                .insert(chat.chat_id.as_str(), json.as_str())
                .map_err(|e| self.backend(op, e))?;
            Ok(())
        })
    }

    fn chat(&self, chat_id: &str) -> Result<Option<ChatRecord>, StoreError> {
        let op = "reading a chat";
        let txn = self.db.begin_read().map_err(|e| self.backend(op, e))?;
        let chats = txn.open_table(CHATS).map_err(|e| self.backend(op, e))?;
        let guard = chats.get(chat_id).map_err(|e| self.backend(op, e))?;
        guard
            .map(|json| decode(json.value(), chat_id, record))
            .transpose()
    }

    fn chats(&self, filter: &ChatFilter) -> Result<Vec<ChatRecord>, StoreError> {
        let op = "listing chats";
        let txn = self.db.begin_read().map_err(|e| self.backend(op, e))?;
        let table = txn.open_table(CHATS).map_err(|e| self.backend(op, e))?;
        let mut chats = Vec::new();
        for entry in table.iter().map_err(|e| self.backend(op, e))? {
            let (key, json) = entry.map_err(|e| self.backend(op, e))?;
            let chat: ChatRecord = decode(json.value(), key.value(), record)?;
            if filter.matches(&chat) {
                chats.push(chat);
            }
        }
        chats.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.chat_id.cmp(&b.chat_id))
        });
        Ok(chats)
    }

    fn delete_ended_before(&self, before: u64) -> Result<Vec<String>, StoreError> {
        let op = "deleting ended chats";
        self.write(op, |txn| {
            let mut chats = txn.open_table(CHATS).map_err(|e| self.backend(op, e))?;
            let mut events = txn.open_table(EVENTS).map_err(|e| self.backend(op, e))?;
            let mut context = txn.open_table(CONTEXT).map_err(|e| self.backend(op, e))?;
            let mut doomed = Vec::new();
            for entry in chats.iter().map_err(|e| self.backend(op, e))? {
                let (key, json) = entry.map_err(|e| self.backend(op, e))?;
                let chat: ChatRecord = decode(json.value(), key.value(), record)?;
                if chat.status != ChatStatus::InProgress && chat.updated_at < before {
                    doomed.push(chat.chat_id);
                }
            }
            for chat_id in &doomed {
                chats
                    .remove(chat_id.as_str())
                    .map_err(|e| self.backend(op, e))?;
                events
                    .extract_from_if(
                        (chat_id.as_str(), 0)..=(chat_id.as_str(), u64::MAX),
                        |_, _| true,
                    )
                    .map_err(|e| self.backend(op, e))?
                    .for_each(drop);
                let keys: Vec<String> = context
                    .range((chat_id.as_str(), "")..)
                    .map_err(|e| self.backend(op, e))?
                    .map_while(|entry| {
                        let (key, _) = entry.ok()?;
                        let (owner, name) = key.value();
                        (owner == chat_id.as_str()).then(|| name.to_owned())
                    })
                    .collect();
                for key in keys {
                    context
                        .remove((chat_id.as_str(), key.as_str()))
                        .map_err(|e| self.backend(op, e))?;
                }
            }
            Ok(doomed)
        })
    }

    fn set_status(
        &self,
        chat_id: &str,
        status: ChatStatus,
        ended_reason: Option<String>,
        now: u64,
    ) -> Result<(), StoreError> {
        let op = "setting a chat's status";
        self.write(op, |txn| {
            let mut chats = txn.open_table(CHATS).map_err(|e| self.backend(op, e))?;
            let mut chat = self.load_chat(&chats, op, chat_id)?;
            chat.status = status;
            chat.ended_reason = ended_reason;
            chat.updated_at = chat.updated_at.max(now);
            let json = self.encode(op, &chat)?;
            chats
                .insert(chat_id, json.as_str())
                .map_err(|e| self.backend(op, e))?;
            Ok(())
        })
    }

    fn events(
        &self,
        chat_id: &str,
        after_seq: u64,
        limit: Option<usize>,
    ) -> Result<Vec<Envelope>, StoreError> {
        let op = "reading events";
        let txn = self.db.begin_read().map_err(|e| self.backend(op, e))?;
        let chats = txn.open_table(CHATS).map_err(|e| self.backend(op, e))?;
        self.require_chat(&chats, op, chat_id)?;
        let Some(first) = after_seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        let table = txn.open_table(EVENTS).map_err(|e| self.backend(op, e))?;
        let range = table
            .range((chat_id, first)..=(chat_id, u64::MAX))
            .map_err(|e| self.backend(op, e))?;
        let mut events = Vec::new();
        for entry in range.take(limit.unwrap_or(usize::MAX)) {
            let (key, json) = entry.map_err(|e| self.backend(op, e))?;
            let (_, seq) = key.value();
            let envelope = super::format::decode_event(json.value()).map_err(|source| {
                StoreError::Corrupt {
                    what: format!("event {seq}"),
                    chat_id: chat_id.to_owned(),
                    source,
                }
            })?;
            events.push(envelope);
        }
        Ok(events)
    }

    fn context(&self, chat_id: &str) -> Result<Map<String, Value>, StoreError> {
        let op = "reading context variables";
        let txn = self.db.begin_read().map_err(|e| self.backend(op, e))?;
        let chats = txn.open_table(CHATS).map_err(|e| self.backend(op, e))?;
        self.require_chat(&chats, op, chat_id)?;
        let table = txn.open_table(CONTEXT).map_err(|e| self.backend(op, e))?;
        // `&str` has no greatest value to close the range with, so the scan
        // stops at the first key of another chat instead.
        let range = table
            .range((chat_id, "")..)
            .map_err(|e| self.backend(op, e))?;
        let mut context = Map::new();
        for entry in range {
            let (key, json) = entry.map_err(|e| self.backend(op, e))?;
            let (owner, name) = key.value();
            if owner != chat_id {
                break;
            }
            let value = decode(json.value(), chat_id, || {
                format!("context variable `{name}`")
            })?;
            context.insert(name.to_owned(), value);
        }
        Ok(context)
    }

    fn load_chat(
        &self,
        chats: &impl ReadableTable<&'static str, &'static str>,
        op: &str,
        chat_id: &str,
    ) -> Result<ChatRecord, StoreError> {
        let guard = chats.get(chat_id).map_err(|e| self.backend(op, e))?;
        let json = guard.ok_or_else(|| StoreError::ChatNotFound(chat_id.to_owned()))?;
        decode(json.value(), chat_id, record)
    }

    fn require_chat(
        &self,
        chats: &impl ReadableTable<&'static str, &'static str>,
        op: &str,
        chat_id: &str,
    ) -> Result<(), StoreError> {
        match chats.get(chat_id).map_err(|e| self.backend(op, e))? {
            Some(_) => Ok(()),
            None => Err(StoreError::ChatNotFound(chat_id.to_owned())),
        }
    }

    fn encode(&self, op: &str, value: &impl serde::Serialize) -> Result<String, StoreError> {
        serde_json::to_string(value).map_err(|e| self.backend(op, format!("encoding: {e}")))
    }
}

/// Decodes a stored record; `what` names it in the error.
fn decode<T: DeserializeOwned>(
    json: &str,
    chat_id: &str,
    what: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::Corrupt {
        what: what(),
        chat_id: chat_id.to_owned(),
        source,
    })
}

fn record() -> String {
    "record".to_owned()
}

/// The type name [`StoreError::Ephemeral`] reports for an event that is
/// not persisted.
fn ephemeral_type(event: &Event) -> &'static str {
    match event {
        Event::TextDelta { .. } => "text_delta",
        Event::LlmRetry { .. } => "llm_retry",
        _ => "unknown",
    }
}

/// Now, in ms since the Unix epoch; 0 if the clock is before it.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[async_trait]
impl ChatStore for EmbeddedStore {
    fn app_data(&self) -> Option<Arc<dyn super::data::AppDataStore>> {
        Some(self.app_documents())
    }

    async fn create_chat(&self, chat: &ChatRecord) -> Result<(), StoreError> {
        let chat = chat.clone();
        self.run("creating a chat", move |db| db.create_chat(&chat))
            .await
    }

    async fn chat(&self, chat_id: &str) -> Result<Option<ChatRecord>, StoreError> {
        let chat_id = chat_id.to_owned();
        self.run("reading a chat", move |db| db.chat(&chat_id))
            .await
    }

    async fn delete_ended_before(&self, before: u64) -> Result<Vec<String>, StoreError> {
        self.run("deleting ended chats", move |db| {
            db.delete_ended_before(before)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // The file is open and locked for this process: always reachable.
        Ok(())
    }

    async fn chats(&self, filter: &ChatFilter) -> Result<Vec<ChatRecord>, StoreError> {
        let filter = filter.clone();
        self.run("listing chats", move |db| db.chats(&filter)).await
    }

    /// The trait passes no time, so `updated_at` moves to the system
    /// clock's now (never backwards).
    async fn set_status(
        &self,
        chat_id: &str,
        status: ChatStatus,
        ended_reason: Option<String>,
    ) -> Result<(), StoreError> {
        let chat_id = chat_id.to_owned();
        let now = now_ms();
        self.run("setting a chat's status", move |db| {
            db.set_status(&chat_id, status, ended_reason, now)
        })
        .await
    }

    async fn append(&self, chat_id: &str, ts: u64, event: Event) -> Result<Envelope, StoreError> {
        // Checked before the write transaction: it can never succeed.
        if !event.is_persisted() {
            return Err(StoreError::Ephemeral(ephemeral_type(&event)));
        }
        self.committer.append(chat_id.to_owned(), ts, event).await
    }

    async fn append_many(&self, chat_id: &str, events: Vec<(u64, Event)>) -> Appended {
        // An ephemeral event can never be stored: what comes before it is
        // written, it and what follows are not.
        let ephemeral = events.iter().position(|(_, event)| !event.is_persisted());
        let refused = ephemeral.map(|at| StoreError::Ephemeral(ephemeral_type(&events[at].1)));
        let mut events = events;
        if let Some(at) = ephemeral {
            events.truncate(at);
        }
        if events.is_empty() {
            return Appended::prefix([], refused);
        }
        match self.committer.append_many(chat_id.to_owned(), events).await {
            Ok(answers) => Appended::prefix(answers, refused),
            Err(error) => Appended::prefix([Err(error)], None),
        }
    }

    async fn events(
        &self,
        chat_id: &str,
        after_seq: u64,
        limit: Option<usize>,
    ) -> Result<Vec<Envelope>, StoreError> {
        let chat_id = chat_id.to_owned();
        self.run("reading events", move |db| {
            db.events(&chat_id, after_seq, limit)
        })
        .await
    }

    async fn context(&self, chat_id: &str) -> Result<Map<String, Value>, StoreError> {
        let chat_id = chat_id.to_owned();
        self.run("reading context variables", move |db| db.context(&chat_id))
            .await
    }
}
