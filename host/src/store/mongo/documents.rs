//! The documents of the MongoDB store: chats, events and numbers to and
//! from BSON, and driver errors to [`StoreError`]s. The layout is described
//! in the parent module.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use mongodb::bson::{Bson, Document, doc};
use mongodb::error::{Error as MongoError, ErrorKind, RETRYABLE_WRITE_ERROR, WriteFailure};
use serde::de::Error as _;
use serde_json::Value;

use super::config::{advice, classify};
use super::{DUPLICATE_KEY, Stored};
use crate::event::{Envelope, Event};
use crate::store::{ChatRecord, ChatStatus, StoreError};

/// A backend error naming the operation, the server and what to check.
pub(super) fn backend(op: &str, target: &str, error: &MongoError) -> StoreError {
    StoreError::Backend(format!(
        "{op}: MongoDB at {target} {}: {}",
        advice(classify(error)),
        error.kind
    ))
}

pub(super) fn is_duplicate_key(error: &MongoError) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(write)) => write.code == DUPLICATE_KEY,
        ErrorKind::Command(command) => command.code == DUPLICATE_KEY,
        _ => false,
    }
}

/// Whether the write may or may not have been applied (the connection
/// failed after it was sent).
pub(super) fn outcome_unknown(error: &MongoError) -> bool {
    error.contains_label(RETRYABLE_WRITE_ERROR)
        || matches!(
            error.kind.as_ref(),
            ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. }
        )
}

pub(super) fn to_i64(op: &str, what: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| {
        StoreError::Backend(format!(
            "{op}: {what} {value} does not fit MongoDB's signed 64-bit integers"
        ))
    })
}

/// For sums and query bounds, where the largest value means "all".
pub(super) fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn encode(op: &str, value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("{op}: encoding: {e}")))
}

pub(super) fn status_name(status: &ChatStatus) -> &'static str {
    match status {
        ChatStatus::InProgress => "InProgress",
        ChatStatus::Completed => "Completed",
        ChatStatus::Failed => "Failed",
    }
}

pub(super) fn corrupt(
    what: impl Into<String>,
    chat_id: &str,
    message: impl fmt::Display,
) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        chat_id: chat_id.to_owned(),
        source: serde_json::Error::custom(message),
    }
}

pub(super) fn chat_document(op: &str, chat: &ChatRecord) -> Result<Document, StoreError> {
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
pub(super) fn integer(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::Int64(n) => Some(*n),
        Bson::Int32(n) => Some(i64::from(*n)),
        _ => None,
    }
}

pub(super) fn decode_chat(document: &Document) -> Result<Stored, StoreError> {
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
    // Only chats appended to under a lease have one.
    let lease = match document.get("lease") {
        None => 0,
        Some(_) => fields.number("lease")?,
    };
    Ok(Stored {
        record,
        applied_seq,
        lease,
    })
}

pub(super) fn event_document(
    op: &str,
    id: &str,
    envelope: &Envelope,
) -> Result<Document, StoreError> {
    let json = crate::store::format::encode_event(envelope)
        .map_err(|e| StoreError::Backend(format!("{op}: encoding: {e}")))?;
    let kind = serde_json::to_value(&envelope.event)
        .ok()
        .and_then(|event| event.get("type").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    Ok(doc! {
        "_id": id,
        "chat_id": &envelope.chat_id,
        "seq": to_i64(op, "seq", envelope.seq.unwrap_or_default())?,
        "ts": to_i64(op, "ts", envelope.ts)?,
        "type": kind,
        "json": json,
    })
}

/// An event document with the lease token it is appended under, when the
/// appending handle holds one (`store::cluster`, "Fencing"); without one,
/// exactly [`event_document`].
pub(super) fn leased_event_document(
    op: &str,
    id: &str,
    envelope: &Envelope,
    lease: Option<u64>,
) -> Result<Document, StoreError> {
    let mut document = event_document(op, id, envelope)?;
    if let Some(lease) = lease {
        document.insert("lease", to_i64(op, "lease", lease)?);
    }
    Ok(document)
}

/// The lease token an event document was appended under, if any.
pub(super) fn event_lease(document: &Document, chat_id: &str) -> Result<Option<u64>, StoreError> {
    match document.get("lease") {
        None => Ok(None),
        value => integer(value)
            .and_then(|n| u64::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                corrupt(
                    "event",
                    chat_id,
                    "field `lease` is not a non-negative integer",
                )
            }),
    }
}

pub(super) fn decode_event(document: &Document, chat_id: &str) -> Result<Envelope, StoreError> {
    let seq = integer(document.get("seq"));
    let what = || match seq {
        Some(seq) => format!("event {seq}"),
        None => "event".to_owned(),
    };
    let Some(Bson::String(json)) = document.get("json") else {
        return Err(corrupt(what(), chat_id, "field `json` is missing"));
    };
    let envelope =
        crate::store::format::decode_event(json).map_err(|source| StoreError::Corrupt {
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
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The type name [`StoreError::Ephemeral`] reports for an event that is
/// not persisted.
pub(super) fn ephemeral_type(event: &Event) -> &'static str {
    match event {
        Event::TextDelta { .. } => "text_delta",
        Event::LlmRetry { .. } => "llm_retry",
        _ => "unknown",
    }
}
