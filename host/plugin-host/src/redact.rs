//! Keeps the secrets a call was given out of what it sends out: its log
//! records, its stdout and stderr, its result and its error message.

/// The secrets handed to one call, and how to hide them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Redactor {
    /// (what to find, what to put instead), longest first.
    patterns: Vec<(String, String)>,
}

impl Redactor {
    /// Remembers `value` of secret `name`: from now on it is redacted,
    /// as written and as it appears escaped inside a JSON string.
    pub(crate) fn add(&mut self, name: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        let mask = format!("[redacted secret {name}]");
        let escaped = serde_json::to_string(value).unwrap_or_default();
        let escaped = escaped
            .strip_prefix('"')
            .and_then(|e| e.strip_suffix('"'))
            .unwrap_or_default()
            .to_owned();
        for pattern in [value.to_owned(), escaped] {
            if !pattern.is_empty() && !self.patterns.iter().any(|(p, _)| *p == pattern) {
                self.patterns.push((pattern, mask.clone()));
            }
        }
        self.patterns
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    }

    /// `text` with every secret replaced by its mask.
    pub(crate) fn apply(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (pattern, mask) in &self.patterns {
            if out.contains(pattern.as_str()) {
                out = out.replace(pattern.as_str(), mask);
            }
        }
        out
    }

    /// Whether no secret was handed out.
    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_masked_as_written_and_json_escaped() {
        let mut r = Redactor::default();
        r.add("TOKEN", "s3\"cr3t");
        assert_eq!(r.apply("key=s3\"cr3t!"), "key=[redacted secret TOKEN]!");
        let json = serde_json::json!({ "k": "s3\"cr3t" }).to_string();
        let masked = r.apply(&json);
        assert!(!masked.contains("cr3t"), "{masked}");
        assert!(serde_json::from_str::<serde_json::Value>(&masked).is_ok());
    }
}
