//! `database` context variables: read from the chat's app's documents
//! ([`crate::store::data`]) when a chat starts, only ever within the chat's
//! app. A missing document or field gives the variable's default.

use std::sync::Arc;

use mozaiks_plugin_host::{DataFilter, DataQuery, field};
use serde_json::{Map, Value};

use crate::store::data::{AppDataStore, DataOwner, DataStoreError};
use crate::store::{ChatRecord, StoreError};
use crate::workflow::Workflow;
use crate::workflow::model::{DatabaseSource, VariableSource, VariableType};

/// `text` with `{{runtime.app_id}}`, `{{runtime.user_id}}` and
/// `{{runtime.chat_id}}` replaced by `chat`'s (validation refused any other).
fn substitute(text: &str, chat: &ChatRecord) -> String {
    let mut out = text.to_owned();
    for (name, value) in [
        ("app_id", &chat.app_id),
        ("user_id", &chat.user_id),
        ("chat_id", &chat.chat_id),
    ] {
        for spelling in [
            format!("{{{{runtime.{name}}}}}"),
            format!("{{{{ runtime.{name} }}}}"),
        ] {
            out = out.replace(&spelling, value);
        }
    }
    out
}

fn resolve(value: &Value, chat: &ChatRecord) -> Value {
    match value {
        Value::String(text) => Value::String(substitute(text, chat)),
        other => other.clone(),
    }
}

fn has_type(value: &Value, var_type: VariableType) -> bool {
    match var_type {
        VariableType::String => value.is_string(),
        VariableType::Boolean => value.is_boolean(),
        VariableType::Integer => value.is_i64() || value.is_u64(),
        VariableType::Number => value.is_number(),
        VariableType::Object => value.is_object(),
        VariableType::Array => value.is_array(),
    }
}

/// The body of the first document of the chat's app that `source` selects.
async fn find(
    store: &dyn AppDataStore,
    source: &DatabaseSource,
    chat: &ChatRecord,
) -> Result<Option<Value>, StoreError> {
    let owner = DataOwner::app(&chat.app_id);
    let filters: Vec<DataFilter> = source
        .filters
        .iter()
        .map(|(path, value)| DataFilter {
            path: path.clone(),
            value: resolve(value, chat),
        })
        .collect();
    let found = match &source.id {
        Some(id) => store
            .get_document(&owner, &source.collection, &substitute(id, chat))
            .await
            .map(|doc| doc.filter(|d| filters.iter().all(|f| f.matches(&d.body)))),
        None => {
            let query = DataQuery {
                filters,
                after_id: None,
                limit: 1,
            };
            store
                .query_documents(&owner, &source.collection, &query)
                .await
                .map(|docs| docs.into_iter().next())
        }
    };
    match found {
        Ok(doc) => Ok(doc.map(|d| d.body)),
        Err(DataStoreError::Store(e)) => Err(e),
        // Reads make no conflict or quota errors; should a store report
        // one anyway, the variable keeps its default.
        Err(_) => Ok(None),
    }
}

/// Sets every `database` variable of `workflow` in `context` from `store`
/// (`None`: the chat store keeps no per-app data, and each keeps its
/// default). A value of another type than the declared one is not used:
/// the default stays, and a warning names the variable.
pub(crate) async fn read(
    workflow: &Workflow,
    chat: &ChatRecord,
    store: Option<Arc<dyn AppDataStore>>,
    context: &mut Map<String, Value>,
) -> Result<(), StoreError> {
    let Some(store) = store else {
        return Ok(());
    };
    for variable in workflow.context_variables() {
        let VariableSource::Database(source) = &variable.source else {
            continue;
        };
        let Some(body) = find(store.as_ref(), source, chat).await? else {
            continue;
        };
        let value = match &source.field {
            Some(path) => field(&body, path).cloned(),
            None => Some(body),
        };
        match value {
            Some(value) if value.is_null() || has_type(&value, variable.var_type) => {
                context.insert(variable.name.clone(), value);
            }
            Some(value) => tracing::warn!(
                chat_id = %chat.chat_id,
                variable = %variable.name,
                "the database source found {value}, not of the declared type {:?}; the default is used",
                variable.var_type
            ),
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_templates_take_the_chats_ids() {
        let chat = ChatRecord::new(
            "c1".into(),
            "app-a".into(),
            "u1".into(),
            "wf".into(),
            "1".into(),
            0,
            0,
        );
        assert_eq!(
            substitute(
                "{{runtime.app_id}}/{{ runtime.user_id }}/{{runtime.chat_id}}",
                &chat
            ),
            "app-a/u1/c1"
        );
    }
}
