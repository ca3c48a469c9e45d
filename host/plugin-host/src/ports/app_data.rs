//! The [`AppData`] port: documents of the calling chat's app, behind the
//! `data` import. The embedder builds one per call, already bound to the
//! chat's app and user, so nothing the guest passes can name another app.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::PortError;

/// Whose documents an operation acts on. The app and the user are those of
/// the calling chat, decided by the embedder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DataScope {
    /// The chat's app: documents shared by all its users.
    App,
    /// The chat's user, inside the chat's app.
    User,
}

/// One stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct DataDocument {
    /// Its id inside its collection.
    pub id: String,
    /// Raised by one on every write; the first write makes version 1.
    pub version: u64,
    /// The document: a JSON object.
    pub body: Value,
}

/// One condition of a query: the field at a dotted `path` equals `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFilter {
    /// Dotted path into the document (`customer.id`).
    pub path: String,
    /// The value the field must equal (JSON equality: `1` is not `1.0`).
    pub value: Value,
}

impl DataFilter {
    /// Whether `body` has `value` at `path`. Every store applies this one
    /// rule, so a query answers the same on each.
    pub fn matches(&self, body: &Value) -> bool {
        field(body, &self.path) == Some(&self.value)
    }
}

/// The value at a dotted `path` of `value` (`a.b` is `value["a"]["b"]`;
/// an array is not indexed). `None` when a part is missing.
pub fn field<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(value, |current, part| current.as_object()?.get(part))
}

/// Which documents of a collection a query returns: those matching every
/// filter with an id greater than `after_id`, in id order, at most `limit`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataQuery {
    /// Every one must match.
    pub filters: Vec<DataFilter>,
    /// Only ids after this one (paging).
    pub after_id: Option<String>,
    /// At most this many documents.
    pub limit: usize,
}

impl DataQuery {
    /// Whether the document `id` with `body` is one this query returns
    /// (limit aside).
    pub fn selects(&self, id: &str, body: &Value) -> bool {
        self.after_id.as_deref().is_none_or(|after| id > after)
            && self.filters.iter().all(|f| f.matches(body))
    }
}

/// The server's quotas on per-app data (docs/operations.md, per-app data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLimits {
    /// The largest document, in bytes of its JSON text.
    pub max_document_bytes: usize,
    /// The most documents one app may hold, its users' included.
    pub max_documents_per_app: u64,
}

/// 256 KiB: records, not files; a tool that needs more keeps several.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// 10,000 documents per app: a query scans its collection, so this also
/// bounds the work of one query.
pub const DEFAULT_MAX_DOCUMENTS_PER_APP: u64 = 10_000;

impl Default for DataLimits {
    fn default() -> Self {
        Self {
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            max_documents_per_app: DEFAULT_MAX_DOCUMENTS_PER_APP,
        }
    }
}

/// Why a data operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The document is not at the expected version; `found` is its version
    /// now (`None`: it does not exist).
    #[error("version conflict: {}", describe_found(*.found))]
    Conflict {
        /// Its version now.
        found: Option<u64>,
    },
    /// The document is larger than [`DataLimits::max_document_bytes`].
    #[error(
        "the document is {size} bytes, more than the {max} allowed (MOZAIKS_DATA_MAX_DOCUMENT_BYTES)"
    )]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The app holds [`DataLimits::max_documents_per_app`] documents already.
    #[error(
        "app `{app}` already holds {max} documents, the most allowed (MOZAIKS_DATA_MAX_DOCUMENTS_PER_APP)"
    )]
    QuotaExceeded {
        /// The app.
        app: String,
        /// The limit.
        max: u64,
    },
    /// An argument was refused; the message says which and why.
    #[error("{0}")]
    Invalid(String),
    /// The store failed: the call is aborted.
    #[error(transparent)]
    Failed(#[from] PortError),
}

fn describe_found(found: Option<u64>) -> String {
    found.map_or_else(
        || "the document does not exist".to_owned(),
        |v| format!("the document is at version {v}"),
    )
}

/// The documents of the calling chat's app (and user). Built by the
/// embedder for one call, bound to that chat's app and user.
#[async_trait]
pub trait AppData: Send + Sync {
    /// The document `id` of `collection`, if any.
    async fn get(
        &self,
        scope: DataScope,
        collection: &str,
        id: &str,
    ) -> Result<Option<DataDocument>, DataError>;
    /// Writes `body` as the document and returns its new version; with
    /// `expected`, only if the document is at that version (0: absent).
    async fn put(
        &self,
        scope: DataScope,
        collection: &str,
        id: &str,
        body: Value,
        expected: Option<u64>,
    ) -> Result<u64, DataError>;
    /// Removes the document; true if it existed. With `expected`, only if
    /// it is at that version.
    async fn remove(
        &self,
        scope: DataScope,
        collection: &str,
        id: &str,
        expected: Option<u64>,
    ) -> Result<bool, DataError>;
    /// The documents of `collection` that `query` selects, by id.
    async fn query(
        &self,
        scope: DataScope,
        collection: &str,
        query: &DataQuery,
    ) -> Result<Vec<DataDocument>, DataError>;
}

/// (scope, collection, id) → (version, body).
type Documents = BTreeMap<(DataScope, String, String), (u64, Value)>;

/// Documents of one app kept in memory, with the same rules as the
/// server's stores (versions, quotas, queries): the harness's and
/// `mozaiks tool call`'s data.
#[derive(Debug, Default)]
pub struct MemoryAppData {
    limits: DataLimits,
    documents: Mutex<Documents>,
}

impl MemoryAppData {
    /// An empty store with these quotas.
    pub fn new(limits: DataLimits) -> Self {
        Self {
            limits,
            documents: Mutex::default(),
        }
    }

    /// Stores `body` as version 1 of a document, replacing any.
    pub fn seed(&self, scope: DataScope, collection: &str, id: &str, body: Value) {
        self.lock()
            .insert((scope, collection.to_owned(), id.to_owned()), (1, body));
    }

    /// Every document, in (scope, collection, id) order.
    pub fn documents(&self) -> Vec<(DataScope, String, DataDocument)> {
        self.lock()
            .iter()
            .map(|((scope, collection, id), (version, body))| {
                (
                    *scope,
                    collection.clone(),
                    DataDocument {
                        id: id.clone(),
                        version: *version,
                        body: body.clone(),
                    },
                )
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Documents> {
        self.documents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl AppData for MemoryAppData {
    async fn get(
        &self,
        scope: DataScope,
        collection: &str,
        id: &str,
    ) -> Result<Option<DataDocument>, DataError> {
        Ok(self
            .lock()
            .get(&(scope, collection.to_owned(), id.to_owned()))
            .map(|(version, body)| DataDocument {
                id: id.to_owned(),
                version: *version,
                body: body.clone(),
            }))
    }

    async fn put(
        &self,
        scope: DataScope,
        collection: &str,
        id: &str,
        body: Value,
        expected: Option<u64>,
    ) -> Result<u64, DataError> {
        let size = body.to_string().len();
        if size > self.limits.max_document_bytes {
            return Err(DataError::TooLarge {
                size,
                max: self.limits.max_document_bytes,
            });
        }
        let mut documents = self.lock();
        let key = (scope, collection.to_owned(), id.to_owned());
        let found = documents.get(&key).map(|(version, _)| *version);
        if expected.is_some_and(|e| e != found.unwrap_or(0)) {
            return Err(DataError::Conflict { found });
        }
        if found.is_none() && documents.len() as u64 >= self.limits.max_documents_per_app {
            return Err(DataError::QuotaExceeded {
                app: "tool call".to_owned(),
                max: self.limits.max_documents_per_app,
            });
        }
        let version = found.unwrap_or(0) + 1;
        documents.insert(key, (version, body));
        Ok(version)
    }

    async fn remove(
        &self,
        scope: DataScope,
        collection: &str,
        id: &str,
        expected: Option<u64>,
    ) -> Result<bool, DataError> {
        let mut documents = self.lock();
        let key = (scope, collection.to_owned(), id.to_owned());
        let found = documents.get(&key).map(|(version, _)| *version);
        if expected.is_some_and(|e| e != found.unwrap_or(0)) {
            return Err(DataError::Conflict { found });
        }
        Ok(documents.remove(&key).is_some())
    }

    async fn query(
        &self,
        scope: DataScope,
        collection: &str,
        query: &DataQuery,
    ) -> Result<Vec<DataDocument>, DataError> {
        Ok(self
            .lock()
            .iter()
            .filter(|((s, c, id), (_, body))| {
                *s == scope && c == collection && query.selects(id, body)
            })
            .take(query.limit)
            .map(|((_, _, id), (version, body))| DataDocument {
                id: id.clone(),
                version: *version,
                body: body.clone(),
            })
            .collect())
    }
}

/// No data: every operation is refused as invalid. For calls without a
/// chat (`describe()`) and embedders that keep no per-app data.
#[async_trait]
impl AppData for crate::ports::NoChat {
    async fn get(&self, _: DataScope, _: &str, _: &str) -> Result<Option<DataDocument>, DataError> {
        Err(no_data())
    }
    async fn put(
        &self,
        _: DataScope,
        _: &str,
        _: &str,
        _: Value,
        _: Option<u64>,
    ) -> Result<u64, DataError> {
        Err(no_data())
    }
    async fn remove(
        &self,
        _: DataScope,
        _: &str,
        _: &str,
        _: Option<u64>,
    ) -> Result<bool, DataError> {
        Err(no_data())
    }
    async fn query(
        &self,
        _: DataScope,
        _: &str,
        _: &DataQuery,
    ) -> Result<Vec<DataDocument>, DataError> {
        Err(no_data())
    }
}

fn no_data() -> DataError {
    DataError::Invalid("this call has no chat, so no app's data".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_filter_follows_a_dotted_path_and_compares_json_values() {
        let body = json!({ "customer": { "id": "c1", "tier": 2 }, "n": 1 });
        let f = |path: &str, value| DataFilter {
            path: path.to_owned(),
            value,
        };
        assert!(f("customer.id", json!("c1")).matches(&body));
        assert!(f("customer.tier", json!(2)).matches(&body));
        assert!(!f("customer.tier", json!("2")).matches(&body));
        assert!(!f("customer.missing", json!(null)).matches(&body));
        assert!(!f("n.deeper", json!(1)).matches(&body));
    }
}
