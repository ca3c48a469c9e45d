//! [`AppDataStore`] on the embedded store: one more table in the same redb
//! file, `app_documents`: `(app_id, owner, collection, id)` → `{"version",
//! "body"}` as JSON text (owner: empty for the app, `u:<user>` for a user;
//! see [`DataOwner::partition`]). Every write is one redb write transaction,
//! so the version check and the per-app count are exact under concurrency.

use std::sync::Arc;

use async_trait::async_trait;
use mozaiks_plugin_host::{DataDocument, DataLimits, DataQuery};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableError};
use serde_json::Value;

use super::{EmbeddedStore, Inner};
use crate::store::StoreError;
use crate::store::data::{AppDataStore, DataOwner, DataStoreError, StoredDocument, check_size};

const DOCUMENTS: TableDefinition<'_, (&str, &str, &str, &str), &str> =
    TableDefinition::new("app_documents");

/// The table, opened for reading.
type Documents =
    redb::ReadOnlyTable<(&'static str, &'static str, &'static str, &'static str), &'static str>;

/// The embedded store's per-app documents. Shares the store's database.
#[derive(Debug, Clone)]
pub(crate) struct EmbeddedAppData(pub(super) EmbeddedStore);

impl EmbeddedStore {
    /// This store's per-app documents.
    pub(crate) fn app_documents(&self) -> Arc<dyn AppDataStore> {
        Arc::new(EmbeddedAppData(self.clone()))
    }
}

fn decode(inner: &Inner, json: &str, id: &str) -> Result<StoredDocument, StoreError> {
    serde_json::from_str(json).map_err(|e| {
        inner.backend(
            "reading an app document",
            format!("document `{id}` is corrupt: {e}"),
        )
    })
}

fn to_document(id: &str, stored: StoredDocument) -> Result<DataDocument, StoreError> {
    Ok(DataDocument {
        id: id.to_owned(),
        version: stored.version,
        body: stored.body,
    })
}

/// The table, opened in a write transaction.
type DocumentsMut<'txn> =
    redb::Table<'txn, (&'static str, &'static str, &'static str, &'static str), &'static str>;

/// The key of one document: its app, owner partition, collection and id.
#[derive(Debug)]
struct DocumentKey {
    app: String,
    part: String,
    collection: String,
    id: String,
}

impl DocumentKey {
    fn new(owner: &DataOwner, collection: &str, id: &str) -> Self {
        Self {
            app: owner.app_id.clone(),
            part: owner.partition(),
            collection: collection.to_owned(),
            id: id.to_owned(),
        }
    }

    fn parts(&self) -> (&str, &str, &str, &str) {
        (&self.app, &self.part, &self.collection, &self.id)
    }
}

/// How many documents `app` holds, every owner and collection: the range
/// of its keys (bounded by the per-app quota).
fn count_app_documents(
    inner: &Inner,
    op: &str,
    table: &DocumentsMut<'_>,
    app: &str,
) -> Result<u64, StoreError> {
    let mut held = 0u64;
    for entry in table
        .range((app, "", "", "")..)
        .map_err(|e| inner.backend(op, e))?
    {
        let (k, _) = entry.map_err(|e| inner.backend(op, e))?;
        if k.value().0 != app {
            break;
        }
        held += 1;
    }
    Ok(held)
}

impl Inner {
    /// Reads in a snapshot; a file that never had a document has no table.
    fn read_documents<T>(
        &self,
        op: &str,
        empty: T,
        work: impl FnOnce(&Documents) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.backend(op, e))?;
        match txn.open_table(DOCUMENTS) {
            Ok(table) => work(&table),
            Err(TableError::TableDoesNotExist(_)) => Ok(empty),
            Err(e) => Err(self.backend(op, e)),
        }
    }

    /// One write transaction on the document at `key`: its stored version
    /// is read; a conditional write whose `expected` version (0: absent)
    /// differs is a conflict; otherwise `work` gets the table and the
    /// version found. Both writes (put and remove) go through here, so the
    /// check and the change are one transaction.
    fn write_document<T>(
        &self,
        op: &str,
        key: &DocumentKey,
        expected: Option<u64>,
        work: impl FnOnce(
            &mut DocumentsMut<'_>,
            Option<u64>,
        ) -> Result<Result<T, DataStoreError>, StoreError>,
    ) -> Result<Result<T, DataStoreError>, StoreError> {
        self.write(op, |txn| {
            let mut table = txn.open_table(DOCUMENTS).map_err(|e| self.backend(op, e))?;
            let found = match table.get(key.parts()).map_err(|e| self.backend(op, e))? {
                Some(json) => Some(decode(self, json.value(), &key.id)?.version),
                None => None,
            };
            if expected.is_some_and(|e| e != found.unwrap_or(0)) {
                return Ok(Err(DataStoreError::Conflict { found }));
            }
            work(&mut table, found)
        })
    }
}

#[async_trait]
impl AppDataStore for EmbeddedAppData {
    async fn get_document(
        &self,
        owner: &DataOwner,
        collection: &str,
        id: &str,
    ) -> Result<Option<DataDocument>, DataStoreError> {
        let (app, part) = (owner.app_id.clone(), owner.partition());
        let (collection, id) = (collection.to_owned(), id.to_owned());
        let op = "reading an app document";
        Ok(self
            .0
            .run(op, move |inner| {
                inner.read_documents(op, None, |table| {
                    let key = (
                        app.as_str(),
                        part.as_str(),
                        collection.as_str(),
                        id.as_str(),
                    );
                    let Some(json) = table.get(key).map_err(|e| inner.backend(op, e))? else {
                        return Ok(None);
                    };
                    let stored = decode(inner, json.value(), &id)?;
                    to_document(&id, stored).map(Some)
                })
            })
            .await?)
    }

    async fn put_document(
        &self,
        owner: &DataOwner,
        collection: &str,
        id: &str,
        body: &Value,
        expected: Option<u64>,
        limits: &DataLimits,
    ) -> Result<u64, DataStoreError> {
        check_size(body, limits)?;
        let key = DocumentKey::new(owner, collection, id);
        let (body, limits) = (body.clone(), *limits);
        let op = "writing an app document";
        self.0
            .run(op, move |inner| {
                inner.write_document(op, &key, expected, |table, found| {
                    if found.is_none() {
                        let held = count_app_documents(inner, op, table, &key.app)?;
                        if held >= limits.max_documents_per_app {
                            return Ok(Err(DataStoreError::QuotaExceeded {
                                app: key.app.clone(),
                                max: limits.max_documents_per_app,
                            }));
                        }
                    }
                    let version = found.unwrap_or(0) + 1;
                    let stored =
                        serde_json::json!({ "version": version, "body": body }).to_string();
                    table
                        .insert(key.parts(), stored.as_str())
                        .map_err(|e| inner.backend(op, e))?;
                    Ok(Ok(version))
                })
            })
            .await?
    }

    async fn remove_document(
        &self,
        owner: &DataOwner,
        collection: &str,
        id: &str,
        expected: Option<u64>,
    ) -> Result<bool, DataStoreError> {
        let key = DocumentKey::new(owner, collection, id);
        let op = "removing an app document";
        self.0
            .run(op, move |inner| {
                inner.write_document(op, &key, expected, |table, _found| {
                    let removed = table
                        .remove(key.parts())
                        .map_err(|e| inner.backend(op, e))?
                        .is_some();
                    Ok(Ok(removed))
                })
            })
            .await?
    }

    async fn query_documents(
        &self,
        owner: &DataOwner,
        collection: &str,
        query: &DataQuery,
    ) -> Result<Vec<DataDocument>, DataStoreError> {
        let (app, part) = (owner.app_id.clone(), owner.partition());
        let (collection, query) = (collection.to_owned(), query.clone());
        let op = "querying app documents";
        Ok(self
            .0
            .run(op, move |inner| {
                inner.read_documents(op, Vec::new(), |table| {
                    let after = query.after_id.clone().unwrap_or_default();
                    let start = (
                        app.as_str(),
                        part.as_str(),
                        collection.as_str(),
                        after.as_str(),
                    );
                    let mut found = Vec::new();
                    for entry in table.range(start..).map_err(|e| inner.backend(op, e))? {
                        if found.len() >= query.limit {
                            break;
                        }
                        let (k, json) = entry.map_err(|e| inner.backend(op, e))?;
                        let (a, p, c, id) = k.value();
                        if a != app || p != part || c != collection {
                            break;
                        }
                        let doc = to_document(id, decode(inner, json.value(), id)?)?;
                        if query.selects(id, &doc.body) {
                            found.push(doc);
                        }
                    }
                    Ok(found)
                })
            })
            .await?)
    }
}
