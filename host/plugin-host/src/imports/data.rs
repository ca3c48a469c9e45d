//! `mozaiks:plugin/data`: documents of the calling chat's app, via
//! [`crate::AppData`]. Names, counts and sizes are checked here, before
//! the port sees them; the app and user are the port's, never the guest's.

use serde_json::Value;

use super::HostFailure;
use crate::bindings::data::{DataError as WitError, Document, Filter, Host, Scope};
use crate::limits::{
    MAX_DATA_COLLECTION_BYTES, MAX_DATA_FILTERS, MAX_DATA_ID_BYTES, MAX_DATA_OPS_PER_CALL,
    MAX_DATA_QUERY_BYTES, MAX_DATA_QUERY_LIMIT,
};
use crate::ports::{DataDocument, DataError, DataFilter, DataQuery, DataScope};
use crate::state::CallState;

type Answer<T> = wasmtime::Result<Result<T, WitError>>;

fn scope(scope: Scope) -> DataScope {
    match scope {
        Scope::App => DataScope::App,
        Scope::User => DataScope::User,
    }
}

/// A port answer as the guest sees it; a store failure aborts the call.
fn answer<T>(op: &str, result: Result<T, DataError>) -> Answer<T> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(DataError::Conflict { found }) => Ok(Err(WitError::Conflict(found))),
        Err(e @ DataError::TooLarge { .. }) => Ok(Err(WitError::TooLarge(e.to_string()))),
        Err(e @ DataError::QuotaExceeded { .. }) => Ok(Err(WitError::QuotaExceeded(e.to_string()))),
        Err(DataError::Invalid(why)) => Ok(Err(WitError::Invalid(why))),
        Err(DataError::Failed(e)) => Err(wasmtime::Error::new(HostFailure(format!(
            "data.{op} failed: {e}"
        )))),
    }
}

fn invalid<T>(why: String) -> Answer<T> {
    Ok(Err(WitError::Invalid(why)))
}

/// Why a collection name or id is refused, if it is.
fn check_name(what: &str, name: &str, max: usize) -> Option<String> {
    if name.is_empty() || name.len() > max {
        return Some(format!(
            "a {what} is 1 to {max} bytes; `{}` is {}",
            name.chars().take(64).collect::<String>(),
            name.len()
        ));
    }
    name.chars()
        .any(char::is_control)
        .then(|| format!("a {what} has no control characters"))
}

fn document(doc: DataDocument) -> Document {
    Document {
        id: doc.id,
        version: doc.version,
        body: doc.body.to_string(),
    }
}

impl CallState {
    /// Counts one operation; `Some(refusal)` past the per-call bound or
    /// for a bad collection or id.
    fn data_op(&mut self, collection: &str, id: Option<&str>) -> Option<String> {
        if self.data_ops >= MAX_DATA_OPS_PER_CALL {
            return Some(format!(
                "this call already made {MAX_DATA_OPS_PER_CALL} data operations, the most one \
                 call may make"
            ));
        }
        self.data_ops += 1;
        check_name("collection name", collection, MAX_DATA_COLLECTION_BYTES)
            .or_else(|| id.and_then(|id| check_name("document id", id, MAX_DATA_ID_BYTES)))
    }
}

impl Host for CallState {
    async fn get(&mut self, s: Scope, collection: String, id: String) -> Answer<Option<Document>> {
        if let Some(why) = self.data_op(&collection, Some(&id)) {
            return invalid(why);
        }
        let found = self.ports.data.get(scope(s), &collection, &id).await;
        answer("get", found.map(|doc| doc.map(document)))
    }

    async fn put(
        &mut self,
        s: Scope,
        collection: String,
        id: String,
        body: String,
        expected: Option<u64>,
    ) -> Answer<u64> {
        if let Some(why) = self.data_op(&collection, Some(&id)) {
            return invalid(why);
        }
        let body = match serde_json::from_str::<Value>(&body) {
            Ok(body @ Value::Object(_)) => body,
            Ok(_) => return invalid("a document body is a JSON object".to_owned()),
            Err(e) => return invalid(format!("the document body is not JSON: {e}")),
        };
        let written = self
            .ports
            .data
            .put(scope(s), &collection, &id, body, expected)
            .await;
        answer("put", written)
    }

    async fn remove(
        &mut self,
        s: Scope,
        collection: String,
        id: String,
        expected: Option<u64>,
    ) -> Answer<bool> {
        if let Some(why) = self.data_op(&collection, Some(&id)) {
            return invalid(why);
        }
        let removed = self
            .ports
            .data
            .remove(scope(s), &collection, &id, expected)
            .await;
        answer("remove", removed)
    }

    async fn query(
        &mut self,
        s: Scope,
        collection: String,
        filters: Vec<Filter>,
        after_id: Option<String>,
        limit: u32,
    ) -> Answer<Vec<Document>> {
        if let Some(why) = self.data_op(&collection, None) {
            return invalid(why);
        }
        if filters.len() > MAX_DATA_FILTERS {
            return invalid(format!(
                "{} filters; a query takes at most {MAX_DATA_FILTERS}",
                filters.len()
            ));
        }
        let mut parsed = Vec::with_capacity(filters.len());
        for filter in filters {
            let value = match serde_json::from_str(&filter.value) {
                Ok(value) => value,
                Err(e) => {
                    return invalid(format!(
                        "the value of the filter on `{}` is not JSON: {e}",
                        filter.path
                    ));
                }
            };
            if filter.path.is_empty() || filter.path.split('.').any(str::is_empty) {
                return invalid(format!(
                    "`{}` is not a dotted path (`field` or `field.sub`)",
                    filter.path
                ));
            }
            parsed.push(DataFilter {
                path: filter.path,
                value,
            });
        }
        let query = DataQuery {
            filters: parsed,
            after_id,
            limit: (limit as usize).min(MAX_DATA_QUERY_LIMIT),
        };
        let found = self.ports.data.query(scope(s), &collection, &query).await;
        answer(
            "query",
            found.map(|docs| {
                let mut total = 0;
                docs.into_iter()
                    .map(document)
                    .take_while(|doc| {
                        total += doc.body.len();
                        total <= MAX_DATA_QUERY_BYTES
                    })
                    .collect()
            }),
        )
    }
}
