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
//!   and `json`, the [`Envelope`] as JSON text. The text is what is read
//!   back, so every JSON value (large integers, floats, `null`) comes back
//!   exactly as appended; the other fields are there to be queried.
//! - `context_store`: one document per chat and variable: `chat_id`, `key`,
//!   `json` (the value as JSON text, so `null` stays a value; `null` in
//!   the field itself marks a removed variable) and `seq`, the event that
//!   last wrote it. A removal leaves that marker rather than deleting the
//!   document, so a late writer can never bring back an older value.
//!
//! # Indexes
//!
//! Created by [`MongoStore::ensure_indexes`] (called by
//! [`prepare`](ChatStore::prepare), and before the first write in any
//! case; creating an existing index is a no-op): unique
//! `chat_sessions.chat_id`, `chat_sessions.{app_id, user_id, updated_at}`,
//! unique `chat_events.{chat_id, seq}` and unique
//! `context_store.{chat_id, key}`.
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
//! Writes use the configured write concern (`majority` by default). Only
//! simple operations are used (`insert_one`, `find`, `update_one` with
//! `$set`/`$inc`/`$max`, `delete_*`): no change streams, no aggregation,
//! no arrays growing inside documents.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{Error as MongoError, ErrorKind, RETRYABLE_WRITE_ERROR, WriteFailure};
use mongodb::options::{ClientOptions, DatabaseOptions, IndexOptions, WriteConcern};
use mongodb::{Client, Collection, Database, IndexModel};
use serde::de::Error as _;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::{ChatFilter, ChatRecord, ChatStatus, ChatStore, StoreError};
use crate::event::{Envelope, Event};

/// The database used when `MONGO_DB` is not set.
pub const DEFAULT_DATABASE: &str = "mozaiks";

/// How long an operation waits for a usable server before it fails. The
/// driver's own default (30 s) would leave requests and the readiness
/// probe hanging through an outage; 5 s still rides out an election.
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);

const CHATS: &str = "chat_sessions";
const EVENTS: &str = "chat_events";
const CONTEXT: &str = "context_store";

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

/// Which acknowledgement writes wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteConcernChoice {
    /// A majority of the replica set has the write (`w: "majority"`): an
    /// acknowledged event survives a failover. The default.
    #[default]
    Majority,
    /// The primary alone has it (`w: 1`): faster, but a failover can lose
    /// the last acknowledged events.
    W1,
}

impl WriteConcernChoice {
    fn to_driver(self) -> WriteConcern {
        match self {
            WriteConcernChoice::Majority => WriteConcern::majority(),
            WriteConcernChoice::W1 => WriteConcern::nodes(1),
        }
    }
}

/// Where the MongoDB store lives and how it writes.
#[derive(Clone, PartialEq, Eq)]
pub struct MongoConfig {
    /// The connection string: `mongodb://host:port`, with credentials and
    /// `authSource` if needed, or `mongodb+srv://` (resolved when the store
    /// connects). Its options apply, except those below.
    pub uri: String,
    /// The database holding the collections.
    pub database: String,
    /// The write concern of every write.
    pub write_concern: WriteConcernChoice,
    /// How long an operation waits for a usable server; the URI's
    /// `serverSelectionTimeoutMS`, when present, wins.
    pub server_selection_timeout: Duration,
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("uri", &self.redacted_uri())
            .field("database", &self.database)
            .field("write_concern", &self.write_concern)
            .field("server_selection_timeout", &self.server_selection_timeout)
            .finish()
    }
}

/// An environment variable with a value the store cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{variable}=`{value}` is invalid: expected {expected}")]
pub struct MongoConfigError {
    /// The variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What it may be.
    pub expected: &'static str,
}

impl MongoConfig {
    /// A config for `uri` with the defaults: database `mozaiks`, write
    /// concern `majority`, 5 s server selection timeout.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            database: DEFAULT_DATABASE.to_owned(),
            write_concern: WriteConcernChoice::Majority,
            server_selection_timeout: DEFAULT_SERVER_SELECTION_TIMEOUT,
        }
    }

    /// Reads `MONGO_URI` (no MongoDB store when unset or empty), `MONGO_DB`
    /// (default `mozaiks`), `MOZAIKS_MONGO_WRITE_CONCERN` (`majority`, the
    /// default, or `1`) and `MONGO_SERVER_SELECTION_TIMEOUT_MS` (default
    /// 5000).
    pub fn from_env() -> Result<Option<Self>, MongoConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, MongoConfigError> {
        let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        let Some(uri) = set("MONGO_URI") else {
            return Ok(None);
        };
        let mut config = Self::new(uri.trim());
        if let Some(database) = set("MONGO_DB") {
            config.database = database.trim().to_owned();
        }
        if let Some(value) = set("MOZAIKS_MONGO_WRITE_CONCERN") {
            config.write_concern = match value.trim() {
                "majority" => WriteConcernChoice::Majority,
                "1" => WriteConcernChoice::W1,
                _ => {
                    return Err(MongoConfigError {
                        variable: "MOZAIKS_MONGO_WRITE_CONCERN",
                        value,
                        expected: "`majority` or `1`",
                    });
                }
            };
        }
        if let Some(value) = set("MONGO_SERVER_SELECTION_TIMEOUT_MS") {
            let ms = value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .ok_or(MongoConfigError {
                    variable: "MONGO_SERVER_SELECTION_TIMEOUT_MS",
                    value,
                    expected: "a positive number of milliseconds",
                })?;
            config.server_selection_timeout = Duration::from_millis(ms);
        }
        Ok(Some(config))
    }

    /// The URI with its password replaced by `***`, for logs.
    pub fn redacted_uri(&self) -> String {
        redact_uri(&self.uri)
    }
}

/// `scheme://user:password@rest` → `scheme://user:***@rest`.
fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((credentials, hosts)) => {
            let user = credentials.split_once(':').map_or(credentials, |(u, _)| u);
            format!("{scheme}://{user}:***@{hosts}{tail}")
        }
        None => uri.to_owned(),
    }
}

/// Classifies a driver error into what an operator can act on: `refused`
/// (nothing listens at the address), `dns` (the host name does not
/// resolve), `auth` (wrong user, password or `authSource`), `timeout` (no
/// server answered in time) or `other`.
pub fn classify(error: &MongoError) -> &'static str {
    match error.kind.as_ref() {
        ErrorKind::Authentication { .. } => return "auth",
        ErrorKind::DnsResolve { .. } => return "dns",
        ErrorKind::Command(command) if command.code == 18 => return "auth",
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            return "refused";
        }
        ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => return "timeout",
        _ => {}
    }
    // A server selection error describes each server's last failure only
    // as text.
    let text = error.to_string();
    let has = |needles: &[&str]| needles.iter().any(|needle| text.contains(needle));
    if has(&[
        "Authentication failed",
        "AuthenticationFailed",
        "SCRAM failure",
    ]) {
        "auth"
    } else if has(&[
        "failed to lookup address",
        "Name or service not known",
        "Temporary failure in name resolution",
        "No address associated with hostname",
        "nodename nor servname",
        "DNS resolution",
    ]) {
        "dns"
    } else if has(&["Connection refused", "connection refused"]) {
        "refused"
    } else if matches!(error.kind.as_ref(), ErrorKind::ServerSelection { .. })
        || has(&["timed out"])
    {
        "timeout"
    } else {
        "other"
    }
}

/// What to tell an operator about an error of each class.
fn advice(class: &str) -> &'static str {
    match class {
        "refused" => {
            "refused the connection (refused): check that MongoDB runs at the host and port of MONGO_URI"
        }
        "dns" => "host name does not resolve (dns): check the host in MONGO_URI",
        "auth" => {
            "authentication failed (auth): check the user, password and authSource in MONGO_URI"
        }
        "timeout" => {
            "did not answer in time (timeout): check that MongoDB is up and reachable, or raise MONGO_SERVER_SELECTION_TIMEOUT_MS"
        }
        _ => "failed (other)",
    }
}

/// A [`ChatStore`] in a MongoDB database. Cheap to clone: clones share the
/// client and its connection pool.
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    chats: Collection<Document>,
    events: Collection<Document>,
    context: Collection<Document>,
    /// The redacted URI, for messages.
    target: Arc<str>,
    indexes: Arc<OnceCell<()>>,
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
            db,
            target: target.into(),
            indexes: Arc::new(OnceCell::new()),
        })
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
                .read_events(op, chat_id, stored.applied_seq, Some(CATCH_UP_BATCH))
                .await?;
            if pending.is_empty() {
                return Ok(stored);
            }
            let mut applied = stored.applied_seq;
            for envelope in &pending {
                let seq = envelope.seq.unwrap_or_default();
                if Some(seq) != applied.checked_add(1) {
                    return Err(StoreError::Backend(format!(
                        "{op}: chat `{chat_id}`'s log jumps from event {applied} to {seq} \
                         in MongoDB database `{}`: an event was deleted by hand",
                        self.db.name()
                    )));
                }
                if !self.fold(op, applied, envelope).await? {
                    // Another caller folded it: start again from what it did.
                    break;
                }
                applied = seq;
            }
        }
    }

    /// Folds one event into the views, if the chat's `applied_seq` is
    /// still `applied` (its `seq` − 1). Returns whether this call advanced
    /// `applied_seq`; the context write is idempotent either way.
    async fn fold(&self, op: &str, applied: u64, envelope: &Envelope) -> Result<bool, StoreError> {
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
        let mut update = doc! {
            "$set": { "applied_seq": seq },
            "$max": { "last_seq": seq, "updated_at": to_i64(op, "ts", envelope.ts)? },
        };
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

    /// The chat's events after `after_seq`, without catching up.
    async fn read_events(
        &self,
        op: &str,
        chat_id: &str,
        after_seq: u64,
        limit: Option<i64>,
    ) -> Result<Vec<Envelope>, StoreError> {
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
            .map(|document| decode_event(document, chat_id))
            .collect()
    }
}

/// A backend error naming the operation, the server and what to check.
fn backend(op: &str, target: &str, error: &MongoError) -> StoreError {
    StoreError::Backend(format!(
        "{op}: MongoDB at {target} {}: {}",
        advice(classify(error)),
        error.kind
    ))
}

fn is_duplicate_key(error: &MongoError) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) => write.code == DUPLICATE_KEY,
        ErrorKind::Command(command) => command.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// Whether the write may or may not have been applied (the connection
/// failed after it was sent).
fn outcome_unknown(error: &MongoError) -> bool {
    error.contains_label(RETRYABLE_WRITE_ERROR)
        || matches!(
            error.kind.as_ref(),
            ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. }
        )
}

fn to_i64(op: &str, what: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::Backend(format!(
            "{op}: {what} {value} does not fit MongoDB's signed 64-bit integers"
        ))
    })
}

/// For sums and query bounds, where the largest value means "all".
fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn encode(op: &str, value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("{op}: encoding: {e}")))
}

fn status_name(status: &ChatStatus) -> &'static str {
    match status {
        ChatStatus::InProgress => "InProgress",
        ChatStatus::Completed => "Completed",
        ChatStatus::Failed => "Failed",
    }
}

fn corrupt(what: impl Into<String>, chat_id: &str, message: impl fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        chat_id: chat_id.to_owned(),
        source: serde_json::Error::custom(message),
    }
}

fn chat_document(op: &str, chat: &ChatRecord) -> Result<Document, StoreError> {
    Ok(doc! {
        "_id": &chat.chat_id,
        "chat_id": &chat.chat_id,
        "app_id": &chat.app_id,
        "user_id": &chat.user_id,
        "workflow": &chat.workflow,
        "workflow_version": &chat.workflow_version,
        "cache_seed": i64::from(chat.cache_seed),
        "status": status_name(&chat.status),
        "ended_reason": chat.ended_reason.as_deref().map_or(Bson::Null, Bson::from),
        "created_at": to_i64(op, "created_at", chat.created_at)?,
        "updated_at": to_i64(op, "updated_at", chat.updated_at)?,
        "last_seq": to_i64(op, "last_seq", chat.last_seq)?,
        "prompt_tokens": to_i64(op, "prompt_tokens", chat.prompt_tokens)?,
        "completion_tokens": to_i64(op, "completion_tokens", chat.completion_tokens)?,
        // A record created with events before it (an import) has them all
        // folded in already.
        "applied_seq": to_i64(op, "last_seq", chat.last_seq)?,
    })
}

/// Reads the fields of one `chat_sessions` document.
struct Fields<'a> {
    document: &'a Document,
    chat_id: &'a str,
}

impl Fields<'_> {
    fn fail(&self, field: &str, expected: &str) -> StoreError {
        corrupt(
            "record",
            self.chat_id,
            format!("field `{field}` is missing or not {expected}"),
        )
    }

    fn string(&self, field: &str) -> Result<String, StoreError> {
        match self.document.get(field) {
            Some(Bson::String(text)) => Ok(text.clone()),
            _ => Err(self.fail(field, "a string")),
        }
    }

    fn optional_string(&self, field: &str) -> Result<Option<String>, StoreError> {
        match self.document.get(field) {
            None | Some(Bson::Null) => Ok(None),
            Some(Bson::String(text)) => Ok(Some(text.clone())),
            _ => Err(self.fail(field, "a string or null")),
        }
    }

    fn number(&self, field: &str) -> Result<u64, StoreError> {
        integer(self.document.get(field))
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| self.fail(field, "a non-negative integer"))
    }
}

/// An integer however the server returns it (some servers send small
/// 64-bit integers back as 32-bit ones).
fn integer(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::Int64(n) => Some(*n),
        Bson::Int32(n) => Some(i64::from(*n)),
        _ => None,
    }
}

fn decode_chat(document: &Document) -> Result<Stored, StoreError> {
    let chat_id = match document.get("_id") {
        Some(Bson::String(id)) => id.as_str(),
        _ => "?",
    };
    let fields = Fields { document, chat_id };
    let status = match fields.string("status")?.as_str() {
        "InProgress" => ChatStatus::InProgress,
        "Completed" => ChatStatus::Completed,
        "Failed" => ChatStatus::Failed,
        _ => return Err(fields.fail("status", "InProgress, Completed or Failed")),
    };
    let record = ChatRecord {
        chat_id: fields.string("chat_id")?,
        app_id: fields.string("app_id")?,
        user_id: fields.string("user_id")?,
        workflow: fields.string("workflow")?,
        workflow_version: fields.string("workflow_version")?,
        cache_seed: u32::try_from(fields.number("cache_seed")?)
            .map_err(|_| fields.fail("cache_seed", "a 32-bit unsigned integer"))?,
        status,
        ended_reason: fields.optional_string("ended_reason")?,
        created_at: fields.number("created_at")?,
        updated_at: fields.number("updated_at")?,
        last_seq: fields.number("last_seq")?,
        prompt_tokens: fields.number("prompt_tokens")?,
        completion_tokens: fields.number("completion_tokens")?,
    };
    let applied_seq = fields.number("applied_seq")?;
    Ok(Stored {
        record,
        applied_seq,
    })
}

fn event_document(op: &str, id: &str, envelope: &Envelope) -> Result<Document, StoreError> {
    let json = serde_json::to_value(envelope)
        .map_err(|e| StoreError::Backend(format!("{op}: encoding: {e}")))?;
    let kind = json
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(doc! {
        "_id": id,
        "chat_id": &envelope.chat_id,
        "seq": to_i64(op, "seq", envelope.seq.unwrap_or_default())?,
        "ts": to_i64(op, "ts", envelope.ts)?,
        "type": kind,
        "json": json.to_string(),
    })
}

fn decode_event(document: &Document, chat_id: &str) -> Result<Envelope, StoreError> {
    let seq = integer(document.get("seq"));
    let what = || match seq {
        Some(seq) => format!("event {seq}"),
        None => "event".to_owned(),
    };
    let Some(Bson::String(json)) = document.get("json") else {
        return Err(corrupt(what(), chat_id, "field `json` is missing"));
    };
    let envelope: Envelope = serde_json::from_str(json).map_err(|source| StoreError::Corrupt {
        what: what(),
        chat_id: chat_id.to_owned(),
        source,
    })?;
    if envelope.seq.and_then(|s| i64::try_from(s).ok()) != seq {
        return Err(corrupt(
            what(),
            chat_id,
            "its `seq` differs from the one in its JSON",
        ));
    }
    Ok(envelope)
}

/// Now, in ms since the Unix epoch; 0 if the clock is before it.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The type name [`StoreError::Ephemeral`] reports for an event that is
/// not persisted.
fn ephemeral_type(event: &Event) -> &'static str {
    match event {
        Event::TextDelta { .. } => "text_delta",
        _ => "unknown",
    }
}

#[async_trait]
impl ChatStore for MongoStore {
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
        let result = self
            .chats
            .update_one(
                doc! { "_id": chat_id },
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
        let op = "appending an event";
        self.ensure_indexes().await?;
        // One id for every try, so a try that landed is recognised.
        let id = uuid::Uuid::new_v4().to_string();
        for _ in 0..MAX_APPEND_ATTEMPTS {
            let stored = self.catch_up(op, chat_id).await?;
            let seq = stored.applied_seq.checked_add(1).ok_or_else(|| {
                StoreError::Backend(format!("{op}: chat `{chat_id}`'s log is full"))
            })?;
            let envelope = Envelope {
                seq: Some(seq),
                chat_id: chat_id.to_owned(),
                ts,
                event: event.clone(),
            };
            let document = event_document(op, &id, &envelope)?;
            let own = doc! { "_id": &id };
            match self.insert_once(op, &self.events, &document, own).await? {
                Inserted::New => {
                    // Nobody else can fold past `seq` − 1 without this
                    // event, so a `false` means another caller folded it.
                    if let Err(error) = self.fold(op, stored.applied_seq, &envelope).await {
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
    /// its events and context. A crash or an error in between leaves
    /// events and context that nothing reads (chat ids are UUIDs, never
    /// reused).
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
            for collection in [&self.events, &self.context] {
                collection
                    .delete_many(doc! { "chat_id": chat_id })
                    .await
                    .map_err(|e| self.backend(op, &e))?;
            }
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
mod tests {
    use std::panic::AssertUnwindSafe;

    use futures_util::FutureExt as _;
    use serde_json::json;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn reads_no_config_without_a_uri() {
        assert_eq!(MongoConfig::from_vars(vars(&[])).unwrap(), None);
        assert_eq!(
            MongoConfig::from_vars(vars(&[("MONGO_URI", " "), ("MONGO_DB", "x")])).unwrap(),
            None
        );
    }

    #[test]
    fn reads_the_defaults_and_every_variable() {
        let config = MongoConfig::from_vars(vars(&[("MONGO_URI", "mongodb://db:27017")]))
            .unwrap()
            .unwrap();
        assert_eq!(config, MongoConfig::new("mongodb://db:27017"));
        assert_eq!(config.database, "mozaiks");
        assert_eq!(config.write_concern, WriteConcernChoice::Majority);
        assert_eq!(config.server_selection_timeout, Duration::from_secs(5));

        let config = MongoConfig::from_vars(vars(&[
            ("MONGO_URI", "mongodb+srv://cluster.example.net"),
            ("MONGO_DB", "chats"),
            ("MOZAIKS_MONGO_WRITE_CONCERN", "1"),
            ("MONGO_SERVER_SELECTION_TIMEOUT_MS", "250"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(config.database, "chats");
        assert_eq!(config.write_concern, WriteConcernChoice::W1);
        assert_eq!(config.server_selection_timeout, Duration::from_millis(250));
    }

    #[test]
    fn refuses_an_unknown_write_concern_or_timeout() {
        let err = MongoConfig::from_vars(vars(&[
            ("MONGO_URI", "mongodb://db"),
            ("MOZAIKS_MONGO_WRITE_CONCERN", "2"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "MOZAIKS_MONGO_WRITE_CONCERN");
        assert!(err.to_string().contains("`majority` or `1`"), "{err}");
        for bad in ["0", "soon", "-5"] {
            let err = MongoConfig::from_vars(vars(&[
                ("MONGO_URI", "mongodb://db"),
                ("MONGO_SERVER_SELECTION_TIMEOUT_MS", bad),
            ]))
            .unwrap_err();
            assert_eq!(err.variable, "MONGO_SERVER_SELECTION_TIMEOUT_MS");
        }
    }

    #[test]
    fn redacts_the_password_of_a_uri() {
        let cases = [
            (
                "mongodb://app:s3cr@t@db1:27017,db2/?authSource=admin",
                "mongodb://app:***@db1:27017,db2/?authSource=admin",
            ),
            (
                "mongodb+srv://app:pw@cluster.example.net/mozaiks",
                "mongodb+srv://app:***@cluster.example.net/mozaiks",
            ),
            ("mongodb://db:27017", "mongodb://db:27017"),
            ("mongodb://db/?x=a@b", "mongodb://db/?x=a@b"),
        ];
        for (uri, redacted) in cases {
            assert_eq!(redact_uri(uri), redacted);
        }
        let config = MongoConfig::new("mongodb://app:hunter2@db");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

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
    async fn run(store: &MongoStore, test: impl Future<Output = ()>) {
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
            assert!(store.fold("test", 0, set).await.unwrap());
            assert!(store.fold("test", 1, remove).await.unwrap());
            assert!(store.fold("test", 2, usage).await.unwrap());
            // Slow callers folding what is folded already change nothing:
            // the removal stays, the tokens are counted once.
            assert!(!store.fold("test", 0, set).await.unwrap());
            assert!(!store.fold("test", 2, usage).await.unwrap());

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
