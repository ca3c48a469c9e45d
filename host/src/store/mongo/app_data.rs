//! [`AppDataStore`] on MongoDB: one collection, `app_documents`, one
//! document per app document: `_id` (the JSON text of `[app_id, owner,
//! collection, id]`, so the key is unique without an index), `app_id`,
//! `owner` (empty for the app, `u:<user>` for a user), `collection`,
//! `doc_id`, `version` (64-bit) and `json` (the body as JSON text, read back
//! exactly as written).
//!
//! No transactions: a write reads the current version, then inserts (a
//! duplicate `_id` means another writer was first) or updates on the
//! condition that the version is still the one read; a lost race is
//! retried from the read, so a version is never skipped or given twice.
//! The per-app count is checked before an insert: writers racing past the
//! last free place can each get one (docs/operations.md says so).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures_util::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::{Collection, IndexModel};
use mozaiks_plugin_host::{DataDocument, DataLimits, DataQuery};
use serde_json::Value;

use super::MongoStore;
use super::documents::{backend, integer, is_duplicate_key, saturating_i64};
use crate::store::StoreError;
use crate::store::data::{AppDataStore, DataOwner, DataStoreError, check_size};

const DOCUMENTS: &str = "app_documents";

/// Rounds of read-then-write one write tries before it gives up: each
/// failed round means another writer changed the document meanwhile.
const MAX_WRITE_ROUNDS: u32 = 64;

/// The databases whose indexes this process has created.
static INDEXED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// MongoDB's per-app documents. Shares the store's client.
#[derive(Debug, Clone)]
pub(crate) struct MongoAppData {
    documents: Collection<Document>,
    database: String,
    target: Arc<str>,
}

impl MongoStore {
    /// This store's per-app documents.
    pub(crate) fn app_documents(&self) -> Arc<dyn AppDataStore> {
        Arc::new(MongoAppData {
            documents: self.db.collection(DOCUMENTS),
            database: self.db.name().to_owned(),
            target: Arc::clone(&self.target),
        })
    }
}

/// What stands for one app document.
struct Key {
    id: String,
    app_id: String,
    owner: String,
    collection: String,
    doc_id: String,
}

impl Key {
    fn new(owner: &DataOwner, collection: &str, id: &str) -> Self {
        let part = owner.partition();
        Self {
            id: serde_json::json!([owner.app_id, part, collection, id]).to_string(),
            app_id: owner.app_id.clone(),
            owner: part,
            collection: collection.to_owned(),
            doc_id: id.to_owned(),
        }
    }
}

impl MongoAppData {
    fn backend(&self, op: &str, error: &mongodb::error::Error) -> StoreError {
        backend(op, &self.target, error)
    }

    /// Creates the query and count indexes once per database and process.
    async fn ensure_indexes(&self) -> Result<(), StoreError> {
        let done = INDEXED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|set| set.contains(&self.database));
        if done {
            return Ok(());
        }
        let op = "creating the app_documents indexes";
        for keys in [
            doc! { "app_id": 1, "owner": 1, "collection": 1, "doc_id": 1 },
            doc! { "app_id": 1 },
        ] {
            let model = IndexModel::builder().keys(keys).build();
            self.documents
                .create_index(model)
                .await
                .map_err(|e| self.backend(op, &e))?;
        }
        INDEXED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashSet::new)
            .insert(self.database.clone());
        Ok(())
    }

    async fn current(&self, op: &str, key: &Key) -> Result<Option<(u64, Document)>, StoreError> {
        let found = self
            .documents
            .find_one(doc! { "_id": key.id.as_str() })
            .await
            .map_err(|e| self.backend(op, &e))?;
        found
            .map(|d| {
                let version = integer(d.get("version"))
                    .and_then(|v| u64::try_from(v).ok())
                    .ok_or_else(|| {
                        StoreError::Backend(format!("{op}: app document {} has no version", key.id))
                    })?;
                Ok((version, d))
            })
            .transpose()
    }
}

fn to_document(op: &str, d: &Document) -> Result<DataDocument, StoreError> {
    let corrupt = |why: String| StoreError::Backend(format!("{op}: app document corrupt: {why}"));
    let id = d
        .get_str("doc_id")
        .map_err(|e| corrupt(e.to_string()))?
        .to_owned();
    let version = integer(d.get("version"))
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| corrupt(format!("`{id}` has no version")))?;
    let json = d.get_str("json").map_err(|e| corrupt(e.to_string()))?;
    let body: Value = serde_json::from_str(json).map_err(|e| corrupt(e.to_string()))?;
    Ok(DataDocument { id, version, body })
}

#[async_trait]
impl AppDataStore for MongoAppData {
    async fn get_document(
        &self,
        owner: &DataOwner,
        collection: &str,
        id: &str,
    ) -> Result<Option<DataDocument>, DataStoreError> {
        let op = "reading an app document";
        let key = Key::new(owner, collection, id);
        match self.current(op, &key).await? {
            Some((_, d)) => Ok(Some(to_document(op, &d)?)),
            None => Ok(None),
        }
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
        let op = "writing an app document";
        let text = check_size(body, limits)?;
        self.ensure_indexes().await?;
        let key = Key::new(owner, collection, id);
        for _ in 0..MAX_WRITE_ROUNDS {
            let found = self.current(op, &key).await?.map(|(v, _)| v);
            if expected.is_some_and(|e| e != found.unwrap_or(0)) {
                return Err(DataStoreError::Conflict { found });
            }
            match found {
                None => {
                    let held = self
                        .documents
                        .count_documents(doc! { "app_id": key.app_id.as_str() })
                        .await
                        .map_err(|e| self.backend(op, &e))?;
                    if held >= limits.max_documents_per_app {
                        return Err(DataStoreError::QuotaExceeded {
                            app: key.app_id.clone(),
                            max: limits.max_documents_per_app,
                        });
                    }
                    let insert = doc! {
                        "_id": key.id.as_str(),
                        "app_id": key.app_id.as_str(),
                        "owner": key.owner.as_str(),
                        "collection": key.collection.as_str(),
                        "doc_id": key.doc_id.as_str(),
                        "version": 1_i64,
                        "json": text.as_str(),
                    };
                    match self.documents.insert_one(insert).await {
                        Ok(_) => return Ok(1),
                        Err(e) if is_duplicate_key(&e) => continue,
                        Err(e) => return Err(self.backend(op, &e).into()),
                    }
                }
                Some(version) => {
                    let next = version + 1;
                    let updated = self
                        .documents
                        .update_one(
                            doc! { "_id": key.id.as_str(), "version": saturating_i64(version) },
                            doc! { "$set": { "version": saturating_i64(next), "json": text.as_str() } },
                        )
                        .await
                        .map_err(|e| self.backend(op, &e))?;
                    if updated.matched_count == 1 {
                        return Ok(next);
                    }
                }
            }
        }
        Err(StoreError::Backend(format!(
            "{op}: `{id}` changed {MAX_WRITE_ROUNDS} times while this write tried"
        ))
        .into())
    }

    async fn remove_document(
        &self,
        owner: &DataOwner,
        collection: &str,
        id: &str,
        expected: Option<u64>,
    ) -> Result<bool, DataStoreError> {
        let op = "removing an app document";
        let key = Key::new(owner, collection, id);
        for _ in 0..MAX_WRITE_ROUNDS {
            let found = self.current(op, &key).await?.map(|(v, _)| v);
            if expected.is_some_and(|e| e != found.unwrap_or(0)) {
                return Err(DataStoreError::Conflict { found });
            }
            let Some(version) = found else {
                return Ok(false);
            };
            let deleted = self
                .documents
                .delete_one(doc! { "_id": key.id.as_str(), "version": saturating_i64(version) })
                .await
                .map_err(|e| self.backend(op, &e))?;
            if deleted.deleted_count == 1 {
                return Ok(true);
            }
        }
        Err(StoreError::Backend(format!(
            "{op}: `{id}` changed {MAX_WRITE_ROUNDS} times while this removal tried"
        ))
        .into())
    }

    async fn query_documents(
        &self,
        owner: &DataOwner,
        collection: &str,
        query: &DataQuery,
    ) -> Result<Vec<DataDocument>, DataStoreError> {
        let op = "querying app documents";
        let mut filter = doc! {
            "app_id": owner.app_id.as_str(),
            "owner": owner.partition(),
            "collection": collection,
        };
        if let Some(after) = &query.after_id {
            filter.insert("doc_id", doc! { "$gt": after.as_str() });
        }
        let mut cursor = self
            .documents
            .find(filter)
            .sort(doc! { "doc_id": 1 })
            .await
            .map_err(|e| self.backend(op, &e))?;
        let mut found = Vec::new();
        while found.len() < query.limit {
            let Some(d) = cursor.try_next().await.map_err(|e| self.backend(op, &e))? else {
                break;
            };
            let doc = to_document(op, &d)?;
            if query.selects(&doc.id, &doc.body) {
                found.push(doc);
            }
        }
        Ok(found)
    }
}
