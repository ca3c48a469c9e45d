//! Checks of a `database` context source: its collection, its query (field
//! paths, the `_id`, the `{{runtime.*}}` templates) and its field.

use serde_json::{Map, Value};

use super::{CONTEXT_VARIABLES_FILE, Validator};
use crate::workflow::diagnostic::JsonPath;
use crate::workflow::model::DatabaseSource;

/// The names a query's string values may use as `{{runtime.<name>}}`.
pub(crate) const RUNTIME_NAMES: [&str; 3] = ["app_id", "user_id", "chat_id"];

/// Longest collection name: the `data` import's limit, so a tool can write
/// what a source reads.
const MAX_COLLECTION_BYTES: usize = mozaiks_plugin_host::MAX_DATA_COLLECTION_BYTES;

/// The source as written.
pub(super) struct DatabaseSpec<'a> {
    pub(super) collection: &'a str,
    pub(super) query: &'a Map<String, Value>,
    pub(super) field: Option<&'a str>,
    pub(super) default: &'a Option<Value>,
}

fn is_dotted_path(path: &str) -> bool {
    !path.is_empty() && path.split('.').all(|part| !part.is_empty())
}

/// The `{{...}}` references in `text` that are not `runtime.<name>` of
/// [`RUNTIME_NAMES`], or an unclosed `{{`.
fn unknown_templates(text: &str) -> Vec<String> {
    let mut unknown = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            unknown.push(format!("{{{{{after}"));
            break;
        };
        let name = after[..end].trim();
        let known = name
            .strip_prefix("runtime.")
            .is_some_and(|n| RUNTIME_NAMES.contains(&n));
        if !known {
            unknown.push(format!("{{{{{name}}}}}"));
        }
        rest = &after[end + 2..];
    }
    unknown
}

/// Checks `spec` at `path` (the variable's `source`) and returns the
/// runtime form (meaningful only when no problem was reported).
pub(super) fn check(
    v: &mut Validator<'_>,
    path: &JsonPath,
    spec: DatabaseSpec<'_>,
) -> DatabaseSource {
    if spec.collection.is_empty() || spec.collection.len() > MAX_COLLECTION_BYTES {
        v.error(
            CONTEXT_VARIABLES_FILE,
            path.key("collection"),
            format!("a collection name is 1 to {MAX_COLLECTION_BYTES} bytes"),
            None,
        );
    }
    let mut id = None;
    let mut filters = Vec::new();
    for (key, value) in spec.query {
        let at = path.key("query").key(key);
        if let Some(text) = value.as_str() {
            for unknown in unknown_templates(text) {
                v.error(
                    CONTEXT_VARIABLES_FILE,
                    at.clone(),
                    format!("unknown template {unknown}"),
                    Some(
                        "a query may use {{runtime.app_id}}, {{runtime.user_id}} and \
                         {{runtime.chat_id}}"
                            .to_owned(),
                    ),
                );
            }
        }
        if key == "_id" {
            match value.as_str() {
                Some(text) => id = Some(text.to_owned()),
                None => v.error(
                    CONTEXT_VARIABLES_FILE,
                    at,
                    "`_id` is the document's id: a string",
                    None,
                ),
            }
        } else if is_dotted_path(key) {
            filters.push((key.clone(), value.clone()));
        } else {
            v.error(
                CONTEXT_VARIABLES_FILE,
                at,
                format!("\"{key}\" is not a field path"),
                Some("write `field` or `field.sub`, or `_id` for the document's id".to_owned()),
            );
        }
    }
    if let Some(field) = spec.field.filter(|f| !is_dotted_path(f)) {
        v.error(
            CONTEXT_VARIABLES_FILE,
            path.key("field"),
            format!("\"{field}\" is not a field path"),
            Some("write `field` or `field.sub`".to_owned()),
        );
    }
    DatabaseSource {
        collection: spec.collection.to_owned(),
        id,
        filters,
        field: spec.field.map(str::to_owned),
        default: spec.default.clone().unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_runtime_ids_are_templates() {
        assert!(unknown_templates("{{runtime.app_id}}-{{ runtime.user_id }}").is_empty());
        assert_eq!(
            unknown_templates("{{runtime.secret}}"),
            ["{{runtime.secret}}"]
        );
        assert_eq!(unknown_templates("{{context.x}}"), ["{{context.x}}"]);
        assert_eq!(
            unknown_templates("a {{runtime.app_id"),
            ["{{runtime.app_id"]
        );
    }
}
