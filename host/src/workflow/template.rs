//! The two small languages inside workflow strings: `{{context.name}}`
//! references in system messages ([`references`], [`render`]) and dotted
//! field paths such as `review.score` ([`FieldPath`]).
//!
//! Validation uses them to check every name at load; the orchestrator uses
//! the same functions to render a prompt, so what was checked is what runs.

use serde_json::Value;

/// The opening of a context reference: `{{context.` (spaces allowed after
/// the braces).
const OPEN: &str = "{{";
/// The closing of a reference.
const CLOSE: &str = "}}";
/// The namespace of context references inside the braces.
const CONTEXT_PREFIX: &str = "context.";

/// One `{{context.name}}` in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    /// The variable's name.
    pub name: String,
    /// Byte range of the whole `{{…}}` in the text.
    pub span: std::ops::Range<usize>,
}

/// Why a text's references cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TemplateError {
    /// `{{context.` without `}}`.
    #[error("`{{{{context.` at byte {at} has no closing `}}}}`")]
    Unclosed {
        /// Byte offset of the opening braces.
        at: usize,
    },
    /// `{{context.}}` or a name with other characters than letters, digits, `_`.
    #[error(
        "`{text}` is not a context reference: write {{{{context.<name>}}}} with letters, digits and `_`"
    )]
    BadName {
        /// The whole reference as written.
        text: String,
    },
}

/// Every `{{context.<name>}}` in `text`, in order. Other `{{…}}` (for
/// example a JSON example in a prompt) are left alone.
pub(crate) fn references(text: &str) -> Result<Vec<Reference>, TemplateError> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(offset) = text[from..].find(OPEN) {
        let start = from + offset;
        let inner_start = start + OPEN.len();
        let inner = text[inner_start..].trim_start();
        if !inner.starts_with(CONTEXT_PREFIX) {
            from = inner_start;
            continue;
        }
        let Some(close) = text[inner_start..].find(CLOSE) else {
            return Err(TemplateError::Unclosed { at: start });
        };
        let end = inner_start + close + CLOSE.len();
        let body = text[inner_start..inner_start + close].trim();
        let name = body.strip_prefix(CONTEXT_PREFIX).unwrap_or_default();
        if !is_name(name) {
            return Err(TemplateError::BadName {
                text: text[start..end].to_owned(),
            });
        }
        out.push(Reference {
            name: name.to_owned(),
            span: start..end,
        });
        from = end;
    }
    Ok(out)
}

/// `text` with each reference replaced by `value_of(name)`. A text whose
/// references do not parse is returned unchanged (validation refused such
/// texts at load).
pub(crate) fn render(text: &str, mut value_of: impl FnMut(&str) -> String) -> String {
    let Ok(refs) = references(text) else {
        return text.to_owned();
    };
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for reference in refs {
        out.push_str(&text[last..reference.span.start]);
        out.push_str(&value_of(&reference.name));
        last = reference.span.end;
    }
    out.push_str(&text[last..]);
    out
}

/// Letters, digits and `_`, not empty: a context variable's name.
pub(crate) fn is_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A dotted path into a JSON object (`review.score`): each segment is an
/// object key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath(Vec<String>);

impl FieldPath {
    /// Parses `a.b.c`; `None` for an empty path or an empty segment.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        segments
            .iter()
            .all(|s| !s.is_empty())
            .then_some(Self(segments))
    }

    /// The value at this path in `value`, if every key exists.
    pub(crate) fn get<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.0
            .iter()
            .try_fold(value, |current, key| current.as_object()?.get(key))
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_context_references_and_leaves_other_braces_alone() {
        let text = "Plan {{context.plan}} for {{ context.user_id }}; JSON: {{\"a\": 1}}";
        let names: Vec<String> = references(text)
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["plan", "user_id"]);
        let rendered = render(text, |name| name.to_uppercase());
        assert_eq!(rendered, "Plan PLAN for USER_ID; JSON: {{\"a\": 1}}");
    }

    #[test]
    fn refuses_unclosed_and_malformed_references() {
        assert_eq!(
            references("x {{context.plan"),
            Err(TemplateError::Unclosed { at: 2 })
        );
        assert!(matches!(
            references("{{context.a-b}}"),
            Err(TemplateError::BadName { .. })
        ));
        assert!(matches!(
            references("{{context.}}"),
            Err(TemplateError::BadName { .. })
        ));
    }

    #[test]
    fn field_paths_read_nested_objects() {
        let value = json!({"review": {"score": 7}, "flat": 1});
        let path = FieldPath::parse("review.score").unwrap();
        assert_eq!(path.get(&value), Some(&json!(7)));
        assert_eq!(
            FieldPath::parse("flat").unwrap().get(&value),
            Some(&json!(1))
        );
        assert_eq!(
            FieldPath::parse("review.missing").unwrap().get(&value),
            None
        );
        assert_eq!(FieldPath::parse("flat.deeper").unwrap().get(&value), None);
        assert!(FieldPath::parse("a..b").is_none());
        assert!(FieldPath::parse("").is_none());
    }
}
