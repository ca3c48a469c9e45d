//! Documents of the calling chat's app: records a tool keeps without
//! database credentials.
//!
//! ```no_run
//! # fn run() -> Result<(), mozaiks_sdk::ToolError> {
//! use mozaiks_sdk::data::{self, Scope};
//! use mozaiks_sdk::json;
//!
//! let version = data::put(Scope::App, "orders", "o-1", &json!({ "status": "open" }), None)?;
//! let order = data::get(Scope::App, "orders", "o-1")?.expect("just written");
//! assert_eq!(order.version, version);
//! // Only if nobody changed it meanwhile:
//! data::put(Scope::App, "orders", "o-1", &json!({ "status": "paid" }), Some(order.version))?;
//! let open = data::Query::new().filter("status", json!("open")).limit(20).run(Scope::App, "orders")?;
//! # let _ = open; Ok(()) }
//! ```
//!
//! The app (and the user, for [`Scope::User`]) is always the calling
//! chat's, set by the host: no function takes an app or a user, so a tool
//! cannot reach another app's documents.

use serde_json::Value;

use crate::__private::bindings::mozaiks::plugin::data as wit;
use crate::ToolError;

/// Whose documents a function acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The calling chat's app, shared by its users.
    App,
    /// The calling chat's user, inside the chat's app.
    User,
}

/// One stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Its id inside its collection.
    pub id: String,
    /// Raised by one on every write; the first write makes version 1.
    pub version: u64,
    /// The document (a JSON object).
    pub body: Value,
}

/// Why a data function failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataError {
    /// The document was not at the expected version; it is at `found` now
    /// (`None`: it does not exist).
    Conflict {
        /// Its version now.
        found: Option<u64>,
    },
    /// The document is larger than the server allows.
    TooLarge(String),
    /// The app holds as many documents as the server allows.
    QuotaExceeded(String),
    /// An argument was refused.
    Invalid(String),
}

impl std::fmt::Display for DataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataError::Conflict { found: Some(v) } => {
                write!(f, "version conflict: the document is at version {v}")
            }
            DataError::Conflict { found: None } => {
                write!(f, "version conflict: the document does not exist")
            }
            DataError::TooLarge(m) | DataError::QuotaExceeded(m) | DataError::Invalid(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for DataError {}

impl From<DataError> for ToolError {
    fn from(error: DataError) -> Self {
        match error {
            DataError::Invalid(m) => ToolError::InvalidArguments(m),
            other => ToolError::Failed(other.to_string()),
        }
    }
}

fn scope(scope: Scope) -> wit::Scope {
    match scope {
        Scope::App => wit::Scope::App,
        Scope::User => wit::Scope::User,
    }
}

fn error(e: wit::DataError) -> DataError {
    match e {
        wit::DataError::Conflict(found) => DataError::Conflict { found },
        wit::DataError::TooLarge(m) => DataError::TooLarge(m),
        wit::DataError::QuotaExceeded(m) => DataError::QuotaExceeded(m),
        wit::DataError::Invalid(m) => DataError::Invalid(m),
    }
}

fn document(doc: wit::Document) -> Result<Document, DataError> {
    let body = serde_json::from_str(&doc.body)
        .map_err(|e| DataError::Invalid(format!("the host sent a body that is not JSON: {e}")))?;
    Ok(Document {
        id: doc.id,
        version: doc.version,
        body,
    })
}

/// The document `id` of `collection`, if there is one.
pub fn get(scope_: Scope, collection: &str, id: &str) -> Result<Option<Document>, DataError> {
    wit::get(scope(scope_), collection, id)
        .map_err(error)?
        .map(document)
        .transpose()
}

/// Writes `body` (a JSON object) as the document `id` of `collection` and
/// returns its new version. With `expected_version`, only if the document
/// is at that version now (`Some(0)`: only if it does not exist yet);
/// otherwise [`DataError::Conflict`].
pub fn put(
    scope_: Scope,
    collection: &str,
    id: &str,
    body: &Value,
    expected_version: Option<u64>,
) -> Result<u64, DataError> {
    wit::put(
        scope(scope_),
        collection,
        id,
        &body.to_string(),
        expected_version,
    )
    .map_err(error)
}

/// Removes the document; true if it existed. With `expected_version`, only
/// if it is at that version now.
pub fn remove(
    scope_: Scope,
    collection: &str,
    id: &str,
    expected_version: Option<u64>,
) -> Result<bool, DataError> {
    wit::remove(scope(scope_), collection, id, expected_version).map_err(error)
}

/// A query: documents of a collection whose fields equal given values.
#[derive(Debug, Clone, Default)]
pub struct Query {
    filters: Vec<(String, Value)>,
    after_id: Option<String>,
    limit: u32,
}

impl Query {
    /// Every document, up to 100 (the most one query returns).
    pub fn new() -> Self {
        Self {
            limit: 100,
            ..Self::default()
        }
    }

    /// Only documents whose field at the dotted `path` equals `value`.
    pub fn filter(mut self, path: &str, value: Value) -> Self {
        self.filters.push((path.to_owned(), value));
        self
    }

    /// Only documents with an id after `id` (the last of the previous page).
    pub fn after(mut self, id: &str) -> Self {
        self.after_id = Some(id.to_owned());
        self
    }

    /// At most `limit` documents (the host caps it at 100).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// The matching documents of `collection`, by id.
    pub fn run(&self, scope_: Scope, collection: &str) -> Result<Vec<Document>, DataError> {
        let filters: Vec<wit::Filter> = self
            .filters
            .iter()
            .map(|(path, value)| wit::Filter {
                path: path.clone(),
                value: value.to_string(),
            })
            .collect();
        wit::query(
            scope(scope_),
            collection,
            &filters,
            self.after_id.as_deref(),
            self.limit,
        )
        .map_err(error)?
        .into_iter()
        .map(document)
        .collect()
    }
}
