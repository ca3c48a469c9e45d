//! The MongoDB store: chats in a MongoDB database (or anything that speaks
//! its wire protocol), for servers that run as several processes or want
//! the database's replication and backups.
//!
//! # Collections
//!
//! - `chat_sessions`: one document per chat, `_id` = `chat_id`, with the
//!   [`ChatRecord`] fields (`status` as `"InProgress"`, `"Completed"` or
//!   `"Failed"`; every number as a 64-bit integer) plus `applied_seq`, the
//!   last event folded into the record and the context (see below), and
//!   `insert_id`, a UUID per [`create_chat`](ChatStore::create_chat) call
//!   that tells a resent insert from another chat with the same id.
//! - `chat_events`: one document per event: `_id` (a UUID chosen once per
//!   [`append`](ChatStore::append) call), `chat_id`, `seq`, `ts`, `type`,
//!   and `json`, the [`Envelope`] as JSON text in its stored form (`super::format`, with a `format_version`). The text is what is read
//!   back, so every JSON value (large integers, floats, `null`) comes back
//!   exactly as appended; the other fields are there to be queried.
//! - `context_store`: one document per chat and variable: `chat_id`, `key`,
//!   `json` (the value as JSON text, so `null` stays a value; `null` in
//!   the field itself marks a removed variable) and `seq`, the event that
//!   last wrote it. A removal leaves that marker rather than deleting the
//!   document, so a late writer can never bring back an older value.
//! - `cluster_servers`, `chat_leases` and `chat_inbox`: what several
//!   servers on one database share ([`cluster`]: the server registry, one
//!   lease per chat with its fencing token, the queued inputs).
//!
//! An event appended under a lease (below) also has `lease`, the token,
//! and its chat's document `lease`, the largest token folded in. Neither
//! field exists in a database only ever used by a single server.
//!
//! # Indexes
//!
//! Created by [`MongoStore::ensure_indexes`] (called by
//! [`prepare`](ChatStore::prepare), and before the first write in any
//! case; creating an existing index is a no-op): unique
//! `chat_sessions.chat_id`, `chat_sessions.{app_id, user_id, updated_at}`,
//! unique `chat_events.{chat_id, seq}` and unique
//! `context_store.{chat_id, key}`. The cluster's indexes
//! (`chat_leases.expires_at`, `chat_leases.owner`,
//! `chat_inbox.{chat_id, sent_at}`) are created by
//! [`prepare_cluster`](super::cluster::ClusterStore::prepare_cluster),
//! which only a server in cluster mode calls.
//!
//! # The commit point and the catch-up rule
//!
//! No transactions (a standalone `mongod` has none). Appending inserts the
//! event with `seq` = the chat's `applied_seq` + 1; the unique
//! `{chat_id, seq}` index makes that insert **the commit point**: once it
//! succeeds the event is stored, and only one writer gets each number. A
//! writer that loses the race (duplicate key, and no event with its `_id`)
//! catches up and tries the next number; a writer whose earlier attempt did
//! land (duplicate key on its own `_id`, after a retry) returns that event.
//! Nothing is lost, nothing is doubled, and the log has no gaps.
//!
//! The views (`last_seq`, `updated_at`, token totals, context variables)
//! are then folded in, one event at a time and in order: the context write
//! only replaces a document with a lower `seq`, and the chat update is
//! conditioned on `applied_seq` = `seq` − 1 and sets it to `seq` in the same
//! single-document write as the token `$inc`, so each event is counted
//! exactly once however many writers fold it. **Catch-up rule**: `chat`,
//! `context`, `events` and `append` first fold every event with
//! `seq > applied_seq`, so a crash (or a failed write) between the insert
//! and the fold is repaired by the next call. [`ChatStore::chats`] lists the
//! records as last folded.
//!
//! Appends are grouped ([`group_commit`]): the events of all chats that
//! arrive while a bulk write is in flight are inserted by the next one, an
//! ordered `insert_many`; what it does not confirm goes the single way
//! above, with the same `_id`.
//!
//! # Fencing
//!
//! Once this handle acquired a chat's lease
//! ([`ClusterStore::acquire`](super::cluster::ClusterStore::acquire)), the
//! token is kept in the handle ([`fence`], shared by its clones and the
//! batcher's) and every event it appends to the chat carries it (`lease`),
//! folded into the chat's `lease` with `$max` in the same update as
//! `applied_seq`. After catching up, and before taking a number, an append
//! is refused with [`StoreError::LeaseLost`] when the chat's `lease` is
//! larger than the held token, or when the handle joined a cluster
//! ([`ClusterStore::join`](super::cluster::ClusterStore::join)) and holds
//! no token for the chat. The insert at a free `{chat_id, seq}` stays the
//! commit point, which is what makes the check sound: an append that
//! inserts at `seq` has caught up (and checked) every event below `seq`,
//! or stored them itself in the same bulk write. If the old owner caught
//! up to `F − 1` and the new owner's `run_moved` took `F` first, the old
//! owner's insert at `F` fails (duplicate key), its next try catches up
//! `F`, folds the larger token and is refused; if the old owner's insert
//! took `F` first, its event simply precedes `run_moved`. Either way no
//! event of the old owner follows the new owner's `run_moved`. In a bulk
//! write, an insert that loses its number to `run_moved` stops the ordered
//! write, and what follows goes the single way, and is refused there. A
//! takeover also raises the chat's `lease` to the new token as it acquires
//! (before `run_moved`), so an old owner still appending is refused at its
//! next catch-up rather than racing the new owner for every number. A
//! handle that neither joined nor holds a token appends as above, and
//! writes no `lease` field.
//!
//! Writes use the configured write concern (`majority` by default). Only
//! simple operations are used (`insert_one`, `insert_many`, `find`,
//! `update_one` with `$set`/`$inc`/`$max`, `delete_*`; `find_one_and_update`
//! for leases): no change streams, no aggregation, no arrays growing inside
//! documents.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::Error as MongoError;
use mongodb::options::{ClientOptions, DatabaseOptions, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::{ChatFilter, ChatRecord, ChatStatus, ChatStore, StoreError};
use crate::event::{Envelope, Event};

mod app_data;
mod cluster;
#[cfg(test)]
mod cluster_tests;
mod config;
mod documents;
mod fence;
#[cfg(test)]
mod golden;
mod group_commit;

pub use config::MongoConfig;
use documents::*;

const CHATS: &str = "chat_sessions";
const EVENTS: &str = "chat_events";
const CONTEXT: &str = "context_store";
const SERVERS: &str = "cluster_servers";
const LEASES: &str = "chat_leases";
const INBOX: &str = "chat_inbox";

/// MongoDB's code for a unique-index violation.
const DUPLICATE_KEY: i32 = 11000;

/// How many sequence numbers one append tries. Each failed try means
/// another writer took that number, so this only bounds a livelock; it is
/// far above the number of writers one chat ever has (one run, plus the
/// odd concurrent request).
const MAX_APPEND_ATTEMPTS: u32 = 256;

/// How often one insert is sent when the network fails mid-write (the
/// outcome is then unknown; sending it again with the same `_id` is safe).
const MAX_INSERT_SENDS: u32 = 3;

/// Events folded per query during catch-up: bounds the memory one
/// catch-up holds after a long outage of the fold.
const CATCH_UP_BATCH: i64 = 256;

/// A [`ChatStore`] in a MongoDB database. Cheap to clone: clones share the
/// client and its connection pool.
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    chats: Collection<Document>,
    events: Collection<Document>,
    context: Collection<Document>,
    /// `cluster_servers`, `chat_leases` and `chat_inbox` ([`cluster`]).
    servers: Collection<Document>,
    leases: Collection<Document>,
    inbox: Collection<Document>,
    /// This handle's cluster membership and lease tokens, shared by its
    /// clones ([`fence`]).
    fence: Arc<fence::Fence>,
    /// The redacted URI, for messages.
    target: Arc<str>,
    indexes: Arc<OnceCell<()>>,
    /// Groups concurrent appends into one bulk insert ([`group_commit`]);
    /// `None` in the batcher's own handle.
    batcher: Option<Arc<group_commit::Batcher>>,
}

impl fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoStore")
            .field("uri", &self.target)
            .field("database", &self.db.name())
            .finish_non_exhaustive()
    }
}

/// A chat as stored: the record and the last event folded into it.
struct Stored {
    record: ChatRecord,
    applied_seq: u64,
    /// The largest lease token of the events folded in (0 when none
    /// carried one).
    lease: u64,
}

/// An event as read back for folding: the envelope and the lease token
/// it was appended under, if any.
struct Logged {
    envelope: Envelope,
    lease: Option<u64>,
}

/// How an idempotent insert ended.
enum Inserted {
    /// This call stored the document.
    New,
    /// This very document was there already: an earlier send of the same
    /// insert landed.
    AlreadyThere(Document),
    /// Another document holds the unique key.
    Taken,
}

impl MongoStore {
    /// Builds the client for `config` without waiting for a server: one
    /// that does not answer yet shows in [`ping`](ChatStore::ping), not
    /// here. Only a `mongodb+srv://` URI is resolved here, and fails (with
    /// the `dns` classification in the message) when it does not resolve.
    pub async fn connect(config: &MongoConfig) -> Result<Self, StoreError> {
        let target = config.redacted_uri();
        let fail = |op: &str, error: &MongoError| backend(op, &target, error);
        let mut options = ClientOptions::parse(&config.uri)
            .await
            .map_err(|e| fail("reading MONGO_URI", &e))?;
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(config.server_selection_timeout);
        }
        if options.app_name.is_none() {
            options.app_name = Some("mozaiks".to_owned());
        }
        let client = Client::with_options(options).map_err(|e| fail("creating the client", &e))?;
        let db = client.database_with_options(
            &config.database,
            DatabaseOptions::builder()
                .write_concern(config.write_concern.to_driver())
                .build(),
        );
        Ok(Self {
            chats: db.collection(CHATS),
            events: db.collection(EVENTS),
            context: db.collection(CONTEXT),
            servers: db.collection(SERVERS),
            leases: db.collection(LEASES),
            inbox: db.collection(INBOX),
            fence: Arc::new(fence::Fence::default()),
            db,
            target: target.into(),
            indexes: Arc::new(OnceCell::new()),
            batcher: None,
        }
        .with_batcher())
    }

    /// The database's name.
    pub fn database(&self) -> &str {
        self.db.name()
    }

    /// Creates the indexes (see the module docs) unless this store did so
    /// already. Idempotent on the server too.
    pub async fn ensure_indexes(&self) -> Result<(), StoreError> {
        self.indexes
            .get_or_try_init(|| self.create_indexes())
            .await
            .map(|_| ())
    }

    async fn create_indexes(&self) -> Result<(), StoreError> {
        let op = "creating indexes";
        let index = |keys: Document, unique: bool| {
            IndexModel::builder()
                .keys(keys)
                .options(unique.then(|| IndexOptions::builder().unique(true).build()))
                .build()
        };
        self.chats
            .create_indexes([
                index(doc! { "chat_id": 1 }, true),
                index(doc! { "app_id": 1, "user_id": 1, "updated_at": -1 }, false),
            ])
            .await
            .map_err(|e| self.backend(op, &e))?;
        self.events
            .create_index(index(doc! { "chat_id": 1, "seq": 1 }, true))
            .await
            .map_err(|e| self.backend(op, &e))?;
        self.context
            .create_index(index(doc! { "chat_id": 1, "key": 1 }, true))
            .await
            .map_err(|e| self.backend(op, &e))?;
        Ok(())
    }

    fn backend(&self, op: &str, error: &MongoError) -> StoreError {
        backend(op, &self.target, error)
    }

    /// Inserts `document`, sending it again when the network fails
    /// mid-write, and tells a duplicate of this very insert (a document
    /// matching `own`, which only this call's document matches) from
    /// another document holding a unique key.
    async fn insert_once(
        &self,
        op: &str,
        collection: &Collection<Document>,
        document: &Document,
        own: Document,
    ) -> Result<Inserted, StoreError> {
        let mut sends = 0;
        loop {
            sends += 1;
            match collection.insert_one(document.clone()).await {
                Ok(_) => return Ok(Inserted::New),
                Err(error) if is_duplicate_key(&error) => {
                    let existing = collection
                        .find_one(own)
                        .await
                        .map_err(|e| self.backend(op, &e))?;
                    return Ok(existing.map_or(Inserted::Taken, Inserted::AlreadyThere));
                }
                Err(error) if outcome_unknown(&error) && sends < MAX_INSERT_SENDS => {
                    tracing::warn!(%error, op, "MongoDB write interrupted; sending it again");
                }
                Err(error) => return Err(self.backend(op, &error)),
            }
        }
    }

    async fn load(&self, op: &str, chat_id: &str) -> Result<Option<Stored>, StoreError> {
        self.chats
            .find_one(doc! { "_id": chat_id })
            .await
            .map_err(|e| self.backend(op, &e))?
            .map(|document| decode_chat(&document))
            .transpose()
    }

    /// Folds every event after the chat's `applied_seq` (the catch-up
    /// rule), then returns the chat as stored.
    async fn catch_up(&self, op: &str, chat_id: &str) -> Result<Stored, StoreError> {
        loop {
            let stored = self
                .load(op, chat_id)
                .await?
                .ok_or_else(|| StoreError::ChatNotFound(chat_id.to_owned()))?;
            let pending = self
                .read_log(op, chat_id, stored.applied_seq, Some(CATCH_UP_BATCH))
                .await?;
            if pending.is_empty() {
                return Ok(stored);
            }
            let mut applied = stored.applied_seq;
            for Logged { envelope, lease } in &pending {
                let seq = envelope.seq.unwrap_or_default();
                if Some(seq) != applied.checked_add(1) {
                    return Err(StoreError::Backend(format!(
                        "{op}: chat `{chat_id}`'s log jumps from event {applied} to {seq} \
                         in MongoDB database `{}`: an event was deleted by hand",
                        self.db.name()
                    )));
                }
                if !self.fold(op, applied, envelope, *lease).await? {
                    // Another caller folded it: start again from what it did.
                    break;
                }
                applied = seq;
            }
        }
    }

    /// Folds one event into the views, if the chat's `applied_seq` is
    /// still `applied` (its `seq` − 1): `lease`, the token the event was
    /// appended under, goes into the chat's `lease` with `$max`. Returns
    /// whether this call advanced `applied_seq`; the context write is
    /// idempotent either way.
    async fn fold(
        &self,
        op: &str,
        applied: u64,
        envelope: &Envelope,
        lease: Option<u64>,
    ) -> Result<bool, StoreError> {
        let chat_id = envelope.chat_id.as_str();
        let seq = to_i64(op, "seq", envelope.seq.unwrap_or_default())?;
        if let Event::ContextChanged { key, value, .. } = &envelope.event {
            let json = match value {
                Some(value) => Bson::String(encode(op, value)?),
                None => Bson::Null,
            };
            let written = self
                .context
                .update_one(
                    doc! { "chat_id": chat_id, "key": key, "seq": { "$lt": seq } },
                    doc! { "$set": { "json": json, "seq": seq } },
                )
                .upsert(true)
                .await;
            match written {
                Ok(_) => {}
                // The upsert collided with the variable's document: it holds
                // this event's write or a later one already.
                Err(error) if is_duplicate_key(&error) => {}
                Err(error) => return Err(self.backend(op, &error)),
            }
        }
        let mut max = doc! { "last_seq": seq, "updated_at": to_i64(op, "ts", envelope.ts)? };
        if let Some(lease) = lease {
            max.insert("lease", to_i64(op, "lease", lease)?);
        }
        let mut update = doc! { "$set": { "applied_seq": seq }, "$max": max };
        if let Event::Usage {
            prompt_tokens,
            completion_tokens,
            ..
        } = &envelope.event
        {
            update.insert(
                "$inc",
                doc! {
                    "prompt_tokens": saturating_i64(*prompt_tokens),
                    "completion_tokens": saturating_i64(*completion_tokens),
                },
            );
        }
        let result = self
            .chats
            .update_one(
                doc! { "_id": chat_id, "applied_seq": to_i64(op, "seq", applied)? },
                update,
            )
            .await
            .map_err(|e| self.backend(op, &e))?;
        Ok(result.matched_count == 1)
    }

    /// Appends one event with the insert's `_id` `id`, alone: catches up,
    /// takes the next number, inserts (the commit point) and folds. One id
    /// for every try, so a try that landed (in this call or in a bulk write
    /// before it) is recognised.
    async fn append_one(
        &self,
        chat_id: &str,
        ts: u64,
        event: Event,
        id: String,
    ) -> Result<Envelope, StoreError> {
        let op = "appending an event";
        self.ensure_indexes().await?;
        for _ in 0..MAX_APPEND_ATTEMPTS {
            let stored = self.catch_up(op, chat_id).await?;
            let lease = self.fenced(op, chat_id, &stored).await?;
            let seq = stored.applied_seq.checked_add(1).ok_or_else(|| {
                StoreError::Backend(format!("{op}: chat `{chat_id}`'s log is full"))
            })?;
            let envelope = Envelope {
                seq: Some(seq),
                chat_id: chat_id.to_owned(),
                ts,
                event: event.clone(),
            };
            let document = leased_event_document(op, &id, &envelope, lease)?;
            let own = doc! { "_id": &id };
            match self.insert_once(op, &self.events, &document, own).await? {
                Inserted::New => {
                    // Nobody else can fold past `seq` − 1 without this
                    // event, so a `false` means another caller folded it.
                    if let Err(error) = self.fold(op, stored.applied_seq, &envelope, lease).await {
                        tracing::warn!(%error, chat_id, seq, "event stored; its fold waits for the next call");
                    }
                    return Ok(envelope);
                }
                Inserted::AlreadyThere(existing) => {
                    let envelope = decode_event(&existing, chat_id)?;
                    if let Err(error) = self.catch_up(op, chat_id).await {
                        tracing::warn!(%error, chat_id, "event stored; its fold waits for the next call");
                    }
                    return Ok(envelope);
                }
                Inserted::Taken => {}
            }
        }
        Err(StoreError::Backend(format!(
            "{op}: gave up on chat `{chat_id}` after {MAX_APPEND_ATTEMPTS} tries: \
             other writers took every sequence number tried"
        )))
    }

    /// Checks an append to the chat, caught up as `stored`, against this
    /// handle's fence (module docs, "Fencing"): refused with
    /// [`StoreError::LeaseLost`] when the log holds a larger token than the
    /// one held, or when the handle joined a cluster and holds none.
    /// Returns the token the event carries, if any.
    async fn fenced(
        &self,
        op: &str,
        chat_id: &str,
        stored: &Stored,
    ) -> Result<Option<u64>, StoreError> {
        match self.fence.guard(chat_id) {
            fence::Guard::Open => Ok(None),
            fence::Guard::Token(token) if stored.lease <= token => Ok(Some(token)),
            fence::Guard::Token(_) | fence::Guard::NotHeld => {
                Err(self.lease_lost(op, chat_id).await)
            }
        }
    }

    /// The refusal of an append to a chat this handle does not hold,
    /// naming the chat's owner when its lease can be read.
    async fn lease_lost(&self, op: &str, chat_id: &str) -> StoreError {
        let owner = match self.leases.find_one(doc! { "_id": chat_id }).await {
            Ok(lease) => lease.and_then(|l| l.get_str("owner").ok().map(str::to_owned)),
            Err(error) => {
                tracing::debug!(%error, op, chat_id, "reading the lease of a fenced chat");
                None
            }
        };
        StoreError::LeaseLost {
            chat_id: chat_id.to_owned(),
            owner,
        }
    }

    /// The chat's events after `after_seq`, without catching up.
    async fn read_events(
        &self,
        op: &str,
        chat_id: &str,
        after_seq: u64,
        limit: Option<i64>,
    ) -> Result<Vec<Envelope>, StoreError> {
        let log = self.read_log(op, chat_id, after_seq, limit).await?;
        Ok(log.into_iter().map(|logged| logged.envelope).collect())
    }

    /// The chat's events after `after_seq` with their lease tokens,
    /// without catching up.
    async fn read_log(
        &self,
        op: &str,
        chat_id: &str,
        after_seq: u64,
        limit: Option<i64>,
    ) -> Result<Vec<Logged>, StoreError> {
        let mut find = self
            .events
            .find(doc! { "chat_id": chat_id, "seq": { "$gt": saturating_i64(after_seq) } })
            .sort(doc! { "seq": 1 });
        if let Some(limit) = limit {
            find = find.limit(limit);
        }
        let documents: Vec<Document> = find
            .await
            .map_err(|e| self.backend(op, &e))?
            .try_collect()
            .await
            .map_err(|e| self.backend(op, &e))?;
        documents
            .iter()
            .map(|document| {
                Ok(Logged {
                    envelope: decode_event(document, chat_id)?,
                    lease: event_lease(document, chat_id)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl ChatStore for MongoStore {
    fn app_data(&self) -> Option<Arc<dyn super::data::AppDataStore>> {
        Some(self.app_documents())
    }

    fn cluster(&self) -> Option<Arc<dyn super::cluster::ClusterStore>> {
        Some(Arc::new(self.clone()))
    }

    async fn create_chat(&self, chat: &ChatRecord) -> Result<(), StoreError> {
        let op = "creating a chat";
        self.ensure_indexes().await?;
        // Tells this call's own document, should a resend find it, from
        // another chat with the same id.
        let insert_id = uuid::Uuid::new_v4().to_string();
        let mut document = chat_document(op, chat)?;
        document.insert("insert_id", &insert_id);
        let own = doc! { "_id": &chat.chat_id, "insert_id": &insert_id };
        match self.insert_once(op, &self.chats, &document, own).await? {
            Inserted::New | Inserted::AlreadyThere(_) => Ok(()),
            Inserted::Taken => Err(StoreError::ChatExists(chat.chat_id.clone())),
        }
    }

    async fn chat(&self, chat_id: &str) -> Result<Option<ChatRecord>, StoreError> {
        match self.catch_up("reading a chat", chat_id).await {
            Ok(stored) => Ok(Some(stored.record)),
            Err(StoreError::ChatNotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn chats(&self, filter: &ChatFilter) -> Result<Vec<ChatRecord>, StoreError> {
        let op = "listing chats";
        let mut query = Document::new();
        if let Some(app_id) = &filter.app_id {
            query.insert("app_id", app_id);
        }
        if let Some(user_id) = &filter.user_id {
            query.insert("user_id", user_id);
        }
        if let Some(status) = &filter.status {
            query.insert("status", status_name(status));
        }
        let documents: Vec<Document> = self
            .chats
            .find(query)
            .sort(doc! { "created_at": -1, "chat_id": 1 })
            .await
            .map_err(|e| self.backend(op, &e))?
            .try_collect()
            .await
            .map_err(|e| self.backend(op, &e))?;
        documents
            .iter()
            .map(|document| decode_chat(document).map(|stored| stored.record))
            .collect()
    }

    /// The trait passes no time, so `updated_at` moves to the system
    /// clock's now (never backwards).
    async fn set_status(
        &self,
        chat_id: &str,
        status: ChatStatus,
        ended_reason: Option<String>,
    ) -> Result<(), StoreError> {
        let op = "setting a chat's status";
        // Under a lease, fenced like an append ("Fencing"): refused once a
        // server that took the chat over raised its `lease`. (`$and`: some
        // wire-protocol servers ignore the other fields of an update filter
        // beside a top-level `$or`.)
        let filter = match self.fence.guard(chat_id) {
            fence::Guard::Token(token) => doc! { "$and": [
                { "_id": chat_id },
                { "$or": [
                    { "lease": { "$exists": false } },
                    { "lease": { "$lte": to_i64(op, "lease", token)? } },
                ] },
            ] },
            fence::Guard::Open | fence::Guard::NotHeld => doc! { "_id": chat_id },
        };
        let result = self
            .chats
            .update_one(
                filter,
                doc! {
                    "$set": {
                        "status": status_name(&status),
                        "ended_reason": ended_reason.map_or(Bson::Null, Bson::String),
                    },
                    "$max": { "updated_at": saturating_i64(now_ms()) },
                },
            )
            .await
            .map_err(|e| self.backend(op, &e))?;
        if result.matched_count == 0 {
            if matches!(self.fence.guard(chat_id), fence::Guard::Token(_))
                && self.load(op, chat_id).await?.is_some()
            {
                return Err(self.lease_lost(op, chat_id).await);
            }
            return Err(StoreError::ChatNotFound(chat_id.to_owned()));
        }
        Ok(())
    }

    /// Durable with the configured write concern when it returns. The
    /// views are folded before it returns too; if that fold fails, the
    /// event is stored all the same (the insert is the commit point) and
    /// the next call on the chat folds it.
    async fn append(&self, chat_id: &str, ts: u64, event: Event) -> Result<Envelope, StoreError> {
        // Checked before any write: it can never succeed.
        if !event.is_persisted() {
            return Err(StoreError::Ephemeral(ephemeral_type(&event)));
        }
        match &self.batcher {
            Some(batcher) => batcher.append(chat_id.to_owned(), ts, event).await,
            None => {
                self.append_one(chat_id, ts, event, uuid::Uuid::new_v4().to_string())
                    .await
            }
        }
    }

    async fn events(
        &self,
        chat_id: &str,
        after_seq: u64,
        limit: Option<usize>,
    ) -> Result<Vec<Envelope>, StoreError> {
        let op = "reading events";
        self.catch_up(op, chat_id).await?;
        // MongoDB reads a limit of 0 as "no limit".
        if limit == Some(0) {
            return Ok(Vec::new());
        }
        let limit = limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        self.read_events(op, chat_id, after_seq, limit).await
    }

    async fn context(&self, chat_id: &str) -> Result<Map<String, Value>, StoreError> {
        let op = "reading context variables";
        self.catch_up(op, chat_id).await?;
        let documents: Vec<Document> = self
            .context
            .find(doc! { "chat_id": chat_id })
            .await
            .map_err(|e| self.backend(op, &e))?
            .try_collect()
            .await
            .map_err(|e| self.backend(op, &e))?;
        let mut context = Map::new();
        for document in documents {
            let Some(Bson::String(key)) = document.get("key") else {
                return Err(corrupt(
                    "context variable",
                    chat_id,
                    "field `key` is missing",
                ));
            };
            let json = match document.get("json") {
                Some(Bson::String(json)) => json,
                // Removed.
                None | Some(Bson::Null) => continue,
                Some(_) => {
                    return Err(corrupt(
                        format!("context variable `{key}`"),
                        chat_id,
                        "field `json` is not a string",
                    ));
                }
            };
            let value = serde_json::from_str(json).map_err(|source| StoreError::Corrupt {
                what: format!("context variable `{key}`"),
                chat_id: chat_id.to_owned(),
                source,
            })?;
            context.insert(key.clone(), value);
        }
        Ok(context)
    }

    /// Deletes each chat's record first (the record is what makes a chat
    /// exist, and deleting it is conditioned on the chat still having
    /// ended before `before`, so a chat resumed meanwhile is kept), then
    /// its events, context, queued inputs and lease. A crash or an error
    /// in between leaves documents that nothing reads (chat ids are UUIDs,
    /// never reused).
    async fn delete_ended_before(&self, before: u64) -> Result<Vec<String>, StoreError> {
        let op = "deleting ended chats";
        let mut ended = doc! { "status": { "$in": ["Completed", "Failed"] } };
        // Every stored time is below a bound past i64::MAX.
        if let Ok(before) = i64::try_from(before) {
            ended.insert("updated_at", doc! { "$lt": before });
        }
        let candidates: Vec<Document> = self
            .chats
            .find(ended.clone())
            .projection(doc! { "_id": 1 })
            .await
            .map_err(|e| self.backend(op, &e))?
            .try_collect()
            .await
            .map_err(|e| self.backend(op, &e))?;
        let mut deleted = Vec::new();
        for candidate in candidates {
            let Some(Bson::String(chat_id)) = candidate.get("_id") else {
                continue;
            };
            let mut filter = ended.clone();
            filter.insert("_id", chat_id);
            let result = self
                .chats
                .delete_one(filter)
                .await
                .map_err(|e| self.backend(op, &e))?;
            if result.deleted_count == 0 {
                continue;
            }
            for collection in [&self.events, &self.context, &self.inbox] {
                collection
                    .delete_many(doc! { "chat_id": chat_id })
                    .await
                    .map_err(|e| self.backend(op, &e))?;
            }
            self.leases
                .delete_one(doc! { "_id": chat_id })
                .await
                .map_err(|e| self.backend(op, &e))?;
            deleted.push(chat_id.clone());
        }
        Ok(deleted)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(|e| self.backend("ping", &e))
    }

    async fn prepare(&self) -> Result<(), StoreError> {
        self.ensure_indexes().await
    }
}

/// Decodes an event as it is stored in MongoDB (its JSON text and its
/// `seq`), for the stored-event fuzz target.
#[cfg(test)]
pub(crate) fn decode_stored_event(
    json: &str,
    seq: i64,
    chat_id: &str,
) -> Result<crate::event::Envelope, StoreError> {
    let document = doc! {"chat_id": chat_id, "seq": seq, "json": json};
    documents::decode_event(&document, chat_id)
}

/// The MongoDB server the tests use: `MONGO_TEST_URI` when set (any real
/// MongoDB), else one nx-27017 process (a MongoDB wire-protocol server on
/// SQLite, installed by `scripts/setup-mongo-test-server`) per test binary.
#[cfg(test)]
pub(crate) mod test_server {
    use std::time::Duration;

    use super::MongoConfig;

    /// The URI of the shared test server (see `mozaiks-test-mongo`).
    pub(crate) fn uri() -> &'static str {
        mozaiks_test_mongo::shared_uri()
    }

    /// A config for `database` on the test server. The timeout is generous:
    /// a busy 2-core machine runs many tests against one nx-27017.
    pub(crate) fn config(database: &str) -> MongoConfig {
        MongoConfig {
            database: database.to_owned(),
            server_selection_timeout: Duration::from_secs(10),
            ..MongoConfig::new(uri())
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::panic::AssertUnwindSafe;
    use std::time::Duration;

    use futures_util::FutureExt as _;
    use serde_json::json;

    use super::config::classify;
    use super::*;

    /// A store on a database of its own on the test server.
    async fn fresh_store() -> MongoStore {
        let name = format!("mozaiks_test_{}", uuid::Uuid::new_v4().simple());
        let store = MongoStore::connect(&test_server::config(&name))
            .await
            .unwrap();
        store.prepare().await.unwrap();
        store
    }

    /// Runs `test`, then drops the store's database, then fails if it
    /// failed.
    pub(super) async fn run(store: &MongoStore, test: impl Future<Output = ()>) {
        let outcome = AssertUnwindSafe(test).catch_unwind().await;
        store.db.drop().await.unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    fn chat(id: &str) -> ChatRecord {
        ChatRecord::new(
            id.to_owned(),
            "app".to_owned(),
            "alice".to_owned(),
            "travel".to_owned(),
            "1".to_owned(),
            7,
            1,
        )
    }

    fn envelope(seq: u64, event: Event) -> Envelope {
        Envelope {
            seq: Some(seq),
            chat_id: "c1".to_owned(),
            ts: 10 + seq,
            event,
        }
    }

    fn context_changed(value: Option<Value>) -> Event {
        Event::ContextChanged {
            key: "k".to_owned(),
            value,
            by: "test".to_owned(),
        }
    }

    #[tokio::test]
    async fn tells_a_resent_insert_from_a_taken_sequence_number() {
        let store = fresh_store().await;
        run(&store, async {
            store.create_chat(&chat("c1")).await.unwrap();
            let first = envelope(1, Event::UserMessage { text: "a".into() });
            let document = event_document("test", "id-a", &first).unwrap();
            let insert = |document| {
                store.insert_once("test", &store.events, document, doc! { "_id": "id-a" })
            };
            assert!(matches!(insert(&document).await.unwrap(), Inserted::New));
            // The same insert sent again, as after a lost reply.
            let Inserted::AlreadyThere(existing) = insert(&document).await.unwrap() else {
                panic!("a resent insert must find itself");
            };
            assert_eq!(decode_event(&existing, "c1").unwrap(), first);
            // Another writer's event for the same number.
            let other = envelope(1, Event::UserMessage { text: "b".into() });
            let other = event_document("test", "id-b", &other).unwrap();
            assert!(matches!(
                store
                    .insert_once("test", &store.events, &other, doc! { "_id": "id-b" })
                    .await
                    .unwrap(),
                Inserted::Taken
            ));
            // The same record, created again by another call, is refused.
            let err = store.create_chat(&chat("c1")).await.unwrap_err();
            assert!(matches!(err, StoreError::ChatExists(_)), "{err:?}");

            let next = store
                .append("c1", 50, Event::UserMessage { text: "c".into() })
                .await
                .unwrap();
            assert_eq!(next.seq, Some(2));
            let log = store.events("c1", 0, None).await.unwrap();
            assert_eq!(log.first(), Some(&first));
            assert_eq!(log.len(), 2);
        })
        .await;
    }

    #[tokio::test]
    async fn folds_each_event_once_however_many_callers_fold_it() {
        let store = fresh_store().await;
        run(&store, async {
            store.create_chat(&chat("c1")).await.unwrap();
            let events = [
                envelope(1, context_changed(Some(json!("old")))),
                envelope(2, context_changed(None)),
                envelope(
                    3,
                    Event::Usage {
                        agent: "a".into(),
                        model: "m".into(),
                        prompt_tokens: 100,
                        completion_tokens: 10,
                    },
                ),
            ];
            for (i, event) in events.iter().enumerate() {
                let id = format!("id-{i}");
                let document = event_document("test", &id, event).unwrap();
                store
                    .insert_once("test", &store.events, &document, doc! { "_id": &id })
                    .await
                    .unwrap();
            }
            let [set, remove, usage] = &events;
            assert!(store.fold("test", 0, set, None).await.unwrap());
            assert!(store.fold("test", 1, remove, None).await.unwrap());
            assert!(store.fold("test", 2, usage, None).await.unwrap());
            // Slow callers folding what is folded already change nothing:
            // the removal stays, the tokens are counted once.
            assert!(!store.fold("test", 0, set, None).await.unwrap());
            assert!(!store.fold("test", 2, usage, None).await.unwrap());

            assert!(store.context("c1").await.unwrap().is_empty());
            let record = store.chat("c1").await.unwrap().unwrap();
            assert_eq!((record.prompt_tokens, record.completion_tokens), (100, 10));
            assert_eq!((record.last_seq, record.updated_at), (3, 13));
        })
        .await;
    }

    /// A driver error from pinging `uri`, waiting at most `timeout`.
    async fn ping_error(uri: &str, timeout: Duration) -> MongoError {
        let mut options = ClientOptions::parse(uri).await.unwrap();
        options.server_selection_timeout = Some(timeout);
        let client = Client::with_options(options).unwrap();
        client
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn classifies_a_refused_connection() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = ping_error(
            &format!("mongodb://127.0.0.1:{port}"),
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(classify(&error), "refused", "{error}");
    }

    #[tokio::test]
    async fn classifies_a_server_that_never_answers_as_a_timeout() {
        // Accepts connections (the kernel does) but never replies.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let uri = format!("mongodb://{}", silent.local_addr().unwrap());
        let error = ping_error(&uri, Duration::from_millis(500)).await;
        assert_eq!(classify(&error), "timeout", "{error}");
    }

    #[tokio::test]
    async fn classifies_a_host_that_does_not_resolve() {
        let error = ping_error(
            "mongodb://no-such-host.invalid:27017",
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(classify(&error), "dns", "{error}");
        let error = ClientOptions::parse("mongodb+srv://cluster.no-such-host.invalid")
            .await
            .unwrap_err();
        assert_eq!(classify(&error), "dns", "{error}");
    }

    #[tokio::test]
    async fn classifies_refused_credentials() {
        let uri = test_server::uri();
        let (scheme, rest) = uri.split_once("://").unwrap();
        let hosts = rest.rsplit_once('@').map_or(rest, |(_, hosts)| hosts);
        let uri = format!("{scheme}://mozaiks-nobody:wrong@{hosts}");
        let error = ping_error(&uri, Duration::from_secs(5)).await;
        assert_eq!(classify(&error), "auth", "{error}");
    }
}
