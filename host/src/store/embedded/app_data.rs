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
        let (app, part) = (owner.app_id.clone(), owner.partition());
        let (collection, id, limits) = (collection.to_owned(), id.to_owned(), *limits);
        let body = body.clone();
        let op = "writing an app document";
        self.0
            .run(op, move |inner| {
                let mut outcome = Ok(0);
                inner.write(op, |txn| {
                    let mut table = txn
                        .open_table(DOCUMENTS)
                        .map_err(|e| inner.backend(op, e))?;
                    let key = (
                        app.as_str(),
                        part.as_str(),
                        collection.as_str(),
                        id.as_str(),
                    );
                    let found = match table.get(key).map_err(|e| inner.backend(op, e))? {
                        Some(json) => Some(decode(inner, json.value(), &id)?.version),
                        None => None,
                    };
                    if expected.is_some_and(|e| e != found.unwrap_or(0)) {
                        outcome = Err(DataStoreError::Conflict { found });
                        return Ok(());
                    }
                    if found.is_none() {
                        let mut held = 0u64;
                        let start = (app.as_str(), "", "", "");
                        for entry in table.range(start..).map_err(|e| inner.backend(op, e))? {
                            let (k, _) = entry.map_err(|e| inner.backend(op, e))?;
                            if k.value().0 != app {
                                break;
                            }
                            held += 1;
                        }
                        if held >= limits.max_documents_per_app {
                            outcome = Err(DataStoreError::QuotaExceeded {
                                app: app.clone(),
                                max: limits.max_documents_per_app,
                            });
                            return Ok(());
                        }
                    }
                    let version = found.unwrap_or(0) + 1;
                    let stored =
                        serde_json::json!({ "version": version, "body": body }).to_string();
                    table
                        .insert(key, stored.as_str())
                        .map_err(|e| inner.backend(op, e))?;
                    outcome = Ok(version);
                    Ok(())
                })?;
                Ok(outcome)
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
        let (app, part) = (owner.app_id.clone(), owner.partition());
        let (collection, id) = (collection.to_owned(), id.to_owned());
        let op = "removing an app document";
        self.0
            .run(op, move |inner| {
                let mut outcome = Ok(false);
                inner.write(op, |txn| {
                    let mut table = txn
                        .open_table(DOCUMENTS)
                        .map_err(|e| inner.backend(op, e))?;
                    let key = (
                        app.as_str(),
                        part.as_str(),
                        collection.as_str(),
                        id.as_str(),
                    );
                    let found = match table.get(key).map_err(|e| inner.backend(op, e))? {
                        Some(json) => Some(decode(inner, json.value(), &id)?.version),
                        None => None,
                    };
                    if expected.is_some_and(|e| e != found.unwrap_or(0)) {
                        outcome = Err(DataStoreError::Conflict { found });
                        return Ok(());
                    }
                    let removed = table
                        .remove(key)
                        .map_err(|e| inner.backend(op, e))?
                        .is_some();
                    outcome = Ok(removed);
                    Ok(())
                })?;
                Ok(outcome)
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
